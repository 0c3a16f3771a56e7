#include "core/daemon/sd_notify.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>

namespace harrow {
namespace {

// A datagram socket standing in for systemd's notify socket.
class Receiver {
 public:
  // `name`: a path, or "@name" for the abstract namespace.
  explicit Receiver(const std::string& name) : name_(name) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name.data(), name.size());
    socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    if (name[0] == '@') addr.sun_path[0] = '\0';
    bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), length) == 0;
  }
  ~Receiver() {
    ::close(fd_);
    if (name_[0] == '/') ::unlink(name_.c_str());
  }
  bool bound() const { return bound_; }
  // One datagram, or "" after `wait_ms` without one.
  std::string receive(int wait_ms = 2000) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, wait_ms) != 1) return "";
    char buffer[512];
    ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
  }

 private:
  std::string name_;
  int fd_ = -1;
  bool bound_ = false;
};

std::string temp_socket_path() {
  char dir[] = "/tmp/harrow-notify-XXXXXX";
  EXPECT_NE(::mkdtemp(dir), nullptr);
  return std::string(dir) + "/notify";
}

TEST(SdNotify, SendsOneDatagramToAPath) {
  std::string path = temp_socket_path();
  {
    Receiver receiver(path);
    ASSERT_TRUE(receiver.bound());
    std::string error;
    ASSERT_TRUE(notify_send(path, "READY=1\nSTATUS=serving", error)) << error;
    EXPECT_EQ(receiver.receive(), "READY=1\nSTATUS=serving");
  }
  ::rmdir(path.substr(0, path.rfind('/')).c_str());
}

TEST(SdNotify, SendsToAnAbstractName) {
  std::string name = "@harrow-notify-test-" + std::to_string(::getpid());
  Receiver receiver(name);
  ASSERT_TRUE(receiver.bound());
  std::string error;
  ASSERT_TRUE(notify_send(name, "STOPPING=1", error)) << error;
  EXPECT_EQ(receiver.receive(), "STOPPING=1");
}

TEST(SdNotify, ServiceNotifyFollowsTheEnvironment) {
  std::string name = "@harrow-notify-env-" + std::to_string(::getpid());
  Receiver receiver(name);
  ASSERT_TRUE(receiver.bound());
  std::string error;
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_TRUE(service_notify("READY=1", error));  // outside systemd: nothing, no error
  EXPECT_EQ(receiver.receive(200), "");
  ::setenv("NOTIFY_SOCKET", name.c_str(), 1);
  EXPECT_TRUE(service_notify(reloading_state(), error)) << error;
  std::string got = receiver.receive();
  ::unsetenv("NOTIFY_SOCKET");
  ASSERT_EQ(got.rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0u) << got;
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  unsigned long long sent = std::stoull(got.substr(got.find('=', 12) + 1));
  unsigned long long now_usec = static_cast<unsigned long long>(now.tv_sec) * 1000000ULL +
                                static_cast<unsigned long long>(now.tv_nsec) / 1000ULL;
  EXPECT_LE(sent, now_usec);
  EXPECT_GT(sent + 10'000'000ULL, now_usec);  // taken within the last 10 s
}

TEST(SdNotify, ReportsWhatFails) {
  std::string error;
  EXPECT_FALSE(notify_send("relative/path", "READY=1", error));
  EXPECT_NE(error.find("absolute"), std::string::npos) << error;
  error.clear();
  EXPECT_FALSE(notify_send("/nonexistent-dir-harrow/notify", "READY=1", error));
  EXPECT_NE(error.find("/nonexistent-dir-harrow/notify"), std::string::npos) << error;
}

}  // namespace
}  // namespace harrow

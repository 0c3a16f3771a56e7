#include "core/daemon/upgrade.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/proxy/listen.h"

namespace harrow {
namespace {

using Role = InheritedListener::Role;

TEST(InheritedFdsText, FormatsRolesAddressesAndDescriptors) {
  std::vector<InheritedListener> l{{Role::Listen, "127.0.0.1:0", {3, 4}},
                                   {Role::Listen, "[::1]:8443", {5, 6}},
                                   {Role::Admin, "127.0.0.1:9090", {7}}};
  EXPECT_EQ(format_inherited_fds(l),
            "listen:127.0.0.1:0=3,4;listen:[::1]:8443=5,6;admin:127.0.0.1:9090=7");
  std::vector<InheritedListener> back;
  std::string error;
  ASSERT_TRUE(parse_inherited_fds(format_inherited_fds(l), back, error)) << error;
  EXPECT_EQ(back, l);
}

TEST(InheritedFdsText, EmptyIsNothingInherited) {
  std::vector<InheritedListener> back{{Role::Admin, "x", {9}}};
  std::string error;
  ASSERT_TRUE(parse_inherited_fds("", back, error));
  EXPECT_TRUE(back.empty());
}

TEST(InheritedFdsText, RefusesMalformedText) {
  for (const char* text :
       {"127.0.0.1:80=3", "listen:127.0.0.1:80", "listen:127.0.0.1:80=", "listen:127.0.0.1:80=2",
        "listen:127.0.0.1:80=3,", "listen:127.0.0.1:80=x", "other:127.0.0.1:80=3", "listen:=3",
        "listen:127.0.0.1:80=3;;"}) {
    std::vector<InheritedListener> out;
    std::string error;
    EXPECT_FALSE(parse_inherited_fds(text, out, error)) << text;
    EXPECT_FALSE(error.empty()) << text;
  }
}

// A listening socket on a kernel-picked loopback port, without FD_CLOEXEC as inherited.
int listening_socket(uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::listen(fd, 16), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port = ntohs(addr.sin_port);
  return fd;
}

bool is_open(int fd) {
  return ::fcntl(fd, F_GETFD) >= 0;
}

class InheritedSocketsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    ::unsetenv(kInheritedFdsVariable);
    ::unsetenv(kUpgradeReadyFdVariable);
  }
};

TEST_F(InheritedSocketsTest, NoVariableIsANormalStart) {
  InheritedSockets inherited;
  std::string error;
  ASSERT_TRUE(inherited.load_from_environment(error)) << error;
  EXPECT_TRUE(inherited.empty());
  EXPECT_FALSE(inherited.upgrading());
  EXPECT_TRUE(inherited.take(Role::Listen, "127.0.0.1:0").empty());
}

TEST_F(InheritedSocketsTest, TakesByRoleAndAddressAndClosesTheRest) {
  uint16_t p1, p2, p3;
  int a = listening_socket(p1), b = listening_socket(p2), c = listening_socket(p3);
  std::string text = "listen:127.0.0.1:0=" + std::to_string(a) + "," + std::to_string(b) +
                     ";admin:127.0.0.1:0=" + std::to_string(c);
  ::setenv(kInheritedFdsVariable, text.c_str(), 1);
  InheritedSockets inherited;
  std::string error;
  ASSERT_TRUE(inherited.load_from_environment(error)) << error;
  EXPECT_EQ(std::getenv(kInheritedFdsVariable), nullptr) << "read once";
  EXPECT_EQ(::fcntl(a, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  EXPECT_TRUE(inherited.take(Role::Listen, "127.0.0.1:8080").empty());
  EXPECT_EQ(inherited.take(Role::Listen, "127.0.0.1:0"), (std::vector<int>{a, b}));
  EXPECT_TRUE(inherited.take(Role::Listen, "127.0.0.1:0").empty()) << "taken once";
  EXPECT_EQ(inherited.taken(), 2u);
  EXPECT_EQ(inherited.close_unclaimed(), 1u);
  EXPECT_FALSE(is_open(c));
  EXPECT_TRUE(is_open(a));
  ::close(a);
  ::close(b);
}

TEST_F(InheritedSocketsTest, RefusesADescriptorThatIsNotAListeningSocket) {
  uint16_t port;
  int good = listening_socket(port);
  int pipes[2];
  ASSERT_EQ(::pipe(pipes), 0);
  std::string text = "listen:127.0.0.1:0=" + std::to_string(good) + "," + std::to_string(pipes[0]);
  ::setenv(kInheritedFdsVariable, text.c_str(), 1);
  InheritedSockets inherited;
  std::string error;
  EXPECT_FALSE(inherited.load_from_environment(error));
  EXPECT_NE(error.find("is not a listening TCP socket"), std::string::npos) << error;
  EXPECT_FALSE(is_open(good)) << "nothing inherited is kept after a refusal";
  ::close(pipes[1]);
}

TEST_F(InheritedSocketsTest, AnnouncesReadinessOnceOnItsPipe) {
  int pipes[2];
  ASSERT_EQ(::pipe(pipes), 0);
  ::setenv(kUpgradeReadyFdVariable, std::to_string(pipes[1]).c_str(), 1);
  InheritedSockets inherited;
  std::string error;
  ASSERT_TRUE(inherited.load_from_environment(error)) << error;
  EXPECT_TRUE(inherited.upgrading());
  ASSERT_TRUE(inherited.announce_ready(error)) << error;
  EXPECT_FALSE(inherited.upgrading());
  char buffer[16];
  ssize_t n = ::read(pipes[0], buffer, sizeof buffer);
  EXPECT_EQ(std::string(buffer, static_cast<size_t>(std::max<ssize_t>(n, 0))), "READY\n");
  EXPECT_EQ(::read(pipes[0], buffer, sizeof buffer), 0) << "the write end is closed";
  ::close(pipes[0]);
}

TEST(AdoptListenSockets, KeepsEveryInheritedSocketAndTopsUpToTheWorkerCount) {
  uint16_t port;
  int fd = listening_socket(port);
  std::vector<ListenSocket> out;
  std::string error;
  ASSERT_TRUE(adopt_listen_sockets("127.0.0.1:0", {fd}, 3, out, error)) << error;
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].fd, fd);
  for (const ListenSocket& s : out) {
    EXPECT_EQ(s.port, port) << "every socket on the inherited port";
    EXPECT_EQ(s.url, "http://127.0.0.1:" + std::to_string(port));
    EXPECT_EQ(s.address, "127.0.0.1:0");
  }
  for (const ListenSocket& s : out) ::close(s.fd);
}

TEST(AdoptListenSockets, RefusesASocketOnAnotherPort) {
  uint16_t port;
  int fd = listening_socket(port);
  std::vector<ListenSocket> out;
  std::string error;
  uint16_t other = port == 65535 ? 1 : port + 1;
  EXPECT_FALSE(adopt_listen_sockets("127.0.0.1:" + std::to_string(other), {fd}, 1, out, error));
  EXPECT_TRUE(out.empty());
  ::close(fd);
}

}  // namespace
}  // namespace harrow

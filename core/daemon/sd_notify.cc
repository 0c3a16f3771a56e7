#include "core/daemon/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace harrow {

bool notify_send(const std::string& socket_path, const std::string& state, std::string& error) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || (socket_path[0] != '/' && socket_path[0] != '@') ||
      socket_path.size() >= sizeof addr.sun_path) {
    error = "NOTIFY_SOCKET '" + socket_path + "' is not an absolute path or an @abstract name";
    return false;
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  // An abstract name starts with a NUL byte and is not NUL-terminated: its length is the
  // address length.
  if (socket_path[0] == '@') addr.sun_path[0] = '\0';
  socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path.size());
  if (socket_path[0] == '/') ++length;  // include the terminating NUL of a path

  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("cannot create a notify socket: ") + std::strerror(errno);
    return false;
  }
  ssize_t sent;
  do {
    sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                    reinterpret_cast<const sockaddr*>(&addr), length);
  } while (sent < 0 && errno == EINTR);
  int saved = errno;
  ::close(fd);
  if (sent < 0) {
    error = "cannot notify " + socket_path + ": " + std::strerror(saved);
    return false;
  }
  if (static_cast<size_t>(sent) != state.size()) {
    error = "short notify datagram to " + socket_path;
    return false;
  }
  return true;
}

bool service_notify(const std::string& state, std::string& error) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || *path == '\0') return true;
  return notify_send(path, state, error);
}

std::string reloading_state() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  unsigned long long usec = static_cast<unsigned long long>(now.tv_sec) * 1000000ULL +
                            static_cast<unsigned long long>(now.tv_nsec) / 1000ULL;
  return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec);
}

}  // namespace harrow

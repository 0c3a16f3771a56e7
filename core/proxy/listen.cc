#include "core/proxy/listen.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace harrow {

namespace {

int open_one(sockaddr_storage& addr, std::string& error, const std::string& address) {
  int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = "cannot create a socket for " + address + ": " + std::strerror(errno);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (addr.ss_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  // Accepted connections inherit TCP_NODELAY from the listener (Linux copies it into the
  // child socket), which saves a setsockopt per connection: a tenth of the system calls of a
  // one-request connection.
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  socklen_t len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 4096) != 0) {
    error = "cannot listen on " + address + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  // Learn the port the kernel picked for port 0, so the other workers bind the same one.
  len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return fd;
}

uint16_t port_of(const sockaddr_storage& addr) {
  return ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port
                                          : reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
}

}  // namespace

bool adopt_listen_sockets(const std::string& address, const std::vector<int>& fds, int count,
                          std::vector<ListenSocket>& out, std::string& error) {
  if (fds.empty()) return open_listen_sockets(address, count, out, error);
  sockaddr_storage wanted;
  if (!parse_socket_address(address, wanted, error)) return false;
  std::vector<ListenSocket> made;
  sockaddr_storage addr{};
  for (int fd : fds) {
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
        addr.ss_family != wanted.ss_family ||
        (port_of(wanted) != 0 && port_of(wanted) != port_of(addr))) {
      error = "an inherited socket for " + address + " is bound elsewhere";
      return false;
    }
    made.push_back(ListenSocket{fd, socket_url(addr, "http"), address, port_of(addr)});
  }
  size_t opened_from = made.size();
  for (int i = static_cast<int>(made.size()); i < count; ++i) {
    int fd = open_one(addr, error, address);
    if (fd < 0) {
      for (size_t k = opened_from; k < made.size(); ++k) ::close(made[k].fd);
      return false;
    }
    made.push_back(ListenSocket{fd, socket_url(addr, "http"), address, port_of(addr)});
  }
  out.insert(out.end(), made.begin(), made.end());
  return true;
}

bool open_listen_sockets(const std::string& address, int count, std::vector<ListenSocket>& out,
                         std::string& error) {
  sockaddr_storage addr;
  if (!parse_socket_address(address, addr, error)) return false;
  std::vector<ListenSocket> made;
  for (int i = 0; i < count; ++i) {
    int fd = open_one(addr, error, address);
    if (fd < 0) {
      for (ListenSocket& s : made) ::close(s.fd);
      return false;
    }
    uint16_t port =
        ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                         : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    made.push_back(ListenSocket{fd, socket_url(addr, "http"), address, port});
  }
  out.insert(out.end(), made.begin(), made.end());
  return true;
}

}  // namespace harrow

#include "core/listen.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace harrow {

bool parse_socket_address(const std::string& text, sockaddr_storage& out, std::string& error) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) {
    error = "'" + text + "' is not HOST:PORT";
    return false;
  }
  std::string host = text.substr(0, colon);
  std::string_view port_text(text.data() + colon + 1, text.size() - colon - 1);
  unsigned port = 0;
  auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || p != port_text.data() + port_text.size() || port > 65535) {
    error = "'" + text + "' has an invalid port";
    return false;
  }
  std::memset(&out, 0, sizeof out);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    std::string v6 = host.substr(1, host.size() - 2);
    if (uv_ip6_addr(v6.c_str(), static_cast<int>(port), reinterpret_cast<sockaddr_in6*>(&out)) !=
        0) {
      error = "'" + text + "' has an invalid IPv6 address";
      return false;
    }
    return true;
  }
  if (host == "*" || host.empty()) host = "0.0.0.0";
  if (host == "localhost") host = "127.0.0.1";
  if (uv_ip4_addr(host.c_str(), static_cast<int>(port), reinterpret_cast<sockaddr_in*>(&out)) !=
      0) {
    error = "'" + text + "' is not an IP address and port (host names are not accepted here)";
    return false;
  }
  return true;
}

std::string socket_url(const sockaddr_storage& addr, const char* scheme) {
  char ip[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    uv_ip6_name(a, ip, sizeof ip);
    return std::string(scheme) + "://[" + ip + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
  uv_ip4_name(a, ip, sizeof ip);
  return std::string(scheme) + "://" + ip + ":" + std::to_string(ntohs(a->sin_port));
}

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

}  // namespace

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

#include "core/base/socket_address.h"

#include <arpa/inet.h>
#include <uv.h>

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

bool is_loopback_address(const std::string& address) {
  sockaddr_storage addr;
  std::string error;
  if (!parse_socket_address(address, addr, error)) return false;
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
  }
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    return IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) ||
           (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127);
  }
  return false;
}

}  // namespace harrow

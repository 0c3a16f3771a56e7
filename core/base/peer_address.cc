#include "core/base/peer_address.h"

#include <netinet/in.h>
#include <uv.h>

#include <cstring>

#include "core/base/ip_text.h"

namespace harrow {

PeerAddress PeerAddress::from(const sockaddr* address) {
  PeerAddress p;
  if (address->sa_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(address);
    std::memcpy(p.bytes, &a->sin6_addr, 16);
    p.port = ntohs(a->sin6_port);
    p.v6 = true;
    p.known = true;
  } else if (address->sa_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(address);
    std::memcpy(p.bytes, &a->sin_addr, 4);
    p.port = ntohs(a->sin_port);
    p.known = true;
  }
  return p;
}

const char* PeerAddress::format_ip(char* out, size_t size) const {
  if (size == 0) return out;
  out[0] = '\0';
  if (!known) return out;
  if (!v6 && size > kIpv4TextMax) {
    *write_ipv4(out, bytes) = '\0';  // every request formats it: no printf
  } else if (uv_inet_ntop(v6 ? AF_INET6 : AF_INET, bytes, out, size) != 0) {
    out[0] = '\0';
  }
  return out;
}

const char* PeerAddress::format_ip_port(char* out, size_t size) const {
  if (size == 0) return out;
  out[0] = '\0';
  if (!known || size < kIpPortText) return out;
  char* p = out;
  if (v6) *p++ = '[';
  format_ip(p, kIpText);
  p += std::strlen(p);
  if (v6) *p++ = ']';
  *p++ = ':';
  *write_port(p, port) = '\0';
  return out;
}

}  // namespace harrow

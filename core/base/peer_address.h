// A connection's peer address in binary form (20 bytes rather than the text's 150): an idle
// connection keeps this, and the text is written only when a request needs it (rules'
// REMOTE_ADDR, X-Forwarded-For, the access log, per-client limits, log lines).
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

namespace harrow {

struct PeerAddress {
  // Room for any address as text, with a NUL ("ffff:…:255.255.255.255" is 45 characters).
  static constexpr size_t kIpText = 46;
  // Room for "[ip]:port" with a NUL.
  static constexpr size_t kIpPortText = kIpText + 8;

  uint8_t bytes[16] = {};  // IPv4 in the first 4
  uint16_t port = 0;       // host byte order
  bool known = false;      // false: the address could not be read (text is empty)
  bool v6 = false;

  // From an AF_INET or AF_INET6 socket address; any other family leaves it unknown.
  static PeerAddress from(const sockaddr* address);
  // "192.0.2.1" or "2001:db8::1" (as libuv writes them), or "" when unknown. Returns `out`.
  const char* format_ip(char* out, size_t size) const;
  // "192.0.2.1:5000" or "[2001:db8::1]:5000", or "" when unknown (or `size` is below
  // kIpPortText). Returns `out`.
  const char* format_ip_port(char* out, size_t size) const;
};

}  // namespace harrow

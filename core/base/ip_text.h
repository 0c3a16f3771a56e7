// Addresses as text without printf: a client's address is written for every request (rules'
// REMOTE_ADDR, X-Forwarded-For, the access log), and snprintf cost more than the rest of
// accepting a connection.
#pragma once

#include <cstddef>
#include <cstdint>

namespace harrow {

// Room for any IPv4 address as text, without a NUL ("255.255.255.255").
inline constexpr size_t kIpv4TextMax = 15;

// Writes `a.b.c.d` for the four bytes at `ip` (network order) to `out`, which has room for
// kIpv4TextMax bytes; returns the end of what was written (no NUL).
char* write_ipv4(char* out, const uint8_t* ip);

// Writes the decimal digits of `n` to `out` (room for 5 bytes); returns the end (no NUL).
char* write_port(char* out, uint16_t n);

}  // namespace harrow

// Socket addresses as configuration writes them: "HOST:PORT", "[V6]:PORT" or "*:PORT". Used
// by listeners, the admin listener and the privilege policy alike.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

namespace harrow {

// "HOST:PORT", "[V6]:PORT" or "*:PORT" (all IPv4 addresses) → socket address.
bool parse_socket_address(const std::string& text, sockaddr_storage& out, std::string& error);

// "http://127.0.0.1:8080" / "http://[::1]:8080".
std::string socket_url(const sockaddr_storage& addr, const char* scheme);

// True when HOST:PORT names a loopback address (127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104).
bool is_loopback_address(const std::string& address);

}  // namespace harrow

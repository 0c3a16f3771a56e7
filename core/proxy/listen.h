// Listening sockets, made on the main thread before any worker starts: one per worker per
// address, all bound to the same port with SO_REUSEPORT so the kernel spreads connections
// across workers. Port 0 is resolved by the first bind and reused by the rest.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include "core/base/socket_address.h"
#include "core/proxy/worker.h"

namespace harrow {

// Creates `count` bound, listening sockets for `address`. On failure returns false with a
// message naming the address and the system error, and leaves nothing open.
bool open_listen_sockets(const std::string& address, int count, std::vector<ListenSocket>& out,
                         std::string& error);

}  // namespace harrow

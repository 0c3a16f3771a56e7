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

// The listening sockets for `address` from descriptors a binary upgrade handed over (see
// core/daemon/upgrade.h): the same sockets and accept queues, nothing bound anew. With fewer
// than `count`, more are bound to the same port (they join the SO_REUSEPORT group); with
// more, all are kept, since closing one would reset the connections queued on it. On failure
// returns false with a message; the descriptors stay the caller's.
bool adopt_listen_sockets(const std::string& address, const std::vector<int>& fds, int count,
                          std::vector<ListenSocket>& out, std::string& error);

}  // namespace harrow

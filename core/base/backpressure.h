// When a connection stops reading because the other side is not keeping up: the one rule for
// request bodies, response bodies and WebSocket tunnels alike.
#pragma once

#include <cstddef>

namespace harrow {

// Stop reading a side when the memory the other side's unsent writes hold (OutBatch::memory():
// write requests and the blocks they point into, not bytes) passes the high mark; start again
// below the low mark. Bounds memory per exchange (or tunnel) whatever the traffic and however
// it is cut. A client whose response is queued above the low mark is not read on either (the
// next pipelined request waits).
inline constexpr size_t kWriteHighWater = 1024 * 1024;
inline constexpr size_t kWriteLowWater = 256 * 1024;

}  // namespace harrow

// When a connection stops reading because the other side is not keeping up: the one rule for
// request bodies, response bodies and WebSocket tunnels alike.
#pragma once

#include <cstddef>

namespace harrow {

// Stop reading a side when the other side's unsent bytes pass the high mark; start again
// below the low mark. Bounds memory per exchange (or tunnel) whatever the traffic.
inline constexpr size_t kWriteHighWater = 1024 * 1024;
inline constexpr size_t kWriteLowWater = 256 * 1024;

}  // namespace harrow

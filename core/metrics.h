// Counters a worker keeps about its own traffic. Each counter has exactly one writer (the
// worker that owns it), so increments are plain relaxed load+store, never a locked
// instruction; the admin thread reads them with relaxed loads and sums across workers.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "core/failure.h"

namespace harrow {

class Counter {
 public:
  void add(uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

struct ServerMetrics {
  // Adds another set of counts (carrying a server's counters into a reloaded snapshot).
  void add_from(const ServerMetrics& other);

  Counter responses_by_class[6];  // index status/100 (0 = no response sent)
  Counter failures[kFailureCount];
  Counter in_flight;
  Counter bytes_to_server;
  Counter bytes_from_server;
  Counter connections_opened;
  Counter connections_reused;
  Counter idle_connections;
  Counter retries;
  // Failed exchanges and responses matching the farm's liveTrafficFailureCodes; the farm's
  // prober folds these into the server's health.
  Counter live_failures;
};

// Per-server counters live in the config snapshot (see snapshot.h), one row per worker; these
// are the worker's own.
struct WorkerMetrics {
  Counter connections_accepted;
  Counter connections_active;
  Counter connections_rejected;
  Counter requests;
  Counter failures[kFailureCount];  // every failure, including those with no farm or server
};

inline void ServerMetrics::add_from(const ServerMetrics& o) {
  for (int i = 0; i < 6; ++i) responses_by_class[i].add(o.responses_by_class[i].get());
  for (int i = 0; i < kFailureCount; ++i) failures[i].add(o.failures[i].get());
  bytes_to_server.add(o.bytes_to_server.get());
  bytes_from_server.add(o.bytes_from_server.get());
  connections_opened.add(o.connections_opened.get());
  connections_reused.add(o.connections_reused.get());
  retries.add(o.retries.get());
  live_failures.add(o.live_failures.get());
  // in_flight and idle_connections are gauges of the old snapshot's own connections.
}

}  // namespace harrow

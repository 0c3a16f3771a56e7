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
  void add(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void sub(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

struct ServerMetrics {
  Counter responses_by_class[6];  // index status/100 (0 = no response sent)
  Counter failures[kFailureCount];
  Counter in_flight;
  Counter bytes_to_server;
  Counter bytes_from_server;
  Counter connections_opened;
  Counter connections_reused;
  Counter idle_connections;
  Counter retries;
};

struct WorkerMetrics {
  explicit WorkerMetrics(const std::vector<size_t>& servers_per_farm) {
    farms.reserve(servers_per_farm.size());
    for (size_t n : servers_per_farm) farms.emplace_back(n);
  }
  // Per farm, per server; indices as in the config snapshot.
  std::vector<std::vector<ServerMetrics>> farms;
  Counter connections_accepted;
  Counter connections_active;
  Counter connections_rejected;
  Counter requests;
  Counter failures[kFailureCount];  // every failure, including those with no farm or server
};

}  // namespace harrow

// Per-farm server state that every worker reads on every pick: one cache-line slot per server
// holding one atomic word. The farm's single writer (its prober, or the admin API acting
// through it) publishes with release stores; workers read with acquire loads, no locks.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace harrow::health {

// ARR's runtime availability (Active / Draining / Inactive).
enum class Availability : uint8_t { Available = 0, Draining = 1, Unavailable = 2 };

struct ServerState {
  bool healthy = true;
  Availability availability = Availability::Available;
  uint32_t generation = 0;  // bumped on every change, so readers can tell a flap happened

  bool takes_new_requests() const { return healthy && availability == Availability::Available; }
  bool operator==(const ServerState&) const = default;
};

class HealthTable {
 public:
  explicit HealthTable(size_t servers);

  size_t size() const { return size_; }
  ServerState load(size_t server) const;
  // Single writer per table; generation is bumped here.
  void store(size_t server, bool healthy, Availability availability);

 private:
  static uint64_t pack(const ServerState& s);
  static ServerState unpack(uint64_t word);

  struct alignas(64) Slot {
    std::atomic<uint64_t> word{0};
  };
  size_t size_;
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace harrow::health

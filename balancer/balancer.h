// The balancer interface: given which servers may take new requests, pick one. Built once per
// config snapshot per farm per worker (so picking takes no lock); knows nothing of I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace harrow::balancer {

// Which servers may take a new request right now (enabled, healthy, not draining).
class Availability {
 public:
  virtual ~Availability() = default;
  virtual bool available(size_t server) const = 0;
};

// Every server available: for tests and for farms without health state.
class AllAvailable final : public Availability {
 public:
  bool available(size_t) const override { return true; }
};

struct PickContext {
  const Availability& availability;
};

enum class Outcome { Success, Failure };

class Balancer {
 public:
  virtual ~Balancer() = default;
  // Index of the chosen server, or nullopt when no server is available.
  virtual std::optional<size_t> pick(const PickContext& ctx) = 0;
  // Feedback for algorithms that use it; the default ignores it.
  virtual void on_start(size_t /*server*/) {}
  virtual void on_finish(size_t /*server*/, Outcome /*outcome*/) {}
};

// Weights are ARR's server weights (1..2^32-1), one per server, in configuration order.
std::unique_ptr<Balancer> make_weighted_round_robin(const std::vector<uint32_t>& weights);

}  // namespace harrow::balancer

// The balancer interface: given which servers may take new requests, pick one. Built once per
// config snapshot per farm per worker (so picking takes no lock); knows nothing of I/O, of
// libuv or of the configuration format.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "balancer/algorithm.h"

namespace harrow::balancer {

// Which servers may take a new request right now (enabled, healthy, not draining, weight > 0).
class AvailableServers {
 public:
  virtual ~AvailableServers() = default;
  virtual bool available(size_t server) const = 0;
  // Changes whenever available(i) may have changed for any i, so a balancer can cache the
  // available set and rebuild it only then (a pick must not scan 1,000 servers). Equal
  // versions promise an unchanged set.
  virtual uint64_t version() const = 0;
};

// Every server available: for tests and for farms without health state.
class AllAvailable final : public AvailableServers {
 public:
  bool available(size_t) const override { return true; }
  uint64_t version() const override { return 0; }
};

// A small, fast, seedable random source (splitmix64); tests seed it to replay a sequence.
class Random {
 public:
  explicit Random(uint64_t seed = 0x9E3779B97F4A7C15ull) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound); bound > 0.
  uint64_t below(uint64_t bound) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * bound) >> 64);
  }

 private:
  uint64_t state_;
};

// 64-bit hash of a request's hash key (RequestHash); stable across processes and versions,
// so every worker and every restart maps a key to the same server.
uint64_t hash_key(std::string_view key);

struct PickContext {
  const AvailableServers& availability;
  Random& random;
  uint64_t now_ns = 0;  // monotonic time, injected (decaying averages need it)
  // RequestHash: the hash of the request's key (see hash_key). Ignored by other algorithms.
  uint64_t hash = 0;
  // Servers this request already failed on (failover): never returned, even if available.
  std::span<const size_t> exclude = {};
};

enum class Outcome { Success, Failure };

// What an exchange that on_start() announced turned out to cost.
struct Finish {
  Outcome outcome = Outcome::Success;
  uint64_t latency_ns = 0;  // request start to response end (or to the failure)
  uint64_t bytes = 0;       // request + response bytes carried
  uint64_t now_ns = 0;
};

class Balancer {
 public:
  virtual ~Balancer() = default;
  // Index of the chosen server, or nullopt when no server is available (the request gets 503
  // `no_server`). Never returns a server that is unavailable or in ctx.exclude.
  virtual std::optional<size_t> pick(const PickContext& ctx) = 0;
  // Every request sent to a server (picked here or by affinity) is announced with on_start
  // and ends with exactly one on_finish, on success, failure, failover or client abort.
  virtual void on_start(size_t /*server*/) {}
  virtual void on_finish(size_t /*server*/, const Finish& /*finish*/) {}
};

struct ServerSpec {
  std::string identity;   // stable across reloads (address:port): consistent hashing keys on it
  uint32_t weight = 100;  // ARR's weight, 1..2^32-1 (0 = never picked)
};

struct BalancedFarm {
  Algorithm algorithm = Algorithm::WeightedRoundRobin;
  std::vector<ServerSpec> servers;  // configuration order; pick() returns indexes into it
  bool randomize_ties = false;      // ARR's randomizeLBTies
  uint64_t response_time_period_ns = 5'000'000'000;  // ARR's leastResponseTimePeriod
  // RequestHash with bounded loads: no server above factor × the average in-flight load
  // (e.g. 1.25). 0 = plain consistent hashing.
  double hash_balance_factor = 0;
};

std::unique_ptr<Balancer> make_balancer(const BalancedFarm& spec);

// Weights are ARR's server weights (1..2^32-1), one per server, in configuration order.
std::unique_ptr<Balancer> make_weighted_round_robin(const std::vector<uint32_t>& weights);

}  // namespace harrow::balancer

// The set of servers a pick may choose from, cached between picks: rebuilt only when the
// AvailableServers's version moves, so a pick never scans every server through virtual calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "balancer/balancer.h"

namespace harrow::balancer {

class AvailableSet {
 public:
  // weights: one per server in configuration order; weight 0 is never available.
  explicit AvailableSet(std::vector<uint64_t> weights);

  // Re-reads the availability if its version changed (or on first use). Returns true when the
  // set is new or different, so the caller can rebuild what it derives from the set; a version
  // bump that leaves the set as it was (another farm's server, a draining flag on a server
  // that was down anyway) returns false, and a round robin keeps its place in the cycle.
  bool refresh(const AvailableServers& availability) {
    uint64_t version = availability.version();
    if (valid_ && version == version_) return false;
    bool changed = rebuild(availability) || !valid_;
    version_ = version;
    valid_ = true;
    return changed;
  }

  // Available servers with weight > 0, in configuration order.
  std::span<const uint32_t> servers() const { return servers_; }
  size_t size() const { return servers_.size(); }
  bool empty() const { return servers_.empty(); }
  bool contains(size_t server) const { return server < member_.size() && member_[server] != 0; }
  uint64_t weight(size_t server) const { return weights_[server]; }
  uint64_t total_weight() const { return total_weight_; }
  size_t server_count() const { return weights_.size(); }
  // True when every available server has the same weight.
  bool equal_weights() const { return equal_weights_; }

  // Available servers not in `exclude` (counted once each, however often they are listed).
  size_t count_candidates(std::span<const size_t> exclude) const;

 private:
  // Returns whether any server's membership changed.
  bool rebuild(const AvailableServers& availability);

  std::vector<uint64_t> weights_;
  std::vector<uint32_t> servers_;
  std::vector<uint8_t> member_;
  uint64_t total_weight_ = 0;
  uint64_t version_ = 0;
  bool valid_ = false;
  bool equal_weights_ = true;
};

// The servers' weights from a farm specification, in configuration order.
inline std::vector<uint64_t> weights_of(const BalancedFarm& spec) {
  std::vector<uint64_t> weights;
  weights.reserve(spec.servers.size());
  for (const ServerSpec& s : spec.servers) weights.push_back(s.weight);
  return weights;
}

// Whether `server` is listed in a failover exclusion list (short: a linear scan).
inline bool is_excluded(size_t server, std::span<const size_t> exclude) {
  for (size_t x : exclude) {
    if (x == server) return true;
  }
  return false;
}

}  // namespace harrow::balancer

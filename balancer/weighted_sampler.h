// Draws an available server with probability proportional to its weight in O(1): Walker's alias
// method (Vose's construction) in exact integer arithmetic. Used by the power-of-two-choices
// algorithms for farms too large to scan on every pick.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "balancer/available_set.h"
#include "balancer/balancer.h"

namespace harrow::balancer {

class WeightedSampler {
 public:
  // Rebuilds the table for the current set; O(n). Call after AvailableSet::refresh rebuilt it.
  void rebuild(const AvailableSet& set);

  // A server of the set (which must not be empty), with probability weight / total weight.
  uint32_t sample(Random& random) const {
    uint64_t bucket = random.below(servers_.size());
    if (uniform_) return servers_[bucket];
    return random.below(capacity_) < threshold_[bucket] ? servers_[bucket] : alias_[bucket];
  }

 private:
  std::vector<uint32_t> servers_;
  std::vector<uint64_t> threshold_;  // bucket keeps its own server below this, out of capacity_
  std::vector<uint32_t> alias_;
  uint64_t capacity_ = 1;  // total weight: every bucket holds this much, w_i·n summed
  bool uniform_ = true;
};

}  // namespace harrow::balancer

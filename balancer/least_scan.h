// The "least loaded" choice shared by the feedback algorithms (LeastRequests,
// LeastResponseTime, WeightedTotalTraffic): an exact scan over small farms, power of two
// choices over large ones.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "balancer/available_set.h"
#include "balancer/balancer.h"
#include "balancer/weighted_sampler.h"

namespace harrow::balancer {

// Ties between equally loaded servers: with randomize (ARR's randomizeLBTies) a uniformly
// random one of them; without, configuration order *starting after the previous pick*
// (`cursor`), i.e. round robin among the tied servers. Plain configuration order (ARR's
// literal behaviour) would send every request that finds the farm idle to the first server.
struct TieBreak {
  bool randomize = false;
  size_t cursor = 0;
};

// The available, non-excluded server with the lowest cost, scanning every one. cost(s) returns
// a value ordered by operator< (lower = less loaded), computed once per server.
template <class CostOf>
std::optional<size_t> least_by_scan(const AvailableSet& set, std::span<const size_t> exclude,
                                    TieBreak& ties, Random& random, CostOf cost_of) {
  std::span<const uint32_t> servers = set.servers();
  size_t n = servers.size();
  if (n == 0) return std::nullopt;
  size_t start = ties.cursor < n ? ties.cursor : 0;
  if (exclude.empty() && !ties.randomize) {
    // The common case, without data-dependent branches (loads are often tied, so a branch on
    // "better" would be mispredicted): conditional moves only.
    size_t best_at = start;
    auto best_cost = cost_of(servers[start]);
    for (size_t j = 1, at = start + 1; j < n; ++j, ++at) {
      if (at == n) at = 0;
      auto cost = cost_of(servers[at]);
      bool better = cost < best_cost;
      best_cost = better ? cost : best_cost;
      best_at = better ? at : best_at;
    }
    ties.cursor = best_at + 1;
    return servers[best_at];
  }
  std::optional<size_t> best_at;
  decltype(cost_of(size_t{0})) best_cost{};
  uint64_t tied = 0;
  for (size_t j = 0, at = start; j < n; ++j, at = (at + 1 == n ? 0 : at + 1)) {
    uint32_t s = servers[at];
    if (!exclude.empty() && is_excluded(s, exclude)) continue;
    auto cost = cost_of(s);
    if (!best_at || cost < best_cost) {
      best_at = at;
      best_cost = cost;
      tied = 1;
    } else if (ties.randomize && !(best_cost < cost) && random.below(++tied) == 0) {
      best_at = at;  // reservoir sampling: each tied server kept with probability 1/tied
    }
  }
  if (!best_at) return std::nullopt;
  ties.cursor = *best_at + 1;
  return servers[*best_at];
}

// Power of two choices (Mitzenmacher): two servers drawn by weight, the less loaded one wins
// (the first drawn on a tie, itself random). Needs a non-empty set and no exclusions.
template <class CostOf>
size_t least_of_two(const WeightedSampler& sampler, Random& random, CostOf cost_of) {
  uint32_t a = sampler.sample(random);
  uint32_t b = sampler.sample(random);
  if (b == a) b = sampler.sample(random);  // one redraw: a lone heavy server may repeat
  return cost_of(b) < cost_of(a) ? b : a;
}

// Exact scan for farms of at most `scan_limit` available servers and for failover (exclusions
// are rare), two choices otherwise.
template <class CostOf>
std::optional<size_t> least_loaded(const AvailableSet& set, const WeightedSampler& sampler,
                                   const PickContext& ctx, TieBreak& ties, size_t scan_limit,
                                   CostOf cost_of) {
  if (set.empty()) return std::nullopt;
  if (set.size() <= scan_limit || !ctx.exclude.empty()) {
    return least_by_scan(set, ctx.exclude, ties, ctx.random, cost_of);
  }
  return least_of_two(sampler, ctx.random, cost_of);
}

}  // namespace harrow::balancer

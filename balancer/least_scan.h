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

// Farms with at most this many available servers are scanned exactly on every pick.
inline constexpr size_t kExactScanLimit = 16;

// Ties between equally loaded servers: with randomize (ARR's randomizeLBTies) a uniformly
// random one of them; without, configuration order *starting after the previous pick*
// (`cursor`), i.e. round robin among the tied servers. Plain configuration order (ARR's
// literal behaviour) would send every request that finds the farm idle to the first server.
struct TieBreak {
  bool randomize = false;
  size_t cursor = 0;
};

// The available, non-excluded server with the lowest cost, scanning every one.
// compare(a, b) < 0 when server a is less loaded than server b, 0 when tied.
template <class Compare>
std::optional<size_t> least_by_scan(const AvailableSet& set, std::span<const size_t> exclude,
                                    TieBreak& ties, Random& random, Compare compare) {
  std::span<const uint32_t> servers = set.servers();
  size_t n = servers.size();
  if (n == 0) return std::nullopt;
  size_t start = ties.cursor < n ? ties.cursor : 0;
  std::optional<size_t> best_at;
  uint64_t tied = 0;
  for (size_t j = 0, at = start; j < n; ++j, at = (at + 1 == n ? 0 : at + 1)) {
    uint32_t s = servers[at];
    if (!exclude.empty() && is_excluded(s, exclude)) continue;
    if (!best_at) {
      best_at = at;
      tied = 1;
      continue;
    }
    int c = compare(s, servers[*best_at]);
    if (c < 0) {
      best_at = at;
      tied = 1;
    } else if (c == 0 && ties.randomize && random.below(++tied) == 0) {
      best_at = at;  // reservoir sampling: each tied server kept with probability 1/tied
    }
  }
  if (!best_at) return std::nullopt;
  ties.cursor = *best_at + 1;
  return servers[*best_at];
}

// Power of two choices (Mitzenmacher): two servers drawn by weight, the less loaded one wins
// (the first drawn on a tie, itself random). Needs a non-empty set and no exclusions.
template <class Compare>
size_t least_of_two(const WeightedSampler& sampler, Random& random, Compare compare) {
  uint32_t a = sampler.sample(random);
  uint32_t b = sampler.sample(random);
  if (b == a) b = sampler.sample(random);  // one redraw: a lone heavy server may repeat
  return compare(b, a) < 0 ? b : a;
}

// Exact scan for small farms and for failover (exclusions are rare), two choices otherwise.
template <class Compare>
std::optional<size_t> least_loaded(const AvailableSet& set, const WeightedSampler& sampler,
                                   const PickContext& ctx, TieBreak& ties, Compare compare) {
  if (set.empty()) return std::nullopt;
  if (set.size() <= kExactScanLimit || !ctx.exclude.empty()) {
    return least_by_scan(set, ctx.exclude, ties, ctx.random, compare);
  }
  return least_of_two(sampler, ctx.random, compare);
}

}  // namespace harrow::balancer

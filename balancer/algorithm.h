// ARR's load-balancing algorithms (<loadBalancing algorithm="…">). One enum for the
// configuration that names the algorithm and the balancer that runs it; this header has no
// dependencies so the configuration layer can include it without the balancers.
#pragma once

#include <string_view>

namespace harrow::balancer {

enum class Algorithm {
  WeightedRoundRobin,
  LeastRequests,
  LeastResponseTime,
  WeightedTotalTraffic,
  RequestHash
};

// The names the configuration spells, indexed by Algorithm.
inline constexpr std::string_view kAlgorithmNames[] = {"WeightedRoundRobin", "LeastRequests",
                                                       "LeastResponseTime", "WeightedTotalTraffic",
                                                       "RequestHash"};

constexpr std::string_view algorithm_name(Algorithm a) {
  return kAlgorithmNames[static_cast<int>(a)];
}

}  // namespace harrow::balancer

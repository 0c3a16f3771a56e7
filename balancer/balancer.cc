// make_balancer: one implementation per ARR algorithm.
#include "balancer/algorithms.h"

namespace harrow::balancer {

std::unique_ptr<Balancer> make_balancer(const BalancedFarm& spec) {
  switch (spec.algorithm) {
    case Algorithm::LeastRequests:
      return make_least_requests(spec);
    case Algorithm::LeastResponseTime:
      return make_least_response_time(spec);
    case Algorithm::WeightedTotalTraffic:
      return make_weighted_total_traffic(spec);
    case Algorithm::RequestHash:
      return make_request_hash(spec);
    case Algorithm::WeightedRoundRobin:
      break;
  }
  std::vector<uint32_t> weights;
  weights.reserve(spec.servers.size());
  for (const ServerSpec& s : spec.servers) weights.push_back(s.weight);
  return make_weighted_round_robin(weights);
}

}  // namespace harrow::balancer

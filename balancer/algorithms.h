// Constructors of the individual algorithms; make_balancer (balancer.cc) chooses among them.
#pragma once

#include <memory>

#include "balancer/balancer.h"

namespace harrow::balancer {

std::unique_ptr<Balancer> make_least_requests(const BalancedFarm& spec);
std::unique_ptr<Balancer> make_least_response_time(const BalancedFarm& spec);
std::unique_ptr<Balancer> make_weighted_total_traffic(const BalancedFarm& spec);
std::unique_ptr<Balancer> make_request_hash(const BalancedFarm& spec);

}  // namespace harrow::balancer

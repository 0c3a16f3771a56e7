#include "balancer/weighted_sampler.h"

namespace harrow::balancer {

void WeightedSampler::rebuild(const AvailableSet& set) {
  std::span<const uint32_t> servers = set.servers();
  servers_.assign(servers.begin(), servers.end());
  uniform_ = set.equal_weights();
  size_t n = servers_.size();
  threshold_.assign(n, 0);
  alias_.assign(servers_.begin(), servers_.end());
  if (uniform_ || n == 0) return;
  // Bucket i starts with w_i·n of the n·W units; each bucket must end with exactly W.
  // (w_i ≤ 2^32 and n ≤ 2^32 keep w_i·n in 64 bits; W is the sum of the weights.)
  capacity_ = set.total_weight();
  std::vector<uint64_t> amount(n);
  std::vector<uint32_t> small, large;
  for (size_t i = 0; i < n; ++i) {
    amount[i] = set.weight(servers_[i]) * n;
    (amount[i] < capacity_ ? small : large).push_back(static_cast<uint32_t>(i));
  }
  while (!small.empty() && !large.empty()) {
    uint32_t s = small.back(), l = large.back();
    small.pop_back();
    threshold_[s] = amount[s];
    alias_[s] = servers_[l];
    amount[l] -= capacity_ - amount[s];  // l tops s up to a full bucket
    if (amount[l] < capacity_) {
      large.pop_back();
      small.push_back(l);
    }
  }
  // Whatever is left holds exactly a full bucket (integer arithmetic: no rounding residue).
  for (uint32_t i : large) threshold_[i] = capacity_;
  for (uint32_t i : small) threshold_[i] = capacity_;
}

}  // namespace harrow::balancer

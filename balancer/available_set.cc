#include "balancer/available_set.h"

namespace harrow::balancer {

AvailableSet::AvailableSet(std::vector<uint64_t> weights)
    : weights_(std::move(weights)), member_(weights_.size(), 0) {}

bool AvailableSet::rebuild(const AvailableServers& availability) {
  bool changed = false;
  servers_.clear();
  total_weight_ = 0;
  equal_weights_ = true;
  for (size_t i = 0; i < weights_.size(); ++i) {
    bool up = weights_[i] > 0 && availability.available(i);
    changed = changed || member_[i] != (up ? 1 : 0);
    member_[i] = up ? 1 : 0;
    if (!up) continue;
    if (!servers_.empty() && weights_[i] != weights_[servers_.front()]) equal_weights_ = false;
    servers_.push_back(static_cast<uint32_t>(i));
    total_weight_ += weights_[i];
  }
  return changed;
}

size_t AvailableSet::count_candidates(std::span<const size_t> exclude) const {
  size_t removed = 0;
  for (size_t i = 0; i < exclude.size(); ++i) {
    if (!contains(exclude[i])) continue;
    bool seen_before = false;
    for (size_t j = 0; j < i; ++j) seen_before = seen_before || exclude[j] == exclude[i];
    if (!seen_before) ++removed;
  }
  return servers_.size() - removed;
}

}  // namespace harrow::balancer

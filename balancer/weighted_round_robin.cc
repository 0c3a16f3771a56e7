// Smooth weighted round robin (nginx's scheme): every pick adds each available server's
// weight to its running score, takes the highest, and charges it the total. Over a cycle of
// sum(weights) picks each server is chosen exactly `weight` times, interleaved rather than in
// runs (weights 5:1:1 give a a b a c a a, not a a a a a b c).
#include <cstdint>
#include <vector>

#include "balancer/balancer.h"

namespace harrow::balancer {
namespace {

class WeightedRoundRobin final : public Balancer {
 public:
  explicit WeightedRoundRobin(const std::vector<uint32_t>& weights)
      : weights_(weights.begin(), weights.end()), current_(weights.size(), 0) {}

  std::optional<size_t> pick(const PickContext& ctx) override {
    // Scores are 64-bit: weights go up to 2^32-1 and the charge is their sum.
    int64_t total = 0;
    std::optional<size_t> best;
    for (size_t i = 0; i < weights_.size(); ++i) {
      if (weights_[i] == 0 || !ctx.availability.available(i)) continue;
      current_[i] += weights_[i];
      total += weights_[i];
      if (!best || current_[i] > current_[*best]) best = i;
    }
    if (best) current_[*best] -= total;
    return best;
  }

 private:
  std::vector<int64_t> weights_;
  std::vector<int64_t> current_;
};

}  // namespace

std::unique_ptr<Balancer> make_weighted_round_robin(const std::vector<uint32_t>& weights) {
  return std::make_unique<WeightedRoundRobin>(weights);
}

}  // namespace harrow::balancer

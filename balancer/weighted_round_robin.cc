// Smooth weighted round robin with a proven bound. Each pick goes to the server that is
// furthest behind its share *and* whose next turn is due soonest — Tijdeman's "chairman
// assignment" (1980): among servers whose lag is at least s = 1/(2(k-1)), the one whose
// (c+1-s)/r deadline is earliest. For k available servers with shares r_i, after n picks every
// server has been picked n·r_i ± (1 - s) times, so:
//   - over a cycle of sum(weights) picks each server is picked exactly `weight` times, and
//   - no prefix of the cycle is off by a whole pick from its share (nginx's current/effective
//     weight scheme, the usual choice, can be: e.g. it lags by 1.06 for some 4-server farms).
// The arithmetic is exact (integers scaled by W = sum of weights, 128-bit products), and
// the state restarts whenever the set of available servers changes.
#include <cstdint>
#include <vector>

#include "balancer/balancer.h"

namespace harrow::balancer {
namespace {

using i128 = __int128;

class WeightedRoundRobin final : public Balancer {
 public:
  explicit WeightedRoundRobin(const std::vector<uint32_t>& weights)
      : weights_(weights.begin(), weights.end()),
        picks_(weights.size(), 0),
        active_(weights.size(), false) {}

  std::optional<size_t> pick(const PickContext& ctx) override {
    refresh(ctx);
    if (active_count_ == 0) return std::nullopt;
    if (active_count_ == 1) return only_;
    // Eligible: lag after this pick's share, (n+1)·w_i/W - c_i, is at least s = 1/(2(k-1)).
    // Deadline: (c_i + 1 - s)/r_i, compared as (2(k-1)(c_i+1) - 1) / w_i.
    const i128 two_k1 = 2 * static_cast<i128>(active_count_ - 1);
    std::optional<size_t> best;
    i128 best_num = 0, best_den = 1;
    for (size_t i = 0; i < weights_.size(); ++i) {
      if (!active_[i]) continue;
      i128 lag_scaled =
          static_cast<i128>(n_ + 1) * weights_[i] - static_cast<i128>(total_) * picks_[i];
      if (two_k1 * lag_scaled < static_cast<i128>(total_)) continue;
      i128 num = two_k1 * (picks_[i] + 1) - 1;
      i128 den = weights_[i];
      if (!best || num * best_den < best_num * den) {
        best = i;
        best_num = num;
        best_den = den;
      }
    }
    if (!best) best = most_behind();  // unreachable by the theorem; kept as a safe fallback
    ++picks_[*best];
    if (++n_ == total_) restart();  // a full cycle: every count is exact, start again at zero
    return best;
  }

 private:
  // Re-reads which servers may be picked; a change starts a fresh cycle over the new set.
  void refresh(const PickContext& ctx) {
    bool changed = false;
    for (size_t i = 0; i < weights_.size(); ++i) {
      bool up = weights_[i] > 0 && ctx.availability.available(i);
      for (size_t x : ctx.exclude) up = up && x != i;
      if (up != active_[i]) {
        active_[i] = up;
        changed = true;
      }
    }
    if (!changed) return;
    total_ = 0;
    active_count_ = 0;
    for (size_t i = 0; i < weights_.size(); ++i) {
      if (!active_[i]) continue;
      total_ += static_cast<uint64_t>(weights_[i]);
      ++active_count_;
      only_ = i;
    }
    restart();
  }

  void restart() {
    n_ = 0;
    for (uint64_t& p : picks_) p = 0;
  }

  size_t most_behind() const {
    size_t best = only_;
    i128 best_lag = 0;
    bool first = true;
    for (size_t i = 0; i < weights_.size(); ++i) {
      if (!active_[i]) continue;
      i128 lag = static_cast<i128>(n_ + 1) * weights_[i] - static_cast<i128>(total_) * picks_[i];
      if (first || lag > best_lag) {
        best = i;
        best_lag = lag;
        first = false;
      }
    }
    return best;
  }

  std::vector<uint64_t> weights_;
  std::vector<uint64_t> picks_;  // in the current cycle
  std::vector<bool> active_;
  uint64_t total_ = 0;  // sum of the active weights: the cycle length
  uint64_t n_ = 0;      // picks in the current cycle
  size_t active_count_ = 0;
  size_t only_ = 0;
};

}  // namespace

std::unique_ptr<Balancer> make_balancer(const FarmSpec& spec) {
  std::vector<uint32_t> weights;
  for (const ServerSpec& s : spec.servers) weights.push_back(s.weight);
  return make_weighted_round_robin(weights);
}

uint64_t hash_key(std::string_view key) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char c : key) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

std::unique_ptr<Balancer> make_weighted_round_robin(const std::vector<uint32_t>& weights) {
  return std::make_unique<WeightedRoundRobin>(weights);
}

}  // namespace harrow::balancer

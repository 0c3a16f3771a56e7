// LeastRequests: the server with the fewest requests in flight relative to its weight,
// in_flight_i / w_i, compared exactly by cross-multiplication. Farms of up to 16 available
// servers are scanned exactly; larger ones use power of two choices among servers drawn by
// weight (O(1), and close to the exact choice: Mitzenmacher's exponential improvement over
// one random choice). Ties: see TieBreak.
#include <vector>

#include "balancer/algorithms.h"
#include "balancer/least_scan.h"

namespace harrow::balancer {
namespace {

// Farms with at most this many available servers are scanned exactly on every pick.
constexpr size_t kExactScanLimit = 16;

// in_flight / weight, ordered exactly: 32-bit counts × 32-bit weights fit 64 bits.
struct Load {
  uint64_t in_flight = 0;
  uint64_t weight = 1;
  bool operator<(const Load& o) const { return in_flight * o.weight < o.in_flight * weight; }
};

class LeastRequests final : public Balancer {
 public:
  explicit LeastRequests(const BalancedFarm& spec)
      : set_(weights_of(spec)), in_flight_(spec.servers.size(), 0) {
    ties_.randomize = spec.randomize_ties;
  }

  std::optional<size_t> pick(const PickContext& ctx) override {
    if (set_.refresh(ctx.availability)) sampler_.rebuild(set_);
    if (set_.equal_weights()) {  // ARR's usual farm: compare the counts alone
      return least_loaded(set_, sampler_, ctx, ties_, kExactScanLimit,
                          [this](size_t s) { return in_flight_[s]; });
    }
    return least_loaded(set_, sampler_, ctx, ties_, kExactScanLimit, [this](size_t s) {
      return Load{in_flight_[s], set_.weight(s)};
    });
  }

  void on_start(size_t server) override {
    if (server < in_flight_.size()) ++in_flight_[server];
  }
  void on_finish(size_t server, const Finish&) override {
    if (server < in_flight_.size() && in_flight_[server] > 0) --in_flight_[server];
  }

 private:
  AvailableSet set_;
  WeightedSampler sampler_;
  TieBreak ties_;
  std::vector<uint32_t> in_flight_;
};

}  // namespace

std::unique_ptr<Balancer> make_least_requests(const BalancedFarm& spec) {
  return std::make_unique<LeastRequests>(spec);
}

}  // namespace harrow::balancer

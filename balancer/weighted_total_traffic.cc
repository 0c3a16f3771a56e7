// WeightedTotalTraffic: the server that has carried the fewest bytes (request + response, from
// Finish.bytes) relative to its weight gets the next request.
//
// - Requests in flight have no byte count yet; each is counted as the farm's running mean
//   request size (at least 1 byte), so a burst of concurrent requests spreads over the farm
//   instead of all landing on the server that was lowest before the burst.
// - History fades: every 64 finished requests per server (at least 1,024), every counter is
//   halved, so the balance follows recent traffic rather than the first hour of the process.
// - A server that becomes available starts level with the least loaded available server
//   (relative to weight) instead of at zero, so it is not flooded while it "catches up".
// - Choice: exact scan up to 8 available servers, power of two choices above (least_scan.h).
#include <algorithm>
#include <vector>

#include "balancer/algorithms.h"
#include "balancer/least_scan.h"

namespace harrow::balancer {
namespace {

// Farms with at most this many available servers are scanned exactly on every pick; larger
// ones use two choices. In-flight bytes are an estimate, so an exact minimum over many
// servers buys little, and a 16-server scan of floating-point loads costs more than a pick's
// budget (bench/balancer_bench.cc measures it).
constexpr size_t kExactScanLimit = 8;

class WeightedTotalTraffic final : public Balancer {
 public:
  explicit WeightedTotalTraffic(const BalancedFarm& spec)
      : set_(weights_of(spec)),
        servers_(spec.servers.size()),
        was_available_(spec.servers.size(), 0),
        halving_interval_(std::max<uint64_t>(1024, 64 * spec.servers.size())) {
    ties_.randomize = spec.randomize_ties;
    for (size_t i = 0; i < servers_.size(); ++i) {
      uint32_t w = spec.servers[i].weight;
      servers_[i].inverse_weight = w > 0 ? 1.0 / w : 0.0;
    }
  }

  std::optional<size_t> pick(const PickContext& ctx) override {
    if (set_.refresh(ctx.availability)) on_set_changed();
    double estimate = std::max(mean_bytes_, 1.0);
    if (set_.equal_weights()) {  // the weight divides every load alike: leave it out
      return least_loaded(set_, sampler_, ctx, ties_, kExactScanLimit, [this, estimate](size_t s) {
        return servers_[s].bytes + servers_[s].in_flight * estimate;
      });
    }
    return least_loaded(set_, sampler_, ctx, ties_, kExactScanLimit,
                        [this, estimate](size_t s) { return load(s, estimate); });
  }

  void on_start(size_t server) override {
    if (server < servers_.size()) servers_[server].in_flight += 1;
  }

  void on_finish(size_t server, const Finish& finish) override {
    if (server >= servers_.size()) return;
    State& s = servers_[server];
    if (s.in_flight > 0) s.in_flight -= 1;
    double bytes = static_cast<double>(finish.bytes);
    s.bytes += bytes;
    mean_bytes_ = seen_any_ ? mean_bytes_ + (bytes - mean_bytes_) / 32 : bytes;
    seen_any_ = true;
    if (--until_halving_ == 0) {
      for (State& x : servers_) x.bytes /= 2;
      until_halving_ = halving_interval_;
    }
  }

 private:
  struct State {
    double bytes = 0;  // carried, halved now and then
    double inverse_weight = 0;
    double in_flight = 0;  // a double: the load sum needs no conversion (exact to 2^53)
  };

  double load(size_t server, double estimate) const {
    const State& s = servers_[server];
    return (s.bytes + s.in_flight * estimate) * s.inverse_weight;
  }

  void on_set_changed() {
    sampler_.rebuild(set_);
    // Level newcomers with the least loaded server that was already there.
    double floor_per_weight = -1;
    for (uint32_t i : set_.servers()) {
      if (!was_available_[i]) continue;
      double per_weight = servers_[i].bytes * servers_[i].inverse_weight;
      if (floor_per_weight < 0 || per_weight < floor_per_weight) floor_per_weight = per_weight;
    }
    for (uint32_t i : set_.servers()) {
      if (was_available_[i] || floor_per_weight < 0) continue;
      servers_[i].bytes = std::max(servers_[i].bytes, floor_per_weight * set_.weight(i));
    }
    for (size_t i = 0; i < was_available_.size(); ++i) was_available_[i] = set_.contains(i);
  }

  AvailableSet set_;
  WeightedSampler sampler_;
  TieBreak ties_;
  std::vector<State> servers_;
  std::vector<uint8_t> was_available_;
  uint64_t halving_interval_;
  uint64_t until_halving_ = halving_interval_;  // finishes left before the next halving
  bool seen_any_ = false;
  double mean_bytes_ = 0;
};

}  // namespace

std::unique_ptr<Balancer> make_weighted_total_traffic(const BalancedFarm& spec) {
  return std::make_unique<WeightedTotalTraffic>(spec);
}

}  // namespace harrow::balancer

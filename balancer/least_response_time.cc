// LeastResponseTime: peak-EWMA latency × (in flight + 1) / weight, the lowest wins (the cost
// of Finagle's and linkerd's "peak EWMA" balancer).
//
// - Peak EWMA: a sample above the average replaces it at once (a server turning slow is
//   noticed on its first slow response); a sample below pulls it down with weight
//   1 - e^(-Δt/τ), τ = response_time_period_ns (ARR's leastResponseTimePeriod), Δt the time
//   since the server's previous sample. Read at pick time the average also decays toward
//   zero over τ, so a server that was penalised and then left alone is eventually probed
//   again instead of being starved forever.
// - A server with no sample yet costs 0 while it has nothing in flight (it gets one probe
//   request at once) and costs more than any sampled server while its probe is out: at most
//   one unsampled request per server, never a flood at a server nobody has measured.
// - A failure counts as a slow response: max(its latency, 2 × the server's current average,
//   1 s), at most 60 s, so a server that fails fast does not look fast.
// - Choice: exact scan up to 4 available servers, power of two choices above (least_scan.h).
#include <algorithm>
#include <bit>
#include <vector>

#include "balancer/algorithms.h"
#include "balancer/least_scan.h"

namespace harrow::balancer {
namespace {

constexpr double kFailureFloorNs = 1e9;
constexpr double kFailureCeilingNs = 60e9;
// Cost of a server whose probe is still out, per request in flight: above any real latency ×
// load, and growing with the count so that among unmeasured servers the idlest wins.
constexpr double kUnsampledBusyCost = 1e30;

// e^(-x) for x ≥ 0, to about 1.5e-4 relative error: 2^(-y) as an exponent (bits) times a
// degree-5 polynomial for the fraction. Only orders servers, so std::exp's precision would be
// wasted on every pick.
inline double decay(double x) {
  if (!(x > 0)) return 1.0;
  if (x >= 40.0) return 0.0;
  double y = x * 1.4426950408889634;  // log2(e)
  int whole = static_cast<int>(y);
  double f = y - whole;  // 2^-f = e^(-f ln 2), Taylor to the 5th power
  double p =
      1.0 +
      f * (-0.6931471805599453 +
           f * (0.2402265069591007 + f * (-0.0555041086648216 +
                                          f * (0.009618129107628477 - f * 0.0013333558146428443))));
  double scale = std::bit_cast<double>(static_cast<uint64_t>(1023 - whole) << 52);  // 2^-whole
  return p * scale;
}

// Exact scan only for the smallest farms: two choices above. Latency averages are noisy
// estimates, so the exact minimum is not worth a scan, and an exact scan herds every request
// onto whichever server last looked fastest until its average catches up; two random choices
// spread the load while still avoiding slow servers (Finagle and linkerd use them throughout).
constexpr size_t kExactScanLimit = 4;

class LeastResponseTime final : public Balancer {
 public:
  explicit LeastResponseTime(const BalancedFarm& spec)
      : set_(weights_of(spec)), servers_(spec.servers.size()) {
    ties_.randomize = spec.randomize_ties;
    double tau =
        spec.response_time_period_ns > 0 ? static_cast<double>(spec.response_time_period_ns) : 5e9;
    inverse_tau_ = 1.0 / tau;
    for (size_t i = 0; i < servers_.size(); ++i) {
      uint32_t w = spec.servers[i].weight;
      servers_[i].inverse_weight = w > 0 ? 1.0 / w : 0.0;
    }
  }

  std::optional<size_t> pick(const PickContext& ctx) override {
    if (set_.refresh(ctx.availability)) sampler_.rebuild(set_);
    uint64_t now = ctx.now_ns;
    return least_loaded(set_, sampler_, ctx, ties_, kExactScanLimit,
                        [this, now](size_t s) { return cost(s, now); });
  }

  void on_start(size_t server) override {
    if (server < servers_.size()) ++servers_[server].in_flight;
  }

  void on_finish(size_t server, const Finish& finish) override {
    if (server >= servers_.size()) return;
    State& s = servers_[server];
    if (s.in_flight > 0) --s.in_flight;
    double sample = static_cast<double>(finish.latency_ns);
    if (finish.outcome == Outcome::Failure) {
      double current = s.sampled ? average(s, finish.now_ns) : 0.0;
      sample = std::clamp(std::max(sample, 2 * current), kFailureFloorNs, kFailureCeilingNs);
    }
    if (!s.sampled || sample > s.ewma_ns) {
      s.ewma_ns = sample;  // peak: a slower sample is believed at once
    } else {
      double keep = decay(elapsed(s, finish.now_ns) * inverse_tau_);
      s.ewma_ns = s.ewma_ns * keep + sample * (1.0 - keep);
    }
    s.sampled = true;
    s.stamp_ns = std::max(s.stamp_ns, finish.now_ns);
  }

 private:
  struct State {
    double ewma_ns = 0;
    double inverse_weight = 0;
    uint64_t stamp_ns = 0;  // time of the last sample
    uint32_t in_flight = 0;
    bool sampled = false;
  };

  static double elapsed(const State& s, uint64_t now) {
    return now > s.stamp_ns ? static_cast<double>(now - s.stamp_ns) : 0.0;
  }
  double average(const State& s, uint64_t now) const {
    double x = elapsed(s, now) * inverse_tau_;
    // Within τ/64 of the last sample the decay is under 1.6%: not worth computing on a busy
    // server, which is what a busy farm is made of.
    return x < 1.0 / 64 ? s.ewma_ns : s.ewma_ns * decay(x);
  }
  double cost(size_t server, uint64_t now) const {
    const State& s = servers_[server];
    if (!s.sampled) return s.in_flight == 0 ? 0.0 : kUnsampledBusyCost * s.in_flight;
    return average(s, now) * (s.in_flight + 1) * s.inverse_weight;
  }

  AvailableSet set_;
  WeightedSampler sampler_;
  TieBreak ties_;
  std::vector<State> servers_;
  double inverse_tau_ = 1.0;
};

}  // namespace

std::unique_ptr<Balancer> make_least_response_time(const BalancedFarm& spec) {
  return std::make_unique<LeastResponseTime>(spec);
}

}  // namespace harrow::balancer

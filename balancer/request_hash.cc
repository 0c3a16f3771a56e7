// RequestHash: consistent hashing on a ketama ring keyed on each server's identity
// (address:port), with optional bounded loads.
//
// Why a ring (and not Maglev or rendezvous hashing):
// - The ring depends only on the configuration, not on health: a server going down is skipped
//   by walking on to the next point, so only that server's keys move, each to a stable next
//   choice, and they come back when it recovers. Maglev must rebuild its table (O(M), M ≫ n)
//   on every health change, and its fallbacks are not per-key stable across rebuilds.
// - Bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018) are defined as exactly this walk:
//   skip a server at its load bound, take the next point.
// - Lookup is a binary search over ~160 points per server (16 servers: 12 steps), where
//   rendezvous hashing costs one hash per server per request (4,096 servers: too slow).
// - Points are derived from the identity, not the index, so removing a server from the
//   configuration (which shifts every later index) moves only that server's keys (~1/n).
// Weights: a server gets 160 × weight / mean weight points (at least 1), so its share of the
// ring follows its weight; weight 0 gets none. (Changing one weight slightly moves the mean and
// so the point counts of the others; with ARR's usual equal weights nothing moves.)
//
// Bounded loads (hash_balance_factor = c > 0): a server is skipped while its requests in flight
// are at or above ceil(c × (total in flight + 1) × w / W), W the total weight of the available
// servers (with equal weights: ceil(c × (total + 1) / n)), evaluated exactly in integers with c
// rounded to 1/1024. Some available server is always below its bound when c ≥ 1; a factor
// below 1 is treated as 1.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "balancer/algorithms.h"
#include "balancer/available_set.h"

namespace harrow::balancer {
namespace {

constexpr double kPointsPerServer = 160;  // ketama's: enough to keep shares within a few %
constexpr uint64_t kFactorScale = 1024;   // the balance factor, in 1/1024ths: exact bounds

inline uint64_t mix64(uint64_t z) {  // splitmix64's finaliser
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

class RequestHash final : public Balancer {
 public:
  explicit RequestHash(const BalancedFarm& spec)
      : set_(weights_of(spec)),
        in_flight_(spec.servers.size(), 0),
        factor_scaled_(spec.hash_balance_factor > 0
                           ? static_cast<uint64_t>(std::llround(
                                 std::clamp(spec.hash_balance_factor, 1.0, 1e6) * kFactorScale))
                           : 0) {
    build_ring(spec);
  }

  std::optional<size_t> pick(const PickContext& ctx) override {
    set_.refresh(ctx.availability);
    if (set_.empty() || points_.empty()) return std::nullopt;
    if (!ctx.exclude.empty() && set_.count_candidates(ctx.exclude) == 0) return std::nullopt;
    size_t start = first_point_at_or_after(static_cast<uint32_t>(ctx.hash >> 32));
    if (std::optional<size_t> s = walk(start, ctx.exclude, factor_scaled_ > 0)) return s;
    // Only reachable with exclusions (every candidate at its bound): ignore the bound.
    return walk(start, ctx.exclude, false);
  }

  void on_start(size_t server) override {
    if (server >= in_flight_.size()) return;
    ++in_flight_[server];
    ++total_in_flight_;
  }
  void on_finish(size_t server, const Finish&) override {
    if (server >= in_flight_.size() || in_flight_[server] == 0) return;
    --in_flight_[server];
    --total_in_flight_;
  }

 private:
  void build_ring(const BalancedFarm& spec) {
    double sum = 0;
    size_t weighted = 0;
    for (const ServerSpec& s : spec.servers) {
      if (s.weight == 0) continue;
      sum += s.weight;
      ++weighted;
    }
    if (weighted == 0) return;
    double mean = sum / static_cast<double>(weighted);
    struct Point {
      uint32_t at;
      uint64_t identity;  // breaks collisions the same way whatever the server order
      uint32_t server;
    };
    std::vector<Point> points;
    for (size_t i = 0; i < spec.servers.size(); ++i) {
      const ServerSpec& s = spec.servers[i];
      if (s.weight == 0) continue;
      uint64_t identity = hash_key(s.identity);
      auto count =
          static_cast<uint64_t>(std::max(1.0, std::round(kPointsPerServer * s.weight / mean)));
      for (uint64_t j = 1; j <= count; ++j) {
        points.push_back({static_cast<uint32_t>(mix64(identity + j * 0x9E3779B97F4A7C15ull) >> 32),
                          identity, static_cast<uint32_t>(i)});
      }
    }
    std::sort(points.begin(), points.end(), [](const Point& a, const Point& b) {
      return a.at != b.at ? a.at < b.at : a.identity < b.identity;
    });
    points_.reserve(points.size());
    owners_.reserve(points.size());
    for (const Point& p : points) {
      points_.push_back(p.at);
      owners_.push_back(p.server);
    }
    // About one bucket per point: the bucket of a key's top bits says where its search starts.
    bucket_shift_ = 31;
    while (bucket_shift_ > 1 && (uint64_t{1} << (32 - bucket_shift_)) < points_.size()) {
      --bucket_shift_;
    }
    size_t buckets = size_t{1} << (32 - bucket_shift_);
    bucket_start_.resize(buckets + 1);
    size_t at = 0;
    for (size_t b = 0; b < buckets; ++b) {
      while (at < points_.size() && (points_[at] >> bucket_shift_) < b) ++at;
      bucket_start_[b] = static_cast<uint32_t>(at);
    }
    bucket_start_[buckets] = static_cast<uint32_t>(points_.size());
  }

  // Index of the first ring point at or clockwise after `key` (wrapping to 0): the bucket
  // index narrows it to the points sharing the key's top bits (about one), then a short scan.
  size_t first_point_at_or_after(uint32_t key) const {
    size_t bucket = key >> bucket_shift_;
    size_t at = bucket_start_[bucket], end = bucket_start_[bucket + 1];
    while (at < end && points_[at] < key) ++at;
    return at == points_.size() ? 0 : at;
  }

  // First point from `start` (clockwise) whose server is available, not excluded and, if
  // `bounded`, below its load bound.
  std::optional<size_t> walk(size_t start, std::span<const size_t> exclude, bool bounded) const {
    size_t pos = start;
    for (size_t step = 0; step < owners_.size(); ++step) {
      uint32_t s = owners_[pos];
      if (set_.contains(s) && (exclude.empty() || !is_excluded(s, exclude)) &&
          (!bounded || below_bound(s))) {
        return s;
      }
      if (++pos == owners_.size()) pos = 0;
    }
    return std::nullopt;
  }

  // in_flight < ceil(c·(T+1)·w/W)  ⟺  in_flight < c·(T+1)·w/W (in_flight is an integer)
  //                              ⟺  in_flight·W·1024 < c_1024·(T+1)·w, exactly, in 128 bits.
  bool below_bound(uint32_t s) const {
    using u128 = unsigned __int128;
    u128 lhs = u128{in_flight_[s]} * set_.total_weight() * kFactorScale;
    u128 rhs = u128{factor_scaled_} * (total_in_flight_ + 1) * set_.weight(s);
    return lhs < rhs;
  }

  AvailableSet set_;
  std::vector<uint32_t> points_;        // sorted ring positions
  std::vector<uint32_t> owners_;        // server of each point
  std::vector<uint32_t> bucket_start_;  // first point of each top-bits bucket, then the end
  unsigned bucket_shift_ = 31;          // key >> shift = bucket (at least 2 buckets)
  std::vector<uint32_t> in_flight_;
  uint64_t total_in_flight_ = 0;
  uint64_t factor_scaled_;  // c × kFactorScale; 0 = no bound
};

}  // namespace

std::unique_ptr<Balancer> make_request_hash(const BalancedFarm& spec) {
  return std::make_unique<RequestHash>(spec);
}

}  // namespace harrow::balancer

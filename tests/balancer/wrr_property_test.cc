// Smooth weighted round robin: exact shares over a cycle, and smooth within it.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "balancer/balancer.h"

namespace harrow::balancer {
namespace {

class SomeAvailable final : public AvailableServers {
 public:
  explicit SomeAvailable(std::vector<bool> up) : up_(std::move(up)) {}
  bool available(size_t i) const override { return up_[i]; }
  uint64_t version() const override { return version_; }
  uint64_t version_ = 0;

 private:
  std::vector<bool> up_;
};

RC_GTEST_PROP(WeightedRoundRobinProperty, FullCycleGivesEachServerItsWeight, ()) {
  auto weights = *rc::gen::nonEmpty(
      rc::gen::container<std::vector<uint32_t>>(rc::gen::inRange<uint32_t>(1, 50)));
  RC_PRE(weights.size() <= 12u);
  uint64_t g = 0;
  for (uint32_t w : weights) g = std::gcd(g, static_cast<uint64_t>(w));
  uint64_t cycle = 0;
  for (uint32_t w : weights) cycle += w / g;

  auto wrr = make_weighted_round_robin(weights);
  AllAvailable all;
  Random rng;
  std::vector<uint64_t> picks(weights.size(), 0);
  uint64_t total_weight = std::accumulate(weights.begin(), weights.end(), uint64_t{0});
  for (uint64_t n = 1; n <= cycle; ++n) {
    auto chosen = wrr->pick(PickContext{all, rng});
    RC_ASSERT(chosen.has_value());
    ++picks[*chosen];
    // Smoothness: after n picks every server is within one pick of its exact share.
    for (size_t i = 0; i < weights.size(); ++i) {
      double share = static_cast<double>(n) * weights[i] / static_cast<double>(total_weight);
      RC_ASSERT(std::abs(static_cast<double>(picks[i]) - share) <= 1.0 + 1e-9);
    }
  }
  for (size_t i = 0; i < weights.size(); ++i) RC_ASSERT(picks[i] == weights[i] / g);
}

RC_GTEST_PROP(WeightedRoundRobinProperty, NeverPicksUnavailable, ()) {
  auto weights = *rc::gen::nonEmpty(
      rc::gen::container<std::vector<uint32_t>>(rc::gen::inRange<uint32_t>(1, 1000)));
  auto up = *rc::gen::container<std::vector<bool>>(weights.size(), rc::gen::arbitrary<bool>());
  SomeAvailable availability(up);
  Random rng;
  auto wrr = make_weighted_round_robin(weights);
  bool any = std::find(up.begin(), up.end(), true) != up.end();
  for (int n = 0; n < 200; ++n) {
    auto chosen = wrr->pick(PickContext{availability, rng});
    RC_ASSERT(chosen.has_value() == any);
    if (chosen) RC_ASSERT(up[*chosen]);
  }
}

TEST(WeightedRoundRobin, InterleavesRatherThanRuns) {
  // Tijdeman's order for 5:1:1 (nginx's scheme gives "aabacaa"; both interleave).
  auto wrr = make_weighted_round_robin({5, 1, 1});
  AllAvailable all;
  Random rng;
  std::string order;
  for (int i = 0; i < 7; ++i) order += static_cast<char>('a' + *wrr->pick(PickContext{all, rng}));
  EXPECT_EQ(order, "aabaaca");
}

// Weights where nginx's current/effective-weight scheme lets a server fall 1.03 picks behind
// its share mid-cycle; Harrow's stays within one pick at every prefix.
TEST(WeightedRoundRobin, StaysWithinOnePickWhereTheClassicSchemeDoesNot) {
  std::vector<uint32_t> weights = {1, 1, 3, 12, 12};
  auto wrr = make_weighted_round_robin(weights);
  AllAvailable all;
  Random rng;
  std::vector<int> picks(weights.size(), 0);
  for (int n = 1; n <= 29 * 3; ++n) {
    ++picks[*wrr->pick(PickContext{all, rng})];
    for (size_t i = 0; i < weights.size(); ++i) {
      EXPECT_LE(std::abs(picks[i] - n * static_cast<double>(weights[i]) / 29.0), 1.0)
          << "server " << i << " after " << n << " picks";
    }
  }
}

TEST(WeightedRoundRobin, HugeWeightsDoNotOverflow) {
  auto wrr = make_weighted_round_robin({4294967295u, 4294967295u, 1});
  AllAvailable all;
  Random rng;
  std::vector<int> picks(3, 0);
  for (int i = 0; i < 1000; ++i) ++picks[*wrr->pick(PickContext{all, rng})];
  EXPECT_EQ(picks[0], 500);
  EXPECT_EQ(picks[1], 500);
}

// The definition of the order, computed the slow way (O(n) per pick, rational arithmetic):
// among servers whose lag after this pick is at least 1/(2(k-1)), the earliest deadline
// (2(k-1)(c+1) - 1)/w, ties to the first server; the cycle restarts after sum(weights) picks.
class ChairmanOracle {
 public:
  explicit ChairmanOracle(std::vector<uint64_t> weights)
      : weights_(std::move(weights)), picks_(weights_.size(), 0) {
    for (uint64_t w : weights_) total_ += w;
  }
  size_t next() {
    using i128 = __int128;
    size_t k = weights_.size();
    if (k == 1) return 0;
    const i128 two_k1 = 2 * static_cast<i128>(k - 1);
    std::optional<size_t> best;
    i128 best_num = 0, best_den = 1;
    for (size_t i = 0; i < k; ++i) {
      i128 lag = static_cast<i128>(n_ + 1) * weights_[i] - static_cast<i128>(total_) * picks_[i];
      if (two_k1 * lag < static_cast<i128>(total_)) continue;
      i128 num = two_k1 * (picks_[i] + 1) - 1, den = weights_[i];
      if (!best || num * best_den < best_num * den) {
        best = i;
        best_num = num;
        best_den = den;
      }
    }
    RC_ASSERT(best.has_value());  // Tijdeman: someone is always eligible
    ++picks_[*best];
    if (++n_ == total_) {
      n_ = 0;
      std::fill(picks_.begin(), picks_.end(), 0);
    }
    return *best;
  }

 private:
  std::vector<uint64_t> weights_;
  std::vector<uint64_t> picks_;
  uint64_t total_ = 0, n_ = 0;
};

// The fast scheduler (heaps, then a recorded cycle) gives exactly the defining order: small
// weights exercise the recorded table over several cycles, large ones the heaps alone.
RC_GTEST_PROP(WeightedRoundRobinProperty, SameOrderAsTheDefinition, ()) {
  bool large = *rc::gen::arbitrary<bool>();
  auto weights = *rc::gen::nonEmpty(rc::gen::container<std::vector<uint32_t>>(
      large ? rc::gen::inRange<uint32_t>(1, 4000000000u) : rc::gen::inRange<uint32_t>(1, 12)));
  RC_PRE(weights.size() <= 40u);
  uint64_t g = 0;
  for (uint32_t w : weights) g = std::gcd(g, static_cast<uint64_t>(w));
  std::vector<uint64_t> reduced;
  for (uint32_t w : weights) reduced.push_back(w / g);
  ChairmanOracle oracle(reduced);
  auto wrr = make_weighted_round_robin(weights);
  AllAvailable all;
  Random rng;
  for (int n = 0; n < 1500; ++n) {
    RC_ASSERT(*wrr->pick(PickContext{all, rng}) == oracle.next());
  }
}

// Tijdeman's bound, exactly: after every prefix of n picks, |c_i - n·w_i/W| ≤ 1 - 1/(2(k-1)),
// i.e. 2(k-1)·|c_i·W - n·w_i| ≤ (2k-3)·W — over two whole cycles, through the recorded table.
RC_GTEST_PROP(WeightedRoundRobinProperty, EveryPrefixWithinTijdemansBound, ()) {
  auto weights = *rc::gen::container<std::vector<uint32_t>>(rc::gen::inRange<uint32_t>(1, 30));
  RC_PRE(weights.size() >= 2u && weights.size() <= 16u);
  uint64_t g = 0, total = 0;
  for (uint32_t w : weights) g = std::gcd(g, static_cast<uint64_t>(w));
  for (uint32_t w : weights) total += w / g;
  auto wrr = make_weighted_round_robin(weights);
  AllAvailable all;
  Random rng;
  const __int128 k = static_cast<__int128>(weights.size());
  std::vector<uint64_t> picks(weights.size(), 0);
  for (uint64_t step = 1; step <= 2 * total; ++step) {
    ++picks[*wrr->pick(PickContext{all, rng})];
    uint64_t n = (step - 1) % total + 1;  // picks into the current cycle
    for (size_t i = 0; i < weights.size(); ++i) {
      __int128 c = static_cast<__int128>(picks[i]) - static_cast<__int128>(weights[i] / g) *
                                                         static_cast<__int128>((step - 1) / total);
      __int128 off = c * total - static_cast<__int128>(n) * (weights[i] / g);
      if (off < 0) off = -off;
      RC_ASSERT(2 * (k - 1) * off <= (2 * k - 3) * static_cast<__int128>(total));
    }
  }
}

// Failover: an excluded server is never returned, and neither is an unavailable one; when the
// exclusions cover every available server there is no pick.
RC_GTEST_PROP(WeightedRoundRobinProperty, NeverPicksExcluded, ()) {
  auto weights = *rc::gen::nonEmpty(
      rc::gen::container<std::vector<uint32_t>>(rc::gen::inRange<uint32_t>(1, 100000)));
  RC_PRE(weights.size() <= 20u);
  auto up = *rc::gen::container<std::vector<bool>>(weights.size(), rc::gen::arbitrary<bool>());
  auto excluded =
      *rc::gen::container<std::vector<size_t>>(rc::gen::inRange<size_t>(0, weights.size()));
  SomeAvailable availability(up);
  Random rng;
  auto wrr = make_weighted_round_robin(weights);
  bool any = false;
  for (size_t i = 0; i < weights.size(); ++i) {
    any = any || (up[i] && std::find(excluded.begin(), excluded.end(), i) == excluded.end());
  }
  for (int n = 0; n < 100; ++n) {
    auto chosen = wrr->pick(PickContext{availability, rng, 0, 0, excluded});
    RC_ASSERT(chosen.has_value() == any);
    if (!chosen) continue;
    RC_ASSERT(up[*chosen]);
    RC_ASSERT(std::find(excluded.begin(), excluded.end(), *chosen) == excluded.end());
  }
}

// A set change (new version) starts a fresh cycle over the new set.
TEST(WeightedRoundRobin, RestartsWhenAvailabilityChanges) {
  auto wrr = make_weighted_round_robin({2, 1, 1});
  SomeAvailable availability({true, false, true});
  Random rng;
  std::string order;
  for (int i = 0; i < 3; ++i) order += static_cast<char>('a' + *wrr->pick({availability, rng}));
  EXPECT_EQ(order, "aca");
  SomeAvailable all_up({true, true, true});
  all_up.version_ = 1;
  order.clear();
  for (int i = 0; i < 8; ++i) order += static_cast<char>('a' + *wrr->pick({all_up, rng}));
  EXPECT_EQ(order, "abcaabca");
}

// A version bump that leaves the set unchanged keeps the place in the cycle.
TEST(WeightedRoundRobin, KeepsItsPlaceWhenTheVersionMovesButTheSetDoesNot) {
  auto wrr = make_weighted_round_robin({2, 1, 1});
  SomeAvailable availability({true, true, true});
  Random rng;
  std::string order;
  for (int i = 0; i < 2; ++i) order += static_cast<char>('a' + *wrr->pick({availability, rng}));
  availability.version_ = 5;
  for (int i = 0; i < 6; ++i) order += static_cast<char>('a' + *wrr->pick({availability, rng}));
  EXPECT_EQ(order, "abcaabca");
}

TEST(WeightedRoundRobin, ZeroWeightIsNeverPicked) {
  auto wrr = make_weighted_round_robin({0, 3, 0});
  AllAvailable all;
  Random rng;
  for (int i = 0; i < 10; ++i) EXPECT_EQ(wrr->pick({all, rng}), 1u);
  auto none = make_weighted_round_robin({0, 0});
  EXPECT_FALSE(none->pick({all, rng}).has_value());
}

}  // namespace
}  // namespace harrow::balancer

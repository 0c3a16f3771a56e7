// Smooth weighted round robin: exact shares over a cycle, and smooth within it.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <numeric>
#include <vector>

#include "balancer/balancer.h"

namespace harrow::balancer {
namespace {

class SomeAvailable final : public Availability {
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

}  // namespace
}  // namespace harrow::balancer

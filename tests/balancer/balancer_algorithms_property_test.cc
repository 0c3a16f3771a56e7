// Properties every algorithm must keep, and each feedback algorithm's reason to exist, checked
// against simulated traffic with injected time.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "balancer/available_set.h"
#include "balancer/balancer.h"
#include "balancer/weighted_sampler.h"

namespace harrow::balancer {
namespace {

class TestAvailability final : public AvailableServers {
 public:
  explicit TestAvailability(std::vector<bool> up) : up_(std::move(up)) {}
  bool available(size_t i) const override { return up_[i]; }
  uint64_t version() const override { return version_; }
  void set(std::vector<bool> up) {
    up_ = std::move(up);
    ++version_;
  }
  bool up(size_t i) const { return up_[i]; }

 private:
  std::vector<bool> up_;
  uint64_t version_ = 7;
};

BalancedFarm farm(Algorithm algorithm, const std::vector<uint32_t>& weights) {
  BalancedFarm spec;
  spec.algorithm = algorithm;
  for (size_t i = 0; i < weights.size(); ++i) {
    spec.servers.push_back(
        {"10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ":80", weights[i]});
  }
  return spec;
}

struct InFlight {
  size_t server;
  uint64_t started_ns;
};

// Every algorithm, under random traffic (picks, finishes, failures, availability changes,
// exclusions): never an unavailable, zero-weight or excluded server; a pick whenever one is
// possible.
RC_GTEST_PROP(BalancerProperty, EveryAlgorithmPicksOnlyCandidates, ()) {
  auto algorithm = *rc::gen::element(Algorithm::WeightedRoundRobin, Algorithm::LeastRequests,
                                     Algorithm::LeastResponseTime, Algorithm::WeightedTotalTraffic,
                                     Algorithm::RequestHash);
  auto weights = *rc::gen::nonEmpty(rc::gen::container<std::vector<uint32_t>>(
      rc::gen::oneOf(rc::gen::just<uint32_t>(0), rc::gen::inRange<uint32_t>(1, 1000))));
  RC_PRE(weights.size() <= 40u);
  BalancedFarm spec = farm(algorithm, weights);
  spec.randomize_ties = *rc::gen::arbitrary<bool>();
  spec.hash_balance_factor = *rc::gen::element(0.0, 1.0, 1.25, 2.0);
  auto balancer = make_balancer(spec);
  TestAvailability availability(
      *rc::gen::container<std::vector<bool>>(weights.size(), rc::gen::arbitrary<bool>()));
  Random rng(*rc::gen::arbitrary<uint64_t>());
  std::vector<InFlight> in_flight;
  uint64_t now = 1'000'000'000;
  for (int step = 0; step < 300; ++step) {
    now += rng.below(20'000'000);
    int action = static_cast<int>(rng.below(10));
    if (action == 0) {
      std::vector<bool> up(weights.size());
      for (size_t i = 0; i < up.size(); ++i) up[i] = rng.below(4) != 0;
      availability.set(up);
    } else if (action <= 3 && !in_flight.empty()) {
      size_t k = rng.below(in_flight.size());
      Finish f{rng.below(5) == 0 ? Outcome::Failure : Outcome::Success,
               now - in_flight[k].started_ns, rng.below(100000), now};
      balancer->on_finish(in_flight[k].server, f);
      in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(k));
    } else {
      std::vector<size_t> exclude;
      if (action == 4) {
        for (size_t i = 0; i < weights.size(); ++i) {
          if (rng.below(3) == 0) exclude.push_back(i);
        }
      }
      PickContext ctx{availability, rng, now, rng.next(), exclude};
      std::optional<size_t> chosen = balancer->pick(ctx);
      bool possible = false;
      for (size_t i = 0; i < weights.size(); ++i) {
        possible = possible || (availability.up(i) && weights[i] > 0 &&
                                std::find(exclude.begin(), exclude.end(), i) == exclude.end());
      }
      RC_ASSERT(chosen.has_value() == possible);
      if (!chosen) continue;
      RC_ASSERT(*chosen < weights.size());
      RC_ASSERT(availability.up(*chosen));
      RC_ASSERT(weights[*chosen] > 0u);
      RC_ASSERT(std::find(exclude.begin(), exclude.end(), *chosen) == exclude.end());
      balancer->on_start(*chosen);
      in_flight.push_back({*chosen, now});
    }
  }
}

// LeastRequests on a farm small enough to scan: the chosen server has the fewest requests in
// flight relative to weight (so never 2 or more above another server).
RC_GTEST_PROP(BalancerProperty, LeastRequestsScanPicksTheLeastLoaded, ()) {
  auto weights = *rc::gen::nonEmpty(
      rc::gen::container<std::vector<uint32_t>>(rc::gen::inRange<uint32_t>(1, 6)));
  RC_PRE(weights.size() <= 16u);
  BalancedFarm spec = farm(Algorithm::LeastRequests, weights);
  spec.randomize_ties = *rc::gen::arbitrary<bool>();
  auto balancer = make_balancer(spec);
  AllAvailable all;
  Random rng(*rc::gen::arbitrary<uint64_t>());
  std::vector<uint64_t> load(weights.size(), 0);
  std::vector<size_t> in_flight;
  for (int step = 0; step < 400; ++step) {
    if (rng.below(3) == 0 && !in_flight.empty()) {
      size_t k = rng.below(in_flight.size());
      balancer->on_finish(in_flight[k], Finish{});
      --load[in_flight[k]];
      in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(k));
      continue;
    }
    size_t c = *balancer->pick(PickContext{all, rng});
    for (size_t j = 0; j < weights.size(); ++j) {
      RC_ASSERT(load[c] * weights[j] <= load[j] * weights[c]);
    }
    balancer->on_start(c);
    ++load[c];
    in_flight.push_back(c);
  }
}

// Consistent hashing: the same key gives the same server (in another instance too), and
// removing one of n servers from the configuration moves only that server's keys: at most
// 1/n + 5% of them.
RC_GTEST_PROP(BalancerProperty, RequestHashRemovalMovesOnlyTheRemovedServersKeys, ()) {
  size_t n = *rc::gen::inRange<size_t>(2, 60);
  size_t removed = *rc::gen::inRange<size_t>(0, n);
  BalancedFarm before = farm(Algorithm::RequestHash, std::vector<uint32_t>(n, 100));
  BalancedFarm after = before;
  after.servers.erase(after.servers.begin() + static_cast<std::ptrdiff_t>(removed));
  auto a = make_balancer(before), a_again = make_balancer(before), b = make_balancer(after);
  AllAvailable all;
  Random rng(*rc::gen::arbitrary<uint64_t>());
  size_t moved = 0;
  constexpr int kKeys = 10000;
  for (int k = 0; k < kKeys; ++k) {
    uint64_t h = hash_key("/product/" + std::to_string(rng.next()));
    size_t s_before = *a->pick(PickContext{all, rng, 0, h});
    RC_ASSERT(*a_again->pick(PickContext{all, rng, 0, h}) == s_before);
    RC_ASSERT(*a->pick(PickContext{all, rng, 0, h}) == s_before);
    const std::string& id_after = after.servers[*b->pick(PickContext{all, rng, 0, h})].identity;
    if (id_after != before.servers[s_before].identity) {
      ++moved;
      RC_ASSERT(s_before == removed);  // only the removed server's keys move
    }
  }
  RC_ASSERT(moved <= static_cast<size_t>(kKeys * (1.0 / n + 0.05)));
}

// A server going down moves only its own keys, each to a stable next choice, and they come
// back when it recovers.
RC_GTEST_PROP(BalancerProperty, RequestHashUnavailableServerKeysMoveStablyAndReturn, ()) {
  size_t n = *rc::gen::inRange<size_t>(2, 30);
  size_t down = *rc::gen::inRange<size_t>(0, n);
  auto balancer = make_balancer(farm(Algorithm::RequestHash, std::vector<uint32_t>(n, 100)));
  std::vector<bool> up(n, true);
  TestAvailability availability(up);
  Random rng(*rc::gen::arbitrary<uint64_t>());
  std::vector<uint64_t> keys;
  std::vector<size_t> home;
  for (int k = 0; k < 2000; ++k) {
    keys.push_back(rng.next());
    home.push_back(*balancer->pick(PickContext{availability, rng, 0, keys.back()}));
  }
  up[down] = false;
  availability.set(up);
  std::vector<size_t> fallback;
  for (size_t k = 0; k < keys.size(); ++k) {
    size_t s = *balancer->pick(PickContext{availability, rng, 0, keys[k]});
    RC_ASSERT(s != down);
    if (home[k] != down) RC_ASSERT(s == home[k]);
    fallback.push_back(s);
  }
  for (size_t k = 0; k < keys.size(); ++k) {
    RC_ASSERT(*balancer->pick(PickContext{availability, rng, 0, keys[k]}) == fallback[k]);
  }
  up[down] = true;
  availability.set(up);
  for (size_t k = 0; k < keys.size(); ++k) {
    RC_ASSERT(*balancer->pick(PickContext{availability, rng, 0, keys[k]}) == home[k]);
  }
}

// Bounded loads: no pick takes a server above ceil(c × (total in flight + 1) / n).
RC_GTEST_PROP(BalancerProperty, RequestHashBoundedLoadsNeverExceedTheBound, ()) {
  size_t n = *rc::gen::inRange<size_t>(2, 24);
  double factor = *rc::gen::element(1.0, 1.25, 1.5, 2.0);
  BalancedFarm spec = farm(Algorithm::RequestHash, std::vector<uint32_t>(n, 100));
  spec.hash_balance_factor = factor;
  auto balancer = make_balancer(spec);
  AllAvailable all;
  Random rng(*rc::gen::arbitrary<uint64_t>());
  // A few hot keys, so that plain consistent hashing would pile onto one server.
  std::vector<uint64_t> keys;
  for (int k = 0; k < 3; ++k) keys.push_back(rng.next());
  std::vector<uint64_t> load(n, 0);
  std::vector<size_t> in_flight;
  for (int step = 0; step < 600; ++step) {
    if (rng.below(4) == 0 && !in_flight.empty()) {
      size_t k = rng.below(in_flight.size());
      balancer->on_finish(in_flight[k], Finish{});
      --load[in_flight[k]];
      in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(k));
      continue;
    }
    uint64_t total = in_flight.size();
    auto bound = static_cast<uint64_t>(std::ceil(factor * static_cast<double>(total + 1) / n));
    size_t c = *balancer->pick(PickContext{all, rng, 0, keys[rng.below(keys.size())]});
    RC_ASSERT(load[c] + 1 <= bound);
    balancer->on_start(c);
    ++load[c];
    in_flight.push_back(c);
  }
}

// With unequal weights the bound is per server: ceil(c × (total + 1) × w / W). Checked in
// integers (c = quarters / 4).
RC_GTEST_PROP(BalancerProperty, RequestHashWeightedBoundedLoadsNeverExceedTheirBounds, ()) {
  auto weights = *rc::gen::container<std::vector<uint32_t>>(rc::gen::inRange<uint32_t>(1, 6));
  RC_PRE(weights.size() >= 2u && weights.size() <= 16u);
  uint64_t quarters = *rc::gen::element<uint64_t>(4, 5, 6, 8);
  BalancedFarm spec = farm(Algorithm::RequestHash, weights);
  spec.hash_balance_factor = static_cast<double>(quarters) / 4;
  auto balancer = make_balancer(spec);
  AllAvailable all;
  Random rng(*rc::gen::arbitrary<uint64_t>());
  uint64_t total_weight = 0;
  for (uint32_t w : weights) total_weight += w;
  uint64_t hot = rng.next();
  std::vector<uint64_t> load(weights.size(), 0);
  std::vector<size_t> in_flight;
  for (int step = 0; step < 500; ++step) {
    if (rng.below(5) == 0 && !in_flight.empty()) {
      size_t k = rng.below(in_flight.size());
      balancer->on_finish(in_flight[k], Finish{});
      --load[in_flight[k]];
      in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(k));
      continue;
    }
    uint64_t total = in_flight.size();
    size_t c = *balancer->pick(PickContext{all, rng, 0, rng.below(4) == 0 ? rng.next() : hot});
    uint64_t numerator = quarters * (total + 1) * weights[c], denominator = 4 * total_weight;
    uint64_t bound = (numerator + denominator - 1) / denominator;
    RC_ASSERT(load[c] + 1 <= bound);
    balancer->on_start(c);
    ++load[c];
    in_flight.push_back(c);
  }
}

// LeastResponseTime: one server ten times slower than the rest gets well under its fair share
// (here: under half of it), both on scanned (≤ 16) and on sampled (two choices) farms.
RC_GTEST_PROP(BalancerProperty, LeastResponseTimeShiftsShareAwayFromASlowServer, ()) {
  size_t n = *rc::gen::inRange<size_t>(2, 40);
  size_t slow = *rc::gen::inRange<size_t>(0, n);
  auto balancer = make_balancer(farm(Algorithm::LeastResponseTime, std::vector<uint32_t>(n, 100)));
  AllAvailable all;
  Random rng(*rc::gen::arbitrary<uint64_t>());
  uint64_t now = 0;
  // Four concurrent clients, each sending its next request when the previous one ends.
  struct Client {
    size_t server = 0;
    uint64_t done_ns = 0;
    bool busy = false;
  };
  std::vector<Client> clients(4);
  std::vector<uint64_t> picks(n, 0);
  constexpr int kRequests = 4000;
  for (int sent = 0; sent < kRequests;) {
    for (Client& c : clients) {
      if (c.busy && c.done_ns <= now) {
        uint64_t latency = c.server == slow ? 50'000'000 : 5'000'000;
        balancer->on_finish(c.server, Finish{Outcome::Success, latency, 1000, now});
        c.busy = false;
      }
      if (!c.busy) {
        c.server = *balancer->pick(PickContext{all, rng, now});
        balancer->on_start(c.server);
        uint64_t latency = c.server == slow ? 50'000'000 : 5'000'000;
        c.done_ns = now + latency;
        c.busy = true;
        if (sent++ >= kRequests / 4) ++picks[c.server];  // after a warm-up
      }
    }
    now += 1'000'000;
  }
  double share = static_cast<double>(picks[slow]) / (kRequests * 3 / 4);
  RC_ASSERT(share < 0.5 / static_cast<double>(n));
}

// WeightedTotalTraffic: over many requests of random sizes, each server's share of the bytes
// approaches its share of the weight.
RC_GTEST_PROP(BalancerProperty, WeightedTotalTrafficConvergesToWeightSharesOfBytes, ()) {
  auto weights = *rc::gen::container<std::vector<uint32_t>>(rc::gen::inRange<uint32_t>(1, 10));
  RC_PRE(weights.size() >= 2u && weights.size() <= 24u);
  auto balancer = make_balancer(farm(Algorithm::WeightedTotalTraffic, weights));
  AllAvailable all;
  Random rng(*rc::gen::arbitrary<uint64_t>());
  std::vector<double> bytes(weights.size(), 0);
  double total_bytes = 0;
  uint64_t now = 0;
  for (int r = 0; r < 20000; ++r) {
    size_t s = *balancer->pick(PickContext{all, rng, now});
    balancer->on_start(s);
    uint64_t size = 100 + rng.below(10000);
    now += 1'000'000;
    balancer->on_finish(s, Finish{Outcome::Success, 1'000'000, size, now});
    bytes[s] += static_cast<double>(size);
    total_bytes += static_cast<double>(size);
  }
  double total_weight = 0;
  for (uint32_t w : weights) total_weight += w;
  for (size_t i = 0; i < weights.size(); ++i) {
    double want = weights[i] / total_weight;
    RC_ASSERT(std::abs(bytes[i] / total_bytes - want) <= 0.1 * want + 0.002);
  }
}

// The weighted draw behind power of two choices: each available server comes up in
// proportion to its weight, unavailable ones never.
RC_GTEST_PROP(BalancerProperty, WeightedSamplerDrawsInProportionToWeight, ()) {
  auto weights = *rc::gen::container<std::vector<uint64_t>>(
      rc::gen::oneOf(rc::gen::just<uint64_t>(0), rc::gen::inRange<uint64_t>(1, 1000)));
  RC_PRE(weights.size() >= 1u && weights.size() <= 40u);
  auto up = *rc::gen::container<std::vector<bool>>(weights.size(), rc::gen::arbitrary<bool>());
  TestAvailability availability(up);
  AvailableSet set(weights);
  set.refresh(availability);
  RC_PRE(!set.empty());
  WeightedSampler sampler;
  sampler.rebuild(set);
  Random rng(*rc::gen::arbitrary<uint64_t>());
  std::vector<double> count(weights.size(), 0);
  constexpr int kDraws = 100000;
  for (int i = 0; i < kDraws; ++i) ++count[sampler.sample(rng)];
  for (size_t i = 0; i < weights.size(); ++i) {
    double want = set.contains(i) ? static_cast<double>(weights[i]) / set.total_weight() : 0.0;
    if (want == 0) RC_ASSERT(count[i] == 0.0);
    RC_ASSERT(std::abs(count[i] / kDraws - want) <= 0.01 + 0.05 * want);
  }
}

TEST(LeastResponseTime, AmongUnmeasuredServersTheIdlestGetsTheNextRequest) {
  BalancedFarm spec = farm(Algorithm::LeastResponseTime, {100, 100, 100});
  auto balancer = make_balancer(spec);
  AllAvailable all;
  Random rng;
  // Server 0 has two unanswered probes, server 1 one, server 2 none yet: 2 first, then 1.
  balancer->on_start(0);
  balancer->on_start(0);
  balancer->on_start(1);
  EXPECT_EQ(balancer->pick(PickContext{all, rng, 5}), 2u);
  balancer->on_start(2);
  EXPECT_EQ(balancer->pick(PickContext{all, rng, 6}), 1u);
}

}  // namespace
}  // namespace harrow::balancer

// Examples of each algorithm's choices, and of make_balancer choosing the algorithm.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "balancer/balancer.h"

namespace harrow::balancer {
namespace {

BalancedFarm farm(Algorithm algorithm, const std::vector<uint32_t>& weights) {
  BalancedFarm spec;
  spec.algorithm = algorithm;
  for (size_t i = 0; i < weights.size(); ++i) {
    spec.servers.push_back({"192.168.1." + std::to_string(i + 1) + ":80", weights[i]});
  }
  return spec;
}

class SwitchableAvailability final : public AvailableServers {
 public:
  explicit SwitchableAvailability(std::vector<bool> up) : up_(std::move(up)) {}
  bool available(size_t i) const override { return up_[i]; }
  uint64_t version() const override { return version_; }
  void set(size_t i, bool up) {
    up_[i] = up;
    ++version_;
  }

 private:
  std::vector<bool> up_;
  uint64_t version_ = 0;
};

TEST(BalancerHashKey, IsStableAcrossVersions) {
  // Pinned: RequestHash must map a key to the same server in every process and release, so
  // a change to these values is a change to every farm's key → server mapping.
  EXPECT_EQ(hash_key(""), 0xbf9ad9db02da401eull);
  EXPECT_EQ(hash_key("a"), 0x88becf5e44cbe566ull);
  EXPECT_EQ(hash_key("/index.html"), 0x3f9cf178d2cfa5bbull);
  EXPECT_EQ(hash_key("/product/12345?color=red&size=m"), 0x2ad3c6827e064fdaull);
  EXPECT_EQ(hash_key("0123456789abcdef"), 0xf4358ecae9a8bcc1ull);  // exactly one block
}

TEST(BalancerHashKey, EveryByteAndTheLengthCount) {
  EXPECT_NE(hash_key("/a"), hash_key("/b"));
  EXPECT_NE(hash_key("ab"), hash_key("ba"));
  EXPECT_NE(hash_key(std::string(16, '\0')), hash_key(std::string(17, '\0')));
  EXPECT_NE(hash_key(std::string(1, '\0')), hash_key(""));
  std::string long_key(100, 'x');
  for (size_t i = 0; i < long_key.size(); ++i) {
    std::string changed = long_key;
    changed[i] = 'y';
    EXPECT_NE(hash_key(changed), hash_key(long_key)) << "byte " << i;
  }
}

TEST(BalancerHashKey, SpreadsNearbyKeysOverTheWholeRange) {
  // Keys differing in one character land in all 16 top-nibble buckets, roughly evenly.
  std::vector<int> buckets(16, 0);
  for (int i = 0; i < 16000; ++i) ++buckets[hash_key("/item?id=" + std::to_string(i)) >> 60];
  for (int b : buckets) {
    EXPECT_GT(b, 850);
    EXPECT_LT(b, 1150);
  }
}

TEST(BalancerFactory, ChoosesTheImplementationBySpec) {
  AllAvailable all;
  Random rng;
  // RequestHash: one key always goes to one server; WeightedRoundRobin: alternates.
  auto hash = make_balancer(farm(Algorithm::RequestHash, {100, 100, 100}));
  auto wrr = make_balancer(farm(Algorithm::WeightedRoundRobin, {100, 100, 100}));
  std::set<size_t> hash_seen, wrr_seen;
  for (int i = 0; i < 6; ++i) {
    hash_seen.insert(*hash->pick(PickContext{all, rng, 0, 42}));
    wrr_seen.insert(*wrr->pick(PickContext{all, rng, 0, 42}));
  }
  EXPECT_EQ(hash_seen.size(), 1u);
  EXPECT_EQ(wrr_seen.size(), 3u);
  // LeastRequests: a server with requests in flight is avoided.
  auto least = make_balancer(farm(Algorithm::LeastRequests, {100, 100}));
  least->on_start(0);
  EXPECT_EQ(least->pick(PickContext{all, rng}), 1u);
}

TEST(LeastRequests, IdleTiesGoRoundRobinInConfigurationOrder) {
  auto balancer = make_balancer(farm(Algorithm::LeastRequests, {100, 100, 100}));
  AllAvailable all;
  Random rng;
  std::string order;
  for (int i = 0; i < 6; ++i) {
    size_t s = *balancer->pick(PickContext{all, rng});
    balancer->on_start(s);
    balancer->on_finish(s, Finish{});
    order += static_cast<char>('a' + s);
  }
  EXPECT_EQ(order, "abcabc");
}

TEST(LeastRequests, RandomizedTiesReachEveryTiedServer) {
  BalancedFarm spec = farm(Algorithm::LeastRequests, {100, 100, 100, 100});
  spec.randomize_ties = true;
  auto balancer = make_balancer(spec);
  AllAvailable all;
  Random rng(12345);
  std::vector<int> count(4, 0);
  for (int i = 0; i < 400; ++i) ++count[*balancer->pick(PickContext{all, rng})];
  for (int c : count) EXPECT_GT(c, 60);
}

TEST(LeastRequests, InFlightIsRelativeToWeight) {
  auto balancer = make_balancer(farm(Algorithm::LeastRequests, {1, 3}));
  AllAvailable all;
  Random rng;
  std::vector<int> count(2, 0);
  for (int i = 0; i < 8; ++i) {
    size_t s = *balancer->pick(PickContext{all, rng});
    balancer->on_start(s);  // none finish: in-flight grows 1:3
    ++count[s];
  }
  EXPECT_EQ(count[0], 2);
  EXPECT_EQ(count[1], 6);
}

TEST(LeastRequests, LargeFarmsStillAvoidBusyServers) {
  // 64 servers (two choices, not a scan): a server with 100 requests in flight is picked only
  // when both draws hit it.
  auto balancer = make_balancer(farm(Algorithm::LeastRequests, std::vector<uint32_t>(64, 100)));
  for (int i = 0; i < 100; ++i) balancer->on_start(5);
  AllAvailable all;
  Random rng(7);
  int busy = 0;
  for (int i = 0; i < 6400; ++i) busy += *balancer->pick(PickContext{all, rng}) == 5;
  EXPECT_LT(busy, 10);
}

TEST(LeastRequests, AvailabilityChangeIsSeenThroughTheVersion) {
  auto balancer = make_balancer(farm(Algorithm::LeastRequests, {100, 100}));
  SwitchableAvailability availability({true, true});
  Random rng;
  availability.set(0, false);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(balancer->pick(PickContext{availability, rng}), 1u);
  availability.set(1, false);
  EXPECT_FALSE(balancer->pick(PickContext{availability, rng}).has_value());
}

TEST(LeastResponseTime, ProbesEachUnmeasuredServerOnceAtATime) {
  auto balancer = make_balancer(farm(Algorithm::LeastResponseTime, {100, 100, 100}));
  AllAvailable all;
  Random rng;
  std::set<size_t> first;
  for (int i = 0; i < 3; ++i) {
    size_t s = *balancer->pick(PickContext{all, rng, 1000});
    balancer->on_start(s);
    first.insert(s);
  }
  EXPECT_EQ(first.size(), 3u);  // one probe each, not three to the first
  // Server 1 answers fast: it is measured, the others still have their probe out.
  balancer->on_finish(1, Finish{Outcome::Success, 2'000'000, 100, 2'000'000});
  EXPECT_EQ(balancer->pick(PickContext{all, rng, 2'000'000}), 1u);
}

TEST(LeastResponseTime, AFastFailureCountsAsSlow) {
  auto balancer = make_balancer(farm(Algorithm::LeastResponseTime, {100, 100}));
  AllAvailable all;
  Random rng;
  uint64_t now = 1'000'000'000;
  // Server 0 refuses connections in 1 ms; server 1 answers in 20 ms.
  balancer->on_start(0);
  balancer->on_finish(0, Finish{Outcome::Failure, 1'000'000, 0, now});
  balancer->on_start(1);
  balancer->on_finish(1, Finish{Outcome::Success, 20'000'000, 5000, now});
  for (int i = 0; i < 20; ++i) {
    now += 10'000'000;
    EXPECT_EQ(balancer->pick(PickContext{all, rng, now}), 1u);
  }
}

TEST(LeastResponseTime, APenalisedServerIsProbedAgainAfterItDecays) {
  BalancedFarm spec = farm(Algorithm::LeastResponseTime, {100, 100});
  spec.response_time_period_ns = 1'000'000'000;
  auto balancer = make_balancer(spec);
  AllAvailable all;
  Random rng;
  uint64_t now = 1'000'000'000;
  balancer->on_start(0);
  balancer->on_finish(0, Finish{Outcome::Success, 500'000'000, 0, now});  // one slow answer
  bool probed = false;
  for (int i = 0; i < 400 && !probed; ++i) {
    now += 25'000'000;
    size_t s = *balancer->pick(PickContext{all, rng, now});
    balancer->on_start(s);
    balancer->on_finish(s, Finish{Outcome::Success, 10'000'000, 0, now});
    probed = s == 0;
  }
  EXPECT_TRUE(probed);
}

TEST(WeightedTotalTraffic, ABurstSpreadsOverTheFarm) {
  auto balancer = make_balancer(farm(Algorithm::WeightedTotalTraffic, {100, 100, 100, 100}));
  AllAvailable all;
  Random rng;
  // History: server 2 has carried less than the others.
  for (size_t s : {0, 1, 3}) {
    balancer->on_start(s);
    balancer->on_finish(s, Finish{Outcome::Success, 1, 10000, 1});
  }
  balancer->on_start(2);
  balancer->on_finish(2, Finish{Outcome::Success, 1, 7000, 1});
  std::vector<int> count(4, 0);
  for (int i = 0; i < 12; ++i) {
    size_t s = *balancer->pick(PickContext{all, rng, 2});
    balancer->on_start(s);  // no response yet: counted at the mean request size
    ++count[s];
  }
  EXPECT_LE(count[2], 5);  // not all twelve
  for (int c : count) EXPECT_GE(c, 2);
}

TEST(WeightedTotalTraffic, BytesFollowWeights) {
  auto balancer = make_balancer(farm(Algorithm::WeightedTotalTraffic, {1, 2}));
  AllAvailable all;
  Random rng;
  std::vector<uint64_t> bytes(2, 0);
  for (int i = 0; i < 3000; ++i) {
    size_t s = *balancer->pick(PickContext{all, rng});
    balancer->on_start(s);
    balancer->on_finish(s, Finish{Outcome::Success, 1, 1000, 0});
    bytes[s] += 1000;
  }
  EXPECT_NEAR(static_cast<double>(bytes[1]) / bytes[0], 2.0, 0.01);
}

TEST(RequestHash, WeightsSetTheShareOfKeys) {
  auto balancer = make_balancer(farm(Algorithm::RequestHash, {100, 300}));
  AllAvailable all;
  Random rng;
  int heavy = 0;
  for (int i = 0; i < 20000; ++i) {
    heavy += *balancer->pick(PickContext{all, rng, 0, hash_key("/k" + std::to_string(i))}) == 1;
  }
  EXPECT_NEAR(heavy / 20000.0, 0.75, 0.05);
}

TEST(RequestHash, BoundedLoadsSpreadAHotKey) {
  BalancedFarm spec = farm(Algorithm::RequestHash, {100, 100, 100, 100});
  spec.hash_balance_factor = 1.25;
  auto balancer = make_balancer(spec);
  AllAvailable all;
  Random rng;
  uint64_t hot = hash_key("/hot");
  std::set<size_t> used;
  for (int i = 0; i < 8; ++i) {
    size_t s = *balancer->pick(PickContext{all, rng, 0, hot});
    balancer->on_start(s);
    used.insert(s);
  }
  EXPECT_GE(used.size(), 3u);
  // Plain consistent hashing keeps the hot key on one server.
  auto plain = make_balancer(farm(Algorithm::RequestHash, {100, 100, 100, 100}));
  used.clear();
  for (int i = 0; i < 8; ++i) {
    size_t s = *plain->pick(PickContext{all, rng, 0, hot});
    plain->on_start(s);
    used.insert(s);
  }
  EXPECT_EQ(used.size(), 1u);
}

TEST(RequestHash, ExcludedServerFailsOverToTheNextChoice) {
  auto balancer = make_balancer(farm(Algorithm::RequestHash, {100, 100, 100}));
  AllAvailable all;
  Random rng;
  uint64_t h = hash_key("/cart");
  size_t first = *balancer->pick(PickContext{all, rng, 0, h});
  std::vector<size_t> exclude = {first};
  size_t second = *balancer->pick(PickContext{all, rng, 0, h, exclude});
  EXPECT_NE(second, first);
  EXPECT_EQ(balancer->pick(PickContext{all, rng, 0, h, exclude}), second);
  exclude = {0, 1, 2};
  EXPECT_FALSE(balancer->pick(PickContext{all, rng, 0, h, exclude}).has_value());
}

}  // namespace
}  // namespace harrow::balancer

// Host-name affinity (ARR's HostNameRoundRobin), with injected time.
#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

#include "balancer/host_affinity.h"

namespace harrow::balancer {
namespace {

constexpr uint64_t kMinute = 60'000'000'000ull;

class TestAvailability final : public AvailableServers {
 public:
  explicit TestAvailability(size_t n) : up_(n, true) {}
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

TEST(HostAffinity, EachNewHostGetsTheNextServerAndKeepsIt) {
  HostAffinity affinity(20 * kMinute, {}, 3);
  TestAvailability up(3);
  EXPECT_EQ(affinity.pick("a.example", up, 1), 0u);
  EXPECT_EQ(affinity.pick("b.example", up, 2), 1u);
  EXPECT_EQ(affinity.pick("c.example", up, 3), 2u);
  EXPECT_EQ(affinity.pick("d.example", up, 4), 0u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(affinity.pick("b.example", up, 10 + i), 1u);
    EXPECT_EQ(affinity.pick("c.example", up, 10 + i), 2u);
  }
  EXPECT_EQ(affinity.hosts(), 4u);
}

TEST(HostAffinity, HostMatchingIgnoresCaseAndPort) {
  HostAffinity affinity(20 * kMinute, {}, 4);
  TestAvailability up(4);
  affinity.pick("first.example", up, 1);
  size_t s = *affinity.pick("Shop.Example.COM:8080", up, 2);
  EXPECT_EQ(affinity.pick("shop.example.com", up, 3), s);
  EXPECT_EQ(affinity.pick("SHOP.example.com:443", up, 4), s);
  EXPECT_EQ(affinity.hosts(), 2u);
  // IPv6 literals: the port goes, the address stays.
  size_t v6 = *affinity.pick("[2001:db8::1]:8080", up, 5);
  EXPECT_EQ(affinity.pick("[2001:DB8::1]", up, 6), v6);
  EXPECT_EQ(affinity.hosts(), 3u);
}

TEST(HostAffinity, PerHostServerCountAllocatesSeveralServersInTurn) {
  HostAffinity affinity(20 * kMinute, {{"Big.Example", 2}}, 4);
  TestAvailability up(4);
  EXPECT_EQ(affinity.pick("small.example", up, 1), 0u);
  std::vector<size_t> seen;
  for (int i = 0; i < 6; ++i) seen.push_back(*affinity.pick("big.example:80", up, 2 + i));
  EXPECT_EQ(seen, (std::vector<size_t>{1, 2, 1, 2, 1, 2}));
}

TEST(HostAffinity, UnavailableServerIsReplaced) {
  HostAffinity affinity(20 * kMinute, {}, 3);
  TestAvailability up(3);
  EXPECT_EQ(affinity.pick("a.example", up, 1), 0u);
  up.set(0, false);
  size_t replacement = *affinity.pick("a.example", up, 2);
  EXPECT_NE(replacement, 0u);
  up.set(0, true);
  EXPECT_EQ(affinity.pick("a.example", up, 3), replacement);  // stays with the replacement
  up.set(0, false);
  up.set(1, false);
  up.set(2, false);
  EXPECT_FALSE(affinity.pick("a.example", up, 4).has_value());
  EXPECT_FALSE(affinity.pick("new.example", up, 5).has_value());
}

TEST(HostAffinity, IdleHostsExpireAfterTheTimeout) {
  HostAffinity affinity(20 * kMinute, {}, 3);
  TestAvailability up(3);
  EXPECT_EQ(affinity.pick("a.example", up, 1), 0u);
  EXPECT_EQ(affinity.pick("b.example", up, 2), 1u);
  // a is used within the timeout, b is not.
  EXPECT_EQ(affinity.pick("a.example", up, 19 * kMinute), 0u);
  EXPECT_EQ(affinity.pick("a.example", up, 38 * kMinute), 0u);
  EXPECT_EQ(affinity.hosts(), 1u);  // b swept
  // b comes back as a new host: the next server in the rotation.
  EXPECT_EQ(affinity.pick("b.example", up, 39 * kMinute), 2u);
}

TEST(HostAffinity, AnExpiredHostIsReallocatedToTheNextServer) {
  HostAffinity affinity(kMinute, {}, 2);
  TestAvailability up(2);
  EXPECT_EQ(affinity.pick("a.example", up, kMinute - 1), 0u);
  EXPECT_EQ(affinity.pick("a.example", up, 2 * kMinute + 10), 1u);
}

TEST(HostAffinity, SharedByThreads) {
  HostAffinity affinity(20 * kMinute, {}, 8);
  TestAvailability up(8);
  std::vector<std::thread> threads;
  std::vector<std::set<size_t>> seen(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) seen[t].insert(*affinity.pick("one.example", up, 1 + i));
    });
  }
  for (std::thread& th : threads) th.join();
  std::set<size_t> all;
  for (const auto& s : seen) all.insert(s.begin(), s.end());
  EXPECT_EQ(all.size(), 1u);  // one host, one server, whichever thread saw it first
}

}  // namespace
}  // namespace harrow::balancer

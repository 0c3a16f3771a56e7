// The shared memory tier: lookups by key and Vary, replacement, purge, eviction, and many
// threads at once.
#include "core/cache/memory_tier.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/cache/cache_key.h"
#include "core/cache/fill_registry.h"

namespace harrow::cache {
namespace {

std::shared_ptr<StoredResponse> make(std::string url, size_t body_bytes,
                                     std::vector<std::string> vary = {},
                                     std::vector<HeaderField> request = {}) {
  auto e = std::make_shared<StoredResponse>();
  e->host = "h";
  e->url = url;
  e->primary_key = "f\x1fh\x1f" + url;
  e->vary = std::move(vary);
  e->secondary_key = secondary_key(e->vary, request);
  e->body.assign(body_bytes, 'x');
  return e;
}

TEST(MemoryTier, FindsWhatWasInserted) {
  MemoryTier tier(1 << 20, 1 << 16);
  auto e = make("/a", 100);
  ASSERT_TRUE(tier.insert(e));
  EXPECT_EQ(tier.find(e->primary_key, {}), e);
  EXPECT_EQ(tier.find("f\x1fh\x1f/b", {}), nullptr);
  EXPECT_EQ(tier.entries(), 1u);
  EXPECT_EQ(tier.bytes(), e->charge());
}

TEST(MemoryTier, VariantsBySecondaryKey) {
  MemoryTier tier(1 << 20, 1 << 16);
  std::vector<HeaderField> gzip = {{"Accept-Encoding", "gzip"}};
  std::vector<HeaderField> br = {{"Accept-Encoding", "br"}};
  auto g = make("/v", 10, {"accept-encoding"}, gzip);
  auto b = make("/v", 20, {"accept-encoding"}, br);
  tier.insert(g);
  tier.insert(b);
  EXPECT_EQ(tier.find(g->primary_key, gzip), g);
  EXPECT_EQ(tier.find(g->primary_key, br), b);
  EXPECT_EQ(tier.find(g->primary_key, {}), nullptr);
  // A response that varies on something else drops the variants keyed the old way.
  auto plain = make("/v", 5);
  tier.insert(plain);
  EXPECT_EQ(tier.find(g->primary_key, gzip), plain);
  EXPECT_EQ(tier.entries(), 1u);
}

TEST(MemoryTier, ReplacesAndErases) {
  MemoryTier tier(1 << 20, 1 << 16);
  auto a1 = make("/a", 10);
  auto a2 = make("/a", 30);
  tier.insert(a1);
  tier.insert(a2);
  EXPECT_EQ(tier.entries(), 1u);
  EXPECT_EQ(tier.bytes(), a2->charge());
  tier.erase(a1);  // not the stored one any more: nothing happens
  EXPECT_EQ(tier.find(a1->primary_key, {}), a2);
  tier.erase(a2);
  EXPECT_EQ(tier.entries(), 0u);
  EXPECT_EQ(tier.bytes(), 0u);
  EXPECT_EQ(tier.evictions(), 0u);
}

TEST(MemoryTier, PurgeByUrlAndPrefix) {
  MemoryTier tier(1 << 20, 1 << 16);
  for (const char* url : {"/img/a", "/img/b", "/imgx", "/doc"}) tier.insert(make(url, 10));
  EXPECT_EQ(tier.purge("h", "/imgx", false), 1u);
  EXPECT_EQ(tier.purge("", "/img/", true), 2u);
  EXPECT_EQ(tier.purge("other-host", "/doc", false), 0u);
  EXPECT_EQ(tier.entries(), 1u);
}

TEST(MemoryTier, RefusesAnObjectLargerThanAShard) {
  MemoryTier tier(64 * 1024, 16 * 1024);
  EXPECT_FALSE(tier.insert(make("/big", 200 * 1024)));
  EXPECT_EQ(tier.bytes(), 0u);
}

TEST(MemoryTier, HotObjectSurvivesAScan) {
  // S3-FIFO: an object hit repeatedly is promoted to the main queue and a stream of objects
  // seen once does not push it out.
  MemoryTier tier(64 * 1024, 64 * 1024);  // one shard
  ASSERT_EQ(tier.shard_count(), 1u);
  auto hot = make("/hot", 1000);
  tier.insert(hot);
  for (int i = 0; i < 500; ++i) {
    tier.find(hot->primary_key, {});
    tier.insert(make("/cold" + std::to_string(i), 1000));
    EXPECT_LE(tier.bytes(), tier.capacity());
  }
  EXPECT_EQ(tier.find(hot->primary_key, {}), hot);
  EXPECT_GT(tier.evictions(), 400u);
}

TEST(MemoryTier, ManyThreadsStayWithinTheBound) {
  MemoryTier tier(256 * 1024, 8 * 1024);
  constexpr int kThreads = 4;
  constexpr int kOps = 20000;
  std::vector<std::thread> threads;
  std::atomic<uint64_t> hits{0};
  auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) {
        std::string url = "/k" + std::to_string((i * 7 + t) % 200);
        std::string key = "f\x1fh\x1f" + url;
        if (tier.find(key, {}) != nullptr) {
          hits.fetch_add(1);
        } else {
          tier.insert(make(url, 1000 + (i % 3000)));
        }
        if (i % 1000 == 0) {
          EXPECT_LE(tier.bytes(), tier.capacity());
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LE(tier.bytes(), tier.capacity());
  EXPECT_GT(hits.load(), 0u);
  std::printf("memory tier: %d threads, %d lookups each, %.0f ops/s, %llu hits\n", kThreads, kOps,
              kThreads * kOps / seconds, static_cast<unsigned long long>(hits.load()));
}

TEST(FillRegistry, OneLeaderPerKey) {
  FillRegistry registry;
  bool leader = false;
  auto first = registry.join("k", leader);
  EXPECT_TRUE(leader);
  auto second = registry.join("k", leader);
  EXPECT_FALSE(leader);
  EXPECT_EQ(first, second);
  EXPECT_FALSE(second->done());
  registry.finish("k", first);
  EXPECT_TRUE(second->done());
  EXPECT_EQ(registry.in_flight(), 0u);
  registry.join("k", leader);
  EXPECT_TRUE(leader);
}

TEST(FillRegistry, SubscribersAreCalledOnceWhenTheFillEnds) {
  FillRegistry registry;
  bool leader = false;
  auto fill = registry.join("k", leader);
  int a = 0;
  int b = 0;
  EXPECT_TRUE(fill->subscribe([&a] { ++a; }));
  EXPECT_TRUE(fill->subscribe([&b] { ++b; }));
  EXPECT_EQ(fill->subscribers(), 2u);
  EXPECT_EQ(a + b, 0);
  registry.finish("k", fill);
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 1);
  registry.finish("k", fill);  // a second end calls nobody again
  EXPECT_EQ(a, 1);
  // Too late: the caller is told, and its callback is never called.
  int late = 0;
  EXPECT_FALSE(fill->subscribe([&late] { ++late; }));
  EXPECT_EQ(late, 0);
  EXPECT_EQ(fill->subscribers(), 0u);
}

TEST(FillRegistry, ASubscriberOnAnotherThreadIsCalledExactlyOnce) {
  // Subscribing races the end: each subscriber either hears the end or is told it came first.
  for (int round = 0; round < 200; ++round) {
    FillRegistry registry;
    bool leader = false;
    auto fill = registry.join("k", leader);
    std::atomic<int> called{0};
    std::atomic<int> refused{0};
    std::thread waiter([&] {
      for (int i = 0; i < 50; ++i) {
        if (!fill->subscribe([&called] { called.fetch_add(1); })) refused.fetch_add(1);
      }
    });
    registry.finish("k", fill);
    waiter.join();
    EXPECT_EQ(called.load() + refused.load(), 50);
  }
}

}  // namespace
}  // namespace harrow::cache

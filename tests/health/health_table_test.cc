#include "health/health_table.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace harrow::health {
namespace {

TEST(HealthTable, StartsHealthyAndAvailableAtGenerationZero) {
  HealthTable table(3);
  EXPECT_EQ(table.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(
        table.load(i),
        (ServerState{.healthy = true, .availability = Availability::Available, .generation = 0}));
    EXPECT_TRUE(table.load(i).takes_new_requests());
  }
  EXPECT_FALSE(table.panic());
}

TEST(HealthTable, StoreBumpsGenerationAndChangesOnlyThatServer) {
  HealthTable table(2);
  table.store(1, false, Availability::Available);
  EXPECT_FALSE(table.load(1).healthy);
  EXPECT_EQ(table.load(1).generation, 1u);
  EXPECT_EQ(table.load(0).generation, 0u);
  EXPECT_TRUE(table.load(0).takes_new_requests());
  table.store(1, true, Availability::Draining);
  EXPECT_EQ(table.load(1).generation, 2u);
  EXPECT_EQ(table.load(1).availability, Availability::Draining);
  EXPECT_FALSE(table.load(1).takes_new_requests());
  // Storing the same state again is still a store: the generation says a write happened.
  table.store(1, true, Availability::Draining);
  EXPECT_EQ(table.load(1).generation, 3u);
}

TEST(HealthTable, EveryStateRoundTrips) {
  HealthTable table(1);
  uint32_t generation = 0;
  for (bool healthy : {true, false}) {
    for (auto a : {Availability::Available, Availability::Draining, Availability::Unavailable}) {
      table.store(0, healthy, a);
      ServerState s = table.load(0);
      EXPECT_EQ(s.healthy, healthy);
      EXPECT_EQ(s.availability, a);
      EXPECT_EQ(s.generation, ++generation);
      EXPECT_EQ(s.takes_new_requests(), healthy && a == Availability::Available);
    }
  }
}

TEST(HealthTable, SharedServerIsOneStateSeenFromBothTables) {
  // A reload: the new snapshot's server 0 is the old snapshot's server 1 (same identity).
  HealthTable old_table(2);
  old_table.store(1, false, Availability::Draining);
  HealthTable new_table(3);
  new_table.share_server(0, old_table, 1);
  EXPECT_EQ(&new_table.health_word(0), &old_table.health_word(1));
  EXPECT_EQ(&new_table.probe_record(0), &old_table.probe_record(1));
  EXPECT_EQ(new_table.load(0), old_table.load(1));
  EXPECT_EQ(new_table.load(0).generation, 1u);

  // Writes through either table are the same write: generations continue, not restart.
  old_table.store(1, true, Availability::Available);
  EXPECT_EQ(
      new_table.load(0),
      (ServerState{.healthy = true, .availability = Availability::Available, .generation = 2}));
  new_table.store(0, false, Availability::Unavailable);
  EXPECT_EQ(
      old_table.load(1),
      (ServerState{.healthy = false, .availability = Availability::Unavailable, .generation = 3}));
  // The probe record is shared with the word.
  old_table.probe_record(1).probes[static_cast<int>(ProbeResultKind::Timeout)].fetch_add(
      1, std::memory_order_relaxed);
  EXPECT_EQ(new_table.probe_record(0).probes[static_cast<int>(ProbeResultKind::Timeout)].load(),
            1u);

  // The other servers stay their own.
  EXPECT_NE(&new_table.health_word(1), &old_table.health_word(0));
  EXPECT_NE(&new_table.probe_record(1), &old_table.probe_record(0));
  EXPECT_EQ(new_table.load(1).generation, 0u);
  EXPECT_EQ(old_table.load(0).generation, 0u);
}

TEST(HealthTable, SharedSlotOutlivesTheTableItCameFrom) {
  HealthTable new_table(1);
  {
    HealthTable old_table(1);
    old_table.store(0, false, Availability::Available);
    new_table.share_server(0, old_table, 0);
  }
  EXPECT_FALSE(new_table.load(0).healthy);
  new_table.store(0, true, Availability::Available);
  EXPECT_EQ(new_table.load(0).generation, 2u);
}

TEST(HealthTable, PanicFlagIsPerFarmAndSharedAcrossReload) {
  HealthTable a(2);
  HealthTable b(2);
  a.set_panic(true);
  EXPECT_TRUE(a.panic());
  EXPECT_FALSE(b.panic());  // another farm (or an unshared snapshot)

  b.share_panic(a);
  EXPECT_TRUE(b.panic());
  b.set_panic(false);
  EXPECT_FALSE(a.panic());
  a.set_panic(true);
  EXPECT_TRUE(b.panic());
  // Sharing the flag shares nothing else.
  a.store(0, false, Availability::Available);
  EXPECT_TRUE(b.load(0).healthy);
}

TEST(HealthTable, ProbeResultNames) {
  EXPECT_EQ(std::string(probe_result_name(ProbeResultKind::Pass)), "pass");
  EXPECT_EQ(std::string(probe_result_name(ProbeResultKind::ConnectFailed)), "connect_failed");
  EXPECT_EQ(std::string(probe_result_name(ProbeResultKind::Timeout)), "timeout");
  EXPECT_EQ(std::string(probe_result_name(ProbeResultKind::BadStatus)), "bad_status");
  EXPECT_EQ(std::string(probe_result_name(ProbeResultKind::BodyMismatch)), "body_mismatch");
  EXPECT_EQ(std::string(probe_result_name(ProbeResultKind::InvalidResponse)), "invalid_response");
}

// Workers read every server's word on every pick while the prober writes words and counters:
// each word must have its cache line to itself, with no other word and no probe record on it.
TEST(HealthTable, EachHealthWordIsAloneOnItsCacheLine) {
  static_assert(sizeof(HealthWord) == kCacheLine && alignof(HealthWord) == kCacheLine);
  constexpr size_t kServers = 5;
  HealthTable table(kServers);
  HealthTable kept(2);  // a reload: server 3 of `table` becomes server 0 of `kept`
  kept.share_server(0, table, 3);
  auto line = [](const void* p) { return reinterpret_cast<uintptr_t>(p) / kCacheLine; };
  std::vector<const void*> words, records;
  for (const HealthTable* t : {&table, &kept}) {
    for (size_t i = 0; i < t->size(); ++i) {
      const HealthWord& w = t->health_word(i);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(&w) % kCacheLine, 0u);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(&w.word), reinterpret_cast<uintptr_t>(&w));
      words.push_back(&w);
      records.push_back(&t->probe_record(i));
    }
  }
  for (size_t a = 0; a < words.size(); ++a) {
    for (size_t b = 0; b < words.size(); ++b) {
      if (words[a] != words[b]) {
        EXPECT_NE(line(words[a]), line(words[b]));
      }
    }
    for (const void* record : records) {
      // A record spans [record, record + sizeof): none of its lines may be a word's line.
      uintptr_t first = line(record);
      uintptr_t last = (reinterpret_cast<uintptr_t>(record) + sizeof(ProbeRecord) - 1) / kCacheLine;
      EXPECT_TRUE(line(words[a]) < first || line(words[a]) > last)
          << "word " << a << " shares a cache line with a probe record";
    }
  }
}

// A quick in-process check; tests/tsan/health_table_tsan.cc is the thorough one.
TEST(HealthTable, ReadersSeeWholeStatesWhileOneWriterFlips) {
  HealthTable table(1);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < 20000; ++i) {
      table.store(0, i % 2 == 0, i % 2 == 0 ? Availability::Draining : Availability::Available);
    }
    done = true;
  });
  uint32_t last = 0;
  while (!done) {
    ServerState s = table.load(0);
    // Writes pair healthy with Draining and unhealthy with Available: never a mix.
    if (s.generation > 0) {
      EXPECT_EQ(s.healthy, s.availability == Availability::Draining);
    }
    EXPECT_GE(s.generation, last);
    last = s.generation;
  }
  writer.join();
  EXPECT_EQ(table.load(0).generation, 20000u);
}

}  // namespace
}  // namespace harrow::health

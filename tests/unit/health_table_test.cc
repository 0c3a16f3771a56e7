#include "health/health_table.h"

#include <gtest/gtest.h>

#include <thread>

namespace harrow::health {
namespace {

TEST(HealthTable, StartsHealthyAndAvailable) {
  HealthTable table(3);
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(table.load(i).takes_new_requests());
}

TEST(HealthTable, StoreBumpsGenerationAndChangesOnlyThatServer) {
  HealthTable table(2);
  table.store(1, false, Availability::Available);
  EXPECT_FALSE(table.load(1).healthy);
  EXPECT_EQ(table.load(1).generation, 1u);
  EXPECT_TRUE(table.load(0).takes_new_requests());
  table.store(1, true, Availability::Draining);
  EXPECT_EQ(table.load(1).generation, 2u);
  EXPECT_FALSE(table.load(1).takes_new_requests());
}

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
}

}  // namespace
}  // namespace harrow::health

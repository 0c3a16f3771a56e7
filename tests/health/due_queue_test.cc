#include "health/due_queue.h"

#include <gtest/gtest.h>

#include <vector>

namespace harrow::health {
namespace {

std::vector<DueEntry*> drain(DueQueue& q, uint64_t now) {
  std::vector<DueEntry*> out;
  while (DueEntry* e = q.pop_due(now)) out.push_back(e);
  return out;
}

TEST(DueQueue, PopsInDueOrderAndSameMillisecondInAddOrder) {
  DueQueue q;
  DueEntry a, b, c, d;
  q.add(a, 40);
  q.add(b, 20);
  q.add(c, 40);
  q.add(d, 20);
  EXPECT_EQ(q.earliest(), 20u);
  EXPECT_EQ(drain(q, 19), std::vector<DueEntry*>{});
  EXPECT_EQ(drain(q, 39), (std::vector<DueEntry*>{&b, &d}));
  EXPECT_EQ(q.earliest(), 40u);
  EXPECT_EQ(drain(q, 1000), (std::vector<DueEntry*>{&a, &c}));
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(a.queued);
}

TEST(DueQueue, RemoveFromAnyPlaceOfABucketKeepsTheRest) {
  DueQueue q;
  DueEntry e[5];
  for (DueEntry& x : e) q.add(x, 10);
  q.remove(e[0]);  // head
  q.remove(e[2]);  // middle
  q.remove(e[4]);  // tail
  q.remove(e[4]);  // not queued: nothing
  EXPECT_EQ(drain(q, 10), (std::vector<DueEntry*>{&e[1], &e[3]}));
  EXPECT_TRUE(q.empty());
}

TEST(DueQueue, RemovingTheLastEntryOfTheEarliestBucketMovesTheEarliest) {
  DueQueue q;
  DueEntry a, b;
  q.add(a, 5);
  q.add(b, 9);
  q.remove(a);
  EXPECT_EQ(q.earliest(), 9u);
  q.remove(b);
  EXPECT_TRUE(q.empty());
}

TEST(DueQueue, AddingAQueuedEntryMovesIt) {
  DueQueue q;
  DueEntry a, b;
  q.add(a, 5);
  q.add(b, 7);
  q.add(a, 8);
  EXPECT_EQ(q.earliest(), 7u);
  EXPECT_EQ(drain(q, 7), std::vector<DueEntry*>{&b});
  EXPECT_EQ(drain(q, 8), std::vector<DueEntry*>{&a});
}

TEST(DueQueue, ManyEntriesOnAGridComeOutInOrder) {
  DueQueue q;
  std::vector<DueEntry> entries(1000);
  for (size_t i = 0; i < entries.size(); ++i) q.add(entries[i], (i * 7919 % 1000) / 20 * 20);
  uint64_t last = 0;
  size_t n = 0;
  while (DueEntry* e = q.pop_due(UINT64_MAX)) {
    EXPECT_GE(e->due, last);
    last = e->due;
    ++n;
  }
  EXPECT_EQ(n, entries.size());
}

}  // namespace
}  // namespace harrow::health

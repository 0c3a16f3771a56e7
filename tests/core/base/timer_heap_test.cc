#include "core/base/timer_heap.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <algorithm>
#include <string>
#include <vector>

namespace harrow {
namespace {

struct Owner {
  std::string name;
  std::vector<std::string>* fired;
  TimerHeap* heap;
  TimerHeap::Slot slot;
  uint64_t rearm_ms = 0;  // arms itself again once, from its own expiry
  TimerHeap::Slot* disarm_other = nullptr;
};

void expired(void* owner) {
  auto* o = static_cast<Owner*>(owner);
  o->fired->push_back(o->name);
  if (o->rearm_ms != 0) {
    o->heap->arm(&o->slot, o->rearm_ms);
    o->rearm_ms = 0;
  }
  if (o->disarm_other != nullptr) o->heap->disarm(o->disarm_other);
}

class TimerHeapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uv_loop_init(&loop_);
    heap_.init(&loop_, &expired);
  }
  void TearDown() override {
    heap_.close();
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }
  Owner owner(const std::string& name) {
    Owner o{name, &fired_, &heap_, {}};
    return o;
  }
  // Runs the loop until nothing is armed (bounded: the test's timeouts are milliseconds).
  void run_until_idle() {
    uint64_t start = uv_now(&loop_);
    while (heap_.armed_count() > 0 && uv_now(&loop_) - start < 5000) {
      uv_run(&loop_, UV_RUN_ONCE);
    }
  }

  uv_loop_t loop_{};
  TimerHeap heap_;
  std::vector<std::string> fired_;
};

TEST_F(TimerHeapTest, FiresInDeadlineOrderAndNeverAfterDisarm) {
  std::vector<Owner> owners;
  owners.reserve(6);
  for (const char* name : {"c", "a", "gone", "b", "moved", "d"}) owners.push_back(owner(name));
  for (Owner& o : owners) o.slot.owner = &o;
  heap_.arm(&owners[0].slot, 30);  // c
  heap_.arm(&owners[1].slot, 10);  // a
  heap_.arm(&owners[2].slot, 5);   // gone: disarmed below
  heap_.arm(&owners[3].slot, 20);  // b
  heap_.arm(&owners[4].slot, 1);   // moved later, past d
  heap_.arm(&owners[5].slot, 40);  // d
  heap_.arm(&owners[4].slot, 50);
  heap_.disarm(&owners[2].slot);
  EXPECT_FALSE(owners[2].slot.armed());
  EXPECT_EQ(heap_.armed_count(), 5u);
  run_until_idle();
  EXPECT_EQ(fired_, (std::vector<std::string>{"a", "b", "c", "d", "moved"}));
}

TEST_F(TimerHeapTest, CallbackMayRearmItselfAndDisarmOthers) {
  Owner first = owner("first");
  Owner second = owner("second");
  Owner third = owner("third");
  first.slot.owner = &first;
  second.slot.owner = &second;
  third.slot.owner = &third;
  first.rearm_ms = 30;
  first.disarm_other = &third.slot;
  heap_.arm(&first.slot, 5);
  heap_.arm(&second.slot, 15);
  heap_.arm(&third.slot, 20);
  run_until_idle();
  EXPECT_EQ(fired_, (std::vector<std::string>{"first", "second", "first"}));
  EXPECT_FALSE(first.slot.armed());
  EXPECT_FALSE(third.slot.armed());
}

TEST_F(TimerHeapTest, ManySlotsKeepTheHeapOrdered) {
  constexpr int kCount = 200;
  std::vector<Owner> owners;
  owners.reserve(kCount);
  for (int i = 0; i < kCount; ++i) owners.push_back(owner(std::to_string(i)));
  // Deadlines in a scrambled order, then every third disarmed and every fifth (from the second)
  // armed again, earlier.
  for (int i = 0; i < kCount; ++i) {
    owners[i].slot.owner = &owners[i];
    heap_.arm(&owners[i].slot, static_cast<uint64_t>((i * 37) % kCount) + 100);
  }
  for (int i = 0; i < kCount; i += 3) heap_.disarm(&owners[i].slot);
  for (int i = 1; i < kCount; i += 5) heap_.arm(&owners[i].slot, static_cast<uint64_t>(i % 7));
  // Check the order through the deadlines the slots hold as they expire.
  std::vector<uint64_t> deadlines;
  size_t expected = heap_.armed_count();
  while (heap_.armed_count() > 0) {
    uv_run(&loop_, UV_RUN_ONCE);
  }
  EXPECT_EQ(fired_.size(), expected);
  for (const std::string& name : fired_) deadlines.push_back(owners[std::stoi(name)].slot.deadline);
  EXPECT_TRUE(std::is_sorted(deadlines.begin(), deadlines.end()));
  for (int i = 0; i < kCount; i += 3) {
    if (i % 5 == 1) continue;  // armed again after the disarm
    EXPECT_EQ(std::count(fired_.begin(), fired_.end(), std::to_string(i)), 0) << i;
  }
}

}  // namespace
}  // namespace harrow

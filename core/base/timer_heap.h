// Many connections' timeouts on one libuv timer: each owner keeps a Slot (its deadline and
// its place in a min-heap, 24 B) instead of a uv_timer_t (152 B) of its own, which matters for
// thousands of idle keep-alive connections. Like DeadlineTimer, libuv's timer is moved only
// for an earlier deadline: a timer that fires early finds nothing due and is set again for the
// earliest deadline left. Worker thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <vector>

namespace harrow {

class TimerHeap {
 public:
  struct Slot {
    void* owner = nullptr;  // handed to the expiry callback
    uint64_t deadline = 0;  // loop time the armed timeout ends at
    uint32_t index = kNotArmed;
    bool armed() const { return index != kNotArmed; }
  };
  static constexpr uint32_t kNotArmed = UINT32_MAX;
  // Called once per armed slot whose deadline passed (the slot is disarmed first, so the
  // callback may arm it again, disarm others or close its owner).
  using Expired = void (*)(void* owner);

  TimerHeap() = default;
  TimerHeap(const TimerHeap&) = delete;
  TimerHeap& operator=(const TimerHeap&) = delete;

  void init(uv_loop_t* loop, Expired expired);
  // Arms (or moves) the slot's timeout to end `ms` from the loop's now.
  void arm(Slot* slot, uint64_t ms);
  void disarm(Slot* slot);
  // Closes libuv's timer (every slot must be disarmed); the loop can end afterwards.
  void close();
  size_t armed_count() const { return heap_.size(); }

 private:
  static void on_timer(uv_timer_t* t);
  void place(uint32_t i, Slot* slot) {
    heap_[i] = slot;
    slot->index = i;
  }
  void sift_up(uint32_t i);
  void sift_down(uint32_t i);
  void remove_at(uint32_t i);
  // Sets libuv's timer for the earliest deadline if it is not set for that or earlier.
  void schedule();

  uv_timer_t timer_{};
  Expired expired_ = nullptr;
  std::vector<Slot*> heap_;
  uint64_t due_ = 0;  // loop time libuv's timer is set for; 0: not set
};

}  // namespace harrow

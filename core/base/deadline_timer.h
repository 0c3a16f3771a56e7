// A timeout that an owner re-arms several times per exchange (head, body, keep-alive) without
// moving libuv's timer each time: arm() stores the deadline, and the uv_timer moves only for an
// earlier one; when it fires before the deadline it is set again for the rest, so the timeout
// still ends exactly at its deadline. The owner keeps the uv_timer_t (one of its handles,
// closed with it) and asks fired() first in its timer callback.
#pragma once

#include <uv.h>

#include <cstdint>

namespace harrow {

class DeadlineTimer {
 public:
  // Arms the timeout to end `ms` from the loop's now; `cb` is the owner's timer callback.
  void arm(uv_timer_t* timer, uv_timer_cb cb, uint64_t ms) {
    deadline_ = uv_now(timer->loop) + ms;
    armed_ = true;
    if (due_ == 0 || deadline_ < due_) {
      uv_timer_start(timer, cb, ms, 0);
      due_ = deadline_;
    }
  }
  // libuv's timer, if set, finds nothing to do when it fires.
  void disarm() { armed_ = false; }
  // From the timer callback: true when the armed timeout has run out (it is disarmed then);
  // false when nothing is armed or the timer fired early (set again for the rest).
  bool fired(uv_timer_t* timer, uv_timer_cb cb) {
    due_ = 0;
    if (!armed_) return false;
    uint64_t now = uv_now(timer->loop);
    if (now < deadline_) {
      arm(timer, cb, deadline_ - now);
      return false;
    }
    armed_ = false;
    return true;
  }

 private:
  uint64_t deadline_ = 0;  // loop time the armed timeout ends at
  uint64_t due_ = 0;       // loop time libuv's timer is set for; 0: not set
  bool armed_ = false;
};

}  // namespace harrow

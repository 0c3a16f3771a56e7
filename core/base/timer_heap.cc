#include "core/base/timer_heap.h"

namespace harrow {

void TimerHeap::init(uv_loop_t* loop, Expired expired) {
  expired_ = expired;
  uv_timer_init(loop, &timer_);
  timer_.data = this;
}

void TimerHeap::arm(Slot* slot, uint64_t ms) {
  uint64_t deadline = uv_now(timer_.loop) + ms;
  if (slot->armed()) {
    uint64_t before = slot->deadline;
    slot->deadline = deadline;
    if (deadline < before) {
      sift_up(slot->index);
    } else {
      sift_down(slot->index);
    }
  } else {
    slot->deadline = deadline;
    heap_.push_back(slot);
    place(static_cast<uint32_t>(heap_.size() - 1), slot);
    sift_up(slot->index);
  }
  schedule();
}

void TimerHeap::disarm(Slot* slot) {
  // libuv's timer stays set; if it fires for this deadline it finds nothing due.
  if (slot->armed()) remove_at(slot->index);
}

void TimerHeap::close() {
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
}

void TimerHeap::sift_up(uint32_t i) {
  Slot* slot = heap_[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (heap_[parent]->deadline <= slot->deadline) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, slot);
}

void TimerHeap::sift_down(uint32_t i) {
  Slot* slot = heap_[i];
  uint32_t n = static_cast<uint32_t>(heap_.size());
  for (;;) {
    uint32_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap_[child + 1]->deadline < heap_[child]->deadline) ++child;
    if (slot->deadline <= heap_[child]->deadline) break;
    place(i, heap_[child]);
    i = child;
  }
  place(i, slot);
}

void TimerHeap::remove_at(uint32_t i) {
  Slot* removed = heap_[i];
  Slot* last = heap_.back();
  heap_.pop_back();
  removed->index = kNotArmed;
  if (last == removed) return;
  place(i, last);
  sift_up(i);
  sift_down(last->index);
}

void TimerHeap::schedule() {
  if (heap_.empty()) return;
  uint64_t earliest = heap_.front()->deadline;
  if (due_ != 0 && due_ <= earliest) return;
  uint64_t now = uv_now(timer_.loop);
  uv_timer_start(&timer_, &TimerHeap::on_timer, earliest > now ? earliest - now : 0, 0);
  due_ = earliest;
}

void TimerHeap::on_timer(uv_timer_t* t) {
  auto* self = static_cast<TimerHeap*>(t->data);
  self->due_ = 0;
  uint64_t now = uv_now(t->loop);
  while (!self->heap_.empty() && self->heap_.front()->deadline <= now) {
    Slot* slot = self->heap_.front();
    self->remove_at(0);
    self->expired_(slot->owner);
  }
  self->schedule();
}

}  // namespace harrow

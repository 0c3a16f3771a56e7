// What falls due when, for a loop that has many things timed to the millisecond but few
// distinct times: every server's next probe. Entries due at the same millisecond share one
// bucket (probes fall due on a grid, so a thousand servers probed every second make about
// fifty buckets), so adding, moving and removing an entry touch a short ordered index and a
// list, and the loop needs one timer for all of them (the earliest bucket) instead of one per
// entry in its timer heap. Pure data structure: no clock, no loop.
#pragma once

#include <cstdint>
#include <map>

namespace harrow::health {

// Embedded in whatever is timed; owned by it, linked into at most one DueQueue at a time.
struct DueEntry {
  DueEntry* prev = nullptr;
  DueEntry* next = nullptr;
  uint64_t due = 0;     // valid while queued
  bool queued = false;  // linked into a queue
};

class DueQueue {
 public:
  DueQueue() = default;
  DueQueue(const DueQueue&) = delete;
  DueQueue& operator=(const DueQueue&) = delete;

  // Queues `entry` at `due`, moving it if it was queued already. Entries of one millisecond
  // come out in the order they were added.
  void add(DueEntry& entry, uint64_t due);
  // Unlinks `entry`; nothing if it is not queued.
  void remove(DueEntry& entry);

  bool empty() const { return buckets_.empty(); }
  // The earliest due time; only when !empty().
  uint64_t earliest() const { return buckets_.begin()->first; }
  // Unlinks and returns the first entry due at or before `now`, or nullptr if none is.
  DueEntry* pop_due(uint64_t now);

 private:
  struct Bucket {
    DueEntry* head = nullptr;
    DueEntry* tail = nullptr;
  };
  std::map<uint64_t, Bucket> buckets_;  // never holds an empty bucket
};

}  // namespace harrow::health

// What falls due when, for a loop that has many things timed to the millisecond but few
// distinct times: every server's next probe. Entries due at the same millisecond share one
// bucket (probes fall due on a grid, so a thousand servers probed every second make about
// fifty buckets), so the loop needs one timer for all of them (the earliest bucket) instead of
// one per entry in its timer heap. A bucket is an array of pointers, not a linked list:
// queueing and popping an entry touch the entry and its bucket, never its neighbours (which a
// thousand servers probed once a second find cold in the cache). Removing one before it is due
// (a reload) searches its bucket. Pure data structure: no clock, no loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

namespace harrow::health {

// Embedded in whatever is timed; owned by it, in at most one DueQueue at a time.
struct DueEntry {
  uint64_t due = 0;     // valid while queued
  bool queued = false;  // in a queue
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
    std::vector<DueEntry*> entries;
    size_t next = 0;  // entries before it have been popped
  };
  std::map<uint64_t, Bucket> buckets_;  // never holds an empty bucket
};

}  // namespace harrow::health

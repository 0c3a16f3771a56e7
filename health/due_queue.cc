#include "health/due_queue.h"

#include <algorithm>

namespace harrow::health {

void DueQueue::add(DueEntry& entry, uint64_t due) {
  remove(entry);
  buckets_[due].entries.push_back(&entry);
  entry.due = due;
  entry.queued = true;
}

void DueQueue::remove(DueEntry& entry) {
  if (!entry.queued) return;
  entry.queued = false;
  auto it = buckets_.find(entry.due);
  Bucket& b = it->second;
  auto begin = b.entries.begin() + static_cast<std::ptrdiff_t>(b.next);
  b.entries.erase(std::find(begin, b.entries.end(), &entry));
  if (b.next == b.entries.size()) buckets_.erase(it);
}

DueEntry* DueQueue::pop_due(uint64_t now) {
  if (buckets_.empty() || buckets_.begin()->first > now) return nullptr;
  auto it = buckets_.begin();
  Bucket& b = it->second;
  DueEntry* e = b.entries[b.next++];
  e->queued = false;
  if (b.next == b.entries.size()) buckets_.erase(it);
  return e;
}

}  // namespace harrow::health

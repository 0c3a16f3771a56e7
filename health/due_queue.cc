#include "health/due_queue.h"

namespace harrow::health {

void DueQueue::add(DueEntry& entry, uint64_t due) {
  remove(entry);
  Bucket& b = buckets_[due];
  entry.due = due;
  entry.queued = true;
  entry.next = nullptr;
  entry.prev = b.tail;
  if (b.tail != nullptr) {
    b.tail->next = &entry;
  } else {
    b.head = &entry;
  }
  b.tail = &entry;
}

void DueQueue::remove(DueEntry& entry) {
  if (!entry.queued) return;
  auto it = buckets_.find(entry.due);
  Bucket& b = it->second;
  if (entry.prev != nullptr) {
    entry.prev->next = entry.next;
  } else {
    b.head = entry.next;
  }
  if (entry.next != nullptr) {
    entry.next->prev = entry.prev;
  } else {
    b.tail = entry.prev;
  }
  entry.prev = entry.next = nullptr;
  entry.queued = false;
  if (b.head == nullptr) buckets_.erase(it);
}

DueEntry* DueQueue::pop_due(uint64_t now) {
  if (buckets_.empty() || buckets_.begin()->first > now) return nullptr;
  DueEntry* e = buckets_.begin()->second.head;
  remove(*e);
  return e;
}

}  // namespace harrow::health

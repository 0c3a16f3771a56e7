#include "core/cache/cache.h"

#include <utility>

namespace harrow::cache {

Cache::~Cache() {
  {
    std::lock_guard lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

void Cache::attach_disk(std::unique_ptr<DiskTier> disk) {
  disk_ = std::move(disk);
  writer_ = std::thread([this] { writer_loop(); });
}

void Cache::write_behind(EntryPtr entry) {
  if (disk_ == nullptr) return;
  size_t size = entry->charge();
  {
    std::lock_guard lock(queue_mu_);
    if (queued_bytes_ + size > kMaxQueuedBytes) {
      counters_.disk_writes_dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queued_bytes_ += size;
    queue_.push_back(std::move(entry));
  }
  queue_cv_.notify_one();
}

void Cache::writer_loop() {
  std::unique_lock lock(queue_mu_);
  for (;;) {
    queue_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, all written
    EntryPtr entry = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    if (!disk_->write(*entry))
      counters_.disk_write_failures.fetch_add(1, std::memory_order_relaxed);
    lock.lock();
    queued_bytes_ -= entry->charge();
  }
}

size_t Cache::purge(std::string_view host, std::string_view url, bool prefix) {
  size_t n = memory_.purge(host, url, prefix);
  if (disk_ != nullptr) n += disk_->purge(host, url, prefix);
  counters_.purged.fetch_add(n, std::memory_order_relaxed);
  return n;
}

}  // namespace harrow::cache

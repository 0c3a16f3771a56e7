// The process's response cache: the memory tier, the optional disk tier with the thread that
// writes to it, the fills under way and the counters the metrics show. One per process, shared
// by every worker (thread-safe throughout).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "core/cache/disk_tier.h"
#include "core/cache/fill_registry.h"
#include "core/cache/memory_tier.h"

namespace harrow::cache {

struct CacheCounters {
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> disk_hits{0};  // hits read back from the disk tier
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> consolidated{0};  // misses answered by another request's fill
  std::atomic<uint64_t> revalidated{0};   // stale entries the origin confirmed (304)
  std::atomic<uint64_t> stale_served{0};
  std::atomic<uint64_t> stores{0};
  std::atomic<uint64_t> purged{0};
  std::atomic<uint64_t> disk_write_failures{0};
  std::atomic<uint64_t> disk_writes_dropped{0};  // the write queue was full
};

class Cache {
 public:
  Cache(size_t memory_bytes, size_t max_object) : memory_(memory_bytes, max_object) {}
  // Writes what is queued for the disk tier, then stops its thread.
  ~Cache();
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  MemoryTier& memory() { return memory_; }
  const MemoryTier& memory() const { return memory_; }
  FillRegistry& fills() { return fills_; }
  CacheCounters& counters() { return counters_; }

  // Takes an opened disk tier and starts the thread that writes to it.
  void attach_disk(std::unique_ptr<DiskTier> disk);
  DiskTier* disk() { return disk_.get(); }
  const DiskTier* disk() const { return disk_.get(); }
  // Queues `entry` for the disk tier (nothing without one). The queue holds at most
  // kMaxQueuedBytes: beyond that an entry stays in memory only.
  void write_behind(EntryPtr entry);
  // Both tiers.
  size_t purge(std::string_view host, std::string_view url, bool prefix);

  static constexpr size_t kMaxQueuedBytes = 64 << 20;

 private:
  void writer_loop();

  MemoryTier memory_;
  FillRegistry fills_;
  CacheCounters counters_;
  std::unique_ptr<DiskTier> disk_;
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<EntryPtr> queue_;
  size_t queued_bytes_ = 0;
  bool stopping_ = false;
  std::thread writer_;
};

}  // namespace harrow::cache

// The process's response cache: the memory tier, the fills under way and the counters the
// metrics show. One per process, shared by every worker (thread-safe throughout).
#pragma once

#include <atomic>
#include <cstdint>

#include "core/cache/fill_registry.h"
#include "core/cache/memory_tier.h"

namespace harrow::cache {

struct CacheCounters {
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> consolidated{0};  // misses answered by another request's fill
  std::atomic<uint64_t> revalidated{0};   // stale entries the origin confirmed (304)
  std::atomic<uint64_t> stale_served{0};
  std::atomic<uint64_t> stores{0};
  std::atomic<uint64_t> purged{0};
};

class Cache {
 public:
  Cache(size_t memory_bytes, size_t max_object) : memory_(memory_bytes, max_object) {}
  MemoryTier& memory() { return memory_; }
  FillRegistry& fills() { return fills_; }
  CacheCounters& counters() { return counters_; }

 private:
  MemoryTier memory_;
  FillRegistry fills_;
  CacheCounters counters_;
};

}  // namespace harrow::cache

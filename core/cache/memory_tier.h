// The memory tier: responses kept in RAM, shared by every worker of the process, bounded in
// bytes (StoredResponse::charge()).
//
// Eviction is S3-FIFO (Yang et al., SOSP 2023) per shard rather than LRU: a hit only bumps an
// atomic frequency counter, so lookups take the shard's lock shared and never relink a list
// (LRU moves the entry to the front on every hit, a write under an exclusive lock that all
// workers contend for on a hot object); and objects seen once (a crawl, a scan of cold URLs)
// pass through the small queue and leave without flushing the hot set out of the main queue.
//
// Keys are split over shards by hash, each with its own lock and its share of the bound, so
// the tier as a whole never holds more than its bound.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/cache/stored_response.h"
#include "core/http1/http_head.h"

namespace harrow::cache {

using EntryPtr = std::shared_ptr<const StoredResponse>;

class MemoryTier {
 public:
  // `capacity`: bytes for all shards together. Shards: fewer when the capacity is small, so
  // one object of `max_object` fits any shard.
  MemoryTier(size_t capacity, size_t max_object);
  ~MemoryTier();
  MemoryTier(const MemoryTier&) = delete;
  MemoryTier& operator=(const MemoryTier&) = delete;

  // The entry for `primary` whose Vary values match `request_fields`, or null.
  EntryPtr find(std::string_view primary, std::span<const HeaderField> request_fields);
  // Stores `entry` (replacing the one with the same keys). False if it is larger than a
  // shard may hold (then nothing changes).
  bool insert(EntryPtr entry);
  // Removes `entry` if it is still the one stored under its keys.
  void erase(const EntryPtr& entry);
  // Removes the entries whose host and url match: host empty = any host; prefix: url starts
  // with `url`. Returns how many went.
  size_t purge(std::string_view host, std::string_view url, bool prefix);

  size_t capacity() const { return capacity_; }
  size_t max_object() const { return max_object_; }
  size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  size_t entries() const { return entries_.load(std::memory_order_relaxed); }
  uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }
  size_t shard_count() const { return shards_.size(); }

 private:
  struct Shard;
  Shard& shard_for(std::string_view primary);
  void evict_until_fits(Shard& shard);
  void remove_node(Shard& shard, std::string_view key, bool evicted);

  size_t capacity_;
  size_t max_object_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<size_t> bytes_{0};
  std::atomic<size_t> entries_{0};
  std::atomic<uint64_t> evictions_{0};
};

}  // namespace harrow::cache

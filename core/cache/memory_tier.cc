#include "core/cache/memory_tier.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <iterator>
#include <mutex>
#include <unordered_set>

#include "core/cache/cache_key.h"

namespace harrow::cache {

namespace {

// Separates the primary and secondary keys in the index (neither holds it: cache_key.cc).
constexpr char kKeySep = '\x1e';

std::string full_key(std::string_view primary, std::string_view secondary) {
  std::string key;
  key.reserve(primary.size() + 1 + secondary.size());
  key.append(primary).push_back(kKeySep);
  key.append(secondary);
  return key;
}

}  // namespace

struct MemoryTier::Shard {
  struct Node {
    Node(std::string k, EntryPtr e, size_t c) : key(std::move(k)), entry(std::move(e)), charge(c) {}
    std::string key;
    EntryPtr entry;
    size_t charge;
    // Hits since the node entered its queue (capped at 3); bumped under the shared lock.
    std::atomic<uint8_t> freq{0};
    bool main = false;
  };
  struct VaryRecord {
    std::vector<std::string> names;
    size_t variants = 0;
  };

  std::shared_mutex mu;
  size_t capacity = 0;
  size_t small_bytes = 0;
  size_t main_bytes = 0;
  std::list<Node> small;  // front: newest
  std::list<Node> main;
  std::unordered_map<std::string, std::list<Node>::iterator> index;
  std::unordered_map<std::string, VaryRecord> vary;  // primary key → its responses' Vary
  // Keys (hashed) evicted from the small queue unseen: back soon means worth the main queue.
  std::deque<uint64_t> ghost_fifo;
  std::unordered_multiset<uint64_t> ghost;
};

MemoryTier::MemoryTier(size_t capacity, size_t max_object)
    : capacity_(capacity), max_object_(max_object) {
  // Up to 16 shards, each able to hold four of the largest objects.
  size_t per_object = std::max<size_t>(max_object, 1) * 4;
  size_t count = std::clamp<size_t>(capacity / per_object, 1, 16);
  for (size_t i = 0; i < count; ++i) {
    shards_.push_back(std::make_unique<Shard>());
    shards_.back()->capacity = capacity / count;
  }
}

MemoryTier::~MemoryTier() = default;

MemoryTier::Shard& MemoryTier::shard_for(std::string_view primary) {
  return *shards_[std::hash<std::string_view>{}(primary) % shards_.size()];
}

EntryPtr MemoryTier::find(std::string_view primary, std::span<const HeaderField> request_fields) {
  Shard& shard = shard_for(primary);
  std::shared_lock lock(shard.mu);
  auto record = shard.vary.find(std::string(primary));
  if (record == shard.vary.end()) return nullptr;
  std::string key = full_key(primary, record->second.names.empty()
                                          ? std::string()
                                          : secondary_key(record->second.names, request_fields));
  auto it = shard.index.find(key);
  if (it == shard.index.end()) return nullptr;
  Shard::Node& node = *it->second;
  uint8_t f = node.freq.load(std::memory_order_relaxed);
  if (f < 3) node.freq.compare_exchange_weak(f, f + 1, std::memory_order_relaxed);
  return node.entry;
}

bool MemoryTier::insert(EntryPtr entry) {
  Shard& shard = shard_for(entry->primary_key);
  size_t charge = entry->charge();
  if (charge > shard.capacity) return false;
  std::unique_lock lock(shard.mu);
  auto record = shard.vary.find(entry->primary_key);
  if (record != shard.vary.end() && record->second.names != entry->vary) {
    // The origin changed what the response varies on: variants keyed the old way go.
    std::string prefix = full_key(entry->primary_key, {});
    std::vector<std::string> stale;
    for (const auto& [key, node] : shard.index) {
      if (key.compare(0, prefix.size(), prefix) == 0) stale.push_back(key);
    }
    for (const std::string& key : stale) remove_node(shard, key, false);
  }
  std::string key = full_key(entry->primary_key, entry->secondary_key);
  if (shard.index.count(key) != 0) remove_node(shard, key, false);
  Shard::VaryRecord& vary = shard.vary[entry->primary_key];
  vary.names = entry->vary;
  ++vary.variants;
  uint64_t hash = std::hash<std::string>{}(key);
  auto ghost = shard.ghost.find(hash);
  bool to_main = ghost != shard.ghost.end();
  if (to_main) shard.ghost.erase(ghost);
  std::list<Shard::Node>& queue = to_main ? shard.main : shard.small;
  queue.emplace_front(key, std::move(entry), charge);
  queue.front().main = to_main;
  (to_main ? shard.main_bytes : shard.small_bytes) += charge;
  shard.index.emplace(std::move(key), queue.begin());
  bytes_.fetch_add(charge, std::memory_order_relaxed);
  entries_.fetch_add(1, std::memory_order_relaxed);
  evict_until_fits(shard);
  return true;
}

void MemoryTier::evict_until_fits(Shard& shard) {
  while (shard.small_bytes + shard.main_bytes > shard.capacity) {
    // The small queue gives up its oldest while it holds more than its tenth (and more than
    // the object just inserted), or when the main queue is empty.
    bool from_small =
        !shard.small.empty() &&
        ((shard.small.size() > 1 && shard.small_bytes > shard.capacity / 10) || shard.main.empty());
    if (from_small) {
      Shard::Node& node = shard.small.back();
      if (node.freq.load(std::memory_order_relaxed) > 0) {
        // Seen again while in the small queue: promoted.
        node.freq.store(0, std::memory_order_relaxed);
        node.main = true;
        shard.small_bytes -= node.charge;
        shard.main_bytes += node.charge;
        shard.main.splice(shard.main.begin(), shard.small, std::prev(shard.small.end()));
        continue;
      }
      uint64_t hash = std::hash<std::string>{}(node.key);
      shard.ghost.insert(hash);
      shard.ghost_fifo.push_back(hash);
      size_t ghost_limit = std::max<size_t>(shard.index.size(), 64);
      while (shard.ghost_fifo.size() > ghost_limit) {
        auto it = shard.ghost.find(shard.ghost_fifo.front());
        if (it != shard.ghost.end()) shard.ghost.erase(it);
        shard.ghost_fifo.pop_front();
      }
      std::string key = node.key;
      remove_node(shard, key, true);
      continue;
    }
    Shard::Node& node = shard.main.back();
    uint8_t f = node.freq.load(std::memory_order_relaxed);
    if (f > 0) {
      node.freq.store(f - 1, std::memory_order_relaxed);
      shard.main.splice(shard.main.begin(), shard.main, std::prev(shard.main.end()));
      continue;
    }
    std::string key = node.key;
    remove_node(shard, key, true);
  }
}

void MemoryTier::remove_node(Shard& shard, std::string_view key, bool evicted) {
  auto it = shard.index.find(std::string(key));
  if (it == shard.index.end()) return;
  auto node = it->second;
  size_t charge = node->charge;
  auto record = shard.vary.find(node->entry->primary_key);
  if (record != shard.vary.end() && --record->second.variants == 0) shard.vary.erase(record);
  if (node->main) {
    shard.main_bytes -= charge;
    shard.main.erase(node);
  } else {
    shard.small_bytes -= charge;
    shard.small.erase(node);
  }
  shard.index.erase(it);
  bytes_.fetch_sub(charge, std::memory_order_relaxed);
  entries_.fetch_sub(1, std::memory_order_relaxed);
  if (evicted) evictions_.fetch_add(1, std::memory_order_relaxed);
}

void MemoryTier::erase(const EntryPtr& entry) {
  Shard& shard = shard_for(entry->primary_key);
  std::unique_lock lock(shard.mu);
  std::string key = full_key(entry->primary_key, entry->secondary_key);
  auto it = shard.index.find(key);
  if (it != shard.index.end() && it->second->entry == entry) remove_node(shard, key, false);
}

size_t MemoryTier::purge(std::string_view host, std::string_view url, bool prefix) {
  size_t removed = 0;
  for (auto& shard_ptr : shards_) {
    Shard& shard = *shard_ptr;
    std::unique_lock lock(shard.mu);
    std::vector<std::string> doomed;
    for (const auto& [key, node] : shard.index) {
      const StoredResponse& e = *node->entry;
      if (!host.empty() && e.host != host) continue;
      bool match = prefix ? std::string_view(e.url).starts_with(url) : e.url == url;
      if (match) doomed.push_back(key);
    }
    for (const std::string& key : doomed) remove_node(shard, key, false);
    removed += doomed.size();
  }
  return removed;
}

}  // namespace harrow::cache

#include "core/cache/fill_registry.h"

#include <functional>
#include <utility>

namespace harrow::cache {

FillRegistry::Shard& FillRegistry::shard_for(std::string_view primary) {
  return shards_[std::hash<std::string_view>{}(primary) % kShards];
}

std::shared_ptr<Fill> FillRegistry::join(std::string_view primary, bool& leader) {
  Shard& shard = shard_for(primary);
  std::lock_guard lock(shard.mu);
  auto [it, inserted] = shard.fills.try_emplace(std::string(primary));
  if (inserted) it->second = std::make_shared<Fill>();
  leader = inserted;
  return it->second;
}

void FillRegistry::finish(std::string_view primary, const std::shared_ptr<Fill>& fill) {
  Shard& shard = shard_for(primary);
  {
    std::lock_guard lock(shard.mu);
    auto it = shard.fills.find(std::string(primary));
    if (it != shard.fills.end() && it->second == fill) shard.fills.erase(it);
  }
  fill->end();
}

bool Fill::subscribe(std::function<void()> notify) {
  std::lock_guard lock(mu_);
  if (done_.load(std::memory_order_relaxed)) return false;
  waiters_.push_back(std::move(notify));
  return true;
}

void Fill::end() {
  std::vector<std::function<void()>> waiters;
  {
    std::lock_guard lock(mu_);
    if (done_.load(std::memory_order_relaxed)) return;
    done_.store(true, std::memory_order_release);
    waiters.swap(waiters_);
  }
  // Outside the lock: a callback may take its worker's mailbox lock.
  for (auto& notify : waiters) notify();
}

size_t Fill::subscribers() {
  std::lock_guard lock(mu_);
  return waiters_.size();
}

size_t FillRegistry::in_flight() {
  size_t n = 0;
  for (Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    n += shard.fills.size();
  }
  return n;
}

}  // namespace harrow::cache

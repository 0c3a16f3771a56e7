#include "core/cache/fill_registry.h"

#include <functional>

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
  fill->done.store(true, std::memory_order_release);
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

// Request consolidation (ARR's requestConsolidationEnabled): the first miss on a key fills it
// from the origin; misses on the same key meanwhile wait for that fill instead of asking the
// origin too. The registry only records which fills are under way; waiters (any worker)
// watch Fill::done and then look the key up again.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace harrow::cache {

struct Fill {
  std::atomic<bool> done{false};
};

class FillRegistry {
 public:
  // The fill under way for `primary`, or a new one the caller now leads (`leader` true).
  std::shared_ptr<Fill> join(std::string_view primary, bool& leader);
  // The leader is done (stored or not): waiters stop waiting.
  void finish(std::string_view primary, const std::shared_ptr<Fill>& fill);
  size_t in_flight();

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::shared_ptr<Fill>> fills;
  };
  Shard& shard_for(std::string_view primary);
  Shard shards_[kShards];
};

}  // namespace harrow::cache

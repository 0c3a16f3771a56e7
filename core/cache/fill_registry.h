// Request consolidation (ARR's requestConsolidationEnabled): the first miss on a key fills it
// from the origin; misses on the same key meanwhile wait for that fill instead of asking the
// origin too. The registry records which fills are under way; a waiter (on any worker)
// subscribes to the fill's end and is called back by the thread that ends it, then looks the
// key up again. The registry knows nothing of event loops: the callback is how a waiter's
// worker gets woken (cache_phase.cc posts to that worker's wake-up handle).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace harrow::cache {

class Fill {
 public:
  bool done() const { return done_.load(std::memory_order_acquire); }
  // Calls `notify` once, from the thread that ends the fill, when it ends. False (and
  // `notify` is dropped) if it has ended already.
  bool subscribe(std::function<void()> notify);
  // Ends the fill and calls every subscriber (FillRegistry::finish()).
  void end();
  size_t subscribers();

 private:
  std::atomic<bool> done_{false};
  std::mutex mu_;
  std::vector<std::function<void()>> waiters_;
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

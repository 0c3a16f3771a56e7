// Request consolidation's fills under ThreadSanitizer: workers join fills and subscribe to
// their ends while other threads end them, and each subscription posts to its worker's event
// loop through a uv_async_t and a locked mailbox, as CacheWakeup does (core/proxy/
// cache_wakeup.h). Every subscriber must be woken exactly once, or told the fill had already
// ended; TSan must see no race.
#include <uv.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/cache/fill_registry.h"

namespace {

struct Mailbox {
  uv_async_t async;
  std::mutex mu;
  bool closed = false;
  std::vector<int> ready;
  std::atomic<int> delivered{0};

  void post(int token) {
    std::lock_guard lock(mu);
    if (closed) return;
    ready.push_back(token);
    uv_async_send(&async);
  }
};

}  // namespace

int main() {
  constexpr int kRounds = 200;
  constexpr int kWaiters = 16;
  uv_loop_t loop;
  uv_loop_init(&loop);
  Mailbox box;
  uv_async_init(&loop, &box.async, [](uv_async_t* a) {
    auto* b = static_cast<Mailbox*>(a->data);
    std::vector<int> ready;
    {
      std::lock_guard lock(b->mu);
      ready.swap(b->ready);
    }
    b->delivered.fetch_add(static_cast<int>(ready.size()));
  });
  box.async.data = &box;
  std::atomic<bool> stop{false};
  std::thread loop_thread([&] {
    while (!stop.load()) uv_run(&loop, UV_RUN_ONCE);
  });

  harrow::cache::FillRegistry registry;
  int expected = 0;
  for (int round = 0; round < kRounds; ++round) {
    std::string key = "k" + std::to_string(round % 7);
    bool leader = false;
    std::shared_ptr<harrow::cache::Fill> fill = registry.join(key, leader);
    if (!leader) {
      std::fprintf(stderr, "round %d: a finished key was still in the registry\n", round);
      return 1;
    }
    std::atomic<int> refused{0};
    std::vector<std::thread> waiters;
    for (int w = 0; w < kWaiters; ++w) {
      waiters.emplace_back([&, w] {
        bool leads = false;
        std::shared_ptr<harrow::cache::Fill> same = registry.join(key, leads);
        // Joined before the end (the same fill) or after it (a new one this thread leads).
        if (leads) {
          registry.finish(key, same);
          refused.fetch_add(1);
          return;
        }
        if (!same->subscribe([&box, w] { box.post(w); })) refused.fetch_add(1);
      });
    }
    registry.finish(key, fill);
    for (std::thread& t : waiters) t.join();
    expected += kWaiters - refused.load();
  }
  for (int i = 0; i < 1000 && box.delivered.load() < expected; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  int delivered = box.delivered.load();
  {
    std::lock_guard lock(box.mu);
    box.closed = true;
  }
  stop.store(true);
  uv_async_send(&box.async);
  loop_thread.join();
  uv_close(reinterpret_cast<uv_handle_t*>(&box.async), nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (delivered != expected) {
    std::fprintf(stderr, "woken %d times for %d subscriptions\n", delivered, expected);
    return 1;
  }
  std::printf("fill registry: %d subscriptions, each woken once\n", expected);
  return 0;
}

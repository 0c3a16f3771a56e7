// How a request waiting on another request's cache fill learns that the fill ended, across
// workers: each worker has one CacheWakeup (a uv_async_t and a mailbox). The thread that ends a
// fill (any worker, or a fill that outlived its client) posts each waiter to its worker's
// mailbox and signals the handle; that worker's loop then resumes the waiters still there.
// No polling: a waiter costs nothing until it is woken or its requestConsolidationTimeout
// timer fires.
#pragma once

#include <uv.h>

#include <memory>
#include <mutex>
#include <vector>

namespace harrow {

struct CacheWork;

class CacheWakeup {
 public:
  // Creates the handle on `loop` (the worker's thread, before the loop runs).
  static std::shared_ptr<CacheWakeup> create(uv_loop_t* loop);
  CacheWakeup(const CacheWakeup&) = delete;
  CacheWakeup& operator=(const CacheWakeup&) = delete;

  // Any thread: `work`'s wait is over. Dropped once the worker has closed the handle.
  void post(std::weak_ptr<CacheWork> work);
  // Worker thread, at the loop's end: closes the handle; later posts are dropped.
  void close();

  CacheWakeup() = default;

 private:
  static void on_async(uv_async_t* handle);

  uv_async_t* async_ = nullptr;  // freed in its close callback
  std::mutex mu_;
  bool closed_ = false;
  std::vector<std::weak_ptr<CacheWork>> ready_;
};

}  // namespace harrow

#include "core/proxy/cache_wakeup.h"

#include <utility>

#include "core/proxy/cache_phase.h"

namespace harrow {

std::shared_ptr<CacheWakeup> CacheWakeup::create(uv_loop_t* loop) {
  auto wakeup = std::make_shared<CacheWakeup>();
  wakeup->async_ = new uv_async_t;
  uv_async_init(loop, wakeup->async_, &CacheWakeup::on_async);
  // The handle points at the object only while it is open: close() runs before the worker
  // lets go of its reference.
  wakeup->async_->data = wakeup.get();
  // A worker with nothing else to do must still be able to end its loop.
  uv_unref(reinterpret_cast<uv_handle_t*>(wakeup->async_));
  return wakeup;
}

void CacheWakeup::post(std::weak_ptr<CacheWork> work) {
  std::lock_guard lock(mu_);
  if (closed_) return;
  ready_.push_back(std::move(work));
  uv_async_send(async_);  // coalesced: one callback may take many posts
}

void CacheWakeup::close() {
  std::lock_guard lock(mu_);
  if (closed_) return;
  closed_ = true;
  ready_.clear();
  uv_close(reinterpret_cast<uv_handle_t*>(async_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
}

void CacheWakeup::on_async(uv_async_t* handle) {
  auto* self = static_cast<CacheWakeup*>(handle->data);
  std::vector<std::weak_ptr<CacheWork>> ready;
  {
    std::lock_guard lock(self->mu_);
    ready.swap(self->ready_);
  }
  for (std::weak_ptr<CacheWork>& weak : ready) {
    // The exchange may have ended (client gone) or timed out of its wait meanwhile.
    if (std::shared_ptr<CacheWork> work = weak.lock()) cache_wait_over(*work);
  }
}

}  // namespace harrow

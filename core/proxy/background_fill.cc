#include "core/proxy/background_fill.h"

#include <uv.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/proxy/cache_phase.h"
#include "core/proxy/exchange.h"
#include "core/proxy/metrics.h"
#include "core/proxy/phases.h"
#include "core/proxy/upstream_attempt.h"
#include "core/proxy/upstream_connection.h"
#include "core/proxy/worker.h"

namespace harrow {

namespace {

// The server's in-flight count and the balancer's on_start, taken over from an exchange and
// ended once, when the background work ends.
struct InFlight {
  ServerMetrics* metrics = nullptr;
  std::shared_ptr<balancer::Balancer> balancer;
  size_t server = 0;
  uint64_t started_ns = 0;
  uint64_t request_bytes = 0;

  void take(Exchange& ex) {
    if (!ex.in_flight_counted) return;
    ex.in_flight_counted = false;
    metrics = ex.server_metrics;
    balancer = std::move(ex.balancer);
    server = ex.server;
    started_ns = ex.exchange_started_ns;
    request_bytes = ex.request_bytes;
  }
  void end(bool success, uint64_t response_bytes) {
    if (metrics == nullptr) return;
    metrics->in_flight.sub();
    metrics = nullptr;
    if (balancer == nullptr) return;
    balancer::Finish finish;
    finish.now_ns = uv_hrtime();
    finish.latency_ns = finish.now_ns - started_ns;
    finish.bytes = request_bytes + response_bytes;
    finish.outcome = success ? balancer::Outcome::Success : balancer::Outcome::Failure;
    balancer->on_finish(server, finish);
    balancer.reset();
  }
};

class BackgroundFill;
// Per worker thread: a fill lives on the thread of the connection it uses.
thread_local std::vector<BackgroundFill*> running;

// What both kinds share: the server connection, the cache work, the pinned configuration.
class BackgroundFill : public UpstreamEvents {
 public:
  BackgroundFill(std::shared_ptr<CacheWork> work, std::shared_ptr<WorkerEpoch> epoch)
      : work_(std::move(work)), epoch_(std::move(epoch)) {
    running.push_back(this);
  }
  ~BackgroundFill() override {
    running.erase(std::find(running.begin(), running.end(), this));
    in_flight_.end(succeeded_, bytes_);
    // However it ended, the requests waiting on the fill stop waiting.
    work_->pending.reset();
    work_->finish_fill();
  }
  BackgroundFill(const BackgroundFill&) = delete;
  BackgroundFill& operator=(const BackgroundFill&) = delete;

  // The worker stops, or the fill gives up: the server connection closes and calls no more.
  // (A connection may be closed from inside its own callbacks, as a client exchange does when
  // it refuses a response head: its parser stops there.)
  virtual void stop() {
    if (up_ != nullptr) up_->close();
    delete this;
  }

  void upstream_read_end() override {}
  void upstream_complete(bool reusable) override {
    complete();
    succeeded_ = true;
    up_->release(reusable);
    delete this;
  }
  void upstream_failed(Failure, int) override {
    delete this;  // the connection closed itself; nothing is stored
  }
  void upstream_trailers(std::span<const http2::Field>) override {}
  void upstream_write_done() override {}
  // Not reachable (an upgrade is never cached); given up on if they ever come.
  void upstream_tunnel_bytes(IoBlock*, const char*, size_t) override { stop(); }
  void upstream_tunnel_eof() override { stop(); }
  void upstream_tunnel_shut() override { stop(); }

 protected:
  virtual void complete() {}

  UpstreamConnection* up_ = nullptr;
  std::shared_ptr<CacheWork> work_;
  std::shared_ptr<WorkerEpoch> epoch_;  // keeps the connection's configuration alive
  InFlight in_flight_;
  uint64_t bytes_ = 0;
  bool succeeded_ = false;
};

// The rest of a response whose client went away, into the cache.
class DetachedFill final : public BackgroundFill {
 public:
  DetachedFill(Exchange& ex, UpstreamConnection* up, uint64_t response_bytes)
      : BackgroundFill(std::move(ex.cache), ex.epoch) {
    up_ = up;
    in_flight_.take(ex);
    bytes_ = response_bytes;
  }

  void upstream_connected() override {}
  void upstream_head(const MessageHead&, int) override { stop(); }  // not reachable
  void upstream_body(IoBlock*, const char* data, size_t len) override {
    bytes_ += len;
    cache_fill_body(*work_, std::string_view(data, len));
    if (work_->pending == nullptr) stop();  // past maxResponseSize: not stored
  }

 private:
  void complete() override { cache_fill_complete(*work_); }
};

// A request whose client went away before the response head came: the whole exchange is kept
// (its request head, route and server connection; nothing of it points into the closed
// connection), and the response head is judged and stored as the client's would have been.
// Only where no outbound rule applies: those may read the client connection.
class DetachedExchange final : public BackgroundFill {
 public:
  DetachedExchange(Exchange* ex, Worker& worker, const ClientSide& client)
      : BackgroundFill(ex->cache, ex->epoch), ex_(ex), worker_(worker), peer_(*client.peer) {
    client_.listener = client.listener;
    client_.peer = &peer_;
  }
  ~DetachedExchange() override {
    release_upstream(*ex_, false, bytes_);  // (nothing left to release after a completion)
    worker_.exchanges().give_back(ex_);
    worker_.mutable_metrics().exchanges_active.sub();
  }

  void stop() override { delete this; }  // the destructor closes the server connection

  void upstream_connected() override {}
  void upstream_head(const MessageHead& head, int status) override {
    if (status < 200) return;  // interim
    IoBlock* block = block_acquire();
    HeadWriter writer(block->data, block->capacity);
    bool close = true;
    ResponseHeadResult result =
        build_client_response(*ex_, client_, worker_, head, status, close, writer);
    block_unref(block);
    ex_->status = status;
    // Stored (the body follows), or a 304 that refreshed the entry (nothing follows); else
    // there is nothing to read the body for.
    bool refreshed = ex_->cache_outcome == CacheOutcome::Revalidated;
    if (result.kind != ResponseHeadResult::Kind::Written ||
        (ex_->cache == nullptr || (ex_->cache->pending == nullptr && !refreshed))) {
      stop();
    }
  }
  void upstream_body(IoBlock*, const char* data, size_t len) override {
    bytes_ += len;
    cache_fill_body(*ex_, std::string_view(data, len));
    if (ex_->cache->pending == nullptr) stop();  // past maxResponseSize: not stored
  }
  void upstream_complete(bool reusable) override {
    cache_fill_complete(*ex_);
    ex_->response_done = true;
    release_upstream(*ex_, reusable, bytes_);
    delete this;
  }
  void upstream_failed(Failure, int) override {
    ex_->upstream = nullptr;  // it closed itself
    delete this;
  }

 private:
  Exchange* ex_;
  Worker& worker_;
  PeerAddress peer_;
  ClientSide client_;
};

// A stale entry's revalidation, the client answered already.
class Revalidation final : public BackgroundFill {
 public:
  Revalidation(std::shared_ptr<CacheWork> work, const Exchange& ex)
      : BackgroundFill(std::move(work), ex.epoch),
        head_request_(ex.head_request),
        timeout_ms_(config::to_ms(ex.snap->farms[ex.farm].config->protocol.timeout)),
        max_head_bytes_(ex.snap->farms[ex.farm].config->protocol.max_response_header_size) {}

  // The connection is the exchange's (pooled, or connecting); the head goes now or once
  // connected.
  void adopt(Exchange& ex, std::string head, bool connected) {
    up_ = ex.upstream;
    ex.upstream = nullptr;
    in_flight_.take(ex);
    ex.server_metrics = nullptr;  // the client's answer is the cache's, not the server's
    head_ = std::move(head);
    if (connected) send_head();
  }

  void upstream_connected() override { send_head(); }
  void upstream_head(const MessageHead& head, int status) override {
    if (status < 200) return;  // interim
    if (status == 304) {
      cache_refresh_entry(*work_, head.fields());
      refreshed_ = true;
      return;
    }
    // The origin has something else now (or failed): the stale entry no longer answers; the
    // next request fetches afresh. A body is not read for nothing.
    succeeded_ = status < 500;
    if (succeeded_) work_->cache->memory().erase(work_->entry);
    stop();
  }
  void upstream_body(IoBlock*, const char*, size_t len) override { bytes_ += len; }

 private:
  void send_head() {
    up_->begin_exchange(head_request_, timeout_ms_, max_head_bytes_);
    up_->out().add_copy(head_.data(), head_.size(), false);
    head_.clear();
    head_.shrink_to_fit();
    // A write that failed at once calls nothing back: give up now.
    if (up_->out().flush() != 0) stop();
  }
  void complete() override {
    if (!refreshed_) work_->finish_fill();
  }

  bool head_request_;
  uint64_t timeout_ms_;
  size_t max_head_bytes_;
  std::string head_;
  bool refreshed_ = false;
};

}  // namespace

bool detach_cache_fill(Exchange& ex, uint64_t response_bytes) {
  if (ex.cache == nullptr || ex.cache->pending == nullptr || ex.upstream == nullptr ||
      !ex.response_head_sent || ex.response_done || ex.upstream->tunnel()) {
    return false;
  }
  UpstreamConnection* up = ex.upstream;
  ex.upstream = nullptr;
  auto* fill = new DetachedFill(ex, up, response_bytes);
  up->hand_over(fill);
  if (ex.upstream_paused) {
    // Paused because the client was not taking the response: nothing holds it back now.
    ex.upstream_paused = false;
    up->resume_reading();
  }
  return true;
}

bool start_background_revalidation(Exchange& ex, Worker& worker, const ClientSide& client,
                                   size_t server) {
  CacheWork& mine = *ex.cache;
  mine.background = false;
  if (ex.snap->farms[ex.farm].http2 || ex.websocket) {
    mine.finish_fill();
    return false;
  }
  // The revalidation's own work: the key, the stale entry, the fill this request leads.
  auto work = std::make_shared<CacheWork>();
  work->cache = mine.cache;
  work->key = mine.key;
  work->request = mine.request;
  work->override_cc = mine.override_cc;
  work->validation_interval = mine.validation_interval;
  work->request_time = mine.request_time;
  work->entry = mine.entry;
  work->revalidating = true;
  work->fill = std::move(mine.fill);
  work->leader = mine.leader;
  mine.leader = false;
  auto* revalidation = new Revalidation(std::move(work), ex);
  bool pooled = start_on_server(ex, worker, server, revalidation);
  IoBlock* block = block_acquire();
  HeadWriter writer(block->data, block->capacity);
  build_upstream_request(ex, client, writer);
  bool written = !writer.unsafe() && !writer.overflowed();
  std::string head = written ? std::string(block->data, writer.size()) : std::string();
  block_unref(block);
  if (!written) {
    if (pooled) {
      ex.upstream->close();
      ex.upstream = nullptr;
    }
    revalidation->stop();  // ends the in-flight count with the exchange's below
    release_upstream(ex, false, 0);
    return false;
  }
  if (!pooled) connect_upstream(ex, worker, revalidation);
  revalidation->adopt(ex, std::move(head), pooled);
  return true;
}

bool detach_cache_exchange(Exchange*& ex, Worker& worker, const ClientSide& client) {
  Exchange& e = *ex;
  if (e.cache == nullptr || !e.cache->leader || e.upstream == nullptr || e.response_head_sent ||
      !e.request_done || e.request_has_body || e.upstream->tunnel() ||
      e.snap->router->has_outbound(e.site)) {
    return false;
  }
  auto* fill = new DetachedExchange(ex, worker, client);
  e.upstream->hand_over(fill);
  ex = nullptr;  // the fill gives it back to the worker's pool when it ends
  return true;
}

size_t background_fills() {
  return running.size();
}

void close_background_fills() {
  std::vector<BackgroundFill*> left = running;
  for (BackgroundFill* fill : left) fill->stop();
}

}  // namespace harrow

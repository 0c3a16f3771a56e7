#include "core/proxy/worker.h"

#include <malloc.h>
#include <sys/random.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core/base/io_buffer.h"
#include "core/base/log.h"
#include "core/proxy/background_fill.h"
#include "core/proxy/client_connection.h"
#include "core/proxy/h2_connection.h"
#include "core/proxy/upstream_connection.h"

namespace harrow {
Worker::Worker(int id, std::shared_ptr<const Snapshot> snapshot, std::vector<ListenSocket> sockets,
               uint64_t connection_limit, const AccessLogFile* access_log)
    : id_(id),
      connection_limit_(connection_limit),
      snapshot_(std::move(snapshot)),
      sockets_(std::move(sockets)),
      access_log_(access_log),
      metrics_(sockets_.size()) {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, 0) != sizeof seed)
    seed = uv_hrtime() ^ static_cast<uint64_t>(id);
  random_ = balancer::Random(seed);
  build_epoch();
  // The loop and its wake-up handle exist before the thread does, so request_stop() is safe
  // from the moment the worker is constructed.
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &wakeup_, [](uv_async_t* a) {
    auto* self = static_cast<Worker*>(a->data);
    std::shared_ptr<const Snapshot> next;
    {
      std::lock_guard<std::mutex> lock(self->pending_mutex_);
      next.swap(self->pending_snapshot_);
    }
    if (next) self->adopt(std::move(next));
    if (self->stop_requested_.load()) self->begin_stop();
    if (self->stop_now_requested_.load()) self->close_all_now();
  });
  wakeup_.data = this;
  cache_wakeup_ = CacheWakeup::create(&loop_);
  uv_timer_init(&loop_, &stop_timer_);
  stop_timer_.data = this;
  uv_idle_init(&loop_, &h2_flush_);
  h2_flush_.data = this;
  client_timers_.init(&loop_, &ClientConnection::on_deadline);
  uv_timer_init(&loop_, &trim_timer_);
  trim_timer_.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&trim_timer_));
  start_trim_timer();
}

void Worker::start_trim_timer() {
  trim_asleep_ = false;
  uv_timer_start(
      &trim_timer_, [](uv_timer_t* t) { static_cast<Worker*>(t->data)->trim_pools(); },
      kTrimPeriodMs, kTrimPeriodMs);
}

void Worker::wake_trim(void* worker) {
  auto* self = static_cast<Worker*>(worker);
  if (self->trim_asleep_ && !self->loop_closing_) self->start_trim_timer();
}

void Worker::trim_pools() {
  // Access log lines reach the file within a period even when traffic is too light to fill a
  // buffer (every line comes from an Exchange, whose take() wakes this timer).
  access_log_.flush();
  // Free-list entries that stayed unused for a whole period are not needed at this rate of
  // traffic: a burst (or an attack) does not pin its peak for the life of the process.
  bool busy = false;
  trim_freed_ += io_pools_trim(busy);
  trim_freed_ += exchanges_.trim() * (sizeof(Exchange) + 4096);  // with its buffers, roughly
  // The idle upstream pool grows to what the burst had in flight: the connections themselves
  // are few bytes each, but they were allocated in the middle of the burst's buffers and keep
  // the pages around them resident, so they go too once unused for a period.
  // They are freed when their handles have closed (a later loop turn): their memory is trimmed
  // in the next period.
  size_t closed = trim_idle_upstream();
  // glibc keeps freed memory in the thread's arena; malloc_trim returns its free pages. Only
  // once a lot was freed, and in a period when this worker did not need new memory (a burst
  // would take it straight back).
  if (trim_freed_ >= kTrimAtBytes && !busy) {
    malloc_trim(0);
    trim_freed_ = 0;
  }
  trim_freed_ += closed * kIdleUpstreamMemory;
  // Nothing left to give back and no request under way: stop waking up until one comes.
  if (!busy && closed == 0 && exchanges_.in_use() == 0 && exchanges_.free_count() == 0 &&
      io_pools_empty() && !idle_upstream_above_warm()) {
    if (trim_freed_ != 0) malloc_trim(0);
    trim_freed_ = 0;
    uv_timer_stop(&trim_timer_);
    trim_asleep_ = true;
    exchanges_.sleep_until_taken(&Worker::wake_trim, this);
  }
}

size_t Worker::trim_idle_upstream() {
  size_t closed = 0;
  std::vector<UpstreamConnection*> unused;
  for (size_t f = 0; f < epoch_->farms.size(); ++f) {
    WorkerFarm& farm = epoch_->farms[f];
    for (size_t s = 0; s < farm.servers.size(); ++s) {
      for (bool tls : {false, true}) {
        std::vector<UpstreamConnection*>& idle = farm.servers[s].pool(tls);
        size_t& low = farm.servers[s].pool_low(tls);
        size_t n = std::min(low, idle.size());
        n = std::min(n, idle.size() - std::min(idle.size(), kWarmIdlePerServer));
        // The least recently used are at the front.
        unused.assign(idle.begin(), idle.begin() + static_cast<std::ptrdiff_t>(n));
        idle.erase(idle.begin(), idle.begin() + static_cast<std::ptrdiff_t>(n));
        if (n != 0) idle.shrink_to_fit();
        low = idle.size();
        for (UpstreamConnection* up : unused) {
          server_metrics(*snapshot_, static_cast<int>(f), s).idle_connections.sub();
          up->close_detached();
        }
        closed += n;
      }
    }
  }
  return closed;
}

bool Worker::idle_upstream_above_warm() const {
  for (const WorkerFarm& farm : epoch_->farms) {
    for (const WorkerServer& slot : farm.servers) {
      if (slot.idle.size() > kWarmIdlePerServer || slot.idle_tls.size() > kWarmIdlePerServer) {
        return true;
      }
    }
  }
  return false;
}

Worker::~Worker() {
  join();
}

namespace {

// Two hex digits per byte, from a table: 16 two-byte copies instead of 32 shifts and lookups.
struct HexPairs {
  char digits[256][2];
};
constexpr HexPairs make_hex_pairs() {
  HexPairs t{};
  constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 256; ++i) {
    t.digits[i][0] = kHex[i >> 4];
    t.digits[i][1] = kHex[i & 0xF];
  }
  return t;
}
constexpr HexPairs kHexPairs = make_hex_pairs();

// Writes bytes `first` down to `last` of `v` (7 = most significant) as hex.
char* put_hex(char* p, uint64_t v, int first, int last) {
  for (int byte = first; byte >= last; --byte) {
    std::memcpy(p, kHexPairs.digits[(v >> (byte * 8)) & 0xFF], 2);
    p += 2;
  }
  return p;
}

}  // namespace

void Worker::new_request_id(char out[37]) {
  uint64_t hi = random_.next(), lo = random_.next();
  // Shaped as a version-4 UUID so log tools that expect one accept it.
  hi = (hi & ~0xF000ull) | 0x4000ull;
  lo = (lo & ~(3ull << 62)) | (2ull << 62);
  // Formatted by hand: snprintf's format parsing is a large share of a proxied request's work.
  char* p = put_hex(out, hi, 7, 4);
  *p++ = '-';
  p = put_hex(p, hi, 3, 2);
  *p++ = '-';
  p = put_hex(p, hi, 1, 0);
  *p++ = '-';
  p = put_hex(p, lo, 7, 6);
  *p++ = '-';
  p = put_hex(p, lo, 5, 0);
  *p = '\0';
}

void Worker::build_epoch() {
  epoch_ = std::make_shared<WorkerEpoch>();
  epoch_->snapshot = snapshot_;
  const config::LimitsConfig& limits = snapshot_->config->limits;
  epoch_->request_limits.max_request_line = limits.max_request_line;
  epoch_->request_limits.max_header_bytes = limits.max_request_header_bytes;
  epoch_->request_limits.max_header_count = limits.max_request_headers;
  epoch_->request_limits.max_body = limits.max_allowed_content_length;
  epoch_->request_limits.allow_trace = limits.allow_trace;
  std::vector<WorkerFarm>& farms = epoch_->farms;
  for (const SnapshotFarm& f : snapshot_->farms) {
    WorkerFarm state;
    state.runtime = &f;
    state.balancer = balancer::make_balancer(balanced_farm(f));
    state.availability = std::make_unique<FarmAvailability>(&f);
    state.servers.resize(f.servers.size());
    farms.push_back(std::move(state));
  }
}

void Worker::publish(std::shared_ptr<const Snapshot> snapshot) {
  {
    std::lock_guard<std::mutex> lock(pending_mutex_);
    pending_snapshot_ = std::move(snapshot);
  }
  uv_async_send(&wakeup_);
}

void Worker::adopt(std::shared_ptr<const Snapshot> next) {
  std::shared_ptr<const Snapshot> previous = snapshot_;
  std::shared_ptr<WorkerEpoch> old = epoch_;
  std::vector<WorkerFarm>& old_farms = old->farms;
  snapshot_ = std::move(next);
  build_epoch();
  // Idle connections to servers that are still configured stay pooled; the rest close.
  for (size_t f = 0; f < old_farms.size(); ++f) {
    for (size_t s = 0; s < old_farms[f].servers.size(); ++s) {
      std::vector<UpstreamConnection*> pooled;
      pooled.swap(old_farms[f].servers[s].idle);
      pooled.insert(pooled.end(), old_farms[f].servers[s].idle_tls.begin(),
                    old_farms[f].servers[s].idle_tls.end());
      old_farms[f].servers[s].idle_tls.clear();
      for (UpstreamConnection* up : pooled) {
        server_metrics(*previous, static_cast<int>(f), s).idle_connections.sub();
        size_t nf, ns;
        if (find_same_server(*snapshot_, *previous, f, s, nf, ns)) {
          up->rebind(snapshot_.get(), static_cast<int>(nf), ns);
          epoch_->farms[nf].servers[ns].pool(up->tls()).push_back(up);
          server_metrics(*snapshot_, static_cast<int>(nf), ns).idle_connections.add();
        } else {
          up->close_detached();
        }
      }
    }
  }
}

void Worker::start() {
  thread_ = std::thread([this] { run(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::request_stop() {
  stop_requested_.store(true);
  uv_async_send(&wakeup_);
}

void Worker::request_stop_now() {
  stop_requested_.store(true);
  stop_now_requested_.store(true);
  std::lock_guard<std::mutex> lock(wakeup_mutex_);
  if (!wakeup_closed_) uv_async_send(&wakeup_);
}

void Worker::close_all_now() {
  if (loop_closing_) return;
  log_line(LogLevel::Warn, "worker %d: stop now, closing %zu connections", id_,
           connections_.size());
  std::vector<ClientConnection*> left = connections_;
  for (ClientConnection* c : left) c->force_close();
}

void Worker::run() {
  for (ListenSocket& socket : sockets_) {
    auto* tcp = new uv_tcp_t;
    uv_tcp_init(&loop_, tcp);
    tcp->data = this;
    int rc = uv_tcp_open(tcp, socket.fd);
    if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(tcp), 4096, &Worker::on_connection);
    if (rc != 0) {
      log_line(LogLevel::Error, "worker %d: cannot listen on %s: %s", id_, socket.url.c_str(),
               uv_strerror(rc));
    }
    listeners_.push_back(tcp);
  }
  // A stop may have been requested before the async handle existed.
  if (stop_requested_.load()) begin_stop();
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  io_pools_release_thread();
  finished_.store(true);
}

void Worker::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<Worker*>(server->data);
  if (status != 0 || self->stopping_) return;
  const ListenSocket* socket = nullptr;
  for (size_t i = 0; i < self->listeners_.size(); ++i) {
    if (reinterpret_cast<uv_stream_t*>(self->listeners_[i]) == server) socket = &self->sockets_[i];
  }
  if (socket != nullptr) ClientConnection::accept_from(self, server, socket);
  // A connection may give blocks back before it takes an Exchange (a TLS handshake).
  if (self->trim_asleep_) wake_trim(self);
}

void Worker::log_overloaded(Failure failure) {
  ++overloaded_unlogged_;
  uint64_t now = uv_now(&loop_);
  if (overloaded_logged_ms_ != 0 && now - overloaded_logged_ms_ < 1000) return;
  overloaded_logged_ms_ = now;
  bool total = failure == Failure::overloaded;
  log_line(LogLevel::Warn, "503 %s worker=%d connections refused=%llu limit=%llu (%s)",
           total ? "overloaded" : "client_connection_limit", id_,
           static_cast<unsigned long long>(overloaded_unlogged_),
           static_cast<unsigned long long>(total ? connection_limit_
                                                 : config().limits.max_connections_per_client),
           total ? "maxConnections" : "maxConnectionsPerClient");
  overloaded_unlogged_ = 0;
}

bool Worker::client_ip_opened(const char* ip, uint32_t cap) {
  uint32_t& n = per_client_[ip];
  if (n >= cap) {
    if (n == 0) per_client_.erase(ip);
    return false;
  }
  ++n;
  return true;
}

void Worker::client_ip_closed(const char* ip) {
  auto it = per_client_.find(ip);
  if (it == per_client_.end()) return;
  if (--it->second == 0) per_client_.erase(it);
}

void Worker::connection_opened(ClientConnection* c) {
  c->worker_index = connections_.size();
  connections_.push_back(c);
}

void Worker::connection_closed(ClientConnection* c) {
  // Swap-remove keeps this O(1); the moved connection learns its new index.
  size_t i = c->worker_index;
  connections_[i] = connections_.back();
  connections_[i]->worker_index = i;
  connections_.pop_back();
  if (stopping_) maybe_finish_stop();
}

UpstreamConnection* Worker::take_idle(WorkerEpoch& epoch, int farm, size_t server, bool tls) {
  auto& idle = epoch.farm(farm).servers[server].pool(tls);
  if (idle.empty()) return nullptr;
  UpstreamConnection* up = idle.back();
  idle.pop_back();
  size_t& low = epoch.farm(farm).servers[server].pool_low(tls);
  if (idle.size() < low) low = idle.size();
  server_metrics(*epoch.snapshot, farm, server).idle_connections.sub();
  return up;
}

void Worker::give_idle(UpstreamConnection* up) {
  // A connection made for an older snapshot is not pooled: its indices mean nothing now.
  if (stopping_ || up->snapshot() != snapshot_.get()) {
    up->close();
    return;
  }
  auto& idle = epoch_->farm(up->farm()).servers[up->server()].pool(up->tls());
  if (idle.size() >= config().limits.max_idle_upstream_per_server) {
    up->close();
    return;
  }
  idle.push_back(up);
  server_metrics(*snapshot_, up->farm(), up->server()).idle_connections.add();
  up->enter_idle(config::to_ms(config().timeouts.upstream_idle));
}

void Worker::forget_idle(UpstreamConnection* up) {
  if (up->snapshot() != snapshot_.get()) return;
  auto& idle = epoch_->farm(up->farm()).servers[up->server()].pool(up->tls());
  auto it = std::find(idle.begin(), idle.end(), up);
  if (it != idle.end()) {
    idle.erase(it);
    size_t& low = epoch_->farm(up->farm()).servers[up->server()].pool_low(up->tls());
    if (idle.size() < low) low = idle.size();
    server_metrics(*snapshot_, up->farm(), up->server()).idle_connections.sub();
  }
}

void Worker::begin_stop() {
  if (stopping_) return;
  stopping_ = true;
  for (uv_tcp_t* tcp : listeners_) {
    uv_close(reinterpret_cast<uv_handle_t*>(tcp),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
  }
  listeners_.clear();
  // Idle keep-alive connections close now; busy ones after their current response.
  std::vector<ClientConnection*> snapshot = connections_;
  for (ClientConnection* c : snapshot) c->shutdown_when_idle();
  uv_timer_start(
      &stop_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Worker*>(t->data);
        log_line(LogLevel::Warn, "worker %d: shutdown timeout, closing %zu connections", self->id_,
                 self->connections_.size());
        std::vector<ClientConnection*> left = self->connections_;
        for (ClientConnection* c : left) c->force_close();
      },
      config::to_ms(config().timeouts.shutdown), 0);
  maybe_finish_stop();
}

void Worker::maybe_finish_stop() {
  if (!connections_.empty() || loop_closing_) return;
  loop_closing_ = true;
  for (WorkerFarm& farm : epoch_->farms) {
    for (WorkerServer& slot : farm.servers) {
      std::vector<UpstreamConnection*> idle = slot.idle;
      idle.insert(idle.end(), slot.idle_tls.begin(), slot.idle_tls.end());
      for (UpstreamConnection* up : idle) up->close();
    }
  }
  h2_sessions_.close_all();
  close_background_fills();
  uv_close(reinterpret_cast<uv_handle_t*>(&stop_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&h2_flush_), nullptr);
  client_timers_.close();
  access_log_.flush();
  uv_close(reinterpret_cast<uv_handle_t*>(&trim_timer_), nullptr);
  cache_wakeup_->close();
  std::lock_guard<std::mutex> lock(wakeup_mutex_);
  wakeup_closed_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&wakeup_), nullptr);
}

void Worker::flush_later(H2Connection* connection) {
  if (h2_to_flush_.empty()) {
    uv_idle_start(&h2_flush_, [](uv_idle_t* handle) {
      auto* self = static_cast<Worker*>(handle->data);
      self->h2_flushing_.swap(self->h2_to_flush_);
      // Indexed: flush_now may append to h2_to_flush_ (the next turn) or null an entry here.
      for (size_t i = 0; i < self->h2_flushing_.size(); ++i) {
        if (H2Connection* c = self->h2_flushing_[i]) c->flush_now();
      }
      self->h2_flushing_.clear();
      if (self->h2_to_flush_.empty()) uv_idle_stop(&self->h2_flush_);
    });
  }
  h2_to_flush_.push_back(connection);
}

void Worker::cancel_flush(H2Connection* connection) {
  std::erase(h2_to_flush_, connection);
  std::replace(h2_flushing_.begin(), h2_flushing_.end(), connection,
               static_cast<H2Connection*>(nullptr));
}

}  // namespace harrow

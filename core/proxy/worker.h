// One worker: a thread with its own uv_loop, its own SO_REUSEPORT listening sockets, its own
// client connections, balancers and upstream keep-alive pools. Workers share nothing mutable
// but the health tables (read-only for them) and their metrics (read by the admin thread).
#pragma once

#include <openssl/ssl.h>
#include <uv.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "balancer/balancer.h"
#include "core/base/failure.h"
#include "core/base/timer_heap.h"
#include "core/proxy/access_log.h"
#include "core/proxy/cache_wakeup.h"
#include "core/proxy/exchange.h"
#include "core/proxy/h2_upstream_session.h"
#include "core/proxy/metrics.h"
#include "core/proxy/snapshot.h"
#include "core/rewrite/router.h"

namespace harrow {

class ClientConnection;
class H2Connection;
class UpstreamConnection;

// A listening socket created and bound by the main thread, handed to one worker.
struct ListenSocket {
  int fd = -1;
  std::string url;      // "http://127.0.0.1:8080"
  std::string address;  // as configured ("0.0.0.0:80"): site bindings name it
  uint16_t port = 0;
  bool tls = false;                     // an https listener: connections start with a TLS handshake
  bool http2 = false;                   // HTTP/2 offered (ALPN on TLS, prior knowledge on plain)
  std::vector<std::string> host_names;  // site bindings' host names; empty = any host
  size_t index = 0;                     // position among the process's listeners (metrics)
};

// Per worker, per server of a farm: the idle keep-alive connections to it.
struct WorkerServer {
  std::vector<UpstreamConnection*> idle;      // most recently used last
  std::vector<UpstreamConnection*> idle_tls;  // the same over https (httpsPort)
  std::vector<UpstreamConnection*>& pool(bool tls) { return tls ? idle_tls : idle; }
  // The fewest connections each pool held since the last trim (Worker::trim_pools): those
  // sat unused for the whole period.
  size_t idle_low = 0;
  size_t idle_tls_low = 0;
  size_t& pool_low(bool tls) { return tls ? idle_tls_low : idle_low; }
  // The last TLS session the server gave: a new connection resumes it (abbreviated handshake).
  std::shared_ptr<SSL_SESSION> tls_session;
};

// Adapts a farm's health table to what the balancer asks.
class FarmAvailability final : public balancer::AvailableServers {
 public:
  explicit FarmAvailability(const SnapshotFarm* farm) : farm_(farm) {}
  bool available(size_t server) const override {
    return usable(server, health::Availability::Available);
  }
  // Whether a client already pinned to `server` (cookie affinity) may still go there: as for
  // new clients, except that a draining server keeps serving the clients it has.
  bool serves_affine(size_t server) const { return usable(server, health::Availability::Draining); }
  // The rest of available() is fixed for a snapshot's life; only health moves.
  uint64_t version() const override { return farm_->health->version(); }

 private:
  bool usable(size_t server, health::Availability worst) const {
    const ServerEndpoint& endpoint = farm_->servers[server];
    if (!endpoint.resolved || !endpoint.config->enabled || endpoint.config->weight == 0) {
      return false;
    }
    health::ServerState state = farm_->health->load(server);
    if (state.availability > worst) return false;
    // Below minServers healthy, health is disregarded (ARR's minServers, "panic mode").
    return state.healthy || farm_->health->panic();
  }

  const SnapshotFarm* farm_;
};

struct WorkerFarm {
  const SnapshotFarm* runtime = nullptr;
  // shared_ptr: an exchange keeps the balancer it started on, so its on_finish() lands there
  // even if a reload replaced the farm's balancer meanwhile.
  std::shared_ptr<balancer::Balancer> balancer;
  std::unique_ptr<FarmAvailability> availability;
  std::vector<WorkerServer> servers;
};

// One configuration as one worker runs it: the snapshot and the per-farm state built for it
// (balancers, availability, pools). An exchange pins the epoch current when its first byte
// arrived (Exchange::epoch) and reads everything from it — limits, timeouts, farms by index,
// balancers — so a reload in the middle never mixes two configurations in one request. A reload
// makes a new epoch; the old one lives until the last exchange that pinned it ends (its idle
// pools were handed to the new epoch when it was made, so nothing but those exchanges uses it).
struct WorkerEpoch {
  std::shared_ptr<const Snapshot> snapshot;
  std::vector<WorkerFarm> farms;
  RequestLimits request_limits;  // the configuration's <limits> as the request decoder takes them

  const config::Config& config() const { return *snapshot->config; }
  WorkerFarm& farm(int index) { return farms[static_cast<size_t>(index)]; }
};

class Worker {
 public:
  // `access_log` may be null (no access log configured); it outlives the worker.
  Worker(int id, std::shared_ptr<const Snapshot> snapshot, std::vector<ListenSocket> sockets,
         uint64_t connection_limit, const AccessLogFile* access_log);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();
  // Thread-safe: the worker switches to `snapshot` between requests; exchanges in flight
  // finish on the one they started with.
  void publish(std::shared_ptr<const Snapshot> snapshot);
  // Thread-safe: stop accepting, let in-flight requests finish (up to the shutdown timeout),
  // then end the loop.
  void request_stop();
  // Thread-safe: a second stop signal. Stops as request_stop() does, then closes every
  // connection at once instead of waiting for the shutdown timeout.
  void request_stop_now();
  // Thread-safe: the loop has ended (every connection closed).
  bool finished() const { return finished_.load(); }
  void join();

  const WorkerMetrics& metrics() const { return metrics_; }

  // --- used by connections (worker thread only) ---
  uv_loop_t* loop() { return &loop_; }
  const Snapshot& snapshot() const { return *snapshot_; }
  const std::shared_ptr<const Snapshot>& snapshot_ptr() const { return snapshot_; }
  const config::Config& config() const { return *snapshot_->config; }
  // The current epoch, which a new exchange pins (WorkerEpoch).
  const std::shared_ptr<WorkerEpoch>& epoch() const { return epoch_; }
  ServerMetrics& server_metrics(const Snapshot& snap, int farm, size_t server) const {
    return snap.farms[static_cast<size_t>(farm)].metrics[static_cast<size_t>(id_)][server];
  }
  WorkerMetrics& mutable_metrics() { return metrics_; }
  RouteScratch& route_scratch() { return route_scratch_; }
  ExchangePool& exchanges() { return exchanges_; }
  TimerHeap& client_timers() { return client_timers_; }
  // HTTP/2 connections with frames to send are written once per loop turn, before the next
  // poll: a response's head, body and end, and many streams' frames, go out in one write.
  void flush_later(H2Connection* connection);
  void cancel_flush(H2Connection* connection);
  AccessLogBuffer& access_log() { return access_log_; }
  // Where cache fills ending on any thread wake this worker's waiting requests.
  const std::shared_ptr<CacheWakeup>& cache_wakeup() const { return cache_wakeup_; }
  bool stopping() const { return stopping_; }
  int id() const { return id_; }
  uint64_t connection_limit() const { return connection_limit_; }

  balancer::Random& random() { return random_; }
  // Writes a fresh random GUID (36 characters and a NUL) for ARR's X-ARR-LOG-ID.
  void new_request_id(char out[37]);

  // Logs connections refused at a limit, at most once a second.
  void log_overloaded(Failure failure);
  // maxConnectionsPerClient: counts a connection from `ip`; false if it is one too many.
  bool client_ip_opened(const char* ip, uint32_t cap);
  void client_ip_closed(const char* ip);
  void connection_opened(ClientConnection* c);
  void connection_closed(ClientConnection* c);

  // Takes an idle connection to the server (over TLS or not) from `epoch`'s pools, or null (an
  // older epoch's pools are empty: they moved to the current one).
  UpstreamConnection* take_idle(WorkerEpoch& epoch, int farm, size_t server, bool tls = false);
  // Offers a connection whose exchange ended cleanly for reuse; closes it if the pool is full
  // or the worker is stopping.
  void give_idle(UpstreamConnection* up);
  void forget_idle(UpstreamConnection* up);
  // The HTTP/2 connections to servers of farms spoken to over HTTP/2.
  H2UpstreamSessions& h2_sessions() { return h2_sessions_; }

 private:
  void run();
  void adopt(std::shared_ptr<const Snapshot> next);
  void build_epoch();
  void begin_stop();
  void maybe_finish_stop();
  void close_all_now();
  static void on_connection(uv_stream_t* server, int status);
  // Frees blocks, write requests and Exchanges the free lists kept unused for a whole period,
  // closes pooled upstream connections that sat unused as long (beyond a few kept warm), and
  // hands freed memory back to the system once this worker is quiet; flushes the access log.
  // Runs every period while there is something to trim, and sleeps (no timer) once there is
  // not, until requests or connections come again.
  void trim_pools();
  // Closes the pooled upstream connections that stayed unused since the last call, beyond
  // kWarmIdlePerServer per pool; returns how many.
  size_t trim_idle_upstream();
  // Whether some pool holds more than kWarmIdlePerServer connections.
  bool idle_upstream_above_warm() const;
  void start_trim_timer();
  static void wake_trim(void* worker);

  int id_;
  uint64_t connection_limit_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::vector<ListenSocket> sockets_;
  uv_loop_t loop_{};
  H2UpstreamSessions h2_sessions_{&loop_};
  uv_async_t wakeup_{};
  std::shared_ptr<CacheWakeup> cache_wakeup_;
  uv_timer_t stop_timer_{};
  uv_idle_t h2_flush_{};  // runs while h2_to_flush_ is not empty
  std::vector<H2Connection*> h2_to_flush_;
  // The list being flushed: swapped with h2_to_flush_ each turn, so both keep their capacity and
  // a turn allocates nothing. A connection that goes away during the turn is nulled here.
  std::vector<H2Connection*> h2_flushing_;
  uv_timer_t trim_timer_{};  // gives back what the free lists kept unused (trim_pools)
  AccessLogBuffer access_log_;
  std::vector<uv_tcp_t*> listeners_;
  std::shared_ptr<WorkerEpoch> epoch_;  // built for snapshot_
  RouteScratch route_scratch_;
  TimerHeap client_timers_;  // the client connections' timeouts
  ExchangePool exchanges_;   // for this worker's client connections
  WorkerMetrics metrics_;
  std::vector<ClientConnection*> connections_;  // for shutdown; index kept in the connection
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> stop_now_requested_{false};
  std::atomic<bool> finished_{false};
  // wakeup_ may be signalled from other threads only until the loop closes it.
  std::mutex wakeup_mutex_;
  bool wakeup_closed_ = false;
  std::mutex pending_mutex_;  // taken only to hand over a reloaded snapshot
  std::shared_ptr<const Snapshot> pending_snapshot_;
  std::unordered_map<std::string, uint32_t> per_client_;  // open connections per client IP
  uint64_t overloaded_logged_ms_ = 0;                     // last "connection limit" log line
  uint64_t overloaded_unlogged_ = 0;                      // refusals since then
  bool stopping_ = false;
  bool loop_closing_ = false;
  static constexpr uint64_t kTrimPeriodMs = 1000;
  static constexpr size_t kTrimAtBytes = 1024 * 1024;
  // Pooled upstream connections per server never closed for sitting unused (upstreamIdle
  // still closes them): after a pause, the next requests find a connection ready.
  static constexpr size_t kWarmIdlePerServer = 4;
  // What a pooled upstream connection holds, roughly (its object, handles, allocator overhead).
  static constexpr size_t kIdleUpstreamMemory = 1024;
  size_t trim_freed_ = 0;     // bytes freed since the last malloc_trim
  bool trim_asleep_ = false;  // the trim timer is stopped until requests come again
  balancer::Random random_;   // seeded from the kernel at start
  std::thread thread_;
};

}  // namespace harrow

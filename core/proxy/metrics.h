// Counters a worker keeps about its own traffic. Each counter has exactly one writer (the
// worker that owns it), so increments are plain relaxed load+store, never a locked
// instruction; the admin thread reads them with relaxed loads and sums across workers.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "core/base/failure.h"

namespace harrow {

class Counter {
 public:
  void add(uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// A latency histogram with fixed buckets from 100 µs to 60 s (Prometheus cumulative buckets
// are computed when rendering; each bucket here counts only its own range). Single writer.
class LatencyHistogram {
 public:
  static constexpr int kBuckets = 18;  // upper bounds below, plus +Inf
  static constexpr uint64_t kBoundsMicros[kBuckets] = {
      100,       250,       500,       1'000,      2'500,      5'000,
      10'000,    25'000,    50'000,    100'000,    250'000,    500'000,
      1'000'000, 2'500'000, 5'000'000, 10'000'000, 30'000'000, 60'000'000};

  void observe(uint64_t micros) {
    int i = 0;
    while (i < kBuckets && micros > kBoundsMicros[i]) ++i;
    buckets_[i].add();
    sum_micros_.add(micros);
  }
  // Observations in bucket i alone (i == kBuckets: above the last bound).
  uint64_t bucket(int i) const { return buckets_[i].get(); }
  uint64_t count() const {
    uint64_t n = 0;
    for (const Counter& b : buckets_) n += b.get();
    return n;
  }
  uint64_t sum_micros() const { return sum_micros_.get(); }
  void add_from(const LatencyHistogram& other) {
    for (int i = 0; i <= kBuckets; ++i) buckets_[i].add(other.buckets_[i].get());
    sum_micros_.add(other.sum_micros_.get());
  }

 private:
  Counter buckets_[kBuckets + 1];
  Counter sum_micros_;
};

// Estimates quantile q (0..1) of histograms summed over workers, in seconds, by linear
// interpolation inside the bucket (as Prometheus's histogram_quantile does); 0 when empty.
template <typename Histograms>
double latency_quantile(const Histograms& histograms, double q) {
  uint64_t counts[LatencyHistogram::kBuckets + 1] = {};
  uint64_t total = 0;
  for (const LatencyHistogram* h : histograms) {
    for (int i = 0; i <= LatencyHistogram::kBuckets; ++i) {
      counts[i] += h->bucket(i);
      total += h->bucket(i);
    }
  }
  if (total == 0) return 0;
  double rank = q * static_cast<double>(total);
  uint64_t seen = 0;
  for (int i = 0; i <= LatencyHistogram::kBuckets; ++i) {
    if (static_cast<double>(seen + counts[i]) >= rank && counts[i] > 0) {
      if (i == LatencyHistogram::kBuckets) return LatencyHistogram::kBoundsMicros[i - 1] / 1e6;
      double lower = i == 0 ? 0 : static_cast<double>(LatencyHistogram::kBoundsMicros[i - 1]);
      double upper = static_cast<double>(LatencyHistogram::kBoundsMicros[i]);
      double within = (rank - static_cast<double>(seen)) / static_cast<double>(counts[i]);
      return (lower + (upper - lower) * within) / 1e6;
    }
    seen += counts[i];
  }
  return LatencyHistogram::kBoundsMicros[LatencyHistogram::kBuckets - 1] / 1e6;
}

struct ServerMetrics {
  // Adds another set of counts (carrying a server's counters into a reloaded snapshot).
  void add_from(const ServerMetrics& other);

  Counter responses_by_class[6];  // index status/100 (0 = no response sent)
  Counter failures[kFailureCount];
  Counter in_flight;
  Counter bytes_to_server;
  Counter bytes_from_server;
  Counter connections_opened;
  Counter connections_reused;
  Counter idle_connections;
  Counter retries;
  // Failed exchanges and responses matching the farm's liveTrafficFailureCodes; the farm's
  // prober folds these into the server's health.
  Counter live_failures;
  // Cookie affinity: requests sent here because their cookie named this server, and clients
  // given a cookie for it (first visit, or the server their cookie named was gone).
  Counter affinity_kept;
  Counter affinity_assigned;
  // WebSocket upgrades (ARR's totalWebSocketRequests, currentWebSocketRequests,
  // failedWebSocketRequests, webSocketBytesSent/Received): upgrade requests sent to this server,
  // tunnels open now, upgrades that failed (502: connect failure, reset, timeout, a bad answer),
  // and the bytes carried through tunnels each way (also counted in bytes_to/from_server).
  Counter websocket_requests;
  Counter websocket_current;
  Counter websocket_failures;
  Counter websocket_bytes_to_server;
  Counter websocket_bytes_from_server;
  LatencyHistogram response_time;    // request start to the last response byte from the server
  LatencyHistogram connect_time;     // TCP connect, for new upstream connections
  LatencyHistogram first_byte_time;  // request start to the response head from the server
};

// One listening address, as a worker sees it.
struct ListenerMetrics {
  Counter connections_accepted;
  Counter connections_active;
  Counter connections_rejected;
  Counter requests;
  Counter failures[kFailureCount];
};

// Per-server counters live in the config snapshot (see snapshot.h), one row per worker; these
// are the worker's own.
struct WorkerMetrics {
  explicit WorkerMetrics(size_t listeners = 0) : listeners(listeners) {}
  std::vector<ListenerMetrics> listeners;  // indexed like the listening sockets
  Counter connections_accepted;
  Counter connections_active;
  Counter connections_rejected;
  Counter exchanges_active;  // client connections with a request under way (core/proxy/exchange.h)
  Counter tls_handshake_failures;    // https listeners: handshakes that failed (or were garbage)
  Counter http2_connections_active;  // client connections speaking HTTP/2
  Counter http2_streams;             // HTTP/2 streams opened by clients
  Counter requests;
  Counter failures[kFailureCount];  // every failure, including those with no farm or server
};

inline void ServerMetrics::add_from(const ServerMetrics& o) {
  for (int i = 0; i < 6; ++i) responses_by_class[i].add(o.responses_by_class[i].get());
  for (int i = 0; i < kFailureCount; ++i) failures[i].add(o.failures[i].get());
  bytes_to_server.add(o.bytes_to_server.get());
  bytes_from_server.add(o.bytes_from_server.get());
  connections_opened.add(o.connections_opened.get());
  connections_reused.add(o.connections_reused.get());
  retries.add(o.retries.get());
  live_failures.add(o.live_failures.get());
  affinity_kept.add(o.affinity_kept.get());
  affinity_assigned.add(o.affinity_assigned.get());
  websocket_requests.add(o.websocket_requests.get());
  websocket_failures.add(o.websocket_failures.get());
  websocket_bytes_to_server.add(o.websocket_bytes_to_server.get());
  websocket_bytes_from_server.add(o.websocket_bytes_from_server.get());
  response_time.add_from(o.response_time);
  connect_time.add_from(o.connect_time);
  first_byte_time.add_from(o.first_byte_time);
  // in_flight, idle_connections and websocket_current are gauges of the old snapshot's own
  // connections.
}

}  // namespace harrow

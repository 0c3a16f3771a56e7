#include "core/admin/admin.h"

#include "core/admin/explain.h"

#include <arpa/inet.h>
#include <llhttp.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <memory>
#include <sstream>

#include "core/base/ascii.h"
#include "core/base/failure.h"
#include "core/base/log.h"
#include "core/base/socket_address.h"
#include "core/http1/http_head.h"

namespace harrow {
namespace {

constexpr size_t kMaxAdminRequest = 16 * 1024;

std::string escape_label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string escape_json(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

const char* kClassLabels[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};

template <typename Fn>
uint64_t sum_server(const Snapshot& snap, size_t farm, size_t server, Fn get) {
  uint64_t total = 0;
  for (const auto& row : snap.farms[farm].metrics) total += get(row[server]);
  return total;
}

template <typename Fn>
uint64_t sum_worker(const AdminSources& s, Fn get) {
  uint64_t total = 0;
  for (const WorkerMetrics* w : s.workers) total += get(*w);
  return total;
}

}  // namespace

namespace {

// Prometheus's standard process_* metrics, read from /proc.
void render_process_metrics(std::ostringstream& o, double start_time) {
  auto family = [&](const char* name, const char* type, const char* help) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  };
  long page = sysconf(_SC_PAGESIZE);
  long ticks = sysconf(_SC_CLK_TCK);
  std::ifstream statm("/proc/self/statm");
  uint64_t size_pages = 0, resident_pages = 0;
  statm >> size_pages >> resident_pages;
  std::ifstream stat("/proc/self/stat");
  std::string stat_line;
  std::getline(stat, stat_line);
  uint64_t utime = 0, stime = 0;
  // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
  size_t close = stat_line.rfind(')');
  if (close != std::string::npos) {
    std::istringstream fields(stat_line.substr(close + 2));
    std::string skip;
    for (int i = 3; i < 14; ++i) fields >> skip;
    fields >> utime >> stime;
  }
  uint64_t fds = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++fds;
  }
  family("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.");
  o << "process_cpu_seconds_total "
    << static_cast<double>(utime + stime) / static_cast<double>(ticks) << "\n";
  family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  o << "process_resident_memory_bytes " << resident_pages * static_cast<uint64_t>(page) << "\n";
  family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
  o << "process_virtual_memory_bytes " << size_pages * static_cast<uint64_t>(page) << "\n";
  family("process_open_fds", "gauge", "Open file descriptors.");
  o << "process_open_fds " << fds << "\n";
  struct rlimit limit {};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    family("process_max_fds", "gauge", "Maximum number of open file descriptors.");
    o << "process_max_fds " << limit.rlim_cur << "\n";
  }
  if (start_time > 0) {
    family("process_start_time_seconds", "gauge", "Start time of the process (Unix time).");
    o << "process_start_time_seconds " << std::fixed << std::setprecision(3) << start_time
      << std::defaultfloat << "\n";
  }
}

}  // namespace

// The response cache's counters and its memory tier's size (shared by every worker).
void render_cache_metrics(std::ostringstream& o, cache::Cache& c) {
  auto family = [&](const char* name, const char* type, const char* help) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  };
  const cache::CacheCounters& n = c.counters();
  const std::pair<const char*, const char*> counters[] = {
      {"harrow_cache_hits_total", "Requests answered from the cache."},
      {"harrow_cache_misses_total", "Cacheable requests the cache could not answer."},
      {"harrow_cache_consolidated_total",
       "Misses answered by the response another request was fetching (request consolidation)."},
      {"harrow_cache_revalidated_total", "Stale entries the origin confirmed with a 304."},
      {"harrow_cache_stale_served_total", "Stale entries served without the origin's word."},
      {"harrow_cache_stores_total", "Responses stored."},
      {"harrow_cache_purged_total", "Entries removed through the admin API."}};
  const uint64_t values[] = {n.hits.load(),        n.misses.load(),       n.consolidated.load(),
                             n.revalidated.load(), n.stale_served.load(), n.stores.load(),
                             n.purged.load()};
  for (size_t i = 0; i < std::size(counters); ++i) {
    family(counters[i].first, "counter", counters[i].second);
    o << counters[i].first << " " << values[i] << "\n";
  }
  family("harrow_cache_evictions_total", "counter", "Entries evicted to stay within the bound.");
  o << "harrow_cache_evictions_total{tier=\"memory\"} " << c.memory().evictions() << "\n";
  if (c.disk() != nullptr) {
    o << "harrow_cache_evictions_total{tier=\"disk\"} " << c.disk()->evictions() << "\n";
  }
  family("harrow_cache_disk_hits_total", "counter", "Hits read back from the disk tier.");
  o << "harrow_cache_disk_hits_total " << n.disk_hits.load() << "\n";
  family("harrow_cache_disk_write_failures_total", "counter",
         "Entries the disk tier could not write (an I/O error).");
  o << "harrow_cache_disk_write_failures_total " << n.disk_write_failures.load() << "\n";
  // Not a fault: the disk is slower than the fills, and the entry stays in memory only.
  family("harrow_cache_disk_writes_dropped_total", "counter",
         "Entries not written to the disk tier because its write queue was full.");
  o << "harrow_cache_disk_writes_dropped_total " << n.disk_writes_dropped.load() << "\n";
  family("harrow_cache_bytes", "gauge", "Bytes the cache holds, by tier.");
  o << "harrow_cache_bytes{tier=\"memory\"} " << c.memory().bytes() << "\n";
  if (c.disk() != nullptr) o << "harrow_cache_bytes{tier=\"disk\"} " << c.disk()->bytes() << "\n";
  family("harrow_cache_capacity_bytes", "gauge", "The bound of each tier.");
  o << "harrow_cache_capacity_bytes{tier=\"memory\"} " << c.memory().capacity() << "\n";
  if (c.disk() != nullptr && c.disk()->max_bytes() != 0) {
    o << "harrow_cache_capacity_bytes{tier=\"disk\"} " << c.disk()->max_bytes() << "\n";
  }
  family("harrow_cache_entries", "gauge", "Responses the cache holds, by tier.");
  o << "harrow_cache_entries{tier=\"memory\"} " << c.memory().entries() << "\n";
  if (c.disk() != nullptr) {
    o << "harrow_cache_entries{tier=\"disk\"} " << c.disk()->entries() << "\n";
  }
}

std::string render_metrics(const Snapshot& snap, const AdminSources& s) {
  std::ostringstream o;
  auto family = [&](const char* name, const char* type, const char* help) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  };
  family("harrow_build_info", "gauge", "Harrow's version.");
  o << "harrow_build_info{version=\"" HARROW_VERSION "\"} 1\n";
  if (s.reloads != nullptr && s.reload_failures != nullptr) {
    family("harrow_config_reloads_total", "counter", "Configuration reloads applied.");
    o << "harrow_config_reloads_total " << s.reloads->get() << "\n";
    family("harrow_config_reload_failures_total", "counter",
           "Configuration reloads rejected (the previous configuration kept serving).");
    o << "harrow_config_reload_failures_total " << s.reload_failures->get() << "\n";
  }
  if (s.extra_metrics) o << s.extra_metrics();
  if (s.last_reload_success != nullptr) {
    family("harrow_config_last_reload_success_timestamp_seconds", "gauge",
           "When the configuration being served was loaded (Unix time).");
    o << "harrow_config_last_reload_success_timestamp_seconds " << std::fixed
      << std::setprecision(3) << *s.last_reload_success << std::defaultfloat << "\n";
  }
  family("harrow_workers", "gauge", "Worker threads.");
  o << "harrow_workers " << s.workers.size() << "\n";
  render_process_metrics(o, s.start_time);
  if (snap.cache != nullptr) render_cache_metrics(o, *snap.cache);
  family("harrow_connections_accepted_total", "counter", "Client connections accepted.");
  o << "harrow_connections_accepted_total "
    << sum_worker(s, [](const WorkerMetrics& w) { return w.connections_accepted.get(); }) << "\n";
  family("harrow_connections_active", "gauge", "Client connections open now.");
  o << "harrow_connections_active "
    << sum_worker(s, [](const WorkerMetrics& w) { return w.connections_active.get(); }) << "\n";
  family("harrow_exchanges_active", "gauge",
         "Client connections with a request being read, forwarded or answered now (idle "
         "keep-alive connections hold none).");
  o << "harrow_exchanges_active "
    << sum_worker(s, [](const WorkerMetrics& w) { return w.exchanges_active.get(); }) << "\n";
  family("harrow_connections_rejected_total", "counter",
         "Client connections closed at once because the connection limit was reached.");
  o << "harrow_connections_rejected_total "
    << sum_worker(s, [](const WorkerMetrics& w) { return w.connections_rejected.get(); }) << "\n";
  family("harrow_tls_handshake_failures_total", "counter",
         "TLS handshakes on https listeners that failed (bad bytes, no shared cipher, alerts).");
  o << "harrow_tls_handshake_failures_total "
    << sum_worker(s, [](const WorkerMetrics& w) { return w.tls_handshake_failures.get(); }) << "\n";
  family("harrow_http2_connections_active", "gauge", "Client connections speaking HTTP/2 now.");
  o << "harrow_http2_connections_active "
    << sum_worker(s, [](const WorkerMetrics& w) { return w.http2_connections_active.get(); })
    << "\n";
  family("harrow_http2_streams_total", "counter",
         "HTTP/2 streams clients opened (refused ones included).");
  o << "harrow_http2_streams_total "
    << sum_worker(s, [](const WorkerMetrics& w) { return w.http2_streams.get(); }) << "\n";
  family("harrow_requests_total", "counter", "Requests whose head was read completely.");
  o << "harrow_requests_total "
    << sum_worker(s, [](const WorkerMetrics& w) { return w.requests.get(); }) << "\n";
  struct ListenerFamily {
    const char* name;
    const char* type;
    const char* help;
    uint64_t (*get)(const ListenerMetrics&);
  };
  static const ListenerFamily kListenerFamilies[] = {
      {"harrow_listener_connections_accepted_total", "counter",
       "Client connections accepted, per listener.",
       [](const ListenerMetrics& m) { return m.connections_accepted.get(); }},
      {"harrow_listener_connections_active", "gauge", "Client connections open now, per listener.",
       [](const ListenerMetrics& m) { return m.connections_active.get(); }},
      {"harrow_listener_connections_rejected_total", "counter",
       "Client connections refused at the connection limit, per listener.",
       [](const ListenerMetrics& m) { return m.connections_rejected.get(); }},
      {"harrow_listener_requests_total", "counter", "Requests read, per listener.",
       [](const ListenerMetrics& m) { return m.requests.get(); }},
  };
  for (const ListenerFamily& fam : kListenerFamilies) {
    family(fam.name, fam.type, fam.help);
    for (size_t l = 0; l < s.listeners.size(); ++l) {
      uint64_t v = 0;
      for (const WorkerMetrics* w : s.workers) {
        if (l < w->listeners.size()) v += fam.get(w->listeners[l]);
      }
      o << fam.name << "{listener=\"" << escape_label(s.listeners[l]) << "\"} " << v << "\n";
    }
  }
  family("harrow_listener_request_failures_total", "counter",
         "Requests failed or answered by Harrow, per listener and reason (reasons seen so far).");
  for (size_t l = 0; l < s.listeners.size(); ++l) {
    for (int r = 0; r < kFailureCount; ++r) {
      uint64_t v = 0;
      for (const WorkerMetrics* w : s.workers) {
        if (l < w->listeners.size()) v += w->listeners[l].failures[r].get();
      }
      if (v == 0) continue;
      o << "harrow_listener_request_failures_total{listener=\"" << escape_label(s.listeners[l])
        << "\",reason=\"" << failure_token(static_cast<Failure>(r)) << "\"} " << v << "\n";
    }
  }
  family("harrow_request_failures_total", "counter",
         "Requests Harrow failed or answered itself, by reason.");
  for (int r = 0; r < kFailureCount; ++r) {
    o << "harrow_request_failures_total{reason=\"" << failure_token(static_cast<Failure>(r))
      << "\"} " << sum_worker(s, [r](const WorkerMetrics& w) { return w.failures[r].get(); })
      << "\n";
  }

  struct ServerFamily {
    const char* name;
    const char* type;
    const char* help;
    uint64_t (*get)(const ServerMetrics&);
  };
  static const ServerFamily kServerFamilies[] = {
      {"harrow_server_in_flight_requests", "gauge", "Requests being served by the server now.",
       [](const ServerMetrics& m) { return m.in_flight.get(); }},
      {"harrow_server_sent_bytes_total", "counter", "Request body bytes sent to the server.",
       [](const ServerMetrics& m) { return m.bytes_to_server.get(); }},
      {"harrow_server_received_bytes_total", "counter",
       "Response body bytes received from the server.",
       [](const ServerMetrics& m) { return m.bytes_from_server.get(); }},
      {"harrow_server_connections_opened_total", "counter",
       "Upstream connections established (failed attempts count as failures).",
       [](const ServerMetrics& m) { return m.connections_opened.get(); }},
      {"harrow_server_connections_reused_total", "counter",
       "Requests sent on a pooled keep-alive connection.",
       [](const ServerMetrics& m) { return m.connections_reused.get(); }},
      {"harrow_server_idle_connections", "gauge", "Pooled idle keep-alive connections.",
       [](const ServerMetrics& m) { return m.idle_connections.get(); }},
      {"harrow_server_retries_total", "counter",
       "Requests this server failed that were sent again: to another server after a connect "
       "failure or reset, or on a fresh connection after a stale pooled one.",
       [](const ServerMetrics& m) { return m.retries.get(); }},
      {"harrow_server_affinity_kept_total", "counter",
       "Requests sent to this server because their affinity cookie named it.",
       [](const ServerMetrics& m) { return m.affinity_kept.get(); }},
      {"harrow_server_affinity_assigned_total", "counter",
       "Affinity cookies set for this server: a client's first visit, or its server was gone.",
       [](const ServerMetrics& m) { return m.affinity_assigned.get(); }},
      {"harrow_server_websocket_requests_total", "counter",
       "WebSocket upgrade requests sent to the server (ARR's totalWebSocketRequests).",
       [](const ServerMetrics& m) { return m.websocket_requests.get(); }},
      {"harrow_server_websocket_current", "gauge",
       "WebSocket tunnels open to the server now (ARR's currentWebSocketRequests).",
       [](const ServerMetrics& m) { return m.websocket_current.get(); }},
      {"harrow_server_websocket_failures_total", "counter",
       "WebSocket upgrades that failed with a 502 (ARR's failedWebSocketRequests, its 502.5).",
       [](const ServerMetrics& m) { return m.websocket_failures.get(); }},
  };
  // Label sets are built once per scrape, not once per family.
  std::vector<std::vector<std::string>> server_labels(snap.farms.size());
  for (size_t f = 0; f < snap.farms.size(); ++f) {
    const SnapshotFarm& farm = snap.farms[f];
    std::string prefix = "farm=\"" + escape_label(farm.config->name) + "\",server=\"";
    std::string suffix = "\",pool=\"" + escape_label(farm.config->application_pool) + "\"";
    for (const ServerEndpoint& ep : farm.servers) {
      server_labels[f].push_back(prefix + escape_label(ep.label) + suffix);
    }
  }
  auto labels = [&](size_t f, size_t i) -> const std::string& { return server_labels[f][i]; };
  family("harrow_server_responses_total", "counter",
         "Responses from (or on behalf of) a server, by status class.");
  for (size_t f = 0; f < snap.farms.size(); ++f) {
    for (size_t i = 0; i < snap.farms[f].servers.size(); ++i) {
      for (int c = 1; c < 6; ++c) {
        o << "harrow_server_responses_total{" << labels(f, i) << ",code=\"" << kClassLabels[c]
          << "\"} "
          << sum_server(snap, f, i,
                        [c](const ServerMetrics& m) { return m.responses_by_class[c].get(); })
          << "\n";
      }
    }
  }
  family("harrow_server_failures_total", "counter", "Failed exchanges with a server, by reason.");
  for (size_t f = 0; f < snap.farms.size(); ++f) {
    for (size_t i = 0; i < snap.farms[f].servers.size(); ++i) {
      for (int r = 0; r < kFailureCount; ++r) {
        uint64_t v =
            sum_server(snap, f, i, [r](const ServerMetrics& m) { return m.failures[r].get(); });
        // A server has a series for each reason it has failed with: 19 zero series per server
        // would dominate the scrape of a large farm. (Totals per reason are always complete,
        // in harrow_request_failures_total.)
        if (v == 0) continue;
        o << "harrow_server_failures_total{" << labels(f, i) << ",reason=\""
          << failure_token(static_cast<Failure>(r)) << "\"} " << v << "\n";
      }
    }
  }
  for (const ServerFamily& fam : kServerFamilies) {
    family(fam.name, fam.type, fam.help);
    for (size_t f = 0; f < snap.farms.size(); ++f) {
      for (size_t i = 0; i < snap.farms[f].servers.size(); ++i) {
        o << fam.name << "{" << labels(f, i) << "} " << sum_server(snap, f, i, fam.get) << "\n";
      }
    }
  }
  family("harrow_server_websocket_bytes_total", "counter",
         "Bytes carried through WebSocket tunnels: sent to the server, received from it.");
  for (size_t f = 0; f < snap.farms.size(); ++f) {
    for (size_t i = 0; i < snap.farms[f].servers.size(); ++i) {
      o << "harrow_server_websocket_bytes_total{" << labels(f, i) << ",direction=\"sent\"} "
        << sum_server(snap, f, i,
                      [](const ServerMetrics& m) { return m.websocket_bytes_to_server.get(); })
        << "\n";
      o << "harrow_server_websocket_bytes_total{" << labels(f, i) << ",direction=\"received\"} "
        << sum_server(snap, f, i,
                      [](const ServerMetrics& m) { return m.websocket_bytes_from_server.get(); })
        << "\n";
    }
  }
  // Per-server latency histograms (buckets 100 µs … 60 s), summed over workers.
  static const char* const kLe[LatencyHistogram::kBuckets] = {
      "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
      "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "10",   "30",    "60"};
  struct HistogramFamily {
    const char* name;
    const char* help;
    const LatencyHistogram& (*get)(const ServerMetrics&);
  };
  static const HistogramFamily kHistograms[] = {
      {"harrow_server_response_seconds",
       "Time from sending the request to the server to its last response byte.",
       [](const ServerMetrics& m) -> const LatencyHistogram& { return m.response_time; }},
      {"harrow_server_connect_seconds", "Time to open a new TCP connection to the server.",
       [](const ServerMetrics& m) -> const LatencyHistogram& { return m.connect_time; }},
      {"harrow_server_first_byte_seconds",
       "Time from sending the request to the server to its response head.",
       [](const ServerMetrics& m) -> const LatencyHistogram& { return m.first_byte_time; }},
  };
  for (const HistogramFamily& fam : kHistograms) {
    family(fam.name, "histogram", fam.help);
    for (size_t f = 0; f < snap.farms.size(); ++f) {
      for (size_t i = 0; i < snap.farms[f].servers.size(); ++i) {
        uint64_t buckets[LatencyHistogram::kBuckets + 1] = {};
        uint64_t sum_us = 0;
        for (const auto& row : snap.farms[f].metrics) {
          const LatencyHistogram& h = fam.get(row[i]);
          for (int b = 0; b <= LatencyHistogram::kBuckets; ++b) buckets[b] += h.bucket(b);
          sum_us += h.sum_micros();
        }
        uint64_t total = 0;
        for (uint64_t b : buckets) total += b;
        if (total == 0) continue;  // series appear with a server's first observation
        const std::string& l = labels(f, i);
        uint64_t cumulative = 0;
        for (int b = 0; b < LatencyHistogram::kBuckets; ++b) {
          cumulative += buckets[b];
          o << fam.name << "_bucket{" << l << ",le=\"" << kLe[b] << "\"} " << cumulative << "\n";
        }
        cumulative += buckets[LatencyHistogram::kBuckets];
        o << fam.name << "_bucket{" << l << ",le=\"+Inf\"} " << cumulative << "\n";
        char sum[32];
        std::snprintf(sum, sizeof sum, "%.6f", static_cast<double>(sum_us) / 1e6);
        o << fam.name << "_sum{" << l << "} " << sum << "\n";
        o << fam.name << "_count{" << l << "} " << cumulative << "\n";
      }
    }
  }
  family("harrow_server_healthy", "gauge", "1 if the server is healthy.");
  for (size_t f = 0; f < snap.farms.size(); ++f) {
    for (size_t i = 0; i < snap.farms[f].servers.size(); ++i) {
      o << "harrow_server_healthy{" << labels(f, i) << "} "
        << (snap.farms[f].health->load(i).healthy && snap.farms[f].servers[i].resolved ? 1 : 0)
        << "\n";
    }
  }
  family("harrow_server_available", "gauge",
         "1 if the server takes new requests by its admin state (0 when draining or stopped).");
  for (size_t f = 0; f < snap.farms.size(); ++f) {
    for (size_t i = 0; i < snap.farms[f].servers.size(); ++i) {
      health::ServerState st = snap.farms[f].health->load(i);
      o << "harrow_server_available{" << labels(f, i) << "} "
        << (st.availability == health::Availability::Available ? 1 : 0) << "\n";
    }
  }
  family("harrow_health_probes_total", "counter", "Health probes sent, by result.");
  for (size_t f = 0; f < snap.farms.size(); ++f) {
    for (size_t i = 0; i < snap.farms[f].servers.size(); ++i) {
      const health::ProbeRecord& slot = snap.farms[f].health->probe_record(i);
      for (int k = 0; k < health::kProbeResultKinds; ++k) {
        o << "harrow_health_probes_total{" << labels(f, i) << ",result=\""
          << health::probe_result_name(static_cast<health::ProbeResultKind>(k)) << "\"} "
          << slot.probes[k].load(std::memory_order_relaxed) << "\n";
      }
    }
  }
  family("harrow_server_state_transitions_total", "counter",
         "Changes of a server's health or availability.");
  for (size_t f = 0; f < snap.farms.size(); ++f) {
    for (size_t i = 0; i < snap.farms[f].servers.size(); ++i) {
      o << "harrow_server_state_transitions_total{" << labels(f, i) << "} "
        << snap.farms[f].health->probe_record(i).transitions.load(std::memory_order_relaxed)
        << "\n";
    }
  }
  family("harrow_server_live_failures_total", "counter",
         "Live-traffic failures (failed exchanges and liveTrafficFailureCodes responses).");
  for (size_t f = 0; f < snap.farms.size(); ++f) {
    for (size_t i = 0; i < snap.farms[f].servers.size(); ++i) {
      o << "harrow_server_live_failures_total{" << labels(f, i) << "} "
        << sum_server(snap, f, i, [](const ServerMetrics& m) { return m.live_failures.get(); })
        << "\n";
    }
  }
  family("harrow_farm_panic", "gauge",
         "1 while fewer servers are healthy than minServers and health is disregarded.");
  for (const SnapshotFarm& farm : snap.farms) {
    o << "harrow_farm_panic{farm=\"" << escape_label(farm.config->name) << "\",pool=\""
      << escape_label(farm.config->application_pool) << "\"} " << (farm.health->panic() ? 1 : 0)
      << "\n";
  }
  return o.str();
}

std::string render_farms_json(const Snapshot& snap, const StatusHistory* history) {
  static const char* kAvailability[] = {"Available", "Draining", "Unavailable"};
  std::ostringstream o;
  o << "{\"farms\":[";
  for (size_t f = 0; f < snap.farms.size(); ++f) {
    const SnapshotFarm& farm = snap.farms[f];
    o << (f ? "," : "") << "{\"name\":\"" << escape_json(farm.config->name)
      << "\",\"applicationPool\":\"" << escape_json(farm.config->application_pool)
      << "\",\"enabled\":" << (farm.config->enabled ? "true" : "false") << ",\"servers\":[";
    for (size_t i = 0; i < farm.servers.size(); ++i) {
      const ServerEndpoint& ep = farm.servers[i];
      health::ServerState st = farm.health->load(i);
      uint64_t total = 0;
      for (int c = 1; c < 6; ++c) {
        total += sum_server(snap, f, i,
                            [c](const ServerMetrics& m) { return m.responses_by_class[c].get(); });
      }
      uint64_t failed = 0;
      for (int r = 0; r < kFailureCount; ++r) {
        failed +=
            sum_server(snap, f, i, [r](const ServerMetrics& m) { return m.failures[r].get(); });
      }
      o << (i ? "," : "") << "{\"address\":\"" << escape_json(ep.config->address)
        << "\",\"endpoint\":\"" << escape_json(ep.label) << "\",\"weight\":" << ep.config->weight
        << ",\"enabled\":" << (ep.config->enabled ? "true" : "false") << ",\"state\":\""
        << kAvailability[static_cast<int>(st.availability)]
        // A name that does not resolve takes no traffic: never shown as healthy.
        << "\",\"isHealthy\":" << (st.healthy && ep.resolved ? "true" : "false")
        << ",\"resolved\":" << (ep.resolved ? "true" : "false") << ",\"totalRequests\":" << total
        << ",\"failedRequests\":" << failed << ",\"currentRequests\":"
        << sum_server(snap, f, i, [](const ServerMetrics& m) { return m.in_flight.get(); })
        << ",\"bytesSent\":"
        << sum_server(snap, f, i, [](const ServerMetrics& m) { return m.bytes_to_server.get(); })
        << ",\"bytesReceived\":"
        << sum_server(snap, f, i, [](const ServerMetrics& m) { return m.bytes_from_server.get(); })
        << ",\"totalWebSocketRequests\":"
        << sum_server(snap, f, i, [](const ServerMetrics& m) { return m.websocket_requests.get(); })
        << ",\"currentWebSocketRequests\":"
        << sum_server(snap, f, i, [](const ServerMetrics& m) { return m.websocket_current.get(); })
        << ",\"failedWebSocketRequests\":"
        << sum_server(snap, f, i, [](const ServerMetrics& m) { return m.websocket_failures.get(); })
        << ",\"webSocketBytesSent\":"
        << sum_server(snap, f, i,
                      [](const ServerMetrics& m) { return m.websocket_bytes_to_server.get(); })
        << ",\"webSocketBytesReceived\":" << sum_server(snap, f, i, [](const ServerMetrics& m) {
             return m.websocket_bytes_from_server.get();
           });
      // ARR's requestPerSecond (over the last 5 s sample) and responseTime (mean, ms).
      double rps = 0;
      if (history != nullptr) {
        const StatusHistory::Series* series = history->find(farm.config->name, ep.label);
        if (series != nullptr && !series->requests_per_second.empty()) {
          rps = series->requests_per_second.back();
        }
      }
      uint64_t count = 0, sum_us = 0;
      for (const auto& row : farm.metrics) {
        count += row[i].response_time.count();
        sum_us += row[i].response_time.sum_micros();
      }
      char numbers[96];
      std::snprintf(numbers, sizeof numbers, ",\"requestPerSecond\":%.2f,\"responseTime\":%llu}",
                    rps, static_cast<unsigned long long>(count == 0 ? 0 : sum_us / count / 1000));
      o << numbers;
    }
    o << "]}";
  }
  o << "]}\n";
  return o.str();
}

// One admin request per connection: read it, answer, close.
struct AdminConnection {
  AdminServer* server;
  uv_tcp_t tcp{};
  uv_timer_t timer{};  // the request must arrive, and the answer leave, in bounded time
  int open_handles = 0;
  bool closing = false;
  uv_write_t write{};
  llhttp_t parser{};
  std::string method;
  std::string url;
  std::string body;
  std::string field;  // header name being read (at most 65 bytes: longer names match nothing)
  bool in_value = false;
  std::string* value_target = nullptr;  // where the header value being read goes, if anywhere
  // The headers the admin API looks at.
  std::string authorization;
  std::string host;
  std::string origin;
  std::string sec_fetch_site;
  std::string content_type;
  std::string admin_header;      // X-Harrow-Admin
  std::string referer;           // the status page's forms: where the page came from
  bool repeated_header = false;  // one of those came twice (empty or not)
  unsigned seen_headers = 0;     // which of those came, one bit each (header_bit())
  bool loopback_peer = false;
  std::string response;
  size_t received = 0;
  bool done = false;

  std::string* header_target(std::string_view name) {
    if (iequals(name, "authorization")) return &authorization;
    if (iequals(name, "host")) return &host;
    if (iequals(name, "origin")) return &origin;
    if (iequals(name, "sec-fetch-site")) return &sec_fetch_site;
    if (iequals(name, "content-type")) return &content_type;
    if (iequals(name, "x-harrow-admin")) return &admin_header;
    if (iequals(name, "referer")) return &referer;
    return nullptr;
  }

  unsigned header_bit(const std::string* target) const {
    const std::string* all[] = {&authorization, &host,         &origin, &sec_fetch_site,
                                &content_type,  &admin_header, &referer};
    for (unsigned i = 0; i < std::size(all); ++i) {
      if (all[i] == target) return 1u << i;
    }
    return 0;
  }

  static llhttp_settings_t* settings() {
    static llhttp_settings_t s = [] {
      llhttp_settings_t st;
      llhttp_settings_init(&st);
      st.on_url = [](llhttp_t* p, const char* at, size_t len) {
        auto* c = static_cast<AdminConnection*>(p->data);
        if (c->url.size() + len > kMaxAdminRequest) return -1;
        c->url.append(at, len);
        return 0;
      };
      st.on_header_field = [](llhttp_t* p, const char* at, size_t len) {
        auto* c = static_cast<AdminConnection*>(p->data);
        if (c->in_value) {
          c->field.clear();
          c->in_value = false;
        }
        c->field.append(at, std::min(len, 65 - std::min<size_t>(65, c->field.size())));
        return 0;
      };
      st.on_header_value = [](llhttp_t* p, const char* at, size_t len) {
        auto* c = static_cast<AdminConnection*>(p->data);
        if (!c->in_value) {
          c->in_value = true;
          c->value_target = c->header_target(c->field);
          // A second line of one of these fields is refused even when the first was empty:
          // "X-Harrow-Admin:" then "X-Harrow-Admin: 1" is a list, not one value.
          unsigned bit = c->header_bit(c->value_target);
          if ((c->seen_headers & bit) != 0) c->repeated_header = true;
          c->seen_headers |= bit;
        }
        if (c->value_target != nullptr && c->value_target->size() + len <= 4096)
          c->value_target->append(at, len);
        return 0;
      };
      st.on_body = [](llhttp_t* p, const char* at, size_t len) {
        auto* c = static_cast<AdminConnection*>(p->data);
        if (c->body.size() + len > kMaxAdminRequest) return -1;
        c->body.append(at, len);
        return 0;
      };
      st.on_message_complete = [](llhttp_t* p) {
        auto* c = static_cast<AdminConnection*>(p->data);
        c->method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
        c->done = true;
        return static_cast<int>(HPE_PAUSED);
      };
      return st;
    }();
    return &s;
  }

  void respond(int status, const char* reason, const char* type, const std::string& body,
               const char* extra_headers = "") {
    response = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: " + type +
               "\r\nContent-Length: " + std::to_string(body.size()) +
               "\r\nConnection: close\r\nCache-Control: no-store\r\n" + extra_headers + "\r\n" +
               body;
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp));
    arm_timer(kAdminResponseTimeoutMs);
    uv_buf_t buf = uv_buf_init(response.data(), static_cast<unsigned>(response.size()));
    write.data = this;
    if (uv_write(&write, reinterpret_cast<uv_stream_t*>(&tcp), &buf, 1, [](uv_write_t* w, int) {
          static_cast<AdminConnection*>(w->data)->close();
        }) != 0) {
      close();
    }
  }

  void refuse(int status, const char* reason, const std::string& why) {
    respond(status, reason, "application/json", "{\"error\":\"" + escape_json(why) + "\"}\n");
  }

  // Constant-time comparison, so the token cannot be guessed byte by byte from timing: every
  // byte of the longer string is looked at whatever the lengths and contents.
  static bool same_secret(std::string_view given, std::string_view secret) {
    size_t n = std::max(given.size(), secret.size());
    unsigned char diff = given.size() == secret.size() ? 0 : 1;
    for (size_t i = 0; i < n; ++i) {
      unsigned char a = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
      unsigned char b = i < secret.size() ? static_cast<unsigned char>(secret[i]) : 0;
      diff |= static_cast<unsigned char>(a ^ b);
    }
    return diff == 0;
  }

  bool authorized() {
    if (server->token_.empty()) {
      if (loopback_peer) return true;
      respond(403, "Forbidden", "application/json",
              "{\"error\":\"the admin API answers loopback clients only unless a tokenFile is "
              "configured\"}\n");
      return false;
    }
    std::string_view given = authorization;
    if (given.size() > 7 && iequals(given.substr(0, 7), "Bearer ") &&
        same_secret(given.substr(7), server->token_)) {
      return true;
    }
    respond(401, "Unauthorized", "application/json", "{\"error\":\"bearer token required\"}\n",
            "WWW-Authenticate: Bearer\r\n");
    return false;
  }

  static std::string_view trim(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
  }

  // DNS rebinding: a page on a name the attacker controls, resolved to this host, reaches the
  // listener with the attacker's name in Host. Only this listener's own names are answered.
  bool host_ok() {
    std::string_view h = trim(host);
    if (repeated_header) {
      refuse(403, "Forbidden",
             "a field the admin API judges (Host, Origin, Authorization, Content-Type, "
             "Sec-Fetch-Site, X-Harrow-Admin, Referer) came more than once");
      return false;
    }
    if (h.empty() || !server->host_allowed(h)) {
      refuse(403, "Forbidden",
             "Host " + std::string(h.empty() ? "(none)" : h) +
                 " does not name this admin listener: use its IP:PORT or localhost:PORT, or list "
                 "the name in <admin allowedHosts>");
      return false;
    }
    return true;
  }

  // CSRF: a page in the operator's browser may send simple requests (forms, fetch without
  // custom headers) anywhere. A change needs what only a non-simple request can carry, and a
  // browser that says where the request comes from must say it comes from here.
  bool change_allowed() {
    std::string_view site = trim(sec_fetch_site);
    if (!site.empty() && !iequals(site, "same-origin") && !iequals(site, "none")) {
      refuse(403, "Forbidden",
             "cross-site request refused (Sec-Fetch-Site: " + std::string(site) + ")");
      return false;
    }
    std::string_view from = trim(origin);
    if (!from.empty()) {
      bool same = istarts_with(from, "http://") && server->host_allowed(from.substr(7));
      if (!same) {
        refuse(403, "Forbidden",
               "cross-site request refused (Origin: " + std::string(from) +
                   " is not this admin listener)");
        return false;
      }
    }
    // A verified bearer token is itself what a simple request cannot carry: a browser sends an
    // Authorization header cross-site only after a preflight, which this listener never answers.
    if (!server->token_.empty()) return true;
    std::string_view type = trim(content_type);
    type = trim(type.substr(0, type.find(';')));
    if (trim(admin_header).empty() && !iequals(type, "application/json")) {
      refuse(403, "Forbidden",
             "admin changes need the header X-Harrow-Admin: 1 or a JSON body (Content-Type: "
             "application/json); a form or simple cross-site request carries neither");
      return false;
    }
    return true;
  }

  void dispatch() {
    if (!host_ok() || !authorized()) return;
    if (url.substr(0, url.find('?')) == "/status/servers") {
      server_action_form();
      return;
    }
    if (method != "GET" && method != "HEAD" && !change_allowed()) return;
    const AdminSources& src = server->sources_;
    std::shared_ptr<const Snapshot> snap = src.snapshot();
    std::string path = url.substr(0, url.find('?'));
    bool get = method == "GET" || method == "HEAD";
    if (path == "/api/reload") {
      if (method != "POST") {
        respond(405, "Method Not Allowed", "application/json", "{\"error\":\"use POST\"}\n");
        return;
      }
      std::string errors;
      if (src.reload && src.reload(errors)) {
        respond(200, "OK", "application/json", "{\"reloaded\":true}\n");
      } else {
        respond(400, "Bad Request", "application/json",
                "{\"reloaded\":false,\"errors\":\"" + escape_json(errors) + "\"}\n");
      }
      return;
    }
    if (path == "/api/explain") {
      // A POST like the other admin calls (change_allowed ran above), though it changes
      // nothing: the request it carries may name hosts and cookies, so it is never a GET.
      if (method != "POST") {
        respond(405, "Method Not Allowed", "application/json", "{\"error\":\"use POST\"}\n");
        return;
      }
      ExplainInput input;
      std::string error;
      if (!parse_explain_json(body, input, error)) {
        refuse(400, "Bad Request", error);
        return;
      }
      Explanation ex = explain_request(*snap, input, true);
      if (!ex.ok) {
        refuse(400, "Bad Request", ex.error);
        return;
      }
      respond(200, "OK", "application/json", render_explanation_json(ex));
      return;
    }
    if (path.rfind("/api/farms/", 0) == 0) {
      server_command(path);
      return;
    }
    if (path == "/api/cache") {
      cache_purge(*snap);
      return;
    }
    bool known = path == "/" || path == "/healthz" || path == "/metrics" || path == "/api/farms";
    if (!known) {
      respond(404, "Not Found", "application/json", "{\"error\":\"no such endpoint\"}\n");
    } else if (!get) {
      respond(405, "Method Not Allowed", "application/json", "{\"error\":\"use GET\"}\n");
    } else if (path == "/healthz") {
      respond(200, "OK", "text/plain", "ok\n");
    } else if (path == "/metrics") {
      respond(200, "OK", "text/plain; version=0.0.4; charset=utf-8", render_metrics(*snap, src));
    } else if (path == "/api/farms") {
      respond(200, "OK", "application/json", render_farms_json(*snap, src.history));
    } else {
      static const StatusHistory kNoHistory;
      StatusPageOptions options;
      options.form_token = server->page_tokens_.issue(std::time(nullptr));
      options.has_listener_counters = true;
      options.connections_active =
          sum_worker(src, [](const WorkerMetrics& w) { return w.connections_active.get(); });
      options.tls_handshake_failures =
          sum_worker(src, [](const WorkerMetrics& w) { return w.tls_handshake_failures.get(); });
      // The page has buttons: no other site may frame it and trick a click (clickjacking).
      respond(
          200, "OK", "text/html; charset=utf-8",
          render_status_page(*snap, src.history != nullptr ? *src.history : kNoHistory, options),
          "X-Frame-Options: DENY\r\nContent-Security-Policy: frame-ancestors 'none'\r\n");
    }
  }

  // POST /status/servers: the status page's Drain / Stop / Start forms. A browser form cannot
  // carry X-Harrow-Admin, so two other locks stand in for it: the page's token, which only
  // this listener issues, and the browser's word that the form comes from this listener's
  // own page (Origin, else Referer; Sec-Fetch-Site). Done: 303 back to the page.
  void server_action_form() {
    if (method != "POST") {
      respond(405, "Method Not Allowed", "application/json", "{\"error\":\"use POST\"}\n");
      return;
    }
    std::string why;
    if (!same_origin_form(host, origin, referer, sec_fetch_site, why)) {
      refuse(403, "Forbidden", why);
      return;
    }
    ServerActionForm form;
    if (!parse_server_action_form(body, form, why)) {
      refuse(form.token.empty() ? 403 : 400, form.token.empty() ? "Forbidden" : "Bad Request", why);
      return;
    }
    if (!server->page_tokens_.valid(form.token, std::time(nullptr))) {
      refuse(403, "Forbidden",
             "the form's token is not one this admin listener issued in the last hour: reload "
             "the status page and try again");
      return;
    }
    const AdminSources& src = server->sources_;
    std::string result = src.server_command
                             ? src.server_command(form.farm, form.server, "state", form.state)
                             : "unavailable";
    if (result == "ok") {
      respond(303, "See Other", "text/plain", "done\n", "Location: /\r\n");
    } else if (result == "unknown farm" || result == "unknown server") {
      refuse(404, "Not Found", result);
    } else {
      refuse(400, "Bad Request", result);
    }
  }

  // POST /api/farms/{farm}/servers/{server}/(state|health) with the new value as the body
  // (plain text, or JSON {"state": "drain"} / {"health": "unhealthy"}).
  void server_command(const std::string& path) {
    std::vector<std::string> parts;
    size_t pos = 1;
    while (pos <= path.size()) {
      size_t next = path.find('/', pos);
      if (next == std::string::npos) next = path.size();
      parts.push_back(url_decode(path.substr(pos, next - pos)));
      pos = next + 1;
    }
    // parts: api farms {farm} servers {server} {verb}
    if (parts.size() != 6 || parts[3] != "servers" ||
        (parts[5] != "state" && parts[5] != "health")) {
      respond(404, "Not Found", "application/json", "{\"error\":\"no such endpoint\"}\n");
      return;
    }
    if (method != "POST") {
      respond(405, "Method Not Allowed", "application/json", "{\"error\":\"use POST\"}\n");
      return;
    }
    std::string value = command_value(body);
    std::string result = server->sources_.server_command
                             ? server->sources_.server_command(parts[2], parts[4], parts[5], value)
                             : "unavailable";
    if (result == "ok") {
      respond(200, "OK", "application/json",
              "{\"farm\":\"" + escape_json(parts[2]) + "\",\"server\":\"" + escape_json(parts[4]) +
                  "\",\"" + parts[5] + "\":\"" + escape_json(value) + "\"}\n");
    } else if (result == "unknown farm" || result == "unknown server") {
      respond(404, "Not Found", "application/json", "{\"error\":\"" + result + "\"}\n");
    } else {
      respond(400, "Bad Request", "application/json",
              "{\"error\":\"" + escape_json(result) + "\"}\n");
    }
  }

  // DELETE /api/cache?url=U[&prefix=1]: removes the cached responses for URL U ("/path?q" on
  // any host, or "http://host/path?q" on that host); with prefix=1, every URL starting so.
  void cache_purge(const Snapshot& snap) {
    if (method != "DELETE") {
      respond(405, "Method Not Allowed", "application/json", "{\"error\":\"use DELETE\"}\n");
      return;
    }
    std::string target, prefix;
    size_t q = url.find('?');
    std::string_view query =
        q == std::string::npos ? std::string_view{} : std::string_view(url).substr(q + 1);
    while (!query.empty()) {
      size_t amp = query.find('&');
      std::string_view pair = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
      size_t eq = pair.find('=');
      std::string name(pair.substr(0, eq));
      std::string value =
          eq == std::string_view::npos ? "" : url_decode(std::string(pair.substr(eq + 1)));
      if (name == "url") target = value;
      if (name == "prefix") prefix = value;
    }
    std::string host;
    std::string_view rest = target;
    for (std::string_view scheme : {"http://", "https://"}) {
      if (istarts_with(rest, scheme)) {
        rest.remove_prefix(scheme.size());
        size_t slash = rest.find_first_of("/?");
        host = to_ascii_lower(rest.substr(0, slash));
        rest = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
      }
    }
    if (rest.empty() || rest.front() != '/') {
      refuse(400, "Bad Request", "url= must be a path (/…) or an absolute http(s) URL");
      return;
    }
    size_t purged = 0;
    if (snap.cache != nullptr) {
      purged = snap.cache->purge(host, rest, prefix == "1" || prefix == "true");
    }
    respond(200, "OK", "application/json", "{\"purged\":" + std::to_string(purged) + "}\n");
  }

  static std::string url_decode(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '%' && i + 2 < s.size() && is_ascii_hex_digit(s[i + 1]) &&
          is_ascii_hex_digit(s[i + 2])) {
        out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
        i += 2;
      } else {
        out += s[i];
      }
    }
    return out;
  }

  // "drain", " drain\n", {"state":"drain"} → "drain".
  static std::string command_value(const std::string& text) {
    std::string v = text;
    size_t colon = v.find(':');
    if (v.find('{') != std::string::npos && colon != std::string::npos) v = v.substr(colon + 1);
    std::string out;
    for (char c : v) {
      if (is_ascii_alnum(c)) out += c;
    }
    return out;
  }

  void on_read(ssize_t nread, const uv_buf_t* buf) {
    if (nread < 0) {
      close();
    } else if (nread > 0 && !done) {
      received += static_cast<size_t>(nread);
      llhttp_errno_t rc = llhttp_execute(&parser, buf->base, static_cast<size_t>(nread));
      if (done) {
        dispatch();
      } else if (rc != HPE_OK || received > kMaxAdminRequest) {
        respond(400, "Bad Request", "application/json", "{\"error\":\"bad request\"}\n");
      }
    }
    delete[] buf->base;
  }

  void arm_timer(uint64_t ms) {
    uv_timer_start(
        &timer, [](uv_timer_t* t) { static_cast<AdminConnection*>(t->data)->close(); }, ms, 0);
  }

  // Closes both handles; the connection is freed when the last one has closed.
  void close() {
    if (closing) return;
    closing = true;
    server->live_.erase(this);
    auto closed = [](uv_handle_t* h) {
      auto* c = static_cast<AdminConnection*>(h->data);
      if (--c->open_handles == 0) delete c;
    };
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp), closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), closed);
  }
};

AdminServer::AdminServer(uv_loop_t* loop, AdminSources sources)
    : loop_(loop), sources_(std::move(sources)) {}

bool AdminServer::listen(const std::string& address, std::string& error) {
  sockaddr_storage addr;
  if (!parse_socket_address(address, addr, error)) return false;
  uv_tcp_init(loop_, &tcp_);
  tcp_.data = this;
  open_ = true;
  int rc = uv_tcp_bind(&tcp_, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0)
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&tcp_), 128, &AdminServer::on_connection);
  if (rc != 0) {
    error = "cannot listen on " + address + " (admin): " + uv_strerror(rc);
    return false;
  }
  learn_address();
  return true;
}

bool AdminServer::adopt(int fd, std::string& error) {
  uv_tcp_init(loop_, &tcp_);
  tcp_.data = this;
  open_ = true;
  int rc = uv_tcp_open(&tcp_, fd);
  if (rc == 0)
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&tcp_), 128, &AdminServer::on_connection);
  if (rc != 0) {
    error = std::string("cannot listen on the inherited admin socket: ") + uv_strerror(rc);
    return false;
  }
  learn_address();
  return true;
}

int AdminServer::fd() const {
  uv_os_fd_t fd = -1;
  if (!open_ || uv_fileno(reinterpret_cast<const uv_handle_t*>(&tcp_), &fd) != 0) return -1;
  return fd;
}

void AdminServer::learn_address() {
  sockaddr_storage addr;
  int len = sizeof addr;
  uv_tcp_getsockname(&tcp_, reinterpret_cast<sockaddr*>(&addr), &len);
  url_ = socket_url(addr, "http");
  port_ = ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port
                                           : reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
}

bool AdminServer::host_allowed(std::string_view host) const {
  if (host.empty()) return false;
  bool bracketed = host.front() == '[';
  std::string_view name = host;
  std::string_view port_text;
  bool has_port = false;
  if (bracketed) {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return false;
    name = host.substr(1, close - 1);
    std::string_view rest = host.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      has_port = true;
      port_text = rest.substr(1);
    }
  } else if (size_t colon = host.find(':'); colon != std::string_view::npos) {
    if (host.find(':', colon + 1) != std::string_view::npos) return false;  // bare IPv6
    name = host.substr(0, colon);
    has_port = true;
    port_text = host.substr(colon + 1);
  }
  unsigned port = 80;
  if (has_port) {
    if (port_text.empty() || port_text.size() > 5) return false;
    port = 0;
    for (char c : port_text) {
      if (c < '0' || c > '9') return false;
      port = port * 10 + static_cast<unsigned>(c - '0');
    }
  }
  if (port != port_ || name.empty()) return false;
  std::string literal(name);
  unsigned char buf[sizeof(in6_addr)];
  if (bracketed) return inet_pton(AF_INET6, literal.c_str(), buf) == 1;
  if (iequals(name, "localhost") || inet_pton(AF_INET, literal.c_str(), buf) == 1) return true;
  for (const std::string& allowed : allowed_hosts_) {
    if (iequals(name, allowed)) return true;
  }
  return false;
}

void AdminServer::close() {
  if (!open_) return;
  open_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), nullptr);
  // Open admin connections would keep the loop (and so the process) alive after a stop.
  std::vector<AdminConnection*> open(live_.begin(), live_.end());
  for (AdminConnection* c : open) c->close();
}

// True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104 (an IPv4 client of a listener on [::]).
static bool loopback_peer(const sockaddr_storage& peer) {
  if (peer.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&peer);
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
  }
  if (peer.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&peer);
    return IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) != 0 ||
           (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) != 0 && a->sin6_addr.s6_addr[12] == 127);
  }
  return false;
}

void AdminServer::on_connection(uv_stream_t* server, int status) {
  if (status != 0) return;
  auto* self = static_cast<AdminServer*>(server->data);
  auto* c = new AdminConnection{self};
  uv_tcp_init(self->loop_, &c->tcp);
  uv_timer_init(self->loop_, &c->timer);
  c->open_handles = 2;
  c->tcp.data = c;
  c->timer.data = c;
  self->live_.insert(c);
  llhttp_init(&c->parser, HTTP_REQUEST, AdminConnection::settings());
  c->parser.data = c;
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    c->close();
    return;
  }
  if (self->live_.size() > kMaxAdminConnections) {
    // Accepted only to be closed: the descriptor is freed now, not when the backlog drains.
    uint64_t now = uv_now(self->loop_);
    if (self->last_rejection_log_ms_ == 0 || now - self->last_rejection_log_ms_ >= 60'000) {
      self->last_rejection_log_ms_ = now;
      log_line(LogLevel::Warn,
               "admin: %zu connections open already; closing new ones until some finish",
               kMaxAdminConnections);
    }
    c->close();
    return;
  }
  sockaddr_storage peer{};
  int len = sizeof peer;
  if (uv_tcp_getpeername(&c->tcp, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    c->loopback_peer = loopback_peer(peer);
  }
  c->arm_timer(kAdminRequestTimeoutMs);
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->tcp),
      [](uv_handle_t*, size_t, uv_buf_t* buf) { *buf = uv_buf_init(new char[4096], 4096); },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        static_cast<AdminConnection*>(s->data)->on_read(nread, buf);
      });
}

}  // namespace harrow

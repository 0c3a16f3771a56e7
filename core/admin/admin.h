// The admin listener, on the main thread's loop: Prometheus metrics, farm state as JSON, a
// liveness check and a status page. Never on a traffic port; it reads worker counters and
// health tables without stopping any worker.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/admin/status_page.h"
#include "core/proxy/snapshot.h"
#include "core/proxy/worker.h"

namespace harrow {

struct AdminSources {
  // The snapshot being served now (it changes on reload).
  std::function<std::shared_ptr<const Snapshot>()> snapshot;
  std::vector<const WorkerMetrics*> workers;
  // POST /api/reload: true on success, else false with every error in the string.
  std::function<bool(std::string&)> reload;
  // POST …/servers/{server}/state and …/health: "ok", "unknown farm" or "unknown server".
  std::function<std::string(const std::string& farm, const std::string& server,
                            const std::string& verb, const std::string& value)>
      server_command;
  // Process-wide counters the main thread keeps.
  const Counter* reloads = nullptr;
  const Counter* reload_failures = nullptr;
  const double* last_reload_success = nullptr;  // Unix time of the last good load
  const StatusHistory* history = nullptr;       // for GET / (sampled by the main thread)
  // More metric families in Prometheus text (the fleet's), appended as they are; may be empty.
  std::function<std::string()> extra_metrics;
  std::vector<std::string> listeners;  // listener URLs, indexed like WorkerMetrics::listeners
  double start_time = 0;               // Unix time the process started
};

// Prometheus text format 0.0.4, summed over workers.
std::string render_metrics(const Snapshot& snapshot, const AdminSources& sources);
// GET /api/farms.
// GET /api/farms; `history` (may be null) gives requestPerSecond.
std::string render_farms_json(const Snapshot& snapshot, const StatusHistory* history);

// Bounds of the admin listener: few people and scrapers use it, so a handful of idle or slow
// connections must never hold file descriptors the proxy needs.
inline constexpr size_t kMaxAdminConnections = 64;  // beyond it, new connections close at once
inline constexpr uint64_t kAdminRequestTimeoutMs = 10'000;   // to read a whole request
inline constexpr uint64_t kAdminResponseTimeoutMs = 30'000;  // to write the answer

struct AdminConnection;

class AdminServer {
 public:
  AdminServer(uv_loop_t* loop, AdminSources sources);
  // Binds and listens; false with `error` naming the address and the system error.
  bool listen(const std::string& address, std::string& error);
  // Listens on `fd`, a listening socket handed over by a binary upgrade, instead of binding.
  bool adopt(int fd, std::string& error);
  // The listening socket's descriptor (handed to the new process of a binary upgrade).
  int fd() const;
  // With a token every request must carry "Authorization: Bearer TOKEN" (else 401); without
  // one, connections from other than loopback are refused (403).
  void set_token(std::string token) { token_ = std::move(token); }
  // Host names (besides its own IP:port and localhost:port) requests may carry in Host and
  // Origin, e.g. the name a Prometheus server scrapes it by. Compared case-insensitively.
  void set_allowed_hosts(std::vector<std::string> names) { allowed_hosts_ = std::move(names); }
  // Whether `host` (a Host header or an Origin's authority) names this listener: an IP literal
  // or localhost or an allowed name, with the listener's port (80 when absent). Literal IP
  // addresses and localhost cannot be rebound by DNS, names the operator chose are trusted.
  bool host_allowed(std::string_view host) const;
  const std::string& url() const { return url_; }
  size_t connections() const { return live_.size(); }
  void close();

 private:
  static void on_connection(uv_stream_t* server, int status);
  void learn_address();  // url_ and port_ from the bound socket
  uv_loop_t* loop_;
  AdminSources sources_;
  uv_tcp_t tcp_{};
  bool open_ = false;
  std::string url_;
  std::string token_;
  std::vector<std::string> allowed_hosts_;
  uint16_t port_ = 0;
  std::set<AdminConnection*> live_;  // open connections, closed with the listener
  uint64_t last_rejection_log_ms_ = 0;
  PageTokens page_tokens_;  // the status page's form tokens, valid for this listener only

  friend struct AdminConnection;
};

}  // namespace harrow

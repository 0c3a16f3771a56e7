// The admin listener, on the main thread's loop: Prometheus metrics, farm state as JSON, a
// liveness check and a status page. Never on a traffic port; it reads worker counters and
// health tables without stopping any worker.
#pragma once

#include <uv.h>

#include <functional>
#include <string>
#include <vector>

#include "core/snapshot.h"
#include "core/status_page.h"
#include "core/worker.h"

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
  std::vector<std::string> listeners;  // listener URLs, indexed like WorkerMetrics::listeners
  double start_time = 0;               // Unix time the process started
};

// Prometheus text format 0.0.4, summed over workers.
std::string render_metrics(const Snapshot& snapshot, const AdminSources& sources);
// GET /api/farms.
// GET /api/farms; `history` (may be null) gives requestPerSecond.
std::string render_farms_json(const Snapshot& snapshot, const StatusHistory* history);

class AdminServer {
 public:
  AdminServer(uv_loop_t* loop, AdminSources sources);
  // Binds and listens; false with `error` naming the address and the system error.
  bool listen(const std::string& address, std::string& error);
  // With a token every request must carry "Authorization: Bearer TOKEN" (else 401); without
  // one, connections from other than loopback are refused (403).
  void set_token(std::string token) { token_ = std::move(token); }
  const std::string& url() const { return url_; }
  void close();

 private:
  static void on_connection(uv_stream_t* server, int status);
  uv_loop_t* loop_;
  AdminSources sources_;
  uv_tcp_t tcp_{};
  bool open_ = false;
  std::string url_;
  std::string token_;

  friend struct AdminConnection;
};

}  // namespace harrow

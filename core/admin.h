// The admin listener, on the main thread's loop: Prometheus metrics, farm state as JSON, a
// liveness check and a status page. Never on a traffic port; it reads worker counters and
// health tables without stopping any worker.
#pragma once

#include <uv.h>

#include <functional>
#include <string>
#include <vector>

#include "core/snapshot.h"
#include "core/worker.h"

namespace harrow {

struct AdminSources {
  const Snapshot* snapshot = nullptr;
  std::vector<const WorkerMetrics*> workers;
};

// Prometheus text format 0.0.4, summed over workers.
std::string render_metrics(const AdminSources& sources);
// GET /api/farms.
std::string render_farms_json(const AdminSources& sources);

class AdminServer {
 public:
  AdminServer(uv_loop_t* loop, AdminSources sources);
  // Binds and listens; false with `error` naming the address and the system error.
  bool listen(const std::string& address, std::string& error);
  const std::string& url() const { return url_; }
  void close();

 private:
  static void on_connection(uv_stream_t* server, int status);
  uv_loop_t* loop_;
  AdminSources sources_;
  uv_tcp_t tcp_{};
  bool open_ = false;
  std::string url_;

  friend struct AdminConnection;
};

}  // namespace harrow

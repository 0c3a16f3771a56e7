// The admin listener's page for people (GET /): every farm and server with state, health,
// weight, in-flight, req/s, p50/p99 latency, the number of health transitions and small
// inline-SVG sparklines of recent req/s and errors/s. Server-rendered HTML (inline CSS and SVG,
// no external assets) that refreshes itself every 5 s.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/proxy/snapshot.h"

namespace harrow {

// Recent per-server rates for the sparklines, sampled by the main thread (every 5 s).
class StatusHistory {
 public:
  static constexpr size_t kSamples = 60;  // five minutes at one sample per 5 s

  // Reads the snapshot's counters (summed over workers) and appends one rate point per server:
  // (requests, failures) since the previous sample / elapsed seconds. A server's first sample
  // only records the baseline. Keyed by farm name and server label so history survives
  // reloads; servers no longer in the snapshot are forgotten. `now_ms`: any monotonic clock.
  void sample(const Snapshot& snapshot, uint64_t now_ms);

  struct Series {
    std::vector<double> requests_per_second;  // oldest first, at most kSamples
    std::vector<double> errors_per_second;
    uint64_t last_requests = 0;
    uint64_t last_errors = 0;
    uint64_t last_ms = 0;
  };
  // The series of server `server` (its label, "address:port") of farm `farm`, or nullptr.
  const Series* find(const std::string& farm, const std::string& server) const;

 private:
  std::map<std::string, Series> series_;
};

// The whole page: a complete HTML5 document.
std::string render_status_page(const Snapshot& snapshot, const StatusHistory& history);

}  // namespace harrow

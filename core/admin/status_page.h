// The admin listener's page for people (GET /): every farm and server with state, health,
// weight, in-flight, req/s, p50/p99 latency, the number of health transitions and small
// inline-SVG sparklines of recent req/s and errors/s. Server-rendered HTML (inline CSS and SVG,
// no external assets) that refreshes itself every 5 s. Per server, Drain / Stop / Start buttons
// (plain HTML forms: no JavaScript needed) and per farm a health panel (probe URL, each
// server's last probe and the next one, WebSocket counters), as IIS Manager's server farm view.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
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

// The page's forms carry a token only this admin listener can have made: HMAC-SHA256 over the
// time it was issued, keyed by a random secret drawn when the listener starts. A token from
// another process, or older than kLifetimeSeconds, is refused. (The page refreshes every 5 s,
// so the token a person submits is seconds old.)
class PageTokens {
 public:
  static constexpr int64_t kLifetimeSeconds = 3600;
  PageTokens();  // draws the secret
  std::string issue(int64_t now_unix_s) const;
  bool valid(std::string_view token, int64_t now_unix_s) const;

 private:
  std::string mac(std::string_view issued) const;
  unsigned char secret_[32];
};

// A Drain / Stop / Start button's form body (application/x-www-form-urlencoded):
// token=…&farm=…&server=…&state=drain|gracefulStop|start.
struct ServerActionForm {
  std::string token, farm, server, state;
};
// False with `error` when a field is missing, repeated or the state is not one of the three.
bool parse_server_action_form(std::string_view body, ServerActionForm& out, std::string& error);

// Cross-site request forgery, second lock (the page token is the first): a browser that POSTs
// a form says where the page came from (Origin, else Referer) and whether it is the same site
// (Sec-Fetch-Site). The form is taken only when that names this admin listener: `host` is the
// request's Host, already checked to name it. False with `error` otherwise.
bool same_origin_form(std::string_view host, std::string_view origin, std::string_view referer,
                      std::string_view sec_fetch_site, std::string& error);

// What the page shows besides the farms.
struct StatusPageOptions {
  std::string form_token;   // empty: no action buttons (nothing to protect them with)
  int64_t now_unix_ms = 0;  // for "next probe in …"; 0: the clock
  // Process-wide counters (the admin listener's sources), shown when `has_listener_counters`.
  bool has_listener_counters = false;
  uint64_t connections_active = 0;
  uint64_t tls_handshake_failures = 0;
};

// The whole page: a complete HTML5 document.
std::string render_status_page(const Snapshot& snapshot, const StatusHistory& history,
                               const StatusPageOptions& options = {});

}  // namespace harrow

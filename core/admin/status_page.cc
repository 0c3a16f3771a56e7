#include "core/admin/status_page.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/random.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <set>
#include <string_view>

#include "core/base/ascii.h"
#include "core/base/failure.h"

namespace harrow {

namespace {

// Length-prefixed, so no farm name (which may contain any character) can collide.
std::string series_key(std::string_view farm, std::string_view server) {
  std::string key = std::to_string(farm.size());
  key += ':';
  key.append(farm).append(server);
  return key;
}

uint64_t total_requests(const SnapshotFarm& farm, size_t server) {
  uint64_t n = 0;
  for (const std::vector<ServerMetrics>& row : farm.metrics) {
    if (server >= row.size()) continue;
    for (int c = 1; c < 6; ++c) n += row[server].responses_by_class[c].get();
  }
  return n;
}

uint64_t total_failures(const SnapshotFarm& farm, size_t server) {
  uint64_t n = 0;
  for (const std::vector<ServerMetrics>& row : farm.metrics) {
    if (server >= row.size()) continue;
    for (int r = 0; r < kFailureCount; ++r) n += row[server].failures[r].get();
  }
  return n;
}

uint64_t failures_of(const SnapshotFarm& farm, size_t server, int reason) {
  uint64_t n = 0;
  for (const std::vector<ServerMetrics>& row : farm.metrics) {
    if (server < row.size()) n += row[server].failures[reason].get();
  }
  return n;
}

uint64_t in_flight(const SnapshotFarm& farm, size_t server) {
  uint64_t n = 0;
  for (const std::vector<ServerMetrics>& row : farm.metrics) {
    if (server < row.size()) n += row[server].in_flight.get();
  }
  return n;
}

void append_point(std::vector<double>& series, double value) {
  series.push_back(value);
  if (series.size() > StatusHistory::kSamples) {
    series.erase(series.begin(), series.end() - static_cast<long>(StatusHistory::kSamples));
  }
}

void escape(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
}

std::string format(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

// Rates: three significant digits below 100, whole numbers above.
std::string format_rate(double v) {
  if (v <= 0) return "0";
  if (v < 10) return format("%.2f", v);
  if (v < 100) return format("%.1f", v);
  return format("%.0f", v);
}

// Seconds as milliseconds, three significant digits below 100 ms.
std::string format_ms(double seconds) {
  double ms = seconds * 1000;
  if (ms < 10) return format("%.2f", ms);
  if (ms < 100) return format("%.1f", ms);
  return format("%.0f", ms);
}

// 1234567 → "1,234,567".
std::string format_count(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

constexpr int kSparkWidth = 120;
constexpr int kSparkHeight = 22;
constexpr double kSparkPad = 2;

// An inline SVG line of `series` (oldest first), scaled to its maximum, newest point at the
// right edge and one kSamples-wide time axis, so a short history is a short line. An empty or
// all-zero series is a flat grey line along the bottom. Followed by the series' maximum in `unit`.
void sparkline(std::string& out, const std::vector<double>* series, const char* what,
               const char* css_class, const char* unit) {
  const size_t n = series ? series->size() : 0;
  double max = 0;
  for (size_t i = 0; i < n; ++i) max = std::max(max, (*series)[i]);
  const double bottom = kSparkHeight - kSparkPad;
  const double step = static_cast<double>(kSparkWidth) / (StatusHistory::kSamples - 1);
  auto y_of = [&](double v) {
    return max > 0 ? bottom - v / max * (kSparkHeight - 2 * kSparkPad) : bottom;
  };
  std::string points;
  double first_x = 0;
  if (n == 0) {
    points = "0," + format("%.1f", bottom) + " " + std::to_string(kSparkWidth) + "," +
             format("%.1f", bottom);
  } else {
    // One point alone would draw nothing: give it one step of width.
    size_t slots = std::max<size_t>(n, 2);
    first_x = kSparkWidth - static_cast<double>(slots - 1) * step;
    for (size_t i = 0; i < slots; ++i) {
      double v = (*series)[std::min(i, n - 1)];
      if (i) points += ' ';
      points +=
          format("%.1f", first_x + static_cast<double>(i) * step) + "," + format("%.1f", y_of(v));
    }
  }
  std::string label =
      std::string(what) + ", last " + std::to_string(n * 5) + " s, max " + format_rate(max);
  out += "<div class=\"trend\"><svg class=\"spark ";
  out += max > 0 ? css_class : "flat";
  out += "\" width=\"" + std::to_string(kSparkWidth) + "\" height=\"" +
         std::to_string(kSparkHeight) + "\" viewBox=\"0 0 " + std::to_string(kSparkWidth) + " " +
         std::to_string(kSparkHeight) + "\" role=\"img\" aria-label=\"" + label + "\"><title>" +
         label + "</title>";
  out += "<line class=\"base\" x1=\"0\" y1=\"" + format("%.1f", bottom) + "\" x2=\"" +
         std::to_string(kSparkWidth) + "\" y2=\"" + format("%.1f", bottom) + "\"/>";
  if (n > 0 && max > 0) {
    out += "<polygon class=\"area\" points=\"" + format("%.1f", first_x) + "," +
           format("%.1f", bottom) + " " + points + " " + std::to_string(kSparkWidth) + "," +
           format("%.1f", bottom) + "\"/>";
  }
  out += "<polyline class=\"line\" points=\"" + points + "\"/></svg>";
  out += "<span class=\"peak\">max " + format_rate(max) + unit + "</span></div>";
}

const char* kStyle = R"css(
:root{--fg:#1f2328;--muted:#656d76;--bg:#ffffff;--card:#ffffff;--head:#f6f8fa;--border:#d8dee4;
--green:#1a7f37;--green-bg:#dafbe1;--red:#cf222e;--red-bg:#ffebe9;--amber:#9a6700;
--amber-bg:#fff8c5;--grey:#57606a;--grey-bg:#eaeef2;--link:#0969da;--req:#0969da;--err:#cf222e}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#8d96a0;--bg:#0d1117;
--card:#0d1117;--head:#161b22;--border:#30363d;--green:#3fb950;--green-bg:#12261e;
--red:#f85149;--red-bg:#2d1518;--amber:#d29922;--amber-bg:#2b2111;--grey:#8d96a0;
--grey-bg:#21262d;--link:#4493f8;--req:#4493f8;--err:#f85149}}
*{box-sizing:border-box}
body{margin:0;padding:24px;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{display:flex;align-items:baseline;gap:16px;flex-wrap:wrap;
border-bottom:1px solid var(--border);padding-bottom:12px;margin-bottom:8px}
h1{font-size:22px;margin:0;font-weight:600}
.version{color:var(--muted)}
nav{margin-left:auto}
nav a{margin-left:16px}
a{color:var(--link);text-decoration:none}
a:hover{text-decoration:underline}
.summary{color:var(--muted);margin:8px 0 20px}
section{margin:0 0 28px}
h2{font-size:17px;margin:0 0 8px;font-weight:600;display:flex;align-items:center;gap:8px;
flex-wrap:wrap}
.pool{font-size:13px;font-weight:400;color:var(--muted)}
.scroll{overflow-x:auto;border:1px solid var(--border);border-radius:6px}
table{border-collapse:collapse;table-layout:fixed;width:100%;min-width:1146px;
background:var(--card)}
th,td{padding:6px 8px;border-bottom:1px solid var(--border);text-align:left;vertical-align:middle;
white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
tbody tr:last-child td{border-bottom:0}
th{background:var(--head);font-weight:600;font-size:12px;color:var(--muted);white-space:normal}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.server{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
td.wrap{white-space:normal}
td.wrap .badge{margin:1px 0}
tbody tr:hover{background:var(--head)}
.badge{display:inline-block;padding:1px 7px;border-radius:999px;font-size:12px;font-weight:500;
line-height:18px;border:1px solid transparent}
.ok{color:var(--green);background:var(--green-bg)}
.bad{color:var(--red);background:var(--red-bg)}
.warn{color:var(--amber);background:var(--amber-bg)}
.off{color:var(--grey);background:var(--grey-bg)}
.dot{display:inline-block;width:8px;height:8px;border-radius:50%;margin-right:5px;
background:currentColor}
.failed{color:var(--red);font-weight:600}
.none{color:var(--muted)}
.spark{vertical-align:middle}
.spark .base{stroke:var(--border);stroke-width:1}
.spark .line{fill:none;stroke-width:1.5;stroke-linejoin:round;stroke-linecap:round}
.spark .area{stroke:none;opacity:.15}
.spark.req .line{stroke:var(--req)}.spark.req .area{fill:var(--req)}
.spark.err .line{stroke:var(--err)}.spark.err .area{fill:var(--err)}
.spark.flat .line{stroke:var(--muted);opacity:.6}
.trend{display:flex;align-items:center;gap:6px;line-height:1}
.trend+.trend{margin-top:2px}
.peak{font-size:11px;color:var(--muted);font-variant-numeric:tabular-nums}
.actions{display:flex;gap:4px;margin:0}
.actions button{font:inherit;font-size:12px;padding:1px 7px;border-radius:6px;cursor:pointer;
border:1px solid var(--border);background:var(--head);color:var(--fg)}
.actions button:hover{border-color:var(--link)}
.panel{margin-top:8px;border:1px solid var(--border);border-radius:6px;padding:6px 8px;
background:var(--card)}
.panel .probe{margin:0 0 6px;color:var(--muted)}
.panel code{color:var(--fg)}
table.mini{min-width:0;table-layout:auto}
table.mini th,table.mini td{padding:3px 8px}
footer{color:var(--muted);font-size:12px;border-top:1px solid var(--border);padding-top:10px}
)css";

// Drain / Stop / Start as one form per server: a plain POST that works without JavaScript;
// with it, the browser asks for a confirmation first. The admin listener answers 303 back to
// this page.
void render_actions(std::string& o, const SnapshotFarm& farm, size_t i, const std::string& token) {
  const ServerEndpoint& ep = farm.servers[i];
  o += "<td><form class=\"actions\" method=\"post\" action=\"/status/servers\" "
       "onsubmit=\"return confirm((event.submitter ? event.submitter.title : 'Change') + "
       "'?')\"><input type=\"hidden\" name=\"token\" value=\"";
  escape(o, token);
  o += "\"><input type=\"hidden\" name=\"farm\" value=\"";
  escape(o, farm.config->name);
  o += "\"><input type=\"hidden\" name=\"server\" value=\"";
  escape(o, ep.label);
  o += "\">";
  static const char* kButtons[][3] = {
      {"drain", "Drain", "take no new requests, finish the ones in flight"},
      {"gracefulStop", "Stop", "drain, then make unavailable"},
      {"start", "Start", "make available"}};
  for (const auto& [state, label, what] : kButtons) {
    o += "<button type=\"submit\" name=\"state\" value=\"" + std::string(state) + "\" title=\"" +
         label + " ";
    escape(o, ep.label);
    o += " in farm ";
    escape(o, farm.config->name);
    o += ": " + std::string(what) + "\">" + label + "</button>";
  }
  o += "</form></td>";
}

void render_server(std::string& o, const SnapshotFarm& farm, size_t i, const StatusHistory& history,
                   const std::string& token) {
  static const char* kAvailability[] = {"Available", "Draining", "Unavailable"};
  static const char* kAvailabilityClass[] = {"ok", "warn", "bad"};
  const ServerEndpoint& ep = farm.servers[i];
  const health::ServerState st = farm.health->load(i);
  const int availability = std::min(static_cast<int>(st.availability), 2);
  const StatusHistory::Series* series = history.find(farm.config->name, ep.label);
  std::vector<const LatencyHistogram*> histograms;
  for (const std::vector<ServerMetrics>& row : farm.metrics) {
    if (i < row.size()) histograms.push_back(&row[i].response_time);
  }
  uint64_t responses = 0;
  for (const LatencyHistogram* h : histograms) responses += h->count();
  const uint64_t failures = total_failures(farm, i);

  o += "<tr><td class=\"server\" title=\"";
  escape(o, ep.label);
  o += "\">";
  escape(o, ep.label);
  o += "</td><td class=\"num\">" + std::to_string(ep.config->weight) + "</td>";
  o += "<td class=\"wrap\"><span class=\"badge " + std::string(kAvailabilityClass[availability]) +
       "\">" + kAvailability[availability] + "</span>";
  if (!ep.resolved) {
    o += " <span class=\"badge bad\" title=\"the server's name does not resolve: it takes no "
         "traffic\">unresolved</span>";
  }
  if (!ep.config->enabled) {
    o += " <span class=\"badge off\" title=\"enabled=&quot;false&quot; in the configuration\">"
         "disabled</span>";
  }
  o += "</td><td>";
  // A name that does not resolve takes no traffic: never shown as healthy.
  o += st.healthy && ep.resolved
           ? "<span class=\"badge ok\"><span class=\"dot\"></span>healthy</span>"
           : "<span class=\"badge bad\"><span class=\"dot\"></span>unhealthy</span>";
  o += "</td>";
  // Beside state and health, as in IIS Manager's server list, where a person looks first.
  if (!token.empty()) render_actions(o, farm, i, token);
  o += "<td class=\"num\">" + format_count(in_flight(farm, i)) + "</td>";
  o += "<td class=\"num\">";
  if (series && !series->requests_per_second.empty()) {
    o += format_rate(series->requests_per_second.back());
  } else {
    o += "<span class=\"none\">&mdash;</span>";
  }
  o += "</td>";
  for (double q : {0.5, 0.99}) {
    o += "<td class=\"num\">";
    if (responses > 0) {
      o += format_ms(latency_quantile(histograms, q));
    } else {
      o += "<span class=\"none\">&mdash;</span>";
    }
    o += "</td>";
  }
  o += "<td class=\"num\">" + format_count(total_requests(farm, i)) + "</td>";
  if (failures > 0) {
    std::string why;
    for (int r = 0; r < kFailureCount; ++r) {
      uint64_t n = failures_of(farm, i, r);
      if (n == 0) continue;
      if (!why.empty()) why += ", ";
      why += std::string(failure_token(static_cast<Failure>(r))) + ": " + format_count(n);
    }
    o += "<td class=\"num failed\" title=\"";
    escape(o, why);
    o += "\">" + format_count(failures) + "</td>";
  } else {
    o += "<td class=\"num\">0</td>";
  }
  // The count, with the last transition and its reason (the prober's words) beside it.
  std::string last = farm.health->probe_record(i).last_transition();
  o += "<td class=\"num\" title=\"";
  escape(o, last.empty() ? std::string("no transition yet") : last);
  o += "\">" +
       format_count(farm.health->probe_record(i).transitions.load(std::memory_order_relaxed)) +
       "</td><td class=\"note\">";
  escape(o, last.empty() ? std::string("—") : last);
  o += "</td>";
  o += "<td>";
  sparkline(o, series ? &series->requests_per_second : nullptr, "requests per second", "req", "/s");
  sparkline(o, series ? &series->errors_per_second : nullptr, "errors per second", "err", "/s");
  o += "</td>";
  o += "</tr>\n";
}

// "12 s ago" / "in 12 s" / "in 4 min".
std::string relative_time(int64_t at_ms, int64_t now_ms) {
  int64_t seconds = (at_ms >= now_ms ? at_ms - now_ms : now_ms - at_ms) / 1000;
  std::string span = seconds < 120    ? std::to_string(seconds) + " s"
                     : seconds < 7200 ? std::to_string(seconds / 60) + " min"
                                      : std::to_string(seconds / 3600) + " h";
  return at_ms >= now_ms ? "in " + span : span + " ago";
}

// Per farm, as IIS Manager's health test pane: what is probed and how often, each server's last
// probe and the next one, and its WebSocket tunnels.
void render_health_panel(std::string& o, const SnapshotFarm& farm, int64_t now_ms) {
  const config::HealthCheckConfig& hc = farm.config->health_check;
  o += "<div class=\"panel\"><p class=\"probe\">Health check: ";
  if (hc.url.empty()) {
    o += "<span class=\"none\">no probe URL: health follows live traffic only</span>";
  } else {
    o += "<code class=\"probe-url\">";
    escape(o, hc.url);
    o += "</code> every " + format("%.0f", static_cast<double>(hc.interval.count()) / 1000) +
         " s, timeout " + format("%.0f", static_cast<double>(hc.timeout.count()) / 1000) +
         " s, healthy on status ";
    escape(o, hc.status_code_match);
    if (!hc.response_match.empty()) {
      o += " with body matching <code>";
      escape(o, hc.response_match);
      o += "</code>";
    }
  }
  o += "</p><table class=\"mini\"><thead><tr><th>Server</th><th>Last probe</th><th>When</th>"
       "<th>Next probe</th><th class=\"num\">Probes passed</th><th class=\"num\">failed</th>"
       "<th class=\"num\">WebSockets open</th><th class=\"num\">total</th>"
       "<th class=\"num\">failed</th></tr></thead><tbody>";
  for (size_t i = 0; i < farm.servers.size(); ++i) {
    const health::ProbeRecord& slot = farm.health->probe_record(i);
    uint64_t passed = slot.probes[0].load(std::memory_order_relaxed), failed = 0;
    for (int k = 1; k < health::kProbeResultKinds; ++k) {
      failed += slot.probes[k].load(std::memory_order_relaxed);
    }
    int64_t last_ms = slot.last_probe_unix_ms.load(std::memory_order_relaxed);
    int64_t next_ms = slot.next_probe_unix_ms.load(std::memory_order_relaxed);
    std::string last = slot.last_probe();
    o += "<tr class=\"probe-row\"><td class=\"server\">";
    escape(o, farm.servers[i].label);
    o += "</td><td class=\"last-probe\">";
    if (last.empty()) {
      o += "<span class=\"none\">none yet</span>";
    } else {
      o += last.starts_with("pass") ? "<span class=\"badge ok\">" : "<span class=\"badge bad\">";
      escape(o, last);
      o += "</span>";
    }
    o +=
        "</td><td>" + (last_ms > 0 ? relative_time(last_ms, now_ms) : std::string("&mdash;")) +
        "</td><td class=\"next-probe\">" +
        (hc.url.empty() || next_ms <= 0 ? std::string("&mdash;") : relative_time(next_ms, now_ms)) +
        "</td><td class=\"num\">" + format_count(passed) + "</td><td class=\"num\">" +
        format_count(failed) + "</td>";
    uint64_t ws_open = 0, ws_total = 0, ws_failed = 0;
    for (const std::vector<ServerMetrics>& row : farm.metrics) {
      if (i >= row.size()) continue;
      ws_open += row[i].websocket_current.get();
      ws_total += row[i].websocket_requests.get();
      ws_failed += row[i].websocket_failures.get();
    }
    o += "<td class=\"num\">" + format_count(ws_open) + "</td><td class=\"num\">" +
         format_count(ws_total) + "</td><td class=\"num\">" + format_count(ws_failed) +
         "</td></tr>";
  }
  o += "</tbody></table></div>\n";
}

void render_farm(std::string& o, const SnapshotFarm& farm, const StatusHistory& history,
                 const StatusPageOptions& options, int64_t now_ms) {
  const bool actions = !options.form_token.empty();
  o += "<section>\n<h2>";
  escape(o, farm.config->name);
  o += " <span class=\"pool\">pool: ";
  if (farm.config->application_pool.empty()) {
    o += "&mdash;";
  } else {
    escape(o, farm.config->application_pool);
  }
  o += "</span>";
  if (!farm.config->enabled) o += " <span class=\"badge off\">disabled</span>";
  if (farm.health && farm.health->panic()) {
    o += " <span class=\"badge bad panic\" title=\"Fewer servers are healthy than the farm "
         "requires (minServers): requests go to every available server, healthy or not\">"
         "panic mode</span>";
  }
  // Fixed column widths, the same in every farm's table, so the farms line up.
  o += "</h2>\n<div class=\"scroll\"><table>\n<colgroup>"
       "<col style=\"width:148px\"><col style=\"width:66px\"><col style=\"width:106px\">"
       "<col style=\"width:110px\">" +
       std::string(actions ? "<col style=\"width:156px\">" : "") +
       "<col style=\"width:74px\"><col style=\"width:64px\">"
       "<col style=\"width:66px\"><col style=\"width:66px\"><col style=\"width:80px\">"
       "<col style=\"width:74px\"><col style=\"width:94px\"><col style=\"width:" +
       std::string(actions ? "150" : "198") +
       "px\"></colgroup>\n"
       "<thead><tr><th>Server</th>"
       "<th class=\"num\">Weight</th><th>State</th><th>Health</th>" +
       std::string(actions ? "<th>Actions</th>" : "") +
       "<th class=\"num\">In flight</th>"
       "<th class=\"num\">Req/s</th><th class=\"num\">p50 ms</th><th class=\"num\">p99 ms</th>"
       "<th class=\"num\">Requests</th><th class=\"num\">Failures</th>"
       "<th class=\"num\">Transitions</th><th>Last transition</th><th>Last 5 min</th>"
       "</tr></thead>\n<tbody>\n";
  for (size_t i = 0; i < farm.servers.size(); ++i) {
    render_server(o, farm, i, history, options.form_token);
  }
  if (farm.servers.empty()) o += "<tr><td colspan=\"12\" class=\"none\">no servers</td></tr>\n";
  o += "</tbody></table></div>\n";
  if (!farm.servers.empty()) render_health_panel(o, farm, now_ms);
  o += "</section>\n";
}

}  // namespace

void StatusHistory::sample(const Snapshot& snapshot, uint64_t now_ms) {
  std::set<std::string> seen;
  for (const SnapshotFarm& farm : snapshot.farms) {
    for (size_t i = 0; i < farm.servers.size(); ++i) {
      std::string key = series_key(farm.config->name, farm.servers[i].label);
      if (!seen.insert(key).second) continue;  // the loader forbids duplicates; be safe anyway
      const uint64_t requests = total_requests(farm, i);
      const uint64_t errors = total_failures(farm, i);
      auto [it, fresh] = series_.try_emplace(std::move(key));
      Series& s = it->second;
      if (!fresh) {
        if (now_ms <= s.last_ms) continue;  // no time passed: keep the baseline
        const double seconds = static_cast<double>(now_ms - s.last_ms) / 1000.0;
        // A counter that went backwards was reset (the server left and came back): count
        // from zero, as Prometheus's rate() does.
        const uint64_t dr = requests >= s.last_requests ? requests - s.last_requests : requests;
        const uint64_t de = errors >= s.last_errors ? errors - s.last_errors : errors;
        append_point(s.requests_per_second, static_cast<double>(dr) / seconds);
        append_point(s.errors_per_second, static_cast<double>(de) / seconds);
      }
      s.last_requests = requests;
      s.last_errors = errors;
      s.last_ms = now_ms;
    }
  }
  std::erase_if(series_, [&](const auto& entry) { return !seen.contains(entry.first); });
}

const StatusHistory::Series* StatusHistory::find(const std::string& farm,
                                                 const std::string& server) const {
  auto it = series_.find(series_key(farm, server));
  return it == series_.end() ? nullptr : &it->second;
}

std::string render_status_page(const Snapshot& snapshot, const StatusHistory& history,
                               const StatusPageOptions& options) {
  const int64_t now_ms = options.now_unix_ms != 0
                             ? options.now_unix_ms
                             : std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count();
  size_t servers = 0, healthy = 0, available = 0;
  for (const SnapshotFarm& farm : snapshot.farms) {
    for (size_t i = 0; i < farm.servers.size(); ++i) {
      health::ServerState st = farm.health->load(i);
      bool resolved = farm.servers[i].resolved;
      ++servers;
      healthy += st.healthy && resolved ? 1 : 0;
      available += st.takes_new_requests() && resolved ? 1 : 0;
    }
  }
  char when[32] = "";
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  if (gmtime_r(&now, &tm) != nullptr) std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);

  std::string o;
  o.reserve(4096 + servers * 2048);
  o += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       "<meta http-equiv=\"refresh\" content=\"5\">\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
       "<title>Harrow status</title>\n<style>";
  o += kStyle;
  o += "</style>\n</head>\n<body>\n<header><h1>Harrow status</h1>"
       "<span class=\"version\">version " HARROW_VERSION
       "</span>"
       "<nav><a href=\"/metrics\">/metrics</a><a href=\"/api/farms\">/api/farms</a></nav>"
       "</header>\n";
  o += "<p class=\"summary\">" + std::to_string(snapshot.farms.size()) +
       (snapshot.farms.size() == 1 ? " farm" : " farms") + " &middot; " + std::to_string(servers) +
       (servers == 1 ? " server" : " servers") + " &middot; " + std::to_string(healthy) +
       " healthy &middot; " + std::to_string(available) + " taking new requests &middot; as of " +
       when + " UTC, refreshes every 5 s</p>\n";
  if (options.has_listener_counters) {
    o += "<p class=\"summary counters\">client connections open: " +
         format_count(options.connections_active) +
         " &middot; TLS handshakes failed: " + format_count(options.tls_handshake_failures) +
         "</p>\n";
  }
  for (const SnapshotFarm& farm : snapshot.farms) render_farm(o, farm, history, options, now_ms);
  if (snapshot.farms.empty()) o += "<p class=\"none\">No farms are configured.</p>\n";
  o += "<footer>Rates are sampled every 5 s; latency is the server's response time (request "
       "start to the last response byte), estimated from histograms since start. "
       "<a href=\"/metrics\">Prometheus metrics</a> &middot; "
       "<a href=\"/api/farms\">farms as JSON</a></footer>\n</body>\n</html>\n";
  return o;
}

}  // namespace harrow

namespace harrow {

PageTokens::PageTokens() {
  if (RAND_bytes(secret_, sizeof secret_) != 1 &&
      getrandom(secret_, sizeof secret_, 0) != static_cast<ssize_t>(sizeof secret_)) {
    std::abort();  // no randomness: a guessable token would protect nothing
  }
}

std::string PageTokens::mac(std::string_view issued) const {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret_, sizeof secret_, reinterpret_cast<const unsigned char*>(issued.data()),
       issued.size(), out, &len);
  static const char* kHex = "0123456789abcdef";
  std::string text;
  for (unsigned int i = 0; i < len; ++i) {
    text += kHex[out[i] >> 4];
    text += kHex[out[i] & 15];
  }
  return text;
}

std::string PageTokens::issue(int64_t now_unix_s) const {
  std::string issued = std::to_string(now_unix_s);
  return issued + "." + mac(issued);
}

bool PageTokens::valid(std::string_view token, int64_t now_unix_s) const {
  size_t dot = token.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 12) return false;
  int64_t issued = 0;
  for (char c : token.substr(0, dot)) {
    if (c < '0' || c > '9') return false;
    issued = issued * 10 + (c - '0');
  }
  // A minute of leeway for a clock stepped back; none for a token older than its lifetime.
  if (issued > now_unix_s + 60 || now_unix_s - issued > kLifetimeSeconds) return false;
  std::string expected = mac(token.substr(0, dot));
  std::string_view given = token.substr(dot + 1);
  return given.size() == expected.size() &&
         CRYPTO_memcmp(given.data(), expected.data(), expected.size()) == 0;
}

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded: '+' is a space, %XX a byte (HTML's form submission).
std::string form_decode(std::string_view v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '+') {
      out += ' ';
    } else if (v[i] == '%' && i + 2 < v.size() && hex_value(v[i + 1]) >= 0 &&
               hex_value(v[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(v[i + 1]) * 16 + hex_value(v[i + 2]));
      i += 2;
    } else {
      out += v[i];
    }
  }
  return out;
}

std::string_view trim_spaces(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

}  // namespace

bool parse_server_action_form(std::string_view body, ServerActionForm& out, std::string& error) {
  out = ServerActionForm{};
  bool seen[4] = {};
  size_t pos = 0;
  while (pos <= body.size()) {
    size_t amp = body.find('&', pos);
    if (amp == std::string_view::npos) amp = body.size();
    std::string_view pair = body.substr(pos, amp - pos);
    pos = amp + 1;
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string name = form_decode(pair.substr(0, eq));
    std::string value = eq == std::string_view::npos ? "" : form_decode(pair.substr(eq + 1));
    std::string* fields[] = {&out.token, &out.farm, &out.server, &out.state};
    const char* names[] = {"token", "farm", "server", "state"};
    for (int f = 0; f < 4; ++f) {
      if (name != names[f]) continue;
      if (seen[f]) {
        error = std::string("the form field ") + names[f] + " came more than once";
        return false;
      }
      seen[f] = true;
      *fields[f] = std::move(value);
    }
  }
  const char* names[] = {"token", "farm", "server", "state"};
  for (int f = 0; f < 4; ++f) {
    if (!seen[f]) {
      error = std::string("the form has no ") + names[f] + " field";
      return false;
    }
  }
  for (const char* state : {"drain", "gracefulStop", "start"}) {
    if (iequals(out.state, state)) {
      out.state = state;
      return true;
    }
  }
  error = "state must be drain, gracefulStop or start";
  return false;
}

bool same_origin_form(std::string_view host, std::string_view origin, std::string_view referer,
                      std::string_view sec_fetch_site, std::string& error) {
  std::string self = "http://" + std::string(trim_spaces(host));
  std::string_view site = trim_spaces(sec_fetch_site);
  if (!site.empty() && !iequals(site, "same-origin")) {
    error = "cross-site form refused (Sec-Fetch-Site: " + std::string(site) + ")";
    return false;
  }
  origin = trim_spaces(origin);
  if (!origin.empty()) {
    if (iequals(origin, self)) return true;
    error = "cross-site form refused (Origin " + std::string(origin) + " is not " + self + ")";
    return false;
  }
  referer = trim_spaces(referer);
  if (!referer.empty()) {
    if (istarts_with(referer, self) &&
        (referer.size() == self.size() || referer[self.size()] == '/')) {
      return true;
    }
    error = "cross-site form refused (Referer " + std::string(referer) + " is not on " + self + ")";
    return false;
  }
  error = "a form without Origin or Referer is refused: it cannot be told from a cross-site one";
  return false;
}

}  // namespace harrow

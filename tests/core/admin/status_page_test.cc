#include "core/admin/status_page.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/proxy/snapshot.h"
#include "health/health_table.h"

namespace harrow {
namespace {

constexpr int kShop = 0;  // farm indexes in the snapshot below
constexpr int kEvil = 1;

// Two farms on loopback, two workers (so every sum crosses worker rows).
std::shared_ptr<const Snapshot> make_snapshot(const std::string& second_farm = "<script>") {
  auto cfg = std::make_shared<config::Config>();
  config::FarmConfig shop;
  shop.name = "shop";
  shop.application_pool = "Pool&Co";
  for (uint16_t port : {8081, 8082}) {
    config::ServerConfig server;
    server.address = "127.0.0.1";
    server.http_port = port;
    server.weight = port == 8081 ? 100 : 50;
    shop.servers.push_back(server);
  }
  cfg->farms.push_back(shop);
  config::FarmConfig evil;
  evil.name = second_farm;
  config::ServerConfig server;
  server.address = "127.0.0.2";
  server.http_port = 9000;
  evil.servers.push_back(server);
  cfg->farms.push_back(evil);
  std::vector<std::string> warnings;
  auto snap = build_snapshot(cfg, 2, nullptr, warnings);
  EXPECT_TRUE(warnings.empty());
  return snap;
}

ServerMetrics& row(const Snapshot& snap, int farm, int worker, int server) {
  return snap.farms[farm].metrics[worker][server];
}

size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

TEST(StatusHistory, FirstSampleIsOnlyTheBaseline) {
  auto snap = make_snapshot();
  row(*snap, kShop, 0, 0).responses_by_class[2].add(100);
  StatusHistory history;
  history.sample(*snap, 1'000);
  const StatusHistory::Series* s = history.find("shop", "127.0.0.1:8081");
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->requests_per_second.empty());
  EXPECT_TRUE(s->errors_per_second.empty());
  EXPECT_EQ(s->last_requests, 100u);
  EXPECT_EQ(s->last_ms, 1'000u);
  EXPECT_EQ(history.find("shop", "127.0.0.1:9999"), nullptr);
  EXPECT_EQ(history.find("other", "127.0.0.1:8081"), nullptr);
}

TEST(StatusHistory, RatesAreDeltasOverElapsedSecondsSummedOverWorkers) {
  auto snap = make_snapshot();
  StatusHistory history;
  history.sample(*snap, 10'000);
  // 60 responses over both workers and every status class (1xx..5xx); class 0 ("no response
  // sent") is not a request, as in /api/farms. 3 failures.
  row(*snap, kShop, 0, 0).responses_by_class[2].add(40);
  row(*snap, kShop, 1, 0).responses_by_class[3].add(10);
  row(*snap, kShop, 1, 0).responses_by_class[5].add(10);
  row(*snap, kShop, 0, 0).responses_by_class[0].add(7);
  row(*snap, kShop, 0, 0).failures[0].add(2);
  row(*snap, kShop, 1, 0).failures[kFailureCount - 1].add(1);
  history.sample(*snap, 15'000);  // 5 s later
  const StatusHistory::Series* s = history.find("shop", "127.0.0.1:8081");
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->requests_per_second.size(), 1u);
  EXPECT_DOUBLE_EQ(s->requests_per_second[0], 12.0);
  ASSERT_EQ(s->errors_per_second.size(), 1u);
  EXPECT_DOUBLE_EQ(s->errors_per_second[0], 0.6);
  // The other server saw nothing.
  const StatusHistory::Series* idle = history.find("shop", "127.0.0.1:8082");
  ASSERT_NE(idle, nullptr);
  ASSERT_EQ(idle->requests_per_second.size(), 1u);
  EXPECT_EQ(idle->requests_per_second[0], 0.0);

  // 2.5 s later, 10 more requests: 4 req/s; no new failures.
  row(*snap, kShop, 1, 0).responses_by_class[2].add(10);
  history.sample(*snap, 17'500);
  ASSERT_EQ(s->requests_per_second.size(), 2u);
  EXPECT_DOUBLE_EQ(s->requests_per_second[1], 4.0);
  EXPECT_DOUBLE_EQ(s->errors_per_second[1], 0.0);

  // No time passed: nothing appended, baseline kept.
  row(*snap, kShop, 1, 0).responses_by_class[2].add(10);
  history.sample(*snap, 17'500);
  EXPECT_EQ(s->requests_per_second.size(), 2u);
  history.sample(*snap, 18'500);
  ASSERT_EQ(s->requests_per_second.size(), 3u);
  EXPECT_DOUBLE_EQ(s->requests_per_second[2], 10.0);
}

TEST(StatusHistory, KeepsAtMostKSamplesDroppingTheOldest) {
  auto snap = make_snapshot();
  StatusHistory history;
  uint64_t now = 0;
  history.sample(*snap, now);
  const size_t total = StatusHistory::kSamples + 10;
  for (size_t i = 1; i <= total; ++i) {
    row(*snap, kShop, 0, 1).responses_by_class[2].add(i);  // i requests in 1 s: i req/s
    now += 1'000;
    history.sample(*snap, now);
  }
  const StatusHistory::Series* s = history.find("shop", "127.0.0.1:8082");
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->requests_per_second.size(), StatusHistory::kSamples);
  ASSERT_EQ(s->errors_per_second.size(), StatusHistory::kSamples);
  EXPECT_DOUBLE_EQ(s->requests_per_second.front(), 11.0);  // 1..10 dropped
  EXPECT_DOUBLE_EQ(s->requests_per_second.back(), static_cast<double>(total));
}

TEST(StatusHistory, SurvivesAReloadAndForgetsRemovedServers) {
  auto snap = make_snapshot();
  StatusHistory history;
  row(*snap, kShop, 0, 0).responses_by_class[2].add(10);
  history.sample(*snap, 1'000);
  // A reload keeping the shop farm (counters carried over) but renaming the other one.
  std::vector<std::string> warnings;
  auto reloaded = build_snapshot(make_snapshot("renamed")->config, 2, snap.get(), warnings);
  row(*reloaded, kShop, 1, 0).responses_by_class[2].add(5);
  history.sample(*reloaded, 2'000);
  const StatusHistory::Series* s = history.find("shop", "127.0.0.1:8081");
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->requests_per_second.size(), 1u);
  EXPECT_DOUBLE_EQ(s->requests_per_second[0], 5.0);
  EXPECT_EQ(history.find("<script>", "127.0.0.2:9000"), nullptr);
  ASSERT_NE(history.find("renamed", "127.0.0.2:9000"), nullptr);
  // A counter that restarts from zero counts as a reset, not as a huge negative delta.
  auto fresh = make_snapshot("renamed");
  row(*fresh, kShop, 0, 0).responses_by_class[2].add(3);
  history.sample(*fresh, 3'000);
  EXPECT_DOUBLE_EQ(s->requests_per_second.back(), 3.0);
}

// Checks that every non-void element is closed in order (outside <style>): a cheap stand-in
// for an HTML validator, enough to catch a forgotten </td> or an unescaped '<'.
::testing::AssertionResult balanced(const std::string& html) {
  static const std::vector<std::string> kVoid = {"meta", "br", "hr", "img", "input", "link", "col"};
  std::vector<std::string> stack;
  size_t pos = 0;
  while ((pos = html.find('<', pos)) != std::string::npos) {
    size_t end = html.find('>', pos);
    if (end == std::string::npos) return ::testing::AssertionFailure() << "unclosed tag at " << pos;
    std::string tag = html.substr(pos + 1, end - pos - 1);
    pos = end + 1;
    if (tag.starts_with("!")) continue;  // <!DOCTYPE html>
    bool closing = tag.starts_with("/");
    bool self_closing = tag.ends_with("/");
    std::string name = tag.substr(closing ? 1 : 0);
    name = name.substr(0, name.find_first_of(" /"));
    if (closing) {
      if (stack.empty() || stack.back() != name) {
        return ::testing::AssertionFailure()
               << "</" << name << "> closes <" << (stack.empty() ? "" : stack.back()) << ">";
      }
      stack.pop_back();
    } else if (!self_closing && std::find(kVoid.begin(), kVoid.end(), name) == kVoid.end()) {
      stack.push_back(name);
      if (name == "style") {
        pos = html.find("</style>", pos);
        if (pos == std::string::npos) return ::testing::AssertionFailure() << "no </style>";
      }
    }
  }
  if (!stack.empty()) return ::testing::AssertionFailure() << "<" << stack.back() << "> left open";
  return ::testing::AssertionSuccess();
}

TEST(StatusPage, IsACompleteSelfContainedDocument) {
  auto snap = make_snapshot();
  StatusHistory history;
  std::string page = render_status_page(*snap, history);
  EXPECT_TRUE(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
  EXPECT_TRUE(page.ends_with("</html>\n"));
  EXPECT_NE(page.find("<meta charset=\"utf-8\">"), std::string::npos);
  EXPECT_NE(page.find("<meta http-equiv=\"refresh\" content=\"5\">"), std::string::npos);
  EXPECT_NE(page.find("<title>Harrow status</title>"), std::string::npos);
  EXPECT_NE(page.find("version " HARROW_VERSION), std::string::npos);
  EXPECT_NE(page.find("href=\"/metrics\""), std::string::npos);
  EXPECT_NE(page.find("href=\"/api/farms\""), std::string::npos);
  // No external assets: no scripts, stylesheets, images or absolute URLs.
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_EQ(page.find("<link"), std::string::npos);
  EXPECT_EQ(page.find("<img"), std::string::npos);
  EXPECT_EQ(page.find("http://"), std::string::npos);
  EXPECT_EQ(page.find("https://"), std::string::npos);
  EXPECT_EQ(page.find("src="), std::string::npos);
  EXPECT_TRUE(balanced(page));
  // One section per farm, one row per server, with labels and weights.
  EXPECT_EQ(count(page, "<section>"), 2u);
  EXPECT_NE(page.find(">127.0.0.1:8081<"), std::string::npos);
  EXPECT_NE(page.find(">127.0.0.1:8082<"), std::string::npos);
  EXPECT_NE(page.find(">127.0.0.2:9000<"), std::string::npos);
  EXPECT_NE(page.find("<td class=\"num\">50</td>"), std::string::npos);
  EXPECT_EQ(count(page, "<tr><td class=\"server\""), 3u);
}

TEST(StatusPage, EscapesEveryName) {
  auto snap = make_snapshot("<script>alert(\"x\")&'</script>");
  StatusHistory history;
  history.sample(*snap, 0);
  history.sample(*snap, 5'000);
  std::string page = render_status_page(*snap, history);
  EXPECT_EQ(page.find("<script>"), std::string::npos);
  EXPECT_NE(page.find("&lt;script&gt;alert(&quot;x&quot;)&amp;&#39;&lt;/script&gt;"),
            std::string::npos);
  EXPECT_NE(page.find("pool: Pool&amp;Co"), std::string::npos);
  EXPECT_TRUE(balanced(page));
  // History is keyed by the raw name, the page escapes only what it prints.
  EXPECT_NE(history.find("<script>alert(\"x\")&'</script>", "127.0.0.2:9000"), nullptr);
}

TEST(StatusPage, StateHealthPanicAndTransitions) {
  auto snap = make_snapshot();
  StatusHistory history;
  std::string page = render_status_page(*snap, history);
  EXPECT_EQ(page.find("panic mode"), std::string::npos);
  EXPECT_EQ(page.find("unhealthy"), std::string::npos);
  EXPECT_EQ(count(page, ">Available</span>"), 3u);

  const SnapshotFarm& shop = snap->farms[kShop];
  shop.health->store(0, false, health::Availability::Available);
  shop.health->store(1, true, health::Availability::Draining);
  snap->farms[kEvil].health->store(0, true, health::Availability::Unavailable);
  shop.health->probe_record(0).transitions.store(7);
  shop.health->set_panic(true);
  page = render_status_page(*snap, history);
  EXPECT_EQ(count(page, "panic mode</span>"), 1u);
  // The badge is in the shop farm's heading, not the other farm's.
  size_t evil = page.find("&lt;script&gt;");
  ASSERT_NE(evil, std::string::npos);
  EXPECT_LT(page.find("panic mode"), evil);
  EXPECT_NE(page.find("<span class=\"badge bad\"><span class=\"dot\"></span>unhealthy</span>"),
            std::string::npos);
  EXPECT_EQ(count(page, "<span class=\"dot\"></span>healthy</span>"), 2u);
  EXPECT_NE(page.find("<span class=\"badge warn\">Draining</span>"), std::string::npos);
  EXPECT_NE(page.find("<span class=\"badge bad\">Unavailable</span>"), std::string::npos);
  // Seven transitions; with no recorded description the cell says so.
  EXPECT_NE(page.find("<td class=\"num\" title=\"no transition yet\">7</td>"), std::string::npos);
  EXPECT_TRUE(balanced(page));
}

TEST(StatusPage, ShowsTheLastTransitionAndItsReason) {
  config::Config config;
  config.farms.resize(1);
  config.farms[0].name = "shop";
  config.farms[0].servers.resize(1);
  config.farms[0].servers[0].address = "127.0.0.1";
  std::vector<std::string> warnings;
  auto snap = build_snapshot(std::make_shared<config::Config>(config), 1, nullptr, warnings);
  snap->farms[0].health->probe_record(0).set_last_transition(
      "healthy/available -> unhealthy/available: 3 consecutive failed probes (last: status 503)");
  StatusHistory history;
  std::string page = render_status_page(*snap, history);
  EXPECT_NE(page.find("3 consecutive failed probes (last: status 503)</td>"), std::string::npos);
  EXPECT_TRUE(balanced(page));
}

TEST(StatusPage, ShowsCountsRatesAndLatency) {
  auto snap = make_snapshot();
  StatusHistory history;
  history.sample(*snap, 0);
  // 100 responses of 3 ms split over both workers: p50 interpolates to 3.75 ms inside the
  // (2.5 ms, 5 ms] bucket, so the page must sum the workers' histograms.
  for (int w = 0; w < 2; ++w) {
    ServerMetrics& m = row(*snap, kShop, w, 0);
    for (int i = 0; i < 50; ++i) m.response_time.observe(3'000);
    m.responses_by_class[2].add(600);
    m.in_flight.add(2);
  }
  row(*snap, kShop, 0, 0).failures[1].add(1'234);
  history.sample(*snap, 5'000);
  std::string page = render_status_page(*snap, history);
  std::vector<const LatencyHistogram*> hs = {&row(*snap, kShop, 0, 0).response_time,
                                             &row(*snap, kShop, 1, 0).response_time};
  EXPECT_DOUBLE_EQ(latency_quantile(hs, 0.5), 0.00375);
  char p99[32];
  std::snprintf(p99, sizeof p99, "%.2f", latency_quantile(hs, 0.99) * 1000);
  size_t at = page.find(">127.0.0.1:8081<");
  ASSERT_NE(at, std::string::npos);
  std::string r = page.substr(at, page.find("</tr>", at) - at);
  // weight, in flight, req/s (1200 in 5 s), p50, p99, requests, failures (with reasons).
  EXPECT_NE(r.find("<td class=\"num\">100</td>"), std::string::npos) << r;
  EXPECT_NE(r.find("<td class=\"num\">4</td>"), std::string::npos) << r;
  EXPECT_NE(r.find("<td class=\"num\">240</td>"), std::string::npos) << r;
  EXPECT_NE(r.find("<td class=\"num\">3.75</td>"), std::string::npos) << r;
  EXPECT_NE(r.find(std::string("<td class=\"num\">") + p99 + "</td>"), std::string::npos) << r;
  EXPECT_NE(r.find("<td class=\"num\">1,200</td>"), std::string::npos) << r;
  EXPECT_NE(r.find(">1,234</td>"), std::string::npos) << r;
  EXPECT_NE(r.find(std::string(failure_token(static_cast<Failure>(1))) + ": 1,234"),
            std::string::npos)
      << r;
  // A server with no responses has no latency to show.
  at = page.find(">127.0.0.1:8082<");
  r = page.substr(at, page.find("</tr>", at) - at);
  EXPECT_EQ(count(r, "&mdash;"), 2u) << r;  // p50 and p99; req/s is 0
}

TEST(StatusPage, TwoSparklinesPerServerScaledToTheirMax) {
  auto snap = make_snapshot();
  StatusHistory history;
  std::string page = render_status_page(*snap, history);
  // Three servers, two series each; no history yet: every sparkline is the flat bottom line.
  EXPECT_EQ(count(page, "<svg "), 6u);
  EXPECT_EQ(count(page, "</svg>"), 6u);
  EXPECT_EQ(count(page, "<polyline class=\"line\" points=\"0,20.0 120,20.0\"/>"), 6u);
  EXPECT_EQ(count(page, "width=\"120\""), 6u);

  history.sample(*snap, 0);
  for (uint64_t i = 1; i <= 3; ++i) {
    row(*snap, kShop, 0, 0).responses_by_class[2].add(i * 10);  // 10, 20, 30 req/s
    if (i == 2) row(*snap, kShop, 0, 0).failures[0].add(5);     // 0, 5, 0 errors/s
    history.sample(*snap, i * 1'000);
  }
  page = render_status_page(*snap, history);
  EXPECT_EQ(count(page, "<svg "), 6u);
  EXPECT_TRUE(balanced(page));
  // 59 steps over 120 px; the newest point at the right edge; the max at the top (y = 2).
  size_t at = page.find(">127.0.0.1:8081<");
  std::string r = page.substr(at, page.find("</tr>", at) - at);
  EXPECT_NE(r.find("<polyline class=\"line\" points=\"115.9,14.0 118.0,8.0 120.0,2.0\"/>"),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("<polyline class=\"line\" points=\"115.9,20.0 118.0,2.0 120.0,20.0\"/>"),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("max 30.0/s"), std::string::npos) << r;
  EXPECT_NE(r.find("max 5.00/s"), std::string::npos) << r;
  EXPECT_NE(r.find("<td class=\"num\">30.0</td>"), std::string::npos) << r;  // last req/s
}

TEST(StatusPage, ActionFormsPerServerOnlyWithAToken) {
  auto snap = make_snapshot();
  StatusHistory history;
  EXPECT_EQ(render_status_page(*snap, history).find("<form"), std::string::npos);
  StatusPageOptions options;
  options.form_token = "123.abc";
  std::string page = render_status_page(*snap, history, options);
  EXPECT_TRUE(balanced(page));
  // One form per server, each a plain POST carrying the token, farm and server.
  EXPECT_EQ(count(page, "<form class=\"actions\" method=\"post\" action=\"/status/servers\""), 3u);
  EXPECT_EQ(count(page, "<input type=\"hidden\" name=\"token\" value=\"123.abc\">"), 3u);
  EXPECT_NE(page.find("<input type=\"hidden\" name=\"farm\" value=\"shop\"><input "
                      "type=\"hidden\" name=\"server\" value=\"127.0.0.1:8082\">"),
            std::string::npos);
  for (const char* button :
       {"name=\"state\" value=\"drain\"", "name=\"state\" value=\"gracefulStop\"",
        "name=\"state\" value=\"start\""}) {
    EXPECT_EQ(count(page, button), 3u) << button;
  }
  EXPECT_NE(page.find(">Drain</button>"), std::string::npos);
  EXPECT_NE(page.find(">Stop</button>"), std::string::npos);
  EXPECT_NE(page.find(">Start</button>"), std::string::npos);
  EXPECT_NE(page.find("onsubmit=\"return confirm("), std::string::npos);
  EXPECT_NE(page.find("<th>Actions</th>"), std::string::npos);
  // The hidden fields are escaped like everything else.
  EXPECT_NE(page.find("name=\"farm\" value=\"&lt;script&gt;\""), std::string::npos);
  options.form_token = "\"><b>";
  EXPECT_EQ(render_status_page(*snap, history, options).find("\"><b>"), std::string::npos);
}

TEST(StatusPage, HealthPanelShowsProbeUrlLastAndNextProbe) {
  auto cfg = std::make_shared<config::Config>(*make_snapshot()->config);
  cfg->farms[0].health_check.url = "http://shop/health";
  cfg->farms[0].health_check.interval = config::Millis(10'000);
  std::vector<std::string> warnings;
  auto snap = build_snapshot(cfg, 2, nullptr, warnings);
  health::ProbeRecord& slot = snap->farms[kShop].health->probe_record(1);
  slot.set_last_probe("bad_status: status 503");
  slot.last_probe_unix_ms = 1'000'000'000'000 - 12'000;
  slot.next_probe_unix_ms = 1'000'000'000'000 + 8'000;
  slot.probes[0] = 7;
  slot.probes[3] = 2;
  row(*snap, kShop, 0, 1).websocket_current.add(2);
  row(*snap, kShop, 1, 1).websocket_requests.add(5);
  row(*snap, kShop, 1, 1).websocket_failures.add(1);
  StatusHistory history;
  StatusPageOptions options;
  options.now_unix_ms = 1'000'000'000'000;
  options.has_listener_counters = true;
  options.connections_active = 4;
  options.tls_handshake_failures = 1234;
  std::string page = render_status_page(*snap, history, options);
  EXPECT_TRUE(balanced(page));
  EXPECT_NE(page.find("<code class=\"probe-url\">http://shop/health</code> every 10 s"),
            std::string::npos);
  EXPECT_NE(page.find("<span class=\"badge bad\">bad_status: status 503</span></td><td>12 s "
                      "ago</td><td class=\"next-probe\">in 8 s</td><td class=\"num\">7</td><td "
                      "class=\"num\">2</td><td class=\"num\">2</td><td class=\"num\">5</td><td "
                      "class=\"num\">1</td>"),
            std::string::npos)
      << page;
  // A server never probed, and a farm without a probe URL.
  EXPECT_NE(page.find("<span class=\"none\">none yet</span>"), std::string::npos);
  EXPECT_NE(page.find("no probe URL: health follows live traffic only"), std::string::npos);
  EXPECT_EQ(count(page, "<div class=\"panel\">"), 2u);
  EXPECT_NE(page.find("client connections open: 4 &middot; TLS handshakes failed: 1,234"),
            std::string::npos);
}

TEST(PageTokens, IssuedTokensAreValidForTheirLifetimeOnly) {
  PageTokens tokens;
  std::string t = tokens.issue(1'000'000);
  EXPECT_TRUE(tokens.valid(t, 1'000'000));
  EXPECT_TRUE(tokens.valid(t, 1'000'000 + PageTokens::kLifetimeSeconds));
  EXPECT_FALSE(tokens.valid(t, 1'000'000 + PageTokens::kLifetimeSeconds + 1));
  EXPECT_FALSE(tokens.valid(t, 1'000'000 - 61));  // issued "in the future"
  EXPECT_NE(tokens.issue(1'000'001), t);
}

TEST(PageTokens, ForgedOrForeignTokensAreRefused) {
  PageTokens tokens, other;
  std::string t = tokens.issue(1'000'000);
  EXPECT_FALSE(other.valid(t, 1'000'000));  // another listener (or a restart) has another secret
  std::string later = t;
  later[6] = later[6] == '9' ? '8' : '9';  // change the issue time, keep the MAC
  EXPECT_FALSE(tokens.valid(later, 1'000'000));
  std::string flipped = t;
  flipped.back() = flipped.back() == 'a' ? 'b' : 'a';
  EXPECT_FALSE(tokens.valid(flipped, 1'000'000));
  for (const char* bad : {"", ".", "1000000", "1000000.", ".abc", "x.abc", "10000000000000.ab"}) {
    EXPECT_FALSE(tokens.valid(bad, 1'000'000)) << bad;
  }
  EXPECT_FALSE(tokens.valid(t.substr(0, t.size() - 1), 1'000'000));
}

TEST(ServerActionForm, ParsesTheButtonsForm) {
  ServerActionForm form;
  std::string error;
  ASSERT_TRUE(parse_server_action_form(
      "token=1.ab&farm=my+farm%21&server=127.0.0.1%3A8081&state=gracefulstop", form, error))
      << error;
  EXPECT_EQ(form.token, "1.ab");
  EXPECT_EQ(form.farm, "my farm!");
  EXPECT_EQ(form.server, "127.0.0.1:8081");
  EXPECT_EQ(form.state, "gracefulStop");
  EXPECT_FALSE(parse_server_action_form("farm=a&server=b&state=drain", form, error));
  EXPECT_EQ(error, "the form has no token field");
  EXPECT_FALSE(parse_server_action_form("token=1&farm=a&server=b&state=forcefulStop", form, error));
  EXPECT_EQ(error, "state must be drain, gracefulStop or start");
  EXPECT_FALSE(parse_server_action_form("token=1&farm=a&farm=b&server=b&state=drain", form, error));
  EXPECT_EQ(error, "the form field farm came more than once");
}

TEST(SameOriginForm, OriginOrRefererMustNameThisListener) {
  std::string error;
  EXPECT_TRUE(
      same_origin_form("127.0.0.1:9180", "http://127.0.0.1:9180", "", "same-origin", error));
  EXPECT_TRUE(same_origin_form("127.0.0.1:9180", "", "http://127.0.0.1:9180/", "", error));
  EXPECT_TRUE(same_origin_form("localhost:9180", "HTTP://LOCALHOST:9180", "", "", error));
  EXPECT_FALSE(same_origin_form("127.0.0.1:9180", "http://evil.example", "", "", error));
  EXPECT_EQ(error,
            "cross-site form refused (Origin http://evil.example is not http://127.0.0.1:9180)");
  EXPECT_FALSE(same_origin_form("127.0.0.1:9180", "null", "", "", error));
  // Another port is another origin, and a name that only starts like this one is not it.
  EXPECT_FALSE(same_origin_form("127.0.0.1:9180", "http://127.0.0.1:9181", "", "", error));
  EXPECT_FALSE(same_origin_form("127.0.0.1:9180", "", "http://127.0.0.1:91800/", "", error));
  EXPECT_FALSE(same_origin_form("127.0.0.1:9180", "", "http://127.0.0.1:9180.evil/", "", error));
  EXPECT_FALSE(
      same_origin_form("127.0.0.1:9180", "http://127.0.0.1:9180", "", "cross-site", error));
  EXPECT_EQ(error, "cross-site form refused (Sec-Fetch-Site: cross-site)");
  EXPECT_FALSE(same_origin_form("127.0.0.1:9180", "", "", "", error));
  EXPECT_NE(error.find("without Origin or Referer"), std::string::npos);
}

}  // namespace
}  // namespace harrow

#include "core/daemon/replay.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "config/loader.h"
#include "core/proxy/access_log.h"

namespace harrow {
namespace {

constexpr const char* kIisFields =
    "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
    "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken";

TEST(W3cLogReader, ReadsIisDefaultFields) {
  W3cLogReader reader;
  LoggedRequest r;
  std::string error;
  EXPECT_EQ(reader.read("#Software: Microsoft Internet Information Services 10.0", r, error),
            W3cLogReader::Line::Directive);
  EXPECT_EQ(reader.read(kIisFields, r, error), W3cLogReader::Line::Directive);
  ASSERT_EQ(reader.read("2026-12-01 00:00:05 10.0.0.5 GET /api/orders page=2&size=50 8080 "
                        "CONTOSO\\jsmith 198.51.100.23 Mozilla/5.0+(X11) http://a.example/ 200 "
                        "0 0 131\r",
                        r, error),
            W3cLogReader::Line::Request)
      << error;
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.url, "http://10.0.0.5:8080/api/orders?page=2&size=50");
  EXPECT_EQ(r.headers, (std::vector<std::string>{"user-agent: Mozilla/5.0 (X11)",
                                                 "referer: http://a.example/"}));
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.rewritten);
  EXPECT_FALSE(r.farm);
  EXPECT_EQ(reader.read("", r, error), W3cLogReader::Line::Blank);
}

TEST(W3cLogReader, PortDecidesTheSchemeAndHostWinsOverTheServerAddress) {
  W3cLogReader reader;
  LoggedRequest r;
  std::string error;
  reader.read("#Fields: s-ip s-port cs-method cs-uri-stem cs-uri-query", r, error);
  ASSERT_EQ(reader.read("fe80::1 443 GET /cart -", r, error), W3cLogReader::Line::Request);
  EXPECT_EQ(r.url, "https://[fe80::1]/cart");
  reader.read("#Fields: cs-method cs-uri-stem cs(Host) s-port", r, error);
  ASSERT_EQ(reader.read("PUT /a shop.example:81 81", r, error), W3cLogReader::Line::Request);
  EXPECT_EQ(r.url, "http://shop.example:81/a");
  EXPECT_TRUE(r.headers.empty());  // Host is in the URL, not repeated
  ASSERT_EQ(reader.read("GET /b - -", r, error), W3cLogReader::Line::Request);
  EXPECT_EQ(r.url, "http://localhost/b");
  // A proxy's absolute URL keeps its host; its scheme is read case-insensitively.
  ASSERT_EQ(reader.read("GET HTTPS://Shop.example/c - -", r, error), W3cLogReader::Line::Request);
  EXPECT_EQ(r.url, "https://Shop.example/c");
}

TEST(W3cLogReader, OriginalUrlFieldMakesTheStemIisRewrittenUrl) {
  W3cLogReader reader;
  LoggedRequest r;
  std::string error;
  reader.read(std::string(kIisFields) + " X-Original-URL", r, error);
  ASSERT_EQ(reader.read("2026-12-03 00:00:00 10.0.0.5 GET /products/widgets - 80 - 203.0.113.7 "
                        "UA - 200 0 0 88 /catalog/widgets.aspx?x=1",
                        r, error),
            W3cLogReader::Line::Request)
      << error;
  EXPECT_EQ(r.url, "http://10.0.0.5/catalog/widgets.aspx?x=1");
  ASSERT_TRUE(r.rewritten);
  EXPECT_EQ(*r.rewritten, "/products/widgets");
  // Not rewritten: URL Rewrite sets no X-Original-URL, the stem is what the client sent.
  ASSERT_EQ(reader.read("2026-12-03 00:00:00 10.0.0.5 GET /cart - 80 - 203.0.113.7 UA - 200 0 0 "
                        "88 -",
                        r, error),
            W3cLogReader::Line::Request);
  EXPECT_EQ(r.url, "http://10.0.0.5/cart");
  EXPECT_FALSE(r.rewritten);
}

TEST(W3cLogReader, ReadsHarrowsOwnLog) {
  W3cLogReader reader;
  LoggedRequest r;
  std::string error;
  std::istringstream header(w3c_header());
  std::string line;
  while (std::getline(header, line)) {
    EXPECT_EQ(reader.read(line, r, error), W3cLogReader::Line::Directive) << line;
  }
  ASSERT_EQ(reader.read("2026-12-07 10:00:00 127.0.0.1 8080 GET /a/b q=1 127.0.0.1 50000 "
                        "shop.example curl/8.4.0 200 120 80 3 web 10.0.0.1:80 ok - 1 2 0 "
                        "{5A0C6F1E-0000-0000-0000-000000000000} Default+Web+Site HTTP/1.1 HIT",
                        r, error),
            W3cLogReader::Line::Request)
      << error;
  EXPECT_EQ(r.url, "http://shop.example/a/b?q=1");
  ASSERT_TRUE(r.farm);
  EXPECT_EQ(*r.farm, "web");
  ASSERT_EQ(reader.read("2026-12-07 10:00:00 127.0.0.1 8080 GET /x - 127.0.0.1 50000 "
                        "shop.example - 404 0 80 0 - - no_route - - - 0 - - HTTP/1.1 -",
                        r, error),
            W3cLogReader::Line::Request);
  EXPECT_EQ(*r.farm, "");
}

TEST(W3cLogReader, MalformedLinesSayWhy) {
  W3cLogReader reader;
  LoggedRequest r;
  std::string error;
  EXPECT_EQ(reader.read("2026-12-01 00:00:03 10.0.0.5 GET / - 80", r, error),
            W3cLogReader::Line::Malformed);
  EXPECT_EQ(error, "a request line before any #Fields: directive");
  EXPECT_EQ(reader.read("#Fields: date time c-ip", r, error), W3cLogReader::Line::Malformed);
  EXPECT_NE(error.find("no cs-method or no cs-uri-stem"), std::string::npos);
  EXPECT_EQ(reader.read("2026-12-01 00:00:03 10.0.0.5", r, error), W3cLogReader::Line::Malformed);
  EXPECT_NE(error.find("no usable #Fields:"), std::string::npos);
  reader.read(kIisFields, r, error);
  EXPECT_EQ(reader.read("2026-12-01 00:00:03 10.0.0.5 GET / - 80", r, error),
            W3cLogReader::Line::Malformed);
  EXPECT_EQ(error, "7 fields where #Fields: names 15");
  EXPECT_EQ(reader.read("d t 10.0.0.5 G(T / - 80 - 1.2.3.4 - - 200 0 0 1", r, error),
            W3cLogReader::Line::Malformed);
  // A NUL byte is no token character (found by w3c_log_fuzz).
  EXPECT_EQ(
      reader.read(std::string("d t 10.0.0.5 GE\0T / - 80 - 1.2.3.4 - - 200 0 0 1", 48), r, error),
      W3cLogReader::Line::Malformed);
  EXPECT_EQ(reader.read("d t 10.0.0.5 GET index.html - 80 - 1.2.3.4 - - 200 0 0 1", r, error),
            W3cLogReader::Line::Malformed);
  EXPECT_EQ(reader.read("d t 10.0.0.5 GET / - 80 - 1.2.3.4 - - 2x0 0 0 1", r, error),
            W3cLogReader::Line::Malformed);
  EXPECT_EQ(reader.read("d t 10.0.0.5 GET / - 80 - 1.2.3.4 - - 9999 0 0 1", r, error),
            W3cLogReader::Line::Malformed);
  // The reader goes on after a bad line.
  EXPECT_EQ(reader.read("d t 10.0.0.5 GET / - 80 - 1.2.3.4 - - 200 0 0 1", r, error),
            W3cLogReader::Line::Request);
}

std::shared_ptr<const Snapshot> shop_snapshot() {
  config::LoadResult loaded =
      config::load_config_file(std::string(HARROW_TEST_DATA_DIR) + "/iis-logs/shop.config");
  EXPECT_TRUE(loaded.config);
  std::vector<std::string> warnings;
  return build_snapshot(std::make_shared<config::Config>(std::move(*loaded.config)), 1, nullptr,
                        warnings, {}, false);
}

std::string read_data(const std::string& name) {
  std::ifstream in(std::string(HARROW_TEST_DATA_DIR) + "/iis-logs/" + name, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(Replay, IisLogThatRoutesEverywhereIsClean) {
  auto snap = shop_snapshot();
  ReplaySummary s;
  replay_text(*snap, read_data("u_ex261201.log"), "u_ex261201.log", s);
  EXPECT_EQ(s.requests, 10u);
  EXPECT_EQ(s.malformed, 0u);
  EXPECT_EQ(s.farms, (std::map<std::string, uint64_t>{{"api", 2}, {"shop", 7}}));
  EXPECT_EQ(s.rules.at("login-moved"), 1u);
  EXPECT_EQ(s.outcomes.at("redirect"), 1u);
  EXPECT_TRUE(s.clean());
  EXPECT_NE(render_replay_summary(s).find("result: every request routes as logged"),
            std::string::npos);
}

TEST(Replay, CountsNoRouteRefusalsAndMalformedLines) {
  auto snap = shop_snapshot();
  ReplaySummary s;
  replay_text(*snap, read_data("u_ex261202.log"), "u_ex261202.log", s);
  EXPECT_EQ(s.requests, 6u);
  EXPECT_EQ(s.no_route, 2u);
  EXPECT_EQ(s.refused, 2u);
  EXPECT_EQ(s.refusal_reasons,
            (std::map<std::string, uint64_t>{{"404 double_escaping", 1}, {"503 no_server", 1}}));
  EXPECT_EQ(s.malformed, 2u);
  ASSERT_EQ(s.malformed_lines.size(), 2u);
  EXPECT_EQ(s.malformed_lines[0].where, "u_ex261202.log:10");
  EXPECT_EQ(s.unroutable[0].where, "u_ex261202.log:6");
  EXPECT_FALSE(s.clean());
}

TEST(Replay, ListsEveryRewriteThatDiffersFromIis) {
  auto snap = shop_snapshot();
  ReplaySummary s;
  replay_text(*snap, read_data("u_ex261203.log"), "u_ex261203.log", s);
  EXPECT_EQ(s.requests, 4u);
  EXPECT_EQ(s.rewrite_differences, 1u);
  ASSERT_EQ(s.differences.size(), 1u);
  EXPECT_EQ(s.differences[0].where, "u_ex261203.log:7");
  EXPECT_EQ(s.differences[0].detail,
            "IIS rewrote to /products/sprockets.aspx, Harrow to /products/sprockets");
}

TEST(Replay, FarmDifferencesFromHarrowsOwnLog) {
  auto snap = shop_snapshot();
  ReplaySummary s;
  replay_text(*snap,
              "#Fields: date time s-ip s-port cs-method cs-uri-stem cs-uri-query cs(Host) x-farm\n"
              "2026-12-07 10:00:00 127.0.0.1 80 GET /api/a - shop.example api\n"
              "2026-12-07 10:00:00 127.0.0.1 80 GET /cart - shop.example legacy\n",
              "access.log", s);
  EXPECT_EQ(s.requests, 2u);
  EXPECT_EQ(s.farm_differences, 1u);
  ASSERT_EQ(s.differences.size(), 1u);
  EXPECT_EQ(s.differences[0].detail,
            "the log says farm legacy, the configuration sends it to shop");
}

TEST(Replay, ListsOnlyTheFirstFindingsButCountsAll) {
  auto snap = shop_snapshot();
  ReplaySummary s;
  std::string log = "#Fields: cs-method cs-uri-stem\n";
  for (int i = 0; i < 30; ++i) log += "GET /nowhere/" + std::to_string(i) + "\n";
  replay_text(*snap, log, "x.log", s);
  EXPECT_EQ(s.no_route, 30u);
  EXPECT_EQ(s.unroutable.size(), ReplaySummary::kListed);
  EXPECT_NE(render_replay_summary(s).find("… and 10 more"), std::string::npos);
}

}  // namespace
}  // namespace harrow

// Cost of URL Rewrite rule evaluation (Router::route) for 1, 10 and 100 global rules, shaped
// like real ARR configurations: one rule per site, each with a {HTTP_HOST} condition, half of
// them ARR's generated wildcard rule and half a regex on the path. "Last" puts the matching rule
// at the end (every other rule is tried first: the worst case); "First" matches at once. Each
// benchmark also reports heap allocations per route() once warm, which must be 0.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "config/config.h"
#include "core/http1/http_head.h"
#include "core/rewrite/router.h"

namespace {

std::atomic<uint64_t> g_allocations{0};

}  // namespace

// Counts every heap allocation in the process (this binary only). Not inlined, so GCC does not
// see malloc'd memory handed to delete (its -Wmismatched-new-delete false positive).
__attribute__((noinline)) void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void operator delete(void* p) noexcept {
  std::free(p);
}
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace {

using harrow::config::ActionType;
using harrow::config::Config;
using harrow::config::PatternSyntax;
using harrow::config::RuleConfig;

// `rules` site rules (site0 … siteN-1) over four farms, plus the usual X-Forwarded-Proto
// setter in front.
Config make_config(int rules) {
  Config config;
  for (int f = 0; f < 4; ++f) config.farms.push_back({.name = "farm" + std::to_string(f)});
  RuleConfig proto{.name = "forwarded-proto", .match_url = ".*"};
  proto.server_variables.push_back({.name = "HTTP_X_FORWARDED_PROTO", .value = "{HTTPS}"});
  config.global_rules.push_back(proto);
  for (int i = 0; i < rules; ++i) {
    RuleConfig r;
    r.name = "site" + std::to_string(i);
    r.stop_processing = true;
    r.action = ActionType::Rewrite;
    std::string farm = "farm" + std::to_string(i % 4);
    if (i % 2 == 0) {  // ARR's generated rule, restricted to one host
      r.pattern_syntax = PatternSyntax::Wildcard;
      r.match_url = "*";
      r.action_url = "http://" + farm + "/{R:0}";
      r.conditions.push_back(
          {.input = "{HTTP_HOST}", .pattern = "site" + std::to_string(i) + ".example.com"});
    } else {  // a hand-written regex rule on path and host
      r.pattern_syntax = PatternSyntax::ECMAScript;
      r.match_url = "^(api|app)/(.*)$";
      r.action_url = "http://" + farm + "/{R:1}/{R:2}";
      r.conditions.push_back(
          {.input = "{HTTP_HOST}", .pattern = "^site" + std::to_string(i) + "\\.example\\.com$"});
    }
    config.global_rules.push_back(r);
  }
  return config;
}

void run(benchmark::State& state, int rules, int matching_site) {
  Config config = make_config(rules);
  harrow::Router router(config);
  harrow::RouteScratch scratch;
  std::string host = "site" + std::to_string(matching_site) + ".example.com";
  harrow::RequestFacts facts;
  facts.method = "GET";
  facts.target = "/api/v1/orders/12345?expand=items&page=2";
  facts.host = host;
  facts.server_port = 80;
  facts.remote_addr = "192.0.2.10";
  if (router.route(facts, scratch).kind != harrow::RouteDecision::Kind::Farm) {
    state.SkipWithError("the benchmark request does not route");
    return;
  }
  uint64_t before = g_allocations.load(std::memory_order_relaxed);
  for (auto _ : state) {
    harrow::RouteDecision d = router.route(facts, scratch);
    benchmark::DoNotOptimize(d);
  }
  uint64_t allocations = g_allocations.load(std::memory_order_relaxed) - before;
  state.counters["allocs_per_route"] =
      benchmark::Counter(static_cast<double>(allocations), benchmark::Counter::kAvgIterations);
  state.counters["rules"] = rules;
}

void BM_RouteMatchLast(benchmark::State& state) {
  int rules = static_cast<int>(state.range(0));
  run(state, rules, rules - 1);
}
BENCHMARK(BM_RouteMatchLast)->Arg(1)->Arg(10)->Arg(100);

void BM_RouteMatchFirst(benchmark::State& state) {
  run(state, static_cast<int>(state.range(0)), 0);
}
BENCHMARK(BM_RouteMatchFirst)->Arg(1)->Arg(10)->Arg(100);

// The features beyond plain routing: a rewrite map keyed by a function of the host, condition
// captures, and server variables that become headers.
void BM_RouteWithMapsAndFunctions(benchmark::State& state) {
  Config config;
  config.farms.push_back({.name = "shop"});
  config.farms.push_back({.name = "api"});
  harrow::config::RewriteMapConfig map{.name = "Backends", .default_value = "shop"};
  for (int i = 0; i < 100; ++i) {
    map.entries.emplace_back("tenant" + std::to_string(i) + ".example.com", i % 2 ? "api" : "shop");
  }
  config.rewrite_maps.push_back(map);
  RuleConfig r{.name = "tenants", .match_url = "^(.*)$"};
  r.conditions.push_back({.input = "{HTTP_HOST}", .pattern = "^([^.]+)\\."});
  r.server_variables.push_back({.name = "HTTP_X_TENANT", .value = "{ToLower:{C:1}}"});
  r.server_variables.push_back({.name = "HTTP_X_ORIGINAL_HOST", .value = "{HTTP_HOST}"});
  r.action = ActionType::Rewrite;
  r.action_url = "http://{Backends:{ToLower:{HTTP_HOST}}}/{UrlEncode:{C:1}}/{R:1}";
  r.stop_processing = true;
  config.global_rules.push_back(r);
  harrow::Router router(config);
  harrow::RouteScratch scratch;
  harrow::RequestFacts facts;
  facts.method = "GET";
  facts.target = "/cart/items?id=7";
  facts.host = "Tenant41.Example.com";
  if (router.route(facts, scratch).kind != harrow::RouteDecision::Kind::Farm) {
    state.SkipWithError("the benchmark request does not route");
    return;
  }
  uint64_t before = g_allocations.load(std::memory_order_relaxed);
  for (auto _ : state) {
    harrow::RouteDecision d = router.route(facts, scratch);
    benchmark::DoNotOptimize(d);
  }
  uint64_t allocations = g_allocations.load(std::memory_order_relaxed) - before;
  state.counters["allocs_per_route"] =
      benchmark::Counter(static_cast<double>(allocations), benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_RouteWithMapsAndFunctions);

}  // namespace

BENCHMARK_MAIN();

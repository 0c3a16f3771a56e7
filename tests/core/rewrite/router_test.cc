#include "core/rewrite/router.h"

#include <gtest/gtest.h>

#include "config/loader.h"
#include "core/daemon/capabilities.h"

namespace harrow {
namespace {

using config::ActionType;
using config::Config;
using config::PatternSyntax;
using config::RuleConfig;
using Kind = RouteDecision::Kind;

RuleConfig rule(std::string name, PatternSyntax syntax, std::string match, std::string url) {
  RuleConfig r;
  r.name = std::move(name);
  r.pattern_syntax = syntax;
  r.match_url = std::move(match);
  r.action = ActionType::Rewrite;
  r.action_url = std::move(url);
  r.stop_processing = true;
  return r;
}

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() {
    config_.farms.resize(2);
    config_.farms[0].name = "shop";
    config_.farms[1].name = "api";
  }
  RouteDecision route(std::string_view target, std::string_view host = "example.com") {
    if (!router_) router_ = std::make_unique<Router>(config_);
    facts_.target = target;
    facts_.host = host;
    decision_ = router_->route(facts_, scratch_);
    return decision_;
  }
  // Request headers for {HTTP_*}; collected in place, as the connection does.
  void headers(std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
    head_.reset(65536);
    head_.on_target("/", 1);
    for (auto [name, value] : fields) {
      head_.on_field(name.data(), name.size());
      head_.on_value(value.data(), value.size());
    }
    head_.finish();
    facts_.head = &head_;
  }
  // The value of the header the rules set, or "<unset>".
  std::string set_header(std::string_view name) const {
    for (const HeaderField& h : decision_.set_headers) {
      if (h.name == name) return std::string(h.value);
    }
    return "<unset>";
  }
  Config config_;
  std::unique_ptr<Router> router_;
  RouteScratch scratch_;
  RouteDecision decision_;
  RequestFacts facts_{.method = "GET"};
  MessageHead head_;
};

RuleConfig action_rule(std::string name, ActionType type, std::string url = {}) {
  RuleConfig r = rule(std::move(name), PatternSyntax::Wildcard, "*", std::move(url));
  r.action = type;
  return r;
}

config::ServerVariableSet set_var(std::string name, std::string value, bool replace = true) {
  return {.name = std::move(name), .value = std::move(value), .replace = replace};
}

// A rule that only sets server variables and lets evaluation go on.
RuleConfig setter(std::string name, std::vector<config::ServerVariableSet> sets) {
  RuleConfig r = action_rule(std::move(name), ActionType::None);
  r.stop_processing = false;
  r.server_variables = std::move(sets);
  return r;
}

// A farm rule whose target shows the expansion of `url_part`.
RuleConfig echo(std::string url_part) {
  return rule("echo", PatternSyntax::Wildcard, "*", "http://shop/" + std::move(url_part));
}

TEST_F(RouterTest, ArrGeneratedWildcardRuleKeepsPathAndQuery) {
  config_.global_rules.push_back(
      rule("ARR_shop_loadbalance", PatternSyntax::Wildcard, "*", "http://shop/{R:0}"));
  RouteDecision d = route("/a/b.html?x=1&y=2");
  ASSERT_EQ(d.kind, RouteDecision::Kind::Farm);
  EXPECT_EQ(d.farm, 0);
  EXPECT_EQ(d.target, "/a/b.html?x=1&y=2");
  EXPECT_EQ(d.rule, "ARR_shop_loadbalance");
  EXPECT_EQ(route("/").target, "/");
}

TEST_F(RouterTest, RegexCapturesAndFarmNamesAreCaseInsensitive) {
  config_.global_rules.push_back(
      rule("api", PatternSyntax::ECMAScript, "^API/(.*)", "http://API/v2/{R:1}"));
  config_.global_rules.push_back(rule("rest", PatternSyntax::Wildcard, "*", "http://shop/{R:0}"));
  RouteDecision d = route("/api/users/7");
  EXPECT_EQ(d.farm, 1);
  EXPECT_EQ(d.target, "/v2/users/7");
  EXPECT_EQ(route("/other").farm, 0);
}

TEST_F(RouterTest, ConditionsOnHostAndNegation) {
  RuleConfig r = rule("host", PatternSyntax::ECMAScript, ".*", "http://api/{C:1}/{R:0}");
  r.conditions.push_back({.input = "{HTTP_HOST}", .pattern = "^(\\w+)\\.example\\.com$"});
  config_.global_rules.push_back(r);
  RouteDecision d = route("/x", "tenant.example.com");
  ASSERT_EQ(d.kind, RouteDecision::Kind::Farm);
  EXPECT_EQ(d.target, "/tenant/x");
  EXPECT_EQ(route("/x", "elsewhere.org").kind, RouteDecision::Kind::NoRoute);

  config_.global_rules[0].conditions[0].negate = true;
  router_.reset();
  EXPECT_EQ(route("/x", "elsewhere.org").kind, RouteDecision::Kind::Farm);
}

TEST_F(RouterTest, MatchAnyNeedsOneCondition) {
  RuleConfig r = rule("any", PatternSyntax::Wildcard, "*", "http://shop/{R:0}");
  r.logical_grouping = config::LogicalGrouping::MatchAny;
  r.conditions.push_back({.input = "{HTTP_HOST}", .pattern = "a.com"});
  r.conditions.push_back({.input = "{HTTP_HOST}", .pattern = "b.com"});
  config_.global_rules.push_back(r);
  EXPECT_EQ(route("/", "b.com").kind, RouteDecision::Kind::Farm);
  EXPECT_EQ(route("/", "c.com").kind, RouteDecision::Kind::NoRoute);
}

TEST_F(RouterTest, LocalRewriteFeedsTheNextRule) {
  RuleConfig first = rule("strip", PatternSyntax::ECMAScript, "^old/(.*)", "new/{R:1}");
  first.stop_processing = false;
  config_.global_rules.push_back(first);
  config_.global_rules.push_back(
      rule("new", PatternSyntax::ECMAScript, "^new/(.*)", "http://shop/{R:1}"));
  RouteDecision d = route("/old/page?q=1");
  ASSERT_EQ(d.kind, RouteDecision::Kind::Farm);
  EXPECT_EQ(d.target, "/page?q=1");
}

TEST_F(RouterTest, ExactMatchAndAppendQueryStringOff) {
  RuleConfig r = rule("exact", PatternSyntax::ExactMatch, "Login", "http://shop/auth");
  r.append_query_string = false;
  config_.global_rules.push_back(r);
  EXPECT_EQ(route("/login?next=/").target, "/auth");
  EXPECT_EQ(route("/login2").kind, RouteDecision::Kind::NoRoute);
}

TEST_F(RouterTest, DisabledRulesAndUnknownFarmsDoNotRoute) {
  RuleConfig off = rule("off", PatternSyntax::Wildcard, "*", "http://shop/{R:0}");
  off.enabled = false;
  config_.global_rules.push_back(off);
  config_.global_rules.push_back(rule("x", PatternSyntax::Wildcard, "*", "http://nope/{R:0}"));
  EXPECT_EQ(route("/").kind, RouteDecision::Kind::NoRoute);
}

// ---------------------------------------------------------------- actions

TEST_F(RouterTest, RewriteSchemePicksHttps) {
  config_.global_rules.push_back(
      rule("tls", PatternSyntax::ECMAScript, "^secure/(.*)", "HTTPS://api/{R:1}"));
  config_.global_rules.push_back(echo("{R:0}"));
  RouteDecision d = route("/secure/x");
  ASSERT_EQ(d.kind, Kind::Farm);
  EXPECT_EQ(d.farm, 1);
  EXPECT_TRUE(d.https);
  EXPECT_EQ(d.target, "/x");
  d = route("/plain");
  EXPECT_EQ(d.farm, 0);
  EXPECT_FALSE(d.https);
}

TEST_F(RouterTest, FarmUrlWithPortOrNoPathStillRoutes) {
  config_.global_rules.push_back(rule("p", PatternSyntax::ExactMatch, "p", "http://shop:8080/x"));
  config_.global_rules.push_back(rule("bare", PatternSyntax::Wildcard, "*", "http://api"));
  EXPECT_EQ(route("/p?q=1").target, "/x?q=1");
  EXPECT_EQ(route("/p?q=1").farm, 0);
  EXPECT_EQ(route("/other?q=1").target, "/?q=1");
  EXPECT_EQ(decision_.farm, 1);
}

TEST_F(RouterTest, RewriteToAHostThatIsNoFarmIsNoRoute) {
  config_.global_rules.push_back(
      rule("elsewhere", PatternSyntax::Wildcard, "*", "http://localhost:8081/{R:0}"));
  config_.global_rules.push_back(echo("{R:0}"));
  RouteDecision d = route("/x");
  EXPECT_EQ(d.kind, Kind::NoRoute);
  EXPECT_EQ(d.rule, "elsewhere");
}

TEST_F(RouterTest, RedirectIsTerminalAndAppendsTheQuery) {
  RuleConfig r = action_rule("moved", ActionType::Redirect, "https://new.example.com/{R:0}");
  r.stop_processing = false;  // terminal anyway
  config_.global_rules.push_back(r);
  config_.global_rules.push_back(echo("{R:0}"));
  RouteDecision d = route("/a/b?x=1");
  ASSERT_EQ(d.kind, Kind::Redirect);
  EXPECT_EQ(d.status, 302);  // no redirectType in a hand-built rule
  EXPECT_EQ(d.target, "https://new.example.com/a/b?x=1");
  EXPECT_EQ(d.rule, "moved");
  EXPECT_EQ(d.farm, -1);

  config_.global_rules[0].status_code = 301;
  config_.global_rules[0].action_url = "/login?from={R:0}";
  router_.reset();
  d = route("/a?x=1");
  EXPECT_EQ(d.status, 301);
  EXPECT_EQ(d.target, "/login?from=a&x=1");

  config_.global_rules[0].append_query_string = false;
  router_.reset();
  EXPECT_EQ(route("/a?x=1").target, "/login?from=a");
}

TEST_F(RouterTest, CustomResponseExpandsReasonAndBody) {
  RuleConfig r = action_rule("blocked", ActionType::CustomResponse);
  r.match_url = "admin/*";
  r.status_code = 403;
  r.status_reason = "Forbidden";
  r.status_description = "no access to {R:1} from {REMOTE_ADDR}";
  config_.global_rules.push_back(r);
  config_.global_rules.push_back(echo("{R:0}"));
  facts_.remote_addr = "192.0.2.7";
  RouteDecision d = route("/admin/users");
  ASSERT_EQ(d.kind, Kind::CustomResponse);
  EXPECT_EQ(d.status, 403);
  EXPECT_EQ(d.reason, "Forbidden");
  EXPECT_EQ(d.body, "no access to users from 192.0.2.7");
  EXPECT_EQ(d.rule, "blocked");
  EXPECT_EQ(route("/public").kind, Kind::Farm);
}

TEST_F(RouterTest, AbortRequestIsTerminal) {
  RuleConfig r = action_rule("drop", ActionType::AbortRequest);
  r.match_url = "*.php";
  r.stop_processing = false;
  config_.global_rules.push_back(r);
  config_.global_rules.push_back(echo("{R:0}"));
  RouteDecision d = route("/wp-login.php");
  EXPECT_EQ(d.kind, Kind::Abort);
  EXPECT_EQ(d.rule, "drop");
  EXPECT_EQ(route("/index.html").kind, Kind::Farm);
}

TEST_F(RouterTest, NoneActionDoesNothingButStopProcessingStillEnds) {
  RuleConfig none = action_rule("none", ActionType::None);
  none.match_url = "stop/*";
  config_.global_rules.push_back(none);  // stopProcessing = true
  RuleConfig pass = action_rule("pass", ActionType::None);
  pass.stop_processing = false;
  config_.global_rules.push_back(pass);
  config_.global_rules.push_back(echo("{R:0}"));
  EXPECT_EQ(route("/stop/here").kind, Kind::NoRoute);
  RouteDecision d = route("/go/on");
  EXPECT_EQ(d.kind, Kind::Farm);
  EXPECT_EQ(d.target, "/go/on");
}

TEST_F(RouterTest, LocalRewriteQueryFollowsAppendQueryString) {
  RuleConfig add = rule("add", PatternSyntax::ExactMatch, "a", "b?v=2");
  add.stop_processing = false;
  config_.global_rules.push_back(add);
  RuleConfig drop = rule("drop", PatternSyntax::ExactMatch, "c", "b");
  drop.stop_processing = false;
  drop.append_query_string = false;
  config_.global_rules.push_back(drop);
  config_.global_rules.push_back(echo("{R:0}?q={QUERY_STRING}"));
  EXPECT_EQ(route("/a?v=1").target, "/b?q=v=2&v=1&v=2&v=1");
  EXPECT_EQ(route("/a").target, "/b?q=v=2&v=2");
  EXPECT_EQ(route("/c?v=1").target, "/b?q=");
}

// ---------------------------------------------------------------- server variables

TEST_F(RouterTest, ServerVariablesExpand) {
  config_.global_rules.push_back(
      echo("{REQUEST_METHOD}|{HTTPS}|{SERVER_PORT}|{SERVER_PORT_SECURE}|{REMOTE_ADDR}|"
           "{QUERY_STRING}|{REQUEST_URI}|{UNENCODED_URL}|{URL}|{PATH_INFO}|{HTTP_HOST}|"
           "{HTTP_USER_AGENT}|{http_x_custom_thing}|{NO_SUCH_VARIABLE}|{HTTP_MISSING}|end"));
  config_.global_rules.back().append_query_string = false;
  facts_.method = "POST";
  facts_.server_port = 8443;
  facts_.https = true;
  facts_.remote_addr = "2001:db8::1";
  headers({{"User-Agent", "curl/8"}, {"X-Custom-Thing", "yes"}});
  RouteDecision d = route("/p/q?a=1", "Example.COM");
  EXPECT_EQ(d.target,
            "/POST|on|8443|1|2001:db8::1|a=1|/p/q?a=1|/p/q?a=1|/p/q|/p/q|Example.COM|curl/8|yes|"
            "||end");
  facts_.method = "GET";
  facts_.https = false;
  facts_.server_port = 80;
  EXPECT_EQ(route("/").target, "/GET|off|80|0|2001:db8::1||/|/|/|/|example.com|curl/8|yes|||end");
}

TEST_F(RouterTest, EveryIisVariableHasItsValue) {
  config_.global_rules.push_back(
      echo("{CACHE_URL}|{HTTP_URL}|{SERVER_NAME}|{SERVER_PROTOCOL}|{REMOTE_PORT}|{REMOTE_HOST}|"
           "{LOCAL_ADDR}|{SCRIPT_NAME}|{PATH_INFO}|{APP_WARMING_UP}|{AUTH_USER}|{CONTENT_TYPE}|"
           "{HTTP_X_ORIGINAL_URL}|end"));
  config_.global_rules.back().append_query_string = false;
  facts_.server_port = 8080;
  facts_.remote_addr = "192.0.2.7";
  facts_.remote_port = 50123;
  facts_.local_addr = "10.0.0.1";
  headers({{"Content-Type", "text/plain"}});
  facts_.path = "/a b";
  RouteDecision d = route("/a%20b?q=1", "Shop.example:8080");
  EXPECT_EQ(d.target,
            "/http://Shop.example:8080/a%20b?q=1|/a%20b?q=1|Shop.example|HTTP/1.1|50123|192.0.2.7|"
            "10.0.0.1|/a%20b|/a%20b|0||text/plain||end");
  // HTTPS and HTTP/1.0 without a Host: the scheme follows the request, the name is the address.
  facts_.https = true;
  facts_.http10 = true;
  facts_.path = "/";
  d = route("/", "");
  EXPECT_EQ(d.target,
            "/https://10.0.0.1:8080/|/|10.0.0.1|HTTP/1.0|50123|192.0.2.7|10.0.0.1|/|/|0||"
            "text/plain||end");
  EXPECT_TRUE(router_->reads_local_addr());
}

TEST_F(RouterTest, ReverseProxyTemplateTakesTheSchemeFromCacheUrl) {
  // The rule IIS Manager's "Reverse Proxy" template writes.
  RuleConfig r =
      rule("ReverseProxyInboundRule1", PatternSyntax::ECMAScript, "(.*)", "{C:1}://shop/{R:1}");
  r.conditions.push_back({.input = "{CACHE_URL}", .pattern = "^(https?)://"});
  config_.global_rules.push_back(r);
  facts_.server_port = 443;
  facts_.https = true;
  RouteDecision d = route("/x?y=1");
  ASSERT_EQ(d.kind, Kind::Farm);
  EXPECT_TRUE(d.https);
  EXPECT_EQ(d.target, "/x?y=1");
  facts_.https = false;
  d = route("/x");
  ASSERT_EQ(d.kind, Kind::Farm);
  EXPECT_FALSE(d.https);
}

TEST_F(RouterTest, HtmlEncodeEscapesMarkup) {
  RuleConfig r = action_rule("page", ActionType::CustomResponse);
  r.status_code = 403;
  r.status_description = "<p>{HtmlEncode:{QUERY_STRING}}</p>";
  config_.global_rules.push_back(r);
  RouteDecision d = route("/?a=<b>&c=\"d'");
  EXPECT_EQ(d.body, "<p>a=&lt;b&gt;&amp;c=&quot;d&#39;</p>");
}

TEST_F(RouterTest, RulesThatReadAProviderNeverMatch) {
  RuleConfig r = rule("by-provider", PatternSyntax::Wildcard, "*", "http://api/{DB:{R:0}}");
  r.provider = "DB";
  config_.global_rules.push_back(r);
  config_.global_rules.push_back(echo("{R:0}"));
  EXPECT_EQ(route("/x").farm, 0);
}

TEST_F(RouterTest, UrlAndQueryStringFollowRewrites) {
  RuleConfig first = rule("first", PatternSyntax::ExactMatch, "old", "new?n=1");
  first.stop_processing = false;
  first.append_query_string = false;
  config_.global_rules.push_back(first);
  config_.global_rules.push_back(echo("{URL}/{QUERY_STRING}/{REQUEST_URI}"));
  config_.global_rules.back().append_query_string = false;
  EXPECT_EQ(route("/old?o=1").target, "//new/n=1//old?o=1");
}

TEST_F(RouterTest, ServerVariablesBecomeRequestHeaders) {
  RuleConfig r = echo("{R:0}");
  r.server_variables = {
      set_var("HTTP_X_FORWARDED_PROTO", "{HTTPS}"), set_var("HTTP_X_FOO_BAR", "{R:0}-{HTTP_HOST}"),
      set_var("http_host", "backend.internal"), set_var("RESPONSE_X_SOMETHING", "not a header")};
  config_.global_rules.push_back(r);
  RouteDecision d = route("/path", "front.example");
  ASSERT_EQ(d.kind, Kind::Farm);
  ASSERT_EQ(d.set_headers.size(), 3u);
  EXPECT_EQ(d.set_headers[0].name, "X-Forwarded-Proto");
  EXPECT_EQ(d.set_headers[0].value, "off");
  EXPECT_EQ(set_header("X-Foo-Bar"), "path-front.example");
  EXPECT_EQ(set_header("Host"), "backend.internal");
}

TEST_F(RouterTest, ServerVariablesAreSetBeforeTheActionAndEveryDecisionCarriesThem) {
  RuleConfig r = action_rule("go", ActionType::Redirect, "https://{HTTP_HOST}/{R:0}");
  r.server_variables = {set_var("HTTP_HOST", "{ToLower:{HTTP_HOST}}"), set_var("HTTP_X_SEEN", "1")};
  config_.global_rules.push_back(r);
  RouteDecision d = route("/x", "WWW.Example.com");
  ASSERT_EQ(d.kind, Kind::Redirect);
  EXPECT_EQ(d.target, "https://www.example.com/x");
  EXPECT_EQ(set_header("X-Seen"), "1");
}

TEST_F(RouterTest, ReplaceFalseKeepsTheClientsHeaderAndEarlierSets) {
  RuleConfig r =
      setter("defaults",
             {set_var("HTTP_X_REQUEST_ID", "generated", false), set_var("HTTP_X_TENANT", "first"),
              set_var("HTTP_X_TENANT", "second", false), set_var("HTTP_X_ONCE", "one", false)});
  config_.global_rules.push_back(r);
  config_.global_rules.push_back(echo("{HTTP_X_REQUEST_ID}"));
  config_.global_rules.back().append_query_string = false;
  config_.global_rules.back().server_variables = {set_var("HTTP_X_ONCE", "two", false)};

  route("/");
  EXPECT_EQ(set_header("X-Request-Id"), "generated");
  EXPECT_EQ(set_header("X-Tenant"), "first");
  EXPECT_EQ(set_header("X-Once"), "one");
  EXPECT_EQ(decision_.target, "/generated");

  headers({{"X-Request-ID", "from-client"}});
  route("/");
  EXPECT_EQ(set_header("X-Request-Id"), "<unset>");
  EXPECT_EQ(decision_.target, "/from-client");
}

TEST_F(RouterTest, ALaterSetOfTheSameVariableReplacesTheEarlierOne) {
  config_.global_rules.push_back(setter("a", {set_var("HTTP_X_STAGE", "a")}));
  config_.global_rules.push_back(setter("b", {set_var("Http_X_Stage", "b-after-{HTTP_X_STAGE}")}));
  config_.global_rules.push_back(echo("{R:0}"));
  RouteDecision d = route("/");
  ASSERT_EQ(d.set_headers.size(), 1u);
  EXPECT_EQ(d.set_headers[0].name, "X-Stage");
  EXPECT_EQ(d.set_headers[0].value, "b-after-a");
}

TEST_F(RouterTest, SetVariablesAreSeenByLaterRules) {
  // The CDN pattern: map the public host to the origin's, then route on the new host.
  config_.rewrite_maps.push_back({.name = "Origins",
                                  .default_value = "unknown",
                                  .entries = {{"cdn.example.com", "api.origin"}}});
  config_.global_rules.push_back(
      setter("origin", {set_var("HTTP_HOST", "{Origins:{HTTP_HOST}}"), set_var("MY_FLAG", "on")}));
  RuleConfig to_api = rule("api", PatternSyntax::Wildcard, "*", "http://api/{R:0}?f={MY_FLAG}");
  to_api.conditions.push_back({.input = "{HTTP_HOST}", .pattern = "api.*"});
  config_.global_rules.push_back(to_api);
  config_.global_rules.push_back(echo("{HTTP_HOST}"));

  RouteDecision d = route("/v1?k=1", "CDN.example.com");
  ASSERT_EQ(d.kind, Kind::Farm);
  EXPECT_EQ(d.farm, 1);
  EXPECT_EQ(d.target, "/v1?f=on&k=1");
  EXPECT_EQ(set_header("Host"), "api.origin");
  ASSERT_EQ(d.set_headers.size(), 1u);  // MY_FLAG is not a header

  d = route("/v1", "other.example.com");
  EXPECT_EQ(d.farm, 0);
  EXPECT_EQ(d.target, "/unknown");
}

TEST_F(RouterTest, VariablesSetInOneRequestAreGoneInTheNext) {
  RuleConfig r = setter("mark", {set_var("HTTP_X_MARK", "{R:0}")});
  r.match_url = "mark";
  r.pattern_syntax = PatternSyntax::ExactMatch;
  config_.global_rules.push_back(r);
  config_.global_rules.push_back(echo("[{HTTP_X_MARK}]"));
  config_.global_rules.back().append_query_string = false;
  EXPECT_EQ(route("/mark").target, "/[mark]");
  EXPECT_EQ(decision_.set_headers.size(), 1u);
  EXPECT_EQ(route("/other").target, "/[]");
  EXPECT_TRUE(decision_.set_headers.empty());
}

// ---------------------------------------------------------------- the decoded path

TEST_F(RouterTest, RulesMatchTheDecodedPathAndItIsReEscapedInActionUrls) {
  config_.global_rules.push_back(
      rule("deny", PatternSyntax::ECMAScript, "^admin(/|$)", "http://api/denied"));
  config_.global_rules.push_back(echo("{R:0}"));
  facts_.path = "/admin/x";
  EXPECT_EQ(route("/%61dmin/x").target, "/denied");
  facts_.path = "/a?b#c%41 \xC3\xBC/d";
  RouteDecision d = route("/a%3Fb%23c%2541%20%C3%BC/d?q=%41");
  EXPECT_EQ(d.target, "/a%3Fb%23c%2541%20%C3%BC/d?q=%41");
}

TEST_F(RouterTest, UnencodedUrlIsTheRawTargetAndUrlTheDecodedPath) {
  RuleConfig r = echo("x");
  r.server_variables = {set_var("HTTP_X_RAW", "{UNENCODED_URL}"), set_var("HTTP_X_URL", "{URL}")};
  config_.global_rules.push_back(r);
  facts_.path = "/a b";
  route("/a%20b?x");
  EXPECT_EQ(set_header("X-Raw"), "/a%20b?x");
  EXPECT_EQ(set_header("X-Url"), "/a b");
}

TEST_F(RouterTest, ToLowerKeepsTheEscapingAndTheTargetStaysAscii) {
  config_.global_rules.push_back(echo("{ToLower:{R:0}}/{UrlEncode:{R:0}}"));
  facts_.path = "/\xC3\x9C b";
  EXPECT_EQ(route("/%C3%9C%20b").target, "/%C3%9C%20b/%C3%9C%20b");
  config_.global_rules.back() = echo("{UrlDecode:{R:0}}");
  router_.reset();
  EXPECT_EQ(route("/%C3%9C%20b").target, "/%C3%9C b");  // asked for: the writer refuses it
}

TEST_F(RouterTest, RulesAfterALocalRewriteSeeItDecoded) {
  RuleConfig local = rule("local", PatternSyntax::ECMAScript, "^old/(.*)", "new/{R:1}");
  local.stop_processing = false;
  config_.global_rules.push_back(local);
  config_.global_rules.push_back(
      rule("new", PatternSyntax::ECMAScript, "^new/a\\?b$", "http://shop/{R:0}"));
  facts_.path = "/old/a?b";
  EXPECT_EQ(route("/old/a%3Fb").target, "/new/a%3Fb");
}

// ---------------------------------------------------------------- functions and maps

TEST_F(RouterTest, StringFunctionsNest) {
  config_.global_rules.push_back(
      echo("{ToLower:{HTTP_HOST}}/{UrlEncode:{R:0} & ü}/{UrlDecode:{QUERY_STRING}}/"
           "{tolower:{UrlDecode:%41%2fB%zz%4}}/{URLENCODE:{ToLower:A B}}"));
  config_.global_rules.back().append_query_string = false;
  EXPECT_EQ(route("/a b/c~d?q=%3Cx%3E+y", "Tenant.Example.COM").target,
            "/tenant.example.com/a%20b%2Fc~d%20%26%20%C3%BC/q=<x>+y/a/b%zz%4/a%20b");
}

TEST_F(RouterTest, RewriteMapsLookUpIgnoringCaseWithDefault) {
  config_.rewrite_maps.push_back({.name = "Legacy",
                                  .default_value = "fallback",
                                  .entries = {{"/Old/Page", "new/page"}, {"/b", "B"}}});
  config_.rewrite_maps.push_back({.name = "Empty"});
  config_.global_rules.push_back(echo("{legacy:{URL}}|{LEGACY:/b}|{Empty:x}|{NotAMap:x}|end"));
  config_.global_rules.back().append_query_string = false;
  EXPECT_EQ(route("/old/PAGE").target, "/new/page|B|||end");
  EXPECT_EQ(route("/missing").target, "/fallback|B|||end");
}

TEST_F(RouterTest, MapResultsFeedConditionsAndFunctions) {
  config_.rewrite_maps.push_back({.name = "Tenants", .entries = {{"a.example.com", "ALPHA"}}});
  RuleConfig r = echo("{ToLower:{C:1}}/{R:0}");
  r.pattern_syntax = PatternSyntax::ECMAScript;
  r.match_url = ".*";
  r.conditions.push_back({.input = "{Tenants:{HTTP_HOST}}", .pattern = "^(.+)$"});
  config_.global_rules.push_back(r);
  EXPECT_EQ(route("/x", "A.example.com").target, "/alpha/x");
  EXPECT_EQ(route("/x", "b.example.com").kind, Kind::NoRoute);
}

TEST_F(RouterTest, UnbalancedBracesAreLiteral) {
  config_.global_rules.push_back(echo("{R:0}{oops"));
  config_.global_rules.back().append_query_string = false;
  EXPECT_EQ(route("/x").target, "/x{oops");
}

// ---------------------------------------------------------------- captures

TEST_F(RouterTest, ConditionCapturesComeFromTheLastMatchedCondition) {
  RuleConfig r = echo("{C:0}|{C:1}|{C:2}");
  r.append_query_string = false;
  r.pattern_syntax = PatternSyntax::ECMAScript;
  r.match_url = ".*";
  r.conditions.push_back({.input = "{HTTP_HOST}", .pattern = "^(\\w+)\\.example\\.com$"});
  r.conditions.push_back({.input = "{QUERY_STRING}", .pattern = "id=(\\d+)"});
  config_.global_rules.push_back(r);
  EXPECT_EQ(route("/?id=42", "shop.example.com").target, "/id=42|42|");

  config_.global_rules[0].track_all_captures = true;
  router_.reset();
  EXPECT_EQ(route("/?id=42", "shop.example.com").target, "/shop.example.com|shop|42");
}

TEST_F(RouterTest, ConditionInputsSeeEarlierConditionCaptures) {
  RuleConfig r = echo("{C:1}");
  r.append_query_string = false;
  r.pattern_syntax = PatternSyntax::ECMAScript;
  r.match_url = ".*";
  r.conditions.push_back({.input = "{HTTP_HOST}", .pattern = "^(\\w+)\\."});
  r.conditions.push_back({.input = "{C:1}/{R:0}", .pattern = "^(shop/.*)$"});
  config_.global_rules.push_back(r);
  EXPECT_EQ(route("/cart", "shop.example.com").target, "/shop/cart");
  EXPECT_EQ(route("/cart", "blog.example.com").kind, Kind::NoRoute);
}

TEST_F(RouterTest, ConditionsUseTheRulesPatternSyntax) {
  RuleConfig r = echo("{C:1}-{R:1}");
  r.append_query_string = false;
  r.match_url = "static/*";
  r.conditions.push_back({.input = "{HTTP_HOST}", .pattern = "*.example.com"});
  config_.global_rules.push_back(r);
  EXPECT_EQ(route("/static/app.js", "cdn.example.com").target, "/cdn-app.js");
  EXPECT_EQ(route("/static/app.js", "cdn.example.org").kind, Kind::NoRoute);

  config_.global_rules[0].pattern_syntax = PatternSyntax::ExactMatch;
  config_.global_rules[0].match_url = "static/app.js";
  config_.global_rules[0].conditions[0].pattern = "CDN.example.com";
  config_.global_rules[0].action_url = "http://shop/{C:0}/{R:0}";
  router_.reset();
  EXPECT_EQ(route("/Static/App.js", "cdn.example.com").target, "/cdn.example.com/Static/App.js");
  EXPECT_EQ(route("/static/app.js", "cdn.example.co").kind, Kind::NoRoute);
}

TEST_F(RouterTest, NegatedMatchesHaveNoCaptures) {
  RuleConfig r = echo("[{R:0}][{C:0}]");
  r.append_query_string = false;
  r.match_url = "private/*";
  r.match_negate = true;
  r.conditions.push_back({.input = "{HTTP_HOST}", .pattern = "internal.*", .negate = true});
  config_.global_rules.push_back(r);
  EXPECT_EQ(route("/public", "www.example.com").target, "/[][]");
  EXPECT_EQ(route("/private/x", "www.example.com").kind, Kind::NoRoute);
  EXPECT_EQ(route("/public", "internal.example.com").kind, Kind::NoRoute);
}

TEST_F(RouterTest, ManyCaptureGroups) {
  std::string pattern;
  for (int i = 0; i < 40; ++i) pattern += "(.)";
  config_.global_rules.push_back(
      rule("many", PatternSyntax::ECMAScript, "^" + pattern, "http://shop/{R:1}{R:39}{R:40}"));
  EXPECT_EQ(route("/abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN").target, "/aMN");
}

TEST_F(RouterTest, LongUrlsStillMatchPatternsWithRepeatedGroups) {
  // Each repetition of a group takes JIT stack; PCRE2's default 32 KiB gives up near 2,000.
  config_.global_rules.push_back(
      rule("long", PatternSyntax::ECMAScript, "^((a|b)+)$", "http://shop/{R:2}"));
  EXPECT_EQ(route("/" + std::string(8000, 'a') + "b").target, "/b");
}

TEST_F(RouterTest, BytesThatAreNotUtf8) {
  config_.global_rules.push_back(
      rule("regex", PatternSyntax::ECMAScript, "^re/(.*)", "http://api/{R:1}"));
  config_.global_rules.push_back(echo("{R:0}"));
  // An ASCII-only wildcard routes any bytes; a UTF-8 regex never matches invalid UTF-8.
  RouteDecision d = route("/re/\xff\xfe");
  EXPECT_EQ(d.farm, 0);
  EXPECT_EQ(d.target, "/re/%FF%FE");  // a request-target is ASCII: the bytes go escaped
  EXPECT_EQ(route("/re/\xc3\xbc").farm, 1);
}

TEST_F(RouterTest, HostsThatAreNotUtf8) {
  RuleConfig r = rule("host", PatternSyntax::ECMAScript, ".*", "http://api/{C:1}");
  r.conditions.push_back({.input = "{HTTP_HOST}", .pattern = "^(.+)\\.example$"});
  config_.global_rules.push_back(r);
  config_.global_rules.push_back(echo("{HTTP_HOST}"));
  config_.global_rules.back().append_query_string = false;
  EXPECT_EQ(route("/", "bücher.example").target, "/b%C3%BCcher");
  RouteDecision d = route("/", "b\xfc.example");
  EXPECT_EQ(d.farm, 0);
  EXPECT_EQ(d.target, "/b%FC.example");
}

TEST_F(RouterTest, DecisionViewsSurviveUntilTheNextRoute) {
  RuleConfig r = echo("{R:0}");
  r.server_variables = {set_var("HTTP_X_A", "{R:0}")};
  config_.global_rules.push_back(r);
  RouteScratch other;
  router_ = std::make_unique<Router>(config_);
  facts_.target = "/first";
  RouteDecision first = router_->route(facts_, scratch_);
  facts_.target = "/second";
  RouteDecision second = router_->route(facts_, other);
  EXPECT_EQ(first.target, "/first");
  EXPECT_EQ(first.set_headers[0].value, "first");
  EXPECT_EQ(second.target, "/second");
}

TEST_F(RouterTest, OneScratchServesSuccessiveRouters) {
  config_.global_rules.push_back(echo("{R:0}"));
  EXPECT_EQ(route("/a").target, "/a");
  Config bigger = config_;
  std::string pattern;
  for (int i = 0; i < 50; ++i) pattern += "(.?)";
  RuleConfig r = rule("big", PatternSyntax::ECMAScript, pattern, "http://api/{R:1}{R:50}");
  r.server_variables = {set_var("HTTP_X_ONE", "1"), set_var("HTTP_X_TWO", "2")};
  bigger.global_rules.insert(bigger.global_rules.begin(), r);
  Router router(bigger);
  facts_.target = "/xy";
  RouteDecision d = router.route(facts_, scratch_);
  EXPECT_EQ(d.target, "/x");
  EXPECT_EQ(d.set_headers.size(), 2u);
  EXPECT_EQ(route("/b").target, "/b");
  EXPECT_TRUE(decision_.set_headers.empty());
}

// Records what route() tells a RouteTrace, one line per step.
class RecordingTrace final : public RouteTrace {
 public:
  std::vector<std::string> steps;
  void rule_set(std::string_view which) override { steps.push_back("set " + std::string(which)); }
  void rule(const config::RuleConfig& rule, std::string_view input, bool matched,
            std::span<const std::string_view> captures) override {
    std::string line =
        "rule " + rule.name + " '" + std::string(input) + "' " + (matched ? "matched" : "no match");
    for (std::string_view c : captures) line += " [" + std::string(c) + "]";
    steps.push_back(line);
  }
  void condition(size_t index, std::string_view input, bool matched,
                 std::span<const std::string_view>) override {
    steps.push_back("condition " + std::to_string(index) + " '" + std::string(input) + "' " +
                    (matched ? "matched" : "no match"));
  }
  void conditions(bool hold) override { steps.push_back(hold ? "hold" : "do not hold"); }
  void variable(std::string_view name, std::string_view value, bool skipped) override {
    steps.push_back("set " + std::string(name) + "=" + std::string(value) +
                    (skipped ? " skipped" : ""));
  }
  void action_url(std::string_view url) override { steps.push_back("url " + std::string(url)); }
};

TEST_F(RouterTest, TraceSeesEveryRuleConditionAndVariable) {
  RuleConfig other = rule("other", PatternSyntax::ECMAScript, "^(.*)$", "http://api/{R:1}");
  other.conditions.push_back({.input = "{HTTP_HOST}", .pattern = "^api\\."});
  config_.global_rules.push_back(other);
  config_.global_rules.push_back(rule("nomatch", PatternSyntax::ECMAScript, "^zzz", "http://api/"));
  RuleConfig shop = rule("shop", PatternSyntax::Wildcard, "*", "http://shop/{R:0}");
  shop.server_variables.push_back(set_var("HTTP_X_A", "{HTTP_HOST}"));
  config_.global_rules.push_back(shop);
  router_ = std::make_unique<Router>(config_);
  facts_.target = "/a/b?x=1";
  facts_.host = "example.com";
  RecordingTrace trace;
  RouteDecision d = router_->route(facts_, scratch_, &trace);
  ASSERT_EQ(d.kind, RouteDecision::Kind::Farm);
  EXPECT_EQ(d.target, "/a/b?x=1");
  EXPECT_EQ(trace.steps, (std::vector<std::string>{
                             "set global",
                             "rule other 'a/b' matched [a/b] [a/b]",
                             "condition 0 'example.com' no match",
                             "do not hold",
                             "rule nomatch 'a/b' no match",
                             "rule shop 'a/b' matched [a/b] [a/b]",
                             "hold",
                             "set HTTP_X_A=example.com",
                             "url http://shop/a/b",
                         }));
  // Without a trace the decision is the same.
  RouteDecision plain = router_->route(facts_, scratch_);
  EXPECT_EQ(plain.kind, RouteDecision::Kind::Farm);
  EXPECT_EQ(plain.target, "/a/b?x=1");
}

// Outbound rules run with what the exchange knows: the request (its path, query and the
// variables its inbound rules set) and the response head with its status.
class OutboundTest : public RouterTest {
 protected:
  // Runs the inbound rules for `target`, then the outbound rules over a response with
  // `status` and `fields`; returns the value each header rule set ("name=value;...").
  std::string respond(std::string_view target, int status,
                      std::initializer_list<std::pair<std::string_view, std::string_view>> fields,
                      std::string_view host = "www.contoso.com") {
    RouteDecision d = route(target, host);
    variables_.assign(d.set_variables.begin(), d.set_variables.end());
    response_.reset(65536);
    response_.on_reason("X", 1);
    for (auto [name, value] : fields) {
      response_.on_field(name.data(), name.size());
      response_.on_value(value.data(), value.size());
    }
    response_.finish();
    RequestFacts f = facts_;
    f.target = target;
    f.host = host;
    f.response_status = status;
    f.variables = variables_;
    OutboundDecision o = router_->outbound(f, response_, {}, scratch_);
    std::string out;
    for (const auto& [name, value] : o.set_headers) out += name + "=" + value + ";";
    return out;
  }
  static config::OutboundRuleConfig location_rule(std::string value) {
    config::OutboundRuleConfig r;
    r.name = "loc";
    r.server_variable = "RESPONSE_Location";
    r.pattern = "^http://[^/]+/(.*)";
    r.rewrite = true;
    r.value = std::move(value);
    return r;
  }
  std::vector<SetVariable> variables_;
  MessageHead response_;
};

TEST_F(OutboundTest, UrlIsThePathTheClientAskedFor) {
  config_.global_rules.push_back(
      rule("webmail", PatternSyntax::ECMAScript, "^webmail/(.*)", "http://shop/{R:1}"));
  config::OutboundRuleConfig r = location_rule("http://{HTTP_HOST}/{C:1}/{R:1}");
  r.conditions.push_back({.input = "{URL}", .pattern = "^/(webmail|payroll)/.*"});
  config_.outbound.rules.push_back(r);
  facts_.path = "/webmail/index.aspx";
  EXPECT_EQ(
      respond("/webmail/index.aspx", 301, {{"Location", "http://localhost:8081/default.aspx"}}),
      "location=http://www.contoso.com/webmail/default.aspx;");
  facts_.path = "/other/index.aspx";
  EXPECT_EQ(respond("/other/index.aspx", 301, {{"Location", "http://localhost:8081/x"}}), "");
}

TEST_F(OutboundTest, ResponseStatusFeedsPreconditions) {
  config::PreConditionConfig pre;
  pre.name = "IsRedirection";
  pre.conditions.push_back({.input = "{RESPONSE_STATUS}", .pattern = "3\\d\\d"});
  config_.outbound.pre_conditions.push_back(pre);
  config::OutboundRuleConfig r = location_rule("https://public/{R:1}|{RESPONSE_STATUS}");
  r.pre_condition = "IsRedirection";
  config_.outbound.rules.push_back(r);
  config_.global_rules.push_back(echo("{R:0}"));
  EXPECT_EQ(respond("/", 302, {{"Location", "http://in/a"}}), "location=https://public/a|302;");
  EXPECT_EQ(respond("/", 200, {{"Location", "http://in/a"}}), "");
}

TEST_F(OutboundTest, QueryStringAndInboundVariablesKeepTheirValues) {
  RuleConfig capture = setter("Capture Host Header", {set_var("ORIGINAL_HOST", "{HTTP_HOST}")});
  config_.global_rules.push_back(capture);
  config_.global_rules.push_back(echo("{R:0}"));
  config_.outbound.rules.push_back(location_rule("http://{ORIGINAL_HOST}/{R:1}?{QUERY_STRING}"));
  config::OutboundRuleConfig seen;
  seen.name = "seen";
  seen.server_variable = "RESPONSE_X_Seen";
  seen.pattern = ".*";
  seen.rewrite = true;
  seen.value = "{ORIGINAL_HOST}|{QUERY_STRING}";
  config_.outbound.rules.push_back(seen);
  EXPECT_EQ(respond("/p?k=v", 302, {{"Location", "http://backend:8081/new"}}, "front.example"),
            "location=http://front.example/new?k=v;x-seen=front.example|k=v;");
}

TEST_F(OutboundTest, RulesOnRequestVariablesFeedTheRulesAfterThem) {
  // The RestoreAcceptEncoding pattern: inbound keeps the client's Accept-Encoding aside and
  // blanks it; outbound writes it back. Later outbound rules read the restored value; the
  // response itself gets no header from it.
  config_.global_rules.push_back(
      setter("keep", {set_var("HTTP_X_ORIGINAL_ACCEPT_ENCODING", "{HTTP_ACCEPT_ENCODING}"),
                      set_var("HTTP_ACCEPT_ENCODING", "")}));
  config_.global_rules.push_back(echo("{R:0}"));
  config::OutboundRuleConfig restore;
  restore.name = "RestoreAcceptEncoding";
  restore.server_variable = "HTTP_ACCEPT_ENCODING";
  restore.pattern = "^(.*)";
  restore.rewrite = true;
  restore.value = "{HTTP_X_ORIGINAL_ACCEPT_ENCODING}";
  config_.outbound.rules.push_back(restore);
  config::OutboundRuleConfig show;
  show.name = "show";
  show.server_variable = "RESPONSE_X_Accept";
  show.pattern = ".*";
  show.rewrite = true;
  show.value = "[{HTTP_ACCEPT_ENCODING}]";
  config_.outbound.rules.push_back(show);
  headers({{"Accept-Encoding", "gzip, br"}});
  EXPECT_EQ(respond("/", 200, {}), "x-accept=[gzip, br];");
  EXPECT_EQ(set_header("Accept-Encoding"), "");  // what the server was sent
}

// Rules that read a <providers> provider: IIS runs the provider's code, Harrow none. The file
// loads; the rule never matches, and the migration report says so.
TEST(RouterProviders, RulesReadingAProviderNeverMatchAndTheReportNamesThem) {
  config::LoadResult result = config::load_config_text(
      "<configuration><webFarms><webFarm name=\"shop\"/></webFarms>"
      "<system.webServer><rewrite>"
      "<providers><provider name=\"DB\" type=\"DbProvider, Microsoft.Web.Iis.Rewrite.Providers\">"
      "<settings><add key=\"ConnectionString\" value=\"x\"/></settings></provider></providers>"
      "<globalRules>"
      "<rule name=\"from-db\" stopProcessing=\"true\"><match url=\"(.*)\"/>"
      "<conditions><add input=\"{DB:{R:1}}\" pattern=\"(.*)\"/></conditions>"
      "<action type=\"Rewrite\" url=\"http://shop/{C:1}\"/></rule>"
      "<rule name=\"rest\" patternSyntax=\"Wildcard\"><match url=\"*\"/>"
      "<action type=\"Rewrite\" url=\"http://shop/fallback\"/></rule>"
      "</globalRules></rewrite></system.webServer></configuration>",
      "p.config");
  ASSERT_TRUE(result.config.has_value());
  const config::Config& config = *result.config;
  EXPECT_EQ(config.global_rules.at(0).provider, "DB");
  EXPECT_NE(migration_report(config).find("rule 'from-db' reads rewrite provider 'DB': providers "
                                          "are not run, so it never matches"),
            std::string::npos);
  Router router(config);
  RouteScratch scratch;
  RequestFacts facts{.method = "GET", .target = "/x", .host = "h"};
  EXPECT_EQ(router.route(facts, scratch).target, "/fallback");
}

// Whole-body rules (no filterByTags): the pattern runs over the body text; the result is the
// same however the body is split into pieces, and memory stays bounded.
class BodyTextTest : public OutboundTest {
 protected:
  config::OutboundRuleConfig& body_rule(std::string pattern, std::string value,
                                        uint64_t occurrences = 0) {
    config::OutboundRuleConfig r;
    r.name = "body" + std::to_string(config_.outbound.rules.size());
    r.whole_body = true;
    r.pattern = std::move(pattern);
    r.rewrite = true;
    r.value = std::move(value);
    r.occurrences = occurrences;
    config_.outbound.rules.push_back(r);
    return config_.outbound.rules.back();
  }
  // Rewrites `body` fed in pieces of `step` bytes.
  std::string rewrite(std::string_view body, size_t step) {
    if (!router_) router_ = std::make_unique<Router>(config_);
    response_.reset(65536);
    response_.on_reason("OK", 2);
    response_.finish();
    OutboundDecision d = router_->outbound(facts_, response_, {}, scratch_);
    BodyTextState state;
    std::string out;
    for (size_t i = 0; i < body.size(); i += step) {
      EXPECT_TRUE(router_->rewrite_body_text(facts_, d.text_rules, state, body.substr(i, step),
                                             false, scratch_, out));
    }
    EXPECT_TRUE(router_->rewrite_body_text(facts_, d.text_rules, state, {}, true, scratch_, out));
    return out;
  }
};

TEST_F(BodyTextTest, MatchesAcrossPiecesAndChainsRules) {
  body_rule("http://backend\\.internal(:\\d+)?/", "https://www.example.com/");
  body_rule("\\bEXAMPLE\\b", "Example").ignore_case = false;
  facts_.target = "/";
  std::string body =
      "<script>var u = 'http://backend.internal:8080/api';</script> EXAMPLE "
      "http://backend.internal/x "
      "EXAMPLES";
  std::string want =
      "<script>var u = 'https://www.example.com/api';</script> Example https://www.example.com/x "
      "EXAMPLES";
  for (size_t step : {1u, 2u, 3u, 7u, 64u, 4096u}) EXPECT_EQ(rewrite(body, step), want) << step;
}

TEST_F(BodyTextTest, OccurrencesLimitsTheReplacementsAndCapturesExpand) {
  body_rule("id=(\\d+)", "id=[{R:1}]", 2);
  facts_.target = "/";
  EXPECT_EQ(rewrite("id=1 id=22 id=333 id=4", 1), "id=[1] id=[22] id=333 id=4");
  EXPECT_EQ(rewrite("id=1 id=22 id=333 id=4", 100), "id=[1] id=[22] id=333 id=4");
}

TEST_F(BodyTextTest, AnchorsMeanTheBodyAndALongPartialMatchIsGivenUp) {
  body_rule("^<!--x-->", "");
  body_rule("<held>[^<]*</held>", "H");
  facts_.target = "/";
  EXPECT_EQ(rewrite("<!--x--><p><!--x--></p>", 3), "<p><!--x--></p>");
  EXPECT_EQ(rewrite("x<held>b</held>y", 1), "xHy");
  // A match that would need more than kBodyMatchHold bytes held back is not made.
  std::string big = "<held>" + std::string(kBodyMatchHold + 2000, 'a') + "</held>";
  EXPECT_EQ(rewrite(big, 1000), big);
}

}  // namespace
}  // namespace harrow

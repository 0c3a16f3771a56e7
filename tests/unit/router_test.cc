#include "core/router.h"

#include <gtest/gtest.h>

namespace harrow {
namespace {

using config::ActionType;
using config::Config;
using config::PatternSyntax;
using config::RuleConfig;

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
    RequestFacts facts;
    facts.method = "GET";
    facts.target = target;
    facts.host = host;
    decision_ = router_->route(facts, scratch_);
    return decision_;
  }
  Config config_;
  std::unique_ptr<Router> router_;
  RouteScratch scratch_;
  RouteDecision decision_;
};

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
  config_.global_rules.push_back(
      rule("rest", PatternSyntax::Wildcard, "*", "http://shop/{R:0}"));
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

}  // namespace
}  // namespace harrow

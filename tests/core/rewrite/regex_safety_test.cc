#include "core/rewrite/regex_safety.h"

#include <gtest/gtest.h>

#include <string>

#include "core/rewrite/router.h"

namespace harrow {
namespace {

TEST(RegexSafety, NestedUnboundedRepeatsAreFlagged) {
  for (const char* p : {"(a+)+", "(.*)*", "(\\w+\\s?)*", "^(a|aa)+(b*)*$", "((ab)*c)+",
                        "(?:x+y?){2,}", "(a*){1,100}", "([a-z]+)*$"}) {
    EXPECT_TRUE(has_nested_quantifier(p)) << p;
  }
}

TEST(RegexSafety, OrdinaryPatternsAreNot) {
  for (const char* p : {"^(.*)$", "^api/(.*)", "(a+)?", "(a+){1}", "[(a+)]+", "\\(a+\\)+",
                        "^(\\w+)/([a-z]+)?(.*)$", "(abc)+", "x{2,}", "(a{2})+", ""}) {
    EXPECT_FALSE(has_nested_quantifier(p)) << p;
  }
}

// A condition whose pattern reaches the match limit fails the routing (the caller answers
// 500 rule_match_error); a negated one must not hold because of it.
TEST(RegexSafety, MatchLimitFailsTheRouteNamingTheRule) {
  config::Config config;
  config.farms.resize(1);
  config.farms[0].name = "shop";
  for (bool negate : {false, true}) {
    config::RuleConfig deny;
    deny.name = negate ? "allow-only-words" : "deny-aaa";
    deny.match_url = ".*";
    deny.action = config::ActionType::CustomResponse;
    deny.status_code = 403;
    deny.stop_processing = true;
    deny.conditions.push_back({"{HTTP_X_PROBE}", "^(a+)+$", true, negate, {}});
    config.global_rules = {deny};
    config::RuleConfig pass;
    pass.name = "shop";
    pass.match_url = "(.*)";
    pass.action = config::ActionType::Rewrite;
    pass.action_url = "http://shop/{R:1}";
    config.global_rules.push_back(pass);
    Router router(config);
    RouteScratch scratch;
    MessageHead head;
    std::string value(40000, 'a');
    value += '!';
    head.reset(65536);
    head.on_target("/", 1);
    head.on_field("X-Probe", 7);
    head.on_value(value.data(), value.size());
    head.finish();
    RequestFacts facts;
    facts.target = "/x";
    facts.host = "example.com";
    facts.head = &head;
    router.route(facts, scratch);
    EXPECT_NE(scratch.match_error(), 0) << deny.name;
    EXPECT_EQ(router.failed_rule(scratch), deny.name);
    EXPECT_FALSE(scratch.match_error_text().empty());
    // A request that does not trip the limits clears it.
    facts.head = nullptr;
    RouteDecision d = router.route(facts, scratch);
    EXPECT_EQ(scratch.match_error(), 0);
    EXPECT_EQ(d.kind, negate ? RouteDecision::Kind::CustomResponse : RouteDecision::Kind::Farm);
  }
}

}  // namespace
}  // namespace harrow

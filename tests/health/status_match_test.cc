#include "health/status_match.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace harrow::health {
namespace {

struct MatchCase {
  const char* spec;
  std::vector<int> in;
  std::vector<int> out;
};

TEST(StatusMatcher, AcceptedSpecsMatchExactlyTheirCodes) {
  const MatchCase cases[] = {
      {"200-399", {200, 250, 301, 399}, {100, 199, 400, 404, 500}},  // ARR's default
      {"200-299,304", {200, 204, 299, 304}, {300, 303, 305, 404}},
      {"500-", {500, 503, 599, 999}, {100, 200, 499}},  // liveTrafficFailureCodes default
      {"200", {200}, {199, 201, 404}},
      {"100-999", {100, 555, 999}, {99, 0, 1000}},
      {"404,500-502,200", {200, 404, 500, 501, 502}, {201, 403, 405, 503}},
      {" 200 - 299 , 304 ", {200, 299, 304}, {300, 305}},  // whitespace around items
      {"\t200-299,\t304\t", {200, 304}, {300}},
      {"200-200", {200}, {199, 201}},
      {"999-", {999}, {998}},
      {"200-299,250-350", {200, 275, 350}, {199, 351}},  // overlapping ranges are fine
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.spec);
    auto m = StatusMatcher::parse(c.spec);
    ASSERT_TRUE(m.has_value());
    for (int s : c.in) EXPECT_TRUE(m->matches(s)) << s;
    for (int s : c.out) EXPECT_FALSE(m->matches(s)) << s;
  }
}

TEST(StatusMatcher, RejectsMalformedSpecs) {
  const char* const bad[] = {
      "",        " ",       ",",       "200,",    ",200",      "200,,304",  // empty items
      "99",      "1000",    "0",       "050",     "1000-",     "200-1000",  // out of 100..999
      "399-200", "500-499",                                                 // reversed
      "-500",    "-",       "abc",     "200-abc", "2 00",      "200-299-",  // not codes
      "+200",    "200x",    "200;304", "0200",    "200-299,-",
  };
  for (const char* spec : bad) {
    EXPECT_FALSE(StatusMatcher::parse(spec).has_value()) << '"' << spec << '"';
  }
}

TEST(StatusMatcher, DefaultConstructedMatchesNothing) {
  StatusMatcher m;
  EXPECT_FALSE(m.matches(200));
  EXPECT_FALSE(m.matches(500));
}

TEST(StatusMatcher, OpenRangeReachesNineNineNine) {
  auto m = StatusMatcher::parse("100-");
  ASSERT_TRUE(m.has_value());
  for (int s = 100; s <= 999; ++s) EXPECT_TRUE(m->matches(s)) << s;
  EXPECT_FALSE(m->matches(1000));
  EXPECT_FALSE(m->matches(99));
  EXPECT_FALSE(m->matches(-1));
}

}  // namespace
}  // namespace harrow::health

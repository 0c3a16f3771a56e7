// Round trips between millisecond counts and IIS timeSpan text, in both spellings IIS writes.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "config/timespan.h"

namespace harrow::config {
namespace {

// Up to ~31 years: well past any timeout ARR allows, and hours reach six digits.
constexpr int64_t kMaxMillis = 1'000'000'000'000;

rc::Gen<int64_t> millisecond_counts() {
  return rc::gen::oneOf(rc::gen::inRange<int64_t>(0, kMaxMillis),
                        rc::gen::inRange<int64_t>(0, 86'400'000),  // under a day: all fields vary
                        rc::gen::map(rc::gen::inRange<int64_t>(0, 100'000),
                                     [](int64_t s) { return s * 1000; }));  // whole seconds
}

// "hh:mm:ss.fff" with unbounded hours, written independently of format_timespan.
std::string as_hours(int64_t ms) {
  char text[64];
  std::snprintf(text, sizeof text, "%02lld:%02lld:%02lld.%03lld",
                static_cast<long long>(ms / 3'600'000), static_cast<long long>(ms / 60'000 % 60),
                static_cast<long long>(ms / 1000 % 60), static_cast<long long>(ms % 1000));
  return text;
}

// "d.hh:mm:ss" (whole seconds only, as the day form is usually written).
std::string as_days(int64_t ms) {
  char text[64];
  std::snprintf(text, sizeof text, "%lld.%02lld:%02lld:%02lld",
                static_cast<long long>(ms / 86'400'000),
                static_cast<long long>(ms / 3'600'000 % 24),
                static_cast<long long>(ms / 60'000 % 60), static_cast<long long>(ms / 1000 % 60));
  return text;
}

RC_GTEST_PROP(TimeSpanProperty, HoursFormRoundTrips, ()) {
  int64_t ms = *millisecond_counts();
  RC_ASSERT(parse_timespan(as_hours(ms)) == std::chrono::milliseconds(ms));
}

RC_GTEST_PROP(TimeSpanProperty, DaysFormRoundTrips, ()) {
  int64_t ms = *millisecond_counts();
  int64_t whole_seconds = ms - ms % 1000;
  RC_ASSERT(parse_timespan(as_days(ms)) == std::chrono::milliseconds(whole_seconds));
}

RC_GTEST_PROP(TimeSpanProperty, FormatTimespanRoundTrips, ()) {
  int64_t ms = *millisecond_counts();
  RC_ASSERT(parse_timespan(format_timespan(std::chrono::milliseconds(ms))) ==
            std::chrono::milliseconds(ms));
}

// Seven fraction digits (.NET's ticks) parse to the milliseconds they start with.
RC_GTEST_PROP(TimeSpanProperty, TickFractionsTruncateToMilliseconds, ()) {
  int64_t seconds = *rc::gen::inRange<int64_t>(0, 86'400);
  int64_t ticks = *rc::gen::inRange<int64_t>(0, 10'000'000);
  char text[64];
  std::snprintf(text, sizeof text, "%02lld:%02lld:%02lld.%07lld",
                static_cast<long long>(seconds / 3600), static_cast<long long>(seconds / 60 % 60),
                static_cast<long long>(seconds % 60), static_cast<long long>(ticks));
  RC_ASSERT(parse_timespan(text) == std::chrono::milliseconds(seconds * 1000 + ticks / 10'000));
}

}  // namespace
}  // namespace harrow::config

// IIS timeSpan parsing and formatting.
#include "config/timespan.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace harrow::config {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

TEST(TimeSpan, ParsesHoursMinutesSeconds) {
  EXPECT_EQ(parse_timespan("00:00:30"), seconds(30));
  EXPECT_EQ(parse_timespan("00:02:00"), minutes(2));
  EXPECT_EQ(parse_timespan("01:00:00"), hours(1));
  EXPECT_EQ(parse_timespan("1:2:3"), hours(1) + minutes(2) + seconds(3));
  EXPECT_EQ(parse_timespan("00:00:00"), milliseconds(0));
  EXPECT_EQ(parse_timespan(" 00:00:05 "), seconds(5));
}

TEST(TimeSpan, ParsesFractions) {
  EXPECT_EQ(parse_timespan("00:00:00.1"), milliseconds(100));  // cache requestConsolidationTimeout
  EXPECT_EQ(parse_timespan("00:00:01.25"), milliseconds(1250));
  EXPECT_EQ(parse_timespan("00:00:01.005"), milliseconds(1005));
  EXPECT_EQ(parse_timespan("00:00:01.0059999"), milliseconds(1005));  // truncated, 7 digits
  EXPECT_EQ(parse_timespan("00:00:00.0001"), milliseconds(0));
}

TEST(TimeSpan, ParsesDays) {
  EXPECT_EQ(parse_timespan("1.00:00:00"), hours(24));
  EXPECT_EQ(parse_timespan("30.00:00:00"), hours(24 * 30));  // affinity timeout maximum
  EXPECT_EQ(parse_timespan("2.03:04:05.6"),
            hours(51) + minutes(4) + seconds(5) + milliseconds(600));
}

TEST(TimeSpan, HoursMayExceedADayWithoutADayField) {
  EXPECT_EQ(parse_timespan("36:00:00"), hours(36));
}

TEST(TimeSpan, RejectsGarbage) {
  for (const char* text : {"",
                           " ",
                           "30",
                           "30s",
                           "00:30",
                           "00:00:30:00",
                           "aa:bb:cc",
                           "00:00:3x",
                           "00::30",
                           ":00:30",
                           "00:00:",
                           "00:00:30.",
                           "00:00:30.12345678",
                           "1.:00:00",
                           ".01:00:00",
                           "1.2.3:00:00",
                           "00:00:30 s",
                           "0x1:00:00",
                           "+00:00:01",
                           "00:00:0.5.1"}) {
    EXPECT_EQ(parse_timespan(text), std::nullopt) << "'" << text << "'";
  }
}

TEST(TimeSpan, RejectsOutOfRangeFields) {
  EXPECT_EQ(parse_timespan("00:60:00"), std::nullopt);
  EXPECT_EQ(parse_timespan("00:00:60"), std::nullopt);
  EXPECT_EQ(parse_timespan("00:99:00"), std::nullopt);
  EXPECT_EQ(parse_timespan("1.24:00:00"), std::nullopt);
  EXPECT_EQ(parse_timespan("00:000:00"), std::nullopt);
}

TEST(TimeSpan, RejectsNegativeValues) {
  EXPECT_EQ(parse_timespan("-00:00:01"), std::nullopt);
  EXPECT_EQ(parse_timespan("-1.00:00:00"), std::nullopt);
  EXPECT_EQ(parse_timespan("00:-1:00"), std::nullopt);
}

TEST(TimeSpan, RejectsNumbersTooLongToBeReal) {
  EXPECT_EQ(parse_timespan("1234567890:00:00"), std::nullopt);
  EXPECT_EQ(parse_timespan("123456789.00:00:00"), std::nullopt);
}

TEST(TimeSpan, Formats) {
  EXPECT_EQ(format_timespan(milliseconds(0)), "00:00:00");
  EXPECT_EQ(format_timespan(seconds(30)), "00:00:30");
  EXPECT_EQ(format_timespan(milliseconds(1)), "00:00:00.001");
  EXPECT_EQ(format_timespan(minutes(90)), "01:30:00");
  EXPECT_EQ(format_timespan(hours(24)), "1.00:00:00");
  EXPECT_EQ(format_timespan(hours(49) + milliseconds(250)), "2.01:00:00.250");
  EXPECT_EQ(format_timespan(milliseconds(-1500)), "-00:00:01.500");
}

}  // namespace
}  // namespace harrow::config

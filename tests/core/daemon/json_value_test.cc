#include "core/daemon/json_value.h"

#include <gtest/gtest.h>

namespace harrow {
namespace {

TEST(JsonValue, ParsesTheAdminApiShapesAndKeepsEachValuesText) {
  JsonValue v;
  std::string error;
  ASSERT_TRUE(parse_json(
      R"({"farms":[{"name":"web","enabled":true,"servers":[{"weight":100,"rps":0.50}]}],)"
      R"("x":null,"s":"a\"b\u00e9\ud83d\ude00"})",
      v, error))
      << error;
  const JsonValue* farms = v.get("farms");
  ASSERT_NE(farms, nullptr);
  ASSERT_EQ(farms->items.size(), 1u);
  const JsonValue& farm = farms->items[0];
  EXPECT_EQ(farm.str("name"), "web");
  EXPECT_TRUE(farm.get("enabled")->boolean);
  EXPECT_EQ(farm.get("servers")->items[0].get("weight")->number, 100);
  EXPECT_EQ(farm.get("servers")->items[0].str("rps"), "0.50");  // the number as written
  EXPECT_EQ(farm.raw, R"({"name":"web","enabled":true,"servers":[{"weight":100,"rps":0.50}]})");
  EXPECT_EQ(v.str("x"), "");
  EXPECT_EQ(v.str("s"), "a\"b\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(v.get("missing"), nullptr);
}

TEST(JsonValue, RefusesWhatIsNotOneValue) {
  JsonValue v;
  std::string error;
  for (const char* bad :
       {"", "{", "[1,]", "{\"a\" 1}", "\"open", "tru", "{} x", "1e", "\"\x01\""}) {
    EXPECT_FALSE(parse_json(bad, v, error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
    error.clear();
  }
  std::string deep(100, '[');
  EXPECT_FALSE(parse_json(deep + std::string(100, ']'), v, error));
}

TEST(JsonQuoted, EscapesQuotesBackslashesAndControlBytesAndReadsBack) {
  EXPECT_EQ(json_quoted("plain"), "\"plain\"");
  EXPECT_EQ(json_quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_quoted(std::string_view("\n\x01\x1f", 3)), "\"\\u000a\\u0001\\u001f\"");
  std::string text = std::string("p\"w\\d\t\x7f") + "\xc3\xa9";
  JsonValue back;
  std::string error;
  ASSERT_TRUE(parse_json(json_quoted(text), back, error)) << error;
  EXPECT_EQ(back.text, text);
}

}  // namespace
}  // namespace harrow

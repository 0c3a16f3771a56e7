// ResponseHead: the response head Harrow wrote, as HTTP/2 fields.
#include "core/http2/response_head.h"

#include <gtest/gtest.h>

namespace harrow::http2 {
namespace {

TEST(Http2ResponseHead, StatusBecomesPseudoFieldAndNamesLowerCase) {
  ResponseHead head;
  ASSERT_TRUE(head.parse(
      "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nX-Thing:  v a l  \r\n\r\n"));
  EXPECT_EQ(head.status(), 404);
  EXPECT_EQ(std::string_view(head.status_text, 3), "404");
  ASSERT_EQ(head.fields().size(), 2u);
  EXPECT_EQ(head.fields()[0].name, "content-type");
  EXPECT_EQ(head.fields()[0].value, "text/plain");
  EXPECT_EQ(head.fields()[1].name, "x-thing");
  EXPECT_EQ(head.fields()[1].value, "v a l");
}

TEST(Http2ResponseHead, ConnectionSpecificFieldsAreLeftOut) {
  ResponseHead head;
  ASSERT_TRUE(head.parse(
      "HTTP/1.1 200 OK\r\nConnection: close\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: "
      "chunked\r\nUpgrade: h2c\r\nProxy-Connection: x\r\nSet-Cookie: a=1\r\nSet-Cookie: "
      "b=2\r\n\r\n"));
  ASSERT_EQ(head.fields().size(), 2u);
  EXPECT_EQ(head.fields()[0].value, "a=1");
  EXPECT_EQ(head.fields()[1].value, "b=2");
}

TEST(Http2ResponseHead, RefusesWhatHarrowDoesNotWrite) {
  ResponseHead head;
  EXPECT_FALSE(head.parse("HTTP/1.0 200 OK\r\n\r\n"));
  EXPECT_FALSE(head.parse("HTTP/1.1 2x0 OK\r\n\r\n"));
  EXPECT_FALSE(head.parse("HTTP/1.1 200 OK\r\nno-colon\r\n\r\n"));
  EXPECT_FALSE(head.parse("HTTP/1.1 200 OK\r\nA: b\r\n"));  // no empty line
  EXPECT_FALSE(head.parse("HTTP/1.1 200 OK\r\n\r\ntrailing"));
}

TEST(Http2ResponseHead, EmptyValuesAndNamesOfEveryLengthOfAConnectionField) {
  ResponseHead head;
  ASSERT_TRUE(head.parse(
      "HTTP/1.1 204 No Content\r\nX-Empty:\r\nX-Spaces:   \r\nUpgrades: x\r\nConnections: y\r\n"
      "TRANSFER-ENCODING: chunked\r\n\r\n"));
  ASSERT_EQ(head.fields().size(), 4u);
  EXPECT_EQ(head.fields()[0].name, "x-empty");
  EXPECT_EQ(head.fields()[0].value, "");
  EXPECT_EQ(head.fields()[1].value, "");
  EXPECT_EQ(head.fields()[2].name, "upgrades");
  EXPECT_EQ(head.fields()[3].name, "connections");
  EXPECT_FALSE(head.parse("HTTP/1.1 200 OK\r\n: no-name\r\n\r\n"));
  EXPECT_FALSE(head.parse("HTTP/1.1 200 OK\r\nA: b\r"));
  EXPECT_FALSE(head.parse("HTTP/1.1 200 OK\rX: y\r\n\r\n"));
}

}  // namespace
}  // namespace harrow::http2

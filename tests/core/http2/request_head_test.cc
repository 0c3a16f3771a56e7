// RequestFields: HTTP/2 request fields as the HTTP/1.1 head Harrow's decoder judges.
#include "core/http2/request_head.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "core/http1/request_decoder.h"

namespace harrow::http2 {
namespace {

RequestFields fields_of(std::vector<std::pair<std::string, std::string>> list,
                        uint32_t limit = 64 * 1024) {
  RequestFields fields;
  fields.reset(limit);
  for (auto& [name, value] : list) fields.add(name, value);
  return fields;
}

const std::vector<std::pair<std::string, std::string>> kGet = {
    {":method", "GET"}, {":scheme", "https"}, {":authority", "shop.example"}, {":path", "/a?b=1"}};

TEST(Http2RequestFields, WritesTheRequestLineAndHostFromPseudoFields) {
  auto list = kGet;
  list.push_back({"accept", "*/*"});
  std::string head;
  ASSERT_EQ(fields_of(list).write_http1(false, head), RequestFields::Result::Ok);
  EXPECT_EQ(head, "GET /a?b=1 HTTP/1.1\r\nhost: shop.example\r\naccept: */*\r\n\r\n");
}

TEST(Http2RequestFields, JoinsCookieFieldsIntoOne) {
  auto list = kGet;
  list.push_back({"cookie", "a=1"});
  list.push_back({"x", "y"});
  list.push_back({"cookie", "b=2"});
  std::string head;
  ASSERT_EQ(fields_of(list).write_http1(false, head), RequestFields::Result::Ok);
  EXPECT_NE(head.find("\r\ncookie: a=1; b=2\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("cookie: a=1\r\n"), std::string::npos);
}

TEST(Http2RequestFields, AuthorityAndHostMustAgree) {
  auto list = kGet;
  list.push_back({"host", "other.example"});
  std::string head;
  EXPECT_EQ(fields_of(list).write_http1(false, head), RequestFields::Result::HostDisagrees);
  list.back().second = "SHOP.example";  // the same host, another case
  EXPECT_EQ(fields_of(list).write_http1(false, head), RequestFields::Result::Ok);
  EXPECT_EQ(head.find("SHOP"), std::string::npos) << "one Host, from :authority";
}

TEST(Http2RequestFields, HostStandsInForAMissingAuthority) {
  std::string head;
  EXPECT_EQ(
      fields_of({{":method", "GET"}, {":scheme", "http"}, {":path", "/"}}).write_http1(false, head),
      RequestFields::Result::MissingAuthority);
  ASSERT_EQ(fields_of({{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"host", "h"}})
                .write_http1(false, head),
            RequestFields::Result::Ok);
  EXPECT_EQ(head, "GET / HTTP/1.1\r\nhost: h\r\n\r\n");
}

TEST(Http2RequestFields, ConnectAndTeOtherThanTrailersAreRefused) {
  std::string head;
  EXPECT_EQ(fields_of({{":method", "CONNECT"}, {":authority", "h:443"}}).write_http1(true, head),
            RequestFields::Result::ConnectRefused);
  auto list = kGet;
  list.push_back({"te", "gzip"});
  EXPECT_EQ(fields_of(list).write_http1(false, head), RequestFields::Result::BadTe);
  list.back().second = "trailers";
  EXPECT_EQ(fields_of(list).write_http1(false, head), RequestFields::Result::Ok);
}

TEST(Http2RequestFields, ABodyWithoutLengthIsSentChunked) {
  auto list = kGet;
  list[0].second = "POST";
  std::string head;
  ASSERT_EQ(fields_of(list).write_http1(true, head), RequestFields::Result::Ok);
  EXPECT_NE(head.find("transfer-encoding: chunked\r\n"), std::string::npos);
  list.push_back({"content-length", "5"});
  ASSERT_EQ(fields_of(list).write_http1(true, head), RequestFields::Result::Ok);
  EXPECT_EQ(head.find("transfer-encoding"), std::string::npos);
  EXPECT_NE(head.find("content-length: 5\r\n"), std::string::npos);
}

TEST(Http2RequestFields, AnOversizedListIsCountedNotKept) {
  RequestFields fields;
  fields.reset(1024);
  for (const auto& [name, value] : kGet) fields.add(name, value);
  std::string big(4000, 'x');
  // An HPACK bomb: one large table entry referenced again and again.
  for (int i = 0; i < 10'000; ++i) fields.add("x-bomb", big);
  EXPECT_TRUE(fields.too_large());
  EXPECT_GT(fields.list_size(), 40'000'000u);
}

class HeadOnly final : public RequestDecoderEvents {
 public:
  void request_begin() override {}
  void request_head() override { heads++; }
  void request_body(const char*, size_t) override {}
  void request_end() override {}
  int heads = 0;
};

// Any list of ordinary fields reaches the decoder as it was sent: the same names and values,
// in order, and nothing else but Host.
RC_GTEST_PROP(Http2RequestFields, DecodedHeadHoldsExactlyTheFieldsSent, ()) {
  const auto name_gen =
      rc::gen::container<std::string>(rc::gen::elementOf(std::string("abcxyz-0123")));
  const auto value_gen =
      rc::gen::container<std::string>(rc::gen::elementOf(std::string("abcXYZ 09;=,./\"!~\t")));
  auto count = *rc::gen::inRange(0, 20);
  std::vector<std::pair<std::string, std::string>> sent;
  for (int i = 0; i < count; ++i) {
    std::string name = "x" + *name_gen;
    std::string value = *value_gen;
    // Field values carry no leading or trailing whitespace over HTTP/2 (nghttp2 refuses it).
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
    sent.push_back({name, value});
  }
  auto list = kGet;
  list.insert(list.end(), sent.begin(), sent.end());
  std::string text;
  RC_ASSERT(fields_of(list).write_http1(false, text) == RequestFields::Result::Ok);
  RequestDecoder decoder;
  MessageHead head;
  HeadOnly events;
  decoder.reset(RequestLimits{}, &head, &events);
  RequestDecoder::Step step = decoder.decode(text.data(), static_cast<uint32_t>(text.size()));
  RC_ASSERT(step.status == RequestDecoder::Status::Paused);
  RC_ASSERT(events.heads == 1);
  RC_ASSERT(!decoder.head_rejected());
  RC_ASSERT(head.target() == std::string_view("/a?b=1"));
  RC_ASSERT(head.fields().size() == sent.size() + 1);
  RC_ASSERT(head.find("host") == std::string_view("shop.example"));
  for (size_t i = 0; i < sent.size(); ++i) {
    RC_ASSERT(head.fields()[i + 1].name == std::string_view(sent[i].first));
    RC_ASSERT(head.fields()[i + 1].value == std::string_view(sent[i].second));
  }
}

}  // namespace
}  // namespace harrow::http2

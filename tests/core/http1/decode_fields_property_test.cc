// RequestDecoder::decode_fields() against decode(): a head that arrives as fields (HTTP/2) is
// the HTTP/1.1 text it stands for, so whenever the fields road takes a head, it must give the
// same head and the same judgement as the text road; when it declines, nothing may have
// happened. Heads here are built to reach every rule and limit both roads apply.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/http1/request_decoder.h"

namespace harrow {
namespace {

struct Events final : RequestDecoderEvents {
  int begins = 0;
  int heads = 0;
  void request_begin() override { ++begins; }
  void request_head() override { ++heads; }
  void request_body(const char*, size_t) override {}
  void request_end() override {}
};

std::string text_of(const std::string& method, const std::string& target,
                    const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string text = method + " " + target + " HTTP/1.1\r\n";
  for (const auto& [name, value] : fields) text += name + ": " + value + "\r\n";
  return text + "\r\n";
}

rc::Gen<std::string> piece(std::string alphabet, int max_len) {
  return rc::gen::mapcat(rc::gen::inRange(0, max_len + 1), [alphabet](int n) {
    return rc::gen::container<std::string>(n, rc::gen::elementOf(alphabet));
  });
}

// A choice made at full size: rapidcheck scales inRange() with the test's size, which would
// make the first cases all take the first branch and the smallest limits.
int choose(int low, int high) {
  return *rc::gen::resize(100, rc::gen::inRange(low, high));
}

RC_GTEST_PROP(DecodeFields, TakesAHeadOnlyAsTheTextRoadWouldJudgeIt, ()) {
  static const std::vector<std::string> kCommon = {"GET",    "POST",  "HEAD",   "PUT",
                                                   "DELETE", "PATCH", "OPTIONS"};
  static const std::vector<std::string> kOdd = {"TRACE", "PROPFIND", "CONNECT",
                                                "get",   "G\x01T",   ""};
  std::string method = choose(0, 8) != 0   ? kCommon[choose(0, 7)]
                       : choose(0, 2) == 0 ? kOdd[choose(0, 6)]
                                           : *piece("GETPOSabc-!", 6);
  std::string target = choose(0, 8) != 0 ? "/" + *piece("abz09/._-~%?=&;+", 24)
                                         : *piece("abz09/._-~%?=&#* \x01\x7f\x80\"<>\\", 12);
  const std::string name_chars = "abcdefhlnorstx-_!~.";
  const std::string value_chars = "abcXYZ 09;=,./\"!~\t\x80\xff";
  std::vector<std::pair<std::string, std::string>> fields;
  if (choose(0, 4) != 0) fields.push_back({"host", *piece("abc.:019", 12)});
  int count = choose(0, 7);
  for (int i = 0; i < count; ++i) {
    switch (choose(0, 40)) {
      case 0:
        fields.push_back({"content-length", *rc::gen::elementOf(std::vector<std::string>{
                                                "0", "5", "007", "123456789012345678901", "", "1 2",
                                                "-1", "99999999999999"})});
        break;
      case 1:
        fields.push_back({"transfer-encoding",
                          *rc::gen::elementOf(std::vector<std::string>{"chunked", "gzip"})});
        break;
      case 2:
        fields.push_back({*rc::gen::elementOf(std::vector<std::string>{
                              "connection", "upgrade", "keep-alive", "proxy-connection", "te",
                              "expect", "host", "sec-websocket-key", "cookie"}),
                          *piece("closeupgradwbsktrail-100ntinu", 10)});
        break;
      case 3:
        fields.push_back({*piece("ab:\x01 c", 4), *piece(value_chars, 8)});
        break;
      case 4:
        fields.push_back({"x-odd", *piece("a\x01\x7f\r \t", 5)});
        break;
      default: {
        // Mostly as HTTP/2 carries values: no whitespace at either end.
        std::string value = *piece(value_chars, 20);
        if (choose(0, 8) != 0) {
          while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
            value.erase(0, 1);
          while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
        }
        fields.push_back({"x" + *piece(name_chars, 8), value});
        break;
      }
    }
  }
  RequestLimits limits;
  if (choose(0, 2) == 0) {
    // Limits right at the head's own sizes, a few bytes either side: both roads must stop at
    // exactly the same byte.
    size_t line = method.size() + target.size() + 11;  // "M SP T SP HTTP/1.1 CR"
    size_t section = 2;
    for (const auto& [name, value] : fields) section += name.size() + value.size() + 4;
    auto near = [](size_t n) {
      return static_cast<uint32_t>(std::max<int>(1, int(n) + choose(-3, 4)));
    };
    limits.max_request_line = near(line);
    limits.max_header_bytes = near(section);
    limits.max_header_count =
        static_cast<uint32_t>(std::max<int>(0, int(fields.size()) + choose(-1, 2)));
  }
  limits.allow_trace = *rc::gen::arbitrary<bool>();

  std::vector<HeaderField> views;
  for (const auto& [name, value] : fields) views.push_back({name, value});
  RequestDecoder by_fields;
  MessageHead head_a;
  Events events_a;
  by_fields.reset(limits, &head_a, &events_a);
  bool taken = by_fields.decode_fields(method, target, views);
  RC_TAG(taken ? "taken" : "declined");
  if (!taken) {
    RC_ASSERT(events_a.begins == 0);
    RC_ASSERT(events_a.heads == 0);
    return;
  }
  RC_ASSERT(events_a.begins == 1);
  RC_ASSERT(events_a.heads == 1);

  std::string text = text_of(method, target, fields);
  RequestDecoder by_text;
  MessageHead head_b;
  Events events_b;
  by_text.reset(limits, &head_b, &events_b);
  RequestDecoder::Step step = by_text.decode(text.data(), static_cast<uint32_t>(text.size()));
  RC_ASSERT(step.status == RequestDecoder::Status::Paused);
  RC_ASSERT(events_b.heads == 1);
  RC_ASSERT(by_fields.head_rejected() == by_text.head_rejected());
  RC_TAG(by_text.head_rejected() ? "judged: refused" : "judged: accepted");
  if (by_text.head_rejected()) {
    RC_ASSERT(by_fields.rejection().failure == by_text.rejection().failure);
    RC_ASSERT(std::string_view(by_fields.rejection().detail) ==
              std::string_view(by_text.rejection().detail));
  }
  RC_ASSERT(by_fields.method() == by_text.method());
  RC_ASSERT(by_fields.http11() == by_text.http11());
  RC_ASSERT(by_fields.keep_alive() == by_text.keep_alive());
  RC_ASSERT(by_fields.chunked() == by_text.chunked());
  RC_ASSERT(by_fields.has_body() == by_text.has_body());
  RC_ASSERT(by_fields.websocket() == by_text.websocket());
  RC_ASSERT(by_fields.upgrade() == by_text.upgrade());
  RC_ASSERT(head_a.target() == head_b.target());
  RC_ASSERT(head_a.fields().size() == head_b.fields().size());
  for (size_t i = 0; i < head_a.fields().size(); ++i) {
    RC_ASSERT(head_a.fields()[i].name == head_b.fields()[i].name);
    RC_ASSERT(head_a.fields()[i].value == head_b.fields()[i].value);
  }
}

TEST(DecodeFields, AnOrdinaryHeadIsTakenAndUnusualOnesAreLeftToTheText) {
  RequestLimits limits;
  std::vector<HeaderField> fields = {{"host", "a.example"}, {"content-length", "3"}};
  RequestDecoder d;
  MessageHead head;
  Events events;
  d.reset(limits, &head, &events);
  ASSERT_TRUE(d.decode_fields("POST", "/x?y=1", fields));
  EXPECT_EQ(d.method(), HTTP_POST);
  EXPECT_TRUE(d.has_body());
  EXPECT_FALSE(d.chunked());
  EXPECT_FALSE(d.head_rejected());
  EXPECT_EQ(head.target(), "/x?y=1");
  EXPECT_EQ(head.find("host"), "a.example");

  for (auto [method, target] : std::vector<std::pair<std::string_view, std::string_view>>{
           {"PROPFIND", "/"}, {"GET", "*"}, {"GET", "http://a/"}, {"GET", "/a b"}}) {
    RequestDecoder other;
    other.reset(limits, &head, &events);
    EXPECT_FALSE(other.decode_fields(method, target, fields)) << method << " " << target;
  }
  std::vector<HeaderField> connection = {{"host", "a"}, {"connection", "close"}};
  RequestDecoder other;
  other.reset(limits, &head, &events);
  EXPECT_FALSE(other.decode_fields("GET", "/", connection));
}

}  // namespace
}  // namespace harrow

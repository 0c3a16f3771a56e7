#include "core/http1/request_decoder.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace harrow {
namespace {

// Records what the decoder reports, in order.
struct Recorder final : RequestDecoderEvents {
  std::vector<std::string> events;
  std::string body;
  void request_begin() override { events.push_back("begin"); }
  void request_head() override { events.push_back("head"); }
  void request_body(const char* data, size_t len) override { body.append(data, len); }
  void request_end() override { events.push_back("end"); }
};

// Feeds `input` `read` bytes at a time, resuming after every pause, until it is all consumed
// or the decoder refuses; returns how many bytes were consumed.
size_t drive(RequestDecoder& d, std::string_view input, size_t read, bool* rejected) {
  size_t available = 0, consumed = 0;
  *rejected = false;
  for (int guard = 0; guard < 100000; ++guard) {
    RequestDecoder::Step step =
        d.decode(input.data() + consumed, static_cast<uint32_t>(available - consumed));
    consumed += step.consumed;
    if (step.status == RequestDecoder::Status::Rejected) {
      *rejected = true;
      return consumed;
    }
    if (step.status == RequestDecoder::Status::Paused) {
      d.resume();
      continue;
    }
    if (available == input.size()) return consumed;
    available = std::min(input.size(), available + read);
  }
  ADD_FAILURE() << "the decoder made no progress";
  return consumed;
}

TEST(RequestDecoder, PausesAfterTheHeadAndAfterTheMessage) {
  RequestDecoder d;
  MessageHead head;
  Recorder r;
  d.reset(RequestLimits{}, &head, &r);
  std::string_view req = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET";
  RequestDecoder::Step s = d.decode(req.data(), static_cast<uint32_t>(req.size()));
  EXPECT_EQ(s.status, RequestDecoder::Status::Paused);
  EXPECT_EQ(r.events, (std::vector<std::string>{"begin", "head"}));
  EXPECT_EQ(head.target(), "/a");
  EXPECT_EQ(d.method(), HTTP_POST);
  EXPECT_TRUE(d.has_body());
  EXPECT_FALSE(d.head_rejected());
  EXPECT_TRUE(r.body.empty()) << "the body waits until the caller resumes";
  d.resume();
  std::string_view rest = req.substr(s.consumed);
  RequestDecoder::Step s2 = d.decode(rest.data(), static_cast<uint32_t>(rest.size()));
  EXPECT_EQ(s2.status, RequestDecoder::Status::Paused);
  EXPECT_EQ(r.body, "abc");
  EXPECT_EQ(r.events.back(), "end");
  EXPECT_EQ(rest.substr(s2.consumed), "GET") << "a pipelined request stays unconsumed";
}

TEST(RequestDecoder, ABodylessRequestEndsRightAfterItsHeadOnResume) {
  RequestDecoder d;
  MessageHead head;
  Recorder r;
  d.reset(RequestLimits{}, &head, &r);
  std::string_view req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  RequestDecoder::Step s = d.decode(req.data(), static_cast<uint32_t>(req.size()));
  ASSERT_EQ(s.status, RequestDecoder::Status::Paused);
  EXPECT_EQ(s.consumed, req.size());
  d.resume();
  EXPECT_TRUE(d.owes_callbacks());
  RequestDecoder::Step s2 = d.decode(req.data() + s.consumed, 0);
  EXPECT_EQ(s2.status, RequestDecoder::Status::Paused);
  EXPECT_EQ(r.events, (std::vector<std::string>{"begin", "head", "end"}));
  d.resume();
  RequestDecoder::Step s3 = d.decode(req.data() + s.consumed, 0);
  EXPECT_EQ(s3.status, RequestDecoder::Status::NeedInput);
  EXPECT_TRUE(d.between_messages());
}

TEST(RequestDecoder, TheFramerRefusesBeforeLlhttpSeesTheFault) {
  RequestDecoder d;
  MessageHead head;
  Recorder r;
  d.reset(RequestLimits{}, &head, &r);
  std::string_view req = "GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n";
  bool rejected = false;
  drive(d, req, req.size(), &rejected);
  EXPECT_TRUE(rejected);
  EXPECT_EQ(d.rejection().failure, Failure::bad_request);
  EXPECT_TRUE(r.events.empty()) << "the framer vouched for no byte of it: llhttp never began";
}

TEST(RequestDecoder, AHeadCheckRefusalIsReportedWithTheHead) {
  RequestDecoder d;
  MessageHead head;
  Recorder r;
  d.reset(RequestLimits{}, &head, &r);
  std::string_view req = "GET / HTTP/1.1\r\n\r\n";  // HTTP/1.1 without Host
  RequestDecoder::Step s = d.decode(req.data(), static_cast<uint32_t>(req.size()));
  EXPECT_EQ(s.status, RequestDecoder::Status::Paused);
  EXPECT_TRUE(d.head_rejected());
  EXPECT_EQ(failure_status(d.rejection().failure), 400);
}

TEST(RequestDecoder, AWebSocketHandshakeIsRecognisedAndEndsKeepAlive) {
  RequestDecoder d;
  MessageHead head;
  Recorder r;
  d.reset(RequestLimits{}, &head, &r);
  std::string_view req =
      "GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  d.decode(req.data(), static_cast<uint32_t>(req.size()));
  EXPECT_TRUE(d.upgrade());
  EXPECT_TRUE(d.websocket());
}

TEST(RequestDecoder, ChunkedBodyDecodesTheSameWhateverTheReadSize) {
  std::string_view req =
      "POST /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n5;ext=1\r\nde\r\nf\r\n0\r\nTrailer: t\r\n\r\n";
  for (size_t read = 1; read <= req.size(); ++read) {
    RequestDecoder d;
    MessageHead head;
    Recorder r;
    d.reset(RequestLimits{}, &head, &r);
    bool rejected = false;
    size_t consumed = drive(d, req, read, &rejected);
    ASSERT_FALSE(rejected) << "read size " << read;
    EXPECT_EQ(consumed, req.size()) << "read size " << read;
    EXPECT_EQ(r.body, "abcde\r\nf") << "read size " << read;
    EXPECT_EQ(head.find("trailer"), "") << "trailers do not reach the head";
  }
}

}  // namespace
}  // namespace harrow

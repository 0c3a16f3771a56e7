// ServerSession against raw frames: requests reach the owner, and every flood or abuse the
// session bounds ends the connection with a GOAWAY naming it.
#include "core/http2/server_session.h"

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <string>

#include "tests/core/http2/h2_frames.h"

namespace harrow::http2 {
namespace {

using testing::Encoder;
using testing::frame;
using testing::frames_of;
using testing::get_request;
using testing::preface;
using testing::read_u32;
using testing::u32;

class Owner final : public SessionEvents {
 public:
  Stream* h2_open(int32_t) override {
    streams.emplace_back();
    return &streams.back();
  }
  void h2_request(Stream* stream, const RequestFields& fields, bool end_stream) override {
    ++requests;
    last = stream;
    last_end_stream = end_stream;
    last_method = std::string(fields.method());
    last_path = std::string(fields.path());
    last_list_size = fields.list_size();
    if (fields.too_large()) ++too_large;
  }
  void h2_body(Stream*, const uint8_t*, size_t len) override { body_bytes += len; }
  void h2_body_end(Stream*) override { ++body_ends; }
  void h2_closed(Stream*, uint32_t error_code) override {
    ++closed;
    if (error_code != 0) ++reset;
  }
  Pull h2_pull(Stream*, uint8_t* buf, size_t len) override {
    Pull pull;
    pull.bytes = std::min(len, response.size());
    std::memcpy(buf, response.data(), pull.bytes);
    response.erase(0, pull.bytes);
    pull.end = response.empty();
    return pull;
  }

  std::deque<Stream> streams;
  Stream* last = nullptr;
  std::string last_method, last_path;
  uint64_t last_list_size = 0;
  bool last_end_stream = false;
  int requests = 0, too_large = 0, body_ends = 0, closed = 0, reset = 0;
  size_t body_bytes = 0;
  std::string response;
};

struct Goaway {
  bool seen = false;
  uint32_t code = 0;
  std::string debug;
};

Goaway goaway_in(const std::string& out) {
  Goaway g;
  for (const auto& f : frames_of(out)) {
    if (f.type == NGHTTP2_GOAWAY && f.payload.size() >= 8) {
      g.seen = true;
      g.code = read_u32(f.payload, 4);
      g.debug = f.payload.substr(8);
    }
  }
  return g;
}

bool feed(ServerSession& session, const std::string& bytes, uint64_t now_ms = 1000) {
  return session.receive(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), now_ms);
}

TEST(Http2ServerSession, ARequestReachesTheOwnerAndTheResponseGoesOut) {
  Owner owner;
  ServerSession session(SessionLimits{}, &owner);
  Encoder enc;
  std::string in =
      preface() + frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1,
                        enc.encode(get_request("/x")));
  ASSERT_TRUE(feed(session, in));
  ASSERT_EQ(owner.requests, 1);
  EXPECT_TRUE(owner.last_end_stream);
  EXPECT_EQ(owner.last_method, "GET");
  EXPECT_EQ(owner.last_path, "/x");
  owner.response = "hello";
  std::string status = "200";
  nghttp2_nv nv[] = {{reinterpret_cast<uint8_t*>(const_cast<char*>(":status")),
                      reinterpret_cast<uint8_t*>(status.data()), 7, 3, NGHTTP2_NV_FLAG_NONE}};
  ASSERT_EQ(session.submit_response(owner.last, nv, true), 0);
  std::string out;
  session.send_to(out);
  bool data_end = false;
  for (const auto& f : frames_of(out)) {
    if (f.type == NGHTTP2_DATA && f.stream == 1) {
      EXPECT_EQ(f.payload, "hello");
      data_end = (f.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    }
  }
  EXPECT_TRUE(data_end);
  EXPECT_EQ(owner.closed, 1);
  EXPECT_FALSE(session.failed());
}

TEST(Http2ServerSession, RapidResetEndsTheConnection) {
  Owner owner;
  SessionLimits limits;
  ServerSession session(limits, &owner);
  Encoder enc;
  std::string in = preface();
  for (uint32_t i = 0; i < 2000; ++i) {
    uint32_t id = 2 * i + 1;
    in += frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, id,
                enc.encode(get_request()));
    in += frame(NGHTTP2_RST_STREAM, 0, id, u32(NGHTTP2_CANCEL));
  }
  EXPECT_FALSE(feed(session, in));
  EXPECT_TRUE(session.failed());
  EXPECT_EQ(session.failure(), Failure::h2_rapid_reset);
  // Work stops at the limit: the rest of the bytes are never looked at.
  EXPECT_LE(owner.requests, static_cast<int>(limits.resets_burst) + 1);
  std::string out;
  session.send_to(out);
  Goaway g = goaway_in(out);
  ASSERT_TRUE(g.seen);
  EXPECT_EQ(g.code, static_cast<uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM));
  EXPECT_EQ(g.debug, "h2_rapid_reset");
}

TEST(Http2ServerSession, ResetsWithinTheRateAreFine) {
  Owner owner;
  ServerSession session(SessionLimits{}, &owner);
  Encoder enc;
  ASSERT_TRUE(feed(session, preface()));
  // 60 resets a second for 20 s: below the burst at any moment thanks to the refill.
  for (uint32_t i = 0; i < 1200; ++i) {
    uint32_t id = 2 * i + 1;
    std::string in = frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, id,
                           enc.encode(get_request()));
    in += frame(NGHTTP2_RST_STREAM, 0, id, u32(NGHTTP2_CANCEL));
    ASSERT_TRUE(feed(session, in, 1000 + i * 17)) << i;
  }
  EXPECT_FALSE(session.failed());
}

TEST(Http2ServerSession, ContinuationFloodEndsTheConnection) {
  Owner owner;
  ServerSession session(SessionLimits{}, &owner);
  Encoder enc;
  std::string block = enc.encode(get_request());
  std::string in = preface() + frame(NGHTTP2_HEADERS, 0, 1, block.substr(0, 1));
  for (int i = 0; i < 100; ++i) in += frame(NGHTTP2_CONTINUATION, 0, 1, "");
  EXPECT_FALSE(feed(session, in));
  EXPECT_EQ(session.failure(), Failure::h2_continuation_flood);
  EXPECT_EQ(owner.requests, 0);
  std::string out;
  session.send_to(out);
  Goaway g = goaway_in(out);
  ASSERT_TRUE(g.seen);
  EXPECT_EQ(g.code, static_cast<uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM));
}

TEST(Http2ServerSession, EmptyDataFloodEndsTheConnection) {
  Owner owner;
  ServerSession session(SessionLimits{}, &owner);
  Encoder enc;
  auto post = get_request();
  post[0].second = "POST";
  std::string in =
      preface() + frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, enc.encode(post));
  for (int i = 0; i < 1000; ++i) in += frame(NGHTTP2_DATA, 0, 1, "");
  EXPECT_FALSE(feed(session, in));
  EXPECT_EQ(session.failure(), Failure::h2_flood);
}

TEST(Http2ServerSession, PingAndSettingsFloodsEndTheConnection) {
  for (uint8_t type : {uint8_t{NGHTTP2_PING}, uint8_t{NGHTTP2_SETTINGS}}) {
    Owner owner;
    ServerSession session(SessionLimits{}, &owner);
    std::string in = preface();
    for (int i = 0; i < 5000; ++i) {
      in += frame(type, 0, 0, type == NGHTTP2_PING ? std::string(8, 'p') : std::string());
    }
    EXPECT_FALSE(feed(session, in));
    EXPECT_EQ(session.failure(), Failure::h2_flood);
    std::string out;
    session.send_to(out);
    EXPECT_TRUE(goaway_in(out).seen);
    // Bounded: far fewer acknowledgements than frames were produced.
    size_t acks = 0;
    for (const auto& f : frames_of(out)) acks += (f.flags & NGHTTP2_FLAG_ACK) != 0;
    EXPECT_LT(acks, 300u);
  }
}

TEST(Http2ServerSession, AnHpackBombIsCountedNotKept) {
  Owner owner;
  SessionLimits limits;
  limits.max_header_list = 16 * 1024;
  ServerSession session(limits, &owner);
  Encoder enc;
  // One 4000-byte value enters the dynamic table (literal with incremental indexing); every
  // later reference to it (index 62, the newest entry) is one byte.
  std::string block = enc.encode(get_request());
  block += std::string("\x40\x06x-bomb\x7f\xa1\x1e", 11) + std::string(4000, 'b');
  block += std::string(12'000, '\xbe');
  ASSERT_LT(block.size(), 16'384u) << "the bomb fits one frame";
  ASSERT_TRUE(feed(
      session, preface() + frame(NGHTTP2_HEADERS,
                                 NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1, block)));
  ASSERT_EQ(owner.requests, 1);
  EXPECT_EQ(owner.too_large, 1);
  EXPECT_GT(owner.last_list_size, 12'000'000u);
}

TEST(Http2ServerSession, StreamsAboveTheLimitAreRefused) {
  Owner owner;
  SessionLimits limits;
  limits.max_concurrent_streams = 10;
  ServerSession session(limits, &owner);
  Encoder enc;
  std::string in = preface();
  for (uint32_t i = 0; i < 11; ++i) {
    in += frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 2 * i + 1, enc.encode(get_request()));
  }
  ASSERT_TRUE(feed(session, in));
  EXPECT_EQ(owner.requests, 10);
  std::string out;
  session.send_to(out);
  bool refused = false;
  for (const auto& f : frames_of(out)) {
    if (f.type == NGHTTP2_RST_STREAM && f.stream == 21) {
      refused = read_u32(f.payload, 0) == NGHTTP2_REFUSED_STREAM;
    }
  }
  EXPECT_TRUE(refused);
}

TEST(Http2ServerSession, ABodyBeyondTheWindowIsAFlowControlError) {
  Owner owner;
  SessionLimits limits;
  limits.initial_window = 16 * 1024;
  ServerSession session(limits, &owner);
  Encoder enc;
  auto post = get_request();
  post[0].second = "POST";
  ASSERT_TRUE(feed(session, preface()));
  std::string settings;
  session.send_to(settings);  // Harrow's SETTINGS go out; the client acknowledges them
  std::string in = frame(NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, "") +
                   frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, enc.encode(post));
  // The owner consumes nothing: the window does not open again.
  for (int i = 0; i < 4; ++i) in += frame(NGHTTP2_DATA, 0, 1, std::string(8192, 'd'));
  feed(session, in);
  std::string out;
  session.send_to(out);
  // nghttp2 notices the overrun at the frame that crosses the window: the window plus one
  // frame (SETTINGS_MAX_FRAME_SIZE, 16 KiB) is what a stream can hold.
  EXPECT_LE(owner.body_bytes, 16u * 1024 + 16u * 1024);
  bool flow_error = false;
  for (const auto& f : frames_of(out)) {
    if ((f.type == NGHTTP2_RST_STREAM && read_u32(f.payload, 0) == NGHTTP2_FLOW_CONTROL_ERROR) ||
        (f.type == NGHTTP2_GOAWAY && read_u32(f.payload, 4) == NGHTTP2_FLOW_CONTROL_ERROR)) {
      flow_error = true;
    }
  }
  EXPECT_TRUE(flow_error);
}

TEST(Http2ServerSession, GarbageIsAProtocolError) {
  Owner owner;
  ServerSession session(SessionLimits{}, &owner);
  EXPECT_FALSE(feed(session, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_EQ(session.failure(), Failure::h2_protocol_error);
  std::string out;
  session.send_to(out);
  Goaway g = goaway_in(out);
  ASSERT_TRUE(g.seen);
  EXPECT_EQ(g.code, static_cast<uint32_t>(NGHTTP2_PROTOCOL_ERROR));
}

TEST(Http2ServerSession, ShutdownSendsGoawayAndLetsOpenStreamsFinish) {
  Owner owner;
  ServerSession session(SessionLimits{}, &owner);
  Encoder enc;
  ASSERT_TRUE(feed(session, preface() + frame(NGHTTP2_HEADERS,
                                              NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1,
                                              enc.encode(get_request()))));
  session.shutdown();
  std::string out;
  session.send_to(out);
  Goaway g = goaway_in(out);
  ASSERT_TRUE(g.seen);
  EXPECT_EQ(g.code, static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  EXPECT_FALSE(session.finished()) << "stream 1 is still open";
  // A stream opened after the GOAWAY is not served.
  ASSERT_TRUE(
      feed(session, frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 3,
                          enc.encode(get_request()))));
  EXPECT_EQ(owner.requests, 1);
  owner.response = "ok";
  std::string status = "200";
  nghttp2_nv nv[] = {{reinterpret_cast<uint8_t*>(const_cast<char*>(":status")),
                      reinterpret_cast<uint8_t*>(status.data()), 7, 3, NGHTTP2_NV_FLAG_NONE}};
  ASSERT_EQ(session.submit_response(owner.last, nv, true), 0);
  out.clear();
  session.send_to(out);
  EXPECT_TRUE(session.finished());
}

}  // namespace
}  // namespace harrow::http2

#include "core/http1/request_checks.h"

#include <gtest/gtest.h>

#include <string>

namespace harrow {
namespace {

struct Outcome {
  bool failed = false;
  Failure failure = Failure::bad_request;
  size_t taken = 0;  // bytes taken before stopping or failing
  bool head_done = false;
  bool message_done = false;
};

// Feeds `text` to a fresh framer in two pieces split at `split`; a head end is answered with
// the framing given (as llhttp's parse of the head would).
Outcome frame(const std::string& text, size_t split, bool chunked = false, uint64_t length = 0,
              RequestLimits limits = {}) {
  RequestFramer f;
  f.reset(limits);
  Outcome o;
  size_t pos = 0;
  for (size_t end : {split, text.size()}) {
    while (pos < end && !f.failed()) {
      size_t n = f.scan(text.data() + pos, end - pos);
      pos += n;
      if (f.head_done()) {
        f.begin_body(chunked, length);
        continue;
      }
      if (f.message_done()) {
        o.message_done = true;
        o.taken = pos;
        return o;
      }
      if (n == 0) break;
    }
  }
  o.failed = f.failed();
  if (o.failed) o.failure = f.rejection().failure;
  o.taken = pos;
  return o;
}

// The verdict must not depend on how reads split the bytes.
Outcome frame_every_split(const std::string& text, bool chunked = false, uint64_t length = 0,
                          RequestLimits limits = {}) {
  Outcome first = frame(text, 0, chunked, length, limits);
  for (size_t split = 1; split <= text.size(); ++split) {
    Outcome o = frame(text, split, chunked, length, limits);
    EXPECT_EQ(o.failed, first.failed) << "split at " << split;
    EXPECT_EQ(o.message_done, first.message_done) << "split at " << split;
    if (o.failed && first.failed) {
      EXPECT_EQ(o.failure, first.failure) << "split at " << split;
    }
  }
  return first;
}

TEST(RequestFramer, AcceptsAPlainRequestAndStopsAtItsEnd) {
  std::string req = "GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-Tab: a\tb\r\n\r\n";
  Outcome o = frame_every_split(req + "GET /next HTTP/1.1\r\n");
  EXPECT_TRUE(o.message_done);
  EXPECT_EQ(o.taken, req.size());  // not one byte of the pipelined request
}

TEST(RequestFramer, ContentLengthBodyEndsTheMessage) {
  std::string req = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
  Outcome o = frame_every_split(req + "garbage", false, 5);
  EXPECT_TRUE(o.message_done);
  EXPECT_EQ(o.taken, req.size());
}

TEST(RequestFramer, ChunkedBodyWithExtensionsAndTrailers) {
  std::string req =
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;a=b\r\nhello\r\n000A\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
  Outcome o = frame_every_split(req + "\n", true);
  EXPECT_TRUE(o.message_done);
  EXPECT_EQ(o.taken, req.size());
}

TEST(RequestFramer, RefusesWhatLlhttpLetsThrough) {
  const char* bad[] = {
      "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",  // obs-fold
      "GET / HTTP/1.1\r\nHost : x\r\n\r\n",               // space before colon
      "GET / HTTP/1.1\r\nHost: x\r\n\n",                  // bare LF
      "GET / HTTP/1.1\nHost: x\r\n\r\n",                  // bare LF after the request line
      "GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n",          // bare CR
      "GET / HTTP/1.1\r\n: x\r\n\r\n",                    // empty name
      "GET  / HTTP/1.1\r\n\r\n",                          // two spaces
      "GET /\tx HTTP/1.1\r\n\r\n",                        // tab in target
      "GET /#f HTTP/1.1\r\n\r\n",                         // fragment
      "GET /\r\n\r\n",                                    // HTTP/0.9 request line
      "\nGET / HTTP/1.1\r\n\r\n",                         // leading bare LF
      "GET / HTTP/1.1\r\nX: \x7f\r\n\r\n",                // DEL
  };
  for (const char* text : bad) {
    Outcome o = frame_every_split(text);
    EXPECT_TRUE(o.failed) << text;
    EXPECT_EQ(o.failure, Failure::bad_request) << text;
  }
}

TEST(RequestFramer, VersionsOtherThan10And11Are505WhenWellFormed) {
  EXPECT_EQ(frame_every_split("GET / HTTP/2.0\r\n\r\n").failure,
            Failure::http_version_not_supported);
  EXPECT_EQ(frame_every_split("GET / HTTP/1.2\r\n\r\n").failure,
            Failure::http_version_not_supported);
  EXPECT_EQ(frame_every_split("GET / HTTP/1.10\r\n\r\n").failure, Failure::bad_request);
  EXPECT_EQ(frame_every_split("GET / HTTPS/1.1\r\n\r\n").failure, Failure::bad_request);
  EXPECT_FALSE(frame_every_split("GET / HTTP/1.0\r\n\r\n").failed);
}

TEST(RequestFramer, HoldsAVersionUntilItIsWhole) {
  RequestFramer f;
  f.reset({});
  std::string text = "GET / HTTP/1.";
  EXPECT_EQ(f.scan(text.data(), text.size()), text.size());
  EXPECT_EQ(f.held(), 7u);  // "HTTP/1." is not vouched for yet
  EXPECT_EQ(f.scan("1\r", 2), 2u);
  EXPECT_EQ(f.held(), 0u);
}

TEST(RequestFramer, ChunkFramingFaults) {
  auto chunked = [](const std::string& body) {
    return frame_every_split(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body, true);
  };
  const char* bad[] = {"zz\r\n",     "1 \r\nx\r\n",          "1\nx\r\n",    "1;a\nx\r\n",
                       "1;a\rx\r\n", "1\r\nxy\r\n",          "1\r\nx\n",    "0\r\n\n",
                       "-1\r\n",     "ffffffffffffffff\r\n", "0\r\nX: 1\n", "0\r\n X: 1\r\n"};
  for (const char* body : bad) {
    Outcome o = chunked(body);
    EXPECT_TRUE(o.failed) << body;
    EXPECT_EQ(o.failure, Failure::bad_framing) << body;
  }
  Outcome long_line = chunked(std::string(2000, '0') + "1\r\nx\r\n0\r\n\r\n");
  EXPECT_TRUE(long_line.failed);
}

TEST(RequestFramer, Limits) {
  RequestLimits limits;
  limits.max_request_line = 20;
  limits.max_header_bytes = 40;
  limits.max_header_count = 2;
  limits.max_body = 10;
  EXPECT_EQ(frame_every_split("GET /0123456789abcdef HTTP/1.1\r\n\r\n", false, 0, limits).failure,
            Failure::request_line_too_large);
  EXPECT_EQ(frame_every_split("GET / HTTP/1.1\r\nX: " + std::string(40, 'a') + "\r\n\r\n", false, 0,
                              limits)
                .failure,
            Failure::request_header_too_large);
  EXPECT_EQ(
      frame_every_split("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", false, 0, limits).failure,
      Failure::request_header_too_large);
  EXPECT_FALSE(
      frame_every_split("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", false, 0, limits).failed);
  EXPECT_EQ(frame_every_split("POST / HTTP/1.1\r\n\r\n6\r\nabcdef\r\n5\r\nabcde\r\n0\r\n\r\n", true,
                              0, limits)
                .failure,
            Failure::request_body_too_large);
  EXPECT_TRUE(frame_every_split("POST / HTTP/1.1\r\n\r\n5\r\nabcde\r\n5\r\nabcde\r\n0\r\n\r\n",
                                true, 0, limits)
                  .message_done);
}

MessageHead head_of(const std::string& target,
                    std::initializer_list<std::pair<std::string, std::string>> fields) {
  MessageHead head;
  head.reset(65536);
  head.on_target(target.data(), target.size());
  for (const auto& [name, value] : fields) {
    head.on_field(name.data(), name.size());
    head.on_value(value.data(), value.size());
  }
  head.finish();
  return head;
}

Rejection check(const MessageHead& head, std::string_view method = "GET", int minor = 1,
                bool chunked = false, bool has_length = false, uint64_t length = 0) {
  ParsedRequest req;
  req.method = method;
  req.head = &head;
  req.http_minor = minor;
  req.chunked = chunked;
  req.has_content_length = has_length;
  req.content_length = length;
  Rejection r{Failure::client_aborted, nullptr};  // "accepted" marker
  check_request_head(req, RequestLimits{}, r);
  return r;
}

TEST(CheckRequestHead, HostRules) {
  EXPECT_EQ(check(head_of("/", {{"Host", "a"}})).failure, Failure::client_aborted);
  EXPECT_EQ(check(head_of("/", {})).failure, Failure::bad_host);
  EXPECT_EQ(check(head_of("/", {}), "GET", 0).failure, Failure::client_aborted);  // HTTP/1.0
  EXPECT_EQ(check(head_of("/", {{"Host", "a"}, {"host", "a"}})).failure, Failure::bad_host);
  EXPECT_EQ(check(head_of("/", {{"Host", "a b"}})).failure, Failure::bad_host);
  EXPECT_EQ(check(head_of("http://a:80/x", {{"Host", "a:80"}})).failure, Failure::client_aborted);
  EXPECT_EQ(check(head_of("http://a/x", {{"Host", "b"}})).failure, Failure::bad_host);
  EXPECT_EQ(check(head_of("HTTP://A?x", {{"Host", "a"}})).failure, Failure::client_aborted);
}

TEST(CheckRequestHead, HostIsUriHostAndPort) {
  for (const char* ok :
       {"a", "a:80", "a:", "A-b.c_d~e", "1.2.3.4:8080", "[::1]", "[::1]:80", "[fe80::1:2]:65535"}) {
    EXPECT_EQ(check(head_of("/", {{"Host", ok}})).failure, Failure::client_aborted) << ok;
  }
  for (const char* bad : {"a:80x", "a:80:81", "[::1", "[::1]x", "[::1]:8o", "[]", "[x]", "a,b",
                          "a%0d%0a", "a;b", ":80", "a:123456", "a@b", "a/b", "a\\b"}) {
    EXPECT_EQ(check(head_of("/", {{"Host", bad}})).failure, Failure::bad_host) << bad;
  }
  EXPECT_EQ(check(head_of("http://a:8o/", {{"Host", "a"}})).failure, Failure::bad_request);
}

TEST(CheckRequestHead, TargetsMethodsAndFraming) {
  MessageHead host = head_of("/", {{"Host", "a"}});
  EXPECT_EQ(check(head_of("*", {{"Host", "a"}}), "OPTIONS").failure, Failure::client_aborted);
  EXPECT_EQ(check(head_of("*", {{"Host", "a"}}), "GET").failure, Failure::bad_request);
  EXPECT_EQ(check(head_of("a:443", {{"Host", "a"}}), "GET").failure, Failure::bad_request);
  EXPECT_EQ(check(host, "CONNECT").failure, Failure::method_not_allowed);
  EXPECT_EQ(check(host, "TRACE").failure, Failure::method_not_allowed);
  MessageHead te = head_of("/", {{"Host", "a"}, {"Transfer-Encoding", "chunked"}});
  EXPECT_EQ(check(te, "POST", 1, true).failure, Failure::client_aborted);
  EXPECT_EQ(check(te, "POST", 0, true).failure, Failure::bad_framing);
  MessageHead gzip = head_of("/", {{"Host", "a"}, {"Transfer-Encoding", "gzip, chunked"}});
  EXPECT_EQ(check(gzip, "POST", 1, true).failure, Failure::bad_framing);
  EXPECT_EQ(check(host, "POST", 1, false, true, 30'000'001).failure,
            Failure::request_body_too_large);
  EXPECT_EQ(check(host, "POST", 1, false, true, 30'000'000).failure, Failure::client_aborted);
}

TEST(CheckRequestHead, ConnectionNamingAFramingOrRoutingFieldIsRefused) {
  // Dropping a Content-Length a Connection header names would forward its body unframed.
  for (const char* named :
       {"Content-Length", "close, content-length", "Transfer-Encoding", "keep-alive, HOST"}) {
    SCOPED_TRACE(named);
    MessageHead head = head_of("/", {{"Host", "a"}, {"Connection", named}});
    Rejection r = check(head, "POST");
    EXPECT_EQ(r.failure, Failure::bad_framing);
    ASSERT_NE(r.detail, nullptr);
    EXPECT_NE(std::string_view(r.detail).find("Connection names"), std::string_view::npos);
  }
  MessageHead cl =
      head_of("/", {{"Host", "a"}, {"Connection", "Content-Length"}, {"Content-Length", "5"}});
  EXPECT_EQ(check(cl, "POST", 1, false, true, 5).failure, Failure::bad_framing);
  // Hop-by-hop tokens that frame nothing still pass.
  for (const char* named : {"close", "keep-alive, TE", "Upgrade", "X-Private"}) {
    SCOPED_TRACE(named);
    EXPECT_EQ(check(head_of("/", {{"Host", "a"}, {"Connection", named}})).failure,
              Failure::client_aborted);
  }
}

TEST(CheckRequestHead, AbsoluteFormAuthorityMayDifferFromHostByTheDefaultPort) {
  // RFC 9112 §3.2.2: the target's authority stands for Host; "h:80" is "h" for http.
  EXPECT_EQ(check(head_of("http://h:80/", {{"Host", "h"}})).failure, Failure::client_aborted);
  EXPECT_EQ(check(head_of("http://h/", {{"Host", "H:80"}})).failure, Failure::client_aborted);
  EXPECT_EQ(check(head_of("http://h:/", {{"Host", "h"}})).failure, Failure::client_aborted);
  EXPECT_EQ(check(head_of("https://h:443/", {{"Host", "h"}})).failure, Failure::client_aborted);
  EXPECT_EQ(check(head_of("https://h/", {{"Host", "h:443"}})).failure, Failure::client_aborted);
  EXPECT_EQ(check(head_of("http://h:8080/", {{"Host", "h"}})).failure, Failure::bad_host);
  EXPECT_EQ(check(head_of("http://h:443/", {{"Host", "h"}})).failure, Failure::bad_host);
  EXPECT_EQ(check(head_of("https://h:80/", {{"Host", "h"}})).failure, Failure::bad_host);
  EXPECT_EQ(check(head_of("http://[::1]:80/", {{"Host", "[::1]"}})).failure,
            Failure::client_aborted);
  EXPECT_EQ(check(head_of("http://[::1]/", {{"Host", "[::2]"}})).failure, Failure::bad_host);
}

TEST(SplitTarget, AbsoluteFormNamesPathAndAuthority) {
  TargetParts abs = split_target("http://Example.test:8080/a/b?q=1");
  EXPECT_TRUE(abs.absolute);
  EXPECT_EQ(abs.authority, "Example.test:8080");
  EXPECT_EQ(abs.path, "/a/b?q=1");
  TargetParts query_only = split_target("HTTPS://h?x");
  EXPECT_TRUE(query_only.absolute);
  EXPECT_EQ(query_only.authority, "h");
  EXPECT_EQ(query_only.path, "?x");
  TargetParts bare = split_target("http://h");
  EXPECT_EQ(bare.authority, "h");
  EXPECT_EQ(bare.path, "");
  TargetParts origin = split_target("/http://h/");
  EXPECT_FALSE(origin.absolute);
  EXPECT_EQ(origin.authority, "");
  EXPECT_EQ(origin.path, "/http://h/");
  EXPECT_FALSE(split_target("*").absolute);
  EXPECT_FALSE(split_target("http://").absolute);  // no authority at all: not absolute-form
}

}  // namespace
}  // namespace harrow

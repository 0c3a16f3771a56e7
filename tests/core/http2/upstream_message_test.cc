// The server side of HTTP/2 without I/O: the HTTP/1.1 request Harrow writes as HTTP/2 fields and
// body, and the server's HTTP/2 response as the HTTP/1.1 bytes Harrow's response parser reads.
#include "core/http2/upstream_message.h"

#include <gtest/gtest.h>
#include <llhttp.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace harrow::http2 {
namespace {

struct Collected final : RequestSink {
  std::vector<Field> fields;
  bool head = false;
  bool has_body = false;
  std::string body;
  int ends = 0;
  void request_head(std::span<const Field> f, bool b) override {
    fields.assign(f.begin(), f.end());
    head = true;
    has_body = b;
  }
  void request_body(const char* data, size_t len) override { body.append(data, len); }
  void request_end() override { ++ends; }
  std::string get(std::string_view name) const {
    for (const Field& f : fields) {
      if (f.name == name) return f.value;
    }
    return "<none>";
  }
  bool has(std::string_view name) const { return get(name) != "<none>"; }
};

TEST(UpstreamRequestTranslator, GetBecomesPseudoFieldsWithoutConnectionFields) {
  RequestTranslator t("http");
  Collected c;
  std::string req =
      "GET /a/b?c=1 HTTP/1.1\r\nHost: shop.example:8080\r\nConnection: keep-alive, X-Hop\r\n"
      "Keep-Alive: timeout=5\r\nX-Hop: 1\r\nTE: trailers\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n";
  ASSERT_TRUE(t.feed(req.data(), req.size(), c));
  ASSERT_TRUE(c.head);
  EXPECT_FALSE(c.has_body);
  EXPECT_TRUE(t.done());
  ASSERT_GE(c.fields.size(), 4u);
  EXPECT_EQ(c.fields[0].name, ":method");
  EXPECT_EQ(c.fields[0].value, "GET");
  EXPECT_EQ(c.fields[1].value, "http");
  EXPECT_EQ(c.fields[2].name, ":authority");
  EXPECT_EQ(c.fields[2].value, "shop.example:8080");
  EXPECT_EQ(c.fields[3].value, "/a/b?c=1");
  EXPECT_FALSE(c.has("host"));
  EXPECT_FALSE(c.has("connection"));
  EXPECT_FALSE(c.has("keep-alive"));
  EXPECT_FALSE(c.has("x-hop"));  // named by Connection
  EXPECT_EQ(c.get("te"), "trailers");
  EXPECT_EQ(c.get("x-forwarded-for"), "10.0.0.1");
  EXPECT_EQ(c.ends, 0);
}

TEST(UpstreamRequestTranslator, TeOtherThanTrailersIsDropped) {
  RequestTranslator t("https");
  Collected c;
  std::string req = "GET / HTTP/1.1\r\nHost: a\r\nTE: gzip\r\n\r\n";
  ASSERT_TRUE(t.feed(req.data(), req.size(), c));
  EXPECT_FALSE(c.has("te"));
  EXPECT_EQ(c.get(":scheme"), "https");
}

TEST(UpstreamRequestTranslator, ChunkedBodyIsDechunkedAndEnds) {
  RequestTranslator t("http");
  Collected c;
  std::string req =
      "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
      "Content-Type: application/grpc\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n";
  // Byte by byte: the translator keeps state across pieces.
  for (char ch : req) ASSERT_TRUE(t.feed(&ch, 1, c));
  EXPECT_TRUE(c.has_body);
  EXPECT_FALSE(c.has("transfer-encoding"));
  EXPECT_EQ(c.get("content-type"), "application/grpc");
  EXPECT_EQ(c.body, "hello world");
  EXPECT_EQ(c.ends, 1);
  EXPECT_FALSE(c.has("x-t"));  // a request trailer section is not carried
}

TEST(UpstreamRequestTranslator, ContentLengthBodyKeepsItsLength) {
  RequestTranslator t("http");
  Collected c;
  std::string req = "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
  ASSERT_TRUE(t.feed(req.data(), req.size(), c));
  EXPECT_TRUE(c.has_body);
  EXPECT_EQ(c.get("content-length"), "3");
  EXPECT_EQ(c.body, "abc");
  EXPECT_EQ(c.ends, 1);
  EXPECT_TRUE(t.done());
  std::string more = "GET / HTTP/1.1\r\n\r\n";
  EXPECT_FALSE(t.feed(more.data(), more.size(), c));  // one request per stream
}

TEST(UpstreamRequestTranslator, GarbageIsAnError) {
  RequestTranslator t("http");
  Collected c;
  std::string req = "NOT HTTP\r\n\r\n";
  EXPECT_FALSE(t.feed(req.data(), req.size(), c));
  EXPECT_NE(t.error(), nullptr);
  EXPECT_FALSE(c.head);
}

// ---- the response

// Parses HTTP/1.1 response bytes as Harrow's upstream parser does.
struct Parsed {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> fields;
  std::string body;
  bool complete = false;
  bool chunked = false;
  bool ok = true;
};

Parsed parse_response(const std::string& bytes, bool head_request = false) {
  struct State {
    Parsed p;
    bool in_value = false;
    bool head_request = false;
  } st;
  st.head_request = head_request;
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_header_field = [](llhttp_t* p, const char* at, size_t len) {
    auto* st = static_cast<State*>(p->data);
    if (st->in_value || st->p.fields.empty()) st->p.fields.emplace_back();
    st->in_value = false;
    st->p.fields.back().first.append(at, len);
    return 0;
  };
  s.on_header_value = [](llhttp_t* p, const char* at, size_t len) {
    auto* st = static_cast<State*>(p->data);
    st->in_value = true;
    st->p.fields.back().second.append(at, len);
    return 0;
  };
  s.on_headers_complete = [](llhttp_t* p) {
    auto* st = static_cast<State*>(p->data);
    st->p.status = p->status_code;
    st->p.chunked = (p->flags & F_CHUNKED) != 0;
    return st->head_request ? 1 : 0;
  };
  s.on_body = [](llhttp_t* p, const char* at, size_t len) {
    static_cast<State*>(p->data)->p.body.append(at, len);
    return 0;
  };
  s.on_message_complete = [](llhttp_t* p) {
    static_cast<State*>(p->data)->p.complete = true;
    return 0;
  };
  llhttp_t parser;
  llhttp_init(&parser, HTTP_RESPONSE, &s);
  parser.data = &st;
  st.p.ok = llhttp_execute(&parser, bytes.data(), bytes.size()) == HPE_OK;
  return st.p;
}

TEST(UpstreamResponseBytes, WithoutContentLengthTheBodyIsChunked) {
  bool chunked = false;
  std::vector<Field> fields = {{"content-type", "application/grpc"}, {"x-origin-name", "o1"}};
  std::string bytes = response_head_bytes(200, fields, false, false, chunked);
  EXPECT_TRUE(chunked);
  append_chunk(bytes, "abc", 3);
  append_chunk(bytes, "", 0);  // nothing: an empty chunk would end the body
  append_chunk(bytes, "defg", 4);
  bytes += kLastChunk;
  Parsed p = parse_response(bytes);
  ASSERT_TRUE(p.ok);
  EXPECT_TRUE(p.complete);
  EXPECT_EQ(p.status, 200);
  EXPECT_EQ(p.body, "abcdefg");
  EXPECT_EQ(p.fields[0].first, "content-type");
}

TEST(UpstreamResponseBytes, ContentLengthIsKeptAndNotChunked) {
  bool chunked = true;
  std::vector<Field> fields = {{"content-length", "5"}};
  std::string bytes = response_head_bytes(404, fields, false, false, chunked);
  EXPECT_FALSE(chunked);
  bytes += "hello";
  Parsed p = parse_response(bytes);
  EXPECT_TRUE(p.complete);
  EXPECT_EQ(p.status, 404);
  EXPECT_EQ(p.body, "hello");
}

TEST(UpstreamResponseBytes, HeadersThatEndTheStreamHaveAnEmptyBody) {
  bool chunked = true;
  std::vector<Field> fields = {{"grpc-status", "12"}};
  std::string bytes = response_head_bytes(200, fields, true, false, chunked);
  EXPECT_FALSE(chunked);
  Parsed p = parse_response(bytes);
  EXPECT_TRUE(p.complete);
  EXPECT_EQ(p.body, "");
  bytes = response_head_bytes(204, {}, true, false, chunked);
  EXPECT_EQ(bytes.find("content-length"), std::string::npos);
  bytes = response_head_bytes(200, {}, false, true, chunked);  // HEAD
  EXPECT_FALSE(chunked);
  EXPECT_EQ(bytes.find("transfer-encoding"), std::string::npos);
}

TEST(UpstreamResponseBytes, FieldsThatWouldBreakTheFramingAreDropped) {
  bool chunked = false;
  std::vector<Field> fields = {{"x-a", "1\r\nx-injected: 2"},
                               {"connection", "close"},
                               {"transfer-encoding", "gzip"},
                               {"x-b", "ok"}};
  std::string bytes = response_head_bytes(200, fields, false, false, chunked);
  EXPECT_EQ(bytes.find("injected"), std::string::npos);
  EXPECT_EQ(bytes.find("connection"), std::string::npos);
  EXPECT_EQ(bytes.find("gzip"), std::string::npos);
  EXPECT_NE(bytes.find("x-b: ok\r\n"), std::string::npos);
}

// Any body in any pieces, with or without a Content-Length: what the parser reads is the body.
RC_GTEST_PROP(UpstreamResponseBytes, BodyRoundTrips,
              (const std::vector<std::string>& pieces, bool with_length)) {
  std::string whole;
  for (const std::string& piece : pieces) whole += piece;
  std::vector<Field> fields = {{"x-origin-name", "rc"}};
  if (with_length) fields.push_back({"content-length", std::to_string(whole.size())});
  bool chunked = false;
  std::string bytes = response_head_bytes(200, fields, false, false, chunked);
  RC_ASSERT(chunked == !with_length);
  for (const std::string& piece : pieces) {
    if (chunked) {
      append_chunk(bytes, piece.data(), piece.size());
    } else {
      bytes += piece;
    }
  }
  if (chunked) bytes += kLastChunk;
  Parsed p = parse_response(bytes);
  RC_ASSERT(p.ok);
  RC_ASSERT(p.complete);
  RC_ASSERT(p.body == whole);
}

// Any request Harrow could write, in any pieces: the head's fields and the body come out whole.
RC_GTEST_PROP(UpstreamRequestTranslator, RequestRoundTrips,
              (const std::string& body, bool chunked, unsigned cut)) {
  std::string req = "POST /p?q HTTP/1.1\r\nHost: h.example\r\nX-Id: 7\r\n";
  if (chunked) {
    req += "Transfer-Encoding: chunked\r\n\r\n";
    if (!body.empty()) {
      char line[24];
      std::snprintf(line, sizeof line, "%zx\r\n", body.size());
      req += line + body + "\r\n";
    }
    req += "0\r\n\r\n";
  } else {
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  RequestTranslator t("http");
  Collected c;
  size_t at = req.empty() ? 0 : cut % req.size();
  RC_ASSERT(t.feed(req.data(), at, c));
  RC_ASSERT(t.feed(req.data() + at, req.size() - at, c));
  RC_ASSERT(t.done());
  RC_ASSERT(c.body == body);
  RC_ASSERT(c.get(":authority") == "h.example");
  RC_ASSERT(c.get(":path") == "/p?q");
  RC_ASSERT(c.get("x-id") == "7");
  RC_ASSERT(c.has_body == (chunked || !body.empty()));
  RC_ASSERT(c.ends == (c.has_body ? 1 : 0));
}

}  // namespace
}  // namespace harrow::http2

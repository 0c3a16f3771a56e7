#include "core/daemon/etcd_protocol.h"

#include <gtest/gtest.h>

#include "core/daemon/json_value.h"

namespace harrow::etcd {
namespace {

// Replies as etcd 3.4.23's gateway wrote them (curl against a local etcd).
constexpr const char* kHeader =
    R"("header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"2","raft_term":"2"})";

TEST(EtcdBase64, RoundTripsAndRefusesWhatIsNotBase64) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("a"), "YQ==");
  EXPECT_EQ(base64_encode("ab"), "YWI=");
  std::string out;
  ASSERT_TRUE(base64_decode("YWI=", out));
  EXPECT_EQ(out, "ab");
  ASSERT_TRUE(base64_decode("YQ==", out));
  EXPECT_EQ(out, "a");
  for (const char* bad : {"Y", "YQ=", "Y===", "YQ==YQ==", "Z m9", "Zm9*", "=Zm9"}) {
    EXPECT_FALSE(base64_decode(bad, out)) << bad;
  }
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t n = 0; n < all.size(); n += 7) {
    ASSERT_TRUE(base64_decode(base64_encode(all.substr(0, n)), out));
    EXPECT_EQ(out, all.substr(0, n));
  }
}

TEST(EtcdBodies, PrefixEndAndTheElectionTxn) {
  EXPECT_EQ(prefix_end("/harrow/edge/"), "/harrow/edge0");
  EXPECT_EQ(prefix_end(std::string("a\xff", 2)), "b");
  EXPECT_EQ(prefix_end(""), std::string(1, '\0'));
  JsonValue txn;
  std::string error;
  ASSERT_TRUE(parse_json(create_txn_body("k", "a", 42), txn, error)) << error;
  const JsonValue& compare = txn.get("compare")->items.at(0);
  EXPECT_EQ(compare.str("target"), "CREATE");
  EXPECT_EQ(compare.str("create_revision"), "0");
  EXPECT_EQ(compare.str("key"), "aw==");
  const JsonValue* put = txn.get("success")->items.at(0).get("request_put");
  ASSERT_NE(put, nullptr);
  EXPECT_EQ(put->str("lease"), "42");
  EXPECT_EQ(put->str("value"), "YQ==");
  EXPECT_NE(txn.get("failure")->items.at(0).get("request_range"), nullptr);
  EXPECT_EQ(put_body("k", "v", 0), R"({"key":"aw==","value":"dg=="})");
  EXPECT_EQ(lease_id_body(7), R"({"ID":"7"})");
  EXPECT_EQ(watch_create_body("a", "b", 5),
            R"({"create_request":{"key":"YQ==","range_end":"Yg==","start_revision":"5"}})");
}

TEST(EtcdReplies, TxnCreatedOrHeldByAnother) {
  bool created = false;
  KeyValue current;
  std::string error;
  ASSERT_TRUE(parse_create_txn_reply(
      std::string("{") + kHeader +
          R"(,"succeeded":true,"responses":[{"response_put":{"header":{"revision":"2"}}}]})",
      created, current, error))
      << error;
  EXPECT_TRUE(created);
  ASSERT_TRUE(parse_create_txn_reply(
      std::string("{") + kHeader +
          R"(,"responses":[{"response_range":{"header":{"revision":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YQ==","lease":"2324035884203662599"}],"count":"1"}}]})",
      created, current, error))
      << error;
  EXPECT_FALSE(created);
  EXPECT_EQ(current.key, "foo");
  EXPECT_EQ(current.value, "a");
  EXPECT_EQ(current.lease, 2324035884203662599);
  EXPECT_EQ(current.create_revision, 2);
}

TEST(EtcdReplies, LeaseGrantAndKeepalive) {
  int64_t lease = 0, ttl = 0;
  std::string error;
  ASSERT_TRUE(parse_lease_grant_reply(
      std::string("{") + kHeader + R"(,"ID":"2324035884203662597","TTL":"5"})", lease, ttl, error));
  EXPECT_EQ(lease, 2324035884203662597);
  EXPECT_EQ(ttl, 5);
  ASSERT_TRUE(parse_keepalive_reply(
      std::string(R"({"result":{)") + kHeader + R"(,"ID":"2324035884203662599","TTL":"2"}})", ttl,
      error));
  EXPECT_EQ(ttl, 2);
  // An expired lease: TTL left out (proto3's zero).
  ASSERT_TRUE(parse_keepalive_reply(
      std::string(R"({"result":{)") + kHeader + R"(,"ID":"2324035884203662599"}})", ttl, error));
  EXPECT_EQ(ttl, 0);
}

TEST(EtcdReplies, GatewayErrorsAndWrongShapesAreFailures) {
  int64_t revision = 0;
  std::vector<KeyValue> kvs;
  std::string error;
  EXPECT_FALSE(parse_range_reply(
      R"({"error":"etcdserver: no leader","code":14,"message":"etcdserver: no leader"})", revision,
      kvs, error));
  EXPECT_NE(error.find("no leader"), std::string::npos);
  WatchMessage m;
  EXPECT_FALSE(
      parse_watch_message(R"({"error":{"grpc_code":1,"message":"context canceled"}})", m, error));
  EXPECT_NE(error.find("context canceled"), std::string::npos);
  for (const char* bad : {"", "[]", R"({"header":{"revision":"x"}})", R"({"header":{},"kvs":{}})",
                          R"({"header":{},"kvs":[{"key":"not base64!"}]})"}) {
    error.clear();
    EXPECT_FALSE(parse_range_reply(bad, revision, kvs, error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
  int64_t lease = 0, ttl = 0;
  EXPECT_FALSE(parse_lease_grant_reply(std::string("{") + kHeader + "}", lease, ttl, error));
}

TEST(EtcdReplies, WatchMessages) {
  WatchMessage m;
  std::string error;
  ASSERT_TRUE(parse_watch_message(std::string(R"({"result":{)") + kHeader + R"(,"created":true}})",
                                  m, error));
  EXPECT_TRUE(m.created);
  EXPECT_TRUE(m.events.empty());
  ASSERT_TRUE(parse_watch_message(
      std::string(R"({"result":{)") + kHeader +
          R"(,"events":[{"kv":{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YQ==","lease":"9"}},{"type":"DELETE","kv":{"key":"Zm9v","mod_revision":"3"}}]}})",
      m, error))
      << error;
  ASSERT_EQ(m.events.size(), 2u);
  EXPECT_FALSE(m.events[0].deleted);
  EXPECT_EQ(m.events[0].kv.value, "a");
  EXPECT_EQ(m.events[0].kv.lease, 9);
  EXPECT_TRUE(m.events[1].deleted);
  EXPECT_EQ(m.events[1].kv.mod_revision, 3);
  ASSERT_TRUE(parse_watch_message(
      std::string(R"({"result":{)") + kHeader +
          R"(,"canceled":true,"compact_revision":"7","cancel_reason":"compacted"}})",
      m, error));
  EXPECT_TRUE(m.canceled);
  EXPECT_EQ(m.compact_revision, 7);
  EXPECT_FALSE(parse_watch_message(
      std::string(R"({"result":{)") + kHeader + R"(,"events":[{"type":"PATCH","kv":{}}]}})", m,
      error));
}

TEST(JsonObjectSplitter, FindsObjectsAcrossAnyChunkingWithBracesInStrings) {
  std::string stream = "{\"a\":\"}{\\\"\"}\n{\"b\":[{\"c\":1}]}\r\n  {}\n";
  for (size_t step = 1; step <= stream.size(); ++step) {
    JsonObjectSplitter s;
    std::vector<std::string> got;
    for (size_t i = 0; i < stream.size(); i += step) {
      s.feed(std::string_view(stream).substr(i, step));
      std::string o;
      while (s.next(o)) got.push_back(o);
    }
    ASSERT_FALSE(s.failed()) << step;
    ASSERT_EQ(got.size(), 3u) << step;
    EXPECT_EQ(got[0], "{\"a\":\"}{\\\"\"}");
    EXPECT_EQ(got[1], "{\"b\":[{\"c\":1}]}");
    EXPECT_EQ(got[2], "{}");
  }
  JsonObjectSplitter bad;
  bad.feed("x{}");
  std::string o;
  EXPECT_FALSE(bad.next(o));
  EXPECT_TRUE(bad.failed());
  JsonObjectSplitter mismatched;
  mismatched.feed("{\"a\":[}]}");
  EXPECT_FALSE(mismatched.next(o));
  EXPECT_TRUE(mismatched.failed());
  JsonObjectSplitter small(16);
  small.feed("{\"a\":\"0123456789abcdef\"}");
  EXPECT_FALSE(small.next(o));
  EXPECT_TRUE(small.failed());
}

TEST(HttpReplyReader, ChunkedStreamAndLengthAndEndOfStream) {
  HttpReplyReader r;
  ASSERT_TRUE(r.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":"));
  EXPECT_TRUE(r.head_done());
  EXPECT_EQ(r.status(), 200);
  EXPECT_FALSE(r.complete());
  ASSERT_TRUE(r.feed("\r\n2\r\n1}\r\n0\r\n\r\n"));
  EXPECT_TRUE(r.complete());
  EXPECT_EQ(r.body(), "{\"a\":1}");

  HttpReplyReader len;
  ASSERT_TRUE(len.feed("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}"));
  EXPECT_TRUE(len.complete());
  EXPECT_EQ(len.status(), 503);

  HttpReplyReader eof;
  ASSERT_TRUE(eof.feed("HTTP/1.1 200 OK\r\n\r\n{}"));
  EXPECT_FALSE(eof.complete());
  EXPECT_TRUE(eof.finish());
  EXPECT_EQ(eof.body(), "{}");

  HttpReplyReader cut;
  ASSERT_TRUE(cut.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}"));
  EXPECT_FALSE(cut.finish());

  HttpReplyReader garbage;
  EXPECT_FALSE(garbage.feed("SMTP ready\r\n"));
  EXPECT_FALSE(garbage.error().empty());

  HttpReplyReader big(4);
  EXPECT_FALSE(big.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"));
  EXPECT_EQ(big.error(), "response too large");
}

}  // namespace
}  // namespace harrow::etcd

#include "core/http1/http_head.h"

#include <gtest/gtest.h>

#include <string>

namespace harrow {
namespace {

// Feeds a head the way llhttp does when a read splits names and values.
MessageHead collect(std::initializer_list<std::pair<std::string, std::string>> fields) {
  MessageHead head;
  head.reset(65536);
  head.on_target("/", 1);
  for (const auto& [name, value] : fields) {
    head.on_field(name.data(), name.size() / 2);
    head.on_field(name.data() + name.size() / 2, name.size() - name.size() / 2);
    head.on_value(value.data(), value.size() / 2);
    head.on_value(value.data() + value.size() / 2, value.size() - value.size() / 2);
  }
  head.finish();
  return head;
}

TEST(MessageHead, JoinsSplitPiecesAndFindsCaseInsensitively) {
  MessageHead head = collect({{"Host", "example.com"}, {"X-Long-Header-Name", "value  "}});
  ASSERT_EQ(head.fields().size(), 2u);
  EXPECT_EQ(head.find("host"), "example.com");
  EXPECT_EQ(head.find("X-LONG-HEADER-NAME"), "value");  // trailing whitespace trimmed
  EXPECT_FALSE(head.has("missing"));
}

TEST(MessageHead, EnforcesItsLimit) {
  MessageHead head;
  head.reset(10);
  EXPECT_TRUE(head.on_target("/12345", 6));
  EXPECT_FALSE(head.on_field("Host-Name", 9));
}

TEST(MessageHead, HopByHopIncludesConnectionTokens) {
  MessageHead head = collect({{"Connection", "keep-alive, X-Private"}, {"X-Private", "1"}});
  EXPECT_TRUE(head.is_hop_by_hop("x-private"));
  EXPECT_TRUE(head.is_hop_by_hop("Keep-Alive"));
  EXPECT_TRUE(head.is_hop_by_hop("Proxy-Authorization"));
  EXPECT_FALSE(head.is_hop_by_hop("Content-Type"));
  EXPECT_TRUE(head.connection_has("KEEP-ALIVE"));
}

TEST(MessageHead, ClassifiesFieldsOnceWhateverTheirCase) {
  MessageHead head = collect({{"HOST", "a"},
                              {"content-LENGTH", "5"},
                              {"X-Content-Length", "6"},
                              {"Proxy-Authorization", "x"},
                              {"Connection", "X-Private"},
                              {"x-private", "1"},
                              {"Content-Lengtg", "7"}});
  ASSERT_EQ(head.fields().size(), 7u);
  EXPECT_EQ(head.kind(0), FieldKind::host);
  EXPECT_EQ(head.kind(1), FieldKind::content_length);
  EXPECT_EQ(head.kind(2), FieldKind::other);
  EXPECT_EQ(head.kind(3), FieldKind::proxy_authorization);
  EXPECT_EQ(head.kind(4), FieldKind::connection);
  EXPECT_EQ(head.kind(6), FieldKind::other);  // one letter off, same length
  EXPECT_FALSE(head.hop_by_hop(0));
  EXPECT_FALSE(head.hop_by_hop(1));
  EXPECT_TRUE(head.hop_by_hop(3));
  EXPECT_TRUE(head.hop_by_hop(4));
  EXPECT_TRUE(head.hop_by_hop(5));  // named by Connection
  EXPECT_TRUE(head.has(FieldKind::content_length));
  EXPECT_FALSE(head.has(FieldKind::transfer_encoding));
  EXPECT_TRUE(head.has("Content-Length"));
  EXPECT_FALSE(head.has("transfer-encoding"));
  EXPECT_EQ(head.find("CONTENT-length"), "5");
  EXPECT_EQ(head.find("content-lengtg"), "7");
}

TEST(MessageHead, NoConnectionHeaderMeansOnlyTheFixedHopByHopSet) {
  MessageHead head = collect({{"Keep-Alive", "5"}, {"X-Private", "1"}});
  EXPECT_TRUE(head.hop_by_hop(0));
  EXPECT_FALSE(head.hop_by_hop(1));
  EXPECT_FALSE(head.connection_has("keep-alive"));
  EXPECT_FALSE(head.is_hop_by_hop("X-Private"));
}

TEST(MessageHead, TrailerFieldsAfterFinishLeaveTheHeadAlone) {
  MessageHead head;
  head.reset(64);
  head.on_target("/", 1);
  head.on_field("Host", 4);
  head.on_value("a", 1);
  head.finish();
  std::string_view host = head.find("host");
  // A trailer section parsed later must neither change the head nor move its bytes.
  std::string big(60, 'x');
  EXPECT_TRUE(head.on_field(big.data(), big.size()));
  EXPECT_TRUE(head.on_value(big.data(), big.size()));
  EXPECT_EQ(head.fields().size(), 1u);
  EXPECT_EQ(head.find("host").data(), host.data());
  EXPECT_EQ(head.find("host"), "a");
}

TEST(MessageHead, KeepsItsBytesWhenTheArenaGrowsAndWhenMoved) {
  MessageHead head;
  head.reset(1 << 20);
  head.on_target("/", 1);
  std::string value(5000, 'v');  // past the first arena size: the bytes move while collecting
  for (int i = 0; i < 3; ++i) {
    std::string name = "X-Field-" + std::to_string(i);
    head.on_field(name.data(), name.size());
    head.on_value(value.data(), value.size());
  }
  head.finish();
  MessageHead moved = std::move(head);
  ASSERT_EQ(moved.fields().size(), 3u);
  EXPECT_EQ(moved.find("x-field-2"), value);
  EXPECT_EQ(moved.target(), "/");
}

std::string upstream_text(const MessageHead& head, bool chunked, std::string_view xff) {
  char buf[4096];
  HeadWriter w(buf, sizeof buf);
  UpstreamRequest req;
  req.method = "POST";
  req.target = "/app/x?y=1";
  req.head = &head;
  req.host = "shop.example";
  req.chunked_body = chunked;
  req.forwarded_for_name = xff;
  req.forwarded_for_value = "10.0.0.9:5555";
  write_upstream_request(req, w);
  EXPECT_FALSE(w.overflowed());
  return std::string(buf, w.size());
}

TEST(UpstreamRequest, FiltersHopByHopAndAddsForwardedFor) {
  MessageHead head = collect({{"Host", "ignored"},
                              {"Connection", "close, X-Private"},
                              {"X-Private", "secret"},
                              {"Keep-Alive", "5"},
                              {"TE", "trailers"},
                              {"Upgrade", "websocket"},
                              {"Content-Length", "5"},
                              {"X-Forwarded-For", "1.2.3.4"},
                              {"Accept", "*/*"}});
  EXPECT_EQ(upstream_text(head, false, "X-Forwarded-For"),
            "POST /app/x?y=1 HTTP/1.1\r\n"
            "Host: shop.example\r\n"
            "Content-Length: 5\r\n"
            "Accept: */*\r\n"
            "X-Forwarded-For: 1.2.3.4, 10.0.0.9:5555\r\n"
            "\r\n");
}

TEST(UpstreamRequest, ChunkedBodyReplacesFramingAndEmptyNameDisablesForwardedFor) {
  MessageHead head = collect({{"Transfer-Encoding", "chunked"}, {"X-Forwarded-For", "1.2.3.4"}});
  EXPECT_EQ(upstream_text(head, true, ""),
            "POST /app/x?y=1 HTTP/1.1\r\n"
            "Host: shop.example\r\n"
            "X-Forwarded-For: 1.2.3.4\r\n"
            "Transfer-Encoding: chunked\r\n"
            "\r\n");
}

TEST(ClientResponse, ReframesAndMarksClose) {
  MessageHead head = collect({{"Content-Type", "text/plain"},
                              {"Transfer-Encoding", "chunked"},
                              {"Connection", "keep-alive"},
                              {"Content-Length", "9"}});
  char buf[1024];
  HeadWriter w(buf, sizeof buf);
  ClientResponse resp;
  resp.status = 404;
  resp.head = &head;
  resp.chunked = true;
  resp.keep_content_length = false;
  resp.close = true;
  write_client_response(resp, w);
  EXPECT_EQ(std::string(buf, w.size()),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
}

TEST(MessageHead, ConnectionNeverMakesFramingOrRoutingFieldsHopByHop) {
  MessageHead head = collect({{"Connection", "Content-Length, Host, X-Private, Transfer-Encoding"},
                              {"Host", "a"},
                              {"Content-Length", "5"},
                              {"X-Private", "1"}});
  EXPECT_FALSE(head.hop_by_hop(1));
  EXPECT_FALSE(head.hop_by_hop(2));
  EXPECT_TRUE(head.hop_by_hop(3));
  EXPECT_EQ(head.connection_names_framing(), "content-length");
  EXPECT_EQ(collect({{"Connection", "close, host"}}).connection_names_framing(), "host");
  EXPECT_EQ(collect({{"Connection", "transfer-encoding"}}).connection_names_framing(),
            "transfer-encoding");
  EXPECT_EQ(collect({{"Connection", "close, TE, Upgrade"}}).connection_names_framing(), "");
  EXPECT_EQ(collect({{"Content-Length", "1"}}).connection_names_framing(), "");
}

TEST(MessageHead, UnderscoreTwinsOfFieldsHarrowActsOn) {
  MessageHead head = collect({{"Content_Length", "5"},
                              {"TRANSFER_ENCODING", "chunked"},
                              {"Proxy_Connection", "x"},
                              {"X_Custom", "1"},
                              {"Content-Length", "5"},
                              {"Host_", "h"},
                              {"T_E", "x"}});
  EXPECT_TRUE(head.underscore_twin(0));
  EXPECT_TRUE(head.underscore_twin(1));
  EXPECT_TRUE(head.underscore_twin(2));
  EXPECT_FALSE(head.underscore_twin(3));
  EXPECT_FALSE(head.underscore_twin(4));
  EXPECT_FALSE(head.underscore_twin(5));
  EXPECT_FALSE(head.underscore_twin(6));
  EXPECT_EQ(head.kind(0), FieldKind::other);  // still not framing: nothing reads it as such
  EXPECT_TRUE(same_name_folding_underscore("X_Forwarded_For", "x-forwarded-for"));
  EXPECT_TRUE(same_name_folding_underscore("X-ARR-SSL", "x_arr_ssl"));
  EXPECT_FALSE(same_name_folding_underscore("X-ARR-SSL", "X-ARR-SSLx"));
}

TEST(UpstreamRequest, UnderscoreTwinsAndStrippedNamesNeverReachTheOrigin) {
  MessageHead head = collect({{"Content_Length", "50"},
                              {"Transfer_Encoding", "chunked"},
                              {"X_Forwarded_For", "6.6.6.6"},
                              {"X-Forwarded-For", "1.1.1.1"},
                              {"X_ARR_SSL", "forged"},
                              {"x-arr-ssl", "forged"},
                              {"X_ARR_LOG_ID", "forged"},
                              {"X_Original_URL", "/admin"},
                              {"Max_Forwards", "99"},
                              {"X_Rule", "forged"},
                              {"x-forwarded-for", "2.2.2.2, 3.3.3.3"},
                              {"X-Forwarded-For", ""},
                              {"X_Custom", "kept"}});
  char buf[4096];
  HeadWriter w(buf, sizeof buf);
  HeaderField harrow[] = {{"Max-Forwards", "10"}, {"X-Original-URL", "/x"}, {"X-ARR-LOG-ID", "id"}};
  HeaderField rules[] = {{"X-Rule", "r"}};
  std::string_view strip[] = {"X-ARR-SSL"};
  UpstreamRequest req;
  req.method = "GET";
  req.target = "/x";
  req.head = &head;
  req.host = "h";
  req.forwarded_for_name = "X-Forwarded-For";
  req.forwarded_for_value = "10.0.0.9";
  req.harrow_headers = harrow;
  req.rule_headers = rules;
  req.strip = strip;
  write_upstream_request(req, w);
  EXPECT_EQ(std::string(buf, w.size()),
            "GET /x HTTP/1.1\r\nHost: h\r\n"
            "X_Custom: kept\r\n"
            "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.9\r\n"
            "Max-Forwards: 10\r\nX-Original-URL: /x\r\nX-ARR-LOG-ID: id\r\n"
            "X-Rule: r\r\n\r\n");
}

TEST(ClientResponse, ContentLengthNamedByConnectionKeepsFramingTheResponse) {
  MessageHead head = collect({{"Connection", "Content-Length"}, {"Content-Length", "2"}});
  char buf[1024];
  HeadWriter w(buf, sizeof buf);
  ClientResponse resp;
  resp.head = &head;
  write_client_response(resp, w);
  EXPECT_EQ(std::string(buf, w.size()), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
}

TEST(ClientResponse, TransferCodingsGoOutAsTheyCame) {
  MessageHead head = collect({{"Transfer-Encoding", "gzip"}, {"Transfer-Encoding", "chunked"}});
  EXPECT_TRUE(has_transfer_codings(head));
  EXPECT_FALSE(has_transfer_codings(collect({{"Transfer-Encoding", "Chunked"}})));
  EXPECT_FALSE(has_transfer_codings(collect({{"Content-Length", "1"}})));
  EXPECT_TRUE(has_transfer_codings(collect({{"Transfer-Encoding", "chunked, gzip"}})));
  char buf[1024];
  HeadWriter w(buf, sizeof buf);
  ClientResponse resp;
  resp.head = &head;
  resp.chunked = true;
  resp.forward_transfer_encoding = true;
  resp.keep_content_length = false;
  write_client_response(resp, w);
  EXPECT_EQ(std::string(buf, w.size()),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n");
}

TEST(UpstreamRequest, WebSocketUpgradeIsForwardedOnItsOwnTerms) {
  // The client's Connection and Upgrade are hop-by-hop like any others; Harrow writes its
  // own, and an upgrade never carries Connection: close.
  MessageHead head = collect({{"Connection", "keep-alive, Upgrade"},
                              {"Upgrade", "WebSocket"},
                              {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                              {"Sec-WebSocket-Version", "13"}});
  char buf[1024];
  HeadWriter w(buf, sizeof buf);
  UpstreamRequest req;
  req.method = "GET";
  req.target = "/chat";
  req.head = &head;
  req.host = "b";
  req.keep_alive = false;
  req.upgrade = "websocket";
  write_upstream_request(req, w);
  EXPECT_EQ(std::string(buf, w.size()),
            "GET /chat HTTP/1.1\r\nHost: b\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
}

TEST(ClientResponse, SwitchingProtocolsKeepsTheUpgradeInsteadOfClose) {
  MessageHead head = collect({{"Upgrade", "websocket"},
                              {"Connection", "Upgrade"},
                              {"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}});
  char buf[1024];
  HeadWriter w(buf, sizeof buf);
  ClientResponse resp;
  resp.status = 101;
  resp.head = &head;
  resp.keep_content_length = false;
  resp.close = true;
  resp.upgrade = head.find("upgrade");
  write_client_response(resp, w);
  EXPECT_EQ(std::string(buf, w.size()),
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
}

TEST(RequestsWebSocket, NeedsBothConnectionUpgradeAndTheWebSocketToken) {
  EXPECT_TRUE(requests_websocket(collect({{"Connection", "Upgrade"}, {"Upgrade", "websocket"}})));
  EXPECT_TRUE(requests_websocket(
      collect({{"Connection", "keep-alive ,\tUPGRADE"}, {"Upgrade", "h2c, WebSocket "}})));
  EXPECT_FALSE(requests_websocket(collect({{"Upgrade", "websocket"}})));
  EXPECT_FALSE(requests_websocket(collect({{"Connection", "Upgrade"}, {"Upgrade", "h2c"}})));
  EXPECT_FALSE(requests_websocket(collect({{"Connection", "Upgrade"}, {"Upgrade", "websocketx"}})));
  EXPECT_FALSE(requests_websocket(collect({{"Connection", "Upgrade"}})));
  EXPECT_FALSE(
      requests_websocket(collect({{"Connection", "Upgrade-Insecure"}, {"Upgrade", "websocket"}})));
}

TEST(HeadWriter, ReportsOverflowInsteadOfWritingPastTheEnd) {
  char buf[8];
  HeadWriter w(buf, sizeof buf);
  w << "12345"
    << "6789";
  EXPECT_TRUE(w.overflowed());
  EXPECT_EQ(w.size(), 5u);
  HeadWriter n(buf, sizeof buf);
  n << uint64_t{0} << uint64_t{18446744073709551615u};
  EXPECT_TRUE(n.overflowed());
  HeadWriter m(buf, sizeof buf);
  m << uint64_t{1234567};
  EXPECT_EQ(std::string(buf, m.size()), "1234567");
}

TEST(ReverseRewrite, RewritesOnlyTheBackendsOwnAuthority) {
  std::string_view backend[] = {"10.0.0.5:8080", "internal.example"};
  std::string out;
  ASSERT_TRUE(reverse_rewrite_location("http://10.0.0.5:8080/login?x=1", backend, "http",
                                       "shop.example.com", out));
  EXPECT_EQ(out, "http://shop.example.com/login?x=1");
  ASSERT_TRUE(reverse_rewrite_location("HTTPS://INTERNAL.example", backend, "http",
                                       "shop.example.com", out));
  EXPECT_EQ(out, "http://shop.example.com");
  EXPECT_FALSE(reverse_rewrite_location("https://elsewhere.example/x", backend, "http",
                                        "shop.example.com", out));
  EXPECT_FALSE(reverse_rewrite_location("/relative", backend, "http", "shop.example.com", out));
  EXPECT_FALSE(reverse_rewrite_location("http://10.0.0.5:8080.evil/", backend, "http",
                                        "shop.example.com", out));
}

}  // namespace
}  // namespace harrow

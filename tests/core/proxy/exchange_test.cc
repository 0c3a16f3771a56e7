#include "core/proxy/exchange.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <memory>

#include "core/base/peer_address.h"
#include "core/proxy/snapshot.h"
#include "core/proxy/worker.h"

namespace harrow {
namespace {

TEST(ExchangePool, KeepsAtMostItsBoundFree) {
  ExchangePool pool(2);
  Exchange* a = pool.take();
  Exchange* b = pool.take();
  Exchange* c = pool.take();
  EXPECT_EQ(pool.in_use(), 3u);
  EXPECT_EQ(pool.free_count(), 0u);
  pool.give_back(a);
  pool.give_back(b);
  pool.give_back(c);  // one more than the bound: freed
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_EQ(pool.free_count(), 2u);
  Exchange* again = pool.take();
  EXPECT_TRUE(again == a || again == b);
  EXPECT_EQ(pool.free_count(), 1u);
  pool.give_back(again);
}

TEST(ExchangePool, GivenBackExchangeIsClearedButKeepsItsCapacity) {
  ExchangePool pool(4);
  Exchange* ex = pool.take();
  ex->target.assign(500, 'x');
  ex->html_out.assign(300, 'y');
  ex->rule_header_text.emplace_back("X-A", "1");
  ex->outbound_add.push_back({"X-B", "2"});
  ex->head.reset(1024);
  ASSERT_TRUE(ex->head.on_target("/a", 2));
  ex->head.finish();
  ex->epoch = std::make_shared<WorkerEpoch>();
  ex->epoch->snapshot = std::make_shared<const Snapshot>();
  ex->snap = ex->epoch->snapshot.get();
  std::weak_ptr<const Snapshot> snapshot = ex->epoch->snapshot;
  ex->farm = 3;
  ex->status = 502;
  ex->request_begun = true;
  ex->log_id[0] = 'g';
  ex->peer_ip[0] = '1';
  ex->tried_count = 2;
  ex->request_done = true;
  size_t target_capacity = ex->target.capacity();
  size_t html_capacity = ex->html_out.capacity();

  pool.give_back(ex);
  EXPECT_TRUE(snapshot.expired()) << "a pooled exchange must not pin a configuration";
  Exchange* same = pool.take();
  ASSERT_EQ(same, ex);
  EXPECT_TRUE(same->target.empty());
  EXPECT_EQ(same->target.capacity(), target_capacity);
  EXPECT_TRUE(same->html_out.empty());
  EXPECT_EQ(same->html_out.capacity(), html_capacity);
  EXPECT_TRUE(same->rule_header_text.empty());
  EXPECT_TRUE(same->outbound_add.empty());
  EXPECT_TRUE(same->head.target().empty()) << "nothing of another request may show";
  EXPECT_EQ(same->snap, nullptr);
  EXPECT_EQ(same->epoch, nullptr);
  EXPECT_EQ(same->farm, -1);
  EXPECT_EQ(same->status, 0);
  EXPECT_FALSE(same->request_begun);
  EXPECT_EQ(same->log_id[0], '\0');
  EXPECT_EQ(same->peer_ip[0], '\0');
  EXPECT_EQ(same->tried_count, 0);
  EXPECT_FALSE(same->request_done);
  EXPECT_EQ(same->connect_ms, -1);
  pool.give_back(same);
}

TEST(PeerAddress, FormatsIpv4AndIpv6LikeTheLogsAlwaysDid) {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(5000);
  ASSERT_EQ(inet_pton(AF_INET, "127.0.0.9", &v4.sin_addr), 1);
  PeerAddress a = PeerAddress::from(reinterpret_cast<const sockaddr*>(&v4));
  char ip[PeerAddress::kIpText];
  char ip_port[PeerAddress::kIpPortText];
  EXPECT_STREQ(a.format_ip(ip, sizeof ip), "127.0.0.9");
  EXPECT_STREQ(a.format_ip_port(ip_port, sizeof ip_port), "127.0.0.9:5000");
  EXPECT_EQ(a.port, 5000);

  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(65535);
  ASSERT_EQ(inet_pton(AF_INET6, "2001:db8::1", &v6.sin6_addr), 1);
  PeerAddress b = PeerAddress::from(reinterpret_cast<const sockaddr*>(&v6));
  EXPECT_STREQ(b.format_ip(ip, sizeof ip), "2001:db8::1");
  ASSERT_EQ(inet_pton(AF_INET6, "::1", &v6.sin6_addr), 1);
  PeerAddress c = PeerAddress::from(reinterpret_cast<const sockaddr*>(&v6));
  EXPECT_STREQ(c.format_ip(ip, sizeof ip), "::1");
  EXPECT_STREQ(c.format_ip_port(ip_port, sizeof ip_port), "[::1]:65535");

  ASSERT_EQ(inet_pton(AF_INET, "255.255.255.255", &v4.sin_addr), 1);
  v4.sin_port = htons(65535);
  PeerAddress widest = PeerAddress::from(reinterpret_cast<const sockaddr*>(&v4));
  EXPECT_STREQ(widest.format_ip_port(ip_port, sizeof ip_port), "255.255.255.255:65535");
  v4.sin_port = 0;
  ASSERT_EQ(inet_pton(AF_INET, "10.0.0.0", &v4.sin_addr), 1);
  PeerAddress zeros = PeerAddress::from(reinterpret_cast<const sockaddr*>(&v4));
  EXPECT_STREQ(zeros.format_ip_port(ip_port, sizeof ip_port), "10.0.0.0:0");

  PeerAddress unknown;
  EXPECT_STREQ(unknown.format_ip(ip, sizeof ip), "");
  EXPECT_STREQ(unknown.format_ip_port(ip_port, sizeof ip_port), "");
}

}  // namespace
}  // namespace harrow

// What a RequestHash farm hashes: the URL, a server variable, or named query parameters.
#include <gtest/gtest.h>

#include <string>

#include "balancer/balancer.h"
#include "core/proxy/farm_hash_key.h"

namespace harrow {
namespace {

uint64_t hash_of(const std::string& variable, const std::string& names, const RequestFacts& facts,
                 std::span<const HeaderField> rule_headers = {}) {
  config::LoadBalancingConfig lb;
  lb.algorithm = balancer::Algorithm::RequestHash;
  lb.hash_server_variable = variable;
  lb.query_string_names = names;
  std::string buffer;
  return FarmHashKey(lb).hash(facts, rule_headers, buffer);
}

RequestFacts facts_for(std::string_view target) {
  RequestFacts f;
  f.method = "GET";
  f.target = target;
  f.host = "shop.example";
  f.remote_addr = "10.1.2.3";
  return f;
}

TEST(FarmHashKey, DefaultHashesPathAndQuery) {
  EXPECT_EQ(hash_of("", "", facts_for("/a?x=1")), balancer::hash_key("/a?x=1"));
  EXPECT_NE(hash_of("", "", facts_for("/a?x=1")), hash_of("", "", facts_for("/a?x=2")));
}

TEST(FarmHashKey, ServerVariables) {
  EXPECT_EQ(hash_of("REMOTE_ADDR", "", facts_for("/")), balancer::hash_key("10.1.2.3"));
  EXPECT_EQ(hash_of("http_host", "", facts_for("/")), balancer::hash_key("shop.example"));
  EXPECT_EQ(hash_of("URL", "", facts_for("/p?q")), balancer::hash_key("/p"));
  EXPECT_EQ(hash_of("QUERY_STRING", "", facts_for("/p?q=1")), balancer::hash_key("q=1"));
}

TEST(FarmHashKey, HeadersSetByRulesWin) {
  HeaderField set[] = {{"X-User", "from-rule"}};
  EXPECT_EQ(hash_of("HTTP_X_USER", "", facts_for("/"), set), balancer::hash_key("from-rule"));
  EXPECT_EQ(hash_of("HTTP_X_USER", "", facts_for("/")), balancer::hash_key(""));
}

TEST(FarmHashKey, QueryNamesTakeOnlyTheirValuesInOrder) {
  uint64_t h =
      hash_of("QUERY_STRING", "tenant, region", facts_for("/p?page=3&region=eu&tenant=t1"));
  EXPECT_EQ(h, balancer::hash_key("t1&eu&"));
  EXPECT_EQ(h, hash_of("QUERY_STRING", "tenant,region", facts_for("/q?TENANT=t1&x=9&region=eu")));
  EXPECT_NE(h, hash_of("QUERY_STRING", "tenant,region", facts_for("/p?tenant=t1eu")));
}

TEST(FarmHashKey, KnowsBuiltinsAndHeaders) {
  EXPECT_TRUE(FarmHashKey::knows_variable("REMOTE_ADDR"));
  EXPECT_TRUE(FarmHashKey::knows_variable("HTTP_X_ANYTHING"));
  EXPECT_FALSE(FarmHashKey::knows_variable("AUTH_USER"));
  EXPECT_FALSE(FarmHashKey::knows_variable("HTTP_"));
}

}  // namespace
}  // namespace harrow

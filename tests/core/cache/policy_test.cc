// RFC 9111 rules as Harrow applies them: what is stored, for how long, and what is reused.
#include "core/cache/policy.h"

#include <gtest/gtest.h>

#include <vector>

#include "core/cache/cache_key.h"

namespace harrow::cache {
namespace {

using Fields = std::vector<HeaderField>;

constexpr int64_t kNow = 1'700'000'000;
constexpr int64_t kDay = 86'400;

StoreVerdict verdict(const Fields& request, int status, const Fields& response,
                     int64_t validation_interval = kDay,
                     std::optional<CacheControlOverride> override_cc = std::nullopt,
                     std::string_view method = "GET") {
  RequestDirectives req = read_request(method, request);
  ResponseFacts facts = read_response(response);
  return decide_store(req, status, facts, validation_interval, override_cc);
}

TEST(CacheControl, ParsesDirectivesAcrossFields) {
  CacheControl cc;
  parse_cache_control("public, max-age=60", cc);
  parse_cache_control("s-maxage=\"30\", must-revalidate, x-unknown=1", cc);
  EXPECT_TRUE(cc.public_);
  EXPECT_EQ(cc.max_age, 60);
  EXPECT_EQ(cc.s_maxage, 30);
  EXPECT_TRUE(cc.must_revalidate);
  EXPECT_FALSE(cc.no_store);
}

TEST(CacheControl, InvalidDurationMeansStale) {
  CacheControl cc;
  parse_cache_control("max-age=abc", cc);
  EXPECT_EQ(cc.max_age, 0);
  CacheControl twice;
  parse_cache_control("max-age=100, max-age=5", twice);
  EXPECT_EQ(twice.max_age, 5);
}

TEST(CacheControl, QuotedCommaDoesNotSplit) {
  CacheControl cc;
  parse_cache_control("private=\"a, b\", max-age=9", cc);
  EXPECT_TRUE(cc.private_);
  EXPECT_EQ(cc.max_age, 9);
}

TEST(CacheHttpDate, AllThreeForms) {
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), 784111777);
  EXPECT_FALSE(parse_http_date("0"));
  EXPECT_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49:37 PST"));
  EXPECT_EQ(format_http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
}

TEST(CacheDeltaSeconds, ClampsAndRejects) {
  EXPECT_EQ(parse_delta_seconds("0"), 0);
  EXPECT_EQ(parse_delta_seconds("99999999999999999999"), int64_t{1} << 31);
  EXPECT_FALSE(parse_delta_seconds("-1"));
  EXPECT_FALSE(parse_delta_seconds(""));
}

TEST(CacheStore, MaxAgeAndSharedMaxAge) {
  StoreVerdict v = verdict({}, 200, {{"Cache-Control", "max-age=60"}});
  EXPECT_TRUE(v.store);
  EXPECT_EQ(v.lifetime, 60);
  v = verdict({}, 200, {{"Cache-Control", "max-age=60, s-maxage=5"}});
  EXPECT_EQ(v.lifetime, 5);  // a shared cache takes s-maxage
}

TEST(CacheStore, ExpiresAgainstDate) {
  StoreVerdict v = verdict(
      {}, 200,
      {{"Date", "Sun, 06 Nov 1994 08:49:37 GMT"}, {"Expires", "Sun, 06 Nov 1994 08:50:37 GMT"}});
  EXPECT_TRUE(v.store);
  EXPECT_EQ(v.lifetime, 60);
  // An invalid Expires is already expired: without a validator nothing is kept.
  EXPECT_FALSE(verdict({}, 200, {{"Expires", "0"}}).store);
  EXPECT_TRUE(verdict({}, 200, {{"Expires", "0"}, {"ETag", "\"x\""}}).store);
}

TEST(CacheStore, RefusesWhatRfc9111Forbids) {
  EXPECT_FALSE(verdict({}, 200, {{"Cache-Control", "no-store, max-age=60"}}).store);
  EXPECT_FALSE(verdict({}, 200, {{"Cache-Control", "private, max-age=60"}}).store);
  EXPECT_FALSE(
      verdict({{"Cache-Control", "no-store"}}, 200, {{"Cache-Control", "max-age=60"}}).store);
  EXPECT_FALSE(verdict({}, 200, {{"Cache-Control", "max-age=60"}, {"Vary", "*"}}).store);
  EXPECT_FALSE(verdict({}, 206, {{"Cache-Control", "max-age=60"}}).store);
  EXPECT_FALSE(verdict({}, 500, {{"Cache-Control", "max-age=60"}}).store);
  EXPECT_FALSE(verdict({{"Range", "bytes=0-1"}}, 200, {{"Cache-Control", "max-age=60"}}).store);
  EXPECT_FALSE(
      verdict({}, 200, {{"Cache-Control", "max-age=60"}}, kDay, std::nullopt, "POST").store);
  // No explicit freshness: no heuristics.
  EXPECT_FALSE(verdict({}, 200, {{"Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"}}).store);
}

TEST(CacheStore, SetCookieIsNotStored) {
  StoreVerdict v = verdict({}, 200, {{"Cache-Control", "max-age=60"}, {"Set-Cookie", "a=b"}});
  EXPECT_FALSE(v.store);
  EXPECT_STREQ(v.why_not, "set-cookie");
}

TEST(CacheStore, AuthorizationNeedsPublicOrSharedMaxAge) {
  Fields auth = {{"Authorization", "Basic eDp5"}};
  EXPECT_FALSE(verdict(auth, 200, {{"Cache-Control", "max-age=60"}}).store);
  EXPECT_TRUE(verdict(auth, 200, {{"Cache-Control", "public, max-age=60"}}).store);
  EXPECT_TRUE(verdict(auth, 200, {{"Cache-Control", "s-maxage=60"}}).store);
  EXPECT_TRUE(verdict(auth, 200, {{"Cache-Control", "must-revalidate, max-age=60"}}).store);
}

TEST(CacheStore, ValidationIntervalCapsLifetime) {
  StoreVerdict v = verdict({}, 200, {{"Cache-Control", "max-age=3600"}}, 60);
  EXPECT_EQ(v.lifetime, 60);
  // Zero: every reuse asks the origin, so a response without a validator is not kept.
  EXPECT_FALSE(verdict({}, 200, {{"Cache-Control", "max-age=3600"}}, 0).store);
  v = verdict({}, 200, {{"Cache-Control", "max-age=3600"}, {"ETag", "\"1\""}}, 0);
  EXPECT_TRUE(v.store);
  EXPECT_EQ(v.lifetime, 0);
}

TEST(CacheStore, ArrCacheControlOverride) {
  std::optional<CacheControlOverride> always = parse_override("1,max-age=120");
  ASSERT_TRUE(always);
  StoreVerdict v = verdict({}, 200, {{"Cache-Control", "no-store"}}, kDay, always);
  EXPECT_TRUE(v.store);
  EXPECT_EQ(v.lifetime, 120);
  std::optional<CacheControlOverride> missing = parse_override("0,max-age=120");
  EXPECT_FALSE(verdict({}, 200, {{"Cache-Control", "no-store"}}, kDay, missing).store);
  EXPECT_EQ(verdict({}, 200, {}, kDay, missing).lifetime, 120);
  // "Do not cache" rules.
  EXPECT_FALSE(
      verdict({}, 200, {{"Cache-Control", "max-age=60"}}, kDay, parse_override("1,no-store"))
          .store);
  // Set-Cookie still keeps a response out, whatever the rule.
  EXPECT_FALSE(verdict({}, 200, {{"Set-Cookie", "s=1"}}, kDay, always).store);
  EXPECT_FALSE(parse_override("max-age=5"));
}

StoredResponse entry_at(int64_t response_time, int64_t lifetime) {
  StoredResponse e;
  e.request_time = response_time;
  e.response_time = response_time;
  e.date_value = response_time;
  e.lifetime = lifetime;
  return e;
}

TEST(CacheReuse, FreshThenStale) {
  StoredResponse e = entry_at(kNow, 60);
  RequestDirectives get = read_request("GET", {});
  EXPECT_EQ(judge(e, get, kNow + 59), Reuse::Fresh);
  EXPECT_EQ(judge(e, get, kNow + 60), Reuse::Unusable);
  e.etag = "\"v1\"";
  EXPECT_EQ(judge(e, get, kNow + 60), Reuse::Stale);
}

TEST(CacheReuse, AgeCountsUpstreamAgeAndDelay) {
  StoredResponse e = entry_at(kNow, 60);
  e.age_value = 50;
  e.request_time = kNow - 2;
  EXPECT_EQ(current_age(e, kNow), 52);
  EXPECT_EQ(current_age(e, kNow + 10), 62);
}

TEST(CacheReuse, RequestDirectives) {
  StoredResponse e = entry_at(kNow, 600);
  e.etag = "\"v\"";
  Fields no_cache = {{"Cache-Control", "no-cache"}};
  EXPECT_EQ(judge(e, read_request("GET", no_cache), kNow), Reuse::Stale);
  Fields pragma = {{"Pragma", "no-cache"}};
  EXPECT_EQ(judge(e, read_request("GET", pragma), kNow), Reuse::Stale);
  Fields max_age = {{"Cache-Control", "max-age=10"}};
  EXPECT_EQ(judge(e, read_request("GET", max_age), kNow + 5), Reuse::Fresh);
  EXPECT_EQ(judge(e, read_request("GET", max_age), kNow + 11), Reuse::Stale);
}

TEST(CacheRefresh, A304ReplacesFieldsAndRestartsTheClock) {
  StoredResponse e = entry_at(kNow, 60);
  e.fields = {{"ETag", "\"v1\""}, {"X-Version", "1"}, {"X-Version", "1b"}, {"Content-Type", "a"}};
  e.etag = "\"v1\"";
  Fields fresh = {{"ETag", "\"v1\""}, {"X-Version", "2"}, {"Content-Length", "0"}};
  ResponseFacts facts = read_response(fresh);
  refresh_from_304(e, fresh, facts, 30, kNow + 100, kNow + 100);
  ASSERT_EQ(e.fields.size(), 3u);
  EXPECT_EQ(e.fields[1].second, "2");
  EXPECT_EQ(e.fields[2].first, "Content-Type");
  EXPECT_EQ(judge(e, read_request("GET", {}), kNow + 110), Reuse::Fresh);
}

TEST(CacheConditional, IfNoneMatchWeakComparisonAndLists) {
  StoredResponse e = entry_at(kNow, 60);
  e.etag = "\"v1\"";
  auto nm = [&e](std::string_view value) {
    return not_modified(e, Fields{{"If-None-Match", value}});
  };
  EXPECT_TRUE(nm("\"v1\""));
  EXPECT_TRUE(nm("W/\"v1\""));
  EXPECT_TRUE(nm("\"a\", \"v1\""));
  EXPECT_TRUE(nm("\"a,b\",\"v1\""));  // a comma inside an entity-tag does not split it
  EXPECT_TRUE(nm("*"));
  EXPECT_FALSE(nm("\"v2\""));
  EXPECT_FALSE(nm("v1"));  // not an entity-tag
  EXPECT_FALSE(nm("\"a,\"v1\"\""));
  // Several fields make one list.
  EXPECT_TRUE(not_modified(e, Fields{{"If-None-Match", "\"x\""}, {"If-None-Match", "\"v1\""}}));
  e.etag = "W/\"v1\"";
  EXPECT_TRUE(nm("\"v1\""));
  e.etag.clear();
  EXPECT_FALSE(nm("\"v1\""));
  EXPECT_TRUE(nm("*"));
}

TEST(CacheConditional, IfModifiedSinceAgainstLastModifiedOrDate) {
  StoredResponse e = entry_at(kNow, 60);
  e.last_modified = format_http_date(kNow - 100);
  auto ims = [&e](int64_t t) {
    return not_modified(e, Fields{{"If-Modified-Since", format_http_date(t)}});
  };
  EXPECT_TRUE(ims(kNow - 100));
  EXPECT_TRUE(ims(kNow));
  EXPECT_FALSE(ims(kNow - 101));
  EXPECT_FALSE(not_modified(e, Fields{{"If-Modified-Since", "yesterday"}}));
  // If-None-Match decides when both are present.
  e.etag = "\"v1\"";
  EXPECT_FALSE(not_modified(
      e, Fields{{"If-None-Match", "\"v2\""}, {"If-Modified-Since", format_http_date(kNow)}}));
  // Without Last-Modified, the entry's Date.
  e.last_modified.clear();
  EXPECT_TRUE(ims(kNow));
  EXPECT_FALSE(ims(kNow - 1));
  // Only a 2xx is answered 304.
  e.status = 404;
  EXPECT_FALSE(ims(kNow));
  EXPECT_FALSE(not_modified(e, Fields{{"If-None-Match", "*"}}));
  e.status = 200;
  EXPECT_FALSE(not_modified(e, Fields{}));
}

TEST(CacheConditional, FieldsOfA304) {
  EXPECT_TRUE(field_of_304("ETag", true));
  EXPECT_TRUE(field_of_304("cache-control", true));
  EXPECT_TRUE(field_of_304("Vary", true));
  EXPECT_TRUE(field_of_304("Expires", true));
  EXPECT_TRUE(field_of_304("Date", true));
  EXPECT_TRUE(field_of_304("Content-Location", true));
  EXPECT_FALSE(field_of_304("Content-Type", true));
  EXPECT_FALSE(field_of_304("Last-Modified", true));
  EXPECT_TRUE(field_of_304("Last-Modified", false));
  EXPECT_FALSE(field_of_304("Content-Length", false));
}

TEST(CacheStaleWhileRevalidate, WindowAndWhatForbidsIt) {
  StoredResponse e = entry_at(kNow, 60);
  e.etag = "\"v1\"";
  e.stale_while_revalidate = 30;
  RequestDirectives get = read_request("GET", {});
  EXPECT_FALSE(may_serve_while_revalidating(e, get, kNow + 59));  // still fresh
  EXPECT_TRUE(may_serve_while_revalidating(e, get, kNow + 60));
  EXPECT_TRUE(may_serve_while_revalidating(e, get, kNow + 89));
  EXPECT_FALSE(may_serve_while_revalidating(e, get, kNow + 90));  // the window has closed
  EXPECT_FALSE(may_serve_while_revalidating(
      e, read_request("GET", Fields{{"Cache-Control", "no-cache"}}), kNow + 70));
  EXPECT_FALSE(may_serve_while_revalidating(
      e, read_request("GET", Fields{{"Cache-Control", "max-age=100"}}), kNow + 70));
  StoredResponse must = e;
  must.must_revalidate = true;
  EXPECT_FALSE(may_serve_while_revalidating(must, get, kNow + 70));
  StoredResponse no_validator = e;
  no_validator.etag.clear();
  EXPECT_FALSE(may_serve_while_revalidating(no_validator, get, kNow + 70));
  no_validator.last_modified = format_http_date(kNow - 10);
  EXPECT_TRUE(may_serve_while_revalidating(no_validator, get, kNow + 70));
  StoredResponse none = e;
  none.stale_while_revalidate = -1;
  EXPECT_FALSE(may_serve_while_revalidating(none, get, kNow + 70));
}

TEST(CacheKey, QueryStringHandling) {
  KeyParts parts{
      .farm = "f", .host = "Example.COM.", .path = "/a", .query = "x=1", .target = "/a?x=1"};
  PrimaryKey ignore, accept, other;
  ASSERT_TRUE(make_primary_key(parts, QueryStringHandling::Ignore, ignore));
  ASSERT_TRUE(make_primary_key(parts, QueryStringHandling::Accept, accept));
  EXPECT_EQ(ignore.host, "example.com");
  EXPECT_EQ(ignore.url, "/a");
  EXPECT_EQ(accept.url, "/a?x=1");
  EXPECT_FALSE(make_primary_key(parts, QueryStringHandling::NoCaching, other));
  parts.query = "x=2";
  parts.target = "/a?x=2";
  ASSERT_TRUE(make_primary_key(parts, QueryStringHandling::Ignore, other));
  EXPECT_EQ(other.key, ignore.key);
  ASSERT_TRUE(make_primary_key(parts, QueryStringHandling::Accept, other));
  EXPECT_NE(other.key, accept.key);
}

TEST(CacheKey, HostFarmAndRuleHeadersAreKeyed) {
  KeyParts a{.farm = "f", .host = "a.test", .path = "/", .target = "/"};
  KeyParts b = a;
  b.host = "b.test";
  PrimaryKey ka, kb;
  make_primary_key(a, QueryStringHandling::Ignore, ka);
  make_primary_key(b, QueryStringHandling::Ignore, kb);
  EXPECT_NE(ka.key, kb.key);
  std::vector<std::pair<std::string, std::string>> headers = {{"X-Tenant", "7"}};
  b = a;
  b.rule_headers = headers;
  make_primary_key(b, QueryStringHandling::Ignore, kb);
  EXPECT_NE(ka.key, kb.key);
}

TEST(CacheKey, SecondaryKeyNormalisesListSpacing) {
  std::vector<std::string> vary = {"accept-encoding"};
  Fields a = {{"Accept-Encoding", "gzip, br"}};
  Fields b = {{"accept-encoding", "gzip,br"}};
  Fields c = {{"Accept-Encoding", "br"}};
  EXPECT_EQ(secondary_key(vary, a), secondary_key(vary, b));
  EXPECT_NE(secondary_key(vary, a), secondary_key(vary, c));
  EXPECT_NE(secondary_key(vary, a), secondary_key(vary, {}));
}

}  // namespace
}  // namespace harrow::cache

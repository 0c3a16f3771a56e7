// Cookie affinity on the wire: the Set-Cookie fields a farm hands out, and finding the
// affinity cookie among a request's cookies.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/proxy/affinity_cookie.h"

namespace harrow {
namespace {

MessageHead head_with(std::initializer_list<std::pair<std::string, std::string>> fields) {
  MessageHead head;
  head.reset(65536);
  head.on_target("/", 1);
  for (const auto& [name, value] : fields) {
    head.on_field(name.data(), name.size());
    head.on_value(value.data(), value.size());
  }
  head.finish();
  return head;
}

TEST(AffinityCookies, ArrDefaultIsPathAndHttpOnly) {
  config::AffinityConfig affinity;
  AffinityCookies cookies(affinity, {"aa", "bb"});
  EXPECT_EQ(cookies.set_cookie(1), std::vector<std::string>{"ARRAffinity=bb; Path=/; HttpOnly"});
}

TEST(AffinityCookies, DomainNeverCarriesAPort) {
  config::AffinityConfig affinity;
  affinity.domain = "shop.example.com:8443";
  affinity.secure = true;
  affinity.same_site = config::SameSite::Lax;
  AffinityCookies cookies(affinity, {"aa"});
  EXPECT_EQ(cookies.set_cookie(0),
            std::vector<std::string>{
                "ARRAffinity=aa; Path=/; HttpOnly; Domain=shop.example.com; Secure; SameSite=Lax"});
}

TEST(AffinityCookies, SameSiteNoneAddsTheTwinCookie) {
  config::AffinityConfig affinity;
  affinity.same_site = config::SameSite::None;
  affinity.max_age = std::chrono::minutes(2);
  AffinityCookies cookies(affinity, {"aa"});
  EXPECT_EQ(cookies.set_cookie(0),
            (std::vector<std::string>{
                "ARRAffinity=aa; Path=/; HttpOnly; Max-Age=120",
                "ARRAffinitySameSite=aa; Path=/; HttpOnly; Max-Age=120; SameSite=None; Secure"}));
  EXPECT_EQ(cookies.find(head_with({{"Cookie", "ARRAffinitySameSite=cc"}})), "cc");
}

TEST(AffinityCookies, FindsTheCookieAmongOthersAndAcrossFields) {
  config::AffinityConfig affinity;
  AffinityCookies cookies(affinity, {"aa"});
  EXPECT_EQ(cookies.find(head_with({{"Cookie", "a=1; ARRAffinity=xyz; b=2"}})), "xyz");
  EXPECT_EQ(cookies.find(head_with({{"Cookie", "a=1"}, {"cookie", "ARRAffinity = \"q\" "}})), "q");
  EXPECT_EQ(cookies.find(head_with({{"Cookie", "arraffinity=xyz; XARRAffinity=1"}})), "");
  EXPECT_EQ(cookies.find(head_with({{"Set-Cookie", "ARRAffinity=xyz"}})), "");
  EXPECT_EQ(cookies.find(head_with({})), "");
}

TEST(FindCookie, EdgeCases) {
  std::string_view value;
  EXPECT_FALSE(find_cookie("", "a", value));
  EXPECT_FALSE(find_cookie(";;", "a", value));
  EXPECT_TRUE(find_cookie("a=", "a", value));
  EXPECT_EQ(value, "");
  EXPECT_TRUE(find_cookie("b; a=1=2", "a", value));
  EXPECT_EQ(value, "1=2");
}

}  // namespace
}  // namespace harrow

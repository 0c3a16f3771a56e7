// Which site a request belongs to: IIS's binding precedence.
#include <gtest/gtest.h>

#include "core/rewrite/sites.h"

namespace harrow {
namespace {

config::Config two_ip_config() {
  config::Config c;
  c.sites.push_back({.name = "Default", .bindings = {{"0.0.0.0:80", "", false}}});
  c.sites.push_back({.name = "Shop", .bindings = {{"0.0.0.0:80", "shop.example", false}}});
  c.sites.push_back({.name = "Intranet", .bindings = {{"10.0.0.5:80", "", false}}});
  c.sites.push_back({.name = "Api",
                     .bindings = {{"10.0.0.5:80", "api.example", false},
                                  {"0.0.0.0:8080", "api.example", false}}});
  return c;
}

TEST(SiteTable, HostNameBeatsEmptyHostOnTheSameListener) {
  config::Config c = two_ip_config();
  SiteTable sites(c);
  EXPECT_EQ(sites.match("0.0.0.0:80", "shop.example"), 1);
  EXPECT_EQ(sites.match("0.0.0.0:80", "SHOP.example:80"), 1);
  EXPECT_EQ(sites.match("0.0.0.0:80", "other.example"), 0);
  EXPECT_EQ(sites.match("0.0.0.0:80", ""), 0);
}

TEST(SiteTable, ASpecificAddressHasItsOwnSites) {
  config::Config c = two_ip_config();
  SiteTable sites(c);
  EXPECT_EQ(sites.match("10.0.0.5:80", "api.example"), 3);
  EXPECT_EQ(sites.match("10.0.0.5:80", "shop.example"), 2);  // not the wildcard's host site
  EXPECT_EQ(sites.match("0.0.0.0:8080", "api.example"), 3);
  EXPECT_EQ(sites.match("0.0.0.0:8080", "other.example"), -1);
}

TEST(SiteTable, UnnamedListenersServeEverySiteByHost) {
  config::Config c = two_ip_config();
  SiteTable sites(c);
  EXPECT_EQ(sites.match("127.0.0.1:0", "api.example"), 3);
  EXPECT_EQ(sites.match("127.0.0.1:0", "shop.example"), 1);
  EXPECT_EQ(sites.match("127.0.0.1:0", "nobody.example"), 0);  // first site for any host
  config::Config none;
  EXPECT_EQ(SiteTable(none).match("127.0.0.1:0", "x"), -1);
}

}  // namespace
}  // namespace harrow

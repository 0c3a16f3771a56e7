// <harrow><fleet>: read into FleetConfig; every mistake an error at its file:line:col.
#include <gtest/gtest.h>

#include "config/loader.h"

namespace harrow::config {
namespace {

std::string with_fleet(const std::string& fleet) {
  return "<configuration>\n  <harrow>\n    " + fleet + "\n  </harrow>\n</configuration>\n";
}

std::vector<std::string> errors_of(const std::string& xml) {
  LoadResult result = load_config_text(xml, "f.config");
  EXPECT_FALSE(result.config.has_value());
  std::vector<std::string> out;
  for (const Diagnostic& d : result.errors) out.push_back(d.format_error());
  return out;
}

TEST(FleetConfig, AbsentMeansNoFleet) {
  LoadResult result = load_config_text("<configuration><harrow/></configuration>", "f.config");
  ASSERT_TRUE(result.config.has_value());
  EXPECT_FALSE(result.config->fleet.enabled);
}

TEST(FleetConfig, EndpointsNameInstanceAndDefaults) {
  LoadResult result = load_config_text(
      with_fleet(
          "<fleet endpoints=\"http://127.0.0.1:2379, http://[::1]:2380/;http://etcd.lan:2379\" "
          "name=\"edge\" instance=\"a-1\"/>"),
      "f.config");
  ASSERT_TRUE(result.config.has_value());
  const FleetConfig& f = result.config->fleet;
  EXPECT_TRUE(f.enabled);
  EXPECT_EQ(f.endpoints,
            (std::vector<std::string>{"127.0.0.1:2379", "[::1]:2380", "etcd.lan:2379"}));
  EXPECT_EQ(f.name, "edge");
  EXPECT_EQ(f.instance, "a-1");
  EXPECT_EQ(f.lease_ttl_seconds, 10u);
  EXPECT_EQ(f.prefix, "/harrow/");
  EXPECT_FALSE(f.shared_config);
  EXPECT_EQ(f.where.line, 3);

  result = load_config_text(with_fleet("<fleet endpoints=\"http://127.0.0.1:2379\" name=\"e\" "
                                       "instance=\"b\" leaseTtl=\"3\" prefix=\"/prod/lb\" "
                                       "sharedConfig=\"true\"/>"),
                            "f.config");
  ASSERT_TRUE(result.config.has_value());
  EXPECT_EQ(result.config->fleet.lease_ttl_seconds, 3u);
  EXPECT_EQ(result.config->fleet.prefix, "/prod/lb/");
  EXPECT_TRUE(result.config->fleet.shared_config);
}

TEST(FleetConfig, MistakesAreErrorsAtTheirLine) {
  std::vector<std::string> e = errors_of(with_fleet("<fleet name=\"e\" instance=\"a\"/>"));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_NE(e[0].find("f.config:3:"), std::string::npos) << e[0];
  EXPECT_NE(e[0].find("endpoints"), std::string::npos) << e[0];

  e = errors_of(with_fleet(
      "<fleet endpoints=\"https://127.0.0.1:2379 http://x\" name=\"a/b\" instance=\"a b\" "
      "leaseTtl=\"1\" prefix=\"harrow\"/>"));
  ASSERT_EQ(e.size(), 6u) << ::testing::PrintToString(e);
  for (const std::string& line : e) EXPECT_EQ(line.rfind("f.config:3:", 0), 0u) << line;
  auto has = [&](const char* text) {
    for (const std::string& line : e) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("endpoint \"https://127.0.0.1:2379\" is not http://HOST:PORT"));
  EXPECT_TRUE(has("endpoint \"http://x\" is not http://HOST:PORT"));
  EXPECT_TRUE(has("name \"a/b\" may hold only"));
  EXPECT_TRUE(has("instance \"a b\" may hold only"));
  EXPECT_TRUE(has("leaseTtl"));
  EXPECT_TRUE(has("prefix must start with '/'"));

  e =
      errors_of(with_fleet("<fleet endpoints=\"http://127.0.0.1:2379\" name=\"e\" "
                           "instance=\"a\" leseTtl=\"5\"/>"));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_NE(e[0].find("leaseTtl"), std::string::npos) << e[0];  // did you mean
}

}  // namespace
}  // namespace harrow::config

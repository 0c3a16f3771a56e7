// <harrow><fleet>: read into FleetConfig; every mistake an error at its file:line:col.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

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

  e = errors_of(
      with_fleet("<fleet endpoints=\"ftp://127.0.0.1:2379 http://x\" name=\"a/b\" instance=\"a b\" "
                 "leaseTtl=\"1\" prefix=\"harrow\"/>"));
  ASSERT_EQ(e.size(), 6u) << ::testing::PrintToString(e);
  for (const std::string& line : e) EXPECT_EQ(line.rfind("f.config:3:", 0), 0u) << line;
  auto has = [&](const char* text) {
    for (const std::string& line : e) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("endpoint \"ftp://127.0.0.1:2379\" is not http://HOST:PORT"));
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

// A file only its owner may read, as passwordFile asks.
std::string secret_file(const std::string& name, mode_t mode = 0600) {
  std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << "pw\n";
  ::chmod(path.c_str(), mode);
  return path;
}

TEST(FleetConfig, TlsAndAuthenticationAttributes) {
  std::string pw = secret_file("fleet-config-pw");
  LoadResult result = load_config_text(
      with_fleet("<fleet endpoints=\"https://127.0.0.1:2379,https://etcd.lan:2379\" name=\"e\" "
                 "instance=\"a\" caFile=\"/etc/etcd/ca.pem\" certificateFile=\"/c.pem\" "
                 "keyFile=\"/k.pem\" user=\"harrow\" passwordFile=\"" +
                 pw + "\"/>"),
      "f.config");
  ASSERT_TRUE(result.config.has_value())
      << (result.errors.empty() ? "" : result.errors[0].format_error());
  const FleetConfig& f = result.config->fleet;
  EXPECT_TRUE(f.tls);
  EXPECT_EQ(f.endpoints, (std::vector<std::string>{"127.0.0.1:2379", "etcd.lan:2379"}));
  EXPECT_EQ(f.ca_file, "/etc/etcd/ca.pem");
  EXPECT_EQ(f.certificate_file, "/c.pem");
  EXPECT_EQ(f.key_file, "/k.pem");
  EXPECT_EQ(f.user, "harrow");
  EXPECT_EQ(f.password_file, pw);
  EXPECT_EQ(f.password_file_where.line, 3);
  EXPECT_GT(f.password_file_where.column, 1);

  // Plain http and no user: none of it.
  result = load_config_text(
      with_fleet("<fleet endpoints=\"http://127.0.0.1:2379\" name=\"e\" instance=\"a\"/>"),
      "f.config");
  ASSERT_TRUE(result.config.has_value());
  EXPECT_FALSE(result.config->fleet.tls);
  EXPECT_TRUE(result.config->fleet.user.empty());
}

TEST(FleetConfig, TlsAndAuthenticationMistakesAreErrorsAtTheirLine) {
  auto one_error = [](const std::string& fleet, const char* text) {
    std::vector<std::string> e = errors_of(with_fleet(fleet));
    ASSERT_EQ(e.size(), 1u) << fleet << ": " << ::testing::PrintToString(e);
    EXPECT_EQ(e[0].rfind("f.config:3:", 0), 0u) << e[0];
    EXPECT_NE(e[0].find(text), std::string::npos) << e[0];
  };
  const std::string head = "<fleet name=\"e\" instance=\"a\" ";
  one_error(head + "endpoints=\"https://127.0.0.1:2379\"/>", "https:// endpoints need caFile");
  one_error(head + "endpoints=\"https://127.0.0.1:2379 http://127.0.0.1:2380\" caFile=\"/ca\"/>",
            "mixes http:// and https://");
  one_error(head + "endpoints=\"http://127.0.0.1:2379\" caFile=\"/ca\"/>",
            "caFile needs https:// endpoints");
  std::vector<std::string> e =
      errors_of(with_fleet(head + "endpoints=\"http://127.0.0.1:2379\" certificateFile=\"/c\" "
                                  "keyFile=\"/k\"/>"));
  ASSERT_EQ(e.size(), 2u) << ::testing::PrintToString(e);
  EXPECT_NE(e[0].find("certificateFile needs https:// endpoints"), std::string::npos) << e[0];
  EXPECT_NE(e[1].find("keyFile needs https:// endpoints"), std::string::npos) << e[1];
  e = errors_of(
      with_fleet(head + "endpoints=\"https://127.0.0.1:2379\" caFile=\"/ca\" keyFile=\"/k\"/>"));
  ASSERT_EQ(e.size(), 1u) << ::testing::PrintToString(e);
  EXPECT_NE(e[0].find("certificateFile and keyFile go together"), std::string::npos) << e[0];
  one_error(head + "endpoints=\"http://127.0.0.1:2379\" user=\"root\"/>",
            "user and passwordFile go together");
  // No password in the configuration: an unknown attribute.
  e = errors_of(
      with_fleet(head + "endpoints=\"http://127.0.0.1:2379\" user=\"root\" password=\"x\"/>"));
  ASSERT_EQ(e.size(), 2u) << ::testing::PrintToString(e);
  EXPECT_NE(e[1].find("unknown attribute 'password'"), std::string::npos) << e[1];
  std::string open = secret_file("fleet-config-open", 0640);
  one_error(
      head + "endpoints=\"http://127.0.0.1:2379\" user=\"root\" passwordFile=\"" + open + "\"/>",
      "has mode 0640");
  one_error(head + "endpoints=\"http://127.0.0.1:2379\" user=\"root\" passwordFile=\"" +
                ::testing::TempDir() + "\"/>",
            "is not a regular file");
  std::string link = ::testing::TempDir() + "fleet-config-link";
  ::unlink(link.c_str());
  ASSERT_EQ(::symlink(secret_file("fleet-config-target").c_str(), link.c_str()), 0);
  one_error(
      head + "endpoints=\"http://127.0.0.1:2379\" user=\"root\" passwordFile=\"" + link + "\"/>",
      "is a symbolic link");
  one_error(head + "endpoints=\"http://127.0.0.1:2379\" user=\"root\" passwordFile=\"" +
                ::testing::TempDir() + "no-such-fleet-pw\"/>",
            "cannot use password file");
}

}  // namespace
}  // namespace harrow::config

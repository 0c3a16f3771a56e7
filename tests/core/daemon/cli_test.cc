#include "core/daemon/cli.h"

#include <gtest/gtest.h>

#include <vector>

namespace harrow {
namespace {

bool parse(std::vector<const char*> args, CommandLine& out, std::string& error) {
  args.insert(args.begin(), "harrow");
  return parse_command_line(static_cast<int>(args.size()), args.data(), out, error);
}

TEST(CommandLine, ParsesTheContractFlags) {
  CommandLine cli;
  std::string error;
  ASSERT_TRUE(parse({"--config", "/tmp/a.config", "--workers", "3", "--listen", "127.0.0.1:0",
                     "--listen=[::1]:8080", "--admin", "127.0.0.1:0", "--log-level", "warn"},
                    cli, error))
      << error;
  EXPECT_EQ(cli.config_path, "/tmp/a.config");
  EXPECT_EQ(cli.workers, 3);
  EXPECT_EQ(cli.listen, (std::vector<std::string>{"127.0.0.1:0", "[::1]:8080"}));
  EXPECT_EQ(cli.admin, "127.0.0.1:0");
  EXPECT_EQ(cli.log_level, "warn");
}

TEST(CommandLine, DefaultsAndModes) {
  CommandLine cli;
  std::string error;
  ASSERT_TRUE(parse({"--check-config"}, cli, error));
  EXPECT_TRUE(cli.check_config);
  EXPECT_EQ(cli.config_path, "/etc/harrow/harrow.config");
  EXPECT_FALSE(cli.workers.has_value());
}

TEST(CommandLine, RejectsUnknownFlagsAndBadValues) {
  CommandLine cli;
  std::string error;
  EXPECT_FALSE(parse({"--bogus"}, cli, error));
  EXPECT_NE(error.find("--bogus"), std::string::npos);
  EXPECT_FALSE(parse({"--workers", "0"}, cli, error));
  EXPECT_FALSE(parse({"--workers", "2x"}, cli, error));
  EXPECT_FALSE(parse({"--config"}, cli, error));
}

TEST(CommandLine, ExplainTakesARequestAndHeaders) {
  CommandLine cli;
  std::string error;
  ASSERT_TRUE(parse({"--check-config", "--explain", "GET https://shop.example/a/b?x=1", "--header",
                     "Cookie: a=1", "-H", "X-Y: 2"},
                    cli, error))
      << error;
  EXPECT_EQ(cli.explain, "GET https://shop.example/a/b?x=1");
  EXPECT_EQ(cli.headers, (std::vector<std::string>{"Cookie: a=1", "X-Y: 2"}));
  EXPECT_NE(std::string(usage_text()).find("--explain"), std::string::npos);
}

TEST(CommandLine, ExplainNeedsCheckConfigAndHeadersNeedExplain) {
  CommandLine cli;
  std::string error;
  EXPECT_FALSE(parse({"--explain", "GET http://x/"}, cli, error));
  EXPECT_NE(error.find("--check-config"), std::string::npos) << error;
  CommandLine other;
  EXPECT_FALSE(parse({"--check-config", "--header", "A: b"}, other, error));
  CommandLine third;
  EXPECT_FALSE(
      parse({"--check-config", "--explain", "GET http://x/", "--header", "nocolon"}, third, error));
}

TEST(CommandLine, ReplayTakesEveryLogUpToTheNextOption) {
  CommandLine cli;
  std::string error;
  ASSERT_TRUE(parse(
      {"--check-config", "--replay", "u_ex1.log", "u_ex2.log", "--config", "a.config"}, cli, error))
      << error;
  EXPECT_EQ(cli.replay, (std::vector<std::string>{"u_ex1.log", "u_ex2.log"}));
  EXPECT_EQ(cli.config_path, "a.config");
  CommandLine alone;
  EXPECT_FALSE(parse({"--replay", "u_ex1.log"}, alone, error));
  EXPECT_EQ(error, "--replay goes with --check-config (it starts nothing)");
  CommandLine both;
  EXPECT_FALSE(
      parse({"--check-config", "--replay", "a.log", "--explain", "GET http://x/"}, both, error));
  CommandLine empty;
  EXPECT_FALSE(parse({"--check-config", "--replay"}, empty, error));
}

}  // namespace
}  // namespace harrow

#include "core/daemon/ctl.h"

#include <gtest/gtest.h>

namespace harrow {
namespace {

TEST(CtlTable, PadsColumnsToTheWidestCell) {
  EXPECT_EQ(render_table({{"FARM", "SERVERS"}, {"a-long-name", "2"}, {"b", "10"}}),
            "FARM         SERVERS\n"
            "a-long-name  2\n"
            "b            10\n");
}

TEST(CtlAdminTarget, ListenerAddressesBecomeWhatToConnectTo) {
  std::string target, error;
  struct Case {
    const char* in;
    const char* out;
  } cases[] = {{"127.0.0.1:9180", "127.0.0.1:9180"},
               {"http://127.0.0.1:9180/", "127.0.0.1:9180"},
               {"localhost:81", "localhost:81"},
               {"*:9180", "127.0.0.1:9180"},
               {"0.0.0.0:9180", "127.0.0.1:9180"},
               {"[::]:9180", "[::1]:9180"},
               {"[::1]:9", "[::1]:9"}};
  for (const Case& c : cases) {
    ASSERT_TRUE(admin_target(c.in, target, error)) << c.in << ": " << error;
    EXPECT_EQ(target, c.out);
  }
  for (const char* bad : {"", "9180", "host:", "host:port", "::1:9180", "h:123456"}) {
    EXPECT_FALSE(admin_target(bad, target, error)) << bad;
  }
}

TEST(CtlMetrics, KeepsTheSamplesNamingTheServer) {
  const char* text =
      "# HELP harrow_server_healthy 1 if healthy.\n"
      "# TYPE harrow_server_healthy gauge\n"
      "harrow_server_healthy{farm=\"web\",server=\"10.0.0.1:80\",pool=\"\"} 1\n"
      "harrow_server_healthy{farm=\"web\",server=\"10.0.0.10:80\",pool=\"\"} 0\n"
      "harrow_requests_total 5\n";
  EXPECT_EQ(metrics_for_server(text, "10.0.0.1"),
            std::vector<std::string>{
                "harrow_server_healthy{farm=\"web\",server=\"10.0.0.1:80\",pool=\"\"} 1"});
  EXPECT_EQ(metrics_for_server(text, "10.0.0.10:80").size(), 1u);
  EXPECT_TRUE(metrics_for_server(text, "10.0.0.2").empty());
  EXPECT_EQ(metrics_for_server(text, "").size(), 3u);
}

}  // namespace
}  // namespace harrow

// The request limits and timeouts of HTTP/1.1 hardening: defaults, <harrow><limits>,
// <harrow><timeouts clientSend>, and IIS's <requestFiltering><requestLimits>.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "config/loader.h"

namespace harrow::config {
namespace {

LoadResult load(const std::string& xml) {
  return load_config_text("<configuration>" + xml + "</configuration>", "h.config");
}

TEST(HardeningConfig, Defaults) {
  LoadResult r = load("");
  ASSERT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].format_error());
  const LimitsConfig& l = r.config->limits;
  EXPECT_EQ(l.max_request_line, 8192u);
  EXPECT_EQ(l.max_request_header_bytes, 65536u);
  EXPECT_EQ(l.max_request_headers, 100u);
  EXPECT_EQ(l.max_allowed_content_length, 30'000'000u);
  EXPECT_FALSE(l.allow_trace);
  EXPECT_EQ(l.max_connections_per_client, 0u);
  EXPECT_EQ(l.retries, 1u);
  EXPECT_EQ(r.config->timeouts.client_send, std::chrono::milliseconds(60'000));
  EXPECT_EQ(r.config->timeouts.client_body, std::chrono::milliseconds(30'000));
  EXPECT_EQ(r.config->timeouts.websocket_idle, std::chrono::milliseconds(15 * 60'000));
}

TEST(HardeningConfig, BodyAndWebSocketTimeouts) {
  LoadResult r =
      load("<harrow><timeouts clientBody=\"00:00:07\" webSocketIdle=\"01:00:00\"/></harrow>");
  ASSERT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].format_error());
  EXPECT_EQ(r.config->timeouts.client_body, std::chrono::milliseconds(7'000));
  EXPECT_EQ(r.config->timeouts.websocket_idle, std::chrono::milliseconds(3'600'000));
  // Neither may be zero: a body or a tunnel must get some time.
  EXPECT_FALSE(load("<harrow><timeouts clientBody=\"00:00:00\"/></harrow>").config);
  EXPECT_FALSE(load("<harrow><timeouts webSocketIdle=\"00:00:00\"/></harrow>").config);
  EXPECT_FALSE(load("<harrow><timeouts webSocketIdleTimeout=\"00:00:01\"/></harrow>").config);
}

TEST(HardeningConfig, HarrowLimitsAndTimeouts) {
  LoadResult r = load(
      "<harrow><limits maxRequestLine=\"1024\" maxRequestHeaderBytes=\"4096\" "
      "maxRequestHeaders=\"20\" maxAllowedContentLength=\"5000000000\" allowTrace=\"true\" "
      "maxConnectionsPerClient=\"16\" retries=\"2\"/><timeouts clientSend=\"00:00:05\"/></harrow>");
  ASSERT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].format_error());
  const LimitsConfig& l = r.config->limits;
  EXPECT_EQ(l.max_request_line, 1024u);
  EXPECT_EQ(l.max_request_header_bytes, 4096u);
  EXPECT_EQ(l.max_request_headers, 20u);
  EXPECT_EQ(l.max_allowed_content_length, 5'000'000'000u);  // above 4 GiB is allowed here
  EXPECT_TRUE(l.allow_trace);
  EXPECT_EQ(l.max_connections_per_client, 16u);
  EXPECT_EQ(l.retries, 2u);
  EXPECT_EQ(r.config->timeouts.client_send, std::chrono::milliseconds(5'000));
}

TEST(HardeningConfig, IisRequestLimits) {
  LoadResult r = load(
      "<system.webServer><security><requestFiltering allowDoubleEscaping=\"false\">"
      "<fileExtensions allowUnlisted=\"true\"/>"
      "<requestLimits maxAllowedContentLength=\"1000\" maxUrl=\"4096\"/>"
      "</requestFiltering></security></system.webServer>");
  ASSERT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].format_error());
  EXPECT_EQ(r.config->limits.max_allowed_content_length, 1000u);
  EXPECT_EQ(r.config->limits.max_url, 4096u);
  EXPECT_EQ(r.config->limits.max_query_string, 2048u);  // IIS's default
  EXPECT_FALSE(r.config->limits.allow_double_escaping);
}

TEST(HardeningConfig, IisUrlLimitsAndDoubleEscaping) {
  LoadResult r = load(
      "<system.webServer><security><requestFiltering allowDoubleEscaping=\"true\">"
      "<requestLimits maxUrl=\"100\" maxQueryString=\"10\"/>"
      "</requestFiltering></security></system.webServer>");
  ASSERT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].format_error());
  EXPECT_EQ(r.config->limits.max_url, 100u);
  EXPECT_EQ(r.config->limits.max_query_string, 10u);
  EXPECT_TRUE(r.config->limits.allow_double_escaping);
}

TEST(HardeningConfig, OutOfRangeValuesAreErrors) {
  EXPECT_FALSE(load("<harrow><limits maxRequestLine=\"10\"/></harrow>").config);
  EXPECT_FALSE(load("<harrow><limits retries=\"9\"/></harrow>").config);
  EXPECT_FALSE(load("<harrow><limits maxRequestHeaders=\"0\"/></harrow>").config);
}

}  // namespace
}  // namespace harrow::config

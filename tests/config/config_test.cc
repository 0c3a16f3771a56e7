// The configuration loader: ARR's defaults, the ARR example files, every kind of error with its
// exact position, and the accepted-but-ignored list.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "config/loader.h"

namespace harrow::config {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

LoadResult load(const std::string& xml) {
  return load_config_text(xml, "f.config");
}

// Loads text that must be valid; fails the test with every error otherwise.
Config load_ok(const std::string& xml) {
  LoadResult result = load(xml);
  for (const Diagnostic& error : result.errors) ADD_FAILURE() << error.format_error();
  if (!result.config) {
    ADD_FAILURE() << "no config returned";
    return Config{};
  }
  return *result.config;
}

Config load_data_file(const std::string& name) {
  LoadResult result = load_config_file(std::string(HARROW_TEST_DATA_DIR) + "/" + name);
  for (const Diagnostic& error : result.errors) ADD_FAILURE() << error.format_error();
  if (!result.config) {
    ADD_FAILURE() << name << " did not load";
    return Config{};
  }
  return *result.config;
}

std::vector<std::string> formatted_errors(const std::string& xml) {
  LoadResult result = load(xml);
  EXPECT_FALSE(result.config.has_value()) << "a config must not be returned with errors";
  std::vector<std::string> lines;
  for (const Diagnostic& error : result.errors) lines.push_back(error.format_error());
  return lines;
}

// "LINE: what" for each ignored setting, the form summarize() lists them in.
std::vector<std::string> ignored_list(const Config& config) {
  std::vector<std::string> lines;
  for (const IgnoredSetting& setting : config.ignored) {
    lines.push_back(std::to_string(setting.where.line) + ": " + setting.what);
  }
  return lines;
}

// A farm "f" around `inside` (line 4 onwards), optionally followed by more sections.
std::string farm_with(const std::string& inside, const std::string& after = "") {
  return "<configuration>\n"
         "  <webFarms>\n"
         "    <webFarm name=\"f\">\n" +
         inside +
         "    </webFarm>\n"
         "  </webFarms>\n" +
         after + "</configuration>\n";
}

// ---------------------------------------------------------------------------------------------
// Defaults

TEST(ConfigDefaults, EmptyConfigurationHasGlobalDefaults) {
  Config config = load_ok("<configuration/>");
  EXPECT_TRUE(config.farms.empty());
  EXPECT_TRUE(config.global_rules.empty());
  EXPECT_TRUE(config.listeners.empty());
  EXPECT_TRUE(config.ignored.empty());
  EXPECT_EQ(config.source_path, "f.config");
  EXPECT_FALSE(config.global_proxy_enabled);
  EXPECT_EQ(config.global_proxy.timeout, minutes(2));
  EXPECT_FALSE(config.global_proxy.preserve_host_header);
  EXPECT_TRUE(config.global_proxy.reverse_rewrite_host_in_response_headers);
  EXPECT_EQ(config.admin_address, "127.0.0.1:9180");
  EXPECT_EQ(config.timeouts.connect, seconds(5));
  EXPECT_EQ(config.limits.max_connections, 100'000u);
}

TEST(ConfigDefaults, FarmAndServerTakeArrDefaults) {
  Config config = load_ok(farm_with("      <server address=\"a\"/>\n"));
  ASSERT_EQ(config.farms.size(), 1u);
  const FarmConfig& farm = config.farms[0];
  EXPECT_EQ(farm.name, "f");
  EXPECT_TRUE(farm.enabled);
  EXPECT_EQ(farm.application_pool, "");
  ASSERT_EQ(farm.servers.size(), 1u);
  const ServerConfig& server = farm.servers[0];
  EXPECT_TRUE(server.enabled);
  EXPECT_EQ(server.weight, 100u);
  EXPECT_EQ(server.http_port, 80);
  EXPECT_EQ(server.https_port, 443);
  EXPECT_EQ(server.health_check_alternate_port, 0);
  EXPECT_EQ(server.where.line, 4);
  EXPECT_EQ(server.where.column, 7);

  EXPECT_EQ(farm.protocol.timeout, seconds(30));
  EXPECT_TRUE(farm.protocol.preserve_host_header);
  EXPECT_FALSE(farm.protocol.reverse_rewrite_host_in_response_headers);
  EXPECT_TRUE(farm.protocol.keep_alive);
  EXPECT_EQ(farm.protocol.http_version, HttpVersionMode::PassThrough);
  EXPECT_EQ(farm.protocol.x_forwarded_for_header_name, "X-Forwarded-For");
  EXPECT_TRUE(farm.protocol.include_port_in_x_forwarded_for);
  EXPECT_EQ(farm.protocol.max_forwards, 10u);

  EXPECT_EQ(farm.health_check.url, "");
  EXPECT_EQ(farm.health_check.interval, seconds(30));
  EXPECT_EQ(farm.health_check.timeout, seconds(30));
  EXPECT_EQ(farm.health_check.retries, 3u);
  EXPECT_EQ(farm.health_check.status_code_match, "200-399");
  EXPECT_EQ(farm.health_check.live_traffic_failure_codes, "500-");
  EXPECT_EQ(farm.health_check.max_live_traffic_failures, 10u);
  EXPECT_EQ(farm.health_check.min_servers, 0u);

  EXPECT_FALSE(farm.affinity.use_cookie);
  EXPECT_EQ(farm.affinity.cookie_name, "ARRAffinity");
  EXPECT_EQ(farm.load_balancing.algorithm, balancer::Algorithm::WeightedRoundRobin);
  EXPECT_EQ(farm.load_balancing.least_response_time_period, seconds(5));
}

TEST(ConfigDefaults, FarmProtocolDefaultsDoNotComeFromGlobalProxy) {
  Config config = load_ok(farm_with("      <server address=\"a\"/>\n",
                                    "  <system.webServer>\n"
                                    "    <proxy enabled=\"true\" timeout=\"00:05:00\"\n"
                                    "           reverseRewriteHostInResponseHeaders=\"true\"/>\n"
                                    "  </system.webServer>\n"));
  EXPECT_TRUE(config.global_proxy_enabled);
  EXPECT_EQ(config.global_proxy.timeout, minutes(5));
  EXPECT_EQ(config.farms[0].protocol.timeout, seconds(30));
  EXPECT_TRUE(config.farms[0].protocol.preserve_host_header);
  EXPECT_FALSE(config.farms[0].protocol.reverse_rewrite_host_in_response_headers);
}

// ---------------------------------------------------------------------------------------------
// Case-insensitive names and values

TEST(ConfigNames, LowercaseSpellingFromTheIncidentReport) {
  Config config = load_ok(
      "<configuration><webFarms>"
      "<webfarm name=\"f\"><server address=\"127.0.0.2\"><applicationrequestrouting "
      "httpport=\"8080\" weight=\"3\"/></server></webfarm>"
      "</webFarms></configuration>");
  ASSERT_EQ(config.farms.size(), 1u);
  ASSERT_EQ(config.farms[0].servers.size(), 1u);
  EXPECT_EQ(config.farms[0].servers[0].address, "127.0.0.2");
  EXPECT_EQ(config.farms[0].servers[0].http_port, 8080);
  EXPECT_EQ(config.farms[0].servers[0].weight, 3u);
}

TEST(ConfigNames, SectionNamesAndValuesIgnoreCase) {
  Config config = load_ok(
      "<CONFIGURATION><WEBFARMS><WebFarm Name=\"f\" ENABLED=\"FALSE\">"
      "<Server Address=\"a\" />"
      "<ApplicationRequestRouting><LoadBalancing algorithm=\"weightedroundrobin\"/>"
      "<Protocol httpVersion=\"HTTP11\" keepAlive=\"False\"/></ApplicationRequestRouting>"
      "</WebFarm></WEBFARMS></CONFIGURATION>");
  const FarmConfig& farm = config.farms.at(0);
  EXPECT_FALSE(farm.enabled);
  EXPECT_EQ(farm.load_balancing.algorithm, balancer::Algorithm::WeightedRoundRobin);
  EXPECT_EQ(farm.protocol.http_version, HttpVersionMode::Http11);
  EXPECT_FALSE(farm.protocol.keep_alive);
}

TEST(ConfigNames, FindFarmIsCaseInsensitive) {
  Config config = load_ok(farm_with("      <server address=\"a\"/>\n"));
  ASSERT_NE(config.find_farm("F"), nullptr);
  EXPECT_EQ(config.find_farm("F")->name, "f");
  EXPECT_EQ(config.find_farm("g"), nullptr);
}

// ---------------------------------------------------------------------------------------------
// ARR's example configurations (arr.md §5) and real-shaped files

TEST(ConfigExamples, A_OneFarmHostRoutedWeighted) {
  Config config = load_data_file("arr_example_a.config");
  ASSERT_EQ(config.farms.size(), 1u);
  const FarmConfig& shop = config.farms[0];
  EXPECT_EQ(shop.name, "shop");
  ASSERT_EQ(shop.servers.size(), 2u);
  EXPECT_EQ(shop.servers[0].address, "10.0.1.11");
  EXPECT_EQ(shop.servers[0].weight, 200u);
  EXPECT_EQ(shop.servers[1].weight, 100u);
  EXPECT_EQ(shop.servers[1].http_port, 8080);
  EXPECT_EQ(shop.health_check.url, "http://shop.example.com/healthz");
  EXPECT_EQ(shop.health_check.interval, seconds(10));
  EXPECT_EQ(shop.health_check.timeout, seconds(5));
  EXPECT_EQ(shop.health_check.status_code_match, "200-299");
  EXPECT_EQ(shop.health_check.response_match, "ok");
  EXPECT_EQ(shop.protocol.timeout, seconds(90));
  EXPECT_FALSE(shop.protocol.include_port_in_x_forwarded_for);
  EXPECT_TRUE(shop.affinity.use_cookie);

  ASSERT_EQ(config.global_rules.size(), 1u);
  const RuleConfig& rule = config.global_rules[0];
  EXPECT_EQ(rule.name, "ARR_shop_loadbalance");
  EXPECT_EQ(rule.pattern_syntax, PatternSyntax::Wildcard);
  EXPECT_TRUE(rule.stop_processing);
  EXPECT_EQ(rule.match_url, "*");
  ASSERT_EQ(rule.conditions.size(), 1u);
  EXPECT_EQ(rule.conditions[0].input, "{HTTP_HOST}");
  EXPECT_EQ(rule.conditions[0].pattern, "shop.example.com");
  EXPECT_EQ(rule.action, ActionType::Rewrite);
  EXPECT_EQ(rule.action_url, "http://shop/{R:0}");
  EXPECT_TRUE(config.ignored.empty());
}

TEST(ConfigExamples, B_TwoFarmsHashingAndGlobalProxy) {
  Config config = load_data_file("arr_example_b.config");
  ASSERT_EQ(config.farms.size(), 2u);
  const FarmConfig& api = config.farms[0];
  EXPECT_EQ(api.servers.at(1).https_port, 8443);
  EXPECT_EQ(api.servers.at(1).http_port, 80);
  EXPECT_EQ(api.health_check.min_servers, 1u);
  EXPECT_EQ(api.health_check.live_traffic_failure_codes, "500-599");
  EXPECT_EQ(api.health_check.max_live_traffic_failures, 20u);
  EXPECT_EQ(api.health_check.live_traffic_failure_period, minutes(1));
  EXPECT_EQ(api.load_balancing.algorithm, balancer::Algorithm::RequestHash);
  EXPECT_EQ(api.load_balancing.hash_server_variable, "QUERY_STRING");
  EXPECT_EQ(api.load_balancing.query_string_names, "tenant");
  EXPECT_EQ(config.farms[1].protocol.timeout, seconds(15));

  EXPECT_TRUE(config.global_proxy_enabled);
  EXPECT_TRUE(config.global_proxy.preserve_host_header);
  EXPECT_FALSE(config.global_proxy.reverse_rewrite_host_in_response_headers);

  ASSERT_EQ(config.global_rules.size(), 2u);
  const RuleConfig& https_rule = config.global_rules[0];
  EXPECT_EQ(https_rule.pattern_syntax, PatternSyntax::ECMAScript);
  EXPECT_EQ(https_rule.logical_grouping, LogicalGrouping::MatchAll);
  ASSERT_EQ(https_rule.conditions.size(), 2u);
  EXPECT_EQ(https_rule.conditions[1].pattern, "^on$");
  ASSERT_EQ(https_rule.server_variables.size(), 1u);
  EXPECT_EQ(https_rule.server_variables[0].name, "HTTP_X_FORWARDED_PROTO");
  EXPECT_EQ(https_rule.server_variables[0].value, "https");
  EXPECT_TRUE(https_rule.server_variables[0].replace);
  EXPECT_EQ(https_rule.action_url, "https://api/{R:1}");

  EXPECT_TRUE(ignored_list(config).empty());
}

TEST(ConfigExamples, C_ApplicationPoolExtension) {
  Config config = load_data_file("arr_example_c.config");
  EXPECT_EQ(config.application_pools,
            (std::vector<std::string>{"ProxyPool-Billing", "ProxyPool-Portal"}));
  ASSERT_EQ(config.farms.size(), 2u);
  EXPECT_EQ(config.farms[0].application_pool, "ProxyPool-Billing");
  EXPECT_EQ(config.farms[1].application_pool, "ProxyPool-Portal");
  EXPECT_EQ(config.farms[1].affinity.cookie_name, "PortalAffinity");
  EXPECT_EQ(config.farms[1].health_check.interval, seconds(30));
  EXPECT_EQ(config.global_rules.size(), 2u);
}

TEST(ConfigExamples, D_OperationsKnobs) {
  Config config = load_data_file("arr_example_d.config");
  const FarmConfig& app = config.farms.at(0);
  ASSERT_EQ(app.servers.size(), 3u);
  EXPECT_TRUE(app.servers[0].enabled);
  EXPECT_FALSE(app.servers[1].enabled);
  EXPECT_EQ(app.servers[2].weight, 50u);
  EXPECT_EQ(app.servers[2].http_port, 5000);
  EXPECT_EQ(app.servers[2].health_check_alternate_port, 5001);
  EXPECT_EQ(app.health_check.retries, 2u);
  EXPECT_EQ(app.health_check.timeout, seconds(3));
  EXPECT_EQ(app.protocol.timeout, minutes(2));
  EXPECT_EQ(config.farms.at(1).name, "app-pilot");
  EXPECT_EQ(config.global_rules.at(0).action_url, "http://app-pilot/{R:1}");
  EXPECT_EQ(config.global_rules.at(0).conditions.at(1).pattern, "(^|;\\s*)pilot=1(;|$)");
  EXPECT_EQ(ignored_list(config),
            (std::vector<std::string>{
                "15: webFarm[app]/applicationRequestRouting/protocol/@minResponseBuffer",
                "15: webFarm[app]/applicationRequestRouting/protocol/@responseBufferLimit"}));
}

TEST(ConfigExamples, IncidentFragmentVerbatim) {
  Config config = load_data_file("incident_fragment.config");
  const FarmConfig& farm = config.farms.at(0);
  EXPECT_EQ(farm.name, "wf_johndoe.place.com_lab");
  EXPECT_EQ(farm.application_pool, "johndoe.place.com_lab");
  EXPECT_EQ(farm.servers.at(0).address, "wa100.place.com");
  EXPECT_TRUE(farm.affinity.use_cookie);
  EXPECT_EQ(farm.affinity.cookie_name, "ARRAffinity_johndoe.place.com_lab");
  EXPECT_FALSE(farm.protocol.reverse_rewrite_host_in_response_headers);
  EXPECT_TRUE(ignored_list(config).empty());
  EXPECT_TRUE(farm.cache.configured);
}

TEST(ConfigExamples, RealShapedApplicationHostConfig) {
  Config config = load_data_file("real_applicationHost.config");
  EXPECT_EQ(config.farms.size(), 2u);
  EXPECT_EQ(config.global_rules.size(), 7u);
  EXPECT_EQ(config.application_pools,
            (std::vector<std::string>{"DefaultAppPool", "ProxyPool-Shop", "ProxyPool-Api"}));
  EXPECT_TRUE(config.global_proxy_enabled);
  EXPECT_EQ(config.global_proxy.timeout, minutes(1));  // not the <location>'s proxy
  ASSERT_EQ(config.listeners.size(), 4u);
  EXPECT_EQ(config.listeners[0].address, "0.0.0.0:80");
  EXPECT_FALSE(config.listeners[0].tls);
  EXPECT_EQ(config.listeners[1].address, "0.0.0.0:443");
  EXPECT_TRUE(config.listeners[1].tls);
  EXPECT_EQ(config.listeners[3].address, "[::1]:8080");
  EXPECT_EQ(config.admin_address, "127.0.0.1:9181");
  EXPECT_EQ(config.access_log.path, "/var/log/harrow/access.log");
  EXPECT_EQ(config.access_log.format, AccessLogFormat::Json);
  EXPECT_EQ(config.limits.max_connections, 5000u);
  EXPECT_EQ(config.limits.max_idle_upstream_per_server, 16u);
  EXPECT_EQ(config.timeouts.connect, seconds(2));
  EXPECT_EQ(config.timeouts.shutdown, seconds(15));
  ASSERT_EQ(config.rewrite_maps.size(), 1u);
  EXPECT_EQ(config.rewrite_maps[0].default_value, "legacy-a.internal");
  EXPECT_EQ(config.global_rules[4].action, ActionType::Redirect);
  EXPECT_EQ(config.global_rules[4].status_code, 302u);
  EXPECT_EQ(config.global_rules[6].status_code, 403u);
  EXPECT_EQ(config.global_rules[6].status_reason, "Forbidden");
  EXPECT_EQ(ignored_list(config),
            (std::vector<std::string>{
                "49: site[Default Web Site]/bindings/binding[808:*] (protocol net.tcp)",
                "58: site[shop]/bindings/binding[*:443:shop.example.com]/@sslFlags",
                "158: webFarms/applicationRequestRouting"}));
}

TEST(ConfigIgnored, CacheAndDiskCacheSettingsAreRead) {
  Config config = load_ok(
      "<configuration>\n"
      "  <webFarms><webFarm name=\"f\"><server address=\"a\"/><applicationRequestRouting>\n"
      "    <protocol logCacheHitName=\"X-Hit\"><cache requestConsolidationEnabled=\"true\"\n"
      "      requestConsolidationTimeout=\"00:00:02\" queryStringHandling=\"NoCaching\"\n"
      "      validationInterval=\"00:00:30\"/></protocol>\n"
      "  </applicationRequestRouting></webFarm></webFarms>\n"
      "  <system.webServer><diskCache><driveLocation path=\"/c\" maxUsage=\"1\"/>\n"
      "    <driveLocation path=\"/d\" maxUsage=\"1\"/></diskCache>\n"
      "  </system.webServer>\n"
      "  <harrow><memoryCache maxCacheSize=\"16\" maxResponseSize=\"4096\"/></harrow>\n"
      "</configuration>\n");
  const CacheConfig& cache = config.farms.at(0).cache;
  EXPECT_TRUE(cache.active());
  EXPECT_TRUE(cache.request_consolidation);
  EXPECT_EQ(cache.request_consolidation_timeout, seconds(2));
  EXPECT_EQ(cache.query_string_handling, QueryStringHandling::NoCaching);
  EXPECT_EQ(cache.validation_interval, seconds(30));
  EXPECT_EQ(config.farms.at(0).protocol.log_cache_hit_name, "X-Hit");
  EXPECT_EQ(config.memory_cache.max_cache_size_mb, 16u);
  EXPECT_EQ(config.memory_cache.max_response_size, 4096u);
  EXPECT_EQ(config.disk_cache.path, "/c");
  EXPECT_EQ(config.disk_cache.max_bytes(), uint64_t{1} << 30);
  EXPECT_EQ(ignored_list(config),
            std::vector<std::string>{"8: diskCache/driveLocation (only the first is used)"});
}

TEST(ConfigExamples, OtherIisSectionsAreIgnoredSilently) {
  Config config = load_ok(
      "<configuration>\n"
      "  <configSections><section name=\"x\" whatever=\"1\"/></configSections>\n"
      "  <system.web><compilation debug=\"true\"/></system.web>\n"
      "  <system.webServer><modules><add name=\"m\"/></modules></system.webServer>\n"
      "  <location path=\"site\"><system.webServer><proxy bogus=\"1\"/></system.webServer>"
      "</location>\n"
      "  <system.applicationHost><log centralLogFileMode=\"Site\"/></system.applicationHost>\n"
      "</configuration>\n");
  EXPECT_TRUE(config.ignored.empty());
}

// ---------------------------------------------------------------------------------------------
// Errors, each with its exact position

struct BadConfig {
  const char* name;
  std::string xml;
  std::vector<std::string> errors;
};

void PrintTo(const BadConfig& bad, std::ostream* out) {
  *out << bad.name;
}

class ConfigErrors : public testing::TestWithParam<BadConfig> {};

TEST_P(ConfigErrors, ReportsExactly) {
  EXPECT_EQ(formatted_errors(GetParam().xml), GetParam().errors);
}

const std::string kServer = "      <server address=\"a\"/>\n";

INSTANTIATE_TEST_SUITE_P(
    Table, ConfigErrors,
    testing::Values(
        BadConfig{"XmlUnexpectedEnd",
                  "<configuration>\n  <webFarms>\n    <webFarm name=\"x\">\n",
                  {"f.config:4:1: error: XML: unexpected end of file (element 'webFarm' is not "
                   "closed)"}},
        BadConfig{"XmlTagMismatch",
                  "<configuration>\n  <webFarms>\n    <webFarm name=\"x\">\n  </webFarms>\n"
                  "</configuration>\n",
                  {"f.config:4:3: error: XML: start-end tags mismatch (element 'webFarm' is not "
                   "closed)"}},
        BadConfig{"XmlBadAttribute",
                  "<configuration>\n  <webFarms>\n    <webFarm name=x>\n",
                  {"f.config:3:19: error: XML: error parsing element attribute (inside "
                   "<webFarm>)"}},
        BadConfig{"XmlEmptyFile", "", {"f.config:1:1: error: XML: no document element found"}},
        BadConfig{"XmlTwoRoots",
                  "<configuration/>\n<configuration/>\n",
                  {"f.config:2:1: error: XML: a second root element <configuration> after "
                   "<configuration>"}},
        BadConfig{"XmlNulByte",
                  std::string("<configuration>\n <x\0/>", 22),
                  {"f.config:2:4: error: XML: NUL byte in the file (is it UTF-16? Harrow reads "
                   "UTF-8)"}},
        BadConfig{"Utf16",
                  "\xFF\xFE<",
                  {"f.config:1:1: error: the file is UTF-16; Harrow reads UTF-8 (save it as "
                   "UTF-8)"}},
        BadConfig{"WrongRoot",
                  "<?xml version=\"1.0\"?>\n<webFarms/>\n",
                  {"f.config:2:1: error: the root element is <webFarms>; expected "
                   "<configuration>"}},
        BadConfig{"UnknownAttribute",
                  farm_with("      <server address=\"a\" bogus=\"1\"/>\n"),
                  {"f.config:4:27: error: unknown attribute 'bogus' on <server>"}},
        BadConfig{"UnknownAttributeWithHint",
                  farm_with("      <server address=\"a\">\n"
                            "        <applicationRequestRouting wieght=\"3\"/>\n"
                            "      </server>\n"),
                  {"f.config:5:36: error: unknown attribute 'wieght' on "
                   "<applicationRequestRouting>; did you mean 'weight'?"}},
        BadConfig{"UnknownElementWithHint",
                  farm_with(kServer + "      <applicationRequestRouting>\n"
                                      "        <healthChek url=\"http://x/\"/>\n"
                                      "      </applicationRequestRouting>\n"),
                  {"f.config:6:9: error: unknown element <healthChek> in "
                   "<applicationRequestRouting>; did you mean 'healthCheck'?"}},
        BadConfig{"UnknownElementPrefixHint",
                  farm_with(kServer + "      <applicationRequestRouting><load/>"
                                      "</applicationRequestRouting>\n"),
                  {"f.config:5:34: error: unknown element <load> in "
                   "<applicationRequestRouting>; did you mean 'loadBalancing'?"}},
        BadConfig{"UnknownHarrowElement",
                  "<configuration>\n  <harrow>\n    <lisen address=\"127.0.0.1:80\"/>\n"
                  "  </harrow>\n</configuration>\n",
                  {"f.config:3:5: error: unknown element <lisen> in <harrow>; did you mean "
                   "'listen'?"}},
        BadConfig{"UnknownRewriteChild",
                  "<configuration><system.webServer><rewrite>\n<globalRule/>\n"
                  "</rewrite></system.webServer></configuration>",
                  {"f.config:2:1: error: unknown element <globalRule> in <rewrite>; did you "
                   "mean 'globalRules'?"}},
        BadConfig{"WeightOutOfRange",
                  farm_with("      <server address=\"a\">"
                            "<applicationRequestRouting weight=\"0\"/></server>\n"),
                  {"f.config:4:54: error: bad value '0' for attribute 'weight' on "
                   "<applicationRequestRouting>: expected an integer from 1 to 4294967295"}},
        BadConfig{"WeightTooLarge",
                  farm_with("      <server address=\"a\">"
                            "<applicationRequestRouting weight=\"4294967296\"/></server>\n"),
                  {"f.config:4:54: error: bad value '4294967296' for attribute 'weight' on "
                   "<applicationRequestRouting>: expected an integer from 1 to 4294967295"}},
        BadConfig{"PortOutOfRange",
                  farm_with("      <server address=\"a\">"
                            "<applicationRequestRouting httpPort=\"70000\" httpsPort=\"0\"/>"
                            "</server>\n"),
                  {"f.config:4:54: error: bad value '70000' for attribute 'httpPort' on "
                   "<applicationRequestRouting>: expected an integer from 1 to 65535",
                   "f.config:4:71: error: bad value '0' for attribute 'httpsPort' on "
                   "<applicationRequestRouting>: expected an integer from 1 to 65535"}},
        BadConfig{"BadBool",
                  farm_with("      <server address=\"a\" enabled=\"yes\"/>\n"),
                  {"f.config:4:27: error: bad value 'yes' for attribute 'enabled' on <server>: "
                   "expected true or false"}},
        BadConfig{"BadEnum",
                  farm_with(kServer + "      <applicationRequestRouting>\n"
                                      "        <loadBalancing algorithm=\"Fastest\"/>\n"
                                      "      </applicationRequestRouting>\n"),
                  {"f.config:6:24: error: bad value 'Fastest' for attribute 'algorithm' on "
                   "<loadBalancing>: expected one of WeightedRoundRobin, LeastRequests, "
                   "LeastResponseTime, WeightedTotalTraffic, RequestHash"}},
        BadConfig{"BadTimeSpanSyntax",
                  farm_with(kServer + "      <applicationRequestRouting>\n"
                                      "        <protocol timeout=\"30s\"/>\n"
                                      "      </applicationRequestRouting>\n"),
                  {"f.config:6:19: error: bad value '30s' for attribute 'timeout' on <protocol>: "
                   "expected a timeSpan (hh:mm:ss[.fffffff] or d.hh:mm:ss) from 00:00:01 to "
                   "1.00:00:00"}},
        BadConfig{"TimeSpanBelowArrMinimum",
                  farm_with(kServer +
                            "      <applicationRequestRouting>\n"
                            "        <healthCheck timeout=\"00:00:00\" interval=\"1.00:00:01\"/>\n"
                            "      </applicationRequestRouting>\n"),
                  {"f.config:6:22: error: bad value '00:00:00' for attribute 'timeout' on "
                   "<healthCheck>: expected a timeSpan (hh:mm:ss[.fffffff] or d.hh:mm:ss) from "
                   "00:00:01 to 1.00:00:00",
                   "f.config:6:41: error: bad value '1.00:00:01' for attribute 'interval' on "
                   "<healthCheck>: expected a timeSpan (hh:mm:ss[.fffffff] or d.hh:mm:ss) from "
                   "00:00:00 to 1.00:00:00"}},
        BadConfig{"BadStatusCodes",
                  farm_with(kServer + "      <applicationRequestRouting>\n"
                                      "        <healthCheck statusCodeMatch=\"200-99\"/>\n"
                                      "      </applicationRequestRouting>\n"),
                  {"f.config:6:22: error: bad value '200-99' for attribute 'statusCodeMatch' on "
                   "<healthCheck>: expected status codes such as 200-399 or 500- (codes 100 to "
                   "999, comma-separated)"}},
        BadConfig{"DuplicateAttribute",
                  farm_with("      <server address=\"a\" Address=\"b\"/>\n"),
                  {"f.config:4:27: error: duplicate attribute 'Address' on <server>"}},
        BadConfig{"DuplicateFarmNameIgnoringCase",
                  "<configuration>\n  <webFarms>\n    <webFarm name=\"shop\"/>\n"
                  "    <webFarm name=\"SHOP\"/>\n  </webFarms>\n</configuration>\n",
                  {"f.config:4:5: error: duplicate webFarm name 'SHOP' (first defined at line "
                   "3, column 5)"}},
        BadConfig{"DuplicateServerAddress",
                  farm_with(kServer + "      <server address=\"A\"/>\n"),
                  {"f.config:5:7: error: duplicate server address 'A' in webFarm 'f' (first "
                   "defined at line 4, column 7)"}},
        BadConfig{"EmptyFarmNameAndMissingAddress",
                  "<configuration>\n  <webFarms>\n    <webFarm name=\"\">\n      <server/>\n"
                  "    </webFarm>\n  </webFarms>\n</configuration>\n",
                  {"f.config:3:14: error: attribute 'name' on <webFarm> must not be empty",
                   "f.config:4:7: error: missing required attribute 'address' on <server>"}},
        BadConfig{"DuplicateSingletonElement",
                  farm_with(kServer + "      <applicationRequestRouting>\n"
                                      "        <protocol/>\n"
                                      "        <protocol/>\n"
                                      "      </applicationRequestRouting>\n"),
                  {"f.config:7:9: error: duplicate <protocol> in <applicationRequestRouting>: at "
                   "most one is allowed"}},
        BadConfig{"ConfigSourceIsNotFollowed",
                  "<configuration>\n  <webFarms configSource=\"farms.config\"/>\n"
                  "</configuration>\n",
                  {"f.config:2:13: error: configSource on <webFarms> is not supported: put the "
                   "section's contents in this file"}}));

// Rules live deeper; these share one preamble so that line numbers stay readable.
std::string rules_with(const std::string& rules, const std::string& proxy = "") {
  return "<configuration>\n"                                               // 1
         "  <webFarms>\n"                                                  // 2
         "    <webFarm name=\"shop\"><server address=\"a\"/></webFarm>\n"  // 3
         "    <webFarm name=\"api\"/>\n"                                   // 4
         "  </webFarms>\n"                                                 // 5
         "  <system.webServer>\n" +                                        // 6
         (proxy.empty() ? "  <!-- no proxy -->\n" : proxy + "\n") +        // 7
         "    <rewrite>\n"                                                 // 8
         "      <globalRules>\n" +                                         // 9
         rules +                                                           // 10 onwards
         "      </globalRules>\n"
         "    </rewrite>\n"
         "  </system.webServer>\n"
         "</configuration>\n";
}

INSTANTIATE_TEST_SUITE_P(
    Rules, ConfigErrors,
    testing::Values(
        BadConfig{"RuleWithoutMatch",
                  rules_with("        <rule name=\"r\">\n"
                             "          <action type=\"Rewrite\" url=\"http://shop/\"/>\n"
                             "        </rule>\n"),
                  {"f.config:10:9: error: rule 'r' has no <match url>"}},
        BadConfig{"MatchWithoutUrl",
                  rules_with("        <rule name=\"r\">\n"
                             "          <match ignoreCase=\"false\"/>\n"
                             "        </rule>\n"),
                  {"f.config:11:11: error: rule 'r' has no <match url>"}},
        BadConfig{"DuplicateRuleNames",
                  rules_with("        <rule name=\"r\"><match url=\".*\"/></rule>\n"
                             "        <rule name=\"R\"><match url=\".*\"/></rule>\n"),
                  {"f.config:11:9: error: duplicate rule name 'R' (first defined at line 10, "
                   "column 9)"}},
        BadConfig{"RewriteToUnknownFarm",
                  rules_with("        <rule name=\"x\">\n"
                             "          <match url=\"(.*)\"/>\n"
                             "          <action type=\"Rewrite\" url=\"http://shp/{R:1}\"/>\n"
                             "        </rule>\n"),
                  {"f.config:12:11: error: rule 'x' rewrites to unknown farm 'shp'; farms are: "
                   "shop, api (the URL names no farm; proxying to a host that is not a farm "
                   "needs <system.webServer><proxy enabled=\"true\"/> in "
                   "applicationHost.config)"}},
        BadConfig{"RegexDoesNotCompile",
                  rules_with("        <rule name=\"x\">\n"
                             "          <match url=\"^(api\"/>\n"
                             "          <conditions>\n"
                             "            <add input=\"{HTTP_HOST}\" pattern=\"[a-\"/>\n"
                             "          </conditions>\n"
                             "        </rule>\n"),
                  {"f.config:11:11: error: rule 'x': pattern '^(api' does not compile: missing "
                   "closing parenthesis at offset 5",
                   "f.config:13:13: error: rule 'x': pattern '[a-' does not compile: missing "
                   "terminating ] for character class at offset 3"}},
        BadConfig{
            "UnsupportedMatchType",
            rules_with("        <rule name=\"x\">\n"
                       "          <match url=\".*\"/>\n"
                       "          <conditions>\n"
                       "            <add input=\"{REQUEST_FILENAME}\" matchType=\"IsFile\"/>\n"
                       "          </conditions>\n"
                       "        </rule>\n"),
            {"f.config:13:13: error: rule 'x': matchType 'IsFile' is not supported (Harrow "
             "serves no files); use Pattern"}},
        BadConfig{
            "ActionsNeedTheirArguments",
            rules_with("        <rule name=\"x\"><match url=\".*\"/>\n"
                       "          <action type=\"Redirect\"/></rule>\n"
                       "        <rule name=\"y\"><match url=\".*\"/>\n"
                       "          <action type=\"CustomResponse\"/></rule>\n"
                       "        <rule name=\"z\"><match url=\".*\"/>\n"
                       "          <action type=\"CustomResponse\" statusCode=\"302\"/></rule>\n"),
            {"f.config:11:11: error: rule 'x': Redirect action has no url",
             "f.config:13:11: error: rule 'y': CustomResponse action needs a statusCode",
             "f.config:15:11: error: rule 'z': statusCode 302 is not allowed for "
             "CustomResponse; use a Redirect action"}},
        // A reference Harrow cannot give a value is an error where it is written, never an
        // empty string at run time.
        BadConfig{
            "UnknownVariablesMapsAndFunctions",
            rules_with(
                "        <rule name=\"x\"><match url=\".*\"/>\n"
                "          <conditions><add input=\"{HTTP_HOTS}{SERVER_NAEM}\"/></conditions>\n"
                "          <action type=\"Rewrite\" url=\"http://shop/{NoSuchMap:{R:0}}\"/>\n"
                "        </rule>\n"
                "        <rule name=\"y\"><match url=\".*\"/>\n"
                "          <serverVariables><set name=\"X_A\" value=\"{REQUEST_FILENAME}\"/>"
                "</serverVariables>\n"
                "          <action type=\"Redirect\" url=\"/{tolower:{RESPONSE_Location}}\"/>\n"
                "        </rule>\n"),
            {"f.config:11:28: error: rule 'x': {SERVER_NAEM} is not a server variable Harrow "
             "knows, and no rule sets it (it would always be empty); did you mean 'SERVER_NAME'?",
             "f.config:12:34: error: rule 'x': {NoSuchMap:...} names no rewrite map, provider or "
             "function (ToLower, UrlEncode, UrlDecode, HtmlEncode)",
             "f.config:15:44: error: rule 'y': {REQUEST_FILENAME} is a file-system path in IIS; "
             "Harrow maps no URL to files, so it has no value",
             "f.config:16:35: error: rule 'y': {RESPONSE_Location} is a response header: only "
             "outbound rules read it"}}));

INSTANTIATE_TEST_SUITE_P(
    Listeners, ConfigErrors,
    testing::Values(
        BadConfig{"BadListenAddresses",
                  "<configuration>\n  <harrow>\n"
                  "    <listen address=\"127.0.0.1\"/>\n"
                  "    <listen address=\"127.0.0.1:65536\"/>\n"
                  "    <listen address=\"::1:80\"/>\n"
                  "    <listen address=\"[::g]:80\"/>\n"
                  "    <admin address=\"localhost:\"/>\n"
                  "  </harrow>\n</configuration>\n",
                  {"f.config:3:5: error: bad address '127.0.0.1' on <listen>: expected HOST:PORT "
                   "or [IPv6]:PORT with port 0..65535",
                   "f.config:4:5: error: bad address '127.0.0.1:65536' on <listen>: expected "
                   "HOST:PORT or [IPv6]:PORT with port 0..65535",
                   "f.config:5:5: error: bad address '::1:80' on <listen>: expected HOST:PORT or "
                   "[IPv6]:PORT with port 0..65535",
                   "f.config:6:5: error: bad address '[::g]:80' on <listen>: expected HOST:PORT "
                   "or [IPv6]:PORT with port 0..65535",
                   "f.config:7:5: error: bad address 'localhost:' on <admin>: expected HOST:PORT "
                   "or [IPv6]:PORT with port 0..65535"}},
        BadConfig{"BadBindingInformation",
                  "<configuration><system.applicationHost><sites>\n"
                  "  <site name=\"s\"><bindings>\n"
                  "    <binding protocol=\"http\" bindingInformation=\"*:80\"/>\n"
                  "  </bindings></site>\n"
                  "</sites></system.applicationHost></configuration>\n",
                  {"f.config:3:5: error: bad bindingInformation '*:80' on <binding>: expected "
                   "IP:PORT:HOST such as *:80: or [::]:443:www.example.com, with port 0..65535"}}));

INSTANTIATE_TEST_SUITE_P(
    ApplicationPools, ConfigErrors,
    testing::Values(
        BadConfig{"PoolNotDeclared",
                  "<configuration>\n"
                  "  <system.applicationHost><applicationPools>\n"
                  "    <add name=\"ProxyPool-Billing\"/>\n"
                  "  </applicationPools></system.applicationHost>\n"
                  "  <webFarms><webFarm name=\"billing\">\n"
                  "    <applicationPool name=\"ProxyPool-Biling\"/>\n"
                  "  </webFarm></webFarms>\n"
                  "</configuration>\n",
                  {"f.config:6:5: error: webFarm 'billing' names applicationPool "
                   "'ProxyPool-Biling', which is not in <applicationPools>; did you mean "
                   "'ProxyPool-Billing'?"}},
        BadConfig{"TwoPoolsAndAnEmptyName",
                  farm_with("      <applicationPool name=\"\"/>\n"
                            "      <applicationPool name=\"b\"/>\n"),
                  {"f.config:4:24: error: attribute 'name' on <applicationPool> must not be empty",
                   "f.config:5:7: error: duplicate <applicationPool> in <webFarm>: at most one is "
                   "allowed"}},
        BadConfig{"PoolWithoutName",
                  farm_with("      <applicationPool/>\n"),
                  {"f.config:4:7: error: missing required attribute 'name' on "
                   "<applicationPool>"}}));

TEST(ConfigErrorsTogether, AllErrorsAreReportedInFileOrder) {
  std::string xml =
      "<configuration>\n"                                                                  // 1
      "  <system.webServer><rewrite><globalRules>\n"                                       // 2
      "    <rule name=\"r\"><match url=\"(\"/>\n"                                          // 3
      "      <action type=\"Rewrite\" url=\"http://nowhere/\"/></rule>\n"                  // 4
      "  </globalRules></rewrite></system.webServer>\n"                                    // 5
      "  <webFarms>\n"                                                                     // 6
      "    <webFarm name=\"f\" bogus=\"1\">\n"                                             // 7
      "      <server address=\"a\"><applicationRequestRouting weight=\"-1\"/></server>\n"  // 8
      "    </webFarm>\n"                                                                   // 9
      "  </webFarms>\n"                                                                    // 10
      "</configuration>\n";
  EXPECT_EQ(
      formatted_errors(xml),
      (std::vector<std::string>{
          "f.config:3:20: error: rule 'r': pattern '(' does not compile: missing closing "
          "parenthesis at offset 1",
          "f.config:4:7: error: rule 'r' rewrites to unknown farm 'nowhere'; farms are: f (the "
          "URL names no farm; proxying to a host that is not a farm needs "
          "<system.webServer><proxy enabled=\"true\"/> in applicationHost.config)",
          "f.config:7:23: error: unknown attribute 'bogus' on <webFarm>",
          "f.config:8:54: error: bad value '-1' for attribute 'weight' on "
          "<applicationRequestRouting>: expected an integer from 1 to 4294967295"}));
}

// ---------------------------------------------------------------------------------------------
// Rules: what is and is not an error

// URL Rewrite's outbound schema: filterByTags defaults to "None" (the whole body), occurrences
// to 0 (every match), and conditions track all captures unless told not to.
TEST(ConfigRules, OutboundRulesWithoutTagsMatchTheWholeBody) {
  Config config = load_ok(
      "<configuration><system.webServer><rewrite><outboundRules>"
      "<rule name=\"a\"><match pattern=\"x\" occurrences=\"2\"/>"
      "<action type=\"Rewrite\" value=\"y\"/></rule>"
      "<rule name=\"b\"><match filterByTags=\"None\" pattern=\"x\"/>"
      "<conditions trackAllCaptures=\"false\"/><action type=\"Rewrite\" value=\"y\"/></rule>"
      "<rule name=\"c\"><match filterByTags=\"A\" pattern=\"x\"/></rule>"
      "</outboundRules></rewrite></system.webServer></configuration>");
  ASSERT_EQ(config.outbound.rules.size(), 3u);
  EXPECT_TRUE(config.outbound.rules[0].whole_body);
  EXPECT_EQ(config.outbound.rules[0].occurrences, 2u);
  EXPECT_TRUE(config.outbound.rules[0].track_all_captures);
  EXPECT_TRUE(config.outbound.rules[1].whole_body);
  EXPECT_FALSE(config.outbound.rules[1].track_all_captures);
  EXPECT_FALSE(config.outbound.rules[2].whole_body);
}

TEST(ConfigRules, AbsoluteRewriteIsFineWhenProxyIsEnabled) {
  Config config = load_ok(rules_with(
      "        <rule name=\"x\"><match url=\"(.*)\"/>\n"
      "          <action type=\"Rewrite\" url=\"http://localhost:8081/{R:1}\"/></rule>\n",
      "    <proxy enabled=\"true\"/>"));
  EXPECT_EQ(config.global_rules.at(0).action_url, "http://localhost:8081/{R:1}");
}

TEST(ConfigRules, FarmTargetsMatchIgnoringCaseAndDynamicHostsAreNotChecked) {
  Config config =
      load_ok(rules_with("        <rule name=\"a\" patternSyntax=\"Wildcard\"><match url=\"*\"/>"
                         "<action type=\"Rewrite\" url=\"HTTPS://SHOP/x\"/>"
                         "</rule>\n"
                         "        <rule name=\"b\"><match url=\"(.*)\"/>"
                         "<action type=\"Rewrite\" url=\"http://{HTTP_HOST}/{R:1}\"/></rule>\n"
                         "        <rule name=\"c\"><match url=\"(.*)\"/><action type=\"Rewrite\" "
                         "url=\"/local/{R:1}\"/>"
                         "</rule>\n"));
  EXPECT_EQ(config.global_rules.size(), 3u);
}

TEST(ConfigRules, WildcardPatternsAreNotCompiledAsRegexes) {
  Config config = load_ok(rules_with(
      "        <rule name=\"w\" patternSyntax=\"Wildcard\"><match url=\"(*\"/></rule>\n"));
  EXPECT_EQ(config.global_rules.at(0).match_url, "(*");
}

TEST(ConfigRules, MatchIgnoreCaseAndAbortAction) {
  Config config =
      load_ok(rules_with("        <rule name=\"x\"><match url=\"^Api/\\d+$\" ignoreCase=\"false\"/>"
                         "<action type=\"AbortRequest\"/></rule>\n"));
  EXPECT_FALSE(config.global_rules.at(0).match_ignore_case);
  EXPECT_EQ(config.global_rules.at(0).action, ActionType::AbortRequest);
}

TEST(ConfigRules, ClearAndRemoveEditTheCollection) {
  Config config =
      load_ok(rules_with("        <rule name=\"gone\"><match url=\".*\"/></rule>\n"
                         "        <clear/>\n"
                         "        <rule name=\"a\"><match url=\".*\"/></rule>\n"
                         "        <rule name=\"b\"><match url=\".*\"/></rule>\n"
                         "        <remove name=\"A\"/>\n"
                         "        <rule name=\"a\"><match url=\"x\"/></rule>\n"));
  ASSERT_EQ(config.global_rules.size(), 2u);
  EXPECT_EQ(config.global_rules[0].name, "b");
  EXPECT_EQ(config.global_rules[1].name, "a");
  EXPECT_EQ(config.global_rules[1].match_url, "x");
}

TEST(ConfigRules, RewriteMapsAreRead) {
  Config config = load_ok(
      "<configuration><system.webServer><rewrite><rewriteMaps>\n"
      "  <rewriteMap name=\"Origins\" defaultValue=\"d\">\n"
      "    <add key=\"a.example.com\" value=\"10.0.0.1\"/>\n"
      "    <add key=\"b.example.com\" value=\"10.0.0.2\"/>\n"
      "  </rewriteMap>\n"
      "</rewriteMaps></rewrite></system.webServer></configuration>\n");
  ASSERT_EQ(config.rewrite_maps.size(), 1u);
  EXPECT_EQ(config.rewrite_maps[0].name, "Origins");
  EXPECT_EQ(config.rewrite_maps[0].default_value, "d");
  ASSERT_EQ(config.rewrite_maps[0].entries.size(), 2u);
  EXPECT_EQ(config.rewrite_maps[0].entries[1].first, "b.example.com");
  EXPECT_EQ(config.rewrite_maps[0].entries[1].second, "10.0.0.2");
}

// ---------------------------------------------------------------------------------------------
// Accepted but not acted on

TEST(ConfigIgnored, ValidArrSettingsWithoutBehaviourAreListedWithTheirPaths) {
  Config config = load_ok(
      "<configuration>\n"                                                                  // 1
      "  <webFarms onDemandHealthCheck=\"true\">\n"                                        // 2
      "    <webFarm name=\"shop\" serverAutoStart=\"true\" passServerHeader=\"remove\"\n"  // 3
      "             adminUserName=\"wff\" agentUrl=\"http://{0}:8173/\">\n"                // 4
      "      <server address=\"a\"/>\n"                                                    // 5
      "      <applicationRequestRouting>\n"                                                // 6
      "        <protocol stealthMode=\"false\" minResponseBuffer=\"0\">\n"                 // 7
      "          <cache enabled=\"false\" queryStringHandling=\"Accept\"/>\n"              // 8
      "        </protocol>\n"                                                              // 9
      "        <affinity useHostName=\"true\" hostAffinityProvider=\"x\">\n"               // 10
      "          <host name=\"h\" servers=\"2\"><equivalentHost name=\"i\"/></host>\n"     // 11
      "        </affinity>\n"                                                              // 12
      "      </applicationRequestRouting>\n"                                               // 13
      "      <platformProvision><anything really=\"1\"/></platformProvision>\n"            // 14
      "    </webFarm>\n"                                                                   // 15
      "  </webFarms>\n"                                                                    // 16
      "  <system.webServer>\n"                                                             // 17
      "    <proxy xForwardedByHeaderName=\"X-By\" passConnectionCloseHeader=\"true\"/>\n"  // 18
      "    <rewrite><providers><provider name=\"p\"/></providers></rewrite>\n"             // 19
      "  </system.webServer>\n"                                                            // 20
      "</configuration>\n");
  EXPECT_TRUE(config.farms.at(0).affinity.use_host_name);
  // <cache> is acted on: read, not listed.
  EXPECT_TRUE(config.farms.at(0).cache.configured);
  EXPECT_FALSE(config.farms.at(0).cache.enabled);
  EXPECT_EQ(config.farms.at(0).cache.query_string_handling, QueryStringHandling::Accept);
  EXPECT_EQ(ignored_list(config),
            (std::vector<std::string>{
                "2: webFarms/@onDemandHealthCheck",
                "3: webFarm[shop]/@serverAutoStart",
                "3: webFarm[shop]/@passServerHeader",
                "3: webFarm[shop]/@adminUserName",
                "3: webFarm[shop]/@agentUrl",
                "7: webFarm[shop]/applicationRequestRouting/protocol/@stealthMode",
                "7: webFarm[shop]/applicationRequestRouting/protocol/@minResponseBuffer",
                "10: webFarm[shop]/applicationRequestRouting/affinity/@hostAffinityProvider",
                "14: webFarm[shop]/platformProvision",
                "18: proxy/@xForwardedByHeaderName",
                "18: proxy/@passConnectionCloseHeader",
                "19: rewrite/providers",
            }));
  EXPECT_EQ(config.ignored.at(0).where.file, "f.config");
  EXPECT_EQ(config.ignored.at(0).where.column, 3);
}

TEST(ConfigIgnored, IgnoredAttributesAreStillRangeChecked) {
  EXPECT_EQ(
      formatted_errors(farm_with(kServer + "      <applicationRequestRouting>\n"
                                           "        <protocol minResponseBuffer=\"4194304\"/>\n"
                                           "      </applicationRequestRouting>\n")),
      std::vector<std::string>{
          "f.config:6:19: error: bad value '4194304' for attribute 'minResponseBuffer' on "
          "<protocol>: expected an integer from 0 to 4194303"});
}

// ---------------------------------------------------------------------------------------------
// Application pools, listeners, <harrow>

TEST(ConfigApplicationPools, AnyNameIsAcceptedWithoutApplicationPoolsSection) {
  Config config = load_ok(farm_with("      <applicationPool name=\"whatever\"/>\n" + kServer));
  EXPECT_EQ(config.farms.at(0).application_pool, "whatever");
  EXPECT_TRUE(config.application_pools.empty());
}

TEST(ConfigApplicationPools, PoolNamesMatchIgnoringCase) {
  Config config = load_ok(farm_with("      <applicationPool name=\"proxypool\"/>\n",
                                    "  <system.applicationHost><applicationPools>"
                                    "<add name=\"ProxyPool\"/></applicationPools>"
                                    "</system.applicationHost>\n"));
  EXPECT_EQ(config.farms.at(0).application_pool, "proxypool");
}

TEST(ConfigListeners, BindingsAndHarrowListenersAreNormalisedAndDeduplicated) {
  Config config = load_ok(
      "<configuration>\n"
      "  <system.applicationHost><sites>\n"
      "    <site name=\"a\"><bindings>\n"
      "      <binding protocol=\"http\" bindingInformation=\"*:80:a.example.com\"/>\n"
      "      <binding protocol=\"HTTPS\" bindingInformation=\"[::]:443:\"/>\n"
      "    </bindings></site>\n"
      "    <site name=\"b\"><bindings>\n"
      "      <binding protocol=\"http\" bindingInformation=\"*:80:b.example.com\"/>\n"
      "      <binding protocol=\"http\" bindingInformation=\"10.1.2.3:8080:\"/>\n"
      "    </bindings></site>\n"
      "  </sites></system.applicationHost>\n"
      "  <harrow>\n"
      "    <listen address=\"*:8443\" tls=\"true\"/>\n"
      "    <listen address=\"localhost:0\"/>\n"
      "    <admin address=\"[::1]:9000\"/>\n"
      "  </harrow>\n"
      "</configuration>\n");
  ASSERT_EQ(config.listeners.size(), 5u);
  EXPECT_EQ(config.listeners[0].address, "0.0.0.0:80");
  EXPECT_EQ(config.listeners[0].where.line, 4);
  EXPECT_EQ(config.listeners[1].address, "[::]:443");
  EXPECT_TRUE(config.listeners[1].tls);
  EXPECT_EQ(config.listeners[2].address, "10.1.2.3:8080");
  EXPECT_EQ(config.listeners[3].address, "0.0.0.0:8443");
  EXPECT_TRUE(config.listeners[3].tls);
  EXPECT_EQ(config.listeners[4].address, "localhost:0");
  EXPECT_EQ(config.admin_address, "[::1]:9000");
}

TEST(ConfigListeners, Http2IsOnForTlsOffForPlainAndAnExplicitSettingWins) {
  Config config = load_ok(
      "<configuration>\n"
      "  <system.applicationHost><sites>\n"
      "    <site name=\"a\"><bindings>\n"
      "      <binding protocol=\"https\" bindingInformation=\"*:443:\"/>\n"
      "      <binding protocol=\"https\" bindingInformation=\"*:8443:\"/>\n"
      "      <binding protocol=\"http\" bindingInformation=\"*:80:\"/>\n"
      "    </bindings></site>\n"
      "  </sites></system.applicationHost>\n"
      "  <harrow>\n"
      "    <listen address=\"*:8443\" tls=\"true\" http2=\"false\"/>\n"
      "    <listen address=\"*:8080\" http2=\"true\"/>\n"
      "    <http2 maxConcurrentStreams=\"250\" initialWindowSize=\"131072\"/>\n"
      "  </harrow>\n"
      "</configuration>\n");
  ASSERT_EQ(config.listeners.size(), 4u);
  EXPECT_TRUE(config.listeners[0].http2);   // https binding: h2 by ALPN
  EXPECT_FALSE(config.listeners[1].http2);  // the same address said http2="false"
  EXPECT_FALSE(config.listeners[2].http2);  // plain binding: off
  EXPECT_TRUE(config.listeners[3].http2);   // plain listener that says so: h2c
  EXPECT_EQ(config.http2.max_concurrent_streams, 250u);
  EXPECT_EQ(config.http2.initial_window_size, 131072u);
}

TEST(ConfigHarrow, Http2SettingsAreRangeChecked) {
  EXPECT_EQ(formatted_errors("<configuration>\n<harrow>\n"
                             "  <http2 maxConcurrentStreams=\"0\"/>\n"
                             "  <listen address=\"*:80\" http2=\"maybe\"/>\n"
                             "</harrow>\n</configuration>\n")
                .size(),
            2u);
}

TEST(ConfigHarrow, TimeoutsAreRangeChecked) {
  EXPECT_EQ(formatted_errors("<configuration>\n<harrow>\n"
                             "  <timeouts connect=\"00:00:00\" shutdown=\"00:00:00\"/>\n"
                             "  <accessLog format=\"xml\"/>\n"
                             "</harrow>\n</configuration>\n"),
            (std::vector<std::string>{
                "f.config:3:13: error: bad value '00:00:00' for attribute 'connect' on "
                "<timeouts>: expected a timeSpan (hh:mm:ss[.fffffff] or d.hh:mm:ss) from "
                "00:00:00.001 to 1.00:00:00",
                "f.config:4:14: error: bad value 'xml' for attribute 'format' on <accessLog>: "
                "expected one of w3c, json"}));
}

// ---------------------------------------------------------------------------------------------
// Positions, files, formatting, summary

TEST(ConfigPositions, ByteOrderMarkDoesNotShiftColumns) {
  std::vector<std::string> errors =
      formatted_errors("\xEF\xBB\xBF<configuration bad=\"1\"><webFarms x=\"1\"/></configuration>");
  EXPECT_EQ(errors,
            std::vector<std::string>{"f.config:1:34: error: unknown attribute 'x' on <webFarms>"});
}

TEST(ConfigPositions, CrLfLineEndings) {
  std::vector<std::string> errors =
      formatted_errors("<configuration>\r\n\r\n  <harrow><x/></harrow>\r\n</configuration>\r\n");
  EXPECT_EQ(errors,
            std::vector<std::string>{"f.config:3:11: error: unknown element <x> in <harrow>"});
}

TEST(ConfigFiles, MissingFileIsAnErrorWithoutPosition) {
  LoadResult result = load_config_file("/nonexistent/harrow.config");
  EXPECT_FALSE(result.config.has_value());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].format_error(),
            "/nonexistent/harrow.config:0:0: error: cannot read the file: No such file or "
            "directory");
}

TEST(ConfigFiles, ErrorsNameTheFile) {
  LoadResult result = load_config_text("<nope/>", "/etc/harrow/harrow.config");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].where.file, "/etc/harrow/harrow.config");
}

TEST(ConfigFormat, DiagnosticFormat) {
  Diagnostic diagnostic;
  diagnostic.where = SourceLocation{.file = "a/b.config", .line = 12, .column = 5};
  diagnostic.message = "something is wrong";
  EXPECT_EQ(diagnostic.format_error(), "a/b.config:12:5: error: something is wrong");
}

TEST(ConfigSummary, ListsFarmsRulesListenersAndIgnoredSettings) {
  Config config = load_data_file("arr_example_d.config");
  std::string summary = summarize(config);
  auto contains = [&](const std::string& text) { return summary.find(text) != std::string::npos; };
  EXPECT_TRUE(contains("farms (2):")) << summary;
  EXPECT_TRUE(contains("  app  pool (none)  algorithm WeightedRoundRobin")) << summary;
  EXPECT_TRUE(contains("    app-2.internal:5000 (https 443)  weight 100  disabled")) << summary;
  EXPECT_TRUE(contains("    app-3.internal:5000 (https 443)  weight 50  enabled")) << summary;
  EXPECT_TRUE(contains("  pilot-by-cookie -> farm app-pilot (http)")) << summary;
  EXPECT_TRUE(contains("admin: http://127.0.0.1:9180")) << summary;
  EXPECT_TRUE(contains("accepted but not acted on (2):\n  " + std::string(HARROW_TEST_DATA_DIR) +
                       "/arr_example_d.config:15: "
                       "webFarm[app]/applicationRequestRouting/protocol/@minResponseBuffer"))
      << summary;
}

TEST(ConfigSummary, NotesFarmsWithoutServersAndRuleTargets) {
  Config config = load_ok(
      rules_with("        <rule name=\"to-api\"><match url=\".*\"/><action type=\"Rewrite\" "
                 "url=\"https://api/\"/></rule>\n"
                 "        <rule name=\"go\"><match url=\".*\"/><action type=\"Redirect\" "
                 "url=\"https://x/\" redirectType=\"Temporary\"/></rule>\n"
                 "        <rule name=\"stop\" enabled=\"false\"><match url=\".*\"/>"
                 "<action type=\"AbortRequest\"/></rule>\n"));
  std::string summary = summarize(config);
  EXPECT_NE(summary.find("  api  pool (none)"), std::string::npos) << summary;
  EXPECT_NE(summary.find("    (no servers: requests routed here are answered 503)"),
            std::string::npos)
      << summary;
  EXPECT_NE(summary.find("  to-api -> farm api (https)"), std::string::npos) << summary;
  EXPECT_NE(summary.find("  go -> redirect 307 to https://x/"), std::string::npos) << summary;
  EXPECT_NE(summary.find("  stop -> abort the request (disabled)"), std::string::npos) << summary;
  EXPECT_NE(summary.find("listeners (0):"), std::string::npos) << summary;
}

}  // namespace
}  // namespace harrow::config

namespace harrow::config {
namespace {

// An attribute's error points at the attribute, also when its element began lines earlier.
TEST(ConfigPositions, AttributeErrorsPointAtTheAttributeOnItsOwnLine) {
  LoadResult result = load_config_text(
      "<configuration><webFarms><webFarm name=\"f\">\n"
      "  <server address=\"a\"/>\n"
      "  <applicationRequestRouting>\n"
      "    <healthCheck url=\"http://f/\"\n"
      "                 interval=\"00:00:70\"/>\n"
      "  </applicationRequestRouting>\n"
      "</webFarm></webFarms></configuration>\n",
      "f.config");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].where.line, 5);
  EXPECT_EQ(result.errors[0].where.column, 18);
}

}  // namespace
}  // namespace harrow::config

namespace harrow::config {
namespace {

TEST(ConfigBalancing, AffinityExtensionsAndHostAllotments) {
  Config config = load_ok(
      farm_with("      <server address=\"a\"/>\n"
                "      <applicationRequestRouting>\n"
                "        <affinity useCookie=\"true\" cookieName=\"S\" useHostName=\"true\" "
                "timeout=\"00:05:00\"\n"
                "                  domain=\"example.com\" sameSite=\"None\" secure=\"true\" "
                "maxAge=\"01:00:00\"\n"
                "                  affinityFailurePolicy=\"Return503\">\n"
                "          <host name=\"big.example\" servers=\"3\"/>\n"
                "        </affinity>\n"
                "        <loadBalancing algorithm=\"RequestHash\" hashBalanceFactor=\"125\"/>\n"
                "      </applicationRequestRouting>\n"));
  const AffinityConfig& a = config.farms.at(0).affinity;
  EXPECT_TRUE(a.use_cookie);
  EXPECT_EQ(a.cookie_name, "S");
  EXPECT_TRUE(a.use_host_name);
  EXPECT_EQ(a.timeout, minutes(5));
  EXPECT_EQ(a.domain, "example.com");
  EXPECT_EQ(a.same_site, SameSite::None);
  EXPECT_TRUE(a.secure);
  EXPECT_EQ(a.max_age, minutes(60));
  EXPECT_EQ(a.failure_policy, AffinityFailurePolicy::Return503);
  ASSERT_EQ(a.hosts.size(), 1u);
  EXPECT_EQ(a.hosts[0].name, "big.example");
  EXPECT_EQ(a.hosts[0].servers, 3u);
  EXPECT_DOUBLE_EQ(config.farms[0].load_balancing.hash_balance_factor, 1.25);
}

TEST(ConfigBalancing, AffinityDefaults) {
  Config config = load_ok(farm_with("      <server address=\"a\"/>\n"));
  const AffinityConfig& a = config.farms.at(0).affinity;
  EXPECT_EQ(a.same_site, SameSite::Unset);
  EXPECT_EQ(a.failure_policy, AffinityFailurePolicy::Redistribute);
  EXPECT_EQ(a.timeout, minutes(20));
  EXPECT_EQ(config.farms[0].load_balancing.hash_balance_factor, 0);
}

TEST(ConfigBalancing, BadBalancingValuesPointAtTheAttribute) {
  EXPECT_EQ(formatted_errors(farm_with(
                "      <server address=\"a\"/>\n"
                "      <applicationRequestRouting>\n"
                "        <loadBalancing algorithm=\"RequestHash\" hashBalanceFactor=\"90\"/>\n"
                "        <affinity useCookie=\"true\" sameSite=\"Sometimes\"/>\n"
                "      </applicationRequestRouting>\n")),
            (std::vector<std::string>{
                "f.config:6:48: error: hashBalanceFactor is a percentage of the average load "
                "above 100 (e.g. 125), or 0 for none",
                "f.config:7:36: error: bad value 'Sometimes' for attribute 'sameSite' on "
                "<affinity>: expected one of None, Lax, Strict"}));
}

}  // namespace
}  // namespace harrow::config

namespace harrow::config {
namespace {

// The mistakes hand-written ARR configs make most, each explained where it was made.
struct HandWrittenMistake {
  const char* name;
  std::string xml;
  std::string error;
};

class HandWrittenMistakes : public testing::TestWithParam<HandWrittenMistake> {};

TEST_P(HandWrittenMistakes, AreExplained) {
  EXPECT_EQ(formatted_errors(GetParam().xml), std::vector<std::string>{GetParam().error});
}

INSTANTIATE_TEST_SUITE_P(
    Table, HandWrittenMistakes,
    testing::Values(
        HandWrittenMistake{"FarmsInsideSystemWebServer",
                           "<configuration>\n  <system.webServer>\n    <webFarms/>\n"
                           "  </system.webServer>\n</configuration>\n",
                           "f.config:3:5: error: webFarms belongs directly under <configuration>, "
                           "not in <system.webServer>; move it there"},
        HandWrittenMistake{"PortOnServer",
                           farm_with("      <server address=\"a\" port=\"8080\"/>\n"),
                           "f.config:4:27: error: unknown attribute 'port' on <server>; did you "
                           "mean <applicationRequestRouting httpPort=\"…\"/> inside <server>?"},
        HandWrittenMistake{"HealthCheckDirectlyUnderWebFarm",
                           farm_with("      <server address=\"a\"/>\n"
                                     "      <healthCheck url=\"http://f/hc\"/>\n"),
                           "f.config:5:7: error: unknown element <healthCheck> in <webFarm>; move "
                           "it into <applicationRequestRouting>"},
        HandWrittenMistake{"NumberWhereATimeSpanGoes",
                           farm_with("      <server address=\"a\"/>\n"
                                     "      <applicationRequestRouting>\n"
                                     "        <healthCheck url=\"http://f/\" interval=\"5\"/>\n"
                                     "      </applicationRequestRouting>\n"),
                           "f.config:6:38: error: bad value '5' for attribute 'interval' on "
                           "<healthCheck>: expected a timeSpan (hh:mm:ss[.fffffff] or "
                           "d.hh:mm:ss) from 00:00:00 to 1.00:00:00 (did you mean 00:00:05?)"},
        HandWrittenMistake{
            "RewriteToAHostThatIsNotAFarm",
            farm_with("      <server address=\"a\"/>\n",
                      "  <system.webServer><rewrite><globalRules>\n"
                      "    <rule name=\"r\" patternSyntax=\"Wildcard\"><match url=\"*\"/>"
                      "<action type=\"Rewrite\" url=\"http://shop/{R:0}\"/></rule>\n"
                      "  </globalRules></rewrite></system.webServer>\n"),
            "f.config:8:61: error: rule 'r' rewrites to unknown farm 'shop'; farms are: f (the URL "
            "names no farm; proxying to a host that is not a farm needs "
            "<system.webServer><proxy enabled=\"true\"/> in applicationHost.config)"}),
    [](const testing::TestParamInfo<HandWrittenMistake>& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// IIS's schema: what IIS accepts is accepted (and listed when not acted on), what it refuses
// is refused with the reason.

TEST(ConfigIisSchema, UrlRewriteAttributesAreAcceptedAndListed) {
  Config config = load_ok(
      "<configuration>\n"                                                                     // 1
      "  <webFarms><webFarm name=\"f\"><server address=\"a\"/></webFarm></webFarms>\n"        // 2
      "  <system.webServer><rewrite>\n"                                                       // 3
      "    <globalRules useOriginalURLEncoding=\"false\">\n"                                  // 4
      "      <rule name=\"r\" responseCacheDirective=\"NotIfRuleMatched\">\n"                 // 5
      "        <match url=\"(.*)\"/>\n"                                                       // 6
      "        <action type=\"Rewrite\" url=\"http://f/{R:1}\" logRewrittenUrl=\"true\"/>\n"  // 7
      "      </rule>\n"                                                                       // 8
      "    </globalRules>\n"                                                                  // 9
      "    <rules useOriginalURLEncoding=\"true\"/>\n"                                        // 10
      "  </rewrite></system.webServer>\n"                                                     // 11
      "</configuration>\n");
  EXPECT_EQ(ignored_list(config), (std::vector<std::string>{
                                      "4: rewrite/globalRules/@useOriginalURLEncoding",
                                      "5: rewrite/rule[r]/@responseCacheDirective",
                                      "7: rewrite/rule[r]/action/@logRewrittenUrl",
                                      "10: rewrite/rules/@useOriginalURLEncoding",
                                  }));
}

TEST(ConfigIisSchema, ResponseCacheDirectiveIsAnEnum) {
  EXPECT_EQ(formatted_errors(
                "<configuration><system.webServer><rewrite><globalRules>\n"
                "<rule name=\"r\" responseCacheDirective=\"Sometimes\"><match url=\"x\"/></rule>\n"
                "</globalRules></rewrite></system.webServer></configuration>\n"),
            (std::vector<std::string>{
                "f.config:2:16: error: bad value 'Sometimes' for attribute "
                "'responseCacheDirective' on <rule>: expected one of Auto, Always, Never, "
                "NotIfRuleMatched"}));
}

TEST(ConfigIisSchema, AllowedServerVariablesInsideALocation) {
  const std::string sites =
      "  <system.applicationHost><sites><site name=\"S\" id=\"1\"><bindings>"
      "<binding protocol=\"http\" bindingInformation=\"*:80:\"/></bindings></site>"
      "<site name=\"T\" id=\"2\"><bindings>"
      "<binding protocol=\"http\" bindingInformation=\"*:81:\"/></bindings></site>"
      "</sites></system.applicationHost>\n";
  const std::string rule =
      "<rule name=\"r\"><match url=\"(.*)\"/><serverVariables>"
      "<set name=\"HTTP_X_FORWARDED_PROTO\" value=\"https\"/></serverVariables>"
      "<action type=\"Rewrite\" url=\"http://f/{R:1}\"/></rule>";
  Config config = load_ok(
      "<configuration>\n"
      "  <webFarms><webFarm name=\"f\"><server address=\"a\"/></webFarm></webFarms>\n" +
      sites +
      "  <location path=\"S\"><system.webServer><rewrite>"
      "<allowedServerVariables><add name=\"HTTP_X_FORWARDED_PROTO\"/></allowedServerVariables>"
      "<rules>" +
      rule + "</rules></rewrite></system.webServer></location>\n</configuration>\n");
  ASSERT_EQ(config.sites.size(), 2u);
  EXPECT_EQ(config.sites[0].rules.size(), 1u);
  // The list is the site's own: another site's rules may not set the variable.
  std::vector<std::string> errors = formatted_errors(
      "<configuration>\n"
      "  <webFarms><webFarm name=\"f\"><server address=\"a\"/></webFarm></webFarms>\n" +
      sites +
      "  <location path=\"S\"><system.webServer><rewrite>"
      "<allowedServerVariables><add name=\"HTTP_X_FORWARDED_PROTO\"/></allowedServerVariables>"
      "</rewrite></system.webServer></location>\n"
      "  <location path=\"T\"><system.webServer><rewrite><rules>" +
      rule + "</rules></rewrite></system.webServer></location>\n</configuration>\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("sets server variable 'HTTP_X_FORWARDED_PROTO'"), std::string::npos)
      << errors[0];
}

TEST(ConfigIisSchema, MisspeltSectionsAreErrorsIisSectionsAreNot) {
  std::vector<std::string> errors = formatted_errors(
      "<configuration>\n"                                           // 1
      "  <system.webServer>\n"                                      // 2
      "    <rewite><globalRules/></rewite>\n"                       // 3
      "    <outboundRules/>\n"                                      // 4
      "    <defaultDocument/><httpErrors/><webSocket/>\n"           // 5
      "    <security><requestFilterin/><ipSecurity/></security>\n"  // 6
      "  </system.webServer>\n"                                     // 7
      "  <webFarm name=\"f\"/>\n"                                   // 8
      "  <system.web/><appSettings/>\n"                             // 9
      "  <webFrams/>\n"                                             // 10
      "</configuration>\n");
  EXPECT_EQ(errors,
            (std::vector<std::string>{
                "f.config:3:5: error: unknown section <rewite> in <system.webServer> (in no IIS "
                "schema either, so IIS would refuse it too); did you mean 'rewrite'?",
                "f.config:4:5: error: <outboundRules> does not belong in <system.webServer>: it "
                "belongs inside <system.webServer><rewrite> (or a <location>'s)",
                "f.config:6:15: error: unknown section <requestFilterin> in <security> (in no IIS "
                "schema either, so IIS would refuse it too); did you mean 'requestFiltering'?",
                "f.config:8:3: error: <webFarm> does not belong in <configuration>: it belongs "
                "inside <webFarms>, which sits directly under <configuration>",
                "f.config:10:3: error: unknown section <webFrams> in <configuration> (in no IIS "
                "schema either, so IIS would refuse it too); did you mean 'webFarms'?",
            }));
}

TEST(ConfigIisSchema, DidYouMeanForAChangedEnding) {
  std::vector<std::string> errors = formatted_errors(
      farm_with("      <server address=\"a\"/>\n"
                "      <applicationRequestRouting><loadBalance/></applicationRequestRouting>\n"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("did you mean 'loadBalancing'?"), std::string::npos) << errors[0];
}

TEST(ConfigIisSchema, OutboundRulesInsideGlobalRulesSayWhereTheyBelong) {
  std::vector<std::string> errors = formatted_errors(
      "<configuration><system.webServer><rewrite><globalRules>\n"
      "<outboundRules/>\n"
      "</globalRules></rewrite></system.webServer></configuration>\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("it belongs inside <system.webServer><rewrite>"), std::string::npos)
      << errors[0];
}

}  // namespace
}  // namespace harrow::config

namespace harrow::config {
namespace {

const char* const kHttp2Farms =
    "<configuration>\n"
    "  <webFarms>\n"
    "    <webFarm name=\"Grpc\"><server address=\"a\"/></webFarm>\n"
    "    <webFarm name=\"web\"><server address=\"b\"/></webFarm>\n"
    "  </webFarms>\n"
    "  <harrow>\n";

TEST(ConfigUpstreamHttp2, NamesFarmsCaseInsensitively) {
  Config config = load_ok(std::string(kHttp2Farms) +
                          "    <upstreamHttp2 farm=\"grpc\"/>\n  </harrow>\n</configuration>\n");
  ASSERT_EQ(config.upstream_http2.size(), 1u);
  EXPECT_TRUE(config.farm_speaks_http2("Grpc"));
  EXPECT_TRUE(config.farm_speaks_http2("GRPC"));
  EXPECT_FALSE(config.farm_speaks_http2("web"));
}

TEST(ConfigUpstreamHttp2, UnknownDuplicateOrMissingFarmIsAnErrorAtItsLine) {
  std::string xml = std::string(kHttp2Farms) +
                    "    <upstreamHttp2 farm=\"nope\"/>\n"
                    "    <upstreamHttp2 farm=\"web\"/>\n"
                    "    <upstreamHttp2 farm=\"WEB\"/>\n"
                    "    <upstreamHttp2/>\n"
                    "  </harrow>\n</configuration>\n";
  std::vector<std::string> errors = formatted_errors(xml);
  ASSERT_GE(errors.size(), 3u);
  EXPECT_NE(errors[0].find("f.config:7:"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("<upstreamHttp2> names unknown farm 'nope'"), std::string::npos);
  EXPECT_NE(errors[1].find("f.config:9:"), std::string::npos) << errors[1];
  EXPECT_NE(errors[1].find("a second <upstreamHttp2> for farm 'WEB'"), std::string::npos)
      << errors[1];
  EXPECT_NE(errors[2].find("f.config:10:"), std::string::npos) << errors[2];
}

}  // namespace
}  // namespace harrow::config

// The validated, immutable configuration Harrow runs on: ARR's webFarms and URL Rewrite
// global rules, plus Harrow's own <harrow> section. Built by config/loader.h; plain data only,
// so every other module can read it without knowing XML.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "balancer/algorithm.h"

namespace harrow::config {

using Millis = std::chrono::milliseconds;
// A duration as the unsigned millisecond count libuv's timers take.
constexpr uint64_t to_ms(Millis m) {
  return static_cast<uint64_t>(m.count());
}

// Where a value came from in the XML file, for error messages and the summary.
struct SourceLocation {
  std::string file;
  int line = 0;
  int column = 0;
};

// <server address> with its <applicationRequestRouting> child (ARR defaults).
struct ServerConfig {
  std::string address;  // host name or IP literal
  bool enabled = true;
  uint32_t weight = 100;  // 1..4294967295
  uint16_t http_port = 80;
  uint16_t https_port = 443;
  std::string host_name;
  std::string health_check_alternate_host_name;
  uint16_t health_check_alternate_port = 0;  // 0 = off
  SourceLocation where;
};

enum class HttpVersionMode { PassThrough, Http10, Http11 };

// <applicationRequestRouting><protocol> of a farm, or the global <system.webServer><proxy>.
struct ProtocolConfig {
  Millis timeout{30'000};  // farm default 00:00:30; global proxy default 00:02:00
  bool keep_alive = true;
  HttpVersionMode http_version = HttpVersionMode::PassThrough;
  bool preserve_host_header = true;                             // farm default true; global false
  bool reverse_rewrite_host_in_response_headers = false;        // farm false; global true
  std::string x_forwarded_for_header_name = "X-Forwarded-For";  // empty = none
  bool include_port_in_x_forwarded_for = true;
  bool arr_response_header = true;
  uint32_t max_forwards = 10;
  std::string log_guid_name = "X-ARR-LOG-ID";
  std::string ssl_header_name = "X-ARR-SSL";
  std::string client_cert_header_name = "X-ARR-ClientCert";
  uint32_t max_response_header_size = 65536;
  std::string log_cache_hit_name = "X-ARR-CACHE-HIT";  // 0 miss / 1 hit on cached farms' responses
};

enum class QueryStringHandling { Ignore, NoCaching, Accept };

// A farm's <protocol><cache> (ARR defaults). Harrow caches only for farms whose configuration
// has the element: a configuration written before Harrow cached keeps forwarding every request.
struct CacheConfig {
  bool configured = false;  // <cache> is present
  bool enabled = true;
  bool request_consolidation = false;
  Millis request_consolidation_timeout{100};
  QueryStringHandling query_string_handling = QueryStringHandling::Ignore;
  Millis validation_interval{60'000};
  bool active() const { return configured && enabled; }
};

// system.webServer/diskCache (ARR's disk cache): the first <driveLocation> holds the disk tier.
struct DiskCacheConfig {
  std::string path;             // empty: no disk tier
  uint64_t max_usage_gb = 0;    // ARR's maxUsage; 0 with no maxUsageMB: no bound
  uint64_t max_usage_mb = 0;    // Harrow's finer maxUsageMB, when set, wins
  uint32_t low_watermark = 80;  // percent of the bound
  uint32_t high_watermark = 90;
  uint64_t max_bytes() const { return max_usage_mb != 0 ? max_usage_mb << 20 : max_usage_gb << 30; }
};

// <harrow><memoryCache>: the memory tier every cached farm shares (Harrow's; ARR keeps its
// memory cache in IIS's output cache, whose system.webServer/caching names these are).
struct MemoryCacheConfig {
  uint64_t max_cache_size_mb = 64;
  uint64_t max_response_size = 1 << 20;  // bytes; a larger response is forwarded, not stored
};

// <harrow><fleet>: instances that share probing (and admin state) through etcd (core/daemon/
// fleet.h). Absent (`enabled` false): nothing changes and etcd is never contacted.
struct FleetConfig {
  bool enabled = false;
  std::vector<std::string> endpoints;  // etcd client URLs, "http://HOST:PORT", tried in order
  std::string name;                    // the fleet: instances with the same name share probing
  std::string instance;                // this instance's id, unique in the fleet
  uint32_t lease_ttl_seconds = 10;     // takeover bound: healthCheck interval + this
  std::string prefix = "/harrow/";  // etcd key prefix; the fleet's keys are PREFIX + name + "/…"
  // Take the configuration from the key PREFIX + name + "/config" (IIS's Shared Configuration):
  // each new revision is checked as --check-config checks a file and applied, or rejected.
  bool shared_config = false;
  // https:// endpoints: etcd's certificate must chain to ca_file and name the endpoint's host;
  // certificate_file/key_file: the client certificate etcd's --client-cert-auth asks for.
  bool tls = false;
  std::string ca_file;
  std::string certificate_file;
  std::string key_file;
  // etcd's own authentication (v3 auth): the user, and a file holding its password (never the
  // password in the configuration). Empty user: no authentication.
  std::string user;
  std::string password_file;
  SourceLocation password_file_where;
  SourceLocation where;
};

// <healthCheck> (ARR defaults). Parsed here; acted on by health/.
struct HealthCheckConfig {
  std::string url;  // empty = no active probing
  Millis interval{30'000};
  Millis timeout{30'000};
  uint32_t retries = 3;
  std::string status_code_match = "200-399";
  std::string response_match;
  std::string live_traffic_failure_codes = "500-";
  uint32_t max_live_traffic_failures = 10;
  Millis live_traffic_failure_period{0};
  uint32_t min_servers = 0;
  // Harrow extensions.
  uint32_t healthy_threshold = 1;  // consecutive passing probes to become healthy again
  uint32_t jitter_percent = 10;    // each probe interval varies by ± this much
};

enum class SameSite { None, Lax, Strict, Unset };
enum class AffinityFailurePolicy { Redistribute, Return503 };

// <affinity> (ARR defaults, then Harrow's extensions for today's browsers).
struct AffinityConfig {
  bool use_cookie = false;
  std::string cookie_name = "ARRAffinity";
  bool use_host_name = false;
  Millis timeout{20 * 60'000};  // host-name affinity: an idle host's assignment expires
  struct HostServers {
    std::string name;
    uint32_t servers = 1;
  };
  std::vector<HostServers> hosts;  // <host name servers>: servers allotted per host name
  // Harrow extensions.
  std::string domain;  // the cookie's Domain; empty = none (host-only cookie)
  SameSite same_site = SameSite::Unset;
  bool secure = false;
  Millis max_age{0};  // 0 = a session cookie
  // The affine server is no longer usable: pick another and set a new cookie (ARR), or 503.
  AffinityFailurePolicy failure_policy = AffinityFailurePolicy::Redistribute;
};

struct LoadBalancingConfig {
  balancer::Algorithm algorithm = balancer::Algorithm::WeightedRoundRobin;
  std::string hash_server_variable;
  std::string query_string_names;
  Millis least_response_time_period{5'000};
  bool randomize_lb_ties = false;
  // Harrow extension: RequestHash with bounded loads (HAProxy's hash-balance-factor, as a
  // ratio: 1.25 = no server above 125% of the average load). 0 = plain consistent hashing.
  double hash_balance_factor = 0;
};

struct FarmConfig {
  std::string name;
  bool enabled = true;
  std::string application_pool;  // Harrow's <applicationPool name> extension; empty = none
  std::vector<ServerConfig> servers;
  ProtocolConfig protocol;
  CacheConfig cache;
  HealthCheckConfig health_check;
  AffinityConfig affinity;
  LoadBalancingConfig load_balancing;
  SourceLocation where;
};

enum class PatternSyntax { ECMAScript, Wildcard, ExactMatch };
enum class LogicalGrouping { MatchAll, MatchAny };
enum class ActionType { None, Rewrite, Redirect, CustomResponse, AbortRequest };

// <conditions><add input pattern …/>
struct ConditionConfig {
  std::string input;  // e.g. "{HTTP_HOST}"
  std::string pattern;
  bool ignore_case = true;
  bool negate = false;
  SourceLocation where;
};

struct ServerVariableSet {
  std::string name;
  std::string value;
  bool replace = true;
};

// A URL Rewrite <rule> from <globalRules>.
struct RuleConfig {
  std::string name;
  bool enabled = true;
  PatternSyntax pattern_syntax = PatternSyntax::ECMAScript;
  bool stop_processing = false;
  std::string match_url;  // the rule pattern
  bool match_ignore_case = true;
  bool match_negate = false;
  LogicalGrouping logical_grouping = LogicalGrouping::MatchAll;
  bool track_all_captures = false;  // {C:n} numbers the captures of every matched condition
  std::vector<ConditionConfig> conditions;
  std::vector<ServerVariableSet> server_variables;
  ActionType action = ActionType::None;
  std::string action_url;
  bool append_query_string = true;
  uint32_t status_code = 0;  // Redirect / CustomResponse
  std::string status_reason;
  std::string status_description;  // CustomResponse body
  // A <providers> provider the rule reads ({Provider:…}); Harrow runs none, so the rule never
  // matches (--check-config names it). Empty: none.
  std::string provider;
  SourceLocation where;
};

// An IIS site binding as Harrow matches requests against it.
struct SiteBindingConfig {
  std::string address;  // normalized listen address, e.g. "0.0.0.0:80" for *:80
  std::string host;     // empty = any host
  bool https = false;
};

// <outboundRules><rule>: rewrites a response header (match serverVariable="RESPONSE_X") or the
// URLs in the tags of an HTML body (match filterByTags).
struct OutboundRuleConfig {
  std::string name;
  bool enabled = true;
  PatternSyntax pattern_syntax = PatternSyntax::ECMAScript;
  bool stop_processing = false;
  std::string pre_condition;    // name of a <preCondition>, empty = none
  std::string server_variable;  // "RESPONSE_Location"; empty: the body's tags
  std::string filter_by_tags;   // "A, Img, CustomTags" (validated names)
  std::string custom_tags;      // name of a <customTags><tags> set
  std::string pattern;
  // Neither serverVariable nor filterByTags (or filterByTags="None"): the pattern is matched
  // against the whole body, and each match (the first `occurrences`, 0 = all) is replaced.
  bool whole_body = false;
  uint64_t occurrences = 0;
  bool ignore_case = true;
  bool negate = false;
  LogicalGrouping logical_grouping = LogicalGrouping::MatchAll;
  bool track_all_captures = true;  // URL Rewrite's default for outbound rules
  std::vector<ConditionConfig> conditions;
  bool rewrite = false;  // action type="Rewrite" (else None)
  std::string value;
  bool replace = true;
  std::string provider;  // as RuleConfig::provider (the rule or its preCondition reads one)
  SourceLocation where;
};

struct PreConditionConfig {
  std::string name;
  LogicalGrouping logical_grouping = LogicalGrouping::MatchAll;
  PatternSyntax pattern_syntax = PatternSyntax::ECMAScript;
  std::vector<ConditionConfig> conditions;
  std::string provider;  // as RuleConfig::provider
  SourceLocation where;
};

struct CustomTagsConfig {
  std::string name;
  std::vector<std::pair<std::string, std::string>> tags;  // (tag, attribute)
};

struct OutboundConfig {
  std::vector<OutboundRuleConfig> rules;
  std::vector<PreConditionConfig> pre_conditions;
  std::vector<CustomTagsConfig> custom_tags;
  bool empty() const { return rules.empty(); }
};

// <sites><site> with its bindings, plus what <location path="SITE"> gives it: distributed
// rules (run after the global rules) and outbound rules.
struct SiteConfig {
  std::string name;
  std::vector<SiteBindingConfig> bindings;
  std::vector<RuleConfig> rules;
  OutboundConfig outbound;
  SourceLocation where;
};

struct RewriteMapConfig {
  std::string name;
  std::string default_value;
  std::vector<std::pair<std::string, std::string>> entries;  // key → value
};

// A plain-HTTP (or TLS) listening address, "HOST:PORT" with IPv6 as "[::1]:PORT".
struct ListenConfig {
  std::string address;
  bool tls = false;
  // HTTP/2: by ALPN on TLS listeners (on unless http2="false"); with prior knowledge (h2c)
  // on plain listeners that say http2="true", beside HTTP/1.1 on the same port.
  bool http2 = false;
  bool http2_explicit = false;  // http2="…" was written (it wins over a site binding's default)
  SourceLocation where;
  // Host names of the site bindings on this address; empty = any host (IIS: a binding with
  // an empty host name, or <harrow><listen>).
  std::vector<std::string> host_names = {};
};

// <harrow><certificate>: a certificate (PEM files) presented on https listeners, chosen by the
// name the client sends (SNI). IIS keeps these in the Windows certificate store.
struct CertificateConfig {
  std::string host;  // "example.com" or "*.example.com"; empty = default only
  std::string certificate_file;
  std::string key_file;
  std::string chain_file;          // intermediates; empty = none (or inside certificateFile)
  std::string ocsp_response_file;  // DER OCSP response to staple; empty = no stapling
  bool is_default = false;         // presented for unknown names (else the first is)
  SourceLocation where;
};

enum class ClientCertificateMode { None, Optional, Require };

// <harrow><tls>: how https listeners negotiate (TLS 1.2 and 1.3 only).
struct TlsConfig {
  // TLS 1.2 cipher list (OpenSSL syntax); TLS 1.3 suites are OpenSSL's defaults unless set.
  std::string ciphers =
      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
      "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
  std::string cipher_suites;
  bool reject_unknown_server_name = false;  // unknownServerName="reject": handshake alert
  ClientCertificateMode client_certificate = ClientCertificateMode::None;
  std::string client_ca_file;  // CAs client certificates are verified against
  uint32_t session_cache_size = 20'480;
  SourceLocation where;
};

// <harrow><upstreamTls farm=… verifyCertificate=… caFile=…/>: how Harrow checks the servers
// it reaches over https://. Without `farm` it sets the default for every farm.
struct UpstreamTlsConfig {
  std::string farm;  // empty = every farm without its own element
  bool verify_certificate = true;
  std::string ca_file;  // empty = the system CA store
  SourceLocation where;
};

// <harrow><upstreamHttp2 farm=…/>: Harrow speaks HTTP/2 to that farm's servers, h2c with prior
// knowledge over http:// and h2 by ALPN over https://, multiplexing its requests.
struct UpstreamHttp2Config {
  std::string farm;
  SourceLocation where;
};

enum class AccessLogFormat { W3C, Json };

struct AccessLogConfig {
  std::string path;  // empty = no access log file
  AccessLogFormat format = AccessLogFormat::W3C;
};

// <harrow><limits …/> and <harrow><timeouts …/>: Harrow's own knobs.
struct LimitsConfig {
  uint32_t max_connections = 100'000;  // per process, across workers
  // Idle upstream connections a worker keeps per server. Per worker, sized for hundreds of
  // concurrent requests per server: well above the requests one worker has in flight to a
  // server under hundreds of keep-alive clients. A smaller pool closes and reopens
  // connections under load, for a large share of the requests, and the proxy loses
  // throughput (bench/results/figures-from-comments.md).
  uint32_t max_idle_upstream_per_server = 1024;
  // Request limits (HTTP/1.1 hardening): 414, 431 and 413 above them.
  uint32_t max_request_line = 8 * 1024;
  uint32_t max_request_header_bytes = 64 * 1024;
  uint32_t max_request_headers = 100;
  // IIS requestFiltering's maxAllowedContentLength (also read from
  // <system.webServer><security><requestFiltering><requestLimits>).
  uint64_t max_allowed_content_length = 30'000'000;
  // IIS request filtering, read from the same place: <requestLimits maxUrl maxQueryString>
  // (404 above them, as IIS's 404.14 and 404.15) and <requestFiltering allowDoubleEscaping>
  // (a path still escaped once decoded is refused with 404, IIS's 404.11, unless true).
  uint32_t max_url = 4096;
  uint32_t max_query_string = 2048;
  bool allow_double_escaping = false;
  bool allow_trace = false;  // TRACE is answered 405 unless allowed
  // Open connections one client IP may hold per worker; 0 = no cap.
  uint32_t max_connections_per_client = 0;
  // Other servers one request may be retried on (connect failures before any byte was sent,
  // or a reset before any response byte for GET/HEAD/OPTIONS/PUT/DELETE without a body).
  uint32_t retries = 1;
};

// <harrow><http2 …/>: what an HTTP/2 client connection may hold (server_session.h).
struct Http2Config {
  uint32_t max_concurrent_streams = 100;  // SETTINGS_MAX_CONCURRENT_STREAMS
  uint32_t initial_window_size = 65'535;  // per stream: request body bytes held before it drains
};

struct TimeoutsConfig {
  Millis connect{5'000};              // upstream TCP connect
  Millis client_header{30'000};       // whole request head must arrive within this
  Millis client_keep_alive{120'000};  // idle client connection between requests
  Millis upstream_idle{60'000};       // pooled idle upstream connection
  Millis shutdown{30'000};            // SIGTERM: how long in-flight requests may finish
  Millis client_send{60'000};  // a client that reads none of its response for this long is dropped
  Millis client_body{30'000};  // a request body that stalls this long (no byte) gets 408
  Millis websocket_idle{15 * 60'000};  // a WebSocket tunnel with no byte either way is closed
};

// <harrow user group allowRunAsRoot stateFile>: who Harrow becomes when started as root
// (core/daemon/privileges.h) and where it keeps health state across restarts.
struct RunAsConfig {
  std::string user;         // empty = stay who we are
  std::string group;        // empty = the user's primary group
  bool allow_root = false;  // allowRunAsRoot: proxy as root on any address
};

// Something in the file Harrow understood but does not act on (listed by --check-config).
struct IgnoredSetting {
  std::string what;  // e.g. "webFarm/@serverAutoStart"
  SourceLocation where;
};

struct Config {
  std::string source_path;
  std::vector<FarmConfig> farms;
  std::vector<RuleConfig> global_rules;
  // <system.webServer><rewrite><rules> at server level: distributed rules every site inherits
  // (they run after the global rules, before the site's own).
  std::vector<RuleConfig> distributed_rules;
  OutboundConfig outbound;  // server-level outbound rules, for every site
  std::vector<SiteConfig> sites;
  // Server variables distributed rules may set (<allowedServerVariables>).
  std::vector<std::string> allowed_server_variables;
  std::vector<RewriteMapConfig> rewrite_maps;
  ProtocolConfig global_proxy{.timeout = Millis{120'000},
                              .preserve_host_header = false,
                              .reverse_rewrite_host_in_response_headers = true};
  bool global_proxy_enabled = false;
  std::vector<std::string> application_pools;
  std::vector<ListenConfig> listeners;  // sites' http bindings plus <harrow><listen>
  std::vector<CertificateConfig> certificates;
  TlsConfig tls;
  std::vector<UpstreamTlsConfig> upstream_tls;
  std::vector<UpstreamHttp2Config> upstream_http2;
  // Whether <upstreamHttp2> names the farm `name`.
  bool farm_speaks_http2(std::string_view name) const;
  std::string admin_address = "127.0.0.1:9180";
  // A file holding the admin API's bearer token. Without one, only loopback clients may use
  // the admin listener.
  // (Mode 0600 or stricter: a token file group or others may read is a configuration error.)
  std::string admin_token_file;
  SourceLocation admin_token_file_where;
  // Host names the admin listener answers to besides its own IP:port and localhost:port
  // (<admin allowedHosts="a b">): a request whose Host names anything else is refused.
  std::vector<std::string> admin_allowed_hosts;
  AccessLogConfig access_log;
  LimitsConfig limits;
  Http2Config http2;
  TimeoutsConfig timeouts;
  MemoryCacheConfig memory_cache;
  DiskCacheConfig disk_cache;
  FleetConfig fleet;
  RunAsConfig run_as;
  std::string state_file;  // <harrow stateFile>: empty = none
  std::vector<IgnoredSetting> ignored;

  const FarmConfig* find_farm(std::string_view name) const;  // case-insensitive
};

}  // namespace harrow::config

// Round trips through the configuration loader. Random valid Config values are written out as
// applicationHost.config XML by a serializer in this file — element and attribute names in
// random case, sections and children in random order, defaults sometimes spelled out and
// sometimes left out, foreign IIS sections and comments sprinkled in — and must load back with
// no errors and every field equal. Then one unknown attribute planted on any element Harrow
// checks must give exactly one error, positioned at that element.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/loader.h"

namespace harrow::config {
namespace {

constexpr char kPath[] = "roundtrip.config";
constexpr uint64_t kUInt32Max = std::numeric_limits<uint32_t>::max();
constexpr int64_t kSecond = 1000;
constexpr int64_t kDay = 86'400 * kSecond;

// Kept small so that a hundred cases run in well under a second.
constexpr int kMaxPools = 3;
constexpr int kMaxFarms = 4;
constexpr int kMaxServers = 4;
constexpr int kMaxRules = 6;
constexpr int kMaxConditions = 3;
constexpr int kMaxServerVariables = 2;
constexpr int kMaxMaps = 2;
constexpr int kMaxMapEntries = 3;
constexpr int kMaxListeners = 3;

// =============================================================================================
// Generators of valid values
// =============================================================================================

constexpr std::string_view kNameChars =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
// Free text: every character XML must escape in an attribute is here, on purpose.
constexpr std::string_view kTextChars =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 &<>\"'=;,:/.?#%+-_()[]*!@";

rc::Gen<std::string> text_from(std::string_view alphabet, size_t min_length, size_t max_length) {
  return rc::gen::exec([=] {
    size_t length = *rc::gen::inRange(min_length, max_length + 1);
    std::string text;
    for (size_t i = 0; i < length; ++i) {
      text += alphabet[*rc::gen::inRange<size_t>(0, alphabet.size())];
    }
    return text;
  });
}

rc::Gen<std::string> free_text(size_t max_length = 12) {
  return text_from(kTextChars, 0, max_length);
}

// A name for the index-th item of a collection: unique (even ignoring case) among the
// collection's names because the part after the last '-' is the index.
std::string unique_name(std::string_view alphabet, size_t max_length, size_t index) {
  return *text_from(alphabet, 1, max_length) + "-" + std::to_string(index);
}

// The default now and then (so that "spelled out as the default" is covered), else `gen`.
template <typename T>
T or_default(const T& fallback, rc::Gen<T> gen) {
  return *rc::gen::weightedOneOf<T>({{1, rc::gen::just(fallback)}, {3, std::move(gen)}});
}

rc::Gen<bool> booleans() {
  return rc::gen::arbitrary<bool>();
}

// Unsigned values in [min, max], the bounds themselves often.
template <typename T>
rc::Gen<T> unsigned_in(uint64_t min, uint64_t max) {
  return rc::gen::map(
      rc::gen::oneOf(rc::gen::inRange<uint64_t>(min, max + 1), rc::gen::element(min, max)),
      [](uint64_t value) { return static_cast<T>(value); });
}

rc::Gen<uint16_t> ports() {
  return unsigned_in<uint16_t>(1, 65535);
}

// Whole milliseconds in [min, max]: any count, whole seconds, or a bound.
rc::Gen<Millis> timespans(int64_t min, int64_t max) {
  return rc::gen::map(
      rc::gen::oneOf(
          rc::gen::inRange<int64_t>(min, max + 1),
          rc::gen::map(rc::gen::inRange<int64_t>((min + kSecond - 1) / kSecond, max / kSecond + 1),
                       [](int64_t s) { return s * kSecond; }),
          rc::gen::element(min, max)),
      [](int64_t ms) { return Millis{ms}; });
}

template <typename Enum>
rc::Gen<Enum> enum_values(int count) {
  return rc::gen::map(rc::gen::inRange(0, count), [](int i) { return static_cast<Enum>(i); });
}

// ARR status code lists: "200-399", "500-", "200,301-302", " 404 , 500-599", or empty.
rc::Gen<std::string> status_code_lists() {
  return rc::gen::exec([] {
    int items = *rc::gen::inRange(0, 4);
    std::string text;
    for (int i = 0; i < items; ++i) {
      if (i > 0) text += *rc::gen::element<std::string>(",", ", ", " ,");
      int low = *rc::gen::inRange(100, 1000);
      switch (*rc::gen::inRange(0, 3)) {
        case 0:
          text += std::to_string(low);
          break;
        case 1:
          text += std::to_string(low) + "-" + std::to_string(*rc::gen::inRange(low, 1000));
          break;
        default:
          text += std::to_string(low) + "-";
          break;
      }
    }
    return text;
  });
}

rc::Gen<std::string> header_names() {
  return rc::gen::map(text_from(kNameChars, 1, 10), [](std::string s) { return "X-" + s; });
}

rc::Gen<std::string> urls() {
  return rc::gen::map(text_from("abcdefghijklmnopqrstuvwxyz0123456789/._-", 0, 12),
                      [](std::string path) { return "http://health.example/" + path; });
}

rc::Gen<ProtocolConfig> protocols(ProtocolConfig d) {
  return rc::gen::exec([d] {
    ProtocolConfig p;
    p.timeout = or_default(d.timeout, timespans(1 * kSecond, kDay));
    p.keep_alive = or_default(d.keep_alive, booleans());
    p.http_version = or_default(d.http_version, enum_values<HttpVersionMode>(3));
    p.preserve_host_header = or_default(d.preserve_host_header, booleans());
    p.reverse_rewrite_host_in_response_headers =
        or_default(d.reverse_rewrite_host_in_response_headers, booleans());
    // Empty means "send no client-address header".
    p.x_forwarded_for_header_name =
        or_default(d.x_forwarded_for_header_name,
                   rc::gen::oneOf(header_names(), rc::gen::just(std::string())));
    p.include_port_in_x_forwarded_for = or_default(d.include_port_in_x_forwarded_for, booleans());
    p.arr_response_header = or_default(d.arr_response_header, booleans());
    p.max_forwards = or_default(d.max_forwards, unsigned_in<uint32_t>(0, kUInt32Max));
    p.log_guid_name = or_default(d.log_guid_name, header_names());
    p.ssl_header_name = or_default(d.ssl_header_name, header_names());
    p.client_cert_header_name = or_default(d.client_cert_header_name, header_names());
    p.max_response_header_size =
        or_default(d.max_response_header_size, unsigned_in<uint32_t>(0, kUInt32Max));
    return p;
  });
}

rc::Gen<HealthCheckConfig> health_checks() {
  return rc::gen::exec([] {
    HealthCheckConfig d;
    HealthCheckConfig h;
    h.url = or_default(d.url, urls());
    h.interval = or_default(d.interval, timespans(0, kDay));
    h.timeout = or_default(d.timeout, timespans(1 * kSecond, kDay));
    h.retries = or_default(d.retries, unsigned_in<uint32_t>(0, 20));
    h.status_code_match = or_default(d.status_code_match, status_code_lists());
    h.response_match = or_default(d.response_match, free_text());
    h.live_traffic_failure_codes = or_default(d.live_traffic_failure_codes, status_code_lists());
    h.max_live_traffic_failures =
        or_default(d.max_live_traffic_failures, unsigned_in<uint32_t>(1, kUInt32Max));
    h.live_traffic_failure_period = or_default(d.live_traffic_failure_period, timespans(0, kDay));
    h.min_servers = or_default(d.min_servers, unsigned_in<uint32_t>(0, kUInt32Max));
    return h;
  });
}

rc::Gen<AffinityConfig> affinities() {
  return rc::gen::exec([] {
    AffinityConfig d;
    AffinityConfig a;
    a.use_cookie = or_default(d.use_cookie, booleans());
    a.cookie_name = or_default(d.cookie_name, text_from(kNameChars, 1, 12));
    a.use_host_name = or_default(d.use_host_name, booleans());
    return a;
  });
}

rc::Gen<LoadBalancingConfig> load_balancings() {
  return rc::gen::exec([] {
    LoadBalancingConfig d;
    LoadBalancingConfig b;
    b.algorithm = or_default(d.algorithm, enum_values<balancer::Algorithm>(5));
    b.hash_server_variable =
        or_default(d.hash_server_variable,
                   rc::gen::element<std::string>("QUERY_STRING", "HTTP_HOST", "REMOTE_ADDR"));
    b.query_string_names = or_default(d.query_string_names, text_from("abcdef,", 0, 8));
    b.least_response_time_period =
        or_default(d.least_response_time_period, timespans(1 * kSecond, kDay));
    b.randomize_lb_ties = or_default(d.randomize_lb_ties, booleans());
    return b;
  });
}

ServerConfig server(size_t index) {
  ServerConfig d;
  ServerConfig s;
  // Unique within the farm whatever the case: the index is part of every address.
  s.address = *rc::gen::oneOf(
      rc::gen::map(
          rc::gen::inRange(0, 256),
          [index](int x) { return "10.0." + std::to_string(index) + "." + std::to_string(x); }),
      rc::gen::map(text_from(kNameChars, 1, 8), [index](std::string host) {
        return host + "-" + std::to_string(index) + ".internal";
      }));
  s.enabled = or_default(d.enabled, booleans());
  s.weight = or_default(d.weight, unsigned_in<uint32_t>(1, kUInt32Max));
  s.http_port = or_default(d.http_port, ports());
  s.https_port = or_default(d.https_port, ports());
  s.host_name = or_default(d.host_name, text_from(kNameChars, 1, 10));
  s.health_check_alternate_host_name =
      or_default(d.health_check_alternate_host_name, text_from(kNameChars, 1, 10));
  s.health_check_alternate_port =
      or_default(d.health_check_alternate_port, unsigned_in<uint16_t>(0, 65535));
  return s;
}

FarmConfig farm(size_t index, const std::vector<std::string>& pools) {
  FarmConfig f;
  // Farm names are rewrite-URL hosts: no '/', ':', '?', '#', '{'.
  f.name =
      unique_name("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._", 10, index);
  f.enabled = or_default(true, booleans());
  if (!pools.empty() && *booleans()) {
    // Pool names match case-insensitively; the farm keeps the spelling it was written with.
    f.application_pool = *rc::gen::elementOf(pools);
    if (*booleans()) {
      for (char& c : f.application_pool) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      }
    }
  }
  int servers = *rc::gen::inRange(0, kMaxServers + 1);
  for (int i = 0; i < servers; ++i) f.servers.push_back(server(static_cast<size_t>(i)));
  f.protocol = *protocols(ProtocolConfig{});
  f.health_check = *health_checks();
  f.affinity = *affinities();
  f.load_balancing = *load_balancings();
  return f;
}

// A pattern in the rule's syntax, from a safe alphabet: ECMAScript patterns always compile.
std::string pattern(PatternSyntax syntax, bool may_be_empty) {
  switch (syntax) {
    case PatternSyntax::Wildcard:
      return *text_from("abcdefghijklmnopqrstuvwxyz0123456789/._-*?", may_be_empty ? 0 : 1, 10);
    case PatternSyntax::ExactMatch:
      return *text_from(kTextChars, may_be_empty ? 0 : 1, 10);
    case PatternSyntax::ECMAScript:
      break;
  }
  int atoms = *rc::gen::inRange(may_be_empty ? 0 : 1, 5);
  std::string text = *rc::gen::element<std::string>("", "^");
  for (int i = 0; i < atoms; ++i) {
    text +=
        *rc::gen::oneOf(text_from("abcdefghijklmnopqrstuvwxyz0123456789/_-&<\"", 1, 4),
                        rc::gen::element<std::string>("\\.", ".", ".*", ".+", "[a-z]+", "[0-9]*",
                                                      "\\d+", "(.*)", "([^/]+)", "(?:api|static)?",
                                                      "(www\\.)?", "(a|b|c)", "\\?", "[&<>]"));
  }
  return text + *rc::gen::element<std::string>("", "$");
}

rc::Gen<std::string> condition_inputs() {
  return rc::gen::element<std::string>("{HTTP_HOST}", "{HTTPS}", "{QUERY_STRING}", "{REQUEST_URI}",
                                       "{SERVER_PORT}", "{HTTP_USER_AGENT}", "{HTTP_COOKIE}",
                                       "{C:1}", "{R:1}", "{ToLower:{HTTP_HOST}}");
}

RuleConfig rule(size_t index, const Config& config) {
  RuleConfig d;
  RuleConfig r;
  r.name =
      unique_name("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ .", 12, index);
  r.enabled = or_default(d.enabled, booleans());
  r.pattern_syntax = or_default(d.pattern_syntax, enum_values<PatternSyntax>(3));
  r.stop_processing = or_default(d.stop_processing, booleans());
  r.match_url = pattern(r.pattern_syntax, false);
  r.match_ignore_case = or_default(d.match_ignore_case, booleans());
  r.match_negate = or_default(d.match_negate, booleans());
  r.logical_grouping = or_default(d.logical_grouping, enum_values<LogicalGrouping>(2));
  r.track_all_captures = or_default(d.track_all_captures, booleans());
  int conditions = *rc::gen::inRange(0, kMaxConditions + 1);
  for (int i = 0; i < conditions; ++i) {
    ConditionConfig c;
    c.input = *condition_inputs();
    c.pattern = pattern(r.pattern_syntax, true);
    c.ignore_case = or_default(true, booleans());
    c.negate = or_default(false, booleans());
    r.conditions.push_back(std::move(c));
  }
  int variables = *rc::gen::inRange(0, kMaxServerVariables + 1);
  for (int i = 0; i < variables; ++i) {
    ServerVariableSet set;
    set.name = *rc::gen::element<std::string>("HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
                                              "HTTP_HOST", "HTTP_X_ORIGINAL_HOST") +
               "_" + std::to_string(i);
    set.value = or_default(std::string(), rc::gen::oneOf(free_text(), condition_inputs()));
    set.replace = or_default(true, booleans());
    r.server_variables.push_back(std::move(set));
  }

  std::vector<ActionType> actions = {ActionType::None, ActionType::Redirect,
                                     ActionType::CustomResponse, ActionType::AbortRequest};
  if (!config.farms.empty() || config.global_proxy_enabled) actions.push_back(ActionType::Rewrite);
  r.action = *rc::gen::elementOf(actions);
  r.append_query_string = or_default(d.append_query_string, booleans());
  r.status_reason = or_default(std::string(), free_text());
  r.status_description = or_default(std::string(), free_text(20));
  std::string rest = *rc::gen::element<std::string>("{R:0}", "{R:1}", "{ToLower:{R:1}}",
                                                    "x/{C:1}?q={UrlEncode:{R:0}}");
  switch (r.action) {
    case ActionType::Rewrite: {
      std::vector<std::string> hosts = {"{HTTP_HOST}", "{ToLower:{HTTP_HOST}}"};
      for (const FarmConfig& f : config.farms) {
        // Farm names match case-insensitively; write them the way a careless author would.
        std::string host = f.name;
        for (char& c : host) {
          if (*booleans()) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        }
        hosts.push_back(host);
        hosts.push_back(host + ":" + std::to_string(*ports()));
      }
      for (const RewriteMapConfig& map : config.rewrite_maps) {
        hosts.push_back("{" + map.name + ":{HTTP_HOST}}");
      }
      if (config.global_proxy_enabled) hosts.push_back("127.0.0.1:18080");
      r.action_url = *rc::gen::element<std::string>("http://", "https://", "HTTP://") +
                     *rc::gen::elementOf(hosts) + "/" + rest;
      break;
    }
    case ActionType::Redirect:
      r.action_url =
          *rc::gen::element<std::string>("https://{HTTP_HOST}/", "/moved/", "http://example.com/") +
          rest;
      r.status_code = *rc::gen::element<uint32_t>(301, 302, 303, 307);
      break;
    case ActionType::CustomResponse:
      // 300..307 belong to Redirect.
      r.status_code =
          *rc::gen::oneOf(unsigned_in<uint32_t>(100, 299), unsigned_in<uint32_t>(308, 999));
      break;
    case ActionType::None:
    case ActionType::AbortRequest:
      break;
  }
  return r;
}

std::string listen_host() {
  return *rc::gen::oneOf(
      rc::gen::map(rc::gen::inRange(1, 255), [](int x) { return "127.0.0." + std::to_string(x); }),
      rc::gen::element<std::string>("0.0.0.0", "localhost", "[::1]", "[::]"));
}

rc::Gen<Config> valid_configs() {
  return rc::gen::exec([] {
    Config d;
    Config c;
    c.source_path = kPath;

    int pools = *rc::gen::inRange(0, kMaxPools + 1);
    for (int i = 0; i < pools; ++i) {
      c.application_pools.push_back(unique_name(kNameChars, 10, static_cast<size_t>(i)));
    }
    int farms = *rc::gen::inRange(0, kMaxFarms + 1);
    for (int i = 0; i < farms; ++i)
      c.farms.push_back(farm(static_cast<size_t>(i), c.application_pools));

    c.global_proxy_enabled = or_default(false, booleans());
    c.global_proxy = or_default(d.global_proxy, protocols(d.global_proxy));

    int maps = *rc::gen::inRange(0, kMaxMaps + 1);
    for (int i = 0; i < maps; ++i) {
      RewriteMapConfig map;
      map.name = unique_name(kNameChars, 8, static_cast<size_t>(i));
      map.default_value = or_default(std::string(), free_text());
      int entries = *rc::gen::inRange(0, kMaxMapEntries + 1);
      for (int e = 0; e < entries; ++e) {
        // Keys are case-sensitive: "ab.example" and "AB.example" are two entries.
        std::string key = *text_from("aAbB", 1, 3) + ".example";
        if (std::none_of(map.entries.begin(), map.entries.end(),
                         [&](const auto& entry) { return entry.first == key; })) {
          map.entries.emplace_back(std::move(key), *free_text());
        }
      }
      c.rewrite_maps.push_back(std::move(map));
    }
    int rules = *rc::gen::inRange(0, kMaxRules + 1);
    for (int i = 0; i < rules; ++i) c.global_rules.push_back(rule(static_cast<size_t>(i), c));

    int listeners = *rc::gen::inRange(0, kMaxListeners + 1);
    for (int i = 0; i < listeners; ++i) {
      ListenConfig listener;
      // Distinct ports keep the (address, tls) pairs distinct: the loader merges repeats.
      listener.address =
          listen_host() + ":" + std::to_string(18000 + i * 100 + *rc::gen::inRange(0, 100));
      listener.tls = *booleans();
      c.listeners.push_back(std::move(listener));
    }
    c.admin_address = or_default(d.admin_address,
                                 rc::gen::map(unsigned_in<uint16_t>(0, 65535), [](uint16_t port) {
                                   return "127.0.0.1:" + std::to_string(port);
                                 }));
    c.access_log.path =
        or_default(d.access_log.path, rc::gen::map(text_from(kNameChars, 1, 8), [](std::string s) {
                     return "/var/log/harrow/" + s + ".log";
                   }));
    c.access_log.format = or_default(d.access_log.format, enum_values<AccessLogFormat>(2));
    c.limits.max_connections =
        or_default(d.limits.max_connections, unsigned_in<uint32_t>(1, kUInt32Max));
    c.limits.max_idle_upstream_per_server =
        or_default(d.limits.max_idle_upstream_per_server, unsigned_in<uint32_t>(0, kUInt32Max));
    c.timeouts.connect = or_default(d.timeouts.connect, timespans(1, kDay));
    c.timeouts.client_header = or_default(d.timeouts.client_header, timespans(1, kDay));
    c.timeouts.client_keep_alive = or_default(d.timeouts.client_keep_alive, timespans(0, kDay));
    c.timeouts.upstream_idle = or_default(d.timeouts.upstream_idle, timespans(0, kDay));
    c.timeouts.shutdown = or_default(d.timeouts.shutdown, timespans(0, kDay));
    c.timeouts.client_body = or_default(d.timeouts.client_body, timespans(1, kDay));
    c.timeouts.websocket_idle = or_default(d.timeouts.websocket_idle, timespans(1, kDay));
    return c;
  });
}

// =============================================================================================
// The serializer: Config → applicationHost.config text
// =============================================================================================

struct Attribute {
  std::string name;  // already spelled (random case)
  std::string value;
};
using Attributes = std::vector<Attribute>;

// Whether Harrow reports unknown attributes on an element: yes inside the sections it reads
// (including a site's <bindings>); no on the IIS elements it only looks into (<configuration>,
// <system.webServer>, <system.applicationHost>, <sites>, <site>, <applicationPools> and its
// <add>), on what it skips inside them, and on opaque Web Farm Framework elements.
enum class Checked { Yes, No };

// Where a checked element starts ('<') and where its name ends (an attribute can go there).
struct ElementMark {
  size_t start = 0;
  size_t name_end = 0;
  std::string name;
};

struct Document {
  std::string text;
  std::vector<ElementMark> checked;
};

class XmlWriter {
 public:
  explicit XmlWriter(uint32_t seed) : rng_(seed) {}

  bool coin() { return std::uniform_int_distribution<int>(0, 1)(rng_) == 1; }
  size_t below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

  template <typename T>
  void shuffle(std::vector<T>& items) {
    std::shuffle(items.begin(), items.end(), rng_);
  }

  // Names are case-insensitive: the canonical spelling, all lower, all upper, or a mix.
  std::string spell(std::string_view name) {
    std::string text(name);
    switch (below(4)) {
      case 0:
        break;
      case 1:
        for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        break;
      case 2:
        for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        break;
      default:
        for (char& c : text) {
          unsigned char u = static_cast<unsigned char>(c);
          c = static_cast<char>(coin() ? std::tolower(u) : std::toupper(u));
        }
        break;
    }
    return text;
  }

  // Adds the attribute when its value differs from ARR's default, and now and then when not.
  void attr(Attributes& attributes, std::string_view name, std::string value,
            bool is_default = false) {
    if (is_default && coin()) return;
    attributes.push_back({spell(name), std::move(value)});
  }

  std::string boolean(bool value) { return spell(value ? "true" : "false"); }
  std::string enumerator(std::string_view value) { return spell(value); }

  // Either "hh:mm:ss[.fff]" (hours unbounded) or "d.hh:mm:ss[.fff]"; fractions as milliseconds
  // or as .NET's seven tick digits.
  std::string timespan(Millis value) {
    int64_t ms = value.count();
    char text[96];
    long long seconds = ms / 1000 % 60;
    long long minutes = ms / 60'000 % 60;
    if (coin()) {
      std::snprintf(text, sizeof text, "%02lld:%02lld:%02lld",
                    static_cast<long long>(ms / 3'600'000), minutes, seconds);
    } else {
      std::snprintf(text, sizeof text, "%lld.%02lld:%02lld:%02lld",
                    static_cast<long long>(ms / kDay), static_cast<long long>(ms / 3'600'000 % 24),
                    minutes, seconds);
    }
    std::string result = text;
    long long millis = ms % 1000;
    if (millis != 0 || coin()) {
      std::snprintf(text, sizeof text, coin() ? ".%03lld" : ".%03lld0000", millis);
      result += text;
    }
    return result;
  }

  void declaration() { text_ += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"; }

  void comment(std::string_view words) {
    indent();
    text_ += "<!-- " + std::string(words) + " -->\n";
  }

  void open(std::string_view name, const Attributes& attributes, Checked checked) {
    start(name, attributes, checked);
    text_ += ">\n";
    open_.push_back(last_name_);
  }

  void leaf(std::string_view name, const Attributes& attributes, Checked checked) {
    start(name, attributes, checked);
    text_ += coin() ? " />\n" : "/>\n";
  }

  void close() {
    std::string name = open_.back();
    open_.pop_back();
    indent();
    text_ += "</" + name + ">\n";
  }

  Document finish() { return {std::move(text_), std::move(checked_)}; }

 private:
  void indent() { text_ += std::string(2 * open_.size(), ' '); }

  void start(std::string_view name, const Attributes& attributes, Checked checked) {
    indent();
    ElementMark mark;
    mark.start = text_.size();
    last_name_ = spell(name);
    text_ += "<" + last_name_;
    mark.name_end = text_.size();
    mark.name = std::string(name);
    if (checked == Checked::Yes) checked_.push_back(mark);
    Attributes shuffled = attributes;
    shuffle(shuffled);
    for (const Attribute& attribute : shuffled) {
      // A long element now and then wraps its attributes, as hand-written files do.
      text_ += shuffled.size() > 2 && coin() ? "\n" + std::string(2 * open_.size() + 4, ' ') : " ";
      text_ += attribute.name + "=" + quote(attribute.value);
    }
  }

  std::string quote(const std::string& value) {
    char q = coin() ? '"' : '\'';
    std::string text(1, q);
    for (char c : value) {
      switch (c) {
        case '&':
          text += "&amp;";
          break;
        case '<':
          text += "&lt;";
          break;
        case '>':
          text += coin() ? "&gt;" : ">";
          break;
        case '"':
          text += q == '"' ? "&quot;" : "\"";
          break;
        case '\'':
          text += q == '\'' ? "&apos;" : "'";
          break;
        default:
          text += c;
      }
    }
    return text + q;
  }

  std::mt19937 rng_;
  std::string text_;
  std::vector<std::string> open_;
  std::string last_name_;
  std::vector<ElementMark> checked_;
};

// Writes each of `parts` (already in document order), with `extras` mixed in at random places.
void write_in_order(XmlWriter& w, std::vector<std::function<void()>> parts,
                    std::vector<std::function<void()>> extras) {
  for (auto& extra : extras)
    parts.insert(parts.begin() + static_cast<std::ptrdiff_t>(w.below(parts.size() + 1)), extra);
  for (auto& part : parts) part();
}

void write_in_any_order(XmlWriter& w, std::vector<std::function<void()>> parts) {
  w.shuffle(parts);
  for (auto& part : parts) part();
}

Attributes protocol_attributes(XmlWriter& w, const ProtocolConfig& p, const ProtocolConfig& d) {
  constexpr std::string_view kHttpVersions[] = {"PassThrough", "Http10", "Http11"};
  Attributes a;
  w.attr(a, "timeout", w.timespan(p.timeout), p.timeout == d.timeout);
  w.attr(a, "keepAlive", w.boolean(p.keep_alive), p.keep_alive == d.keep_alive);
  w.attr(a, "httpVersion", w.enumerator(kHttpVersions[static_cast<int>(p.http_version)]),
         p.http_version == d.http_version);
  w.attr(a, "preserveHostHeader", w.boolean(p.preserve_host_header),
         p.preserve_host_header == d.preserve_host_header);
  w.attr(a, "reverseRewriteHostInResponseHeaders",
         w.boolean(p.reverse_rewrite_host_in_response_headers),
         p.reverse_rewrite_host_in_response_headers == d.reverse_rewrite_host_in_response_headers);
  w.attr(a, "xForwardedForHeaderName", p.x_forwarded_for_header_name,
         p.x_forwarded_for_header_name == d.x_forwarded_for_header_name);
  w.attr(a, "includePortInXForwardedFor", w.boolean(p.include_port_in_x_forwarded_for),
         p.include_port_in_x_forwarded_for == d.include_port_in_x_forwarded_for);
  w.attr(a, "arrResponseHeader", w.boolean(p.arr_response_header),
         p.arr_response_header == d.arr_response_header);
  w.attr(a, "maxForwards", std::to_string(p.max_forwards), p.max_forwards == d.max_forwards);
  w.attr(a, "logGuidName", p.log_guid_name, p.log_guid_name == d.log_guid_name);
  w.attr(a, "sslHeaderName", p.ssl_header_name, p.ssl_header_name == d.ssl_header_name);
  w.attr(a, "clientCertHeaderName", p.client_cert_header_name,
         p.client_cert_header_name == d.client_cert_header_name);
  w.attr(a, "maxResponseHeaderSize", std::to_string(p.max_response_header_size),
         p.max_response_header_size == d.max_response_header_size);
  return a;
}

// Writes <name …/> when it has something to say, or now and then anyway.
void optional_leaf(XmlWriter& w, std::string_view name, const Attributes& attributes) {
  if (attributes.empty() && w.coin()) return;
  w.leaf(name, attributes, Checked::Yes);
}

void write_server(XmlWriter& w, const ServerConfig& s) {
  ServerConfig d;
  Attributes attributes;
  w.attr(attributes, "address", s.address);
  w.attr(attributes, "enabled", w.boolean(s.enabled), s.enabled == d.enabled);
  Attributes arr;
  w.attr(arr, "weight", std::to_string(s.weight), s.weight == d.weight);
  w.attr(arr, "httpPort", std::to_string(s.http_port), s.http_port == d.http_port);
  w.attr(arr, "httpsPort", std::to_string(s.https_port), s.https_port == d.https_port);
  // hostName and healthCheckAlternateHostName may not be empty: absent is the default.
  if (!s.host_name.empty()) w.attr(arr, "hostName", s.host_name);
  if (!s.health_check_alternate_host_name.empty()) {
    w.attr(arr, "healthCheckAlternateHostName", s.health_check_alternate_host_name);
  }
  w.attr(arr, "healthCheckAlternatePort", std::to_string(s.health_check_alternate_port),
         s.health_check_alternate_port == d.health_check_alternate_port);
  if (arr.empty() && w.coin()) {
    w.leaf("server", attributes, Checked::Yes);
    return;
  }
  w.open("server", attributes, Checked::Yes);
  w.leaf("applicationRequestRouting", arr, Checked::Yes);
  w.close();
}

void write_farm_arr(XmlWriter& w, const FarmConfig& f) {
  constexpr std::string_view kAlgorithms[] = {"WeightedRoundRobin", "LeastRequests",
                                              "LeastResponseTime", "WeightedTotalTraffic",
                                              "RequestHash"};
  Attributes protocol = protocol_attributes(w, f.protocol, ProtocolConfig{});
  bool cache = w.coin() && w.coin();

  HealthCheckConfig hd;
  const HealthCheckConfig& h = f.health_check;
  Attributes health;
  w.attr(health, "url", h.url, h.url == hd.url);
  w.attr(health, "interval", w.timespan(h.interval), h.interval == hd.interval);
  w.attr(health, "timeout", w.timespan(h.timeout), h.timeout == hd.timeout);
  w.attr(health, "retries", std::to_string(h.retries), h.retries == hd.retries);
  w.attr(health, "statusCodeMatch", h.status_code_match,
         h.status_code_match == hd.status_code_match);
  w.attr(health, "responseMatch", h.response_match, h.response_match == hd.response_match);
  w.attr(health, "liveTrafficFailureCodes", h.live_traffic_failure_codes,
         h.live_traffic_failure_codes == hd.live_traffic_failure_codes);
  w.attr(health, "maxLiveTrafficFailures", std::to_string(h.max_live_traffic_failures),
         h.max_live_traffic_failures == hd.max_live_traffic_failures);
  w.attr(health, "liveTrafficFailurePeriod", w.timespan(h.live_traffic_failure_period),
         h.live_traffic_failure_period == hd.live_traffic_failure_period);
  w.attr(health, "minServers", std::to_string(h.min_servers), h.min_servers == hd.min_servers);

  AffinityConfig ad;
  const AffinityConfig& a = f.affinity;
  Attributes affinity;
  w.attr(affinity, "useCookie", w.boolean(a.use_cookie), a.use_cookie == ad.use_cookie);
  w.attr(affinity, "cookieName", a.cookie_name, a.cookie_name == ad.cookie_name);
  w.attr(affinity, "useHostName", w.boolean(a.use_host_name), a.use_host_name == ad.use_host_name);

  LoadBalancingConfig bd;
  const LoadBalancingConfig& b = f.load_balancing;
  Attributes balancing;
  w.attr(balancing, "algorithm", w.enumerator(kAlgorithms[static_cast<int>(b.algorithm)]),
         b.algorithm == bd.algorithm);
  w.attr(balancing, "hashServerVariable", b.hash_server_variable,
         b.hash_server_variable == bd.hash_server_variable);
  w.attr(balancing, "queryStringNames", b.query_string_names,
         b.query_string_names == bd.query_string_names);
  w.attr(balancing, "leastResponseTimePeriod", w.timespan(b.least_response_time_period),
         b.least_response_time_period == bd.least_response_time_period);
  w.attr(balancing, "randomizeLBTies", w.boolean(b.randomize_lb_ties),
         b.randomize_lb_ties == bd.randomize_lb_ties);

  if (protocol.empty() && !cache && health.empty() && affinity.empty() && balancing.empty() &&
      w.coin()) {
    return;
  }
  w.open("applicationRequestRouting", {}, Checked::Yes);
  write_in_any_order(w, {[&] {
                           if (!cache) return optional_leaf(w, "protocol", protocol);
                           w.open("protocol", protocol, Checked::Yes);
                           // Accepted, listed as not acted on; must not disturb anything else.
                           Attributes c;
                           w.attr(c, "enabled", w.boolean(false));
                           w.attr(c, "queryStringHandling", w.enumerator("Accept"));
                           w.leaf("cache", c, Checked::Yes);
                           w.close();
                         },
                         [&] { optional_leaf(w, "healthCheck", health); },
                         [&] { optional_leaf(w, "affinity", affinity); },
                         [&] { optional_leaf(w, "loadBalancing", balancing); }});
  w.close();
}

void write_farm(XmlWriter& w, const FarmConfig& f) {
  Attributes attributes;
  w.attr(attributes, "name", f.name);
  w.attr(attributes, "enabled", w.boolean(f.enabled), f.enabled);
  std::vector<std::function<void()>> servers;
  for (size_t i = 0; i < f.servers.size(); ++i) {
    servers.push_back([&w, &f, i] { write_server(w, f.servers[i]); });
  }
  std::vector<std::function<void()>> others = {[&] { write_farm_arr(w, f); }};
  if (!f.application_pool.empty()) {
    others.push_back([&] {
      Attributes pool;
      w.attr(pool, "name", f.application_pool);
      w.leaf("applicationPool", pool, Checked::Yes);
    });
  }
  if (w.coin() && w.coin()) {
    // Web Farm Framework provisioning: accepted whole, contents not examined.
    others.push_back([&] {
      w.open("platformProvision", {}, Checked::No);
      w.leaf("platform", {{"name", "x"}}, Checked::No);
      w.close();
    });
  }
  w.open("webFarm", attributes, Checked::Yes);
  write_in_order(w, std::move(servers), std::move(others));
  w.close();
}

void write_rule(XmlWriter& w, const RuleConfig& r) {
  constexpr std::string_view kSyntaxes[] = {"ECMAScript", "Wildcard", "ExactMatch"};
  constexpr std::string_view kGroupings[] = {"MatchAll", "MatchAny"};
  constexpr std::string_view kActions[] = {"None", "Rewrite", "Redirect", "CustomResponse",
                                           "AbortRequest"};
  RuleConfig d;
  Attributes attributes;
  w.attr(attributes, "name", r.name);
  w.attr(attributes, "enabled", w.boolean(r.enabled), r.enabled == d.enabled);
  w.attr(attributes, "patternSyntax", w.enumerator(kSyntaxes[static_cast<int>(r.pattern_syntax)]),
         r.pattern_syntax == d.pattern_syntax);
  w.attr(attributes, "stopProcessing", w.boolean(r.stop_processing),
         r.stop_processing == d.stop_processing);

  Attributes match;
  w.attr(match, "url", r.match_url);
  w.attr(match, "ignoreCase", w.boolean(r.match_ignore_case),
         r.match_ignore_case == d.match_ignore_case);
  w.attr(match, "negate", w.boolean(r.match_negate), r.match_negate == d.match_negate);

  Attributes conditions;
  w.attr(conditions, "logicalGrouping",
         w.enumerator(kGroupings[static_cast<int>(r.logical_grouping)]),
         r.logical_grouping == d.logical_grouping);
  w.attr(conditions, "trackAllCaptures", w.boolean(r.track_all_captures),
         r.track_all_captures == d.track_all_captures);

  Attributes action;
  w.attr(action, "type", w.enumerator(kActions[static_cast<int>(r.action)]), r.action == d.action);
  if (!r.action_url.empty()) w.attr(action, "url", r.action_url);
  w.attr(action, "appendQueryString", w.boolean(r.append_query_string),
         r.append_query_string == d.append_query_string);
  if (r.action == ActionType::Redirect) {
    constexpr std::pair<uint32_t, std::string_view> kRedirectTypes[] = {
        {301, "Permanent"}, {302, "Found"}, {303, "SeeOther"}, {307, "Temporary"}};
    for (const auto& [status, type] : kRedirectTypes) {
      if (status == r.status_code) {
        w.attr(action, "redirectType", w.enumerator(type), status == 301);
      }
    }
  }
  if (r.action == ActionType::CustomResponse) {
    w.attr(action, "statusCode", std::to_string(r.status_code));
  }
  w.attr(action, "statusReason", r.status_reason, r.status_reason.empty());
  w.attr(action, "statusDescription", r.status_description, r.status_description.empty());

  w.open("rule", attributes, Checked::Yes);
  write_in_any_order(w, {[&] { w.leaf("match", match, Checked::Yes); },
                         [&] {
                           if (r.conditions.empty() && conditions.empty() && w.coin()) return;
                           w.open("conditions", conditions, Checked::Yes);
                           for (const ConditionConfig& c : r.conditions) {
                             Attributes add;
                             w.attr(add, "input", c.input);
                             w.attr(add, "pattern", c.pattern, c.pattern.empty());
                             w.attr(add, "ignoreCase", w.boolean(c.ignore_case), c.ignore_case);
                             w.attr(add, "negate", w.boolean(c.negate), !c.negate);
                             w.attr(add, "matchType", w.enumerator("Pattern"), true);
                             w.leaf("add", add, Checked::Yes);
                           }
                           w.close();
                         },
                         [&] {
                           if (r.server_variables.empty() && w.coin()) return;
                           w.open("serverVariables", {}, Checked::Yes);
                           for (const ServerVariableSet& set : r.server_variables) {
                             Attributes a;
                             w.attr(a, "name", set.name);
                             w.attr(a, "value", set.value, set.value.empty());
                             w.attr(a, "replace", w.boolean(set.replace), set.replace);
                             w.leaf("set", a, Checked::Yes);
                           }
                           w.close();
                         },
                         [&] {
                           // No <action> at all is URL Rewrite's None.
                           if (action.empty() && w.coin()) return;
                           w.leaf("action", action, Checked::Yes);
                         }});
  w.close();
}

// A rule that is later removed again by <remove> or <clear/>; its name cannot clash ('~').
void write_decoy_rule(XmlWriter& w) {
  w.open("rule", {{w.spell("name"), "~decoy"}}, Checked::Yes);
  w.leaf("match", {{w.spell("url"), "~"}}, Checked::Yes);
  w.close();
}

void write_global_rules(XmlWriter& w, const Config& c) {
  w.open("globalRules", {}, Checked::Yes);
  switch (w.below(4)) {
    case 0:
      write_decoy_rule(w);
      w.leaf("clear", {}, Checked::Yes);
      break;
    case 1:
      w.leaf("clear", {}, Checked::Yes);
      break;
    default:
      break;
  }
  bool removed = !w.coin();
  std::vector<std::function<void()>> rules;
  for (size_t i = 0; i < c.global_rules.size(); ++i) {
    rules.push_back([&w, &c, i] { write_rule(w, c.global_rules[i]); });
  }
  std::vector<std::function<void()>> extras;
  if (!removed) {
    extras.push_back([&] {
      write_decoy_rule(w);
      w.leaf("remove", {{w.spell("name"), w.spell("~DECOY")}}, Checked::Yes);
    });
  }
  write_in_order(w, std::move(rules), std::move(extras));
  w.close();
}

void write_rewrite_maps(XmlWriter& w, const Config& c) {
  if (c.rewrite_maps.empty() && w.coin()) return;
  w.open("rewriteMaps", {}, Checked::Yes);
  for (const RewriteMapConfig& map : c.rewrite_maps) {
    Attributes attributes;
    w.attr(attributes, "name", map.name);
    w.attr(attributes, "defaultValue", map.default_value, map.default_value.empty());
    w.open("rewriteMap", attributes, Checked::Yes);
    std::vector<std::function<void()>> entries;
    for (size_t i = 0; i < map.entries.size(); ++i) {
      entries.push_back([&w, &map, i] {
        const auto& [key, value] = map.entries[i];
        Attributes add;
        w.attr(add, "key", key);
        w.attr(add, "value", value, value.empty());
        w.leaf("add", add, Checked::Yes);
      });
    }
    std::vector<std::function<void()>> extras;
    if (w.coin()) {
      // An entry added, then removed by key (keys have no '~').
      extras.push_back([&] {
        w.leaf("add", {{w.spell("key"), "~gone"}, {w.spell("value"), "x"}}, Checked::Yes);
        w.leaf("remove", {{w.spell("key"), "~gone"}}, Checked::Yes);
      });
    }
    write_in_order(w, std::move(entries), std::move(extras));
    w.close();
  }
  w.close();
}

void write_system_web_server(XmlWriter& w, const Config& c) {
  Config d;
  Attributes proxy = protocol_attributes(w, c.global_proxy, d.global_proxy);
  w.attr(proxy, "enabled", w.boolean(c.global_proxy_enabled), !c.global_proxy_enabled);
  bool any_rewrite = !c.global_rules.empty() || !c.rewrite_maps.empty();
  if (proxy.empty() && !any_rewrite && w.coin()) return;
  w.open("system.webServer", {}, Checked::No);
  std::vector<std::function<void()>> parts = {[&] {
                                                if (proxy.empty() && w.coin()) return;
                                                w.leaf("proxy", proxy, Checked::Yes);
                                              },
                                              [&] {
                                                if (!any_rewrite && w.coin()) return;
                                                w.open("rewrite", {}, Checked::Yes);
                                                write_in_any_order(
                                                    w, {[&] { write_rewrite_maps(w, c); },
                                                        [&] {
                                                          if (c.global_rules.empty() && w.coin())
                                                            return;
                                                          write_global_rules(w, c);
                                                        }});
                                                w.close();
                                              }};
  if (w.coin()) {
    // Other IIS sections are none of Harrow's business.
    parts.push_back([&] { w.leaf("defaultDocument", {{"enabled", "true"}}, Checked::No); });
  }
  write_in_any_order(w, std::move(parts));
  w.close();
}

// IIS site bindings "IP:PORT:HOST" for listeners[0, count): sites are read before <harrow>,
// so they hold a prefix of the listener list. Every IPv4 address may be "*", "" or 0.0.0.0.
void write_sites(XmlWriter& w, const Config& c, size_t count) {
  w.open("sites", {}, Checked::No);
  size_t next = 0;
  for (int site = 1; next < count || site == 1; ++site) {
    size_t end = site == 1 ? next + w.below(count - next + 1) : count;
    Attributes attributes;
    w.attr(attributes, "name", "Site " + std::to_string(site));
    attributes.push_back({"id", std::to_string(site)});
    w.open("site", attributes, Checked::No);
    if (w.coin()) {
      // The rest of a site is IIS's business.
      w.open("application", {{"path", "/"}}, Checked::No);
      w.leaf("virtualDirectory", {{"path", "/"}, {"physicalPath", "C:\\inetpub"}}, Checked::No);
      w.close();
    }
    w.open("bindings", {}, Checked::Yes);
    if (w.coin()) {
      // Forgotten by the <clear/> that follows.
      Attributes decoy;
      w.attr(decoy, "protocol", "http");
      w.attr(decoy, "bindingInformation", "*:18999:");
      w.leaf("binding", decoy, Checked::Yes);
      w.leaf("clear", {}, Checked::Yes);
    }
    for (; next < end; ++next) {
      const ListenConfig& listener = c.listeners[next];
      size_t colon = listener.address.rfind(':');
      std::string ip = listener.address.substr(0, colon);
      if (listener.address.starts_with("0.0.0.0:")) {
        const char* spellings[] = {"*", "", "0.0.0.0"};
        ip = spellings[w.below(3)];
      }
      std::string host = w.coin() ? "" : "www.example.com";
      Attributes binding;
      w.attr(binding, "protocol", w.enumerator(listener.tls ? "https" : "http"));
      w.attr(binding, "bindingInformation", ip + listener.address.substr(colon) + ":" + host);
      w.leaf("binding", binding, Checked::Yes);
      if (w.coin() && w.coin()) {
        // Other protocols are listed as not acted on and skipped.
        w.leaf("binding",
               {{w.spell("protocol"), "net.tcp"}, {w.spell("bindingInformation"), "808:*"}},
               Checked::Yes);
      }
    }
    w.close();
    w.close();
  }
  w.close();
}

void write_system_application_host(XmlWriter& w, const Config& c, size_t listeners_in_sites) {
  if (c.application_pools.empty() && listeners_in_sites == 0 && w.coin()) return;
  w.open("system.applicationHost", {}, Checked::No);
  std::vector<std::function<void()>> parts = {[&] {
    if (c.application_pools.empty() && w.coin()) return;
    w.open("applicationPools", {}, Checked::No);
    for (const std::string& pool : c.application_pools) {
      Attributes add;
      w.attr(add, "name", pool);
      // IIS's own pool settings: not Harrow's to check.
      if (w.coin()) add.push_back({"managedRuntimeVersion", "v4.0"});
      w.leaf("add", add, Checked::No);
    }
    if (w.coin()) {
      w.open("applicationPoolDefaults", {{"managedPipelineMode", "Integrated"}}, Checked::No);
      w.leaf("processModel", {{"identityType", "ApplicationPoolIdentity"}}, Checked::No);
      w.close();
    }
    w.close();
  }};
  if (listeners_in_sites > 0 || w.coin()) {
    parts.push_back([&] { write_sites(w, c, listeners_in_sites); });
  }
  write_in_any_order(w, std::move(parts));
  w.close();
}

void write_harrow(XmlWriter& w, const Config& c, size_t listeners_in_sites) {
  constexpr std::string_view kFormats[] = {"w3c", "json"};
  Config d;
  Attributes admin;
  w.attr(admin, "address", c.admin_address, c.admin_address == d.admin_address);
  Attributes access_log;
  w.attr(access_log, "path", c.access_log.path, c.access_log.path == d.access_log.path);
  w.attr(access_log, "format", w.enumerator(kFormats[static_cast<int>(c.access_log.format)]),
         c.access_log.format == d.access_log.format);
  Attributes limits;
  w.attr(limits, "maxConnections", std::to_string(c.limits.max_connections),
         c.limits.max_connections == d.limits.max_connections);
  w.attr(limits, "maxIdleUpstreamPerServer", std::to_string(c.limits.max_idle_upstream_per_server),
         c.limits.max_idle_upstream_per_server == d.limits.max_idle_upstream_per_server);
  Attributes timeouts;
  const TimeoutsConfig& t = c.timeouts;
  w.attr(timeouts, "connect", w.timespan(t.connect), t.connect == d.timeouts.connect);
  w.attr(timeouts, "clientHeader", w.timespan(t.client_header),
         t.client_header == d.timeouts.client_header);
  w.attr(timeouts, "clientKeepAlive", w.timespan(t.client_keep_alive),
         t.client_keep_alive == d.timeouts.client_keep_alive);
  w.attr(timeouts, "upstreamIdle", w.timespan(t.upstream_idle),
         t.upstream_idle == d.timeouts.upstream_idle);
  w.attr(timeouts, "shutdown", w.timespan(t.shutdown), t.shutdown == d.timeouts.shutdown);
  w.attr(timeouts, "clientBody", w.timespan(t.client_body),
         t.client_body == d.timeouts.client_body);
  w.attr(timeouts, "webSocketIdle", w.timespan(t.websocket_idle),
         t.websocket_idle == d.timeouts.websocket_idle);

  if (c.listeners.size() == listeners_in_sites && admin.empty() && access_log.empty() &&
      limits.empty() && timeouts.empty() && w.coin()) {
    return;
  }
  w.open("harrow", {}, Checked::Yes);
  std::vector<std::function<void()>> listeners;
  for (size_t i = listeners_in_sites; i < c.listeners.size(); ++i) {
    listeners.push_back([&w, &c, i] {
      const ListenConfig& listener = c.listeners[i];
      Attributes a;
      w.attr(a, "address", listener.address);
      w.attr(a, "tls", w.boolean(listener.tls), !listener.tls);
      w.leaf("listen", a, Checked::Yes);
    });
  }
  write_in_order(w, std::move(listeners),
                 {[&] {
                    if (admin.empty() && w.coin()) return;
                    // <admin> requires its address.
                    if (admin.empty()) w.attr(admin, "address", c.admin_address);
                    w.leaf("admin", admin, Checked::Yes);
                  },
                  [&] { optional_leaf(w, "accessLog", access_log); },
                  [&] { optional_leaf(w, "limits", limits); },
                  [&] { optional_leaf(w, "timeouts", timeouts); }});
  w.close();
}

Document write_config(const Config& c, uint32_t seed) {
  XmlWriter w(seed);
  if (w.coin()) w.declaration();
  size_t listeners_in_sites = w.below(c.listeners.size() + 1);
  w.open("configuration", {}, Checked::No);
  std::vector<std::function<void()>> sections = {
      [&] {
        if (c.farms.empty() && w.coin()) return;
        w.open("webFarms", {}, Checked::Yes);
        for (const FarmConfig& f : c.farms) {
          if (w.coin()) w.comment("farm " + f.name);
          write_farm(w, f);
        }
        w.close();
      },
      [&] { write_system_web_server(w, c); },
      [&] { write_system_application_host(w, c, listeners_in_sites); },
      [&] { write_harrow(w, c, listeners_in_sites); },
  };
  if (w.coin()) {
    sections.push_back([&] {
      w.open("system.web", {}, Checked::No);
      w.leaf("compilation", {{"debug", "false"}}, Checked::No);
      w.close();
    });
  }
  write_in_any_order(w, std::move(sections));
  w.close();
  return w.finish();
}

// =============================================================================================
// Field-by-field comparison (positions and the not-acted-on list are left out)
// =============================================================================================

std::string show(const std::string& value) {
  return "\"" + value + "\"";
}
std::string show(bool value) {
  return value ? "true" : "false";
}
std::string show(Millis value) {
  return std::to_string(value.count()) + "ms";
}
template <typename T>
std::string show(const T& value) requires std::is_integral_v<T> {
  return std::to_string(value);
}
template <typename T>
std::string show(const T& value) requires std::is_enum_v<T> {
  return "enum " + std::to_string(static_cast<int>(value));
}
std::string show(const std::pair<std::string, std::string>& entry) {
  return show(entry.first) + " => " + show(entry.second);
}

class Comparison {
 public:
  template <typename T>
  void field(const std::string& path, const T& wrote, const T& read) {
    if (wrote == read) return;
    differences_.push_back(path + ": wrote " + show(wrote) + ", read " + show(read));
  }

  // Compares sizes; the caller compares elements only when this returns true.
  bool same_size(const std::string& path, size_t wrote, size_t read) {
    if (wrote == read) return true;
    differences_.push_back(path + ".size(): wrote " + std::to_string(wrote) + ", read " +
                           std::to_string(read));
    return false;
  }

  const std::vector<std::string>& differences() const { return differences_; }

 private:
  std::vector<std::string> differences_;
};

std::string at(const std::string& path, size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

void compare(Comparison& c, const std::string& p, const ProtocolConfig& e,
             const ProtocolConfig& a) {
  c.field(p + ".timeout", e.timeout, a.timeout);
  c.field(p + ".keep_alive", e.keep_alive, a.keep_alive);
  c.field(p + ".http_version", e.http_version, a.http_version);
  c.field(p + ".preserve_host_header", e.preserve_host_header, a.preserve_host_header);
  c.field(p + ".reverse_rewrite_host_in_response_headers",
          e.reverse_rewrite_host_in_response_headers, a.reverse_rewrite_host_in_response_headers);
  c.field(p + ".x_forwarded_for_header_name", e.x_forwarded_for_header_name,
          a.x_forwarded_for_header_name);
  c.field(p + ".include_port_in_x_forwarded_for", e.include_port_in_x_forwarded_for,
          a.include_port_in_x_forwarded_for);
  c.field(p + ".arr_response_header", e.arr_response_header, a.arr_response_header);
  c.field(p + ".max_forwards", e.max_forwards, a.max_forwards);
  c.field(p + ".log_guid_name", e.log_guid_name, a.log_guid_name);
  c.field(p + ".ssl_header_name", e.ssl_header_name, a.ssl_header_name);
  c.field(p + ".client_cert_header_name", e.client_cert_header_name, a.client_cert_header_name);
  c.field(p + ".max_response_header_size", e.max_response_header_size, a.max_response_header_size);
}

void compare(Comparison& c, const std::string& p, const FarmConfig& e, const FarmConfig& a) {
  c.field(p + ".name", e.name, a.name);
  c.field(p + ".enabled", e.enabled, a.enabled);
  c.field(p + ".application_pool", e.application_pool, a.application_pool);
  if (c.same_size(p + ".servers", e.servers.size(), a.servers.size())) {
    for (size_t i = 0; i < e.servers.size(); ++i) {
      const ServerConfig& es = e.servers[i];
      const ServerConfig& as = a.servers[i];
      std::string s = at(p + ".servers", i);
      c.field(s + ".address", es.address, as.address);
      c.field(s + ".enabled", es.enabled, as.enabled);
      c.field(s + ".weight", es.weight, as.weight);
      c.field(s + ".http_port", es.http_port, as.http_port);
      c.field(s + ".https_port", es.https_port, as.https_port);
      c.field(s + ".host_name", es.host_name, as.host_name);
      c.field(s + ".health_check_alternate_host_name", es.health_check_alternate_host_name,
              as.health_check_alternate_host_name);
      c.field(s + ".health_check_alternate_port", es.health_check_alternate_port,
              as.health_check_alternate_port);
    }
  }
  compare(c, p + ".protocol", e.protocol, a.protocol);
  const HealthCheckConfig& eh = e.health_check;
  const HealthCheckConfig& ah = a.health_check;
  std::string h = p + ".health_check";
  c.field(h + ".url", eh.url, ah.url);
  c.field(h + ".interval", eh.interval, ah.interval);
  c.field(h + ".timeout", eh.timeout, ah.timeout);
  c.field(h + ".retries", eh.retries, ah.retries);
  c.field(h + ".status_code_match", eh.status_code_match, ah.status_code_match);
  c.field(h + ".response_match", eh.response_match, ah.response_match);
  c.field(h + ".live_traffic_failure_codes", eh.live_traffic_failure_codes,
          ah.live_traffic_failure_codes);
  c.field(h + ".max_live_traffic_failures", eh.max_live_traffic_failures,
          ah.max_live_traffic_failures);
  c.field(h + ".live_traffic_failure_period", eh.live_traffic_failure_period,
          ah.live_traffic_failure_period);
  c.field(h + ".min_servers", eh.min_servers, ah.min_servers);
  c.field(p + ".affinity.use_cookie", e.affinity.use_cookie, a.affinity.use_cookie);
  c.field(p + ".affinity.cookie_name", e.affinity.cookie_name, a.affinity.cookie_name);
  c.field(p + ".affinity.use_host_name", e.affinity.use_host_name, a.affinity.use_host_name);
  const LoadBalancingConfig& eb = e.load_balancing;
  const LoadBalancingConfig& ab = a.load_balancing;
  std::string b = p + ".load_balancing";
  c.field(b + ".algorithm", eb.algorithm, ab.algorithm);
  c.field(b + ".hash_server_variable", eb.hash_server_variable, ab.hash_server_variable);
  c.field(b + ".query_string_names", eb.query_string_names, ab.query_string_names);
  c.field(b + ".least_response_time_period", eb.least_response_time_period,
          ab.least_response_time_period);
  c.field(b + ".randomize_lb_ties", eb.randomize_lb_ties, ab.randomize_lb_ties);
}

void compare(Comparison& c, const std::string& p, const RuleConfig& e, const RuleConfig& a) {
  c.field(p + ".name", e.name, a.name);
  c.field(p + ".enabled", e.enabled, a.enabled);
  c.field(p + ".pattern_syntax", e.pattern_syntax, a.pattern_syntax);
  c.field(p + ".stop_processing", e.stop_processing, a.stop_processing);
  c.field(p + ".match_url", e.match_url, a.match_url);
  c.field(p + ".match_ignore_case", e.match_ignore_case, a.match_ignore_case);
  c.field(p + ".match_negate", e.match_negate, a.match_negate);
  c.field(p + ".logical_grouping", e.logical_grouping, a.logical_grouping);
  c.field(p + ".track_all_captures", e.track_all_captures, a.track_all_captures);
  if (c.same_size(p + ".conditions", e.conditions.size(), a.conditions.size())) {
    for (size_t i = 0; i < e.conditions.size(); ++i) {
      std::string q = at(p + ".conditions", i);
      c.field(q + ".input", e.conditions[i].input, a.conditions[i].input);
      c.field(q + ".pattern", e.conditions[i].pattern, a.conditions[i].pattern);
      c.field(q + ".ignore_case", e.conditions[i].ignore_case, a.conditions[i].ignore_case);
      c.field(q + ".negate", e.conditions[i].negate, a.conditions[i].negate);
    }
  }
  if (c.same_size(p + ".server_variables", e.server_variables.size(), a.server_variables.size())) {
    for (size_t i = 0; i < e.server_variables.size(); ++i) {
      std::string q = at(p + ".server_variables", i);
      c.field(q + ".name", e.server_variables[i].name, a.server_variables[i].name);
      c.field(q + ".value", e.server_variables[i].value, a.server_variables[i].value);
      c.field(q + ".replace", e.server_variables[i].replace, a.server_variables[i].replace);
    }
  }
  c.field(p + ".action", e.action, a.action);
  c.field(p + ".action_url", e.action_url, a.action_url);
  c.field(p + ".append_query_string", e.append_query_string, a.append_query_string);
  c.field(p + ".status_code", e.status_code, a.status_code);
  c.field(p + ".status_reason", e.status_reason, a.status_reason);
  c.field(p + ".status_description", e.status_description, a.status_description);
}

// Fails the property with every field that did not survive the round trip.
void expect_equal(const Config& wrote, const Config& read) {
  Comparison c;
  c.field("source_path", wrote.source_path, read.source_path);
  if (c.same_size("farms", wrote.farms.size(), read.farms.size())) {
    for (size_t i = 0; i < wrote.farms.size(); ++i) {
      compare(c, at("farms", i), wrote.farms[i], read.farms[i]);
    }
  }
  if (c.same_size("global_rules", wrote.global_rules.size(), read.global_rules.size())) {
    for (size_t i = 0; i < wrote.global_rules.size(); ++i) {
      compare(c, at("global_rules", i), wrote.global_rules[i], read.global_rules[i]);
    }
  }
  if (c.same_size("rewrite_maps", wrote.rewrite_maps.size(), read.rewrite_maps.size())) {
    for (size_t i = 0; i < wrote.rewrite_maps.size(); ++i) {
      const RewriteMapConfig& e = wrote.rewrite_maps[i];
      const RewriteMapConfig& a = read.rewrite_maps[i];
      std::string p = at("rewrite_maps", i);
      c.field(p + ".name", e.name, a.name);
      c.field(p + ".default_value", e.default_value, a.default_value);
      if (c.same_size(p + ".entries", e.entries.size(), a.entries.size())) {
        for (size_t j = 0; j < e.entries.size(); ++j) {
          c.field(at(p + ".entries", j), e.entries[j], a.entries[j]);
        }
      }
    }
  }
  compare(c, "global_proxy", wrote.global_proxy, read.global_proxy);
  c.field("global_proxy_enabled", wrote.global_proxy_enabled, read.global_proxy_enabled);
  if (c.same_size("application_pools", wrote.application_pools.size(),
                  read.application_pools.size())) {
    for (size_t i = 0; i < wrote.application_pools.size(); ++i) {
      c.field(at("application_pools", i), wrote.application_pools[i], read.application_pools[i]);
    }
  }
  if (c.same_size("listeners", wrote.listeners.size(), read.listeners.size())) {
    for (size_t i = 0; i < wrote.listeners.size(); ++i) {
      c.field(at("listeners", i) + ".address", wrote.listeners[i].address,
              read.listeners[i].address);
      c.field(at("listeners", i) + ".tls", wrote.listeners[i].tls, read.listeners[i].tls);
    }
  }
  c.field("admin_address", wrote.admin_address, read.admin_address);
  c.field("access_log.path", wrote.access_log.path, read.access_log.path);
  c.field("access_log.format", wrote.access_log.format, read.access_log.format);
  c.field("limits.max_connections", wrote.limits.max_connections, read.limits.max_connections);
  c.field("limits.max_idle_upstream_per_server", wrote.limits.max_idle_upstream_per_server,
          read.limits.max_idle_upstream_per_server);
  c.field("timeouts.connect", wrote.timeouts.connect, read.timeouts.connect);
  c.field("timeouts.client_header", wrote.timeouts.client_header, read.timeouts.client_header);
  c.field("timeouts.client_keep_alive", wrote.timeouts.client_keep_alive,
          read.timeouts.client_keep_alive);
  c.field("timeouts.upstream_idle", wrote.timeouts.upstream_idle, read.timeouts.upstream_idle);
  c.field("timeouts.shutdown", wrote.timeouts.shutdown, read.timeouts.shutdown);
  c.field("timeouts.client_body", wrote.timeouts.client_body, read.timeouts.client_body);
  c.field("timeouts.websocket_idle", wrote.timeouts.websocket_idle, read.timeouts.websocket_idle);

  if (c.differences().empty()) return;
  std::string message = std::to_string(c.differences().size()) + " field(s) differ:";
  for (const std::string& difference : c.differences()) message += "\n  " + difference;
  RC_FAIL(message);
}

std::string errors_text(const LoadResult& result) {
  std::string text;
  for (const Diagnostic& error : result.errors) text += "\n  " + error.format_error();
  return text;
}

// 1-based line and byte column of the '<' at `offset`, counted independently of the loader.
std::pair<int, int> line_column(const std::string& text, size_t offset) {
  size_t newline = text.rfind('\n', offset);
  size_t line_start = newline == std::string::npos ? 0 : newline + 1;
  auto end = text.begin() + static_cast<std::ptrdiff_t>(offset);
  int line = 1 + static_cast<int>(std::count(text.begin(), end, '\n'));
  return {line, static_cast<int>(offset - line_start) + 1};
}

// =============================================================================================
// Properties
// =============================================================================================

RC_GTEST_PROP(ConfigRoundtripProperty, WrittenConfigLoadsBackEqual, ()) {
  Config config = *valid_configs();
  Document document = write_config(config, *rc::gen::arbitrary<uint32_t>());
  RC_LOG() << document.text;
  LoadResult result = load_config_text(document.text, kPath);
  if (!result.errors.empty()) RC_FAIL("the written config does not load:" + errors_text(result));
  RC_ASSERT(result.config.has_value());
  expect_equal(config, *result.config);
  RC_CLASSIFY(!config.farms.empty(), "with farms");
  RC_CLASSIFY(!config.global_rules.empty(), "with rules");
}

RC_GTEST_PROP(ConfigRoundtripProperty, UnknownAttributeIsReportedOnceAtItsElement, ()) {
  Config config = *valid_configs();
  Document document = write_config(config, *rc::gen::arbitrary<uint32_t>());
  RC_PRE(!document.checked.empty());
  const ElementMark& mark = *rc::gen::elementOf(document.checked);
  // No element Harrow reads has any of these (nor is any an IIS lock attribute).
  std::string name = *rc::gen::element<std::string>("weigth", "timout", "enable", "nmae", "bogus",
                                                    "httpPort2", "x-harrow-unknown");
  std::string separator = *rc::gen::element<std::string>(" ", "\n        ");
  std::string text = document.text;
  text.insert(mark.name_end, separator + name + "=\"1\"");
  RC_LOG() << text;

  LoadResult result = load_config_text(text, kPath);
  // The error points at the planted attribute's name (on its own line when the separator
  // is a newline).
  auto [line, column] = line_column(text, mark.name_end + separator.size());
  std::string expected = std::string(kPath) + ":" + std::to_string(line) + ":" +
                         std::to_string(column) + ": error: unknown attribute '" + name + "' on <";
  if (result.errors.size() != 1 || !result.errors.front().format_error().starts_with(expected)) {
    RC_FAIL("planted on <" + mark.name + ">, expected one error starting '" + expected +
            "', got:" + errors_text(result));
  }
  RC_ASSERT(!result.config.has_value());
  RC_TAG(mark.name);
}

}  // namespace
}  // namespace harrow::config

// Reads applicationHost.config-style XML into a validated Config, in three steps:
//  1. pugixml parses the text; a syntax error ends the load with one positioned error.
//  2. SchemaChecker walks the sections Harrow reads against the declarative schema below
//     (kConfiguration and the tables it points to). Unknown names and their did-you-mean hint,
//     duplicate singletons, required attributes, value syntax and ranges, and the list of
//     accepted-but-ignored settings all come from that one table.
//  3. ConfigReader copies the values into a Config and runs the checks that need more than one
//     attribute: duplicates, rule targets, regexes, application pools, listener addresses.
// Every error is collected; they are sorted by position, and a Config is returned only when
// there are none.

#include "config/loader.h"
#include "core/base/ascii.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <pugixml.hpp>
#include <span>
#include <sstream>
#include <type_traits>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <sys/stat.h>

#include "config/server_variables.h"
#include "config/timespan.h"

namespace harrow::config {
namespace {

using harrow::ascii_lower;
using harrow::iequals;

// ============================================================================================
// Names: case-insensitive comparison and "did you mean"
// ============================================================================================

// Case-insensitive Levenshtein distance, two rows.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> previous(b.size() + 1);
  std::vector<size_t> current(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t substitution =
          previous[j - 1] + (ascii_lower(a[i - 1]) == ascii_lower(b[j - 1]) ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

// "; did you mean 'X'?" naming the closest candidate within two edits, else the first one that
// starts with what was written (so "health" finds "healthCheck"); "" when nothing is close.
std::string did_you_mean(std::string_view given, const std::vector<std::string_view>& candidates) {
  constexpr size_t kMaxEdits = 2;
  std::string_view best;
  size_t best_distance = kMaxEdits + 1;
  for (std::string_view candidate : candidates) {
    // The length gap bounds the distance from below; skipping early keeps long fuzzed names cheap.
    size_t gap = candidate.size() > given.size() ? candidate.size() - given.size()
                                                 : given.size() - candidate.size();
    if (gap >= best_distance) continue;
    size_t distance = edit_distance(given, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  if (best.empty() && given.size() >= 3) {
    for (std::string_view candidate : candidates) {
      if (istarts_with(candidate, given)) {
        best = candidate;
        break;
      }
    }
  }
  // A word with its ending changed ("loadBalance" for "loadBalancing"): all but the last two
  // letters are the start of the candidate.
  if (best.empty() && given.size() >= 6) {
    for (std::string_view candidate : candidates) {
      if (istarts_with(candidate, given.substr(0, given.size() - 2))) {
        best = candidate;
        break;
      }
    }
  }
  return best.empty() ? std::string() : "; did you mean '" + std::string(best) + "'?";
}

// Values are echoed in messages; keep a fuzzed megabyte attribute from flooding the terminal.
std::string quoted(std::string_view value) {
  constexpr size_t kMaxShown = 80;
  if (value.size() <= kMaxShown) return "'" + std::string(value) + "'";
  return "'" + std::string(value.substr(0, kMaxShown)) + "...'";
}

std::string tag(pugi::xml_node node) {
  return "<" + std::string(node.name()) + ">";
}

// ============================================================================================
// Values: the syntaxes IIS uses in attributes
// ============================================================================================

std::optional<bool> parse_bool(std::string_view text) {
  if (iequals(text, "true")) return true;
  if (iequals(text, "false")) return false;
  return std::nullopt;
}

std::optional<uint64_t> parse_uint(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

std::optional<int64_t> parse_int(std::string_view text) {
  bool negative = !text.empty() && text.front() == '-';
  std::optional<uint64_t> magnitude = parse_uint(negative ? text.substr(1) : text);
  if (!magnitude || *magnitude > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return std::nullopt;
  }
  int64_t value = static_cast<int64_t>(*magnitude);
  return negative ? -value : value;
}

std::optional<size_t> enum_index(std::span<const std::string_view> names, std::string_view text) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (iequals(names[i], text)) return i;
  }
  return std::nullopt;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  return text;
}

// ARR's status code lists ("200-399", "500-", "200,301-302"): comma-separated codes or ranges
// of codes 100..999; an open range runs to 999. Empty means "no codes".
bool is_status_code_list(std::string_view text) {
  auto is_code = [](std::string_view digits) {
    std::optional<uint64_t> code = parse_uint(digits);
    return code && *code >= 100 && *code <= 999;
  };
  if (trim(text).empty()) return true;
  while (true) {
    size_t comma = text.find(',');
    std::string_view item = trim(text.substr(0, comma));
    size_t dash = item.find('-');
    if (dash == std::string_view::npos) {
      if (!is_code(item)) return false;
    } else {
      std::string_view low = trim(item.substr(0, dash));
      std::string_view high = trim(item.substr(dash + 1));
      if (!is_code(low)) return false;
      if (!high.empty() && (!is_code(high) || *parse_uint(high) < *parse_uint(low))) return false;
    }
    if (comma == std::string_view::npos) return true;
    text.remove_prefix(comma + 1);
  }
}

// ============================================================================================
// The schema: which elements and attributes exist where, and what their values may be
// ============================================================================================

enum class ValueKind { String, NonEmptyString, Bool, UInt, Int, TimeSpan, Enum, StatusCodes };

// ActedOn: Harrow behaves accordingly. NotActedOn: valid ARR that Harrow accepts but does not
// implement; each occurrence is listed in Config::ignored (and by --check-config).
enum class Listing { ActedOn, NotActedOn };

struct AttrSpec {
  std::string_view name;  // canonical spelling, as in ARR's schema
  ValueKind kind = ValueKind::String;
  int64_t min = 0;  // UInt/Int: the value; TimeSpan: milliseconds
  int64_t max = 0;
  std::span<const std::string_view> choices{};  // Enum
  bool required = false;
  Listing listing = Listing::ActedOn;

  constexpr AttrSpec must_be_present() const {
    AttrSpec copy = *this;
    copy.required = true;
    return copy;
  }
  constexpr AttrSpec not_acted_on() const {
    AttrSpec copy = *this;
    copy.listing = Listing::NotActedOn;
    return copy;
  }
};

constexpr AttrSpec attribute(std::string_view name, ValueKind kind, int64_t min = 0,
                             int64_t max = 0, std::span<const std::string_view> choices = {}) {
  AttrSpec spec;
  spec.name = name;
  spec.kind = kind;
  spec.min = min;
  spec.max = max;
  spec.choices = choices;
  return spec;
}
constexpr AttrSpec string_attr(std::string_view name) {
  return attribute(name, ValueKind::String);
}
constexpr AttrSpec nonempty_attr(std::string_view name) {
  return attribute(name, ValueKind::NonEmptyString);
}
constexpr AttrSpec bool_attr(std::string_view name) {
  return attribute(name, ValueKind::Bool);
}
constexpr AttrSpec uint_attr(std::string_view name, int64_t min, int64_t max) {
  return attribute(name, ValueKind::UInt, min, max);
}
constexpr AttrSpec int_attr(std::string_view name, int64_t min, int64_t max) {
  return attribute(name, ValueKind::Int, min, max);
}
constexpr AttrSpec timespan_attr(std::string_view name, int64_t min_ms, int64_t max_ms) {
  return attribute(name, ValueKind::TimeSpan, min_ms, max_ms);
}
constexpr AttrSpec enum_attr(std::string_view name, std::span<const std::string_view> choices) {
  return attribute(name, ValueKind::Enum, 0, 0, choices);
}
constexpr AttrSpec status_codes_attr(std::string_view name) {
  return attribute(name, ValueKind::StatusCodes);
}

// Error: a name not in the table is a mistake. Skip: an IIS section whose full schema Harrow
// does not model (sites, application pools); only the parts Harrow reads are checked.
enum class Unknown { Error, Skip };

// How an element appears in the paths of Config::ignored: Named "protocol", Hidden (grouping
// elements such as <system.webServer>), Collection (its items skip it: "webFarm[shop]", not
// "webFarms/webFarm[shop]").
enum class PathStyle { Named, Hidden, Collection };

struct ElementSpec {
  std::string_view name;
  std::span<const AttrSpec> attributes{};
  std::span<const ElementSpec* const> children{};
  bool repeatable = false;  // a collection item; anything else may appear once
  std::string_view key{};   // the attribute that names an item in paths: webFarm[shop]
  Listing listing = Listing::ActedOn;
  bool opaque = false;  // accepted whole, contents not examined (Web Farm Framework provisioning)
  Unknown unknown = Unknown::Error;
  PathStyle path_style = PathStyle::Named;

  constexpr ElementSpec items(std::string_view key_attribute = {}) const {
    ElementSpec copy = *this;
    copy.repeatable = true;
    copy.key = key_attribute;
    return copy;
  }
  constexpr ElementSpec not_acted_on() const {
    ElementSpec copy = *this;
    copy.listing = Listing::NotActedOn;
    return copy;
  }
  constexpr ElementSpec opaque_not_acted_on() const {
    ElementSpec copy = not_acted_on();
    copy.opaque = true;
    return copy;
  }
  constexpr ElementSpec foreign() const {
    ElementSpec copy = *this;
    copy.unknown = Unknown::Skip;
    return copy;
  }
  constexpr ElementSpec styled(PathStyle style) const {
    ElementSpec copy = *this;
    copy.path_style = style;
    return copy;
  }
};

constexpr ElementSpec element(std::string_view name, std::span<const AttrSpec> attributes = {},
                              std::span<const ElementSpec* const> children = {}) {
  ElementSpec spec;
  spec.name = name;
  spec.attributes = attributes;
  spec.children = children;
  return spec;
}

template <size_t N, size_t M>
constexpr std::array<AttrSpec, N + M> concat(const std::array<AttrSpec, N>& a,
                                             const std::array<AttrSpec, M>& b) {
  std::array<AttrSpec, N + M> all{};
  std::copy(a.begin(), a.end(), all.begin());
  std::copy(b.begin(), b.end(), all.begin() + N);
  return all;
}

constexpr int64_t kSecond = 1000;
constexpr int64_t kDay = 86'400 * kSecond;
constexpr int64_t kNoLimit = std::numeric_limits<int64_t>::max();
constexpr int64_t kUInt32Max = std::numeric_limits<uint32_t>::max();
constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kMaxBufferKb = 4'194'303;

// Enum spellings, each array in the order of the matching config.h enum (index == value).
constexpr std::string_view kHttpVersionNames[] = {"PassThrough", "Http10", "Http11"};
constexpr std::string_view kSameSiteNames[] = {"None", "Lax", "Strict"};
constexpr std::string_view kAffinityFailurePolicyNames[] = {"Redistribute", "Return503"};
constexpr std::string_view kOutboundActionNames[] = {"None", "Rewrite"};
// URL Rewrite's filterByTags names.
constexpr std::string_view kFilterTagNames[] = {"A",     "Area", "Base",   "Form",
                                                "Frame", "Head", "IFrame", "Img",
                                                "Input", "Link", "Script", "CustomTags"};
constexpr std::string_view kPatternSyntaxNames[] = {"ECMAScript", "Wildcard", "ExactMatch"};
constexpr std::string_view kLogicalGroupingNames[] = {"MatchAll", "MatchAny"};
constexpr std::string_view kActionTypeNames[] = {"None", "Rewrite", "Redirect", "CustomResponse",
                                                 "AbortRequest"};
constexpr std::string_view kAccessLogFormatNames[] = {"w3c", "json"};
// Enums with no config.h counterpart.
constexpr std::string_view kPassServerHeaderNames[] = {"Replace", "Remove", "PassThrough"};
constexpr std::string_view kQueryStringHandlingNames[] = {"Ignore", "NoCaching", "Accept"};
constexpr std::string_view kMatchTypeNames[] = {"Pattern", "IsFile", "IsDirectory"};
constexpr std::string_view kRedirectTypeNames[] = {"Permanent", "Found", "SeeOther", "Temporary"};
constexpr uint32_t kRedirectTypeStatus[] = {301, 302, 303, 307};

// ---- <webFarm><applicationRequestRouting> (ARR's arr_schema.xml) ----

constexpr AttrSpec kCacheAttrs[] = {
    bool_attr("enabled"),
    bool_attr("requestConsolidationEnabled"),
    timespan_attr("requestConsolidationTimeout", 0, kNoLimit),
    enum_attr("queryStringHandling", kQueryStringHandlingNames),
    timespan_attr("validationInterval", 0, kDay),
};
constexpr ElementSpec kCache = element("cache", kCacheAttrs);
constexpr const ElementSpec* kProtocolChildren[] = {&kCache};

// Shared by a farm's <protocol> and the global <system.webServer><proxy>.
constexpr auto kProtocolCommonAttrs = std::to_array<AttrSpec>({
    enum_attr("httpVersion", kHttpVersionNames),
    bool_attr("keepAlive"),
    timespan_attr("timeout", 1 * kSecond, kDay),
    bool_attr("preserveHostHeader"),
    bool_attr("reverseRewriteHostInResponseHeaders"),
    string_attr("xForwardedForHeaderName"),
    bool_attr("includePortInXForwardedFor"),
    bool_attr("arrResponseHeader"),
    string_attr("sslHeaderName"),
    string_attr("clientCertHeaderName"),
    string_attr("logGuidName"),
    uint_attr("maxForwards", 0, kUInt32Max),
    uint_attr("maxResponseHeaderSize", 0, kUInt32Max),
    string_attr("xForwardedByHeaderName").not_acted_on(),
    string_attr("xForwardedByHeader").not_acted_on(),
    string_attr("logCacheHitName"),
    uint_attr("minResponseBuffer", 0, kMaxBufferKb).not_acted_on(),
    uint_attr("responseBufferLimit", 0, kMaxBufferKb).not_acted_on(),
    string_attr("proxy").not_acted_on(),
    string_attr("proxyBypass").not_acted_on(),
    bool_attr("stealthMode").not_acted_on(),
    string_attr("clientCertFileName").not_acted_on(),
    string_attr("clientCertPassword").not_acted_on(),
    string_attr("clientCertHash").not_acted_on(),
    bool_attr("bufferChunkedResponses").not_acted_on(),
});
constexpr auto kFarmProtocolAttrs =
    concat(kProtocolCommonAttrs, std::array{string_attr("alternateHostName").not_acted_on()});
constexpr ElementSpec kFarmProtocol = element("protocol", kFarmProtocolAttrs, kProtocolChildren);

constexpr AttrSpec kHealthCheckAttrs[] = {
    string_attr("url"),
    // The schema gives retries a 0..20 validationParameter; enforce it.
    uint_attr("retries", 0, 20),
    timespan_attr("interval", 0, kDay),
    timespan_attr("timeout", 1 * kSecond, kDay),
    status_codes_attr("statusCodeMatch"),
    string_attr("responseMatch"),
    status_codes_attr("liveTrafficFailureCodes"),
    uint_attr("maxLiveTrafficFailures", 1, kUInt32Max),
    timespan_attr("liveTrafficFailurePeriod", 0, kDay),
    uint_attr("minServers", 0, kUInt32Max),
    // Harrow's extensions: passes needed to come back, and the probe schedule's jitter.
    uint_attr("healthyThreshold", 1, 100),
    uint_attr("jitterPercent", 0, 50),
};
constexpr ElementSpec kHealthCheck = element("healthCheck", kHealthCheckAttrs);

constexpr AttrSpec kEquivalentHostAttrs[] = {nonempty_attr("name")};
constexpr ElementSpec kEquivalentHost =
    element("equivalentHost", kEquivalentHostAttrs).items("name");
constexpr const ElementSpec* kAffinityHostChildren[] = {&kEquivalentHost};
constexpr AttrSpec kAffinityHostAttrs[] = {nonempty_attr("name"), uint_attr("servers", 1, 256)};
constexpr ElementSpec kAffinityHost =
    element("host", kAffinityHostAttrs, kAffinityHostChildren).items("name");
constexpr const ElementSpec* kAffinityChildren[] = {&kAffinityHost};
constexpr AttrSpec kAffinityAttrs[] = {
    bool_attr("useCookie"),
    nonempty_attr("cookieName"),
    bool_attr("useHostName"),
    bool_attr("hostCountersEnabled").not_acted_on(),
    bool_attr("useServerProvider").not_acted_on(),
    timespan_attr("timeout", 60 * kSecond, 30 * kDay),
    bool_attr("useExternalCache").not_acted_on(),
    bool_attr("ignoreSubDomain").not_acted_on(),
    bool_attr("ignoreSubDomainClientAffinity").not_acted_on(),
    int_attr("ignoreSubDomainFragmentDepth", 0, 32767).not_acted_on(),
    string_attr("hostAffinityProvider").not_acted_on(),
    string_attr("serverProviderImage").not_acted_on(),
    // Harrow extensions.
    nonempty_attr("domain"),
    enum_attr("sameSite", kSameSiteNames),
    bool_attr("secure"),
    timespan_attr("maxAge", 0, 400 * kDay),
    enum_attr("affinityFailurePolicy", kAffinityFailurePolicyNames),
};
constexpr ElementSpec kAffinity = element("affinity", kAffinityAttrs, kAffinityChildren);

constexpr AttrSpec kLoadBalancingAttrs[] = {
    enum_attr("algorithm", balancer::kAlgorithmNames),
    timespan_attr("leastResponseTimePeriod", 1 * kSecond, kDay),
    string_attr("hashServerVariable"),
    string_attr("queryStringNames"),
    bool_attr("randomizeLBTies"),
    // Harrow extension: RequestHash with bounded loads, in percent of the average (HAProxy's
    // hash-balance-factor): 0 = off, else above 100.
    uint_attr("hashBalanceFactor", 0, 10000),
};
constexpr ElementSpec kLoadBalancing = element("loadBalancing", kLoadBalancingAttrs);

constexpr AttrSpec kPublicKeyAttrs[] = {nonempty_attr("bytes"), string_attr("algorithmOid")};
constexpr ElementSpec kPublicKey = element("publicKey", kPublicKeyAttrs).items("bytes");
constexpr const ElementSpec* kPublicKeysChildren[] = {&kPublicKey};
constexpr ElementSpec kPublicKeys = element("publicKeys", {}, kPublicKeysChildren).not_acted_on();

constexpr const ElementSpec* kFarmArrChildren[] = {&kFarmProtocol, &kHealthCheck, &kAffinity,
                                                   &kLoadBalancing, &kPublicKeys};
constexpr ElementSpec kFarmArr = element("applicationRequestRouting", {}, kFarmArrChildren);

// ---- <server> ----

constexpr AttrSpec kServerArrAttrs[] = {
    nonempty_attr("hostName"),
    uint_attr("weight", 1, kUInt32Max),
    uint_attr("httpPort", 1, 65535),
    uint_attr("httpsPort", 1, 65535),
    nonempty_attr("healthCheckAlternateHostName"),
    uint_attr("healthCheckAlternatePort", 0, 65535),
};
constexpr ElementSpec kServerArr = element("applicationRequestRouting", kServerArrAttrs);
constexpr const ElementSpec* kServerChildren[] = {&kServerArr};
constexpr AttrSpec kServerAttrs[] = {nonempty_attr("address").must_be_present(),
                                     bool_attr("enabled")};
constexpr ElementSpec kServer = element("server", kServerAttrs, kServerChildren).items("address");

// ---- <webFarm> (Web Farm Framework's webfarm.xml, extended by ARR and by Harrow) ----

// Harrow's extension: the one application pool that owns (and alone probes) the farm.
constexpr AttrSpec kApplicationPoolAttrs[] = {nonempty_attr("name").must_be_present()};
constexpr ElementSpec kApplicationPool = element("applicationPool", kApplicationPoolAttrs);

// Web Farm Framework provisioning: farm management, nothing to do with proxying.
constexpr ElementSpec kPlatformProvision = element("platformProvision").opaque_not_acted_on();
constexpr ElementSpec kApplicationProvision = element("applicationProvision").opaque_not_acted_on();
constexpr ElementSpec kCustomProviderSettings =
    element("customProviderSettings").opaque_not_acted_on();
constexpr ElementSpec kRunProviders = element("runProviders").opaque_not_acted_on();
constexpr ElementSpec kAutoRepair = element("autoRepair").opaque_not_acted_on();
constexpr ElementSpec kDefaultProxy = element("defaultProxy").opaque_not_acted_on();

constexpr const ElementSpec* kFarmChildren[] = {&kServer,
                                                &kFarmArr,
                                                &kApplicationPool,
                                                &kPlatformProvision,
                                                &kApplicationProvision,
                                                &kCustomProviderSettings,
                                                &kRunProviders,
                                                &kAutoRepair,
                                                &kDefaultProxy};
constexpr AttrSpec kFarmAttrs[] = {
    nonempty_attr("name").must_be_present(),
    bool_attr("enabled"),
    bool_attr("serverAutoStart").not_acted_on(),
    bool_attr("passConnectionCloseHeader").not_acted_on(),
    enum_attr("passServerHeader", kPassServerHeaderNames).not_acted_on(),
    // Web Farm Framework only.
    bool_attr("autoEnableAgent").not_acted_on(),
    string_attr("adminUserName").not_acted_on(),
    string_attr("adminPassword").not_acted_on(),
    int_attr("minimumServers", kInt32Min, kInt32Max).not_acted_on(),
    string_attr("agentUrl").not_acted_on(),
    bool_attr("restartServerOnConfigurationChange").not_acted_on(),
    bool_attr("restartServerIfReady").not_acted_on(),
    string_attr("primaryServer").not_acted_on(),
    string_attr("loadBalancerProvider").not_acted_on(),
    timespan_attr("periodicRuntimeData", 0, kNoLimit).not_acted_on(),
    bool_attr("enableRuntimeData").not_acted_on(),
    int_attr("maximumStoppedServers", kInt32Min, kInt32Max).not_acted_on(),
    timespan_attr("agentRetryTime", 0, kNoLimit).not_acted_on(),
    string_attr("frontEndUrl").not_acted_on(),
};
constexpr ElementSpec kFarm = element("webFarm", kFarmAttrs, kFarmChildren).items("name");

// ---- <webFarms> ----

constexpr AttrSpec kNameAttr[] = {nonempty_attr("name").must_be_present()};
constexpr ElementSpec kHostAffinityProvider = element("add", kNameAttr).items("name");
constexpr const ElementSpec* kHostAffinityProviderListChildren[] = {&kHostAffinityProvider};
constexpr ElementSpec kHostAffinityProviderList =
    element("hostAffinityProviderList", {}, kHostAffinityProviderListChildren);
constexpr const ElementSpec* kWebFarmsArrChildren[] = {&kHostAffinityProviderList};
constexpr ElementSpec kWebFarmsArr =
    element("applicationRequestRouting", {}, kWebFarmsArrChildren).not_acted_on();
constexpr const ElementSpec* kWebFarmsChildren[] = {&kFarm, &kWebFarmsArr};
constexpr AttrSpec kWebFarmsAttrs[] = {bool_attr("onDemandHealthCheck").not_acted_on()};
constexpr ElementSpec kWebFarms =
    element("webFarms", kWebFarmsAttrs, kWebFarmsChildren).styled(PathStyle::Collection);

// ---- <system.webServer><proxy> ----

constexpr auto kGlobalProxyAttrs =
    concat(kProtocolCommonAttrs,
           std::array{bool_attr("enabled"), bool_attr("passConnectionCloseHeader").not_acted_on(),
                      enum_attr("passServerHeader", kPassServerHeaderNames).not_acted_on()});
constexpr ElementSpec kGlobalProxy = element("proxy", kGlobalProxyAttrs, kProtocolChildren);

// ---- <system.webServer><rewrite> (URL Rewrite's rewrite_schema.xml) ----

constexpr AttrSpec kMatchAttrs[] = {nonempty_attr("url"), bool_attr("ignoreCase"),
                                    bool_attr("negate")};
constexpr ElementSpec kMatch = element("match", kMatchAttrs);

constexpr AttrSpec kConditionAttrs[] = {
    string_attr("input"), enum_attr("matchType", kMatchTypeNames), string_attr("pattern"),
    bool_attr("ignoreCase"), bool_attr("negate")};
constexpr ElementSpec kCondition = element("add", kConditionAttrs).items();
constexpr const ElementSpec* kConditionsChildren[] = {&kCondition};
constexpr AttrSpec kConditionsAttrs[] = {enum_attr("logicalGrouping", kLogicalGroupingNames),
                                         bool_attr("trackAllCaptures")};
constexpr ElementSpec kConditions = element("conditions", kConditionsAttrs, kConditionsChildren);

constexpr AttrSpec kSetAttrs[] = {nonempty_attr("name").must_be_present(), string_attr("value"),
                                  bool_attr("replace")};
constexpr ElementSpec kSet = element("set", kSetAttrs).items("name");
constexpr const ElementSpec* kServerVariablesChildren[] = {&kSet};
constexpr ElementSpec kServerVariables = element("serverVariables", {}, kServerVariablesChildren);

constexpr AttrSpec kActionAttrs[] = {
    enum_attr("type", kActionTypeNames),
    string_attr("url"),
    bool_attr("appendQueryString"),
    enum_attr("redirectType", kRedirectTypeNames),
    uint_attr("statusCode", 100, 999),
    string_attr("statusReason"),
    uint_attr("subStatusCode", 0, 999).not_acted_on(),
    string_attr("statusDescription"),
    // URL Rewrite: log the rewritten URL in IIS's log instead of the original one.
    bool_attr("logRewrittenUrl").not_acted_on(),
};
constexpr ElementSpec kAction = element("action", kActionAttrs);

constexpr const ElementSpec* kRuleChildren[] = {&kMatch, &kConditions, &kServerVariables, &kAction};
// URL Rewrite 2's responseCacheDirective: whether IIS's kernel/user-mode cache may keep the
// response of a request the rule touched. Harrow does not cache.
constexpr std::string_view kResponseCacheDirectiveNames[] = {"Auto", "Always", "Never",
                                                             "NotIfRuleMatched"};
constexpr AttrSpec kRuleAttrs[] = {
    nonempty_attr("name").must_be_present(), bool_attr("enabled"),
    enum_attr("patternSyntax", kPatternSyntaxNames), bool_attr("stopProcessing"),
    enum_attr("responseCacheDirective", kResponseCacheDirectiveNames).not_acted_on()};
constexpr ElementSpec kRule = element("rule", kRuleAttrs, kRuleChildren).items("name");
// IIS collections may clear what was inherited or remove one item by key.
constexpr ElementSpec kClear = element("clear").items();
constexpr ElementSpec kRemoveByName = element("remove", kNameAttr).items("name");
constexpr const ElementSpec* kGlobalRulesChildren[] = {&kRule, &kClear, &kRemoveByName};
// URL Rewrite 2.1's useOriginalURLEncoding (on <globalRules> and <rules>): Harrow's rules always
// see the decoded URL (README "The URL your rules see"), so it is listed, not acted on.
constexpr AttrSpec kRulesSectionAttrs[] = {bool_attr("useOriginalURLEncoding").not_acted_on()};
constexpr ElementSpec kGlobalRules =
    element("globalRules", kRulesSectionAttrs, kGlobalRulesChildren).styled(PathStyle::Collection);

constexpr AttrSpec kMapEntryAttrs[] = {string_attr("key").must_be_present(), string_attr("value")};
constexpr ElementSpec kMapEntry = element("add", kMapEntryAttrs).items("key");
constexpr AttrSpec kKeyAttr[] = {string_attr("key").must_be_present()};
constexpr ElementSpec kRemoveByKey = element("remove", kKeyAttr).items("key");
constexpr const ElementSpec* kRewriteMapChildren[] = {&kMapEntry, &kClear, &kRemoveByKey};
constexpr AttrSpec kRewriteMapAttrs[] = {nonempty_attr("name").must_be_present(),
                                         string_attr("defaultValue"),
                                         bool_attr("ignoreCase").not_acted_on()};
constexpr ElementSpec kRewriteMap =
    element("rewriteMap", kRewriteMapAttrs, kRewriteMapChildren).items("name");
constexpr const ElementSpec* kRewriteMapsChildren[] = {&kRewriteMap, &kClear, &kRemoveByName};
constexpr ElementSpec kRewriteMaps =
    element("rewriteMaps", {}, kRewriteMapsChildren).styled(PathStyle::Collection);

// Distributed rules (<rules>): server level, or a site's in <location>; same rule schema.
constexpr ElementSpec kDistributedRules =
    element("rules", kRulesSectionAttrs, kGlobalRulesChildren).styled(PathStyle::Collection);

// <outboundRules>: URL Rewrite's response rules.
constexpr AttrSpec kOutboundMatchAttrs[] = {
    string_attr("serverVariable"),
    string_attr("filterByTags"),
    string_attr("customTags"),
    string_attr("pattern"),
    bool_attr("ignoreCase"),
    bool_attr("negate"),
    uint_attr("occurrences", 0, std::numeric_limits<int64_t>::max())};
constexpr ElementSpec kOutboundMatch = element("match", kOutboundMatchAttrs);
constexpr AttrSpec kOutboundActionAttrs[] = {enum_attr("type", kOutboundActionNames),
                                             string_attr("value"), bool_attr("replace")};
constexpr ElementSpec kOutboundAction = element("action", kOutboundActionAttrs);
constexpr const ElementSpec* kOutboundRuleChildren[] = {&kOutboundMatch, &kConditions,
                                                        &kOutboundAction};
constexpr AttrSpec kOutboundRuleAttrs[] = {
    nonempty_attr("name").must_be_present(), bool_attr("enabled"),
    enum_attr("patternSyntax", kPatternSyntaxNames), bool_attr("stopProcessing"),
    string_attr("preCondition")};
constexpr ElementSpec kOutboundRule =
    element("rule", kOutboundRuleAttrs, kOutboundRuleChildren).items("name");
constexpr AttrSpec kPreConditionAttrs[] = {nonempty_attr("name").must_be_present(),
                                           enum_attr("logicalGrouping", kLogicalGroupingNames),
                                           enum_attr("patternSyntax", kPatternSyntaxNames)};
constexpr const ElementSpec* kPreConditionChildren[] = {&kCondition};
constexpr ElementSpec kPreCondition =
    element("preCondition", kPreConditionAttrs, kPreConditionChildren).items("name");
constexpr const ElementSpec* kPreConditionsChildren[] = {&kPreCondition, &kClear, &kRemoveByName};
constexpr ElementSpec kPreConditions = element("preConditions", {}, kPreConditionsChildren);
constexpr AttrSpec kTagAttrs[] = {nonempty_attr("name").must_be_present(),
                                  nonempty_attr("attribute").must_be_present()};
constexpr ElementSpec kTag = element("tag", kTagAttrs).items("name");
constexpr const ElementSpec* kTagsChildren[] = {&kTag};
constexpr ElementSpec kTags = element("tags", kNameAttr, kTagsChildren).items("name");
constexpr const ElementSpec* kCustomTagsChildren[] = {&kTags};
constexpr ElementSpec kCustomTags = element("customTags", {}, kCustomTagsChildren);
constexpr const ElementSpec* kOutboundRulesChildren[] = {&kOutboundRule, &kPreConditions,
                                                         &kCustomTags, &kClear, &kRemoveByName};
constexpr AttrSpec kOutboundRulesAttrs[] = {bool_attr("rewriteBeforeCache").not_acted_on()};
constexpr ElementSpec kOutboundRules =
    element("outboundRules", kOutboundRulesAttrs, kOutboundRulesChildren)
        .styled(PathStyle::Collection);

constexpr ElementSpec kAllowedVariable = element("add", kNameAttr).items("name");
constexpr const ElementSpec* kAllowedServerVariablesChildren[] = {&kAllowedVariable, &kClear,
                                                                  &kRemoveByName};
constexpr ElementSpec kAllowedServerVariables =
    element("allowedServerVariables", {}, kAllowedServerVariablesChildren)
        .styled(PathStyle::Collection);
constexpr ElementSpec kRewriteProviders = element("providers").opaque_not_acted_on();
constexpr const ElementSpec* kRewriteChildren[] = {
    &kGlobalRules,     &kRewriteMaps, &kDistributedRules, &kOutboundRules, &kAllowedServerVariables,
    &kRewriteProviders};
constexpr ElementSpec kRewrite = element("rewrite", {}, kRewriteChildren);

// IIS request filtering: Harrow acts on the body, URL and query string limits and on
// allowDoubleEscaping; the rest of the section is IIS's.
constexpr AttrSpec kRequestLimitsAttrs[] = {uint_attr("maxAllowedContentLength", 0, kUInt32Max),
                                            uint_attr("maxUrl", 0, kUInt32Max),
                                            uint_attr("maxQueryString", 0, kUInt32Max)};
constexpr ElementSpec kRequestLimits = element("requestLimits", kRequestLimitsAttrs).foreign();
constexpr const ElementSpec* kRequestFilteringChildren[] = {&kRequestLimits};
constexpr AttrSpec kRequestFilteringAttrs[] = {bool_attr("allowDoubleEscaping")};
constexpr ElementSpec kRequestFiltering =
    element("requestFiltering", kRequestFilteringAttrs, kRequestFilteringChildren).foreign();
constexpr const ElementSpec* kSecurityChildren[] = {&kRequestFiltering};
constexpr ElementSpec kSecurity =
    element("security", {}, kSecurityChildren).foreign().styled(PathStyle::Hidden);

// ARR's disk cache. Harrow keeps its disk tier under the first driveLocation; scavenging runs
// as entries are written (not on scavengerInterval); compression, shared drives and drive
// health are ARR's alone.
constexpr AttrSpec kDriveLocationAttrs[] = {nonempty_attr("path").must_be_present(),
                                            uint_attr("maxUsage", 0, kUInt32Max).must_be_present(),
                                            uint_attr("maxUsageMB", 0, kUInt32Max)};
constexpr ElementSpec kDriveLocation = element("driveLocation", kDriveLocationAttrs).items("path");
constexpr ElementSpec kSharedDriveLocation = element("sharedDriveLocation").opaque_not_acted_on();
constexpr ElementSpec kDriveLocationHealth = element("driveLocationHealth").opaque_not_acted_on();
constexpr ElementSpec kDiskCompression = element("compression").opaque_not_acted_on();
constexpr const ElementSpec* kDiskCacheChildren[] = {&kDriveLocation, &kSharedDriveLocation,
                                                     &kDriveLocationHealth, &kDiskCompression};
constexpr AttrSpec kDiskCacheAttrs[] = {
    string_attr("allowedAcceptEncoding").not_acted_on(),
    uint_attr("byteRangeSegmentSize", 0, 4194303).not_acted_on(),
    timespan_attr("scavengerInterval", 0, kDay).not_acted_on(),
    uint_attr("lowWatermark", 0, 100),
    uint_attr("highWatermark", 0, 100),
};
constexpr ElementSpec kDiskCache = element("diskCache", kDiskCacheAttrs, kDiskCacheChildren);
constexpr const ElementSpec* kSystemWebServerChildren[] = {&kGlobalProxy, &kRewrite, &kSecurity,
                                                           &kDiskCache};
constexpr ElementSpec kSystemWebServer =
    element("system.webServer", {}, kSystemWebServerChildren).foreign().styled(PathStyle::Hidden);

// <location path="SITE">: a site's own rules (and other IIS settings Harrow does not read).
constexpr const ElementSpec* kSiteRewriteChildren[] = {
    &kDistributedRules, &kOutboundRules, &kAllowedServerVariables, &kRewriteProviders};
constexpr ElementSpec kSiteRewrite = element("rewrite", {}, kSiteRewriteChildren);
constexpr const ElementSpec* kSiteSystemWebServerChildren[] = {&kSiteRewrite};
constexpr ElementSpec kSiteSystemWebServer =
    element("system.webServer", {}, kSiteSystemWebServerChildren)
        .foreign()
        .styled(PathStyle::Hidden);
constexpr AttrSpec kLocationAttrs[] = {string_attr("path").must_be_present(),
                                       string_attr("overrideMode"),
                                       bool_attr("inheritInChildApplications")};
constexpr const ElementSpec* kLocationChildren[] = {&kSiteSystemWebServer};
constexpr ElementSpec kLocation =
    element("location", kLocationAttrs, kLocationChildren).items("path").foreign();

// ---- <system.applicationHost>: only bindings and pool names matter to Harrow ----

constexpr AttrSpec kBindingAttrs[] = {string_attr("protocol"), string_attr("bindingInformation"),
                                      string_attr("sslFlags").not_acted_on()};
constexpr ElementSpec kBinding = element("binding", kBindingAttrs).items("bindingInformation");
constexpr const ElementSpec* kBindingsChildren[] = {&kBinding, &kClear};
constexpr ElementSpec kBindings = element("bindings", {}, kBindingsChildren);
constexpr const ElementSpec* kSiteChildren[] = {&kBindings};
constexpr ElementSpec kSite = element("site", {}, kSiteChildren).items("name").foreign();
constexpr const ElementSpec* kSitesChildren[] = {&kSite};
constexpr ElementSpec kSites =
    element("sites", {}, kSitesChildren).foreign().styled(PathStyle::Collection);

constexpr ElementSpec kPoolEntry = element("add", kNameAttr).items("name").foreign();
constexpr const ElementSpec* kApplicationPoolsChildren[] = {&kPoolEntry};
constexpr ElementSpec kApplicationPools = element("applicationPools", {}, kApplicationPoolsChildren)
                                              .foreign()
                                              .styled(PathStyle::Collection);

constexpr const ElementSpec* kSystemApplicationHostChildren[] = {&kSites, &kApplicationPools};
constexpr ElementSpec kSystemApplicationHost =
    element("system.applicationHost", {}, kSystemApplicationHostChildren)
        .foreign()
        .styled(PathStyle::Hidden);

// ---- <harrow>: what IIS keeps outside applicationHost.config ----

constexpr AttrSpec kListenAttrs[] = {nonempty_attr("address").must_be_present(), bool_attr("tls"),
                                     bool_attr("http2")};
constexpr ElementSpec kListen = element("listen", kListenAttrs).items("address");
constexpr AttrSpec kCertificateAttrs[] = {string_attr("host"),
                                          nonempty_attr("certificateFile").must_be_present(),
                                          nonempty_attr("keyFile"),
                                          nonempty_attr("chainFile"),
                                          nonempty_attr("ocspResponseFile"),
                                          bool_attr("default")};
constexpr ElementSpec kCertificate = element("certificate", kCertificateAttrs).items("host");
constexpr std::string_view kUnknownServerNameNames[] = {"default", "reject"};
constexpr std::string_view kClientCertificateNames[] = {"none", "optional", "require"};
constexpr AttrSpec kTlsAttrs[] = {nonempty_attr("ciphers"),
                                  nonempty_attr("cipherSuites"),
                                  enum_attr("unknownServerName", kUnknownServerNameNames),
                                  enum_attr("clientCertificate", kClientCertificateNames),
                                  nonempty_attr("clientCaFile"),
                                  uint_attr("sessionCacheSize", 0, 10'000'000)};
constexpr ElementSpec kTls = element("tls", kTlsAttrs);
constexpr AttrSpec kUpstreamTlsAttrs[] = {nonempty_attr("farm"), bool_attr("verifyCertificate"),
                                          nonempty_attr("caFile")};
constexpr ElementSpec kUpstreamTls = element("upstreamTls", kUpstreamTlsAttrs).items("farm");
constexpr AttrSpec kUpstreamHttp2Attrs[] = {nonempty_attr("farm").must_be_present()};
constexpr ElementSpec kUpstreamHttp2 = element("upstreamHttp2", kUpstreamHttp2Attrs).items("farm");
constexpr AttrSpec kAdminAttrs[] = {nonempty_attr("address").must_be_present(),
                                    nonempty_attr("tokenFile"), string_attr("allowedHosts")};
constexpr ElementSpec kAdmin = element("admin", kAdminAttrs);
constexpr AttrSpec kAccessLogAttrs[] = {string_attr("path"),
                                        enum_attr("format", kAccessLogFormatNames)};
constexpr ElementSpec kAccessLog = element("accessLog", kAccessLogAttrs);
constexpr AttrSpec kLimitsAttrs[] = {uint_attr("maxConnections", 1, kUInt32Max),
                                     uint_attr("maxIdleUpstreamPerServer", 0, kUInt32Max),
                                     uint_attr("maxRequestLine", 64, 1 << 20),
                                     uint_attr("maxRequestHeaderBytes", 256, 1 << 20),
                                     uint_attr("maxRequestHeaders", 1, 10'000),
                                     uint_attr("maxAllowedContentLength", 0, kNoLimit),
                                     bool_attr("allowTrace"),
                                     uint_attr("maxConnectionsPerClient", 0, kUInt32Max),
                                     uint_attr("retries", 0, 8)};
constexpr ElementSpec kLimits = element("limits", kLimitsAttrs);
constexpr AttrSpec kHttp2Attrs[] = {uint_attr("maxConcurrentStreams", 1, 10'000),
                                    uint_attr("initialWindowSize", 1024, 16 << 20)};
constexpr ElementSpec kHttp2 = element("http2", kHttp2Attrs);
// Connect and request-head timeouts must leave some time; idle and shutdown may be zero
// ("do not keep idle connections", "stop at once").
constexpr AttrSpec kTimeoutsAttrs[] = {
    timespan_attr("connect", 1, kDay),         timespan_attr("clientHeader", 1, kDay),
    timespan_attr("clientKeepAlive", 0, kDay), timespan_attr("upstreamIdle", 0, kDay),
    timespan_attr("shutdown", 0, kDay),        timespan_attr("clientSend", 1, kDay),
    timespan_attr("clientBody", 1, kDay),      timespan_attr("webSocketIdle", 1, kDay),
};
constexpr ElementSpec kTimeouts = element("timeouts", kTimeoutsAttrs);
constexpr AttrSpec kMemoryCacheAttrs[] = {uint_attr("maxCacheSize", 0, 1 << 20),
                                          uint_attr("maxResponseSize", 0, kUInt32Max)};
constexpr ElementSpec kMemoryCache = element("memoryCache", kMemoryCacheAttrs);
// etcd's minimum lease is about 2 s (1.5 election timeouts of 1 s by default).
constexpr AttrSpec kFleetAttrs[] = {nonempty_attr("endpoints").must_be_present(),
                                    nonempty_attr("name").must_be_present(),
                                    nonempty_attr("instance").must_be_present(),
                                    uint_attr("leaseTtl", 2, 3600),
                                    nonempty_attr("prefix"),
                                    bool_attr("sharedConfig"),
                                    nonempty_attr("caFile"),
                                    nonempty_attr("certificateFile"),
                                    nonempty_attr("keyFile"),
                                    nonempty_attr("user"),
                                    nonempty_attr("passwordFile")};
constexpr ElementSpec kFleet = element("fleet", kFleetAttrs);
constexpr const ElementSpec* kHarrowChildren[] = {
    &kListen,    &kCertificate, &kTls,   &kUpstreamTls, &kUpstreamHttp2, &kAdmin,
    &kAccessLog, &kLimits,      &kHttp2, &kTimeouts,    &kMemoryCache,   &kFleet};
constexpr AttrSpec kHarrowAttrs[] = {nonempty_attr("user"), nonempty_attr("group"),
                                     bool_attr("allowRunAsRoot"), nonempty_attr("stateFile")};
constexpr ElementSpec kHarrow = element("harrow", kHarrowAttrs, kHarrowChildren);

// ---- the root: everything else in a real applicationHost.config is none of Harrow's business

constexpr const ElementSpec* kConfigurationChildren[] = {
    &kWebFarms, &kSystemWebServer, &kSystemApplicationHost, &kLocation, &kHarrow};
constexpr ElementSpec kConfiguration =
    element("configuration", {}, kConfigurationChildren).foreign().styled(PathStyle::Hidden);

// The sections of IIS's own schema files (IIS_schema.xml, FX_schema.xml, ASPNET_schema.xml,
// arr_schema.xml, rewrite_schema.xml, webfarm.xml, aspnetcore_schema_v2.xml), by path. Harrow
// skips those it does not read without a word; a name at section level that is in neither this
// table nor Harrow's is most likely a typo of one Harrow reads ("rewite"), which IIS would refuse
// too (500.19, unrecognized configuration section).
constexpr std::string_view kIisSectionPaths[] = {
    "configSections",
    "configProtectedData",
    "location",
    "administrators",
    "administratorsProviders",
    "appSettings",
    "configPaths",
    "configurationRedirection",
    "connectionStrings",
    "moduleProviders",
    "modules",
    "webFarms",
    "runtime",
    "startup",
    "system.serviceModel",
    "system.web.extensions",
    "system.webServer/webdav",
    "system.ftpServer",
    "system.applicationHost/applicationPools",
    "system.applicationHost/configHistory",
    "system.applicationHost/customMetadata",
    "system.applicationHost/listenerAdapters",
    "system.applicationHost/log",
    "system.applicationHost/serviceAutoStartProviders",
    "system.applicationHost/sites",
    "system.applicationHost/webLimits",
    "system.codedom",
    "system.data",
    "system.diagnostics",
    "system.net",
    "system.transactions",
    "system.web",
    "system.windows.forms",
    "system.xml.serialization",
    "system.webServer/applicationInitialization",
    "system.webServer/asp",
    "system.webServer/aspNetCore",
    "system.webServer/caching",
    "system.webServer/cgi",
    "system.webServer/defaultDocument",
    "system.webServer/directoryBrowse",
    "system.webServer/diskCache",
    "system.webServer/fastCgi",
    "system.webServer/globalModules",
    "system.webServer/handlers",
    "system.webServer/httpCompression",
    "system.webServer/httpErrors",
    "system.webServer/httpLogging",
    "system.webServer/httpProtocol",
    "system.webServer/httpRedirect",
    "system.webServer/httpTracing",
    "system.webServer/isapiFilters",
    "system.webServer/management",
    "system.webServer/modules",
    "system.webServer/odbcLogging",
    "system.webServer/proxy",
    "system.webServer/rewrite/allowedServerVariables",
    "system.webServer/rewrite/globalRules",
    "system.webServer/rewrite/outboundRules",
    "system.webServer/rewrite/providers",
    "system.webServer/rewrite/rewriteMaps",
    "system.webServer/rewrite/rules",
    "system.webServer/security/access",
    "system.webServer/security/applicationDependencies",
    "system.webServer/security/authentication",
    "system.webServer/security/authorization",
    "system.webServer/security/dynamicIpSecurity",
    "system.webServer/security/ipSecurity",
    "system.webServer/security/isapiCgiRestriction",
    "system.webServer/security/requestFiltering",
    "system.webServer/serverRuntime",
    "system.webServer/serverSideInclude",
    "system.webServer/staticContent",
    "system.webServer/tracing",
    "system.webServer/urlCompression",
    "system.webServer/validation",
    "system.webServer/webSocket",
};

// Where the elements Harrow reads belong, for one found in the wrong place.
struct Placement {
  std::string_view name, belongs;
};
constexpr Placement kPlacements[] = {
    {"webFarm", "inside <webFarms>, which sits directly under <configuration>"},
    {"server", "inside a <webFarm>"},
    {"applicationRequestRouting", "inside a <webFarm> (or a <server>)"},
    {"globalRules", "inside <system.webServer><rewrite>"},
    {"rules", "inside <system.webServer><rewrite> (or a <location>'s)"},
    {"outboundRules", "inside <system.webServer><rewrite> (or a <location>'s)"},
    {"rewriteMaps", "inside <system.webServer><rewrite>"},
    {"allowedServerVariables", "inside <system.webServer><rewrite>"},
    {"rule", "inside <globalRules>, <rules> or <outboundRules>"},
    {"rewrite", "inside <system.webServer>"},
    {"proxy", "inside <system.webServer>"},
    {"sites", "inside <system.applicationHost>"},
    {"applicationPools", "inside <system.applicationHost>"},
    {"harrow", "directly under <configuration>"},
};

// IIS's configuration system allows these on any element; they only matter to IIS's own
// delegation model, so Harrow accepts them silently.
constexpr std::string_view kIisLockAttributes[] = {"lockAttributes", "lockAllAttributesExcept",
                                                   "lockElements", "lockAllElementsExcept",
                                                   "lockItem"};

// ============================================================================================
// Positions and the collected diagnostics
// ============================================================================================

// Maps byte offsets to 1-based line:column. Columns count bytes; a UTF-8 byte-order mark does
// not count.
class LineIndex {
 public:
  explicit LineIndex(std::string_view text) {
    line_starts_.push_back(text.starts_with("\xEF\xBB\xBF") ? 3 : 0);
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  std::pair<int, int> position(size_t offset) const {
    auto after = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    if (after == line_starts_.begin()) return {1, 1};  // inside the byte-order mark
    size_t line = static_cast<size_t>(after - line_starts_.begin());
    size_t column = offset - *std::prev(after) + 1;
    return {static_cast<int>(line), static_cast<int>(column)};
  }

 private:
  std::vector<size_t> line_starts_;
};

class Diagnostics {
 public:
  Diagnostics(std::string path, std::string_view text)
      : path_(std::move(path)), text_(text), lines_(text) {}

  SourceLocation at_offset(size_t offset) const {
    auto [line, column] = lines_.position(offset);
    return {path_, line, column};
  }

  // An element's position is that of its '<' (pugixml records where the name starts).
  SourceLocation at(pugi::xml_node node) const {
    ptrdiff_t name_offset = node.offset_debug();
    if (name_offset < 1) return {path_, 0, 0};
    return at_offset(static_cast<size_t>(name_offset - 1));
  }

  void error(SourceLocation where, std::string message) {
    errors_.push_back({std::move(where), std::move(message)});
  }
  void error(pugi::xml_node node, std::string message) { error(at(node), std::move(message)); }

  // An attribute's position is that of its name in the element's start tag (pugixml keeps
  // none for attributes, so the tag is scanned); `occurrence` picks among repeated names.
  SourceLocation at_attribute(pugi::xml_node node, std::string_view name,
                              int occurrence = 0) const {
    ptrdiff_t start = node.offset_debug();
    if (start < 1 || static_cast<size_t>(start) >= text_.size()) return at(node);
    char quote = 0;
    for (size_t i = static_cast<size_t>(start); i < text_.size(); ++i) {
      char c = text_[i];
      if (quote != 0) {
        if (c == quote) quote = 0;
        continue;
      }
      if (c == '"' || c == '\'') {
        quote = c;
        continue;
      }
      if (c == '>') break;
      bool boundary = text_[i - 1] == ' ' || text_[i - 1] == '\t' || text_[i - 1] == '\n' ||
                      text_[i - 1] == '\r';
      if (!boundary || i + name.size() > text_.size() ||
          !iequals(text_.substr(i, name.size()), name)) {
        continue;
      }
      size_t j = i + name.size();
      while (j < text_.size() &&
             (text_[j] == ' ' || text_[j] == '\t' || text_[j] == '\n' || text_[j] == '\r')) {
        ++j;
      }
      if (j < text_.size() && text_[j] == '=' && occurrence-- == 0) return at_offset(i);
    }
    return at(node);
  }
  void attribute_error(pugi::xml_node node, std::string_view name, std::string message,
                       int occurrence = 0) {
    error(at_attribute(node, name, occurrence), std::move(message));
  }

  void not_acted_on(pugi::xml_node node, std::string what) {
    ignored_.push_back({std::move(what), at(node)});
  }

  // Errors and ignored settings in file order; the config only if nothing was wrong.
  LoadResult finish(std::optional<Config> config) {
    auto by_position = [](const auto& a, const auto& b) {
      return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
    };
    std::stable_sort(errors_.begin(), errors_.end(), by_position);
    std::stable_sort(ignored_.begin(), ignored_.end(), by_position);
    LoadResult result;
    result.errors = std::move(errors_);
    if (result.errors.empty() && config) {
      config->ignored = std::move(ignored_);
      result.config = std::move(config);
    }
    return result;
  }

 private:
  std::string path_;
  std::string_view text_;  // the file as read: attribute positions are found in it
  LineIndex lines_;
  std::vector<Diagnostic> errors_;
  std::vector<IgnoredSetting> ignored_;
};

// ============================================================================================
// Step 1: XML syntax
// ============================================================================================

std::string lowercase_first(std::string text) {
  if (!text.empty()) text[0] = ascii_lower(text[0]);
  return text;
}

// Skips from `from` to just past `terminator`, or to `end` when it is not there.
size_t skip_past(std::string_view text, size_t from, std::string_view terminator, size_t end) {
  size_t found = text.find(terminator, from);
  return found == std::string_view::npos || found + terminator.size() > end
             ? end
             : found + terminator.size();
}

// Where the tag opened at `tag_start` ends ('>' outside quotes), or npos before `end`.
size_t tag_end(std::string_view text, size_t tag_start, size_t end) {
  char quote = 0;
  for (size_t i = tag_start; i < end; ++i) {
    char c = text[i];
    if (quote != 0) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '>') {
      return i;
    }
  }
  return std::string_view::npos;
}

// The elements still open at `end` (innermost last), by a light scan of text that pugixml
// already accepted up to that point. It only feeds the context of a syntax error message.
std::vector<std::string> open_elements(std::string_view text, size_t end) {
  end = std::min(end, text.size());
  std::vector<std::string> stack;
  size_t i = 0;
  while (i < end) {
    size_t lt = text.find('<', i);
    if (lt == std::string_view::npos || lt >= end) break;
    std::string_view rest = text.substr(lt, end - lt);
    if (rest.starts_with("<!--")) {
      i = skip_past(text, lt + 4, "-->", end);
    } else if (rest.starts_with("<![CDATA[")) {
      i = skip_past(text, lt + 9, "]]>", end);
    } else if (rest.starts_with("<?")) {
      i = skip_past(text, lt + 2, "?>", end);
    } else if (rest.starts_with("<!")) {
      i = skip_past(text, lt + 2, ">", end);
    } else {
      size_t close = tag_end(text, lt, end);
      bool is_end_tag = rest.starts_with("</");
      size_t name_start = lt + (is_end_tag ? 2 : 1);
      size_t name_end = name_start;
      while (name_end < end &&
             std::string_view(" \t\r\n/>").find(text[name_end]) == std::string_view::npos) {
        ++name_end;
      }
      if (is_end_tag) {
        if (close != std::string_view::npos && !stack.empty()) stack.pop_back();
      } else if (close == std::string_view::npos || text[close - 1] != '/') {
        stack.emplace_back(text.substr(name_start, name_end - name_start));
      }
      i = close == std::string_view::npos ? end : close + 1;
    }
  }
  return stack;
}

void report_xml_error(Diagnostics& diagnostics, std::string_view text,
                      const pugi::xml_parse_result& parsed) {
  size_t offset = std::min(static_cast<size_t>(std::max<ptrdiff_t>(parsed.offset, 0)), text.size());
  bool mismatch = parsed.status == pugi::status_end_element_mismatch;
  // pugixml reports running out of input at the last byte; say so, at the end of the file.
  bool at_end =
      parsed.status != pugi::status_no_document_element &&
      (offset + 1 >= text.size() || (mismatch && text.find('>', offset) == std::string_view::npos));
  size_t where = at_end ? text.size() : offset;
  if (mismatch && !at_end && offset >= 2 && text.substr(offset - 2, 2) == "</") where = offset - 2;

  std::string message = "XML: ";
  message += at_end ? "unexpected end of file" : lowercase_first(parsed.description());
  std::vector<std::string> open = open_elements(text, where);
  if (!open.empty()) {
    message += (at_end || mismatch) ? " (element '" + open.back() + "' is not closed)"
                                    : " (inside <" + open.back() + ">)";
  }
  diagnostics.error(diagnostics.at_offset(where), std::move(message));
}

// pugixml is told the text is UTF-8 so that its offsets are byte offsets into `text`.
std::optional<std::string> encoding_problem(std::string_view text) {
  if (text.starts_with(std::string_view("\x00\x00\xFE\xFF", 4)) ||
      text.starts_with(std::string_view("\xFF\xFE\x00\x00", 4))) {
    return "the file is UTF-32; Harrow reads UTF-8 (save it as UTF-8)";
  }
  if (text.starts_with("\xFE\xFF") || text.starts_with("\xFF\xFE")) {
    return "the file is UTF-16; Harrow reads UTF-8 (save it as UTF-8)";
  }
  return std::nullopt;
}

// ============================================================================================
// Element and attribute lookup, case-insensitive
// ============================================================================================

pugi::xml_attribute find_attribute(pugi::xml_node node, std::string_view name) {
  for (pugi::xml_attribute attribute : node.attributes()) {
    if (iequals(attribute.name(), name)) return attribute;
  }
  return {};
}

pugi::xml_node find_child(pugi::xml_node node, std::string_view name) {
  for (pugi::xml_node child : node.children()) {
    if (child.type() == pugi::node_element && iequals(child.name(), name)) return child;
  }
  return {};
}

std::vector<pugi::xml_node> child_elements(pugi::xml_node node) {
  std::vector<pugi::xml_node> elements;
  for (pugi::xml_node child : node.children()) {
    if (child.type() == pugi::node_element) elements.push_back(child);
  }
  return elements;
}

// ============================================================================================
// Step 2: names, values and the ignored list, driven by the schema
// ============================================================================================

std::string expected_value(const AttrSpec& spec) {
  switch (spec.kind) {
    case ValueKind::Bool:
      return "true or false";
    case ValueKind::UInt:
    case ValueKind::Int:
      return "an integer from " + std::to_string(spec.min) + " to " + std::to_string(spec.max);
    case ValueKind::TimeSpan: {
      std::string range = "a timeSpan (hh:mm:ss[.fffffff] or d.hh:mm:ss)";
      if (spec.max == kNoLimit) return range;
      return range + " from " + format_timespan(Millis{spec.min}) + " to " +
             format_timespan(Millis{spec.max});
    }
    case ValueKind::Enum: {
      std::string names;
      for (std::string_view name : spec.choices)
        names += (names.empty() ? "" : ", ") + std::string(name);
      return "one of " + names;
    }
    case ValueKind::StatusCodes:
      return "status codes such as 200-399 or 500- (codes 100 to 999, comma-separated)";
    case ValueKind::String:
    case ValueKind::NonEmptyString:
      break;
  }
  return "a non-empty string";
}

bool value_fits(const AttrSpec& spec, std::string_view value) {
  switch (spec.kind) {
    case ValueKind::String:
      return true;
    case ValueKind::NonEmptyString:
      return !value.empty();
    case ValueKind::Bool:
      return parse_bool(value).has_value();
    case ValueKind::UInt: {
      std::optional<uint64_t> number = parse_uint(value);
      return number && *number >= static_cast<uint64_t>(spec.min) &&
             *number <= static_cast<uint64_t>(spec.max);
    }
    case ValueKind::Int: {
      std::optional<int64_t> number = parse_int(value);
      return number && *number >= spec.min && *number <= spec.max;
    }
    case ValueKind::TimeSpan: {
      std::optional<Millis> span = parse_timespan(value);
      return span && span->count() >= spec.min && span->count() <= spec.max;
    }
    case ValueKind::Enum:
      return enum_index(spec.choices, value).has_value();
    case ValueKind::StatusCodes:
      return is_status_code_list(value);
  }
  return false;
}

std::string join_path(const std::string& base, std::string_view segment) {
  return base.empty() ? std::string(segment) : base + "/" + std::string(segment);
}

class SchemaChecker {
 public:
  explicit SchemaChecker(Diagnostics& diagnostics) : diagnostics_(diagnostics) {}

  // `path` names this element in Config::ignored; `base` is where its collection items hang.
  void check(pugi::xml_node node, const ElementSpec& spec, const std::string& path,
             const std::string& base, bool inside_listed) {
    bool listed_here = !inside_listed && spec.listing == Listing::NotActedOn;
    if (listed_here) diagnostics_.not_acted_on(node, path);
    if (spec.opaque) return;
    check_attributes(node, spec, path, inside_listed || listed_here);
    check_children(node, spec, path, base, inside_listed || listed_here);
  }

 private:
  void check_attributes(pugi::xml_node node, const ElementSpec& spec, const std::string& path,
                        bool inside_listed) {
    std::vector<std::string_view> present;
    for (pugi::xml_attribute attribute : node.attributes()) {
      std::string_view name = attribute.name();
      if (std::any_of(std::begin(kIisLockAttributes), std::end(kIisLockAttributes),
                      [&](std::string_view lock) { return iequals(lock, name); })) {
        continue;
      }
      if (iequals(name, "configSource")) {
        diagnostics_.attribute_error(
            node, name,
            "configSource on " + tag(node) +
                " is not supported: put the section's contents in this file");
        continue;
      }
      const AttrSpec* attr_spec = find_spec(spec.attributes, name);
      if (attr_spec == nullptr) {
        if (spec.unknown == Unknown::Error) report_unknown_attribute(node, spec, name);
        continue;
      }
      if (std::find(present.begin(), present.end(), attr_spec->name) != present.end()) {
        diagnostics_.attribute_error(
            node, name, "duplicate attribute '" + std::string(name) + "' on " + tag(node), 1);
        continue;
      }
      present.push_back(attr_spec->name);
      check_value(node, *attr_spec, attribute);
      if (!inside_listed && attr_spec->listing == Listing::NotActedOn) {
        diagnostics_.not_acted_on(node, path + "/@" + std::string(attr_spec->name));
      }
    }
    for (const AttrSpec& attr_spec : spec.attributes) {
      if (attr_spec.required &&
          std::find(present.begin(), present.end(), attr_spec.name) == present.end()) {
        diagnostics_.error(node, "missing required attribute '" + std::string(attr_spec.name) +
                                     "' on " + tag(node));
      }
    }
  }

  void check_value(pugi::xml_node node, const AttrSpec& spec, pugi::xml_attribute attribute) {
    std::string_view value = attribute.value();
    if (value_fits(spec, value)) return;
    if (spec.kind == ValueKind::NonEmptyString) {
      diagnostics_.attribute_error(node, attribute.name(),
                                   "attribute '" + std::string(attribute.name()) + "' on " +
                                       tag(node) + " must not be empty");
      return;
    }
    std::string hint;
    if (spec.kind == ValueKind::TimeSpan) {
      // interval="5": IIS reads bare numbers as nothing useful, people mean seconds.
      if (std::optional<uint64_t> seconds = parse_uint(value); seconds && *seconds < 100'000'000) {
        hint = " (did you mean " + format_timespan(Millis{*seconds * 1000}) + "?)";
      }
    }
    diagnostics_.attribute_error(node, attribute.name(),
                                 "bad value " + quoted(value) + " for attribute '" +
                                     std::string(attribute.name()) + "' on " + tag(node) +
                                     ": expected " + expected_value(spec) + hint);
  }

  void check_children(pugi::xml_node node, const ElementSpec& spec, const std::string& path,
                      const std::string& base, bool inside_listed) {
    std::vector<const ElementSpec*> singletons_seen;
    for (pugi::xml_node child : child_elements(node)) {
      const ElementSpec* child_spec = find_spec(spec.children, child.name());
      if (child_spec == nullptr) {
        if (spec.unknown == Unknown::Error) {
          report_unknown_element(node, spec, child);
        } else if (iequals(child.name(), "webFarms")) {
          // IIS sections Harrow does not read are skipped, but farms placed here would be
          // silently lost: the commonest hand-written mistake.
          diagnostics_.error(child, "webFarms belongs directly under <configuration>, not in " +
                                        tag(node) + "; move it there");
        } else {
          check_foreign_child(node, spec, child);
        }
        continue;
      }
      if (!child_spec->repeatable) {
        if (std::find(singletons_seen.begin(), singletons_seen.end(), child_spec) !=
            singletons_seen.end()) {
          diagnostics_.error(
              child, "duplicate " + tag(child) + " in " + tag(node) + ": at most one is allowed");
          continue;
        }
        singletons_seen.push_back(child_spec);
      }
      bool is_item = spec.path_style == PathStyle::Collection && child_spec->repeatable;
      std::string child_base = (spec.path_style == PathStyle::Hidden || is_item) ? base : path;
      std::string child_path = child_spec->path_style == PathStyle::Hidden
                                   ? child_base
                                   : join_path(child_base, segment(child, *child_spec));
      check(child, *child_spec, child_path, child_base, inside_listed);
    }
  }

  // The section path of `node` as IIS's schema names it ("system.webServer/security"); a
  // <location> starts again from the top. Empty for <configuration>.
  static std::string section_path(pugi::xml_node node) {
    std::vector<std::string_view> names;
    for (pugi::xml_node n = node; n && n.type() == pugi::node_element; n = n.parent()) {
      if (iequals(n.name(), "configuration") || iequals(n.name(), "location")) break;
      names.push_back(n.name());
    }
    std::string path;
    for (auto it = names.rbegin(); it != names.rend(); ++it) {
      if (!path.empty()) path += '/';
      path += *it;
    }
    return path;
  }

  // A child of an IIS element Harrow only partly reads (<configuration>, <system.webServer>,
  // <location>…). IIS's own sections are skipped; a Harrow element in the wrong place, or a
  // section-level name that is near one Harrow reads and in no IIS schema, is an error.
  void check_foreign_child(pugi::xml_node node, const ElementSpec& spec, pugi::xml_node child) {
    std::string parent = section_path(node);
    std::string full = parent.empty() ? std::string(child.name()) : parent + "/" + child.name();
    bool section_level = parent.empty();  // under <configuration> or <location>
    for (std::string_view section : kIisSectionPaths) {
      if (iequals(section, full) || (section.size() > full.size() && istarts_with(section, full) &&
                                     section[full.size()] == '/')) {
        return;  // an IIS section (or a group of them): not Harrow's
      }
      if (section.size() > parent.size() && istarts_with(section, parent) &&
          (parent.empty() || section[parent.size()] == '/')) {
        section_level = true;  // `node` is a section group: its children are sections
      }
      if (iequals(section, parent) ||
          (parent.size() > section.size() && istarts_with(parent, section) &&
           parent[section.size()] == '/')) {
        return;  // inside a section Harrow does not model: its contents are IIS's
      }
    }
    if (!section_level) return;
    for (const Placement& p : kPlacements) {
      if (iequals(p.name, child.name())) {
        diagnostics_.error(child, tag(child) + " does not belong in " + tag(node) +
                                      ": it belongs " + std::string(p.belongs));
        return;
      }
    }
    std::vector<std::string_view> known;
    for (const ElementSpec* child_spec : spec.children) known.push_back(child_spec->name);
    std::string hint = did_you_mean(child.name(), known);
    if (hint.empty()) return;  // a third-party module's section, perhaps: skipped
    diagnostics_.error(child, "unknown section " + tag(child) + " in " + tag(node) +
                                  " (in no IIS schema either, so IIS would refuse it too)" + hint);
  }

  void report_unknown_attribute(pugi::xml_node node, const ElementSpec& spec,
                                std::string_view name) {
    std::vector<std::string_view> known;
    for (const AttrSpec& attr_spec : spec.attributes) known.push_back(attr_spec.name);
    std::string_view hint = misplaced_hint(node.name(), name);
    diagnostics_.attribute_error(
        node, name,
        "unknown attribute '" + std::string(name) + "' on " + tag(node) +
            (hint.empty() ? did_you_mean(name, known) : "; " + std::string(hint)));
  }

  // Where a name that is unknown on `element` really belongs, for the mistakes hand-written
  // ARR configs make most; empty when there is no such hint.
  static std::string_view misplaced_hint(std::string_view element, std::string_view name) {
    struct Hint {
      std::string_view element, name, hint;
    };
    static constexpr Hint kHints[] = {
        {"server", "port",
         "did you mean <applicationRequestRouting httpPort=\"…\"/> inside <server>?"},
        {"server", "httpPort",
         "did you mean <applicationRequestRouting httpPort=\"…\"/> inside <server>?"},
        {"server", "httpsPort",
         "did you mean <applicationRequestRouting httpsPort=\"…\"/> inside <server>?"},
        {"server", "weight",
         "did you mean <applicationRequestRouting weight=\"…\"/> inside <server>?"},
        {"server", "hostName",
         "did you mean <applicationRequestRouting hostName=\"…\"/> inside <server>?"},
        {"webFarm", "algorithm",
         "did you mean <applicationRequestRouting><loadBalancing algorithm=\"…\"/>?"},
        {"webFarm", "healthCheck", "move it into <applicationRequestRouting>"},
        {"webFarm", "affinity", "move it into <applicationRequestRouting>"},
        {"webFarm", "loadBalancing", "move it into <applicationRequestRouting>"},
        {"webFarm", "protocol", "move it into <applicationRequestRouting>"},
        {"server", "healthCheck",
         "health checks are per farm: move it into the farm's <applicationRequestRouting>"},
    };
    for (const Hint& h : kHints) {
      if (iequals(h.element, element) && iequals(h.name, name)) return h.hint;
    }
    return {};
  }

  void report_unknown_element(pugi::xml_node parent, const ElementSpec& spec,
                              pugi::xml_node child) {
    std::vector<std::string_view> known;
    for (const ElementSpec* child_spec : spec.children) known.push_back(child_spec->name);
    std::string hint(misplaced_hint(parent.name(), child.name()));
    if (hint.empty()) {
      for (const Placement& p : kPlacements) {
        if (iequals(p.name, child.name())) hint = "it belongs " + std::string(p.belongs);
      }
    }
    diagnostics_.error(child, "unknown element " + tag(child) + " in " + tag(parent) +
                                  (hint.empty() ? did_you_mean(child.name(), known) : "; " + hint));
  }

  // "webFarm[shop]": the canonical name, plus the item's key when it has one.
  static std::string segment(pugi::xml_node node, const ElementSpec& spec) {
    std::string text(spec.name);
    if (spec.key.empty()) return text;
    if (pugi::xml_attribute key = find_attribute(node, spec.key)) {
      text += "[" + std::string(key.value()) + "]";
    }
    return text;
  }

  static const AttrSpec* find_spec(std::span<const AttrSpec> specs, std::string_view name) {
    for (const AttrSpec& spec : specs) {
      if (iequals(spec.name, name)) return &spec;
    }
    return nullptr;
  }

  static const ElementSpec* find_spec(std::span<const ElementSpec* const> specs,
                                      std::string_view name) {
    for (const ElementSpec* spec : specs) {
      if (iequals(spec->name, name)) return spec;
    }
    return nullptr;
  }

  Diagnostics& diagnostics_;
};

// ============================================================================================
// Step 3: values into Config, and the checks that span several elements
// ============================================================================================

// The typed readers below leave `out` alone when the attribute is absent (ARR's default stays)
// or malformed (SchemaChecker has reported it, and no Config will be returned).

void read_value(pugi::xml_node node, std::string_view name, std::string& out) {
  if (pugi::xml_attribute attribute = find_attribute(node, name)) out = attribute.value();
}

void read_value(pugi::xml_node node, std::string_view name, bool& out) {
  if (pugi::xml_attribute attribute = find_attribute(node, name)) {
    if (std::optional<bool> value = parse_bool(attribute.value())) out = *value;
  }
}

template <typename Unsigned>
void read_value(pugi::xml_node node, std::string_view name,
                Unsigned& out) requires(std::is_unsigned_v<Unsigned> &&
                                        !std::is_same_v<Unsigned, bool>) {
  if (pugi::xml_attribute attribute = find_attribute(node, name)) {
    std::optional<uint64_t> value = parse_uint(attribute.value());
    if (value && *value <= std::numeric_limits<Unsigned>::max()) {
      out = static_cast<Unsigned>(*value);
    }
  }
}

void read_value(pugi::xml_node node, std::string_view name, Millis& out) {
  if (pugi::xml_attribute attribute = find_attribute(node, name)) {
    if (std::optional<Millis> value = parse_timespan(attribute.value())) out = *value;
  }
}

template <typename Enum>
void read_enum(pugi::xml_node node, std::string_view name, std::span<const std::string_view> names,
               Enum& out) {
  if (pugi::xml_attribute attribute = find_attribute(node, name)) {
    if (std::optional<size_t> index = enum_index(names, attribute.value())) {
      out = static_cast<Enum>(*index);
    }
  }
}

// The host of "http://HOST/…" or "https://HOST:port/…"; nullopt for anything else.
std::optional<std::string_view> absolute_url_host(std::string_view url) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (istarts_with(url, scheme)) {
      std::string_view rest = url.substr(scheme.size());
      return rest.substr(0, rest.find_first_of("/:?#"));
    }
  }
  return std::nullopt;
}

// PCRE2's complaint about a pattern, or nullopt when it compiles. Compiled the way the rule
// engine will compile it: UTF-8, caseless when the rule ignores case.
std::optional<std::string> regex_error(const std::string& pattern, bool ignore_case) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  uint32_t options = PCRE2_UTF | (ignore_case ? PCRE2_CASELESS : 0u);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &error_code, &error_offset, nullptr);
  if (code != nullptr) {
    pcre2_code_free(code);
    return std::nullopt;
  }
  PCRE2_UCHAR text[256];
  if (pcre2_get_error_message(error_code, text, sizeof text) < 0) text[0] = 0;
  return std::string(reinterpret_cast<const char*>(text)) + " at offset " +
         std::to_string(error_offset);
}

// "HOST:PORT" or "[IPv6]:PORT" with port 0..65535, normalised: "*" (and, in IIS bindings, an
// empty host) means every IPv4 address.
std::optional<std::string> normalize_listen_address(std::string_view address) {
  size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = address.substr(0, colon);
  std::optional<uint64_t> port = parse_uint(address.substr(colon + 1));
  if (!port || *port > 65535 || address.size() - colon - 1 > 5) return std::nullopt;
  if (host.starts_with('[')) {
    if (host.size() < 3 || !host.ends_with(']')) return std::nullopt;
    std::string literal(host.substr(1, host.size() - 2));
    in6_addr parsed;
    if (inet_pton(AF_INET6, literal.c_str(), &parsed) != 1) return std::nullopt;
  } else if (host == "*") {
    host = "0.0.0.0";
  } else {
    auto is_host_char = [](char c) {
      return is_ascii_alnum(c) || c == '.' || c == '-' || c == '_';
    };
    if (host.empty() || !std::all_of(host.begin(), host.end(), is_host_char)) return std::nullopt;
  }
  return std::string(host) + ":" + std::to_string(*port);
}

// IIS bindingInformation "IP:PORT:HOST" → the listen address and the host-name restriction.
struct Binding {
  std::string address;
  std::string host_name;
};

std::optional<Binding> parse_binding_information(std::string_view text) {
  size_t ip_end = text.starts_with('[') ? text.find(']') : text.find(':');
  if (ip_end == std::string_view::npos) return std::nullopt;
  if (text.starts_with('[')) ++ip_end;  // keep the bracket
  if (ip_end >= text.size() || text[ip_end] != ':') return std::nullopt;
  std::string_view ip = text.substr(0, ip_end);
  size_t port_end = text.find(':', ip_end + 1);
  if (port_end == std::string_view::npos) return std::nullopt;
  std::string_view port = text.substr(ip_end + 1, port_end - ip_end - 1);
  std::string listen = std::string(ip.empty() ? "*" : ip) + ":" + std::string(port);
  std::optional<std::string> address = normalize_listen_address(listen);
  if (!address) return std::nullopt;
  return Binding{*address, std::string(text.substr(port_end + 1))};
}

class ConfigReader {
 public:
  ConfigReader(Diagnostics& diagnostics, Config& config)
      : diagnostics_(diagnostics), config_(config) {}

  void read(pugi::xml_node root) {
    pugi::xml_node app_host = find_child(root, "system.applicationHost");
    pugi::xml_node web_server = find_child(root, "system.webServer");
    pugi::xml_node rewrite = find_child(web_server, "rewrite");
    // Pools before farms (a farm names its pool); farms and the proxy switch before rules (a
    // rule's target must be a farm unless proxying to any host is enabled).
    read_application_pools(find_child(app_host, "applicationPools"));
    read_farms(find_child(root, "webFarms"));
    read_global_proxy(find_child(web_server, "proxy"));
    read_disk_cache(find_child(web_server, "diskCache"));
    read_rewrite_maps(find_child(rewrite, "rewriteMaps"));
    read_provider_names(find_child(rewrite, "providers"));
    read_global_rules(find_child(rewrite, "globalRules"));
    read_allowed_variables(find_child(rewrite, "allowedServerVariables"));
    read_rules(find_child(rewrite, "rules"), config_.distributed_rules, true);
    read_outbound(find_child(rewrite, "outboundRules"), config_.outbound);
    read_site_listeners(find_child(app_host, "sites"));
    pugi::xml_node filtering = find_child(find_child(web_server, "security"), "requestFiltering");
    pugi::xml_node request_limits = find_child(filtering, "requestLimits");
    read_value(request_limits, "maxAllowedContentLength",
               config_.limits.max_allowed_content_length);
    read_value(request_limits, "maxUrl", config_.limits.max_url);
    read_value(request_limits, "maxQueryString", config_.limits.max_query_string);
    read_value(filtering, "allowDoubleEscaping", config_.limits.allow_double_escaping);
    read_locations(root);
    read_harrow(find_child(root, "harrow"));
    check_variable_references();
  }

 private:
  // ---- application pools and farms ----

  void read_application_pools(pugi::xml_node pools) {
    if (!pools) return;
    pools_declared_ = true;
    for (pugi::xml_node pool : child_elements(pools)) {
      if (!iequals(pool.name(), "add")) continue;
      std::string name;
      read_value(pool, "name", name);
      config_.application_pools.push_back(name);
    }
  }

  void read_farms(pugi::xml_node web_farms) {
    for (pugi::xml_node node : child_elements(web_farms)) {
      if (!iequals(node.name(), "webFarm")) continue;
      FarmConfig farm = read_farm(node);
      if (const FarmConfig* first = config_.find_farm(farm.name); first && !farm.name.empty()) {
        diagnostics_.error(node, "duplicate webFarm name '" + farm.name + "' (first defined at " +
                                     line_column(first->where) + ")");
        continue;
      }
      config_.farms.push_back(std::move(farm));
    }
  }

  FarmConfig read_farm(pugi::xml_node node) {
    FarmConfig farm;
    farm.where = diagnostics_.at(node);
    read_value(node, "name", farm.name);
    read_value(node, "enabled", farm.enabled);
    if (pugi::xml_node pool = find_child(node, "applicationPool")) {
      read_value(pool, "name", farm.application_pool);
      check_pool_exists(farm, pool);
    }
    for (pugi::xml_node child : child_elements(node)) {
      if (iequals(child.name(), "server")) add_server(farm, child);
    }
    pugi::xml_node arr = find_child(node, "applicationRequestRouting");
    read_protocol(find_child(arr, "protocol"), farm.protocol);
    read_cache(find_child(find_child(arr, "protocol"), "cache"), farm.cache);
    read_health_check(find_child(arr, "healthCheck"), farm.health_check);
    read_affinity(find_child(arr, "affinity"), farm.affinity);
    read_load_balancing(find_child(arr, "loadBalancing"), farm.load_balancing);
    return farm;
  }

  void check_pool_exists(const FarmConfig& farm, pugi::xml_node pool_node) {
    if (!pools_declared_ || farm.application_pool.empty()) return;
    std::vector<std::string_view> pools(config_.application_pools.begin(),
                                        config_.application_pools.end());
    for (std::string_view pool : pools) {
      if (iequals(pool, farm.application_pool)) return;
    }
    diagnostics_.error(pool_node, "webFarm '" + farm.name + "' names applicationPool '" +
                                      farm.application_pool +
                                      "', which is not in <applicationPools>" +
                                      did_you_mean(farm.application_pool, pools));
  }

  void add_server(FarmConfig& farm, pugi::xml_node node) {
    ServerConfig server;
    server.where = diagnostics_.at(node);
    read_value(node, "address", server.address);
    read_value(node, "enabled", server.enabled);
    if (pugi::xml_node arr = find_child(node, "applicationRequestRouting")) {
      read_value(arr, "weight", server.weight);
      read_value(arr, "httpPort", server.http_port);
      read_value(arr, "httpsPort", server.https_port);
      read_value(arr, "hostName", server.host_name);
      read_value(arr, "healthCheckAlternateHostName", server.health_check_alternate_host_name);
      read_value(arr, "healthCheckAlternatePort", server.health_check_alternate_port);
    }
    for (const ServerConfig& other : farm.servers) {
      if (!server.address.empty() && iequals(other.address, server.address)) {
        diagnostics_.error(node, "duplicate server address '" + server.address + "' in webFarm '" +
                                     farm.name + "' (first defined at " + line_column(other.where) +
                                     ")");
        return;
      }
    }
    farm.servers.push_back(std::move(server));
  }

  static void read_protocol(pugi::xml_node node, ProtocolConfig& protocol) {
    if (!node) return;
    read_enum(node, "httpVersion", kHttpVersionNames, protocol.http_version);
    read_value(node, "keepAlive", protocol.keep_alive);
    read_value(node, "timeout", protocol.timeout);
    read_value(node, "preserveHostHeader", protocol.preserve_host_header);
    read_value(node, "reverseRewriteHostInResponseHeaders",
               protocol.reverse_rewrite_host_in_response_headers);
    read_value(node, "xForwardedForHeaderName", protocol.x_forwarded_for_header_name);
    read_value(node, "includePortInXForwardedFor", protocol.include_port_in_x_forwarded_for);
    read_value(node, "arrResponseHeader", protocol.arr_response_header);
    read_value(node, "maxForwards", protocol.max_forwards);
    read_value(node, "logGuidName", protocol.log_guid_name);
    read_value(node, "sslHeaderName", protocol.ssl_header_name);
    read_value(node, "clientCertHeaderName", protocol.client_cert_header_name);
    read_value(node, "maxResponseHeaderSize", protocol.max_response_header_size);
    read_value(node, "logCacheHitName", protocol.log_cache_hit_name);
  }

  static void read_cache(pugi::xml_node node, CacheConfig& cache) {
    if (!node) return;
    cache.configured = true;
    read_value(node, "enabled", cache.enabled);
    read_value(node, "requestConsolidationEnabled", cache.request_consolidation);
    read_value(node, "requestConsolidationTimeout", cache.request_consolidation_timeout);
    read_enum(node, "queryStringHandling", kQueryStringHandlingNames, cache.query_string_handling);
    read_value(node, "validationInterval", cache.validation_interval);
  }

  static void read_health_check(pugi::xml_node node, HealthCheckConfig& health) {
    if (!node) return;
    read_value(node, "url", health.url);
    read_value(node, "interval", health.interval);
    read_value(node, "timeout", health.timeout);
    read_value(node, "retries", health.retries);
    read_value(node, "statusCodeMatch", health.status_code_match);
    read_value(node, "responseMatch", health.response_match);
    read_value(node, "liveTrafficFailureCodes", health.live_traffic_failure_codes);
    read_value(node, "maxLiveTrafficFailures", health.max_live_traffic_failures);
    read_value(node, "liveTrafficFailurePeriod", health.live_traffic_failure_period);
    read_value(node, "minServers", health.min_servers);
    read_value(node, "healthyThreshold", health.healthy_threshold);
    read_value(node, "jitterPercent", health.jitter_percent);
  }

  static void read_affinity(pugi::xml_node node, AffinityConfig& affinity) {
    if (!node) return;
    read_value(node, "useCookie", affinity.use_cookie);
    read_value(node, "cookieName", affinity.cookie_name);
    read_value(node, "useHostName", affinity.use_host_name);
    read_value(node, "timeout", affinity.timeout);
    read_value(node, "domain", affinity.domain);
    read_enum(node, "sameSite", kSameSiteNames, affinity.same_site);
    read_value(node, "secure", affinity.secure);
    read_value(node, "maxAge", affinity.max_age);
    read_enum(node, "affinityFailurePolicy", kAffinityFailurePolicyNames, affinity.failure_policy);
    for (pugi::xml_node host : child_elements(node)) {
      if (!iequals(host.name(), "host")) continue;
      AffinityConfig::HostServers entry;
      read_value(host, "name", entry.name);
      read_value(host, "servers", entry.servers);
      affinity.hosts.push_back(std::move(entry));
    }
  }

  void read_load_balancing(pugi::xml_node node, LoadBalancingConfig& balancing) {
    if (!node) return;
    read_enum(node, "algorithm", balancer::kAlgorithmNames, balancing.algorithm);
    read_value(node, "hashServerVariable", balancing.hash_server_variable);
    read_value(node, "queryStringNames", balancing.query_string_names);
    read_value(node, "leastResponseTimePeriod", balancing.least_response_time_period);
    read_value(node, "randomizeLBTies", balancing.randomize_lb_ties);
    uint32_t factor = 0;
    read_value(node, "hashBalanceFactor", factor);
    if (factor != 0 && factor <= 100) {
      diagnostics_.error(diagnostics_.at_attribute(node, "hashBalanceFactor"),
                         "hashBalanceFactor is a percentage of the average load above 100 "
                         "(e.g. 125), or 0 for none");
    }
    balancing.hash_balance_factor = factor / 100.0;
  }

  void read_disk_cache(pugi::xml_node node) {
    if (!node) return;
    DiskCacheConfig& disk = config_.disk_cache;
    read_value(node, "lowWatermark", disk.low_watermark);
    read_value(node, "highWatermark", disk.high_watermark);
    bool first = true;
    for (pugi::xml_node drive : child_elements(node)) {
      if (!iequals(drive.name(), "driveLocation")) continue;
      if (!first) {
        // ARR spreads entries over its drives; Harrow's disk tier is one directory.
        diagnostics_.not_acted_on(drive, "diskCache/driveLocation (only the first is used)");
        continue;
      }
      first = false;
      read_value(drive, "path", disk.path);
      read_value(drive, "maxUsage", disk.max_usage_gb);
      read_value(drive, "maxUsageMB", disk.max_usage_mb);
    }
  }

  void read_global_proxy(pugi::xml_node node) {
    if (!node) return;
    read_value(node, "enabled", config_.global_proxy_enabled);
    read_protocol(node, config_.global_proxy);
  }

  // ---- URL Rewrite ----

  void read_rewrite_maps(pugi::xml_node maps) {
    for (pugi::xml_node node : child_elements(maps)) {
      std::string_view kind = node.name();
      if (iequals(kind, "clear")) {
        config_.rewrite_maps.clear();
      } else if (iequals(kind, "remove")) {
        std::string name;
        read_value(node, "name", name);
        std::erase_if(config_.rewrite_maps,
                      [&](const auto& map) { return iequals(map.name, name); });
      } else if (iequals(kind, "rewriteMap")) {
        add_rewrite_map(node);
      }
    }
  }

  void add_rewrite_map(pugi::xml_node node) {
    RewriteMapConfig map;
    read_value(node, "name", map.name);
    read_value(node, "defaultValue", map.default_value);
    for (const RewriteMapConfig& other : config_.rewrite_maps) {
      if (!map.name.empty() && iequals(other.name, map.name)) {
        diagnostics_.error(node, "duplicate rewriteMap name '" + map.name + "'");
        return;
      }
    }
    for (pugi::xml_node entry : child_elements(node)) {
      std::string key;
      read_value(entry, "key", key);
      if (iequals(entry.name(), "clear")) {
        map.entries.clear();
      } else if (iequals(entry.name(), "remove")) {
        std::erase_if(map.entries, [&](const auto& pair) { return pair.first == key; });
      } else if (iequals(entry.name(), "add")) {
        // Map keys are case-sensitive in URL Rewrite's schema.
        if (std::any_of(map.entries.begin(), map.entries.end(),
                        [&](const auto& pair) { return pair.first == key; })) {
          diagnostics_.error(entry, "duplicate key '" + key + "' in rewriteMap '" + map.name + "'");
          continue;
        }
        std::string value;
        read_value(entry, "value", value);
        map.entries.emplace_back(std::move(key), std::move(value));
      }
    }
    config_.rewrite_maps.push_back(std::move(map));
  }

  // <globalRules> or (distributed = true) <rules>, into `rules`. Distributed rules may set
  // only the server variables <allowedServerVariables> lists, as in IIS.
  void read_rules(pugi::xml_node section, std::vector<RuleConfig>& rules, bool distributed) {
    for (pugi::xml_node node : child_elements(section)) {
      std::string_view kind = node.name();
      if (iequals(kind, "clear")) {
        rules.clear();
      } else if (iequals(kind, "remove")) {
        std::string name;
        read_value(node, "name", name);
        std::erase_if(rules, [&](const RuleConfig& rule) { return iequals(rule.name, name); });
      } else if (iequals(kind, "rule")) {
        add_rule(node, rules, distributed);
      }
    }
  }

  void read_global_rules(pugi::xml_node rules) { read_rules(rules, config_.global_rules, false); }

  void add_rule(pugi::xml_node node, std::vector<RuleConfig>& rules, bool distributed) {
    RuleConfig rule;
    rule.where = diagnostics_.at(node);
    read_value(node, "name", rule.name);
    read_value(node, "enabled", rule.enabled);
    read_enum(node, "patternSyntax", kPatternSyntaxNames, rule.pattern_syntax);
    read_value(node, "stopProcessing", rule.stop_processing);
    for (const RuleConfig& other : rules) {
      if (!rule.name.empty() && iequals(other.name, rule.name)) {
        diagnostics_.error(node, "duplicate rule name '" + rule.name + "' (first defined at " +
                                     line_column(other.where) + ")");
        return;
      }
    }
    read_match(node, rule);
    read_conditions(find_child(node, "conditions"), rule);
    read_server_variables(find_child(node, "serverVariables"), rule);
    if (distributed) check_allowed_variables(find_child(node, "serverVariables"), rule);
    read_action(find_child(node, "action"), rule);
    rules.push_back(std::move(rule));
  }

  void check_allowed_variables(pugi::xml_node variables, const RuleConfig& rule) {
    for (pugi::xml_node node : child_elements(variables)) {
      if (!iequals(node.name(), "set")) continue;
      std::string name;
      read_value(node, "name", name);
      if (name.empty()) continue;
      bool allowed = std::any_of(config_.allowed_server_variables.begin(),
                                 config_.allowed_server_variables.end(),
                                 [&](const std::string& a) { return iequals(a, name); });
      if (allowed) continue;
      diagnostics_.error(node, "rule '" + rule.name + "' sets server variable '" + name +
                                   "', which distributed rules may set only when "
                                   "<system.webServer><rewrite><allowedServerVariables> lists "
                                   "it: add <add name=\"" +
                                   name + "\"/> there");
    }
  }

  void read_allowed_variables(pugi::xml_node section) {
    for (pugi::xml_node node : child_elements(section)) {
      std::string name;
      read_value(node, "name", name);
      if (iequals(node.name(), "clear")) {
        config_.allowed_server_variables.clear();
      } else if (iequals(node.name(), "remove")) {
        std::erase_if(config_.allowed_server_variables,
                      [&](const std::string& a) { return iequals(a, name); });
      } else if (iequals(node.name(), "add") && !name.empty()) {
        config_.allowed_server_variables.push_back(name);
      }
    }
  }

  // ---- references in expansion strings ({NAME}, {Function:…}, {Map:…}) ----

  void read_provider_names(pugi::xml_node providers) {
    for (pugi::xml_node node : child_elements(providers)) {
      std::string name;
      read_value(node, "name", name);
      if (iequals(node.name(), "provider") && !name.empty()) providers_.push_back(name);
    }
  }

  // Checks the references in `text` (attribute `attribute` of `node`, in `owner`): functions,
  // maps and providers now, variable names once every rule is read (a later rule may set one).
  // A reference to a provider is recorded in `provider`: Harrow runs none.
  void check_template(pugi::xml_node node, std::string_view attribute, std::string_view text,
                      const std::string& owner, std::string& provider) {
    size_t i = 0;
    while (i < text.size()) {
      size_t open = text.find('{', i);
      if (open == std::string_view::npos) return;
      size_t close = std::string_view::npos;
      int depth = 0;
      for (size_t k = open; k < text.size(); ++k) {
        if (text[k] == '{') {
          ++depth;
        } else if (text[k] == '}' && --depth == 0) {
          close = k;
          break;
        }
      }
      if (close == std::string_view::npos) return;  // literal text, as in URL Rewrite
      check_reference(node, attribute, text.substr(open + 1, close - open - 1), owner, provider);
      i = close + 1;
    }
  }

  void check_reference(pugi::xml_node node, std::string_view attribute, std::string_view ref,
                       const std::string& owner, std::string& provider) {
    size_t colon = ref.find(':');
    std::string_view name = ref.substr(0, colon);
    if (colon != std::string_view::npos && name.find('{') == std::string_view::npos) {
      std::string_view arg = ref.substr(colon + 1);
      if (iequals(name, "R") || iequals(name, "C")) return;  // back-references
      bool known = std::any_of(std::begin(kRewriteFunctionNames), std::end(kRewriteFunctionNames),
                               [&](std::string_view f) { return iequals(f, name); }) ||
                   std::any_of(config_.rewrite_maps.begin(), config_.rewrite_maps.end(),
                               [&](const RewriteMapConfig& m) { return iequals(m.name, name); });
      if (!known) {
        auto p = std::find_if(providers_.begin(), providers_.end(),
                              [&](const std::string& n) { return iequals(n, name); });
        if (p != providers_.end()) {
          if (provider.empty()) provider = *p;
        } else {
          std::vector<std::string_view> candidates(std::begin(kRewriteFunctionNames),
                                                   std::end(kRewriteFunctionNames));
          for (const RewriteMapConfig& m : config_.rewrite_maps) candidates.push_back(m.name);
          diagnostics_.attribute_error(
              node, attribute,
              owner + ": {" + std::string(name) +
                  ":...} names no rewrite map, provider or function (ToLower, UrlEncode, "
                  "UrlDecode, HtmlEncode)" +
                  did_you_mean(name, candidates));
        }
      }
      check_template(node, attribute, arg, owner, provider);
      return;
    }
    pending_variables_.push_back(
        {diagnostics_.at_attribute(node, attribute), std::string(ref), owner, outbound_context_});
  }

  // A variable is known if Harrow has it, it names a header (HTTP_*, and RESPONSE_* in an
  // outbound rule), or some rule sets it. File-system variables have no value in a proxy.
  void check_variable_references() {
    std::vector<std::string_view> set_names;
    auto add_sets = [&](const std::vector<RuleConfig>& rules) {
      for (const RuleConfig& r : rules) {
        for (const ServerVariableSet& set : r.server_variables) set_names.push_back(set.name);
      }
    };
    add_sets(config_.global_rules);
    add_sets(config_.distributed_rules);
    for (const SiteConfig& site : config_.sites) {
      add_sets(site.rules);
    }
    for (const PendingVariable& v : pending_variables_) {
      std::string_view name = v.name;
      auto in = [&](const auto& list) {
        return std::any_of(std::begin(list), std::end(list),
                           [&](std::string_view n) { return iequals(n, name); });
      };
      if (in(kServerVariableNames) || in(set_names)) continue;
      if (name.size() > 5 && istarts_with(name, "HTTP_")) continue;
      if (v.outbound && name.size() > 9 && istarts_with(name, "RESPONSE_")) continue;
      if (in(kFileSystemVariableNames)) {
        diagnostics_.error(v.where, v.owner + ": {" + v.name +
                                        "} is a file-system path in IIS; Harrow maps no URL "
                                        "to files, so it has no value");
        continue;
      }
      if (!v.outbound && name.size() > 9 && istarts_with(name, "RESPONSE_")) {
        diagnostics_.error(v.where, v.owner + ": {" + v.name +
                                        "} is a response header: only outbound rules read it");
        continue;
      }
      std::vector<std::string_view> candidates(std::begin(kServerVariableNames),
                                               std::end(kServerVariableNames));
      candidates.insert(candidates.end(), set_names.begin(), set_names.end());
      diagnostics_.error(v.where, v.owner + ": {" + v.name +
                                      "} is not a server variable Harrow knows, and no rule "
                                      "sets it (it would always be empty)" +
                                      did_you_mean(name, candidates));
    }
  }

  // ---- outbound rules ----

  void read_outbound(pugi::xml_node section, OutboundConfig& out) {
    outbound_context_ = true;
    read_outbound_section(section, out);
    outbound_context_ = false;
  }

  void read_outbound_section(pugi::xml_node section, OutboundConfig& out) {
    for (pugi::xml_node node : child_elements(section)) {
      std::string_view kind = node.name();
      if (iequals(kind, "clear")) {
        out.rules.clear();
      } else if (iequals(kind, "remove")) {
        std::string name;
        read_value(node, "name", name);
        std::erase_if(out.rules,
                      [&](const OutboundRuleConfig& rule) { return iequals(rule.name, name); });
      } else if (iequals(kind, "preConditions")) {
        read_pre_conditions(node, out);
      } else if (iequals(kind, "customTags")) {
        for (pugi::xml_node tags : child_elements(node)) {
          CustomTagsConfig set;
          read_value(tags, "name", set.name);
          for (pugi::xml_node tag : child_elements(tags)) {
            std::string name, attribute;
            read_value(tag, "name", name);
            read_value(tag, "attribute", attribute);
            set.tags.emplace_back(name, attribute);
          }
          out.custom_tags.push_back(std::move(set));
        }
      }
    }
    // Rules last: they name preconditions and tag sets that may come after them in the file.
    for (pugi::xml_node node : child_elements(section)) {
      if (iequals(node.name(), "rule")) add_outbound_rule(node, out);
    }
  }

  void read_pre_conditions(pugi::xml_node section, OutboundConfig& out) {
    for (pugi::xml_node node : child_elements(section)) {
      if (iequals(node.name(), "clear")) {
        out.pre_conditions.clear();
        continue;
      }
      if (!iequals(node.name(), "preCondition")) continue;
      PreConditionConfig pre;
      pre.where = diagnostics_.at(node);
      read_value(node, "name", pre.name);
      read_enum(node, "logicalGrouping", kLogicalGroupingNames, pre.logical_grouping);
      read_enum(node, "patternSyntax", kPatternSyntaxNames, pre.pattern_syntax);
      RuleConfig as_rule;  // conditions are read and checked as a rule's would be
      as_rule.name = "preCondition " + pre.name;
      as_rule.pattern_syntax = pre.pattern_syntax;
      read_conditions(node, as_rule);
      pre.conditions = std::move(as_rule.conditions);
      pre.provider = std::move(as_rule.provider);
      out.pre_conditions.push_back(std::move(pre));
    }
  }

  void add_outbound_rule(pugi::xml_node node, OutboundConfig& out) {
    OutboundRuleConfig rule;
    rule.where = diagnostics_.at(node);
    read_value(node, "name", rule.name);
    read_value(node, "enabled", rule.enabled);
    read_enum(node, "patternSyntax", kPatternSyntaxNames, rule.pattern_syntax);
    read_value(node, "stopProcessing", rule.stop_processing);
    read_value(node, "preCondition", rule.pre_condition);
    const std::string what = "outbound rule '" + rule.name + "'";
    for (const OutboundRuleConfig& other : out.rules) {
      if (!rule.name.empty() && iequals(other.name, rule.name)) {
        diagnostics_.error(
            node, "duplicate " + what + " (first defined at " + line_column(other.where) + ")");
        return;
      }
    }
    if (!rule.pre_condition.empty() &&
        std::none_of(
            out.pre_conditions.begin(), out.pre_conditions.end(),
            [&](const PreConditionConfig& p) { return iequals(p.name, rule.pre_condition); })) {
      diagnostics_.error(node, what + " names preCondition '" + rule.pre_condition +
                                   "', which is not in <preConditions>");
    }
    pugi::xml_node match = find_child(node, "match");
    read_value(match, "serverVariable", rule.server_variable);
    read_value(match, "filterByTags", rule.filter_by_tags);
    read_value(match, "customTags", rule.custom_tags);
    read_value(match, "pattern", rule.pattern);
    read_value(match, "ignoreCase", rule.ignore_case);
    read_value(match, "negate", rule.negate);
    if (!rule.server_variable.empty() && !istarts_with(rule.server_variable, "RESPONSE_")) {
      // A request variable (the common RestoreAcceptEncoding rule): what the rule writes is
      // what the outbound rules after it read; the known-name check comes with the others.
      pending_variables_.push_back(
          {diagnostics_.at_attribute(match, "serverVariable"), rule.server_variable, what, true});
    }
    {
      std::string_view tags = rule.filter_by_tags;
      while (!tags.empty() && tags.front() == ' ') tags.remove_prefix(1);
      while (!tags.empty() && tags.back() == ' ') tags.remove_suffix(1);
      if (iequals(tags, "None")) rule.filter_by_tags.clear();  // the UI's "(none)": whole body
    }
    if (!rule.server_variable.empty() && !rule.filter_by_tags.empty()) {
      diagnostics_.error(match, what + " has both serverVariable and filterByTags on its <match>");
    } else if (rule.server_variable.empty() && rule.filter_by_tags.empty() &&
               rule.custom_tags.empty()) {
      rule.whole_body = true;  // the pattern runs over the body text itself
      if (rule.pattern_syntax != PatternSyntax::ECMAScript) {
        diagnostics_.error(match ? match : node,
                           what +
                               " matches the whole response body: Harrow does that with "
                               "ECMAScript patterns only (patternSyntax=\"ECMAScript\")");
      }
    }
    read_value(match, "occurrences", rule.occurrences);
    check_filter_tags(rule, match, out);
    RuleConfig as_rule;
    as_rule.name = rule.name;
    as_rule.pattern_syntax = rule.pattern_syntax;
    as_rule.track_all_captures = rule.track_all_captures;  // true unless the file says not
    check_pattern(as_rule, rule.pattern, rule.ignore_case, match);
    pugi::xml_node conditions = find_child(node, "conditions");
    read_conditions(conditions, as_rule);
    rule.logical_grouping = as_rule.logical_grouping;
    rule.track_all_captures = as_rule.track_all_captures;
    rule.conditions = std::move(as_rule.conditions);
    pugi::xml_node action = find_child(node, "action");
    size_t type = 0;
    read_enum(action, "type", kOutboundActionNames, type);
    rule.rewrite = type == 1;
    read_value(action, "value", rule.value);
    check_template(action, "value", rule.value, what, as_rule.provider);
    rule.provider = std::move(as_rule.provider);
    read_value(action, "replace", rule.replace);
    out.rules.push_back(std::move(rule));
  }

  void check_filter_tags(const OutboundRuleConfig& rule, pugi::xml_node match,
                         const OutboundConfig& out) {
    std::string_view text = rule.filter_by_tags;
    bool custom = false;
    while (!text.empty()) {
      size_t comma = text.find(',');
      std::string_view name = text.substr(0, comma);
      while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
      while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
      if (!name.empty()) {
        if (!enum_index(kFilterTagNames, name)) {
          diagnostics_.attribute_error(
              match, "filterByTags",
              "outbound rule '" + rule.name + "': unknown tag '" + std::string(name) +
                  "' in filterByTags" +
                  did_you_mean(name, {std::begin(kFilterTagNames), std::end(kFilterTagNames)}));
        }
        custom = custom || iequals(name, "CustomTags");
      }
      if (comma == std::string_view::npos) break;
      text.remove_prefix(comma + 1);
    }
    if (!rule.custom_tags.empty() && std::none_of(out.custom_tags.begin(), out.custom_tags.end(),
                                                  [&](const CustomTagsConfig& c) {
                                                    return iequals(c.name, rule.custom_tags);
                                                  })) {
      diagnostics_.error(match, "outbound rule '" + rule.name + "' names customTags '" +
                                    rule.custom_tags + "', which is not in <customTags>");
    }
    (void)custom;
  }

  void read_match(pugi::xml_node rule_node, RuleConfig& rule) {
    pugi::xml_node match = find_child(rule_node, "match");
    if (!find_attribute(match, "url")) {
      diagnostics_.error(match ? match : rule_node, "rule '" + rule.name + "' has no <match url>");
      return;
    }
    read_value(match, "url", rule.match_url);
    read_value(match, "ignoreCase", rule.match_ignore_case);
    read_value(match, "negate", rule.match_negate);
    check_pattern(rule, rule.match_url, rule.match_ignore_case, match);
  }

  void read_conditions(pugi::xml_node conditions, RuleConfig& rule) {
    read_enum(conditions, "logicalGrouping", kLogicalGroupingNames, rule.logical_grouping);
    read_value(conditions, "trackAllCaptures", rule.track_all_captures);
    for (pugi::xml_node node : child_elements(conditions)) {
      if (!iequals(node.name(), "add")) continue;
      ConditionConfig condition;
      condition.where = diagnostics_.at(node);
      read_value(node, "input", condition.input);
      read_value(node, "pattern", condition.pattern);
      read_value(node, "ignoreCase", condition.ignore_case);
      read_value(node, "negate", condition.negate);
      std::string match_type = "Pattern";
      read_value(node, "matchType", match_type);
      if (enum_index(kMatchTypeNames, match_type).value_or(0) != 0) {
        // IsFile/IsDirectory test the local file system, which a proxy does not serve; running
        // the condition as a pattern instead would silently change what the rule matches.
        diagnostics_.error(node, "rule '" + rule.name + "': matchType '" + match_type +
                                     "' is not supported (Harrow serves no files); use Pattern");
      } else {
        check_template(node, "input", condition.input, "rule '" + rule.name + "'", rule.provider);
      }
      check_pattern(rule, condition.pattern, condition.ignore_case, node);
      rule.conditions.push_back(std::move(condition));
    }
  }

  void read_server_variables(pugi::xml_node variables, RuleConfig& rule) {
    for (pugi::xml_node node : child_elements(variables)) {
      if (!iequals(node.name(), "set")) continue;
      ServerVariableSet set;
      read_value(node, "name", set.name);
      read_value(node, "value", set.value);
      check_template(node, "value", set.value, "rule '" + rule.name + "'", rule.provider);
      read_value(node, "replace", set.replace);
      rule.server_variables.push_back(std::move(set));
    }
  }

  void read_action(pugi::xml_node node, RuleConfig& rule) {
    if (!node) return;  // URL Rewrite's default action is None
    read_enum(node, "type", kActionTypeNames, rule.action);
    read_value(node, "url", rule.action_url);
    read_value(node, "appendQueryString", rule.append_query_string);
    read_value(node, "statusReason", rule.status_reason);
    read_value(node, "statusDescription", rule.status_description);
    const std::string owner = "rule '" + rule.name + "'";
    check_template(node, "url", rule.action_url, owner, rule.provider);
    check_template(node, "statusReason", rule.status_reason, owner, rule.provider);
    check_template(node, "statusDescription", rule.status_description, owner, rule.provider);
    const std::string what = "rule '" + rule.name + "': ";
    switch (rule.action) {
      case ActionType::Rewrite:
        if (rule.action_url.empty()) diagnostics_.error(node, what + "Rewrite action has no url");
        check_rewrite_target(rule, node);
        break;
      case ActionType::Redirect: {
        if (rule.action_url.empty()) diagnostics_.error(node, what + "Redirect action has no url");
        // A redirect's status comes from redirectType; statusCode belongs to CustomResponse.
        size_t redirect_type = 0;  // Permanent
        read_enum(node, "redirectType", kRedirectTypeNames, redirect_type);
        rule.status_code = kRedirectTypeStatus[redirect_type];
        break;
      }
      case ActionType::CustomResponse:
        read_value(node, "statusCode", rule.status_code);
        if (!find_attribute(node, "statusCode")) {
          diagnostics_.error(node, what + "CustomResponse action needs a statusCode");
        } else if (rule.status_code >= 300 && rule.status_code <= 307) {
          // URL Rewrite's schema excludes 300..307 here: redirects are the Redirect action's.
          diagnostics_.error(node, what + "statusCode " + std::to_string(rule.status_code) +
                                       " is not allowed for CustomResponse; use a Redirect action");
        }
        break;
      case ActionType::None:
      case ActionType::AbortRequest:
        break;
    }
  }

  void check_pattern(const RuleConfig& rule, const std::string& pattern, bool ignore_case,
                     pugi::xml_node node) {
    // Wildcard and ExactMatch patterns cannot be malformed.
    if (rule.pattern_syntax != PatternSyntax::ECMAScript) return;
    if (std::optional<std::string> problem = regex_error(pattern, ignore_case)) {
      diagnostics_.error(node, "rule '" + rule.name + "': pattern " + quoted(pattern) +
                                   " does not compile: " + *problem);
    }
  }

  // "http://NAME/…" routes to farm NAME. Any other absolute host is plain reverse proxying,
  // which ARR allows only with <proxy enabled="true">; without it, NAME is a farm that is
  // missing (most often a typo).
  // What every "names no farm" message adds: the other reading of the same rule.
  static constexpr const char* kProxyHint =
      " (the URL names no farm; proxying to a host that is not a farm needs "
      "<system.webServer><proxy enabled=\"true\"/> in applicationHost.config)";

  void check_rewrite_target(const RuleConfig& rule, pugi::xml_node action) {
    std::optional<std::string_view> host = absolute_url_host(rule.action_url);
    // A host built per request ("http://{HTTP_HOST}/…", "{Map:{…}}") cannot be checked here.
    if (!host || host->empty() || host->find_first_of("{}") != std::string_view::npos) return;
    if (config_.find_farm(*host) != nullptr || config_.global_proxy_enabled) return;
    std::string farms;
    for (const FarmConfig& farm : config_.farms) farms += (farms.empty() ? "" : ", ") + farm.name;
    diagnostics_.error(action,
                       "rule '" + rule.name + "' rewrites to unknown farm '" + std::string(*host) +
                           "'; farms are: " + (farms.empty() ? "(none)" : farms) + kProxyHint);
  }

  // ---- listeners ----

  void read_site_listeners(pugi::xml_node sites) {
    for (pugi::xml_node site : child_elements(sites)) {
      if (!iequals(site.name(), "site")) continue;
      SiteConfig site_config;
      site_config.where = diagnostics_.at(site);
      read_value(site, "name", site_config.name);
      std::vector<ListenConfig> listeners;
      for (pugi::xml_node node : child_elements(find_child(site, "bindings"))) {
        if (iequals(node.name(), "clear")) listeners.clear();
        if (!iequals(node.name(), "binding")) continue;
        if (std::optional<ListenConfig> listener = read_binding(node, site_config.name)) {
          listeners.push_back(std::move(*listener));
        }
      }
      for (const ListenConfig& listener : listeners) {
        site_config.bindings.push_back(
            {listener.address, listener.host_names.empty() ? "" : listener.host_names.front(),
             listener.tls});
      }
      for (ListenConfig& listener : listeners) add_listener(std::move(listener));
      config_.sites.push_back(std::move(site_config));
    }
  }

  // <location path="SITE"><system.webServer><rewrite>: the site's own rules.
  void read_locations(pugi::xml_node root) {
    for (pugi::xml_node location : child_elements(root)) {
      if (!iequals(location.name(), "location")) continue;
      std::string path;
      read_value(location, "path", path);
      pugi::xml_node rewrite = find_child(find_child(location, "system.webServer"), "rewrite");
      if (!rewrite) continue;  // other IIS settings for the site: none of Harrow's business
      if (path.find('/') != std::string::npos) {
        diagnostics_.not_acted_on(location,
                                  "location[" + path + "] (rules of an application inside a site)");
        continue;
      }
      SiteConfig* site = nullptr;
      for (SiteConfig& s : config_.sites) {
        if (iequals(s.name, path)) site = &s;
      }
      if (site == nullptr) {
        std::vector<std::string_view> names;
        for (const SiteConfig& s : config_.sites) names.push_back(s.name);
        diagnostics_.error(location, "<location path=\"" + path + "\"> names no site in " +
                                         "<system.applicationHost><sites>" +
                                         did_you_mean(path, names));
        continue;
      }
      // appcmd … "SITE" -section:system.webServer/rewrite/allowedServerVariables /commit:apphost
      // writes the site's list here; it adds to (or clears) the server's, for this site only.
      std::vector<std::string> server_allowed = config_.allowed_server_variables;
      read_allowed_variables(find_child(rewrite, "allowedServerVariables"));
      read_rules(find_child(rewrite, "rules"), site->rules, true);
      config_.allowed_server_variables = std::move(server_allowed);
      read_outbound(find_child(rewrite, "outboundRules"), site->outbound);
    }
  }

  std::optional<ListenConfig> read_binding(pugi::xml_node node, const std::string& site_name) {
    std::string protocol;
    std::string information;
    read_value(node, "protocol", protocol);
    read_value(node, "bindingInformation", information);
    std::string what = "site[" + site_name + "]/bindings/binding[" + information + "]";
    bool is_http = iequals(protocol, "http");
    if (!is_http && !iequals(protocol, "https")) {
      diagnostics_.not_acted_on(node, what + " (protocol " + protocol + ")");
      return std::nullopt;
    }
    std::optional<Binding> binding = parse_binding_information(information);
    if (!binding) {
      diagnostics_.error(node, "bad bindingInformation " + quoted(information) + " on " +
                                   tag(node) + ": expected IP:PORT:HOST such as *:80: or " +
                                   "[::]:443:www.example.com, with port 0..65535");
      return std::nullopt;
    }
    ListenConfig listener{binding->address, !is_http, !is_http, false, diagnostics_.at(node)};
    if (!binding->host_name.empty()) listener.host_names.push_back(binding->host_name);
    return listener;
  }

  // Many IIS sites share "*:80" with different host names; one socket serves them all.
  // Their host names merge: one binding without a host name opens the socket to every host.
  void add_listener(ListenConfig listener) {
    for (ListenConfig& existing : config_.listeners) {
      if (existing.address != listener.address || existing.tls != listener.tls) continue;
      // An explicit http2="…" wins; bindings that leave it to the default agree anyway.
      if (listener.http2_explicit) {
        existing.http2 = listener.http2;
        existing.http2_explicit = true;
      } else if (!existing.http2_explicit) {
        existing.http2 = existing.http2 || listener.http2;
      }
      if (existing.host_names.empty() || listener.host_names.empty()) {
        existing.host_names.clear();
      } else {
        for (std::string& name : listener.host_names) {
          bool known = std::any_of(existing.host_names.begin(), existing.host_names.end(),
                                   [&](const std::string& n) { return iequals(n, name); });
          if (!known) existing.host_names.push_back(std::move(name));
        }
      }
      return;
    }
    config_.listeners.push_back(std::move(listener));
  }

  std::optional<std::string> read_address(pugi::xml_node node) {
    std::string address;
    read_value(node, "address", address);
    if (address.empty()) return std::nullopt;  // reported as missing or empty by the schema
    std::optional<std::string> normalized = normalize_listen_address(address);
    if (!normalized) {
      diagnostics_.error(node, "bad address " + quoted(address) + " on " + tag(node) +
                                   ": expected HOST:PORT or [IPv6]:PORT with port 0..65535");
    }
    return normalized;
  }

  // ---- <harrow> ----

  // "%d/NAME" (systemd's specifier for the credentials directory) is NAME in
  // $CREDENTIALS_DIRECTORY: files systemd's LoadCredential= copied there from root-only
  // originals, readable by the service's user at start and at every reload.
  void resolve_credential_path(pugi::xml_node node, std::string_view attribute, std::string& path) {
    if (path.rfind("%d/", 0) != 0) return;
    const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
    if (dir == nullptr || *dir == '\0') {
      diagnostics_.attribute_error(node, attribute,
                                   quoted(path) +
                                       " names a systemd credential, but $CREDENTIALS_DIRECTORY "
                                       "is not set (LoadCredential= in the unit sets it)");
      return;
    }
    path = std::string(dir) + path.substr(2);
  }

  // Why a file holding a secret is unfit, or "" if it is fit: it must be a regular file (not a
  // symbolic link) that neither its group nor others may read or write. Checked with lstat, so
  // a reload after the privilege drop can check a root-only file it cannot open.
  static std::string check_secret_file(const std::string& path,
                                       const std::string& what = "token file") {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      return "cannot use " + what + " " + quoted(path) + ": " + std::strerror(errno);
    }
    if (S_ISLNK(st.st_mode)) {
      return what + " " + quoted(path) + " is a symbolic link; name the file itself";
    }
    if (!S_ISREG(st.st_mode)) return what + " " + quoted(path) + " is not a regular file";
    if ((st.st_mode & 077) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      return what + " " + quoted(path) + " has mode " + mode +
             ": group and others must have no access (chmod 600)";
    }
    return "";
  }

  void read_harrow(pugi::xml_node harrow) {
    read_value(harrow, "user", config_.run_as.user);
    read_value(harrow, "group", config_.run_as.group);
    read_value(harrow, "allowRunAsRoot", config_.run_as.allow_root);
    read_value(harrow, "stateFile", config_.state_file);
    for (pugi::xml_node node : child_elements(harrow)) {
      if (!iequals(node.name(), "listen")) continue;
      ListenConfig listener;
      listener.where = diagnostics_.at(node);
      read_value(node, "tls", listener.tls);
      listener.http2 = listener.tls;
      listener.http2_explicit = !find_attribute(node, "http2").empty();
      read_value(node, "http2", listener.http2);
      if (std::optional<std::string> address = read_address(node)) {
        listener.address = *address;
        add_listener(std::move(listener));
      }
    }
    read_tls(harrow);
    if (pugi::xml_node admin = find_child(harrow, "admin")) {
      if (std::optional<std::string> address = read_address(admin))
        config_.admin_address = *address;
      read_value(admin, "tokenFile", config_.admin_token_file);
      if (!config_.admin_token_file.empty()) {
        config_.admin_token_file_where = diagnostics_.at_attribute(admin, "tokenFile");
        resolve_credential_path(admin, "tokenFile", config_.admin_token_file);
        std::string why = check_secret_file(config_.admin_token_file);
        if (!why.empty()) diagnostics_.attribute_error(admin, "tokenFile", why);
      }
      std::string hosts;
      read_value(admin, "allowedHosts", hosts);
      for (char& c : hosts) {
        if (c == ',' || c == ';' || c == '\t' || c == '\n' || c == '\r') c = ' ';
      }
      std::istringstream names(hosts);
      for (std::string name; names >> name;) config_.admin_allowed_hosts.push_back(name);
    }
    if (pugi::xml_node fleet = find_child(harrow, "fleet")) read_fleet(fleet);
    pugi::xml_node access_log = find_child(harrow, "accessLog");
    read_value(access_log, "path", config_.access_log.path);
    read_enum(access_log, "format", kAccessLogFormatNames, config_.access_log.format);
    pugi::xml_node limits = find_child(harrow, "limits");
    read_value(limits, "maxConnections", config_.limits.max_connections);
    read_value(limits, "maxIdleUpstreamPerServer", config_.limits.max_idle_upstream_per_server);
    read_value(limits, "maxRequestLine", config_.limits.max_request_line);
    read_value(limits, "maxRequestHeaderBytes", config_.limits.max_request_header_bytes);
    read_value(limits, "maxRequestHeaders", config_.limits.max_request_headers);
    read_value(limits, "maxAllowedContentLength", config_.limits.max_allowed_content_length);
    read_value(limits, "allowTrace", config_.limits.allow_trace);
    read_value(limits, "maxConnectionsPerClient", config_.limits.max_connections_per_client);
    read_value(limits, "retries", config_.limits.retries);
    pugi::xml_node http2 = find_child(harrow, "http2");
    read_value(http2, "maxConcurrentStreams", config_.http2.max_concurrent_streams);
    read_value(http2, "initialWindowSize", config_.http2.initial_window_size);
    pugi::xml_node memory_cache = find_child(harrow, "memoryCache");
    read_value(memory_cache, "maxCacheSize", config_.memory_cache.max_cache_size_mb);
    read_value(memory_cache, "maxResponseSize", config_.memory_cache.max_response_size);
    pugi::xml_node timeouts = find_child(harrow, "timeouts");
    read_value(timeouts, "connect", config_.timeouts.connect);
    read_value(timeouts, "clientHeader", config_.timeouts.client_header);
    read_value(timeouts, "clientKeepAlive", config_.timeouts.client_keep_alive);
    read_value(timeouts, "upstreamIdle", config_.timeouts.upstream_idle);
    read_value(timeouts, "shutdown", config_.timeouts.shutdown);
    read_value(timeouts, "clientSend", config_.timeouts.client_send);
    read_value(timeouts, "clientBody", config_.timeouts.client_body);
    read_value(timeouts, "webSocketIdle", config_.timeouts.websocket_idle);
  }

  // <certificate>, <tls>, <upstreamTls> and <upstreamHttp2>. File contents are checked by
  // core/tls/tls_context.h.
  // <fleet>: the endpoints are etcd client URLs; the name and instance become parts of etcd
  // keys, so they are restricted to characters that need no escaping there.
  void read_fleet(pugi::xml_node fleet) {
    FleetConfig& f = config_.fleet;
    f.enabled = true;
    f.where = diagnostics_.at(fleet);
    read_value(fleet, "name", f.name);
    read_value(fleet, "instance", f.instance);
    read_value(fleet, "leaseTtl", f.lease_ttl_seconds);
    read_value(fleet, "prefix", f.prefix);
    read_value(fleet, "sharedConfig", f.shared_config);
    auto key_safe = [](const std::string& text) {
      return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
        return is_ascii_alnum(c) || c == '-' || c == '_' || c == '.';
      });
    };
    for (const char* attr : {"name", "instance"}) {
      std::string value;
      read_value(fleet, attr, value);
      if (!value.empty() && !key_safe(value)) {
        diagnostics_.attribute_error(fleet, attr,
                                     std::string(attr) + " \"" + value +
                                         "\" may hold only letters, digits, '-', '_' and '.'");
      }
    }
    if (!f.prefix.empty() && f.prefix.front() != '/') {
      diagnostics_.attribute_error(fleet, "prefix", "prefix must start with '/'");
    } else if (!f.prefix.empty() && f.prefix.back() != '/') {
      f.prefix += '/';
    }
    std::string list;
    read_value(fleet, "endpoints", list);
    for (char& c : list) {
      if (c == ',' || c == ';' || c == '\t' || c == '\n' || c == '\r') c = ' ';
    }
    std::istringstream words(list);
    size_t plain = 0, secure = 0;
    for (std::string url; words >> url;) {
      std::string_view u = url;
      bool https = u.size() > 8 && iequals(u.substr(0, 8), "https://");
      bool ok = https || (u.size() > 7 && iequals(u.substr(0, 7), "http://"));
      std::string_view hostport = ok ? u.substr(https ? 8 : 7) : std::string_view{};
      if (!hostport.empty() && hostport.back() == '/') hostport.remove_suffix(1);
      size_t colon = hostport.rfind(':');
      ok = ok && colon != std::string_view::npos && colon > 0 &&
           hostport.find('/') == std::string_view::npos;
      if (ok) {
        std::optional<uint64_t> port = parse_uint(hostport.substr(colon + 1));
        ok = port && *port > 0 && *port < 65536;
      }
      if (!ok) {
        diagnostics_.attribute_error(
            fleet, "endpoints",
            "endpoint \"" + url +
                "\" is not http://HOST:PORT or https://HOST:PORT (an etcd client URL)");
        continue;
      }
      ++(https ? secure : plain);
      f.endpoints.emplace_back(hostport);
    }
    // One TLS setting for the whole list: a fleet whose store is reached over TLS must not
    // fall over to a plain endpoint that anyone on the path can answer.
    if (plain > 0 && secure > 0) {
      diagnostics_.attribute_error(fleet, "endpoints",
                                   "endpoints mixes http:// and https://; list one kind");
    }
    f.tls = secure > 0;
    read_fleet_security(fleet, f);
    if (f.endpoints.empty() && !list.empty()) return;
    // (An absent attribute is the schema's error already.)
    if (f.endpoints.empty() && find_attribute(fleet, "endpoints")) {
      diagnostics_.attribute_error(fleet, "endpoints", "endpoints lists no etcd endpoint");
    }
  }

  // <fleet>'s TLS files (their contents are checked by core/tls/tls_context.h) and etcd user.
  void read_fleet_security(pugi::xml_node fleet, FleetConfig& f) {
    read_value(fleet, "caFile", f.ca_file);
    read_value(fleet, "certificateFile", f.certificate_file);
    read_value(fleet, "keyFile", f.key_file);
    read_value(fleet, "user", f.user);
    read_value(fleet, "passwordFile", f.password_file);
    if (f.tls && f.ca_file.empty()) {
      diagnostics_.error(fleet,
                         "https:// endpoints need caFile (the CA that signed etcd's "
                         "certificate)");
    }
    if (!f.tls) {
      for (const char* attr : {"caFile", "certificateFile", "keyFile"}) {
        if (find_attribute(fleet, attr)) {
          diagnostics_.attribute_error(fleet, attr,
                                       std::string(attr) + " needs https:// endpoints");
        }
      }
    }
    if (f.certificate_file.empty() != f.key_file.empty()) {
      diagnostics_.error(fleet, "certificateFile and keyFile go together");
    }
    resolve_credential_path(fleet, "caFile", f.ca_file);
    resolve_credential_path(fleet, "certificateFile", f.certificate_file);
    resolve_credential_path(fleet, "keyFile", f.key_file);
    if (f.user.empty() != f.password_file.empty()) {
      diagnostics_.error(fleet, "user and passwordFile go together");
    }
    if (!f.password_file.empty()) {
      f.password_file_where = diagnostics_.at_attribute(fleet, "passwordFile");
      resolve_credential_path(fleet, "passwordFile", f.password_file);
      std::string why = check_secret_file(f.password_file, "password file");
      if (!why.empty()) diagnostics_.attribute_error(fleet, "passwordFile", why);
    }
  }

  void read_tls(pugi::xml_node harrow) {
    bool have_default = false;
    for (pugi::xml_node node : child_elements(harrow)) {
      if (iequals(node.name(), "certificate")) {
        CertificateConfig cert;
        cert.where = diagnostics_.at(node);
        read_value(node, "host", cert.host);
        read_value(node, "certificateFile", cert.certificate_file);
        read_value(node, "keyFile", cert.key_file);
        read_value(node, "chainFile", cert.chain_file);
        read_value(node, "ocspResponseFile", cert.ocsp_response_file);
        resolve_credential_path(node, "certificateFile", cert.certificate_file);
        resolve_credential_path(node, "keyFile", cert.key_file);
        resolve_credential_path(node, "chainFile", cert.chain_file);
        resolve_credential_path(node, "ocspResponseFile", cert.ocsp_response_file);
        read_value(node, "default", cert.is_default);
        for (char& c : cert.host) c = ascii_lower(c);
        if (cert.is_default && have_default) {
          diagnostics_.error(node, "a second <certificate default=\"true\">: one default only");
        }
        have_default = have_default || cert.is_default;
        for (const CertificateConfig& other : config_.certificates) {
          if (!cert.host.empty() && other.host == cert.host) {
            diagnostics_.error(node, "a second <certificate> for host " + quoted(cert.host) +
                                         " (first at " + line_column(other.where) + ")");
          }
        }
        config_.certificates.push_back(std::move(cert));
      } else if (iequals(node.name(), "upstreamTls")) {
        UpstreamTlsConfig upstream;
        upstream.where = diagnostics_.at(node);
        read_value(node, "farm", upstream.farm);
        read_value(node, "verifyCertificate", upstream.verify_certificate);
        read_value(node, "caFile", upstream.ca_file);
        for (const UpstreamTlsConfig& other : config_.upstream_tls) {
          if (iequals(other.farm, upstream.farm)) {
            diagnostics_.error(node, "a second <upstreamTls> for " +
                                         (upstream.farm.empty() ? std::string("every farm")
                                                                : "farm " + quoted(upstream.farm)));
          }
        }
        if (!upstream.farm.empty() && config_.find_farm(upstream.farm) == nullptr) {
          diagnostics_.error(node, "<upstreamTls> names unknown farm " + quoted(upstream.farm));
        }
        config_.upstream_tls.push_back(std::move(upstream));
      } else if (iequals(node.name(), "upstreamHttp2")) {
        UpstreamHttp2Config upstream;
        upstream.where = diagnostics_.at(node);
        read_value(node, "farm", upstream.farm);
        for (const UpstreamHttp2Config& other : config_.upstream_http2) {
          if (iequals(other.farm, upstream.farm)) {
            diagnostics_.error(node, "a second <upstreamHttp2> for farm " + quoted(upstream.farm));
          }
        }
        if (!upstream.farm.empty() && config_.find_farm(upstream.farm) == nullptr) {
          diagnostics_.error(node, "<upstreamHttp2> names unknown farm " + quoted(upstream.farm));
        }
        config_.upstream_http2.push_back(std::move(upstream));
      }
    }
    pugi::xml_node tls = find_child(harrow, "tls");
    if (!tls) return;
    TlsConfig& t = config_.tls;
    t.where = diagnostics_.at(tls);
    read_value(tls, "ciphers", t.ciphers);
    read_value(tls, "cipherSuites", t.cipher_suites);
    std::string unknown_name;
    read_value(tls, "unknownServerName", unknown_name);
    if (!unknown_name.empty()) t.reject_unknown_server_name = iequals(unknown_name, "reject");
    read_enum(tls, "clientCertificate", kClientCertificateNames, t.client_certificate);
    read_value(tls, "clientCaFile", t.client_ca_file);
    resolve_credential_path(tls, "clientCaFile", t.client_ca_file);
    read_value(tls, "sessionCacheSize", t.session_cache_size);
    if (t.client_certificate != ClientCertificateMode::None && t.client_ca_file.empty()) {
      diagnostics_.error(tls, "clientCertificate needs clientCaFile (the CAs that sign them)");
    }
  }

  static std::string line_column(const SourceLocation& where) {
    return "line " + std::to_string(where.line) + ", column " + std::to_string(where.column);
  }

  Diagnostics& diagnostics_;
  Config& config_;
  // A {NAME} reference, checked once every rule is read (check_variable_references).
  struct PendingVariable {
    SourceLocation where;
    std::string name;
    std::string owner;  // "rule 'X'", for the message
    bool outbound;      // in an outbound rule or preCondition: RESPONSE_* is known there
  };
  std::vector<PendingVariable> pending_variables_;
  std::vector<std::string> providers_;  // <rewrite><providers><provider name>
  bool outbound_context_ = false;       // reading <outboundRules>
  bool pools_declared_ = false;         // the file has <applicationPools>: farm pools must be in it
};

// The root must be one <configuration> element.
bool check_root(Diagnostics& diagnostics, const pugi::xml_document& document) {
  pugi::xml_node root = document.document_element();
  bool ok = iequals(root.name(), "configuration");
  if (!ok) {
    diagnostics.error(root, "the root element is " + tag(root) + "; expected <configuration>");
  }
  for (pugi::xml_node extra = root.next_sibling(); extra; extra = extra.next_sibling()) {
    if (extra.type() != pugi::node_element) continue;
    diagnostics.error(extra, "XML: a second root element " + tag(extra) + " after " + tag(root));
    ok = false;
  }
  return ok;
}

}  // namespace

LoadResult load_config_text(std::string_view xml, const std::string& path) {
  Diagnostics diagnostics(path, xml);
  if (std::optional<std::string> problem = encoding_problem(xml)) {
    diagnostics.error(diagnostics.at_offset(0), *problem);
    return diagnostics.finish(std::nullopt);
  }
  // pugixml would stop at a NUL and quietly drop the rest of the file.
  if (size_t nul = xml.find('\0'); nul != std::string_view::npos) {
    diagnostics.error(diagnostics.at_offset(nul),
                      "XML: NUL byte in the file (is it UTF-16? Harrow reads UTF-8)");
    return diagnostics.finish(std::nullopt);
  }

  pugi::xml_document document;
  pugi::xml_parse_result parsed = document.load_buffer(xml.empty() ? "" : xml.data(), xml.size(),
                                                       pugi::parse_default, pugi::encoding_utf8);
  if (!parsed) {
    report_xml_error(diagnostics, xml, parsed);
    return diagnostics.finish(std::nullopt);
  }
  if (!check_root(diagnostics, document)) return diagnostics.finish(std::nullopt);

  pugi::xml_node root = document.document_element();
  SchemaChecker(diagnostics).check(root, kConfiguration, "", "", false);
  Config config;
  config.source_path = path;
  ConfigReader(diagnostics, config).read(root);
  return diagnostics.finish(std::move(config));
}

namespace {

// The one error of a file that cannot be read; `error` is the errno of the failed read. Built
// as a named object, every field set, then moved in: GCC 12 at -O3 cannot follow a
// brace-initialized temporary Diagnostic through push_back and warns that its strings may be
// used uninitialized.
LoadResult unreadable_file(const std::string& path, int error) {
  Diagnostic diagnostic;
  diagnostic.where.file = path;
  diagnostic.where.line = 0;
  diagnostic.where.column = 0;
  diagnostic.message = "cannot read the file: " + std::string(std::strerror(error));
  LoadResult result;
  result.errors.push_back(std::move(diagnostic));
  return result;
}

}  // namespace

LoadResult load_config_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return unreadable_file(path, errno);
  std::ostringstream contents;
  contents << file.rdbuf();
  if (file.bad()) return unreadable_file(path, errno);
  return load_config_text(contents.str(), path);
}

// ============================================================================================
// The --check-config summary
// ============================================================================================

namespace {

std::string describe_target(const RuleConfig& rule, const Config& config) {
  switch (rule.action) {
    case ActionType::Rewrite: {
      std::optional<std::string_view> host = absolute_url_host(rule.action_url);
      if (!host) return "rewrite to " + rule.action_url;
      if (const FarmConfig* farm = config.find_farm(*host)) {
        return "farm " + farm->name +
               (istarts_with(rule.action_url, "https:") ? " (https)" : " (http)");
      }
      return "proxy to " + rule.action_url;
    }
    case ActionType::Redirect:
      return "redirect " + std::to_string(rule.status_code) + " to " + rule.action_url;
    case ActionType::CustomResponse:
      return "respond " + std::to_string(rule.status_code) +
             (rule.status_reason.empty() ? "" : " " + rule.status_reason);
    case ActionType::AbortRequest:
      return "abort the request";
    case ActionType::None:
      break;
  }
  return "no action";
}

void summarize_farm(std::ostringstream& out, const FarmConfig& farm) {
  out << "  " << farm.name << (farm.enabled ? "" : " (disabled)") << "  pool "
      << (farm.application_pool.empty() ? "(none)" : farm.application_pool) << "  algorithm "
      << balancer::algorithm_name(farm.load_balancing.algorithm);
  const LoadBalancingConfig& lb = farm.load_balancing;
  if (lb.algorithm == balancer::Algorithm::RequestHash) {
    out << " of "
        << (lb.hash_server_variable.empty() ? std::string("the URL") : lb.hash_server_variable);
    if (!lb.query_string_names.empty()) out << " (" << lb.query_string_names << ")";
    if (lb.hash_balance_factor > 0) {
      out << " bounded at " << static_cast<int>(lb.hash_balance_factor * 100 + 0.5) << "%";
    }
  }
  out << "  timeout " << format_timespan(farm.protocol.timeout);
  if (!farm.health_check.url.empty()) {
    out << "  health " << farm.health_check.url << " every "
        << format_timespan(farm.health_check.interval);
  }
  if (farm.affinity.use_cookie) out << "  affinity cookie " << farm.affinity.cookie_name;
  if (farm.affinity.use_host_name) out << "  affinity by host name";
  out << "\n";
  if (farm.servers.empty()) out << "    (no servers: requests routed here are answered 503)\n";
  for (const ServerConfig& server : farm.servers) {
    out << "    " << server.address << ":" << server.http_port << " (https " << server.https_port
        << ")  weight " << server.weight << "  " << (server.enabled ? "enabled" : "disabled")
        << "\n";
  }
}

}  // namespace

std::string summarize(const Config& config) {
  std::ostringstream out;
  out << "configuration: " << config.source_path << "\n";
  out << "farms (" << config.farms.size() << "):\n";
  for (const FarmConfig& farm : config.farms) summarize_farm(out, farm);
  out << "rules (" << config.global_rules.size() << "):\n";
  for (const RuleConfig& rule : config.global_rules) {
    out << "  " << rule.name << " -> " << describe_target(rule, config)
        << (rule.enabled ? "" : " (disabled)") << "\n";
  }
  if (!config.rewrite_maps.empty()) {
    out << "rewrite maps (" << config.rewrite_maps.size() << "):";
    for (const RewriteMapConfig& map : config.rewrite_maps) {
      out << " " << map.name << " (" << map.entries.size() << " entries)";
    }
    out << "\n";
  }
  if (!config.distributed_rules.empty()) {
    out << "server-level distributed rules (every site): " << config.distributed_rules.size()
        << "\n";
  }
  if (!config.outbound.rules.empty()) {
    out << "outbound rules (every site): " << config.outbound.rules.size() << "\n";
  }
  if (!config.sites.empty()) {
    out << "sites (" << config.sites.size() << "):\n";
    for (const SiteConfig& site : config.sites) {
      out << "  " << site.name << ":";
      for (const SiteBindingConfig& b : site.bindings) {
        out << " " << (b.https ? "https://" : "http://") << b.address
            << (b.host.empty() ? "" : " (" + b.host + ")");
      }
      out << "  rules " << site.rules.size() << ", outbound rules " << site.outbound.rules.size()
          << "\n";
    }
  }
  out << "proxy to any host: " << (config.global_proxy_enabled ? "enabled" : "disabled") << "\n";
  out << "listeners (" << config.listeners.size() << "):\n";
  for (const ListenConfig& listener : config.listeners) {
    out << "  " << (listener.tls ? "https://" : "http://") << listener.address << "\n";
  }
  if (!config.certificates.empty()) {
    out << "certificates (" << config.certificates.size() << "):\n";
    for (const CertificateConfig& cert : config.certificates) {
      out << "  " << (cert.host.empty() ? "(no host)" : cert.host) << " " << cert.certificate_file
          << (cert.is_default ? " (default)" : "") << "\n";
    }
  }
  for (const UpstreamTlsConfig& u : config.upstream_tls) {
    out << "upstream TLS for " << (u.farm.empty() ? "every farm" : "farm " + u.farm) << ": "
        << (u.verify_certificate ? "verified against " : "NOT VERIFIED")
        << (u.verify_certificate ? (u.ca_file.empty() ? "the system CA store" : u.ca_file) : "")
        << "\n";
  }
  out << "admin: http://" << config.admin_address << "\n";
  if (config.fleet.enabled) {
    const FleetConfig& f = config.fleet;
    out << "fleet: " << f.name << ", instance " << f.instance << ", lease TTL "
        << f.lease_ttl_seconds << "s, keys under " << f.prefix << f.name << "/, etcd";
    for (const std::string& e : f.endpoints) out << (f.tls ? " https://" : " http://") << e;
    if (f.tls)
      out << " (CA " << f.ca_file << (f.certificate_file.empty() ? "" : ", client certificate")
          << ")";
    if (!f.user.empty()) out << ", etcd user " << f.user;
    out << (f.shared_config ? "; configuration from the key " + f.prefix + f.name + "/config" : "")
        << "\n";
  }
  out << "access log: "
      << (config.access_log.path.empty()
              ? std::string("(none)")
              : config.access_log.path + " (" +
                    std::string(
                        kAccessLogFormatNames[static_cast<size_t>(config.access_log.format)]) +
                    ")")
      << "\n";
  if (!config.ignored.empty()) {
    out << "accepted but not acted on (" << config.ignored.size() << "):\n";
    for (const IgnoredSetting& setting : config.ignored) {
      out << "  " << setting.where.file << ":" << setting.where.line << ": " << setting.what
          << "\n";
    }
  }
  return out.str();
}

}  // namespace harrow::config

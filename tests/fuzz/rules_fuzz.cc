// libFuzzer target for URL Rewrite rule evaluation: a fixed, loaded configuration (maps,
// functions, conditions, server variables, every action) routes requests whose target, Host
// and one header come from the fuzz input. Any bytes must give a well-formed decision — never
// a crash, a hang or a sanitizer report — and routing the same request twice through the same
// scratch must decide the same (nothing leaks from one route() into the next).
//
// Input: FLAGS TARGET '\n' HOST '\n' X-TENANT-VALUE, where FLAGS bit 0 is {HTTPS}.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/loader.h"
#include "core/http1/http_head.h"
#include "core/rewrite/router.h"

namespace {

constexpr std::string_view kConfig = R"xml(<configuration>
  <webFarms>
    <webFarm name="shop"><server address="127.0.0.1" /></webFarm>
    <webFarm name="api"><server address="127.0.0.2" /></webFarm>
  </webFarms>
  <system.webServer>
    <rewrite>
      <rewriteMaps>
        <rewriteMap name="Backends" defaultValue="shop">
          <add key="api.example.com" value="api" />
          <add key="API.internal" value="api" />
        </rewriteMap>
      </rewriteMaps>
      <globalRules>
        <rule name="block" stopProcessing="true">
          <match url="\.(php|asp)$" />
          <action type="AbortRequest" />
        </rule>
        <rule name="admin" stopProcessing="true">
          <match url="^admin(/.*)?$" />
          <conditions><add input="{REMOTE_ADDR}" pattern="^10\." negate="true" /></conditions>
          <action type="CustomResponse" statusCode="403" statusReason="Forbidden {R:1}"
                  statusDescription="{UrlEncode:{REQUEST_URI}}" />
        </rule>
        <rule name="old" stopProcessing="true">
          <match url="^old/(.*)" />
          <action type="Redirect" redirectType="Found"
                  url="https://{ToLower:{HTTP_HOST}}/new/{UrlDecode:{R:1}}" />
        </rule>
        <rule name="headers">
          <match url=".*" />
          <serverVariables>
            <set name="HTTP_X_FORWARDED_PROTO" value="{HTTPS}" />
            <set name="HTTP_X_TENANT" value="{ToLower:{HTTP_HOST}}" replace="false" />
            <set name="HTTP_HOST" value="{Backends:{ToLower:{HTTP_HOST}}}.backend" />
          </serverVariables>
          <action type="None" />
        </rule>
        <rule name="v1" patternSyntax="Wildcard">
          <match url="v1/*" />
          <action type="Rewrite" url="{R:1}?from=v1" />
        </rule>
        <rule name="api" stopProcessing="true">
          <match url="(.*)" />
          <conditions logicalGrouping="MatchAny" trackAllCaptures="true">
            <add input="{HTTP_HOST}" pattern="^(api)\.backend$" />
            <add input="{QUERY_STRING}" pattern="(?:^|&amp;)farm=(\w+)" />
          </conditions>
          <action type="Rewrite" url="http://api/{C:1}/{UrlEncode:{HTTP_X_TENANT}}/{R:1}" />
        </rule>
        <rule name="health" patternSyntax="ExactMatch" stopProcessing="true">
          <match url="health" />
          <action type="CustomResponse" statusCode="200" statusReason="OK"
                  statusDescription="up" />
        </rule>
        <rule name="ARR_shop_loadbalance" patternSyntax="Wildcard" stopProcessing="true">
          <match url="*" />
          <action type="Rewrite" url="https://shop/{R:0}" />
        </rule>
      </globalRules>
    </rewrite>
  </system.webServer>
</configuration>
)xml";

struct Engine {
  harrow::config::Config config;
  std::unique_ptr<harrow::Router> router;
  harrow::RouteScratch scratch;
  harrow::MessageHead head;

  Engine() {
    harrow::config::LoadResult loaded = harrow::config::load_config_text(kConfig, "rules.config");
    if (!loaded.config) __builtin_trap();  // the fixed configuration must load
    config = std::move(*loaded.config);
    router = std::make_unique<harrow::Router>(config);
  }
};

// Everything of a decision, copied (its views die with the next route()).
struct Copy {
  harrow::RouteDecision::Kind kind;
  int farm;
  bool https;
  int status;
  std::string target, reason, body, rule;
  std::vector<std::pair<std::string, std::string>> headers;

  explicit Copy(const harrow::RouteDecision& d)
      : kind(d.kind),
        farm(d.farm),
        https(d.https),
        status(d.status),
        target(d.target),
        reason(d.reason),
        body(d.body),
        rule(d.rule) {
    for (const harrow::HeaderField& h : d.set_headers) headers.emplace_back(h.name, h.value);
  }
  bool operator==(const Copy&) const = default;
};

void check(const harrow::RouteDecision& d) {
  using Kind = harrow::RouteDecision::Kind;
  switch (d.kind) {
    case Kind::Farm:
      if (d.farm < 0 || d.farm > 1) __builtin_trap();
      if (d.target.empty() || d.target.front() != '/') __builtin_trap();
      if (d.rule != "api" && d.rule != "ARR_shop_loadbalance") __builtin_trap();
      if (d.https != (d.rule == "ARR_shop_loadbalance")) __builtin_trap();
      break;
    case Kind::Redirect:
      if (d.status != 302 || d.target.substr(0, 8) != "https://") __builtin_trap();
      break;
    case Kind::CustomResponse:
      if (d.status != 403 && d.status != 200) __builtin_trap();
      break;
    case Kind::Abort:
      if (d.rule != "block") __builtin_trap();
      break;
    case Kind::NoRoute:
      break;
    case Kind::Proxy:  // this config does not enable <proxy>
      __builtin_trap();
  }
  if (d.kind != Kind::Farm && d.farm != -1) __builtin_trap();
  if (d.set_headers.size() > 3) __builtin_trap();
  for (const harrow::HeaderField& h : d.set_headers) {
    if (h.name != "X-Forwarded-Proto" && h.name != "X-Tenant" && h.name != "Host") {
      __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Engine* engine = new Engine();  // built once, like a config snapshot
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  size_t nl = input.find('\n');
  std::string_view target = input.substr(0, nl);
  std::string_view rest = nl == std::string_view::npos ? std::string_view{} : input.substr(nl + 1);
  nl = rest.find('\n');
  std::string_view host = rest.substr(0, nl);
  std::string_view tenant = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);

  harrow::MessageHead& head = engine->head;
  head.reset(1 << 20);
  head.on_target(target.data(), target.size());
  if (!tenant.empty()) {
    head.on_field("X-Tenant", 8);
    head.on_value(tenant.data(), tenant.size());
  }
  head.finish();

  harrow::RequestFacts facts;
  facts.method = "GET";
  facts.target = target;
  facts.host = host;
  facts.https = (data[0] & 1) != 0;
  facts.server_port = facts.https ? 443 : 80;
  facts.remote_addr = (data[0] & 2) != 0 ? "10.0.0.1" : "192.0.2.1";
  facts.head = &head;

  harrow::RouteDecision first = engine->router->route(facts, engine->scratch);
  check(first);
  Copy copy(first);
  harrow::RouteDecision again = engine->router->route(facts, engine->scratch);
  if (!(Copy(again) == copy)) __builtin_trap();
  return 0;
}

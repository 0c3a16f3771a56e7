#include "core/admin/explain.h"

#include <charconv>
#include <cstdio>

#include "balancer/balancer.h"
#include "balancer/host_affinity.h"
#include "core/base/ascii.h"
#include "core/http1/url_path.h"
#include "core/proxy/affinity_cookie.h"
#include "core/proxy/farm_hash_key.h"
#include "core/proxy/worker.h"
#include "core/rewrite/router.h"

namespace harrow {
namespace {

const char* syntax_name(config::PatternSyntax s) {
  switch (s) {
    case config::PatternSyntax::Wildcard:
      return "Wildcard";
    case config::PatternSyntax::ExactMatch:
      return "ExactMatch";
    default:
      return "ECMAScript";
  }
}

const char* action_name(config::ActionType a) {
  switch (a) {
    case config::ActionType::Rewrite:
      return "Rewrite";
    case config::ActionType::Redirect:
      return "Redirect";
    case config::ActionType::CustomResponse:
      return "CustomResponse";
    case config::ActionType::AbortRequest:
      return "AbortRequest";
    default:
      return "None";
  }
}

std::string quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

std::string captures_text(std::span<const std::string_view> captures, char kind) {
  std::string out;
  for (size_t i = 0; i < captures.size(); ++i) {
    out += i == 0 ? " " : ", ";
    out += "{";
    out += kind;
    out += ":" + std::to_string(i) + "}=" + quoted(captures[i]);
  }
  return out;
}

// Writes what route() does into the report.
class ReportTrace final : public RouteTrace {
 public:
  explicit ReportTrace(std::vector<std::string>& lines) : lines_(lines) {}

  void rule_set(std::string_view which) override {
    const char* title = which == "global"   ? "global rules (<globalRules>)"
                        : which == "server" ? "server rules (<rewrite><rules>)"
                                            : "site rules (<location path=\"SITE\">)";
    lines_.push_back(std::string(title) + ":");
    rule_ = nullptr;
  }
  void rule(const config::RuleConfig& rule, std::string_view input, bool matched,
            std::span<const std::string_view> captures) override {
    rule_ = &rule;
    std::string line = "  rule " + quoted(rule.name) + " (line " + std::to_string(rule.where.line) +
                       "): match url " + quoted(rule.match_url) + " (" +
                       syntax_name(rule.pattern_syntax) + (rule.match_negate ? ", negate" : "") +
                       ") against " + quoted(input) + ": ";
    line += matched ? "matched" + captures_text(captures, 'R') : "no match";
    lines_.push_back(line);
  }
  void condition(size_t index, std::string_view input, bool matched,
                 std::span<const std::string_view> captures) override {
    std::string what = "condition";
    if (rule_ != nullptr && index < rule_->conditions.size()) {
      const config::ConditionConfig& c = rule_->conditions[index];
      what = "condition " + c.input + (c.negate ? " !~ " : " ~ ") + quoted(c.pattern);
    }
    lines_.push_back("    " + what + " with input " + quoted(input) + ": " +
                     (matched ? "matched" + captures_text(captures, 'C') : "no match"));
  }
  void conditions(bool hold) override {
    if (rule_ == nullptr) return;
    if (rule_->conditions.empty()) {
      if (hold) action();
      return;
    }
    const char* grouping =
        rule_->logical_grouping == config::LogicalGrouping::MatchAny ? "MatchAny" : "MatchAll";
    lines_.push_back(std::string("    conditions (") + grouping +
                     "): " + (hold ? "hold" : "do not hold: the rule does not apply"));
    if (hold) action();
  }
  void variable(std::string_view name, std::string_view value, bool skipped) override {
    if (skipped) {
      lines_.push_back("    set server variable " + std::string(name) +
                       ": skipped (replace=\"false\" and it has a value)");
    } else {
      lines_.push_back("    set server variable " + std::string(name) + " = " + quoted(value));
    }
  }
  void action_url(std::string_view url) override {
    lines_.push_back("    action URL: " + quoted(url));
    bool absolute = istarts_with(url, "http://") || istarts_with(url, "https://");
    if (rule_ != nullptr && rule_->action == config::ActionType::Rewrite && !absolute) {
      lines_.push_back(
          std::string("    a relative rewrite: the next rules see this URL") +
          (rule_->stop_processing ? "; stopProcessing skips the rest of this rule set" : ""));
    }
  }
  // Called when a matched rule applies without conditions too (from rule()+conditions(true)).
  void action() {
    if (rule_ == nullptr) return;
    std::string line = std::string("    action ") + action_name(rule_->action);
    if (!rule_->action_url.empty()) line += " url=" + quoted(rule_->action_url);
    if (rule_->stop_processing) line += ", stopProcessing";
    lines_.push_back(line);
  }
  const config::RuleConfig* current() const { return rule_; }

 private:
  std::vector<std::string>& lines_;
  const config::RuleConfig* rule_ = nullptr;
};

// Every server that is enabled with a weight takes traffic: nothing has been probed.
class AssumeHealthy final : public balancer::AvailableServers {
 public:
  explicit AssumeHealthy(const SnapshotFarm& farm) : farm_(farm) {}
  bool available(size_t i) const override {
    const config::ServerConfig& s = *farm_.servers[i].config;
    return s.enabled && s.weight > 0;
  }
  uint64_t version() const override { return 0; }

 private:
  const SnapshotFarm& farm_;
};

std::string server_label(const config::ServerConfig& s, bool https) {
  return s.address + ":" + std::to_string(https ? s.https_port : s.http_port);
}

// The request line and headers, parsed.
struct Parsed {
  std::string method;
  bool https = false;
  std::string host;  // as in the URL (with any port)
  uint16_t port = 80;
  std::string target;  // origin form
};

bool parse_request(const ExplainInput& in, Parsed& p, std::string& error) {
  std::string_view line = in.request;
  while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  size_t space = line.find(' ');
  if (space == std::string_view::npos) {
    error = "expected \"METHOD URL\", e.g. \"GET https://shop.example/a?x=1\"";
    return false;
  }
  p.method = std::string(line.substr(0, space));
  std::string_view url = line.substr(space + 1);
  while (!url.empty() && url.front() == ' ') url.remove_prefix(1);
  if (size_t sp = url.find(' '); sp != std::string_view::npos) url = url.substr(0, sp);
  if (istarts_with(url, "https://")) {
    p.https = true;
    p.port = 443;
    url.remove_prefix(8);
  } else if (istarts_with(url, "http://")) {
    url.remove_prefix(7);
  } else {
    error = "the URL must be absolute (http:// or https://), not \"" + std::string(url) + "\"";
    return false;
  }
  size_t slash = url.find_first_of("/?");
  std::string_view authority = url.substr(0, slash);
  if (authority.empty()) {
    error = "the URL has no host";
    return false;
  }
  p.host = std::string(authority);
  size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
    unsigned port = 0;
    auto [ptr, ec] =
        std::from_chars(authority.data() + colon + 1, authority.data() + authority.size(), port);
    if (ec != std::errc() || ptr != authority.data() + authority.size() || port == 0 ||
        port > 65535) {
      error = "bad port in \"" + std::string(authority) + "\"";
      return false;
    }
    p.port = static_cast<uint16_t>(port);
  }
  p.target = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  if (p.target.front() == '?') p.target.insert(0, "/");
  for (const std::string& h : in.headers) {
    size_t c = h.find(':');
    if (c == std::string::npos || c == 0) {
      error = "a header must be \"Name: value\", not \"" + h + "\"";
      return false;
    }
  }
  return true;
}

uint16_t listener_port(std::string_view address) {
  size_t colon = address.rfind(':');
  unsigned port = 0;
  if (colon != std::string_view::npos)
    std::from_chars(address.data() + colon + 1, address.data() + address.size(), port);
  return static_cast<uint16_t>(port);
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

}  // namespace

Explanation explain_request(const Snapshot& snap, const ExplainInput& in, bool live) {
  Explanation ex;
  Parsed p;
  if (!parse_request(in, p, ex.error)) return ex;
  ex.ok = true;
  const config::Config& config = *snap.config;
  std::vector<std::string>& out = ex.lines;
  out.push_back("request: " + p.method + " " + (p.https ? "https://" : "http://") + p.host +
                p.target);

  // The head as a client would send it: Host from the URL unless a Host header is given.
  MessageHead head;
  head.reset(1 << 20);
  bool host_given = false;
  std::string host = p.host;
  for (const std::string& h : in.headers) {
    std::string_view name = std::string_view(h).substr(0, h.find(':'));
    std::string_view value = std::string_view(h).substr(h.find(':') + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    if (iequals(name, "host")) {
      host_given = true;
      host = std::string(value);
    }
  }
  std::vector<std::string> fields;
  if (!host_given) fields.push_back("Host: " + p.host);
  for (const std::string& h : in.headers) fields.push_back(h);
  head.on_target(p.target.data(), p.target.size());
  for (const std::string& h : fields) {
    size_t c = h.find(':');
    std::string_view value = std::string_view(h).substr(c + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    head.on_field(h.data(), c);
    head.on_value(value.data(), value.size());
    out.push_back("  header " + h.substr(0, c) + ": " + std::string(value));
  }
  head.finish();

  // The listener it would arrive on: one with the URL's port and scheme.
  std::string listener;
  for (const config::ListenConfig& l : config.listeners) {
    if (l.tls == p.https && listener_port(l.address) == p.port) {
      listener = l.address;
      break;
    }
  }
  if (listener.empty()) {
    out.push_back("listener: none of the configuration's listeners is " +
                  std::string(p.https ? "https" : "http") + " on port " + std::to_string(p.port) +
                  "; as on a --listen listener, the site is chosen by Host alone");
  } else {
    out.push_back("listener: " + std::string(p.https ? "https://" : "http://") + listener);
  }

  RequestFacts facts;
  facts.method = p.method;
  facts.target = p.target;
  facts.host = host;
  facts.https = p.https;
  facts.server_port = p.port;
  facts.remote_addr = "127.0.0.1";
  facts.head = &head;
  facts.site = snap.sites->match(listener, host);
  if (facts.site >= 0) {
    const config::SiteConfig& site = config.sites[static_cast<size_t>(facts.site)];
    ex.site = site.name;
    out.push_back("site: " + site.name + " (line " + std::to_string(site.where.line) + ")");
  } else {
    out.push_back("site: none (no binding matches; only the global and server rules run)");
  }
  out.push_back("  {REMOTE_ADDR} is taken as 127.0.0.1");

  const config::LimitsConfig& limits = config.limits;
  UrlLimits url_limits{limits.max_url, limits.max_query_string, limits.allow_double_escaping};
  Rejection why;
  std::string canonical;
  if (!canonicalize_target(p.target, url_limits, canonical, why)) {
    ex.outcome = "refused";
    ex.status = static_cast<int>(failure_status(why.failure));
    out.push_back("refused before any rule: " + std::string(failure_token(why.failure)) + " (" +
                  std::to_string(ex.status) + ")" +
                  (why.detail != nullptr ? std::string(": ") + why.detail : std::string()));
    return ex;
  }
  facts.path = canonical;
  out.push_back("URL the rules see: " + quoted(canonical.substr(canonical.empty() ? 0 : 1)) +
                " (decoded, without the leading '/'; the query string is {QUERY_STRING})");

  RouteScratch scratch;
  ReportTrace trace(out);
  RouteDecision d = snap.router->route(facts, scratch, &trace);
  if (scratch.match_error() != 0) {
    ex.outcome = "refused";
    ex.status = 500;
    out.push_back("a pattern reached the regex limits (" + scratch.match_error_text() +
                  ") in rule " + quoted(snap.router->failed_rule(scratch)) +
                  ": 500 rule_match_error");
    return ex;
  }
  ex.rule = std::string(d.rule);
  for (const HeaderField& h : d.set_headers) {
    out.push_back("request header set by the rules: " + std::string(h.name) + ": " +
                  std::string(h.value));
  }
  int farm_index = -1;
  switch (d.kind) {
    case RouteDecision::Kind::Farm:
      ex.outcome = "farm";
      farm_index = d.farm;
      ex.url = std::string(d.target);
      out.push_back("decision: rule " + quoted(d.rule) + " rewrites to farm " +
                    quoted(config.farms[static_cast<size_t>(d.farm)].name) + " over " +
                    (d.https ? "https" : "http") + ", URL sent: " + std::string(d.target));
      break;
    case RouteDecision::Kind::Proxy:
      ex.outcome = "proxy";
      ex.url = std::string(d.target);
      farm_index = snap.proxy_farm(d.authority);
      out.push_back("decision: rule " + quoted(d.rule) + " rewrites to host " +
                    std::string(d.authority) +
                    " (not a farm; <proxy enabled=\"true\">), URL sent: " + std::string(d.target));
      if (d.https) {
        ex.status = 502;
        out.push_back("  the global proxy reaches hosts over http:// only: 502 upstream_tls");
        farm_index = -1;
      } else if (farm_index < 0) {
        ex.status = 502;
        out.push_back(
            "  the host is computed from the request, not written in the configuration: 502 "
            "proxy_target_unknown (Harrow is never an open proxy)");
      }
      break;
    case RouteDecision::Kind::NoRoute:
      ex.outcome = "no-route";
      ex.status = 404;
      if (!d.rule.empty()) {
        out.push_back("decision: rule " + quoted(d.rule) +
                      " rewrites to an absolute URL whose host names no farm, and proxying to "
                      "hosts needs <system.webServer><proxy enabled=\"true\"/> in "
                      "applicationHost.config: 404 no_route");
      } else {
        out.push_back("decision: no rule sent the request anywhere: 404 no_route");
      }
      break;
    case RouteDecision::Kind::Redirect:
      ex.outcome = "redirect";
      ex.status = d.status;
      ex.url = absolute_location(d.target, p.https, host);
      out.push_back("decision: rule " + quoted(d.rule) + " redirects: " + std::to_string(d.status) +
                    " Location: " + ex.url);
      break;
    case RouteDecision::Kind::CustomResponse:
      ex.outcome = "custom-response";
      ex.status = d.status;
      out.push_back("decision: rule " + quoted(d.rule) + " answers " + std::to_string(d.status) +
                    " " + std::string(d.reason) + " " + quoted(d.body));
      break;
    case RouteDecision::Kind::Abort:
      ex.outcome = "abort";
      out.push_back("decision: rule " + quoted(d.rule) +
                    " aborts: the connection closes without an answer");
      break;
  }

  if (farm_index >= 0) {
    const SnapshotFarm& rt = snap.farms[static_cast<size_t>(farm_index)];
    const config::FarmConfig& farm = *rt.config;
    ex.farm = farm.name;
    bool https = d.https;
    out.push_back("farm " + farm.name + ": algorithm " +
                  std::string(balancer::algorithm_name(farm.load_balancing.algorithm)) + ", " +
                  std::to_string(farm.servers.size()) + " server(s)");
    std::unique_ptr<balancer::AvailableServers> availability;
    if (live) {
      availability = std::make_unique<FarmAvailability>(&rt);
      out.push_back("  health: as the running proxy sees it now");
    } else {
      availability = std::make_unique<AssumeHealthy>(rt);
      out.push_back(
          "  health: assumed healthy (offline: nothing was probed or resolved); enabled=\"false\" "
          "and weight 0 servers take no traffic");
    }
    for (size_t i = 0; i < rt.servers.size(); ++i) {
      const config::ServerConfig& s = *rt.servers[i].config;
      std::string state = availability->available(i) ? "available" : "not available";
      if (!s.enabled) state += " (enabled=\"false\")";
      if (live) {
        health::ServerState hs = rt.health->load(i);
        if (!rt.servers[i].resolved) state += " (does not resolve)";
        if (!hs.healthy) state += " (unhealthy)";
      }
      out.push_back("  server " + server_label(s, https) + " weight " + std::to_string(s.weight) +
                    ": " + state);
    }
    std::optional<size_t> pick;
    std::string why;
    if (!farm.enabled) {
      why = "the farm is enabled=\"false\": 503 no_server";
    } else {
      if (rt.affinity_index != nullptr) {
        std::string_view value = rt.affinity_cookies->find(head);
        if (!value.empty()) {
          std::optional<size_t> affine = rt.affinity_index->find(value);
          if (affine && availability->available(*affine)) {
            pick = affine;
            why = "the affinity cookie " + rt.affinity_cookies->name() + " names it";
          } else {
            why = "the affinity cookie " + rt.affinity_cookies->name() +
                  " names no available server; ";
          }
        }
      }
      if (!pick && rt.host_affinity != nullptr) {
        balancer::HostAffinity fresh(
            static_cast<uint64_t>(farm.affinity.timeout.count()) * 1'000'000, {},
            farm.servers.size());
        pick = fresh.pick(host, *availability, 0);
        why +=
            "host-name affinity (useHostName): a Host not yet pinned gets the next server "
            "round robin; this is the first allotment";
      } else if (!pick) {
        balancer::BalancedFarm spec = balanced_farm(rt);
        spec.randomize_ties = false;  // the explanation must be the same each time
        spec.hash_balance_factor = 0;
        std::unique_ptr<balancer::Balancer> b = balancer::make_balancer(spec);
        balancer::Random random;
        balancer::PickContext ctx{*availability, random, 0};
        if (rt.hash_key != nullptr) {
          std::string buffer;
          ctx.hash = rt.hash_key->hash(facts, d.set_headers, buffer);
          why +=
              "RequestHash: the request's key hashes to this server on the ring (the same "
              "every time while the set of available servers stays the same)";
        } else if (farm.load_balancing.algorithm == balancer::Algorithm::WeightedRoundRobin) {
          why +=
              "WeightedRoundRobin: the first pick of a fresh cycle (the heaviest server); "
              "later requests rotate in proportion to the weights";
        } else {
          why += std::string(balancer::algorithm_name(farm.load_balancing.algorithm)) +
                 ": with no load and no samples yet, the first pick; under load it follows "
                 "requests in flight, response time or traffic";
        }
        pick = b->pick(ctx);
      }
      if (pick && rt.affinity_index != nullptr && why.find("names it") == std::string::npos) {
        why += "; the response sets the affinity cookie " + rt.affinity_cookies->name() + "=" +
               rt.affinity_index->value(*pick);
      }
    }
    if (pick) {
      ex.server = server_label(*rt.servers[*pick].config, https);
      out.push_back("server picked: " + ex.server + " (" + why + ")");
    } else {
      ex.status = 503;
      out.push_back("server picked: none: 503 no_server" + (why.empty() ? "" : " (" + why + ")"));
    }
  }

  // Outbound rules: which ones run on the response depends on the response (preconditions).
  std::vector<const config::OutboundRuleConfig*> outbound;
  for (const config::OutboundRuleConfig& r : config.outbound.rules)
    if (r.enabled) outbound.push_back(&r);
  if (facts.site >= 0) {
    for (const config::OutboundRuleConfig& r :
         config.sites[static_cast<size_t>(facts.site)].outbound.rules)
      if (r.enabled) outbound.push_back(&r);
  }
  if (ex.outcome == "farm" || ex.outcome == "proxy") {
    if (outbound.empty()) {
      out.push_back("outbound rules: none apply to this site's responses");
    } else {
      out.push_back(
          "outbound rules run on the response, in order (each only if its "
          "preCondition holds for that response):");
      for (const config::OutboundRuleConfig* r : outbound) {
        std::string line =
            "  " + quoted(r->name) + " (line " + std::to_string(r->where.line) + "): ";
        line += r->server_variable.empty() ? "links in <" + r->filter_by_tags + "> of HTML bodies"
                                           : "header " + r->server_variable;
        line += " ~ " + quoted(r->pattern);
        if (r->rewrite) line += " -> " + quoted(r->value);
        if (!r->pre_condition.empty()) line += ", preCondition " + r->pre_condition;
        out.push_back(line);
      }
    }
  }
  return ex;
}

std::string render_explanation_text(const Explanation& e) {
  std::string out;
  for (const std::string& line : e.lines) out += line + "\n";
  return out;
}

std::string render_explanation_json(const Explanation& e) {
  std::string out = "{";
  auto field = [&](const char* name, std::string_view value) {
    append_json_string(out, name);
    out += ':';
    append_json_string(out, value);
    out += ',';
  };
  field("outcome", e.outcome);
  field("site", e.site);
  field("rule", e.rule);
  field("url", e.url);
  field("farm", e.farm);
  field("server", e.server);
  out += "\"status\":" + std::to_string(e.status) + ",\"report\":[";
  for (size_t i = 0; i < e.lines.size(); ++i) {
    if (i > 0) out += ',';
    append_json_string(out, e.lines[i]);
  }
  out += "]}\n";
  return out;
}

namespace {

// A small reader for the one JSON shape POST /api/explain takes.
struct JsonReader {
  std::string_view s;
  size_t i = 0;
  void space() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  }
  bool eat(char c) {
    space();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  bool string(std::string& out) {
    space();
    if (i >= s.size() || s[i] != '"') return false;
    ++i;
    out.clear();
    while (i < s.size() && s[i] != '"') {
      char c = s[i++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i >= s.size()) return false;
      char esc = s[i++];
      switch (esc) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'u': {
          if (i + 4 > s.size()) return false;
          unsigned cp = 0;
          auto [p, ec] = std::from_chars(s.data() + i, s.data() + i + 4, cp, 16);
          if (ec != std::errc() || p != s.data() + i + 4) return false;
          i += 4;
          if (cp < 0x80) {
            out += static_cast<char>(cp);
          } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          } else {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          }
          break;
        }
        default:
          out += esc;
      }
    }
    if (i >= s.size()) return false;
    ++i;
    return true;
  }
};

}  // namespace

bool parse_explain_json(std::string_view body, ExplainInput& out, std::string& error) {
  JsonReader r{body};
  error = "expected {\"request\":\"GET https://host/path\",\"headers\":[\"Name: value\"]}";
  if (!r.eat('{')) return false;
  bool have_request = false;
  if (!r.eat('}')) {
    do {
      std::string key;
      if (!r.string(key) || !r.eat(':')) return false;
      if (key == "request") {
        if (!r.string(out.request)) return false;
        have_request = true;
      } else if (key == "headers") {
        if (!r.eat('[')) return false;
        if (!r.eat(']')) {
          do {
            std::string h;
            if (!r.string(h)) return false;
            out.headers.push_back(std::move(h));
          } while (r.eat(','));
          if (!r.eat(']')) return false;
        }
      } else {
        error = "unknown field \"" + key + "\": use \"request\" and \"headers\"";
        return false;
      }
    } while (r.eat(','));
    if (!r.eat('}')) return false;
  }
  if (!have_request) return false;
  error.clear();
  return true;
}

}  // namespace harrow

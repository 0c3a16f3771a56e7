// Router::route: the global rules, then the server-level rules every site inherits, then the
// site's own, run in order over a request until one decides what becomes of it.
#include <string>
#include <string_view>
#include <vector>

#include "core/base/ascii.h"
#include "core/rewrite/router.h"
#include "core/rewrite/rule_evaluator.h"
#include "core/rewrite/text_functions.h"

namespace harrow {

namespace router_internal {

namespace {

using config::ActionType;

// True if variable `slot` already has a value for <set replace="false">: a rule set it during
// this route(), or (HTTP_*) the request carries the header, or (others) its built-in value is
// not empty.
bool variable_has_value(const Router::Variable& v, int slot, const Eval& e) {
  if (slot_is_set(e.s, slot)) return true;
  switch (v.builtin) {
    case Var::HttpHost:
      return !e.facts.host.empty();
    case Var::Header:
      return e.facts.head != nullptr && e.facts.head->has(v.builtin_header);
    default:
      e.s.value.clear();
      append_builtin(v.builtin, v.builtin_header, e, e.s.value);
      return !e.s.value.empty();
  }
}

// Applies the rule's <serverVariables>, in order: each value is expanded (seeing the sets before
// it) and stored in the scratch, where later references and RouteDecision::set_headers read it.
void apply_server_variables(const Router::CompiledRule& rule, const Eval& e) {
  Impl& s = e.s;
  for (const ServerVariableAssignment& set : rule.sets) {
    const Router::Variable& v = *e.variables[set.slot];
    if (!set.replace && variable_has_value(v, set.slot, e)) {
      if (e.trace != nullptr) e.trace->variable(v.name, {}, true);
      continue;
    }
    expand(set.value, e, s.value);
    if (e.trace != nullptr) e.trace->variable(v.name, s.value, false);
    VariableSlot& slot = s.slots[set.slot];
    slot.value.assign(s.value);
    if (slot.generation != s.generation) {
      slot.generation = s.generation;
      s.set_order.push_back(set.slot);
    }
  }
}

// Points decision.set_headers at the HTTP_* variables the rules set, one header per variable,
// in the order each was first set.
void finish_headers(const Eval& e, RouteDecision& decision) {
  Impl& s = e.s;
  s.set_headers.clear();
  if (s.set_variables.size() < s.set_order.size()) s.set_variables.resize(s.set_order.size());
  for (size_t i = 0; i < s.set_order.size(); ++i) {
    int slot = s.set_order[i];
    const Router::Variable& v = *e.variables[slot];
    if (!v.header.empty()) s.set_headers.push_back({v.header, s.slots[slot].value});
    s.set_variables[i].first = slot;
    s.set_variables[i].second.assign(s.slots[slot].value);
  }
  decision.set_headers = s.set_headers;
  decision.set_variables = std::span<const SetVariable>(s.set_variables).first(s.set_order.size());
}

// "http://NAME:port/rest" → NAME, "NAME:port" and "/rest" (for a farm the port is ignored:
// its servers have their own); false if `url` is not absolute http(s).
bool split_absolute(std::string_view url, bool& https, std::string_view& host,
                    std::string_view& authority_out, std::string_view& path) {
  size_t scheme_end;
  if (istarts_with(url, "http://")) {
    scheme_end = 7;
    https = false;
  } else if (istarts_with(url, "https://")) {
    scheme_end = 8;
    https = true;
  } else {
    return false;
  }
  std::string_view rest = url.substr(scheme_end);
  size_t slash = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, slash);
  host = authority.substr(0, authority.find(':'));
  authority_out = authority;
  path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  return true;
}

// Appends the query string to a Redirect or farm target that may already have one.
void append_query(std::string& target, std::string_view query) {
  if (query.empty()) return;
  target += target.find('?') == std::string::npos ? '?' : '&';
  target.append(query);
}

// A Rewrite to a relative URL: it becomes the URL (and maybe query) the next rules see. With
// appendQueryString the current query follows any query the new URL brings; without it the
// query is only what the new URL brings.
void rewrite_locally(std::string_view local, bool append_query_string, Impl& s) {
  size_t q = local.find('?');
  if (q != std::string_view::npos) {
    std::string_view new_query = local.substr(q + 1);
    if (append_query_string && !s.query.empty()) {
      s.query.insert(0, 1, '&');
      s.query.insert(0, new_query);
    } else {
      s.query.assign(new_query);
    }
    local = local.substr(0, q);
  } else if (!append_query_string) {
    s.query.clear();
  }
  if (!local.empty() && local.front() == '/') local.remove_prefix(1);
  s.url.assign(local);
  // The rules after it see this URL decoded too, as they saw the request's (expand_url escaped
  // the back-references to the path in it).
  url_decode_from(s.url, 0);
  s.url_ascii = is_ascii(s.url);
}

// Runs one rule set; true if a rule decided (the decision is complete), false if the request
// goes on to the next set (with the URL and variables the rules left).
bool run_rules(const config::Config& config_, const Router::RuleSet& rules, const Eval& e,
               RouteDecision& decision) {
  Impl& s = e.s;
  for (const auto& rule : rules) {
    bool matched = match_pattern(rule->match, s.url, s.url_ascii, s);
    if (e.trace != nullptr) {
      e.trace->rule(*rule->config, s.url, matched,
                    matched ? traced_groups(s.url, s) : std::vector<std::string_view>{});
    }
    if (!matched) continue;
    // {R:n} stay ranges of s.url, which changes only after the rule's action is expanded.
    s.rule_ranges.assign(s.ranges.begin(), s.ranges.end());
    if (!conditions_hold(*rule, e)) continue;
    const config::RuleConfig& rc = *rule->config;
    apply_server_variables(*rule, e);
    switch (rc.action) {
      case ActionType::None:
        break;
      case ActionType::Rewrite: {
        expand_url(rule->action_url, e, s.output);
        if (e.trace != nullptr) e.trace->action_url(s.output);
        bool https = false;
        std::string_view host, authority, path;
        if (!split_absolute(s.output, https, host, authority, path)) {
          rewrite_locally(s.output, rc.append_query_string, s);
          break;
        }
        decision.rule = rc.name;
        const config::FarmConfig* farm = config_.find_farm(host);
        if (farm == nullptr && !config_.global_proxy_enabled) {  // ARR: needs <proxy enabled>
          finish_headers(e, decision);
          return true;
        }
        s.target.clear();
        if (path.empty() || path.front() != '/') s.target += '/';
        s.target.append(path);
        if (rc.append_query_string) append_query(s.target, s.query);
        // A request-target is ASCII: bytes a function decoded ({ToLower:{R:1}} of "ü") are
        // escaped, which means the same to the server. Controls are left for the writer to refuse.
        percent_encode_from<high_byte>(s.target, 0);
        if (farm == nullptr) {
          decision.kind = RouteDecision::Kind::Proxy;
          s.authority.assign(authority);  // views s.output, which later expansions reuse
          decision.authority = s.authority;
        } else {
          decision.kind = RouteDecision::Kind::Farm;
          decision.farm = static_cast<int>(farm - config_.farms.data());
        }
        decision.https = https;
        decision.target = s.target;
        finish_headers(e, decision);
        return true;
      }
      case ActionType::Redirect:
        expand_url(rule->action_url, e, s.target);
        if (rc.append_query_string) append_query(s.target, s.query);
        if (e.trace != nullptr) e.trace->action_url(s.target);
        decision.kind = RouteDecision::Kind::Redirect;
        decision.status = rc.status_code != 0 ? static_cast<int>(rc.status_code) : 302;
        decision.target = s.target;
        decision.rule = rc.name;
        finish_headers(e, decision);
        return true;
      case ActionType::CustomResponse:
        expand(rule->status_reason, e, s.reason);
        expand(rule->status_description, e, s.body);
        decision.kind = RouteDecision::Kind::CustomResponse;
        decision.status = static_cast<int>(rc.status_code);
        decision.reason = s.reason;
        decision.body = s.body;
        decision.rule = rc.name;
        finish_headers(e, decision);
        return true;
      case ActionType::AbortRequest:
        decision.kind = RouteDecision::Kind::Abort;
        decision.rule = rc.name;
        finish_headers(e, decision);
        return true;
    }
    if (rc.stop_processing) break;
  }
  return false;
}

}  // namespace

}  // namespace router_internal

using router_internal::Eval;
using router_internal::finish_headers;
using router_internal::Impl;
using router_internal::run_rules;

RouteDecision Router::route(const RequestFacts& f, RouteScratch& scratch, RouteTrace* trace) const {
  Impl& s = *scratch.impl_;
  s.reserve_match(max_capture_pairs_);
  if (s.slots.size() < variables_.size()) s.slots.resize(variables_.size());
  ++s.generation;
  s.set_order.clear();
  const Eval e{maps_, variables_, f, s, nullptr, nullptr, trace};

  // Rules see the path without its leading slash and without the query string, as IIS does.
  std::string_view target = f.target;
  size_t q = target.find('?');
  s.url.assign(f.path.empty() ? target.substr(0, q) : f.path);
  s.query.assign(q == std::string_view::npos ? std::string_view{} : target.substr(q + 1));
  if (!s.url.empty() && s.url.front() == '/') s.url.erase(0, 1);
  s.url_ascii = is_ascii(s.url);
  s.host_ascii = is_ascii(f.host);

  RouteDecision decision;
  // Global rules first, then the distributed rules every site inherits, then the site's own
  // (IIS runs them in that order, each set seeing the URL the one before rewrote).
  if (trace != nullptr) trace->rule_set("global");
  if (run_rules(config_, rules_, e, decision)) return decision;
  if (trace != nullptr) trace->rule_set("server");
  if (run_rules(config_, distributed_rules_, e, decision)) return decision;
  if (f.site >= 0 && static_cast<size_t>(f.site) < site_rules_.size()) {
    if (trace != nullptr) trace->rule_set("site");
    if (run_rules(config_, site_rules_[static_cast<size_t>(f.site)], e, decision)) return decision;
  }
  finish_headers(e, decision);
  return decision;
}

}  // namespace harrow

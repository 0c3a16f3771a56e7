#include "core/router.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>
#include <charconv>
#include <stdexcept>

namespace harrow {

using config::PatternSyntax;

// A rule or condition pattern in one of URL Rewrite's three syntaxes. Wildcard patterns are
// translated to an anchored regular expression in which each `*` is a capture group, so all
// three report captures the same way.
struct Router::CompiledPattern {
  PatternSyntax syntax = PatternSyntax::ECMAScript;
  bool ignore_case = true;
  bool negate = false;
  std::string exact;  // ExactMatch
  pcre2_code* code = nullptr;

  ~CompiledPattern() { pcre2_code_free(code); }

  void compile(const std::string& pattern, PatternSyntax s, bool icase, bool neg) {
    syntax = s;
    ignore_case = icase;
    negate = neg;
    if (syntax == PatternSyntax::ExactMatch) {
      exact = pattern;
      return;
    }
    std::string regex;
    uint32_t options = PCRE2_UTF | (ignore_case ? PCRE2_CASELESS : 0);
    if (syntax == PatternSyntax::Wildcard) {
      regex = "^";
      for (char c : pattern) {
        if (c == '*') {
          regex += "(.*)";
        } else {
          if (!std::isalnum(static_cast<unsigned char>(c))) regex += '\\';
          regex += c;
        }
      }
      regex += "$";
      options |= PCRE2_DOTALL;
    } else {
      regex = pattern;
    }
    int error = 0;
    PCRE2_SIZE offset = 0;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(regex.data()), regex.size(), options, &error,
                         &offset, nullptr);
    if (code == nullptr) {
      throw std::runtime_error("pattern does not compile: " + pattern);
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // best effort; the interpreter also works
  }
};

struct Router::CompiledRule {
  const config::RuleConfig* config = nullptr;
  CompiledPattern match;
  std::vector<std::unique_ptr<CompiledPattern>> conditions;
};

struct RouteScratch::Impl {
  pcre2_match_data* match = pcre2_match_data_create(32, nullptr);
  std::string url;  // the URL as rewritten so far (no leading slash, no query)
  std::string query;
  std::string rule_captures_text;
  std::vector<std::string_view> rule_captures;
  std::string condition_captures_text;
  std::vector<std::string_view> condition_captures;
  std::string input;
  std::string output;
  std::string target;
  std::vector<std::pair<size_t, size_t>> ranges;  // capture offsets of the last match
  std::string trial_text;  // a condition's captures before we know it matched
  std::vector<std::string_view> trial_captures;
  ~Impl() { pcre2_match_data_free(match); }
};

RouteScratch::RouteScratch() : impl_(std::make_unique<Impl>()) {}
RouteScratch::~RouteScratch() = default;

namespace {

using Impl = RouteScratch::Impl;

bool equals_maybe_icase(std::string_view a, std::string_view b, bool icase) {
  return icase ? iequals(a, b) : a == b;
}

// Matches `input` and, on success, stores the captures (index 0 = whole match) as copies in
// `text` (so they survive later rewrites of the input) with views in `captures`.
bool match_pattern(const Router::CompiledPattern& p, std::string_view input, Impl& s,
                   std::string& text, std::vector<std::string_view>& captures) {
  bool matched;
  std::vector<std::pair<size_t, size_t>>& ranges = s.ranges;  // reused: no allocation once warm
  ranges.clear();
  if (p.syntax == PatternSyntax::ExactMatch) {
    matched = equals_maybe_icase(input, p.exact, p.ignore_case);
    if (matched) ranges.emplace_back(0, input.size());
  } else {
    int rc = pcre2_match(p.code, reinterpret_cast<PCRE2_SPTR>(input.data()), input.size(), 0, 0,
                         s.match, nullptr);
    matched = rc > 0;
    if (matched) {
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.match);
      for (int i = 0; i < rc; ++i) {
        if (ov[2 * i] == PCRE2_UNSET) {
          ranges.emplace_back(0, 0);
        } else {
          ranges.emplace_back(ov[2 * i], ov[2 * i + 1] - ov[2 * i]);
        }
      }
    }
  }
  if (matched == p.negate) return false;
  // A negated pattern that "matches" has no captures.
  text.clear();
  captures.clear();
  for (auto [off, len] : ranges) text.append(input.substr(off, len));
  size_t pos = 0;
  for (auto [off, len] : ranges) {
    captures.emplace_back(text.data() + pos, len);
    pos += len;
  }
  return true;
}

std::string_view server_variable(std::string_view name, const RequestFacts& f, const Impl& s,
                                 std::string& tmp) {
  if (iequals(name, "HTTP_HOST")) return f.host;
  if (iequals(name, "HTTPS")) return f.https ? "on" : "off";
  if (iequals(name, "QUERY_STRING")) return s.query;
  if (iequals(name, "REQUEST_URI") || iequals(name, "UNENCODED_URL")) return f.target;
  if (iequals(name, "REQUEST_METHOD")) return f.method;
  if (iequals(name, "REMOTE_ADDR")) return f.remote_addr;
  if (iequals(name, "URL") || iequals(name, "PATH_INFO")) {
    tmp = "/" + s.url;
    return tmp;
  }
  if (iequals(name, "SERVER_PORT")) {
    tmp = std::to_string(f.server_port);
    return tmp;
  }
  if (name.size() > 5 && iequals(name.substr(0, 5), "HTTP_") && f.head != nullptr) {
    tmp.assign(name.substr(5));
    for (char& c : tmp) {
      if (c == '_') c = '-';
    }
    return f.head->find(tmp);
  }
  return {};
}

// Expands {R:n}, {C:n} and {SERVER_VARIABLE} references in `pattern` into `out`.
void expand(std::string_view pattern, const RequestFacts& f, Impl& s, std::string& out) {
  out.clear();
  std::string tmp;
  size_t i = 0;
  while (i < pattern.size()) {
    size_t open = pattern.find('{', i);
    size_t close = open == std::string_view::npos ? open : pattern.find('}', open);
    if (close == std::string_view::npos) {
      out.append(pattern.substr(i));
      break;
    }
    out.append(pattern.substr(i, open - i));
    std::string_view ref = pattern.substr(open + 1, close - open - 1);
    const std::vector<std::string_view>* captures = nullptr;
    if (ref.size() > 2 && (ref[0] == 'R' || ref[0] == 'r') && ref[1] == ':') {
      captures = &s.rule_captures;
    } else if (ref.size() > 2 && (ref[0] == 'C' || ref[0] == 'c') && ref[1] == ':') {
      captures = &s.condition_captures;
    }
    if (captures != nullptr) {
      size_t n = 0;
      auto [p, ec] = std::from_chars(ref.data() + 2, ref.data() + ref.size(), n);
      if (ec == std::errc() && n < captures->size()) out.append((*captures)[n]);
    } else {
      out.append(server_variable(ref, f, s, tmp));
    }
    i = close + 1;
  }
}

bool conditions_hold(const Router::CompiledRule& rule, const RequestFacts& f, Impl& s) {
  s.condition_captures.clear();
  s.condition_captures_text.clear();
  if (rule.conditions.empty()) return true;
  bool any = rule.config->logical_grouping == config::LogicalGrouping::MatchAny;
  std::string& text = s.trial_text;
  std::vector<std::string_view>& captures = s.trial_captures;
  for (size_t i = 0; i < rule.conditions.size(); ++i) {
    expand(rule.config->conditions[i].input, f, s, s.input);
    bool ok = match_pattern(*rule.conditions[i], s.input, s, text, captures);
    if (ok) {
      // {C:n} refers to the last condition that matched.
      s.condition_captures_text.swap(text);
      s.condition_captures.clear();
      size_t pos = 0;
      for (std::string_view c : captures) {
        s.condition_captures.emplace_back(s.condition_captures_text.data() + pos, c.size());
        pos += c.size();
      }
      if (any) return true;
    } else if (!any) {
      return false;
    }
  }
  return !any;
}

// "http://NAME/rest" → NAME and "/rest"; false if `url` is not absolute.
bool split_absolute(std::string_view url, std::string_view& host, std::string_view& path) {
  size_t scheme_end;
  if (url.size() > 7 && iequals(url.substr(0, 7), "http://")) {
    scheme_end = 7;
  } else if (url.size() > 8 && iequals(url.substr(0, 8), "https://")) {
    scheme_end = 8;
  } else {
    return false;
  }
  std::string_view rest = url.substr(scheme_end);
  size_t slash = rest.find_first_of("/?");
  host = rest.substr(0, slash);
  path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  return true;
}

}  // namespace

Router::Router(const config::Config& config) : config_(config) {
  for (const config::RuleConfig& r : config.global_rules) {
    if (!r.enabled) continue;
    auto rule = std::make_unique<CompiledRule>();
    rule->config = &r;
    rule->match.compile(r.match_url, r.pattern_syntax, r.match_ignore_case, r.match_negate);
    for (const config::ConditionConfig& c : r.conditions) {
      auto p = std::make_unique<CompiledPattern>();
      p->compile(c.pattern, r.pattern_syntax, c.ignore_case, c.negate);
      rule->conditions.push_back(std::move(p));
    }
    rules_.push_back(std::move(rule));
  }
}

Router::~Router() = default;

RouteDecision Router::route(const RequestFacts& f, RouteScratch& scratch) const {
  Impl& s = *scratch.impl_;
  // Rules see the path without its leading slash and without the query string, as IIS does.
  std::string_view target = f.target;
  size_t q = target.find('?');
  s.url.assign(target.substr(0, q));
  s.query.assign(q == std::string_view::npos ? std::string_view{} : target.substr(q + 1));
  if (!s.url.empty() && s.url.front() == '/') s.url.erase(0, 1);

  RouteDecision decision;
  for (const auto& rule : rules_) {
    if (!match_pattern(rule->match, s.url, s, s.rule_captures_text, s.rule_captures)) continue;
    if (!conditions_hold(*rule, f, s)) continue;
    const config::RuleConfig& rc = *rule->config;
    if (rc.action == config::ActionType::Rewrite) {
      expand(rc.action_url, f, s, s.output);
      std::string_view host, path;
      if (split_absolute(s.output, host, path)) {
        const config::FarmConfig* farm = config_.find_farm(host);
        if (farm == nullptr) return decision;  // proxying to arbitrary hosts is not enabled
        s.target.clear();
        if (path.empty() || path.front() != '/') s.target += '/';
        s.target.append(path);
        if (rc.append_query_string && !s.query.empty()) {
          s.target += (path.find('?') == std::string_view::npos) ? '?' : '&';
          s.target += s.query;
        }
        decision.kind = RouteDecision::Kind::Farm;
        decision.farm = static_cast<int>(farm - config_.farms.data());
        decision.target = s.target;
        decision.rule = rc.name;
        return decision;
      }
      // A local rewrite changes the URL the following rules see.
      std::string_view local = s.output;
      size_t lq = local.find('?');
      if (lq != std::string_view::npos) {
        s.query.assign(local.substr(lq + 1));
        local = local.substr(0, lq);
      }
      if (!local.empty() && local.front() == '/') local.remove_prefix(1);
      s.url.assign(local);
    }
    if (rc.stop_processing) break;
  }
  return decision;
}

}  // namespace harrow

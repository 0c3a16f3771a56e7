// The rule engine agrees with a slow reference evaluator written here from URL Rewrite's rules
// (std::regex for ECMAScript, a backtracking matcher for Wildcard), on random rule sets and
// random requests.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cctype>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/rewrite/router.h"

namespace harrow {
namespace {

using config::ActionType;
using config::ConditionConfig;
using config::Config;
using config::LogicalGrouping;
using config::PatternSyntax;
using config::RuleConfig;
using Kind = RouteDecision::Kind;

// ---------------------------------------------------------------- generators

std::string pick_string(std::string_view alphabet, int max_len) {
  int len = *rc::gen::inRange(0, max_len + 1);
  std::string s;
  for (int i = 0; i < len; ++i) {
    s += *rc::gen::elementOf(std::vector<char>(alphabet.begin(), alphabet.end()));
  }
  return s;
}

// Concatenates 1..max pieces; for ECMAScript maybe anchored at either end.
std::string pick_regex(const std::vector<std::string>& atoms, int max) {
  std::string pattern = *rc::gen::arbitrary<bool>() ? "^" : "";
  int n = *rc::gen::inRange(1, max + 1);
  for (int i = 0; i < n; ++i) pattern += *rc::gen::elementOf(atoms);
  if (*rc::gen::arbitrary<bool>()) pattern += "$";
  return pattern;
}

// A pattern in `syntax` over the characters the requests use: URL paths ("ab/") or condition
// inputs (hosts and queries, "ab.=").
std::string pick_pattern(PatternSyntax syntax, bool for_url) {
  // Atoms that PCRE2 and std::regex treat alike (no quantified groups, whose captures differ).
  static const std::vector<std::string> kUrlAtoms = {
      "a", "b", "/", ".", "[ab]", "a?", "(a|b)", "(.*)", "(.*)", "([ab]*)", "(b+)", "(/)"};
  static const std::vector<std::string> kInputAtoms = {
      "a", "b", "\\.", "=", "[ab]", "(.*)", "(.*)", "([ab]+)", "(a|b)", "(\\.)", "b*"};
  switch (syntax) {
    case PatternSyntax::Wildcard:
      return pick_string(for_url ? "ab/**" : "ab.=**", 4);
    case PatternSyntax::ExactMatch:
      return pick_string(for_url ? "ab/" : "ab.=", 3);
    case PatternSyntax::ECMAScript:
      return pick_regex(for_url ? kUrlAtoms : kInputAtoms, 4);
  }
  return {};
}

std::string pick_action_url(bool farm) {
  static const std::vector<std::string> kPieces = {
      "{R:0}", "{R:1}", "{R:2}", "{C:0}", "{C:1}", "{C:2}", "{C:3}", "a", "/", "?q=a", "?q=a"};
  std::string url;
  if (farm) {
    url = std::string(*rc::gen::elementOf(std::vector<std::string>{"http://", "https://"})) +
          *rc::gen::elementOf(std::vector<std::string>{"shop", "API", "nowhere"}) +
          *rc::gen::elementOf(std::vector<std::string>{"/", "", ":81/"});
  } else if (*rc::gen::arbitrary<bool>()) {
    url = "/";
  }
  int n = *rc::gen::inRange(0, 4);
  for (int i = 0; i < n; ++i) url += *rc::gen::elementOf(kPieces);
  return url;
}

RuleConfig pick_rule(int index) {
  RuleConfig r;
  r.name = "r" + std::to_string(index);
  r.pattern_syntax = *rc::gen::element(PatternSyntax::ECMAScript, PatternSyntax::Wildcard,
                                       PatternSyntax::ExactMatch);
  r.match_url = pick_pattern(r.pattern_syntax, true);
  r.match_ignore_case = *rc::gen::arbitrary<bool>();
  r.match_negate = *rc::gen::weightedElement<bool>({{5, false}, {1, true}});
  r.stop_processing = *rc::gen::arbitrary<bool>();
  r.logical_grouping = *rc::gen::element(LogicalGrouping::MatchAll, LogicalGrouping::MatchAny);
  r.track_all_captures = *rc::gen::arbitrary<bool>();
  int conditions = *rc::gen::weightedElement<int>({{2, 0}, {1, 1}, {2, 2}, {1, 3}});
  for (int i = 0; i < conditions; ++i) {
    ConditionConfig c;
    c.input = *rc::gen::element(std::string("{HTTP_HOST}"), std::string("{QUERY_STRING}"));
    // Often a pattern that captures whatever the input is, so several conditions match.
    bool catch_all = r.pattern_syntax != PatternSyntax::ExactMatch && *rc::gen::arbitrary<bool>();
    c.pattern = catch_all ? (r.pattern_syntax == PatternSyntax::Wildcard ? "*" : "^(.*)$")
                          : pick_pattern(r.pattern_syntax, false);
    c.ignore_case = *rc::gen::arbitrary<bool>();
    c.negate = *rc::gen::weightedElement<bool>({{4, false}, {1, true}});
    r.conditions.push_back(c);
  }
  r.action = *rc::gen::weightedElement<ActionType>({{4, ActionType::Rewrite},
                                                    {1, ActionType::Redirect},
                                                    {1, ActionType::None},
                                                    {1, ActionType::AbortRequest}});
  bool farm = r.action == ActionType::Rewrite && *rc::gen::arbitrary<bool>();
  if (r.action == ActionType::Rewrite || r.action == ActionType::Redirect) {
    r.action_url = pick_action_url(farm);
  }
  if (r.action == ActionType::Redirect) r.status_code = *rc::gen::element(0u, 301u, 307u);
  r.append_query_string = *rc::gen::arbitrary<bool>();
  return r;
}

// ---------------------------------------------------------------- the reference evaluator

using Groups = std::vector<std::string>;

char lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

bool same_text(std::string_view a, std::string_view b, bool icase) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (icase ? lower(a[i]) != lower(b[i]) : a[i] != b[i]) return false;
  }
  return true;
}

// Wildcard: the whole input; each '*' is a greedy capture (longest first, then backtracking).
bool wildcard(std::string_view p, std::string_view s, bool icase, Groups& groups) {
  if (p.empty()) return s.empty();
  if (p[0] == '*') {
    for (size_t len = s.size() + 1; len-- > 0;) {
      groups.emplace_back(s.substr(0, len));
      if (wildcard(p.substr(1), s.substr(len), icase, groups)) return true;
      groups.pop_back();
    }
    return false;
  }
  return !s.empty() && same_text(p.substr(0, 1), s.substr(0, 1), icase) &&
         wildcard(p.substr(1), s.substr(1), icase, groups);
}

// Whether the (possibly negated) pattern holds for `input`; `groups` gets the captures when it
// holds because the pattern matched.
bool holds(PatternSyntax syntax, const std::string& pattern, bool icase, bool negate,
           const std::string& input, Groups& groups) {
  groups.clear();
  bool matched = false;
  switch (syntax) {
    case PatternSyntax::ExactMatch:
      matched = same_text(pattern, input, icase);
      if (matched) groups.push_back(input);
      break;
    case PatternSyntax::Wildcard:
      groups.push_back(input);
      matched = wildcard(pattern, input, icase, groups);
      break;
    case PatternSyntax::ECMAScript: {
      auto flags = std::regex::ECMAScript | (icase ? std::regex::icase : std::regex::ECMAScript);
      std::regex re(pattern, flags);
      std::smatch m;
      matched = std::regex_search(input, m, re);
      if (matched) {
        for (size_t i = 0; i < m.size(); ++i) groups.push_back(m[i].matched ? m[i].str() : "");
      }
      break;
    }
  }
  if (!matched || negate) groups.clear();
  return matched != negate;
}

// {R:n} and {C:n}, {HTTP_HOST} and {QUERY_STRING}: all the generated templates use.
std::string substitute(const std::string& t, const Groups& r, const Groups& c,
                       const std::string& host, const std::string& query) {
  std::string out;
  for (size_t i = 0; i < t.size();) {
    size_t close = t[i] == '{' ? t.find('}', i) : std::string::npos;
    if (close == std::string::npos) {
      out += t[i++];
      continue;
    }
    std::string ref = t.substr(i + 1, close - i - 1);
    if (ref == "HTTP_HOST") {
      out += host;
    } else if (ref == "QUERY_STRING") {
      out += query;
    } else {
      const Groups& g = ref[0] == 'R' ? r : c;
      size_t n = std::stoul(ref.substr(2));
      if (n < g.size()) out += g[n];
    }
    i = close + 1;
  }
  return out;
}

struct Expected {
  Kind kind = Kind::NoRoute;
  int farm = -1;
  bool https = false;
  std::string target;
  int status = 0;
  std::string rule;
};

void with_query(std::string& target, const std::string& query) {
  if (!query.empty()) target += (target.find('?') == std::string::npos ? "?" : "&") + query;
}

Expected reference(const Config& config, const std::string& request_target,
                   const std::string& host) {
  size_t q = request_target.find('?');
  std::string url = request_target.substr(0, q);
  std::string query = q == std::string::npos ? "" : request_target.substr(q + 1);
  if (!url.empty() && url[0] == '/') url.erase(0, 1);
  Expected e;
  for (const RuleConfig& rule : config.global_rules) {
    Groups r, c, g;
    if (!holds(rule.pattern_syntax, rule.match_url, rule.match_ignore_case, rule.match_negate, url,
               r)) {
      continue;
    }
    bool any = rule.logical_grouping == LogicalGrouping::MatchAny;
    bool ok = !any || rule.conditions.empty();
    for (const ConditionConfig& cond : rule.conditions) {
      std::string input = substitute(cond.input, r, c, host, query);
      if (holds(rule.pattern_syntax, cond.pattern, cond.ignore_case, cond.negate, input, g)) {
        if (!rule.track_all_captures) {
          c = g;
        } else {
          c.insert(c.end(), g.begin() + (c.empty() || g.empty() ? 0 : 1), g.end());
        }
        if (any) {
          ok = true;
          break;
        }
      } else if (!any) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    std::string out = substitute(rule.action_url, r, c, host, query);
    if (rule.action == ActionType::AbortRequest) {
      e.kind = Kind::Abort;
      e.rule = rule.name;
      return e;
    }
    if (rule.action == ActionType::Redirect) {
      e.kind = Kind::Redirect;
      e.status = rule.status_code == 0 ? 302 : static_cast<int>(rule.status_code);
      e.target = out;
      if (rule.append_query_string) with_query(e.target, query);
      e.rule = rule.name;
      return e;
    }
    if (rule.action == ActionType::Rewrite) {
      std::string lower_out;
      for (char ch : out) lower_out += lower(ch);
      bool https = lower_out.starts_with("https://");
      if (https || lower_out.starts_with("http://")) {
        std::string rest = out.substr(https ? 8 : 7);
        size_t slash = rest.find_first_of("/?");
        std::string farm_name = rest.substr(0, std::min(slash, rest.find(':')));
        std::string path = slash == std::string::npos ? "" : rest.substr(slash);
        e.rule = rule.name;
        const config::FarmConfig* farm = config.find_farm(farm_name);
        if (farm == nullptr) return e;
        e.kind = Kind::Farm;
        e.farm = static_cast<int>(farm - config.farms.data());
        e.https = https;
        e.target = (path.empty() || path[0] != '/') ? "/" + path : path;
        if (rule.append_query_string) with_query(e.target, query);
        return e;
      }
      size_t lq = out.find('?');
      if (lq != std::string::npos) {
        std::string added = out.substr(lq + 1);
        query = rule.append_query_string && !query.empty() ? added + "&" + query : added;
        out.resize(lq);
      } else if (!rule.append_query_string) {
        query.clear();
      }
      if (!out.empty() && out[0] == '/') out.erase(0, 1);
      url = out;
    }
    if (rule.stop_processing) break;
  }
  return e;
}

// ---------------------------------------------------------------- the property

// One random rule set routing several random requests through one scratch (so nothing may leak
// from one route() into the next).
void check_one_rule_set() {
  Config config;
  config.farms.resize(2);
  config.farms[0].name = "shop";
  config.farms[1].name = "api";
  int rules = *rc::gen::inRange(1, 7);
  for (int i = 0; i < rules; ++i) config.global_rules.push_back(pick_rule(i));
  if (*rc::gen::arbitrary<bool>()) {
    // A catch-all last rule makes the effect of earlier local rewrites visible in the target.
    RuleConfig last{.name = "last", .pattern_syntax = PatternSyntax::Wildcard, .match_url = "*"};
    last.action = ActionType::Rewrite;
    last.action_url = "http://shop/{R:0}";
    config.global_rules.push_back(last);
  }
  Router router(config);
  RouteScratch scratch;
  for (int k = 0; k < 8; ++k) {
    std::string target = "/" + pick_string("aab/B", 5);
    if (*rc::gen::weightedElement<bool>({{1, false}, {2, true}})) {
      target += "?" + pick_string("ab=", 4);
    }
    std::string host = pick_string("abA.", 5);
    RequestFacts facts{.method = "GET", .target = target, .host = host};
    RouteDecision d = router.route(facts, scratch);
    Expected e = reference(config, target, host);
    RC_LOG() << "request " << target << " host " << host << "\n";
    RC_ASSERT(d.kind == e.kind);
    RC_ASSERT(d.farm == e.farm);
    RC_ASSERT(std::string(d.rule) == e.rule);
    if (e.kind == Kind::Farm) {
      RC_ASSERT(d.https == e.https);
      RC_ASSERT(std::string(d.target) == e.target);
    }
    if (e.kind == Kind::Redirect) {
      RC_ASSERT(d.status == e.status);
      RC_ASSERT(std::string(d.target) == e.target);
    }
  }
}

RC_GTEST_PROP(RouterProperty, AgreesWithAReferenceEvaluator, ()) {
  // Several rule sets per case: the interesting combinations (two capturing conditions with
  // trackAllCaptures, a local rewrite that brings a query, …) are rare in any one set.
  for (int set = 0; set < 4; ++set) check_one_rule_set();
}

}  // namespace
}  // namespace harrow

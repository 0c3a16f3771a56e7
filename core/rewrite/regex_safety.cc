#include "core/rewrite/regex_safety.h"

#include <algorithm>

#include "core/base/ascii.h"

namespace harrow {

bool has_nested_quantifier(std::string_view p) {
  // Per open group: whether an unbounded repeat occurs inside it (at any depth).
  std::vector<bool> groups;
  bool last_group_unbounded = false;  // the group that just closed held an unbounded repeat
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    bool closed_group = false;
    auto mark_unbounded = [&] {
      if (!groups.empty()) groups.back() = true;
    };
    // The repeat that follows a ')' (or any atom): returns whether it is unbounded and
    // whether it may repeat more than once.
    auto quantifier = [&](size_t at, bool& unbounded, bool& repeats, size_t& end) {
      unbounded = repeats = false;
      end = at;
      if (at >= p.size()) return false;
      if (p[at] == '*' || p[at] == '+') {
        unbounded = repeats = true;
        end = at + 1;
        return true;
      }
      if (p[at] == '?') {
        end = at + 1;
        return true;
      }
      if (p[at] != '{') return false;
      size_t close = p.find('}', at);
      if (close == std::string_view::npos) return false;
      std::string_view body = p.substr(at + 1, close - at - 1);
      if (body.empty() || !std::all_of(body.begin(), body.end(),
                                       [](char ch) { return is_ascii_digit(ch) || ch == ','; })) {
        return false;  // a literal '{'
      }
      size_t comma = body.find(',');
      if (comma == std::string_view::npos) {
        repeats = body.size() > 1 || body[0] > '1';
      } else if (comma + 1 == body.size()) {
        unbounded = repeats = true;
      } else {
        std::string_view max = body.substr(comma + 1);
        repeats = max.size() > 1 || max[0] > '1';
      }
      end = close + 1;
      return true;
    };
    if (c == '\\') {
      ++i;  // an escaped character is one atom
    } else if (c == '[') {
      // A character class is one atom: skip to its ']' (a ']' first in it is literal).
      size_t j = i + 1;
      if (j < p.size() && p[j] == '^') ++j;
      if (j < p.size() && p[j] == ']') ++j;
      while (j < p.size() && p[j] != ']') j += p[j] == '\\' ? 2 : 1;
      i = std::min(j, p.size());
    } else if (c == '(') {
      groups.push_back(false);
      if (i + 1 < p.size() && p[i + 1] == '?') ++i;  // (?: (?= (?<name> …: not a repeat
    } else if (c == ')') {
      if (!groups.empty()) {
        last_group_unbounded = groups.back();
        groups.pop_back();
        if (last_group_unbounded) mark_unbounded();  // the enclosing group holds it too
        closed_group = true;
      }
    }
    bool unbounded = false, repeats = false;
    size_t end = i + 1;
    if (quantifier(i + 1, unbounded, repeats, end)) {
      if (closed_group && last_group_unbounded && repeats) return true;
      if (unbounded) mark_unbounded();
      i = end - 1;
      // A lazy '?' or possessive '+' right after the repeat belongs to it.
      if (i + 1 < p.size() && (p[i + 1] == '?' || p[i + 1] == '+')) ++i;
    }
  }
  return false;
}

namespace {

std::string warning(const config::SourceLocation& at, const std::string& what,
                    const std::string& pattern) {
  return at.file + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) +
         ": warning: " + what + " pattern \"" + pattern +
         "\" repeats a group that itself repeats without bound (catastrophic backtracking on "
         "long inputs); matches that reach the regex limits fail the request with 500 "
         "rule_match_error";
}

void check_rules(const std::vector<config::RuleConfig>& rules, std::vector<std::string>& out) {
  for (const config::RuleConfig& rule : rules) {
    if (rule.pattern_syntax != config::PatternSyntax::ECMAScript) continue;
    if (has_nested_quantifier(rule.match_url)) {
      out.push_back(warning(rule.where, "rule '" + rule.name + "'", rule.match_url));
    }
    for (const config::ConditionConfig& c : rule.conditions) {
      if (has_nested_quantifier(c.pattern)) {
        out.push_back(warning(c.where, "rule '" + rule.name + "' condition", c.pattern));
      }
    }
  }
}

void check_outbound(const config::OutboundConfig& outbound, std::vector<std::string>& out) {
  for (const config::OutboundRuleConfig& rule : outbound.rules) {
    if (rule.pattern_syntax != config::PatternSyntax::ECMAScript) continue;
    if (has_nested_quantifier(rule.pattern)) {
      out.push_back(warning(rule.where, "outbound rule '" + rule.name + "'", rule.pattern));
    }
    for (const config::ConditionConfig& c : rule.conditions) {
      if (has_nested_quantifier(c.pattern)) {
        out.push_back(warning(c.where, "outbound rule '" + rule.name + "' condition", c.pattern));
      }
    }
  }
  for (const config::PreConditionConfig& pre : outbound.pre_conditions) {
    if (pre.pattern_syntax != config::PatternSyntax::ECMAScript) continue;
    for (const config::ConditionConfig& c : pre.conditions) {
      if (has_nested_quantifier(c.pattern)) {
        out.push_back(warning(c.where, "preCondition '" + pre.name + "'", c.pattern));
      }
    }
  }
}

}  // namespace

std::vector<std::string> nested_quantifier_warnings(const config::Config& config) {
  std::vector<std::string> out;
  check_rules(config.global_rules, out);
  check_rules(config.distributed_rules, out);
  check_outbound(config.outbound, out);
  for (const config::SiteConfig& site : config.sites) {
    check_rules(site.rules, out);
    check_outbound(site.outbound, out);
  }
  return out;
}

}  // namespace harrow

// Outbound rules: Router::outbound over a response head (header and request-variable rules
// act, body rules whose preCondition holds are returned), then rewrite_body_url and
// rewrite_body_text over the body the HTML rewriter or the whole-body pass hands them.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/ascii.h"
#include "core/rewrite/html_rewriter.h"
#include "core/rewrite/router.h"
#include "core/rewrite/rule_evaluator.h"
#include "core/rewrite/text_functions.h"

namespace harrow {

namespace router_internal {

namespace {

// An outbound rule's match and conditions over `value` (the header, variable or URL it
// rewrites); on success the captures are the rule's {R:n} and its conditions' {C:n}.
bool outbound_rule_applies(const Router::CompiledOutboundRule& rule, std::string_view value,
                           const Eval& e) {
  Impl& s = e.s;
  s.url.assign(value);
  s.url_ascii = is_ascii(s.url);
  if (!match_pattern(rule.match, s.url, s.url_ascii, s)) return false;
  s.rule_ranges.assign(s.ranges.begin(), s.ranges.end());
  return conditions_hold(rule.conditions, rule.condition_inputs, rule.config->logical_grouping,
                         rule.config->track_all_captures, e);
}

// The HtmlTag bit of a (lower-case) tag name; 0 for tags outside filterByTags.
uint16_t html_tag_bit(std::string_view tag) {
  // The filterByTags names are the HTML tag names; "customtags" is not a tag a page can hold.
  uint16_t bit = 0;
  std::string error;
  if (iequals(tag, "customtags") || !parse_filter_by_tags(tag, bit, error)) return 0;
  return bit;
}

bool pre_condition_holds(const Router::CompiledPreCondition& pre, const Eval& e) {
  return conditions_hold(pre.conditions, pre.inputs, pre.config->logical_grouping, false, e);
}

// Prepares the scratch for an outbound evaluation: what the scratch held from other requests
// is forgotten; the request's query and the variables its inbound rules set are restored.
void start_outbound(Impl& s, size_t pairs, size_t variables, const RequestFacts& f) {
  s.reserve_match(pairs);
  if (s.slots.size() < variables) s.slots.resize(variables);
  ++s.generation;
  s.set_order.clear();
  s.response_sets.clear();
  s.response_set_rules.clear();
  size_t q = f.target.find('?');
  s.query.assign(q == std::string_view::npos ? std::string_view{} : f.target.substr(q + 1));
  for (const SetVariable& v : f.variables) {
    if (v.first < 0 || static_cast<size_t>(v.first) >= variables) continue;
    s.slots[v.first].value.assign(v.second);
    s.slots[v.first].generation = s.generation;
  }
}

}  // namespace

}  // namespace router_internal

using router_internal::append_builtin;
using router_internal::conditions_hold;
using router_internal::Eval;
using router_internal::expand;
using router_internal::html_tag_bit;
using router_internal::Impl;
using router_internal::outbound_rule_applies;
using router_internal::pre_condition_holds;
using router_internal::response_header;
using router_internal::slot_is_set;
using router_internal::start_outbound;

int Router::variable_slot(std::string_view name) const {
  for (size_t i = 0; i < variables_.size(); ++i) {
    if (iequals(variables_[i]->name, name)) return static_cast<int>(i);
  }
  return -1;
}

bool Router::has_outbound(int site) const {
  size_t i = static_cast<size_t>(site + 1);
  return i < outbound_by_site_.size() && !outbound_by_site_[i].empty();
}

OutboundDecision Router::outbound(const RequestFacts& f, const MessageHead& response,
                                  std::span<const HeaderField> already,
                                  RouteScratch& scratch) const {
  OutboundDecision decision;
  if (!has_outbound(f.site)) return decision;
  Impl& s = *scratch.impl_;
  start_outbound(s, max_capture_pairs_, variables_.size(), f);
  for (const HeaderField& h : already) {
    s.response_sets.emplace_back(to_ascii_lower(h.name), std::string(h.value));
    s.response_set_rules.emplace_back();
  }
  size_t first_set = s.response_sets.size();
  const Eval e{maps_, variables_, f, s, &response, &s.response_sets, nullptr, true};
  const std::vector<const CompiledOutboundRule*>& rules =
      outbound_by_site_[static_cast<size_t>(f.site + 1)];
  for (size_t i = 0; i < rules.size(); ++i) {
    const CompiledOutboundRule& rule = *rules[i];
    const config::OutboundRuleConfig& rc = *rule.config;
    if (rule.pre_condition != nullptr && !pre_condition_holds(*rule.pre_condition, e)) continue;
    if (rule.slot >= 0) {
      // A request variable: IIS rewrites it for what runs after (its compression module reads
      // HTTP_ACCEPT_ENCODING); here the outbound rules after this one read the new value.
      const Router::Variable& v = *variables_[static_cast<size_t>(rule.slot)];
      s.value.clear();
      if (slot_is_set(s, rule.slot)) {
        s.value.assign(s.slots[rule.slot].value);
      } else {
        append_builtin(v.builtin, v.builtin_header, e, s.value);
      }
      if (!rc.replace && !s.value.empty()) continue;
      if (!outbound_rule_applies(rule, s.value, e)) continue;
      if (rc.rewrite) {
        expand(rule.value, e, s.output);
        s.slots[rule.slot].value.assign(s.output);
        s.slots[rule.slot].generation = s.generation;
      }
      if (rc.stop_processing) break;
      continue;
    }
    if (rule.body_code != nullptr) {
      if (i < 64) decision.text_rules |= uint64_t{1} << i;
      continue;
    }
    if (rule.header.empty()) {
      if (i >= 64) continue;  // a mask of 64 body rules per site is plenty
      decision.body_rules |= uint64_t{1} << i;
      decision.tags |= rule.tags;
      decision.custom_tags.insert(decision.custom_tags.end(), rule.custom_tags.begin(),
                                  rule.custom_tags.end());
      continue;
    }
    std::string_view current = response_header(e, rule.header);
    if (!rc.replace && !current.empty()) continue;
    if (!outbound_rule_applies(rule, current, e)) continue;
    if (rc.rewrite) {
      expand(rule.value, e, s.output);
      s.response_sets.emplace_back(rule.header, s.output);
      s.response_set_rules.push_back(rc.name);
    }
    if (rc.stop_processing) break;
  }
  decision.set_headers =
      std::span<const std::pair<std::string, std::string>>(s.response_sets).subspan(first_set);
  decision.set_rules = std::span<const std::string_view>(s.response_set_rules).subspan(first_set);
  return decision;
}

bool Router::rewrite_body_url(const RequestFacts& f, uint64_t body_rules, std::string_view tag,
                              std::string_view attribute, std::string_view value,
                              RouteScratch& scratch, std::string& out) const {
  if (body_rules == 0 || !has_outbound(f.site)) return false;
  Impl& s = *scratch.impl_;
  start_outbound(s, max_capture_pairs_, variables_.size(), f);
  const Eval e{maps_, variables_, f, s, nullptr, nullptr, nullptr, true};
  const std::vector<const CompiledOutboundRule*>& rules =
      outbound_by_site_[static_cast<size_t>(f.site + 1)];
  uint16_t bit = html_tag_bit(tag);
  s.body_value.assign(value);
  bool changed = false;
  for (size_t i = 0; i < rules.size() && i < 64; ++i) {
    if ((body_rules & (uint64_t{1} << i)) == 0) continue;
    const CompiledOutboundRule& rule = *rules[i];
    const config::OutboundRuleConfig& rc = *rule.config;
    bool custom = std::any_of(rule.custom_tags.begin(), rule.custom_tags.end(), [&](const auto& t) {
      return iequals(t.first, tag) && iequals(t.second, attribute);
    });
    if (!custom && (rule.tags & bit) == 0) continue;
    if (!outbound_rule_applies(rule, s.body_value, e)) continue;
    if (rc.rewrite) {
      expand(rule.value, e, s.output);
      s.body_value.assign(s.output);
      changed = true;
    }
    if (rc.stop_processing) break;
  }
  if (changed) out.append(s.body_value);
  return changed;
}

bool Router::rewrite_body_text(const RequestFacts& f, uint64_t text_rules, BodyTextState& state,
                               std::string_view piece, bool last, RouteScratch& scratch,
                               std::string& out) const {
  if (text_rules == 0 || !has_outbound(f.site)) {
    out.append(piece);
    return true;
  }
  Impl& s = *scratch.impl_;
  start_outbound(s, max_capture_pairs_, variables_.size(), f);
  const Eval e{maps_, variables_, f, s, nullptr, nullptr, nullptr, true};
  const std::vector<const CompiledOutboundRule*>& rules =
      outbound_by_site_[static_cast<size_t>(f.site + 1)];
  if (state.rules.size() < rules.size()) state.rules.resize(rules.size());
  // Each rule reads `in` and writes `result`; the last one writes into `out`.
  std::string& input = state.input;
  input.assign(piece);
  std::string& result = state.result;
  result.clear();
  size_t remaining = 0;
  for (size_t i = 0; i < rules.size() && i < 64; ++i) {
    if ((text_rules & (uint64_t{1} << i)) != 0) ++remaining;
  }
  for (size_t i = 0; i < rules.size() && i < 64; ++i) {
    if ((text_rules & (uint64_t{1} << i)) == 0) continue;
    const CompiledOutboundRule& rule = *rules[i];
    const config::OutboundRuleConfig& rc = *rule.config;
    BodyTextState::Rule& r = state.rules[i];
    std::string& emit = --remaining == 0 ? out : result;
    // The subject: context (already passed on), text held back, then the new input.
    std::string& buf = state.stage;
    buf.assign(r.context);
    size_t start = buf.size();
    buf.append(r.held);
    buf.append(input);
    r.held.clear();
    size_t pos = start;
    auto subject = reinterpret_cast<PCRE2_SPTR>(buf.data());
    while (pos < buf.size() || (last && pos == buf.size())) {
      if (rc.occurrences != 0 && r.replaced >= rc.occurrences) {
        emit.append(buf, pos);
        pos = buf.size();
        break;
      }
      int m = pcre2_match(rule.body_code.get(), subject, buf.size(), pos,
                          last ? 0u : PCRE2_PARTIAL_HARD, s.match, s.match_context);
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.match);
      if (m == PCRE2_ERROR_NOMATCH) {
        emit.append(buf, pos);
        pos = buf.size();
        break;
      }
      if (m == PCRE2_ERROR_PARTIAL) {
        size_t from = ov[0];
        if (buf.size() - from > kBodyMatchHold) {
          // Too long to hold back: no match starts there.
          emit.append(buf, pos, from + 1 - pos);
          pos = from + 1;
          continue;
        }
        emit.append(buf, pos, from - pos);
        r.held.assign(buf, from);
        pos = buf.size();
        break;
      }
      if (m < 0) {
        s.match_error = m;
        s.error_pattern = &rule.match;
        return false;
      }
      size_t begin = ov[0], end = ov[1];
      // {R:n} read s.url: the match, with the groups as ranges in it.
      s.url.assign(buf, begin, end - begin);
      s.url_ascii = is_ascii(s.url);
      s.rule_ranges.clear();
      for (int g = 0; g < (m == 0 ? 1 : m); ++g) {
        if (ov[2 * g] == PCRE2_UNSET || ov[2 * g] < begin || ov[2 * g + 1] > end) {
          s.rule_ranges.emplace_back(0, 0);
        } else {
          s.rule_ranges.emplace_back(ov[2 * g] - begin, ov[2 * g + 1] - ov[2 * g]);
        }
      }
      bool hold = !rc.negate && conditions_hold(rule.conditions, rule.condition_inputs,
                                                rc.logical_grouping, rc.track_all_captures, e);
      if (s.match_error != 0) return false;
      emit.append(buf, pos, begin - pos);
      if (hold && rc.rewrite) {
        expand(rule.value, e, s.output);
        emit.append(s.output);
        ++r.replaced;
      } else {
        emit.append(buf, begin, end - begin);
      }
      if (end == begin) {  // an empty match: step over one byte
        if (end >= buf.size()) {
          pos = buf.size();
          break;
        }
        emit += buf[end];
        pos = end + 1;
      } else {
        pos = end;
      }
    }
    // Keep a little of what went out, for lookbehind and \b at the next piece's start.
    size_t passed = buf.size() - r.held.size();
    size_t keep = std::min<size_t>(passed, std::max<uint32_t>(rule.max_lookbehind, 1));
    r.context.assign(buf, passed - keep, keep);
    if (&emit == &result) {
      input.swap(result);
      result.clear();
    }
  }
  return true;
}

}  // namespace harrow

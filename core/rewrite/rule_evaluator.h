// Evaluating compiled rules against one request or response: matching patterns and conditions
// (within the regex limits of router.h) and expanding templates from the request's server
// variables, the captures and the variables rules set. RouteScratch::Impl is the per-worker
// working memory all of it reuses. Internal to core/rewrite.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/rewrite/compiled_rules.h"

namespace harrow {

struct RouteScratch::Impl {
  pcre2_match_data* match = nullptr;
  size_t match_pairs = 0;  // ovector pairs `match` holds
  // A JIT stack bigger than PCRE2's default 32 KiB, so patterns with repeated groups still
  // match long URLs, but bounded: with the match, depth and heap limits below it caps the work
  // one match may do, so a few clients sending inputs that make a pattern backtrack cannot
  // take a worker's time from everyone else's requests.
  pcre2_jit_stack* jit_stack = nullptr;
  pcre2_match_context* match_context = nullptr;
  // A match that stopped at a limit (or failed otherwise) in this route()/outbound(): the
  // request fails (rule_match_error) rather than going on as if the pattern had not matched.
  int match_error = 0;
  const Router::CompiledPattern* error_pattern = nullptr;
  std::string url;         // the URL as rewritten so far (no leading slash, no query)
  bool url_ascii = true;   // `url` has no byte >= 0x80 (so PCRE2 need not check its UTF-8)
  bool host_ascii = true;  // the same for RequestFacts::host
  std::string query;
  std::vector<std::pair<size_t, size_t>> rule_ranges;  // {R:n}: (offset, length) in `url`
  router_internal::Captures condition_captures;        // {C:n}
  std::vector<std::pair<size_t, size_t>> ranges;  // (offset, length) of the last match's groups
  std::string input;                              // a condition's expanded input
  std::string value;                              // a server variable's expanded value
  std::string output;                             // an expanded action URL
  std::string target;                             // RouteDecision::target
  std::string authority;                          // RouteDecision::authority
  std::string reason;                             // RouteDecision::reason
  std::string body;                               // RouteDecision::body
  std::vector<router_internal::VariableSlot>
      slots;                   // one per Router::Variable (grown, never shrunk)
  uint64_t generation = 0;     // bumped per route(): slots from earlier calls are unset at once
  std::vector<int> set_order;  // slots set in this route(), in the order first set
  std::vector<HeaderField> set_headers;    // RouteDecision::set_headers
  std::vector<SetVariable> set_variables;  // RouteDecision::set_variables (strings reused)
  // Outbound rules: response headers set so far (lower-case name, value).
  std::vector<std::pair<std::string, std::string>> response_sets;
  std::vector<std::string_view> response_set_rules;  // the rule that set each response_sets entry
  std::string body_value;                            // a body URL as the rules rewrite it

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    pcre2_match_data_free(match);
    pcre2_match_context_free(match_context);
    pcre2_jit_stack_free(jit_stack);
  }

  // Makes `match` hold at least `pairs` capture pairs (and creates the JIT stack on first use).
  // Allocates only when a router with more capture groups than any before it uses this scratch.
  void reserve_match(size_t pairs) {
    match_error = 0;
    error_pattern = nullptr;
    if (match_context == nullptr) {
      jit_stack = pcre2_jit_stack_create(32 * 1024, kRegexJitStackBytes, nullptr);
      match_context = pcre2_match_context_create(nullptr);
      if (jit_stack == nullptr || match_context == nullptr) throw std::bad_alloc();
      pcre2_jit_stack_assign(match_context, nullptr, jit_stack);
      pcre2_set_match_limit(match_context, kRegexMatchLimit);
      pcre2_set_depth_limit(match_context, kRegexDepthLimit);
      pcre2_set_heap_limit(match_context, kRegexHeapLimitKiB);
    }
    if (match_pairs >= pairs) return;
    pcre2_match_data_free(match);
    match = pcre2_match_data_create(static_cast<uint32_t>(pairs), nullptr);
    if (match == nullptr) throw std::bad_alloc();
    match_pairs = pairs;
  }
};

namespace router_internal {

using Impl = RouteScratch::Impl;

// Everything expansion reads during one route() call.
struct Eval {
  const std::vector<std::unique_ptr<Router::CompiledMap>>& maps;
  const std::vector<std::unique_ptr<Router::Variable>>& variables;
  const RequestFacts& facts;
  Impl& s;
  // Outbound rules: the response head (may be null) and the values rules have set so far.
  const MessageHead* response = nullptr;
  const std::vector<std::pair<std::string, std::string>>* response_sets = nullptr;
  RouteTrace* trace = nullptr;  // route() only, when explaining
  // Outbound rules: {URL} and {PATH_INFO} are the path the client asked for (s.url holds the
  // value being rewritten).
  bool outbound = false;
};

// The groups of the last match (s.ranges) in `input`, for a RouteTrace.
std::vector<std::string_view> traced_groups(std::string_view input, const Impl& s);

// A response header as outbound rules see it: the latest value a rule set, else the server's.
std::string_view response_header(const Eval& e, std::string_view lower_name);

// True if a rule set variable `slot` during the current route().
inline bool slot_is_set(const Impl& s, int slot) {
  return s.slots[slot].generation == s.generation;
}

// Appends the built-in value of variable `var` (header name `header` for Var::Header) to `out`.
// `out` must not be one of the buffers the value is read from (url, query).
void append_builtin(Var var, std::string_view header, const Eval& e, std::string& out);

// Replaces `out` with the expansion of `t`.
void expand(const Template& t, const Eval& e, std::string& out);

// Replaces `out` with the expansion of an inbound action URL: as expand(), except that
// references to the decoded path at its top level are re-escaped as a path, so that "?", "#",
// "%", a space or a control byte decoded from the request cannot change what the URL means.
void expand_url(const Template& t, const Eval& e, std::string& out);

// Matches `input` against `p`. Returns true if the rule or condition holds (the pattern matched
// and is not negated, or did not match and is negated). When it holds because the pattern
// matched, s.ranges holds the groups (index 0 = whole match, unset groups empty); a negated
// pattern that holds has no groups. A subject that is not valid UTF-8 never matches a UTF
// pattern.
bool match_pattern(const Router::CompiledPattern& p, std::string_view input, bool input_ascii,
                   Impl& s);

// Evaluates the rule's conditions (the rule pattern has matched). Leaves {C:n} in
// s.condition_captures: those of the last condition that matched or, with trackAllCaptures,
// those of every matched condition in order — the first one's groups from {C:0}, each later
// one's from group 1 (its whole match is not numbered), as URL Rewrite 2.0 documents.
bool conditions_hold(const std::vector<std::unique_ptr<Router::CompiledPattern>>& conditions,
                     const std::vector<Template>& inputs, config::LogicalGrouping grouping,
                     bool track_all_captures, const Eval& e);

// The conditions of an inbound rule, each step told to the trace (when explaining).
bool conditions_hold(const Router::CompiledRule& rule, const Eval& e);

}  // namespace router_internal

}  // namespace harrow

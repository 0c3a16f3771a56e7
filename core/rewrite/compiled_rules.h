// The compiled form of a config's URL Rewrite rules, as a Router holds them: patterns, the
// templates of action URLs, condition inputs and server-variable values, rewrite maps and the
// variables rules set. Internal to core/rewrite; router.h is the interface.
#pragma once

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/rewrite/router.h"

namespace harrow {

// Types shared by the compiled rules (Router::*) and the pieces that compile and evaluate them
// (template_compiler, rule_evaluator, inbound_rules, outbound_rules).
namespace router_internal {

// A server variable a reference can name. Everything is resolved when the config is compiled,
// so expansion never compares names.
enum class Var : uint8_t {
  Unknown,  // expands to nothing
  HttpHost,
  Https,
  QueryString,
  RequestUri,
  UnencodedUrl,
  Url,
  PathInfo,
  RequestMethod,
  RemoteAddr,
  ServerPort,
  ServerPortSecure,
  CacheUrl,        // scheme://host:port/raw-path?query
  ServerName,      // the Host without its port (or the local address)
  ServerProtocol,  // HTTP/1.1
  RemotePort,
  LocalAddr,
  AppWarmingUp,    // "0"
  Empty,           // AUTH_TYPE, AUTH_USER, LOGON_USER, REMOTE_USER: nobody is authenticated
  ResponseStatus,  // outbound rules: the status code
  Header,          // any other HTTP_*: the request header named by Node::text
  ResponseHeader,  // RESPONSE_*: the response header named by Node::text (outbound rules)
};

enum class Op : uint8_t {
  Literal,           // Node::text
  RuleCapture,       // {R:n}
  ConditionCapture,  // {C:n}
  Variable,          // {NAME}
  ToLower,           // {ToLower:children}
  UrlEncode,         // {UrlEncode:children}
  UrlDecode,         // {UrlDecode:children}
  HtmlEncode,        // {HtmlEncode:children}
  Map,               // {MapName:children}
};

// One piece of a compiled expansion string ("http://shop/{ToLower:{R:1}}" is a literal, then a
// ToLower node whose child is a capture).
struct Node {
  Op op = Op::Literal;
  Var var = Var::Unknown;
  int index = -1;              // capture number (RuleCapture/ConditionCapture) or map (Map)
  int slot = -1;               // Variable: the settable variable it reads first, or -1
  std::string text;            // Literal: the text; Variable/Header: the lower-case header name
  std::vector<Node> children;  // ToLower/UrlEncode/UrlDecode/Map: the argument
};

// An action URL, condition input or server-variable value, parsed once per config.
using Template = std::vector<Node>;

// <serverVariables><set>, with its value compiled.
struct ServerVariableAssignment {
  int slot = 0;  // index into Router::variables_
  Template value;
  bool replace = true;
};

// One settable variable's value during a route() call.
struct VariableSlot {
  std::string value;
  uint64_t generation = 0;  // set in the current route() iff == RouteScratch::Impl::generation
};

// Capture groups, copied out of their subject (which is a reused buffer) into one string.
struct Captures {
  std::string text;
  std::vector<size_t> ends;  // end of each capture in `text`; it begins where the previous ends

  // Forgets all captures; keeps the capacity.
  void clear() {
    text.clear();
    ends.clear();
  }
  // Appends capture number size().
  void add(std::string_view c) {
    text.append(c);
    ends.push_back(text.size());
  }
  size_t size() const { return ends.size(); }
  // Capture `i`, which must be < size().
  std::string_view operator[](size_t i) const {
    size_t begin = i == 0 ? 0 : ends[i - 1];
    return {text.data() + begin, ends[i] - begin};
  }
};

}  // namespace router_internal

// A rule or condition pattern in one of URL Rewrite's three syntaxes. Wildcard patterns are
// translated to an anchored regular expression in which each `*` is a capture group, so all
// three report captures the same way.
struct Router::CompiledPattern {
  config::PatternSyntax syntax = config::PatternSyntax::ECMAScript;
  bool ignore_case = true;
  bool negate = false;
  bool utf = true;   // compiled with PCRE2_UTF (subjects must then be valid UTF-8 to match)
  bool jit = false;  // JIT-compiled: pcre2_jit_match may be used when the subject is known valid
  bool match_all = false;  // Wildcard "*" (ARR's generated rule): matches anything, no regex
  bool literal = false;    // Wildcard without any '*': compared like ExactMatch, no regex
  std::string exact;       // ExactMatch, or a literal Wildcard
  pcre2_code* code = nullptr;
  uint32_t capture_count = 0;

  CompiledPattern() = default;
  CompiledPattern(const CompiledPattern&) = delete;
  CompiledPattern& operator=(const CompiledPattern&) = delete;
  ~CompiledPattern() { pcre2_code_free(code); }

  // Compiles `pattern` in syntax `s`. Throws std::runtime_error if an ECMAScript pattern does
  // not compile (the loader rejects those first, so only hand-built configs get here). An
  // ASCII-only Wildcard pattern is compiled without PCRE2_UTF: it then also matches subjects
  // that are not valid UTF-8, so "*" routes every request whatever bytes its path holds.
  void compile(const std::string& pattern, config::PatternSyntax s, bool icase, bool neg);
};

struct Router::CompiledRule {
  const config::RuleConfig* config = nullptr;
  CompiledPattern match;
  std::vector<std::unique_ptr<CompiledPattern>> conditions;
  std::vector<router_internal::Template> condition_inputs;
  std::vector<router_internal::ServerVariableAssignment> sets;
  router_internal::Template action_url;
  router_internal::Template status_reason;
  router_internal::Template status_description;
};

struct Router::CompiledPreCondition {
  const config::PreConditionConfig* config = nullptr;
  std::vector<std::unique_ptr<CompiledPattern>> conditions;
  std::vector<router_internal::Template> inputs;
};

struct Router::CompiledOutboundRule {
  const config::OutboundRuleConfig* config = nullptr;
  const CompiledPreCondition* pre_condition = nullptr;
  CompiledPattern match;
  std::vector<std::unique_ptr<CompiledPattern>> conditions;
  std::vector<router_internal::Template> condition_inputs;
  router_internal::Template value;
  std::string header;  // header rule: the lower-case response header; empty: a body rule
  int slot = -1;       // request-variable rule (serverVariable="HTTP_…"): its Variable slot
  // Whole-body rule: the pattern compiled for bytes (a body need not be UTF-8), interpreted
  // (partial matching holds back text that may continue in the next piece).
  std::unique_ptr<pcre2_code, decltype(&pcre2_code_free)> body_code{nullptr, pcre2_code_free};
  uint32_t max_lookbehind = 0;
  uint16_t tags = 0;                                             // body rule: HtmlTag bits
  std::vector<std::pair<std::string, std::string>> custom_tags;  // body rule: (tag, attribute)
};

struct Router::CompiledMap {
  std::string name;
  std::string default_value;
  std::vector<std::pair<std::string, std::string>> entries;  // sorted by key, ignoring case
};

// A server variable that some rule sets. Reads of it check the scratch's slot first.
struct Router::Variable {
  std::string name;    // as first written in the config
  std::string header;  // HTTP_X_FOO_BAR → "X-Foo-Bar"; empty for non-HTTP_ variables
  router_internal::Var builtin =
      router_internal::Var::Unknown;  // what it reads when no rule has set it
  std::string builtin_header;         // Var::Header: lower-case header name
};

}  // namespace harrow

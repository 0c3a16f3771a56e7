#include "core/rewrite/router.h"

#include "core/rewrite/html_rewriter.h"
#include "core/http1/url_path.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <new>
#include <stdexcept>

namespace harrow {

using config::ActionType;
using config::PatternSyntax;

// Types shared by the compiled rules (Router::*) and the evaluation helpers below. A named
// namespace rather than an anonymous one, because Router's nested types hold them.
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

using router_internal::Captures;
using router_internal::Node;
using router_internal::Op;
using router_internal::ServerVariableAssignment;
using router_internal::Template;
using router_internal::Var;
using router_internal::VariableSlot;

// A rule or condition pattern in one of URL Rewrite's three syntaxes. Wildcard patterns are
// translated to an anchored regular expression in which each `*` is a capture group, so all
// three report captures the same way.
struct Router::CompiledPattern {
  PatternSyntax syntax = PatternSyntax::ECMAScript;
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
  void compile(const std::string& pattern, PatternSyntax s, bool icase, bool neg) {
    syntax = s;
    ignore_case = icase;
    negate = neg;
    if (syntax == PatternSyntax::ExactMatch) {
      exact = pattern;
      return;
    }
    std::string regex;
    if (syntax == PatternSyntax::Wildcard && pattern == "*") {
      match_all = true;
      capture_count = 1;
      return;
    }
    if (syntax == PatternSyntax::Wildcard && pattern.find('*') == std::string::npos &&
        std::all_of(pattern.begin(), pattern.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
      // No '*' and ASCII: the whole input must equal it, exactly what ExactMatch compares.
      literal = true;
      exact = pattern;
      return;
    }
    if (syntax == PatternSyntax::Wildcard) {
      utf = std::any_of(pattern.begin(), pattern.end(),
                        [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
      regex = "^";
      for (char c : pattern) {
        if (c == '*') {
          regex += "(.*)";
        } else {
          if (!std::isalnum(static_cast<unsigned char>(c)) &&
              static_cast<unsigned char>(c) < 0x80) {
            regex += '\\';
          }
          regex += c;
        }
      }
      regex += "$";
    } else {
      regex = pattern;
    }
    uint32_t options = (utf ? PCRE2_UTF : 0) | (ignore_case ? PCRE2_CASELESS : 0) |
                       (syntax == PatternSyntax::Wildcard ? PCRE2_DOTALL : 0);
    int error = 0;
    PCRE2_SIZE offset = 0;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(regex.data()), regex.size(), options, &error,
                         &offset, nullptr);
    if (code == nullptr) {
      throw std::runtime_error("pattern does not compile: " + pattern);
    }
    jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;  // else the interpreter does it
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &capture_count);
  }
};

struct Router::CompiledRule {
  const config::RuleConfig* config = nullptr;
  CompiledPattern match;
  std::vector<std::unique_ptr<CompiledPattern>> conditions;
  std::vector<Template> condition_inputs;
  std::vector<ServerVariableAssignment> sets;
  Template action_url;
  Template status_reason;
  Template status_description;
};

struct Router::CompiledPreCondition {
  const config::PreConditionConfig* config = nullptr;
  std::vector<std::unique_ptr<CompiledPattern>> conditions;
  std::vector<Template> inputs;
};

struct Router::CompiledOutboundRule {
  const config::OutboundRuleConfig* config = nullptr;
  const CompiledPreCondition* pre_condition = nullptr;
  CompiledPattern match;
  std::vector<std::unique_ptr<CompiledPattern>> conditions;
  std::vector<Template> condition_inputs;
  Template value;
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
  std::string name;            // as first written in the config
  std::string header;          // HTTP_X_FOO_BAR → "X-Foo-Bar"; empty for non-HTTP_ variables
  Var builtin = Var::Unknown;  // what it reads when no rule has set it
  std::string builtin_header;  // Var::Header: lower-case header name
};

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
  Captures condition_captures;                         // {C:n}
  std::vector<std::pair<size_t, size_t>> ranges;  // (offset, length) of the last match's groups
  std::string input;                              // a condition's expanded input
  std::string value;                              // a server variable's expanded value
  std::string output;                             // an expanded action URL
  std::string target;                             // RouteDecision::target
  std::string authority;                          // RouteDecision::authority
  std::string reason;                             // RouteDecision::reason
  std::string body;                               // RouteDecision::body
  std::vector<VariableSlot> slots;                // one per Router::Variable (grown, never shrunk)
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

RouteScratch::RouteScratch() : impl_(std::make_unique<Impl>()) {}
RouteScratch::~RouteScratch() = default;

int RouteScratch::match_error() const {
  return impl_->match_error;
}

std::string RouteScratch::match_error_text() const {
  PCRE2_UCHAR buffer[120];
  int n = pcre2_get_error_message(impl_->match_error, buffer, sizeof buffer);
  return n < 0 ? "error " + std::to_string(impl_->match_error)
               : std::string(reinterpret_cast<const char*>(buffer), static_cast<size_t>(n));
}

std::string_view Router::failed_rule(const RouteScratch& scratch) const {
  const CompiledPattern* p = scratch.impl_->error_pattern;
  if (p == nullptr) return {};
  auto owns = [p](const auto& rule) {
    if (&rule.match == p) return true;
    for (const auto& c : rule.conditions) {
      if (c.get() == p) return true;
    }
    return false;
  };
  for (const RuleSet* set : {&rules_, &distributed_rules_}) {
    for (const auto& rule : *set) {
      if (owns(*rule)) return rule->config->name;
    }
  }
  for (const RuleSet& set : site_rules_) {
    for (const auto& rule : set) {
      if (owns(*rule)) return rule->config->name;
    }
  }
  for (const auto& rule : outbound_rules_) {
    if (owns(*rule)) return rule->config->name;
  }
  for (const auto& pre : pre_conditions_) {
    for (const auto& c : pre->conditions) {
      if (c.get() == p) return pre->config->name;
    }
  }
  return {};
}

namespace {

using Impl = RouteScratch::Impl;

// ---------------------------------------------------------------- small string helpers

// `c` in lower case if it is an ASCII letter, else `c`.
char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// `c` in upper case if it is an ASCII letter, else `c`.
char ascii_upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

// True if no byte of `s` is >= 0x80 (then it is valid UTF-8 without further checking).
bool is_ascii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// Strict weak order on strings that ignores ASCII case (for the rewrite-map tables).
bool iless(std::string_view a, std::string_view b) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    char x = ascii_lower(a[i]);
    char y = ascii_lower(b[i]);
    if (x != y) return static_cast<unsigned char>(x) < static_cast<unsigned char>(y);
  }
  return a.size() < b.size();
}

// The value of hex digit `c`, or -1 if it is not one.
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Lower-cases out[from..] in place (ASCII, as URL Rewrite's ToLower does for URLs).
void to_lower_from(std::string& out, size_t from) {
  for (size_t i = from; i < out.size(); ++i) out[i] = ascii_lower(out[i]);
}

// Decodes %XX escapes in out[from..] in place. A '%' not followed by two hex digits stays as it
// is; '+' stays '+' (it means a space only in form bodies, not in URLs).
void url_decode_from(std::string& out, size_t from) {
  size_t w = from;
  for (size_t r = from; r < out.size(); ++r) {
    int hi = r + 2 < out.size() && out[r] == '%' ? hex_value(out[r + 1]) : -1;
    int lo = hi >= 0 ? hex_value(out[r + 2]) : -1;
    if (lo >= 0) {
      out[w++] = static_cast<char>(hi * 16 + lo);
      r += 2;
    } else {
      out[w++] = out[r];
    }
  }
  out.resize(w);
}

// RFC 3986 unreserved characters: the ones UrlEncode leaves as they are.
bool url_unreserved(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

// HTML-encodes out[from..] in place: & < > " ' become entities, as URL Rewrite's HtmlEncode
// does for text inserted into a page.
void html_encode_from(std::string& out, size_t from) {
  auto entity = [](char c) -> std::string_view {
    switch (c) {
      case '&':
        return "&amp;";
      case '<':
        return "&lt;";
      case '>':
        return "&gt;";
      case '"':
        return "&quot;";
      case '\'':
        return "&#39;";
      default:
        return {};
    }
  };
  size_t extra = 0;
  for (size_t i = from; i < out.size(); ++i) {
    std::string_view ent = entity(out[i]);
    if (!ent.empty()) extra += ent.size() - 1;
  }
  if (extra == 0) return;
  size_t r = out.size();
  out.resize(out.size() + extra);
  size_t w = out.size();
  while (r > from) {
    char c = out[--r];
    std::string_view ent = entity(c);
    if (ent.empty()) {
      out[--w] = c;
    } else {
      w -= ent.size();
      out.replace(w, ent.size(), ent);
    }
  }
}

// Escapes the bytes of out[from..] that `Needs`, in place (from the end).
template <bool (*Needs)(unsigned char)>
void percent_encode_from(std::string& out, size_t from) {
  size_t extra = 0;
  for (size_t i = from; i < out.size(); ++i) {
    if (Needs(static_cast<unsigned char>(out[i]))) extra += 2;
  }
  if (extra == 0) return;
  size_t r = out.size();
  out.resize(out.size() + extra);
  size_t w = out.size();
  static constexpr char kHex[] = "0123456789ABCDEF";
  while (r > from) {
    auto b = static_cast<unsigned char>(out[--r]);
    if (!Needs(b)) {
      out[--w] = static_cast<char>(b);
    } else {
      out[--w] = kHex[b & 0xF];
      out[--w] = kHex[b >> 4];
      out[--w] = '%';
    }
  }
}

// Everything but RFC 3986's unreserved characters: what UrlEncode escapes.
bool url_reserved(unsigned char c) {
  return !url_unreserved(static_cast<char>(c));
}

// Percent-encodes every byte of out[from..] except RFC 3986's unreserved characters, in place.
void url_encode_from(std::string& out, size_t from) {
  percent_encode_from<url_reserved>(out, from);
}

bool high_byte(unsigned char c) {
  return c >= 0x80;
}

// Escapes out[from..] as a forwarded path (append_encoded_path's set).
void path_encode_from(std::string& out, size_t from) {
  percent_encode_from<path_byte_needs_escape>(out, from);
}

// ---------------------------------------------------------------- compiling templates

// What parse_template needs to resolve names: the config's rewrite maps and the variables that
// rules set.
struct TemplateContext {
  const std::vector<std::unique_ptr<Router::CompiledMap>>& maps;
  const std::vector<std::unique_ptr<Router::Variable>>& variables;
  bool* reads_local_addr = nullptr;  // set when a template reads the local address
};

// "RESPONSE_Content_Type" → "content-type": the response header an outbound rule reads.
std::string response_header_for_variable(std::string_view name) {
  std::string header;
  for (char c : name.substr(9)) header += c == '_' ? '-' : ascii_lower(c);
  return header;
}

// The built-in source of server variable `name`; for Var::Header, `header` receives the
// lower-case request header name (HTTP_X_FOO → "x-foo").
Var builtin_variable(std::string_view name, std::string& header) {
  struct Entry {
    std::string_view name;
    Var var;
  };
  static constexpr Entry kNames[] = {
      {"HTTP_HOST", Var::HttpHost},
      {"HTTPS", Var::Https},
      {"QUERY_STRING", Var::QueryString},
      {"REQUEST_URI", Var::RequestUri},
      {"UNENCODED_URL", Var::UnencodedUrl},
      {"URL", Var::Url},
      {"PATH_INFO", Var::PathInfo},
      {"REQUEST_METHOD", Var::RequestMethod},
      {"REMOTE_ADDR", Var::RemoteAddr},
      {"SERVER_PORT", Var::ServerPort},
      {"SERVER_PORT_SECURE", Var::ServerPortSecure},
      {"HTTP_URL", Var::UnencodedUrl},
      {"SCRIPT_NAME", Var::PathInfo},
      {"CACHE_URL", Var::CacheUrl},
      {"SERVER_NAME", Var::ServerName},
      {"SERVER_PROTOCOL", Var::ServerProtocol},
      {"REMOTE_PORT", Var::RemotePort},
      {"REMOTE_HOST", Var::RemoteAddr},
      {"LOCAL_ADDR", Var::LocalAddr},
      {"APP_WARMING_UP", Var::AppWarmingUp},
      {"AUTH_TYPE", Var::Empty},
      {"AUTH_USER", Var::Empty},
      {"LOGON_USER", Var::Empty},
      {"REMOTE_USER", Var::Empty},
      {"RESPONSE_STATUS", Var::ResponseStatus},
  };
  for (const Entry& e : kNames) {
    if (iequals(name, e.name)) return e.var;
  }
  if (iequals(name, "CONTENT_LENGTH") || iequals(name, "CONTENT_TYPE")) {
    header = iequals(name, "CONTENT_TYPE") ? "content-type" : "content-length";
    return Var::Header;
  }
  if (name.size() > 5 && istarts_with(name, "HTTP_")) {
    header.clear();
    for (char c : name.substr(5)) header += c == '_' ? '-' : ascii_lower(c);
    return Var::Header;
  }
  if (name.size() > 9 && istarts_with(name, "RESPONSE_")) {
    header = response_header_for_variable(name);
    return Var::ResponseHeader;
  }
  return Var::Unknown;
}

// "HTTP_X_FOO_BAR" → "X-Foo-Bar": the request header a <set name> writes; empty for names that
// are not HTTP_*.
std::string header_for_variable(std::string_view name) {
  std::string header;
  if (name.size() <= 5 || !istarts_with(name, "HTTP_")) return header;
  bool word_start = true;
  for (char c : name.substr(5)) {
    if (c == '_') {
      header += '-';
      word_start = true;
    } else {
      header += word_start ? ascii_upper(c) : ascii_lower(c);
      word_start = false;
    }
  }
  return header;
}

// Index of the settable variable called `name` (case-insensitive), or -1.
int find_variable(const TemplateContext& ctx, std::string_view name) {
  for (size_t i = 0; i < ctx.variables.size(); ++i) {
    if (iequals(ctx.variables[i]->name, name)) return static_cast<int>(i);
  }
  return -1;
}

void parse_template(std::string_view text, const TemplateContext& ctx, Template& out);

// Compiles the inside of one {…} reference into `out` (appending at most one node). Unknown
// names produce nothing, so they expand to the empty string as in IIS.
void parse_reference(std::string_view ref, const TemplateContext& ctx, Template& out) {
  size_t colon = ref.find(':');
  std::string_view name = ref.substr(0, colon);
  Node node;
  if (colon != std::string_view::npos && name.find('{') == std::string_view::npos) {
    std::string_view arg = ref.substr(colon + 1);
    if (iequals(name, "R") || iequals(name, "C")) {
      size_t n = 0;
      auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), n);
      if (ec != std::errc() || end != arg.data() + arg.size() || n > 1000) return;
      node.op = iequals(name, "R") ? Op::RuleCapture : Op::ConditionCapture;
      node.index = static_cast<int>(n);
      out.push_back(std::move(node));
      return;
    }
    if (iequals(name, "ToLower")) {
      node.op = Op::ToLower;
    } else if (iequals(name, "UrlEncode")) {
      node.op = Op::UrlEncode;
    } else if (iequals(name, "UrlDecode")) {
      node.op = Op::UrlDecode;
    } else if (iequals(name, "HtmlEncode")) {
      node.op = Op::HtmlEncode;
    } else {
      auto map = std::find_if(ctx.maps.begin(), ctx.maps.end(),
                              [&](const auto& m) { return iequals(m->name, name); });
      if (map == ctx.maps.end()) return;  // not a function or a map: nothing
      node.op = Op::Map;
      node.index = static_cast<int>(map - ctx.maps.begin());
    }
    parse_template(arg, ctx, node.children);
    out.push_back(std::move(node));
    return;
  }
  node.op = Op::Variable;
  node.var = builtin_variable(ref, node.text);
  node.slot = find_variable(ctx, ref);
  if (node.var == Var::Unknown && node.slot < 0) return;
  if ((node.var == Var::LocalAddr || node.var == Var::ServerName || node.var == Var::CacheUrl) &&
      ctx.reads_local_addr != nullptr) {
    *ctx.reads_local_addr = true;
  }
  out.push_back(std::move(node));
}

// Compiles an expansion string: literal text with {…} references, which may nest
// ("{ToLower:{HTTP_HOST}}"). A '{' without its matching '}' is literal text.
void parse_template(std::string_view text, const TemplateContext& ctx, Template& out) {
  auto literal = [&](std::string_view piece) {
    if (piece.empty()) return;
    if (out.empty() || out.back().op != Op::Literal) out.push_back(Node{});
    out.back().text.append(piece);
  };
  size_t i = 0;
  while (i < text.size()) {
    size_t open = text.find('{', i);
    if (open == std::string_view::npos) {
      literal(text.substr(i));
      return;
    }
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
    if (close == std::string_view::npos) {
      literal(text.substr(i));
      return;
    }
    literal(text.substr(i, open - i));
    parse_reference(text.substr(open + 1, close - open - 1), ctx, out);
    i = close + 1;
  }
}

// ---------------------------------------------------------------- evaluating

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
std::vector<std::string_view> traced_groups(std::string_view input, const Impl& s) {
  std::vector<std::string_view> out;
  for (const auto& [offset, length] : s.ranges) {
    out.push_back(offset <= input.size() ? input.substr(offset, length) : std::string_view{});
  }
  return out;
}

// "host:port" → "host", "[::1]:80" → "[::1]".
std::string_view host_without_port(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  return host.substr(0, host.find(':'));
}

void append_number(std::string& out, unsigned value) {
  char digits[12];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, static_cast<size_t>(end - digits));
}

// The request path as outbound rules see {URL}: decoded and canonical, with its '/'.
std::string_view request_path(const RequestFacts& f) {
  if (!f.path.empty()) return f.path;
  return f.target.substr(0, f.target.find('?'));
}

// A response header as outbound rules see it: the latest value a rule set, else the server's.
std::string_view response_header(const Eval& e, std::string_view lower_name) {
  if (e.response_sets != nullptr) {
    for (auto it = e.response_sets->rbegin(); it != e.response_sets->rend(); ++it) {
      if (iequals(it->first, lower_name)) return it->second;
    }
  }
  return e.response != nullptr ? e.response->find(lower_name) : std::string_view{};
}

// True if a rule set variable `slot` during the current route().
bool slot_is_set(const Impl& s, int slot) {
  return s.slots[slot].generation == s.generation;
}

// Appends the built-in value of variable `var` (header name `header` for Var::Header) to `out`.
// `out` must not be one of the buffers the value is read from (url, query).
void append_builtin(Var var, std::string_view header, const Eval& e, std::string& out) {
  const RequestFacts& f = e.facts;
  switch (var) {
    case Var::Unknown:
      return;
    case Var::HttpHost:
      out.append(f.host);
      return;
    case Var::Https:
      out.append(f.https ? "on" : "off");
      return;
    case Var::QueryString:
      out.append(e.s.query);
      return;
    case Var::RequestUri:
    case Var::UnencodedUrl:
      out.append(f.target);
      return;
    case Var::Url:
    case Var::PathInfo:
      if (e.outbound) {
        out.append(request_path(f));
        return;
      }
      out += '/';
      out.append(e.s.url);
      return;
    case Var::RequestMethod:
      out.append(f.method);
      return;
    case Var::RemoteAddr:
      out.append(f.remote_addr);
      return;
    case Var::ServerPort:
      append_number(out, f.server_port);
      return;
    case Var::CacheUrl: {
      std::string_view name = host_without_port(f.host);
      out.append(f.https ? "https://" : "http://");
      out.append(name.empty() ? f.local_addr : name);
      out += ':';
      append_number(out, f.server_port);
      out.append(f.target);
      return;
    }
    case Var::ServerName: {
      std::string_view name = host_without_port(f.host);
      out.append(name.empty() ? f.local_addr : name);
      return;
    }
    case Var::ServerProtocol:
      out.append(f.http10 ? "HTTP/1.0" : "HTTP/1.1");
      return;
    case Var::RemotePort:
      append_number(out, f.remote_port);
      return;
    case Var::LocalAddr:
      out.append(f.local_addr);
      return;
    case Var::AppWarmingUp:
      out += '0';
      return;
    case Var::Empty:
      return;
    case Var::ResponseStatus:
      if (f.response_status > 0) append_number(out, static_cast<unsigned>(f.response_status));
      return;
    case Var::ServerPortSecure:
      out += f.https ? '1' : '0';
      return;
    case Var::Header:
      if (f.head != nullptr) out.append(f.head->find(header));
      return;
    case Var::ResponseHeader:
      out.append(response_header(e, header));
      return;
  }
}

// Appends the expansion of `t` to `out` (which must not be s.url, s.query or a slot value).
void expand_append(std::span<const Node> t, const Eval& e, std::string& out) {
  for (const Node& n : t) {
    size_t from = out.size();
    switch (n.op) {
      case Op::Literal:
        out.append(n.text);
        break;
      case Op::RuleCapture:
        if (static_cast<size_t>(n.index) < e.s.rule_ranges.size()) {
          auto [off, len] = e.s.rule_ranges[n.index];
          out.append(e.s.url, off, len);
        }
        break;
      case Op::ConditionCapture:
        if (static_cast<size_t>(n.index) < e.s.condition_captures.size()) {
          out.append(e.s.condition_captures[n.index]);
        }
        break;
      case Op::Variable:
        if (n.slot >= 0 && slot_is_set(e.s, n.slot)) {
          out.append(e.s.slots[n.slot].value);
        } else {
          append_builtin(n.var, n.text, e, out);
        }
        break;
      case Op::ToLower:
        expand_append(n.children, e, out);
        to_lower_from(out, from);
        break;
      case Op::UrlEncode:
        expand_append(n.children, e, out);
        url_encode_from(out, from);
        break;
      case Op::UrlDecode:
        expand_append(n.children, e, out);
        url_decode_from(out, from);
        break;
      case Op::HtmlEncode:
        expand_append(n.children, e, out);
        html_encode_from(out, from);
        break;
      case Op::Map: {
        expand_append(n.children, e, out);
        const Router::CompiledMap& map = *e.maps[n.index];
        std::string_view key(out.data() + from, out.size() - from);
        auto it = std::lower_bound(
            map.entries.begin(), map.entries.end(), key,
            [](const auto& entry, std::string_view k) { return iless(entry.first, k); });
        std::string_view value = (it != map.entries.end() && iequals(it->first, key))
                                     ? std::string_view(it->second)
                                     : std::string_view(map.default_value);
        out.resize(from);
        out.append(value);
        break;
      }
    }
  }
}

// Replaces `out` with the expansion of `t`.
void expand(const Template& t, const Eval& e, std::string& out) {
  out.clear();
  expand_append(t, e, out);
}

// True if `n` reads the decoded request path: {R:n} of an inbound rule, {URL} / {PATH_INFO}
// unless a rule set them, or {ToLower:…} of one of those (only the case changes).
bool reads_decoded_path(const Node& n, const Eval& e) {
  if (n.op == Op::RuleCapture) return true;
  if (n.op == Op::ToLower) {
    return std::any_of(n.children.begin(), n.children.end(),
                       [&](const Node& c) { return reads_decoded_path(c, e); });
  }
  if (n.op != Op::Variable || (n.var != Var::Url && n.var != Var::PathInfo)) return false;
  return n.slot < 0 || !slot_is_set(e.s, n.slot);
}

// Replaces `out` with the expansion of an inbound action URL: as expand(), except that
// references to the decoded path at its top level are re-escaped as a path, so that "?", "#",
// "%", a space or a control byte decoded from the request cannot change what the URL means.
void expand_url(const Template& t, const Eval& e, std::string& out) {
  out.clear();
  for (size_t i = 0; i < t.size(); ++i) {
    size_t from = out.size();
    expand_append(std::span<const Node>(&t[i], 1), e, out);
    if (reads_decoded_path(t[i], e)) path_encode_from(out, from);
  }
}

// Matches `input` against `p`. Returns true if the rule or condition holds (the pattern matched
// and is not negated, or did not match and is negated). When it holds because the pattern
// matched, s.ranges holds the groups (index 0 = whole match, unset groups empty); a negated
// pattern that holds has no groups. A subject that is not valid UTF-8 never matches a UTF
// pattern.
bool match_pattern(const Router::CompiledPattern& p, std::string_view input, bool input_ascii,
                   Impl& s) {
  s.ranges.clear();
  if (s.match_error != 0) return false;  // the routing has failed already: nothing holds
  bool matched;
  if (p.match_all) {
    matched = true;
    if (!p.negate) {
      s.ranges.emplace_back(0, input.size());
      s.ranges.emplace_back(0, input.size());
    }
  } else if (p.syntax == PatternSyntax::ExactMatch || p.literal) {
    matched = p.ignore_case ? iequals(input, p.exact) : input == p.exact;
    if (matched && !p.negate) s.ranges.emplace_back(0, input.size());
  } else {
    auto subject = reinterpret_cast<PCRE2_SPTR>(input.data());
    int rc;
    if (p.jit && (!p.utf || input_ascii)) {
      // The fast path skips pcre2_match's checks, which hold here: the subject is valid UTF-8
      // (or the pattern is not UTF) and the match data is big enough.
      rc = pcre2_jit_match(p.code, subject, input.size(), 0, 0, s.match, s.match_context);
    } else {
      rc = pcre2_match(p.code, subject, input.size(), 0, 0, s.match, s.match_context);
    }
    // Subjects that are not valid UTF-8 do not match a UTF pattern (PCRE2_ERROR_UTF8_ERR*);
    // any other failure (match, depth or heap limit, JIT stack) stops the routing: the
    // caller fails the request instead of treating the pattern as not matching.
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH &&
        !(rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21)) {
      s.match_error = rc;
      s.error_pattern = &p;
      s.ranges.clear();
      return false;
    }
    matched = rc >= 0;  // 0: matched, but the ovector was too small (cannot happen here)
    if (matched && !p.negate) {
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.match);
      size_t groups = rc == 0 ? pcre2_get_ovector_count(s.match) : static_cast<size_t>(rc);
      for (size_t i = 0; i < groups; ++i) {
        if (ov[2 * i] == PCRE2_UNSET) {
          s.ranges.emplace_back(0, 0);
        } else {
          s.ranges.emplace_back(ov[2 * i], ov[2 * i + 1] - ov[2 * i]);
        }
      }
    }
  }
  return matched != p.negate;
}

// Copies the groups in s.ranges (out of `input`) to `captures`, from group `first` on.
void keep_captures(std::string_view input, const Impl& s, size_t first, Captures& captures) {
  for (size_t i = first; i < s.ranges.size(); ++i) {
    captures.add(input.substr(s.ranges[i].first, s.ranges[i].second));
  }
}

// The expansion of a condition's input. An input that is just one server variable held
// elsewhere ("{HTTP_HOST}", the commonest) is returned as a view of it, without copying;
// anything else is expanded into s.input. The view stays valid while the conditions run.
// `ascii` tells whether the input is all ASCII (known in advance for the Host).
std::string_view condition_input(const Template& t, const Eval& e, bool& ascii) {
  if (t.size() == 1 && t[0].op == Op::Variable) {
    const Node& n = t[0];
    std::string_view view;
    if (n.slot >= 0 && slot_is_set(e.s, n.slot)) {
      view = e.s.slots[n.slot].value;
    } else {
      switch (n.var) {
        case Var::HttpHost:
          ascii = e.s.host_ascii;
          return e.facts.host;
        case Var::QueryString:
          view = e.s.query;
          break;
        case Var::RequestUri:
        case Var::UnencodedUrl:
          view = e.facts.target;
          break;
        case Var::RequestMethod:
          view = e.facts.method;
          break;
        case Var::RemoteAddr:
          view = e.facts.remote_addr;
          break;
        case Var::Header:
          if (e.facts.head != nullptr) view = e.facts.head->find(n.text);
          break;
        default:
          expand(t, e, e.s.input);
          view = e.s.input;
          break;
      }
    }
    ascii = is_ascii(view);
    return view;
  }
  expand(t, e, e.s.input);
  ascii = is_ascii(e.s.input);
  return e.s.input;
}

// Evaluates the rule's conditions (the rule pattern has matched). Leaves {C:n} in
// s.condition_captures: those of the last condition that matched or, with trackAllCaptures,
// those of every matched condition in order — the first one's groups from {C:0}, each later
// one's from group 1 (its whole match is not numbered), as URL Rewrite 2.0 documents.
bool conditions_hold(const std::vector<std::unique_ptr<Router::CompiledPattern>>& conditions,
                     const std::vector<Template>& inputs, config::LogicalGrouping grouping,
                     bool track_all_captures, const Eval& e) {
  Impl& s = e.s;
  s.condition_captures.clear();
  bool any = grouping == config::LogicalGrouping::MatchAny;
  for (size_t i = 0; i < conditions.size(); ++i) {
    bool ascii = true;
    std::string_view input = condition_input(inputs[i], e, ascii);
    bool matched = match_pattern(*conditions[i], input, ascii, s);
    if (e.trace != nullptr) e.trace->condition(i, input, matched, traced_groups(input, s));
    if (matched) {
      if (!track_all_captures) {
        s.condition_captures.clear();
        keep_captures(input, s, 0, s.condition_captures);
      } else {
        keep_captures(input, s, s.condition_captures.size() == 0 ? 0 : 1, s.condition_captures);
      }
      if (any) return true;
    } else if (!any) {
      return false;
    }
  }
  return !any || conditions.empty();
}

bool conditions_hold(const Router::CompiledRule& rule, const Eval& e) {
  bool hold = conditions_hold(rule.conditions, rule.condition_inputs, rule.config->logical_grouping,
                              rule.config->track_all_captures, e);
  if (e.trace != nullptr) e.trace->conditions(hold);
  return hold;
}

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

template <typename NeedPairs>
std::unique_ptr<Router::CompiledRule> compile_rule(const config::RuleConfig& r,
                                                   const TemplateContext& ctx,
                                                   NeedPairs& need_pairs) {
  {
    auto rule = std::make_unique<Router::CompiledRule>();
    rule->config = &r;
    rule->match.compile(r.match_url, r.pattern_syntax, r.match_ignore_case, r.match_negate);
    need_pairs(rule->match);
    for (const config::ConditionConfig& c : r.conditions) {
      auto p = std::make_unique<Router::CompiledPattern>();
      p->compile(c.pattern, r.pattern_syntax, c.ignore_case, c.negate);
      need_pairs(*p);
      rule->conditions.push_back(std::move(p));
      parse_template(c.input, ctx, rule->condition_inputs.emplace_back());
    }
    for (const config::ServerVariableSet& set : r.server_variables) {
      ServerVariableAssignment& a = rule->sets.emplace_back();
      a.slot = find_variable(ctx, set.name);
      a.replace = set.replace;
      parse_template(set.value, ctx, a.value);
    }
    parse_template(r.action_url, ctx, rule->action_url);
    parse_template(r.status_reason, ctx, rule->status_reason);
    parse_template(r.status_description, ctx, rule->status_description);
    return rule;
  }
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

// Compiles maps, then the set of variables the rules write, then every rule's patterns and
// templates. `config` must outlive the Router (rules keep pointers into it). Throws
// std::runtime_error for an ECMAScript pattern that does not compile, which the loader rejects
// first.
Router::Router(const config::Config& config) : config_(config) {
  for (const config::RewriteMapConfig& m : config.rewrite_maps) {
    auto map = std::make_unique<CompiledMap>();
    map->name = m.name;
    map->default_value = m.default_value;
    map->entries = m.entries;
    // Stable, so of two keys that differ only in case the first defined wins.
    std::stable_sort(map->entries.begin(), map->entries.end(),
                     [](const auto& a, const auto& b) { return iless(a.first, b.first); });
    maps_.push_back(std::move(map));
  }
  // Every variable a rule sets gets a slot before any template is compiled, so a reference in
  // an earlier rule to a variable set by a later one still finds it (for the next request it
  // simply reads the built-in value).
  std::vector<const std::vector<config::RuleConfig>*> rule_lists{&config.global_rules,
                                                                 &config.distributed_rules};
  for (const config::SiteConfig& site : config.sites) rule_lists.push_back(&site.rules);
  auto add_variable = [&](const std::string& name) {
    bool known = std::any_of(variables_.begin(), variables_.end(),
                             [&](const auto& v) { return iequals(v->name, name); });
    if (known) return;
    auto v = std::make_unique<Variable>();
    v->name = name;
    v->header = header_for_variable(name);
    v->builtin = builtin_variable(name, v->builtin_header);
    variables_.push_back(std::move(v));
  };
  for (const auto* list : rule_lists) {
    for (const config::RuleConfig& r : *list) {
      if (!r.enabled) continue;
      for (const config::ServerVariableSet& set : r.server_variables) add_variable(set.name);
    }
  }
  // Outbound rules may rewrite a request variable (serverVariable="HTTP_ACCEPT_ENCODING"):
  // what they write is what the outbound rules after them read.
  std::vector<const config::OutboundConfig*> outbound_sections{&config.outbound};
  for (const config::SiteConfig& site : config.sites) outbound_sections.push_back(&site.outbound);
  for (const config::OutboundConfig* section : outbound_sections) {
    for (const config::OutboundRuleConfig& r : section->rules) {
      if (r.enabled && !r.server_variable.empty() && !istarts_with(r.server_variable, "RESPONSE_"))
        add_variable(r.server_variable);
    }
  }
  TemplateContext ctx{maps_, variables_, &reads_local_addr_};
  auto need_pairs = [&](const CompiledPattern& p) {
    max_capture_pairs_ = std::max<size_t>(max_capture_pairs_, p.capture_count + 1);
  };
  auto compile_rules = [&](const std::vector<config::RuleConfig>& list, RuleSet& into) {
    for (const config::RuleConfig& r : list) {
      // A rule that reads a rewrite provider never matches: Harrow runs no providers.
      if (!r.enabled || !r.provider.empty()) continue;
      into.push_back(compile_rule(r, ctx, need_pairs));
    }
  };
  compile_rules(config.global_rules, rules_);
  compile_rules(config.distributed_rules, distributed_rules_);
  site_rules_.resize(config.sites.size());
  for (size_t i = 0; i < config.sites.size(); ++i)
    compile_rules(config.sites[i].rules, site_rules_[i]);
  // Outbound rules: server level for every site, then each site's own. Preconditions are looked
  // up in the rule's own section first, then at server level (sites inherit them).
  auto compile_pre = [&](const config::OutboundConfig& section) {
    std::vector<const CompiledPreCondition*> out;
    for (const config::PreConditionConfig& pc : section.pre_conditions) {
      auto pre = std::make_unique<CompiledPreCondition>();
      pre->config = &pc;
      for (const config::ConditionConfig& c : pc.conditions) {
        auto p = std::make_unique<CompiledPattern>();
        p->compile(c.pattern, pc.pattern_syntax, c.ignore_case, c.negate);
        need_pairs(*p);
        pre->conditions.push_back(std::move(p));
        parse_template(c.input, ctx, pre->inputs.emplace_back());
      }
      out.push_back(pre.get());
      pre_conditions_.push_back(std::move(pre));
    }
    return out;
  };
  auto find_pre = [](const std::vector<const CompiledPreCondition*>& list,
                     std::string_view name) -> const CompiledPreCondition* {
    for (const CompiledPreCondition* p : list) {
      if (iequals(p->config->name, name)) return p;
    }
    return nullptr;
  };
  auto compile_outbound = [&](const config::OutboundConfig& section,
                              const std::vector<const CompiledPreCondition*>& own,
                              const std::vector<const CompiledPreCondition*>& inherited) {
    std::vector<const CompiledOutboundRule*> out;
    for (const config::OutboundRuleConfig& r : section.rules) {
      if (!r.enabled || !r.provider.empty()) continue;
      auto rule = std::make_unique<CompiledOutboundRule>();
      rule->config = &r;
      if (!r.pre_condition.empty()) {
        rule->pre_condition = find_pre(own, r.pre_condition);
        if (rule->pre_condition == nullptr)
          rule->pre_condition = find_pre(inherited, r.pre_condition);
        if (rule->pre_condition != nullptr && !rule->pre_condition->config->provider.empty())
          continue;  // its preCondition reads a provider: it never holds
      }
      rule->match.compile(r.pattern, r.pattern_syntax, r.ignore_case, r.negate);
      need_pairs(rule->match);
      for (const config::ConditionConfig& c : r.conditions) {
        auto p = std::make_unique<CompiledPattern>();
        p->compile(c.pattern, r.pattern_syntax, c.ignore_case, c.negate);
        need_pairs(*p);
        rule->conditions.push_back(std::move(p));
        parse_template(c.input, ctx, rule->condition_inputs.emplace_back());
      }
      parse_template(r.value, ctx, rule->value);
      if (r.whole_body) {
        int error = 0;
        PCRE2_SIZE offset = 0;
        rule->body_code.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(r.pattern.data()),
                                            r.pattern.size(), r.ignore_case ? PCRE2_CASELESS : 0u,
                                            &error, &offset, nullptr));
        if (rule->body_code == nullptr) throw std::runtime_error("pattern does not compile");
        pcre2_pattern_info(rule->body_code.get(), PCRE2_INFO_MAXLOOKBEHIND, &rule->max_lookbehind);
        uint32_t groups = 0;
        pcre2_pattern_info(rule->body_code.get(), PCRE2_INFO_CAPTURECOUNT, &groups);
        max_capture_pairs_ = std::max<size_t>(max_capture_pairs_, groups + 1);
      } else if (!r.server_variable.empty() && !istarts_with(r.server_variable, "RESPONSE_")) {
        rule->slot = find_variable(ctx, r.server_variable);
      } else if (!r.server_variable.empty()) {
        rule->header = response_header_for_variable(r.server_variable);
      } else {
        std::string error;
        parse_filter_by_tags(r.filter_by_tags, rule->tags, error);  // validated by the loader
        for (const std::vector<config::CustomTagsConfig>* sets :
             {&section.custom_tags, &config.outbound.custom_tags}) {
          for (const config::CustomTagsConfig& set : *sets) {
            if (iequals(set.name, r.custom_tags) && rule->custom_tags.empty())
              rule->custom_tags = set.tags;
          }
        }
      }
      out.push_back(rule.get());
      outbound_rules_.push_back(std::move(rule));
    }
    return out;
  };
  std::vector<const CompiledPreCondition*> server_pre = compile_pre(config.outbound);
  std::vector<const CompiledOutboundRule*> server_rules =
      compile_outbound(config.outbound, server_pre, {});
  outbound_by_site_.push_back(server_rules);
  for (const config::SiteConfig& site : config.sites) {
    std::vector<const CompiledPreCondition*> own = compile_pre(site.outbound);
    std::vector<const CompiledOutboundRule*> rules = server_rules;
    for (const CompiledOutboundRule* r : compile_outbound(site.outbound, own, server_pre)) {
      rules.push_back(r);
    }
    outbound_by_site_.push_back(std::move(rules));
  }
}

Router::~Router() = default;

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

namespace {

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
    std::string name(h.name);
    for (char& c : name) c = harrow::ascii_lower(c);
    s.response_sets.emplace_back(std::move(name), std::string(h.value));
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

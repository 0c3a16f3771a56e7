// URL Rewrite global rules, compiled once per config snapshot: decides which web farm a
// request goes to and with which URL. Patterns are shared read-only by all workers; each
// worker brings its own RouteScratch (match data, string buffers), so routing takes no lock.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/http1/http_head.h"

namespace harrow {

// A server variable an inbound rule set: its slot in the Router that set it, and its value.
// Outbound rules of the same exchange read it ({ORIGINAL_HOST}).
using SetVariable = std::pair<int, std::string>;

// What rules may look at: IIS server variables come from here.
struct RequestFacts {
  std::string_view method;  // {REQUEST_METHOD}
  std::string_view target;  // raw request-target as received ({REQUEST_URI})
  // The path as rules see it ({URL}, what <match url> matches): decoded and canonical, with
  // its leading '/' (core/http1/url_path.h). Empty: the target's path as received.
  std::string_view path;
  std::string_view host;              // {HTTP_HOST}
  bool https = false;                 // {HTTPS}
  uint16_t server_port = 0;           // {SERVER_PORT}
  std::string_view remote_addr;       // {REMOTE_ADDR}, {REMOTE_HOST}
  uint16_t remote_port = 0;           // {REMOTE_PORT}
  std::string_view local_addr;        // {LOCAL_ADDR}: the address the request arrived on
  bool http10 = false;                // {SERVER_PROTOCOL}: HTTP/1.0, else HTTP/1.1
  bool http2 = false;                 // {SERVER_PROTOCOL}: HTTP/2
  const MessageHead* head = nullptr;  // {HTTP_*} (may be null: no headers)
  int site = -1;                      // index into Config::sites; -1: no site
  // Outbound rules only: the response's status code ({RESPONSE_STATUS}) and the server
  // variables the inbound rules set (RouteDecision::set_variables of the same Router).
  int response_status = 0;
  std::span<const SetVariable> variables;
};

// What the rules decided. Views point into the Router or the RouteScratch and stay valid
// until the next route() call with the same scratch.
struct RouteDecision {
  enum class Kind {
    Farm,            // proxy to `farm` with `target`
    NoRoute,         // no rule sent it anywhere, or to a host that is not a farm: 404
    Redirect,        // answer `status` with Location: `target`
    CustomResponse,  // answer `status` `reason` with `body`
    Abort,           // AbortRequest: close the connection without an answer
    Proxy,           // <proxy enabled="true">: proxy to `authority` (not a farm) with `target`
  };
  Kind kind = Kind::NoRoute;
  int farm = -1;               // index into Config::farms
  bool https = false;          // the rewrite said https://FARM/ (the server's httpsPort, over TLS)
  std::string_view authority;  // Proxy: "host[:port]" of the rewritten URL
  std::string_view target;     // Farm, Proxy: origin-form URL; Redirect: the Location
  int status = 0;              // Redirect / CustomResponse
  std::string_view reason;     // CustomResponse statusReason
  std::string_view body;       // CustomResponse statusDescription
  std::string_view rule;       // name of the rule that decided (empty if none did)
  // Request headers set by <serverVariables> (HTTP_X_FOO → "X-Foo"), replacing any the client
  // sent with the same name. HTTP_HOST sets the Host sent upstream.
  std::span<const HeaderField> set_headers;
  // Every server variable the rules set (HTTP_* or not), for the outbound rules of the same
  // exchange: keep a copy and hand it back in RequestFacts::variables.
  std::span<const SetVariable> set_variables;
};
class RouteScratch;

// Watches one route() evaluation, for --explain and POST /api/explain (IIS's FREB for URL
// Rewrite). route() is given none on the request path, so routing pays one null test per rule.
// Views are valid only during the call.
class RouteTrace {
 public:
  virtual ~RouteTrace() = default;
  // A rule set begins: "global", "server" (server-level <rules>) or "site".
  virtual void rule_set(std::string_view /*which*/) {}
  // A rule's <match url> was tested against `input`; `captures` are {R:0}, {R:1}… if it matched.
  virtual void rule(const config::RuleConfig& /*rule*/, std::string_view /*input*/,
                    bool /*matched*/, std::span<const std::string_view> /*captures*/) {}
  // Condition `index` of the current rule, with its expanded input.
  virtual void condition(size_t /*index*/, std::string_view /*input*/, bool /*matched*/,
                         std::span<const std::string_view> /*captures*/) {}
  // The current rule's conditions were decided (true: the rule applies).
  virtual void conditions(bool /*hold*/) {}
  // A <serverVariables><set> of the current rule: the value set, or skipped (replace="false"
  // and the variable already had a value).
  virtual void variable(std::string_view /*name*/, std::string_view /*value*/, bool /*skipped*/) {}
  // The current rule's action URL once expanded (Rewrite, Redirect).
  virtual void action_url(std::string_view /*url*/) {}
};

// Bounds on the work of one pattern match (per match, per worker scratch). A match that
// reaches one fails the request with 500 rule_match_error, never as "no match".
inline constexpr uint32_t kRegexMatchLimit = 100'000;  // backtracking steps (JIT and interpreter)
inline constexpr uint32_t kRegexDepthLimit = 10'000;   // nested backtracking frames (interpreter)
inline constexpr uint32_t kRegexHeapLimitKiB = 8 * 1024;    // interpreter frames, 8 MiB
inline constexpr size_t kRegexJitStackBytes = 1024 * 1024;  // JIT stack, 1 MiB

// What the outbound rules decided for one response.
struct OutboundDecision {
  // Response headers to set, lower-case name and value, in the order rules set them (a later
  // entry for the same name wins). Views valid until the next outbound() with the same scratch.
  std::span<const std::pair<std::string, std::string>> set_headers;
  // The name of the rule that set each of set_headers (same order).
  std::span<const std::string_view> set_rules;
  // The body rules (filterByTags) that apply to this response, for rewrite_body_url(); 0: the
  // body passes untouched.
  uint64_t body_rules = 0;
  uint16_t tags = 0;                                             // HtmlTag bits those rules filter
  std::vector<std::pair<std::string, std::string>> custom_tags;  // (tag, attribute) they add
  // The whole-body rules (no filterByTags) that apply, for rewrite_body_text(); 0: none.
  uint64_t text_rules = 0;
};

// What the whole-body rules of one response remember between pieces of the body: per rule,
// the text held back because a match may continue into the next piece (at most
// kBodyMatchHold bytes), a little text before it (for lookbehind and \b), and the number of
// replacements made (for occurrences).
struct BodyTextState {
  struct Rule {
    std::string held;
    std::string context;
    uint64_t replaced = 0;
  };
  std::vector<Rule> rules;  // by the rule's index in the site's outbound list
  std::string stage;        // one rule's subject: its context, what it held back, the input
  // One rule's input and output while a piece passes the rules; kept here so that a streaming
  // body does not allocate for each piece.
  std::string input;
  std::string result;
};
inline constexpr size_t kBodyMatchHold = 64 * 1024;

class Router {
 public:
  // Compiles the rules; rules were validated by the loader, so this does not fail for a
  // config that loaded.
  explicit Router(const config::Config& config);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Runs the rules in order over the request's path (RequestFacts::path, without its leading
  // '/' and query), as URL Rewrite does. A back-reference to that decoded path ({R:n}, {URL})
  // written straight into a Rewrite or Redirect URL is re-escaped as a path (url_path.h), so the
  // URL sent on means what the rules matched; inside {UrlDecode:…}, {ToLower:…} or a map it is
  // the decoded text. a matching rule sets its server variables, then acts. Rewrite to
  // http(s)://FARM/… decides Farm; to another absolute URL, NoRoute (proxying to any host is
  // not implemented); to a relative URL, it becomes the path (and query) the next rules see.
  // Redirect, CustomResponse and AbortRequest decide at once; None does nothing; stopProcessing
  // ends evaluation. Never fails and, once `scratch` is warm, never allocates. The decision's
  // views are valid until the next route() with the same scratch (or until this Router dies).
  // `trace`, when given, is told every step (see RouteTrace).
  RouteDecision route(const RequestFacts& facts, RouteScratch& scratch,
                      RouteTrace* trace = nullptr) const;

  // The slot of the server variable `name` (case-insensitive) in RouteDecision::set_variables,
  // or -1 when no rule sets it.
  int variable_slot(std::string_view name) const;
  // Whether any outbound rule applies to responses of `site` (-1: no site).
  bool has_outbound(int site) const;
  // Whether some rule reads the local address ({LOCAL_ADDR}, or {SERVER_NAME} / {CACHE_URL}
  // of a request without a Host): only then need RequestFacts::local_addr be filled.
  bool reads_local_addr() const { return reads_local_addr_; }
  // Runs the outbound rules (server level, then the site's) over a response head. `already`
  // are header values Harrow itself rewrote first (reverseRewriteHostInResponseHeaders): rules
  // see those. Header rules act here; body rules whose preCondition holds are returned.
  OutboundDecision outbound(const RequestFacts& request, const MessageHead& response,
                            std::span<const HeaderField> already, RouteScratch& scratch) const;
  // Runs the body rules `body_rules` (from outbound()) over one URL attribute of the response
  // body, in order; true with the new value in `out` if any rewrote it.
  bool rewrite_body_url(const RequestFacts& request, uint64_t body_rules, std::string_view tag,
                        std::string_view attribute, std::string_view value, RouteScratch& scratch,
                        std::string& out) const;

  // Runs the whole-body rules `text_rules` (from outbound()) over the next piece of the body,
  // in order, each on what the one before produced; appends the result to `out`. Text that a
  // match may still extend is held in `state` until the next piece; `last` (the end of the
  // body) flushes it. Memory per rule is bounded by kBodyMatchHold: a partial match longer
  // than that is given up. False if a pattern failed (scratch.match_error()).
  bool rewrite_body_text(const RequestFacts& request, uint64_t text_rules, BodyTextState& state,
                         std::string_view piece, bool last, RouteScratch& scratch,
                         std::string& out) const;

  // After route(), outbound() or rewrite_body_url() failed a match (scratch.match_error()):
  // the name of the rule (or preCondition) whose pattern failed.
  std::string_view failed_rule(const RouteScratch& scratch) const;

  struct CompiledPattern;
  struct CompiledRule;
  struct CompiledPreCondition;
  struct CompiledOutboundRule;
  using RuleSet = std::vector<std::unique_ptr<CompiledRule>>;
  struct CompiledMap;  // a <rewriteMap>, keys sorted for case-insensitive lookup
  struct Variable;     // a server variable some rule's <serverVariables><set> writes

 private:
  const config::Config& config_;
  RuleSet rules_;              // global rules
  RuleSet distributed_rules_;  // server-level <rules>, inherited by every site
  std::vector<RuleSet> site_rules_;
  std::vector<std::unique_ptr<CompiledPreCondition>> pre_conditions_;
  std::vector<std::unique_ptr<CompiledOutboundRule>> outbound_rules_;  // all, any site
  // Per site + 1 (index 0: no site): the outbound rules that apply, in evaluation order.
  std::vector<std::vector<const CompiledOutboundRule*>>
      outbound_by_site_;  // per Config::sites, from <location path="SITE">
  std::vector<std::unique_ptr<CompiledMap>> maps_;
  std::vector<std::unique_ptr<Variable>> variables_;
  size_t max_capture_pairs_ = 1;  // ovector size the scratch's match data needs
  bool reads_local_addr_ = false;
};

// Per-worker working memory for Router::route: match data, a JIT stack and string buffers,
// all reused. One scratch may serve successive Routers (config reloads), never two threads.
class RouteScratch {
 public:
  RouteScratch();
  ~RouteScratch();
  RouteScratch(const RouteScratch&) = delete;
  RouteScratch& operator=(const RouteScratch&) = delete;

  // Non-zero (a PCRE2 error code) when the last route()/outbound()/rewrite_body_url() with
  // this scratch stopped because a pattern match failed (a regex limit reached): the request
  // must fail, the decision is not to be used.
  int match_error() const;
  std::string match_error_text() const;

  struct Impl;  // defined in rule_evaluator.h

 private:
  friend class Router;
  std::unique_ptr<Impl> impl_;
};

}  // namespace harrow

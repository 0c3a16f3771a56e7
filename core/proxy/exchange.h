// What a client connection holds only while a request is being read, routed, forwarded and
// answered: the parser, the head, the route and server chosen, the outbound rules' state, the
// access log's facts. A connection idling between requests (keep-alive) holds none, so its
// memory is the socket, its timer and a few flags; it takes an Exchange from its worker's pool
// when request bytes arrive and gives it back when it is idle again with nothing left to parse.
// Pooled Exchanges keep the capacity of their strings and vectors, so a warm request does not
// allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "balancer/balancer.h"
#include "core/base/failure.h"
#include "core/base/peer_address.h"
#include "core/http1/http_head.h"
#include "core/http1/request_checks.h"
#include "core/http1/request_decoder.h"
#include "core/proxy/cache_phase.h"
#include "core/rewrite/html_rewriter.h"
#include "core/rewrite/router.h"

namespace harrow {

class UpstreamConnection;
struct ServerMetrics;
struct Snapshot;
struct WorkerEpoch;

// Everything of an Exchange that starts from its initial value again for each request: assigned
// afresh at a request's first byte (Exchange::begin_request), pipelined or not, so a field added
// here is reset without anyone remembering to.
struct ExchangeState {
  static constexpr int kMaxTried = 8;  // servers one request may fail on (retries ≤ this)

  // --- reading the request
  bool head_request = false;
  bool client_keep_alive = true;
  bool client_said_close = false;  // the request's own framing ends the connection
  bool request_chunked = false;
  bool request_has_body = false;
  bool request_done = false;
  uint64_t request_started_ms = 0;
  uint64_t body_activity_ms = 0;  // last read while a request body streams (clientBody)

  // --- routing and the server
  ServerMetrics* server_metrics = nullptr;       // the chosen server's counters (this worker's row)
  std::shared_ptr<balancer::Balancer> balancer;  // the one on_start() went to
  char log_id[37] = {0};                         // per-request GUID (ARR's X-ARR-LOG-ID)
  char max_forwards[12] = {0};
  std::string_view upstream_host;  // the Host sent upstream (points into head or config)
  int site = -1;
  std::string_view site_name;  // the request's IIS site (points into snap's config)
  UpstreamConnection* upstream = nullptr;
  int farm = -1;
  size_t server = 0;
  bool upstream_tls = false;  // the rule rewrote to https://FARM/: the server's httpsPort
  bool upstream_reused = false;
  bool upstream_paused = false;
  bool retried = false;
  bool in_flight_counted = false;
  bool set_affinity_cookie = false;  // the response pins the client to `server`
  size_t tried[kMaxTried] = {};
  int tried_count = 0;
  uint32_t retries = 0;  // new attempts made for this request (access log)
  uint64_t exchange_started_ns = 0;
  uint64_t connect_started_ns = 0;

  // --- the response cache (cache_phase.h); null: the farm does not cache or the request is
  // not cacheable
  std::shared_ptr<CacheWork> cache;
  CacheOutcome cache_outcome = CacheOutcome::None;

  // --- the response
  bool response_head_sent = false;
  bool response_chunked = false;
  bool response_done = false;
  bool output_draining = false;  // response done, waiting for the client to take it (clientSend)
  int status = 0;                // status of the response sent for this exchange, for metrics
  std::unique_ptr<HtmlRewriter> html;  // the body rewriter when outbound body rules apply
  uint64_t html_body_rules = 0;
  // Whole-body outbound rules (no filterByTags): their mask and held-back text; 0: none.
  uint64_t text_body_rules = 0;
  std::unique_ptr<BodyTextState> body_text;
  bool html_match_failed = false;  // a body rule's pattern reached the regex limits

  // --- the access log and failure lines
  const char* log_detail = nullptr;  // static text explaining a failure (llhttp's reason)
  std::string_view rule;             // the inbound rule that decided (points into snap's config)
  bool request_begun = false;
  bool access_logged = false;
  bool failed = false;
  int sent_status = 0;
  Failure failure = Failure::bad_request;
  int failure_uv_status = 0;
  int64_t connect_ms = -1;  // -1: no new connection was made
  int64_t header_ms = -1;   // request start to the server's response head; -1: none
  uint64_t request_bytes = 0;
  uint64_t response_bytes_at_start = 0;
  // The client's and the listener's addresses as text, formatted on first use (empty until).
  char peer_ip[PeerAddress::kIpText] = {0};
  char peer[PeerAddress::kIpPortText] = {0};  // "ip:port" as X-Forwarded-For carries it
  char local_ip[PeerAddress::kIpText] = {0};

  // --- WebSocket
  bool websocket = false;          // the request is a WebSocket upgrade
  bool tunnel_opening = false;     // the 101 head is queued; open_tunnel() comes next
  bool tunnel_counted = false;     // counted in the server's websocket_current
  bool tunnel_client_eof = false;  // the client finished sending
  bool tunnel_upstream_eof = false;
  bool tunnel_client_shut = false;  // FIN sent to the client (after the server's EOF)
  bool tunnel_upstream_shut = false;
  uint64_t tunnel_activity_ms = 0;  // last byte read or written either way
};

// ExchangeState plus the strings and vectors that keep their capacity from one request to the
// next (so a warm request does not allocate).
struct Exchange : ExchangeState {
  // A request's first byte: every ExchangeState field to its initial value. The decoder (in
  // the middle of the message) and the pinned configuration stay: pipelined requests read in
  // one go share them.
  void begin_request() {
    // A state clear() just reset is not assigned twice (the common case: keep-alive requests
    // one at a time take a cleared Exchange each).
    if (!state_fresh_) static_cast<ExchangeState&>(*this) = ExchangeState();
    state_fresh_ = false;
  }
  // Empties the exchange for the next use: every field to its initial value, shared state
  // (configuration, balancer, rewriter) let go, strings and vectors cleared but not shrunk.
  void clear();

  // The HTTP/1 decoder (framer, llhttp, head checks); it fills `head`.
  RequestDecoder decoder;
  // The configuration the exchange started on (WorkerEpoch, worker.h), pinned when its first
  // byte arrived, and its snapshot (the same as epoch->snapshot, kept at hand).
  std::shared_ptr<WorkerEpoch> epoch;
  const Snapshot* snap = nullptr;

  MessageHead head;
  // Set by the rules' <serverVariables>: copied, since the router's scratch is reused by the
  // next request on this worker before an upstream connect completes.
  std::vector<std::pair<std::string, std::string>> rule_header_text;
  std::vector<HeaderField> rule_headers;
  // Every server variable the inbound rules set, for the outbound rules (RequestFacts).
  std::vector<std::pair<int, std::string>> rule_variables;  // router.h SetVariable
  std::string target;                                       // rewritten origin-form target
  std::string hash_buffer;                                  // RequestHash key
  std::string rewritten_location;
  std::string rewritten_content_location;
  // Outbound rules: header values they set.
  std::vector<HeaderField> outbound_replace;
  std::vector<HeaderField> outbound_add;
  // (rule, value) of each header the outbound rules set, to name the rule in a refusal.
  std::vector<std::pair<std::string_view, std::string_view>> outbound_rule_values;
  std::string html_out;
  std::string text_out;  // whole-body outbound rules' output for the current piece
  // The path as the rules judged it: decoded and canonical (core/http1/url_path.h).
  std::string canonical_path;
  std::string detail_text;  // log_detail when it must name something (a rule)
  // An HTTP/1 client's chunked response: the last chunk with the server's trailer section
  // ("0\r\n" fields "\r\n"), when a server spoken to over HTTP/2 sent one.
  std::string response_trailers;

 private:
  bool state_fresh_ = true;  // ExchangeState is as constructed: begin_request() need not reset
};

// One worker's Exchanges: those in use and a bounded free list. Worker thread only.
class ExchangePool {
 public:
  // Free Exchanges kept for reuse; more are freed as they come back, so a burst of
  // simultaneous requests does not pin its peak for the worker's life. The bound is well above
  // what one loop turn hands back under hundreds of keep-alive clients; a bound below that
  // makes a worker free and allocate again Exchanges and their buffers on most requests, and
  // the bound costs little memory (bench/results/figures-from-comments.md). Under
  // AddressSanitizer none is kept: every give-back frees, so a use after an Exchange went back
  // is reported.
#if defined(__SANITIZE_ADDRESS__)
  static constexpr size_t kDefaultMaxFree = 0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  static constexpr size_t kDefaultMaxFree = 0;
#else
  static constexpr size_t kDefaultMaxFree = 1024;
#endif
#else
  static constexpr size_t kDefaultMaxFree = 1024;
#endif

  explicit ExchangePool(size_t max_free = kDefaultMaxFree) : max_free_(max_free) {}
  ~ExchangePool();
  ExchangePool(const ExchangePool&) = delete;
  ExchangePool& operator=(const ExchangePool&) = delete;

  // A cleared Exchange (its parser and framer still to be initialised by the taker).
  Exchange* take() {
    if (asleep_) wake();
    return take_one();
  }
  // Clears `ex` and keeps it for the next take(), or frees it when enough are kept.
  void give_back(Exchange* ex);

  size_t in_use() const {
    return in_use_;
  }
  size_t free_count() const {
    return free_.size();
  }
  // Frees the Exchanges that stayed in the free list since the last call (the fewest it held
  // meanwhile); returns how many.
  size_t trim();
  // The owner stopped trimming (nothing was left to give back): the next take() calls `fn`
  // once, so trimming resumes only when requests do.
  void sleep_until_taken(void (*fn)(void*), void* arg) {
    asleep_ = true;
    on_wake_ = fn;
    wake_arg_ = arg;
  }

 private:
  Exchange* take_one();
  void wake() {
    asleep_ = false;
    on_wake_(wake_arg_);
  }

  std::vector<Exchange*> free_;
  size_t low_ = 0;  // the fewest free Exchanges since the last trim()
  size_t in_use_ = 0;
  size_t max_free_;
  bool asleep_ = false;
  void (*on_wake_)(void*) = nullptr;
  void* wake_arg_ = nullptr;
};

}  // namespace harrow

// The proxy's named phases: what Harrow does with one exchange, whatever the client protocol.
// Each phase reads the exchange and the configuration the exchange pinned (Exchange::epoch,
// Exchange::snap) and the client side's facts (ClientSide); none does I/O. The connection
// (ClientConnection for HTTP/1) owns sockets, timers and its state machine and calls them in
// order:
//
//   choose_upstream()         site, canonical path, inbound rules, farm, server (or an answer)
//   build_upstream_request()  the head the server is sent (ARR's added headers, rules' headers)
//   build_client_response()   the head the client is sent (framing, cookies, outbound rules)
//   log_exchange()            the access log line; log_failure() the error line
//
// docs/architecture.md draws the path.
#pragma once

#include <uv.h>

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/base/failure.h"
#include "core/base/peer_address.h"
#include "core/http1/http_head.h"
#include "core/proxy/exchange.h"
#include "core/rewrite/router.h"

namespace harrow {

namespace tls {
class Session;
}

class Worker;
struct WorkerFarm;
struct ListenSocket;

// What the phases know of the client's connection.
struct ClientSide {
  const ListenSocket* listener = nullptr;
  const PeerAddress* peer = nullptr;
  tls::Session* tls = nullptr;       // null: plain HTTP (non-const: it formats its facts lazily)
  const uv_tcp_t* socket = nullptr;  // for the local address, looked up only when asked
  bool http2 = false;                // the request came as an HTTP/2 stream
};

// The client's address as text ("ip", "ip:port") and the address it connected to, formatted
// into the exchange on first use.
const char* client_ip(Exchange& ex, const ClientSide& client);
const char* client_ip_port(Exchange& ex, const ClientSide& client);
const char* local_ip(Exchange& ex, const ClientSide& client);
// The host the request names: an absolute-form target's authority, else its Host.
std::string_view request_host(const Exchange& ex);
// IIS's site bindings: a listener bound to host names answers only those.
bool listener_allows_host(const ListenSocket& listener, std::string_view host);
// The request as rules see it (rebuilt for outbound rules, which run on the response).
RequestFacts request_facts(Exchange& ex, const ClientSide& client);
// A rule pattern that reached the regex limits: logged at most once a second per worker.
void report_match_error(const Router& router, const RouteScratch& scratch);

// --- phase 1: choose upstream

struct UpstreamChoice {
  enum class Kind : uint8_t {
    Server,   // forward to `server` of ex.farm
    Respond,  // a Redirect or CustomResponse rule answers (status, reason, location, body)
    Fail,     // `failure` (ex.log_detail may say more)
    Abort,    // an AbortRequest rule: the connection ends without an answer
    Cached,   // the cache answers: write_cached_response() (cache_phase.h)
    Wait,     // another request is filling the cache for this one: wait_for_fill(), then
              // resume_after_cache_wait()
  };
  Kind kind = Kind::Fail;
  Failure failure = Failure::no_route;
  size_t server = 0;
  // Cached: the stale entry answers, and `server` is asked to revalidate it in the background
  // first (start_background_revalidation(), background_fill.h).
  bool revalidate = false;
  int status = 0;
  std::string_view reason;
  std::string_view body;
  std::string location;
};

// Matches the site, makes the path canonical, runs the inbound rules and picks the farm's
// server (affinity cookie, host affinity or the balancer). Sets ex.site, ex.farm, ex.rule,
// ex.target, the rules' headers and variables, and ex.set_affinity_cookie.
UpstreamChoice choose_upstream(Exchange& ex, const ClientSide& client, Worker& worker);
// After a Wait: Cached if the other request's response was stored, else the server to ask.
UpstreamChoice resume_after_cache_wait(Exchange& ex, const ClientSide& client, Worker& worker);

// --- phase 2: build the upstream request

// Writes the request line and head for ex.server of ex.farm into `out` (which says whether it
// overflowed or a rule made it unsafe). Sets ex.upstream_host.
void build_upstream_request(Exchange& ex, const ClientSide& client, HeadWriter& out);

// --- phase 3: build the client response

struct ResponseHeadResult {
  enum class Kind : uint8_t {
    Written,     // `out` holds the head to send
    Refused,     // the server's response cannot be forwarded (502; ex.log_detail says why)
    MatchError,  // an outbound rule's pattern reached the regex limits (500)
    UnsafeRule,  // an outbound rule put a control byte in a header (500 naming `rule`)
  };
  Kind kind = Kind::Written;
  const char* detail = nullptr;  // Refused
  std::string_view rule;         // UnsafeRule
  bool no_body = false;          // HEAD, 204, 304, 101
  // A 304 that refreshed a cached entry: the client is sent the entry, `status` and
  // `cached_body` (after the head).
  int status = 0;
  std::string_view cached_body;
};

// The final (non-interim) response head for the client from the server's `head`: framing from
// Harrow's own parse, ARR's header changes, the affinity cookie, the outbound rules (which may
// set up ex.html / ex.body_text for the body). `close` is in/out: true if the connection ends
// after this response (set here when the framing or the client requires it). Counts the
// server's first-byte time, live-failure status and affinity assignment.
ResponseHeadResult build_client_response(Exchange& ex, const ClientSide& client, Worker& worker,
                                         const MessageHead& head, int status, bool& close,
                                         HeadWriter& out);

// Outbound body rules (HTML links, whole-body text) over the next piece of the response body,
// or over what they held back when `last`: what goes to the client (in ex.html_out or
// ex.text_out). A pattern that failed sets ex.html_match_failed (the response is then cut).
std::string_view rewrite_response_body(Exchange& ex, const ClientSide& client, Worker& worker,
                                       std::string_view piece, bool last);

// The log detail of a rule that put a control byte in `where` (kept in ex.detail_text).
const char* unsafe_rule_detail(Exchange& ex, std::string_view rule, const char* where);

// Runs the whole-body outbound rules over the next piece of the body (ex.text_out holds the
// result); on a failed pattern sets ex.html_match_failed.
std::string_view rewrite_body_text(Exchange& ex, const ClientSide& client, Worker& worker,
                                   std::string_view piece, bool last);

// --- phase 4: log

// The request's access log line (once per exchange, however it ended).
void log_exchange(Exchange& ex, const ClientSide& client, Worker& worker, uint64_t bytes_sent);
// Counts a live-traffic failure against the exchange's server and tells the farm's prober;
// not when `uv_status` says this process ran out of something (descriptors, memory): that is
// no fault of the server, and a burst would otherwise take every server out of rotation.
void count_live_failure(const Exchange& ex, int uv_status = 0);
// The error log line for `failure`. `retried`: the attempt failed but the request goes on
// (another server, a new connection), so the line says "retry" where the status would be.
void log_failure(Exchange& ex, const ClientSide& client, Failure failure, int uv_status,
                 bool retried = false);

}  // namespace harrow

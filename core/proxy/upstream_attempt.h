// The server side of one exchange, whatever the client's protocol: counting it on the chosen
// server, taking a pooled connection or making one, sending the request head, the retry
// table's facts, and letting the connection go. ClientConnection (HTTP/1) and H2Stream
// (HTTP/2) each carry out the outcome on their own client side; what is decided about the
// server is decided here, once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "core/base/failure.h"
#include "core/proxy/exchange.h"
#include "core/proxy/phases.h"
#include "core/proxy/retry_policy.h"

namespace harrow {

class UpstreamEvents;
class Worker;

// Points `ex` at `server` of ex.farm: counts it in flight, tells the balancer, and takes an
// idle pooled connection for `owner` (true: ex.upstream is attached and the head may be sent
// at once) or returns false (the caller connects with connect_upstream()).
bool start_on_server(Exchange& ex, Worker& worker, size_t server, UpstreamEvents* owner);

// Starts a new connection to ex.server for `owner` (over TLS when ex.upstream_tls); the owner
// hears upstream_connected() or upstream_failed().
void connect_upstream(Exchange& ex, Worker& worker, UpstreamEvents* owner);

enum class RequestHeadResult : uint8_t { Queued, TooLarge, Unsafe };
// Prepares ex.upstream for the response and queues the request head in its output (not yet
// flushed). TooLarge / Unsafe: nothing was queued (the caller releases the connection).
RequestHeadResult queue_request_head(Exchange& ex, const ClientSide& client);

// Ends the chosen server's in-flight count and tells the balancer how the exchange went
// (`response_bytes`: what the client was sent of this response so far).
void end_in_flight(Exchange& ex, uint64_t response_bytes);

// Lets ex.upstream go: back to the pool if `reusable`, else closed (keeping a new TLS
// connection's session for the next one). Ends the in-flight count first.
void release_upstream(Exchange& ex, bool reusable, uint64_t response_bytes);

// An idempotent request, whole and without a body, not answered yet: it may be sent again.
bool may_replay(const Exchange& ex);

// What the retry table (retry_policy.h) says about `failure` of the current attempt, and the
// server to fail over to when it says FailOver. `held_at_head`: the client side has not read
// past the request head yet.
struct RetryPlan {
  RetryDecision decision;
  std::optional<size_t> next;
};
RetryPlan plan_retry(Exchange& ex, Worker& worker, Failure failure, bool held_at_head);

// Carries out a retry the plan decided (RetryFresh, FailOver, ReplaySame): counts it and starts
// the next attempt for `owner`. Pooled: a pooled connection was attached (send the head now);
// Connecting: a new connection is on its way (upstream_connected() follows); Answer: the plan
// said Fail, nothing was started.
enum class RetryStep : uint8_t { Pooled, Connecting, Answer };
RetryStep start_retry(Exchange& ex, Worker& worker, const ClientSide& client, const RetryPlan& plan,
                      Failure failure, int uv_status, UpstreamEvents* owner);

// A failed attempt that is retried, counted against its server (metrics, live-traffic
// failures) and logged as a "retry" line.
void count_retried_failure(Exchange& ex, const ClientSide& client, Failure failure, int uv_status);

// The counters of a failure Harrow answers (worker, listener, and the server when one was
// chosen; `health_failure` false: not the server's live-traffic failure; count_live_failure()
// decides with `uv_status` whether a server fault is the server's).
void count_answered_failure(Exchange& ex, Worker& worker, const ClientSide& client, Failure failure,
                            int uv_status, bool health_failure);

// The 4xx/5xx body Harrow sends with a failure's status: "502 Bad Gateway (token)\n".
std::string_view failure_body(Failure failure, char (&buffer)[160]);

}  // namespace harrow

#include "core/proxy/retry_policy.h"

namespace harrow {

bool is_server_fault(Failure failure) {
  switch (failure) {
    case Failure::upstream_connect_refused:
    case Failure::upstream_connect_failed:
    case Failure::upstream_connect_timeout:
    case Failure::upstream_reset:
    case Failure::upstream_invalid_response:
    case Failure::upstream_timeout:
    case Failure::upstream_truncated:
      return true;
    default:
      return false;
  }
}

namespace {

bool connect_failure(Failure f) {
  return f == Failure::upstream_connect_refused || f == Failure::upstream_connect_failed ||
         f == Failure::upstream_connect_timeout;
}

bool stale_pooled(const RetryFacts& f) {
  return f.pooled && !f.response_begun && !f.has_body && !f.fresh_retry_used &&
         (f.failure == Failure::upstream_reset || f.failure == Failure::upstream_truncated);
}

}  // namespace

bool wants_fail_over(const RetryFacts& f) {
  if (stale_pooled(f)) return false;
  // A connect failure sent nothing: a request still held at its head, or one without a body
  // (after a fresh retry, say), may go to another server whatever its method. A body already
  // streaming went into the lost connection and cannot. A reset before any answer to a
  // replayable request: what RFC 9110 §9.2.2 allows.
  bool eligible = (connect_failure(f.failure) && (f.held_at_head || !f.has_body)) ||
                  (f.failure == Failure::upstream_reset && f.replayable);
  return eligible && f.servers_failed < f.max_retries;
}

RetryDecision decide_retry(const RetryFacts& f) {
  if (stale_pooled(f)) return {RetryAction::RetryFresh, false};
  if (wants_fail_over(f) && f.other_server) return {RetryAction::FailOver, true};
  // Also when no other server is left to fail over to (a one-server farm).
  if (!f.pooled && f.failure == Failure::upstream_reset && f.replayable && !f.fresh_retry_used &&
      f.attempts == 0 && f.max_retries > 0) {
    return {RetryAction::ReplaySame, true};
  }
  // A pooled connection the server closed before answering says nothing of the server's health
  // even when it cannot be retried (a request with a body): the client gets its 502, the
  // server's live-traffic count stays as it was.
  bool stale = f.pooled && !f.response_begun &&
               (f.failure == Failure::upstream_reset || f.failure == Failure::upstream_truncated);
  return {RetryAction::Fail, is_server_fault(f.failure) && !stale};
}

}  // namespace harrow

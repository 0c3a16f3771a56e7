// What happens to a request whose server connection failed before its response began: one
// decision table, pure, so that each row has its unit test (tests/core/proxy/retry_policy_test.cc).
//
//  row | the failure                                             | action          | health
//  ----+---------------------------------------------------------+-----------------+--------
//   1  | a pooled connection reset/truncated before any response | RetryFresh      | no
//      | byte, request without a body, not retried yet (the      | (same server,   |
//      | server closed it as it was reused: RFC 9112 §9.3.1)     | new connection) |
//   2  | a connect failure while the request is held at its head | FailOver        | yes
//      | or has no body, or a reset of a replayable request,     | (another server)|
//      | retries left, and another server to try                 |                 |
//   3  | a new connection reset before any response byte, the    | ReplaySame      | yes
//      | request replayable, no attempt made yet, retries > 0    | (new connection)|
//   4  | anything else                                           | Fail            | if the
//   server's fault
//
// "Replayable": an idempotent method (RFC 9110 §9.2.2), the request whole and without a body,
// no response byte sent to the client. A POST is never sent twice.
#pragma once

#include <cstdint>

#include "core/base/failure.h"

namespace harrow {

struct RetryFacts {
  Failure failure = Failure::upstream_reset;
  bool pooled = false;            // the connection came from the keep-alive pool
  bool held_at_head = false;      // nothing of the request has left Harrow (still routing)
  bool replayable = false;        // see above
  bool response_begun = false;    // a response head went to the client
  bool has_body = false;          // the request has a body
  bool fresh_retry_used = false;  // row 1 or 3 already ran for this request
  uint32_t attempts = 0;          // new attempts already made for this request
  uint32_t servers_failed = 0;    // servers this request failed on so far
  uint32_t max_retries = 0;       // <limits retries>
  bool other_server = true;       // the balancer has a server not yet tried (row 2)
};

enum class RetryAction : uint8_t {
  RetryFresh,  // row 1
  FailOver,    // row 2
  ReplaySame,  // row 3
  Fail,        // row 4
};

struct RetryDecision {
  RetryAction action = RetryAction::Fail;
  // The failure counts against the server: its metrics' failures and live-traffic failures,
  // which feed passive health (ARR's live traffic checks).
  bool health_failure = false;
};

// Failures that say something about the server's health (ARR's live-traffic failures).
bool is_server_fault(Failure failure);

// Whether row 2 could apply if a server were found: the caller asks the balancer only then, and
// decides again with `other_server` false when it has none.
bool wants_fail_over(const RetryFacts& facts);

RetryDecision decide_retry(const RetryFacts& facts);

}  // namespace harrow

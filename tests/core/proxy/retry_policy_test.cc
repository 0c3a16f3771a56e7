// One test per row of the retry table (core/proxy/retry_policy.h), and the edges between rows.
#include "core/proxy/retry_policy.h"

#include <gtest/gtest.h>

namespace harrow {
namespace {

// A GET on a new connection to a farm with retries left: the starting point of each row.
RetryFacts get_request() {
  RetryFacts f;
  f.failure = Failure::upstream_reset;
  f.replayable = true;
  f.max_retries = 1;
  f.other_server = true;
  return f;
}

TEST(RetryPolicy, Row1StalePooledConnectionIsRetriedFreshAndBlamesNoOne) {
  RetryFacts f = get_request();
  f.pooled = true;
  RetryDecision d = decide_retry(f);
  EXPECT_EQ(d.action, RetryAction::RetryFresh);
  EXPECT_FALSE(d.health_failure);
  EXPECT_FALSE(wants_fail_over(f)) << "a multi-server farm retries the same server, no fail-over";
  f.failure = Failure::upstream_truncated;
  EXPECT_EQ(decide_retry(f).action, RetryAction::RetryFresh);
  f.replayable = false;  // a POST without a body: nothing of it reached the application either
  EXPECT_EQ(decide_retry(f).action, RetryAction::RetryFresh);
}

TEST(RetryPolicy, Row1OnlyOnceAndNeverAfterTheResponseBeganOrWithABody) {
  RetryFacts f = get_request();
  f.pooled = true;
  f.fresh_retry_used = true;
  EXPECT_NE(decide_retry(f).action, RetryAction::RetryFresh);
  f = get_request();
  f.pooled = true;
  f.response_begun = true;
  f.replayable = false;
  EXPECT_EQ(decide_retry(f).action, RetryAction::Fail);
  f = get_request();
  f.pooled = true;
  f.has_body = true;
  f.replayable = false;
  RetryDecision d = decide_retry(f);
  EXPECT_EQ(d.action, RetryAction::Fail);
  EXPECT_FALSE(d.health_failure) << "a pooled connection's close is not the server's failure";
}

TEST(RetryPolicy, Row2ConnectFailureAtTheHeadFailsOverForAnyMethod) {
  RetryFacts f = get_request();
  f.failure = Failure::upstream_connect_refused;
  f.held_at_head = true;
  f.replayable = false;  // a POST: nothing of it left Harrow
  EXPECT_TRUE(wants_fail_over(f));
  RetryDecision d = decide_retry(f);
  EXPECT_EQ(d.action, RetryAction::FailOver);
  EXPECT_TRUE(d.health_failure);
}

TEST(RetryPolicy, Row2AFreshRetryThatCannotConnectFailsOver) {
  // Row 1 ran (the server closed its pooled connection because it is going down), then the
  // fresh connection is refused: nothing was sent, so another server gets the request.
  RetryFacts f = get_request();
  f.failure = Failure::upstream_connect_refused;
  f.fresh_retry_used = true;
  f.attempts = 1;
  EXPECT_EQ(decide_retry(f).action, RetryAction::FailOver);
}

TEST(RetryPolicy, Row2ResetOfAReplayableRequestFailsOver) {
  RetryFacts f = get_request();
  EXPECT_EQ(decide_retry(f).action, RetryAction::FailOver);
}

TEST(RetryPolicy, Row2StopsWhenRetriesAreUsedUp) {
  RetryFacts f = get_request();
  f.servers_failed = 1;
  f.attempts = 1;
  EXPECT_FALSE(wants_fail_over(f));
  EXPECT_EQ(decide_retry(f).action, RetryAction::Fail);
  f = get_request();
  f.max_retries = 0;
  EXPECT_EQ(decide_retry(f).action, RetryAction::Fail) << "<limits retries=\"0\">";
}

TEST(RetryPolicy, Row3ReplaysOnTheSameServerWhenNoOtherIsLeft) {
  RetryFacts f = get_request();
  f.other_server = false;  // a one-server farm
  RetryDecision d = decide_retry(f);
  EXPECT_EQ(d.action, RetryAction::ReplaySame);
  EXPECT_TRUE(d.health_failure);
  f.fresh_retry_used = true;
  EXPECT_EQ(decide_retry(f).action, RetryAction::Fail);
  f = get_request();
  f.other_server = false;
  f.attempts = 1;
  EXPECT_EQ(decide_retry(f).action, RetryAction::Fail) << "only as the request's first retry";
}

TEST(RetryPolicy, Row4NonReplayableAndOtherFailuresFail) {
  RetryFacts f = get_request();
  f.replayable = false;  // a POST reset on a new connection: the server may have acted on it
  RetryDecision d = decide_retry(f);
  EXPECT_EQ(d.action, RetryAction::Fail);
  EXPECT_TRUE(d.health_failure);
  f = get_request();
  f.failure = Failure::upstream_connect_refused;
  f.held_at_head = false;  // its body was already streaming into the failed connection
  f.has_body = true;
  f.replayable = false;
  EXPECT_EQ(decide_retry(f).action, RetryAction::Fail);
  f = get_request();
  f.failure = Failure::client_aborted;
  d = decide_retry(f);
  EXPECT_EQ(d.action, RetryAction::Fail);
  EXPECT_FALSE(d.health_failure);
  f = get_request();
  f.failure = Failure::upstream_timeout;
  EXPECT_EQ(decide_retry(f).action, RetryAction::Fail) << "a timeout is not replayed";
}

}  // namespace
}  // namespace harrow

#include "core/proxy/upstream_attempt.h"

#include <algorithm>
#include <cstdio>
#include <span>

#include "core/proxy/h2_upstream_session.h"
#include "core/proxy/upstream_connection.h"
#include "core/proxy/worker.h"
#include "core/tls/tls_context.h"

namespace harrow {

bool start_on_server(Exchange& ex, Worker& worker, size_t server, UpstreamEvents* owner) {
  ex.server = server;
  ex.server_metrics = &worker.server_metrics(*ex.snap, ex.farm, ex.server);
  ex.server_metrics->in_flight.add();
  ex.in_flight_counted = true;
  ex.balancer = ex.epoch->farm(ex.farm).balancer;
  ex.balancer->on_start(ex.server);
  if (ex.websocket) ex.server_metrics->websocket_requests.add();
  UpstreamConnection* idle = worker.take_idle(*ex.epoch, ex.farm, ex.server, ex.upstream_tls);
  if (idle == nullptr) return false;
  ex.upstream = idle;
  ex.upstream_reused = true;
  idle->attach(owner);
  ex.server_metrics->connections_reused.add();
  return true;
}

void connect_upstream(Exchange& ex, Worker& worker, UpstreamEvents* owner) {
  const ServerEndpoint& endpoint = ex.snap->farms[ex.farm].servers[ex.server];
  ex.upstream = new UpstreamConnection(&worker, ex.snap, ex.farm, ex.server);
  ex.upstream_reused = false;
  ex.connect_started_ns = uv_hrtime();
  const sockaddr_storage* addr = &endpoint.addr;
  if (ex.snap->farms[ex.farm].http2) {
    // A stream on the worker's session to the server (a new session when none has room).
    H2UpstreamTarget target;
    target.addr = ex.upstream_tls ? endpoint.tls_addr : endpoint.addr;
    if (ex.upstream_tls) {
      const tls::ClientContexts::UpstreamTls& settings =
          ex.snap->tls_client->for_farm(ex.snap->farms[ex.farm].config->name);
      target.tls_ctx = settings.ctx;
      target.tls_name = endpoint.tls_name;
      target.tls_verify = settings.verify;
    }
    target.connect_timeout_ms = config::to_ms(ex.snap->config->timeouts.connect);
    target.idle_timeout_ms = config::to_ms(ex.snap->config->timeouts.upstream_idle);
    bool fresh = true;
    H2UpstreamSession* session = worker.h2_sessions().pick(target, fresh);
    ex.upstream->use_h2(session, ex.upstream_tls);
    // A stream on a session that is up is like a pooled connection: a server that refuses or
    // resets it before any response byte leaves the request to one fresh retry.
    ex.upstream_reused = !fresh;
    ex.upstream->connect(owner, reinterpret_cast<const sockaddr*>(&target.addr),
                         target.connect_timeout_ms);
    return;
  }
  if (ex.upstream_tls) {
    const SnapshotFarm& farm = ex.snap->farms[ex.farm];
    const tls::ClientContexts::UpstreamTls& settings =
        ex.snap->tls_client->for_farm(farm.config->name);
    ex.upstream->use_tls(settings.ctx, endpoint.tls_name, settings.verify,
                         ex.epoch->farm(ex.farm).servers[ex.server].tls_session);
    addr = &endpoint.tls_addr;
  }
  ex.upstream->connect(owner, reinterpret_cast<const sockaddr*>(addr),
                       config::to_ms(ex.snap->config->timeouts.connect));
}

void count_connected(Exchange& ex) {
  if (ex.upstream_reused) {
    // A stream on an HTTP/2 connection to the server that was already up: no connection was
    // opened for it (the access log's connect time stays "-").
    ex.server_metrics->connections_reused.add();
    return;
  }
  uint64_t connect_us = (uv_hrtime() - ex.connect_started_ns) / 1000;
  ex.server_metrics->connect_time.observe(connect_us);
  ex.server_metrics->connections_opened.add();  // counted once established, not per attempt
  ex.connect_ms = static_cast<int64_t>(connect_us / 1000);
}

RequestHeadResult queue_request_head(Exchange& ex, const ClientSide& client) {
  const config::ProtocolConfig& protocol = ex.snap->farms[ex.farm].config->protocol;
  ex.upstream->begin_exchange(ex.head_request, config::to_ms(protocol.timeout),
                              protocol.max_response_header_size);
  if (ex.websocket) ex.upstream->expect_upgrade();
  IoBlock* block = block_acquire();
  HeadWriter writer(block->data, block->capacity);
  build_upstream_request(ex, client, writer);
  RequestHeadResult result = RequestHeadResult::Queued;
  if (writer.unsafe()) {
    result = RequestHeadResult::Unsafe;
  } else if (writer.overflowed()) {
    result = RequestHeadResult::TooLarge;
  } else {
    ex.upstream->out().add(block, block->data, writer.size());
  }
  block_unref(block);  // the batch holds its own reference
  return result;
}

void end_in_flight(Exchange& ex, uint64_t response_bytes) {
  if (!ex.in_flight_counted) return;
  ex.in_flight_counted = false;
  ex.server_metrics->in_flight.sub();
  if (ex.balancer == nullptr) return;
  balancer::Finish finish;
  uint64_t now = uv_hrtime();
  finish.now_ns = now;
  finish.latency_ns = now - ex.exchange_started_ns;
  finish.bytes = ex.request_bytes + response_bytes;
  bool failed_status =
      ex.status != 0 && ex.snap->farms[ex.farm].live_failure_codes.matches(ex.status);
  finish.outcome =
      ex.response_done && !failed_status ? balancer::Outcome::Success : balancer::Outcome::Failure;
  ex.balancer->on_finish(ex.server, finish);
  ex.balancer.reset();
}

void release_upstream(Exchange& ex, bool reusable, uint64_t response_bytes) {
  end_in_flight(ex, response_bytes);
  if (ex.upstream == nullptr) return;
  UpstreamConnection* up = ex.upstream;
  ex.upstream = nullptr;
  ex.upstream_paused = false;
  if (up->tls() && !ex.upstream_reused && up->snapshot() == ex.snap) {
    // Kept per server for the next new connection's abbreviated handshake (a TLS 1.3 server
    // sends its ticket after the handshake, so it is taken once the exchange is over).
    if (auto session = up->tls_session()) {
      ex.epoch->farm(up->farm()).servers[up->server()].tls_session = std::move(session);
    }
  }
  up->release(reusable);
}

bool may_replay(const Exchange& ex) {
  // RFC 9110 §9.2.2's idempotent methods, whole (no body to replay) and not yet answered.
  llhttp_method_t method = ex.decoder.method();
  bool idempotent = method == HTTP_GET || method == HTTP_HEAD || method == HTTP_OPTIONS ||
                    method == HTTP_PUT || method == HTTP_DELETE || method == HTTP_TRACE;
  return idempotent && ex.request_done && !ex.request_has_body && !ex.response_head_sent;
}

namespace {

// A server of the farm this request has not failed on, or nullopt.
std::optional<size_t> other_server(Exchange& ex, Worker& worker) {
  // The server that failed is excluded with those failed before it (wants_fail_over() made
  // sure there is room for it in `tried`).
  ex.tried[ex.tried_count] = ex.server;
  WorkerFarm& farm = ex.epoch->farm(ex.farm);
  balancer::PickContext ctx{*farm.availability, worker.random()};
  ctx.exclude = std::span<const size_t>(ex.tried, static_cast<size_t>(ex.tried_count) + 1);
  return farm.balancer->pick(ctx);
}

}  // namespace

RetryPlan plan_retry(Exchange& ex, Worker& worker, Failure failure, bool held_at_head) {
  RetryFacts facts;
  facts.failure = failure;
  facts.pooled = ex.upstream_reused;
  facts.held_at_head = held_at_head;
  facts.replayable = may_replay(ex);
  facts.response_begun = ex.response_head_sent;
  facts.has_body = ex.request_has_body;
  facts.fresh_retry_used = ex.retried;
  facts.attempts = ex.retries;
  facts.servers_failed = static_cast<uint32_t>(ex.tried_count);
  facts.max_retries = std::min<uint32_t>(ex.snap->config->limits.retries, Exchange::kMaxTried);
  RetryPlan plan;
  if (wants_fail_over(facts)) {
    plan.next = other_server(ex, worker);
    facts.other_server = plan.next.has_value();
  }
  plan.decision = decide_retry(facts);
  return plan;
}

RetryStep start_retry(Exchange& ex, Worker& worker, const ClientSide& client, const RetryPlan& plan,
                      Failure failure, int uv_status, UpstreamEvents* owner) {
  switch (plan.decision.action) {
    case RetryAction::RetryFresh:
      // The server closed a pooled connection just as it was reused; nothing of the request
      // reached the application, so one fresh connection to the same server is safe.
      break;
    case RetryAction::FailOver:
      count_retried_failure(ex, client, failure, uv_status);
      ex.server_metrics->retries.add();
      ex.tried[ex.tried_count++] = ex.server;
      end_in_flight(ex, 0);
      // The client's cookie names the server that failed: pin it to the one that answers.
      if (ex.snap->farms[ex.farm].affinity_index != nullptr) ex.set_affinity_cookie = true;
      ++ex.retries;
      if (start_on_server(ex, worker, *plan.next, owner)) return RetryStep::Pooled;
      connect_upstream(ex, worker, owner);
      return RetryStep::Connecting;
    case RetryAction::ReplaySame:
      count_retried_failure(ex, client, failure, uv_status);
      break;
    case RetryAction::Fail:
      return RetryStep::Answer;
  }
  ex.retried = true;
  ++ex.retries;
  ex.server_metrics->retries.add();
  connect_upstream(ex, worker, owner);
  return RetryStep::Connecting;
}

void count_retried_failure(Exchange& ex, const ClientSide& client, Failure failure, int uv_status) {
  log_failure(ex, client, failure, uv_status, /*retried=*/true);
  ex.server_metrics->failures[static_cast<int>(failure)].add();
  count_live_failure(ex, uv_status);
}

void count_answered_failure(Exchange& ex, Worker& worker, const ClientSide& client, Failure failure,
                            int uv_status, bool health_failure) {
  worker.mutable_metrics().failures[static_cast<int>(failure)].add();
  worker.mutable_metrics()
      .listeners[client.listener->index]
      .failures[static_cast<int>(failure)]
      .add();
  if (ex.server_metrics != nullptr && ex.in_flight_counted) {
    ex.server_metrics->failures[static_cast<int>(failure)].add();
    if (health_failure && is_server_fault(failure)) count_live_failure(ex, uv_status);
  }
}

std::string_view failure_body(Failure failure, char (&buffer)[160]) {
  // The body names the reason token (core/base/failure.h), so a user with only curl sees why.
  int status = failure_status(failure);
  std::string_view reason = default_reason(status);
  std::string_view token = failure_token(failure);
  int n = std::snprintf(buffer, sizeof buffer, "%d %.*s (%.*s)\n", status,
                        static_cast<int>(reason.size()), reason.data(),
                        static_cast<int>(token.size()), token.data());
  return std::string_view(buffer, static_cast<size_t>(n));
}

}  // namespace harrow

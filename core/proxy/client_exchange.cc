// ClientConnection's exchange: from a parsed head to the response's end. It calls the proxy's
// phases (phases.h) and carries out what they decide on the connections: the server is used,
// the head sent, the response head and body relayed, failures retried (retry_policy.h) or
// answered, and the exchange finished so the next pipelined request may be read.

#include <algorithm>
#include <cstdio>
#include <optional>

#include "core/base/backpressure.h"
#include "core/base/log.h"
#include "core/proxy/client_connection.h"
#include "core/proxy/phases.h"
#include "core/proxy/retry_policy.h"
#include "core/proxy/worker.h"
#include "core/rewrite/router.h"
#include "core/tls/tls_session.h"

namespace harrow {

void ClientConnection::start_exchange() {
  disarm_timer();
  WorkerMetrics& metrics = worker_->mutable_metrics();
  metrics.requests.add();
  metrics.listeners[listener_->index].requests.add();
  if (worker_->stopping()) close_requested_ = true;
  if (!host_allowed(request_host(*ex_))) {
    respond_error(Failure::invalid_hostname, 0);
    return;
  }
  UpstreamChoice choice = choose_upstream(*ex_, client_side(), *worker_);
  switch (choice.kind) {
    case UpstreamChoice::Kind::Server:
      use_server(choice.server);  // inside run_parser's loop: it goes on parsing by itself
      return;
    case UpstreamChoice::Kind::Respond:
      respond_local(choice.status, choice.reason, choice.location, choice.body, true);
      return;
    case UpstreamChoice::Kind::Fail:
      respond_error(choice.failure, 0);
      return;
    case UpstreamChoice::Kind::Abort:
      abort_exchange(choice.failure, 0);
      return;
  }
}

void ClientConnection::end_in_flight() {
  if (!ex_->in_flight_counted) return;
  ex_->in_flight_counted = false;
  ex_->server_metrics->in_flight.sub();
  if (ex_->balancer == nullptr) return;
  balancer::Finish finish;
  uint64_t now = uv_hrtime();
  finish.now_ns = now;
  finish.latency_ns = now - ex_->exchange_started_ns;
  finish.bytes = ex_->request_bytes + (out_.total_bytes() - ex_->response_bytes_at_start);
  bool failed_status =
      ex_->status != 0 && ex_->snap->farms[ex_->farm].live_failure_codes.matches(ex_->status);
  finish.outcome = ex_->response_done && !failed_status ? balancer::Outcome::Success
                                                        : balancer::Outcome::Failure;
  ex_->balancer->on_finish(ex_->server, finish);
  ex_->balancer.reset();
}

bool ClientConnection::use_server(size_t server) {
  ex_->server = server;
  ex_->server_metrics = &worker_->server_metrics(*ex_->snap, ex_->farm, ex_->server);
  ex_->server_metrics->in_flight.add();
  ex_->in_flight_counted = true;
  ex_->balancer = ex_->epoch->farm(ex_->farm).balancer;
  ex_->balancer->on_start(ex_->server);
  if (ex_->websocket) ex_->server_metrics->websocket_requests.add();
  if (UpstreamConnection* idle =
          worker_->take_idle(*ex_->epoch, ex_->farm, ex_->server, ex_->upstream_tls)) {
    ex_->upstream = idle;
    ex_->upstream_reused = true;
    idle->attach(this);
    ex_->server_metrics->connections_reused.add();
    send_request_head();
    return true;
  }
  connect_upstream();
  return false;
}

bool ClientConnection::host_allowed(std::string_view host) const {
  if (listener_->host_names.empty()) return true;
  // Compare without the port: "shop.example.com:8080" is the binding "shop.example.com".
  size_t colon = host.rfind(':');
  if (colon != std::string_view::npos && host.find(']', colon) == std::string_view::npos) {
    host = host.substr(0, colon);
  }
  for (const std::string& name : listener_->host_names) {
    if (iequals(name, host)) return true;
  }
  return false;
}

void ClientConnection::connect_upstream() {
  const ServerEndpoint& endpoint = ex_->snap->farms[ex_->farm].servers[ex_->server];
  ex_->upstream = new UpstreamConnection(worker_, ex_->snap, ex_->farm, ex_->server);
  ex_->upstream_reused = false;
  ex_->connect_started_ns = uv_hrtime();
  const sockaddr_storage* addr = &endpoint.addr;
  if (ex_->upstream_tls) {
    const SnapshotFarm& farm = ex_->snap->farms[ex_->farm];
    const tls::ClientContexts::UpstreamTls& settings =
        ex_->snap->tls_client->for_farm(farm.config->name);
    ex_->upstream->use_tls(settings.ctx, endpoint.tls_name, settings.verify,
                           ex_->epoch->farm(ex_->farm).servers[ex_->server].tls_session);
    addr = &endpoint.tls_addr;
  }
  ex_->upstream->connect(this, reinterpret_cast<const sockaddr*>(addr),
                         config::to_ms(timeouts().connect));
}

void ClientConnection::upstream_connected() {
  uint64_t connect_us = (uv_hrtime() - ex_->connect_started_ns) / 1000;
  ex_->server_metrics->connect_time.observe(connect_us);
  ex_->server_metrics->connections_opened.add();  // counted once established, not per attempt
  ex_->connect_ms = static_cast<int64_t>(connect_us / 1000);
  send_request_head();
  run_parser();
}

void ClientConnection::send_request_head() {
  const config::ProtocolConfig& protocol = ex_->snap->farms[ex_->farm].config->protocol;
  ex_->upstream->begin_exchange(ex_->head_request, config::to_ms(protocol.timeout),
                                protocol.max_response_header_size);
  if (ex_->websocket) ex_->upstream->expect_upgrade();
  IoBlock* block = block_acquire();
  HeadWriter writer(block->data, block->capacity);
  build_upstream_request(*ex_, client_side(), writer);
  if (writer.overflowed() || writer.unsafe()) {
    block_unref(block);
    release_upstream(false);
    if (writer.unsafe()) {
      refuse_unsafe(ex_->rule, "the upstream request line or a request header");
    } else {
      respond_error(Failure::request_header_too_large, 0);
    }
    return;
  }
  ex_->upstream->out().add(block, block->data, writer.size());
  block_unref(block);  // the batch holds its own reference
  if (phase_ == Phase::Routing) {
    // First attempt: the body (if any) follows the head as the parser resumes.
    phase_ = Phase::Exchange;
    if (ex_->request_has_body) {
      ex_->body_activity_ms = uv_now(worker_->loop());
      arm_timer(config::to_ms(timeouts().client_body));
    }
    resume_parser();
  }
  if (ex_->upstream->out().flush() != 0)
    fail_upstream(Failure::upstream_reset, ex_->upstream->out().last_error());
}

void ClientConnection::request_complete() {
  ex_->request_done = true;
  if (ex_->response_done) finish_exchange();
}

void ClientConnection::upstream_head(const MessageHead& head, int status) {
  IoBlock* block = block_acquire();
  HeadWriter writer(block->data, block->capacity);
  if (status < 200 && status != 101) {
    // Interim responses (100 Continue, 103 Early Hints) mean nothing to an HTTP/1.0 client.
    // (Only an upgrade Harrow forwarded gets a 101 this far: upstream_connection.cc.)
    if (ex_->decoder.http11()) {
      ClientResponse response;
      response.status = status;
      response.reason = head.target();
      response.head = &head;
      response.keep_content_length = false;  // an interim head has no body (RFC 9112 §6.3)
      write_client_response(response, writer);
      // Copied next to what is staged: one read may bring many interim heads, and each must
      // not pin a block of its own before the read's backpressure check. An interim head a
      // rule made unsafe is dropped.
      if (!writer.unsafe()) out_.add_copy(block->data, writer.size(), false);
    }
    block_unref(block);
    return;
  }
  bool close = close_requested_;
  ResponseHeadResult result =
      build_client_response(*ex_, client_side(), *worker_, head, status, close, writer);
  close_requested_ = close;
  switch (result.kind) {
    case ResponseHeadResult::Kind::Written:
      break;
    case ResponseHeadResult::Kind::Refused:
      // The server's response cannot be forwarded as it is: the exchange fails with a 502 and
      // the server's connection, which would go on parsing, is closed first.
      block_unref(block);
      ex_->log_detail = result.detail;
      fail_upstream(Failure::upstream_invalid_response, 0);
      return;
    case ResponseHeadResult::Kind::MatchError:
      block_unref(block);
      release_upstream(false);
      respond_error(Failure::rule_match_error, 0);
      run_parser();
      return;
    case ResponseHeadResult::Kind::UnsafeRule:
      block_unref(block);
      release_upstream(false);
      refuse_unsafe(result.rule, "a response header");
      run_parser();
      return;
  }
  out_.add(block, block->data, writer.size());
  block_unref(block);
  ex_->status = status;
  ex_->sent_status = status;
  if (status == 101) {
    // The head goes out with this read's flush; upstream_read_end() opens the tunnel.
    phase_ = Phase::Tunnel;
    ex_->tunnel_opening = true;
    ex_->response_done = true;
  }
}

void ClientConnection::upstream_body(IoBlock* block, const char* data, size_t len) {
  if (ex_->html != nullptr || ex_->body_text != nullptr) {
    std::string_view piece(data, len);
    if (ex_->html != nullptr) {
      ex_->html_out.clear();
      ex_->html->feed(piece, ex_->html_out);
      piece = ex_->html_out;
    }
    if (!ex_->html_match_failed && ex_->body_text != nullptr) {
      ex_->text_out.clear();
      piece = rewrite_body_text(piece, false);
    }
    if (ex_->html_match_failed) {
      // The head is out: the body cannot go on without the rule, so the response ends here
      // (the client sees a cut response, never an unrewritten one).
      release_upstream(false);
      abort_exchange(Failure::rule_match_error, 0);
      return;
    }
    send_owned(piece);
    ex_->server_metrics->bytes_from_server.add(len);
    return;
  }
  if (ex_->response_chunked) {
    out_.add_chunk(block, data, len);
  } else {
    out_.add(block, data, len);
  }
  ex_->server_metrics->bytes_from_server.add(len);
}

std::string_view ClientConnection::rewrite_body_text(std::string_view piece, bool last) {
  return harrow::rewrite_body_text(*ex_, client_side(), *worker_, piece, last);
}

void ClientConnection::send_owned(std::string_view bytes) {
  // Copied behind what was staged before, so small pieces share blocks (see OutBatch).
  out_.add_copy(bytes.data(), bytes.size(), ex_->response_chunked);
}

void ClientConnection::upstream_read_end() {
  if (phase_ == Phase::Tunnel) {
    tunnel_upstream_read_end();
    return;
  }
  if (out_.flush() != 0) return;  // the client is gone; its read side will notice
  if (ex_->upstream != nullptr && !ex_->upstream_paused && out_.memory() > kWriteHighWater) {
    ex_->upstream->pause_reading();
    ex_->upstream_paused = true;
    // The client must take some of its response within clientSend (slow-read attack).
    arm_timer(config::to_ms(timeouts().client_send));
  }
}

void ClientConnection::upstream_complete(bool reusable) {
  ex_->server_metrics->response_time.observe((uv_hrtime() - ex_->exchange_started_ns) / 1000);
  if (ex_->html != nullptr || ex_->body_text != nullptr) {
    std::string_view piece;
    if (ex_->html != nullptr) {
      ex_->html_out.clear();
      ex_->html->finish(ex_->html_out);
      piece = ex_->html_out;
    }
    if (ex_->body_text != nullptr) {
      ex_->text_out.clear();
      piece = rewrite_body_text(piece, true);
    }
    // A pattern that failed this late cuts the response (its head is out).
    if (!ex_->html_match_failed) send_owned(piece);
    ex_->html.reset();
    ex_->body_text.reset();
    if (ex_->html_match_failed) {
      release_upstream(false);
      abort_exchange(Failure::rule_match_error, 0);
      return;
    }
  }
  if (ex_->response_chunked) out_.add_last_chunk();
  out_.flush();
  ex_->response_done = true;
  const config::FarmConfig& farm = *ex_->snap->farms[ex_->farm].config;
  release_upstream(reusable && ex_->request_done && farm.protocol.keep_alive &&
                   !worker_->stopping());
  if (ex_->request_done) {
    finish_exchange();
    run_parser();
  } else {
    // The server answered before the request body ended: the rest of it goes nowhere.
    close_after_flush();
  }
}

bool ClientConnection::may_replay() const {
  // RFC 9110 §9.2.2's idempotent methods, whole (no body to replay) and not yet answered.
  llhttp_method_t method = ex_->decoder.method();
  bool idempotent = method == HTTP_GET || method == HTTP_HEAD || method == HTTP_OPTIONS ||
                    method == HTTP_PUT || method == HTTP_DELETE || method == HTTP_TRACE;
  return idempotent && ex_->request_done && !ex_->request_has_body && !ex_->response_head_sent;
}

std::optional<size_t> ClientConnection::other_server() {
  // The server that failed is excluded with those failed before it (wants_fail_over() made
  // sure there is room for it in `tried`).
  ex_->tried[ex_->tried_count] = ex_->server;
  WorkerFarm& farm = ex_->epoch->farm(ex_->farm);
  balancer::PickContext ctx{*farm.availability, worker_->random()};
  ctx.exclude = std::span<const size_t>(ex_->tried, static_cast<size_t>(ex_->tried_count) + 1);
  return farm.balancer->pick(ctx);
}

void ClientConnection::count_server_failure(Failure failure, int uv_status) {
  harrow::log_failure(*ex_, client_side(), failure, uv_status, /*retried=*/true);
  ex_->server_metrics->failures[static_cast<int>(failure)].add();
  count_live_failure(*ex_, uv_status);
  count_websocket_failure();
}

void ClientConnection::upstream_failed(Failure failure, int uv_status) {
  ex_->upstream = nullptr;  // it closed itself (UpstreamConnection::fail)
  after_upstream_failure(failure, uv_status);
}

void ClientConnection::fail_upstream(Failure failure, int uv_status) {
  UpstreamConnection* up = ex_->upstream;
  ex_->upstream = nullptr;
  if (up != nullptr) up->close();  // the one close; it calls nothing back
  after_upstream_failure(failure, uv_status);
}

void ClientConnection::after_upstream_failure(Failure failure, int uv_status) {
  if (phase_ == Phase::Closed) return;
  if (phase_ == Phase::Tunnel) {
    // The server reset a tunnel: the 101 is long out, so the client's connection just ends.
    log_line(LogLevel::Info, "websocket tunnel log_id=%s client=%s ended: server %s", ex_->log_id,
             peer(),
             uv_status != 0 ? uv_err_name(uv_status) : std::string(failure_token(failure)).c_str());
    close();
    return;
  }
  RetryFacts facts;
  facts.failure = failure;
  facts.pooled = ex_->upstream_reused;
  facts.held_at_head = phase_ == Phase::Routing;
  facts.replayable = may_replay();
  facts.response_begun = ex_->response_head_sent;
  facts.has_body = ex_->request_has_body;
  facts.fresh_retry_used = ex_->retried;
  facts.attempts = ex_->retries;
  facts.servers_failed = static_cast<uint32_t>(ex_->tried_count);
  facts.max_retries = std::min<uint32_t>(ex_->snap->config->limits.retries, Exchange::kMaxTried);
  std::optional<size_t> next;
  if (wants_fail_over(facts)) {
    next = other_server();
    facts.other_server = next.has_value();
  }
  RetryDecision decision = decide_retry(facts);
  switch (decision.action) {
    case RetryAction::RetryFresh:
      // The server closed a pooled connection just as it was reused; nothing of the request
      // reached the application, so one fresh connection to the same server is safe.
      ex_->retried = true;
      ++ex_->retries;
      ex_->server_metrics->retries.add();
      connect_upstream();
      return;
    case RetryAction::FailOver:
      count_server_failure(failure, uv_status);
      ex_->server_metrics->retries.add();
      ex_->tried[ex_->tried_count++] = ex_->server;
      end_in_flight();
      // The client's cookie names the server that failed: pin it to the one that answers.
      if (ex_->snap->farms[ex_->farm].affinity_index != nullptr) ex_->set_affinity_cookie = true;
      ++ex_->retries;
      if (use_server(*next)) run_parser();  // called from a libuv callback, not the parser
      return;
    case RetryAction::ReplaySame:
      count_server_failure(failure, uv_status);
      ex_->retried = true;
      ++ex_->retries;
      ex_->server_metrics->retries.add();
      connect_upstream();
      return;
    case RetryAction::Fail:
      break;
  }
  if (failure == Failure::upstream_timeout && !ex_->request_done)
    failure = Failure::client_body_timeout;
  respond_error(failure, uv_status, decision.health_failure);
  run_parser();
}

void ClientConnection::upstream_write_done() {
  if (phase_ == Phase::Tunnel) {
    tunnel_upstream_write_done();
    return;
  }
  check_upstream_backpressure();
}

void ClientConnection::check_upstream_backpressure() {
  size_t queued = ex_->upstream != nullptr ? ex_->upstream->out().memory() : 0;
  if (queued > kWriteHighWater) {
    paused_for_backpressure_ = true;
    pause_reading();
  } else if (paused_for_backpressure_ && queued < kWriteLowWater) {
    paused_for_backpressure_ = false;
    resume_reading();
  }
}

void ClientConnection::release_upstream(bool reusable) {
  if (ex_ == nullptr) return;
  end_in_flight();
  if (ex_->upstream == nullptr) return;
  UpstreamConnection* up = ex_->upstream;
  ex_->upstream = nullptr;
  ex_->upstream_paused = false;
  if (up->tls() && !ex_->upstream_reused && up->snapshot() == ex_->snap) {
    // Kept per server for the next new connection's abbreviated handshake (a TLS 1.3 server
    // sends its ticket after the handshake, so it is taken once the exchange is over).
    if (auto session = up->tls_session()) {
      ex_->epoch->farm(up->farm()).servers[up->server()].tls_session = std::move(session);
    }
  }
  up->release(reusable);
}

void ClientConnection::finish_exchange() {
  if (out_.memory() > kWriteLowWater) {
    // The response is queued but the client is not taking it: the exchange ends (and the next
    // pipelined request is read) only once it does, as with nginx, so a client that pipelines
    // and never reads holds one response's worth of memory, not one per request. It has
    // clientSend to take it down to the low mark (on_write, on_deadline).
    ex_->output_draining = true;
    arm_timer(config::to_ms(timeouts().client_send));
    return;
  }
  log_access();
  if (ex_->server_metrics != nullptr && ex_->status != 0) {
    ex_->server_metrics->responses_by_class[ex_->status / 100 % 6].add();
  }
  ex_->status = 0;
  ex_->server_metrics = nullptr;
  phase_ = Phase::Idle;
  served_ = true;
  if (close_requested_) {
    // The client said this was its last request, all of it was read and the response is
    // wholly in the kernel: nothing can arrive that a close would answer with a reset, so
    // close now instead of a shutdown and a lingering read for the client's FIN.
    if (ex_->client_said_close && !ex_->failed && ex_->request_done &&
        (in_.block == nullptr || in_.unconsumed() == 0) &&
        uv_stream_get_write_queue_size(stream()) == 0) {
      close();
      return;
    }
    close_after_flush();
    return;
  }
  resume_parser();
  arm_timer(config::to_ms(timeouts().client_keep_alive));
}

void ClientConnection::respond_error(Failure failure, int uv_status, bool health_failure) {
  log_failure(failure, uv_status);
  ex_->failed = true;
  ex_->failure = failure;
  ex_->failure_uv_status = uv_status;
  worker_->mutable_metrics().failures[static_cast<int>(failure)].add();
  worker_->mutable_metrics().listeners[listener_->index].failures[static_cast<int>(failure)].add();
  if (ex_->server_metrics != nullptr && ex_->in_flight_counted) {
    ex_->server_metrics->failures[static_cast<int>(failure)].add();
    if (health_failure && is_server_fault(failure)) count_live_failure(*ex_, uv_status);
    count_websocket_failure();
  }
  release_upstream(false);
  int status = failure_status(failure);
  if (status == 0 || ex_->response_head_sent) {
    close();
    return;
  }
  if (status == 400 || status == 408 || status == 414 || status == 431 || status == 505)
    close_requested_ = true;  // framing in doubt
  // The body names the reason token (core/base/failure.h), so a user with only curl sees why.
  char body[160];
  std::string_view reason = default_reason(status);
  std::string_view token = failure_token(failure);
  int n =
      std::snprintf(body, sizeof body, "%d %.*s (%.*s)\n", status, static_cast<int>(reason.size()),
                    reason.data(), static_cast<int>(token.size()), token.data());
  respond_local(status, reason, {}, std::string_view(body, static_cast<size_t>(n)));
}

void ClientConnection::refuse_unsafe(std::string_view rule, const char* where) {
  ex_->detail_text.assign("rule \"").append(rule.empty() ? "-" : rule);
  ex_->detail_text.append("\" put a control character (CR, LF, NUL, ...) in ").append(where);
  ex_->log_detail = ex_->detail_text.c_str();
  respond_error(Failure::unsafe_rewrite, 0);
}

void ClientConnection::respond_local(int status, std::string_view reason, std::string_view location,
                                     std::string_view body, bool from_rule) {
  release_upstream(false);
  if (!ex_->client_keep_alive || (!ex_->request_done && ex_->request_has_body))
    close_requested_ = true;
  IoBlock* block = block_acquire();
  HeadWriter w(block->data, block->capacity);
  w << "HTTP/1.1 " << static_cast<uint64_t>(status) << " ";
  w.reason(reason.empty() ? default_reason(status) : reason) << "\r\n";
  if (!location.empty()) w.field("Location", location);
  w << "Content-Type: text/plain\r\nContent-Length: " << static_cast<uint64_t>(body.size())
    << "\r\n"
    << (close_requested_ ? "Connection: close\r\n" : "") << "\r\n";
  if (!ex_->head_request) w << body;
  if (w.unsafe()) {  // only text a rule produced can be unsafe here
    block_unref(block);
    refuse_unsafe(from_rule ? ex_->rule : std::string_view{}, "the status reason or Location");
    return;
  }
  if (w.overflowed()) {  // a rule's Location or body larger than a block: say so, briefly
    w = HeadWriter(block->data, block->capacity);
    w << "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
  }
  out_.add(block, block->data, w.size());
  block_unref(block);
  out_.flush();
  ex_->response_head_sent = true;
  ex_->response_done = true;
  ex_->sent_status = status;
  // Only a server's responses count in its status classes.
  ex_->status = (ex_->server_metrics != nullptr && ex_->status == 0) ? status : 0;
  if (phase_ == Phase::ReadingHead || phase_ == Phase::Idle || close_requested_) {
    // The request cannot be read on (bad head, timeout) or is not worth reading (a body
    // nobody will take): end the connection once the answer is out.
    phase_ = Phase::Exchange;
    log_access();
    close_after_flush();
    return;
  }
  phase_ = Phase::Exchange;
  if (ex_->request_done) {
    finish_exchange();
  } else {
    resume_parser();  // the parser reaches the request's end next
  }
}

void ClientConnection::log_failure(Failure failure, int uv_status) {
  harrow::log_failure(*ex_, client_side(), failure, uv_status);
}

const char* ClientConnection::peer() const {
  return client_ip_port(*ex_, client_side());
}

void ClientConnection::log_access() {
  if (ex_ == nullptr) return;
  log_exchange(*ex_, client_side(), *worker_, out_.total_bytes() - ex_->response_bytes_at_start);
}

void ClientConnection::abort_exchange(Failure failure, int uv_status) {
  log_failure(failure, uv_status);
  ex_->failed = true;
  ex_->failure = failure;
  ex_->failure_uv_status = uv_status;
  log_access();
  worker_->mutable_metrics().failures[static_cast<int>(failure)].add();
  worker_->mutable_metrics().listeners[listener_->index].failures[static_cast<int>(failure)].add();
  close();
}

}  // namespace harrow

// ClientConnection's exchange: from a parsed head to the response's end. It calls the proxy's
// phases (phases.h) and carries out what they decide on the connections: the server is used,
// the head sent, the response head and body relayed, failures retried (retry_policy.h) or
// answered, and the exchange finished so the next pipelined request may be read.

#include <algorithm>
#include <cstdio>
#include <optional>

#include "core/base/backpressure.h"
#include "core/base/log.h"
#include "core/proxy/background_fill.h"
#include "core/proxy/client_connection.h"
#include "core/proxy/phases.h"
#include "core/proxy/retry_policy.h"
#include "core/proxy/upstream_attempt.h"
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
  if (!listener_allows_host(*listener_, request_host(*ex_))) {
    respond_error(Failure::invalid_hostname, 0);
    return;
  }
  run_choice(choose_upstream(*ex_, client_side(), *worker_));
}

void ClientConnection::run_choice(const UpstreamChoice& choice) {
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
    case UpstreamChoice::Kind::Cached:
      if (choice.revalidate)
        start_background_revalidation(*ex_, *worker_, client_side(), choice.server);
      respond_cached();
      return;
    case UpstreamChoice::Kind::Wait:
      wait_for_fill(
          *ex_, *worker_,
          [](void* self) {
            auto* c = static_cast<ClientConnection*>(self);
            c->run_choice(resume_after_cache_wait(*c->ex_, c->client_side(), *c->worker_));
            c->run_parser();  // called from a libuv callback, not the parser
          },
          this);
      return;
  }
}

void ClientConnection::respond_cached() {
  release_upstream(false);
  if (!ex_->client_keep_alive || worker_->stopping()) close_requested_ = true;
  IoBlock* block = block_acquire();
  HeadWriter w(block->data, block->capacity);
  std::string_view body = write_cached_response(*ex_, close_requested_, ex_->decoder.http11(), w);
  if (w.overflowed() || w.unsafe()) {
    block_unref(block);
    ex_->log_detail = "cached response head larger than a block";
    respond_error(Failure::upstream_invalid_response, 0);
    return;
  }
  out_.add(block, block->data, w.size());
  block_unref(block);
  // Written from the stored entry itself (a reference, not a copy): a hit costs no memcpy.
  out_.add_pinned(ex_->cache->entry, body.data(), body.size());
  out_.flush();
  ex_->response_head_sent = true;
  ex_->response_done = true;
  ex_->sent_status = cached_response_status(*ex_);
  ex_->status = 0;
  phase_ = Phase::Exchange;
  if (close_requested_) {
    log_access();
    close_after_flush();
    return;
  }
  if (ex_->request_done) {
    finish_exchange();
  } else {
    resume_parser();
  }
}

void ClientConnection::end_in_flight() {
  harrow::end_in_flight(*ex_, out_.total_bytes() - ex_->response_bytes_at_start);
}

bool ClientConnection::use_server(size_t server) {
  if (start_on_server(*ex_, *worker_, server, this)) {
    send_request_head();
    return true;
  }
  connect_upstream();
  return false;
}

void ClientConnection::connect_upstream() {
  harrow::connect_upstream(*ex_, *worker_, this);
}

void ClientConnection::upstream_connected() {
  count_connected(*ex_);
  send_request_head();
  run_parser();
}

void ClientConnection::send_request_head() {
  switch (queue_request_head(*ex_, client_side())) {
    case RequestHeadResult::Queued:
      break;
    case RequestHeadResult::Unsafe:
      release_upstream(false);
      refuse_unsafe(ex_->rule, "the upstream request line or a request header");
      return;
    case RequestHeadResult::TooLarge:
      release_upstream(false);
      respond_error(Failure::request_header_too_large, 0);
      return;
  }
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
  if (!result.cached_body.empty())
    out_.add_pinned(ex_->cache->entry, result.cached_body.data(), result.cached_body.size());
  if (result.status != 0) status = result.status;
  ex_->status = status;
  ex_->sent_status = status;
  if (status == 101) {
    // The head goes out with this read's flush; upstream_read_end() opens the tunnel.
    phase_ = Phase::Tunnel;
    ex_->tunnel_opening = true;
    ex_->response_done = true;
  }
}

void ClientConnection::upstream_trailers(std::span<const http2::Field> fields) {
  // Carried in the chunked body's trailer section (RFC 9112 §7.1.2); fields that frame the
  // message are not trailers.
  std::string& out = ex_->response_trailers;
  out = "0\r\n";
  for (const http2::Field& f : fields) {
    if (http2::connection_specific(f.name) || f.name == "content-length") continue;
    out.append(f.name);
    out.append(": ");
    out.append(f.value);
    out.append("\r\n");
  }
  out.append("\r\n");
}

void ClientConnection::upstream_body(IoBlock* block, const char* data, size_t len) {
  if (ex_->cache != nullptr) cache_fill_body(*ex_, std::string_view(data, len));
  if (ex_->html != nullptr || ex_->body_text != nullptr) {
    std::string_view piece =
        rewrite_response_body(*ex_, client_side(), *worker_, std::string_view(data, len), false);
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
  if (ex_->cache != nullptr) cache_fill_complete(*ex_);
  ex_->server_metrics->response_time.observe((uv_hrtime() - ex_->exchange_started_ns) / 1000);
  if (ex_->html != nullptr || ex_->body_text != nullptr) {
    std::string_view piece = rewrite_response_body(*ex_, client_side(), *worker_, {}, true);
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
  if (ex_->response_chunked) {
    if (ex_->response_trailers.empty()) {
      out_.add_last_chunk();
    } else {
      out_.add_copy(ex_->response_trailers.data(), ex_->response_trailers.size(), false);
    }
  }
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
  RetryPlan plan = plan_retry(*ex_, *worker_, failure, phase_ == Phase::Routing);
  RetryAction action = plan.decision.action;
  if (action == RetryAction::FailOver || action == RetryAction::ReplaySame) {
    count_websocket_failure();  // the attempt failed; the request goes on
  }
  switch (start_retry(*ex_, *worker_, client_side(), plan, failure, uv_status, this)) {
    case RetryStep::Pooled:
      send_request_head();
      run_parser();  // called from a libuv callback, not the parser
      return;
    case RetryStep::Connecting:
      return;
    case RetryStep::Answer:
      break;
  }
  if (failure == Failure::upstream_timeout && !ex_->request_done)
    failure = Failure::client_body_timeout;
  respond_error(failure, uv_status, plan.decision.health_failure);
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
  harrow::release_upstream(*ex_, reusable, out_.total_bytes() - ex_->response_bytes_at_start);
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
  if (ex_->server_metrics != nullptr && ex_->in_flight_counted) count_websocket_failure();
  count_answered_failure(*ex_, *worker_, client_side(), failure, uv_status, health_failure);
  release_upstream(false);
  if (!ex_->response_head_sent && cache_stale_on_error(*ex_, 0)) {
    respond_cached();  // stale-if-error
    return;
  }
  int status = failure_status(failure);
  if (status == 0 || ex_->response_head_sent) {
    close();
    return;
  }
  if (status == 400 || status == 408 || status == 414 || status == 431 || status == 505)
    close_requested_ = true;  // framing in doubt
  char body[160];
  respond_local(status, default_reason(status), {}, failure_body(failure, body));
}

void ClientConnection::refuse_unsafe(std::string_view rule, const char* where) {
  ex_->log_detail = unsafe_rule_detail(*ex_, rule, where);
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

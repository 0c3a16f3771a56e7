#include "core/proxy/client_connection.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "core/base/backpressure.h"
#include "core/base/log.h"
#include "core/rewrite/router.h"
#include "core/tls/tls_session.h"
#include "core/http1/url_path.h"
#include "core/proxy/phases.h"
#include "core/proxy/retry_policy.h"
#include "core/proxy/worker.h"

namespace harrow {

// An idle keep-alive connection is this object (plus its socket's kernel state): per-request
// state lives in an Exchange (core/exchange.h) taken only while a request is under way. Issue 11
// budgets 1 KiB of RSS per idle connection; a member added here costs every idle connection,
// so it belongs in the Exchange unless the connection needs it between requests.
static_assert(sizeof(ClientConnection) <= 480, "an idle connection's size grew: see above");

namespace {

constexpr size_t kHighWater = kWriteHighWater;
constexpr size_t kLowWater = kWriteLowWater;
constexpr uint64_t kLingerMs = 2000;
// At a stop, how long a connection accepted just before it may take to send its first request.
constexpr uint64_t kFirstRequestGraceMs = 1000;

uint64_t ms(config::Millis m) {
  return static_cast<uint64_t>(m.count());
}

}  // namespace

void ClientConnection::accept_from(Worker* worker, uv_stream_t* server,
                                   const ListenSocket* listener) {
  auto* c = new ClientConnection(worker, listener);
  if (uv_accept(server, c->stream()) != 0) {
    c->close();
    return;
  }
  WorkerMetrics& m = worker->mutable_metrics();
  m.connections_accepted.add();
  ListenerMetrics& lm = m.listeners[listener->index];
  lm.connections_accepted.add();
  if (m.connections_active.get() >= worker->connection_limit()) {
    c->refuse_overloaded(Failure::overloaded);
    return;
  }
  c->start();
}

void ClientConnection::refuse_overloaded(Failure failure) {
  // Over the limit Harrow answers rather than pausing accept(): a paused listener leaves
  // clients hanging in the kernel's backlog with no clue, a 503 names the reason (DESIGN.md,
  // story 2). The answer is written without reading the request, and the connection lingers
  // briefly so the client's unread request does not turn the close into a reset.
  WorkerMetrics& m = worker_->mutable_metrics();
  ListenerMetrics& lm = m.listeners[listener_->index];
  m.connections_rejected.add();
  lm.connections_rejected.add();
  m.failures[static_cast<int>(failure)].add();
  lm.failures[static_cast<int>(failure)].add();
  worker_->log_overloaded(failure);
  if (listener_->tls) {
    close();  // a plain-text answer means nothing to a TLS client
    return;
  }
  static constexpr std::string_view kOverloaded =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 37\r\n"
      "Connection: close\r\n\r\n503 Service Unavailable (overloaded)\n";
  static constexpr std::string_view kPerClient =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 50\r\n"
      "Connection: close\r\n\r\n503 Service Unavailable (client_connection_limit)\n";
  std::string_view answer = failure == Failure::overloaded ? kOverloaded : kPerClient;
  uv_buf_t buf = uv_buf_init(const_cast<char*>(answer.data()), answer.size());
  if (uv_try_write(stream(), &buf, 1) != static_cast<int>(answer.size())) {
    close();
    return;
  }
  close_after_flush();
}

ClientConnection::ClientConnection(Worker* worker, const ListenSocket* listener)
    : worker_(worker), listener_(listener), out_(stream(), &ClientConnection::on_write) {
  uv_tcp_init(worker->loop(), &tcp_);
  tcp_.data = this;
  deadline_.owner = this;
  open_handles_ = 1;
  worker->connection_opened(this);
}

const config::TimeoutsConfig& ClientConnection::timeouts() const {
  return ex_ != nullptr ? ex_->snap->config->timeouts : worker_->config().timeouts;
}

void ClientConnection::start() {
  worker_->mutable_metrics().connections_active.add();
  worker_->mutable_metrics().listeners[listener_->index].connections_active.add();
  counted_active_ = true;
  // TCP_NODELAY comes from the listening socket (core/listen.cc).
  sockaddr_storage peer{};
  int len = sizeof peer;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    peer_address_ = PeerAddress::from(reinterpret_cast<const sockaddr*>(&peer));
  }
  const config::LimitsConfig& limits = worker_->config().limits;
  if (limits.max_connections_per_client != 0) {
    char ip[PeerAddress::kIpText];
    peer_address_.format_ip(ip, sizeof ip);
    if (!worker_->client_ip_opened(ip, limits.max_connections_per_client)) {
      refuse_overloaded(Failure::client_connection_limit);
      return;
    }
    per_client_counted_ = true;
  }
  if (listener_->tls && !start_tls()) {
    close();
    return;
  }
  resume_reading();
  arm_timer(ms(timeouts().client_header));
}

// ---------------------------------------------------------------- reading and parsing

void ClientConnection::pause_reading() {
  if (reading_) uv_read_stop(stream());
  reading_ = false;
}

void ClientConnection::resume_reading() {
  if (reading_ || phase_ == Phase::Closed || paused_for_backpressure_) return;
  if (uv_read_start(stream(), &ClientConnection::on_alloc, &ClientConnection::on_read_cb) == 0) {
    reading_ = true;
  }
}

void ClientConnection::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* c = static_cast<ClientConnection*>(h->data);
  *buf = c->tls_ == nullptr ? c->in_.next_read_buffer() : c->tls_->read_buffer();
}

void ClientConnection::on_read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  static_cast<ClientConnection*>(s->data)->on_read(nread);
}

void ClientConnection::on_read(ssize_t nread) {
  if (phase_ == Phase::Closed || nread == 0) return;
  if (phase_ == Phase::Tunnel) {
    if (tls_ != nullptr && nread > 0) {
      tls_tunnel_read(static_cast<size_t>(nread));
    } else {
      tunnel_client_read(nread);
    }
    return;
  }
  if (nread == UV_ENOBUFS) {
    pause_reading();  // a paused parser's bytes fill the buffer; reading resumes with it
    return;
  }
  if (nread < 0) {
    switch (phase_) {
      case Phase::Idle:
      case Phase::ReadingHead:
      case Phase::Lingering:
        close();
        return;
      default:
        abort_exchange(Failure::client_aborted, static_cast<int>(nread));
        return;
    }
  }
  if (tls_ != nullptr) {
    tls_->received(static_cast<size_t>(nread));
    if (phase_ == Phase::Lingering) {
      tls_->discard_input();  // the response is out, the connection is ending
      return;
    }
    if (!tls_receive()) return;
  } else {
    in_.commit(static_cast<size_t>(nread));
  }
  if (phase_ == Phase::Lingering) {
    in_.parse_pos = in_.fill;  // discarded: the response is out, the connection is ending
    return;
  }
  if (ex_ != nullptr) {
    if (ex_->upstream != nullptr) ex_->upstream->touch();
    ex_->body_activity_ms = uv_now(worker_->loop());
  }
  run_parser();
}

void ClientConnection::resume_parser() {
  if (ex_ != nullptr) ex_->decoder.resume();
}

void ClientConnection::take_exchange() {
  ex_ = worker_->exchanges().take();
  // Everything this exchange reads comes from the configuration current now (WorkerEpoch).
  ex_->epoch = worker_->epoch();
  ex_->snap = ex_->epoch->snapshot.get();
  ex_->decoder.reset(ex_->epoch->request_limits, &ex_->head, this);
  worker_->mutable_metrics().exchanges_active.add();
}

void ClientConnection::give_back_exchange_if_idle() {
  // Only between messages: nothing unparsed (a pipelined request keeps it), no parser or
  // framer state that the next bytes depend on, no server connection that could call back.
  if (ex_ == nullptr || phase_ != Phase::Idle || closing_after_flush_ || ex_->upstream != nullptr ||
      !ex_->decoder.between_messages()) {
    return;
  }
  if ((in_.block != nullptr && in_.unconsumed() > 0) || (tls_ != nullptr && tls_->has_buffered())) {
    return;
  }
  worker_->exchanges().give_back(ex_);
  ex_ = nullptr;
  worker_->mutable_metrics().exchanges_active.sub();
}

void ClientConnection::run_parser() {
  if (ex_ == nullptr) {
    bool input =
        (in_.block != nullptr && in_.unconsumed() > 0) || (tls_ != nullptr && tls_->has_buffered());
    if (phase_ != Phase::Idle || closing_after_flush_ || !input) {
      // Nothing to parse (a TLS handshake's records, a spurious wake-up): stay without one.
      if (phase_ == Phase::Idle) in_.release_if_drained();
      resume_reading();
      return;
    }
    take_exchange();
  }
  while (!ex_->decoder.paused() && phase_ != Phase::Closed && phase_ != Phase::Lingering &&
         !closing_after_flush_) {
    uint32_t available = in_.block != nullptr ? in_.unconsumed() : 0;
    const char* begin = in_.block != nullptr ? in_.parse_begin() : "";
    RequestDecoder::Step step = ex_->decoder.decode(begin, available);
    ex_->request_bytes += step.consumed;
    if (in_.block != nullptr) in_.parse_pos += step.consumed;
    if (step.status == RequestDecoder::Status::Rejected) {
      reject_request(ex_->decoder.rejection().failure, ex_->decoder.rejection().detail);
      return;
    }
    if (step.status == RequestDecoder::Status::NeedInput) {
      // Plaintext that did not fit before may wait in the TLS session.
      if (tls_ != nullptr && tls_->has_buffered() && tls_receive()) {
        uint32_t now = in_.block != nullptr ? in_.unconsumed() : 0;
        if (now > available - step.consumed) continue;
      }
      break;
    }
    on_parser_paused();
  }
  if (phase_ == Phase::Closed) return;
  if (ex_->upstream != nullptr && phase_ == Phase::Exchange) {
    if (ex_->upstream->out().flush() != 0) {
      fail_upstream(Failure::upstream_reset, ex_->upstream->out().last_error());
      return;
    }
    check_upstream_backpressure();
  }
  if (phase_ == Phase::Idle) in_.release_if_drained();
  bool paused = ex_->decoder.paused();
  give_back_exchange_if_idle();
  if (!paused) resume_reading();
}

void ClientConnection::reject_request(Failure failure, const char* detail) {
  ex_->log_detail = detail;
  if (phase_ == Phase::Idle) {
    // Nothing of the request reached llhttp: start its bookkeeping here for the logs.
    ex_->head.reset(0);
    request_begin();
    ex_->log_detail = detail;
  }
  if (phase_ == Phase::Exchange && ex_->response_head_sent) {
    abort_exchange(failure, 0);
    return;
  }
  release_upstream(false);
  close_requested_ = true;  // whatever follows on this connection cannot be trusted
  respond_error(failure, 0);
}

void ClientConnection::on_parser_paused() {
  if (phase_ == Phase::Routing) {
    if (ex_->decoder.head_rejected()) {
      disarm_timer();
      ex_->log_detail = ex_->decoder.rejection().detail;
      // What follows a refused head (its body, a CONNECT tunnel) is not read as requests.
      close_requested_ = true;
      respond_error(ex_->decoder.rejection().failure, 0);
      return;
    }
    start_exchange();
  } else {
    request_complete();
  }
}

void ClientConnection::request_begin() {
  phase_ = Phase::ReadingHead;
  ex_->request_done = ex_->response_head_sent = ex_->response_done = false;
  ex_->response_chunked = ex_->retried = ex_->upstream_reused = false;
  ex_->tried_count = 0;
  ex_->retries = 0;
  ex_->connect_ms = -1;
  ex_->header_ms = -1;
  ex_->farm = -1;
  ex_->log_detail = nullptr;
  ex_->request_begun = true;
  ex_->access_logged = false;
  ex_->sent_status = 0;
  ex_->failed = false;
  ex_->failure_uv_status = 0;
  ex_->request_bytes = 0;
  ex_->response_bytes_at_start = out_.total_bytes();
  ex_->log_id[0] = '\0';
  ex_->site_name = {};
  ex_->site = -1;
  ex_->html.reset();
  ex_->request_started_ms = uv_now(worker_->loop());
  arm_timer(ms(timeouts().client_header));
}

void ClientConnection::request_head() {
  const RequestDecoder& d = ex_->decoder;
  ex_->head_request = d.method() == HTTP_HEAD;
  ex_->client_keep_alive = d.keep_alive() && !d.upgrade();
  ex_->client_said_close = !d.keep_alive();
  ex_->request_chunked = d.chunked();
  ex_->request_has_body = d.has_body();
  ex_->websocket = d.websocket();
  phase_ = Phase::Routing;
}

void ClientConnection::request_body(const char* data, size_t len) {
  if (ex_->upstream == nullptr) return;  // answered locally or upstream gone: discard
  if (ex_->request_chunked) {
    ex_->upstream->out().add_chunk(in_.block, data, len);
  } else {
    ex_->upstream->out().add(in_.block, data, len);
  }
  ex_->server_metrics->bytes_to_server.add(len);
}

void ClientConnection::request_end() {
  if (ex_->upstream != nullptr && ex_->request_chunked) ex_->upstream->out().add_last_chunk();
}

// ---------------------------------------------------------------- the exchange

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
  if (UpstreamConnection* idle = worker_->take_idle(*ex_->epoch, ex_->farm, ex_->server, ex_->upstream_tls)) {
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
    const FarmRuntime& farm = ex_->snap->farms[ex_->farm];
    const tls::ClientContexts::Farm& settings = ex_->snap->tls_client->for_farm(farm.config->name);
    ex_->upstream->use_tls(settings.ctx, endpoint.tls_name, settings.verify,
                           ex_->epoch->farm(ex_->farm).servers[ex_->server].tls_session);
    addr = &endpoint.tls_addr;
  }
  ex_->upstream->connect(this, reinterpret_cast<const sockaddr*>(addr),
                         ms(timeouts().connect));
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
  ex_->upstream->begin_exchange(ex_->head_request, ms(protocol.timeout),
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
      arm_timer(ms(timeouts().client_body));
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
  if (ex_->upstream != nullptr && !ex_->upstream_paused && out_.memory() > kHighWater) {
    ex_->upstream->pause_reading();
    ex_->upstream_paused = true;
    // The client must take some of its response within clientSend (slow-read attack).
    arm_timer(ms(timeouts().client_send));
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
  FarmState& farm = ex_->epoch->farm(ex_->farm);
  balancer::PickContext ctx{*farm.availability, worker_->random()};
  ctx.exclude = std::span<const size_t>(ex_->tried, static_cast<size_t>(ex_->tried_count) + 1);
  return farm.balancer->pick(ctx);
}

void ClientConnection::count_server_failure(Failure failure, int uv_status) {
  log_failure(failure, uv_status);
  ex_->server_metrics->failures[static_cast<int>(failure)].add();
  ex_->server_metrics->live_failures.add();
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
  if (queued > kHighWater) {
    paused_for_backpressure_ = true;
    pause_reading();
  } else if (paused_for_backpressure_ && queued < kLowWater) {
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
  if (out_.memory() > kLowWater) {
    // The response is queued but the client is not taking it: the exchange ends (and the next
    // pipelined request is read) only once it does, as with nginx, so a client that pipelines
    // and never reads holds one response's worth of memory, not one per request. It has
    // clientSend to take it down to the low mark (on_write, on_deadline).
    ex_->output_draining = true;
    arm_timer(ms(timeouts().client_send));
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
  arm_timer(ms(timeouts().client_keep_alive));
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
    if (health_failure && is_server_fault(failure)) ex_->server_metrics->live_failures.add();
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
  // The body names the reason token, so a user with only curl sees why (story 2 of DESIGN.md).
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

// ---------------------------------------------------------------- writing, timers, closing

void ClientConnection::on_write(uv_write_t* req, int status) {
  auto* c = static_cast<ClientConnection*>(req->handle->data);
  write_request_finish(req);
  c->out_.write_done();
  if (c->phase_ == Phase::Closed) return;
  if (c->phase_ == Phase::Tunnel && status >= 0) {
    c->tunnel_client_write_done();
    return;
  }
  if (status < 0) {
    if (c->phase_ == Phase::Exchange || c->phase_ == Phase::Routing) {
      c->abort_exchange(Failure::client_aborted, status);
    } else {
      c->close();
    }
    return;
  }
  if (c->ex_ != nullptr && c->ex_->output_draining && c->out_.memory() <= kLowWater) {
    c->ex_->output_draining = false;
    c->disarm_timer();
    c->finish_exchange();
    c->run_parser();  // the next pipelined request, if any
    return;
  }
  if (c->ex_ != nullptr && c->ex_->upstream_paused && c->ex_->upstream != nullptr &&
      c->out_.memory() < kLowWater) {
    c->ex_->upstream_paused = false;
    c->disarm_timer();
    if (!c->ex_->request_done && c->ex_->request_has_body) {
      c->arm_timer(ms(c->timeouts().client_body));  // the body still streams
    }
    c->ex_->upstream->resume_reading();
  }
}

void ClientConnection::close_after_flush() {
  if (closing_after_flush_ || phase_ == Phase::Closed) return;
  closing_after_flush_ = true;
  disarm_timer();
  if (tls_ != nullptr) tls_->shutdown();  // close_notify, ahead of the FIN
  // uv_shutdown waits for queued writes, then sends FIN.
  if (start_shutdown() != 0) {
    close();
    return;
  }
  // A client that does not read what is still queued has clientSend to take it (on_deadline).
  if (out_.in_flight() != 0) arm_timer(ms(timeouts().client_send));
}

int ClientConnection::start_shutdown() {
  // Allocated per shutdown (at most twice in a connection's life) rather than kept in every
  // idle connection; libuv calls on_shutdown for it even when the handle closes first.
  auto* req = new uv_shutdown_t;
  req->data = this;
  int rc = uv_shutdown(req, stream(), &ClientConnection::on_shutdown);
  if (rc != 0) delete req;
  return rc;
}

void ClientConnection::on_shutdown(uv_shutdown_t* req, int status) {
  auto* c = static_cast<ClientConnection*>(req->data);
  delete req;
  if (c->phase_ == Phase::Closed) return;
  if (c->phase_ == Phase::Tunnel) {
    c->tunnel_client_shutdown_done(status);
    return;
  }
  if (status != 0) {
    c->close();
    return;
  }
  c->begin_linger();
}

void ClientConnection::begin_linger() {
  // Closing a socket with unread input makes the kernel send RST, which can destroy the
  // response still in flight to the client. Read and discard for a moment first.
  release_upstream(false);
  phase_ = Phase::Lingering;
  paused_for_backpressure_ = false;
  in_.parse_pos = in_.fill;
  resume_reading();
  arm_timer(kLingerMs);
}

// Every request arms the timeout a few times (head, keep-alive) and disarms it in between; the
// worker's TimerHeap keeps that off libuv's timer heap, and keeps a uv_timer_t out of every
// idle connection.
void ClientConnection::arm_timer(uint64_t ms) {
  worker_->client_timers().arm(&deadline_, ms);
}

void ClientConnection::disarm_timer() {
  worker_->client_timers().disarm(&deadline_);
}

void ClientConnection::on_deadline(void* owner) {
  auto* c = static_cast<ClientConnection*>(owner);
  if (c->closing_after_flush_ && c->phase_ != Phase::Lingering && c->phase_ != Phase::Tunnel) {
    c->close();  // the last response is not being taken (close_after_flush)
    return;
  }
  switch (c->phase_) {
    case Phase::ReadingHead:
      c->respond_error(Failure::client_header_timeout, 0);
      return;
    case Phase::Idle:
      if (c->in_.block != nullptr && c->in_.unconsumed() > 0) {
        if (c->ex_ == nullptr) c->take_exchange();  // the 408 is an exchange of its own
        c->respond_error(Failure::client_header_timeout, 0);
      } else {
        c->close();
      }
      return;
    case Phase::Lingering:
      c->close();
      return;
    case Phase::Exchange:
      if (c->ex_->upstream_paused || c->ex_->output_draining) {
        c->abort_exchange(Failure::client_send_timeout, UV_ETIMEDOUT);
      } else if (!c->ex_->request_done && c->ex_->request_has_body) {
        c->check_body_timeout();
      }
      return;
    case Phase::Tunnel:
      c->tunnel_on_timer();
      return;
    default:
      return;
  }
}

void ClientConnection::check_body_timeout() {
  // The deadline moves with every read; only the timer's firing checks it.
  uint64_t timeout = ms(timeouts().client_body);
  uint64_t idle = uv_now(worker_->loop()) - ex_->body_activity_ms;
  if (idle < timeout) {
    arm_timer(timeout - idle);
    return;
  }
  ex_->log_detail = "no request body byte within clientBody";
  // respond_error() closes the server's connection (it saw part of a body) and answers 408,
  // or only ends the client's connection if the response has begun.
  respond_error(Failure::client_body_timeout, 0);
}

void ClientConnection::shutdown_when_idle() {
  close_requested_ = true;
  if (phase_ != Phase::Idle || (in_.block != nullptr && in_.unconsumed() > 0)) return;
  if (served_) {
    close();  // between requests: nothing is lost
    return;
  }
  // Accepted just before the stop (a binary upgrade hands the port over while clients
  // connect): its first request is on the way. It is answered, with Connection: close, if it
  // arrives within a second; a connection that stays silent does not hold up the stop.
  arm_timer(std::min<uint64_t>(kFirstRequestGraceMs, ms(timeouts().client_header)));
}

void ClientConnection::force_close() {
  close();
}

void ClientConnection::close() {
  if (phase_ == Phase::Closed) return;
  if (phase_ != Phase::Idle && phase_ != Phase::Lingering) log_access();
  if (phase_ == Phase::Tunnel) tunnel_closed();
  release_upstream(false);
  phase_ = Phase::Closed;
  out_.clear();
  disarm_timer();
  if (counted_active_) {
    worker_->mutable_metrics().connections_active.sub();
    worker_->mutable_metrics().listeners[listener_->index].connections_active.sub();
  }
  counted_active_ = false;
  if (per_client_counted_) {
    char ip[PeerAddress::kIpText];
    worker_->client_ip_closed(peer_address_.format_ip(ip, sizeof ip));
  }
  per_client_counted_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &ClientConnection::on_close);
}

void ClientConnection::on_close(uv_handle_t* h) {
  auto* c = static_cast<ClientConnection*>(h->data);
  if (--c->open_handles_ != 0) return;
  if (c->ex_ != nullptr) {
    c->worker_->exchanges().give_back(c->ex_);
    c->ex_ = nullptr;
    c->worker_->mutable_metrics().exchanges_active.sub();
  }
  c->in_.release();
  c->worker_->connection_closed(c);
  delete c;
}

// ---------------------------------------------------------------- TLS

bool ClientConnection::start_tls() {
  const Snapshot& snap = worker_->snapshot();
  if (!snap.tls_server) return false;
  tls_ = tls::Session::accept(snap.tls_server, stream(), &ClientConnection::on_write, &out_);
  if (tls_ == nullptr) return false;
  out_.set_filter(tls_.get());
  return true;
}

bool ClientConnection::tls_receive() {
  switch (tls_->decrypt(in_)) {
    case tls::Session::Status::Ok:
      return true;
    case tls::Session::Status::PlainHttp:
      refuse_plain_http();
      return false;
    case tls::Session::Status::Failed:
      if (!tls_->handshake_done()) {
        worker_->mutable_metrics().tls_handshake_failures.add();
        if (log_enabled(LogLevel::Debug)) {
          char peer[PeerAddress::kIpPortText];
          log_line(LogLevel::Debug, "TLS handshake with %s failed: %s",
                   peer_address_.format_ip_port(peer, sizeof peer), tls_->error().c_str());
        }
      }
      break;
    case tls::Session::Status::Closed:
      break;
  }
  // Like the end of the stream on a plain connection.
  if (phase_ == Phase::Idle || phase_ == Phase::ReadingHead || phase_ == Phase::Lingering) {
    close();
  } else {
    abort_exchange(Failure::client_aborted, UV_EPROTO);
  }
  return false;
}

void ClientConnection::tls_tunnel_read(size_t nread) {
  tls_->received(nread);
  bool ended = false;
  tls::Session::Status status = tls_->decrypt_forwarding(in_, [&](const char* data, size_t len) {
    ex_->tunnel_activity_ms = uv_now(worker_->loop());
    tunnel_forward_to_upstream(data, len);
    ended = phase_ != Phase::Tunnel;
    return !ended;
  });
  if (ended) return;
  if (status == tls::Session::Status::Closed) {
    tunnel_client_read(UV_EOF);
  } else if (status != tls::Session::Status::Ok) {
    close();
  }
}

void ClientConnection::refuse_plain_http() {
  static constexpr std::string_view kAnswer =
      "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 65\r\n"
      "Connection: close\r\n\r\n400 Bad Request: a plain HTTP request was sent to an HTTPS "
      "port.\n";
  WorkerMetrics& m = worker_->mutable_metrics();
  m.failures[static_cast<int>(Failure::bad_request)].add();
  m.listeners[listener_->index].failures[static_cast<int>(Failure::bad_request)].add();
  tls_->discard_input();
  out_.set_filter(nullptr);
  uv_buf_t buf = uv_buf_init(const_cast<char*>(kAnswer.data()), kAnswer.size());
  if (uv_try_write(stream(), &buf, 1) != static_cast<int>(kAnswer.size())) {
    close();
    return;
  }
  tls_.reset();  // nothing more is encrypted on this connection
  close_after_flush();
}

}  // namespace harrow

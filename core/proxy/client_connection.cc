#include "core/proxy/client_connection.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "core/base/backpressure.h"
#include "core/base/log.h"
#include "core/http1/url_path.h"
#include "core/proxy/background_fill.h"
#include "core/proxy/h2_connection.h"
#include "core/proxy/phases.h"
#include "core/proxy/retry_policy.h"
#include "core/proxy/worker.h"
#include "core/rewrite/router.h"
#include "core/tls/tls_session.h"

namespace harrow {

// An idle keep-alive connection is this object (plus its socket's kernel state): per-request
// state lives in an Exchange (core/proxy/exchange.h) taken only while a request is under way.
// The README budgets 1 KiB of RSS per idle connection; a member added here costs every idle
// connection, so it belongs in the Exchange unless the connection needs it between requests.
static_assert(sizeof(ClientConnection) <= 480, "an idle connection's size grew: see above");

namespace {

constexpr uint64_t kLingerMs = 2000;
// At a stop, how long a connection accepted just before it may take to send its first request.
constexpr uint64_t kFirstRequestGraceMs = 1000;
// RFC 9113 §3.4: what an HTTP/2 client with prior knowledge sends first.
constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
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
  // clients hanging in the kernel's backlog with no clue, a 503 names the reason (its token
  // from core/base/failure.h). The answer is written without reading the request, and the
  // connection lingers briefly so the client's unread request does not turn the close into a reset.
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

ClientConnection::~ClientConnection() = default;

const config::TimeoutsConfig& ClientConnection::timeouts() const {
  return ex_ != nullptr ? ex_->snap->config->timeouts : worker_->config().timeouts;
}

void ClientConnection::start() {
  worker_->mutable_metrics().connections_active.add();
  worker_->mutable_metrics().listeners[listener_->index].connections_active.add();
  counted_active_ = true;
  // TCP_NODELAY comes from the listening socket (core/proxy/listen.cc).
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
  arm_timer(config::to_ms(timeouts().client_header));
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
  if (phase_ == Phase::Http2) {
    if (nread < 0) {
      close();
      return;
    }
    if (tls_ != nullptr) {
      tls_->received(static_cast<size_t>(nread));
      if (!tls_receive()) return;
    } else {
      in_.commit(static_cast<size_t>(nread));
    }
    h2_read();
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

bool ClientConnection::detect_http2(bool& wait) {
  wait = false;
  if (!listener_->http2 || served_ || phase_ != Phase::Idle || ex_ != nullptr) return false;
  if (tls_ != nullptr) {
    if (!tls_->handshake_done() || tls_->alpn() != "h2") return false;
    enter_http2();
    return true;
  }
  if (in_.block == nullptr || in_.unconsumed() == 0) return false;
  std::string_view seen(in_.parse_begin(), in_.unconsumed());
  size_t n = std::min(seen.size(), kHttp2Preface.size());
  if (seen.substr(0, n) != kHttp2Preface.substr(0, n)) return false;  // HTTP/1.1
  if (n < kHttp2Preface.size()) {
    wait = true;
    return false;
  }
  enter_http2();
  return true;
}

void ClientConnection::enter_http2() {
  phase_ = Phase::Http2;
  disarm_timer();
  h2_ = std::make_unique<H2Connection>(this, worker_, client_side());
  h2_read();
}

void ClientConnection::h2_read() {
  if (tls_ != nullptr) {
    // Everything the records decrypt to, however much that is.
    while (true) {
      if (in_.block != nullptr && in_.unconsumed() > 0) {
        const char* data = in_.parse_begin();
        size_t len = in_.unconsumed();
        in_.parse_pos = in_.fill;
        h2_->receive(data, len);
        if (phase_ != Phase::Http2 || closing_after_flush_) return;
      }
      if (!tls_->has_buffered() || !tls_receive()) break;
      if (in_.block == nullptr || in_.unconsumed() == 0) break;
    }
  } else if (in_.block != nullptr && in_.unconsumed() > 0) {
    const char* data = in_.parse_begin();
    size_t len = in_.unconsumed();
    in_.parse_pos = in_.fill;
    h2_->receive(data, len);
  }
  if (phase_ == Phase::Http2) in_.release_if_drained();
  if (phase_ == Phase::Http2 && !closing_after_flush_ && h2_ != nullptr) h2_->send_now();
}

void ClientConnection::run_parser() {
  if (phase_ == Phase::Http2) return;
  bool wait_for_preface = false;
  if (detect_http2(wait_for_preface)) return;
  if (wait_for_preface) {
    resume_reading();
    return;
  }
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
  // Everything read so far is parsed (the head lives in the Exchange, body bytes in writes that
  // hold the block themselves): the buffer goes back now, not when the response is out, so a
  // request waiting for its server holds none. A body streaming in keeps it for the next read.
  if (phase_ == Phase::Idle || !in_.streaming) in_.release_if_drained();
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
  ex_->begin_request();
  ex_->request_begun = true;
  ex_->response_bytes_at_start = out_.total_bytes();
  ex_->request_started_ms = uv_now(worker_->loop());
  arm_timer(config::to_ms(timeouts().client_header));
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
  if (c->phase_ == Phase::Http2) {
    if (status < 0) {
      c->close();
    } else if (!c->closing_after_flush_) {
      c->h2_->on_written();
    }
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
  if (c->ex_ != nullptr && c->ex_->output_draining && c->out_.memory() <= kWriteLowWater) {
    c->ex_->output_draining = false;
    c->disarm_timer();
    c->finish_exchange();
    c->run_parser();  // the next pipelined request, if any
    return;
  }
  if (c->ex_ != nullptr && c->ex_->upstream_paused && c->ex_->upstream != nullptr &&
      c->out_.memory() < kWriteLowWater) {
    c->ex_->upstream_paused = false;
    c->disarm_timer();
    if (!c->ex_->request_done && c->ex_->request_has_body) {
      c->arm_timer(config::to_ms(c->timeouts().client_body));  // the body still streams
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
  if (out_.in_flight() != 0) arm_timer(config::to_ms(timeouts().client_send));
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
    case Phase::Http2:
      c->h2_->on_timer();
      return;
    default:
      return;
  }
}

void ClientConnection::check_body_timeout() {
  // The deadline moves with every read; only the timer's firing checks it.
  uint64_t timeout = config::to_ms(timeouts().client_body);
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
  if (phase_ == Phase::Http2) {
    if (!closing_after_flush_) h2_->shutdown();  // GOAWAY; open streams finish
    return;
  }
  if (phase_ != Phase::Idle || (in_.block != nullptr && in_.unconsumed() > 0)) return;
  if (served_) {
    close();  // between requests: nothing is lost
    return;
  }
  // Accepted just before the stop (a binary upgrade hands the port over while clients
  // connect): its first request is on the way. It is answered, with Connection: close, if it
  // arrives within a second; a connection that stays silent does not hold up the stop.
  arm_timer(std::min<uint64_t>(kFirstRequestGraceMs, config::to_ms(timeouts().client_header)));
}

void ClientConnection::force_close() {
  close();
}

void ClientConnection::close() {
  if (phase_ == Phase::Closed) return;
  if (phase_ != Phase::Idle && phase_ != Phase::Lingering) log_access();
  if (phase_ == Phase::Tunnel) tunnel_closed();
  // A response being stored, or led for others waiting on it, goes on into the cache without
  // its client (background_fill.h): its body, or (once the request head went out) the whole
  // exchange.
  if (ex_ != nullptr &&
      !detach_cache_fill(*ex_, out_.total_bytes() - ex_->response_bytes_at_start) &&
      phase_ == Phase::Exchange) {
    detach_cache_exchange(ex_, *worker_, client_side());
  }
  release_upstream(false);
  if (h2_ != nullptr) h2_->abort_all();  // freed in on_close: a stream may be mid-callback
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
  tls_ = tls::Session::accept(snap.tls_server, stream(), &ClientConnection::on_write, &out_,
                              listener_->http2);
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
  if (phase_ == Phase::Idle || phase_ == Phase::ReadingHead || phase_ == Phase::Lingering ||
      phase_ == Phase::Http2) {
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

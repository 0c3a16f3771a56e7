#include "core/proxy/upstream_connection.h"

#include <cassert>

#include "core/base/log.h"
#include "core/proxy/h2_upstream_stream.h"
#include "core/proxy/worker.h"
#include "core/tls/tls_session.h"

namespace harrow {
namespace {

UpstreamConnection* from_parser(llhttp_t* p) {
  return static_cast<UpstreamConnection*>(p->data);
}

}  // namespace

UpstreamConnection::UpstreamConnection(Worker* worker, const Snapshot* snapshot, int farm,
                                       size_t server)
    : worker_(worker),
      snapshot_(snapshot),
      farm_(farm),
      server_(server),
      out_(stream(), &UpstreamConnection::on_write) {
  uv_tcp_init(worker->loop(), &tcp_);
  uv_timer_init(worker->loop(), &timer_);
  tcp_.data = this;
  timer_.data = this;
  open_handles_ = 2;
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &UpstreamConnection::on_message_begin;
    s.on_status = &UpstreamConnection::on_status;
    s.on_header_field = &UpstreamConnection::on_header_field;
    s.on_header_value = &UpstreamConnection::on_header_value;
    s.on_headers_complete = &UpstreamConnection::on_headers_complete;
    s.on_body = &UpstreamConnection::on_body;
    s.on_message_complete = &UpstreamConnection::on_message_complete;
    return s;
  }();
  llhttp_init(&parser_, HTTP_RESPONSE, &settings);
  parser_.data = this;
}

UpstreamConnection::~UpstreamConnection() = default;

void UpstreamConnection::use_tls(SSL_CTX* ctx, std::string server_name, bool verify,
                                 std::shared_ptr<SSL_SESSION> resume) {
  tls_ctx_ = ctx;
  SSL_CTX_up_ref(ctx);
  tls_name_ = std::move(server_name);
  tls_verify_ = verify;
  tls_resume_ = std::move(resume);
}

void UpstreamConnection::use_h2(H2UpstreamSession* session, bool https) {
  h2_ = std::make_unique<H2UpstreamStream>(this, session, https);
  out_.set_filter(h2_.get());
}

void UpstreamConnection::h2_connected() {
  state_ = State::Active;
  reading_ = true;
  owner_->upstream_connected();
}

std::shared_ptr<SSL_SESSION> UpstreamConnection::tls_session() const {
  if (tls_ == nullptr) return nullptr;
  SSL_SESSION* session = SSL_get1_session(tls_->ssl());
  if (session == nullptr) return nullptr;
  if (SSL_SESSION_is_resumable(session) != 1) {
    SSL_SESSION_free(session);
    return nullptr;
  }
  return std::shared_ptr<SSL_SESSION>(session, SSL_SESSION_free);
}

void UpstreamConnection::start_tls() {
  tls_ = tls::Session::connect(tls_ctx_, tls_name_, tls_verify_, tls_resume_.get(), stream(),
                               &UpstreamConnection::on_write, &out_);
  tls_resume_.reset();
  if (tls_ == nullptr) {
    fail(Failure::upstream_tls, UV_EPROTO);
    return;
  }
  out_.set_filter(tls_.get());
  handshaking_ = true;
  state_ = State::Active;
  resume_reading();
}

bool UpstreamConnection::tls_receive() {
  tls::Session::Status status = tls_->decrypt(in_);
  if (status == tls::Session::Status::Closed && !handshaking_) {
    // close_notify: the plaintext decrypted before it is still to be parsed; the caller ends
    // the message once it has been (end_of_input()).
    tls_closed_ = true;
    return true;
  }
  if (status == tls::Session::Status::Ok) {
    if (handshaking_ && tls_->handshake_done()) {
      handshaking_ = false;
      uv_timer_stop(&timer_);
      owner_->upstream_connected();
      if (state_ == State::Closing) return false;
    }
    return true;
  }
  if (handshaking_) {
    log_line(LogLevel::Warn, "TLS handshake with %s failed: %s", tls_name_.c_str(),
             tls_->error().c_str());
    fail(Failure::upstream_tls, UV_EPROTO);
  } else {
    fail(response_started_ ? Failure::upstream_truncated : Failure::upstream_reset, UV_EPROTO);
  }
  return false;
}

void UpstreamConnection::connect(UpstreamEvents* owner, const sockaddr* addr, uint64_t timeout_ms) {
  owner_ = owner;
  state_ = State::Connecting;
  if (h2_ != nullptr) {
    h2_->start();  // the session has its own connect timeout
    return;
  }
  connect_req_.data = this;
  int rc = uv_tcp_connect(&connect_req_, &tcp_, addr, &UpstreamConnection::on_connect);
  if (rc != 0) {
    // Nothing was started, so report on the next turn of the loop rather than re-entering the
    // owner from inside its own call.
    connect_error_ = rc;
    arm_timer(0);
    return;
  }
  connect_timeout_ms_ = timeout_ms;
  arm_timer(timeout_ms);
}

void UpstreamConnection::on_connect(uv_connect_t* req, int status) {
  auto* self = static_cast<UpstreamConnection*>(req->data);
  if (status == UV_ECANCELED || self->state_ == State::Closing) return;
  self->disarm_timer();
  if (status != 0) {
    self->fail(status == UV_ECONNREFUSED ? Failure::upstream_connect_refused
                                         : Failure::upstream_connect_failed,
               status);
    return;
  }
  uv_tcp_nodelay(&self->tcp_, 1);
  if (self->tls_ctx_ != nullptr) {
    // The connect timeout covers the handshake too.
    self->arm_timer(self->connect_timeout_ms_);
    self->start_tls();
    return;
  }
  self->state_ = State::Active;
  self->resume_reading();
  self->owner_->upstream_connected();
}

void UpstreamConnection::attach(UpstreamEvents* owner) {
  assert(state_ == State::Idle);
  owner_ = owner;
  state_ = State::Active;
  disarm_timer();
}

void UpstreamConnection::begin_exchange(bool head_request, uint64_t timeout_ms,
                                        size_t max_head_bytes) {
  ++exchanges_;
  head_request_ = head_request;
  interim_ = false;
  interim_count_ = 0;
  response_started_ = false;
  complete_ = false;
  head_too_large_ = false;
  upgrade_expected_ = false;
  max_head_bytes_ = max_head_bytes;
  timeout_ms_ = timeout_ms;
  last_activity_ = uv_now(worker_->loop());
  arm_timer(timeout_ms);
}

void UpstreamConnection::touch() {
  last_activity_ = uv_now(worker_->loop());
}

void UpstreamConnection::arm_timer(uint64_t ms) {
  deadline_.arm(&timer_, &UpstreamConnection::on_timer, ms);
}

void UpstreamConnection::disarm_timer() {
  deadline_.disarm();
}

void UpstreamConnection::on_timer(uv_timer_t* t) {
  auto* self = static_cast<UpstreamConnection*>(t->data);
  if (!self->deadline_.fired(t, &UpstreamConnection::on_timer)) return;
  switch (self->state_) {
    case State::Connecting:
      if (self->connect_error_ != 0) {
        self->fail(self->connect_error_ == UV_ECONNREFUSED ? Failure::upstream_connect_refused
                                                           : Failure::upstream_connect_failed,
                   self->connect_error_);
      } else {
        self->fail(Failure::upstream_connect_timeout, UV_ETIMEDOUT);
      }
      return;
    case State::Active: {
      if (self->handshaking_) {
        self->fail(Failure::upstream_tls, UV_ETIMEDOUT);
        return;
      }
      if (self->tunnel_) return;  // the owner keeps the tunnel's idle timeout
      // The deadline moves with activity; only the timer's firing checks it, so traffic
      // does not pay for re-arming a timer on every read.
      uint64_t now = uv_now(self->worker_->loop());
      // Paused by the owner because the client is not taking the response: the server is not
      // the slow party, and the client's send timeout governs.
      if (!self->reading_ && self->response_started_) self->last_activity_ = now;
      uint64_t deadline = self->last_activity_ + self->timeout_ms_;
      if (now < deadline) {
        self->arm_timer(deadline - now);
        return;
      }
      self->fail(Failure::upstream_timeout, UV_ETIMEDOUT);
      return;
    }
    case State::Idle:
      self->close();
      return;
    case State::Closing:
      return;
  }
}

void UpstreamConnection::pause_reading() {
  if (h2_ != nullptr) {
    reading_ = false;  // the stream's window stays shut while nothing is parsed
    return;
  }
  if (reading_) uv_read_stop(stream());
  reading_ = false;
}

void UpstreamConnection::resume_reading() {
  if (reading_ || state_ == State::Closing || state_ == State::Connecting) return;
  if (h2_ != nullptr) {
    reading_ = true;
    h2_->resume();
    return;
  }
  if (uv_read_start(stream(), &UpstreamConnection::on_alloc, &UpstreamConnection::on_read_cb) ==
      0) {
    reading_ = true;
  }
}

void UpstreamConnection::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = static_cast<UpstreamConnection*>(h->data);
  *buf = self->tls_ == nullptr ? self->in_.next_read_buffer() : self->tls_->read_buffer();
}

void UpstreamConnection::on_read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  static_cast<UpstreamConnection*>(s->data)->on_read(nread);
}

void UpstreamConnection::on_read(ssize_t nread) {
  if (state_ == State::Closing) return;
  if (nread == 0) return;
  if (nread == UV_ENOBUFS) {
    pause_reading();  // unparsed bytes fill the buffer; cannot happen with a running parser
    return;
  }
  if (tunnel_) {
    on_tunnel_read(nread);
    return;
  }
  if (state_ == State::Idle) {
    // An idle connection has nothing to say: a close, or bytes that break the framing. Over
    // TLS a server may still send handshake messages (TLS 1.3 session tickets): those are fine.
    if (nread > 0 && tls_ != nullptr) {
      tls_->received(static_cast<size_t>(nread));
      if (tls_->decrypt(in_) == tls::Session::Status::Ok && in_.unconsumed() == 0) {
        in_.release_if_drained();
        return;
      }
    }
    close();
    return;
  }
  if (nread < 0 && handshaking_) {
    fail(Failure::upstream_tls, static_cast<int>(nread));
    return;
  }
  if (nread < 0) {
    end_of_input(static_cast<int>(nread));
    return;
  }
  last_activity_ = uv_now(worker_->loop());
  if (tls_ == nullptr) {
    in_.commit(static_cast<size_t>(nread));
    run_parser();
    return;
  }
  tls_->received(static_cast<size_t>(nread));
  if (!tls_receive() || handshaking_) return;
  // The parser takes all the plaintext each run; what did not fit waits in the session.
  while (in_.block != nullptr && in_.unconsumed() > 0) {
    run_parser();
    if (state_ != State::Active || complete_) return;
    if (tls_closed_ || !tls_->has_buffered()) break;
    if (!tls_receive()) return;
  }
  // The server's close_notify came after all the plaintext parsed above: the stream's end.
  if (tls_closed_) end_of_input(UV_EOF);
}

void UpstreamConnection::end_of_input(int uv_status) {
  // A body delimited by the connection's end (no Content-Length, no final chunked; RFC 9112
  // §6.3) completes here: llhttp_finish() runs on_message_complete, which pauses.
  //
  // Over TLS only the server's close_notify is that end. A TCP close without it is an
  // "incomplete close" (RFC 9112 §9.8): a response with neither Content-Length nor chunked is
  // complete only after a valid closure alert, since the FIN is not authenticated and anyone
  // on the path can forge one to cut the body short (RFC 8446 §6.1). So it is reported
  // upstream_truncated and the client's response is not completed (no last chunk), as curl
  // over OpenSSL 3 fails such a body with "unexpected eof while reading". Responses framed by
  // Content-Length or chunked complete in run_parser(), close_notify or not.
  bool authenticated_end = uv_status == UV_EOF && (tls_ == nullptr || tls_closed_);
  if (authenticated_end) {
    llhttp_errno_t rc = llhttp_finish(&parser_);
    if ((rc == HPE_OK || rc == HPE_PAUSED) && complete_) {
      owner_->upstream_read_end();
      owner_->upstream_complete(false);
      return;
    }
  }
  fail(response_started_ ? Failure::upstream_truncated : Failure::upstream_reset, uv_status);
}

void UpstreamConnection::run_parser() {
  const char* begin = in_.parse_begin();
  llhttp_errno_t rc = llhttp_execute(&parser_, begin, in_.unconsumed());
  // The owner may have given up on the exchange from a callback (a head it cannot forward).
  if (state_ == State::Closing) return;
  if (rc == HPE_OK) {
    in_.parse_pos = in_.fill;
  } else if (rc == HPE_PAUSED && tunnel_) {
    in_.parse_pos += static_cast<uint32_t>(llhttp_get_error_pos(&parser_) - begin);
    enter_tunnel();
    return;
  } else if (rc == HPE_PAUSED && complete_) {
    // Paused at the end of the response. Bytes after it mean the server is not speaking
    // HTTP/1.1 correctly, so such a connection is never reused.
    in_.parse_pos += static_cast<uint32_t>(llhttp_get_error_pos(&parser_) - begin);
  } else {
    owner_->upstream_read_end();
    // Includes a response head over maxResponseHeaderSize (head_too_large_).
    fail(Failure::upstream_invalid_response, 0);
    return;
  }
  owner_->upstream_read_end();
  if (complete_) {
    // After the server's close_notify the session carries nothing more.
    bool reusable = llhttp_should_keep_alive(&parser_) && in_.unconsumed() == 0 && !tls_closed_;
    owner_->upstream_complete(reusable);
  }
}

int UpstreamConnection::on_message_begin(llhttp_t* p) {
  auto* self = from_parser(p);
  self->head_.reset(self->max_head_bytes_);
  return 0;
}

int UpstreamConnection::on_status(llhttp_t* p, const char* at, size_t len) {
  return from_parser(p)->head_.on_reason(at, len) ? 0 : -1;
}

int UpstreamConnection::on_header_field(llhttp_t* p, const char* at, size_t len) {
  auto* self = from_parser(p);
  if (self->head_.on_field(at, len)) return 0;
  self->head_too_large_ = true;
  return -1;
}

int UpstreamConnection::on_header_value(llhttp_t* p, const char* at, size_t len) {
  auto* self = from_parser(p);
  if (self->head_.on_value(at, len)) return 0;
  self->head_too_large_ = true;
  return -1;
}

int UpstreamConnection::on_headers_complete(llhttp_t* p) {
  auto* self = from_parser(p);
  self->head_.finish();
  int status = p->status_code;
  if (status == 101) {
    // Only an upgrade Harrow asked for may be accepted; what follows the head is no longer
    // HTTP, so the parser stops here for good.
    if (!self->upgrade_expected_) return -1;
    self->tunnel_ = true;
    self->response_started_ = true;
    self->owner_->upstream_head(self->head_, status);
    return HPE_PAUSED;
  }
  self->interim_ = status >= 100 && status < 200;
  if (self->interim_ && ++self->interim_count_ > kMaxInterimResponses) return -1;
  if (!self->interim_) self->response_started_ = true;
  self->owner_->upstream_head(self->head_, status);
  if (self->state_ == State::Closing) return HPE_PAUSED;  // the owner let go: parse no further
  // A response to HEAD, a 1xx, a 204 and a 304 have no body whatever their headers say (RFC
  // 9112 §6.3); llhttp 8.1 reads a 1xx's, 204's or 304's Content-Length or chunked body, which
  // for an interim head would reach the client as bytes after it (a response of the server's
  // making). After a final head the bytes then stay unconsumed, so the connection is not
  // reused; after an interim one they are parsed as the next response.
  bool no_body = self->head_request_ || self->interim_ || status == 204 || status == 304;
  return no_body ? 1 : 0;
}

int UpstreamConnection::on_body(llhttp_t* p, const char* at, size_t len) {
  auto* self = from_parser(p);
  self->owner_->upstream_body(self->in_.block, at, len);
  // The owner let go (a cache fill past its bound, a body rule that failed): a chunked body's
  // next pieces in this read must not reach it.
  if (self->state_ == State::Closing) return HPE_PAUSED;
  return 0;
}

int UpstreamConnection::on_message_complete(llhttp_t* p) {
  auto* self = from_parser(p);
  if (self->interim_) {
    self->interim_ = false;
    return 0;  // the final response follows on the same connection
  }
  self->complete_ = true;
  return HPE_PAUSED;
}

void UpstreamConnection::on_write(uv_write_t* req, int status) {
  auto* self = static_cast<UpstreamConnection*>(req->handle->data);
  write_request_finish(req);
  self->out_.write_done();
  if (self->state_ == State::Closing || self->owner_ == nullptr) return;
  if (status < 0) {
    self->fail(self->response_started_ ? Failure::upstream_truncated : Failure::upstream_reset,
               status);
    return;
  }
  self->last_activity_ = uv_now(self->worker_->loop());
  self->owner_->upstream_write_done();
}

void UpstreamConnection::enter_tunnel() {
  disarm_timer();
  UpstreamEvents* owner = owner_;
  if (in_.unconsumed() != 0) {
    // Bytes the server sent right behind the 101 head, in the same read.
    owner->upstream_tunnel_bytes(in_.block, in_.parse_begin(), in_.unconsumed());
    in_.parse_pos = in_.fill;
  }
  owner->upstream_read_end();
}

void UpstreamConnection::on_tunnel_read(ssize_t nread) {
  if (tls_ != nullptr && nread > 0) {
    // Over TLS the tunnel carries what the records decrypt to.
    tls_->received(static_cast<size_t>(nread));
    bool ended = false;
    tls::Session::Status status = tls_->decrypt_forwarding(in_, [&](const char* data, size_t len) {
      owner_->upstream_tunnel_bytes(in_.block, data, len);
      owner_->upstream_read_end();
      ended = state_ == State::Closing || owner_ == nullptr;
      return !ended;
    });
    if (ended) return;
    if (status == tls::Session::Status::Closed) {
      on_tunnel_read(UV_EOF);
    } else if (status != tls::Session::Status::Ok) {
      fail(Failure::upstream_reset, UV_EPROTO);
    }
    return;
  }
  if (nread < 0) {
    pause_reading();
    if (nread == UV_EOF) {
      owner_->upstream_tunnel_eof();
    } else {
      fail(Failure::upstream_reset, static_cast<int>(nread));
    }
    return;
  }
  in_.commit(static_cast<size_t>(nread));  // nread > 0 here
  const char* data = in_.block->data + (in_.fill - static_cast<uint32_t>(nread));
  in_.parse_pos = in_.fill;
  // As on the client side: a drained socket leaves the block to the write (a quiet tunnel
  // holds none).
  bool drained = in_.fill != in_.offered_end;
  owner_->upstream_tunnel_bytes(in_.block, data, static_cast<size_t>(nread));
  owner_->upstream_read_end();
  if (drained) in_.release_if_drained();
}

int UpstreamConnection::shutdown_write() {
  if (write_shut_ || state_ == State::Closing) return 0;
  write_shut_ = true;
  shutdown_req_.data = this;
  // uv_shutdown waits for queued writes, then sends FIN.
  return uv_shutdown(&shutdown_req_, stream(), &UpstreamConnection::on_shutdown);
}

void UpstreamConnection::on_shutdown(uv_shutdown_t* req, int status) {
  auto* self = static_cast<UpstreamConnection*>(req->data);
  if (self->state_ == State::Closing || self->owner_ == nullptr) return;
  if (status != 0) {
    self->fail(Failure::upstream_reset, status);
    return;
  }
  self->owner_->upstream_tunnel_shut();
}

void UpstreamConnection::fail(Failure failure, int uv_status) {
  UpstreamEvents* owner = owner_;
  close();
  if (owner != nullptr) owner->upstream_failed(failure, uv_status);
}

void UpstreamConnection::release(bool reusable) {
  owner_ = nullptr;
  if (h2_ != nullptr) {
    close();  // the stream ends (reset if still open); the session stays
    return;
  }
  if (!reusable || state_ != State::Active || !complete_ || out_.in_flight() != 0) {
    close();
    return;
  }
  llhttp_reset(&parser_);
  in_.release_if_drained();
  worker_->give_idle(this);
}

void UpstreamConnection::enter_idle(uint64_t idle_timeout_ms) {
  state_ = State::Idle;
  resume_reading();  // to notice the server closing it
  arm_timer(idle_timeout_ms);
}

void UpstreamConnection::close() {
  if (state_ == State::Closing) return;
  if (state_ == State::Idle) worker_->forget_idle(this);
  state_ = State::Closing;
  owner_ = nullptr;
  out_.clear();
  if (h2_ != nullptr) h2_->close();
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &UpstreamConnection::on_close);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &UpstreamConnection::on_close);
}

void UpstreamConnection::on_close(uv_handle_t* h) {
  auto* self = static_cast<UpstreamConnection*>(h->data);
  if (--self->open_handles_ == 0) {
    self->in_.release();
    if (self->tls_ctx_ != nullptr) SSL_CTX_free(self->tls_ctx_);
    delete self;
  }
}

}  // namespace harrow

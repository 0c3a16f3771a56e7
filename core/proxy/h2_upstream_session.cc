#include "core/proxy/h2_upstream_session.h"

#include <algorithm>
#include <cstring>

#include "core/base/backpressure.h"
#include "core/base/log.h"
#include "core/tls/tls_session.h"

namespace harrow {
namespace {

// The response body a stream's window lets the server send ahead of Harrow's parser (and of a
// client that is not reading), and what the whole connection may have in flight.
constexpr int32_t kStreamWindow = 256 * 1024;
constexpr int32_t kConnectionWindow = 4 * 1024 * 1024;
// Streams one session carries before another connection to the server is opened, whatever the
// server allows.
constexpr uint32_t kMaxStreamsPerSession = 1000;
// Streams waiting for a session still connecting (the server's limit is not known yet).
constexpr size_t kMaxWaiting = 100;

H2UpstreamSession* from_user(void* user) {
  return static_cast<H2UpstreamSession*>(user);
}

std::string target_key(const H2UpstreamTarget& target) {
  std::string key(reinterpret_cast<const char*>(&target.addr), sizeof target.addr);
  key.push_back(target.tls_ctx != nullptr ? 's' : 'p');
  key.append(target.tls_name);
  return key;
}

}  // namespace

H2UpstreamSession::H2UpstreamSession(uv_loop_t* loop, H2UpstreamSessions* registry, std::string key,
                                     H2UpstreamTarget target)
    : registry_(registry),
      key_(std::move(key)),
      target_(std::move(target)),
      out_(stream(), &H2UpstreamSession::on_write) {
  uv_tcp_init(loop, &tcp_);
  uv_timer_init(loop, &timer_);
  uv_timer_init(loop, &soon_);
  tcp_.data = this;
  timer_.data = this;
  soon_.data = this;
  open_handles_ = 3;
  if (target_.tls_ctx != nullptr) SSL_CTX_up_ref(target_.tls_ctx);
}

void H2UpstreamSession::connect() {
  connect_req_.data = this;
  int rc = uv_tcp_connect(&connect_req_, &tcp_, reinterpret_cast<const sockaddr*>(&target_.addr),
                          &H2UpstreamSession::on_connect);
  if (rc != 0) {
    // Reported from the loop: the streams attach after this call.
    state_ = State::Connecting;
    uv_timer_start(
        &timer_,
        [](uv_timer_t* t) {
          auto* self = static_cast<H2UpstreamSession*>(t->data);
          self->fail(Failure::upstream_connect_failed, UV_EINVAL, nullptr);
        },
        0, 0);
    return;
  }
  uv_timer_start(&timer_, &H2UpstreamSession::on_timer, target_.connect_timeout_ms, 0);
}

bool H2UpstreamSession::has_room() const {
  if (state_ == State::Closing || goaway_) return false;
  if (session_ == nullptr) return waiting_.size() < kMaxWaiting;
  // Until the server's SETTINGS arrive its limit is unknown: RFC 9113 §6.5.2 advises at least
  // 100, so that many streams go to one connection meanwhile.
  uint32_t limit = settings_seen_ ? nghttp2_session_get_remote_settings(
                                        session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)
                                  : static_cast<uint32_t>(kMaxWaiting);
  return attached_.size() < std::min(limit, kMaxStreamsPerSession);
}

void H2UpstreamSession::attach(Stream* stream) {
  attached_.push_back(stream);
  if (state_ == State::Ready) {
    uv_timer_stop(&timer_);  // no longer idle
    due(stream);             // h2_due() tells it the session is ready
    return;
  }
  waiting_.push_back(stream);
}

void H2UpstreamSession::detach(Stream* stream, int32_t id, uint32_t code) {
  auto drop = [stream](std::vector<Stream*>& list) {
    auto it = std::find(list.begin(), list.end(), stream);
    if (it == list.end()) return false;
    list.erase(it);
    return true;
  };
  drop(due_);
  bool was_waiting = drop(waiting_);
  if (!drop(attached_)) return;  // let go of already (the session failed)
  if (!was_waiting && id > 0 && session_ != nullptr) {
    if (nghttp2_session_get_stream_user_data(session_, id) == stream) {
      nghttp2_session_set_stream_user_data(session_, id, nullptr);
      if (nghttp2_session_find_stream(session_, id) != nullptr) {
        nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, code);
      }
    }
    send_soon();
  }
  check_idle();
}

int32_t H2UpstreamSession::open_stream(Stream* stream, std::span<const http2::Field> fields,
                                       bool has_body) {
  if (state_ != State::Ready || goaway_) return NGHTTP2_ERR_INVALID_STATE;
  std::vector<nghttp2_nv> nv;
  nv.reserve(fields.size());
  for (const http2::Field& f : fields) {
    nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(f.name.data())),
                  reinterpret_cast<uint8_t*>(const_cast<char*>(f.value.data())), f.name.size(),
                  f.value.size(), NGHTTP2_NV_FLAG_NONE});
  }
  nghttp2_data_provider provider{};
  provider.read_callback = &H2UpstreamSession::on_read_body;
  int32_t id = nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(),
                                      has_body ? &provider : nullptr, stream);
  if (id > 0) send_soon();
  return id;
}

void H2UpstreamSession::resume_body(int32_t id) {
  if (session_ == nullptr || state_ != State::Ready) return;
  nghttp2_session_resume_data(session_, id);
  send_soon();
}

void H2UpstreamSession::consume(int32_t id, size_t len) {
  if (session_ == nullptr || state_ != State::Ready || len == 0) return;
  nghttp2_session_consume(session_, id, len);
  send_soon();
}

void H2UpstreamSession::due(Stream* stream) {
  if (std::find(due_.begin(), due_.end(), stream) == due_.end()) due_.push_back(stream);
  send_soon();
}

void H2UpstreamSession::send_soon() {
  if (soon_armed_ || state_ == State::Closing) return;
  soon_armed_ = true;
  uv_timer_start(&soon_, &H2UpstreamSession::on_soon, 0, 0);
}

void H2UpstreamSession::on_soon(uv_timer_t* t) {
  auto* self = static_cast<H2UpstreamSession*>(t->data);
  self->soon_armed_ = false;
  self->run_due();
  self->send();
}

void H2UpstreamSession::run_due() {
  // A stream's h2_due() may detach it or others, and schedule more (run next turn).
  std::vector<Stream*> now;
  now.swap(due_);
  for (Stream* s : now) {
    if (state_ == State::Closing) return;
    // Detached meanwhile: an earlier stream's owner closed it.
    if (std::find(attached_.begin(), attached_.end(), s) == attached_.end()) continue;
    s->h2_due();
  }
}

// ---------------------------------------------------------------- connecting

void H2UpstreamSession::on_connect(uv_connect_t* req, int status) {
  auto* self = static_cast<H2UpstreamSession*>(req->data);
  if (status == UV_ECANCELED || self->state_ == State::Closing) return;
  if (status != 0) {
    self->fail(status == UV_ECONNREFUSED ? Failure::upstream_connect_refused
                                         : Failure::upstream_connect_failed,
               status, nullptr);
    return;
  }
  uv_tcp_nodelay(&self->tcp_, 1);
  if (uv_read_start(self->stream(), &H2UpstreamSession::on_alloc, &H2UpstreamSession::on_read_cb) !=
      0) {
    self->fail(Failure::upstream_connect_failed, UV_EIO, nullptr);
    return;
  }
  if (self->target_.tls_ctx == nullptr) {
    self->start_session();
    return;
  }
  self->tls_ = tls::Session::connect(self->target_.tls_ctx, self->target_.tls_name,
                                     self->target_.tls_verify, nullptr, self->stream(),
                                     &H2UpstreamSession::on_write, &self->out_, "h2");
  if (self->tls_ == nullptr) {
    self->fail(Failure::upstream_tls, UV_EPROTO, "the TLS handshake could not start");
    return;
  }
  self->out_.set_filter(self->tls_.get());
  self->state_ = State::Handshaking;
}

void H2UpstreamSession::start_session() {
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, &on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, &on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &on_stream_close);
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  // The windows open as the streams' owners take the bytes (consume()): backpressure.
  nghttp2_option_set_no_auto_window_update(option, 1);
  int rc = nghttp2_session_client_new2(&session_, callbacks, this, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);
  if (rc != 0) {
    session_ = nullptr;
    fail(Failure::upstream_reset, UV_ENOMEM, "the HTTP/2 session could not be made");
    return;
  }
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  state_ = State::Ready;
  uv_timer_stop(&timer_);
  // Streams that joined while connecting hear of it now (this is a libuv callback).
  std::vector<Stream*> waiting;
  waiting.swap(waiting_);
  for (Stream* s : waiting) {
    if (state_ != State::Ready) break;
    s->h2_ready();
  }
  send();
  check_idle();
}

void H2UpstreamSession::on_timer(uv_timer_t* t) {
  auto* self = static_cast<H2UpstreamSession*>(t->data);
  switch (self->state_) {
    case State::Connecting:
      self->fail(Failure::upstream_connect_timeout, UV_ETIMEDOUT, nullptr);
      return;
    case State::Handshaking:
      self->fail(Failure::upstream_tls, UV_ETIMEDOUT, "the TLS handshake timed out");
      return;
    case State::Ready:
      if (self->attached_.size() == 0) self->close();
      return;
    case State::Closing:
      return;
  }
}

void H2UpstreamSession::check_idle() {
  if (state_ != State::Ready || attached_.size() != 0) return;
  if (goaway_) {
    close();
    return;
  }
  uv_timer_start(&timer_, &H2UpstreamSession::on_timer, target_.idle_timeout_ms, 0);
}

// ---------------------------------------------------------------- reading

void H2UpstreamSession::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = static_cast<H2UpstreamSession*>(h->data);
  *buf = self->tls_ == nullptr ? self->in_.next_read_buffer() : self->tls_->read_buffer();
}

void H2UpstreamSession::on_read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  static_cast<H2UpstreamSession*>(s->data)->on_read(nread);
}

void H2UpstreamSession::on_read(ssize_t nread) {
  if (state_ == State::Closing || nread == 0) return;
  if (nread < 0) {
    if (state_ == State::Handshaking) {
      fail(Failure::upstream_tls, static_cast<int>(nread), "the server closed the handshake");
    } else {
      fail(Failure::upstream_reset, static_cast<int>(nread), nullptr);
    }
    return;
  }
  if (tls_ == nullptr) {
    in_.commit(static_cast<size_t>(nread));
    if (!receive()) return;
    send();
    return;
  }
  tls_->received(static_cast<size_t>(nread));
  do {
    tls::Session::Status status = tls_->decrypt(in_);
    if (status == tls::Session::Status::Failed) {
      if (state_ == State::Handshaking) {
        std::string detail = "TLS handshake with " + target_.tls_name + " failed: " + tls_->error();
        fail(Failure::upstream_tls, UV_EPROTO, detail.c_str());
      } else {
        fail(Failure::upstream_reset, UV_EPROTO, nullptr);
      }
      return;
    }
    if (state_ == State::Handshaking && tls_->handshake_done()) {
      if (tls_->alpn() != "h2") {
        std::string detail = "the server " + target_.tls_name +
                             " did not select h2 by ALPN (its farm speaks HTTP/2 upstream)";
        fail(Failure::upstream_tls, UV_EPROTO, detail.c_str());
        return;
      }
      start_session();
      if (state_ != State::Ready) return;
    }
    if (state_ == State::Ready && in_.block != nullptr && in_.unconsumed() > 0) {
      if (!receive()) return;
    }
    if (status == tls::Session::Status::Closed) {
      fail(Failure::upstream_reset, UV_EOF, nullptr);
      return;
    }
  } while (tls_->has_buffered() && state_ != State::Closing);
  if (state_ == State::Ready) send();
}

bool H2UpstreamSession::receive() {
  if (in_.block == nullptr || in_.unconsumed() == 0) return true;
  in_recv_ = true;
  ssize_t rc = nghttp2_session_mem_recv(
      session_, reinterpret_cast<const uint8_t*>(in_.parse_begin()), in_.unconsumed());
  in_recv_ = false;
  in_.parse_pos = in_.fill;
  if (rc < 0) {
    std::string detail =
        std::string("HTTP/2 from the server: ") + nghttp2_strerror(static_cast<int>(rc));
    // What nghttp2 queued (a GOAWAY) goes out before the close, when it can.
    send();
    fail(Failure::upstream_invalid_response, UV_EPROTO, detail.c_str());
    return false;
  }
  if (send_pending_) send_pending_ = false;
  return true;
}

// ---------------------------------------------------------------- writing

void H2UpstreamSession::send() {
  if (in_recv_) {
    send_pending_ = true;
    return;
  }
  if (session_ == nullptr || state_ != State::Ready) return;
  while (out_.memory() <= kWriteHighWater) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      fail(Failure::upstream_reset, UV_EPROTO, nullptr);
      return;
    }
    if (n == 0) break;
    out_.add_copy(reinterpret_cast<const char*>(data), static_cast<size_t>(n), false);
  }
  if (out_.flush() != 0) {
    fail(Failure::upstream_reset, out_.last_error(), nullptr);
    return;
  }
  if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_) &&
      out_.in_flight() == 0) {
    close();
  }
}

void H2UpstreamSession::on_write(uv_write_t* req, int status) {
  auto* self = static_cast<H2UpstreamSession*>(req->handle->data);
  write_request_finish(req);
  self->out_.write_done();
  if (self->state_ == State::Closing) return;
  if (status < 0) {
    self->fail(Failure::upstream_reset, status, nullptr);
    return;
  }
  self->send();
}

// ---------------------------------------------------------------- nghttp2

H2UpstreamSession::Stream* H2UpstreamSession::stream_of(int32_t id) const {
  return static_cast<Stream*>(nghttp2_session_get_stream_user_data(session_, id));
}

int H2UpstreamSession::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = from_user(user);
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  self->blocks_[frame->hd.stream_id] = Block{};
  return 0;
}

int H2UpstreamSession::on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                                 size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                                 void* user) {
  auto* self = from_user(user);
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto it = self->blocks_.find(frame->hd.stream_id);
  if (it == self->blocks_.end()) return 0;
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (n == ":status") {
    int status = 0;
    for (char c : v) status = status * 10 + (c - '0');  // nghttp2 checked: three digits
    it->second.status = status;
    return 0;
  }
  if (!n.empty() && n.front() == ':') return 0;
  it->second.fields.push_back({std::string(n), std::string(v)});
  return 0;
}

int H2UpstreamSession::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = from_user(user);
  int32_t id = frame->hd.stream_id;
  bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS: {
      auto it = self->blocks_.find(id);
      if (it == self->blocks_.end()) return 0;
      Block block = std::move(it->second);
      self->blocks_.erase(it);
      if (Stream* s = self->stream_of(id)) {
        s->h2_headers(block.status, block.fields, end_stream);
        if (end_stream && self->stream_of(id) == s) s->h2_end();
      }
      return 0;
    }
    case NGHTTP2_DATA:
      if (end_stream) {
        if (Stream* s = self->stream_of(id)) s->h2_end();
      }
      return 0;
    case NGHTTP2_SETTINGS:
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) self->settings_seen_ = true;
      return 0;
    case NGHTTP2_GOAWAY:
      // No new streams; those above the last one the server took are closed as refused.
      self->goaway_ = true;
      self->registry_->forget(self);
      return 0;
    default:
      return 0;
  }
}

int H2UpstreamSession::on_data_chunk_recv(nghttp2_session* session, uint8_t, int32_t stream_id,
                                          const uint8_t* data, size_t len, void* user) {
  auto* self = from_user(user);
  Stream* s = self->stream_of(stream_id);
  if (s == nullptr) {
    // A stream Harrow let go of: the bytes go nowhere, the window opens again.
    nghttp2_session_consume(session, stream_id, len);
    return 0;
  }
  s->h2_data(data, len);
  return 0;
}

int H2UpstreamSession::on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                                       void* user) {
  auto* self = from_user(user);
  self->blocks_.erase(stream_id);
  if (Stream* s = self->stream_of(stream_id)) s->h2_closed(error_code);
  return 0;
}

ssize_t H2UpstreamSession::on_read_body(nghttp2_session*, int32_t stream_id, uint8_t* buf,
                                        size_t length, uint32_t* data_flags, nghttp2_data_source*,
                                        void* user) {
  auto* self = from_user(user);
  Stream* s = self->stream_of(stream_id);
  if (s == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
  bool eof = false;
  size_t n = s->h2_pull(buf, length, eof);
  if (eof) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  } else if (n == 0) {
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

// ---------------------------------------------------------------- closing

void H2UpstreamSession::fail(Failure failure, int uv_status, const char* detail) {
  if (state_ == State::Closing) return;
  if (detail != nullptr) log_line(LogLevel::Warn, "HTTP/2 upstream: %s", detail);
  // Every stream still attached hears of it, after the handles began closing (so none of
  // them can use the session any more).
  std::vector<Stream*> streams;
  streams.swap(attached_);
  waiting_.clear();
  due_.clear();
  close_handles();
  for (Stream* s : streams) s->h2_session_failed(failure, uv_status);
}

void H2UpstreamSession::close() {
  fail(Failure::upstream_reset, UV_ECANCELED, nullptr);
}

void H2UpstreamSession::close_handles() {
  state_ = State::Closing;
  registry_->forget(this);
  uv_timer_stop(&timer_);
  uv_timer_stop(&soon_);
  out_.clear();
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &H2UpstreamSession::on_close);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &H2UpstreamSession::on_close);
  uv_close(reinterpret_cast<uv_handle_t*>(&soon_), &H2UpstreamSession::on_close);
}

void H2UpstreamSession::on_close(uv_handle_t* h) {
  auto* self = static_cast<H2UpstreamSession*>(h->data);
  if (--self->open_handles_ != 0) return;
  if (self->session_ != nullptr) nghttp2_session_del(self->session_);
  self->in_.release();
  self->tls_.reset();
  if (self->target_.tls_ctx != nullptr) SSL_CTX_free(self->target_.tls_ctx);
  delete self;
}

// ---------------------------------------------------------------- the registry

H2UpstreamSession* H2UpstreamSessions::pick(const H2UpstreamTarget& target, bool& fresh) {
  std::string key = target_key(target);
  std::vector<H2UpstreamSession*>& list = sessions_[key];
  for (H2UpstreamSession* s : list) {
    if (s->has_room()) {
      fresh = !s->ready();
      return s;
    }
  }
  auto* session = new H2UpstreamSession(loop_, this, key, target);
  list.push_back(session);
  ++opened_;
  fresh = true;
  session->connect();
  return session;
}

void H2UpstreamSessions::forget(H2UpstreamSession* session) {
  auto it = sessions_.find(session->key());
  if (it == sessions_.end()) return;
  std::vector<H2UpstreamSession*>& list = it->second;
  list.erase(std::remove(list.begin(), list.end(), session), list.end());
  if (list.empty()) sessions_.erase(it);
}

void H2UpstreamSessions::close_all() {
  std::vector<H2UpstreamSession*> all;
  for (auto& [key, list] : sessions_) all.insert(all.end(), list.begin(), list.end());
  for (H2UpstreamSession* s : all) s->close();
}

}  // namespace harrow

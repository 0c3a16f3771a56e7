#include "core/http2/server_session.h"

#include <algorithm>
#include <cstring>

namespace harrow::http2 {

namespace {

Stream* stream_of(nghttp2_session* session, int32_t id) {
  return static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, id));
}

}  // namespace

bool ServerSession::Bucket::take(uint32_t burst, uint32_t rate, uint64_t now_ms) {
  if (last_ms == 0) {
    tokens = burst;
  } else if (now_ms > last_ms) {
    tokens = std::min<double>(burst, tokens + static_cast<double>(now_ms - last_ms) * rate / 1000);
  }
  last_ms = std::max<uint64_t>(now_ms, 1);
  if (tokens < 1) return false;
  tokens -= 1;
  return true;
}

ServerSession::ServerSession(const SessionLimits& limits, SessionEvents* events)
    : limits_(limits), events_(events) {
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, on_frame_send);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks, on_invalid_frame);
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  // Windows open as the owner moves request bodies on (consume()), not as bytes arrive.
  nghttp2_option_set_no_auto_window_update(option, 1);
  nghttp2_option_set_no_closed_streams(option, 1);
  nghttp2_option_set_max_continuations(option, SessionLimits::kMaxContinuations);
  // Acknowledgements a client does not read pile up here: a few hundred are a flood.
  nghttp2_option_set_max_outbound_ack(option, 256);
  // nghttp2's own reset limiter stays as a backstop behind Harrow's (which names the fault).
  nghttp2_option_set_stream_reset_rate_limit(option, 2ULL * limits_.resets_burst,
                                             2ULL * limits_.resets_per_second);
  nghttp2_session_server_new2(&session_, callbacks, this, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);

  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits_.initial_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits_.max_header_list},
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  // The connection window is opened as bytes arrive (streams are bounded by their own), so it
  // only has to be large enough not to slow a single fast stream down.
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 1 << 20);
}

ServerSession::~ServerSession() {
  nghttp2_session_del(session_);
}

bool ServerSession::glitch(const char* what) {
  if (glitches_.take(limits_.glitches_burst, limits_.glitches_per_second, now_ms_)) return true;
  pending_ = true;
  pending_failure_ = Failure::h2_flood;
  pending_detail_ = what;
  return false;
}

bool ServerSession::receive(const uint8_t* data, size_t len, uint64_t now_ms) {
  if (failed_ || fatal_) return false;
  now_ms_ = now_ms;
  ssize_t rv = nghttp2_session_mem_recv(session_, data, len);
  if (rv >= 0 && !pending_) return !failed_;
  Failure failure = Failure::h2_protocol_error;
  uint32_t code = NGHTTP2_PROTOCOL_ERROR;
  const char* detail = nullptr;
  if (pending_) {
    failure = pending_failure_;
    detail = pending_detail_;
    code = NGHTTP2_ENHANCE_YOUR_CALM;
  } else if (rv == NGHTTP2_ERR_FLOODED) {
    failure = Failure::h2_flood;
    detail = "SETTINGS or PING acknowledgements not read";
    code = NGHTTP2_ENHANCE_YOUR_CALM;
  } else if (rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
    failure = Failure::h2_continuation_flood;
    detail = "a header block in more CONTINUATION frames than allowed";
    code = NGHTTP2_ENHANCE_YOUR_CALM;
  } else if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
    detail = "no HTTP/2 connection preface";
  } else if (rv == NGHTTP2_ERR_HEADER_COMP) {
    detail = "HPACK decoding failed";
    code = NGHTTP2_COMPRESSION_ERROR;
  } else {
    detail = nghttp2_strerror(static_cast<int>(rv));
  }
  // nghttp2 cannot be driven on after a fatal error: the GOAWAY is written here.
  fatal_ = rv < 0;
  if (!fatal_) {
    terminate(failure, code, detail);
    return false;
  }
  failed_ = true;
  failure_ = failure;
  failure_detail_ = detail;
  int32_t last = std::max(nghttp2_session_get_last_proc_stream_id(session_), 0);
  std::string_view debug = failure_token(failure);
  size_t payload = 8 + debug.size();
  uint8_t* p = goaway_;
  *p++ = static_cast<uint8_t>(payload >> 16);
  *p++ = static_cast<uint8_t>(payload >> 8);
  *p++ = static_cast<uint8_t>(payload);
  *p++ = NGHTTP2_GOAWAY;
  *p++ = 0;
  for (int i = 0; i < 4; ++i) *p++ = 0;  // stream 0
  for (int shift = 24; shift >= 0; shift -= 8) *p++ = static_cast<uint8_t>(last >> shift);
  for (int shift = 24; shift >= 0; shift -= 8) *p++ = static_cast<uint8_t>(code >> shift);
  std::memcpy(p, debug.data(), debug.size());
  goaway_len_ = 9 + payload;
  return false;
}

void ServerSession::send(OutBatch& out, size_t high_water) {
  if (fatal_) {
    if (goaway_len_ != 0) out.add_copy(reinterpret_cast<const char*>(goaway_), goaway_len_, false);
    goaway_len_ = 0;
    return;
  }
  while (out.memory() < high_water) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n <= 0) break;
    out.add_copy(reinterpret_cast<const char*>(data), static_cast<size_t>(n), false);
  }
}

void ServerSession::send_to(std::string& out) {
  if (fatal_) {
    out.append(reinterpret_cast<const char*>(goaway_), goaway_len_);
    goaway_len_ = 0;
    return;
  }
  while (true) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n <= 0) break;
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
}

bool ServerSession::want_write() const {
  if (fatal_) return goaway_len_ != 0;
  return nghttp2_session_want_write(session_) != 0;
}

bool ServerSession::finished() const {
  if (fatal_) return goaway_len_ == 0;
  if (failed_) return nghttp2_session_want_write(session_) == 0;
  if (going_away_ && open_streams_ == 0) return nghttp2_session_want_write(session_) == 0;
  return nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0;
}

int ServerSession::submit_response(Stream* stream, std::span<const nghttp2_nv> fields,
                                   bool has_body) {
  nghttp2_data_provider provider{};
  provider.read_callback = on_read_body;
  return nghttp2_submit_response(session_, stream->id, fields.data(), fields.size(),
                                 has_body ? &provider : nullptr);
}

int ServerSession::submit_trailers(Stream* stream, std::span<const nghttp2_nv> fields) {
  return nghttp2_submit_trailer(session_, stream->id, fields.data(), fields.size());
}

void ServerSession::resume_body(Stream* stream) {
  nghttp2_session_resume_data(session_, stream->id);
}

void ServerSession::consume(Stream* stream, size_t len) {
  if (len != 0) nghttp2_session_consume_stream(session_, stream->id, len);
}

void ServerSession::reset(Stream* stream, uint32_t error_code) {
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream->id, error_code);
}

void ServerSession::shutdown() {
  if (going_away_ || failed_ || fatal_) return;
  going_away_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
}

void ServerSession::terminate(Failure failure, uint32_t error_code, const char* detail) {
  if (failed_ || fatal_) return;
  failed_ = true;
  failure_ = failure;
  failure_detail_ = detail;
  std::string_view debug = failure_token(failure);
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), error_code,
                        reinterpret_cast<const uint8_t*>(debug.data()), debug.size());
}

// ---------------------------------------------------------------- nghttp2's callbacks

int ServerSession::on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame,
                                    void* user) {
  auto* self = static_cast<ServerSession*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  int32_t id = frame->hd.stream_id;
  if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    // Trailers: their fields are not forwarded (RFC 9110 §6.5 lets a proxy drop them).
    if (Stream* stream = stream_of(session, id)) stream->trailers_expected = true;
    return 0;
  }
  Stream* stream = nullptr;
  if (self->going_away_ || self->open_streams_ >= self->limits_.max_concurrent_streams ||
      (stream = self->events_->h2_open(id)) == nullptr) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
    return self->glitch("streams above the concurrent limit") ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  stream->id = id;
  self->fields_.reset(self->limits_.max_header_list);
  self->fields_stream_ = id;
  nghttp2_session_set_stream_user_data(session, id, stream);
  ++self->open_streams_;
  return 0;
}

int ServerSession::on_header(nghttp2_session* session, const nghttp2_frame* frame,
                             const uint8_t* name, size_t namelen, const uint8_t* value,
                             size_t valuelen, uint8_t, void* user) {
  auto* self = static_cast<ServerSession*>(user);
  Stream* stream = stream_of(session, frame->hd.stream_id);
  if (stream == nullptr || stream->trailers_expected || frame->hd.stream_id != self->fields_stream_)
    return 0;
  self->fields_.add(std::string_view(reinterpret_cast<const char*>(name), namelen),
                    std::string_view(reinterpret_cast<const char*>(value), valuelen));
  return 0;
}

int ServerSession::on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<ServerSession*>(user);
  bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS: {
      Stream* stream = stream_of(session, frame->hd.stream_id);
      if (stream == nullptr) return 0;
      if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        if (self->fields_.too_large() && !self->glitch("header lists above the limit")) {
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        self->fields_stream_ = 0;
        self->events_->h2_request(stream, self->fields_, end_stream);
      } else if (end_stream) {
        self->events_->h2_body_end(stream);
      }
      return 0;
    }
    case NGHTTP2_DATA: {
      if (frame->hd.length == 0 && !end_stream && !self->glitch("empty DATA frames")) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
      Stream* stream = stream_of(session, frame->hd.stream_id);
      if (stream != nullptr && end_stream) self->events_->h2_body_end(stream);
      return 0;
    }
    case NGHTTP2_RST_STREAM:
      if (!self->resets_.take(self->limits_.resets_burst, self->limits_.resets_per_second,
                              self->now_ms_)) {
        self->pending_ = true;
        self->pending_failure_ = Failure::h2_rapid_reset;
        self->pending_detail_ = "streams reset faster than the limit";
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
      return 0;
    case NGHTTP2_SETTINGS:
    case NGHTTP2_PING:
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0 &&
          !self->glitch("SETTINGS or PING frames faster than the limit")) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
      return 0;
    default:
      return 0;
  }
}

int ServerSession::on_data_chunk(nghttp2_session* session, uint8_t, int32_t stream_id,
                                 const uint8_t* data, size_t len, void* user) {
  auto* self = static_cast<ServerSession*>(user);
  nghttp2_session_consume_connection(session, len);
  Stream* stream = stream_of(session, stream_id);
  if (stream == nullptr) {
    nghttp2_session_consume_stream(session, stream_id, len);
    return 0;
  }
  self->events_->h2_body(stream, data, len);
  return 0;
}

int ServerSession::on_stream_close(nghttp2_session* session, int32_t stream_id, uint32_t error_code,
                                   void* user) {
  auto* self = static_cast<ServerSession*>(user);
  Stream* stream = stream_of(session, stream_id);
  if (stream == nullptr) return 0;
  nghttp2_session_set_stream_user_data(session, stream_id, nullptr);
  --self->open_streams_;
  self->events_->h2_closed(stream, error_code);
  return 0;
}

int ServerSession::on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<ServerSession*>(user);
  if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR &&
      !self->failed_) {
    // nghttp2 ended the connection itself (a protocol or flow-control error it found).
    self->failed_ = true;
    self->failure_ = frame->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM
                         ? Failure::h2_flood
                         : Failure::h2_protocol_error;
    self->failure_detail_ = nghttp2_http2_strerror(frame->goaway.error_code);
  }
  return 0;
}

int ServerSession::on_invalid_frame(nghttp2_session*, const nghttp2_frame*, int, void* user) {
  auto* self = static_cast<ServerSession*>(user);
  return self->glitch("invalid frames") ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

ssize_t ServerSession::on_read_body(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                                    size_t length, uint32_t* data_flags, nghttp2_data_source*,
                                    void* user) {
  auto* self = static_cast<ServerSession*>(user);
  Stream* stream = stream_of(session, stream_id);
  if (stream == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  SessionEvents::Pull pull = self->events_->h2_pull(stream, buf, length);
  if (pull.end) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    if (pull.trailers) *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
  } else if (pull.bytes == 0) {
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(pull.bytes);
}

}  // namespace harrow::http2

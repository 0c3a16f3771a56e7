#include "health/probe_client.h"

#include <arpa/inet.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <uv.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include <nghttp2/nghttp2.h>

#include "core/base/io_buffer.h"
#include "core/http2/upstream_message.h"
#include "core/tls/tls_session.h"

namespace harrow::health {
namespace {

constexpr size_t kReadBufferSize = 16 * 1024;

// What plain-HTTP probe connections read into: one buffer per thread, since every read is parsed
// (or copied into the HTTP/2 session) before its callback returns. A buffer in each client
// made a thousand probed servers hold 16 MiB, and each probe touch pages of its own.
char* shared_read_buffer() {
  thread_local std::unique_ptr<char[]> buffer;
  if (!buffer) buffer = std::make_unique<char[]>(kReadBufferSize);
  return buffer.get();
}
// responseMatch looks at most this far into a body; a mismatch is reported there.
constexpr uint64_t kMaxScannedBody = 1024 * 1024;
// Once the verdict is known, the rest of the response is read (so the connection can carry the
// next probe) only while the whole body stays this small; a larger one costs a reconnect
// instead of megabytes of reading.
constexpr uint64_t kMaxDrainedBody = 64 * 1024;

ProbeResult make_result(ProbeResultKind kind, int status, int error, std::string detail) {
  ProbeResult r;
  r.kind = kind;
  r.status = status;
  r.error = error;
  r.detail = std::move(detail);
  return r;
}

// A probe's HTTP/2 session: the probe's HTTP/1.1 request goes out as one stream's HEADERS, and
// the stream's response comes back as HTTP/1.1 bytes (core/http2/upstream_message.h) for the
// probe's own parser, so both protocols are judged by the same code.
class H2Probe final : http2::RequestSink {
 public:
  explicit H2Probe(bool https) : scheme_(https ? "https" : "http") {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, &on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, &on_stream_close);
    if (nghttp2_session_client_new(&session_, cb, this) != 0) session_ = nullptr;
    nghttp2_session_callbacks_del(cb);
    if (session_ != nullptr) {
      const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
      nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 1);
    }
  }
  ~H2Probe() {
    if (session_ != nullptr) nghttp2_session_del(session_);
  }
  H2Probe(const H2Probe&) = delete;
  H2Probe& operator=(const H2Probe&) = delete;

  // Opens a stream for the HTTP/1.1 request `text`; false if it cannot be.
  bool submit(const std::string& text) {
    if (session_ == nullptr) return false;
    http2::RequestTranslator translator(scheme_);
    fields_.clear();
    if (!translator.feed(text.data(), text.size(), *this) || fields_.empty()) return false;
    std::vector<nghttp2_nv> nv;
    for (const http2::Field& f : fields_) {
      nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(f.name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(f.value.data())), f.name.size(),
                    f.value.size(), NGHTTP2_NV_FLAG_NONE});
    }
    status_ = 0;
    head_.clear();
    final_head_ = false;
    chunked_ = false;
    reset_ = false;
    stream_ = nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(), nullptr, nullptr);
    return stream_ > 0;
  }
  // Feeds what the server sent; false on a fatal session error.
  bool receive(const char* data, size_t len) {
    return nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data), len) >= 0;
  }
  // Appends the frames ready to send to `out`; false on a fatal session error.
  bool send(OutBatch& out) {
    for (;;) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) return false;
      if (n == 0) return true;
      out.add_copy(reinterpret_cast<const char*>(data), static_cast<size_t>(n), false);
    }
  }
  // The response so far as HTTP/1.1 bytes (taken by the caller).
  std::string& response() { return h1_; }
  bool stream_reset() const { return reset_; }
  // The server sent GOAWAY or the session ended: no more probes on this connection.
  bool finished() const {
    return session_ == nullptr ||
           (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) ||
           goaway_;
  }

 private:
  void request_head(std::span<const http2::Field> fields, bool) override {
    fields_.assign(fields.begin(), fields.end());
  }
  void request_body(const char*, size_t) override {}
  void request_end() override {}

  static H2Probe* from(void* user) { return static_cast<H2Probe*>(user); }
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    H2Probe* self = from(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != self->stream_) return 0;
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") {
      int status = 0;
      for (char c : v) status = status * 10 + (c - '0');
      self->status_ = status;
    } else if (n.empty() || n.front() != ':') {
      self->head_.push_back({std::string(n), std::string(v)});
    }
    return 0;
  }
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    H2Probe* self = from(user);
    if (frame->hd.type == NGHTTP2_GOAWAY) self->goaway_ = true;
    if (frame->hd.stream_id != self->stream_ || self->stream_ == 0) return 0;
    bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS && !self->final_head_) {
      self->h1_ +=
          http2::response_head_bytes(self->status_, self->head_, end, false, self->chunked_);
      self->final_head_ = self->status_ >= 200;
      self->head_.clear();
    }
    bool ends_body = frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA;
    if (end && ends_body && self->chunked_) self->h1_ += http2::kLastChunk;
    return 0;
  }
  static int on_data_chunk_recv(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                                size_t len, void* user) {
    H2Probe* self = from(user);
    if (stream_id != self->stream_) return 0;
    if (self->chunked_) {
      http2::append_chunk(self->h1_, reinterpret_cast<const char*>(data), len);
    } else {
      self->h1_.append(reinterpret_cast<const char*>(data), len);
    }
    return 0;
  }
  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user) {
    H2Probe* self = from(user);
    if (stream_id == self->stream_ && error_code != NGHTTP2_NO_ERROR) self->reset_ = true;
    return 0;
  }

  std::string scheme_;
  nghttp2_session* session_ = nullptr;
  std::vector<http2::Field> fields_;
  std::vector<http2::Field> head_;
  std::string h1_;
  int32_t stream_ = 0;
  int status_ = 0;
  bool final_head_ = false;
  bool chunked_ = false;
  bool reset_ = false;
  bool goaway_ = false;
};

}  // namespace

struct ProbeClient::Impl : std::enable_shared_from_this<Impl> {
  // One TCP connection. Freed in its close callback; `impl` keeps the client's state (the read
  // buffer, the request text) alive until then. Only the client's current connection
  // (impl->conn_) acts on its callbacks: a dropped one is already closing.
  struct Conn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    std::shared_ptr<Impl> impl;
    bool connected = false;
    bool write_pending = false;
    // https:// probes: the request goes through `out` into the session; the response is
    // decrypted into `plain`.
    std::unique_ptr<OutBatch> out;
    std::unique_ptr<tls::Session> tls;
    InputBuffer plain;
    bool handshaking = false;
    std::unique_ptr<H2Probe> h2;  // HTTP/2 probes
    ~Conn() {
      h2.reset();
      tls.reset();
      out.reset();
      plain.release();
    }
  };

  explicit Impl(uv_loop_t* loop) : loop_(loop) {
    static const llhttp_settings_t settings = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_message_begin = &Impl::on_message_begin;
      s.on_headers_complete = &Impl::on_headers_complete;
      s.on_body = &Impl::on_body;
      s.on_message_complete = &Impl::on_message_complete;
      return s;
    }();
    llhttp_init(&parser_, HTTP_RESPONSE, &settings);
    parser_.data = this;
  }

  // Second half of construction: the timer's data holds a reference until its close callback.
  void start() {
    uv_timer_init(loop_, &timer_);
    timer_.data = this;
    timer_ref_ = shared_from_this();
  }

  void shutdown() {
    in_flight_ = false;
    done_ = nullptr;
    pending_.reset();
    drop_connection();
    uv_timer_stop(&timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &Impl::on_timer_closed);
  }

  void probe(const std::shared_ptr<const ProbeRequest>& request,
             std::function<void(ProbeResult)> done) {
    in_probe_call_ = true;
    if (in_flight_) drop_connection();  // cancelled mid-exchange: the connection is unusable
    uv_timer_stop(&timer_);
    pending_.reset();
    // The same request as last time (a prober's every probe): its text is already built. The
    // pointer is held until replaced, so an equal one is the same object.
    if (request != request_) {
      request_ = request;
      build_request_text();
    }
    done_ = std::move(done);
    in_flight_ = true;
    retried_ = false;
    timeout_ms_ =
        request_->timeout.count() > 0 ? static_cast<uint64_t>(request_->timeout.count()) : 0;
    uv_timer_start(&timer_, &Impl::on_timer, timeout_ms_, 0);
    if (conn_ != nullptr && conn_->connected && !conn_->write_pending) {
      reused_ = true;
      begin_exchange();
    } else {
      drop_connection();
      open_connection();
    }
    in_probe_call_ = false;
  }

  bool busy() const { return in_flight_; }
  uint64_t connections_opened() const { return opened_; }

 private:
  // --- connection ---------------------------------------------------------------------------

  void open_connection() {
    auto* c = new Conn();
    int rc = uv_tcp_init(loop_, &c->tcp);
    if (rc != 0) {
      delete c;  // never became a handle
      complete(make_result(ProbeResultKind::ConnectFailed, 0, rc, uv_err_name(rc)), false);
      return;
    }
    c->tcp.data = c;
    c->connect_req.data = c;
    c->write_req.data = c;
    c->impl = shared_from_this();
    conn_ = c;
    ++opened_;
    reused_ = false;
    rc = uv_tcp_connect(&c->connect_req, &c->tcp,
                        reinterpret_cast<const sockaddr*>(&request_->address), &Impl::on_connect);
    if (rc != 0) {
      complete(make_result(ProbeResultKind::ConnectFailed, 0, rc, uv_err_name(rc)), false);
    }
  }

  void drop_connection() {
    Conn* c = conn_;
    if (c == nullptr) return;
    conn_ = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), &Impl::on_conn_closed);
  }

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&conn_->tcp); }

  // Writes what the connection's output batch holds (TLS or HTTP/2); a failed write loses the
  // connection.
  void flush_out() {
    int rc = conn_->out->flush();
    conn_->write_pending = conn_->out->in_flight() > 0;
    if (rc != 0) {
      conn_->write_pending = false;
      connection_lost(rc);
    }
  }

  void connected(int status) {
    if (status < 0) {
      complete(make_result(ProbeResultKind::ConnectFailed, 0, status, uv_err_name(status)), false);
      return;
    }
    conn_->connected = true;
    uv_tcp_nodelay(&conn_->tcp, 1);
    // Reading stays on while the connection idles between probes, so a close by the server is
    // noticed then rather than by the next probe.
    int rc = uv_read_start(stream(), &Impl::on_alloc, &Impl::on_read);
    if (rc != 0) {
      connection_lost(rc);
      return;
    }
    if (request_->tls_ctx != nullptr) {
      Conn* c = conn_;
      c->out = std::make_unique<OutBatch>(stream(), &Impl::on_tls_write);
      c->tls = tls::Session::connect(request_->tls_ctx, request_->tls_name, request_->tls_verify,
                                     nullptr, stream(), &Impl::on_tls_write, c->out.get(),
                                     request_->http2 ? "h2" : "");
      if (c->tls == nullptr) {
        complete(make_result(ProbeResultKind::ConnectFailed, 0, UV_EPROTO, "TLS start failed"),
                 false);
        return;
      }
      c->out->set_filter(c->tls.get());
      c->handshaking = true;  // the request follows the handshake (tls_read)
      return;
    }
    if (request_->http2) {
      conn_->out = std::make_unique<OutBatch>(stream(), &Impl::on_tls_write);
      conn_->h2 = std::make_unique<H2Probe>(false);
    }
    begin_exchange();
  }

  // What the server sent an HTTP/2 probe's connection: frames in, HTTP/1.1 bytes to read().
  void h2_receive(Conn* c, const char* data, size_t len) {
    if (!c->h2->receive(data, len)) {
      complete(make_result(ProbeResultKind::InvalidResponse, status_, UV_EPROTO,
                           "HTTP/2 protocol error from the server"),
               false);
      return;
    }
    std::string bytes;
    bytes.swap(c->h2->response());
    if (!bytes.empty()) {
      read(static_cast<ssize_t>(bytes.size()), bytes.data());
      if (current(c) == nullptr) return;
    }
    if (in_flight_ && !pending_ && c->h2->stream_reset()) {
      complete(make_result(ProbeResultKind::InvalidResponse, status_, UV_ECONNRESET,
                           "the server reset the HTTP/2 stream"),
               false);
      return;
    }
    if (!c->h2->send(*c->out) || c->out->flush() != 0) {
      connection_lost(UV_EPROTO);
      return;
    }
    if (c->h2->finished() && !in_flight_) drop_connection();
  }

  // Ciphertext arrived on an https:// probe's connection.
  void tls_read(Conn* c, ssize_t nread) {
    if (nread < 0 || c->handshaking) {
      if (nread < 0 && c->handshaking) {
        complete(make_result(ProbeResultKind::ConnectFailed, 0, static_cast<int>(nread),
                             "connection closed during the TLS handshake"),
                 false);
        return;
      }
    }
    if (nread < 0) {
      read(nread, nullptr);
      return;
    }
    c->tls->received(static_cast<size_t>(nread));
    for (;;) {
      tls::Session::Status status = c->tls->decrypt(c->plain);
      if (status == tls::Session::Status::Failed) {
        std::string detail =
            (c->handshaking ? "TLS handshake failed: " : "TLS error: ") + c->tls->error();
        complete(make_result(ProbeResultKind::ConnectFailed, 0, UV_EPROTO, std::move(detail)),
                 false);
        return;
      }
      if (c->handshaking && c->tls->handshake_done()) {
        c->handshaking = false;
        if (request_->http2) {
          if (c->tls->alpn() != "h2") {
            complete(make_result(ProbeResultKind::ConnectFailed, 0, UV_EPROTO,
                                 "the server did not select h2 by ALPN"),
                     false);
            return;
          }
          c->h2 = std::make_unique<H2Probe>(true);
        }
        begin_exchange();
        if (current(c) == nullptr) return;
      }
      if (c->plain.block != nullptr && c->plain.unconsumed() > 0) {
        const char* data = c->plain.parse_begin();
        ssize_t n = static_cast<ssize_t>(c->plain.unconsumed());
        c->plain.parse_pos = c->plain.fill;
        if (c->h2 != nullptr) {
          h2_receive(c, data, static_cast<size_t>(n));
        } else {
          read(n, data);
        }
        if (current(c) == nullptr) return;
      }
      if (status == tls::Session::Status::Closed) {
        read(UV_EOF, nullptr);
        return;
      }
      if (!c->tls->has_buffered()) break;
    }
    c->plain.release_if_drained();
  }

  void begin_exchange() {
    llhttp_reset(&parser_);
    received_ = 0;
    status_ = 0;
    interim_ = false;
    message_complete_ = false;
    keep_alive_ = false;
    stopped_ = false;
    verdict_.reset();
    reset_body();
    if (conn_->h2 != nullptr) {
      if (!conn_->h2->submit(request_text_) || !conn_->h2->send(*conn_->out)) {
        connection_lost(UV_EPROTO);
        return;
      }
      flush_out();
      return;
    }
    if (conn_->tls != nullptr) {
      conn_->out->add_static(request_text_);  // encrypted (copied) at once by the flush
      flush_out();
      return;
    }
    uv_buf_t buf = uv_buf_init(request_text_.data(), static_cast<unsigned>(request_text_.size()));
    // A request this small almost always goes out at once: without a write request, libuv has
    // no completion to run and no poll flags to change (a system call per probe).
    int n = uv_try_write(stream(), &buf, 1);
    if (n == static_cast<int>(buf.len)) return;
    if (n < 0 && n != UV_EAGAIN) {
      connection_lost(n);
      return;
    }
    if (n > 0) buf = uv_buf_init(buf.base + n, buf.len - static_cast<unsigned>(n));
    conn_->write_pending = true;
    int rc = uv_write(&conn_->write_req, stream(), &buf, 1, &Impl::on_write);
    if (rc != 0) {
      conn_->write_pending = false;
      connection_lost(rc);
    }
  }

  void build_request_text() {
    std::string& t = request_text_;
    t.clear();
    t.append("GET ");
    t.append(request_->path.empty() ? std::string_view("/") : std::string_view(request_->path));
    t.append(" HTTP/1.1\r\nHost: ");
    if (!request_->host_header.empty()) {
      t.append(request_->host_header);
    } else {
      append_address_host(t);
    }
    t.append("\r\nUser-Agent: ");
    t.append(request_->user_agent);
    t.append("\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n");
  }

  // Fallback Host when the request names none: the address itself ("[::1]:8080").
  void append_address_host(std::string& t) const {
    char name[INET6_ADDRSTRLEN] = {};
    int port = 0;
    if (request_->address.ss_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&request_->address);
      uv_ip4_name(a, name, sizeof name);
      t.append(name);
      port = ntohs(a->sin_port);
    } else if (request_->address.ss_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&request_->address);
      uv_ip6_name(a, name, sizeof name);
      t.append("[").append(name).append("]");
      port = ntohs(a->sin6_port);
    }
    if (port != 0 && port != 80) t.append(":").append(std::to_string(port));
  }

  // The connection ended (EOF, reset, failed write) before a complete response, which fails
  // the probe even if its verdict looked known already.
  void connection_lost(int error) {
    if (received_ == 0) {
      // A kept-alive connection that the server closed just as the probe reused it: one retry
      // on a fresh connection, within the same deadline.
      if (reused_ && !retried_) {
        retried_ = true;
        drop_connection();
        open_connection();
        return;
      }
      complete(make_result(ProbeResultKind::ConnectFailed, 0, error, uv_err_name(error)), false);
      return;
    }
    complete(make_result(ProbeResultKind::InvalidResponse, status_, error,
                         "connection closed after " + std::to_string(received_) + " bytes"),
             false);
  }

  void read(ssize_t nread, const char* data) {
    if (nread == 0) return;
    if (!in_flight_ || pending_) {
      // Idle: nothing is owed to us, so this is the server closing (or breaking the framing).
      drop_connection();
      return;
    }
    if (nread < 0) {
      if (nread == UV_EOF && received_ > 0) {
        // A body delimited by the connection's end completes here.
        llhttp_finish(&parser_);
        if (message_complete_) {
          finish_response(false);
          return;
        }
      }
      connection_lost(static_cast<int>(nread));
      return;
    }
    received_ += static_cast<uint64_t>(nread);
    llhttp_errno_t rc = llhttp_execute(&parser_, data, static_cast<size_t>(nread));
    if (rc == HPE_OK) return;  // more to come
    if (rc == HPE_PAUSED && message_complete_) {
      // Bytes after the response mean the server does not frame its responses correctly: such
      // a connection is not reused.
      bool trailing = llhttp_get_error_pos(&parser_) != data + nread;
      finish_response(keep_alive_ && !trailing && status_ != 101);
      return;
    }
    if (rc == HPE_PAUSED && stopped_ && verdict_) {
      complete(std::move(*verdict_), false);  // decided; the rest is not worth reading
      return;
    }
    const char* reason = llhttp_get_error_reason(&parser_);
    complete(make_result(ProbeResultKind::InvalidResponse, status_, 0,
                         reason != nullptr && *reason != '\0' ? reason : llhttp_errno_name(rc)),
             false);
  }

  void finish_response(bool reusable) {
    if (!verdict_) {
      // Complete body, status matched, responseMatch set and not seen.
      verdict_ = make_result(ProbeResultKind::BodyMismatch, status_, 0,
                             "responseMatch not found in the body");
    }
    complete(std::move(*verdict_), reusable);
  }

  // Reports the probe's result: never from inside probe() (deferred to the timer then), and
  // as the last thing the caller does, since `done` may destroy the client or start a probe.
  void complete(ProbeResult result, bool keep_connection) {
    if (!keep_connection) drop_connection();
    if (in_probe_call_) {
      pending_ = std::move(result);
      uv_timer_start(&timer_, &Impl::on_timer, 0, 0);
      return;
    }
    uv_timer_stop(&timer_);
    in_flight_ = false;
    pending_.reset();
    verdict_.reset();
    std::function<void(ProbeResult)> done = std::move(done_);
    done_ = nullptr;
    if (done) done(std::move(result));
  }

  void deadline() {
    if (pending_) {
      ProbeResult r = std::move(*pending_);
      pending_.reset();
      complete(std::move(r), conn_ != nullptr);
      return;
    }
    if (!in_flight_) return;
    bool connected = conn_ != nullptr && conn_->connected;
    std::string detail = connected ? "no complete response within " : "connect timed out after ";
    detail += std::to_string(timeout_ms_);
    detail += " ms";
    complete(make_result(ProbeResultKind::Timeout, status_, 0, std::move(detail)), false);
  }

  // --- response ------------------------------------------------------------------------------

  void reset_body() {
    body_bytes_ = 0;
    scanned_ = 0;
    carry_.clear();
  }

  // Whether the rest of a decided response is small enough to read to its end.
  bool drain_worthwhile() const {
    if (parser_.flags & F_CHUNKED) return body_bytes_ <= kMaxDrainedBody;
    if (parser_.flags & F_CONTENT_LENGTH) {
      return parser_.content_length == 0 || body_bytes_ + parser_.content_length <= kMaxDrainedBody;
    }
    return !llhttp_message_needs_eof(&parser_);  // read-until-close is never reusable
  }

  // Streams one piece of body past responseMatch: only the last (length - 1) bytes of earlier
  // pieces are kept, enough for a match that straddles pieces.
  bool scan(const char* at, size_t len) {
    const std::string& needle = request_->response_match;
    const size_t keep = needle.size() - 1;
    if (!carry_.empty()) {
      window_.assign(carry_);
      window_.append(at, std::min(len, keep));
      if (window_.find(needle) != std::string::npos) return true;
    }
    if (std::string_view(at, len).find(needle) != std::string_view::npos) return true;
    if (len >= keep) {
      carry_.assign(at + len - keep, keep);
    } else {
      carry_.append(at, len);
      if (carry_.size() > keep) carry_.erase(0, carry_.size() - keep);
    }
    return false;
  }

  static Impl* from(llhttp_t* p) { return static_cast<Impl*>(p->data); }

  static int on_message_begin(llhttp_t* p) {
    Impl* self = from(p);
    self->status_ = 0;
    self->interim_ = false;
    self->reset_body();
    return 0;
  }

  static int on_headers_complete(llhttp_t* p) {
    Impl* self = from(p);
    self->status_ = p->status_code;
    if (self->status_ >= 100 && self->status_ < 200 && self->status_ != 101) {
      self->interim_ = true;  // 100 Continue, 103 Early Hints, …: the real response follows
      return 0;
    }
    if (!self->request_->statuses.matches(self->status_)) {
      self->verdict_ = make_result(ProbeResultKind::BadStatus, self->status_, 0,
                                   "status " + std::to_string(self->status_));
    } else if (self->request_->response_match.empty()) {
      self->verdict_ = make_result(ProbeResultKind::Pass, self->status_, 0,
                                   "status " + std::to_string(self->status_));
    }
    if (self->verdict_ && !self->drain_worthwhile()) {
      self->stopped_ = true;
      return HPE_PAUSED;
    }
    return 0;
  }

  static int on_body(llhttp_t* p, const char* at, size_t len) {
    Impl* self = from(p);
    if (self->interim_) return 0;
    self->body_bytes_ += len;
    if (!self->verdict_) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(len, kMaxScannedBody - self->scanned_));
      bool found = self->scan(at, take);
      self->scanned_ += take;
      if (found) {
        self->verdict_ = make_result(ProbeResultKind::Pass, self->status_, 0,
                                     "status " + std::to_string(self->status_));
      } else if (self->scanned_ >= kMaxScannedBody) {
        self->verdict_ = make_result(ProbeResultKind::BodyMismatch, self->status_, 0,
                                     "responseMatch not found in the first 1 MiB");
      }
    }
    if (self->verdict_ && !self->drain_worthwhile()) {
      self->stopped_ = true;
      return HPE_PAUSED;
    }
    return 0;
  }

  static int on_message_complete(llhttp_t* p) {
    Impl* self = from(p);
    if (self->interim_) {
      self->interim_ = false;
      return 0;
    }
    self->message_complete_ = true;
    self->keep_alive_ = llhttp_should_keep_alive(p) != 0;
    return HPE_PAUSED;  // one response per probe; anything after it is looked at by read()
  }

  // --- libuv callbacks -------------------------------------------------------------------------

  // The connection's callbacks act only while it is the client's current one.
  static Impl* current(Conn* c) { return c->impl->conn_ == c ? c->impl.get() : nullptr; }

  static void on_connect(uv_connect_t* req, int status) {
    auto* c = static_cast<Conn*>(req->data);
    if (Impl* self = current(c)) self->connected(status);
  }

  static void on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    auto* c = static_cast<Conn*>(h->data);
    if (c->tls != nullptr) {
      *buf = c->tls->read_buffer();
      return;
    }
    *buf = uv_buf_init(shared_read_buffer(), kReadBufferSize);
  }

  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
    auto* c = static_cast<Conn*>(s->data);
    Impl* self = current(c);
    if (self == nullptr || nread == 0) return;
    if (c->tls != nullptr) {
      self->tls_read(c, nread);
      return;
    }
    if (c->h2 != nullptr && nread > 0) {
      self->h2_receive(c, buf->base, static_cast<size_t>(nread));
      return;
    }
    self->read(nread, buf->base);
  }

  // Writes of an https:// probe's connection (handshake records and the request).
  static void on_tls_write(uv_write_t* req, int status) {
    auto* c = static_cast<Conn*>(req->handle->data);
    write_request_finish(req);
    c->out->write_done();
    if (c->out->in_flight() == 0) c->write_pending = false;
    Impl* self = current(c);
    if (self == nullptr || status == 0) return;
    if (self->in_flight_ && !self->pending_) {
      self->connection_lost(status);
    } else {
      self->drop_connection();
    }
  }

  static void on_write(uv_write_t* req, int status) {
    auto* c = static_cast<Conn*>(req->data);
    c->write_pending = false;
    Impl* self = current(c);
    if (self == nullptr || status == 0) return;
    if (self->in_flight_ && !self->pending_) {
      self->connection_lost(status);
    } else {
      self->drop_connection();
    }
  }

  static void on_conn_closed(uv_handle_t* h) { delete static_cast<Conn*>(h->data); }

  static void on_timer(uv_timer_t* t) { static_cast<Impl*>(t->data)->deadline(); }

  static void on_timer_closed(uv_handle_t* h) {
    // The last reference may go here, taking *this with it.
    std::shared_ptr<Impl> last = std::move(static_cast<Impl*>(h->data)->timer_ref_);
  }

  uv_loop_t* loop_;
  uv_timer_t timer_;  // the probe's deadline; also delivers results that must not be reported
                      // from inside probe()
  std::shared_ptr<Impl> timer_ref_;
  Conn* conn_ = nullptr;
  uint64_t opened_ = 0;

  std::shared_ptr<const ProbeRequest> request_;
  std::string request_text_;
  std::function<void(ProbeResult)> done_;
  uint64_t timeout_ms_ = 0;
  bool in_flight_ = false;
  bool in_probe_call_ = false;
  bool reused_ = false;  // this probe's request went out on a kept-alive connection
  bool retried_ = false;
  std::optional<ProbeResult> pending_;  // a result waiting for the timer to deliver it

  llhttp_t parser_;
  uint64_t received_ = 0;  // response bytes on this connection for this probe
  int status_ = 0;
  bool interim_ = false;
  bool message_complete_ = false;
  bool keep_alive_ = false;
  bool stopped_ = false;  // parsing paused by us: the rest of the response is not read
  std::optional<ProbeResult> verdict_;  // known before the response is complete
  uint64_t body_bytes_ = 0;
  uint64_t scanned_ = 0;
  std::string carry_;   // the last responseMatch.size() - 1 bytes scanned
  std::string window_;  // carry_ + the start of the next piece
};

ProbeClient::ProbeClient(uv_loop_s* loop) : impl_(std::make_shared<Impl>(loop)) {
  impl_->start();
}

ProbeClient::~ProbeClient() {
  impl_->shutdown();
}

void ProbeClient::probe(const ProbeRequest& request, std::function<void(ProbeResult)> done) {
  impl_->probe(std::make_shared<const ProbeRequest>(request), std::move(done));
}

void ProbeClient::probe(const std::shared_ptr<const ProbeRequest>& request,
                        std::function<void(ProbeResult)> done) {
  impl_->probe(request, std::move(done));
}

bool ProbeClient::busy() const {
  return impl_->busy();
}

uint64_t ProbeClient::connections_opened() const {
  return impl_->connections_opened();
}

}  // namespace harrow::health

// One HTTP/2 connection from a worker to a server (h2c with prior knowledge, or TLS with ALPN
// "h2"), carrying many exchanges at once: each is an UpstreamConnection in HTTP/2 mode, one
// stream here. The session owns the socket, the TLS session and nghttp2's client session; the
// streams own their messages. Freed only in its handles' close callbacks.
//
// Calls into streams come from libuv callbacks (reads, writes, the session's "soon" timer),
// never from inside a stream's own call into the session, so a stream may close itself (and
// its owner may end the exchange) from any of them.
#pragma once

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/base/failure.h"
#include "core/base/io_buffer.h"
#include "core/http2/upstream_message.h"

namespace harrow {

namespace tls {
class Session;
}

class H2UpstreamSessions;

// Where a session goes, and how.
struct H2UpstreamTarget {
  sockaddr_storage addr{};
  SSL_CTX* tls_ctx = nullptr;  // null: h2c
  std::string tls_name;        // SNI and the certificate's expected name
  bool tls_verify = true;
  uint64_t connect_timeout_ms = 0;
  uint64_t idle_timeout_ms = 0;  // an idle session closes after this
};

class H2UpstreamSession {
 public:
  // What the session tells one of its streams.
  class Stream {
   public:
    // The session is ready for the stream's request (after attach()).
    virtual void h2_ready() = 0;
    // The session failed (connecting, or later): the stream is detached already.
    virtual void h2_session_failed(Failure failure, int uv_status) = 0;
    // A response head (interim or final) or, after the final one, the trailer section.
    virtual void h2_headers(int status, std::span<const http2::Field> fields, bool end_stream) = 0;
    virtual void h2_data(const uint8_t* data, size_t len) = 0;
    // The server ended its side of the stream (after the last h2_data / h2_headers).
    virtual void h2_end() = 0;
    // The stream is closed; `error_code` non-zero: reset (by either side, or refused).
    virtual void h2_closed(uint32_t error_code) = 0;
    // The request body for DATA frames: up to `len` bytes into `buf`; `eof` once all was given.
    // 0 without `eof`: nothing yet (resume_body() goes on).
    virtual size_t h2_pull(uint8_t* buf, size_t len, bool& eof) = 0;
    // Work scheduled with due() (from the session's timer).
    virtual void h2_due() = 0;

   protected:
    ~Stream() = default;
  };

  H2UpstreamSession(uv_loop_t* loop, H2UpstreamSessions* registry, std::string key,
                    H2UpstreamTarget target);
  H2UpstreamSession(const H2UpstreamSession&) = delete;
  H2UpstreamSession& operator=(const H2UpstreamSession&) = delete;

  // Starts connecting (once, right after construction).
  void connect();
  // Another stream fits: not closing, no GOAWAY, below the server's concurrent-stream limit.
  bool has_room() const;
  bool ready() const { return state_ == State::Ready; }
  // Joins `stream`: h2_ready() or h2_session_failed() follows.
  void attach(Stream* stream);
  // The stream leaves; nothing of it is called again. An open stream is reset with `code`.
  void detach(Stream* stream, int32_t id, uint32_t code);
  // Submits the request head; returns the stream id, or a negative nghttp2 error.
  int32_t open_stream(Stream* stream, std::span<const http2::Field> fields, bool has_body);
  void resume_body(int32_t id);
  // `len` response bytes have moved on: the server may send that much more.
  void consume(int32_t id, size_t len);
  // Calls stream->h2_due() soon, from the loop (and sends what is ready afterwards).
  void due(Stream* stream);
  void send_soon();
  // Closes the connection now; every stream attached hears h2_session_failed(upstream_reset).
  void close();

  const std::string& key() const { return key_; }

 private:
  enum class State { Connecting, Handshaking, Ready, Closing };

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
  void start_session();
  void fail(Failure failure, int uv_status, const char* detail);
  void close_handles();
  void on_read(ssize_t nread);
  bool receive();  // feeds the plaintext in in_ to nghttp2; false when the session failed
  void send();
  void check_idle();
  void run_due();

  static void on_connect(uv_connect_t* req, int status);
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_timer(uv_timer_t* t);
  static void on_soon(uv_timer_t* t);
  static void on_close(uv_handle_t* h);

  static int on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame, void* user);
  static int on_header(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                       void* user);
  static int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user);
  static int on_data_chunk_recv(nghttp2_session* session, uint8_t flags, int32_t stream_id,
                                const uint8_t* data, size_t len, void* user);
  static int on_stream_close(nghttp2_session* session, int32_t stream_id, uint32_t error_code,
                             void* user);
  static ssize_t on_read_body(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                              size_t length, uint32_t* data_flags, nghttp2_data_source* source,
                              void* user);

  Stream* stream_of(int32_t id) const;

  H2UpstreamSessions* registry_;
  std::string key_;
  H2UpstreamTarget target_;
  State state_ = State::Connecting;
  uv_tcp_t tcp_{};
  uv_timer_t timer_{};  // connect timeout, then the idle timeout
  uv_timer_t soon_{};   // due work and sends, on the next turn of the loop
  uv_connect_t connect_req_{};
  int open_handles_ = 0;
  OutBatch out_;
  InputBuffer in_;
  std::unique_ptr<tls::Session> tls_;
  nghttp2_session* session_ = nullptr;
  std::vector<Stream*> waiting_;   // attached before the session was ready
  std::vector<Stream*> attached_;  // every stream attached and not detached
  std::vector<Stream*> due_;
  // The header block being received, per stream (HEADERS, then CONTINUATION).
  struct Block {
    int status = 0;
    std::vector<http2::Field> fields;
  };
  std::unordered_map<int32_t, Block> blocks_;
  bool goaway_ = false;
  bool settings_seen_ = false;  // the server's first SETTINGS frame arrived
  bool in_recv_ = false;
  bool send_pending_ = false;
  bool soon_armed_ = false;
};

// A worker's sessions, by target (address, and TLS name when over TLS).
class H2UpstreamSessions {
 public:
  explicit H2UpstreamSessions(uv_loop_t* loop) : loop_(loop) {}
  H2UpstreamSessions(const H2UpstreamSessions&) = delete;
  H2UpstreamSessions& operator=(const H2UpstreamSessions&) = delete;

  // A session to `target` with room for one more stream: an open one, or a new one.
  // `fresh` says whether it is new (not connected yet).
  H2UpstreamSession* pick(const H2UpstreamTarget& target, bool& fresh);
  // The session is closing: it is not picked again.
  void forget(H2UpstreamSession* session);
  void close_all();
  // Connections opened so far.
  uint64_t opened() const { return opened_; }

 private:
  uv_loop_t* loop_;
  std::unordered_map<std::string, std::vector<H2UpstreamSession*>> sessions_;
  uint64_t opened_ = 0;
};

}  // namespace harrow

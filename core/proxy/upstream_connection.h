// One TCP connection from a worker to a farm server: connects, carries one exchange at a time
// for its owner (a client connection), parses the response with llhttp and hands the pieces
// over, then either goes back to the worker's keep-alive pool or closes. Freed only in its
// close callback.
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/base/deadline_timer.h"
#include "core/base/failure.h"
#include "core/base/io_buffer.h"
#include "core/http1/http_head.h"
#include "core/http2/upstream_message.h"

namespace harrow {

namespace tls {
class Session;
}

class Worker;
struct Snapshot;
class H2UpstreamSession;
class H2UpstreamStream;

// What an upstream connection tells its owner. Calls come from libuv callbacks on the worker
// thread, never from inside the owner's own calls into the connection.
class UpstreamEvents {
 public:
  virtual ~UpstreamEvents() = default;
  virtual void upstream_connected() = 0;
  // A response head (interim 1xx or final) has been parsed; `status` is its status code.
  virtual void upstream_head(const MessageHead& head, int status) = 0;
  // A piece of the response body, living in `block`.
  virtual void upstream_body(IoBlock* block, const char* data, size_t len) = 0;
  // The response's trailer section (from a server spoken to over HTTP/2), right before the
  // upstream_complete() of a chunked response. `fields` live only during the call.
  virtual void upstream_trailers(std::span<const http2::Field> fields) = 0;
  // One read has been parsed: time to flush what it produced.
  virtual void upstream_read_end() = 0;
  // The final response is complete; `reusable` if the connection may carry another exchange.
  virtual void upstream_complete(bool reusable) = 0;
  // The exchange failed; `uv_status` is the libuv error behind it, or 0. The connection has
  // closed itself before this call and calls its owner no more: the owner only forgets it.
  // (An owner that gives up on a connection itself closes it with close(), and hears nothing.)
  virtual void upstream_failed(Failure failure, int uv_status) = 0;
  // A write to the server completed (for backpressure).
  virtual void upstream_write_done() = 0;

  // After a 101 to an upgrade (expect_upgrade()), the connection is a byte tunnel: the 101
  // head comes through upstream_head(), then every byte the server sends (starting with any
  // that followed the head in the same read) through upstream_tunnel_bytes() and a
  // upstream_read_end() per read. upstream_tunnel_eof(): the server finished sending;
  // upstream_tunnel_shut(): shutdown_write() has flushed everything and sent FIN. Errors come
  // through upstream_failed().
  virtual void upstream_tunnel_bytes(IoBlock* block, const char* data, size_t len) = 0;
  virtual void upstream_tunnel_eof() = 0;
  virtual void upstream_tunnel_shut() = 0;
};

class UpstreamConnection {
 public:
  // `farm` and `server` index `snapshot` (the configuration the connection was made for).
  UpstreamConnection(Worker* worker, const Snapshot* snapshot, int farm, size_t server);

  const Snapshot* snapshot() const { return snapshot_; }
  // After a reload, an idle connection to a server that is still configured moves over.
  void rebind(const Snapshot* snapshot, int farm, size_t server) {
    snapshot_ = snapshot;
    farm_ = farm;
    server_ = server;
  }
  int farm() const { return farm_; }
  size_t server() const { return server_; }
  bool reused() const { return exchanges_ > 1; }
  bool response_started() const { return response_started_; }
  // The response body is chunked as Harrow's parse reads it (chunked the final coding).
  bool response_chunked() const { return (parser_.flags & F_CHUNKED) != 0; }

  // Makes the connection one over TLS (call before connect()): after the TCP connect a
  // handshake with SNI `server_name` runs (verifying the certificate when `verify`), resuming
  // `resume` when given, and only then does the owner hear upstream_connected(). A failed
  // handshake is upstream_failed(upstream_tls).
  void use_tls(SSL_CTX* ctx, std::string server_name, bool verify,
               std::shared_ptr<SSL_SESSION> resume);
  bool tls() const { return tls_ctx_ != nullptr; }
  // Makes the connection one stream of `session` (call before connect()): connect() joins the
  // session instead of connecting, and the exchange goes as HTTP/2 frames (h2_upstream_stream.h).
  // Such a connection is never pooled; the session is. `https`: the request's scheme.
  void use_h2(H2UpstreamSession* session, bool https);
  bool http2() const { return h2_ != nullptr; }
  // The session to resume the next connection to this server with (null if none yet).
  std::shared_ptr<SSL_SESSION> tls_session() const;
  ~UpstreamConnection();

  // Starts connecting to `addr`; the owner hears upstream_connected() or upstream_failed().
  void connect(UpstreamEvents* owner, const sockaddr* addr, uint64_t timeout_ms);
  // Takes an idle connection for a new exchange.
  void attach(UpstreamEvents* owner);
  // Mid-exchange, another owner takes over (a cache fill that outlives its client,
  // background_fill.h): every later call goes to it.
  void hand_over(UpstreamEvents* owner) { owner_ = owner; }
  // Prepares to parse the response to the request about to be sent. `head_request` because a
  // response to HEAD has no body whatever its headers say. The exchange fails with
  // upstream_timeout when neither side moves for `timeout_ms`.
  void begin_exchange(bool head_request, uint64_t timeout_ms, size_t max_head_bytes);
  // Marks progress on the exchange (resets the inactivity timeout).
  void touch();
  // The request being sent asks for a WebSocket upgrade: a 101 answer turns the connection
  // into a tunnel (which is never pooled again). Without it a 101 is an invalid response.
  void expect_upgrade() { upgrade_expected_ = true; }
  bool tunnel() const { return tunnel_; }
  // Tunnel: sends FIN once everything queued is written; upstream_tunnel_shut() follows.
  // Returns 0 or the libuv error (then nothing was started).
  int shutdown_write();

  OutBatch& out() { return out_; }
  size_t write_queue_size() const { return uv_stream_get_write_queue_size(stream()); }
  void pause_reading();
  void resume_reading();

  // Ends the exchange: back to the pool if `reusable`, else closed. The owner lets go.
  void release(bool reusable);
  // Closes now (owner lets go, if any).
  void close();
  // Closes an idle connection the worker has already taken out of its pool.
  void close_detached() {
    state_ = State::Active;
    close();
  }

  // Pool bookkeeping (worker only).
  void enter_idle(uint64_t idle_timeout_ms);

 private:
  friend class H2UpstreamStream;
  enum class State { Connecting, Active, Idle, Closing };

  // HTTP/2 mode: the session is ready for the stream.
  void h2_connected();

  const uv_stream_t* stream() const { return reinterpret_cast<const uv_stream_t*>(&tcp_); }
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
  void fail(Failure failure, int uv_status);
  void on_read(ssize_t nread);
  void run_parser();
  void arm_timer(uint64_t ms);
  // TLS: the handshake after the TCP connect; decrypting what a read brought (false when the
  // connection failed and was closed).
  void start_tls();
  bool tls_receive();
  // The server's stream ended (a read error, a TCP close, or close_notify over TLS): completes
  // a close-delimited response when that end is trustworthy, else fails the exchange.
  void end_of_input(int uv_status);
  void disarm_timer();
  // The 101 head is parsed: what follows is the tunnel's.
  void enter_tunnel();
  void on_tunnel_read(ssize_t nread);

  static void on_connect(uv_connect_t* req, int status);
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_timer(uv_timer_t* t);
  static void on_shutdown(uv_shutdown_t* req, int status);
  static void on_close(uv_handle_t* h);

  static int on_message_begin(llhttp_t* p);
  static int on_status(llhttp_t* p, const char* at, size_t len);
  static int on_header_field(llhttp_t* p, const char* at, size_t len);
  static int on_header_value(llhttp_t* p, const char* at, size_t len);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, size_t len);
  static int on_message_complete(llhttp_t* p);

  Worker* worker_;
  const Snapshot* snapshot_;
  int farm_;
  size_t server_;
  State state_ = State::Connecting;
  UpstreamEvents* owner_ = nullptr;
  uv_tcp_t tcp_{};
  uv_timer_t timer_{};
  DeadlineTimer deadline_;  // the one timeout armed at a time, on timer_
  uv_connect_t connect_req_{};
  uv_shutdown_t shutdown_req_{};
  llhttp_t parser_{};
  InputBuffer in_;
  MessageHead head_;
  OutBatch out_;
  // Over TLS (use_tls()): the context and peer name until connected, then the session.
  SSL_CTX* tls_ctx_ = nullptr;
  std::string tls_name_;
  bool tls_verify_ = true;
  std::shared_ptr<SSL_SESSION> tls_resume_;
  std::unique_ptr<tls::Session> tls_;
  bool handshaking_ = false;
  bool tls_closed_ = false;  // the server sent close_notify
  uint64_t exchanges_ = 0;
  uint64_t timeout_ms_ = 0;
  uint64_t last_activity_ = 0;
  size_t max_head_bytes_ = 65536;
  int open_handles_ = 0;
  int connect_error_ = 0;
  // More interim responses than this before the final one are a flood, not a response: a
  // server that sends 100 Continue forever would keep the exchange (and its timeout) alive.
  static constexpr uint32_t kMaxInterimResponses = 10;
  uint64_t connect_timeout_ms_ = 0;  // uv_tcp_connect failed synchronously; reported from the timer
  bool reading_ = false;
  bool head_request_ = false;
  bool interim_ = false;
  uint32_t interim_count_ = 0;  // interim (1xx) heads of this exchange
  bool response_started_ = false;
  bool complete_ = false;
  bool head_too_large_ = false;
  bool upgrade_expected_ = false;
  bool tunnel_ = false;
  bool write_shut_ = false;
  std::unique_ptr<H2UpstreamStream> h2_;  // HTTP/2 mode (use_h2())
};

}  // namespace harrow

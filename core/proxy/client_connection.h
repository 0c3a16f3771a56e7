// One accepted HTTP/1 client connection: owns the socket, the TLS session, the timeout and the
// state machine; feeds what it reads to the request decoder (core/http1/request_decoder.h) and
// carries out what the proxy's phases (phases.h) decide, streaming both bodies with
// backpressure. Requests on one connection are handled one at a time, in order (pipelined bytes
// wait, unparsed, in the input buffer). What a request needs is an Exchange
// (core/proxy/exchange.h), held only while one is under way, so an idle keep-alive connection is
// little more than its socket. Freed only in its close callback. The code is in
// client_connection.cc (I/O, state, timers, TLS), client_exchange.cc (the exchange) and
// client_tunnel.cc (WebSocket).
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "balancer/balancer.h"
#include "core/base/failure.h"
#include "core/base/io_buffer.h"
#include "core/base/timer_heap.h"
#include "core/http1/http_head.h"
#include "core/http1/request_checks.h"
#include "core/http1/request_decoder.h"
#include "core/proxy/exchange.h"
#include "core/proxy/metrics.h"
#include "core/proxy/phases.h"
#include "core/proxy/upstream_connection.h"
#include "core/rewrite/html_rewriter.h"

namespace harrow {

namespace tls {
class Session;
}

class Worker;
struct WorkerFarm;
struct ListenSocket;
struct RequestFacts;
struct ClientResponse;
struct Snapshot;

class H2Connection;

class ClientConnection final : public UpstreamEvents, public RequestDecoderEvents {
 public:
  // Accepts a pending connection from `server`; on failure the connection closes itself.
  static void accept_from(Worker* worker, uv_stream_t* server, const ListenSocket* listener);

  // Worker shutdown: close now if idle, else after the current response.
  void shutdown_when_idle();
  // Worker shutdown timeout: close now.
  void force_close();

  size_t worker_index = 0;  // position in the worker's connection list

  // The worker's TimerHeap callback for a connection's timeout.
  static void on_deadline(void* owner);

  // UpstreamEvents
  void upstream_connected() override;
  void upstream_head(const MessageHead& head, int status) override;
  void upstream_body(IoBlock* block, const char* data, size_t len) override;
  void upstream_trailers(std::span<const http2::Field> fields) override;
  void upstream_read_end() override;
  void upstream_complete(bool reusable) override;
  void upstream_failed(Failure failure, int uv_status) override;
  void upstream_write_done() override;
  void upstream_tunnel_bytes(IoBlock* block, const char* data, size_t len) override;
  void upstream_tunnel_eof() override;
  void upstream_tunnel_shut() override;

  // RequestDecoderEvents
  void request_begin() override;
  void request_head() override;
  void request_body(const char* data, size_t len) override;
  void request_end() override;

 private:
  // The HTTP/2 side writes through out_, arms the timeout and closes the connection.
  friend class H2Connection;

  enum class Phase : uint8_t {
    Idle,         // between requests (keep-alive)
    ReadingHead,  // a request has begun
    Routing,      // head parsed, choosing a server / connecting
    Exchange,     // request forwarded (body may still stream), response awaited or streaming
    Lingering,    // response sent, connection half-closed, draining what the client still sends
    Tunnel,       // a 101 to a WebSocket upgrade: bytes pass both ways untouched (client_tunnel.cc)
    Http2,        // ALPN h2 or the HTTP/2 preface: h2_ carries the streams (h2_connection.h)
    Closed,
  };

  ClientConnection(Worker* worker, const ListenSocket* listener);
  ~ClientConnection() override;  // in client_connection.cc, where H2Connection is complete
  // Answers 503 overloaded and closes, for a connection above the worker's limit.
  void refuse_overloaded(Failure failure);
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
  // The exchange's configuration while there is one (WorkerEpoch), else the worker's current.
  const config::TimeoutsConfig& timeouts() const;

  void start();
  void run_parser();
  // Whether the connection speaks HTTP/2 (ALPN h2, or the preface on an http2="true" plain
  // listener); true once it has switched. `wait`: too few bytes yet to tell.
  bool detect_http2(bool& wait);
  void enter_http2();
  // HTTP/2: hands what was read (decrypted) to h2_.
  void h2_read();
  void on_read(ssize_t nread);
  void on_parser_paused();
  // Refuses the request being read (bad bytes, a head check, a limit): answers with the
  // failure's status and closes when framing is in doubt, or ends the connection if the
  // response has begun.
  void reject_request(Failure failure, const char* detail);
  void start_exchange();
  // Carries out what choose_upstream() (or resume_after_cache_wait()) decided.
  void run_choice(const UpstreamChoice& choice);
  // Answers from the cache entry the lookup found (ex_->cache->entry).
  void respond_cached();
  void connect_upstream();
  // Queues rewritten body bytes for the client (copied into blocks).
  void send_owned(std::string_view bytes);
  // Ends the chosen server's in-flight count and tells the balancer how the exchange went.
  void end_in_flight();
  // Points the exchange at `server`: with a pooled connection the head is sent at once
  // (true); otherwise a connect starts and the head follows in upstream_connected() (false).
  bool use_server(size_t server);
  void send_request_head();
  void request_complete();
  void finish_exchange();
  // `health_failure` false: the failure is answered and counted, but not as the server's
  // live-traffic failure (retry_policy.h).
  void respond_error(Failure failure, int uv_status, bool health_failure = true);
  // Answers the request from Harrow itself (errors, Redirect and CustomResponse rules;
  // `from_rule`: the reason or Location came from the rule that decided).
  void respond_local(int status, std::string_view reason, std::string_view location,
                     std::string_view body, bool from_rule = false);
  // A writer refused text a rule produced: 500 unsafe_rewrite, logged with the rule's name.
  void refuse_unsafe(std::string_view rule, const char* where);
  void log_failure(Failure failure, int uv_status);
  void check_upstream_backpressure();
  // The request body has not moved for clientBody: 408, or the end if the response has begun.
  void check_body_timeout();

  // WebSocket tunnel (client_tunnel.cc). A WebSocket handshake (RequestDecoder::websocket())
  // is forwarded as an upgrade; a 101 answer switches both connections to a byte tunnel that
  // ends when both sides have finished sending (each side's EOF shuts the other's write side),
  // on an error, or after webSocketIdle with no byte.
  // From upstream_read_end() after the 101 head: counts the tunnel, forwards what the client
  // sent behind its request head, and starts reading raw bytes.
  void open_tunnel();
  void tunnel_client_read(ssize_t nread);
  void tunnel_forward_to_upstream(const char* data, size_t len);
  void tunnel_upstream_read_end();
  void tunnel_client_write_done();
  void tunnel_upstream_write_done();
  void tunnel_client_shutdown_done(int status);
  void tunnel_on_timer();
  // Ends the tunnel's accounting (from close()).
  void tunnel_closed();
  // An upgrade that did not become a tunnel because Harrow or the server failed (ARR's 502.5).
  void count_websocket_failure();
  void pause_reading();
  void resume_reading();
  void arm_timer(uint64_t ms);
  void disarm_timer();
  void close_after_flush();
  // Shuts down the write side once queued writes are out (on_shutdown follows). 0 or an error.
  int start_shutdown();
  void begin_linger();
  void close();
  void abort_exchange(Failure failure, int uv_status);
  // The upstream failure contract. upstream_failed() (UpstreamEvents) is the server connection
  // saying it has closed itself; fail_upstream() is Harrow giving up on it (a write that failed
  // at once, a response it cannot forward) and closes it, once. Both then go through
  // after_upstream_failure(): the retry table (retry_policy.h), else the error response.
  void fail_upstream(Failure failure, int uv_status);
  void after_upstream_failure(Failure failure, int uv_status);
  // Writes this request's access log line, once, however the exchange ended.
  void log_access();
  void release_upstream(bool reusable);
  void resume_parser();
  // TLS listeners (core/tls/tls_session.h): start the session; decrypt what a read brought (false
  // when the connection ended); answer a plain-HTTP request on the TLS port.
  bool start_tls();
  bool tls_receive();
  void refuse_plain_http();
  // A WebSocket tunnel over TLS: what the records decrypt to goes upstream.
  void tls_tunnel_read(size_t nread);

  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_shutdown(uv_shutdown_t* req, int status);
  static void on_close(uv_handle_t* h);

  // The connection's Exchange (core/proxy/exchange.h): taken when request bytes arrive, given back
  // when the connection is idle again with nothing left to parse. Null while idle.
  void take_exchange();
  void give_back_exchange_if_idle();
  // The client's "ip:port", in the current exchange (formatted on first use).
  const char* peer() const;
  // What the phases (phases.h) know of this connection.
  ClientSide client_side() const { return {listener_, &peer_address_, tls_.get(), &tcp_}; }

  Worker* worker_;
  const ListenSocket* listener_;       // owned by the worker, which outlives its connections
  Exchange* ex_ = nullptr;             // the current exchange; null between requests
  std::unique_ptr<tls::Session> tls_;  // null on plain-HTTP listeners
  std::unique_ptr<H2Connection> h2_;   // HTTP/2 connections only
  uv_tcp_t tcp_{};
  TimerHeap::Slot deadline_;  // the one timeout armed at a time, on the worker's TimerHeap
  InputBuffer in_;
  OutBatch out_;
  PeerAddress peer_address_;
  Phase phase_ = Phase::Idle;
  uint8_t open_handles_ = 0;
  // Bit-fields: an idle connection is mostly these, its socket and its timeout slot.
  bool reading_ : 1 = false;
  bool paused_for_backpressure_ : 1 = false;
  bool close_requested_ : 1 = false;  // close once the current response is out
  bool served_ : 1 = false;           // a response went out: Idle means between requests
  bool closing_after_flush_ : 1 = false;
  bool counted_active_ : 1 = false;
  bool per_client_counted_ : 1 = false;  // counted in the worker's per-IP connection counts
};

}  // namespace harrow

// One HTTP/2 stream: one exchange. Its request head, rebuilt as the HTTP/1.1 head it stands
// for (core/http2/request_head.h), goes through the HTTP/1 decoder's checks and then the same
// phases as an HTTP/1 request (phases.h) and the same server-side steps (upstream_attempt.h);
// only the client side differs: the response head becomes HTTP/2 fields and the body DATA
// frames, paced by the client's flow-control window.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/base/io_buffer.h"
#include "core/http1/request_decoder.h"
#include "core/http2/response_head.h"
#include "core/http2/server_session.h"
#include "core/proxy/phases.h"
#include "core/proxy/upstream_connection.h"

namespace harrow {

class H2Connection;
struct Exchange;

// A stream's queued response body (blocks the server's reads filled, or Harrow's own bytes)
// above which the server is not read until the client's window lets it drain.
inline constexpr size_t kStreamHighWater = 256 * 1024;
inline constexpr size_t kStreamLowWater = 64 * 1024;
// The same for all of a connection's streams together.
inline constexpr size_t kConnectionQueueHighWater = 1024 * 1024;
inline constexpr size_t kConnectionQueueLowWater = 512 * 1024;

class H2Stream final : public http2::Stream, public UpstreamEvents, public RequestDecoderEvents {
 public:
  explicit H2Stream(H2Connection* connection);
  ~H2Stream() override;
  H2Stream(const H2Stream&) = delete;
  H2Stream& operator=(const H2Stream&) = delete;

  // From the session (h2_connection.cc).
  void on_request(const http2::RequestFields& fields, bool end_stream);
  void on_body(const uint8_t* data, size_t len);
  void on_body_end();
  // The stream is over; `error_code` non-zero: reset. Frees the stream (now, or once the
  // callback it is inside returns).
  void on_closed(uint32_t error_code);
  http2::SessionEvents::Pull pull(uint8_t* buf, size_t len);
  // The connection is closing under the stream.
  void abort_now();
  // Reads the server again if the stream paused it and the queues have drained.
  void resume_upstream_if_drained();
  // Checks the stream's deadline against `now_ms`.
  void check_deadline(uint64_t now_ms);
  uint64_t deadline_ms() const { return deadline_ms_; }

  // UpstreamEvents
  void upstream_connected() override;
  void upstream_head(const MessageHead& head, int status) override;
  void upstream_body(IoBlock* block, const char* data, size_t len) override;
  void upstream_trailers(std::span<const http2::Field> fields) override;
  void upstream_read_end() override;
  void upstream_complete(bool reusable) override;
  void upstream_failed(Failure failure, int uv_status) override;
  void upstream_write_done() override;
  void upstream_tunnel_bytes(IoBlock*, const char*, size_t) override {}
  void upstream_tunnel_eof() override {}
  void upstream_tunnel_shut() override {}

  // RequestDecoderEvents (the head only: the body comes in DATA frames)
  void request_begin() override;
  void request_head() override;
  void request_body(const char*, size_t) override {}
  void request_end() override {}

 private:
  // Keeps the stream alive while one of its callbacks runs (a send inside it may close it).
  struct Busy {
    explicit Busy(H2Stream* s) : stream(s) { ++stream->busy_; }
    ~Busy();
    H2Stream* stream;
  };

  void start_exchange();
  void run_choice(const UpstreamChoice& choice);
  void respond_cached();
  void use_server(size_t server);
  void send_request_head();
  // Moves request body bytes held while the server was chosen and connected.
  void forward_held_body();
  void after_upstream_failure(Failure failure, int uv_status);
  void fail_upstream(Failure failure, int uv_status);
  void respond_error(Failure failure, int uv_status, bool health_failure = true);
  void respond_local(int status, std::string_view location, std::string_view body,
                     bool from_rule = false);
  void refuse_unsafe(std::string_view rule, const char* where);
  // Ends the stream with RST_STREAM after the response has begun (or when none can be sent).
  void abort_exchange(Failure failure, int uv_status);
  void release_upstream(bool reusable);
  void queue_body(IoBlock* block, const char* data, size_t len);
  void queue_copy(std::string_view bytes);
  void body_ready();
  // Submits the response head; false if the stream is already gone.
  bool submit_head(const http2::ResponseHead& head, bool has_body);
  void set_deadline(uint64_t ms);
  void finish();
  ClientSide client() const;

  struct Piece {
    IoBlock* block;
    const char* data;
    size_t len;
  };

  H2Connection* connection_;
  Exchange* ex_ = nullptr;
  std::string held_body_;  // request body read before the server connection was ready
  size_t unconsumed_ = 0;  // request body bytes not yet given back to the window
  uint64_t body_bytes_in_ = 0;
  std::vector<Piece> queue_;  // response body waiting for the client's window
  size_t queue_front_ = 0;
  size_t queued_bytes_ = 0;
  uint64_t body_bytes_out_ = 0;
  uint64_t deadline_ms_ = 0;            // 0: none armed
  std::vector<http2::Field> trailers_;  // the server's, sent after the last DATA
  int busy_ = 0;
  bool head_sent_upstream_ = false;  // the request head went to the current connection
  bool body_started_ = false;        // a request body byte went to a server
  bool request_ended_ = false;       // END_STREAM from the client
  bool response_end_queued_ = false;
  bool deferred_ = false;  // nghttp2 waits for body bytes (resume_body())
  bool closed_ = false;    // the session is done with the stream
  bool finished_ = false;
};

}  // namespace harrow

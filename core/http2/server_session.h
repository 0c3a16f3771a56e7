// The server side of one HTTP/2 connection, without I/O: nghttp2 (RFC 9113 frames, HPACK,
// flow control, stream states) plus the limits nghttp2 leaves to its user. The owner feeds it
// the client's bytes (receive()), takes the bytes to send (send()) and answers its events;
// streams are the owner's (each an exchange of its own, core/proxy/h2_stream.h).
//
// What a client can make it do is bounded, and each bound ends the connection with a GOAWAY
// that names the fault (the Failure is logged and counted by the owner):
//   - header lists above the limit are counted, never kept (HPACK bombs); a header block may
//     span at most kMaxContinuations CONTINUATION frames (CVE-2024-27316 class);
//   - streams the client resets: a token bucket (rapid reset, CVE-2023-44487);
//   - "glitches" (empty DATA frames, oversized header lists, frames on closed streams): a
//     token bucket, as for resets;
//   - SETTINGS and PING frames whose acknowledgements the client does not read: nghttp2's
//     outbound ACK limit (flood);
//   - streams above SETTINGS_MAX_CONCURRENT_STREAMS are refused (RST_STREAM REFUSED_STREAM).
// Flow control is backpressure: the owner consume()s request body bytes only once they have
// moved on, so a stream's window (and with it the memory it may hold) opens only as the
// server side drains.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/base/failure.h"
#include "core/base/io_buffer.h"
#include "core/http2/request_head.h"

namespace harrow::http2 {

struct SessionLimits {
  uint32_t max_concurrent_streams = 100;
  uint32_t initial_window = 64 * 1024;   // per stream, for request bodies
  uint32_t max_header_list = 64 * 1024;  // SETTINGS_MAX_HEADER_LIST_SIZE; larger → 431
  uint32_t resets_burst = 200;           // client stream resets allowed at once...
  uint32_t resets_per_second = 50;       // ...and refilled per second
  uint32_t glitches_burst = 100;
  uint32_t glitches_per_second = 20;
  static constexpr size_t kMaxContinuations = 8;
};

// Common to every stream the owner creates for a request (its own type derives from it).
struct Stream {
  int32_t id = 0;
  bool trailers_expected = false;  // a HEADERS frame after the request's first one
};

// What the session tells its owner, from inside receive() and send().
class SessionEvents {
 public:
  // A new stream: the owner's Stream for it, or null to refuse it (RST_STREAM REFUSED_STREAM).
  virtual Stream* h2_open(int32_t id) = 0;
  // The request head is complete; `fields` (which may be too_large()) are valid during the
  // call only. `end_stream`: no body follows.
  virtual void h2_request(Stream* stream, const RequestFields& fields, bool end_stream) = 0;
  // A piece of the request body (the owner calls consume() once it has moved on).
  virtual void h2_body(Stream* stream, const uint8_t* data, size_t len) = 0;
  virtual void h2_body_end(Stream* stream) = 0;
  // The stream is over: both ends done (`error_code` 0) or reset by either side. The owner
  // may free it after this call.
  virtual void h2_closed(Stream* stream, uint32_t error_code) = 0;
  // Up to `len` bytes of the response body into `buf`. `end`: nothing follows; `trailers`:
  // with `end`, the owner submits trailers (submit_trailers()) from inside this call. Return
  // 0 without `end` to wait (resume_body() goes on).
  struct Pull {
    size_t bytes = 0;
    bool end = false;
    bool trailers = false;
  };
  virtual Pull h2_pull(Stream* stream, uint8_t* buf, size_t len) = 0;

 protected:
  ~SessionEvents() = default;
};

class ServerSession {
 public:
  ServerSession(const SessionLimits& limits, SessionEvents* events);
  ~ServerSession();
  ServerSession(const ServerSession&) = delete;
  ServerSession& operator=(const ServerSession&) = delete;

  // Feeds what the client sent. False: the connection must end once the output is sent
  // (failure() says why; the GOAWAY is queued). `now_ms`: the loop's clock, for the buckets.
  bool receive(const uint8_t* data, size_t len, uint64_t now_ms);
  // Appends what is ready to send to `out`, stopping once out.memory() passes `high_water`.
  // Returns false if nothing more will ever be sent (after a fatal error).
  void send(OutBatch& out, size_t high_water);
  // Appends everything ready to send to `out` (tests and the fuzz target).
  void send_to(std::string& out);
  // Nothing left to read or write: the connection may close.
  bool finished() const;
  bool want_write() const;
  // The fault that ended the connection (GOAWAY sent for it), if any.
  bool failed() const { return failed_; }
  Failure failure() const { return failure_; }
  const char* failure_detail() const { return failure_detail_; }

  // The response head; `has_body` false ends the stream with it.
  int submit_response(Stream* stream, std::span<const nghttp2_nv> fields, bool has_body);
  int submit_trailers(Stream* stream, std::span<const nghttp2_nv> fields);
  void resume_body(Stream* stream);
  // The owner has moved `len` bytes of `stream`'s request body on: its window opens again.
  void consume(Stream* stream, size_t len);
  void reset(Stream* stream, uint32_t error_code);
  // Graceful stop: GOAWAY with the last stream accepted; open streams finish.
  void shutdown();
  // Ends the connection for `failure`: GOAWAY `error_code` with the token as debug data.
  void terminate(Failure failure, uint32_t error_code, const char* detail);
  size_t open_streams() const { return open_streams_; }
  bool going_away() const { return going_away_; }

 private:
  struct Bucket {
    double tokens = 0;
    uint64_t last_ms = 0;
    // Takes one token; false when there is none (the bucket refills `rate` per second).
    bool take(uint32_t burst, uint32_t rate, uint64_t now_ms);
  };
  bool glitch(const char* what);

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                       void* user);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_data_chunk(nghttp2_session*, uint8_t flags, int32_t stream_id, const uint8_t* data,
                           size_t len, void* user);
  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user);
  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_invalid_frame(nghttp2_session*, const nghttp2_frame* frame, int error, void* user);
  static ssize_t on_read_body(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                              uint32_t* data_flags, nghttp2_data_source* source, void* user);

  nghttp2_session* session_ = nullptr;
  SessionLimits limits_;
  SessionEvents* events_;
  // The header block being decoded: blocks never interleave (RFC 9113 §4.3), so one set of
  // fields, its capacity kept from request to request, serves every stream.
  RequestFields fields_;
  int32_t fields_stream_ = 0;
  Bucket resets_;
  Bucket glitches_;
  uint64_t now_ms_ = 0;
  size_t open_streams_ = 0;
  // A fault found inside a callback, acted on once nghttp2 returns (terminate()).
  Failure pending_failure_ = Failure::h2_protocol_error;
  const char* pending_detail_ = nullptr;
  bool pending_ = false;
  bool failed_ = false;
  bool fatal_ = false;  // nghttp2 cannot go on: only the GOAWAY below is sent
  bool going_away_ = false;
  Failure failure_ = Failure::h2_protocol_error;
  const char* failure_detail_ = nullptr;
  uint8_t goaway_[64];  // a GOAWAY written by hand after a fatal error
  size_t goaway_len_ = 0;
};

}  // namespace harrow::http2

// An HTTP/2 client connection's streams: what ClientConnection becomes once ALPN chose h2 (or a
// plain listener with http2="true" saw the connection preface). ClientConnection keeps the
// socket, TLS, the timeout slot and the connection's accounting; this owns the HTTP/2 session
// (core/http2/server_session.h) and its streams, each an exchange of its own through the same
// phases as an HTTP/1 request (h2_stream.h).
//
// Memory bound per connection (any chunking, any client): the socket's output queue stops at
// kWriteHighWater (frames are produced only below it); the streams' response queues together
// stop at kConnectionQueueHighWater, each stream's at kStreamHighWater (a server is not read
// above either), plus one server read (64 KiB) per stream that crosses them; and per open
// stream its request body window (<harrow><http2 initialWindowSize>, not reopened until the
// server side takes the bytes) plus one frame, times maxConcurrentStreams.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/http2/response_head.h"
#include "core/http2/server_session.h"
#include "core/proxy/phases.h"

namespace harrow {

class ClientConnection;
class H2Stream;
class Worker;

class H2Connection final : public http2::SessionEvents {
 public:
  H2Connection(ClientConnection* owner, Worker* worker, ClientSide client);
  ~H2Connection();
  H2Connection(const H2Connection&) = delete;
  H2Connection& operator=(const H2Connection&) = delete;

  // Plaintext the client sent; all of it is consumed.
  void receive(const char* data, size_t len);
  // A write to the client completed: more frames may go.
  void on_written();
  // The connection's timeout fired: stream deadlines and the idle timeout.
  void on_timer();
  // Graceful stop: GOAWAY; open streams finish, then the connection closes.
  void shutdown();
  // The connection is closing: every open stream ends now.
  void abort_all();
  // Asks for the frames that are ready to be written before the loop polls again (the
  // worker calls flush_now() once per loop turn for every connection that asked).
  void send_now();
  void flush_now();
  // A stream's deadline moved: the connection's timeout covers the earliest.
  void reschedule();

  Worker& worker() { return *worker_; }
  const ClientSide& client() const { return client_; }
  http2::ServerSession& session() { return session_; }
  // Scratch space a stream uses within one call (the request head as HTTP/1.1 text, the
  // response head and its fields): shared by the connection's streams, so its capacity is
  // kept from request to request.
  std::string& head_text() { return head_text_; }
  http2::ResponseHead& response_head() { return response_head_; }
  std::vector<nghttp2_nv>& nv() { return nv_; }
  std::vector<HeaderField>& written_fields() { return written_fields_; }
  std::vector<HeaderField>& request_fields() { return request_fields_; }

  // Response bytes all streams hold for the client: above kConnectionQueueHighWater no stream
  // reads its server, below kConnectionQueueLowWater the paused ones may again.
  size_t queued() const { return queued_; }
  void queued_add(size_t n) { queued_ += n; }
  void queued_sub(size_t n);

  // SessionEvents
  http2::Stream* h2_open(int32_t id) override;
  void h2_request(http2::Stream* stream, const http2::RequestFields& fields,
                  bool end_stream) override;
  void h2_body(http2::Stream* stream, const uint8_t* data, size_t len) override;
  void h2_body_end(http2::Stream* stream) override;
  void h2_closed(http2::Stream* stream, uint32_t error_code) override;
  Pull h2_pull(http2::Stream* stream, uint8_t* buf, size_t len) override;

 private:
  // The session has ended the connection for a fault: log and count it once.
  void report_failure();
  void finish_if_done();

  ClientConnection* owner_;
  Worker* worker_;
  ClientSide client_;
  http2::ServerSession session_;
  std::vector<H2Stream*> streams_;  // open streams (order of opening)
  std::string head_text_;
  http2::ResponseHead response_head_;
  std::vector<nghttp2_nv> nv_;
  std::vector<HeaderField> written_fields_;
  std::vector<HeaderField> request_fields_;
  size_t queued_ = 0;
  bool sending_ = false;  // inside flush_now(): a nested call only asks again
  bool send_again_ = false;
  bool flush_queued_ = false;  // in the worker's list for this loop turn
  bool failure_reported_ = false;
  bool closing_ = false;
};

}  // namespace harrow

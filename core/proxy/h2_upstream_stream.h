// An UpstreamConnection in HTTP/2 mode: its exchange is one stream of a shared
// H2UpstreamSession instead of a socket of its own. The connection's OutBatch writes through
// this filter, which reads the HTTP/1.1 request Harrow wrote as the stream's HEADERS and DATA;
// the server's HEADERS, DATA and trailers come back as HTTP/1.1 response bytes fed to the
// connection's own parser, so every check and event of the HTTP/1 path applies unchanged.
//
// Backpressure, request side: body bytes wait here in blocks held by write requests of the
// connection's OutBatch, so its memory() counts them and the owner stops reading its client
// above kWriteHighWater, as for a socket. Response side: the stream's flow-control window
// (256 KiB) opens only as the parser takes the bytes, and the parser takes none while the
// owner has paused the connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <vector>

#include "core/base/failure.h"
#include "core/base/io_buffer.h"
#include "core/http2/upstream_message.h"
#include "core/proxy/h2_upstream_session.h"

namespace harrow {

class UpstreamConnection;

class H2UpstreamStream final : public WriteFilter,
                               public http2::RequestSink,
                               public H2UpstreamSession::Stream {
 public:
  // `https`: the request's :scheme.
  H2UpstreamStream(UpstreamConnection* connection, H2UpstreamSession* session, bool https);
  ~H2UpstreamStream() override;
  H2UpstreamStream(const H2UpstreamStream&) = delete;
  H2UpstreamStream& operator=(const H2UpstreamStream&) = delete;

  // Joins the session; the connection hears h2_connected() or fails.
  void start();
  // The connection is closing: the stream is reset if still open, its queued body let go.
  void close();
  // The connection reads again: the response bytes held meanwhile go to its parser soon.
  void resume();

  // WriteFilter: the request bytes Harrow wrote.
  int write(const uv_buf_t* bufs, int count) override;

  // http2::RequestSink
  void request_head(std::span<const http2::Field> fields, bool has_body) override;
  void request_body(const char* data, size_t len) override;
  void request_end() override;

  // H2UpstreamSession::Stream
  void h2_ready() override;
  void h2_session_failed(Failure failure, int uv_status) override;
  void h2_headers(int status, std::span<const http2::Field> fields, bool end_stream) override;
  void h2_data(const uint8_t* data, size_t len) override;
  void h2_end() override;
  void h2_closed(uint32_t error_code) override;
  size_t h2_pull(uint8_t* buf, size_t len, bool& eof) override;
  void h2_due() override;

 private:
  // Hands the held response bytes to the connection's parser while it reads.
  void deliver();
  void feed_parser(std::string_view bytes);
  void release_body();
  bool alive() const;

  // Request body bytes waiting for DATA frames, in a block a write request holds.
  struct Piece {
    WriteRequest* request;
    IoBlock* block;
    uint32_t begin;
    uint32_t end;
  };

  UpstreamConnection* connection_;
  H2UpstreamSession* session_;  // null once detached
  http2::RequestTranslator translator_;
  int32_t id_ = 0;
  int write_error_ = 0;
  std::deque<Piece> pieces_;
  std::string pending_;    // response bytes (HTTP/1.1) not yet parsed
  size_t unconsumed_ = 0;  // DATA bytes not yet given back to the window
  std::vector<http2::Field> trailers_;
  bool connected_ = false;
  bool request_ended_ = false;
  bool body_deferred_ = false;
  bool write_done_due_ = false;
  bool final_head_ = false;
  bool chunked_ = false;
  bool ended_ = false;          // END_STREAM from the server
  bool end_delivered_ = false;  // the response's end went to the parser
  bool delivering_ = false;
};

}  // namespace harrow

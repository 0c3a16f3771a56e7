#include "core/proxy/h2_upstream_stream.h"

#include <algorithm>
#include <cstring>

#include "core/base/log.h"
#include "core/proxy/upstream_connection.h"
#include "core/proxy/worker.h"

namespace harrow {

H2UpstreamStream::H2UpstreamStream(UpstreamConnection* connection, H2UpstreamSession* session,
                                   bool https)
    : connection_(connection), session_(session), translator_(https ? "https" : "http") {}

H2UpstreamStream::~H2UpstreamStream() {
  release_body();
}

bool H2UpstreamStream::alive() const {
  return connection_->state_ != UpstreamConnection::State::Closing;
}

void H2UpstreamStream::start() {
  session_->attach(this);
}

void H2UpstreamStream::close() {
  if (session_ != nullptr) {
    H2UpstreamSession* session = session_;
    session_ = nullptr;
    session->detach(this, id_, NGHTTP2_CANCEL);
  }
  release_body();
  pending_.clear();
}

void H2UpstreamStream::resume() {
  if (session_ != nullptr) session_->due(this);
}

// ---------------------------------------------------------------- the request

int H2UpstreamStream::write(const uv_buf_t* bufs, int count) {
  if (session_ == nullptr) return UV_ECONNRESET;
  for (int i = 0; i < count; ++i) {
    if (!translator_.feed(bufs[i].base, bufs[i].len, *this)) {
      log_line(LogLevel::Warn, "HTTP/2 upstream: the request could not be carried: %s",
               translator_.error());
      return UV_EPROTO;
    }
    if (write_error_ != 0) return write_error_;
  }
  return 0;
}

void H2UpstreamStream::request_head(std::span<const http2::Field> fields, bool has_body) {
  request_ended_ = !has_body;
  id_ = session_->open_stream(this, fields, has_body);
  // A session that took a GOAWAY or failed meanwhile: the exchange fails as on a reset
  // connection (nothing reached the server).
  if (id_ <= 0) write_error_ = UV_ECONNRESET;
}

void H2UpstreamStream::request_body(const char* data, size_t len) {
  OutBatch& out = connection_->out_;
  while (len > 0) {
    if (pieces_.empty() || pieces_.back().end == pieces_.back().block->capacity) {
      WriteRequest* request = write_request_new(&out);
      IoBlock* block = block_acquire();
      write_request_adopt(request, block);  // counted in out.memory() until it is sent
      out.write_started();
      pieces_.push_back({request, block, 0, 0});
    }
    Piece& piece = pieces_.back();
    size_t n = std::min<size_t>(len, piece.block->capacity - piece.end);
    std::memcpy(piece.block->data + piece.end, data, n);
    piece.end += static_cast<uint32_t>(n);
    data += n;
    len -= n;
  }
  if (body_deferred_ && id_ > 0) {
    body_deferred_ = false;
    session_->resume_body(id_);
  }
}

void H2UpstreamStream::request_end() {
  request_ended_ = true;
  if (body_deferred_ && id_ > 0) {
    body_deferred_ = false;
    session_->resume_body(id_);
  }
}

size_t H2UpstreamStream::h2_pull(uint8_t* buf, size_t len, bool& eof) {
  size_t n = 0;
  while (n < len && !pieces_.empty()) {
    Piece& piece = pieces_.front();
    size_t take = std::min<size_t>(len - n, piece.end - piece.begin);
    std::memcpy(buf + n, piece.block->data + piece.begin, take);
    piece.begin += static_cast<uint32_t>(take);
    n += take;
    bool full = piece.end == piece.block->capacity;
    if (piece.begin == piece.end && (full || pieces_.size() > 1 || request_ended_)) {
      write_request_finish(&piece.request->req);
      connection_->out_.write_done();
      pieces_.pop_front();
      write_done_due_ = true;
    }
    if (take == 0) break;
  }
  eof = request_ended_ && (pieces_.empty() || pieces_.front().begin == pieces_.front().end);
  if (eof) release_body();
  if (n == 0 && !eof) body_deferred_ = true;
  // The owner hears of the drained bytes from the loop, not from inside nghttp2's send.
  if (write_done_due_ && session_ != nullptr) session_->due(this);
  return n;
}

void H2UpstreamStream::release_body() {
  for (Piece& piece : pieces_) {
    write_request_finish(&piece.request->req);
    connection_->out_.write_done();
  }
  pieces_.clear();
}

// ---------------------------------------------------------------- the session's news

void H2UpstreamStream::h2_ready() {
  if (connected_) return;
  connected_ = true;
  connection_->h2_connected();
}

void H2UpstreamStream::h2_due() {
  if (!connected_) {
    h2_ready();
    if (session_ == nullptr || !alive()) return;
  }
  if (write_done_due_) {
    write_done_due_ = false;
    if (connection_->owner_ != nullptr) connection_->owner_->upstream_write_done();
    if (!alive()) return;
  }
  deliver();
}

void H2UpstreamStream::h2_session_failed(Failure failure, int uv_status) {
  session_ = nullptr;  // detached by the session
  if (!alive()) return;
  if (failure == Failure::upstream_reset && connection_->response_started_) {
    failure = Failure::upstream_truncated;
  }
  connection_->fail(failure, uv_status);
}

// ---------------------------------------------------------------- the response

void H2UpstreamStream::h2_headers(int status, std::span<const http2::Field> fields,
                                  bool end_stream) {
  if (!alive()) return;
  if (final_head_) {
    // The trailer section: it must end the stream.
    if (!end_stream) {
      connection_->fail(Failure::upstream_invalid_response, 0);
      return;
    }
    trailers_.assign(fields.begin(), fields.end());
    return;
  }
  if (status < 100) {
    connection_->fail(Failure::upstream_invalid_response, 0);
    return;
  }
  if (status >= 200) final_head_ = true;
  pending_ +=
      http2::response_head_bytes(status, fields, end_stream, connection_->head_request_, chunked_);
  deliver();
}

void H2UpstreamStream::h2_data(const uint8_t* data, size_t len) {
  if (!alive()) return;
  unconsumed_ += len;
  if (!final_head_) {
    connection_->fail(Failure::upstream_invalid_response, 0);
    return;
  }
  if (chunked_) {
    http2::append_chunk(pending_, reinterpret_cast<const char*>(data), len);
  } else {
    pending_.append(reinterpret_cast<const char*>(data), len);
  }
  deliver();
}

void H2UpstreamStream::h2_end() {
  if (!alive()) return;
  ended_ = true;
  deliver();
}

void H2UpstreamStream::h2_closed(uint32_t) {
  // The stream stays attached until the connection lets go: what is held of a response the
  // server ended is still delivered as the owner reads it. A stream reset before its end
  // (REFUSED_STREAM included: the retry table decides) fails the exchange.
  if (!alive() || ended_ || connection_->complete_) return;
  connection_->fail(
      connection_->response_started_ ? Failure::upstream_truncated : Failure::upstream_reset,
      UV_ECONNRESET);
}

void H2UpstreamStream::deliver() {
  if (delivering_) return;
  delivering_ = true;
  while (alive() && connection_->reading_ && !connection_->complete_) {
    if (!pending_.empty()) {
      std::string bytes;
      bytes.swap(pending_);
      feed_parser(bytes);
      continue;
    }
    if (ended_ && !end_delivered_) {
      end_delivered_ = true;
      if (chunked_) {
        if (!trailers_.empty() && connection_->owner_ != nullptr) {
          connection_->owner_->upstream_trailers(trailers_);
          if (!alive()) break;
        }
        feed_parser(http2::kLastChunk);
        continue;
      }
      if (!connection_->complete_ && alive()) {
        // The server ended the stream short of its Content-Length.
        delivering_ = false;
        connection_->fail(
            connection_->response_started_ ? Failure::upstream_truncated : Failure::upstream_reset,
            UV_EOF);
        return;
      }
    }
    break;
  }
  delivering_ = false;
  if (pending_.empty() && unconsumed_ > 0 && session_ != nullptr && id_ > 0) {
    session_->consume(id_, unconsumed_);
    unconsumed_ = 0;
  }
}

void H2UpstreamStream::feed_parser(std::string_view bytes) {
  InputBuffer& in = connection_->in_;
  while (!bytes.empty()) {
    if (!alive() || connection_->complete_) return;
    if (!connection_->reading_) {
      pending_.insert(0, bytes);  // paused by the owner: the rest waits
      return;
    }
    uv_buf_t buf = in.next_read_buffer();
    if (buf.len == 0) {
      connection_->fail(Failure::upstream_invalid_response, 0);
      return;
    }
    size_t n = std::min<size_t>(buf.len, bytes.size());
    std::memcpy(buf.base, bytes.data(), n);
    in.commit(n);
    bytes.remove_prefix(n);
    connection_->last_activity_ = uv_now(connection_->worker_->loop());
    connection_->run_parser();
  }
}

}  // namespace harrow

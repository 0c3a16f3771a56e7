#include "core/proxy/h2_connection.h"

#include <algorithm>

#include "core/base/backpressure.h"
#include "core/base/log.h"
#include "core/proxy/client_connection.h"
#include "core/proxy/h2_stream.h"
#include "core/proxy/worker.h"

namespace harrow {

namespace {

http2::SessionLimits session_limits(const Worker& worker) {
  const config::Config& config = worker.config();
  http2::SessionLimits limits;
  limits.max_concurrent_streams = config.http2.max_concurrent_streams;
  limits.initial_window = config.http2.initial_window_size;
  limits.max_header_list = config.limits.max_request_header_bytes;
  return limits;
}

}  // namespace

H2Connection::H2Connection(ClientConnection* owner, Worker* worker, ClientSide client)
    : owner_(owner), worker_(worker), client_(client), session_(session_limits(*worker), this) {
  client_.http2 = true;
  worker_->mutable_metrics().http2_connections_active.add();
}

H2Connection::~H2Connection() {
  if (flush_queued_) worker_->cancel_flush(this);
  abort_all();
  worker_->mutable_metrics().http2_connections_active.sub();
}

void H2Connection::receive(const char* data, size_t len) {
  if (closing_) return;
  if (!session_.receive(reinterpret_cast<const uint8_t*>(data), len, uv_now(worker_->loop()))) {
    report_failure();
  }
  send_now();
}

void H2Connection::report_failure() {
  if (failure_reported_ || !session_.failed()) return;
  failure_reported_ = true;
  Failure failure = session_.failure();
  WorkerMetrics& m = worker_->mutable_metrics();
  m.failures[static_cast<int>(failure)].add();
  m.listeners[client_.listener->index].failures[static_cast<int>(failure)].add();
  char peer[PeerAddress::kIpPortText];
  log_line(LogLevel::Warn, "%s client=%s http2 GOAWAY: %s",
           std::string(failure_token(failure)).c_str(),
           client_.peer->format_ip_port(peer, sizeof peer),
           session_.failure_detail() != nullptr ? session_.failure_detail() : "-");
}

void H2Connection::send_now() {
  if (closing_ || flush_queued_) return;
  flush_queued_ = true;
  worker_->flush_later(this);
}

void H2Connection::flush_now() {
  flush_queued_ = false;
  if (closing_) return;
  if (sending_) {
    send_again_ = true;
    return;
  }
  sending_ = true;
  do {
    send_again_ = false;
    session_.send(owner_->out_, kWriteHighWater);
  } while (send_again_);
  sending_ = false;
  report_failure();
  if (owner_->out_.flush() != 0) {
    closing_ = true;
    owner_->close();
    return;
  }
  // A client that does not take its frames is not read either (its requests would only add
  // to what waits for it).
  if (owner_->out_.memory() > kWriteHighWater) {
    owner_->pause_reading();
  } else {
    owner_->resume_reading();
  }
  finish_if_done();
}

void H2Connection::finish_if_done() {
  if (closing_) return;
  if (session_.finished()) {
    closing_ = true;
    abort_all();
    owner_->close_after_flush();
    return;
  }
  reschedule();
}

void H2Connection::queued_sub(size_t n) {
  bool was_over = queued_ >= kConnectionQueueLowWater;
  queued_ -= n;
  if (!was_over || queued_ >= kConnectionQueueLowWater) return;
  // Streams paused for the connection's sake (their own queues may be empty) read again.
  for (H2Stream* stream : streams_) stream->resume_upstream_if_drained();
}

void H2Connection::on_written() {
  if (owner_->out_.memory() < kWriteLowWater) send_now();
}

void H2Connection::reschedule() {
  if (closing_) return;
  uint64_t now = uv_now(worker_->loop());
  uint64_t earliest = 0;
  for (H2Stream* stream : streams_) {
    uint64_t d = stream->deadline_ms();
    if (d != 0 && (earliest == 0 || d < earliest)) earliest = d;
  }
  if (earliest == 0 && streams_.empty()) {
    // No stream: the connection is idle (keep-alive), or waits for its first request.
    const config::TimeoutsConfig& timeouts = worker_->config().timeouts;
    owner_->arm_timer(config::to_ms(timeouts.client_keep_alive));
    return;
  }
  if (earliest == 0) {
    owner_->disarm_timer();
    return;
  }
  owner_->arm_timer(earliest > now ? earliest - now : 0);
}

void H2Connection::on_timer() {
  if (closing_) return;
  if (streams_.empty()) {
    // Idle for clientKeepAlive: a GOAWAY says no stream was lost.
    session_.shutdown();
    flush_now();  // the GOAWAY is written before the connection starts to close
    if (!closing_) {
      closing_ = true;
      owner_->close_after_flush();
    }
    return;
  }
  uint64_t now = uv_now(worker_->loop());
  std::vector<H2Stream*> due;
  for (H2Stream* stream : streams_) {
    if (stream->deadline_ms() != 0 && stream->deadline_ms() <= now) due.push_back(stream);
  }
  for (H2Stream* stream : due) {
    if (std::find(streams_.begin(), streams_.end(), stream) != streams_.end()) {
      stream->check_deadline(now);
    }
  }
  send_now();
}

void H2Connection::shutdown() {
  session_.shutdown();
  send_now();
}

void H2Connection::abort_all() {
  closing_ = true;
  std::vector<H2Stream*> streams;
  streams.swap(streams_);
  for (H2Stream* stream : streams) stream->abort_now();
}

// ---------------------------------------------------------------- session events

http2::Stream* H2Connection::h2_open(int32_t) {
  worker_->mutable_metrics().http2_streams.add();
  if (closing_) return nullptr;
  auto* stream = new H2Stream(this);
  streams_.push_back(stream);
  return stream;
}

void H2Connection::h2_request(http2::Stream* stream, const http2::RequestFields& fields,
                              bool end_stream) {
  static_cast<H2Stream*>(stream)->on_request(fields, end_stream);
}

void H2Connection::h2_body(http2::Stream* stream, const uint8_t* data, size_t len) {
  static_cast<H2Stream*>(stream)->on_body(data, len);
}

void H2Connection::h2_body_end(http2::Stream* stream) {
  static_cast<H2Stream*>(stream)->on_body_end();
}

void H2Connection::h2_closed(http2::Stream* stream, uint32_t error_code) {
  auto* s = static_cast<H2Stream*>(stream);
  auto it = std::find(streams_.begin(), streams_.end(), s);
  if (it != streams_.end()) streams_.erase(it);
  s->on_closed(error_code);
}

http2::SessionEvents::Pull H2Connection::h2_pull(http2::Stream* stream, uint8_t* buf, size_t len) {
  return static_cast<H2Stream*>(stream)->pull(buf, len);
}

}  // namespace harrow

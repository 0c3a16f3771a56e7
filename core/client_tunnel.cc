// ClientConnection's WebSocket tunnel: after a 101 from the server, bytes read on one side are
// written to the other as slices of the block they were read into (no copy), with the same
// backpressure rule as HTTP bodies, an idle timeout, and half-close carried across: an EOF on
// one side shuts down the other's write side once everything before it is written, and the
// tunnel closes when both directions are finished, on an error, or when it idles too long.

#include <string_view>

#include "core/backpressure.h"
#include "core/client_connection.h"
#include "core/log.h"
#include "core/worker.h"

namespace harrow {
namespace {

uint64_t ms_of(config::Millis m) {
  return static_cast<uint64_t>(m.count());
}

}  // namespace

bool ClientConnection::is_websocket_upgrade(const MessageHead& head, const llhttp_t* p,
                                            bool has_body) {
  // RFC 6455 §4.1: a GET over HTTP/1.1 without a body. An upgrade with a body would leave
  // the boundary between the body and the new protocol to guesswork.
  if (p->method != HTTP_GET || p->http_major != 1 || p->http_minor != 1 || has_body) return false;
  return requests_websocket(head);
}

void ClientConnection::count_websocket_failure() {
  if (websocket_ && server_metrics_ != nullptr && phase_ != Phase::Tunnel) {
    server_metrics_->websocket_failures.add();
  }
}

void ClientConnection::open_tunnel() {
  tunnel_opening_ = false;
  server_metrics_->response_time.observe((uv_hrtime() - exchange_started_ns_) / 1000);
  server_metrics_->responses_by_class[1].add();
  server_metrics_->websocket_current.add();
  tunnel_counted_ = true;
  status_ = 0;
  // The handshake is the exchange the balancer sees; the tunnel's life is not its latency.
  end_in_flight();
  framer_.tunnel();
  tunnel_activity_ms_ = uv_now(worker_->loop());
  arm_timer(ms_of(worker_->config().timeouts.websocket_idle));
  if (in_.block != nullptr && in_.unconsumed() != 0) {
    // What the client sent right behind its request head is already the new protocol.
    const char* data = in_.parse_begin();
    uint32_t len = in_.unconsumed();
    in_.parse_pos = in_.fill;
    tunnel_forward_to_upstream(data, len);
    if (phase_ != Phase::Tunnel) return;
  }
  resume_reading();
}

void ClientConnection::tunnel_client_read(ssize_t nread) {
  if (nread < 0) {
    pause_reading();
    if (nread != UV_EOF || upstream_ == nullptr) {
      close();
      return;
    }
    tunnel_client_eof_ = true;
    if (upstream_->shutdown_write() != 0) close();
    return;
  }
  in_.commit(static_cast<size_t>(nread));  // nread > 0 here
  const char* data = in_.block->data + (in_.fill - static_cast<uint32_t>(nread));
  in_.parse_pos = in_.fill;
  tunnel_activity_ms_ = uv_now(worker_->loop());
  tunnel_forward_to_upstream(data, static_cast<size_t>(nread));
}

void ClientConnection::tunnel_forward_to_upstream(const char* data, size_t len) {
  if (upstream_ == nullptr) {
    close();
    return;
  }
  upstream_->out().add(in_.block, data, len);
  request_bytes_ += len;
  server_metrics_->bytes_to_server.add(len);
  server_metrics_->websocket_bytes_to_server.add(len);
  if (upstream_->out().flush() != 0) {
    close();
    return;
  }
  if (upstream_->write_queue_size() > kWriteHighWater) {
    paused_for_backpressure_ = true;
    pause_reading();
  }
}

void ClientConnection::upstream_tunnel_bytes(IoBlock* block, const char* data, size_t len) {
  out_.add(block, data, len);
  server_metrics_->bytes_from_server.add(len);
  server_metrics_->websocket_bytes_from_server.add(len);
  tunnel_activity_ms_ = uv_now(worker_->loop());
}

void ClientConnection::tunnel_upstream_read_end() {
  if (tunnel_opening_) {
    open_tunnel();
    if (phase_ != Phase::Tunnel) return;
  }
  if (out_.flush() != 0) {
    close();
    return;
  }
  if (upstream_ != nullptr && !upstream_paused_ &&
      uv_stream_get_write_queue_size(stream()) > kWriteHighWater) {
    upstream_->pause_reading();
    upstream_paused_ = true;
  }
}

void ClientConnection::tunnel_client_write_done() {
  tunnel_activity_ms_ = uv_now(worker_->loop());
  if (upstream_paused_ && upstream_ != nullptr && !tunnel_upstream_eof_ &&
      uv_stream_get_write_queue_size(stream()) < kWriteLowWater) {
    upstream_paused_ = false;
    upstream_->resume_reading();
  }
}

void ClientConnection::tunnel_upstream_write_done() {
  tunnel_activity_ms_ = uv_now(worker_->loop());
  if (paused_for_backpressure_ && !tunnel_client_eof_ && upstream_ != nullptr &&
      upstream_->write_queue_size() < kWriteLowWater) {
    paused_for_backpressure_ = false;
    resume_reading();
  }
}

void ClientConnection::upstream_tunnel_eof() {
  // The server has finished sending: the client gets a FIN after what is still queued, and
  // may go on sending to the server (a half-closed tunnel).
  tunnel_upstream_eof_ = true;
  if (out_.flush() != 0) {
    close();
    return;
  }
  shutdown_req_.data = this;
  if (uv_shutdown(&shutdown_req_, stream(), &ClientConnection::on_shutdown) != 0) close();
}

void ClientConnection::tunnel_client_shutdown_done(int status) {
  if (status != 0) {
    close();
    return;
  }
  tunnel_client_shut_ = true;
  if (tunnel_upstream_shut_) close();
}

void ClientConnection::upstream_tunnel_shut() {
  tunnel_upstream_shut_ = true;
  if (tunnel_client_shut_) close();
}

void ClientConnection::tunnel_on_timer() {
  // The deadline moves with every byte; only the timer's firing checks it.
  uint64_t timeout = ms_of(worker_->config().timeouts.websocket_idle);
  uint64_t idle = uv_now(worker_->loop()) - tunnel_activity_ms_;
  if (idle < timeout) {
    arm_timer(timeout - idle);
    return;
  }
  log_line(LogLevel::Info, "websocket tunnel log_id=%s client=%s ended: idle for webSocketIdle",
           log_id_, peer_);
  close();
}

void ClientConnection::tunnel_closed() {
  if (!tunnel_counted_) return;
  tunnel_counted_ = false;
  server_metrics_->websocket_current.sub();
}

}  // namespace harrow

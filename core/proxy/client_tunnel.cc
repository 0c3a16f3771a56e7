// ClientConnection's WebSocket tunnel: after a 101 from the server, bytes read on one side are
// written to the other as slices of the block they were read into (no copy), with the same
// backpressure rule as HTTP bodies, an idle timeout, and half-close carried across: an EOF on
// one side shuts down the other's write side once everything before it is written, and the
// tunnel closes when both directions are finished, on an error, or when it idles too long.

#include <string_view>

#include "core/base/backpressure.h"
#include "core/base/log.h"
#include "core/proxy/client_connection.h"
#include "core/proxy/worker.h"

namespace harrow {
void ClientConnection::count_websocket_failure() {
  if (ex_->websocket && ex_->server_metrics != nullptr && phase_ != Phase::Tunnel) {
    ex_->server_metrics->websocket_failures.add();
  }
}

void ClientConnection::open_tunnel() {
  ex_->tunnel_opening = false;
  ex_->server_metrics->response_time.observe((uv_hrtime() - ex_->exchange_started_ns) / 1000);
  ex_->server_metrics->responses_by_class[1].add();
  ex_->server_metrics->websocket_current.add();
  ex_->tunnel_counted = true;
  ex_->status = 0;
  // The handshake is the exchange the balancer sees; the tunnel's life is not its latency.
  end_in_flight();
  ex_->decoder.tunnel();
  ex_->tunnel_activity_ms = uv_now(worker_->loop());
  arm_timer(config::to_ms(timeouts().websocket_idle));
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
    if (nread != UV_EOF || ex_->upstream == nullptr) {
      close();
      return;
    }
    ex_->tunnel_client_eof = true;
    if (ex_->upstream->shutdown_write() != 0) close();
    return;
  }
  in_.commit(static_cast<size_t>(nread));  // nread > 0 here
  const char* data = in_.block->data + (in_.fill - static_cast<uint32_t>(nread));
  in_.parse_pos = in_.fill;
  ex_->tunnel_activity_ms = uv_now(worker_->loop());
  // A read that did not fill what it was offered drained the socket: the write holds the
  // block now, and a quiet tunnel holds none (a full read keeps it: more is on its way).
  bool drained = in_.fill != in_.offered_end;
  tunnel_forward_to_upstream(data, static_cast<size_t>(nread));
  if (drained) in_.release_if_drained();
}

void ClientConnection::tunnel_forward_to_upstream(const char* data, size_t len) {
  if (ex_->upstream == nullptr) {
    close();
    return;
  }
  ex_->upstream->out().add(in_.block, data, len);
  ex_->request_bytes += len;
  ex_->server_metrics->bytes_to_server.add(len);
  ex_->server_metrics->websocket_bytes_to_server.add(len);
  if (ex_->upstream->out().flush() != 0) {
    close();
    return;
  }
  if (ex_->upstream->out().memory() > kWriteHighWater) {
    paused_for_backpressure_ = true;
    pause_reading();
  }
}

void ClientConnection::upstream_tunnel_bytes(IoBlock* block, const char* data, size_t len) {
  out_.add(block, data, len);
  ex_->server_metrics->bytes_from_server.add(len);
  ex_->server_metrics->websocket_bytes_from_server.add(len);
  ex_->tunnel_activity_ms = uv_now(worker_->loop());
}

void ClientConnection::tunnel_upstream_read_end() {
  if (ex_->tunnel_opening) {
    open_tunnel();
    if (phase_ != Phase::Tunnel) return;
  }
  if (out_.flush() != 0) {
    close();
    return;
  }
  if (ex_->upstream != nullptr && !ex_->upstream_paused && out_.memory() > kWriteHighWater) {
    ex_->upstream->pause_reading();
    ex_->upstream_paused = true;
  }
}

void ClientConnection::tunnel_client_write_done() {
  ex_->tunnel_activity_ms = uv_now(worker_->loop());
  if (ex_->upstream_paused && ex_->upstream != nullptr && !ex_->tunnel_upstream_eof &&
      out_.memory() < kWriteLowWater) {
    ex_->upstream_paused = false;
    ex_->upstream->resume_reading();
  }
}

void ClientConnection::tunnel_upstream_write_done() {
  ex_->tunnel_activity_ms = uv_now(worker_->loop());
  if (paused_for_backpressure_ && !ex_->tunnel_client_eof && ex_->upstream != nullptr &&
      ex_->upstream->out().memory() < kWriteLowWater) {
    paused_for_backpressure_ = false;
    resume_reading();
  }
}

void ClientConnection::upstream_tunnel_eof() {
  // The server has finished sending: the client gets a FIN after what is still queued, and
  // may go on sending to the server (a half-closed tunnel).
  ex_->tunnel_upstream_eof = true;
  if (out_.flush() != 0) {
    close();
    return;
  }
  if (start_shutdown() != 0) close();
}

void ClientConnection::tunnel_client_shutdown_done(int status) {
  if (status != 0) {
    close();
    return;
  }
  ex_->tunnel_client_shut = true;
  if (ex_->tunnel_upstream_shut) close();
}

void ClientConnection::upstream_tunnel_shut() {
  ex_->tunnel_upstream_shut = true;
  if (ex_->tunnel_client_shut) close();
}

void ClientConnection::tunnel_on_timer() {
  // The deadline moves with every byte; only the timer's firing checks it.
  uint64_t timeout = config::to_ms(timeouts().websocket_idle);
  uint64_t idle = uv_now(worker_->loop()) - ex_->tunnel_activity_ms;
  if (idle < timeout) {
    arm_timer(timeout - idle);
    return;
  }
  log_line(LogLevel::Info, "websocket tunnel log_id=%s client=%s ended: idle for webSocketIdle",
           ex_->log_id, peer());
  close();
}

void ClientConnection::tunnel_closed() {
  if (!ex_->tunnel_counted) return;
  ex_->tunnel_counted = false;
  ex_->server_metrics->websocket_current.sub();
}

}  // namespace harrow

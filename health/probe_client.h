// Sends health-check requests for one farm: an HTTP/1.1 GET to each server over a keep-alive
// connection, judged by status code and (optionally) a substring of the body, which is
// scanned as it streams and never buffered whole. Runs on the prober's event loop; the libuv
// types stay in the .cc so this header is usable from tests and the prober alike.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/tls/tls_context.h"
#include "health/server_health.h"
#include "health/status_match.h"

struct uv_loop_s;

namespace harrow::health {

struct ProbeRequest {
  sockaddr_storage address{};  // where to connect (the server, or its alternate host/port)
  std::string host_header;     // the healthCheck URL's host (with port if not 80)
  std::string path;            // the URL's path and query, "/" if empty
  std::string user_agent;      // "Harrow-HealthCheck/VERSION (farm=F; pool=P)"
  Millis timeout{30'000};      // for the whole probe: connect, send, response
  StatusMatcher statuses;      // statusCodeMatch
  std::string response_match;  // case-sensitive substring of the body; empty = not checked
  // An https:// URL: probed over TLS with these settings (`tls` null: plain HTTP).
  std::shared_ptr<const tls::ClientContexts> tls;
  SSL_CTX* tls_ctx = nullptr;  // owned by `tls`
  bool tls_verify = true;
  std::string tls_name;  // SNI, and the name the server's certificate must carry
  // The farm is spoken to over HTTP/2 (<upstreamHttp2>): the probe is an HTTP/2 stream, h2c
  // with prior knowledge or h2 by ALPN, on a connection kept for the next probes.
  bool http2 = false;
};

// One server's prober connection, reused across probes while the server keeps it alive.
class ProbeClient {
 public:
  explicit ProbeClient(uv_loop_s* loop);
  // Closes the connection; the object may be destroyed inside `done`. The loop must run on
  // afterwards: the handles are freed in their close callbacks.
  ~ProbeClient();
  ProbeClient(const ProbeClient&) = delete;
  ProbeClient& operator=(const ProbeClient&) = delete;

  // Starts one probe; `done` is called exactly once, later, on the loop thread (never from
  // inside probe()). A probe already in flight is cancelled first (its `done` is not called).
  void probe(const ProbeRequest& request, std::function<void(ProbeResult)> done);
  // The same with a request that is not copied: a prober passes the same one every interval.
  void probe(const std::shared_ptr<const ProbeRequest>& request,
             std::function<void(ProbeResult)> done);
  // True while a probe is in flight.
  bool busy() const;
  // Connections opened so far (tests check keep-alive reuse).
  uint64_t connections_opened() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared with in-flight libuv callbacks until their handles close
};

}  // namespace harrow::health

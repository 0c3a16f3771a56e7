#include "core/proxy/client_connection.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "core/base/backpressure.h"
#include "core/base/log.h"
#include "core/rewrite/router.h"
#include "core/tls/tls_session.h"
#include "core/http1/url_path.h"
#include "core/proxy/worker.h"

namespace harrow {

// An idle keep-alive connection is this object (plus its socket's kernel state): per-request
// state lives in an Exchange (core/exchange.h) taken only while a request is under way. Issue 11
// budgets 1 KiB of RSS per idle connection; a member added here costs every idle connection,
// so it belongs in the Exchange unless the connection needs it between requests.
static_assert(sizeof(ClientConnection) <= 480, "an idle connection's size grew: see above");

namespace {

constexpr size_t kHighWater = kWriteHighWater;
constexpr size_t kLowWater = kWriteLowWater;
constexpr uint64_t kLingerMs = 2000;
// At a stop, how long a connection accepted just before it may take to send its first request.
constexpr uint64_t kFirstRequestGraceMs = 1000;

ClientConnection* from_parser(llhttp_t* p) {
  return static_cast<ClientConnection*>(p->data);
}

uint64_t ms(config::Millis m) {
  return static_cast<uint64_t>(m.count());
}

// Failures that say something about the server's health (ARR's live-traffic failures).
bool is_server_fault(Failure f) {
  switch (f) {
    case Failure::upstream_connect_refused:
    case Failure::upstream_connect_failed:
    case Failure::upstream_connect_timeout:
    case Failure::upstream_reset:
    case Failure::upstream_invalid_response:
    case Failure::upstream_timeout:
    case Failure::upstream_truncated:
      return true;
    default:
      return false;
  }
}

}  // namespace

void ClientConnection::accept_from(Worker* worker, uv_stream_t* server,
                                   const ListenSocket* listener) {
  auto* c = new ClientConnection(worker, listener);
  if (uv_accept(server, c->stream()) != 0) {
    c->close();
    return;
  }
  WorkerMetrics& m = worker->mutable_metrics();
  m.connections_accepted.add();
  ListenerMetrics& lm = m.listeners[listener->index];
  lm.connections_accepted.add();
  if (m.connections_active.get() >= worker->connection_limit()) {
    c->refuse_overloaded(Failure::overloaded);
    return;
  }
  c->start();
}

void ClientConnection::refuse_overloaded(Failure failure) {
  // Over the limit Harrow answers rather than pausing accept(): a paused listener leaves
  // clients hanging in the kernel's backlog with no clue, a 503 names the reason (DESIGN.md,
  // story 2). The answer is written without reading the request, and the connection lingers
  // briefly so the client's unread request does not turn the close into a reset.
  WorkerMetrics& m = worker_->mutable_metrics();
  ListenerMetrics& lm = m.listeners[listener_->index];
  m.connections_rejected.add();
  lm.connections_rejected.add();
  m.failures[static_cast<int>(failure)].add();
  lm.failures[static_cast<int>(failure)].add();
  worker_->log_overloaded(failure);
  if (listener_->tls) {
    close();  // a plain-text answer means nothing to a TLS client
    return;
  }
  static constexpr std::string_view kOverloaded =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 37\r\n"
      "Connection: close\r\n\r\n503 Service Unavailable (overloaded)\n";
  static constexpr std::string_view kPerClient =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 50\r\n"
      "Connection: close\r\n\r\n503 Service Unavailable (client_connection_limit)\n";
  std::string_view answer = failure == Failure::overloaded ? kOverloaded : kPerClient;
  uv_buf_t buf = uv_buf_init(const_cast<char*>(answer.data()), answer.size());
  if (uv_try_write(stream(), &buf, 1) != static_cast<int>(answer.size())) {
    close();
    return;
  }
  close_after_flush();
}

ClientConnection::ClientConnection(Worker* worker, const ListenSocket* listener)
    : worker_(worker), listener_(listener), out_(stream(), &ClientConnection::on_write) {
  uv_tcp_init(worker->loop(), &tcp_);
  tcp_.data = this;
  deadline_.owner = this;
  open_handles_ = 1;
  worker->connection_opened(this);
}

void ClientConnection::start() {
  worker_->mutable_metrics().connections_active.add();
  worker_->mutable_metrics().listeners[listener_->index].connections_active.add();
  counted_active_ = true;
  // TCP_NODELAY comes from the listening socket (core/listen.cc).
  sockaddr_storage peer{};
  int len = sizeof peer;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    peer_address_ = PeerAddress::from(reinterpret_cast<const sockaddr*>(&peer));
  }
  const config::LimitsConfig& limits = worker_->config().limits;
  if (limits.max_connections_per_client != 0) {
    char ip[PeerAddress::kIpText];
    peer_address_.format_ip(ip, sizeof ip);
    if (!worker_->client_ip_opened(ip, limits.max_connections_per_client)) {
      refuse_overloaded(Failure::client_connection_limit);
      return;
    }
    per_client_counted_ = true;
  }
  limits_.max_request_line = limits.max_request_line;
  limits_.max_header_bytes = limits.max_request_header_bytes;
  limits_.max_header_count = limits.max_request_headers;
  limits_.max_body = limits.max_allowed_content_length;
  limits_.allow_trace = limits.allow_trace;
  if (listener_->tls && !start_tls()) {
    close();
    return;
  }
  resume_reading();
  arm_timer(ms(worker_->config().timeouts.client_header));
}

// ---------------------------------------------------------------- reading and parsing

void ClientConnection::pause_reading() {
  if (reading_) uv_read_stop(stream());
  reading_ = false;
}

void ClientConnection::resume_reading() {
  if (reading_ || phase_ == Phase::Closed || paused_for_backpressure_) return;
  if (uv_read_start(stream(), &ClientConnection::on_alloc, &ClientConnection::on_read_cb) == 0) {
    reading_ = true;
  }
}

void ClientConnection::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* c = static_cast<ClientConnection*>(h->data);
  *buf = c->tls_ == nullptr ? c->in_.next_read_buffer() : c->tls_->read_buffer();
}

void ClientConnection::on_read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  static_cast<ClientConnection*>(s->data)->on_read(nread);
}

void ClientConnection::on_read(ssize_t nread) {
  if (phase_ == Phase::Closed || nread == 0) return;
  if (phase_ == Phase::Tunnel) {
    if (tls_ != nullptr && nread > 0) {
      tls_tunnel_read(static_cast<size_t>(nread));
    } else {
      tunnel_client_read(nread);
    }
    return;
  }
  if (nread == UV_ENOBUFS) {
    pause_reading();  // a paused parser's bytes fill the buffer; reading resumes with it
    return;
  }
  if (nread < 0) {
    switch (phase_) {
      case Phase::Idle:
      case Phase::ReadingHead:
      case Phase::Lingering:
        close();
        return;
      default:
        abort_exchange(Failure::client_aborted, static_cast<int>(nread));
        return;
    }
  }
  if (tls_ != nullptr) {
    tls_->received(static_cast<size_t>(nread));
    if (phase_ == Phase::Lingering) {
      tls_->discard_input();  // the response is out, the connection is ending
      return;
    }
    if (!tls_receive()) return;
  } else {
    in_.commit(static_cast<size_t>(nread));
  }
  if (phase_ == Phase::Lingering) {
    in_.parse_pos = in_.fill;  // discarded: the response is out, the connection is ending
    return;
  }
  if (ex_ != nullptr) {
    if (ex_->upstream != nullptr) ex_->upstream->touch();
    ex_->body_activity_ms = uv_now(worker_->loop());
  }
  run_parser();
}

void ClientConnection::resume_parser() {
  if (ex_ == nullptr || !ex_->parser_paused) return;
  llhttp_resume(&ex_->parser);
  ex_->parser_paused = false;
  // llhttp may owe callbacks that need no further input (a body-less request completes right
  // after its head): the next run executes even with no new bytes.
  ex_->parser_owes_callbacks = true;
}

void ClientConnection::take_exchange() {
  ex_ = worker_->exchanges().take();
  llhttp_init(&ex_->parser, HTTP_REQUEST, parser_settings());
  ex_->parser.data = this;
  ex_->framer.reset(limits_);
  worker_->mutable_metrics().exchanges_active.add();
}

void ClientConnection::give_back_exchange_if_idle() {
  // Only between messages: nothing unparsed (a pipelined request keeps it), no parser or
  // framer state that the next bytes depend on, no server connection that could call back.
  if (ex_ == nullptr || phase_ != Phase::Idle || closing_after_flush_ || ex_->parser_paused ||
      ex_->parser_owes_callbacks || ex_->upstream != nullptr || !ex_->framer.between_messages()) {
    return;
  }
  if ((in_.block != nullptr && in_.unconsumed() > 0) || (tls_ != nullptr && tls_->has_buffered())) {
    return;
  }
  worker_->exchanges().give_back(ex_);
  ex_ = nullptr;
  worker_->mutable_metrics().exchanges_active.sub();
}

void ClientConnection::run_parser() {
  if (ex_ == nullptr) {
    bool input =
        (in_.block != nullptr && in_.unconsumed() > 0) || (tls_ != nullptr && tls_->has_buffered());
    if (phase_ != Phase::Idle || closing_after_flush_ || !input) {
      // Nothing to parse (a TLS handshake's records, a spurious wake-up): stay without one.
      if (phase_ == Phase::Idle) in_.release_if_drained();
      resume_reading();
      return;
    }
    take_exchange();
  }
  while (!ex_->parser_paused && phase_ != Phase::Closed && phase_ != Phase::Lingering &&
         !closing_after_flush_) {
    uint32_t available = in_.block != nullptr ? in_.unconsumed() : 0;
    const char* begin = in_.block != nullptr ? in_.parse_begin() : "";
    // llhttp only ever sees bytes the framer has vouched for.
    if (available > ex_->framer_ahead && !ex_->framer.failed()) {
      ex_->framer_ahead += static_cast<uint32_t>(
          ex_->framer.scan(begin + ex_->framer_ahead, available - ex_->framer_ahead));
    }
    if (ex_->framer.failed()) {
      // Refused before llhttp sees the fault; nothing after it is read.
      reject_request(ex_->framer.rejection().failure, ex_->framer.rejection().detail);
      return;
    }
    uint32_t vouched = ex_->framer_ahead - ex_->framer.held();
    if (vouched == 0 && !ex_->parser_owes_callbacks) {
      if (available > 0 && (ex_->framer.head_done() || ex_->framer.message_done())) {
        // The framer saw a head or message end where llhttp did not stop: never guess.
        reject_request(Failure::bad_framing, "parsers disagree on the message end");
        return;
      }
      // Plaintext that did not fit before may wait in the TLS session.
      if (tls_ != nullptr && tls_->has_buffered() && tls_receive()) {
        uint32_t now = in_.block != nullptr ? in_.unconsumed() : 0;
        if (now > available) continue;
      }
      break;
    }
    ex_->parser_owes_callbacks = false;
    llhttp_errno_t rc = llhttp_execute(&ex_->parser, begin, vouched);
    uint32_t consumed = vouched;
    if (rc == HPE_PAUSED) {
      consumed = static_cast<uint32_t>(llhttp_get_error_pos(&ex_->parser) - begin);
    } else if (rc != HPE_OK) {
      if (ex_->rejection.detail == nullptr) {
        ex_->rejection = {
            ex_->head_too_large ? Failure::request_header_too_large : failure_for_parse_error(rc),
            llhttp_get_error_reason(&ex_->parser)};
      }
      reject_request(ex_->rejection.failure, ex_->rejection.detail);
      return;
    }
    ex_->request_bytes += consumed;
    ex_->framer_ahead -= consumed;
    if (in_.block != nullptr) in_.parse_pos += consumed;
    if (rc == HPE_PAUSED) {
      ex_->parser_paused = true;
      on_parser_paused();
    }
  }
  if (phase_ == Phase::Closed) return;
  if (ex_->upstream != nullptr && phase_ == Phase::Exchange) {
    if (ex_->upstream->out().flush() != 0) {
      upstream_failed(Failure::upstream_reset, ex_->upstream->out().last_error());
      return;
    }
    check_upstream_backpressure();
  }
  if (phase_ == Phase::Idle) in_.release_if_drained();
  bool paused = ex_->parser_paused;
  give_back_exchange_if_idle();
  if (!paused) resume_reading();
}

Failure ClientConnection::failure_for_parse_error(llhttp_errno_t rc) {
  switch (rc) {
    case HPE_UNEXPECTED_CONTENT_LENGTH:
    case HPE_INVALID_CONTENT_LENGTH:
    case HPE_INVALID_TRANSFER_ENCODING:
    case HPE_INVALID_CHUNK_SIZE:
    case HPE_CB_MESSAGE_COMPLETE:
      return Failure::bad_framing;
    default:
      return Failure::bad_request;
  }
}

void ClientConnection::reject_request(Failure failure, const char* detail) {
  ex_->log_detail = detail;
  if (phase_ == Phase::Idle) {
    // Nothing of the request reached llhttp: start its bookkeeping here for the logs.
    on_message_begin(&ex_->parser);
    ex_->log_detail = detail;
  }
  if (phase_ == Phase::Exchange && ex_->response_head_sent) {
    abort_exchange(failure, 0);
    return;
  }
  release_upstream(false);
  close_requested_ = true;  // whatever follows on this connection cannot be trusted
  respond_error(failure, 0);
}

void ClientConnection::on_parser_paused() {
  if (phase_ == Phase::Routing) {
    if (ex_->head_rejected) {
      ex_->head_rejected = false;
      disarm_timer();
      ex_->log_detail = ex_->rejection.detail;
      // What follows a refused head (its body, a CONNECT tunnel) is not read as requests.
      close_requested_ = true;
      respond_error(ex_->rejection.failure, 0);
      return;
    }
    start_exchange();
  } else {
    request_complete();
  }
}

int ClientConnection::on_message_begin(llhttp_t* p) {
  ClientConnection* c = from_parser(p);
  c->phase_ = Phase::ReadingHead;
  c->ex_->head.reset(c->limits_.max_request_line + c->limits_.max_header_bytes);
  c->ex_->head_too_large = false;
  c->ex_->head_rejected = false;
  c->ex_->rejection = {};
  c->ex_->request_done = c->ex_->response_head_sent = c->ex_->response_done = false;
  c->ex_->response_chunked = c->ex_->retried = c->ex_->upstream_reused = false;
  c->ex_->tried_count = 0;
  c->ex_->retries = 0;
  c->ex_->connect_ms = -1;
  c->ex_->header_ms = -1;
  c->ex_->farm = -1;
  c->ex_->log_detail = nullptr;
  c->ex_->request_begun = true;
  c->ex_->access_logged = false;
  c->ex_->sent_status = 0;
  c->ex_->failed = false;
  c->ex_->failure_uv_status = 0;
  c->ex_->request_bytes = 0;
  c->ex_->response_bytes_at_start = c->out_.total_bytes();
  c->ex_->log_id[0] = '\0';
  c->ex_->site_name = {};
  c->ex_->site = -1;
  c->ex_->html.reset();
  c->ex_->request_started_ms = uv_now(c->worker_->loop());
  c->arm_timer(ms(c->worker_->config().timeouts.client_header));
  return 0;
}

int ClientConnection::on_url(llhttp_t* p, const char* at, size_t len) {
  ClientConnection* c = from_parser(p);
  if (c->ex_->head.on_target(at, len)) return 0;
  c->ex_->head_too_large = true;
  return -1;
}

int ClientConnection::on_header_field(llhttp_t* p, const char* at, size_t len) {
  ClientConnection* c = from_parser(p);
  // Trailer fields of a chunked body arrive through the same callbacks: they are dropped (the
  // body is re-framed without them), and must not grow the finished head under its views.
  if (c->phase_ != Phase::ReadingHead) return 0;
  if (c->ex_->head.on_field(at, len)) return 0;
  c->ex_->head_too_large = true;
  return -1;
}

int ClientConnection::on_header_value(llhttp_t* p, const char* at, size_t len) {
  ClientConnection* c = from_parser(p);
  if (c->phase_ != Phase::ReadingHead) return 0;  // a trailer field
  if (c->ex_->head.on_value(at, len)) return 0;
  c->ex_->head_too_large = true;
  return -1;
}

int ClientConnection::on_headers_complete(llhttp_t* p) {
  ClientConnection* c = from_parser(p);
  c->ex_->head.finish();
  c->ex_->head_request = p->method == HTTP_HEAD;
  c->ex_->client_keep_alive = llhttp_should_keep_alive(p) != 0;
  c->ex_->client_said_close = !c->ex_->client_keep_alive;
  c->ex_->request_chunked = (p->flags & F_CHUNKED) != 0;
  c->ex_->request_has_body = c->ex_->request_chunked || p->content_length > 0;
  c->phase_ = Phase::Routing;
  c->check_head(p);
  // Pause: the body must not be parsed before there is somewhere to send it.
  return HPE_PAUSED;
}

void ClientConnection::check_head(llhttp_t* p) {
  bool has_length = (p->flags & F_CONTENT_LENGTH) != 0;
  ex_->framer.begin_body(ex_->request_chunked, has_length ? p->content_length : 0);
  // An upgrade request ends HTTP on this connection whatever the answer: a 101 makes it a
  // tunnel, anything else is answered and the connection closed rather than read on (the client
  // may already be sending the new protocol). Only WebSocket is forwarded as an upgrade;
  // another protocol (h2c, …) loses its Upgrade header like any hop-by-hop field, as with nginx
  // and HAProxy, and the server answers the plain request.
  ex_->websocket = false;
  if (ex_->head.has("upgrade")) {
    ex_->client_keep_alive = false;
    ex_->websocket = is_websocket_upgrade(ex_->head, p, ex_->request_has_body);
  }
  ParsedRequest req;
  req.method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
  req.head = &ex_->head;
  req.http_major = p->http_major;
  req.http_minor = p->http_minor;
  req.chunked = ex_->request_chunked;
  req.has_content_length = has_length;
  req.content_length = p->content_length;
  ex_->head_rejected = !check_request_head(req, limits_, ex_->rejection);
}

int ClientConnection::on_body(llhttp_t* p, const char* at, size_t len) {
  ClientConnection* c = from_parser(p);
  if (c->ex_->upstream == nullptr) return 0;  // answered locally or upstream gone: discard
  if (c->ex_->request_chunked) {
    c->ex_->upstream->out().add_chunk(c->in_.block, at, len);
  } else {
    c->ex_->upstream->out().add(c->in_.block, at, len);
  }
  c->ex_->server_metrics->bytes_to_server.add(len);
  return 0;
}

int ClientConnection::on_message_complete(llhttp_t* p) {
  ClientConnection* c = from_parser(p);
  if (!c->ex_->framer.message_done()) {
    c->ex_->rejection = {Failure::bad_framing, "parsers disagree on the message end"};
    return -1;
  }
  c->ex_->framer.next_message();
  if (c->ex_->upstream != nullptr && c->ex_->request_chunked)
    c->ex_->upstream->out().add_last_chunk();
  // Pause: a pipelined request waits until this one's response is complete.
  return HPE_PAUSED;
}

// ---------------------------------------------------------------- the exchange

namespace {

// At most one log line a second per worker: an attacker's inputs must not flood the log.
void report_match_error(const Router& router, const RouteScratch& scratch) {
  thread_local uint64_t last_ns = 0;
  uint64_t now = uv_hrtime();
  if (last_ns != 0 && now - last_ns < 1'000'000'000) return;
  last_ns = now;
  std::string_view rule = router.failed_rule(scratch);
  std::string why = scratch.match_error_text();
  log_line(LogLevel::Warn, "rule '%.*s': pattern match failed (%s): request refused with 500",
           static_cast<int>(rule.size()), rule.data(), why.c_str());
}

}  // namespace

void ClientConnection::start_exchange() {
  disarm_timer();
  WorkerMetrics& metrics = worker_->mutable_metrics();
  metrics.requests.add();
  metrics.listeners[listener_->index].requests.add();
  if (worker_->stopping()) close_requested_ = true;

  RequestFacts facts = request_facts();  // the site is matched below, once the snapshot is taken
  if (!host_allowed(facts.host)) {
    respond_error(Failure::invalid_hostname, 0);
    return;
  }
  // The exchange runs on the snapshot current now, even if a reload lands meanwhile.
  ex_->snap = worker_->snapshot_ptr();
  facts.site = ex_->snap->sites->match(listener_->address, facts.host);
  ex_->site = facts.site;
  ex_->site_name = facts.site >= 0 ? std::string_view(ex_->snap->config->sites[facts.site].name)
                                   : std::string_view{};
  ex_->exchange_started_ns = uv_hrtime();
  worker_->new_request_id(ex_->log_id);
  // Rules judge the path as IIS hands it to URL Rewrite (decoded, canonical), and the origin is
  // sent that path (core/url_path.h); what cannot be made canonical is refused here.
  const config::LimitsConfig& limits = ex_->snap->config->limits;
  UrlLimits url_limits{limits.max_url, limits.max_query_string, limits.allow_double_escaping};
  Rejection why;
  std::string_view path = facts.target;
  if (path.empty() || (path.front() != '/' && path != "*")) {
    ex_->detail_text.assign("/").append(path);  // absolute-form without a path: "/"
    path = ex_->detail_text;
  }
  if (!canonicalize_target(path, url_limits, ex_->canonical_path, why)) {
    ex_->log_detail = why.detail;
    respond_error(why.failure, 0);
    return;
  }
  facts.path = ex_->canonical_path;
  RouteDecision decision = ex_->snap->router->route(facts, worker_->route_scratch());
  if (worker_->route_scratch().match_error() != 0) {
    // A pattern that could not be evaluated decides nothing: failing closed keeps a deny rule
    // from being skipped by an input crafted to exhaust the regex limits.
    report_match_error(*ex_->snap->router, worker_->route_scratch());
    ex_->log_detail = "a rule's pattern reached the regex limits";
    respond_error(Failure::rule_match_error, 0);
    return;
  }
  ex_->rule = decision.rule;
  switch (decision.kind) {
    case RouteDecision::Kind::Farm:
      ex_->farm = decision.farm;
      break;
    case RouteDecision::Kind::Proxy:
      if (decision.https) break;  // answered below like a farm over https
      ex_->farm = ex_->snap->proxy_farm(decision.authority);
      if (ex_->farm < 0) {
        ex_->log_detail =
            "host computed from the request; only hosts written in the configuration "
            "are proxied";
        respond_error(Failure::proxy_target_unknown, 0);
        return;
      }
      break;
    case RouteDecision::Kind::NoRoute:
      if (!decision.rule.empty()) {
        ex_->log_detail =
            "the rule rewrites to a URL that names no farm; proxying to a host that is not a "
            "farm needs <system.webServer><proxy enabled=\"true\"/> in applicationHost.config";
      }
      respond_error(Failure::no_route, 0);
      return;
    case RouteDecision::Kind::Abort:
      abort_exchange(Failure::rule_aborted, 0);
      return;
    case RouteDecision::Kind::Redirect: {
      // IIS sends Location absolute, built from the request's scheme and Host.
      std::string location = absolute_location(decision.target, facts.https, facts.host);
      respond_local(decision.status, {}, location, {}, true);
      return;
    }
    case RouteDecision::Kind::CustomResponse:
      respond_local(decision.status, decision.reason, {}, decision.body, true);
      return;
  }
  if (decision.https && decision.kind == RouteDecision::Kind::Proxy) {
    ex_->log_detail = "the global proxy reaches hosts over http:// only";
    respond_error(Failure::upstream_tls, 0);
    return;
  }
  ex_->upstream_tls = decision.https;
  if (ex_->upstream_tls && !ex_->snap->tls_client) {
    ex_->log_detail = "no https:// target was in the configuration when it loaded";
    respond_error(Failure::upstream_tls, 0);
    return;
  }
  ex_->target.assign(decision.target);
  ex_->rule_header_text.clear();
  for (const HeaderField& f : decision.set_headers)
    ex_->rule_header_text.emplace_back(f.name, f.value);
  ex_->rule_variables.assign(decision.set_variables.begin(), decision.set_variables.end());
  WorkerFarm& farm = worker_->farm(ex_->farm);
  std::optional<size_t> pick;
  Failure no_pick = Failure::no_server;
  if (farm.runtime->config->enabled) {
    pick = choose_server(farm, facts, decision.set_headers, no_pick);
  }
  if (!pick) {
    respond_error(no_pick, 0);
    return;
  }
  use_server(*pick);  // inside run_parser's loop: it goes on parsing by itself
}

std::optional<size_t> ClientConnection::choose_server(WorkerFarm& farm, const RequestFacts& facts,
                                                      std::span<const HeaderField> rule_headers,
                                                      Failure& failure) {
  const SnapshotFarm& rt = *farm.runtime;
  ex_->set_affinity_cookie = false;
  if (rt.affinity_index != nullptr) {
    std::string_view value = rt.affinity_cookies->find(ex_->head);
    if (!value.empty()) {
      std::optional<size_t> affine = rt.affinity_index->find(value);
      if (affine && farm.availability->serves_affine(*affine)) {
        worker_->server_metrics(*ex_->snap, ex_->farm, *affine).affinity_kept.add();
        return affine;
      }
      if (rt.config->affinity.failure_policy == config::AffinityFailurePolicy::Return503) {
        failure = Failure::affinity_unavailable;
        return std::nullopt;
      }
    }
    // No cookie, or one naming a server that is gone: balance, and pin to the new server.
    ex_->set_affinity_cookie = true;
  }
  uint64_t now = uv_hrtime();
  if (rt.host_affinity != nullptr)
    return rt.host_affinity->pick(facts.host, *farm.availability, now);
  balancer::PickContext ctx{*farm.availability, worker_->random(), now};
  if (rt.hash_key != nullptr) ctx.hash = rt.hash_key->hash(facts, rule_headers, ex_->hash_buffer);
  return farm.balancer->pick(ctx);
}

void ClientConnection::end_in_flight() {
  if (!ex_->in_flight_counted) return;
  ex_->in_flight_counted = false;
  ex_->server_metrics->in_flight.sub();
  if (ex_->balancer == nullptr) return;
  balancer::Finish finish;
  uint64_t now = uv_hrtime();
  finish.now_ns = now;
  finish.latency_ns = now - ex_->exchange_started_ns;
  finish.bytes = ex_->request_bytes + (out_.total_bytes() - ex_->response_bytes_at_start);
  bool failed_status =
      ex_->status != 0 && ex_->snap->farms[ex_->farm].live_failure_codes.matches(ex_->status);
  finish.outcome = ex_->response_done && !failed_status ? balancer::Outcome::Success
                                                        : balancer::Outcome::Failure;
  ex_->balancer->on_finish(ex_->server, finish);
  ex_->balancer.reset();
}

bool ClientConnection::use_server(size_t server) {
  ex_->server = server;
  ex_->server_metrics = &worker_->server_metrics(*ex_->snap, ex_->farm, ex_->server);
  ex_->server_metrics->in_flight.add();
  ex_->in_flight_counted = true;
  ex_->balancer = worker_->farm(ex_->farm).balancer;
  ex_->balancer->on_start(ex_->server);
  if (ex_->websocket) ex_->server_metrics->websocket_requests.add();
  if (UpstreamConnection* idle = worker_->take_idle(ex_->farm, ex_->server, ex_->upstream_tls)) {
    ex_->upstream = idle;
    ex_->upstream_reused = true;
    idle->attach(this);
    ex_->server_metrics->connections_reused.add();
    send_request_head();
    return true;
  }
  connect_upstream();
  return false;
}

bool ClientConnection::host_allowed(std::string_view host) const {
  if (listener_->host_names.empty()) return true;
  // Compare without the port: "shop.example.com:8080" is the binding "shop.example.com".
  size_t colon = host.rfind(':');
  if (colon != std::string_view::npos && host.find(']', colon) == std::string_view::npos) {
    host = host.substr(0, colon);
  }
  for (const std::string& name : listener_->host_names) {
    if (iequals(name, host)) return true;
  }
  return false;
}

void ClientConnection::connect_upstream() {
  const ServerEndpoint& endpoint = ex_->snap->farms[ex_->farm].servers[ex_->server];
  ex_->upstream = new UpstreamConnection(worker_, ex_->snap.get(), ex_->farm, ex_->server);
  ex_->upstream_reused = false;
  ex_->connect_started_ns = uv_hrtime();
  const sockaddr_storage* addr = &endpoint.addr;
  if (ex_->upstream_tls) {
    const SnapshotFarm& farm = ex_->snap->farms[ex_->farm];
    const tls::ClientContexts::UpstreamTls& settings =
        ex_->snap->tls_client->for_farm(farm.config->name);
    ex_->upstream->use_tls(settings.ctx, endpoint.tls_name, settings.verify,
                           worker_->farm(ex_->farm).servers[ex_->server].tls_session);
    addr = &endpoint.tls_addr;
  }
  ex_->upstream->connect(this, reinterpret_cast<const sockaddr*>(addr),
                         ms(worker_->config().timeouts.connect));
}

void ClientConnection::upstream_connected() {
  uint64_t connect_us = (uv_hrtime() - ex_->connect_started_ns) / 1000;
  ex_->server_metrics->connect_time.observe(connect_us);
  ex_->server_metrics->connections_opened.add();  // counted once established, not per attempt
  ex_->connect_ms = static_cast<int64_t>(connect_us / 1000);
  send_request_head();
  run_parser();
}

void ClientConnection::send_request_head() {
  const SnapshotFarm& farm = ex_->snap->farms[ex_->farm];
  const config::ProtocolConfig& protocol = farm.config->protocol;
  ex_->upstream->begin_exchange(ex_->head_request, ms(protocol.timeout),
                                protocol.max_response_header_size);

  std::string_view host = protocol.preserve_host_header ? request_host() : std::string_view{};
  if (host.empty()) {
    host = ex_->upstream_tls ? farm.servers[ex_->server].tls_authority
                             : farm.servers[ex_->server].authority;
  }
  ex_->rule_headers.clear();
  for (const auto& [name, value] : ex_->rule_header_text) {
    if (iequals(name, "host")) host = value;  // a rule set HTTP_HOST
    ex_->rule_headers.push_back({name, value});
  }
  ex_->upstream_host = host;
  // to_chars, not snprintf: this runs for every request.
  *std::to_chars(ex_->max_forwards, ex_->max_forwards + sizeof ex_->max_forwards - 1,
                 protocol.max_forwards)
       .ptr = '\0';
  // What ARR adds to every forwarded request; client-sent values are always replaced.
  HeaderField harrow_headers[5];
  size_t n = 0;
  harrow_headers[n++] = {"Max-Forwards", ex_->max_forwards};
  // As IIS sends it: the URL as the client wrote it (raw, with its query), never the rewrite.
  harrow_headers[n++] = {"X-Original-URL", split_target(ex_->head.target()).path};
  if (!protocol.log_guid_name.empty()) harrow_headers[n++] = {protocol.log_guid_name, ex_->log_id};
  // X-ARR-SSL and X-ARR-ClientCert only for a request that came over TLS (the certificate one
  // only with a client certificate), as ARR does: applications test for their presence. A
  // client's own copies never pass, whether Harrow sets the header or not.
  std::string_view strip[2];
  size_t stripped = 0;
  if (!protocol.ssl_header_name.empty()) {
    if (tls_ != nullptr) {
      harrow_headers[n++] = {protocol.ssl_header_name, tls_->arr_ssl()};
    } else {
      strip[stripped++] = protocol.ssl_header_name;
    }
  }
  if (!protocol.client_cert_header_name.empty()) {
    if (tls_ != nullptr && !tls_->client_certificate().empty()) {
      harrow_headers[n++] = {protocol.client_cert_header_name, tls_->client_certificate()};
    } else {
      strip[stripped++] = protocol.client_cert_header_name;
    }
  }
  UpstreamRequest request;
  request.method = llhttp_method_name(static_cast<llhttp_method_t>(ex_->parser.method));
  // An asterisk-form target (OPTIONS *) asks about the server, not a resource: it goes as it
  // came (RFC 9112 §3.2.4), not as the rules' "/*".
  request.target =
      ex_->head.target() == "*" ? std::string_view("*") : std::string_view(ex_->target);
  request.head = &ex_->head;
  request.host = host;
  request.chunked_body = ex_->request_chunked;
  request.keep_alive = protocol.keep_alive;
  if (ex_->websocket) {
    request.upgrade = "websocket";
    ex_->upstream->expect_upgrade();
  }
  request.forwarded_for_name = protocol.x_forwarded_for_header_name;
  request.forwarded_for_value =
      protocol.include_port_in_x_forwarded_for ? std::string_view(peer()) : peer_ip();
  request.harrow_headers = std::span<const HeaderField>(harrow_headers, n);
  request.strip = std::span<const std::string_view>(strip, stripped);
  request.rule_headers = ex_->rule_headers;

  IoBlock* block = block_acquire();
  HeadWriter writer(block->data, block->capacity);
  write_upstream_request(request, writer);
  if (writer.overflowed() || writer.unsafe()) {
    block_unref(block);
    release_upstream(false);
    if (writer.unsafe()) {
      refuse_unsafe(ex_->rule, "the upstream request line or a request header");
    } else {
      respond_error(Failure::request_header_too_large, 0);
    }
    return;
  }
  ex_->upstream->out().add(block, block->data, writer.size());
  block_unref(block);  // the batch holds its own reference
  if (phase_ == Phase::Routing) {
    // First attempt: the body (if any) follows the head as the parser resumes.
    phase_ = Phase::Exchange;
    if (ex_->request_has_body) {
      ex_->body_activity_ms = uv_now(worker_->loop());
      arm_timer(ms(worker_->config().timeouts.client_body));
    }
    resume_parser();
  }
  if (ex_->upstream->out().flush() != 0)
    upstream_failed(Failure::upstream_reset, ex_->upstream->out().last_error());
}

void ClientConnection::request_complete() {
  ex_->request_done = true;
  if (ex_->response_done) finish_exchange();
}

void ClientConnection::upstream_head(const MessageHead& head, int status) {
  bool client_http11 = ex_->parser.http_major == 1 && ex_->parser.http_minor == 1;
  IoBlock* block = block_acquire();
  HeadWriter writer(block->data, block->capacity);
  ClientResponse response;
  response.status = status;
  response.reason = head.target();
  response.head = &head;
  // Only an upgrade Harrow forwarded gets a 101 this far (upstream_connection.cc).
  bool switching = status == 101;
  if (status < 200 && !switching) {
    // Interim responses (100 Continue, 103 Early Hints) mean nothing to an HTTP/1.0 client.
    if (client_http11) {
      response.keep_content_length = false;  // an interim head has no body (RFC 9112 §6.3)
      write_client_response(response, writer);
      // Copied next to what is staged: one read may bring many interim heads, and each must
      // not pin a block of its own before the read's backpressure check. An interim head a
      // rule made unsafe is dropped.
      if (!writer.unsafe()) out_.add_copy(block->data, writer.size(), false);
    }
    block_unref(block);
    return;
  }
  // The server's response cannot be forwarded as it is: the exchange fails with a 502 and the
  // server's connection, which would go on parsing, is closed first.
  auto refuse = [this](const char* detail) {
    ex_->response_head_sent = false;
    ex_->log_detail = detail;
    UpstreamConnection* up = ex_->upstream;
    ex_->upstream = nullptr;
    if (up != nullptr) up->close();
    upstream_failed(Failure::upstream_invalid_response, 0);
  };
  bool no_body = ex_->head_request || status == 204 || status == 304 || switching;
  // Transfer codings other than chunked (gzip, …) go to the client as they came, never
  // relabelled; an HTTP/1.0 client may not be sent Transfer-Encoding at all (RFC 9112 §6.1).
  bool codings = !no_body && has_transfer_codings(head);
  if (codings && !client_http11) {
    block_unref(block);
    refuse("transfer coding other than chunked for an HTTP/1.0 client");
    return;
  }
  ex_->response_head_sent = true;
  uint64_t first_byte_us = (uv_hrtime() - ex_->exchange_started_ns) / 1000;
  ex_->server_metrics->first_byte_time.observe(first_byte_us);
  ex_->header_ms = static_cast<int64_t>(first_byte_us / 1000);
  // Framing comes from Harrow's own parse: a Content-Length a Connection header names is kept
  // (MessageHead never makes it hop-by-hop), so the client reads the body Harrow delimited.
  // That is safer than a 502: Harrow writes its own Connection header, so no later hop sees
  // the server's list, and refusing would only break odd but unambiguous servers.
  bool upstream_length = head.has("content-length") && !head.has("transfer-encoding");
  if (no_body || upstream_length) {
    // A 204 must not carry Content-Length (RFC 9110 §8.6); a 304 or HEAD's is metadata.
    response.keep_content_length = status != 204 && !switching;
  } else if (codings) {
    response.forward_transfer_encoding = true;
    response.keep_content_length = false;
    if (ex_->upstream->response_chunked()) {
      // "gzip, chunked": the body is re-chunked under the codings as they came.
      ex_->response_chunked = true;
      response.chunked = true;
    } else {
      // Chunked not final ("gzip", "chunked, gzip"): the close delimits the body (RFC 9112
      // §6.3), to the client as from the server.
      close_requested_ = true;
    }
  } else if (client_http11) {
    ex_->response_chunked = true;
    response.chunked = true;
    response.keep_content_length = false;
  } else {
    close_requested_ = true;  // HTTP/1.0 client, unknown length: the close ends the body
    response.keep_content_length = false;
  }
  // A request whose body is still arriving cannot be followed by another on this connection
  // unless Harrow reads the rest; closing is simpler and safe.
  if (!ex_->client_keep_alive || !ex_->request_done || worker_->stopping()) close_requested_ = true;
  response.close = close_requested_;
  response.http10_keep_alive = !client_http11 && !close_requested_;
  if (switching) response.upgrade = head.find("upgrade");
  const SnapshotFarm& farm = ex_->snap->farms[ex_->farm];
  if (farm.live_failure_codes.matches(status)) ex_->server_metrics->live_failures.add();
  if (farm.config->protocol.arr_response_header) response.powered_by = "Harrow/" HARROW_VERSION;
  HeaderField replacements[2];
  size_t replaced = 0;
  if (farm.config->protocol.reverse_rewrite_host_in_response_headers) {
    // Redirects the server aims at itself must send the client back through Harrow.
    const ServerEndpoint& server = farm.servers[ex_->server];
    std::string_view backend[] = {server.authority, server.label, ex_->upstream_host};
    std::string_view client_host = request_host();
    std::string_view location = head.find("location");
    if (reverse_rewrite_location(location, backend, "http", client_host, ex_->rewritten_location)) {
      replacements[replaced++] = {"Location", ex_->rewritten_location};
    }
    std::string_view content_location = head.find("content-location");
    if (reverse_rewrite_location(content_location, backend, "http", client_host,
                                 ex_->rewritten_content_location)) {
      replacements[replaced++] = {"Content-Location", ex_->rewritten_content_location};
    }
  }
  response.replace = std::span<const HeaderField>(replacements, replaced);
  // ARR's application opt-out: the server may ask that this response set no affinity cookie.
  static constexpr std::string_view kAffinityOptOut[] = {"Arr-Disable-Session-Affinity"};
  HeaderField cookies[2];
  size_t cookie_count = 0;
  if (farm.affinity_cookies != nullptr) {
    response.remove = kAffinityOptOut;
    if (ex_->set_affinity_cookie && !iequals(head.find("arr-disable-session-affinity"), "true")) {
      for (const std::string& value : farm.affinity_cookies->set_cookie(ex_->server)) {
        cookies[cookie_count++] = {"Set-Cookie", value};
      }
      ex_->server_metrics->affinity_assigned.add();
    }
  }
  response.add = std::span<const HeaderField>(cookies, cookie_count);
  // A transfer-coded body is not HTML the rewriter could read.
  if (!apply_outbound(head, response, !no_body && !codings)) {
    // Failing closed: an outbound rule that could not be evaluated may be the one that strips
    // a header or rewrites a link, so the response does not go out without it.
    block_unref(block);
    ex_->response_head_sent = false;
    ex_->html.reset();
    ex_->response_chunked = false;
    release_upstream(false);
    report_match_error(*ex_->snap->router, worker_->route_scratch());
    ex_->log_detail = "an outbound rule's pattern reached the regex limits";
    respond_error(Failure::rule_match_error, 0);
    run_parser();
    return;
  }
  write_client_response(response, writer);
  if (writer.unsafe()) {
    // An outbound rule or the server gave a header a value that would split the head: nothing
    // of it reaches the client. A rule's is a 500 naming the rule; the server's own status
    // reason or field (llhttp lets a few such bytes through) is an invalid response, a 502.
    block_unref(block);
    ex_->html.reset();
    ex_->response_chunked = false;
    std::string_view rule = unsafe_outbound_rule();
    if (rule.empty()) {
      refuse("control character or invalid byte in the server's status reason or a header");
      return;
    }
    ex_->response_head_sent = false;
    release_upstream(false);
    refuse_unsafe(rule, "a response header");
    run_parser();
    return;
  }
  if (writer.overflowed()) {
    block_unref(block);
    refuse("response head larger than a block");
    return;
  }
  out_.add(block, block->data, writer.size());
  block_unref(block);
  ex_->status = status;
  ex_->sent_status = status;
  if (switching) {
    // The head goes out with this read's flush; upstream_read_end() opens the tunnel.
    phase_ = Phase::Tunnel;
    ex_->tunnel_opening = true;
    ex_->response_done = true;
  }
}

void ClientConnection::upstream_body(IoBlock* block, const char* data, size_t len) {
  if (ex_->html != nullptr || ex_->body_text != nullptr) {
    std::string_view piece(data, len);
    if (ex_->html != nullptr) {
      ex_->html_out.clear();
      ex_->html->feed(piece, ex_->html_out);
      piece = ex_->html_out;
    }
    if (!ex_->html_match_failed && ex_->body_text != nullptr) {
      ex_->text_out.clear();
      piece = rewrite_body_text(piece, false);
    }
    if (ex_->html_match_failed) {
      // The head is out: the body cannot go on without the rule, so the response ends here
      // (the client sees a cut response, never an unrewritten one).
      release_upstream(false);
      abort_exchange(Failure::rule_match_error, 0);
      return;
    }
    send_owned(piece);
    ex_->server_metrics->bytes_from_server.add(len);
    return;
  }
  if (ex_->response_chunked) {
    out_.add_chunk(block, data, len);
  } else {
    out_.add(block, data, len);
  }
  ex_->server_metrics->bytes_from_server.add(len);
}

std::string_view ClientConnection::request_host() const {
  // RFC 9112 §3.2.2: an absolute-form target's authority stands for Host (the head check made
  // sure a Host sent with it agrees); an HTTP/1.0 request may send it without a Host.
  TargetParts target = split_target(ex_->head.target());
  return target.absolute ? target.authority : ex_->head.find("host");
}

RequestFacts ClientConnection::request_facts() {
  RequestFacts facts;
  facts.method = llhttp_method_name(static_cast<llhttp_method_t>(ex_->parser.method));
  facts.target = split_target(ex_->head.target()).path;
  facts.host = request_host();
  facts.server_port = listener_->port;
  facts.remote_addr = peer_ip();
  facts.remote_port = peer_address_.port;
  // getsockname() only for configurations whose rules read the local address.
  if (ex_->snap != nullptr && ex_->snap->router->reads_local_addr()) facts.local_addr = local_ip();
  facts.http10 = ex_->parser.http_major == 1 && ex_->parser.http_minor == 0;
  facts.variables = ex_->rule_variables;
  facts.path = ex_->canonical_path;
  facts.head = &ex_->head;
  facts.site = ex_->site;
  facts.https = tls_ != nullptr;
  return facts;
}

bool ClientConnection::apply_outbound(const MessageHead& head, ClientResponse& response,
                                      bool has_body) {
  const Router& router = *ex_->snap->router;
  if (!router.has_outbound(ex_->site)) return true;
  RequestFacts facts = request_facts();
  facts.response_status = response.status;
  OutboundDecision decision =
      router.outbound(facts, head, response.replace, worker_->route_scratch());
  if (worker_->route_scratch().match_error() != 0) return false;
  ex_->outbound_rule_values.clear();
  for (size_t i = 0; i < decision.set_headers.size(); ++i)
    ex_->outbound_rule_values.emplace_back(decision.set_rules[i], decision.set_headers[i].second);
  if (!decision.set_headers.empty()) {
    // Rules see, and override, what reverseRewriteHostInResponseHeaders already rewrote.
    ex_->outbound_replace.assign(response.replace.begin(), response.replace.end());
    ex_->outbound_add.assign(response.add.begin(), response.add.end());
    for (const auto& set : decision.set_headers) {
      // Named, not a structured binding: clang 14 (the fuzz build) cannot capture those.
      const std::string_view name = set.first;
      const std::string_view value = set.second;
      std::vector<HeaderField>& into = head.has(name) ? ex_->outbound_replace : ex_->outbound_add;
      auto same = std::find_if(into.begin(), into.end(),
                               [&](const HeaderField& f) { return iequals(f.name, name); });
      if (same != into.end() && &into == &ex_->outbound_replace) {
        same->value = value;
      } else if (same != into.end() && !iequals(name, "set-cookie")) {
        same->value = value;
      } else {
        into.push_back({name, value});
      }
    }
    response.replace = ex_->outbound_replace;
    response.add = ex_->outbound_add;
  }
  if ((decision.body_rules == 0 && decision.text_rules == 0) || !has_body) return true;
  std::string_view encoding = head.find("content-encoding");
  if (!encoding.empty() && !iequals(encoding, "identity")) {
    // Rewriting links inside a gzip (or br…) body would corrupt it: pass it on untouched.
    log_line(LogLevel::Info,
             "outbound rules with filterByTags skipped for %.*s: the response "
             "body is %.*s-encoded",
             static_cast<int>(ex_->target.size()), ex_->target.data(),
             static_cast<int>(encoding.size()), encoding.data());
    return true;
  }
  ex_->text_body_rules = decision.text_rules;
  if (decision.text_rules != 0) ex_->body_text = std::make_unique<BodyTextState>();
  ex_->html_body_rules = decision.body_rules;
  if (decision.body_rules != 0)
    ex_->html = std::make_unique<HtmlRewriter>(
        decision.tags, std::move(decision.custom_tags),
        [this](std::string_view tag, std::string_view attribute, std::string_view value,
               std::string& out) {
          RequestFacts facts = request_facts();
          facts.response_status = ex_->status;
          bool rewritten = ex_->snap->router->rewrite_body_url(
              facts, ex_->html_body_rules, tag, attribute, value, worker_->route_scratch(), out);
          if (worker_->route_scratch().match_error() != 0) {
            if (!ex_->html_match_failed)
              report_match_error(*ex_->snap->router, worker_->route_scratch());
            ex_->html_match_failed = true;
          }
          return rewritten;
        });
  // The body changes length: re-framed as chunked, or ended by the close for HTTP/1.0.
  response.keep_content_length = false;
  if (ex_->parser.http_major == 1 && ex_->parser.http_minor == 1) {
    response.chunked = true;
    ex_->response_chunked = true;
  } else {
    response.chunked = false;
    ex_->response_chunked = false;
    close_requested_ = true;
    response.close = true;
    response.http10_keep_alive = false;
  }
  return true;
}

std::string_view ClientConnection::rewrite_body_text(std::string_view piece, bool last) {
  RequestFacts facts = request_facts();
  facts.response_status = ex_->status;
  const Router& router = *ex_->snap->router;
  if (!router.rewrite_body_text(facts, ex_->text_body_rules, *ex_->body_text, piece, last,
                                worker_->route_scratch(), ex_->text_out)) {
    if (!ex_->html_match_failed) report_match_error(router, worker_->route_scratch());
    ex_->html_match_failed = true;
  }
  return ex_->text_out;
}

void ClientConnection::send_owned(std::string_view bytes) {
  // Copied behind what was staged before, so small pieces share blocks (see OutBatch).
  out_.add_copy(bytes.data(), bytes.size(), ex_->response_chunked);
}

void ClientConnection::upstream_read_end() {
  if (phase_ == Phase::Tunnel) {
    tunnel_upstream_read_end();
    return;
  }
  if (out_.flush() != 0) return;  // the client is gone; its read side will notice
  if (ex_->upstream != nullptr && !ex_->upstream_paused && out_.memory() > kHighWater) {
    ex_->upstream->pause_reading();
    ex_->upstream_paused = true;
    // The client must take some of its response within clientSend (slow-read attack).
    arm_timer(ms(worker_->config().timeouts.client_send));
  }
}

void ClientConnection::upstream_complete(bool reusable) {
  ex_->server_metrics->response_time.observe((uv_hrtime() - ex_->exchange_started_ns) / 1000);
  if (ex_->html != nullptr || ex_->body_text != nullptr) {
    std::string_view piece;
    if (ex_->html != nullptr) {
      ex_->html_out.clear();
      ex_->html->finish(ex_->html_out);
      piece = ex_->html_out;
    }
    if (ex_->body_text != nullptr) {
      ex_->text_out.clear();
      piece = rewrite_body_text(piece, true);
    }
    // A pattern that failed this late cuts the response (its head is out).
    if (!ex_->html_match_failed) send_owned(piece);
    ex_->html.reset();
    ex_->body_text.reset();
    if (ex_->html_match_failed) {
      release_upstream(false);
      abort_exchange(Failure::rule_match_error, 0);
      return;
    }
  }
  if (ex_->response_chunked) out_.add_last_chunk();
  out_.flush();
  ex_->response_done = true;
  const config::FarmConfig& farm = *ex_->snap->farms[ex_->farm].config;
  release_upstream(reusable && ex_->request_done && farm.protocol.keep_alive &&
                   !worker_->stopping());
  if (ex_->request_done) {
    finish_exchange();
    run_parser();
  } else {
    // The server answered before the request body ended: the rest of it goes nowhere.
    close_after_flush();
  }
}

bool ClientConnection::may_replay() const {
  // RFC 9110 §9.2.2's idempotent methods, whole (no body to replay) and not yet answered.
  llhttp_method_t method = static_cast<llhttp_method_t>(ex_->parser.method);
  bool idempotent = method == HTTP_GET || method == HTTP_HEAD || method == HTTP_OPTIONS ||
                    method == HTTP_PUT || method == HTTP_DELETE || method == HTTP_TRACE;
  return idempotent && ex_->request_done && !ex_->request_has_body && !ex_->response_head_sent;
}

bool ClientConnection::fail_over(Failure failure, int uv_status) {
  bool connect_failure = failure == Failure::upstream_connect_refused ||
                         failure == Failure::upstream_connect_failed ||
                         failure == Failure::upstream_connect_timeout;
  // A connect failure while the request is still held at its head: nothing of it left
  // Harrow, so any method may go to another server.
  bool nothing_sent = connect_failure && phase_ == Phase::Routing;
  // A server that went away before answering an idempotent, body-less request: replaying it
  // elsewhere is what RFC 9110 §9.2.2 allows.
  bool safe_replay = failure == Failure::upstream_reset && may_replay();
  // At most `retries` other servers (<harrow><limits retries>, default 1).
  int retries =
      static_cast<int>(std::min<uint32_t>(ex_->snap->config->limits.retries, Exchange::kMaxTried));
  if (!(nothing_sent || safe_replay) || ex_->tried_count >= retries) return false;
  if (worker_->snapshot_ptr() != ex_->snap) return false;  // a reload landed: the balancer is new
  ex_->tried[ex_->tried_count++] = ex_->server;
  WorkerFarm& farm = worker_->farm(ex_->farm);
  balancer::PickContext ctx{*farm.availability, worker_->random()};
  ctx.exclude = std::span<const size_t>(ex_->tried, static_cast<size_t>(ex_->tried_count));
  std::optional<size_t> next = farm.balancer->pick(ctx);
  // No other server: the failure stands, and respond_error() logs and counts it (once).
  if (!next) return false;
  log_failure(failure, uv_status);
  ex_->server_metrics->failures[static_cast<int>(failure)].add();
  ex_->server_metrics->live_failures.add();
  ex_->server_metrics->retries.add();
  count_websocket_failure();
  end_in_flight();
  // The client's cookie names the server that failed: pin it to the one that answers.
  if (ex_->snap->farms[ex_->farm].affinity_index != nullptr) ex_->set_affinity_cookie = true;
  ++ex_->retries;
  if (use_server(*next)) run_parser();  // called from a libuv callback, not from the parser
  return true;
}

void ClientConnection::upstream_failed(Failure failure, int uv_status) {
  ex_->upstream = nullptr;  // it closed itself
  if (phase_ == Phase::Closed) return;
  if (phase_ == Phase::Tunnel) {
    // The server reset a tunnel: the 101 is long out, so the client's connection just ends.
    log_line(LogLevel::Info, "websocket tunnel log_id=%s client=%s ended: server %s", ex_->log_id,
             peer(),
             uv_status != 0 ? uv_err_name(uv_status) : std::string(failure_token(failure)).c_str());
    close();
    return;
  }
  if (fail_over(failure, uv_status)) return;
  bool stale_keep_alive =
      ex_->upstream_reused && !ex_->response_head_sent && !ex_->request_has_body &&
      (failure == Failure::upstream_reset || failure == Failure::upstream_truncated);
  if (stale_keep_alive && !ex_->retried) {
    // The server closed a pooled connection just as it was reused; nothing of the request
    // reached the application, so one fresh connection is safe.
    ex_->retried = true;
    ++ex_->retries;
    ex_->server_metrics->retries.add();
    connect_upstream();
    return;
  }
  // A fresh connection closed before any response byte: an idempotent request without a body
  // is replayed once on a new connection (RFC 9110 §9.2.2), also when no other server is left
  // to fail over to. A POST is not: the server may have acted on it.
  bool fresh_replay = !ex_->upstream_reused && failure == Failure::upstream_reset && may_replay() &&
                      !ex_->retried && ex_->retries == 0 && ex_->snap->config->limits.retries > 0;
  if (fresh_replay) {
    log_failure(failure, uv_status);
    ex_->server_metrics->failures[static_cast<int>(failure)].add();
    ex_->server_metrics->live_failures.add();
    ex_->retried = true;
    ++ex_->retries;
    ex_->server_metrics->retries.add();
    connect_upstream();
    return;
  }
  if (failure == Failure::upstream_timeout && !ex_->request_done)
    failure = Failure::client_body_timeout;
  respond_error(failure, uv_status);
  run_parser();
}

void ClientConnection::upstream_write_done() {
  if (phase_ == Phase::Tunnel) {
    tunnel_upstream_write_done();
    return;
  }
  check_upstream_backpressure();
}

void ClientConnection::check_upstream_backpressure() {
  size_t queued = ex_->upstream != nullptr ? ex_->upstream->out().memory() : 0;
  if (queued > kHighWater) {
    paused_for_backpressure_ = true;
    pause_reading();
  } else if (paused_for_backpressure_ && queued < kLowWater) {
    paused_for_backpressure_ = false;
    resume_reading();
  }
}

void ClientConnection::release_upstream(bool reusable) {
  if (ex_ == nullptr) return;
  end_in_flight();
  if (ex_->upstream == nullptr) return;
  UpstreamConnection* up = ex_->upstream;
  ex_->upstream = nullptr;
  ex_->upstream_paused = false;
  if (up->tls() && !ex_->upstream_reused && up->snapshot() == &worker_->snapshot()) {
    // Kept per server for the next new connection's abbreviated handshake (a TLS 1.3 server
    // sends its ticket after the handshake, so it is taken once the exchange is over).
    if (auto session = up->tls_session()) {
      worker_->farm(up->farm()).servers[up->server()].tls_session = std::move(session);
    }
  }
  up->release(reusable);
}

void ClientConnection::finish_exchange() {
  if (out_.memory() > kLowWater) {
    // The response is queued but the client is not taking it: the exchange ends (and the next
    // pipelined request is read) only once it does, as with nginx, so a client that pipelines
    // and never reads holds one response's worth of memory, not one per request. It has
    // clientSend to take it down to the low mark (on_write, on_deadline).
    ex_->output_draining = true;
    arm_timer(ms(worker_->config().timeouts.client_send));
    return;
  }
  log_access();
  if (ex_->server_metrics != nullptr && ex_->status != 0) {
    ex_->server_metrics->responses_by_class[ex_->status / 100 % 6].add();
  }
  ex_->status = 0;
  ex_->server_metrics = nullptr;
  ex_->snap.reset();
  phase_ = Phase::Idle;
  served_ = true;
  if (close_requested_) {
    // The client said this was its last request, all of it was read and the response is
    // wholly in the kernel: nothing can arrive that a close would answer with a reset, so
    // close now instead of a shutdown and a lingering read for the client's FIN.
    if (ex_->client_said_close && !ex_->failed && ex_->request_done &&
        (in_.block == nullptr || in_.unconsumed() == 0) &&
        uv_stream_get_write_queue_size(stream()) == 0) {
      close();
      return;
    }
    close_after_flush();
    return;
  }
  resume_parser();
  arm_timer(ms(worker_->config().timeouts.client_keep_alive));
}

void ClientConnection::respond_error(Failure failure, int uv_status) {
  log_failure(failure, uv_status);
  ex_->failed = true;
  ex_->failure = failure;
  ex_->failure_uv_status = uv_status;
  worker_->mutable_metrics().failures[static_cast<int>(failure)].add();
  worker_->mutable_metrics().listeners[listener_->index].failures[static_cast<int>(failure)].add();
  if (ex_->server_metrics != nullptr && ex_->in_flight_counted) {
    ex_->server_metrics->failures[static_cast<int>(failure)].add();
    if (is_server_fault(failure)) ex_->server_metrics->live_failures.add();
    count_websocket_failure();
  }
  release_upstream(false);
  int status = failure_status(failure);
  if (status == 0 || ex_->response_head_sent) {
    close();
    return;
  }
  if (status == 400 || status == 408 || status == 414 || status == 431 || status == 505)
    close_requested_ = true;  // framing in doubt
  // The body names the reason token, so a user with only curl sees why (story 2 of DESIGN.md).
  char body[160];
  std::string_view reason = default_reason(status);
  std::string_view token = failure_token(failure);
  int n =
      std::snprintf(body, sizeof body, "%d %.*s (%.*s)\n", status, static_cast<int>(reason.size()),
                    reason.data(), static_cast<int>(token.size()), token.data());
  respond_local(status, reason, {}, std::string_view(body, static_cast<size_t>(n)));
}

void ClientConnection::refuse_unsafe(std::string_view rule, const char* where) {
  ex_->detail_text.assign("rule \"").append(rule.empty() ? "-" : rule);
  ex_->detail_text.append("\" put a control character (CR, LF, NUL, ...) in ").append(where);
  ex_->log_detail = ex_->detail_text.c_str();
  respond_error(Failure::unsafe_rewrite, 0);
}

std::string_view ClientConnection::unsafe_outbound_rule() const {
  // Diagnostics only (the writer has refused the head): the rule that set the unsafe value.
  for (const auto& [rule, value] : ex_->outbound_rule_values) {
    if (!HeadWriter::safe_value(value)) return rule;
  }
  return {};
}

void ClientConnection::respond_local(int status, std::string_view reason, std::string_view location,
                                     std::string_view body, bool from_rule) {
  release_upstream(false);
  if (!ex_->client_keep_alive || (!ex_->request_done && ex_->request_has_body))
    close_requested_ = true;
  IoBlock* block = block_acquire();
  HeadWriter w(block->data, block->capacity);
  w << "HTTP/1.1 " << static_cast<uint64_t>(status) << " ";
  w.reason(reason.empty() ? default_reason(status) : reason) << "\r\n";
  if (!location.empty()) w.field("Location", location);
  w << "Content-Type: text/plain\r\nContent-Length: " << static_cast<uint64_t>(body.size())
    << "\r\n"
    << (close_requested_ ? "Connection: close\r\n" : "") << "\r\n";
  if (!ex_->head_request) w << body;
  if (w.unsafe()) {  // only text a rule produced can be unsafe here
    block_unref(block);
    refuse_unsafe(from_rule ? ex_->rule : std::string_view{}, "the status reason or Location");
    return;
  }
  if (w.overflowed()) {  // a rule's Location or body larger than a block: say so, briefly
    w = HeadWriter(block->data, block->capacity);
    w << "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
  }
  out_.add(block, block->data, w.size());
  block_unref(block);
  out_.flush();
  ex_->response_head_sent = true;
  ex_->response_done = true;
  ex_->sent_status = status;
  // Only a server's responses count in its status classes.
  ex_->status = (ex_->server_metrics != nullptr && ex_->status == 0) ? status : 0;
  if (phase_ == Phase::ReadingHead || phase_ == Phase::Idle || close_requested_) {
    // The request cannot be read on (bad head, timeout) or is not worth reading (a body
    // nobody will take): end the connection once the answer is out.
    phase_ = Phase::Exchange;
    log_access();
    close_after_flush();
    return;
  }
  phase_ = Phase::Exchange;
  if (ex_->request_done) {
    finish_exchange();
  } else {
    resume_parser();  // the parser reaches the request's end next
  }
}

void ClientConnection::log_failure(Failure failure, int uv_status) {
  LogLevel level = failure == Failure::client_aborted ? LogLevel::Info : LogLevel::Warn;
  if (!log_enabled(level)) return;
  std::string_view target = ex_->head.target().substr(0, 200);
  // A request refused before llhttp read its method (by the framer) has none to name.
  const char* method = ex_->head.target().empty()
                           ? "-"
                           : llhttp_method_name(static_cast<llhttp_method_t>(ex_->parser.method));
  std::string server = "-";
  std::string farm = "-";
  std::string pool = "-";
  if (ex_->farm >= 0) {
    const SnapshotFarm& f = ex_->snap->farms[ex_->farm];
    farm = f.config->name;
    if (!f.config->application_pool.empty()) pool = f.config->application_pool;
    if (ex_->in_flight_counted || ex_->upstream != nullptr) server = f.servers[ex_->server].label;
  }
  log_line(
      level,
      "%d %s log_id=%s client=%s request=\"%s %.*s\" farm=%s pool=%s server=%s retries=%u%s%s%s%s",
      failure_status(failure), std::string(failure_token(failure)).c_str(),
      ex_->log_id[0] != '\0' ? ex_->log_id : "-", peer(), method, static_cast<int>(target.size()),
      target.data(), farm.c_str(), pool.c_str(), server.c_str(), ex_->retries,
      uv_status != 0 ? " error=" : "", uv_status != 0 ? uv_err_name(uv_status) : "",
      ex_->log_detail != nullptr ? " detail=" : "",
      ex_->log_detail != nullptr ? ex_->log_detail : "");
}

const char* ClientConnection::peer_ip() const {
  if (ex_->peer_ip[0] == '\0') peer_address_.format_ip(ex_->peer_ip, sizeof ex_->peer_ip);
  return ex_->peer_ip;
}

const char* ClientConnection::peer() const {
  if (ex_->peer[0] == '\0') peer_address_.format_ip_port(ex_->peer, sizeof ex_->peer);
  return ex_->peer;
}

const char* ClientConnection::local_ip() {
  // Only the access log needs it: asked for then, not for every accepted connection.
  if (ex_->local_ip[0] != '\0') return ex_->local_ip;
  sockaddr_storage local{};
  int len = sizeof local;
  if (uv_tcp_getsockname(&tcp_, reinterpret_cast<sockaddr*>(&local), &len) == 0) {
    if (local.ss_family == AF_INET6) {
      uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&local), ex_->local_ip, sizeof ex_->local_ip);
    } else {
      uv_ip4_name(reinterpret_cast<sockaddr_in*>(&local), ex_->local_ip, sizeof ex_->local_ip);
    }
  }
  return ex_->local_ip;
}

void ClientConnection::log_access() {
  if (ex_ == nullptr || !ex_->request_begun || ex_->access_logged) return;
  ex_->access_logged = true;
  AccessLogBuffer& log = worker_->access_log();
  if (!log.enabled()) return;
  AccessLogEntry e;
  e.server_ip = local_ip();
  e.client_ip = peer_ip();
  e.client_port = peer_address_.port;
  e.server_port = listener_->port;
  e.method = ex_->head.target().empty()
                 ? "-"
                 : llhttp_method_name(static_cast<llhttp_method_t>(ex_->parser.method));
  e.target = ex_->head.target();
  e.host = request_host();
  e.user_agent = ex_->head.find("user-agent");
  e.status = ex_->sent_status;
  e.bytes_sent = out_.total_bytes() - ex_->response_bytes_at_start;
  e.bytes_received = ex_->request_bytes;
  e.time_taken_ms = uv_now(worker_->loop()) - ex_->request_started_ms;
  if (ex_->farm >= 0 && ex_->snap) {
    const SnapshotFarm& farm = ex_->snap->farms[ex_->farm];
    e.farm = farm.config->name;
    if (ex_->server_metrics != nullptr) e.server = farm.servers[ex_->server].label;
  }
  if (ex_->failed) {
    e.reason = failure_token(ex_->failure);
    if (ex_->failure_uv_status != 0) e.upstream_error = uv_err_name(ex_->failure_uv_status);
  }
  e.log_id = ex_->log_id;
  e.site = ex_->site_name;
  e.upstream_connect_ms = ex_->connect_ms;
  e.upstream_header_ms = ex_->header_ms;
  e.retries = ex_->retries;
  log.add(e);
}

void ClientConnection::abort_exchange(Failure failure, int uv_status) {
  log_failure(failure, uv_status);
  ex_->failed = true;
  ex_->failure = failure;
  ex_->failure_uv_status = uv_status;
  log_access();
  worker_->mutable_metrics().failures[static_cast<int>(failure)].add();
  worker_->mutable_metrics().listeners[listener_->index].failures[static_cast<int>(failure)].add();
  close();
}

// ---------------------------------------------------------------- writing, timers, closing

void ClientConnection::on_write(uv_write_t* req, int status) {
  auto* c = static_cast<ClientConnection*>(req->handle->data);
  write_request_finish(req);
  c->out_.write_done();
  if (c->phase_ == Phase::Closed) return;
  if (c->phase_ == Phase::Tunnel && status >= 0) {
    c->tunnel_client_write_done();
    return;
  }
  if (status < 0) {
    if (c->phase_ == Phase::Exchange || c->phase_ == Phase::Routing) {
      c->abort_exchange(Failure::client_aborted, status);
    } else {
      c->close();
    }
    return;
  }
  if (c->ex_ != nullptr && c->ex_->output_draining && c->out_.memory() <= kLowWater) {
    c->ex_->output_draining = false;
    c->disarm_timer();
    c->finish_exchange();
    c->run_parser();  // the next pipelined request, if any
    return;
  }
  if (c->ex_ != nullptr && c->ex_->upstream_paused && c->ex_->upstream != nullptr &&
      c->out_.memory() < kLowWater) {
    c->ex_->upstream_paused = false;
    c->disarm_timer();
    if (!c->ex_->request_done && c->ex_->request_has_body) {
      c->arm_timer(ms(c->worker_->config().timeouts.client_body));  // the body still streams
    }
    c->ex_->upstream->resume_reading();
  }
}

void ClientConnection::close_after_flush() {
  if (closing_after_flush_ || phase_ == Phase::Closed) return;
  closing_after_flush_ = true;
  disarm_timer();
  if (tls_ != nullptr) tls_->shutdown();  // close_notify, ahead of the FIN
  // uv_shutdown waits for queued writes, then sends FIN.
  if (start_shutdown() != 0) {
    close();
    return;
  }
  // A client that does not read what is still queued has clientSend to take it (on_deadline).
  if (out_.in_flight() != 0) arm_timer(ms(worker_->config().timeouts.client_send));
}

int ClientConnection::start_shutdown() {
  // Allocated per shutdown (at most twice in a connection's life) rather than kept in every
  // idle connection; libuv calls on_shutdown for it even when the handle closes first.
  auto* req = new uv_shutdown_t;
  req->data = this;
  int rc = uv_shutdown(req, stream(), &ClientConnection::on_shutdown);
  if (rc != 0) delete req;
  return rc;
}

void ClientConnection::on_shutdown(uv_shutdown_t* req, int status) {
  auto* c = static_cast<ClientConnection*>(req->data);
  delete req;
  if (c->phase_ == Phase::Closed) return;
  if (c->phase_ == Phase::Tunnel) {
    c->tunnel_client_shutdown_done(status);
    return;
  }
  if (status != 0) {
    c->close();
    return;
  }
  c->begin_linger();
}

void ClientConnection::begin_linger() {
  // Closing a socket with unread input makes the kernel send RST, which can destroy the
  // response still in flight to the client. Read and discard for a moment first.
  release_upstream(false);
  phase_ = Phase::Lingering;
  paused_for_backpressure_ = false;
  in_.parse_pos = in_.fill;
  resume_reading();
  arm_timer(kLingerMs);
}

// Every request arms the timeout a few times (head, keep-alive) and disarms it in between; the
// worker's TimerHeap keeps that off libuv's timer heap, and keeps a uv_timer_t out of every
// idle connection.
void ClientConnection::arm_timer(uint64_t ms) {
  worker_->client_timers().arm(&deadline_, ms);
}

void ClientConnection::disarm_timer() {
  worker_->client_timers().disarm(&deadline_);
}

void ClientConnection::on_deadline(void* owner) {
  auto* c = static_cast<ClientConnection*>(owner);
  if (c->closing_after_flush_ && c->phase_ != Phase::Lingering && c->phase_ != Phase::Tunnel) {
    c->close();  // the last response is not being taken (close_after_flush)
    return;
  }
  switch (c->phase_) {
    case Phase::ReadingHead:
      c->respond_error(Failure::client_header_timeout, 0);
      return;
    case Phase::Idle:
      if (c->in_.block != nullptr && c->in_.unconsumed() > 0) {
        if (c->ex_ == nullptr) c->take_exchange();  // the 408 is an exchange of its own
        c->respond_error(Failure::client_header_timeout, 0);
      } else {
        c->close();
      }
      return;
    case Phase::Lingering:
      c->close();
      return;
    case Phase::Exchange:
      if (c->ex_->upstream_paused || c->ex_->output_draining) {
        c->abort_exchange(Failure::client_send_timeout, UV_ETIMEDOUT);
      } else if (!c->ex_->request_done && c->ex_->request_has_body) {
        c->check_body_timeout();
      }
      return;
    case Phase::Tunnel:
      c->tunnel_on_timer();
      return;
    default:
      return;
  }
}

void ClientConnection::check_body_timeout() {
  // The deadline moves with every read; only the timer's firing checks it.
  uint64_t timeout = ms(worker_->config().timeouts.client_body);
  uint64_t idle = uv_now(worker_->loop()) - ex_->body_activity_ms;
  if (idle < timeout) {
    arm_timer(timeout - idle);
    return;
  }
  ex_->log_detail = "no request body byte within clientBody";
  // respond_error() closes the server's connection (it saw part of a body) and answers 408,
  // or only ends the client's connection if the response has begun.
  respond_error(Failure::client_body_timeout, 0);
}

void ClientConnection::shutdown_when_idle() {
  close_requested_ = true;
  if (phase_ != Phase::Idle || (in_.block != nullptr && in_.unconsumed() > 0)) return;
  if (served_) {
    close();  // between requests: nothing is lost
    return;
  }
  // Accepted just before the stop (a binary upgrade hands the port over while clients
  // connect): its first request is on the way. It is answered, with Connection: close, if it
  // arrives within a second; a connection that stays silent does not hold up the stop.
  arm_timer(std::min<uint64_t>(kFirstRequestGraceMs, ms(worker_->config().timeouts.client_header)));
}

void ClientConnection::force_close() {
  close();
}

void ClientConnection::close() {
  if (phase_ == Phase::Closed) return;
  if (phase_ != Phase::Idle && phase_ != Phase::Lingering) log_access();
  if (phase_ == Phase::Tunnel) tunnel_closed();
  release_upstream(false);
  phase_ = Phase::Closed;
  out_.clear();
  disarm_timer();
  if (counted_active_) {
    worker_->mutable_metrics().connections_active.sub();
    worker_->mutable_metrics().listeners[listener_->index].connections_active.sub();
  }
  counted_active_ = false;
  if (per_client_counted_) {
    char ip[PeerAddress::kIpText];
    worker_->client_ip_closed(peer_address_.format_ip(ip, sizeof ip));
  }
  per_client_counted_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &ClientConnection::on_close);
}

void ClientConnection::on_close(uv_handle_t* h) {
  auto* c = static_cast<ClientConnection*>(h->data);
  if (--c->open_handles_ != 0) return;
  if (c->ex_ != nullptr) {
    c->worker_->exchanges().give_back(c->ex_);
    c->ex_ = nullptr;
    c->worker_->mutable_metrics().exchanges_active.sub();
  }
  c->in_.release();
  c->worker_->connection_closed(c);
  delete c;
}

// ---------------------------------------------------------------- TLS

bool ClientConnection::start_tls() {
  const Snapshot& snap = worker_->snapshot();
  if (!snap.tls_server) return false;
  tls_ = tls::Session::accept(snap.tls_server, stream(), &ClientConnection::on_write, &out_);
  if (tls_ == nullptr) return false;
  out_.set_filter(tls_.get());
  return true;
}

bool ClientConnection::tls_receive() {
  switch (tls_->decrypt(in_)) {
    case tls::Session::Status::Ok:
      return true;
    case tls::Session::Status::PlainHttp:
      refuse_plain_http();
      return false;
    case tls::Session::Status::Failed:
      if (!tls_->handshake_done()) {
        worker_->mutable_metrics().tls_handshake_failures.add();
        if (log_enabled(LogLevel::Debug)) {
          char peer[PeerAddress::kIpPortText];
          log_line(LogLevel::Debug, "TLS handshake with %s failed: %s",
                   peer_address_.format_ip_port(peer, sizeof peer), tls_->error().c_str());
        }
      }
      break;
    case tls::Session::Status::Closed:
      break;
  }
  // Like the end of the stream on a plain connection.
  if (phase_ == Phase::Idle || phase_ == Phase::ReadingHead || phase_ == Phase::Lingering) {
    close();
  } else {
    abort_exchange(Failure::client_aborted, UV_EPROTO);
  }
  return false;
}

void ClientConnection::tls_tunnel_read(size_t nread) {
  tls_->received(nread);
  bool ended = false;
  tls::Session::Status status = tls_->decrypt_forwarding(in_, [&](const char* data, size_t len) {
    ex_->tunnel_activity_ms = uv_now(worker_->loop());
    tunnel_forward_to_upstream(data, len);
    ended = phase_ != Phase::Tunnel;
    return !ended;
  });
  if (ended) return;
  if (status == tls::Session::Status::Closed) {
    tunnel_client_read(UV_EOF);
  } else if (status != tls::Session::Status::Ok) {
    close();
  }
}

void ClientConnection::refuse_plain_http() {
  static constexpr std::string_view kAnswer =
      "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 65\r\n"
      "Connection: close\r\n\r\n400 Bad Request: a plain HTTP request was sent to an HTTPS "
      "port.\n";
  WorkerMetrics& m = worker_->mutable_metrics();
  m.failures[static_cast<int>(Failure::bad_request)].add();
  m.listeners[listener_->index].failures[static_cast<int>(Failure::bad_request)].add();
  tls_->discard_input();
  out_.set_filter(nullptr);
  uv_buf_t buf = uv_buf_init(const_cast<char*>(kAnswer.data()), kAnswer.size());
  if (uv_try_write(stream(), &buf, 1) != static_cast<int>(kAnswer.size())) {
    close();
    return;
  }
  tls_.reset();  // nothing more is encrypted on this connection
  close_after_flush();
}

const llhttp_settings_t* ClientConnection::parser_settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &ClientConnection::on_message_begin;
    s.on_url = &ClientConnection::on_url;
    s.on_header_field = &ClientConnection::on_header_field;
    s.on_header_value = &ClientConnection::on_header_value;
    s.on_headers_complete = &ClientConnection::on_headers_complete;
    s.on_body = &ClientConnection::on_body;
    s.on_message_complete = &ClientConnection::on_message_complete;
    return s;
  }();
  return &settings;
}

}  // namespace harrow

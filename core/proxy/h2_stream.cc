#include "core/proxy/h2_stream.h"

#include <algorithm>
#include <cstring>

#include "core/base/backpressure.h"
#include "core/base/log.h"
#include "core/proxy/background_fill.h"
#include "core/proxy/h2_connection.h"
#include "core/proxy/phases.h"
#include "core/proxy/upstream_attempt.h"
#include "core/proxy/worker.h"

namespace harrow {

namespace {

nghttp2_nv field(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

H2Stream::H2Stream(H2Connection* connection) : connection_(connection) {}

H2Stream::~H2Stream() {
  for (size_t i = queue_front_; i < queue_.size(); ++i) block_unref(queue_[i].block);
  connection_->queued_sub(queued_bytes_);
}

H2Stream::Busy::~Busy() {
  if (--stream->busy_ == 0 && stream->finished_) delete stream;
}

ClientSide H2Stream::client() const {
  return connection_->client();
}

// ---------------------------------------------------------------- the request

void H2Stream::on_request(const http2::RequestFields& fields, bool end_stream) {
  Busy busy(this);
  Worker& worker = connection_->worker();
  ex_ = worker.exchanges().take();
  ex_->epoch = worker.epoch();
  ex_->snap = ex_->epoch->snapshot.get();
  ex_->decoder.reset(ex_->epoch->request_limits, &ex_->head, this);
  worker.mutable_metrics().exchanges_active.add();
  request_ended_ = end_stream;
  const char* refusal = nullptr;
  Failure failure = Failure::bad_request;
  http2::RequestFields::Result result = http2::RequestFields::Result::Ok;
  std::vector<HeaderField>& head_fields = connection_->request_fields();
  if (fields.too_large()) {
    refusal = "the HTTP/2 header list exceeds maxRequestHeaderBytes";
    failure = Failure::request_header_too_large;
  } else {
    result = fields.http1_fields(!end_stream, head_fields);
  }
  switch (result) {
    case http2::RequestFields::Result::Ok:
      break;
    case http2::RequestFields::Result::MissingAuthority:
      refusal = "neither :authority nor Host";
      failure = Failure::bad_host;
      break;
    case http2::RequestFields::Result::HostDisagrees:
      refusal = ":authority and Host disagree";
      failure = Failure::bad_host;
      break;
    case http2::RequestFields::Result::ConnectRefused:
      refusal = "CONNECT over HTTP/2";
      failure = Failure::method_not_allowed;
      break;
    case http2::RequestFields::Result::BadTe:
      refusal = "TE other than trailers";
      failure = Failure::bad_request;
      break;
  }
  // The common case is judged from the fields themselves; a refusal, or a head the decoder
  // would rather read as text, goes through the text.
  bool rejected = false;
  if (refusal != nullptr ||
      !ex_->decoder.decode_fields(fields.method(), fields.path(), head_fields)) {
    std::string& text = connection_->head_text();
    if (refusal != nullptr) {
      // Logged with what is known of the request: a head of its method and path only.
      text.assign(fields.method().empty() ? "GET" : fields.method())
          .append(" ")
          .append(fields.path().empty() ? "/" : fields.path())
          .append(" HTTP/1.1\r\n\r\n");
    } else {
      fields.write_http1_text(head_fields, text);
    }
    RequestDecoder::Step step =
        ex_->decoder.decode(text.data(), static_cast<uint32_t>(text.size()));
    rejected = step.status == RequestDecoder::Status::Rejected;
  }
  if (!ex_->request_begun) request_begin();
  ex_->request_bytes = fields.list_size();
  if (refusal != nullptr) {
    ex_->log_detail = refusal;
    respond_error(failure, 0);
    return;
  }
  if (rejected) {
    ex_->log_detail = ex_->decoder.rejection().detail;
    respond_error(ex_->decoder.rejection().failure, 0);
    return;
  }
  if (ex_->decoder.head_rejected()) {
    ex_->log_detail = ex_->decoder.rejection().detail;
    respond_error(ex_->decoder.rejection().failure, 0);
    return;
  }
  ex_->request_done = end_stream;
  start_exchange();
}

void H2Stream::request_begin() {
  ex_->begin_request();
  ex_->request_begun = true;
  ex_->response_bytes_at_start = 0;
  ex_->request_started_ms = uv_now(connection_->worker().loop());
}

void H2Stream::request_head() {
  const RequestDecoder& d = ex_->decoder;
  ex_->head_request = d.method() == HTTP_HEAD;
  ex_->client_keep_alive = true;
  ex_->request_chunked = d.chunked();
  ex_->request_has_body = d.has_body();
  ex_->websocket = false;  // Upgrade is a connection-specific field: nghttp2 refuses it
}

void H2Stream::start_exchange() {
  Worker& worker = connection_->worker();
  WorkerMetrics& metrics = worker.mutable_metrics();
  metrics.requests.add();
  metrics.listeners[client().listener->index].requests.add();
  if (!listener_allows_host(*client().listener, request_host(*ex_))) {
    respond_error(Failure::invalid_hostname, 0);
    return;
  }
  run_choice(choose_upstream(*ex_, client(), worker));
}

void H2Stream::run_choice(const UpstreamChoice& choice) {
  switch (choice.kind) {
    case UpstreamChoice::Kind::Server:
      use_server(choice.server);
      return;
    case UpstreamChoice::Kind::Respond:
      respond_local(choice.status, choice.location, choice.body, true);
      return;
    case UpstreamChoice::Kind::Fail:
      respond_error(choice.failure, 0);
      return;
    case UpstreamChoice::Kind::Abort:
      abort_exchange(choice.failure, 0);
      return;
    case UpstreamChoice::Kind::Cached:
      if (choice.revalidate) {
        start_background_revalidation(*ex_, connection_->worker(), client(), choice.server);
      }
      respond_cached();
      return;
    case UpstreamChoice::Kind::Wait:
      wait_for_fill(
          *ex_, connection_->worker(),
          [](void* self) {
            auto* s = static_cast<H2Stream*>(self);
            Busy busy(s);
            s->run_choice(resume_after_cache_wait(*s->ex_, s->client(), s->connection_->worker()));
          },
          this);
      return;
  }
}

void H2Stream::respond_cached() {
  // Written as the HTTP/1 head it stands for, so it takes the same road as a server's.
  IoBlock* block = block_acquire();
  HeadWriter w(block->data, block->capacity);
  std::string_view body = write_cached_response(*ex_, false, true, w);
  bool parsed = !w.overflowed() && !w.unsafe() &&
                connection_->response_head().parse(std::string_view(block->data, w.size()));
  block_unref(block);
  if (!parsed) {
    ex_->log_detail = "the cached response head could not be carried over HTTP/2";
    respond_error(Failure::upstream_invalid_response, 0);
    return;
  }
  ex_->response_head_sent = true;
  ex_->response_done = true;
  ex_->sent_status = cached_response_status(*ex_);
  ex_->status = 0;
  if (!body.empty()) queue_copy(body);
  response_end_queued_ = true;
  submit_head(connection_->response_head(), !body.empty());
}

void H2Stream::use_server(size_t server) {
  if (start_on_server(*ex_, connection_->worker(), server, this)) {
    send_request_head();
  } else {
    connect_upstream(*ex_, connection_->worker(), this);
  }
}

void H2Stream::upstream_connected() {
  Busy busy(this);
  count_connected(*ex_);
  send_request_head();
}

void H2Stream::send_request_head() {
  switch (queue_request_head(*ex_, client())) {
    case RequestHeadResult::Queued:
      break;
    case RequestHeadResult::Unsafe:
      release_upstream(false);
      refuse_unsafe(ex_->rule, "the upstream request line or a request header");
      return;
    case RequestHeadResult::TooLarge:
      release_upstream(false);
      respond_error(Failure::request_header_too_large, 0);
      return;
  }
  head_sent_upstream_ = true;
  if (ex_->request_has_body && !ex_->request_done) {
    ex_->body_activity_ms = uv_now(connection_->worker().loop());
    set_deadline(config::to_ms(ex_->snap->config->timeouts.client_body));
  }
  forward_held_body();
  if (ex_->upstream == nullptr) return;
  if (ex_->upstream->out().flush() != 0) {
    fail_upstream(Failure::upstream_reset, ex_->upstream->out().last_error());
  }
}

void H2Stream::forward_held_body() {
  if (!held_body_.empty()) {
    body_started_ = true;
    ex_->upstream->out().add_copy(held_body_.data(), held_body_.size(), ex_->request_chunked);
    ex_->server_metrics->bytes_to_server.add(held_body_.size());
    std::string().swap(held_body_);
  }
  if (request_ended_ && ex_->request_chunked) ex_->upstream->out().add_last_chunk();
  upstream_write_done();  // gives the window back if the server connection keeps up
}

void H2Stream::on_body(const uint8_t* data, size_t len) {
  Busy busy(this);
  unconsumed_ += len;
  body_bytes_in_ += len;
  if (ex_ == nullptr || ex_->response_done || ex_->failed) {
    // Answered already (or refused): the rest of the body goes nowhere.
    connection_->session().consume(this, unconsumed_);
    unconsumed_ = 0;
    return;
  }
  ex_->request_bytes += len;
  ex_->body_activity_ms = uv_now(connection_->worker().loop());
  const RequestLimits& limits = ex_->epoch->request_limits;
  if (body_bytes_in_ > limits.max_body) {
    ex_->log_detail = "the HTTP/2 request body exceeds maxAllowedContentLength";
    respond_error(Failure::request_body_too_large, 0);
    return;
  }
  std::string_view bytes(reinterpret_cast<const char*>(data), len);
  if (ex_->upstream == nullptr || !head_sent_upstream_) {
    // The window bounds what is held: it is not opened again until the bytes move on.
    held_body_.append(bytes);
    return;
  }
  body_started_ = true;
  ex_->upstream->out().add_copy(bytes.data(), bytes.size(), ex_->request_chunked);
  ex_->server_metrics->bytes_to_server.add(len);
  if (ex_->upstream->out().flush() != 0) {
    fail_upstream(Failure::upstream_reset, ex_->upstream->out().last_error());
    return;
  }
  upstream_write_done();
}

void H2Stream::on_body_end() {
  Busy busy(this);
  request_ended_ = true;
  if (ex_ == nullptr) return;
  ex_->request_done = true;
  if (ex_->response_done || ex_->failed) return;
  if (deadline_ms_ != 0 && !ex_->upstream_paused) set_deadline(0);
  if (ex_->upstream != nullptr && head_sent_upstream_) {
    if (ex_->request_chunked) ex_->upstream->out().add_last_chunk();
    if (ex_->upstream->out().flush() != 0) {
      fail_upstream(Failure::upstream_reset, ex_->upstream->out().last_error());
    }
  }
}

void H2Stream::upstream_write_done() {
  Busy busy(this);
  if (unconsumed_ == 0 || ex_ == nullptr || ex_->upstream == nullptr) return;
  if (ex_->upstream->out().memory() > kWriteLowWater) return;
  connection_->session().consume(this, unconsumed_ - held_body_.size());
  unconsumed_ = held_body_.size();
  connection_->send_now();  // the WINDOW_UPDATE
}

// ---------------------------------------------------------------- the response

void H2Stream::upstream_head(const MessageHead& head, int status) {
  Busy busy(this);
  if (status < 200) return;  // interim responses are not forwarded over HTTP/2
  IoBlock* block = block_acquire();
  HeadWriter writer(block->data, block->capacity);
  std::vector<HeaderField>& written = connection_->written_fields();
  written.clear();
  writer.keep_fields(&written);
  bool close = false;
  ResponseHeadResult result =
      build_client_response(*ex_, client(), connection_->worker(), head, status, close, writer);
  switch (result.kind) {
    case ResponseHeadResult::Kind::Written:
      break;
    case ResponseHeadResult::Kind::Refused:
      block_unref(block);
      ex_->log_detail = result.detail;
      fail_upstream(Failure::upstream_invalid_response, 0);
      return;
    case ResponseHeadResult::Kind::MatchError:
      block_unref(block);
      release_upstream(false);
      respond_error(Failure::rule_match_error, 0);
      return;
    case ResponseHeadResult::Kind::UnsafeRule:
      block_unref(block);
      release_upstream(false);
      refuse_unsafe(result.rule, "a response header");
      return;
  }
  // The fields as written and checked, straight into HTTP/2 fields (the views are into the
  // block, which nghttp2 copies from when the head is submitted).
  http2::ResponseHead& fields = connection_->response_head();
  fields.reset(status);
  for (const HeaderField& f : written) {
    fields.add(const_cast<char*>(f.name.data()), f.name.size(), f.value);
  }
  if (!result.cached_body.empty()) queue_copy(result.cached_body);
  if (result.status != 0) status = result.status;
  ex_->status = status;
  ex_->sent_status = status;
  if (result.no_body) response_end_queued_ = true;
  submit_head(fields, !result.no_body);
  block_unref(block);
}

bool H2Stream::submit_head(const http2::ResponseHead& head, bool has_body) {
  connection_->nv().clear();
  connection_->nv().push_back(field(":status", std::string_view(head.status_text, 3)));
  body_bytes_out_ += 9 + 3;
  for (const http2::ResponseField& f : head.fields()) {
    connection_->nv().push_back(field(f.name, f.value));
    body_bytes_out_ += f.name.size() + f.value.size() + 4;
  }
  int rc = connection_->session().submit_response(this, connection_->nv(), has_body);
  connection_->send_now();
  return rc == 0;
}

void H2Stream::upstream_body(IoBlock* block, const char* data, size_t len) {
  Busy busy(this);
  if (ex_->cache != nullptr) cache_fill_body(*ex_, std::string_view(data, len));
  ex_->server_metrics->bytes_from_server.add(len);
  if (response_end_queued_) return;  // HEAD, 204, 304: no body goes to the client
  if (ex_->html != nullptr || ex_->body_text != nullptr) {
    std::string_view piece = rewrite_response_body(*ex_, client(), connection_->worker(),
                                                   std::string_view(data, len), false);
    if (ex_->html_match_failed) {
      release_upstream(false);
      abort_exchange(Failure::rule_match_error, 0);
      return;
    }
    queue_copy(piece);
    return;
  }
  queue_body(block, data, len);
}

void H2Stream::upstream_trailers(std::span<const http2::Field> fields) {
  for (const http2::Field& f : fields) {
    if (http2::connection_specific(f.name) || f.name == "content-length") continue;
    trailers_.push_back(f);
  }
}

void H2Stream::queue_body(IoBlock* block, const char* data, size_t len) {
  if (len == 0) return;
  block_ref(block);
  queue_.push_back({block, data, len});
  queued_bytes_ += len;
  connection_->queued_add(len);
}

void H2Stream::queue_copy(std::string_view bytes) {
  while (!bytes.empty()) {
    IoBlock* block = block_acquire();
    size_t n = std::min<size_t>(bytes.size(), block->capacity);
    std::memcpy(block->data, bytes.data(), n);
    queue_body(block, block->data, n);
    block_unref(block);
    bytes.remove_prefix(n);
  }
}

void H2Stream::body_ready() {
  if (deferred_) {
    deferred_ = false;
    connection_->session().resume_body(this);
  }
}

void H2Stream::upstream_read_end() {
  Busy busy(this);
  if (ex_ == nullptr) return;
  body_ready();
  connection_->send_now();
  if (ex_->upstream != nullptr && !ex_->upstream_paused &&
      (queued_bytes_ > kStreamHighWater || connection_->queued() > kConnectionQueueHighWater)) {
    ex_->upstream->pause_reading();
    ex_->upstream_paused = true;
    // The client must open its window within clientSend (slow-read attack).
    set_deadline(config::to_ms(ex_->snap->config->timeouts.client_send));
  }
}

void H2Stream::upstream_complete(bool reusable) {
  Busy busy(this);
  if (ex_->cache != nullptr) cache_fill_complete(*ex_);
  ex_->server_metrics->response_time.observe((uv_hrtime() - ex_->exchange_started_ns) / 1000);
  if (ex_->html != nullptr || ex_->body_text != nullptr) {
    std::string_view piece = rewrite_response_body(*ex_, client(), connection_->worker(), {}, true);
    if (!ex_->html_match_failed) queue_copy(piece);
    ex_->html.reset();
    ex_->body_text.reset();
    if (ex_->html_match_failed) {
      release_upstream(false);
      abort_exchange(Failure::rule_match_error, 0);
      return;
    }
  }
  ex_->response_done = true;
  response_end_queued_ = true;
  const config::FarmConfig& farm = *ex_->snap->farms[ex_->farm].config;
  release_upstream(reusable && ex_->request_done && farm.protocol.keep_alive &&
                   !connection_->worker().stopping());
  body_ready();
  connection_->send_now();
}

http2::SessionEvents::Pull H2Stream::pull(uint8_t* buf, size_t len) {
  Busy busy(this);
  http2::SessionEvents::Pull result;
  while (result.bytes < len && queue_front_ < queue_.size()) {
    Piece& piece = queue_[queue_front_];
    size_t n = std::min(piece.len, len - result.bytes);
    std::memcpy(buf + result.bytes, piece.data, n);
    result.bytes += n;
    piece.data += n;
    piece.len -= n;
    queued_bytes_ -= n;
    if (piece.len == 0) {
      block_unref(piece.block);
      ++queue_front_;
    }
  }
  if (queue_front_ == queue_.size()) {
    queue_.clear();
    queue_front_ = 0;
  }
  body_bytes_out_ += result.bytes;
  if (queued_bytes_ == 0 && response_end_queued_) {
    result.end = true;
    if (!trailers_.empty()) {
      // The trailer section ends the stream in its own HEADERS frame (gRPC's grpc-status).
      result.trailers = true;
      std::vector<nghttp2_nv>& nv = connection_->nv();
      nv.clear();
      for (const http2::Field& f : trailers_) nv.push_back(field(f.name, f.value));
      connection_->session().submit_trailers(this, nv);
      trailers_.clear();
    }
  } else if (result.bytes == 0) {
    deferred_ = true;
  }
  connection_->queued_sub(result.bytes);  // may resume this stream and others
  resume_upstream_if_drained();
  return result;
}

void H2Stream::resume_upstream_if_drained() {
  if (ex_ == nullptr || !ex_->upstream_paused || ex_->upstream == nullptr) return;
  if (queued_bytes_ >= kStreamLowWater || connection_->queued() >= kConnectionQueueLowWater) {
    return;
  }
  ex_->upstream_paused = false;
  set_deadline(0);
  ex_->upstream->resume_reading();
}

// ---------------------------------------------------------------- failures

void H2Stream::upstream_failed(Failure failure, int uv_status) {
  Busy busy(this);
  ex_->upstream = nullptr;  // it closed itself
  after_upstream_failure(failure, uv_status);
}

void H2Stream::fail_upstream(Failure failure, int uv_status) {
  UpstreamConnection* up = ex_->upstream;
  ex_->upstream = nullptr;
  if (up != nullptr) up->close();
  after_upstream_failure(failure, uv_status);
}

void H2Stream::after_upstream_failure(Failure failure, int uv_status) {
  if (closed_) return;
  head_sent_upstream_ = false;
  RetryPlan plan = plan_retry(*ex_, connection_->worker(), failure, !body_started_);
  switch (start_retry(*ex_, connection_->worker(), client(), plan, failure, uv_status, this)) {
    case RetryStep::Pooled:
      send_request_head();
      return;
    case RetryStep::Connecting:
      return;
    case RetryStep::Answer:
      break;
  }
  if (failure == Failure::upstream_timeout && !ex_->request_done) {
    failure = Failure::client_body_timeout;
  }
  respond_error(failure, uv_status, plan.decision.health_failure);
}

void H2Stream::release_upstream(bool reusable) {
  if (ex_ == nullptr) return;
  harrow::release_upstream(*ex_, reusable, body_bytes_out_);
}

void H2Stream::respond_error(Failure failure, int uv_status, bool health_failure) {
  log_failure(*ex_, client(), failure, uv_status);
  ex_->failed = true;
  ex_->failure = failure;
  ex_->failure_uv_status = uv_status;
  count_answered_failure(*ex_, connection_->worker(), client(), failure, uv_status, health_failure);
  release_upstream(false);
  if (!ex_->response_head_sent && cache_stale_on_error(*ex_, 0)) {
    respond_cached();  // stale-if-error
    return;
  }
  int status = failure_status(failure);
  if (status == 0 || ex_->response_head_sent) {
    connection_->session().reset(this, NGHTTP2_INTERNAL_ERROR);
    connection_->send_now();
    return;
  }
  char body[160];
  respond_local(status, {}, failure_body(failure, body));
}

void H2Stream::refuse_unsafe(std::string_view rule, const char* where) {
  ex_->log_detail = unsafe_rule_detail(*ex_, rule, where);
  respond_error(Failure::unsafe_rewrite, 0);
}

void H2Stream::respond_local(int status, std::string_view location, std::string_view body,
                             bool from_rule) {
  release_upstream(false);
  if (!location.empty() && !HeadWriter::safe_value(location)) {
    refuse_unsafe(from_rule ? ex_->rule : std::string_view{}, "the Location");
    return;
  }
  // Written as the HTTP/1 head it stands for, so it takes the same road as a server's.
  IoBlock* block = block_acquire();
  HeadWriter w(block->data, block->capacity);
  w << "HTTP/1.1 " << static_cast<uint64_t>(status) << " X\r\n";
  if (!location.empty()) w.field("Location", location);
  w << "Content-Type: text/plain\r\nContent-Length: " << static_cast<uint64_t>(body.size())
    << "\r\n\r\n";
  bool parsed = !w.overflowed() &&
                connection_->response_head().parse(std::string_view(block->data, w.size()));
  block_unref(block);
  if (!parsed) body = {};
  ex_->response_head_sent = true;
  ex_->response_done = true;
  ex_->sent_status = status;
  ex_->status = (ex_->server_metrics != nullptr && ex_->status == 0) ? status : 0;
  bool has_body = !ex_->head_request && !body.empty();
  if (has_body) queue_copy(body);
  response_end_queued_ = true;
  if (!parsed) {
    http2::ResponseHead fallback;
    fallback.parse("HTTP/1.1 500 X\r\ncontent-length: 0\r\n\r\n");
    connection_->response_head() = std::move(fallback);
    has_body = false;
  }
  submit_head(connection_->response_head(), has_body);
}

void H2Stream::abort_exchange(Failure failure, int uv_status) {
  log_failure(*ex_, client(), failure, uv_status);
  ex_->failed = true;
  ex_->failure = failure;
  ex_->failure_uv_status = uv_status;
  count_answered_failure(*ex_, connection_->worker(), client(), failure, uv_status, false);
  release_upstream(false);
  connection_->session().reset(this, NGHTTP2_INTERNAL_ERROR);
  connection_->send_now();
}

// ---------------------------------------------------------------- timeouts and the end

void H2Stream::set_deadline(uint64_t ms) {
  deadline_ms_ = ms == 0 ? 0 : uv_now(connection_->worker().loop()) + ms;
  connection_->reschedule();
}

void H2Stream::check_deadline(uint64_t now_ms) {
  if (deadline_ms_ == 0 || now_ms < deadline_ms_ || ex_ == nullptr || closed_) return;
  Busy busy(this);
  deadline_ms_ = 0;
  if (ex_->upstream_paused) {
    abort_exchange(Failure::client_send_timeout, UV_ETIMEDOUT);
    return;
  }
  if (!ex_->request_done && ex_->request_has_body) {
    uint64_t timeout = config::to_ms(ex_->snap->config->timeouts.client_body);
    if (now_ms - ex_->body_activity_ms < timeout) {
      set_deadline(timeout - (now_ms - ex_->body_activity_ms));
      return;
    }
    ex_->log_detail = "no request body byte within clientBody";
    respond_error(Failure::client_body_timeout, 0);
  }
}

void H2Stream::abort_now() {
  Busy busy(this);
  if (ex_ != nullptr && !ex_->response_done && !ex_->failed && ex_->request_begun) {
    log_failure(*ex_, client(), Failure::client_aborted, 0);
    ex_->failed = true;
    ex_->failure = Failure::client_aborted;
    count_answered_failure(*ex_, connection_->worker(), client(), Failure::client_aborted, 0,
                           false);
  }
  closed_ = true;
  finish();
}

void H2Stream::on_closed(uint32_t error_code) {
  Busy busy(this);
  if (ex_ != nullptr && !ex_->failed && (error_code != 0 || !ex_->response_done)) {
    // The client reset the stream (or it ended) before the response was whole.
    log_failure(*ex_, client(), Failure::client_aborted, 0);
    ex_->failed = true;
    ex_->failure = Failure::client_aborted;
    count_answered_failure(*ex_, connection_->worker(), client(), Failure::client_aborted, 0,
                           false);
  }
  closed_ = true;
  finish();
}

void H2Stream::finish() {
  if (finished_) return;
  finished_ = true;
  deadline_ms_ = 0;
  if (ex_ != nullptr) {
    Worker& worker = connection_->worker();
    // A response being stored goes on into the cache without its client (background_fill.h).
    detach_cache_fill(*ex_, body_bytes_out_);
    release_upstream(false);
    log_exchange(*ex_, client(), worker, body_bytes_out_);
    if (ex_->server_metrics != nullptr && ex_->status != 0) {
      ex_->server_metrics->responses_by_class[ex_->status / 100 % 6].add();
    }
    worker.exchanges().give_back(ex_);
    ex_ = nullptr;
    worker.mutable_metrics().exchanges_active.sub();
  }
  // Freed by the Busy guard of the callback this runs in (every caller holds one).
}

}  // namespace harrow

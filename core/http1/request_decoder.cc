#include "core/http1/request_decoder.h"

namespace harrow {

void RequestDecoder::reset(const RequestLimits& limits, MessageHead* head,
                           RequestDecoderEvents* events) {
  llhttp_init(&parser_, HTTP_REQUEST, settings());
  parser_.data = this;
  framer_.reset(limits);
  limits_ = limits;
  head_ = head;
  events_ = events;
  rejection_ = {};
  framer_ahead_ = 0;
  paused_ = owes_callbacks_ = reading_head_ = head_too_large_ = head_rejected_ = false;
  keep_alive_ = true;
  chunked_ = has_body_ = websocket_ = upgrade_ = has_length_ = false;
  content_length_ = 0;
  method_ = HTTP_GET;
  http_major_ = http_minor_ = 1;
}

RequestDecoder::Step RequestDecoder::decode(const char* data, uint32_t len) {
  uint32_t consumed = 0;
  while (!paused_) {
    const char* begin = data + consumed;
    uint32_t available = len - consumed;
    // llhttp only ever sees bytes the framer has vouched for.
    if (available > framer_ahead_ && !framer_.failed()) {
      framer_ahead_ +=
          static_cast<uint32_t>(framer_.scan(begin + framer_ahead_, available - framer_ahead_));
    }
    if (framer_.failed()) {
      // Refused before llhttp sees the fault; nothing after it is read.
      rejection_ = framer_.rejection();
      return {Status::Rejected, consumed};
    }
    uint32_t vouched = framer_ahead_ - framer_.held();
    if (vouched == 0 && !owes_callbacks_) {
      if (available > 0 && (framer_.head_done() || framer_.message_done())) {
        // The framer saw a head or message end where llhttp did not stop: never guess.
        rejection_ = {Failure::bad_framing, "parsers disagree on the message end"};
        return {Status::Rejected, consumed};
      }
      return {Status::NeedInput, consumed};
    }
    owes_callbacks_ = false;
    llhttp_errno_t rc = llhttp_execute(&parser_, begin, vouched);
    uint32_t used = vouched;
    if (rc == HPE_PAUSED) {
      used = static_cast<uint32_t>(llhttp_get_error_pos(&parser_) - begin);
    } else if (rc != HPE_OK) {
      // A callback that refused set the reason; else llhttp's own error names it.
      if (rejection_.detail == nullptr) {
        rejection_ = {
            head_too_large_ ? Failure::request_header_too_large : failure_for_parse_error(rc),
            llhttp_get_error_reason(&parser_)};
      }
      return {Status::Rejected, consumed};
    }
    consumed += used;
    framer_ahead_ -= used;
    if (rc == HPE_PAUSED) paused_ = true;
  }
  return {Status::Paused, consumed};
}

void RequestDecoder::resume() {
  if (!paused_) return;
  llhttp_resume(&parser_);
  paused_ = false;
  owes_callbacks_ = true;
}

Failure RequestDecoder::failure_for_parse_error(llhttp_errno_t rc) {
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

int RequestDecoder::on_message_begin(llhttp_t* p) {
  RequestDecoder* d = from(p);
  d->head_->reset(d->limits_.max_request_line + d->limits_.max_header_bytes);
  d->reading_head_ = true;
  d->head_too_large_ = d->head_rejected_ = false;
  d->rejection_ = {};
  d->events_->request_begin();
  return 0;
}

int RequestDecoder::on_url(llhttp_t* p, const char* at, size_t len) {
  RequestDecoder* d = from(p);
  if (d->head_->on_target(at, len)) return 0;
  d->head_too_large_ = true;
  return -1;
}

int RequestDecoder::on_header_field(llhttp_t* p, const char* at, size_t len) {
  RequestDecoder* d = from(p);
  // Trailer fields of a chunked body arrive through the same callbacks: they are dropped (the
  // body is re-framed without them), and must not grow the finished head under its views.
  if (!d->reading_head_) return 0;
  if (d->head_->on_field(at, len)) return 0;
  d->head_too_large_ = true;
  return -1;
}

int RequestDecoder::on_header_value(llhttp_t* p, const char* at, size_t len) {
  RequestDecoder* d = from(p);
  if (!d->reading_head_) return 0;  // a trailer field
  if (d->head_->on_value(at, len)) return 0;
  d->head_too_large_ = true;
  return -1;
}

int RequestDecoder::on_headers_complete(llhttp_t* p) {
  RequestDecoder* d = from(p);
  d->head_->finish();
  d->reading_head_ = false;
  d->method_ = static_cast<llhttp_method_t>(p->method);
  d->http_major_ = p->http_major;
  d->http_minor_ = p->http_minor;
  d->keep_alive_ = llhttp_should_keep_alive(p) != 0;
  d->chunked_ = (p->flags & F_CHUNKED) != 0;
  d->has_length_ = (p->flags & F_CONTENT_LENGTH) != 0;
  d->content_length_ = p->content_length;
  d->framer_.begin_body(d->chunked_, d->has_length_ ? d->content_length_ : 0);
  d->judge_head();
  d->events_->request_head();
  // Pause: the body must not be parsed before there is somewhere to send it.
  return HPE_PAUSED;
}

void RequestDecoder::judge_head() {
  has_body_ = chunked_ || content_length_ > 0;
  // An upgrade request ends HTTP on this connection whatever the answer: a 101 makes it a
  // tunnel, anything else is answered and the connection closed rather than read on (the client
  // may already be sending the new protocol). Only WebSocket is forwarded as an upgrade (RFC
  // 6455 §4.1: a GET over HTTP/1.1 without a body; a body would leave the boundary between it
  // and the new protocol to guesswork); another protocol (h2c, …) loses its Upgrade header like
  // any hop-by-hop field, as with nginx and HAProxy, and the server answers the plain request.
  upgrade_ = head_->has("upgrade");
  websocket_ =
      upgrade_ && method() == HTTP_GET && http11() && !has_body_ && requests_websocket(*head_);
  ParsedRequest req;
  req.method = method_name();
  req.head = head_;
  req.http_major = http_major_;
  req.http_minor = http_minor_;
  req.chunked = chunked_;
  req.has_content_length = has_length_;
  req.content_length = content_length_;
  head_rejected_ = !check_request_head(req, limits_, rejection_);
}

namespace {

// The methods decode_fields() takes itself; any other goes through llhttp.
bool common_method(std::string_view name, llhttp_method_t& method) {
  static constexpr struct {
    std::string_view name;
    llhttp_method_t method;
  } kCommon[] = {{"GET", HTTP_GET},        {"POST", HTTP_POST},     {"HEAD", HTTP_HEAD},
                 {"PUT", HTTP_PUT},        {"DELETE", HTTP_DELETE}, {"PATCH", HTTP_PATCH},
                 {"OPTIONS", HTTP_OPTIONS}};
  for (const auto& m : kCommon) {
    if (m.name == name) {
      method = m.method;
      return true;
    }
  }
  return false;
}

bool ows(char c) {
  return c == ' ' || c == '\t';
}

// A Content-Length value llhttp reads as the number it plainly is: 1 to 15 digits.
bool plain_length(std::string_view v, uint64_t& n) {
  if (v.empty() || v.size() > 15) return false;
  n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return true;
}

}  // namespace

bool RequestDecoder::decode_fields(std::string_view method, std::string_view target,
                                   std::span<const HeaderField> fields) {
  // The request line: "METHOD SP target SP HTTP/1.1 CR" as the framer counts it.
  llhttp_method_t method_id;
  if (!common_method(method, method_id) || target.empty() || target[0] != '/' ||
      !is_request_target(target) || method.size() + target.size() + 11 > limits_.max_request_line) {
    return false;
  }
  if (fields.size() > limits_.max_header_count) return false;
  uint64_t section = 2;  // the empty line
  uint64_t length = 0;
  bool has_length = false;
  bool chunked = false;
  for (const HeaderField& f : fields) {
    section += f.name.size() + f.value.size() + 4;
    if (!is_token(f.name) || !all_field_value_bytes(f.value.data(), f.value.size()) ||
        (!f.value.empty() && (ows(f.value.front()) || ows(f.value.back())))) {
      return false;
    }
    switch (classify_field(f.name)) {
      case FieldKind::content_length:
        if (has_length || !plain_length(f.value, length)) return false;
        has_length = true;
        break;
      case FieldKind::transfer_encoding:
        if (chunked || f.value != "chunked") return false;
        chunked = true;
        break;
      case FieldKind::connection:
      case FieldKind::upgrade:
      case FieldKind::keep_alive:
      case FieldKind::proxy_connection:
        return false;
      default:
        break;
    }
  }
  if (section > limits_.max_header_bytes || (chunked && has_length)) return false;

  // The head decode() would have made of the same text.
  head_->reset(limits_.max_request_line + limits_.max_header_bytes);
  reading_head_ = true;
  head_too_large_ = head_rejected_ = false;
  rejection_ = {};
  events_->request_begin();
  head_->on_target(target.data(), target.size());
  for (const HeaderField& f : fields) {
    head_->on_field(f.name.data(), f.name.size());
    head_->on_value(f.value.data(), f.value.size());
  }
  head_->finish();
  reading_head_ = false;
  method_ = method_id;
  http_major_ = 1;
  http_minor_ = 1;
  keep_alive_ = true;  // HTTP/1.1 without a Connection field
  chunked_ = chunked;
  has_length_ = has_length;
  content_length_ = has_length ? length : 0;
  judge_head();
  events_->request_head();
  paused_ = true;
  return true;
}

int RequestDecoder::on_body(llhttp_t* p, const char* at, size_t len) {
  from(p)->events_->request_body(at, len);
  return 0;
}

int RequestDecoder::on_message_complete(llhttp_t* p) {
  RequestDecoder* d = from(p);
  if (!d->framer_.message_done()) {
    d->rejection_ = {Failure::bad_framing, "parsers disagree on the message end"};
    return -1;
  }
  d->framer_.next_message();
  d->events_->request_end();
  // Pause: a pipelined request waits until this one's response is complete.
  return HPE_PAUSED;
}

const llhttp_settings_t* RequestDecoder::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t out;
    llhttp_settings_init(&out);
    out.on_message_begin = &RequestDecoder::on_message_begin;
    out.on_url = &RequestDecoder::on_url;
    out.on_header_field = &RequestDecoder::on_header_field;
    out.on_header_value = &RequestDecoder::on_header_value;
    out.on_headers_complete = &RequestDecoder::on_headers_complete;
    out.on_body = &RequestDecoder::on_body;
    out.on_message_complete = &RequestDecoder::on_message_complete;
    return out;
  }();
  return &s;
}

}  // namespace harrow

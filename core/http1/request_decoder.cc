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
  chunked_ = has_body_ = websocket_ = upgrade_ = false;
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
  d->judge_head();
  d->events_->request_head();
  // Pause: the body must not be parsed before there is somewhere to send it.
  return HPE_PAUSED;
}

void RequestDecoder::judge_head() {
  keep_alive_ = llhttp_should_keep_alive(&parser_) != 0;
  chunked_ = (parser_.flags & F_CHUNKED) != 0;
  has_body_ = chunked_ || parser_.content_length > 0;
  bool has_length = (parser_.flags & F_CONTENT_LENGTH) != 0;
  framer_.begin_body(chunked_, has_length ? parser_.content_length : 0);
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
  req.http_major = parser_.http_major;
  req.http_minor = parser_.http_minor;
  req.chunked = chunked_;
  req.has_content_length = has_length;
  req.content_length = parser_.content_length;
  head_rejected_ = !check_request_head(req, limits_, rejection_);
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

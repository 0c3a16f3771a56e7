#include "core/http2/upstream_message.h"

#include <cstdio>

#include "core/base/ascii.h"
#include "core/http1/http_head.h"

namespace harrow::http2 {
namespace {

RequestTranslator* from_parser(llhttp_t* p) {
  return static_cast<RequestTranslator*>(p->data);
}

bool safe_text(std::string_view text) {
  for (char c : text) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

// Whether the comma-separated `list` names `token` (case-insensitively).
bool list_has(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

RequestTranslator::RequestTranslator(std::string_view scheme) : scheme_(scheme) {
  llhttp_settings_init(&settings_);
  settings_.on_url = &RequestTranslator::on_url;
  settings_.on_header_field = &RequestTranslator::on_header_field;
  settings_.on_header_value = &RequestTranslator::on_header_value;
  settings_.on_headers_complete = &RequestTranslator::on_headers_complete;
  settings_.on_body = &RequestTranslator::on_body;
  settings_.on_message_complete = &RequestTranslator::on_message_complete;
  llhttp_init(&parser_, HTTP_REQUEST, &settings_);
  parser_.data = this;
}

bool RequestTranslator::feed(const char* data, size_t len, RequestSink& sink) {
  if (error_ != nullptr) return false;
  if (len == 0) return true;
  if (done_) {
    error_ = "bytes after the end of the request";
    return false;
  }
  sink_ = &sink;
  llhttp_errno_t rc = llhttp_execute(&parser_, data, len);
  sink_ = nullptr;
  if (rc == HPE_OK) return true;
  if (rc == HPE_PAUSED && done_) {
    size_t used = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
    if (used == len) return true;
    error_ = "bytes after the end of the request";
    return false;
  }
  error_ = llhttp_get_error_reason(&parser_);
  if (error_ == nullptr) error_ = "not an HTTP/1.1 request";
  return false;
}

int RequestTranslator::on_url(llhttp_t* p, const char* at, size_t len) {
  from_parser(p)->target_.append(at, len);
  return 0;
}

int RequestTranslator::on_header_field(llhttp_t* p, const char* at, size_t len) {
  auto* self = from_parser(p);
  // Fields after the body are a chunked request's trailer section: not carried.
  if (self->head_done_) return 0;
  if (self->in_value_ || self->raw_.empty()) {
    self->raw_.emplace_back();
    self->in_value_ = false;
  }
  for (size_t i = 0; i < len; ++i) self->raw_.back().name.push_back(ascii_lower(at[i]));
  return 0;
}

int RequestTranslator::on_header_value(llhttp_t* p, const char* at, size_t len) {
  auto* self = from_parser(p);
  self->in_value_ = true;
  if (!self->raw_.empty() && !self->head_done_) self->raw_.back().value.append(at, len);
  return 0;
}

int RequestTranslator::on_headers_complete(llhttp_t* p) {
  auto* self = from_parser(p);
  bool has_body =
      (p->flags & F_CHUNKED) != 0 || ((p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > 0);
  self->finish_head(has_body);
  return 0;
}

int RequestTranslator::on_body(llhttp_t* p, const char* at, size_t len) {
  from_parser(p)->sink_->request_body(at, len);
  return 0;
}

int RequestTranslator::on_message_complete(llhttp_t* p) {
  auto* self = from_parser(p);
  self->done_ = true;
  if (self->has_body_) self->sink_->request_end();
  return HPE_PAUSED;
}

void RequestTranslator::finish_head(bool has_body) {
  head_done_ = true;
  auto method = static_cast<llhttp_method_t>(parser_.method);
  std::string_view connection;
  std::string_view host;
  for (const Field& f : raw_) {
    if (f.name == "connection") connection = f.value;
    if (f.name == "host" && host.empty()) host = f.value;
  }
  fields_.clear();
  fields_.push_back({":method", llhttp_method_name(method)});
  fields_.push_back({":scheme", scheme_});
  fields_.push_back({":authority", std::string(host)});
  fields_.push_back({":path", target_});
  for (const Field& f : raw_) {
    if (f.name == "host" || connection_specific(f.name)) continue;
    // TE crosses only as "trailers" (RFC 9113 §8.2.2); fields the Connection field names are
    // about this hop too.
    if (f.name == "te" && !iequals(f.value, "trailers")) continue;
    if (!connection.empty() && list_has(connection, f.name)) continue;
    fields_.push_back(f);
  }
  has_body_ = has_body;
  sink_->request_head(fields_, has_body);
}

std::string response_head_bytes(int status, std::span<const Field> fields, bool end_stream,
                                bool head_request, bool& chunked) {
  std::string out;
  out.reserve(256);
  std::string_view reason = default_reason(status);
  if (reason.empty()) reason = "Unknown";
  char line[64];
  int n = std::snprintf(line, sizeof line, "HTTP/1.1 %03d ", status);
  out.append(line, static_cast<size_t>(n));
  out.append(reason);
  out.append("\r\n");
  bool has_length = false;
  for (const Field& f : fields) {
    if (f.name.empty() || f.name.front() == ':' || connection_specific(f.name)) continue;
    if (!safe_text(f.name) || !safe_text(f.value) || f.name.find(':') != std::string::npos) {
      continue;
    }
    if (f.name == "content-length") has_length = true;
    out.append(f.name);
    out.append(": ");
    out.append(f.value);
    out.append("\r\n");
  }
  bool bodiless_status = status < 200 || status == 204 || status == 304;
  chunked = false;
  if (!has_length && !bodiless_status && !head_request) {
    if (end_stream) {
      out.append("content-length: 0\r\n");
    } else {
      out.append("transfer-encoding: chunked\r\n");
      chunked = true;
    }
  }
  out.append("\r\n");
  return out;
}

void append_chunk(std::string& out, const char* data, size_t len) {
  if (len == 0) return;
  char line[24];
  int n = std::snprintf(line, sizeof line, "%zx\r\n", len);
  out.append(line, static_cast<size_t>(n));
  out.append(data, len);
  out.append("\r\n");
}

}  // namespace harrow::http2

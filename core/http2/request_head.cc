#include "core/http2/request_head.h"

#include "core/base/ascii.h"

namespace harrow::http2 {

void RequestFields::reset(uint32_t limit) {
  fields_.clear();
  cookie_.clear();
  host_.clear();
  method_.clear();
  path_.clear();
  scheme_.clear();
  authority_.clear();
  te_.clear();
  list_size_ = 0;
  limit_ = limit;
  too_large_ = false;
  has_host_ = false;
  has_te_ = false;
  has_content_length_ = false;
}

void RequestFields::add(std::string_view name, std::string_view value) {
  list_size_ += name.size() + value.size() + 32;
  if (too_large_) return;
  if (list_size_ > limit_) {
    too_large_ = true;
    // Nothing of an oversized list is used: let the memory go now rather than at the end.
    std::string().swap(fields_);
    std::string().swap(cookie_);
    return;
  }
  if (!name.empty() && name[0] == ':') {
    if (name == ":method") {
      method_.assign(value);
    } else if (name == ":path") {
      path_.assign(value);
    } else if (name == ":scheme") {
      scheme_.assign(value);
    } else if (name == ":authority") {
      authority_.assign(value);
    }
    return;  // nghttp2 refuses any other pseudo-header field
  }
  if (name == "cookie") {
    if (!cookie_.empty()) cookie_.append("; ");
    cookie_.append(value);
    return;
  }
  if (name == "host") {
    // A second Host goes to the decoder as it came, where a repeated Host is refused.
    if (has_host_) {
      fields_.append("host: ").append(value).append("\r\n");
    } else {
      host_.assign(value);
    }
    has_host_ = true;
    return;
  }
  if (name == "te") {
    has_te_ = true;
    te_.assign(value);
  }
  if (name == "content-length") has_content_length_ = true;
  fields_.append(name).append(": ").append(value).append("\r\n");
}

RequestFields::Result RequestFields::write_http1(bool body_follows, std::string& out) const {
  if (method_ == "CONNECT") return Result::ConnectRefused;
  // RFC 9113 §8.2.2: TE may only say "trailers" (nghttp2 holds to it too; checked here so the
  // rule stands on its own).
  if (has_te_ && !iequals(te_, "trailers")) return Result::BadTe;
  std::string_view host = authority_;
  if (authority_.empty()) {
    if (!has_host_) return Result::MissingAuthority;
    host = host_;
  } else if (has_host_ && !iequals(host_, authority_)) {
    // RFC 9113 §8.3.1: they must agree; a disagreement is how a request would be routed by
    // one name and served by another.
    return Result::HostDisagrees;
  }
  out.clear();
  out.reserve(method_.size() + path_.size() + host.size() + fields_.size() + cookie_.size() + 64);
  out.append(method_).append(" ").append(path_).append(" HTTP/1.1\r\n");
  out.append("host: ").append(host).append("\r\n");
  out.append(fields_);
  if (!cookie_.empty()) out.append("cookie: ").append(cookie_).append("\r\n");
  if (body_follows && !has_content_length_) out.append("transfer-encoding: chunked\r\n");
  out.append("\r\n");
  return Result::Ok;
}

}  // namespace harrow::http2

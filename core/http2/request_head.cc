#include "core/http2/request_head.h"

#include "core/base/ascii.h"

namespace harrow::http2 {

void RequestFields::reset(uint32_t limit) {
  storage_.clear();
  entries_.clear();
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
    std::string().swap(storage_);
    std::vector<Entry>().swap(entries_);
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
      keep(name, value);
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
  keep(name, value);
}

void RequestFields::keep(std::string_view name, std::string_view value) {
  auto at = static_cast<uint32_t>(storage_.size());
  storage_.append(name).append(value);
  entries_.push_back({at, static_cast<uint32_t>(name.size()),
                      at + static_cast<uint32_t>(name.size()),
                      static_cast<uint32_t>(value.size())});
}

RequestFields::Result RequestFields::http1_fields(bool body_follows,
                                                  std::vector<HeaderField>& out) const {
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
  out.push_back({"host", host});
  for (const Entry& e : entries_) {
    out.push_back({std::string_view(storage_).substr(e.name_at, e.name_len),
                   std::string_view(storage_).substr(e.value_at, e.value_len)});
  }
  if (!cookie_.empty()) out.push_back({"cookie", cookie_});
  if (body_follows && !has_content_length_) out.push_back({"transfer-encoding", "chunked"});
  return Result::Ok;
}

RequestFields::Result RequestFields::write_http1(bool body_follows, std::string& out) const {
  std::vector<HeaderField> fields;
  Result result = http1_fields(body_follows, fields);
  if (result == Result::Ok) write_http1_text(fields, out);
  return result;
}

void RequestFields::write_http1_text(std::span<const HeaderField> fields, std::string& out) const {
  out.clear();
  out.append(method_).append(" ").append(path_).append(" HTTP/1.1\r\n");
  for (const HeaderField& f : fields)
    out.append(f.name).append(": ").append(f.value).append("\r\n");
  out.append("\r\n");
}

}  // namespace harrow::http2

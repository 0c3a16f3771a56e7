#include "core/http1/http_head.h"

#include <algorithm>
#include <cstring>

namespace harrow {
namespace {

constexpr bool static_hop_by_hop(FieldKind k) {
  return k >= FieldKind::connection;
}

// True if `name` equals `lower` (lowercase letters and '-') ignoring ASCII case, eight bytes
// at a time. OR-ing 0x20 folds an upper-case letter onto its lower case; the only other byte
// it folds onto a letter or '-' is CR (onto '-'), which no header name holds (llhttp refuses
// it), so for a name this is exact.
bool name_is(std::string_view name, std::string_view lower) {
  if (name.size() != lower.size()) return false;
  size_t i = 0;
  for (; i + 8 <= name.size(); i += 8) {
    uint64_t a, b;
    std::memcpy(&a, name.data() + i, 8);
    std::memcpy(&b, lower.data() + i, 8);
    if ((a | 0x2020202020202020ULL) != b) return false;
  }
  for (; i < name.size(); ++i) {
    if ((name[i] | 0x20) != lower[i]) return false;
  }
  return true;
}

// Calls `fn` for each comma-separated token of `list`, trimmed of spaces and tabs.
template <typename Fn>
bool any_token(std::string_view list, Fn fn) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view token = list.substr(0, comma);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
      token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
    if (!token.empty() && fn(token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

FieldKind classify_field(std::string_view name) {
  // One length switch and at most two comparisons: this runs for every field of every head.
  switch (name.size()) {
    case 2:
      return name_is(name, "te") ? FieldKind::te : FieldKind::other;
    case 4:
      return name_is(name, "host") ? FieldKind::host : FieldKind::other;
    case 7:
      if (name_is(name, "upgrade")) return FieldKind::upgrade;
      return name_is(name, "trailer") ? FieldKind::trailer : FieldKind::other;
    case 10:
      if (name_is(name, "connection")) return FieldKind::connection;
      return name_is(name, "keep-alive") ? FieldKind::keep_alive : FieldKind::other;
    case 14:
      return name_is(name, "content-length") ? FieldKind::content_length : FieldKind::other;
    case 16:
      return name_is(name, "proxy-connection") ? FieldKind::proxy_connection : FieldKind::other;
    case 17:
      return name_is(name, "transfer-encoding") ? FieldKind::transfer_encoding : FieldKind::other;
    case 18:
      return name_is(name, "proxy-authenticate") ? FieldKind::proxy_authenticate : FieldKind::other;
    case 19:
      return name_is(name, "proxy-authorization") ? FieldKind::proxy_authorization
                                                  : FieldKind::other;
    default:
      return FieldKind::other;
  }
}

namespace {

// True if `name` holds '_' and, read with '-' for '_', is a name classify_field() knows.
bool underscore_twin_of_known(std::string_view name) {
  // classify_field() knows names of up to 19 bytes; memchr only for those.
  if (name.size() < 2 || name.size() > 19 || name.find('_') == std::string_view::npos) return false;
  char folded[19];
  for (size_t j = 0; j < name.size(); ++j) folded[j] = name[j] == '_' ? '-' : name[j];
  return classify_field(std::string_view(folded, name.size())) != FieldKind::other;
}

}  // namespace

void MessageHead::reset(size_t limit) {
  size_ = 0;
  limit_ = limit;
  target_ = {};
  spans_.clear();
  fields_.clear();
  info_.clear();
  present_ = 0;
  in_value_ = false;
  finished_ = false;
}

bool MessageHead::grow(size_t len) {
  size_t need = size_ + len;
  if (need > limit_) return false;
  if (need <= capacity_) return true;
  // Offsets, not pointers, until finish(): moving the bytes is safe.
  size_t grown = std::max<size_t>({need, size_t{capacity_} * 2, 1024});
  auto bigger = std::make_unique<char[]>(grown);
  if (size_ != 0) std::memcpy(bigger.get(), arena_.get(), size_);
  arena_ = std::move(bigger);
  capacity_ = static_cast<uint32_t>(grown);
  return true;
}

bool MessageHead::append(Span& span, const char* at, size_t len) {
  if (finished_) return true;
  if ((size_ + len > capacity_ || size_ + len > limit_) && !grow(len)) return false;
  if (span.len == 0) span.off = size_;
  // Pieces of one name or value arrive back to back, so appending keeps them contiguous.
  std::memcpy(arena_.get() + size_, at, len);
  size_ += static_cast<uint32_t>(len);
  span.len += static_cast<uint32_t>(len);
  return true;
}

bool MessageHead::on_field(const char* at, size_t len) {
  if (finished_) return true;
  if (in_value_ || spans_.empty()) {
    spans_.emplace_back();
    in_value_ = false;
  }
  return append(spans_.back().first, at, len);
}

bool MessageHead::on_value(const char* at, size_t len) {
  if (finished_) return true;
  in_value_ = true;
  return append(spans_.back().second, at, len);
}

void MessageHead::finish() {
  finished_ = true;
  fields_.clear();
  info_.clear();
  fields_.reserve(spans_.size());
  info_.reserve(spans_.size());
  present_ = 0;
  for (const auto& [name, value] : spans_) {
    std::string_view v = view(value);
    // llhttp hands values over with trailing whitespace intact.
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    fields_.push_back({view(name), v});
    FieldKind k = classify_field(fields_.back().name);
    present_ |= 1u << static_cast<int>(k);
    uint8_t info = static_cast<uint8_t>(k) | (static_hop_by_hop(k) ? kHopByHop : 0);
    if (k == FieldKind::other && underscore_twin_of_known(fields_.back().name))
      info |= kUnderscoreTwin;
    info_.push_back(info);
  }
  if (!has(FieldKind::connection)) return;
  // Fields a Connection header names are hop-by-hop too (RFC 9110 §7.6.1), except the ones that
  // frame or route the message: those stay, so what Harrow forwards is framed as it parsed it.
  for (size_t i = 0; i < fields_.size(); ++i) {
    FieldKind k = kind(i);
    if ((info_[i] & kHopByHop) != 0 || k == FieldKind::host || k == FieldKind::content_length)
      continue;
    if (connection_has(fields_[i].name)) info_[i] |= kHopByHop;
  }
}

std::string_view MessageHead::find(std::string_view name) const {
  FieldKind k = classify_field(name);
  if (k != FieldKind::other && !has(k)) return {};
  for (const HeaderField& f : fields_) {
    if (iequals(f.name, name)) return f.value;
  }
  return {};
}

bool MessageHead::has(std::string_view name) const {
  FieldKind k = classify_field(name);
  if (k != FieldKind::other) return has(k);
  return std::any_of(fields_.begin(), fields_.end(),
                     [&](const HeaderField& f) { return iequals(f.name, name); });
}

bool MessageHead::connection_has(std::string_view token) const {
  if (!has(FieldKind::connection)) return false;
  for (size_t i = 0; i < fields_.size(); ++i) {
    if (kind(i) != FieldKind::connection) continue;
    if (any_token(fields_[i].value, [&](std::string_view t) { return iequals(t, token); }))
      return true;
  }
  return false;
}

bool MessageHead::is_hop_by_hop(std::string_view name) const {
  return static_hop_by_hop(classify_field(name)) || connection_has(name);
}

std::string_view MessageHead::connection_names_framing() const {
  if (!has(FieldKind::connection)) return {};
  for (std::string_view name : {"content-length", "transfer-encoding", "host"}) {
    if (connection_has(name)) return name;
  }
  return {};
}

bool same_name_folding_underscore(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i] == '_' ? '-' : ascii_lower(a[i]);
    char y = b[i] == '_' ? '-' : ascii_lower(b[i]);
    if (x != y) return false;
  }
  return true;
}

bool has_transfer_codings(const MessageHead& head) {
  if (!head.has(FieldKind::transfer_encoding)) return false;
  const std::vector<HeaderField>& fields = head.fields();
  for (size_t i = 0; i < fields.size(); ++i) {
    if (head.kind(i) != FieldKind::transfer_encoding) continue;
    if (any_token(fields[i].value, [](std::string_view t) { return !iequals(t, "chunked"); }))
      return true;
  }
  return false;
}

bool requests_websocket(const MessageHead& head) {
  if (!head.has(FieldKind::upgrade) || !head.connection_has("upgrade")) return false;
  const std::vector<HeaderField>& fields = head.fields();
  for (size_t i = 0; i < fields.size(); ++i) {
    if (head.kind(i) != FieldKind::upgrade) continue;
    if (any_token(fields[i].value, [](std::string_view t) { return iequals(t, "websocket"); }))
      return true;
  }
  return false;
}

HeadWriter& HeadWriter::operator<<(uint64_t n) {
  char digits[24];
  int i = sizeof digits;
  do {
    digits[--i] = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  return *this << std::string_view(digits + i, sizeof digits - i);
}

namespace {
// Harrow's own names match a client's field also as its '_' twin (X_Forwarded_For): servers
// that fold '_' onto '-' would otherwise see the client's value beside, or instead of, Harrow's.
bool named_in(std::span<const HeaderField> list, std::string_view name) {
  for (const HeaderField& f : list) {
    if (same_name_folding_underscore(f.name, name)) return true;
  }
  return false;
}

bool named_in(std::span<const std::string_view> list, std::string_view name) {
  for (std::string_view n : list) {
    if (same_name_folding_underscore(n, name)) return true;
  }
  return false;
}
}  // namespace

void write_upstream_request(const UpstreamRequest& req, HeadWriter& out) {
  out << req.method << " ";
  out.target(req.target) << " HTTP/1.1\r\n";
  out.field("Host", req.host);
  const MessageHead& head = *req.head;
  const std::vector<HeaderField>& fields = head.fields();
  auto passes = [&](size_t i) {
    FieldKind kind = head.kind(i);
    std::string_view name = fields[i].name;
    if (kind == FieldKind::host || head.hop_by_hop(i) || head.underscore_twin(i)) return false;
    if (req.chunked_body && kind == FieldKind::content_length) return false;
    return !named_in(req.harrow_headers, name) && !named_in(req.rule_headers, name) &&
           !named_in(req.strip, name);
  };
  // A client's X-Forwarded-For lines: merged into one list, in order, Harrow's entry last.
  auto forwarded_for_line = [&](size_t i) {
    return iequals(fields[i].name, req.forwarded_for_name) && !fields[i].value.empty() && passes(i);
  };
  bool merge_forwarded_for = false;
  for (size_t i = 0; i < fields.size(); ++i) {
    const HeaderField& f = fields[i];
    if (!passes(i)) continue;
    if (!req.forwarded_for_name.empty() &&
        same_name_folding_underscore(f.name, req.forwarded_for_name)) {
      merge_forwarded_for = merge_forwarded_for || forwarded_for_line(i);
      continue;  // merged below; a '_' twin is dropped
    }
    out.decoded_field(f.name, f.value);
  }
  if (!req.forwarded_for_name.empty()) {
    out << req.forwarded_for_name << ": ";
    for (size_t i = 0; merge_forwarded_for && i < fields.size(); ++i) {
      if (forwarded_for_line(i)) out << fields[i].value << ", ";
    }
    out << req.forwarded_for_value << "\r\n";
  }
  for (const HeaderField& f : req.harrow_headers) {
    if (!named_in(req.rule_headers, f.name)) out.field(f.name, f.value);
  }
  for (const HeaderField& f : req.rule_headers) {
    if (!iequals(f.name, "host")) out.field(f.name, f.value);  // Host comes from req.host
  }
  if (req.chunked_body) out << "Transfer-Encoding: chunked\r\n";
  if (!req.upgrade.empty()) {
    out << "Upgrade: " << req.upgrade << "\r\nConnection: Upgrade\r\n";
  } else if (!req.keep_alive) {
    out << "Connection: close\r\n";
  }
  out << "\r\n";
}

void write_client_response(const ClientResponse& resp, HeadWriter& out) {
  out << "HTTP/1.1 " << static_cast<uint64_t>(resp.status) << " ";
  out.reason(resp.reason.empty() ? default_reason(resp.status) : resp.reason) << "\r\n";
  if (resp.head != nullptr) {
    const std::vector<HeaderField>& fields = resp.head->fields();
    for (size_t i = 0; i < fields.size(); ++i) {
      const HeaderField& f = fields[i];
      bool forward_te =
          resp.forward_transfer_encoding && resp.head->kind(i) == FieldKind::transfer_encoding;
      if (resp.head->hop_by_hop(i) && !forward_te) continue;
      if (!resp.keep_content_length && resp.head->kind(i) == FieldKind::content_length) continue;
      bool removed = false;
      for (std::string_view name : resp.remove) removed = removed || iequals(name, f.name);
      if (removed) continue;
      std::string_view value = f.value;
      for (const HeaderField& r : resp.replace) {
        if (iequals(r.name, f.name)) value = r.value;
      }
      out.field(f.name, value);
    }
  }
  for (const HeaderField& f : resp.add) out.field(f.name, f.value);
  if (!resp.powered_by.empty()) out.field("X-Powered-By", resp.powered_by);
  if (resp.chunked && !resp.forward_transfer_encoding) out << "Transfer-Encoding: chunked\r\n";
  if (!resp.upgrade.empty()) {
    out << "Upgrade: " << resp.upgrade << "\r\nConnection: Upgrade\r\n";
  } else if (resp.close) {
    out << "Connection: close\r\n";
  } else if (resp.http10_keep_alive) {
    out << "Connection: keep-alive\r\n";
  }
  out << "\r\n";
}

bool reverse_rewrite_location(std::string_view value,
                              std::span<const std::string_view> backend_authorities,
                              std::string_view client_scheme, std::string_view client_host,
                              std::string& out) {
  size_t scheme_end;
  if (value.size() > 7 && iequals(value.substr(0, 7), "http://")) {
    scheme_end = 7;
  } else if (value.size() > 8 && iequals(value.substr(0, 8), "https://")) {
    scheme_end = 8;
  } else {
    return false;  // relative: already on the client's host
  }
  std::string_view rest = value.substr(scheme_end);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  bool ours = false;
  for (std::string_view a : backend_authorities) {
    if (!a.empty() && iequals(a, authority)) ours = true;
  }
  if (!ours || client_host.empty()) return false;
  out.assign(client_scheme);
  out += "://";
  out += client_host;
  if (end != std::string_view::npos) out += rest.substr(end);
  return true;
}

std::string_view default_reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return status < 300   ? "OK"
             : status < 400 ? "Redirect"
             : status < 500 ? "Client Error"
                            : "Server Error";
  }
}

}  // namespace harrow

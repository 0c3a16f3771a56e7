#include "core/http1/request_checks.h"

#include <algorithm>
#include <array>

#include "core/base/ascii.h"
#include "core/base/byte_runs.h"

namespace harrow {
namespace {

// RFC 9110 §5.6.2 tchar.
constexpr bool tchar_by_rule(unsigned char c) {
  if (is_ascii_alnum(static_cast<char>(c))) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// A byte predicate as a 256-entry table built at compile time: one load per byte.
template <bool (*Pred)(unsigned char)>
constexpr std::array<bool, 256> table_of() {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = Pred(static_cast<unsigned char>(c));
  return t;
}

constexpr std::array<bool, 256> kTchar = table_of<tchar_by_rule>();
bool is_tchar(unsigned char c) {
  return kTchar[c];
}

// field-vchar, SP and HTAB (obs-text allowed: it is opaque data, not a delimiter).
constexpr bool is_value_char(unsigned char c) {
  return is_field_value_byte(c);
}

// A request-target byte: visible ASCII. No fragment ('#') is ever sent (RFC 9112 §3.2), and
// bytes above 0x7F are not a URI.
constexpr unsigned char kNotInTarget = '#';
constexpr bool is_target_char(unsigned char c) {
  return is_visible_byte_but(c, kNotInTarget);
}

// The scanner takes a run of ordinary bytes in one step instead of one state-machine turn
// each: field_value_run() and visible_run_but() for values and targets (eight bytes at a
// time), run_of() for the short tokens. room(): how many bytes from `from` on a run may
// cover, at most `limit` and not past `len`.
size_t room(size_t from, size_t len, uint32_t limit) {
  return len - from < limit ? len - from : limit;
}

template <bool (*Pred)(unsigned char)>
size_t run_of(const unsigned char* p, size_t from, size_t len, uint32_t room) {
  size_t end = len - from < room ? len : from + room;
  size_t j = from;
  while (j < end && Pred(p[j])) ++j;
  return j - from;
}

constexpr uint32_t kMaxEmptyLines = 4;  // before a request line (RFC 9112 §2.2: at least one)
constexpr uint64_t kMaxChunkSize = uint64_t{1} << 56;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A reg-name byte Harrow accepts in Host: RFC 3986's unreserved set. Its sub-delims (',', ';',
// '(', …) and pct-encoded bytes name no DNS host, and ',' or '%' could be read as a list or be
// decoded by the next hop into something else.
constexpr bool is_host_char(unsigned char c) {
  return is_ascii_alnum(static_cast<char>(c)) || c == '-' || c == '.' || c == '_' || c == '~';
}

constexpr std::array<bool, 256> kHostChar = table_of<is_host_char>();

constexpr bool is_ip_literal_char(unsigned char c) {
  return is_ascii_hex_digit(static_cast<char>(c)) || c == ':' || c == '.';
}

// uri-host [ ":" port ] (RFC 3986 §3.2.2-3, RFC 9110 §7.2): a bracketed IPv6 literal or a
// reg-name / IPv4 address, then at most one ':' and a port of at most five digits. Anything
// else ("t:80x", "t:80:81", "[::1", "a,b") is a malformed Host (RFC 9112 §3.2: 400).
bool valid_host(std::string_view host) {
  if (host.empty()) return false;
  std::string_view port;
  bool has_port = false;
  if (host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos || close < 3) return false;
    for (unsigned char c : host.substr(1, close - 1)) {
      if (!is_ip_literal_char(c)) return false;
    }
    std::string_view rest = host.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      has_port = true;
      port = rest.substr(1);
    }
  } else {
    size_t colon = host.find(':');
    std::string_view name = host.substr(0, colon);
    if (name.empty()) return false;
    for (unsigned char c : name) {
      if (!kHostChar[c]) return false;
    }
    if (colon != std::string_view::npos) {
      has_port = true;
      port = host.substr(colon + 1);
    }
  }
  if (has_port && port.size() > 5) return false;
  for (unsigned char c : port) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// The scheme's default port of an absolute-form target (RFC 9110 §4.2.1, §4.2.2).
std::string_view default_port(std::string_view target) {
  return istarts_with(target, "https://") ? "443" : "80";
}

// `authority` without a ":port" that only repeats the scheme's default (or is empty): "h:80"
// and "h" name the same origin for http (RFC 9110 §4.2.3, RFC 3986 §6.2.3).
std::string_view without_default_port(std::string_view authority, std::string_view port) {
  size_t colon = authority.rfind(':');
  if (colon == std::string_view::npos || authority.find(']', colon) != std::string_view::npos)
    return authority;
  std::string_view p = authority.substr(colon + 1);
  return p.empty() || p == port ? authority.substr(0, colon) : authority;
}

bool same_authority(std::string_view a, std::string_view b, std::string_view port) {
  return iequals(without_default_port(a, port), without_default_port(b, port));
}

}  // namespace

void RequestFramer::reset(const RequestLimits& limits) {
  limits_ = limits;
  next_message();
}

void RequestFramer::next_message() {
  state_ = State::Start;
  line_bytes_ = section_bytes_ = field_count_ = token_len_ = version_len_ = 0;
  remaining_ = body_bytes_ = 0;
  version_supported_ = false;
}

size_t RequestFramer::fail(Failure failure, const char* detail, size_t vouched) {
  state_ = State::Failed;
  rejection_ = {failure, detail};
  return vouched;
}

void RequestFramer::begin_body(bool chunked, uint64_t content_length) {
  body_bytes_ = 0;
  if (chunked) {
    state_ = State::ChunkSize;
    line_bytes_ = token_len_ = 0;
    remaining_ = 0;
  } else if (content_length > 0) {
    state_ = State::Length;
    remaining_ = content_length;
  } else {
    state_ = State::MessageDone;
  }
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_tchar(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool is_request_target(std::string_view s) {
  return visible_run_but(reinterpret_cast<const unsigned char*>(s.data()), s.size(),
                         kNotInTarget) == s.size();
}

size_t RequestFramer::scan(const char* data, size_t len) {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  size_t i = 0;
  while (i < len) {
    unsigned char c = p[i];
    switch (state_) {
      case State::Start:
        if (c == '\r') {
          if (++line_bytes_ > kMaxEmptyLines)
            return fail(Failure::bad_request, "too many empty lines before the request line", i);
          state_ = State::StartLF;
        } else if (is_tchar(c)) {
          line_bytes_ = 1;
          token_len_ = 1;
          state_ = State::Method;
        } else {
          return fail(Failure::bad_request, "invalid character in method", i);
        }
        break;
      case State::StartLF:
        if (c != '\n') return fail(Failure::bad_request, "bare CR before the request line", i);
        state_ = State::Start;
        break;
      case State::Method:
        if (++line_bytes_ > limits_.max_request_line)
          return fail(Failure::request_line_too_large, "request line too long", i);
        if (c == ' ') {
          state_ = State::Target;
          token_len_ = 0;
        } else if (!is_tchar(c)) {
          return fail(Failure::bad_request, "invalid character in method", i);
        } else {
          size_t n = run_of<is_tchar>(p, i + 1, len, limits_.max_request_line - line_bytes_);
          line_bytes_ += static_cast<uint32_t>(n);
          i += n;
        }
        break;
      case State::Target:
        if (++line_bytes_ > limits_.max_request_line)
          return fail(Failure::request_line_too_large, "request line too long", i);
        if (c == ' ') {
          if (token_len_ == 0)
            return fail(Failure::bad_request, "more than one space in the request line", i);
          state_ = State::Version;
          version_len_ = 0;
        } else if (c == '\r' || c == '\n') {
          return fail(Failure::bad_request, "request line without an HTTP version", i);
        } else if (!is_target_char(c)) {
          return fail(Failure::bad_request, "invalid character in the request-target", i);
        } else {
          ++token_len_;
          // The rest of the target's ordinary bytes at once, each counted as above; the byte
          // that ends the run (or would pass the limit) goes through the checks.
          size_t n = visible_run_but(
              p + i + 1, room(i + 1, len, limits_.max_request_line - line_bytes_), kNotInTarget);
          line_bytes_ += static_cast<uint32_t>(n);
          token_len_ += static_cast<uint32_t>(n);
          i += n;
        }
        break;
      case State::Version:
        if (++line_bytes_ > limits_.max_request_line)
          return fail(Failure::request_line_too_large, "request line too long", i);
        if (c == '\r') {
          const char* v = version_;
          bool well_formed = version_len_ == 8 && v[0] == 'H' && v[1] == 'T' && v[2] == 'T' &&
                             v[3] == 'P' && v[4] == '/' && v[5] >= '0' && v[5] <= '9' &&
                             v[6] == '.' && v[7] >= '0' && v[7] <= '9';
          if (!well_formed) return fail(Failure::bad_request, "malformed HTTP version", i);
          if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
            return fail(Failure::http_version_not_supported, "HTTP version other than 1.0/1.1", i);
          state_ = State::RequestLineLF;
        } else if (version_len_ == sizeof version_) {
          return fail(Failure::bad_request, "malformed HTTP version", i);
        } else {
          version_[version_len_++] = static_cast<char>(c);
        }
        break;
      case State::RequestLineLF:
        if (c != '\n') return fail(Failure::bad_request, "bare CR in the request line", i);
        state_ = State::LineStart;
        section_bytes_ = 0;
        break;
      case State::LineStart:
      case State::Name:
      case State::Value:
      case State::ValueLF:
      case State::EndLF:
        if (++section_bytes_ > limits_.max_header_bytes)
          return fail(Failure::request_header_too_large, "header section too large", i);
        switch (state_) {
          case State::LineStart:
            if (c == '\r') {
              state_ = State::EndLF;
            } else if (c == ' ' || c == '\t') {
              return fail(Failure::bad_request, "obsolete line folding", i);
            } else if (is_tchar(c)) {
              if (++field_count_ > limits_.max_header_count)
                return fail(Failure::request_header_too_large, "too many header fields", i);
              state_ = State::Name;
            } else if (c == ':') {
              return fail(Failure::bad_request, "empty header name", i);
            } else if (c == '\n') {
              return fail(Failure::bad_request, "bare LF line ending", i);
            } else {
              return fail(Failure::bad_request, "invalid character in a header name", i);
            }
            break;
          case State::Name:
            if (c == ':') {
              state_ = State::Value;
            } else if (c == ' ' || c == '\t') {
              return fail(Failure::bad_request, "whitespace between header name and colon", i);
            } else if (!is_tchar(c)) {
              return fail(Failure::bad_request, "invalid character in a header name", i);
            } else {
              size_t n = run_of<is_tchar>(p, i + 1, len, limits_.max_header_bytes - section_bytes_);
              section_bytes_ += static_cast<uint32_t>(n);
              i += n;
            }
            break;
          case State::Value:
            if (c == '\r') {
              state_ = State::ValueLF;
            } else if (c == '\n') {
              return fail(Failure::bad_request, "bare LF line ending", i);
            } else if (!is_value_char(c)) {
              return fail(Failure::bad_request, "control character in a header value", i);
            } else {
              size_t n = field_value_run(
                  p + i + 1, room(i + 1, len, limits_.max_header_bytes - section_bytes_));
              section_bytes_ += static_cast<uint32_t>(n);
              i += n;
            }
            break;
          case State::ValueLF:
            if (c != '\n') return fail(Failure::bad_request, "bare CR in a header line", i);
            state_ = State::LineStart;
            break;
          default:  // EndLF
            if (c != '\n') return fail(Failure::bad_request, "bare CR ending the head", i);
            state_ = State::HeadDone;
            return i + 1;
        }
        break;
      case State::HeadDone:
      case State::MessageDone:
        return i;
      case State::Length: {
        uint64_t take = len - i < remaining_ ? len - i : remaining_;
        remaining_ -= take;
        body_bytes_ += take;
        i += static_cast<size_t>(take);
        if (remaining_ == 0) {
          state_ = State::MessageDone;
          return i;
        }
        continue;
      }
      case State::ChunkSize:
      case State::ChunkExt:
      case State::ChunkSizeLF:
        if (++line_bytes_ > limits_.max_chunk_line)
          return fail(Failure::bad_framing, "chunk-size line too long", i);
        if (state_ == State::ChunkSize) {
          int h = hex_value(static_cast<char>(c));
          if (h >= 0) {
            if (remaining_ >= kMaxChunkSize)
              return fail(Failure::bad_framing, "chunk size too large", i);
            remaining_ = remaining_ * 16 + static_cast<uint64_t>(h);
            ++token_len_;
          } else if (token_len_ == 0) {
            return fail(Failure::bad_framing, "invalid chunk size", i);
          } else if (c == ';') {
            state_ = State::ChunkExt;
          } else if (c == '\r') {
            state_ = State::ChunkSizeLF;
          } else {
            return fail(Failure::bad_framing, "invalid character in chunk size", i);
          }
        } else if (state_ == State::ChunkExt) {
          if (c == '\r') {
            state_ = State::ChunkSizeLF;
          } else if (!is_value_char(c)) {
            return fail(Failure::bad_framing, "control character or bare LF in a chunk extension",
                        i);
          }
        } else {  // ChunkSizeLF
          if (c != '\n') return fail(Failure::bad_framing, "bare CR in a chunk-size line", i);
          if (remaining_ == 0) {
            state_ = State::TrailerStart;
            section_bytes_ = 0;
          } else {
            if (remaining_ > limits_.max_body || body_bytes_ > limits_.max_body - remaining_)
              return fail(Failure::request_body_too_large, "chunked body too large", i);
            body_bytes_ += remaining_;
            state_ = State::ChunkData;
          }
        }
        break;
      case State::ChunkData: {
        uint64_t take = len - i < remaining_ ? len - i : remaining_;
        remaining_ -= take;
        i += static_cast<size_t>(take);
        if (remaining_ == 0) state_ = State::ChunkDataCR;
        continue;
      }
      case State::ChunkDataCR:
        if (c != '\r') return fail(Failure::bad_framing, "chunk data not followed by CRLF", i);
        state_ = State::ChunkDataLF;
        break;
      case State::ChunkDataLF:
        if (c != '\n') return fail(Failure::bad_framing, "chunk data not followed by CRLF", i);
        state_ = State::ChunkSize;
        line_bytes_ = token_len_ = 0;
        remaining_ = 0;
        break;
      case State::TrailerStart:
      case State::TrailerName:
      case State::TrailerValue:
      case State::TrailerValueLF:
      case State::TrailerEndLF:
        if (++section_bytes_ > limits_.max_header_bytes)
          return fail(Failure::bad_framing, "trailer section too large", i);
        switch (state_) {
          case State::TrailerStart:
            if (c == '\r') {
              state_ = State::TrailerEndLF;
            } else if (is_tchar(c)) {
              state_ = State::TrailerName;
            } else if (c == ' ' || c == '\t') {
              return fail(Failure::bad_framing, "obsolete line folding in the trailer", i);
            } else {
              return fail(Failure::bad_framing, "invalid trailer line", i);
            }
            break;
          case State::TrailerName:
            if (c == ':') {
              state_ = State::TrailerValue;
            } else if (!is_tchar(c)) {
              return fail(Failure::bad_framing, "invalid character in a trailer name", i);
            }
            break;
          case State::TrailerValue:
            if (c == '\r') {
              state_ = State::TrailerValueLF;
            } else if (!is_value_char(c)) {
              return fail(Failure::bad_framing, "control character or bare LF in a trailer", i);
            }
            break;
          case State::TrailerValueLF:
            if (c != '\n') return fail(Failure::bad_framing, "bare CR in the trailer", i);
            state_ = State::TrailerStart;
            break;
          default:  // TrailerEndLF
            if (c != '\n') return fail(Failure::bad_framing, "bare CR ending the trailer", i);
            state_ = State::MessageDone;
            return i + 1;
        }
        break;
      case State::Tunnel:
        return len;
      case State::Failed:
        return i;
    }
    ++i;
  }
  return i;
}

TargetParts split_target(std::string_view target) {
  size_t scheme_end = 0;
  if (target.size() > 7 && iequals(target.substr(0, 7), "http://")) {
    scheme_end = 7;
  } else if (target.size() > 8 && iequals(target.substr(0, 8), "https://")) {
    scheme_end = 8;
  } else {
    return {{}, target, false};
  }
  std::string_view rest = target.substr(scheme_end);
  size_t end = std::min(rest.find_first_of("/?"), rest.size());
  return {rest.substr(0, end), rest.substr(end), true};
}

bool check_request_head(const ParsedRequest& req, const RequestLimits& limits, Rejection& out) {
  const MessageHead& head = *req.head;
  auto reject = [&](Failure f, const char* detail) {
    out = {f, detail};
    return false;
  };
  if (req.method == "CONNECT")
    return reject(Failure::method_not_allowed, "CONNECT tunnels are not proxied");
  if (req.method == "TRACE" && !limits.allow_trace)
    return reject(Failure::method_not_allowed, "TRACE is not allowed");

  size_t te_count = 0, host_count = 0;
  std::string_view te, host;
  const std::vector<HeaderField>& fields = head.fields();
  for (size_t i = 0; i < fields.size(); ++i) {
    if (head.kind(i) == FieldKind::transfer_encoding) {
      ++te_count;
      te = fields[i].value;
    } else if (head.kind(i) == FieldKind::host) {
      ++host_count;
      host = fields[i].value;
    }
  }
  bool http11 = req.http_major == 1 && req.http_minor == 1;
  if (te_count > 0) {
    if (!http11) return reject(Failure::bad_framing, "Transfer-Encoding in an HTTP/1.0 request");
    // Harrow re-frames the body itself, so a coding other than chunked would reach the server
    // undeclared (and nginx refuses them too).
    if (te_count > 1 || !iequals(trim(te), "chunked"))
      return reject(Failure::bad_framing, "Transfer-Encoding other than chunked");
  }
  if (req.chunked && req.has_content_length)
    return reject(Failure::bad_framing, "both Content-Length and Transfer-Encoding");
  // A field that frames or routes the message is never hop-by-hop: dropping the Content-Length a
  // Connection header names would leave its body to be read as the next request (smuggling).
  std::string_view named = head.connection_names_framing();
  if (!named.empty()) {
    return reject(Failure::bad_framing, named == "host" ? "Connection names Host"
                                        : named == "content-length"
                                            ? "Connection names Content-Length"
                                            : "Connection names Transfer-Encoding");
  }

  if (host_count > 1) return reject(Failure::bad_host, "more than one Host");
  if (host_count == 0 && http11) return reject(Failure::bad_host, "HTTP/1.1 request without Host");
  host = trim(host);
  if (host_count == 1 && !valid_host(host)) return reject(Failure::bad_host, "malformed Host");

  std::string_view target = head.target();
  if (target == "*") {
    if (req.method != "OPTIONS")
      return reject(Failure::bad_request, "asterisk-form target with a method other than OPTIONS");
  } else if (target.empty() || target.front() != '/') {
    TargetParts parts = split_target(target);
    if (!parts.absolute) return reject(Failure::bad_request, "invalid request-target");
    std::string_view authority = parts.authority;
    if (authority.empty() || !valid_host(authority))
      return reject(Failure::bad_request, "invalid authority in an absolute-form target");
    if (host_count == 1 && !same_authority(authority, host, default_port(target)))
      return reject(Failure::bad_host, "Host disagrees with the absolute-form target");
  }

  if (req.has_content_length && req.content_length > limits.max_body)
    return reject(Failure::request_body_too_large, "Content-Length above the limit");
  return true;
}

}  // namespace harrow

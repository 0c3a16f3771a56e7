// HTTP/1.x message heads as the proxy sees them: collected from llhttp callbacks (which may
// hand a name or value over in pieces), filtered of hop-by-hop headers, and written out again
// for the other side. No I/O here, so it is unit-testable on its own.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/ascii.h"
#include "core/base/byte_runs.h"

namespace harrow {

struct HeaderField {
  std::string_view name;
  std::string_view value;
};

// The header names Harrow acts on, recognised once per field when a head is finished so that
// forwarding a head and asking it questions do not compare names again and again.
enum class FieldKind : uint8_t {
  other,
  host,
  content_length,
  // Hop-by-hop by definition (RFC 9110 §7.6.1), plus the framing Harrow rewrites itself.
  connection,
  keep_alive,
  te,
  trailer,
  transfer_encoding,
  upgrade,
  proxy_connection,
  proxy_authenticate,
  proxy_authorization,
};

// The kind of a header name (ASCII case-insensitive).
FieldKind classify_field(std::string_view name);

// One request or response head. Storage is an arena that keeps its capacity between
// messages, so collecting a head does not allocate once a connection is warm. Movable, not
// copyable (the fields are views into the arena).
class MessageHead {
 public:
  MessageHead() = default;
  MessageHead(MessageHead&&) noexcept = default;
  MessageHead& operator=(MessageHead&&) noexcept = default;

  // Clears the head for the next message; `limit` caps the total bytes collected.
  void reset(size_t limit);

  // llhttp data callbacks. Each returns false when the head exceeds the limit. Fields that
  // arrive after finish() (a trailer section) are ignored: the finished head's views stay valid.
  bool on_target(const char* at, size_t len) { return append(target_, at, len); }
  bool on_reason(const char* at, size_t len) { return append(target_, at, len); }
  bool on_field(const char* at, size_t len);
  bool on_value(const char* at, size_t len);
  // Call from on_headers_complete: fixes the string views and classifies the fields.
  void finish();

  std::string_view target() const { return view(target_); }  // request-target or reason
  const std::vector<HeaderField>& fields() const { return fields_; }
  // The kind of fields()[i], and whether it must not be forwarded (hop-by-hop by definition
  // or named in a Connection header). Host and Content-Length are never hop-by-hop because a
  // Connection header names them: they frame and route the message, and Harrow frames what it
  // forwards from its own parse of them (a request that names them is refused first).
  FieldKind kind(size_t i) const { return static_cast<FieldKind>(info_[i] & kKindMask); }
  bool hop_by_hop(size_t i) const { return (info_[i] & kHopByHop) != 0; }
  // True if fields()[i]'s name holds '_' and, read with '-' for '_', names a field Harrow acts
  // on (Content_Length, Transfer_Encoding, Host_…): servers that fold '_' onto '-' (CGI, some
  // frameworks) would take it for that field, so it is never forwarded.
  bool underscore_twin(size_t i) const { return (info_[i] & kUnderscoreTwin) != 0; }
  // First value of the named field (case-insensitive), or an empty view.
  std::string_view find(std::string_view name) const;
  bool has(std::string_view name) const;
  bool has(FieldKind kind) const { return (present_ & (1u << static_cast<int>(kind))) != 0; }
  // True if any Connection header lists `token` (case-insensitive).
  bool connection_has(std::string_view token) const;
  // True if `name` must not be forwarded: hop-by-hop by definition or named in Connection.
  bool is_hop_by_hop(std::string_view name) const;
  // The framing or routing field a Connection header names (Content-Length, Transfer-Encoding
  // or Host), or an empty view. Such a request is refused: dropping the field as hop-by-hop
  // would forward a body without its framing (request smuggling).
  std::string_view connection_names_framing() const;

 private:
  struct Span {
    uint32_t off = 0;
    uint32_t len = 0;
  };
  static constexpr uint8_t kKindMask = 0x1f;
  static constexpr uint8_t kHopByHop = 0x80;
  static constexpr uint8_t kUnderscoreTwin = 0x40;

  bool append(Span& span, const char* at, size_t len);
  // Room for `len` more bytes (false above the limit); append() checks first.
  bool grow(size_t len);
  std::string_view view(Span s) const { return {arena_.get() + s.off, s.len}; }

  std::unique_ptr<char[]> arena_;
  uint32_t size_ = 0;
  uint32_t capacity_ = 0;
  size_t limit_ = 0;
  Span target_;
  std::vector<std::pair<Span, Span>> spans_;
  std::vector<HeaderField> fields_;
  std::vector<uint8_t> info_;  // per field: FieldKind | kHopByHop
  uint32_t present_ = 0;       // bit per FieldKind found
  bool in_value_ = false;
  bool finished_ = false;
};

// True if `a` and `b` name the same field once '_' is read as '-' (ASCII case-insensitive).
bool same_name_folding_underscore(std::string_view a, std::string_view b);

// True if the head's Transfer-Encoding lists a coding other than chunked (gzip, …): such a
// body is forwarded with its codings as they came, never relabelled.
bool has_transfer_codings(const MessageHead& head);

// True if the head asks for a WebSocket upgrade: Connection lists "upgrade" and Upgrade lists
// "websocket" (RFC 6455 §4.1; tokens case-insensitive, in any position of their lists).
bool requests_websocket(const MessageHead& head);

// Appends to a fixed buffer; remembers if anything did not fit.
class HeadWriter {
 public:
  HeadWriter(char* begin, size_t capacity) : begin_(begin), p_(begin), end_(begin + capacity) {}
  // Inline, so the fixed pieces (": ", "\r\n") are a move, not a call to memcpy.
  HeadWriter& operator<<(std::string_view s) {
    if (s.empty()) return *this;  // an empty view may carry a null pointer memcpy must not see
    if (static_cast<size_t>(end_ - p_) < s.size()) {
      overflow_ = true;
      return *this;
    }
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
    return *this;
  }
  HeadWriter& operator<<(uint64_t n);
  // Names, values, the request-target and the status reason go through these checks: text a
  // rule produced (or anything else) holding a byte that would end or split the line is never
  // syntax. Such a head is marked unsafe(), and its writer's caller refuses to send it.
  HeadWriter& field(std::string_view name, std::string_view value) {
    if (!safe_name(name) || !safe_value(value)) unsafe_ = true;
    return decoded_field(name, value);
  }
  // A field of a request head the decoder took (RequestDecoder: the framer's rules, or
  // decode_fields()'s, are field()'s own or stricter), written without checking it again.
  HeadWriter& decoded_field(std::string_view name, std::string_view value) {
    char* line = p_;
    *this << name << ": " << value << "\r\n";
    if (kept_ != nullptr && !overflow_) {
      kept_->push_back({std::string_view(line, name.size()),
                        std::string_view(line + name.size() + 2, value.size())});
    }
    return *this;
  }
  // Also keeps every field() written, as views into the written bytes (in order): a codec that
  // sends fields rather than the text (HTTP/2) takes them without parsing the text again.
  // Writing the line first means the views see exactly the checked bytes.
  void keep_fields(std::vector<HeaderField>* kept) { kept_ = kept; }
  HeadWriter& target(std::string_view t) {
    if (!safe_target(t)) unsafe_ = true;
    return *this << t;
  }
  HeadWriter& reason(std::string_view r) {
    if (!safe_value(r)) unsafe_ = true;
    return *this << r;
  }
  bool overflowed() const { return overflow_; }
  std::string_view text() const { return {begin_, size()}; }
  // Something written through field(), target() or reason() would not have stayed one token.
  bool unsafe() const { return unsafe_; }

  // A field value or reason phrase: no control byte but HTAB, no DEL (RFC 9110 §5.5).
  static bool safe_value(std::string_view v) { return all_field_value_bytes(v.data(), v.size()); }
  // A request-target: one token of visible ASCII (no control, space, DEL or byte >= 0x80).
  static bool safe_target(std::string_view t) {
    return !t.empty() && visible_run_but(reinterpret_cast<const unsigned char*>(t.data()), t.size(),
                                         ' ') == t.size();
  }
  // A field name: visible ASCII without ':'.
  static bool safe_name(std::string_view n) {
    return !n.empty() && visible_run_but(reinterpret_cast<const unsigned char*>(n.data()), n.size(),
                                         ':') == n.size();
  }
  size_t size() const { return static_cast<size_t>(p_ - begin_); }

 private:
  char* begin_;
  char* p_;
  char* end_;
  std::vector<HeaderField>* kept_ = nullptr;
  bool overflow_ = false;
  bool unsafe_ = false;
};

// How a request is sent upstream.
struct UpstreamRequest {
  std::string_view method;
  std::string_view target;            // origin-form, after rewriting
  const MessageHead* head = nullptr;  // the client's head (fields are filtered on the way)
  std::string_view host;              // the Host to send
  bool chunked_body = false;          // the body goes upstream chunked (client sent it chunked)
  bool keep_alive = true;
  // A WebSocket upgrade: "Upgrade: <this>" and "Connection: Upgrade" go upstream (the client's
  // own are hop-by-hop and dropped with the rest).
  std::string_view upgrade;
  std::string_view forwarded_for_name;   // empty = do not add
  std::string_view forwarded_for_value;  // "ip:port" or "ip"
  // Headers Harrow sets (ARR's Max-Forwards, X-ARR-LOG-ID, …) and headers the rules set; each
  // replaces a client header of the same name, and the rules' win over Harrow's.
  std::span<const HeaderField> harrow_headers;
  std::span<const HeaderField> rule_headers;
  // Names Harrow owns but does not set on this request (X-ARR-SSL on plain HTTP, …): a client's
  // field of that name (or its '_' twin) is dropped all the same.
  std::span<const std::string_view> strip;
};

// Writes the request line and header section (ending in the blank line). A target or header
// value that would not stay one token marks `out` unsafe(): the caller must not send it.
void write_upstream_request(const UpstreamRequest& req, HeadWriter& out);

// How a response is sent back to the client.
struct ClientResponse {
  int status = 200;
  std::string_view reason;
  const MessageHead* head = nullptr;  // the upstream head (filtered), or null
  bool chunked = false;               // Harrow frames the body with chunked encoding
  // The upstream Transfer-Encoding fields go out as they came (codings other than chunked,
  // never relabelled); `chunked` then frames the body without a Transfer-Encoding of its own.
  bool forward_transfer_encoding = false;
  bool keep_content_length = true;  // pass the upstream Content-Length through
  bool close = false;               // Connection: close
  bool http10_keep_alive = false;   // "Connection: keep-alive" for an HTTP/1.0 client
  std::string_view upgrade;         // a 101: "Upgrade: <this>" and "Connection: Upgrade"
  std::string_view powered_by;      // X-Powered-By value to add (ARR's arrResponseHeader), or empty
  // Upstream fields to send with a different value (reverse-rewritten Location, …).
  std::span<const HeaderField> replace;
  // Upstream fields not to pass on (control headers meant for Harrow), and fields to add.
  std::span<const std::string_view> remove;
  std::span<const HeaderField> add;
};

// If `value` is an absolute http(s) URL whose authority is one of `backend_authorities`,
// writes it into `out` with the scheme and authority of the client's request and returns
// true (ARR's reverseRewriteHostInResponseHeaders).
bool reverse_rewrite_location(std::string_view value,
                              std::span<const std::string_view> backend_authorities,
                              std::string_view client_scheme, std::string_view client_host,
                              std::string& out);

// Writes the status line and header section; an unsafe reason or value marks `out` unsafe().
void write_client_response(const ClientResponse& resp, HeadWriter& out);

std::string_view default_reason(int status);

}  // namespace harrow

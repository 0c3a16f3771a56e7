// An HTTP/2 request's header fields as the HTTP/1.1 head Harrow judges: HTTP/2 is a second way
// for a request to arrive, not a second set of checks. The fields nghttp2 has already held to
// RFC 9113 §8 (pseudo-header fields present, once, first and valid; no connection-specific
// field; lower-case names; values without CR, LF or NUL) become one request head that the
// HTTP/1 decoder (core/http1/request_decoder.h) parses and judges like any other, so every
// limit, every Host check and every rule sees the same message whichever protocol carried it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/http1/http_head.h"

namespace harrow::http2 {

// Collects one request's fields as they are decoded. Bounded: once `limit` bytes of names and
// values are held, further fields are counted but dropped and too_large() says so (an HPACK
// bomb inflates a few bytes into megabytes of fields; none of that is kept).
class RequestFields {
 public:
  void reset(uint32_t limit);
  // One field, pseudo or regular, in the order received.
  void add(std::string_view name, std::string_view value);
  bool too_large() const { return too_large_; }
  // Decoded size of the header list as RFC 9113 §6.5.2 counts it (32 bytes per field more).
  uint64_t list_size() const { return list_size_; }

  enum class Result : uint8_t {
    Ok,
    MissingAuthority,  // neither :authority nor Host
    HostDisagrees,     // :authority and Host name different hosts
    ConnectRefused,    // CONNECT (no extended CONNECT here)
    BadTe,             // TE other than "trailers"
  };
  // Writes the HTTP/1.1 head into `out` (replacing it): request line from :method and :path,
  // Host from :authority, Cookie fields joined (RFC 9113 §8.2.3), and, when a body follows
  // without a Content-Length (`body_follows`), "Transfer-Encoding: chunked" so the head says a
  // body comes. Only valid when !too_large().
  Result write_http1(bool body_follows, std::string& out) const;
  // The fields of that same head, in the same order, as views into this object (valid until
  // the next reset() or add()): what RequestDecoder::decode_fields() takes instead of the text.
  Result http1_fields(bool body_follows, std::vector<HeaderField>& out) const;
  // The text of a head http1_fields() gave (`out` replaced): "method SP path SP HTTP/1.1",
  // then each field, then the empty line. For a caller that already holds the fields.
  void write_http1_text(std::span<const HeaderField> fields, std::string& out) const;

  std::string_view method() const { return method_; }
  std::string_view path() const { return path_; }
  std::string_view scheme() const { return scheme_; }
  std::string_view authority() const { return authority_; }
  bool has_content_length() const { return has_content_length_; }

 private:
  // Each regular field but cookie (and the first host), in order: offsets into storage_.
  struct Entry {
    uint32_t name_at, name_len, value_at, value_len;
  };
  void keep(std::string_view name, std::string_view value);

  std::string storage_;
  std::vector<Entry> entries_;
  std::string cookie_;  // every cookie field's value, joined with "; "
  std::string host_;
  std::string method_;
  std::string path_;
  std::string scheme_;
  std::string authority_;
  std::string te_;
  uint64_t list_size_ = 0;
  uint32_t limit_ = 0;
  bool too_large_ = false;
  bool has_host_ = false;
  bool has_te_ = false;
  bool has_content_length_ = false;
};

}  // namespace harrow::http2

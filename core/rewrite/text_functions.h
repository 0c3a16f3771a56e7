// The text transformations behind URL Rewrite's template functions ({ToLower:…},
// {UrlEncode:…}, {UrlDecode:…}, {HtmlEncode:…}) and the escaping of rewritten URLs. Each works
// in place on the tail of a buffer (out[from..]), so expansion appends and then transforms
// without a second buffer. Internal to core/rewrite.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace harrow::router_internal {

// Lower-cases out[from..] in place (ASCII, as URL Rewrite's ToLower does for URLs).
void to_lower_from(std::string& out, size_t from);

// Decodes %XX escapes in out[from..] in place. A '%' not followed by two hex digits stays as it
// is; '+' stays '+' (it means a space only in form bodies, not in URLs).
void url_decode_from(std::string& out, size_t from);

// HTML-encodes out[from..] in place: & < > " ' become entities, as URL Rewrite's HtmlEncode
// does for text inserted into a page.
void html_encode_from(std::string& out, size_t from);

// Escapes the bytes of out[from..] that `Needs`, in place (from the end).
template <bool (*Needs)(unsigned char)>
void percent_encode_from(std::string& out, size_t from) {
  size_t extra = 0;
  for (size_t i = from; i < out.size(); ++i) {
    if (Needs(static_cast<unsigned char>(out[i]))) extra += 2;
  }
  if (extra == 0) return;
  size_t r = out.size();
  out.resize(out.size() + extra);
  size_t w = out.size();
  static constexpr char kHex[] = "0123456789ABCDEF";
  while (r > from) {
    auto b = static_cast<unsigned char>(out[--r]);
    if (!Needs(b)) {
      out[--w] = static_cast<char>(b);
    } else {
      out[--w] = kHex[b & 0xF];
      out[--w] = kHex[b >> 4];
      out[--w] = '%';
    }
  }
}

// Percent-encodes every byte of out[from..] except RFC 3986's unreserved characters, in place.
void url_encode_from(std::string& out, size_t from);

// True for bytes >= 0x80: what a request-target may not hold unescaped.
constexpr bool high_byte(unsigned char c) {
  return c >= 0x80;
}

// Escapes out[from..] as a forwarded path (append_encoded_path's set).
void path_encode_from(std::string& out, size_t from);

}  // namespace harrow::router_internal

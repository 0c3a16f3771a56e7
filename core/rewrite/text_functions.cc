#include "core/rewrite/text_functions.h"

#include "core/base/ascii.h"
#include "core/http1/url_path.h"

namespace harrow::router_internal {

namespace {

// RFC 3986 unreserved characters: the ones UrlEncode leaves as they are.
bool url_unreserved(char c) {
  return is_ascii_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

// Everything but RFC 3986's unreserved characters: what UrlEncode escapes.
bool url_reserved(unsigned char c) {
  return !url_unreserved(static_cast<char>(c));
}

}  // namespace

void to_lower_from(std::string& out, size_t from) {
  for (size_t i = from; i < out.size(); ++i) out[i] = ascii_lower(out[i]);
}

void url_decode_from(std::string& out, size_t from) {
  size_t w = from;
  for (size_t r = from; r < out.size(); ++r) {
    int hi = r + 2 < out.size() && out[r] == '%' ? hex_value(out[r + 1]) : -1;
    int lo = hi >= 0 ? hex_value(out[r + 2]) : -1;
    if (lo >= 0) {
      out[w++] = static_cast<char>(hi * 16 + lo);
      r += 2;
    } else {
      out[w++] = out[r];
    }
  }
  out.resize(w);
}

void html_encode_from(std::string& out, size_t from) {
  auto entity = [](char c) -> std::string_view {
    switch (c) {
      case '&':
        return "&amp;";
      case '<':
        return "&lt;";
      case '>':
        return "&gt;";
      case '"':
        return "&quot;";
      case '\'':
        return "&#39;";
      default:
        return {};
    }
  };
  size_t extra = 0;
  for (size_t i = from; i < out.size(); ++i) {
    std::string_view ent = entity(out[i]);
    if (!ent.empty()) extra += ent.size() - 1;
  }
  if (extra == 0) return;
  size_t r = out.size();
  out.resize(out.size() + extra);
  size_t w = out.size();
  while (r > from) {
    char c = out[--r];
    std::string_view ent = entity(c);
    if (ent.empty()) {
      out[--w] = c;
    } else {
      w -= ent.size();
      out.replace(w, ent.size(), ent);
    }
  }
}

void url_encode_from(std::string& out, size_t from) {
  percent_encode_from<url_reserved>(out, from);
}

void path_encode_from(std::string& out, size_t from) {
  percent_encode_from<path_byte_needs_escape>(out, from);
}

}  // namespace harrow::router_internal

#include "core/http1/url_path.h"

#include <cstring>

#include "core/base/ascii.h"

namespace harrow {
namespace {

bool is_control(unsigned char c) {
  return c < 0x20 || c == 0x7F;
}

bool refuse(Rejection& why, Failure failure, const char* detail) {
  why = {failure, detail};
  return false;
}

// True if `raw` is already canonical: begins with '/', holds no '%', '\' or control, and no
// segment is empty, "." or "..". Most paths are, and are then copied as they are.
bool already_canonical(std::string_view raw) {
  if (raw.empty() || raw.front() != '/') return false;
  for (size_t i = 0; i < raw.size(); ++i) {
    auto c = static_cast<unsigned char>(raw[i]);
    if (c == '%' || c == '\\' || is_control(c)) return false;
    if (c == '/' && i + 1 < raw.size() && (raw[i + 1] == '/' || raw[i + 1] == '.')) return false;
  }
  return true;
}

}  // namespace

bool canonicalize_path(std::string_view raw_path, const UrlLimits& limits, std::string& out,
                       Rejection& why) {
  if (already_canonical(raw_path)) {
    out.assign(raw_path);
    return true;
  }
  // 1. Decode once (http.sys), '\' as '/'.
  out.clear();
  if (raw_path.empty() || (raw_path.front() != '/' && raw_path.front() != '\\')) out += '/';
  for (size_t r = 0; r < raw_path.size(); ++r) {
    char c = raw_path[r];
    if (c == '%') {
      int hi = r + 2 < raw_path.size() ? hex_value(raw_path[r + 1]) : -1;
      int lo = hi >= 0 ? hex_value(raw_path[r + 2]) : -1;
      if (lo < 0) return refuse(why, Failure::bad_request, "invalid percent-escape in the path");
      c = static_cast<char>(hi * 16 + lo);
      r += 2;
    }
    if (is_control(static_cast<unsigned char>(c)))
      return refuse(why, Failure::bad_request, "control character in the decoded path");
    out += c == '\\' ? '/' : c;
  }
  // An overlong UTF-8 form ("%c0%ae" for '.', "%e0%80%af" for '/') is not UTF-8 (RFC 3629
  // §3): a server that decodes it anyway would see the dot segment or slash the rules never
  // judged.
  for (size_t i = 0; i < out.size(); ++i) {
    auto b = static_cast<unsigned char>(out[i]);
    auto next = i + 1 < out.size() ? static_cast<unsigned char>(out[i + 1]) : 0;
    if (b == 0xC0 || b == 0xC1 || (b == 0xE0 && next >= 0x80 && next < 0xA0) ||
        (b == 0xF0 && next >= 0x80 && next < 0x90))
      return refuse(why, Failure::bad_request, "overlong UTF-8 form in the decoded path");
  }
  // 2. A '%' that still reads as an escape was escaped twice (IIS request filtering: 404.11).
  if (!limits.allow_double_escaping) {
    for (size_t i = 0; i + 2 < out.size(); ++i) {
      if (out[i] == '%' && hex_value(out[i + 1]) >= 0 && hex_value(out[i + 2]) >= 0)
        return refuse(why, Failure::double_escaping, "double escaping in the path");
    }
  }
  // 3. Segments, in place: empty ones merged, "." dropped, ".." pops one (never past the root).
  // The write position never passes the read position, so one buffer is enough.
  size_t w = 0;
  size_t r = 0;
  const size_t n = out.size();
  auto end_with_slash = [&] {
    if (w == 0 || out[w - 1] != '/') out[w++] = '/';
  };
  while (r < n) {  // out[r] == '/'
    size_t start = r + 1;
    size_t end = start;
    while (end < n && out[end] != '/') ++end;
    bool last = end == n;
    size_t len = end - start;
    if (len == 0 || (len == 1 && out[start] == '.')) {
      if (last) end_with_slash();
    } else if (len == 2 && out[start] == '.' && out[start + 1] == '.') {
      if (w == 0) return refuse(why, Failure::bad_request, "'..' above the root of the path");
      while (w > 0 && out[w - 1] != '/') --w;
      if (w > 0) --w;  // the slash before the popped segment
      if (last) end_with_slash();
    } else {
      out[w++] = '/';
      std::memmove(&out[w], &out[start], len);
      w += len;
    }
    r = end;
  }
  if (w == 0) out[w++] = '/';
  out.resize(w);
  return true;
}

bool canonicalize_target(std::string_view target, const UrlLimits& limits, std::string& out,
                         Rejection& why) {
  if (target == "*") {
    out.assign(target);
    return true;
  }
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  if (path.size() > limits.max_url)
    return refuse(why, Failure::url_too_long, "URL longer than maxUrl");
  if (q != std::string_view::npos && target.size() - q - 1 > limits.max_query_string)
    return refuse(why, Failure::query_string_too_long, "query string longer than maxQueryString");
  return canonicalize_path(path, limits, out, why);
}

void append_encoded_path(std::string_view decoded, std::string& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : decoded) {
    auto b = static_cast<unsigned char>(c);
    if (path_byte_needs_escape(b)) {
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 0xF];
    } else {
      out += c;
    }
  }
}

std::string absolute_location(std::string_view url, bool https, std::string_view host) {
  auto has_scheme = [](std::string_view u) {
    size_t colon = u.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    for (size_t i = 0; i < colon; ++i) {
      char c = u[i];
      bool ok =
          is_ascii_alpha(c) || (i > 0 && (is_ascii_digit(c) || c == '+' || c == '-' || c == '.'));
      if (!ok) return false;
    }
    return true;
  };
  if (has_scheme(url)) return std::string(url);
  std::string scheme = https ? "https:" : "http:";
  if (url.size() >= 2 && url[0] == '/' && url[1] == '/') return scheme + std::string(url);
  if (host.empty()) return std::string(url);
  std::string out = scheme + "//" + std::string(host);
  if (url.empty() || url.front() != '/') out += '/';
  out.append(url);
  return out;
}

}  // namespace harrow

// The request path as IIS hands it to URL Rewrite: http.sys decodes percent-escapes, turns
// '\' into '/', merges repeated slashes and removes dot segments; request filtering refuses
// double escaping (404.11) and URLs or query strings over its limits (404.14, 404.15). Rules
// judge this canonical path, and Harrow forwards it (re-encoded), so the origin never sees a
// path that means something other than what the rules saw. No I/O here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/http1/request_checks.h"

namespace harrow {

// IIS's <requestFiltering allowDoubleEscaping> and <requestLimits maxUrl maxQueryString>.
struct UrlLimits {
  uint32_t max_url = 4096;           // bytes of the path as received: 404.14 above
  uint32_t max_query_string = 2048;  // bytes of the query string: 404.15 above
  bool allow_double_escaping = false;
};

// Canonicalizes `raw_path` (an origin-form path without its query, beginning with '/'; empty
// stands for "/") into `out`, decoded: %XX decoded once, '\' → '/', "//" → "/", "." and ".."
// segments removed (RFC 3986 §5.2.4). Refuses a '%' not followed by two hex digits (400), a
// control byte (< 0x20 or 0x7F) once decoded (400), ".." above the root (400), and a '%' that
// still reads as an escape once decoded (404 double_escaping) unless allowed. `out` is
// overwritten; it keeps its capacity, so a warm buffer does not allocate.
bool canonicalize_path(std::string_view raw_path, const UrlLimits& limits, std::string& out,
                       Rejection& why);

// Applies maxUrl and maxQueryString to an origin-form target ("/path?query"), then
// canonicalizes its path into `out`. An asterisk-form target ("*") is not a path: true, with
// `out` = "*".
bool canonicalize_target(std::string_view target, const UrlLimits& limits, std::string& out,
                         Rejection& why);

// Appends `decoded` to `out` escaped as a path: '%', '?', '#', space, controls and bytes
// >= 0x80 become %XX (upper-case hex); everything else, '/' included, stays as it is. So
// canonicalize_path(encode_path(p)) == p for every canonical p (a "%2F" the client sent is
// forwarded as '/': http.sys and URL Rewrite do the same).
void append_encoded_path(std::string_view decoded, std::string& out);

// True if `c` must be escaped in a forwarded path (what append_encoded_path escapes).
constexpr bool path_byte_needs_escape(unsigned char c) {
  return c <= 0x20 || c >= 0x7F || c == '%' || c == '?' || c == '#';
}

// A Redirect action's URL as IIS sends it in Location: absolute. "/x" and "x" (relative to the
// site root, as URL Rewrite reads its action URLs) become scheme://host/x, "//h/x" takes the
// request's scheme; an absolute URL is kept. `host` is the request's Host (with any port);
// without one the URL is left as it is.
std::string absolute_location(std::string_view url, bool https, std::string_view host);

}  // namespace harrow

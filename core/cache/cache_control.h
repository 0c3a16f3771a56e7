// Cache-Control directives (RFC 9111 §5.2) and the header values caching reads beside them:
// HTTP dates (Date, Expires, Last-Modified) and delta-seconds (Age, max-age). Pure parsing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace harrow::cache {

// The directives of one or more Cache-Control field values, merged. Durations are seconds;
// -1: the directive was absent.
struct CacheControl {
  bool present = false;  // at least one Cache-Control field
  bool no_store = false;
  bool no_cache =
      false;  // also a qualified no-cache="field": Harrow revalidates the whole response
  bool private_ = false;  // also a qualified private="field": a shared cache then does not store
  bool public_ = false;
  bool must_revalidate = false;  // and proxy-revalidate, which means the same to a shared cache
  bool only_if_cached = false;
  int64_t max_age = -1;
  int64_t s_maxage = -1;
  int64_t min_fresh = -1;
  int64_t stale_while_revalidate = -1;
  int64_t stale_if_error = -1;
};

// Adds the directives of one field value to `cc` (call once per Cache-Control field). Unknown
// directives are ignored; a duration that does not parse makes the directive mean what RFC
// 9111 §4.2.1 says of an invalid freshness value: stale (max-age=0).
void parse_cache_control(std::string_view value, CacheControl& cc);

// delta-seconds (RFC 9111 §1.2.2): digits only; values past 2^31 are taken as 2^31.
std::optional<int64_t> parse_delta_seconds(std::string_view text);

// An HTTP-date (RFC 9110 §5.6.7) in any of its three forms, as seconds since the epoch.
std::optional<int64_t> parse_http_date(std::string_view text);
// IMF-fixdate text of `seconds` ("Sun, 06 Nov 1994 08:49:37 GMT").
std::string format_http_date(int64_t seconds);

}  // namespace harrow::cache

// What RFC 9111 lets a shared cache do with a request and a response, and ARR's knobs over it
// (validationInterval, ARR_CACHE_CONTROL_OVERRIDE). No I/O, no clock: times come in.
//
// Harrow's choices where the RFC leaves room, all on the side of not storing:
// - Freshness must be explicit (s-maxage, max-age or Expires): no heuristic freshness.
// - A response with Set-Cookie is not stored (the cookie belongs to one client).
// - A request with Authorization is answered from and stored in the cache only if the
//   response says public, s-maxage or must-revalidate (RFC 9111 §3.5).
// - Range requests and responses other than 200/203/204/300/301/308/404/410 are not cached.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/cache/cache_control.h"
#include "core/cache/stored_response.h"
#include "core/http1/http_head.h"

namespace harrow::cache {

// What the request asks of caches.
struct RequestDirectives {
  bool cacheable_method = false;  // GET or HEAD
  bool head = false;
  bool authorization = false;
  bool range = false;
  bool no_store = false;
  bool no_cache = false;  // no-cache, max-age=0 or Pragma: no-cache: validate before reuse
  int64_t max_age = -1;
  int64_t min_fresh = -1;
};
RequestDirectives read_request(std::string_view method, std::span<const HeaderField> fields);

// ARR_CACHE_CONTROL_OVERRIDE, as ARR's Cache Control Rules set it: "1,<directives>" replaces
// the origin's Cache-Control always; "0,<directives>" only when the origin sent none.
struct CacheControlOverride {
  bool always = false;
  CacheControl directives;
};
std::optional<CacheControlOverride> parse_override(std::string_view value);

// The response fields caching reads.
struct ResponseFacts {
  CacheControl cc;
  std::optional<int64_t> date;
  bool has_expires = false;
  std::optional<int64_t> expires;  // absent with has_expires: invalid, i.e. already expired
  int64_t age = 0;
  std::string_view etag;
  std::string_view last_modified;
  bool set_cookie = false;
  bool vary_star = false;
  std::vector<std::string> vary;  // lower case, sorted, unique
};
ResponseFacts read_response(std::span<const HeaderField> fields);

struct StoreVerdict {
  bool store = false;
  const char* why_not = nullptr;  // static text when !store
  int64_t lifetime = 0;           // freshness lifetime, capped by validationInterval
};

// Whether a response to `request` may be stored. `validation_interval` (seconds, ARR's
// validationInterval) caps how long an entry is reused without asking the origin; 0: every
// reuse is validated (so only responses with a validator are worth keeping).
StoreVerdict decide_store(const RequestDirectives& request, int status, ResponseFacts& response,
                          int64_t validation_interval,
                          const std::optional<CacheControlOverride>& override_cc);

// RFC 9111 §4.2.3: the entry's age at `now`.
int64_t current_age(const StoredResponse& entry, int64_t now);

enum class Reuse : uint8_t {
  Fresh,     // serve as it is
  Stale,     // serve only after the origin validates it (or per stale-* extensions)
  Unusable,  // the request refuses it whatever the origin says (no validator to ask with)
};
Reuse judge(const StoredResponse& entry, const RequestDirectives& request, int64_t now);

// RFC 5861 §3 (stale-while-revalidate, a Harrow extension to ARR): whether `entry`, stale at
// `now` and with a validator, may answer while it is revalidated in the background. Not when
// it must be revalidated (must-revalidate, no-cache), the request limits the age it takes
// (max-age, min-fresh, no-cache) or its window has closed.
bool may_serve_while_revalidating(const StoredResponse& entry, const RequestDirectives& request,
                                  int64_t now);

// RFC 9111 §4.3.2: whether the request's conditionals are met by the entry that would answer
// it, so a 304 answers instead. If-None-Match decides when present (weak comparison, `*`
// matches); otherwise If-Modified-Since against the entry's Last-Modified, or its Date when it
// has none. Only a 2xx entry is answered so; an invalid date means no 304.
bool not_modified(const StoredResponse& entry, std::span<const HeaderField> request_fields);

// The stored fields a 304 from the cache carries (RFC 9110 §15.4.5): Cache-Control,
// Content-Location, Date, ETag, Expires, Vary, and Last-Modified when there is no ETag.
bool field_of_304(std::string_view name, bool has_etag);

// A 304 from the origin refreshes `entry`: its fields replace those of the same name (RFC 9111
// §4.3.4) and its times restart.
void refresh_from_304(StoredResponse& entry, std::span<const HeaderField> fields,
                      const ResponseFacts& facts, int64_t lifetime, int64_t request_time,
                      int64_t response_time);

// Whether a stored field is replayed: not framing, hop-by-hop, Age, Set-Cookie or `hit_header`.
bool replayable_field(std::string_view name, std::string_view hit_header);

}  // namespace harrow::cache

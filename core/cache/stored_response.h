// One response as the cache keeps it: what is replayed to a client (status, end-to-end header
// fields, body) and what judging its freshness needs (RFC 9111 §4.2.3 times, validators).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace harrow::cache {

struct StoredResponse {
  // Identity (cache_key.h): the primary key, its parts a purge matches, the Vary names (lower
  // case, sorted) and the request's values of them.
  std::string primary_key;
  std::string host;  // lower case, as keyed
  std::string url;   // path[?query], as keyed
  std::vector<std::string> vary;
  std::string secondary_key;

  int status = 200;
  std::string reason;
  // End-to-end fields in order; never framing (Content-Length, Transfer-Encoding), hop-by-hop
  // fields, Age, Set-Cookie or the cache-hit header: those are written per reply.
  std::vector<std::pair<std::string, std::string>> fields;
  std::string body;

  // Seconds since the epoch; age_value from the response's Age; lifetime after the
  // validationInterval cap.
  int64_t request_time = 0;
  int64_t response_time = 0;
  int64_t date_value = 0;
  int64_t age_value = 0;
  int64_t lifetime = 0;
  bool must_revalidate = false;         // stale is never served without the origin's word
  int64_t stale_while_revalidate = -1;  // Harrow extensions (-1: none)
  int64_t stale_if_error = -1;
  std::string etag;
  std::string last_modified;

  // What the entry costs the memory tier: its bytes plus a fixed share for the bookkeeping.
  size_t charge() const {
    size_t n = sizeof(StoredResponse) + 128 + primary_key.size() + host.size() + url.size() +
               secondary_key.size() + reason.size() + body.size() + etag.size() +
               last_modified.size();
    for (const std::string& v : vary) n += v.size() + sizeof(std::string);
    for (const auto& [name, value] : fields) n += name.size() + value.size() + 2 * sizeof(name);
    return n;
  }
};

}  // namespace harrow::cache

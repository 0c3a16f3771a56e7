// Cache keys. The primary key names what the origin was asked: the farm, the Host (lower
// case), the canonical path and, per ARR's queryStringHandling, the query, then the upstream
// target and the request headers rules set (they change what the origin is sent). Nothing
// else of the request goes in: headers that are not keyed (X-Forwarded-Host, X-Original-URL,
// ...) must not change the response, and a response that depends on a request header must say
// so with Vary, whose values make the secondary key.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/http1/http_head.h"

namespace harrow::cache {

enum class QueryStringHandling : uint8_t { Ignore, NoCaching, Accept };

struct KeyParts {
  std::string_view farm;
  std::string_view host;    // the request's Host (any case)
  std::string_view path;    // canonical path
  std::string_view query;   // without '?'; empty: none
  std::string_view target;  // the origin-form target sent upstream
  std::span<const std::pair<std::string, std::string>> rule_headers;
};

// The key's host and url parts (what a purge matches), and the whole key.
struct PrimaryKey {
  std::string host;  // lower case
  std::string url;   // path[?query]
  std::string key;
};

// False when queryStringHandling says a request with a query is not cached (NoCaching).
bool make_primary_key(const KeyParts& parts, QueryStringHandling query, PrimaryKey& out);

// The secondary key: for each Vary name (lower case, sorted), the request's values of it,
// whitespace around commas dropped.
std::string secondary_key(std::span<const std::string> vary, std::span<const HeaderField> fields);

}  // namespace harrow::cache

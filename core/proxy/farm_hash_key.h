// What a RequestHash farm hashes (ARR's <loadBalancing hashServerVariable queryStringNames>),
// compiled once per config snapshot per farm: the URL by default, one server variable, or
// the values of chosen query-string parameters.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/http1/http_head.h"
#include "core/rewrite/router.h"

namespace harrow {

class FarmHashKey {
 public:
  explicit FarmHashKey(const config::LoadBalancingConfig& balancing);

  // The hash of the request's key. `rule_headers` are the headers the rules set (they win
  // over the client's for HTTP_* variables, as in IIS). `buffer` is working memory the
  // caller keeps between requests, so hashing does not allocate once it is warm.
  uint64_t hash(const RequestFacts& facts, std::span<const HeaderField> rule_headers,
                std::string& buffer) const;

  // Whether `name` is a server variable this can hash (built-ins and any HTTP_*).
  static bool knows_variable(std::string_view name);

 private:
  enum class Source : uint8_t {
    Url,  // path and query as the client sent them (ARR's "request hash")
    QueryNames,
    Host,
    QueryString,
    Path,
    Method,
    RemoteAddr,
    ServerPort,
    Https,
    Header,
  };
  Source source_ = Source::Url;
  std::string header_;                    // Source::Header: lower-case header name
  std::vector<std::string> query_names_;  // Source::QueryNames, in the configured order
};

}  // namespace harrow

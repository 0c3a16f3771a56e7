// Every way Harrow can fail a request, named once. The X-macro gives the enum, the token that
// the logs and the metric label carry, and the status Harrow answers with (0 = no response can
// be sent, e.g. the client went away).
#pragma once

#include <cstdint>
#include <string_view>

namespace harrow {

// X(name, status, description)
#define HARROW_FAILURES(X)                                                                        \
  X(bad_request, 400, "the request could not be parsed")                                          \
  X(request_header_too_large, 431, "the request head exceeds the configured limit")               \
  X(bad_framing, 400,                                                                             \
    "the request's framing (Content-Length, Transfer-Encoding, chunks) is invalid or ambiguous")  \
  X(bad_host, 400, "the Host is missing, repeated, malformed or disagrees with the target")       \
  X(request_line_too_large, 414, "the request line exceeds the configured limit")                 \
  X(request_body_too_large, 413, "the request body exceeds maxAllowedContentLength")              \
  X(method_not_allowed, 405, "CONNECT, or TRACE without allowTrace")                              \
  X(http_version_not_supported, 505, "a well-formed HTTP version other than 1.0 and 1.1")         \
  X(overloaded, 503, "the worker is at its connection limit (maxConnections)")                    \
  X(client_connection_limit, 503, "the client IP holds maxConnectionsPerClient already")          \
  X(client_header_timeout, 408, "the request head did not arrive in time")                        \
  X(client_body_timeout, 408, "the request body stalled (clientBody)")                            \
  X(client_aborted, 0, "the client closed the connection before the response was complete")       \
  X(client_send_timeout, 0, "the client stopped reading the response")                            \
  X(invalid_hostname, 400,                                                                        \
    "the Host matches no site binding on this listener (IIS: Invalid Hostname)")                  \
  X(no_route, 404, "no rewrite rule sends this request to a web farm")                            \
  X(rule_aborted, 0, "an AbortRequest rule closed the connection")                                \
  X(no_server, 503, "the web farm has no available server")                                       \
  X(affinity_unavailable, 503,                                                                    \
    "the server the affinity cookie names is unavailable and the farm says Return503")            \
  X(upstream_connect_refused, 502, "the server refused the connection")                           \
  X(upstream_connect_failed, 502, "the connection to the server failed")                          \
  X(upstream_connect_timeout, 502, "the connection to the server timed out")                      \
  X(upstream_reset, 502, "the server reset or closed the connection")                             \
  X(upstream_invalid_response, 502, "the server's response could not be parsed")                  \
  X(proxy_target_unknown, 502,                                                                    \
    "the rule rewrites to a host that was not in the configuration when it loaded")               \
  X(upstream_tls, 502,                                                                            \
    "the TLS handshake with the server failed (certificate not trusted or not for its name)")     \
  X(upstream_timeout, 504, "the server did not answer within the farm's protocol timeout")        \
  X(upstream_truncated, 0, "the server closed the connection in the middle of the body")          \
  X(unsafe_rewrite, 500,                                                                          \
    "a rule produced a request line, header, status reason or Location with CR, LF, NUL or "      \
    "another control character")                                                                  \
  X(double_escaping, 404, "the path is still percent-escaped once decoded (IIS 404.11)")          \
  X(url_too_long, 404, "the path exceeds requestLimits maxUrl (IIS 404.14)")                      \
  X(query_string_too_long, 404,                                                                   \
    "the query string exceeds requestLimits maxQueryString (IIS 404.15)")                         \
  X(rule_match_error, 500,                                                                        \
    "a rule's pattern could not be evaluated (a regex limit was reached): failed closed")         \
  X(h2_protocol_error, 0, "the client broke the HTTP/2 protocol: GOAWAY, connection closed")      \
  X(h2_flood, 0,                                                                                  \
    "the client sent SETTINGS, PING, empty DATA, invalid or refused-stream frames, or oversized " \
    "header lists, faster than the limit (GOAWAY ENHANCE_YOUR_CALM)")                             \
  X(h2_rapid_reset, 0,                                                                            \
    "the client reset streams faster than the limit (rapid reset, CVE-2023-44487)")               \
  X(h2_continuation_flood, 0,                                                                     \
    "the client sent a header block in more CONTINUATION frames than allowed")

enum class Failure : uint8_t {
#define HARROW_FAILURE_ENUM(name, status, description) name,
  HARROW_FAILURES(HARROW_FAILURE_ENUM)
#undef HARROW_FAILURE_ENUM
};

inline constexpr int kFailureCount = 0
#define HARROW_FAILURE_COUNT(name, status, description) +1
    HARROW_FAILURES(HARROW_FAILURE_COUNT)
#undef HARROW_FAILURE_COUNT
    ;

constexpr std::string_view failure_token(Failure f) {
  switch (f) {
#define HARROW_FAILURE_TOKEN(name, status, description) \
  case Failure::name:                                   \
    return #name;
    HARROW_FAILURES(HARROW_FAILURE_TOKEN)
#undef HARROW_FAILURE_TOKEN
  }
  return "unknown";
}

constexpr int failure_status(Failure f) {
  switch (f) {
#define HARROW_FAILURE_STATUS(name, status, description) \
  case Failure::name:                                    \
    return status;
    HARROW_FAILURES(HARROW_FAILURE_STATUS)
#undef HARROW_FAILURE_STATUS
  }
  return 500;
}

constexpr std::string_view failure_description(Failure f) {
  switch (f) {
#define HARROW_FAILURE_DESCRIPTION(name, status, description) \
  case Failure::name:                                         \
    return description;
    HARROW_FAILURES(HARROW_FAILURE_DESCRIPTION)
#undef HARROW_FAILURE_DESCRIPTION
  }
  return "";
}

}  // namespace harrow

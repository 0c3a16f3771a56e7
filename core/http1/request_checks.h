// What Harrow refuses to forward. llhttp's strict mode is the parser, but it accepts things a
// front-door proxy must not (obs-fold, whitespace before the colon, bare LF line endings,
// HTTP/0.9 request lines, unbounded chunk-size lines, TE on HTTP/1.0, …) and has no size limits.
// RequestFramer reads the raw bytes of a connection first and vouches for them before llhttp
// sees them; check_request_head() judges the parsed head. No I/O here: unit- and fuzz-testable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/base/failure.h"
#include "core/http1/http_head.h"

namespace harrow {

struct RequestLimits {
  uint32_t max_request_line = 8 * 1024;   // method, target and version: 414 above
  uint32_t max_header_bytes = 64 * 1024;  // header section, CRLFs included: 431 above
  uint32_t max_header_count = 100;        // header fields: 431 above
  uint64_t max_body = 30'000'000;         // IIS maxAllowedContentLength: 413 above
  uint32_t max_chunk_line = 1024;         // chunk size with its extensions: 400 above
  bool allow_trace = false;               // TRACE: 405 unless allowed
};

// Why a request is refused: the failure (status, token) and a static detail for the log.
struct Rejection {
  Failure failure = Failure::bad_request;
  const char* detail = nullptr;
};

// Validates the byte stream of one client connection message by message, RFC 9112 to the
// letter: CRLF only, no obs-fold, token names followed at once by ':', field values without
// controls, a request line of exactly "token SP target SP HTTP/d.d", chunk framing and trailers
// as strict, and the limits. It stops at the end of each head (the body's framing comes from
// the parsed head through begin_body()) and at the end of each message (next_message()), so it
// never judges a pipelined request while the one before it is still being answered.
class RequestFramer {
 public:
  void reset(const RequestLimits& limits);

  // Scans up to `len` bytes and returns how many it has taken: all of them, or fewer when it
  // stops at the end of a head or a message, or fails (then failed() is true). Of the bytes
  // taken, the last held() are not vouched for yet.
  size_t scan(const char* data, size_t len);
  // An HTTP version is judged whole (505 or 400), so its bytes wait until it is complete.
  uint32_t held() const { return state_ == State::Version ? version_len_ : 0; }

  bool failed() const { return state_ == State::Failed; }
  const Rejection& rejection() const { return rejection_; }
  // The head has ended; scan() makes no progress until begin_body().
  bool head_done() const { return state_ == State::HeadDone; }
  bool message_done() const { return state_ == State::MessageDone; }
  // No byte of a next message seen yet: the state reset() leaves.
  bool between_messages() const { return state_ == State::Start; }
  // After the head: the body's framing as the parsed head declares it.
  void begin_body(bool chunked, uint64_t content_length);
  // After the message: the next bytes begin a new request.
  void next_message();
  // The connection stops being HTTP (an upgrade): everything is vouched for from now on.
  void tunnel() { state_ = State::Tunnel; }
  // Body bytes of the current message (chunk data, not framing).
  uint64_t body_bytes() const { return body_bytes_; }

 private:
  enum class State : uint8_t {
    Start,    // before a request line; empty lines (CRLF) allowed
    StartLF,  // CR of an empty line seen
    Method,
    Target,
    Version,
    RequestLineLF,  // CR after the version seen
    LineStart,      // start of a header line (or the blank line)
    Name,
    Value,
    ValueLF,  // CR after a value seen
    EndLF,    // CR of the blank line seen
    HeadDone,
    Length,  // Content-Length body
    ChunkSize,
    ChunkExt,
    ChunkSizeLF,
    ChunkData,
    ChunkDataCR,
    ChunkDataLF,
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerValueLF,
    TrailerEndLF,
    MessageDone,
    Tunnel,
    Failed,
  };
  size_t fail(Failure failure, const char* detail, size_t vouched);

  RequestLimits limits_;
  State state_ = State::Start;
  Rejection rejection_;
  uint32_t line_bytes_ = 0;     // bytes of the current request line or chunk line
  uint32_t section_bytes_ = 0;  // bytes of the header (or trailer) section so far
  uint32_t field_count_ = 0;
  uint32_t token_len_ = 0;  // length of the method / name / chunk-size digits so far
  char version_[8] = {};
  uint32_t version_len_ = 0;
  bool version_supported_ = false;
  uint64_t remaining_ = 0;  // of a Content-Length body or the current chunk
  uint64_t body_bytes_ = 0;
};

// What the head says, as llhttp parsed it.
struct ParsedRequest {
  std::string_view method;  // llhttp's name for it ("GET", "CONNECT", …)
  const MessageHead* head = nullptr;
  int http_major = 1;
  int http_minor = 1;
  bool chunked = false;
  bool has_content_length = false;
  uint64_t content_length = 0;
};

// Judges a parsed head: Host (present once on HTTP/1.1, well formed, agreeing with an
// absolute-form target), the request-target's form, Transfer-Encoding (exactly "chunked", and
// never on HTTP/1.0), methods (CONNECT, TRACE) and the declared body size. True if the request
// may go on; otherwise `out` says why.
bool check_request_head(const ParsedRequest& req, const RequestLimits& limits, Rejection& out);

// The framer's byte rules, for a head that arrives in parts (RequestDecoder::decode_fields()):
// a token (RFC 9110 §5.6.2: a method, a field name) and a request-target's bytes.
bool is_token(std::string_view s);
bool is_request_target(std::string_view s);

// A request-target split as RFC 9112 §3.2.2 reads it: an absolute-form target
// ("http://host:port/path?q") names its resource by path and query, and its authority stands
// for Host. An origin-form ("/path?q") or asterisk-form target is all `path`, with no authority.
struct TargetParts {
  std::string_view authority;  // empty unless absolute-form
  std::string_view path;       // path and query; may be empty or begin with '?' (absolute-form)
  bool absolute = false;
};
TargetParts split_target(std::string_view target);

}  // namespace harrow

// The server side of HTTP/2, without I/O: Harrow builds every upstream request as HTTP/1.1
// bytes and reads every upstream response with its HTTP/1.1 parser, whatever the server speaks.
// For a farm spoken to over HTTP/2 these two translators stand between those bytes and the
// frames:
//  * RequestTranslator parses the HTTP/1.1 request Harrow wrote (head, then a body framed by
//    Content-Length or chunked) into the request's HTTP/2 fields and body bytes;
//  * the response functions turn the server's HTTP/2 fields, DATA and trailers back into the
//    HTTP/1.1 response bytes the parser expects (chunked when no Content-Length says the length).
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/http2/connection_specific.h"

namespace harrow::http2 {

// One HTTP/2 field, name in lower case.
struct Field {
  std::string name;
  std::string value;
};

// What a RequestTranslator produces, in order: the head once, body bytes, the end.
class RequestSink {
 public:
  // `fields`: the pseudo-header fields (:method, :scheme, :authority, :path) first, then the
  // request's own fields without the connection-specific ones (RFC 9113 §8.2.2). `has_body`
  // false: the request ends with its head.
  virtual void request_head(std::span<const Field> fields, bool has_body) = 0;
  virtual void request_body(const char* data, size_t len) = 0;
  // Only after a head with a body.
  virtual void request_end() = 0;

 protected:
  ~RequestSink() = default;
};

class RequestTranslator {
 public:
  // `scheme`: "http" (h2c) or "https".
  explicit RequestTranslator(std::string_view scheme);
  RequestTranslator(const RequestTranslator&) = delete;
  RequestTranslator& operator=(const RequestTranslator&) = delete;

  // Feeds the next bytes of the HTTP/1.1 request, in any pieces. False: they are not one
  // HTTP/1.1 request (error() says why); nothing more is produced.
  bool feed(const char* data, size_t len, RequestSink& sink);
  bool done() const { return done_; }
  const char* error() const { return error_; }

 private:
  static int on_url(llhttp_t* p, const char* at, size_t len);
  static int on_header_field(llhttp_t* p, const char* at, size_t len);
  static int on_header_value(llhttp_t* p, const char* at, size_t len);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, size_t len);
  static int on_message_complete(llhttp_t* p);
  // Turns the collected head into fields and hands them to the sink.
  void finish_head(bool has_body);

  llhttp_t parser_{};
  llhttp_settings_t settings_{};
  std::string scheme_;
  std::string target_;
  std::vector<Field> raw_;  // the head's fields as written (names lower-cased)
  std::vector<Field> fields_;
  bool in_value_ = false;
  bool head_done_ = false;
  bool has_body_ = false;
  bool done_ = false;
  const char* error_ = nullptr;
  RequestSink* sink_ = nullptr;
};

// The HTTP/1.1 status line and fields for a response head received over HTTP/2 (`fields`
// without the pseudo-header fields). Without a Content-Length the body is sent chunked
// (`chunked` set) unless none can follow: `end_stream` (the HEADERS frame ended the stream:
// "content-length: 0" is added when the status allows a body), a 1xx, 204 or 304, or a response
// to HEAD. Fields whose names or values could break the HTTP/1.1 framing are dropped.
std::string response_head_bytes(int status, std::span<const Field> fields, bool end_stream,
                                bool head_request, bool& chunked);
// One chunk of a chunked body (nothing for an empty piece: that would end the body).
void append_chunk(std::string& out, const char* data, size_t len);
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace harrow::http2

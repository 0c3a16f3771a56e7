// The HTTP/1 request decoder, without I/O: RequestFramer vouches for bytes (RFC 9112 to the
// letter), llhttp parses only those, and check_request_head() judges each head. The caller
// hands it the bytes it has not consumed yet and is told how many it may drop; the decoder
// stops after each head (the body must not be parsed before there is somewhere to send it) and
// after each message (a pipelined request waits until the one before it is answered).
//
// ClientConnection drives it on sockets and the fuzz targets drive it on byte strings: both run
// this code, so what the fuzzers explore is what a client meets.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "core/base/failure.h"
#include "core/http1/http_head.h"
#include "core/http1/request_checks.h"

namespace harrow {

// What the decoder reports while it runs (from inside decode()).
class RequestDecoderEvents {
 public:
  // The first byte of a request: the decoder has reset the head it fills.
  virtual void request_begin() = 0;
  // The head is parsed and judged (RequestDecoder::head_rejected()); decode() returns Paused.
  virtual void request_head() = 0;
  // A piece of the body as decoded (chunk framing removed). Trailer fields are dropped.
  virtual void request_body(const char* data, size_t len) = 0;
  // The message is whole; decode() returns Paused.
  virtual void request_end() = 0;

 protected:
  ~RequestDecoderEvents() = default;
};

class RequestDecoder {
 public:
  enum class Status : uint8_t {
    NeedInput,  // every byte given was consumed or waits for more
    Paused,     // after a head or a message end; resume() goes on
    Rejected,   // rejection() says why; nothing after the fault was consumed
  };
  struct Step {
    Status status;
    uint32_t consumed;  // bytes from the front of the input the caller may drop
  };

  // Starts a connection's first message (or a fresh one after a give-back). `head` is filled by
  // the decoder and must outlive its use; `events` receives the callbacks.
  void reset(const RequestLimits& limits, MessageHead* head, RequestDecoderEvents* events);

  // Decodes `data` (`len` bytes the caller has not consumed yet; the same bytes again, behind
  // whatever was consumed, on the next call).
  Step decode(const char* data, uint32_t len);
  // A request head that arrived as fields (HTTP/2, core/http2/request_head.h): `method`,
  // `target` and `fields` are exactly the request line and fields of the HTTP/1.1 head the
  // request stands for. When every byte and size is plainly within the rules, and nothing in
  // the head is one llhttp would have to interpret (a method beyond the common ones, a field
  // about the connection, a Transfer-Encoding but Harrow's own "chunked", a Content-Length
  // that is not one plain number), the head is filled and judged here, as decode() fills and
  // judges it, and the events run as for decode(): true. Otherwise nothing has happened and
  // the caller decodes the text instead (every odd case takes the one road of decode()):
  // false. Tests hold the two roads to the same head and the same judgement.
  bool decode_fields(std::string_view method, std::string_view target,
                     std::span<const HeaderField> fields);
  // After a Paused step: the next decode() runs even without new bytes (llhttp may owe a
  // callback, such as the end of a body-less request right after its head).
  void resume();

  bool paused() const { return paused_; }
  // decode() has work without new input.
  bool owes_callbacks() const { return owes_callbacks_; }
  // Nothing of a next message is held in the decoder's state: it may be discarded.
  bool between_messages() const {
    return !paused_ && !owes_callbacks_ && framer_.between_messages();
  }
  // The connection stops being HTTP (a WebSocket tunnel): no more decoding.
  void tunnel() { framer_.tunnel(); }

  // --- the head just parsed (valid from request_head() to the next request_begin())
  // check_request_head() refused it (rejection() says why); its body is not read.
  bool head_rejected() const { return head_rejected_; }
  const Rejection& rejection() const { return rejection_; }
  llhttp_method_t method() const { return method_; }
  const char* method_name() const { return llhttp_method_name(method()); }
  int http_major() const { return http_major_; }
  int http_minor() const { return http_minor_; }
  bool http11() const { return http_major_ == 1 && http_minor_ == 1; }
  bool keep_alive() const { return keep_alive_; }
  bool chunked() const { return chunked_; }
  bool has_body() const { return has_body_; }
  // A WebSocket handshake (RFC 6455 §4.1: GET over HTTP/1.1, no body, the upgrade fields).
  bool websocket() const { return websocket_; }
  // An Upgrade header of any kind: HTTP ends on this connection whatever the answer.
  bool upgrade() const { return upgrade_; }

 private:
  static const llhttp_settings_t* settings();
  static RequestDecoder* from(llhttp_t* p) { return static_cast<RequestDecoder*>(p->data); }
  static int on_message_begin(llhttp_t* p);
  static int on_url(llhttp_t* p, const char* at, size_t len);
  static int on_header_field(llhttp_t* p, const char* at, size_t len);
  static int on_header_value(llhttp_t* p, const char* at, size_t len);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, size_t len);
  static int on_message_complete(llhttp_t* p);
  // Judges the head from the facts set (method_ … content_length_), by either road.
  void judge_head();
  static Failure failure_for_parse_error(llhttp_errno_t rc);

  llhttp_t parser_{};
  RequestFramer framer_;
  RequestLimits limits_;
  MessageHead* head_ = nullptr;
  RequestDecoderEvents* events_ = nullptr;
  Rejection rejection_;
  uint64_t content_length_ = 0;
  llhttp_method_t method_ = HTTP_GET;
  uint8_t http_major_ = 1;
  uint8_t http_minor_ = 1;
  bool has_length_ = false;
  uint32_t framer_ahead_ = 0;  // bytes the framer scanned that llhttp has not consumed
  bool paused_ = false;
  bool owes_callbacks_ = false;
  bool reading_head_ = false;  // between a message's begin and its head's end
  bool head_too_large_ = false;
  bool head_rejected_ = false;
  bool keep_alive_ = true;
  bool chunked_ = false;
  bool has_body_ = false;
  bool websocket_ = false;
  bool upgrade_ = false;
};

}  // namespace harrow

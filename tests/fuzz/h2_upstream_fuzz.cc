// The server side of HTTP/2 (core/http2/upstream_message.h) against what a hostile server, or
// an odd request, could hand it:
//  * the response translator gets arbitrary fields (any bytes in names and values, any status,
//    end of stream or not, a body in pieces) and what it writes must parse, with strict llhttp,
//    as exactly one HTTP/1.1 response with that status, whose every field is one the server
//    sent (bar the framing Harrow adds), and whose chunked body is the body given;
//  * the request translator gets the input as HTTP/1.1 request bytes in pieces, and must either
//    refuse them or produce one head whose fields carry no connection-specific field.
// Input: byte 0 picks the status, byte 1 the flags and piece size; the rest is split at 0x00
// into name, value, name, value, … (a trailing odd piece is the body).
#include <llhttp.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/http2/upstream_message.h"

namespace {

using harrow::http2::Field;

struct Parsed {
  int status = 0;
  int heads = 0;
  bool complete = false;
  std::vector<std::string> names;
  std::string body;
  std::string field;
};

int on_field(llhttp_t* p, const char* at, size_t len) {
  auto* r = static_cast<Parsed*>(p->data);
  r->field.append(at, len);
  return 0;
}
int on_field_complete(llhttp_t* p) {
  auto* r = static_cast<Parsed*>(p->data);
  r->names.push_back(r->field);
  r->field.clear();
  return 0;
}
int on_headers_complete(llhttp_t* p) {
  auto* r = static_cast<Parsed*>(p->data);
  r->status = p->status_code;
  ++r->heads;
  return 0;
}
int on_body(llhttp_t* p, const char* at, size_t len) {
  static_cast<Parsed*>(p->data)->body.append(at, len);
  return 0;
}
int on_message_complete(llhttp_t* p) {
  static_cast<Parsed*>(p->data)->complete = true;
  return HPE_PAUSED;
}

class Sink final : public harrow::http2::RequestSink {
 public:
  void request_head(std::span<const Field> fields, bool) override {
    ++heads;
    for (const Field& f : fields) {
      if (harrow::http2::connection_specific(f.name)) __builtin_trap();
    }
  }
  void request_body(const char*, size_t) override {}
  void request_end() override {}
  int heads = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  int status = 100 + data[0] % 500;  // 100..599, as nghttp2 lets a :status through
  bool end_stream = (data[1] & 1) != 0;
  bool head_request = (data[1] & 2) != 0;
  size_t piece = 1 + (data[1] >> 2);
  std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);

  std::vector<Field> fields;
  std::string body;
  while (!rest.empty()) {
    size_t end = rest.find('\0');
    std::string_view name = rest.substr(0, end);
    if (end == std::string_view::npos) {
      body.assign(name);
      break;
    }
    rest.remove_prefix(end + 1);
    end = rest.find('\0');
    fields.push_back({std::string(name), std::string(rest.substr(0, end))});
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
  }

  bool chunked = false;
  std::string out = harrow::http2::response_head_bytes(status, fields, end_stream && body.empty(),
                                                       head_request, chunked);
  if (chunked) {
    for (size_t at = 0; at < body.size(); at += piece) {
      harrow::http2::append_chunk(out, body.data() + at, std::min(piece, body.size() - at));
    }
    out.append(harrow::http2::kLastChunk);
  }
  bool declared_length = false;
  for (const Field& f : fields) declared_length = declared_length || f.name == "content-length";

  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_header_field = on_field;
  settings.on_header_field_complete = on_field_complete;
  settings.on_headers_complete = on_headers_complete;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;
  llhttp_t parser;
  llhttp_init(&parser, HTTP_RESPONSE, &settings);
  Parsed parsed;
  parser.data = &parsed;
  llhttp_errno_t rc = llhttp_execute(&parser, out.data(), out.size());
  if (rc == HPE_OK && !declared_length && !head_request) llhttp_finish(&parser);
  if (parsed.heads > 1) __builtin_trap();  // one head, never two
  if (parsed.heads == 1) {
    if (parsed.status != status) __builtin_trap();
    // Every field is one the server sent, or the framing Harrow adds itself.
    for (const std::string& name : parsed.names) {
      bool sent = name == "transfer-encoding" || name == "content-length";
      for (const Field& f : fields) sent = sent || f.name == name;
      if (!sent) __builtin_trap();
    }
    if (chunked && rc == HPE_PAUSED && parsed.body != body) __builtin_trap();
  } else if (rc == HPE_OK || rc == HPE_PAUSED) {
    __builtin_trap();  // Harrow's own bytes parsed without a head
  }

  // The request translator over the same bytes as an HTTP/1.1 request, in pieces.
  harrow::http2::RequestTranslator translator("https");
  Sink sink;
  std::string_view request(reinterpret_cast<const char*>(data + 2), size - 2);
  for (size_t at = 0; at < request.size(); at += piece) {
    if (!translator.feed(request.data() + at, std::min(piece, request.size() - at), sink)) break;
  }
  if (sink.heads > 1) __builtin_trap();
  return 0;
}

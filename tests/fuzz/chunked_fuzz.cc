// Chunked decoding: the input is a chunked request body. Harrow (RequestFramer + llhttp) and
// llhttp on its own must agree on where the message ends and what the body is whenever Harrow
// accepts it; the body Harrow re-chunks for the origin must decode to the same bytes.
#include <llhttp.h>

#include <cstdint>
#include <string>

#include "request_driver.h"

namespace {

struct Plain {
  std::string body;
  bool complete = false;
  size_t end = 0;
};

Plain llhttp_alone(const std::string& text) {
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_body = [](llhttp_t* p, const char* at, size_t len) {
    static_cast<Plain*>(p->data)->body.append(at, len);
    return 0;
  };
  s.on_message_complete = [](llhttp_t* p) {
    static_cast<Plain*>(p->data)->complete = true;
    return static_cast<int>(HPE_PAUSED);
  };
  Plain out;
  llhttp_t parser;
  llhttp_init(&parser, HTTP_REQUEST, &s);
  parser.data = &out;
  llhttp_errno_t rc = llhttp_execute(&parser, text.data(), text.size());
  if (rc == HPE_PAUSED) out.end = static_cast<size_t>(llhttp_get_error_pos(&parser) - text.data());
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace harrow::testing;
  if (size > 16384) return 0;  // bigger bodies add time, not states (the limits are tested)
  std::string text = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  text.append(reinterpret_cast<const char*>(data), size);
  harrow::RequestLimits limits;
  limits.max_body = 1 << 16;
  limits.max_chunk_line = 64;
  RequestDriver driver(limits);
  Decision d = driver.run(text, size % 61 + 1);
  if (!d.forwarded) return 0;
  Plain plain = llhttp_alone(text);
  if (!plain.complete || plain.end != d.consumed || plain.body != d.body) __builtin_trap();
  ParsedUpstream up = parse_upstream(d.upstream);
  if (up.error || up.messages != 1 || up.body != d.body) __builtin_trap();
  return 0;
}

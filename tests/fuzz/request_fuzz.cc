// Fuzzes what Harrow does with request bytes from the network before any socket is
// involved: llhttp in its strict default mode feeding MessageHead (split at an arbitrary
// point, as reads split it), then the upstream request written from the collected head.
#include <llhttp.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "core/http_head.h"

namespace {

struct State {
  harrow::MessageHead head;
  bool too_large = false;
  bool complete = false;
};

int on_url(llhttp_t* p, const char* at, size_t len) {
  auto* s = static_cast<State*>(p->data);
  if (!s->head.on_target(at, len)) s->too_large = true;
  return s->too_large ? -1 : 0;
}
int on_field(llhttp_t* p, const char* at, size_t len) {
  auto* s = static_cast<State*>(p->data);
  if (!s->head.on_field(at, len)) s->too_large = true;
  return s->too_large ? -1 : 0;
}
int on_value(llhttp_t* p, const char* at, size_t len) {
  auto* s = static_cast<State*>(p->data);
  if (!s->head.on_value(at, len)) s->too_large = true;
  return s->too_large ? -1 : 0;
}
int on_headers_complete(llhttp_t* p) {
  auto* s = static_cast<State*>(p->data);
  s->head.finish();
  s->complete = true;
  return HPE_PAUSED;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_url = on_url;
  settings.on_header_field = on_field;
  settings.on_header_value = on_value;
  settings.on_headers_complete = on_headers_complete;
  State state;
  state.head.reset(4096);
  llhttp_t parser;
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  parser.data = &state;
  // The first byte picks where the input is split in two reads.
  size_t split = data[0] % size;
  const char* text = reinterpret_cast<const char*>(data + 1);
  size_t len = size - 1;
  split = split > len ? len : split;
  llhttp_errno_t rc = llhttp_execute(&parser, text, split);
  if (rc == HPE_OK) llhttp_execute(&parser, text + split, len - split);
  if (state.complete) {
    char out[8192];
    harrow::HeadWriter writer(out, sizeof out);
    harrow::UpstreamRequest req;
    req.method = llhttp_method_name(static_cast<llhttp_method_t>(parser.method));
    req.target = state.head.target();
    req.head = &state.head;
    req.host = state.head.find("host");
    req.chunked_body = (parser.flags & F_CHUNKED) != 0;
    req.forwarded_for_name = "X-Forwarded-For";
    req.forwarded_for_value = "127.0.0.1:1";
    harrow::write_upstream_request(req, writer);
    if (!writer.overflowed() && writer.size() < 4) __builtin_trap();  // always has a request line
  }
  return 0;
}

// The response path: bytes from a server are parsed as UpstreamConnection does (llhttp
// response mode into a MessageHead with a size limit) and the head Harrow writes to the client
// must parse, with strict llhttp, as exactly one response head with the same status, and carry
// no field the server did not send (bar Harrow's own).
#include <llhttp.h>

#include <cstdint>
#include <string>

#include "core/base/ascii.h"
#include "core/http1/http_head.h"

namespace {

struct Upstream {
  harrow::MessageHead head;
  bool complete = false;
  int status = 0;
};

int on_status(llhttp_t* p, const char* at, size_t len) {
  return static_cast<Upstream*>(p->data)->head.on_reason(at, len) ? 0 : -1;
}
int on_field(llhttp_t* p, const char* at, size_t len) {
  return static_cast<Upstream*>(p->data)->head.on_field(at, len) ? 0 : -1;
}
int on_value(llhttp_t* p, const char* at, size_t len) {
  return static_cast<Upstream*>(p->data)->head.on_value(at, len) ? 0 : -1;
}
int on_headers_complete(llhttp_t* p) {
  auto* u = static_cast<Upstream*>(p->data);
  u->head.finish();
  u->status = p->status_code;
  u->complete = true;
  return HPE_PAUSED;
}

struct Client {
  int status = 0;
  bool complete = false;
  std::string names;  // "name\n" per field, lower-cased
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_status = on_status;
  s.on_header_field = on_field;
  s.on_header_value = on_value;
  s.on_headers_complete = on_headers_complete;
  Upstream up;
  up.head.reset(4096);
  llhttp_t parser;
  llhttp_init(&parser, HTTP_RESPONSE, &s);
  parser.data = &up;
  llhttp_execute(&parser, reinterpret_cast<const char*>(data), size);
  if (!up.complete || up.status < 200) return 0;

  harrow::ClientResponse resp;
  resp.status = up.status;
  resp.reason = up.head.target();
  resp.head = &up.head;
  resp.chunked = !up.head.has("content-length");
  resp.keep_content_length = !resp.chunked;
  resp.powered_by = "Harrow/fuzz";
  char out[8192];
  harrow::HeadWriter w(out, sizeof out);
  harrow::write_client_response(resp, w);
  if (w.overflowed()) return 0;

  llhttp_settings_t cs;
  llhttp_settings_init(&cs);
  cs.on_headers_complete = [](llhttp_t* p) {
    auto* c = static_cast<Client*>(p->data);
    c->status = p->status_code;
    c->complete = true;
    return static_cast<int>(HPE_PAUSED);
  };
  Client client;
  llhttp_t cp;
  llhttp_init(&cp, HTTP_RESPONSE, &cs);
  cp.data = &client;
  llhttp_errno_t rc = llhttp_execute(&cp, out, w.size());
  if (rc != HPE_PAUSED || !client.complete || client.status != up.status) __builtin_trap();
  // The head ends exactly where Harrow's output ends: nothing smuggled after it.
  if (static_cast<size_t>(llhttp_get_error_pos(&cp) - out) != w.size()) __builtin_trap();
  return 0;
}

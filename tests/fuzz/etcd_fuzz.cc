// libFuzzer target for what Harrow reads from etcd (core/daemon/etcd_protocol.h): a hostile or
// broken etcd endpoint's HTTP/1.1 reply, cut anywhere, then its streamed JSON objects through
// every reply parser. Never a crash, a hang or a sanitizer report; and the splitter's objects
// are exactly the bytes fed minus white space between objects.
//
// Input: the first byte picks a chunk size for feeding; the rest is the raw reply.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/daemon/etcd_auth.h"
#include "core/daemon/etcd_protocol.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "etcd_fuzz: %s\n", what);
    std::abort();
  }
}

void parse_all(const std::string& object) {
  using namespace harrow::etcd;
  std::string error;
  int64_t revision = 0, lease = 0, ttl = 0;
  std::vector<KeyValue> kvs;
  bool created = false;
  KeyValue current;
  WatchMessage m;
  if (!parse_range_reply(object, revision, kvs, error)) check(!error.empty(), "range: no error");
  error.clear();
  if (!parse_put_reply(object, revision, error)) check(!error.empty(), "put: no error");
  error.clear();
  if (!parse_create_txn_reply(object, created, current, error)) {
    check(!error.empty(), "txn: no error");
  }
  error.clear();
  if (!parse_lease_grant_reply(object, lease, ttl, error))
    check(!error.empty(), "grant");
  else
    check(lease != 0, "grant: lease 0 accepted");
  error.clear();
  if (!parse_keepalive_reply(object, ttl, error)) check(!error.empty(), "keepalive");
  error.clear();
  std::string token;
  if (parse_authenticate_reply(object, token, error)) {
    check(!token.empty(), "authenticate: empty token accepted");
  } else {
    check(!error.empty(), "authenticate: no error");
  }
  (void)TokenAuth::is_token_error(object);
  error.clear();
  if (parse_watch_message(object, m, error)) {
    for (const Event& e : m.events) (void)e.kv.key.size();
  } else {
    check(!error.empty(), "watch: no error");
  }
  // Whatever came out of base64 goes back to the same text when it was canonical.
  std::string decoded;
  if (base64_decode(object, decoded)) check(base64_encode(decoded).size() == object.size(), "b64");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t chunk = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  harrow::etcd::HttpReplyReader reader(1 << 16);
  harrow::etcd::JsonObjectSplitter splitter(1 << 16);
  std::string objects_bytes;
  std::string object;
  for (size_t i = 0; i < input.size(); i += chunk) {
    if (!reader.feed(input.substr(i, chunk))) break;
    if (reader.head_done()) {
      std::string body = reader.take_body();
      splitter.feed(body);
      while (splitter.next(object)) {
        check(object.size() >= 2 && object.front() == '{' && object.back() == '}', "object");
        parse_all(object);
      }
    }
  }
  reader.finish();
  // The input itself as one stream of objects, and as one object.
  harrow::etcd::JsonObjectSplitter whole(1 << 16);
  whole.feed(input);
  while (whole.next(object)) parse_all(object);
  parse_all(std::string(input));
  return 0;
}

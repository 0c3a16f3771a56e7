// The request path: bytes from a client, delivered in reads of a size the first input byte
// picks, go through RequestFramer, llhttp and the head checks exactly as a connection runs
// them (request_driver.h). Whatever is forwarded must parse, with strict llhttp, as exactly one
// request with the same method and body, and a target whose path, canonicalized, is the path
// the rules judged; the decision must not depend on how reads split the bytes. A request whose
// Connection header names a field that frames or routes it is never forwarded, nor is a '_'
// twin of such a field.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/base/ascii.h"
#include "core/http1/url_path.h"
#include "request_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using namespace harrow;
  using namespace harrow::testing;
  size_t read_size = 1 + data[0] % 97;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  RequestLimits limits;
  limits.max_request_line = 512;
  limits.max_header_bytes = 2048;
  limits.max_header_count = 24;
  limits.max_body = 4096;
  RequestDriver driver(limits);
  Decision split = driver.run(input, read_size);
  Decision whole = driver.run(input, input.size());
  if (split.forwarded != whole.forwarded || split.rejected != whole.rejected) __builtin_trap();
  if (!whole.forwarded) return 0;
  if (split.body != whole.body || split.consumed != whole.consumed) __builtin_trap();
  ParsedUpstream up = parse_upstream(whole.upstream);
  if (up.error || up.messages != 1) __builtin_trap();
  if (up.method != whole.method || up.target != whole.forwarded_target || up.body != whole.body)
    __builtin_trap();
  // A field that frames or routes the request never loses to a Connection header (such a
  // request is refused), and no '_' twin of one (Content_Length, …) reaches the origin.
  auto frames = [](std::string_view name) {
    return iequals(name, "content-length") || iequals(name, "transfer-encoding") ||
           iequals(name, "host");
  };
  for (const auto& [name, value] : whole.fields) {
    if (!iequals(name, "connection")) continue;
    std::string_view list = value;
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view token = list.substr(0, comma);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
        token.remove_prefix(1);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
        token.remove_suffix(1);
      if (frames(token)) __builtin_trap();
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  for (const auto& [name, value] : up.fields) {
    if (name.find('_') == std::string::npos) continue;
    std::string folded = name;
    std::replace(folded.begin(), folded.end(), '_', '-');
    if (frames(folded)) __builtin_trap();
  }
  // The origin gets what the rules judged: the forwarded path normalizes to the judged one.
  std::string again_path;
  Rejection why;
  if (!canonicalize_target(up.target, UrlLimits{}, again_path, why)) __builtin_trap();
  if (again_path != whole.judged_path) __builtin_trap();
  // What Harrow sends must itself pass Harrow's checks (limits aside).
  RequestLimits wide;
  wide.max_request_line = 1 << 16;
  wide.max_header_bytes = 1 << 16;
  wide.max_header_count = 1000;
  wide.max_body = 1 << 20;
  RequestDriver again(wide);
  Decision second = again.run(whole.upstream, whole.upstream.size());
  if (!second.forwarded || second.body != whole.body) __builtin_trap();
  if (second.judged_path != whole.judged_path || second.forwarded_target != whole.forwarded_target)
    __builtin_trap();
  return 0;
}

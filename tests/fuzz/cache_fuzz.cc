// libFuzzer target for what the cache parses: Cache-Control values, HTTP dates and delta
// seconds (from the origin), a client's If-None-Match / If-Modified-Since (answered 304 from
// an entry), and disk tier files (from the disk, possibly damaged). Any bytes
// must give a result without a crash; a disk file that deserializes must serialize back to the
// same bytes (nothing in a file is ignored, so a damaged one cannot pass as another entry), and
// an entry's freshness judgement must never call a stale entry fresh later.
//
// Input: the bytes, used as each parser's input.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/cache/cache_control.h"
#include "core/cache/disk_tier.h"
#include "core/cache/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  harrow::cache::CacheControl cc;
  harrow::cache::parse_cache_control(in, cc);
  harrow::cache::parse_http_date(in);
  harrow::cache::parse_delta_seconds(in);
  std::vector<harrow::HeaderField> fields = {{"Cache-Control", in}, {"Expires", in}, {"Vary", in}};
  harrow::cache::ResponseFacts facts = harrow::cache::read_response(fields);
  harrow::cache::RequestDirectives get = harrow::cache::read_request("GET", {});
  harrow::cache::decide_store(get, 200, facts, 60, harrow::cache::parse_override(in));
  // A client's conditionals against an entry whose validators are the same bytes: an ETag
  // always matches itself in If-None-Match when it is an entity-tag at all.
  harrow::cache::StoredResponse conditional;
  conditional.etag.assign(in);
  conditional.last_modified.assign(in);
  harrow::cache::not_modified(conditional,
                              std::vector<harrow::HeaderField>{{"If-Modified-Since", in}});
  if (in.size() >= 2 && in.front() == '"' && in.back() == '"' &&
      in.substr(1, in.size() - 2).find('"') == std::string_view::npos &&
      !harrow::cache::not_modified(conditional,
                                   std::vector<harrow::HeaderField>{{"If-None-Match", in}})) {
    std::fprintf(stderr, "an entity-tag does not match itself\n");
    std::abort();
  }
  std::shared_ptr<harrow::cache::StoredResponse> e = harrow::cache::deserialize(in);
  if (e != nullptr) {
    if (harrow::cache::serialize(*e) != in) {
      std::fprintf(stderr, "a disk file read back does not write out the same\n");
      std::abort();
    }
    bool stale = false;
    for (int64_t dt = 0; dt < 4000; dt += 97) {
      bool fresh =
          harrow::cache::judge(*e, get, e->response_time + dt) == harrow::cache::Reuse::Fresh;
      if (stale && fresh) {
        std::fprintf(stderr, "an entry became fresh again\n");
        std::abort();
      }
      stale = stale || !fresh;
    }
  }
  return 0;
}

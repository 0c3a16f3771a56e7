// Properties of the cache: the memory tier never holds more than its bound and its byte count
// is the sum of what it holds, whatever the sequence of operations; freshness only decays.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "core/cache/memory_tier.h"
#include "core/cache/policy.h"

namespace harrow::cache {
namespace {

struct Op {
  int kind;  // 0 insert, 1 find, 2 erase, 3 purge
  int key;
  size_t size;
};

RC_GTEST_PROP(MemoryTierProperty, NeverExceedsItsBound, ()) {
  size_t capacity = *rc::gen::inRange<size_t>(4 * 1024, 256 * 1024);
  size_t max_object = *rc::gen::inRange<size_t>(512, 64 * 1024);
  auto ops = *rc::gen::container<std::vector<Op>>(
      rc::gen::build<Op>(rc::gen::set(&Op::kind, rc::gen::inRange(0, 4)),
                         rc::gen::set(&Op::key, rc::gen::inRange(0, 40)),
                         rc::gen::set(&Op::size, rc::gen::inRange<size_t>(0, 80 * 1024))));
  MemoryTier tier(capacity, max_object);
  std::map<int, std::shared_ptr<const StoredResponse>> last;
  for (const Op& op : ops) {
    std::string url = "/" + std::to_string(op.key);
    std::string primary = "f\x1fh\x1f" + url;
    switch (op.kind) {
      case 0: {
        auto e = std::make_shared<StoredResponse>();
        e->primary_key = primary;
        e->host = "h";
        e->url = url;
        e->body.assign(op.size, 'b');
        bool stored = tier.insert(e);
        if (stored) last[op.key] = e;
        break;
      }
      case 1: {
        auto found = tier.find(primary, {});
        // Whatever is found is the latest stored under that key.
        if (found) RC_ASSERT(last.count(op.key) == 1 && found == last[op.key]);
        break;
      }
      case 2:
        if (last.count(op.key)) tier.erase(last[op.key]);
        break;
      case 3:
        tier.purge("", url, true);
        break;
    }
    RC_ASSERT(tier.bytes() <= tier.capacity());
  }
  // Purging everything returns the count of what was held and leaves zero bytes.
  size_t held = tier.entries();
  RC_ASSERT(tier.purge("", "/", true) == held);
  RC_ASSERT(tier.bytes() == 0u);
  RC_ASSERT(tier.entries() == 0u);
}

RC_GTEST_PROP(FreshnessProperty, OnceStaleNeverFreshAgain, ()) {
  StoredResponse e;
  e.response_time = *rc::gen::inRange<int64_t>(1'000'000, 2'000'000);
  e.request_time = e.response_time - *rc::gen::inRange<int64_t>(0, 10);
  e.date_value = e.response_time - *rc::gen::inRange<int64_t>(-5, 30);
  e.age_value = *rc::gen::inRange<int64_t>(0, 100);
  e.lifetime = *rc::gen::inRange<int64_t>(0, 1000);
  e.etag = "\"e\"";
  RequestDirectives get = read_request("GET", {});
  bool was_stale = false;
  int64_t previous_age = -1;
  for (int64_t now = e.response_time; now < e.response_time + 1200; now += 7) {
    int64_t age = current_age(e, now);
    RC_ASSERT(age >= previous_age);
    previous_age = age;
    bool fresh = judge(e, get, now) == Reuse::Fresh;
    if (was_stale) RC_ASSERT(!fresh);
    was_stale = was_stale || !fresh;
  }
}

}  // namespace
}  // namespace harrow::cache

// The response cache in the proxy's phases (phases.h): looked up once the rules chose the farm
// and before a server is picked, filled as a response streams through, refreshed by a 304.
// Only farms whose <protocol> has <cache> (enabled) take part. Both client codecs call the
// same functions, so HTTP/1 and HTTP/2 clients see the same cache.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "core/cache/cache.h"
#include "core/cache/cache_key.h"
#include "core/cache/policy.h"
#include "core/http1/http_head.h"
#include "core/rewrite/router.h"

namespace harrow {

struct Exchange;
class Worker;

// What the cache did for an exchange: the access log's sc-cache.
enum class CacheOutcome : uint8_t {
  None,          // the farm does not cache
  Bypass,        // not cacheable (method, queryStringHandling NoCaching, Range, a body)
  Miss,          // forwarded; stored if the response allows
  Hit,           // answered from the cache
  Consolidated,  // answered from the fill of a request that came first
  Revalidated,   // stale; the origin's 304 refreshed it and it answered
  Expired,       // stale; the origin sent a new response
  StaleOnError,  // stale; the origin failed and the entry's stale-if-error allowed it
  Updating,      // stale; answered within its stale-while-revalidate window while it is
                 // revalidated in the background
};
std::string_view cache_outcome_token(CacheOutcome outcome);

// An exchange's dealings with the cache (allocated only for exchanges of caching farms).
struct CacheWork {
  CacheWork() = default;
  CacheWork(const CacheWork&) = delete;
  CacheWork& operator=(const CacheWork&) = delete;
  // Ends a fill this exchange led and never finished (a failure, a client gone), so the
  // requests waiting on it go to the origin, and stops a wait.
  ~CacheWork();

  std::shared_ptr<cache::Cache> cache;
  cache::PrimaryKey key;
  cache::RequestDirectives request;
  std::optional<cache::CacheControlOverride> override_cc;
  std::string_view hit_header;  // logCacheHitName (points into the pinned configuration)
  int64_t validation_interval = 0;
  int64_t request_time = 0;   // seconds since the epoch
  cache::EntryPtr entry;      // the entry answered with, or the stale one being revalidated
  cache::EntryPtr stale;      // a stale entry found, for stale-if-error
  bool revalidating = false;  // the upstream request carries the entry's validators
  bool not_modified = false;  // the client's conditionals matched: answered 304 (RFC 9111 §4.3.2)
  // stale-while-revalidate: this lookup leads the key's background revalidation, which
  // start_background_revalidation() (background_fill.h) starts once a server is picked.
  bool background = false;
  std::shared_ptr<cache::Fill> fill;  // request consolidation: the fill led or waited on
  bool leader = false;
  bool disk_read = false;  // the wait is for the disk tier's read of the key
  std::shared_ptr<cache::StoredResponse> pending;  // the response being stored
  // Waiting on another request's fill: woken through the worker's CacheWakeup when it ends,
  // or by `timer` at requestConsolidationTimeout, whichever comes first.
  uv_timer_t* timer = nullptr;
  bool waiting = false;
  void (*on_wait_over)(void*) = nullptr;
  void* owner = nullptr;

  void finish_fill();
};

enum class CacheLookup : uint8_t {
  Forward,  // ask the origin (with the stale entry's validators when there is one)
  Hit,      // ex.cache->entry answers
  Wait,     // another request fills this key, or the disk tier is read: wait_for_fill()
};

// After the rules: looks the request up. `method` and `target` as the client sent them.
CacheLookup cache_lookup(Exchange& ex, const Router& router, std::string_view method,
                         std::string_view raw_target, std::string_view host);
// Waits (on `worker`'s loop) for the fill a Wait lookup found, then calls `done(owner)` once,
// never from inside this call: the fill ended or requestConsolidationTimeout passed. Then
// cache_after_wait() says what next.
void wait_for_fill(Exchange& ex, Worker& worker, void (*done)(void*), void* owner);
// From the worker's CacheWakeup: the fill `work` waits on has ended (a late or stale wake-up
// is ignored).
void cache_wait_over(CacheWork& work);
CacheLookup cache_after_wait(Exchange& ex);

// The client response head for a hit (ex.cache->entry): status, stored fields, Age, the hit
// header, Content-Length; "Connection: close" when `close`. Returns the body to send (empty
// for HEAD). When the request's own conditionals match the entry (If-None-Match,
// If-Modified-Since), a 304 with the fields RFC 9110 §15.4.5 names and no body.
std::string_view write_cached_response(Exchange& ex, bool close, bool http11, HeadWriter& out);
// The status write_cached_response() wrote: the entry's, or 304.
int cached_response_status(const Exchange& ex);

// From build_client_response: a 304 that refreshes the stale entry (true: answer from it).
bool cache_refresh_on_304(Exchange& ex, const MessageHead& head, int status);
// The same for a revalidation without a client (background_fill.h): refreshes work.entry from
// the 304's `fields` (or drops it when they now forbid storing) and ends the fill.
void cache_refresh_entry(CacheWork& work, std::span<const HeaderField> fields);
// The origin failed: a 5xx `status`, or 0 for no response at all (connect failure, reset,
// timeout). True if a stale entry whose stale-if-error (RFC 5861, a Harrow extension to ARR)
// still allows it is to answer instead: write_cached_response() then serves it.
bool cache_stale_on_error(Exchange& ex, int status);
// From build_client_response, once the head for the client is written into `client_head`:
// starts storing the response when it may be stored.
void cache_begin_fill(Exchange& ex, const MessageHead& head, int status,
                      std::string_view client_head, bool body_rewritten);
// The next piece of the response body as the server sent it.
void cache_fill_body(Exchange& ex, std::string_view bytes);
void cache_fill_body(CacheWork& work, std::string_view bytes);
// The response ended whole: what was stored goes into the memory tier.
void cache_fill_complete(Exchange& ex);
void cache_fill_complete(CacheWork& work);

}  // namespace harrow

#include "core/proxy/cache_phase.h"

#include <ctime>
#include <utility>

#include "core/base/ascii.h"
#include "core/proxy/cache_wakeup.h"
#include "core/proxy/exchange.h"
#include "core/proxy/snapshot.h"
#include "core/proxy/worker.h"

namespace harrow {

namespace {

int64_t now_seconds() {
  return static_cast<int64_t>(std::time(nullptr));
}

bool has_client_validators(const MessageHead& head) {
  return head.has("if-none-match") || head.has("if-modified-since");
}

void close_timer(uv_timer_t*& timer) {
  if (timer == nullptr) return;
  uv_timer_stop(timer);
  uv_close(reinterpret_cast<uv_handle_t*>(timer),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  timer = nullptr;
}

struct DiskRead {
  uv_work_t req;
  std::weak_ptr<CacheWork> work;
  std::shared_ptr<cache::Cache> cache;
  std::string primary;
  std::vector<std::pair<std::string, std::string>> request_fields;  // copies: the head may go
  cache::EntryPtr entry;
};

}  // namespace

CacheLookup after_memory_miss(Exchange& ex, const std::shared_ptr<CacheWork>& work);

namespace {

// A stale entry was found (in memory or on disk). With stale-while-revalidate it answers now
// (true) and, unless another request is already asking the origin about the key, this one
// leads a background revalidation (work.background). Otherwise the origin is asked with the
// entry's validators, and the entry is kept for stale-if-error and a 304. A client that brought
// its own validators gets the origin's answer to them, 304 or not.
bool take_stale(Exchange& ex, CacheWork& work, cache::EntryPtr entry, cache::Reuse reuse,
                bool may_background) {
  work.stale = entry;
  ex.cache_outcome = CacheOutcome::Expired;
  if (reuse != cache::Reuse::Stale || has_client_validators(ex.head)) return false;
  if (!entry->etag.empty()) ex.rule_header_text.emplace_back("If-None-Match", entry->etag);
  if (!entry->last_modified.empty())
    ex.rule_header_text.emplace_back("If-Modified-Since", entry->last_modified);
  cache::Cache& c = *work.cache;
  if (may_background && cache::may_serve_while_revalidating(*entry, work.request, now_seconds())) {
    // One revalidation per key, consolidation or not: the fill registry says who leads it.
    work.fill = c.fills().join(work.key.key, work.leader);
    work.background = work.leader;
    if (!work.leader) work.fill.reset();
    work.entry = std::move(entry);
    ex.cache_outcome = CacheOutcome::Updating;
    c.counters().stale_served.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  work.revalidating = true;
  work.entry = std::move(entry);
  return false;
}

}  // namespace

std::string_view cache_outcome_token(CacheOutcome outcome) {
  switch (outcome) {
    case CacheOutcome::None:
      return {};
    case CacheOutcome::Bypass:
      return "BYPASS";
    case CacheOutcome::Miss:
      return "MISS";
    case CacheOutcome::Hit:
      return "HIT";
    case CacheOutcome::Consolidated:
      return "CONSOLIDATED";
    case CacheOutcome::Revalidated:
      return "REVALIDATED";
    case CacheOutcome::Expired:
      return "EXPIRED";
    case CacheOutcome::StaleOnError:
      return "STALE";
    case CacheOutcome::Updating:
      return "UPDATING";
  }
  return {};
}

CacheWork::~CacheWork() {
  close_timer(timer);
  finish_fill();
}

void CacheWork::finish_fill() {
  if (leader && fill != nullptr) cache->fills().finish(key.key, fill);
  leader = false;
}

CacheLookup cache_lookup(Exchange& ex, const Router& router, std::string_view method,
                         std::string_view raw_target, std::string_view host) {
  const SnapshotFarm& farm = ex.snap->farms[ex.farm];
  const config::CacheConfig& settings = farm.config->cache;
  if (!settings.active() || ex.snap->cache == nullptr) return CacheLookup::Forward;
  cache::RequestDirectives request = cache::read_request(method, ex.head.fields());
  size_t q = raw_target.find('?');
  std::string_view query =
      q == std::string_view::npos ? std::string_view{} : raw_target.substr(q + 1);
  ex.cache_outcome = CacheOutcome::Bypass;
  if (!request.cacheable_method || request.range || ex.request_has_body || ex.websocket) {
    return CacheLookup::Forward;
  }
  auto work = std::make_shared<CacheWork>();
  cache::KeyParts parts{.farm = farm.config->name,
                        .host = host,
                        .path = ex.canonical_path,
                        .query = query,
                        .target = ex.target,
                        .rule_headers = ex.rule_header_text};
  auto handling = static_cast<cache::QueryStringHandling>(settings.query_string_handling);
  if (!cache::make_primary_key(parts, handling, work->key)) return CacheLookup::Forward;
  work->cache = ex.snap->cache;
  work->request = request;
  work->hit_header = farm.config->protocol.log_cache_hit_name;
  work->validation_interval = settings.validation_interval.count() / 1000;
  work->request_time = now_seconds();
  int slot = router.variable_slot("ARR_CACHE_CONTROL_OVERRIDE");
  if (slot >= 0) {
    for (const auto& [s, value] : ex.rule_variables) {
      if (s == slot) work->override_cc = cache::parse_override(value);
    }
  }
  ex.cache = work;
  ex.cache_outcome = CacheOutcome::Miss;
  cache::Cache& c = *work->cache;
  cache::EntryPtr entry = c.memory().find(work->key.key, ex.head.fields());
  if (entry != nullptr) {
    cache::Reuse reuse = cache::judge(*entry, request, work->request_time);
    if (reuse == cache::Reuse::Fresh) {
      work->entry = std::move(entry);
      ex.cache_outcome = CacheOutcome::Hit;
      c.counters().hits.fetch_add(1, std::memory_order_relaxed);
      return CacheLookup::Hit;
    }
    if (take_stale(ex, *work, std::move(entry), reuse, true)) return CacheLookup::Hit;
  }
  if (work->stale == nullptr && c.disk() != nullptr && c.disk()->may_have(work->key.key)) {
    // Read off the event loop (libuv's threadpool); the lookup resumes when it is done.
    work->disk_read = true;
    return CacheLookup::Wait;
  }
  return after_memory_miss(ex, work);
}

CacheLookup after_memory_miss(Exchange& ex, const std::shared_ptr<CacheWork>& work) {
  const config::CacheConfig& settings = ex.snap->farms[ex.farm].config->cache;
  cache::Cache& c = *work->cache;
  c.counters().misses.fetch_add(1, std::memory_order_relaxed);
  if (!settings.request_consolidation || work->request.head) return CacheLookup::Forward;
  work->fill = c.fills().join(work->key.key, work->leader);
  if (work->leader) return CacheLookup::Forward;
  return CacheLookup::Wait;
}

void wait_for_fill(Exchange& ex, Worker& worker, void (*done)(void*), void* owner) {
  CacheWork& work = *ex.cache;
  const config::CacheConfig& settings = ex.snap->farms[ex.farm].config->cache;
  uv_loop_t* loop = worker.loop();
  work.on_wait_over = done;
  work.owner = owner;
  if (work.disk_read) {
    auto* read = new DiskRead;
    read->work = ex.cache;
    read->cache = work.cache;
    read->primary = work.key.key;
    for (const HeaderField& f : ex.head.fields())
      read->request_fields.emplace_back(f.name, f.value);
    read->req.data = read;
    uv_queue_work(
        loop, &read->req,
        [](uv_work_t* req) {
          auto* r = static_cast<DiskRead*>(req->data);
          std::vector<HeaderField> fields;
          for (const auto& [name, value] : r->request_fields) fields.push_back({name, value});
          r->entry = r->cache->disk()->read(r->primary, fields);
          if (r->entry != nullptr) r->cache->memory().insert(r->entry);
        },
        [](uv_work_t* req, int) {
          std::unique_ptr<DiskRead> r(static_cast<DiskRead*>(req->data));
          std::shared_ptr<CacheWork> w = r->work.lock();
          if (w == nullptr) return;  // the exchange ended meanwhile
          w->entry = std::move(r->entry);
          w->on_wait_over(w->owner);
        });
    return;
  }
  work.waiting = true;
  work.timer = new uv_timer_t;
  uv_timer_init(loop, work.timer);
  work.timer->data = &work;
  uv_timer_start(
      work.timer,
      [](uv_timer_t* t) {
        auto* w = static_cast<CacheWork*>(t->data);
        w->waiting = false;
        close_timer(w->timer);
        w->on_wait_over(w->owner);  // may end the exchange, and with it `w`
      },
      static_cast<uint64_t>(settings.request_consolidation_timeout.count()), 0);
  // Woken by whichever thread ends the fill; if it has ended already, through this worker's
  // own mailbox all the same, so `done` never runs inside this call.
  std::weak_ptr<CacheWork> weak = ex.cache;
  std::shared_ptr<CacheWakeup> wakeup = worker.cache_wakeup();
  if (!work.fill->subscribe([wakeup, weak] { wakeup->post(weak); })) wakeup->post(weak);
}

void cache_wait_over(CacheWork& work) {
  if (!work.waiting || work.fill == nullptr || !work.fill->done()) return;
  work.waiting = false;
  close_timer(work.timer);
  work.on_wait_over(work.owner);
}

CacheLookup cache_after_wait(Exchange& ex) {
  CacheWork& work = *ex.cache;
  cache::Cache& c = *work.cache;
  if (work.disk_read) {
    work.disk_read = false;
    cache::EntryPtr entry = std::move(work.entry);
    if (entry != nullptr) {
      cache::Reuse reuse = cache::judge(*entry, work.request, now_seconds());
      if (reuse == cache::Reuse::Fresh) {
        work.entry = std::move(entry);
        ex.cache_outcome = CacheOutcome::Hit;
        c.counters().hits.fetch_add(1, std::memory_order_relaxed);
        c.counters().disk_hits.fetch_add(1, std::memory_order_relaxed);
        return CacheLookup::Hit;
      }
      // Stale on disk: revalidated like a stale entry in memory (its validators go to the
      // origin, a 304 refreshes it in both tiers). No background revalidation from here:
      // the disk read already cost this request its wait.
      take_stale(ex, work, std::move(entry), reuse, false);
    }
    // Not there, or stale: a miss, consolidated with the others on the key.
    return after_memory_miss(ex, ex.cache);
  }
  bool filled = work.fill->done();
  work.fill.reset();
  if (filled) {
    cache::EntryPtr entry = c.memory().find(work.key.key, ex.head.fields());
    if (entry != nullptr &&
        cache::judge(*entry, work.request, now_seconds()) == cache::Reuse::Fresh) {
      work.entry = std::move(entry);
      ex.cache_outcome = CacheOutcome::Consolidated;
      c.counters().consolidated.fetch_add(1, std::memory_order_relaxed);
      return CacheLookup::Hit;
    }
  }
  // Timed out, or the first request's response was not stored: this one asks the origin.
  return CacheLookup::Forward;
}

std::string_view write_cached_response(Exchange& ex, bool close, bool http11, HeadWriter& out) {
  CacheWork& work = *ex.cache;
  const cache::StoredResponse& e = *work.entry;
  work.not_modified = cache::not_modified(e, ex.head.fields());
  out << (http11 ? "HTTP/1.1 " : "HTTP/1.0 ");
  if (work.not_modified) {
    out << "304 Not Modified\r\n";
    bool has_etag = !e.etag.empty();
    for (const auto& [name, value] : e.fields) {
      if (cache::field_of_304(name, has_etag)) out.field(name, value);
    }
  } else {
    out << static_cast<uint64_t>(e.status) << " ";
    out.reason(e.reason.empty() ? default_reason(e.status) : std::string_view(e.reason)) << "\r\n";
    for (const auto& [name, value] : e.fields) out.field(name, value);
  }
  out << "Age: " << static_cast<uint64_t>(cache::current_age(e, now_seconds())) << "\r\n";
  if (!work.hit_header.empty()) out.field(work.hit_header, "1");
  if (e.status != 204 && !work.not_modified)
    out << "Content-Length: " << static_cast<uint64_t>(e.body.size()) << "\r\n";
  if (close) {
    out << "Connection: close\r\n";
  } else if (!http11) {
    out << "Connection: keep-alive\r\n";
  }
  out << "\r\n";
  return ex.head_request || work.not_modified ? std::string_view{} : std::string_view(e.body);
}

int cached_response_status(const Exchange& ex) {
  return ex.cache->not_modified ? 304 : ex.cache->entry->status;
}

namespace {

// The client head's fields worth replaying, parsed back from the text Harrow wrote.
bool parse_client_head(std::string_view text, std::string_view hit_header,
                       cache::StoredResponse& out) {
  size_t eol = text.find("\r\n");
  if (eol == std::string_view::npos) return false;
  std::string_view status_line = text.substr(0, eol);
  // "HTTP/1.1 200 OK"
  size_t sp1 = status_line.find(' ');
  if (sp1 == std::string_view::npos) return false;
  size_t sp2 = status_line.find(' ', sp1 + 1);
  if (sp2 != std::string_view::npos) out.reason.assign(status_line.substr(sp2 + 1));
  text.remove_prefix(eol + 2);
  while (!text.empty()) {
    eol = text.find("\r\n");
    if (eol == std::string_view::npos) return false;
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol + 2);
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return false;
    std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    if (!cache::replayable_field(name, hit_header)) continue;
    out.fields.emplace_back(std::string(name), std::string(value));
  }
  return true;
}

}  // namespace

bool cache_refresh_on_304(Exchange& ex, const MessageHead& head, int status) {
  if (ex.cache == nullptr) return false;
  CacheWork& work = *ex.cache;
  if (!work.revalidating || status != 304 || work.entry == nullptr) return false;
  cache_refresh_entry(work, head.fields());
  ex.cache_outcome = CacheOutcome::Revalidated;
  return true;
}

void cache_refresh_entry(CacheWork& work, std::span<const HeaderField> fields) {
  cache::ResponseFacts facts = cache::read_response(fields);
  work.cache->counters().revalidated.fetch_add(1, std::memory_order_relaxed);
  // The 304's own directives, if it has any, set the new lifetime (RFC 9111 §4.3.4).
  auto refreshed = std::make_shared<cache::StoredResponse>(*work.entry);
  int64_t lifetime = refreshed->lifetime;
  if (facts.cc.present || facts.has_expires || work.override_cc) {
    cache::StoreVerdict verdict =
        cache::decide_store(work.request, 200, facts, work.validation_interval, work.override_cc);
    if (!verdict.store) {
      // The origin now says not to keep it: answer from it this once, then drop it.
      work.cache->memory().erase(work.entry);
      work.finish_fill();
      return;
    }
    lifetime = verdict.lifetime;
    refreshed->stale_while_revalidate = facts.cc.stale_while_revalidate;
    refreshed->stale_if_error = facts.cc.stale_if_error;
  }
  cache::refresh_from_304(*refreshed, fields, facts, lifetime, work.request_time, now_seconds());
  work.cache->memory().insert(refreshed);
  work.cache->write_behind(refreshed);
  work.entry = std::move(refreshed);
  work.finish_fill();
}

bool cache_stale_on_error(Exchange& ex, int status) {
  if (ex.cache == nullptr) return false;
  CacheWork& work = *ex.cache;
  if (work.stale == nullptr || (status != 0 && status < 500)) return false;
  const cache::StoredResponse& e = *work.stale;
  if (e.stale_if_error < 0 ||
      cache::current_age(e, now_seconds()) > e.lifetime + e.stale_if_error) {
    return false;
  }
  work.entry = work.stale;
  work.revalidating = false;
  work.pending.reset();
  work.finish_fill();
  ex.cache_outcome = CacheOutcome::StaleOnError;
  work.cache->counters().stale_served.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void cache_begin_fill(Exchange& ex, const MessageHead& head, int status,
                      std::string_view client_head, bool body_rewritten) {
  if (ex.cache == nullptr) return;
  CacheWork& work = *ex.cache;
  cache::ResponseFacts facts = cache::read_response(head.fields());
  cache::StoreVerdict verdict =
      cache::decide_store(work.request, status, facts, work.validation_interval, work.override_cc);
  // Outbound body rules make the body depend on more than the key; not kept.
  if (!verdict.store || body_rewritten) {
    if (work.revalidating && work.entry != nullptr && (status == 200 || !verdict.store)) {
      work.cache->memory().erase(work.entry);  // the origin replaced or withdrew it
    }
    work.finish_fill();
    return;
  }
  std::string_view length = head.find("content-length");
  if (!length.empty()) {
    std::optional<int64_t> n = cache::parse_delta_seconds(length);
    if (!n || static_cast<uint64_t>(*n) > work.cache->memory().max_object()) {
      work.finish_fill();  // too large to keep: waiters go to the origin now
      return;
    }
  }
  auto entry = std::make_shared<cache::StoredResponse>();
  if (!parse_client_head(client_head, work.hit_header, *entry)) {
    work.finish_fill();
    return;
  }
  entry->primary_key = work.key.key;
  entry->host = work.key.host;
  entry->url = work.key.url;
  entry->vary = std::move(facts.vary);
  entry->secondary_key = cache::secondary_key(entry->vary, ex.head.fields());
  entry->status = status;
  entry->request_time = work.request_time;
  entry->response_time = now_seconds();
  entry->date_value = facts.date.value_or(entry->response_time);
  entry->age_value = facts.age;
  entry->lifetime = verdict.lifetime;
  entry->must_revalidate = facts.cc.must_revalidate || facts.cc.no_cache;
  entry->stale_while_revalidate = facts.cc.stale_while_revalidate;
  entry->stale_if_error = facts.cc.stale_if_error;
  entry->etag.assign(facts.etag);
  entry->last_modified.assign(facts.last_modified);
  if (!length.empty())
    entry->body.reserve(static_cast<size_t>(*cache::parse_delta_seconds(length)));
  work.pending = std::move(entry);
}

void cache_fill_body(Exchange& ex, std::string_view bytes) {
  if (ex.cache != nullptr) cache_fill_body(*ex.cache, bytes);
}

void cache_fill_body(CacheWork& work, std::string_view bytes) {
  if (work.pending == nullptr) return;
  if (work.pending->body.size() + bytes.size() > work.cache->memory().max_object()) {
    // Larger than any entry may be: the rest streams on, nothing is kept.
    work.pending.reset();
    work.finish_fill();
    return;
  }
  work.pending->body.append(bytes);
}

void cache_fill_complete(Exchange& ex) {
  if (ex.cache != nullptr) cache_fill_complete(*ex.cache);
}

void cache_fill_complete(CacheWork& work) {
  if (work.pending != nullptr) {
    cache::EntryPtr stored = work.pending;
    if (work.cache->memory().insert(std::move(work.pending))) {
      work.cache->counters().stores.fetch_add(1, std::memory_order_relaxed);
    }
    work.cache->write_behind(std::move(stored));
    work.pending.reset();
  }
  work.finish_fill();
}

}  // namespace harrow

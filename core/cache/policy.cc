#include "core/cache/policy.h"

#include <algorithm>

#include "core/base/ascii.h"

namespace harrow::cache {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool storable_status(int status) {
  switch (status) {
    case 200:
    case 203:
    case 204:
    case 300:
    case 301:
    case 308:
    case 404:
    case 410:
      return true;
    default:
      return false;
  }
}

}  // namespace

RequestDirectives read_request(std::string_view method, std::span<const HeaderField> fields) {
  RequestDirectives r;
  r.head = method == "HEAD";
  r.cacheable_method = r.head || method == "GET";
  CacheControl cc;
  bool pragma_no_cache = false;
  for (const HeaderField& f : fields) {
    if (iequals(f.name, "cache-control")) {
      parse_cache_control(f.value, cc);
    } else if (iequals(f.name, "authorization")) {
      r.authorization = true;
    } else if (iequals(f.name, "range")) {
      r.range = true;
    } else if (iequals(f.name, "pragma")) {
      CacheControl p;
      parse_cache_control(f.value, p);  // same token syntax
      pragma_no_cache = pragma_no_cache || p.no_cache;
    }
  }
  r.no_store = cc.no_store;
  // Pragma counts only without Cache-Control (RFC 9111 §5.4).
  r.no_cache = cc.no_cache || cc.max_age == 0 || (!cc.present && pragma_no_cache);
  r.max_age = cc.max_age;
  r.min_fresh = cc.min_fresh;
  return r;
}

std::optional<CacheControlOverride> parse_override(std::string_view value) {
  value = trim(value);
  size_t comma = value.find(',');
  std::string_view mode = trim(value.substr(0, comma));
  if (mode != "0" && mode != "1") return std::nullopt;
  CacheControlOverride o;
  o.always = mode == "1";
  if (comma != std::string_view::npos) parse_cache_control(value.substr(comma + 1), o.directives);
  o.directives.present = true;
  return o;
}

ResponseFacts read_response(std::span<const HeaderField> fields) {
  ResponseFacts r;
  for (const HeaderField& f : fields) {
    std::string_view name = f.name;
    if (iequals(name, "cache-control")) {
      parse_cache_control(f.value, r.cc);
    } else if (iequals(name, "date")) {
      r.date = parse_http_date(f.value);
    } else if (iequals(name, "expires")) {
      r.has_expires = true;
      r.expires = parse_http_date(f.value);
    } else if (iequals(name, "age")) {
      std::optional<int64_t> a = parse_delta_seconds(trim(f.value));
      if (a) r.age = *a;
    } else if (iequals(name, "etag")) {
      r.etag = trim(f.value);
    } else if (iequals(name, "last-modified")) {
      r.last_modified = trim(f.value);
    } else if (iequals(name, "set-cookie")) {
      r.set_cookie = true;
    } else if (iequals(name, "vary")) {
      std::string_view v = f.value;
      while (!v.empty()) {
        size_t comma = v.find(',');
        std::string_view item = trim(v.substr(0, comma));
        v.remove_prefix(comma == std::string_view::npos ? v.size() : comma + 1);
        if (item.empty()) continue;
        if (item == "*") r.vary_star = true;
        r.vary.push_back(to_ascii_lower(item));
      }
    }
  }
  std::sort(r.vary.begin(), r.vary.end());
  r.vary.erase(std::unique(r.vary.begin(), r.vary.end()), r.vary.end());
  return r;
}

StoreVerdict decide_store(const RequestDirectives& request, int status, ResponseFacts& response,
                          int64_t validation_interval,
                          const std::optional<CacheControlOverride>& override_cc) {
  StoreVerdict v;
  auto refuse = [&v](const char* why) {
    v.store = false;
    v.why_not = why;
    return v;
  };
  if (!request.cacheable_method || request.head) return refuse("method");
  if (request.range) return refuse("range request");
  if (request.no_store) return refuse("request no-store");
  if (!storable_status(status)) return refuse("status");
  if (override_cc && (override_cc->always || !response.cc.present)) {
    // ARR's rule replaces the origin's caching directives (Expires with them).
    response.cc = override_cc->directives;
    response.has_expires = false;
  }
  const CacheControl& cc = response.cc;
  if (cc.no_store) return refuse("no-store");
  if (cc.private_) return refuse("private");
  if (response.set_cookie) return refuse("set-cookie");
  if (response.vary_star) return refuse("vary *");
  if (request.authorization && !cc.public_ && cc.s_maxage < 0 && !cc.must_revalidate) {
    return refuse("authorization");
  }
  int64_t lifetime = -1;
  if (cc.s_maxage >= 0) {
    lifetime = cc.s_maxage;
  } else if (cc.max_age >= 0) {
    lifetime = cc.max_age;
  } else if (response.has_expires) {
    // An invalid Expires means already expired; Date missing: taken as now (age 0).
    int64_t date = response.date.value_or(0);
    lifetime =
        response.expires && response.date ? std::max<int64_t>(0, *response.expires - date) : 0;
  } else if (!cc.no_cache) {
    return refuse("no explicit freshness");
  }
  if (lifetime < 0 || cc.no_cache) lifetime = 0;
  lifetime = std::min(lifetime, validation_interval);
  bool has_validator = !response.etag.empty() || !response.last_modified.empty();
  if (lifetime == 0 && !has_validator) return refuse("stale on arrival, no validator");
  v.store = true;
  v.lifetime = lifetime;
  return v;
}

int64_t current_age(const StoredResponse& e, int64_t now) {
  int64_t apparent_age = std::max<int64_t>(0, e.response_time - e.date_value);
  int64_t response_delay = std::max<int64_t>(0, e.response_time - e.request_time);
  int64_t corrected_age_value = e.age_value + response_delay;
  int64_t corrected_initial_age = std::max(apparent_age, corrected_age_value);
  int64_t resident_time = std::max<int64_t>(0, now - e.response_time);
  return corrected_initial_age + resident_time;
}

Reuse judge(const StoredResponse& e, const RequestDirectives& request, int64_t now) {
  bool has_validator = !e.etag.empty() || !e.last_modified.empty();
  int64_t age = current_age(e, now);
  bool fresh = age < e.lifetime;
  if (fresh && request.max_age >= 0 && age > request.max_age) fresh = false;
  if (fresh && request.min_fresh >= 0 && e.lifetime - age < request.min_fresh) fresh = false;
  if (fresh && !request.no_cache) return Reuse::Fresh;
  return has_validator ? Reuse::Stale : Reuse::Unusable;
}

bool may_serve_while_revalidating(const StoredResponse& e, const RequestDirectives& request,
                                  int64_t now) {
  if (e.stale_while_revalidate < 0 || e.must_revalidate) return false;
  if (request.no_cache || request.max_age >= 0 || request.min_fresh >= 0) return false;
  if (e.etag.empty() && e.last_modified.empty()) return false;  // nothing to revalidate with
  int64_t age = current_age(e, now);
  return age >= e.lifetime && age - e.lifetime < e.stale_while_revalidate;
}

namespace {

// The opaque-tag of an entity-tag, without the weak indicator (weak comparison, RFC 9110
// §8.8.3.2); empty if `tag` is not an entity-tag.
std::string_view opaque_tag(std::string_view tag) {
  tag = trim(tag);
  if (tag.size() >= 2 && tag[0] == 'W' && tag[1] == '/') tag.remove_prefix(2);
  if (tag.size() < 2 || tag.front() != '"' || tag.back() != '"') return {};
  return tag;
}

bool etag_listed(std::string_view list, std::string_view stored) {
  std::string_view mine = opaque_tag(stored);
  // An entity-tag may hold a comma inside its quotes (RFC 9110's etagc allows it), so the
  // list is split only on commas outside quotes.
  bool quoted = false;
  size_t start = 0;
  for (size_t i = 0; i <= list.size(); ++i) {
    if (i < list.size() && list[i] == '"') quoted = !quoted;
    if (i < list.size() && (list[i] != ',' || quoted)) continue;
    std::string_view item = trim(list.substr(start, i - start));
    start = i + 1;
    if (item == "*") return true;
    std::string_view theirs = opaque_tag(item);
    if (!mine.empty() && !theirs.empty() && theirs == mine) return true;
  }
  return false;
}

}  // namespace

bool not_modified(const StoredResponse& e, std::span<const HeaderField> request_fields) {
  if (e.status < 200 || e.status > 299) return false;
  const HeaderField* inm = nullptr;
  const HeaderField* ims = nullptr;
  std::string if_none_match;  // several If-None-Match fields make one list
  for (const HeaderField& f : request_fields) {
    if (iequals(f.name, "if-none-match")) {
      if (inm != nullptr) if_none_match.push_back(',');
      if_none_match.append(f.value);
      inm = &f;
    } else if (iequals(f.name, "if-modified-since")) {
      ims = &f;
    }
  }
  if (inm != nullptr) return etag_listed(if_none_match, e.etag);
  if (ims == nullptr) return false;
  std::optional<int64_t> since = parse_http_date(trim(ims->value));
  if (!since) return false;
  std::optional<int64_t> modified;
  if (!e.last_modified.empty()) {
    modified = parse_http_date(e.last_modified);
  } else {
    modified = e.date_value != 0 ? e.date_value : e.response_time;
  }
  return modified && *modified <= *since;
}

bool field_of_304(std::string_view name, bool has_etag) {
  return iequals(name, "cache-control") || iequals(name, "content-location") ||
         iequals(name, "date") || iequals(name, "etag") || iequals(name, "expires") ||
         iequals(name, "vary") || (!has_etag && iequals(name, "last-modified"));
}

void refresh_from_304(StoredResponse& e, std::span<const HeaderField> fields,
                      const ResponseFacts& facts, int64_t lifetime, int64_t request_time,
                      int64_t response_time) {
  for (const HeaderField& f : fields) {
    if (!replayable_field(f.name, {})) continue;
    // The 304's fields replace every stored field of the same name.
    bool replaced = false;
    for (auto it = e.fields.begin(); it != e.fields.end();) {
      if (iequals(it->first, f.name)) {
        if (!replaced) {
          it->second.assign(f.value);
          replaced = true;
          ++it;
        } else {
          it = e.fields.erase(it);
        }
      } else {
        ++it;
      }
    }
    if (!replaced) e.fields.emplace_back(std::string(f.name), std::string(f.value));
  }
  if (!facts.etag.empty()) e.etag.assign(facts.etag);
  if (!facts.last_modified.empty()) e.last_modified.assign(facts.last_modified);
  e.request_time = request_time;
  e.response_time = response_time;
  e.date_value = facts.date.value_or(response_time);
  e.age_value = facts.age;
  e.lifetime = lifetime;
}

bool replayable_field(std::string_view name, std::string_view hit_header) {
  static constexpr std::string_view kDropped[] = {
      "connection", "keep-alive",     "proxy-connection",   "te",  "trailer",   "transfer-encoding",
      "upgrade",    "content-length", "proxy-authenticate", "age", "set-cookie"};
  for (std::string_view d : kDropped) {
    if (iequals(name, d)) return false;
  }
  return hit_header.empty() || !iequals(name, hit_header);
}

}  // namespace harrow::cache

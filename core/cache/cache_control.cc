#include "core/cache/cache_control.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "core/base/ascii.h"

namespace harrow::cache {

namespace {

constexpr int64_t kDeltaMax = int64_t{1} << 31;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A directive's argument: token or quoted-string (quotes dropped; escapes kept as written,
// which only matters for field lists nobody here reads).
std::string_view unquote(std::string_view v) {
  v = trim(v);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  return v;
}

int64_t duration_or_stale(std::string_view arg) {
  std::optional<int64_t> v = parse_delta_seconds(unquote(arg));
  return v ? *v : 0;
}

}  // namespace

std::optional<int64_t> parse_delta_seconds(std::string_view text) {
  if (text.empty()) return std::nullopt;
  int64_t v = 0;
  for (char c : text) {
    if (!is_ascii_digit(c)) return std::nullopt;
    if (v < kDeltaMax) v = v * 10 + (c - '0');
  }
  return v < kDeltaMax ? v : kDeltaMax;
}

void parse_cache_control(std::string_view value, CacheControl& cc) {
  cc.present = true;
  while (!value.empty()) {
    // Split on commas outside quoted strings.
    size_t end = 0;
    bool quoted = false;
    for (; end < value.size(); ++end) {
      char c = value[end];
      if (c == '"') quoted = !quoted;
      if (c == '\\' && quoted && end + 1 < value.size()) ++end;
      if (c == ',' && !quoted) break;
    }
    std::string_view item = trim(value.substr(0, end));
    value.remove_prefix(end < value.size() ? end + 1 : end);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string_view name = trim(item.substr(0, eq));
    std::string_view arg = eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
    bool has_arg = eq != std::string_view::npos;
    if (iequals(name, "no-store")) {
      cc.no_store = true;
    } else if (iequals(name, "no-cache")) {
      cc.no_cache = true;
    } else if (iequals(name, "private")) {
      cc.private_ = true;
    } else if (iequals(name, "public")) {
      cc.public_ = true;
    } else if (iequals(name, "must-revalidate") || iequals(name, "proxy-revalidate")) {
      cc.must_revalidate = true;
    } else if (iequals(name, "only-if-cached")) {
      cc.only_if_cached = true;
    } else if (iequals(name, "max-age")) {
      // Several max-age values: the most conservative (RFC 9111 §4.2.1 says treat as invalid).
      int64_t v = has_arg ? duration_or_stale(arg) : 0;
      cc.max_age = cc.max_age < 0 ? v : std::min(cc.max_age, v);
    } else if (iequals(name, "s-maxage")) {
      int64_t v = has_arg ? duration_or_stale(arg) : 0;
      cc.s_maxage = cc.s_maxage < 0 ? v : std::min(cc.s_maxage, v);
    } else if (iequals(name, "min-fresh")) {
      if (has_arg) cc.min_fresh = duration_or_stale(arg);
    } else if (iequals(name, "stale-while-revalidate")) {
      if (has_arg) cc.stale_while_revalidate = duration_or_stale(arg);
    } else if (iequals(name, "stale-if-error")) {
      if (has_arg) cc.stale_if_error = duration_or_stale(arg);
    }
  }
}

namespace {

int month_index(std::string_view m) {
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i) {
    if (m == kMonths[i]) return i;
  }
  return -1;
}

bool read_int(std::string_view& s, size_t digits, int& out) {
  if (s.size() < digits) return false;
  int v = 0;
  for (size_t i = 0; i < digits; ++i) {
    if (!is_ascii_digit(s[i])) return false;
    v = v * 10 + (s[i] - '0');
  }
  s.remove_prefix(digits);
  out = v;
  return true;
}

bool expect(std::string_view& s, char c) {
  if (s.empty() || s.front() != c) return false;
  s.remove_prefix(1);
  return true;
}

bool read_time(std::string_view& s, std::tm& tm) {
  return read_int(s, 2, tm.tm_hour) && expect(s, ':') && read_int(s, 2, tm.tm_min) &&
         expect(s, ':') && read_int(s, 2, tm.tm_sec);
}

std::optional<int64_t> to_epoch(std::tm& tm) {
  if (tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
    return std::nullopt;
  }
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

std::optional<int64_t> parse_http_date(std::string_view s) {
  s = trim(s);
  std::tm tm{};
  size_t comma = s.find(',');
  if (comma == 3) {
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    s.remove_prefix(4);
    int year = 0;
    if (!expect(s, ' ') || !read_int(s, 2, tm.tm_mday) || !expect(s, ' ')) return std::nullopt;
    if (s.size() < 4 || (tm.tm_mon = month_index(s.substr(0, 3))) < 0) return std::nullopt;
    s.remove_prefix(3);
    if (!expect(s, ' ') || !read_int(s, 4, year) || !expect(s, ' ') || !read_time(s, tm)) {
      return std::nullopt;
    }
    if (s != " GMT") return std::nullopt;
    tm.tm_year = year - 1900;
    return to_epoch(tm);
  }
  if (comma != std::string_view::npos && comma > 3) {
    // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; two-digit years within 50 years of now.
    s.remove_prefix(comma + 1);
    int year = 0;
    if (!expect(s, ' ') || !read_int(s, 2, tm.tm_mday) || !expect(s, '-')) return std::nullopt;
    if (s.size() < 4 || (tm.tm_mon = month_index(s.substr(0, 3))) < 0) return std::nullopt;
    s.remove_prefix(3);
    if (!expect(s, '-') || !read_int(s, 2, year) || !expect(s, ' ') || !read_time(s, tm)) {
      return std::nullopt;
    }
    if (s != " GMT") return std::nullopt;
    tm.tm_year = year < 70 ? year + 100 : year;
    return to_epoch(tm);
  }
  // asctime: "Sun Nov  6 08:49:37 1994"
  if (s.size() != 24 || s[3] != ' ') return std::nullopt;
  s.remove_prefix(4);
  if ((tm.tm_mon = month_index(s.substr(0, 3))) < 0) return std::nullopt;
  s.remove_prefix(3);
  if (!expect(s, ' ')) return std::nullopt;
  if (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  int year = 0;
  if (s.size() >= 2 && is_ascii_digit(s[0]) && is_ascii_digit(s[1])) {
    if (!read_int(s, 2, tm.tm_mday)) return std::nullopt;
  } else if (!read_int(s, 1, tm.tm_mday)) {
    return std::nullopt;
  }
  if (!expect(s, ' ') || !read_time(s, tm) || !expect(s, ' ') || !read_int(s, 4, year) ||
      !s.empty()) {
    return std::nullopt;
  }
  tm.tm_year = year - 1900;
  return to_epoch(tm);
}

std::string format_http_date(int64_t seconds) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t t = static_cast<time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday],
                tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return out;
}

}  // namespace harrow::cache

#include "health/status_match.h"

#include <algorithm>

namespace harrow::health {
namespace {

constexpr int kMinStatus = 100;
constexpr int kMaxStatus = 999;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A status code: digits only (no sign, no inner spaces), within 100..999.
std::optional<int> parse_code(std::string_view s) {
  s = trim(s);
  if (s.empty() || s.size() > 3) return std::nullopt;
  int value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (value < kMinStatus || value > kMaxStatus) return std::nullopt;
  return value;
}

}  // namespace

std::optional<StatusMatcher> StatusMatcher::parse(std::string_view spec) {
  StatusMatcher matcher;
  while (true) {
    size_t comma = spec.find(',');
    std::string_view item = trim(spec.substr(0, comma));
    if (item.empty()) return std::nullopt;  // "", "200,", ",200", "200,,304"
    size_t dash = item.find('-');
    std::pair<int, int> range;
    if (dash == std::string_view::npos) {
      auto code = parse_code(item);
      if (!code) return std::nullopt;
      range = {*code, *code};
    } else {
      auto low = parse_code(item.substr(0, dash));
      std::string_view upper = trim(item.substr(dash + 1));
      // "500-": ARR's open upper bound, 500 and every code above it.
      auto high = upper.empty() ? std::optional<int>(kMaxStatus) : parse_code(upper);
      if (!low || !high || *low > *high) return std::nullopt;
      range = {*low, *high};
    }
    matcher.ranges_.push_back(range);
    if (comma == std::string_view::npos) break;
    spec.remove_prefix(comma + 1);
  }
  return matcher;
}

bool StatusMatcher::matches(int status) const {
  return std::any_of(ranges_.begin(), ranges_.end(), [status](const std::pair<int, int>& r) {
    return status >= r.first && status <= r.second;
  });
}

}  // namespace harrow::health

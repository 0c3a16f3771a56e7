#include "config/timespan.h"

#include <cstdint>
#include <cstdio>

#include "core/base/ascii.h"

namespace harrow::config {
namespace {

// A run of 1..max_digits decimal digits, nothing else. The digit cap keeps every later
// multiplication far from int64 overflow.
std::optional<int64_t> parse_digits(std::string_view text, size_t max_digits) {
  if (text.empty() || text.size() > max_digits) return std::nullopt;
  int64_t value = 0;
  for (char c : text) {
    if (!is_ascii_digit(c)) return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

// ".fffffff": up to seven digits (100 ns ticks, as .NET writes them), truncated to ms.
std::optional<int64_t> parse_fraction_ms(std::string_view digits) {
  if (digits.empty() || digits.size() > 7) return std::nullopt;
  int64_t ms = 0;
  for (size_t i = 0; i < 3; ++i) {
    char c = i < digits.size() ? digits[i] : '0';
    if (!is_ascii_digit(c)) return std::nullopt;
    ms = ms * 10 + (c - '0');
  }
  for (size_t i = 3; i < digits.size(); ++i) {
    if (!is_ascii_digit(digits[i])) return std::nullopt;
  }
  return ms;
}

std::string_view trim_spaces(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_timespan(std::string_view text) {
  text = trim_spaces(text);
  size_t first_colon = text.find(':');
  if (first_colon == std::string_view::npos) return std::nullopt;
  size_t second_colon = text.find(':', first_colon + 1);
  if (second_colon == std::string_view::npos) return std::nullopt;
  if (text.find(':', second_colon + 1) != std::string_view::npos) return std::nullopt;

  std::string_view head = text.substr(0, first_colon);  // "hh" or "d.hh"
  std::string_view minutes_text = text.substr(first_colon + 1, second_colon - first_colon - 1);
  std::string_view tail = text.substr(second_colon + 1);  // "ss" or "ss.fffffff"

  int64_t days = 0;
  std::optional<int64_t> hours;
  if (size_t dot = head.find('.'); dot != std::string_view::npos) {
    std::optional<int64_t> parsed_days = parse_digits(head.substr(0, dot), 8);
    hours = parse_digits(head.substr(dot + 1), 2);
    if (!parsed_days || !hours || *hours >= 24) return std::nullopt;
    days = *parsed_days;
  } else {
    hours = parse_digits(head, 9);
    if (!hours) return std::nullopt;
  }

  std::optional<int64_t> minutes = parse_digits(minutes_text, 2);
  if (!minutes || *minutes >= 60) return std::nullopt;

  int64_t fraction_ms = 0;
  std::string_view seconds_text = tail;
  if (size_t dot = tail.find('.'); dot != std::string_view::npos) {
    std::optional<int64_t> fraction = parse_fraction_ms(tail.substr(dot + 1));
    if (!fraction) return std::nullopt;
    fraction_ms = *fraction;
    seconds_text = tail.substr(0, dot);
  }
  std::optional<int64_t> seconds = parse_digits(seconds_text, 2);
  if (!seconds || *seconds >= 60) return std::nullopt;

  int64_t total_seconds = ((days * 24 + *hours) * 60 + *minutes) * 60 + *seconds;
  return std::chrono::milliseconds{total_seconds * 1000 + fraction_ms};
}

std::string format_timespan(std::chrono::milliseconds value) {
  const int64_t count = value.count();
  // Unsigned magnitude so that even the most negative count negates without overflow.
  const uint64_t ms = count < 0 ? 0 - static_cast<uint64_t>(count) : static_cast<uint64_t>(count);
  const unsigned long long days = ms / 86'400'000;
  const unsigned long long hours = ms / 3'600'000 % 24;
  const unsigned long long minutes = ms / 60'000 % 60;
  const unsigned long long seconds = ms / 1000 % 60;
  const unsigned long long millis = ms % 1000;

  char buffer[64];
  int length = days > 0 ? std::snprintf(buffer, sizeof buffer, "%llu.%02llu:%02llu:%02llu", days,
                                        hours, minutes, seconds)
                        : std::snprintf(buffer, sizeof buffer, "%02llu:%02llu:%02llu", hours,
                                        minutes, seconds);
  std::string text = count < 0 ? "-" : "";
  text.append(buffer, static_cast<size_t>(length));
  if (millis != 0) {
    std::snprintf(buffer, sizeof buffer, ".%03llu", millis);
    text += buffer;
  }
  return text;
}

}  // namespace harrow::config

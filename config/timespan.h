// IIS configuration timeSpan values ("hh:mm:ss[.fffffff]" or "d.hh:mm:ss[.fffffff]"), the
// format ARR uses for every timeout and interval, converted to and from milliseconds.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace harrow::config {

// Parses a non-negative timeSpan. Returns nullopt for anything else: garbage, a sign, minutes
// or seconds of 60 and more, hours of 24 and more when days are given, more than seven
// fraction digits. Without days the hours may exceed 23 ("36:00:00" is a day and a half).
// Spaces around the value are allowed; precision below a millisecond is truncated.
std::optional<std::chrono::milliseconds> parse_timespan(std::string_view text);

// The inverse for display and round trips: "hh:mm:ss", "d.hh:mm:ss" from one day on, and
// ".fff" appended when the value has milliseconds. Negative values get a leading '-'.
std::string format_timespan(std::chrono::milliseconds value);

}  // namespace harrow::config

// ASCII character classes and case folding for protocol and configuration text (HTTP header
// names and framing, URLs, IIS element and attribute names, cookie values): header-only,
// constexpr, shared by every module. Locale-independent on purpose: <cctype>'s functions follow
// the process's C locale (in a Turkish locale tolower('I') is not 'i', and in single-byte
// locales isalpha() accepts bytes >= 0x80), and they take an int that must be an unsigned char
// value. Protocols define their tokens over ASCII (RFC 5234 §B.1 ALPHA, DIGIT, HEXDIG; RFC 9110
// §5.1 field names are case-insensitive over ASCII), so Harrow uses these instead.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

namespace harrow {

constexpr bool is_ascii_upper(char c) {
  return c >= 'A' && c <= 'Z';
}

constexpr bool is_ascii_lower(char c) {
  return c >= 'a' && c <= 'z';
}

// RFC 5234 ALPHA.
constexpr bool is_ascii_alpha(char c) {
  return is_ascii_upper(c) || is_ascii_lower(c);
}

// RFC 5234 DIGIT.
constexpr bool is_ascii_digit(char c) {
  return c >= '0' && c <= '9';
}

constexpr bool is_ascii_alnum(char c) {
  return is_ascii_alpha(c) || is_ascii_digit(c);
}

// The "C" locale's isspace() set: space, TAB, LF, VT, FF, CR.
constexpr bool is_ascii_space(char c) {
  return c == ' ' || (c >= '\t' && c <= '\r');
}

// The value of hex digit `c` (RFC 5234 HEXDIG, either case), or -1 if it is not one.
constexpr int hex_value(char c) {
  if (is_ascii_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr bool is_ascii_hex_digit(char c) {
  return hex_value(c) >= 0;
}

// `c` in lower case if it is an ASCII letter, else `c`.
constexpr char ascii_lower(char c) {
  return is_ascii_upper(c) ? static_cast<char>(c - 'A' + 'a') : c;
}

// `c` in upper case if it is an ASCII letter, else `c`.
constexpr char ascii_upper(char c) {
  return is_ascii_lower(c) ? static_cast<char>(c - 'a' + 'A') : c;
}

// `s` with its ASCII letters in lower case; every other byte as it is.
inline std::string to_ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

// True if no byte of `s` is >= 0x80 (then it is valid UTF-8 without further checking).
constexpr bool is_ascii(std::string_view s) {
  return std::none_of(s.begin(), s.end(),
                      [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    // Names compared here are mostly spelled alike: fold only bytes that differ.
    if (a[i] != b[i] && ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

// True if `s` begins with `prefix`, ignoring ASCII case.
constexpr bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// Strict weak order on strings that ignores ASCII case (bytes compare as unsigned), consistent
// with iequals: neither of two iequal strings is iless than the other.
constexpr bool iless(std::string_view a, std::string_view b) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    char x = ascii_lower(a[i]);
    char y = ascii_lower(b[i]);
    if (x != y) return static_cast<unsigned char>(x) < static_cast<unsigned char>(y);
  }
  return a.size() < b.size();
}

}  // namespace harrow

// How far a run of ordinary protocol bytes goes, eight bytes at a time. Every head Harrow reads
// or writes is checked byte by byte (a control byte in a value, a space in a target, a ':' in
// a name must never become syntax), and those checks ran once per byte in a state machine or a
// loop; here a word of eight bytes is tested at once and only a word that holds a suspect byte
// is looked at byte by byte. The answers are exactly those of the one-byte predicates below
// (tests/core/base/byte_runs_test.cc holds them to it over every byte value).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace harrow {

// RFC 9110 §5.5 field-value bytes: HTAB, SP, VCHAR and obs-text (>= 0x80); not the other
// control bytes, not DEL.
constexpr bool is_field_value_byte(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7F);
}

// Visible ASCII but `excluded`: a request-target's bytes ('#' excluded: no fragment is ever
// sent) or a field name's as HeadWriter checks them (':' excluded).
constexpr bool is_visible_byte_but(unsigned char c, unsigned char excluded) {
  return c > 0x20 && c < 0x7F && c != excluded;
}

namespace byte_runs_internal {

constexpr uint64_t kOnes = 0x0101010101010101ULL;
constexpr uint64_t kHighs = 0x8080808080808080ULL;

inline uint64_t load8(const unsigned char* p) {
  uint64_t x;
  std::memcpy(&x, p, 8);
  return x;
}
// Non-zero if some byte of `x` is below `n` (n <= 128); exact about whether one is.
constexpr uint64_t has_below(uint64_t x, uint8_t n) {
  return (x - kOnes * n) & ~x & kHighs;
}
// Non-zero if some byte of `x` equals `b`.
constexpr uint64_t has_byte(uint64_t x, uint8_t b) {
  return has_below(x ^ (kOnes * b), 1);
}
// Non-zero if some byte of `x` is above `n` (n <= 127).
constexpr uint64_t has_above(uint64_t x, uint8_t n) {
  return ((x + kOnes * (127 - n)) | x) & kHighs;
}

}  // namespace byte_runs_internal

// The number of leading bytes of p[0, n) that are field-value bytes.
inline size_t field_value_run(const unsigned char* p, size_t n) {
  using namespace byte_runs_internal;
  // HTAB is below 0x20 too: a word holding one is looked at byte by byte.
  auto suspect = [](uint64_t x) { return (has_below(x, 0x20) | has_byte(x, 0x7F)) != 0; };
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    if (!suspect(load8(p + i))) continue;
    for (size_t end = i + 8; i < end; ++i) {
      if (!is_field_value_byte(p[i])) return i;
    }
    i -= 8;
  }
  // The tail of a run of eight or more: the last eight bytes in one word (those before the
  // tail are ordinary, so a suspect word means a suspect byte in the tail).
  if (i < n && n >= 8 && !suspect(load8(p + n - 8))) return n;
  while (i < n && is_field_value_byte(p[i])) ++i;
  return i;
}

// The number of leading bytes of p[0, n) that are visible ASCII other than `excluded`.
inline size_t visible_run_but(const unsigned char* p, size_t n, unsigned char excluded) {
  using namespace byte_runs_internal;
  auto suspect = [excluded](uint64_t x) {
    return (has_below(x, 0x21) | has_above(x, 0x7E) | has_byte(x, excluded)) != 0;
  };
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    if (suspect(load8(p + i))) break;
  }
  // As above: a tail of a run of eight or more in one word.
  if (i < n && n >= 8 && i + 8 > n && !suspect(load8(p + n - 8))) return n;
  while (i < n && is_visible_byte_but(p[i], excluded)) ++i;
  return i;
}

// Lower-cases the ASCII letters of p[0, n) in place, eight bytes at a time (every other byte
// is left as it is).
inline void ascii_lower_in_place(char* p, size_t n) {
  using namespace byte_runs_internal;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    std::memcpy(&x, p + i, 8);
    // 0x80 in each byte that is 'A'..'Z': above '@' and not above 'Z', in its low seven bits,
    // and not a byte >= 0x80.
    uint64_t low7 = x & ~kHighs;
    uint64_t above_at = low7 + kOnes * (0x80 - 'A');
    uint64_t above_z = low7 + kOnes * (0x80 - 'Z' - 1);
    uint64_t upper = above_at & ~above_z & ~x & kHighs;
    x |= upper >> 2;  // 0x80 >> 2 == 0x20
    std::memcpy(p + i, &x, 8);
  }
  for (; i < n; ++i) {
    if (p[i] >= 'A' && p[i] <= 'Z') p[i] = static_cast<char>(p[i] | 0x20);
  }
}

inline bool all_field_value_bytes(const char* p, size_t n) {
  return field_value_run(reinterpret_cast<const unsigned char*>(p), n) == n;
}

}  // namespace harrow

#include "core/base/byte_runs.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <string>
#include <vector>

namespace harrow {
namespace {

size_t scalar_value_run(const std::string& s) {
  size_t i = 0;
  while (i < s.size() && is_field_value_byte(static_cast<unsigned char>(s[i]))) ++i;
  return i;
}

size_t scalar_visible_run(const std::string& s, unsigned char excluded) {
  size_t i = 0;
  while (i < s.size() && is_visible_byte_but(static_cast<unsigned char>(s[i]), excluded)) ++i;
  return i;
}

const unsigned char* bytes(const std::string& s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

TEST(ByteRuns, PredicatesFollowTheRfcClasses) {
  for (int c = 0; c < 256; ++c) {
    auto b = static_cast<unsigned char>(c);
    EXPECT_EQ(is_field_value_byte(b), c == '\t' || (c >= 0x20 && c != 0x7F)) << c;
    EXPECT_EQ(is_visible_byte_but(b, '#'), c > 0x20 && c < 0x7F && c != '#') << c;
  }
}

// Every byte value at every position of a word and of the tail, between ordinary bytes.
TEST(ByteRuns, EveryByteAtEveryPositionStopsTheRunWhereTheScalarLoopDoes) {
  for (size_t len : {1u, 7u, 8u, 9u, 16u, 23u, 40u}) {
    for (size_t pos = 0; pos < len; ++pos) {
      for (int c = 0; c < 256; ++c) {
        std::string s(len, 'a');
        s[pos] = static_cast<char>(c);
        ASSERT_EQ(field_value_run(bytes(s), s.size()), scalar_value_run(s))
            << "len " << len << " pos " << pos << " byte " << c;
        for (unsigned char excluded : {'#', ':', ' '}) {
          ASSERT_EQ(visible_run_but(bytes(s), s.size(), excluded), scalar_visible_run(s, excluded))
              << "len " << len << " pos " << pos << " byte " << c << " excluded " << excluded;
        }
      }
    }
  }
}

TEST(ByteRuns, TabsAndObsTextDoNotEndAValue) {
  std::string s = "a\tb\x80\xff c\td\te\tf\tg\th";
  EXPECT_EQ(field_value_run(bytes(s), s.size()), s.size());
  s += '\x7f';
  EXPECT_EQ(field_value_run(bytes(s), s.size()), s.size() - 1);
  EXPECT_TRUE(all_field_value_bytes(nullptr, 0));
}

TEST(ByteRuns, LowerCasesLettersOnlyWhereverTheyStand) {
  for (size_t len : {1u, 7u, 8u, 9u, 17u}) {
    for (size_t pos = 0; pos < len; ++pos) {
      for (int c = 0; c < 256; ++c) {
        std::string s(len, 'Q');
        s[pos] = static_cast<char>(c);
        std::string expected = s;
        for (char& ch : expected) {
          if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + 32);
        }
        ascii_lower_in_place(s.data(), s.size());
        ASSERT_EQ(s, expected) << "len " << len << " pos " << pos << " byte " << c;
      }
    }
  }
}

RC_GTEST_PROP(ByteRuns, RunsMatchTheScalarLoopOnAnyBytes, (const std::vector<unsigned char>& v)) {
  std::string s(v.begin(), v.end());
  RC_ASSERT(field_value_run(bytes(s), s.size()) == scalar_value_run(s));
  RC_ASSERT(visible_run_but(bytes(s), s.size(), '#') == scalar_visible_run(s, '#'));
  RC_ASSERT(visible_run_but(bytes(s), s.size(), ':') == scalar_visible_run(s, ':'));
}

// Mostly ordinary bytes with a rare odd one: long runs, so the eight-byte path is what runs.
RC_GTEST_PROP(ByteRuns, LongRunsMatchTheScalarLoop, ()) {
  auto odd = *rc::gen::inRange(0, 256);
  auto len = *rc::gen::inRange<size_t>(0, 200);
  auto pos = *rc::gen::inRange<size_t>(0, 201);
  std::string s(len, 'x');
  if (pos < len) s[pos] = static_cast<char>(odd);
  RC_ASSERT(field_value_run(bytes(s), s.size()) == scalar_value_run(s));
  RC_ASSERT(visible_run_but(bytes(s), s.size(), '#') == scalar_visible_run(s, '#'));
}

}  // namespace
}  // namespace harrow

#include "core/base/ascii.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <clocale>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace harrow {
namespace {

// What <cctype> answers for every byte in the "C" locale, which the standard defines as ASCII:
// the reference the helpers must equal whatever locale the process runs in.
struct CLocaleTable {
  std::array<bool, 256> upper{}, lower{}, alpha{}, digit{}, alnum{}, space{}, xdigit{};
  std::array<char, 256> to_lower{}, to_upper{};
};

// Sets a locale for one test and puts the previous one back.
class ScopedLocale {
 public:
  explicit ScopedLocale(const char* name) : previous_(std::setlocale(LC_ALL, nullptr)) {
    ok_ = std::setlocale(LC_ALL, name) != nullptr;
  }
  ~ScopedLocale() { std::setlocale(LC_ALL, previous_.c_str()); }
  bool ok() const { return ok_; }

 private:
  std::string previous_;
  bool ok_ = false;
};

CLocaleTable c_locale_table() {
  ScopedLocale c("C");
  CLocaleTable t;
  for (int b = 0; b < 256; ++b) {
    t.upper[b] = std::isupper(b) != 0;
    t.lower[b] = std::islower(b) != 0;
    t.alpha[b] = std::isalpha(b) != 0;
    t.digit[b] = std::isdigit(b) != 0;
    t.alnum[b] = std::isalnum(b) != 0;
    t.space[b] = std::isspace(b) != 0;
    t.xdigit[b] = std::isxdigit(b) != 0;
    t.to_lower[b] = static_cast<char>(std::tolower(b));
    t.to_upper[b] = static_cast<char>(std::toupper(b));
  }
  return t;
}

// Every helper over every byte against the "C" locale's answers.
void expect_c_locale_behaviour(const CLocaleTable& t) {
  for (int b = 0; b < 256; ++b) {
    char c = static_cast<char>(b);
    SCOPED_TRACE("byte " + std::to_string(b));
    EXPECT_EQ(is_ascii_upper(c), t.upper[b]);
    EXPECT_EQ(is_ascii_lower(c), t.lower[b]);
    EXPECT_EQ(is_ascii_alpha(c), t.alpha[b]);
    EXPECT_EQ(is_ascii_digit(c), t.digit[b]);
    EXPECT_EQ(is_ascii_alnum(c), t.alnum[b]);
    EXPECT_EQ(is_ascii_space(c), t.space[b]);
    EXPECT_EQ(is_ascii_hex_digit(c), t.xdigit[b]);
    EXPECT_EQ(ascii_lower(c), t.to_lower[b]);
    EXPECT_EQ(ascii_upper(c), t.to_upper[b]);
  }
}

TEST(Ascii, ClassesAndCaseMatchTheCLocaleForEveryByte) {
  expect_c_locale_behaviour(c_locale_table());
}

TEST(Ascii, HexValue) {
  EXPECT_EQ(hex_value('0'), 0);
  EXPECT_EQ(hex_value('9'), 9);
  EXPECT_EQ(hex_value('a'), 10);
  EXPECT_EQ(hex_value('F'), 15);
  EXPECT_EQ(hex_value('g'), -1);
  EXPECT_EQ(hex_value('G'), -1);
  EXPECT_EQ(hex_value('/'), -1);
  EXPECT_EQ(hex_value(':'), -1);
  EXPECT_EQ(hex_value('\0'), -1);
  EXPECT_EQ(hex_value(static_cast<char>(0xB0)), -1);
  // Every byte: the value, where there is one, is what strtol reads.
  for (int b = 0; b < 256; ++b) {
    char c = static_cast<char>(b);
    if (!is_ascii_hex_digit(c)) continue;
    char text[2] = {c, '\0'};
    EXPECT_EQ(hex_value(c), std::strtol(text, nullptr, 16)) << "byte " << b;
  }
}

TEST(Ascii, StringHelpers) {
  EXPECT_EQ(to_ascii_lower("Shop.EXAMPLE:8080/ÄÖ"), "shop.example:8080/ÄÖ");
  EXPECT_EQ(to_ascii_lower(""), "");
  EXPECT_TRUE(is_ascii("GET /index.html?a=b"));
  EXPECT_TRUE(is_ascii(""));
  EXPECT_FALSE(is_ascii("caf\xC3\xA9"));
  EXPECT_FALSE(is_ascii(std::string_view("\x80", 1)));

  EXPECT_TRUE(iequals("Content-Type", "content-type"));
  EXPECT_FALSE(iequals("Content-Type", "content-typ"));
  EXPECT_FALSE(iequals("\xC3\x84", "\xC3\xA4"));  // Ä and ä: not ASCII letters, not folded
  EXPECT_TRUE(istarts_with("HTTP_X_FORWARDED", "http_"));
  EXPECT_FALSE(istarts_with("HTTP", "http_"));

  EXPECT_TRUE(iless("apple", "Banana"));
  EXPECT_FALSE(iless("Banana", "apple"));
  EXPECT_FALSE(iless("KEY", "key"));  // iequal strings are equivalent
  EXPECT_FALSE(iless("key", "KEY"));
  EXPECT_TRUE(iless("key", "keys"));
  EXPECT_TRUE(iless("z", "\xC3\xA4"));  // bytes >= 0x80 sort after ASCII (unsigned)
}

// constexpr: usable where tables are built at compile time (request_checks.cc).
static_assert(ascii_lower('Q') == 'q' && ascii_upper('q') == 'Q' && hex_value('c') == 12);
static_assert(iequals("Host", "HOST") && is_ascii("abc") && iless("a", "B"));

// The helpers ignore the C locale: in a Turkish locale <cctype> folds 'I' to the dotless 'ı'
// (or leaves it, where that is not one byte) and a single-byte locale classes bytes >= 0x80 as
// letters; HTTP names must fold the same everywhere. Only locales installed on the machine can
// be tried; with none of them the test is skipped.
// A Turkish locale compiled into a temporary directory (glibc reads LOCPATH at setlocale()),
// for machines that install none: localedef and the locale sources come with Debian's
// `locales` package (packaging/install-deps).
// Returns the directory (removed by the caller once the test is done), or "" when it could not.
std::string compile_turkish_locale() {
  if (access("/usr/bin/localedef", X_OK) != 0 ||
      access("/usr/share/i18n/locales/tr_TR", R_OK) != 0) {
    return "";
  }
  char dir[] = "/tmp/harrow-locale-XXXXXX";
  if (mkdtemp(dir) == nullptr) return "";
  // The single-byte charset: quick to compile, and the one where <cctype> also classes bytes
  // >= 0x80 as letters.
  std::string command = std::string("/usr/bin/localedef -i tr_TR -f ISO-8859-9 ") + dir +
                        "/tr_TR.ISO-8859-9 >/dev/null 2>&1";
  if (std::system(command.c_str()) != 0 || setenv("LOCPATH", dir, 1) != 0) {
    std::filesystem::remove_all(dir);
    return "";
  }
  return dir;
}

TEST(Ascii, IndependentOfTheCLocale) {
  CLocaleTable reference = c_locale_table();
  bool tried = false;
  std::string compiled;
  if (!ScopedLocale("tr_TR.UTF-8").ok() && !ScopedLocale("tr_TR.ISO-8859-9").ok())
    compiled = compile_turkish_locale();
  for (const char* name : {"tr_TR.UTF-8", "tr_TR.ISO-8859-9", "tr_TR"}) {
    ScopedLocale locale(name);
    if (!locale.ok()) continue;
    tried = true;
    SCOPED_TRACE(name);
    EXPECT_EQ(ascii_lower('I'), 'i');
    EXPECT_EQ(ascii_upper('i'), 'I');
    EXPECT_TRUE(iequals("TITLE", "title"));
    EXPECT_EQ(to_ascii_lower("INDEX"), "index");
    expect_c_locale_behaviour(reference);
  }
  if (!compiled.empty()) {
    unsetenv("LOCPATH");
    std::filesystem::remove_all(compiled);
  }
  if (!tried) GTEST_SKIP() << "no Turkish locale installed, and none could be compiled";
}

}  // namespace
}  // namespace harrow

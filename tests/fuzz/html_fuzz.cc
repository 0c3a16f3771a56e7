// libFuzzer target for the streaming HTML rewriter (outbound rules with filterByTags). Any body
// bytes, split anywhere, must give:
//  - the same output, callbacks and count as one feed() of the whole body;
//  - the body unchanged when the callback never rewrites;
//  - never more than max_held bytes held back;
//  - with a large max_held, output that tokenizes again to exactly the replacements written.
//
// Input: MAX_HELD_SELECTOR SPLIT_SEED BODY...
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/rewrite/html_rewriter.h"

namespace {

constexpr uint16_t kAllTags = 2047;
constexpr size_t kMaxHeld[] = {0, 1, 7, 32, 200, 64 * 1024};

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool replace(std::string_view tag, std::string_view attr, std::string_view value,
             std::string& out) {
  if (value.size() % 5 == 4) return false;
  out.append("/").append(tag).append("/").append(attr);
  if (value.size() % 3 == 1) out.append(" sp\"q'");
  if (value.size() % 3 == 2) out.append(">");
  for (char c : value) {
    if (c != '&') out.push_back(c);
  }
  return true;
}

struct Result {
  std::string out;
  std::string calls;
  uint64_t rewritten = 0;
};

// Feeds `body` in pieces whose lengths come from a small generator seeded by `seed` (seed 0:
// one piece).
Result run(std::string_view body, uint8_t seed, size_t max_held, bool rewriting) {
  Result r;
  harrow::HtmlRewriter rewriter(
      kAllTags, {{"div", "data-src"}, {"IMG", "srcset"}},
      [&](std::string_view tag, std::string_view attr, std::string_view value, std::string& out) {
        r.calls.append(tag).append(" ").append(attr).append("=").append(value).push_back('\0');
        return rewriting && replace(tag, attr, value, out);
      },
      max_held);
  uint32_t state = seed;
  size_t at = 0;
  while (at < body.size()) {
    size_t len = body.size() - at;
    if (seed != 0) {
      state = state * 1103515245u + 12345u;
      len = std::min<size_t>(len, 1 + (state >> 16) % (seed < 64 ? 3 : seed < 160 ? 17 : 300));
    }
    rewriter.feed(body.substr(at, len), r.out);
    check(rewriter.held() <= max_held);
    at += len;
  }
  rewriter.finish(r.out);
  check(rewriter.held() == 0);
  r.rewritten = rewriter.rewritten();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t max_held = kMaxHeld[data[0] % (sizeof kMaxHeld / sizeof kMaxHeld[0])];
  uint8_t seed = data[1];
  std::string_view body(reinterpret_cast<const char*>(data + 2), size - 2);

  Result whole = run(body, 0, max_held, true);
  Result split = run(body, seed == 0 ? 1 : seed, max_held, true);
  check(split.out == whole.out);
  check(split.calls == whole.calls);
  check(split.rewritten == whole.rewritten);

  Result declined = run(body, seed, max_held, false);
  check(declined.out == body);
  check(declined.rewritten == 0);
  check(declined.calls == whole.calls);

  // Round trip: with everything rewritten, tokenizing the output finds the replacements.
  std::vector<std::string> replacements;
  harrow::HtmlRewriter first(
      kAllTags, {{"div", "data-src"}, {"IMG", "srcset"}},
      [&](std::string_view tag, std::string_view attr, std::string_view value, std::string& out) {
        size_t from = out.size();
        if (!replace(tag, attr, value, out)) out.append("d");
        replacements.push_back(out.substr(from));
        return true;
      },
      SIZE_MAX);
  std::string out;
  first.feed(body, out);
  first.finish(out);
  size_t next = 0;
  harrow::HtmlRewriter second(
      kAllTags, {{"div", "data-src"}, {"IMG", "srcset"}},
      [&](std::string_view, std::string_view, std::string_view value, std::string&) {
        check(next < replacements.size());
        std::string unescaped;
        for (size_t i = 0; i < value.size();) {
          if (value.substr(i).starts_with("&quot;")) {
            unescaped.push_back('"');
            i += 6;
          } else if (value.substr(i).starts_with("&#39;")) {
            unescaped.push_back('\'');
            i += 5;
          } else {
            unescaped.push_back(value[i++]);
          }
        }
        check(unescaped == replacements[next++]);
        return false;
      },
      SIZE_MAX);
  std::string again;
  second.feed(out, again);
  second.finish(again);
  check(next == replacements.size());
  check(again == out);
  return 0;
}

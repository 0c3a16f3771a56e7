// Properties of the streaming HTML rewriter over random HTML-ish bodies: the split into feed()
// calls never changes the output or the callbacks, a callback that never rewrites leaves the
// body byte-identical, memory stays within max_held, and rewritten values are written so that
// tokenizing the output again finds exactly the replacements.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <string>
#include <vector>

#include "core/rewrite/html_rewriter.h"

namespace harrow {
namespace {

constexpr uint16_t kAllTags = 2047;

// Pieces that exercise every tokenizer state, glued at random (plus arbitrary bytes).
const std::vector<std::string> kPieces = {
    "<a",
    "<A ",
    "<img ",
    "<IMG",
    "<script",
    "</script",
    "</SCRIPT ",
    "<style>",
    "</style>",
    "<textarea>",
    "</textarea",
    "<title>",
    "</title>",
    "<iframe ",
    "</iframe>",
    "<plaintext>",
    "<form ",
    "<link ",
    "<base ",
    "<area ",
    "<input ",
    "<frame ",
    "<head ",
    "<div ",
    "href",
    "HREF",
    "src",
    "action",
    "longdesc",
    "usemap",
    "profile",
    "data-src",
    "=",
    " = ",
    "\"",
    "'",
    ">",
    "/>",
    "/",
    " ",
    "\n",
    "\r\n",
    "\t",
    "<!--",
    "-->",
    "--!>",
    "-",
    "--",
    "<!-->",
    "<!--->",
    "<!",
    "<!DOCTYPE html>",
    "<![CDATA[",
    "]]>",
    "]",
    "<?",
    "</",
    "<",
    "x",
    "/path?q=1&amp;r",
    "http://old/",
    "text ",
    "&quot;",
    "`",
    "<!--<script>",
    "a<b",
};

std::string gen_body() {
  auto parts = *rc::gen::container<std::vector<std::string>>(rc::gen::oneOf(
      rc::gen::elementOf(kPieces), rc::gen::elementOf(kPieces), rc::gen::elementOf(kPieces),
      rc::gen::container<std::string>(rc::gen::arbitrary<char>())));
  std::string body;
  for (const auto& p : parts) body += p;
  return body;
}

// Split points: sorted offsets in [0, size].
std::vector<size_t> gen_splits(size_t size) {
  auto cuts = *rc::gen::container<std::vector<size_t>>(rc::gen::inRange<size_t>(0, size + 1));
  std::sort(cuts.begin(), cuts.end());
  return cuts;
}

struct Result {
  std::string out;
  std::vector<std::string> calls;
  uint64_t rewritten = 0;
  size_t max_held_seen = 0;
};

// A replacement that changes length and sometimes needs quoting or escaping.
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

Result run(const std::string& body, const std::vector<size_t>& cuts, size_t max_held,
           bool rewriting) {
  Result r;
  HtmlRewriter rewriter(
      kAllTags, {{"div", "data-src"}},
      [&](std::string_view tag, std::string_view attr, std::string_view value, std::string& out) {
        r.calls.push_back(std::string(tag) + " " + std::string(attr) + "=" + std::string(value));
        return rewriting && replace(tag, attr, value, out);
      },
      max_held);
  size_t from = 0;
  for (size_t cut : cuts) {
    rewriter.feed(std::string_view(body).substr(from, cut - from), r.out);
    r.max_held_seen = std::max(r.max_held_seen, rewriter.held());
    from = cut;
  }
  rewriter.feed(std::string_view(body).substr(from), r.out);
  r.max_held_seen = std::max(r.max_held_seen, rewriter.held());
  rewriter.finish(r.out);
  r.rewritten = rewriter.rewritten();
  return r;
}

RC_GTEST_PROP(HtmlRewriterProperty, ChunkingNeverChangesTheOutput, ()) {
  std::string body = gen_body();
  auto cuts = gen_splits(body.size());
  size_t max_held = *rc::gen::element<size_t>(0, 1, 8, 24, 64, 64 * 1024);
  Result whole = run(body, {}, max_held, true);
  Result split = run(body, cuts, max_held, true);
  RC_ASSERT(split.out == whole.out);
  RC_ASSERT(split.calls == whole.calls);
  RC_ASSERT(split.rewritten == whole.rewritten);
  RC_ASSERT(split.max_held_seen <= max_held);
}

RC_GTEST_PROP(HtmlRewriterProperty, DecliningCallbackLeavesBodyIdentical, ()) {
  std::string body = gen_body();
  auto cuts = gen_splits(body.size());
  size_t max_held = *rc::gen::element<size_t>(0, 3, 32, 64 * 1024);
  Result r = run(body, cuts, max_held, false);
  RC_ASSERT(r.out == body);
  RC_ASSERT(r.rewritten == 0u);
}

RC_GTEST_PROP(HtmlRewriterProperty, BytesOutsideRewrittenTagsAreKept, ()) {
  // With every value offered but the callback only declining, the same tags are offered as when
  // it rewrites: rewriting never changes how the rest of the body tokenizes.
  std::string body = gen_body();
  Result declined = run(body, {}, 64 * 1024, false);
  Result rewritten = run(body, {}, 64 * 1024, true);
  RC_ASSERT(declined.calls == rewritten.calls);
}

std::string unescape(std::string_view v) {
  std::string r;
  for (size_t i = 0; i < v.size();) {
    if (v.substr(i).starts_with("&quot;")) {
      r.push_back('"');
      i += 6;
    } else if (v.substr(i).starts_with("&#39;")) {
      r.push_back('\'');
      i += 5;
    } else {
      r.push_back(v[i++]);
    }
  }
  return r;
}

RC_GTEST_PROP(HtmlRewriterProperty, RewrittenOutputTokenizesToTheReplacements, ()) {
  std::string body = gen_body();
  // First pass: every value rewritten; remember the replacements in order.
  std::vector<std::string> replacements;
  HtmlRewriter first(
      kAllTags, {{"div", "data-src"}},
      [&](std::string_view tag, std::string_view attr, std::string_view value, std::string& out) {
        size_t at = out.size();
        if (!replace(tag, attr, value, out)) out.append(value.empty() ? "e" : "d");
        replacements.push_back(out.substr(at));
        return true;
      },
      SIZE_MAX);
  std::string out;
  first.feed(body, out);
  first.finish(out);
  // Second pass over the output sees exactly those values (after the quote escapes).
  std::vector<std::string> seen;
  HtmlRewriter second(
      kAllTags, {{"div", "data-src"}},
      [&](std::string_view, std::string_view, std::string_view value, std::string&) {
        seen.push_back(unescape(value));
        return false;
      },
      SIZE_MAX);
  std::string again;
  second.feed(out, again);
  second.finish(again);
  RC_ASSERT(again == out);
  RC_ASSERT(seen == replacements);
}

}  // namespace
}  // namespace harrow

#include "core/http1/url_path.h"

#include <gtest/gtest.h>

#include <string>

namespace harrow {
namespace {

// The canonical path of `raw`, or "<FAILURE_TOKEN>" if it is refused.
std::string canon(std::string_view raw, UrlLimits limits = {}) {
  std::string out = "stale";
  Rejection why;
  if (!canonicalize_target(raw, limits, out, why)) {
    std::string refused = "<";
    refused += failure_token(why.failure);
    refused += '>';
    return refused;
  }
  return out;
}

std::string encoded(std::string_view decoded) {
  std::string out;
  append_encoded_path(decoded, out);
  return out;
}

TEST(UrlPath, PlainPathsAreKeptAsTheyAre) {
  EXPECT_EQ(canon("/"), "/");
  EXPECT_EQ(canon("/a/b.html"), "/a/b.html");
  EXPECT_EQ(canon("/a/b/"), "/a/b/");
  EXPECT_EQ(canon("/a.b/..c/c.."), "/a.b/..c/c..");
  EXPECT_EQ(canon("/a/b?x=/../%41"), "/a/b");  // the query is not part of the path
  EXPECT_EQ(canon("*"), "*");
}

TEST(UrlPath, EscapesAreDecodedOnce) {
  EXPECT_EQ(canon("/%61dmin/x"), "/admin/x");
  EXPECT_EQ(canon("/%2egit/config"), "/.git/config");
  EXPECT_EQ(canon("/a%20b/%C3%BC"), "/a b/\xC3\xBC");
  EXPECT_EQ(canon("/100%25"), "/100%");
  EXPECT_EQ(canon("/a%2Fb"), "/a/b");  // %2F is a separator once decoded, as in http.sys
}

TEST(UrlPath, BackslashesAreSlashes) {
  EXPECT_EQ(canon("/a\\b\\..\\c"), "/a/c");
  EXPECT_EQ(canon("/a%5Cadmin"), "/a/admin");
  EXPECT_EQ(canon("\\admin"), "/admin");
}

TEST(UrlPath, RepeatedSlashesAreMerged) {
  EXPECT_EQ(canon("//admin/x"), "/admin/x");
  EXPECT_EQ(canon("/a///b//"), "/a/b/");
  EXPECT_EQ(canon("/%2F%2Fadmin"), "/admin");
}

TEST(UrlPath, DotSegmentsAreRemoved) {
  EXPECT_EQ(canon("/./admin/x"), "/admin/x");
  EXPECT_EQ(canon("/x/../admin/x"), "/admin/x");
  EXPECT_EQ(canon("/x/%2e%2e/admin"), "/admin");
  EXPECT_EQ(canon("/a/b/."), "/a/b/");
  EXPECT_EQ(canon("/a/b/.."), "/a/");
  EXPECT_EQ(canon("/a/.."), "/");
  EXPECT_EQ(canon("/."), "/");
  EXPECT_EQ(canon("/a/./b/../../c/./d/.."), "/c/");
}

TEST(UrlPath, OverlongUtf8IsRefused) {
  EXPECT_EQ(canon("/x/%c0%ae%c0%ae/admin"), "<bad_request>");
  EXPECT_EQ(canon("/x/%e0%80%ae/admin"), "<bad_request>");
  EXPECT_EQ(canon("/x%c0%afadmin"), "<bad_request>");
  EXPECT_EQ(canon("/x%f0%80%80%afadmin"), "<bad_request>");
  EXPECT_EQ(canon("/a%C1%BF"), "<bad_request>");
  // Shortest forms, and bytes that are not UTF-8 at all (Latin-1), are opaque data.
  EXPECT_EQ(canon("/caf%C3%A9"), "/caf\xC3\xA9");
  EXPECT_EQ(canon("/%E0%A4%85"), "/\xE0\xA4\x85");
  EXPECT_EQ(canon("/%F0%90%80%80"), "/\xF0\x90\x80\x80");
  EXPECT_EQ(canon("/caf%E9"), "/caf\xE9");
}

TEST(UrlPath, WhatCannotBeMadeCanonicalIsRefused) {
  EXPECT_EQ(canon("/.."), "<bad_request>");
  EXPECT_EQ(canon("/a/../../b"), "<bad_request>");
  EXPECT_EQ(canon("/%2e%2e/etc/passwd"), "<bad_request>");
  EXPECT_EQ(canon("/a%00b"), "<bad_request>");
  EXPECT_EQ(canon("/a%0d%0ab"), "<bad_request>");
  EXPECT_EQ(canon("/a%7F"), "<bad_request>");
  EXPECT_EQ(canon("/a%zz"), "<bad_request>");
  EXPECT_EQ(canon("/a%4"), "<bad_request>");
  EXPECT_EQ(canon("/a%"), "<bad_request>");
}

TEST(UrlPath, DoubleEscapingIs404UnlessAllowed) {
  EXPECT_EQ(canon("/%252e"), "<double_escaping>");
  EXPECT_EQ(canon("/a%2541"), "<double_escaping>");
  EXPECT_EQ(canon("/%25%32%65"), "<double_escaping>");  // escaped twice, piece by piece
  UrlLimits allow;
  allow.allow_double_escaping = true;
  EXPECT_EQ(canon("/a%2541", allow), "/a%41");
  EXPECT_EQ(encoded("/a%41"), "/a%2541");
}

TEST(UrlPath, LimitsAreIisDefaults) {
  std::string path = "/" + std::string(4095, 'a');
  EXPECT_EQ(canon(path), path);
  EXPECT_EQ(canon(path + "a"), "<url_too_long>");
  EXPECT_EQ(canon("/x?" + std::string(2048, 'q')), "/x");
  EXPECT_EQ(canon("/x?" + std::string(2049, 'q')), "<query_string_too_long>");
  UrlLimits small;
  small.max_url = 3;
  small.max_query_string = 1;
  EXPECT_EQ(canon("/abc"), "/abc");
  EXPECT_EQ(canon("/abc", small), "<url_too_long>");
  EXPECT_EQ(canon("/ab?xy", small), "<query_string_too_long>");
}

TEST(UrlPath, EncodingEscapesOnlyWhatWouldChangeTheMeaning) {
  EXPECT_EQ(encoded("/a b/c?d#e%f"), "/a%20b/c%3Fd%23e%25f");
  EXPECT_EQ(encoded("/\xC3\xBC\x7F\x01"), "/%C3%BC%7F%01");
  EXPECT_EQ(encoded("/a-b_c.d~e!$&'()*+,;=:@/"), "/a-b_c.d~e!$&'()*+,;=:@/");
  // What was encoded decodes back to it.
  for (std::string_view p : {"/a b", "/x?y", "/100%", "/#", "/\xC3\xBC"}) {
    EXPECT_EQ(canon(encoded(p)), p);
  }
}

TEST(UrlPath, AWarmBufferIsReused) {
  std::string out;
  out.reserve(64);
  const char* data = out.data();
  Rejection why;
  ASSERT_TRUE(canonicalize_path("/a/./b/%41", {}, out, why));
  EXPECT_EQ(out, "/a/b/A");
  EXPECT_EQ(out.data(), data);
}

TEST(AbsoluteLocation, RelativeRedirectsGetTheRequestsSchemeAndHost) {
  EXPECT_EQ(absolute_location("/new/a?b=1", false, "shop.example:8080"),
            "http://shop.example:8080/new/a?b=1");
  EXPECT_EQ(absolute_location("elsewhere", true, "shop.example"), "https://shop.example/elsewhere");
  EXPECT_EQ(absolute_location("//cdn.example/x", true, "shop.example"), "https://cdn.example/x");
  EXPECT_EQ(absolute_location("https://other.example/x", false, "shop.example"),
            "https://other.example/x");
  EXPECT_EQ(absolute_location("mailto:a@b", false, "shop.example"), "mailto:a@b");
  EXPECT_EQ(absolute_location("/x", false, ""), "/x");  // no Host: nothing to build it from
}

}  // namespace
}  // namespace harrow

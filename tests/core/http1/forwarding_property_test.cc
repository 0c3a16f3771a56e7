// For any valid request Harrow forwards, the bytes the origin receives parse (strict llhttp) as
// exactly one request with the same method, target (its path canonical), header fields in the same
// order (minus hop-by-hop ones and those Harrow sets itself) and the same body, however the
// client's reads split it and whether the body came with Content-Length or chunked.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <utility>
#include <vector>

#include "core/base/ascii.h"
#include "core/http1/http_head.h"
#include "core/http1/url_path.h"
#include "tests/fuzz/request_driver.h"

namespace harrow {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

std::string pick(std::string_view alphabet, int min_len, int max_len) {
  int len = *rc::gen::inRange(min_len, max_len + 1);
  std::string s;
  for (int i = 0; i < len; ++i) {
    s +=
        alphabet[static_cast<size_t>(*rc::gen::inRange<int>(0, static_cast<int>(alphabet.size())))];
  }
  return s;
}

bool harrow_sets(std::string_view name) {
  for (std::string_view n : {"host", "content-length", "transfer-encoding", "connection",
                             "keep-alive", "te", "trailer", "upgrade", "proxy-connection",
                             "proxy-authenticate", "proxy-authorization", "x-forwarded-for"}) {
    if (iequals(name, n)) return true;
  }
  return false;
}

// classify_field compares eight bytes at a time with a case-folding mask; it must agree with a
// plain case-insensitive comparison for every header-name token, including near misses.
RC_GTEST_PROP(Forwarding, FieldKindsAgreeWithCaseInsensitiveNames, ()) {
  static constexpr std::pair<std::string_view, FieldKind> kKnown[] = {
      {"host", FieldKind::host},
      {"content-length", FieldKind::content_length},
      {"connection", FieldKind::connection},
      {"keep-alive", FieldKind::keep_alive},
      {"te", FieldKind::te},
      {"trailer", FieldKind::trailer},
      {"transfer-encoding", FieldKind::transfer_encoding},
      {"upgrade", FieldKind::upgrade},
      {"proxy-connection", FieldKind::proxy_connection},
      {"proxy-authenticate", FieldKind::proxy_authenticate},
      {"proxy-authorization", FieldKind::proxy_authorization},
  };
  constexpr std::string_view kTchar =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~";
  std::string name;
  if (*rc::gen::arbitrary<bool>()) {
    name = std::string(kKnown[*rc::gen::inRange<size_t>(0, std::size(kKnown))].first);
    for (char& c : name) {
      if (*rc::gen::arbitrary<bool>()) c = static_cast<char>(std::toupper(c));
    }
    if (*rc::gen::arbitrary<bool>()) {  // a near miss: one character replaced
      size_t at = *rc::gen::inRange<size_t>(0, name.size());
      name[at] = kTchar[*rc::gen::inRange<size_t>(0, kTchar.size())];
    }
  } else {
    name = pick(kTchar, 1, 20);
  }
  FieldKind expected = FieldKind::other;
  for (const auto& [known, kind] : kKnown) {
    if (iequals(name, known)) expected = kind;
  }
  RC_ASSERT(classify_field(name) == expected);
}

RC_GTEST_PROP(Forwarding, ForwardedBytesAreExactlyTheSameRequest, ()) {
  const std::string method =
      *rc::gen::element<std::string>("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD");
  std::string target = "/" + pick("abcXYZ019-._~!$&'()*+,;=:@%/", 0, 30);
  if (*rc::gen::arbitrary<bool>()) target += "?" + pick("abc=&%2F/?", 0, 20);

  // Fields the origin must see, in order.
  Fields kept;
  int n = *rc::gen::inRange(0, 12);
  for (int i = 0; i < n; ++i) {
    std::string name = pick(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~", 1, 12);
    if (harrow_sets(name)) continue;
    std::string value = pick("abc xyz\t019,;=\"()/:@[]{}\x80\xff", 0, 24);
    // A field value has no leading or trailing whitespace (RFC 9110 §5.5).
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
    kept.emplace_back(name, value);
  }
  // Hop-by-hop fields the origin must not see.
  bool hop = *rc::gen::arbitrary<bool>();
  std::string body = *rc::gen::arbitrary<bool>() ? pick("hello world\r\n\x00\xff", 0, 300) : "";
  bool chunked = !body.empty() && *rc::gen::arbitrary<bool>();

  std::string req = method + " " + target + " HTTP/1.1\r\nHost: origin.test\r\n";
  size_t hop_at =
      kept.empty() ? 0
                   : static_cast<size_t>(*rc::gen::inRange<int>(0, static_cast<int>(kept.size())));
  for (size_t i = 0; i <= kept.size(); ++i) {
    if (hop && i == hop_at)
      req += "Connection: keep-alive, X-Hop-Field\r\nX-Hop-Field: 1\r\nKeep-Alive: 5\r\n";
    if (i < kept.size()) req += kept[i].first + ": " + kept[i].second + "\r\n";
  }
  if (chunked) {
    req += "Transfer-Encoding: chunked\r\n\r\n";
    size_t pos = 0;
    while (pos < body.size()) {
      size_t len =
          static_cast<size_t>(*rc::gen::inRange<int>(1, static_cast<int>(body.size() - pos) + 1));
      char line[32];
      std::snprintf(line, sizeof line, "%zx\r\n", len);
      req += line + body.substr(pos, len) + "\r\n";
      pos += len;
    }
    req += "0\r\n\r\n";
  } else if (!body.empty()) {
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    kept.emplace_back("Content-Length", std::to_string(body.size()));
  } else {
    req += "\r\n";
  }

  size_t read_size = static_cast<size_t>(*rc::gen::inRange(1, 200));
  testing::RequestDriver driver;
  testing::Decision d = driver.run(req, read_size);
  // The path goes upstream canonical (url_path.h), the query as it came; a path that cannot
  // be made canonical is refused.
  std::string judged;
  Rejection why;
  if (!canonicalize_target(target, {}, judged, why)) {
    RC_ASSERT(d.rejected);
    RC_ASSERT(d.failure == why.failure);
    RC_SUCCEED("refused");
  }
  std::string sent;
  append_encoded_path(judged, sent);
  std::string query = target.substr(std::min(target.find('?'), target.size()));
  if (query != "?") sent.append(query);  // an empty query is not appended (as in IIS)
  RC_ASSERT(d.forwarded);
  RC_ASSERT(d.consumed == req.size());

  testing::ParsedUpstream up = testing::parse_upstream(d.upstream);
  RC_ASSERT(!up.error);
  RC_ASSERT(up.messages == 1);
  RC_ASSERT(up.method == method);
  RC_ASSERT(up.target == sent);
  RC_ASSERT(d.judged_path == judged);
  RC_ASSERT(up.body == body);
  Fields seen;
  for (auto& [name, value] : up.fields) {
    if (iequals(name, "host")) {
      RC_ASSERT(value == std::string("origin.test"));
      continue;
    }
    if (iequals(name, "x-forwarded-for") || (chunked && iequals(name, "transfer-encoding")))
      continue;
    seen.emplace_back(name, value);
  }
  RC_ASSERT(seen == kept);
}

}  // namespace
}  // namespace harrow

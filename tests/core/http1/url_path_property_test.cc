// The canonical path (core/url_path.h) and the sinks that rule output reaches:
// - forwarding is idempotent: the target Harrow sends for a path, sent again, is judged the same
//   and sent unchanged, and it decodes to the path the rules judged (also through the Router's
//   pass-through rule, whatever '?', '#', '%' or bytes >= 0x80 the decoded path holds);
// - whatever a rule produces for a request target, header value or status reason, the head
//   Harrow writes parses (strict llhttp) as exactly one message carrying exactly those values,
//   or the writer refuses it.
#include <gtest/gtest.h>
#include <llhttp.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/base/ascii.h"
#include "core/http1/http_head.h"
#include "core/http1/url_path.h"
#include "core/rewrite/router.h"
#include "tests/fuzz/request_driver.h"

namespace harrow {
namespace {

std::string pick(std::string_view alphabet, int min_len, int max_len) {
  int len = *rc::gen::inRange(min_len, max_len + 1);
  std::string s;
  for (int i = 0; i < len; ++i) {
    s +=
        alphabet[static_cast<size_t>(*rc::gen::inRange<int>(0, static_cast<int>(alphabet.size())))];
  }
  return s;
}

// Raw paths rich in what canonicalization acts on.
std::string raw_path() {
  static constexpr std::string_view kPieces[] = {
      "/",   "/",   ".",   "..",  "a",   "B",   "%2e", "%2E", "%2f", "%5c", "\\", "%25",
      "%41", "%3F", "%23", "%20", "%C3", "%bc", "%00", "%0d", "%",   "z",   "?",  "~"};
  std::string p = *rc::gen::arbitrary<bool>() ? "/" : "";
  int n = *rc::gen::inRange(0, 14);
  for (int i = 0; i < n; ++i) p += kPieces[*rc::gen::inRange<size_t>(0, std::size(kPieces))];
  return p;
}

RC_GTEST_PROP(UrlPath, ForwardingIsIdempotentAndDecodesToTheJudgedPath, ()) {
  std::string raw = raw_path();
  UrlLimits limits;
  limits.allow_double_escaping = *rc::gen::arbitrary<bool>();
  std::string judged;
  Rejection why;
  if (!canonicalize_path(raw, limits, judged, why)) {
    RC_SUCCEED("refused");
  }
  RC_LOG() << raw << " -> " << judged << "\n";
  RC_ASSERT(!judged.empty() && judged.front() == '/');
  RC_ASSERT(judged.find("//") == std::string::npos);
  RC_ASSERT(judged.find("/./") == std::string::npos && judged.find("/../") == std::string::npos);
  for (char c : judged) RC_ASSERT(static_cast<unsigned char>(c) >= 0x20 && c != 0x7F);
  std::string sent;
  append_encoded_path(judged, sent);
  RC_ASSERT(HeadWriter::safe_target(sent));
  std::string again;
  RC_ASSERT(canonicalize_path(sent, limits, again, why));
  RC_ASSERT(again == judged);
  std::string sent_again;
  append_encoded_path(again, sent_again);
  RC_ASSERT(sent_again == sent);
}

RC_GTEST_PROP(UrlPath, ThePassThroughRuleForwardsWhatItJudged, ()) {
  std::string judged;
  Rejection why;
  if (!canonicalize_path(raw_path(), {}, judged, why)) RC_SUCCEED("refused");
  std::string query = *rc::gen::arbitrary<bool>() ? "" : "?" + pick("ab=&%2F/?", 1, 8);
  config::Config config;
  config.farms.resize(1);
  config.farms[0].name = "f";
  config::RuleConfig rule;
  rule.name = "r";
  rule.pattern_syntax = *rc::gen::arbitrary<bool>() ? config::PatternSyntax::Wildcard
                                                    : config::PatternSyntax::ECMAScript;
  rule.match_url = rule.pattern_syntax == config::PatternSyntax::Wildcard ? "*" : "(.*)";
  rule.action = config::ActionType::Rewrite;
  rule.action_url =
      *rc::gen::element<std::string>("http://f/{R:0}", "http://f{URL}", "http://f/{R:1}");
  if (rule.action_url == "http://f/{R:1}" && rule.pattern_syntax == config::PatternSyntax::Wildcard)
    rule.action_url = "http://f/{R:0}";
  rule.stop_processing = true;
  bool ascii = std::all_of(judged.begin(), judged.end(),
                           [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (!ascii) {  // a UTF pattern never matches a subject that is not UTF-8: Wildcard does
    rule.pattern_syntax = config::PatternSyntax::Wildcard;
    rule.match_url = "*";
  }
  config.global_rules.push_back(rule);
  Router router(config);
  RouteScratch scratch;
  std::string target = "/raw-is-not-used" + query;
  RequestFacts facts{.method = "GET", .target = target, .path = judged};
  RouteDecision d = router.route(facts, scratch);
  RC_ASSERT(d.kind == RouteDecision::Kind::Farm);
  std::string sent(d.target);
  RC_LOG() << judged << " -> " << sent << "\n";
  RC_ASSERT(HeadWriter::safe_target(sent));
  std::string path = sent.substr(0, sent.find('?'));
  RC_ASSERT(sent.substr(path.size()) == query);
  std::string again;
  RC_ASSERT(canonicalize_path(path, {}, again, why));
  RC_ASSERT(again == judged);
}

// ---------------------------------------------------------------- the sinks

// Rule output: mostly harmless text, with every byte that could become syntax.
std::string rule_output() {
  static constexpr char kBytes[] = "abc /:%?#\t\r\n\0\x01\x1f\x7f\x80\xff";
  return pick(std::string_view(kBytes, sizeof kBytes - 1), 0, 16);  // the NUL in, the end out
}

std::string trim_ows(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return std::string(v);
}

RC_GTEST_PROP(RuleSinks, UpstreamRequestIsOneMessageWithTheRulesValuesOrRefused, ()) {
  std::string target = "/" + rule_output();
  std::string value = rule_output();
  std::string host = *rc::gen::arbitrary<bool>() ? "origin.test" : rule_output();
  MessageHead head;
  head.reset(4096);
  head.on_target("/", 1);
  head.finish();
  HeaderField rule_headers[] = {{"X-Rule", value}};
  UpstreamRequest up;
  up.method = "GET";
  up.target = target;
  up.head = &head;
  up.host = host;
  up.rule_headers = rule_headers;
  char buf[4096];
  HeadWriter w(buf, sizeof buf);
  write_upstream_request(up, w);
  RC_ASSERT(!w.overflowed());
  if (w.unsafe()) RC_SUCCEED("refused");
  testing::ParsedUpstream parsed = testing::parse_upstream(std::string_view(buf, w.size()));
  RC_ASSERT(!parsed.error);
  RC_ASSERT(parsed.messages == 1);
  RC_ASSERT(parsed.target == target);
  std::vector<std::pair<std::string, std::string>> expected = {{"Host", trim_ows(host)},
                                                               {"X-Rule", trim_ows(value)}};
  std::vector<std::pair<std::string, std::string>> seen;
  for (auto& [n, v] : parsed.fields) {
    if (iequals(n, "host") || iequals(n, "x-rule")) seen.emplace_back(n, trim_ows(v));
  }
  RC_ASSERT(seen == expected);
}

RC_GTEST_PROP(RuleSinks, ClientResponseIsOneMessageWithTheRulesValuesOrRefused, ()) {
  std::string reason = rule_output();
  std::string location = rule_output();
  HeaderField add[] = {{"Location", location}, {"Content-Length", "0"}};
  ClientResponse resp;
  resp.status = 302;
  resp.reason = reason;
  resp.add = add;
  char buf[4096];
  HeadWriter w(buf, sizeof buf);
  write_client_response(resp, w);
  if (w.unsafe()) RC_SUCCEED("refused");
  struct State {
    int messages = 0;
    std::string reason, name, value;
    std::vector<std::pair<std::string, std::string>> fields;
  } st;
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_status = [](llhttp_t* p, const char* at, size_t len) {
    static_cast<State*>(p->data)->reason.append(at, len);
    return 0;
  };
  s.on_header_field = [](llhttp_t* p, const char* at, size_t len) {
    static_cast<State*>(p->data)->name.append(at, len);
    return 0;
  };
  s.on_header_value = [](llhttp_t* p, const char* at, size_t len) {
    static_cast<State*>(p->data)->value.append(at, len);
    return 0;
  };
  s.on_header_value_complete = [](llhttp_t* p) {
    auto* st = static_cast<State*>(p->data);
    st->fields.emplace_back(st->name, st->value);
    st->name.clear();
    st->value.clear();
    return 0;
  };
  s.on_message_complete = [](llhttp_t* p) {
    ++static_cast<State*>(p->data)->messages;
    return 0;
  };
  llhttp_t parser;
  llhttp_init(&parser, HTTP_RESPONSE, &s);
  parser.data = &st;
  RC_ASSERT(llhttp_execute(&parser, buf, w.size()) == HPE_OK);
  RC_ASSERT(st.messages == 1);
  RC_ASSERT(parser.status_code == 302);
  std::string expected_reason = reason.empty() ? std::string(default_reason(302)) : reason;
  RC_ASSERT(trim_ows(st.reason) == trim_ows(expected_reason));
  RC_ASSERT(st.fields.size() == 2u);
  RC_ASSERT(st.fields[0].first == "Location");
  RC_ASSERT(trim_ows(st.fields[0].second) == trim_ows(location));
}

}  // namespace
}  // namespace harrow

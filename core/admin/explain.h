// --explain and POST /api/explain: what Harrow would do with one request, step by step (the
// site, every rule and condition, the rewritten URL, the farm, the server the balancer would
// pick and why, the outbound rules), like IIS's Failed Request Tracing for URL Rewrite and ARR,
// without sending anything anywhere.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/proxy/snapshot.h"

namespace harrow {

struct ExplainInput {
  std::string request;               // "GET https://shop.example/a/b?x=1"
  std::vector<std::string> headers;  // "Name: value"
};

struct Explanation {
  bool ok = false;                 // false: the input is not a request; `error` says why
  std::string error;               // when !ok
  std::vector<std::string> lines;  // the report, one line each
  // The outcome in short: "farm", "proxy", "redirect", "custom-response", "abort", "no-route",
  // "refused".
  std::string outcome;
  std::string site;    // empty: no site
  std::string rule;    // the rule that decided
  std::string url;     // rewritten URL (or Location)
  std::string farm;    // farm chosen
  std::string server;  // server the balancer would pick ("address:port")
  int status = 0;      // what the client would get when Harrow answers itself
};

// Explains `in` against `snapshot`. `live`: the servers' health and state are the snapshot's
// (the admin listener); false: every enabled server is assumed healthy (the command line, where
// nothing has been probed), and the report says so.
Explanation explain_request(const Snapshot& snapshot, const ExplainInput& in, bool live);

std::string render_explanation_text(const Explanation& e);
std::string render_explanation_json(const Explanation& e);

// {"request":"GET https://…","headers":["Name: v"]} → `out`; false with `error` otherwise.
bool parse_explain_json(std::string_view body, ExplainInput& out, std::string& error);

}  // namespace harrow

// `harrow --check-config --replay FILE...`: a migration test on real traffic. Reads W3C
// extended logs (IIS's u_ex*.log, or Harrow's own access log), routes every request through the
// configuration offline — the code --explain uses — and summarizes: farms hit, rules matched,
// requests that would get 404 no_route or be refused, and requests where Harrow's rewrite or
// farm differs from what the log says happened.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/proxy/snapshot.h"

namespace harrow {

// One request as a W3C log line describes it.
struct LoggedRequest {
  std::string method;
  std::string url;                   // absolute: "http://host[:port]/stem?query"
  std::vector<std::string> headers;  // "Name: value" from cs(Name) fields
  // The URL after URL Rewrite as IIS logged it (path[?query]): present when the line carries
  // the original URL too (IIS logs the rewritten URL in cs-uri-stem when a rule sets
  // logRewrittenUrl, and URL Rewrite keeps the original in the X-Original-URL header).
  std::optional<std::string> rewritten;
  std::optional<std::string> farm;  // Harrow's own log: x-farm (empty: none)
  int status = 0;                   // sc-status, 0 when absent
};

// Reads one file's lines in order. The #Fields: directive names the columns of the lines
// after it (W3C Extended Log File Format, https://www.w3.org/TR/WD-logfile.html); IIS starts a
// new one whenever it reopens the file, so a file may carry several.
class W3cLogReader {
 public:
  enum class Line { Directive, Blank, Request, Malformed };
  // `error` says why a line is Malformed.
  Line read(std::string_view line, LoggedRequest& out, std::string& error);
  bool has_fields() const { return !fields_.empty(); }

 private:
  std::vector<std::string> fields_;  // lower-cased names
  std::string fields_error_;         // the last #Fields: could not be used: why
  int stem_ = -1, query_ = -1, method_ = -1, host_ = -1, server_ip_ = -1, server_port_ = -1;
  int status_ = -1, farm_ = -1, original_url_ = -1;
};

struct ReplayFinding {
  std::string where;    // "file:line"
  std::string request;  // "GET http://…"
  std::string detail;
};

struct ReplaySummary {
  uint64_t requests = 0;
  uint64_t malformed = 0;
  std::map<std::string, uint64_t> farms;     // farm (or proxied host) → requests
  std::map<std::string, uint64_t> rules;     // deciding rule → requests
  std::map<std::string, uint64_t> outcomes;  // explain's outcome → requests
  uint64_t no_route = 0;
  uint64_t refused = 0;
  std::map<std::string, uint64_t> refusal_reasons;  // "503 no_server" → requests
  uint64_t rewrite_differences = 0;
  uint64_t farm_differences = 0;
  // The first kListed of each kind.
  std::vector<ReplayFinding> malformed_lines, unroutable, refusals, differences;
  static constexpr size_t kListed = 20;

  bool clean() const {
    return no_route == 0 && refused == 0 && rewrite_differences == 0 && farm_differences == 0;
  }
};

// Routes one request and counts it; `where` is "file:line".
void replay_request(const Snapshot& snapshot, const LoggedRequest& request,
                    const std::string& where, ReplaySummary& summary);

// Reads every line of `text` (one file's content) into `summary`.
void replay_text(const Snapshot& snapshot, std::string_view text, const std::string& file,
                 ReplaySummary& summary);

std::string render_replay_summary(const ReplaySummary& summary);

// Exit codes of --replay.
inline constexpr int kReplayClean = 0;        // every request routes as the log says
inline constexpr int kReplayDifferences = 1;  // unroutable, refused or different requests
// (2, as every configuration error: the configuration or a log file cannot be read.)

// Replays `files` against `snapshot`, prints the summary to `out`, returns the exit code.
int replay_files(const Snapshot& snapshot, const std::vector<std::string>& files, FILE* out);

}  // namespace harrow

// `harrow ctl …`: a command-line client of the running process's admin API (what IIS Manager's
// farm view and appcmd do for ARR): list farms and servers, drain/stop/start a server, reload,
// explain a request, show a server's metrics. Tables for people, --json for scripts.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace harrow {

// Exit codes of `harrow ctl`.
inline constexpr int kCtlOk = 0;
inline constexpr int kCtlApiError = 1;     // the admin API answered with an error (on stderr)
inline constexpr int kCtlUsage = 2;        // bad command line or unreadable --config/token file
inline constexpr int kCtlUnreachable = 3;  // no admin listener answered at the address

// argv[0] is "ctl". Prints to stdout/stderr and returns the exit code.
int run_ctl(int argc, const char* const* argv);

const char* ctl_usage_text();

// A parsed JSON value, enough for the admin API's answers. `raw` is the value's own text in the
// document it was parsed from (so --json can pass a part of an answer through unchanged).
struct JsonValue {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  std::string text;                                        // String: the decoded string
  std::vector<JsonValue> items;                            // Array
  std::vector<std::pair<std::string, JsonValue>> members;  // Object, in document order
  std::string_view raw;

  const JsonValue* get(std::string_view key) const;  // Object member or null
  std::string str(std::string_view key) const;       // member as text ("" when absent)
};

// False with `error` (and the byte offset) when `text` is not one JSON value.
bool parse_json(std::string_view text, JsonValue& out, std::string& error);

// Left-aligned columns separated by two spaces; the first row is the header.
std::string render_table(const std::vector<std::vector<std::string>>& rows);

// "127.0.0.1:9180", "localhost:9180", "[::1]:9180", "http://…/" or a configured listener
// address ("*:9180", "0.0.0.0:9180", "[::]:9180": reached on loopback) → "HOST:PORT" to
// connect to and send as Host; false with `error` otherwise.
bool admin_target(std::string_view address, std::string& host_port, std::string& error);

// Prometheus text lines whose labels name `server` (server="…" exactly, or its address before
// the port); every sample line when `server` is empty. HELP/TYPE comments are dropped.
std::vector<std::string> metrics_for_server(std::string_view metrics, std::string_view server);

}  // namespace harrow

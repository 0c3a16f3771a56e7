// `harrow ctl …`: a command-line client of the running process's admin API (what IIS Manager's
// farm view and appcmd do for ARR): list farms and servers, drain/stop/start a server, reload,
// explain a request, show a server's metrics. Tables for people, --json for scripts.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/daemon/json_value.h"

namespace harrow {

// Exit codes of `harrow ctl`.
inline constexpr int kCtlOk = 0;
inline constexpr int kCtlApiError = 1;     // the admin API answered with an error (on stderr)
inline constexpr int kCtlUsage = 2;        // bad command line or unreadable --config/token file
inline constexpr int kCtlUnreachable = 3;  // no admin listener answered at the address

// argv[0] is "ctl". Prints to stdout/stderr and returns the exit code.
int run_ctl(int argc, const char* const* argv);

const char* ctl_usage_text();

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

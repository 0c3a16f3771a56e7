// The command line, a stable contract (see usage_text()): parsed into options, or a usage error.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace harrow {

struct CommandLine {
  std::string config_path = "/etc/harrow/harrow.config";
  std::optional<int> workers;
  std::vector<std::string> listen;  // replaces the file's plain-HTTP listeners when non-empty
  std::optional<std::string> admin;
  std::string log_level = "info";
  bool check_config = false;
  // --explain "GET https://host/path" (with --check-config): what would happen to that request.
  std::optional<std::string> explain;
  std::vector<std::string> headers;  // --header "Name: value", repeatable (with --explain)
  // --replay FILE... (with --check-config): W3C logs whose requests are routed offline.
  std::vector<std::string> replay;
  bool version = false;
  bool help = false;
};

// Returns false with `error` set for an unknown flag or a missing/invalid value.
bool parse_command_line(int argc, const char* const* argv, CommandLine& out, std::string& error);

const char* usage_text();

}  // namespace harrow

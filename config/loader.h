// Reads an applicationHost.config-style XML file into a validated Config. Element and
// attribute names match case-insensitively; inside the sections Harrow reads, anything
// unknown is an error with file:line:column. Knows nothing of sockets or threads.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace harrow::config {

struct Diagnostic {
  SourceLocation where;
  std::string message;

  // "PATH:LINE:COL: error: message" — the contract's error format.
  std::string format_error() const;
};

struct LoadResult {
  std::optional<Config> config;    // set only when errors is empty
  std::vector<Diagnostic> errors;  // every error found, in file order
};

// Parses and validates the file at `path`. Never throws; I/O and XML syntax problems are
// reported as errors (with line 0 / column 0 when there is no position to give).
LoadResult load_config_file(const std::string& path);

// The same from memory; `path` is only used in diagnostics.
LoadResult load_config_text(std::string_view xml, const std::string& path);

// A one-screen, human-readable summary for `harrow --check-config`.
std::string summarize(const Config& config);

}  // namespace harrow::config

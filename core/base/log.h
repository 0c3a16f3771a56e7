// Harrow's error log: one line per event on stderr, "harrow: LEVEL: message", written with a
// single write(2) so lines from different threads never interleave.
#pragma once

#include <string_view>

namespace harrow {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3 };

void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);
bool parse_log_level(std::string_view text, LogLevel& out);

// printf-style; the line gets its prefix and newline here.
void log_line(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));

}  // namespace harrow

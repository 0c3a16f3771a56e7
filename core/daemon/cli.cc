#include "core/daemon/cli.h"

#include <charconv>
#include <string_view>

namespace harrow {

const char* usage_text() {
  return "usage: harrow [--config PATH] [--workers N] [--listen ADDR:PORT]... [--admin ADDR:PORT]\n"
         "              [--log-level debug|info|warn|error]\n"
         "       harrow --check-config [--config PATH]\n"
         "       harrow --check-config [--config PATH] --explain \"METHOD URL\" [--header \"Name: "
         "value\"]...\n"
         "       harrow --check-config [--config PATH] --replay LOG...\n"
         "       harrow ctl [--admin ADDR:PORT] [--json] COMMAND   (see harrow ctl --help)\n"
         "       harrow --version | --help\n"
         "\n"
         "  --config PATH      configuration file (default /etc/harrow/harrow.config)\n"
         "  --workers N        worker threads (default: number of CPUs)\n"
         "  --listen ADDR:PORT plain-HTTP listener; repeatable; replaces the file's listeners\n"
         "                     (port 0 picks a free port, printed at start-up)\n"
         "  --admin ADDR:PORT  admin listener (metrics, API); replaces the file's address\n"
         "  --log-level LEVEL  debug, info, warn or error (default info)\n"
         "  --check-config     validate the configuration, print a summary, exit 0 or 2\n"
         "  --explain REQUEST  with --check-config: trace one request, e.g. \"GET\n"
         "                     https://shop.example/a?x=1\": site, every rule and condition,\n"
         "                     rewritten URL, farm, the server picked and why, outbound rules;\n"
         "                     no network (servers assumed healthy). POST /api/explain does it\n"
         "                     on the running configuration\n"
         "  --header H         with --explain: a request header \"Name: value\"; repeatable\n"
         "  --replay LOG...    with --check-config: route every request of these W3C logs (IIS's\n"
         "                     u_ex*.log or Harrow's own) offline; summary of farms, rules,\n"
         "                     404s, refusals and rewrites that differ; exit 1 if any\n"
         "  --version          print the version\n"
         "\n"
         "signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads, SIGUSR1 reopens logs\n";
}

bool parse_command_line(int argc, const char* const* argv, CommandLine& out, std::string& error) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view value;
    bool inline_value = false;
    if (size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      inline_value = true;
    }
    auto take_value = [&]() -> bool {
      if (inline_value) return true;
      if (i + 1 >= argc) {
        error = "option " + std::string(arg) + " needs a value";
        return false;
      }
      value = argv[++i];
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      out.help = true;
    } else if (arg == "--version") {
      out.version = true;
    } else if (arg == "--check-config") {
      out.check_config = true;
    } else if (arg == "--explain") {
      if (!take_value()) return false;
      out.explain = std::string(value);
    } else if (arg == "--replay") {
      if (!take_value()) return false;
      out.replay.emplace_back(value);
      // Every following word that is not an option is a log too (a shell glob: u_ex*.log).
      while (i + 1 < argc && argv[i + 1][0] != '-') out.replay.emplace_back(argv[++i]);
    } else if (arg == "--header" || arg == "-H") {
      if (!take_value()) return false;
      if (value.find(':') == std::string_view::npos || value.front() == ':') {
        error = "--header needs \"Name: value\", not '" + std::string(value) + "'";
        return false;
      }
      out.headers.emplace_back(value);
    } else if (arg == "--config" || arg == "-c") {
      if (!take_value()) return false;
      out.config_path = value;
    } else if (arg == "--listen") {
      if (!take_value()) return false;
      out.listen.emplace_back(value);
    } else if (arg == "--admin") {
      if (!take_value()) return false;
      out.admin = std::string(value);
    } else if (arg == "--log-level") {
      if (!take_value()) return false;
      out.log_level = value;
    } else if (arg == "--workers") {
      if (!take_value()) return false;
      int n = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || p != value.data() + value.size() || n < 1 || n > 1024) {
        error = "--workers needs a number from 1 to 1024, not '" + std::string(value) + "'";
        return false;
      }
      out.workers = n;
    } else {
      error = "unknown option '" + std::string(arg) + "'";
      return false;
    }
  }
  if (out.explain && !out.check_config) {
    error = "--explain goes with --check-config (it starts nothing)";
    return false;
  }
  if (!out.replay.empty() && !out.check_config) {
    error = "--replay goes with --check-config (it starts nothing)";
    return false;
  }
  if (!out.replay.empty() && out.explain) {
    error = "--replay and --explain go separately";
    return false;
  }
  if (!out.headers.empty() && !out.explain) {
    error = "--header goes with --explain";
    return false;
  }
  return true;
}

}  // namespace harrow

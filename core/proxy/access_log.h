// The access log: one line per request, W3C extended (IIS's format) or JSON, saying for every
// request which farm and server served it and — when Harrow failed it — why (reason token and
// upstream error), with ARR's per-request GUID. Each worker buffers its own lines and writes
// them with one write(2) per flush to a file opened O_APPEND, so workers never share a lock.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"

namespace harrow {

// The open log file, shared by all workers. reopen() (SIGUSR1, for logrotate) swaps the file
// under the same descriptor number with dup2, so a worker writing at that moment is safe.
class AccessLogFile {
 public:
  static std::unique_ptr<AccessLogFile> open(const std::string& path,
                                             config::AccessLogFormat format, std::string& error);
  ~AccessLogFile();
  bool reopen(std::string& error);
  int fd() const { return fd_; }
  config::AccessLogFormat format() const { return format_; }
  const std::string& path() const { return path_; }

 private:
  AccessLogFile(std::string path, config::AccessLogFormat format, int fd)
      : path_(std::move(path)), format_(format), fd_(fd) {}
  static int open_fd(const std::string& path, config::AccessLogFormat format, std::string& error);
  std::string path_;
  config::AccessLogFormat format_;
  int fd_;
};

struct AccessLogEntry {
  std::string_view server_ip;  // the listener's address the client connected to
  std::string_view client_ip;
  uint16_t client_port = 0;
  uint16_t server_port = 0;
  std::string_view method;
  std::string_view target;  // request-target as received; split into stem and query here
  std::string_view host;
  std::string_view user_agent;
  int status = 0;               // 0: no response was sent
  uint64_t bytes_sent = 0;      // to the client
  uint64_t bytes_received = 0;  // from the client
  uint64_t time_taken_ms = 0;
  std::string_view farm;  // empty: none
  std::string_view server;
  std::string_view reason;  // failure token; empty (written "ok") when the request succeeded
  std::string_view upstream_error;  // e.g. ECONNREFUSED, empty if none
  std::string_view log_id;
  std::string_view site;             // IIS site name (s-sitename); empty: no site
  std::string_view version;          // cs-version: "HTTP/1.1", "HTTP/1.0", "HTTP/2"
  std::string_view cache;            // sc-cache: HIT, MISS, …; empty: the farm does not cache
  int64_t upstream_connect_ms = -1;  // -1: a pooled connection (or none)
  int64_t upstream_header_ms = -1;   // -1: no response head from a server
  uint32_t retries = 0;              // other servers / fresh connections tried
};

// Appends `entry` to `out` as one line in `format`, ending in '\n'.
void format_access_log_line(const AccessLogEntry& entry, config::AccessLogFormat format,
                            std::string& out);

// The W3C header block ("#Software", "#Fields") that starts a new file.
std::string w3c_header();

// A worker's buffer in front of the shared file.
class AccessLogBuffer {
 public:
  explicit AccessLogBuffer(const AccessLogFile* file) : file_(file) {}
  bool enabled() const { return file_ != nullptr; }
  void add(const AccessLogEntry& entry);
  void flush();

 private:
  static constexpr size_t kFlushAt = 32 * 1024;
  const AccessLogFile* file_;
  std::string buffer_;
};

}  // namespace harrow

#include "core/proxy/access_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "core/base/files.h"

namespace harrow {
namespace {

// W3C fields are space-separated: spaces inside a value become '+', as IIS writes them.
void append_w3c(std::string& out, std::string_view value) {
  if (value.empty()) {
    out += '-';
    return;
  }
  for (char c : value) {
    unsigned char u = static_cast<unsigned char>(c);
    out += (c == ' ') ? '+' : (u < 0x20 || u == 0x7f) ? '?' : c;
  }
}

void append_json_string(std::string& out, std::string_view value) {
  out += '"';
  for (char c : value) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
}

void append_number(std::string& out, uint64_t n) {
  char buf[24];
  int len = std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(n));
  out.append(buf, static_cast<size_t>(len));
}

}  // namespace

std::string w3c_header() {
  return "#Software: Harrow " HARROW_VERSION
         "\n#Version: 1.0\n#Fields: date time s-ip s-port cs-method cs-uri-stem cs-uri-query "
         "c-ip c-port cs(Host) cs(User-Agent) sc-status sc-bytes cs-bytes time-taken x-farm "
         "x-server x-reason x-upstream-error x-upstream-connect-ms x-upstream-header-ms x-retries "
         "x-arr-log-id s-sitename cs-version sc-cache\n";
}

void format_access_log_line(const AccessLogEntry& e, config::AccessLogFormat format,
                            std::string& out) {
  // Lines are stamped to the second, so the date and time strings are made once per second
  // per worker rather than once per request.
  thread_local time_t cached_second = -1;
  thread_local char date[16], time_of_day[16];
  timespec now;
  clock_gettime(CLOCK_REALTIME_COARSE, &now);
  if (now.tv_sec != cached_second) {
    cached_second = now.tv_sec;
    tm utc;
    gmtime_r(&now.tv_sec, &utc);
    std::strftime(date, sizeof date, "%Y-%m-%d", &utc);
    std::strftime(time_of_day, sizeof time_of_day, "%H:%M:%S", &utc);
  }
  size_t q = e.target.find('?');
  std::string_view stem = e.target.substr(0, q);
  std::string_view query =
      q == std::string_view::npos ? std::string_view{} : e.target.substr(q + 1);

  if (format == config::AccessLogFormat::W3C) {
    out += date;
    out += ' ';
    out += time_of_day;
    out += ' ';
    append_w3c(out, e.server_ip);
    out += ' ';
    append_number(out, e.server_port);
    for (std::string_view v : {e.method, stem, query, e.client_ip}) {
      out += ' ';
      append_w3c(out, v);
    }
    out += ' ';
    append_number(out, e.client_port);
    out += ' ';
    append_w3c(out, e.host);
    out += ' ';
    append_w3c(out, e.user_agent);
    for (uint64_t n :
         {static_cast<uint64_t>(e.status), e.bytes_sent, e.bytes_received, e.time_taken_ms}) {
      out += ' ';
      append_number(out, n);
    }
    for (std::string_view v :
         {e.farm, e.server, e.reason.empty() ? std::string_view("ok") : e.reason,
          e.upstream_error}) {
      out += ' ';
      append_w3c(out, v);
    }
    for (int64_t ms : {e.upstream_connect_ms, e.upstream_header_ms}) {
      out += ' ';
      if (ms < 0) {
        out += '-';
      } else {
        append_number(out, static_cast<uint64_t>(ms));
      }
    }
    out += ' ';
    append_number(out, e.retries);
    out += ' ';
    append_w3c(out, e.log_id);
    out += ' ';
    append_w3c(out, e.site);
    out += ' ';
    append_w3c(out, e.version);
    out += ' ';
    append_w3c(out, e.cache);
    out += '\n';
    return;
  }
  out += "{\"time\":\"";
  out += date;
  out += 'T';
  out += time_of_day;
  out += "Z\",\"serverIp\":";
  append_json_string(out, e.server_ip);
  out += ",\"serverPort\":";
  append_number(out, e.server_port);
  const std::pair<const char*, std::string_view> strings[] = {
      {"method", e.method},      {"path", stem},   {"query", query},
      {"clientIp", e.client_ip}, {"host", e.host}, {"userAgent", e.user_agent}};
  for (const auto& [name, value] : strings) {
    out += ",\"";
    out += name;
    out += "\":";
    append_json_string(out, value);
  }
  out += ",\"clientPort\":";
  append_number(out, e.client_port);
  out += ",\"status\":";
  append_number(out, static_cast<uint64_t>(e.status));
  out += ",\"bytesSent\":";
  append_number(out, e.bytes_sent);
  out += ",\"bytesReceived\":";
  append_number(out, e.bytes_received);
  out += ",\"timeTakenMs\":";
  append_number(out, e.time_taken_ms);
  for (const auto& [name, ms] : {std::pair{",\"upstreamConnectMs\":", e.upstream_connect_ms},
                                 std::pair{",\"upstreamHeaderMs\":", e.upstream_header_ms}}) {
    out += name;
    if (ms < 0) {
      out += "null";
    } else {
      append_number(out, static_cast<uint64_t>(ms));
    }
  }
  out += ",\"retries\":";
  append_number(out, e.retries);
  const std::pair<const char*, std::string_view> optional[] = {
      {"farm", e.farm},
      {"server", e.server},
      {"reason", e.reason.empty() ? std::string_view("ok") : e.reason},
      {"upstreamError", e.upstream_error},
      {"arrLogId", e.log_id},
      {"siteName", e.site},
      {"version", e.version},
      {"cache", e.cache}};
  for (const auto& [name, value] : optional) {
    out += ",\"";
    out += name;
    out += "\":";
    if (value.empty()) {
      out += "null";
    } else {
      append_json_string(out, value);
    }
  }
  out += "}\n";
}

int AccessLogFile::open_fd(const std::string& path, config::AccessLogFormat format,
                           std::string& error) {
  if (path == "-" || path == "stdout") {
    // Under systemd the journal collects stdout; a duplicate keeps reopen() harmless. Not
    // inherited by a binary upgrade's new process (it opens its own).
    int fd = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
      error = std::string("cannot use stdout for the access log: ") + std::strerror(errno);
    if (fd >= 0 && format == config::AccessLogFormat::W3C) {
      std::string header = w3c_header();
      ssize_t ignored = ::write(fd, header.data(), header.size());
      (void)ignored;
    }
    return fd;
  }
  // Opened as root at start (and as the run-as user on SIGUSR1): a symbolic link or a
  // non-regular file at the path is refused, so the log cannot be pointed at another file.
  int fd = open_regular_file(path, O_WRONLY | O_APPEND | O_CREAT, "access log", error);
  if (fd < 0) return -1;
  struct stat st;
  if (format == config::AccessLogFormat::W3C && ::fstat(fd, &st) == 0 && st.st_size == 0) {
    std::string header = w3c_header();
    ssize_t ignored = ::write(fd, header.data(), header.size());
    (void)ignored;
  }
  return fd;
}

std::unique_ptr<AccessLogFile> AccessLogFile::open(const std::string& path,
                                                   config::AccessLogFormat format,
                                                   std::string& error) {
  int fd = open_fd(path, format, error);
  if (fd < 0) return nullptr;
  return std::unique_ptr<AccessLogFile>(new AccessLogFile(path, format, fd));
}

AccessLogFile::~AccessLogFile() {
  if (fd_ >= 0) ::close(fd_);
}

bool AccessLogFile::reopen(std::string& error) {
  int fd = open_fd(path_, format_, error);
  if (fd < 0) return false;
  // The descriptor number stays the same, so no worker ever holds a stale one.
  ::dup2(fd, fd_);
  ::close(fd);
  return true;
}

void AccessLogBuffer::add(const AccessLogEntry& entry) {
  if (file_ == nullptr) return;
  format_access_log_line(entry, file_->format(), buffer_);
  if (buffer_.size() >= kFlushAt) flush();
}

void AccessLogBuffer::flush() {
  if (file_ == nullptr || buffer_.empty()) return;
  // Only whole lines are ever written, in one call, so lines from workers do not interleave.
  size_t done = 0;
  while (done < buffer_.size()) {
    ssize_t n = ::write(file_->fd(), buffer_.data() + done, buffer_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // a full disk must not stop the proxy; the lines are dropped
    done += static_cast<size_t>(n);
  }
  buffer_.clear();
}

}  // namespace harrow

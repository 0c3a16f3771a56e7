#include "core/daemon/state_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "core/daemon/privileges.h"

namespace harrow {
namespace {

constexpr const char* kHeader = "# harrow state 1";
constexpr const char* kAvailabilityNames[] = {"available", "draining", "unavailable"};

}  // namespace

std::string format_state(const Snapshot& snapshot) {
  std::string out = std::string(kHeader) + "\n";
  for (const SnapshotFarm& farm : snapshot.farms) {
    for (size_t i = 0; i < farm.servers.size(); ++i) {
      health::ServerState state = farm.health->load(i);
      out += farm.config->name + "\t" + farm.servers[i].label + "\t" +
             (state.healthy ? "healthy" : "unhealthy") + "\t" +
             kAvailabilityNames[static_cast<size_t>(state.availability)] + "\n";
    }
  }
  return out;
}

std::vector<SavedServerState> parse_state(const std::string& text) {
  std::vector<SavedServerState> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields;
    std::istringstream cells(line);
    for (std::string cell; std::getline(cells, cell, '\t');) fields.push_back(cell);
    if (fields.size() != 4 || fields[0].empty() || fields[1].empty()) continue;
    SavedServerState s{fields[0], fields[1]};
    if (fields[2] == "healthy") {
      s.healthy = true;
    } else if (fields[2] == "unhealthy") {
      s.healthy = false;
    } else {
      continue;
    }
    bool known = false;
    for (size_t a = 0; a < std::size(kAvailabilityNames); ++a) {
      if (fields[3] == kAvailabilityNames[a]) {
        s.availability = static_cast<health::Availability>(a);
        known = true;
      }
    }
    if (known) out.push_back(std::move(s));
  }
  return out;
}

bool write_state_file(const std::string& path, const std::string& text, std::string& error) {
  const std::string tmp = path + ".tmp";
  // A fresh file each time (O_EXCL, no link followed): whatever was left or planted at the
  // temporary path is removed first (a symbolic link itself, never its target).
  ::unlink(tmp.c_str());
  int fd = open_regular_file(tmp, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC, "state file", error);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = "cannot write " + tmp + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    done += static_cast<size_t>(n);
  }
  // The rename must not become visible before the data: a crash leaves the old file or the
  // new one, never a torn one.
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    error = "cannot write " + tmp + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot rename " + tmp + " to " + path + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

bool read_state_file(const std::string& path, std::string& text, std::string& error) {
  text.clear();
  int fd = open_regular_file(path, O_RDONLY, "state file", error);
  if (fd < 0) {
    if (errno == ENOENT) {
      error.clear();
      return true;
    }
    return false;
  }
  char buffer[8192];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = "cannot read " + path + ": " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > (16u << 20)) {
      error = path + " is larger than 16 MiB; not a Harrow state file";
      ::close(fd);
      return false;
    }
  }
  ::close(fd);
  return true;
}

}  // namespace harrow

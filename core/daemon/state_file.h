// The state file (<harrow stateFile=…>): each server's health and availability, kept across
// restarts and binary upgrades so a new process does not send traffic to servers the old one
// knew to be down or drained. Written atomically (temporary file, then rename) when the state
// changes and at shutdown; read once at start-up.
#pragma once

#include <string>
#include <vector>

#include "core/proxy/snapshot.h"
#include "health/health_table.h"

namespace harrow {

struct SavedServerState {
  std::string farm;
  std::string server;  // "address:port", as ServerEndpoint::label
  bool healthy = true;
  health::Availability availability = health::Availability::Available;
  bool operator==(const SavedServerState&) const = default;
};

// One line per server: "farm<TAB>server<TAB>healthy|unhealthy<TAB>available|draining|
// unavailable", after a "# harrow state 1" header.
std::string format_state(const Snapshot& snapshot);

// Lines that do not parse are skipped (a file from a newer version must not stop a start).
std::vector<SavedServerState> parse_state(const std::string& text);

// Writes `text` to PATH.tmp, flushes it to disk, renames it over PATH.
bool write_state_file(const std::string& path, const std::string& text, std::string& error);

// A missing file is no state (true, empty text); other failures set `error`.
bool read_state_file(const std::string& path, std::string& text, std::string& error);

}  // namespace harrow

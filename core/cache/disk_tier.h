// The disk tier: responses kept as files under one directory (ARR's diskCache driveLocation),
// bounded by maxUsage with scavenging between the watermarks, and found again after a restart.
//
// A file is written to a temporary name, fsync'd and renamed, so a crash leaves either the
// whole entry or a temporary file (removed at start-up), never a torn entry under its name;
// and every read checks the file's length and checksum, so a file damaged any other way is
// dropped, never served. Blocking I/O: call it from a thread that may block (the writer
// thread, libuv's threadpool), never from an event loop.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/cache/memory_tier.h"
#include "core/cache/stored_response.h"
#include "core/http1/http_head.h"

namespace harrow::cache {

// The file format (one entry per file), little-endian: "HRWC" magic, u32 version, u64 payload
// length, u64 FNV-1a checksum of the payload, then the payload (serialize()).
std::string serialize(const StoredResponse& e);
// Rebuilds an entry from a whole file's bytes; null if anything does not check out.
std::shared_ptr<StoredResponse> deserialize(std::string_view file);

class DiskTier {
 public:
  // `max_bytes`: 0 = no bound. Watermarks in percent of `max_bytes`: above `high_pct` after a
  // write, the oldest entries go until usage is under `low_pct`.
  DiskTier(std::string directory, uint64_t max_bytes, uint32_t low_pct, uint32_t high_pct);

  // Reads the directory: indexes every entry file that checks out, removes temporary files
  // and files that do not. Returns false (with `error`) if the directory cannot be used.
  bool open(std::string& error);

  // Whether an entry for `primary` may be on disk (cheap: the index only).
  bool may_have(std::string_view primary);
  // The entry for `primary` matching the request's Vary values, read and verified; null if
  // none (or the file no longer checks out: then it is removed).
  EntryPtr read(std::string_view primary, std::span<const HeaderField> request_fields);
  // Writes `entry` (temporary name, fsync, rename), replacing one with the same keys; then
  // scavenges if above the high watermark. False if it could not be written.
  bool write(const StoredResponse& entry);
  size_t purge(std::string_view host, std::string_view url, bool prefix);

  uint64_t bytes();
  uint64_t entries();
  uint64_t evictions() const { return evictions_; }
  uint64_t max_bytes() const { return max_bytes_; }
  const std::string& directory() const { return dir_; }

 private:
  struct FileInfo {
    std::string name;  // file name in dir_
    uint64_t size = 0;
    uint64_t seq = 0;  // write order: scavenging removes the lowest first
    std::string host, url;
    std::vector<std::string> vary;
  };
  void index_locked(const std::string& full_key, FileInfo info);
  void remove_locked(const std::string& full_key);
  void scavenge_locked();

  std::string dir_;
  uint64_t max_bytes_;
  uint32_t low_pct_;
  uint32_t high_pct_;
  std::mutex mu_;
  std::unordered_map<std::string, FileInfo> files_;  // primary + '\x1e' + secondary → file
  std::unordered_map<std::string, std::vector<std::string>> vary_;  // primary → Vary names
  std::map<uint64_t, std::string> by_seq_;                          // seq → full key
  uint64_t next_seq_ = 1;
  uint64_t bytes_ = 0;
  uint64_t evictions_ = 0;
  uint64_t temp_counter_ = 0;
};

}  // namespace harrow::cache

// Per-farm server state that every worker reads on every pick. Each server's state is one
// atomic word, alone on its cache line (HealthWord), so a prober storing one server's word
// never invalidates the line a worker is reading for another. The farm's single writer (its
// prober thread, which also applies admin commands) publishes with release stores; workers
// read with acquire loads, no locks. What the prober counts and notes for people (probe
// results, transitions, the last transition's text and its mutex) is in a separate array of
// ProbeRecords that the request path never touches.
//
// Words and records are shared by identity across configuration reloads: a new snapshot's
// table reuses the word and record of every server whose (farm, address, port) did not
// change, so health carried over is the live state, not a copy that the prober could write
// behind.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace harrow::health {

// ARR's runtime availability (Active / Draining / Inactive).
enum class Availability : uint8_t { Available = 0, Draining = 1, Unavailable = 2 };

struct ServerState {
  bool healthy = true;
  Availability availability = Availability::Available;
  uint32_t generation = 0;  // bumped on every change, so readers can tell a flap happened

  bool takes_new_requests() const { return healthy && availability == Availability::Available; }
  bool operator==(const ServerState&) const = default;
};

// Counters the prober keeps per server (single writer: the prober thread).
enum class ProbeResultKind : uint8_t {
  Pass,
  ConnectFailed,
  Timeout,
  BadStatus,
  BodyMismatch,
  InvalidResponse,
};
inline constexpr int kProbeResultKinds = 6;
const char* probe_result_name(ProbeResultKind kind);  // "pass", "connect_failed", …

inline constexpr size_t kCacheLine = 64;

// One server's packed ServerState (see HealthTable::pack), padded to a whole cache line.
struct alignas(kCacheLine) HealthWord {
  std::atomic<uint64_t> word{0};
};
static_assert(sizeof(HealthWord) == kCacheLine && alignof(HealthWord) == kCacheLine,
              "a health word must fill its cache line alone: workers read it on every pick");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "the request path takes no lock");

// One server's probe counters and last transition (single writer: the prober thread). Read
// by the admin thread only. What every probe writes fills the first cache line alone.
struct alignas(kCacheLine) ProbeRecord {
  // Read with relaxed loads.
  std::atomic<uint64_t> probes[kProbeResultKinds] = {};
  // When the last probe finished and when the next one is due (Unix ms; 0: none yet), for the
  // status page's health panel. Written by the prober, read with relaxed loads.
  std::atomic<int64_t> last_probe_unix_ms{0};
  std::atomic<int64_t> next_probe_unix_ms{0};
  std::atomic<uint64_t> transitions{0};

  // The last transition's one-line description, for people (status page).
  void set_last_transition(std::string text) {
    std::lock_guard<std::mutex> lock(note_mutex_);
    last_transition_ = std::move(text);
  }
  std::string last_transition() const {
    std::lock_guard<std::mutex> lock(note_mutex_);
    return last_transition_;
  }
  // The last probe's result in words ("pass", "bad_status: status 503").
  void set_last_probe(std::string text) {
    std::lock_guard<std::mutex> lock(note_mutex_);
    last_probe_ = std::move(text);
  }
  std::string last_probe() const {
    std::lock_guard<std::mutex> lock(note_mutex_);
    return last_probe_;
  }

 private:
  mutable std::mutex note_mutex_;
  std::string last_transition_;
  std::string last_probe_;
};

class HealthTable {
 public:
  // A table of `servers` fresh slots (healthy, available).
  explicit HealthTable(size_t servers);

  size_t size() const { return words_.size(); }
  ServerState load(size_t server) const;
  // Single writer per slot; generation is bumped here.
  void store(size_t server, bool healthy, Availability availability);

  // Makes server `server` use the very word and record of `other_server` in `other` (a reload
  // keeping a server).
  void share_server(size_t server, const HealthTable& other, size_t other_server);
  ProbeRecord& probe_record(size_t server) const { return *records_[server]; }
  // Where server `server`'s word lives (layout tests).
  const HealthWord& health_word(size_t server) const { return *words_[server]; }

  // "Panic mode" (ARR's minServers): fewer servers are healthy than the farm requires, so
  // workers disregard health and balance over every available server. Written by the prober.
  bool panic() const { return shared_->panic.load(std::memory_order_acquire); }
  void set_panic(bool on);
  // Shares the panic flag and the version counter with the table of the same farm in the
  // previous snapshot, so readers of either see every change.
  void share_panic(const HealthTable& other) { shared_ = other.shared_; }

  // Bumped after every store() and panic change: readers that cache the set of available
  // servers (balancers) rebuild it only when this moves.
  uint64_t version() const { return shared_->version.load(std::memory_order_acquire); }

  // The farm's prober listens here instead of polling: a worker that counts a live-traffic
  // failure rings, and the prober folds the new failures in at once. Thread-safe; a null
  // `bell` stops the ringing (the prober is going away). Shared like the panic flag.
  void set_traffic_bell(std::function<void()> bell) const;
  void ring_traffic_bell() const;

 private:
  static uint64_t pack(const ServerState& s);
  static ServerState unpack(uint64_t word);

  // Per server: its word and its record. A fresh table points into its own two arrays (one
  // allocation each); a server kept over a reload points into an older table's arrays, which
  // these shared_ptrs (aliasing the array's owner) keep alive.
  std::vector<std::shared_ptr<HealthWord>> words_;
  std::vector<std::shared_ptr<ProbeRecord>> records_;
  struct Shared {
    std::atomic<bool> panic{false};
    std::atomic<uint64_t> version{0};
    std::mutex bell_mutex;  // taken on failures only, never on the request path
    std::function<void()> bell;
  };
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
};

}  // namespace harrow::health

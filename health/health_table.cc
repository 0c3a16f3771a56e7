#include "health/health_table.h"

namespace harrow::health {

const char* probe_result_name(ProbeResultKind kind) {
  static const char* const kNames[] = {"pass",       "connect_failed", "timeout",
                                       "bad_status", "body_mismatch",  "invalid_response"};
  return kNames[static_cast<int>(kind)];
}

HealthTable::HealthTable(size_t servers) {
  // new[] of an over-aligned type honours alignas (C++17 aligned new), so each word starts a
  // cache line; shared_ptr<T[]> deletes with delete[].
  std::shared_ptr<HealthWord[]> words(new HealthWord[servers]);
  std::shared_ptr<ProbeRecord[]> records(new ProbeRecord[servers]);
  words_.reserve(servers);
  records_.reserve(servers);
  for (size_t i = 0; i < servers; ++i) {
    words[i].word.store(pack(ServerState{}), std::memory_order_relaxed);
    words_.emplace_back(words, &words[i]);
    records_.emplace_back(records, &records[i]);
  }
}

uint64_t HealthTable::pack(const ServerState& s) {
  return (static_cast<uint64_t>(s.generation) << 32) |
         (static_cast<uint64_t>(s.availability) << 1) | (s.healthy ? 1u : 0u);
}

ServerState HealthTable::unpack(uint64_t word) {
  return ServerState{.healthy = (word & 1) != 0,
                     .availability = static_cast<Availability>((word >> 1) & 3),
                     .generation = static_cast<uint32_t>(word >> 32)};
}

ServerState HealthTable::load(size_t server) const {
  return unpack(words_[server]->word.load(std::memory_order_acquire));
}

void HealthTable::store(size_t server, bool healthy, Availability availability) {
  ServerState next = load(server);
  next.healthy = healthy;
  next.availability = availability;
  ++next.generation;
  words_[server]->word.store(pack(next), std::memory_order_release);
  shared_->version.fetch_add(1, std::memory_order_acq_rel);
}

void HealthTable::set_panic(bool on) {
  shared_->panic.store(on, std::memory_order_release);
  shared_->version.fetch_add(1, std::memory_order_acq_rel);
}

void HealthTable::set_traffic_bell(std::function<void()> bell) const {
  std::lock_guard<std::mutex> lock(shared_->bell_mutex);
  shared_->bell = std::move(bell);
}

void HealthTable::ring_traffic_bell() const {
  std::lock_guard<std::mutex> lock(shared_->bell_mutex);
  if (shared_->bell) shared_->bell();
}

void HealthTable::share_server(size_t server, const HealthTable& other, size_t other_server) {
  words_[server] = other.words_[other_server];
  records_[server] = other.records_[other_server];
}

}  // namespace harrow::health

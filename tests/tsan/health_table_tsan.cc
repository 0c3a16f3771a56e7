// HealthTable under ThreadSanitizer, the way the product uses it: one writer (a farm's prober)
// flipping server states and counters 200,000 times, eight readers (workers) loading them in a
// tight loop, through a second table that shares the servers as a reload would. TSan reports any
// data race; the readers check that every state they see is one the writer actually wrote and
// that generations never go backwards.
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "health/health_table.h"

using harrow::health::Availability;
using harrow::health::HealthTable;
using harrow::health::ProbeResultKind;
using harrow::health::ServerState;

namespace {

constexpr size_t kServers = 4;
constexpr uint32_t kWrites = 200'000;
constexpr int kReaders = 8;
constexpr int kPass = static_cast<int>(ProbeResultKind::Pass);

// What the writer stores for a server's n-th write: healthy and availability both change at every
// write, and which pair appears depends on the generation, so a torn read (one write's
// generation with another's fields, or healthy from one write and availability from another)
// shows as a mismatch.
ServerState written(uint32_t generation) {
  switch (generation % 3) {
    case 1:
      return {.healthy = false, .availability = Availability::Draining, .generation = generation};
    case 2:
      return {.healthy = true, .availability = Availability::Unavailable, .generation = generation};
    default:
      return {.healthy = false, .availability = Availability::Available, .generation = generation};
  }
}

ServerState expected(uint32_t generation) {
  return generation == 0 ? ServerState{} : written(generation);
}

std::atomic<uint64_t> g_errors{0};

void fail(int reader, size_t server, const ServerState& s, const char* what) {
  if (g_errors.fetch_add(1) < 10) {
    std::fprintf(stderr, "reader %d, server %zu: %s (healthy=%d availability=%d generation=%u)\n",
                 reader, server, what, s.healthy ? 1 : 0, static_cast<int>(s.availability),
                 s.generation);
  }
}

}  // namespace

int main() {
  HealthTable prober_table(kServers);
  // The workers' snapshot: same words, records and panic flag (shared before any thread starts).
  HealthTable worker_table(kServers);
  for (size_t i = 0; i < kServers; ++i) worker_table.share_server(i, prober_table, i);
  worker_table.share_panic(prober_table);

  std::atomic<int> readers_started{0};
  std::atomic<bool> done{false};
  std::vector<uint64_t> loads(kReaders, 0);
  std::vector<uint64_t> changes_seen(kReaders, 0);

  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      uint32_t last[kServers] = {};
      uint64_t last_probes[kServers] = {};
      readers_started.fetch_add(1);
      bool finishing = false;
      while (!finishing) {
        // One more full pass after the writer is done, so the final states are checked too.
        finishing = done.load(std::memory_order_acquire);
        for (size_t i = 0; i < kServers; ++i) {
          ServerState s = worker_table.load(i);
          ++loads[r];
          if (!(s == expected(s.generation))) fail(r, i, s, "a state the writer never wrote");
          if (s.generation < last[i]) fail(r, i, s, "generation went backwards");
          if (s.generation != last[i]) ++changes_seen[r];
          last[i] = s.generation;
          // The probe counter is bumped before each store (release), so a reader that saw
          // generation g also sees at least g passes counted.
          uint64_t probes =
              worker_table.probe_record(i).probes[kPass].load(std::memory_order_relaxed);
          if (probes < last_probes[i]) fail(r, i, s, "probe counter went backwards");
          last_probes[i] = probes;
          if (probes < s.generation) fail(r, i, s, "store visible before the counter before it");
        }
        (void)worker_table.panic();
      }
      for (size_t i = 0; i < kServers; ++i) {
        if (last[i] != kWrites / kServers) fail(r, i, worker_table.load(i), "missed last write");
      }
    });
  }

  std::thread writer([&] {
    while (readers_started.load() < kReaders) {
    }  // start together, so the readers race the writes rather than arriving after them
    for (uint32_t n = 0; n < kWrites; ++n) {
      size_t server = n % kServers;
      uint32_t generation = prober_table.load(server).generation + 1;
      ServerState next = written(generation);
      prober_table.probe_record(server).probes[kPass].fetch_add(1, std::memory_order_relaxed);
      prober_table.store(server, next.healthy, next.availability);
      prober_table.probe_record(server).transitions.fetch_add(1, std::memory_order_relaxed);
      if (n % 1024 == 0) prober_table.set_panic(!prober_table.panic());
    }
    done.store(true, std::memory_order_release);
  });

  writer.join();
  for (auto& t : readers) t.join();

  uint64_t total_loads = 0;
  uint64_t total_changes = 0;
  for (int r = 0; r < kReaders; ++r) {
    total_loads += loads[r];
    total_changes += changes_seen[r];
  }
  for (size_t i = 0; i < kServers; ++i) {
    ServerState s = worker_table.load(i);
    if (s.generation != kWrites / kServers || !(s == written(s.generation))) {
      fail(-1, i, s, "final state is not the last write");
    }
    if (prober_table.probe_record(i).transitions.load() != kWrites / kServers) {
      fail(-1, i, s, "transition counter lost updates");
    }
  }
  std::printf("%u writes, %d readers, %llu loads, %llu changes observed, %llu errors\n", kWrites,
              kReaders, static_cast<unsigned long long>(total_loads),
              static_cast<unsigned long long>(total_changes),
              static_cast<unsigned long long>(g_errors.load()));
  return g_errors.load() == 0 ? 0 : 1;
}

// One real Worker in the test process, built the way core/daemon/main.cc builds one: a
// configuration loaded from ARR XML text by the real loader, its TLS contexts and Snapshot, a
// listening socket on 127.0.0.1:0. Tests drive it over loopback, publish reloaded
// configurations and read its counters, without starting the harrow binary.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/loader.h"
#include "core/proxy/listen.h"
#include "core/proxy/snapshot.h"
#include "core/proxy/worker.h"
#include "core/tls/tls_context.h"

namespace harrow::testing {

// Polls `done` every millisecond for at most `limit`; whether it became true. Tests wait for
// what the worker thread does through this (never an unbounded loop, never a bare sleep).
inline bool wait_until(const std::function<bool()>& done,
                       std::chrono::milliseconds limit = std::chrono::milliseconds(3000)) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

class WorkerFixture {
 public:
  WorkerFixture() = default;
  WorkerFixture(const WorkerFixture&) = delete;
  WorkerFixture& operator=(const WorkerFixture&) = delete;
  ~WorkerFixture() { stop(); }

  // Loads `xml`, builds its snapshot and starts one worker on 127.0.0.1:0. A failure is an
  // ADD_FAILURE with the loader's or the system's message; started() says whether it ran.
  void start(const std::string& xml) {
    // As main.cc does: a peer that goes away is an error code, not a signal.
    ::signal(SIGPIPE, SIG_IGN);
    std::shared_ptr<const Snapshot> snap = build(xml, nullptr);
    if (!snap) return;
    std::vector<ListenSocket> sockets;
    std::string error;
    if (!open_listen_sockets("127.0.0.1:0", 1, sockets, error)) {
      ADD_FAILURE() << error;
      return;
    }
    port_ = sockets.front().port;
    worker_ = std::make_unique<Worker>(0, snap, std::move(sockets), 1000, nullptr);
    worker_->start();
  }
  bool started() const { return worker_ != nullptr; }

  // Loads `xml` as a reload does (servers that stay keep their health and counters) and hands
  // it to the worker; returns the new snapshot, or null (with a test failure) if it does not
  // load. The worker adopts it on its own thread, some time after this returns.
  std::shared_ptr<const Snapshot> publish(const std::string& xml) {
    std::shared_ptr<const Snapshot> snap = build(xml, snapshots_.back().get());
    if (snap) worker_->publish(snap);
    return snap;
  }

  // Stops the worker: gracefully, then (if connections are still open after a second) at
  // once, and joins its thread.
  void stop() {
    if (!worker_) return;
    worker_->request_stop();
    if (!wait_until([&] { return worker_->finished(); }, std::chrono::milliseconds(1000))) {
      worker_->request_stop_now();
    }
    worker_->join();
    worker_.reset();
  }

  uint16_t port() const { return port_; }
  const Worker& worker() const { return *worker_; }
  // The snapshot loaded first (start) and the latest published one.
  const Snapshot& first() const { return *snapshots_.front(); }
  const Snapshot& latest() const { return *snapshots_.back(); }

  // This worker's counters for the server at `address` in farm `farm` of `snap`.
  static ServerMetrics& server(const Snapshot& snap, const std::string& farm,
                               const std::string& address) {
    for (const SnapshotFarm& f : snap.farms) {
      if (f.config->name != farm) continue;
      for (size_t s = 0; s < f.servers.size(); ++s) {
        if (f.servers[s].config->address == address) return f.metrics[0][s];
      }
    }
    ADD_FAILURE() << "no server " << address << " in farm " << farm;
    static ServerMetrics none;
    return none;
  }
  // The index of farm `farm` in `snap` (-1 if none).
  static int farm_index(const Snapshot& snap, const std::string& farm) {
    for (size_t f = 0; f < snap.farms.size(); ++f) {
      if (snap.farms[f].config->name == farm) return static_cast<int>(f);
    }
    return -1;
  }

 private:
  std::shared_ptr<const Snapshot> build(const std::string& xml, const Snapshot* previous) {
    config::LoadResult loaded = config::load_config_text(xml, "worker_fixture.config");
    for (const config::Diagnostic& d : loaded.errors) ADD_FAILURE() << d.format_error();
    if (!loaded.config) return nullptr;
    auto config = std::make_shared<config::Config>(std::move(*loaded.config));
    std::vector<config::Diagnostic> tls_errors;
    TlsContexts tls;
    tls.server = tls::ServerContexts::build(*config, tls_errors);
    tls.client = tls::ClientContexts::build(*config, tls_errors);
    for (const config::Diagnostic& d : tls_errors) ADD_FAILURE() << d.format_error();
    if (!tls_errors.empty()) return nullptr;
    std::vector<std::string> warnings;
    std::shared_ptr<const Snapshot> snap =
        build_snapshot(config, 1, previous, warnings, std::move(tls));
    for (const std::string& w : warnings) ADD_FAILURE() << "snapshot warning: " << w;
    snapshots_.push_back(snap);  // kept: tests read the counters of every snapshot
    return snap;
  }

  uint16_t port_ = 0;
  std::vector<std::shared_ptr<const Snapshot>> snapshots_;
  std::unique_ptr<Worker> worker_;  // destroyed (joined) before the snapshots
};

}  // namespace harrow::testing

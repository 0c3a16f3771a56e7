// Runs the fleet (core/daemon/fleet.h) on a thread of its own with its own libuv loop, and
// the etcd client on that loop. A thread of its own, not the probers' loop: etcd's answers
// can take a TTL to fail over between endpoints, and a probe must never wait behind them.
// The health tables keep their single writer: what the fleet decides (probe here or not, a
// verdict from the fleet's prober, an admin command from another instance) goes to the
// farm's prober through its thread-safe hand-over (FarmProber::set_probing, apply_fleet,
// command), and the prober thread applies it.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/loader.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace harrow {

// What <fleet> needs from files to reach etcd: read at start-up, before the privilege drop
// (the files may be root's), and kept for the process's life (<fleet> changes apply at the
// next restart).
struct FleetSecrets {
  std::shared_ptr<SSL_CTX> tls;  // https:// endpoints
  std::string password;          // etcd user's password (passwordFile)
};
// False with errors at <fleet> (TLS files) or at its passwordFile attribute.
bool load_fleet_secrets(const config::FleetConfig& config, FleetSecrets& out,
                        std::vector<config::Diagnostic>& errors);

class FleetService {
 public:
  // Called on the fleet's thread.
  struct Hooks {
    std::function<void(const std::string& farm, bool probes_here, bool announce)> set_probing;
    std::function<void(const std::string& farm, const std::string& server, bool healthy,
                       const std::string& reason)>
        apply_health;
    std::function<void(const std::string& farm, const std::string& server,
                       const std::string& command)>
        apply_admin;
    // sharedConfig: a new revision of the configuration key (the XML text).
    std::function<void(const std::string& text, int64_t revision)> apply_config;
  };

  // Starts the thread.
  FleetService(const config::FleetConfig& config, FleetSecrets secrets, Hooks hooks);
  ~FleetService();  // revokes the lease (our farms are free at once) and joins the thread
  FleetService(const FleetService&) = delete;
  FleetService& operator=(const FleetService&) = delete;

  // Thread-safe; all hand the work to the fleet's thread.
  void set_farms(std::vector<std::string> farms);  // lower-case names of probed farms
  void publish_health(const std::string& farm, const std::string& server, bool healthy,
                      const std::string& reason);
  void publish_admin(const std::string& farm, const std::string& server,
                     const std::string& command);

  void publish_config_status(int64_t revision, bool applied, const std::string& errors);
  // The etcd key a shared configuration comes from (for its errors' file name).
  std::string config_key() const;

  // For /metrics: harrow_fleet_connected and harrow_fleet_prober{farm} (1: probed here).
  std::string metrics_text() const;
  bool connected() const { return connected_.load(std::memory_order_relaxed); }

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> connected_{false};
};

}  // namespace harrow

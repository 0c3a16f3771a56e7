// The one prober of a farm: a thread with its own event loop that probes each server once per
// interval (with jitter, first probes spread across the interval), folds live-traffic failures
// reported by the workers, applies admin commands, runs each server's state machine, and is
// the only writer of the farm's health table. However many workers, pools, sites, rules or
// reloads there are, a farm has exactly one FarmProber: reloads update it in place.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "health/health_table.h"
#include "health/probe_client.h"
#include "health/server_health.h"

namespace harrow::health {

struct ProbedServer {
  std::string label;                 // identity across reloads ("address:port")
  bool resolved = false;             // false: probes fail as connect failures without a connection
  sockaddr_storage probe_address{};  // the server, or its healthCheckAlternate host/port
  std::string host_header;           // per server: healthCheckAlternateHostName may change it
  std::string tls_name;              // https:// probes: SNI and the certificate's name
};

// What the workers have seen of each server, summed over workers: cumulative live-traffic
// failures and current in-flight requests, indexed like ProbedFarm::servers.
using TrafficReader =
    std::function<void(std::vector<uint64_t>& live_failures, std::vector<uint64_t>& in_flight)>;

struct ProbedFarm {
  std::string farm;
  std::string pool;
  HealthPolicy policy;
  Millis interval{30'000};
  double jitter = 0.1;  // ± fraction of the interval
  uint32_t min_servers = 0;
  ProbeRequest request;  // template: address and host_header are set per server
  std::vector<ProbedServer> servers;
  std::shared_ptr<HealthTable> table;  // indexed like `servers`
  TrafficReader traffic;
  // One line per state transition (the farm's only health output besides metrics).
  std::function<void(const std::string& line)> log;
  // A fleet (core/daemon/fleet.h): whether this instance probes the farm at start (later
  // changed by set_probing(); update() leaves it alone), and who hears the health changes
  // this instance's probes cause, on the prober thread, to publish them to the fleet.
  bool probes_here = true;
  std::function<void(const std::string& server, bool healthy, const std::string& reason)>
      on_probe_transition;
};

class FarmProber {
 public:
  explicit FarmProber(ProbedFarm spec);  // starts the thread
  ~FarmProber();                         // stops and joins it
  FarmProber(const FarmProber&) = delete;
  FarmProber& operator=(const FarmProber&) = delete;

  // Thread-safe. A reload: servers are matched by label and keep their state machine; new
  // servers start healthy; probes keep their schedule.
  void update(ProbedFarm spec);
  // Thread-safe. False if no server has that label or address.
  bool command(const std::string& server, AdminCommand command);
  // Thread-safe. The fleet: whether this instance probes (the farm's elected prober, or cut
  // off from the store) or takes health from the instance that does. Taking probing over, the
  // first probes go out within a quarter of the interval, at most 250 ms (not spread over
  // the interval: the fleet waited already); with `announce`, every server's current health goes to
  // on_probe_transition.
  void set_probing(bool probes_here, bool announce);
  // Thread-safe. The fleet's prober says `server` became healthy or unhealthy (applied on the
  // prober thread, which stays the table's only writer).
  void apply_fleet(const std::string& server, bool healthy, const std::string& reason);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace harrow::health

// One server's health state machine, ARR's semantics without ARR's storms. Pure logic: time
// is passed in, nothing here reads a clock, touches a socket or logs; the farm's prober feeds
// it probe results, live-traffic failure counts and admin commands, and publishes state().
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "health/health_table.h"

namespace harrow::health {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Millis = std::chrono::milliseconds;

struct ProbeResult {
  ProbeResultKind kind = ProbeResultKind::Pass;
  int status = 0;      // HTTP status when a response arrived
  int error = 0;       // libuv error code for connect failures / resets, else 0
  std::string detail;  // human text for the transition log ("status 503", "ECONNREFUSED", …)
};

enum class AdminCommand { Start, Drain, GracefulStop, ForcefulStop, SetHealthy, SetUnhealthy };

struct HealthPolicy {
  bool active_probing = false;  // healthCheck url set
  uint32_t fall = 3;  // ARR's retries: consecutive failed probes that make a server unhealthy
  uint32_t rise = 1;  // Harrow's healthyThreshold: consecutive passes that make it healthy
  uint32_t max_live_failures = 10;  // within live_failure_period
  Millis live_failure_period{0};    // 0 = counted since the last transition to healthy
  // Without active probing an unhealthy server gets a trial after this back-off (doubling up
  // to max_backoff while trials keep failing).
  Millis backoff{10'000};
  Millis max_backoff{300'000};
};

// A change of published state, with the reason for the one log line it produces.
struct Transition {
  ServerState before;
  ServerState after;
  std::string reason;
};

class ServerHealth {
 public:
  ServerHealth(const HealthPolicy& policy, TimePoint now);

  // Published state (generation is the table's business: left 0 here).
  bool healthy() const;
  Availability availability() const;

  std::optional<Transition> on_probe(const ProbeResult& result, TimePoint now);
  // `failures` live-traffic failures happened since the previous call.
  std::optional<Transition> on_live_failures(uint32_t failures, TimePoint now);
  std::optional<Transition> on_admin(AdminCommand command, TimePoint now);
  // Called periodically with the server's in-flight request count: completes a gracefulStop
  // at zero and runs the no-probe back-off (half-open trial).
  std::optional<Transition> on_tick(uint64_t in_flight, TimePoint now);
  // Whether on_tick() can change anything: a graceful stop waiting for requests to end, or a
  // back-off running to a trial. Otherwise only probes, failures and admins move the state.
  bool wants_tick() const {
    return stopping_gracefully_ ||
           (!policy_.active_probing && !healthy_ && !admin_unhealthy_ && !fleet_unhealthy_);
  }
  // Another instance of the fleet probes this server (see core/daemon/fleet.h) and says it
  // became healthy or unhealthy: the verdict applies as a probe's would. "Unhealthy" sticks
  // (no back-off trial) until the fleet's prober, a local probe or an admin says otherwise.
  std::optional<Transition> on_fleet(bool healthy, const std::string& reason, TimePoint now);

  void set_policy(const HealthPolicy& policy);  // a reload changed the farm's healthCheck

 private:
  ServerState published() const;
  std::optional<Transition> changed(const ServerState& before, std::string reason) const;
  Millis current_backoff() const;
  void become_healthy(bool on_trial, TimePoint now);
  void become_unhealthy(TimePoint now);
  void end_trial_if_due(TimePoint now);
  void reset_live_failures();

  HealthPolicy policy_;  // normalised: fall, rise and max_live_failures are at least 1
  bool healthy_ = true;
  Availability availability_ = Availability::Available;
  bool stopping_gracefully_ = false;  // Draining until a tick sees no request in flight
  // Probe streaks since the last change of health or admin health command (true counts).
  uint32_t consecutive_failures_ = 0;
  uint32_t consecutive_passes_ = 0;
  uint64_t live_failures_ = 0;   // counted since the last reset (see on_live_failures)
  TimePoint live_window_start_;  // when the first of live_failures_ was counted
  // Without active probing: an unhealthy server is retried after current_backoff() from
  // unhealthy_since_, unless an admin set it unhealthy (that sticks until an admin or a probe
  // says otherwise).
  bool admin_unhealthy_ = false;
  bool fleet_unhealthy_ = false;  // the fleet's prober said so (a follower's trials wait for it)
  TimePoint unhealthy_since_;
  bool trial_ = false;  // healthy on trial after a back-off (no active probing)
  TimePoint trial_since_;
  uint32_t failed_trials_ = 0;  // back-off = backoff * 2^failed_trials_, capped at max_backoff
};

}  // namespace harrow::health

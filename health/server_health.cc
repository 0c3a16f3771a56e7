// The rules, in one place (ARR's semantics, one prober per farm: server_health.h):
//
// Health
// - Probes: `fall` consecutive failed probes make a healthy server unhealthy, `rise`
//   consecutive passes make an unhealthy one healthy; a pass resets the failure streak and a
//   failure the pass streak. Both streaks restart at every change of health, so passes seen
//   before a server fell do not count towards its recovery. A probe result applies whatever
//   set the current health (probes, live traffic, a trial or an admin).
// - Live traffic: reported failures count while the server is healthy (an unhealthy server's
//   failures are ignored: it is already out). Reaching max_live_failures makes it unhealthy.
//   With live_failure_period 0 the count runs since the last change of health (or admin
//   "healthy"). Otherwise it is a fixed window: it opens at the first failure counted after a
//   reset and lasts the period; a report at or after window start + period discards the old
//   count and opens a new window at that moment. (A fixed window, not a sliding one: failures
//   straddling a window edge can reach 2 * max - 2 without tripping.) Live traffic never makes
//   a server healthy.
// - Without active probing an unhealthy server is retried: the first tick at or after
//   unhealthy-since + back-off makes it healthy "on trial" (half-open). While on trial, one
//   live failure makes it unhealthy again and doubles the back-off (capped at max_backoff);
//   a trial that lasts one back-off period without failure (judged at the next tick or
//   live-failure report) becomes plain healthy and the back-off returns to `backoff`. A trial
//   does not start while the server is unhealthy by admin command: without probes, nothing but
//   an admin may overrule an admin.
// - Admin "healthy"/"unhealthy" set health by hand and restart the streaks; the next probe
//   results then apply normally.
// - The fleet (another instance probes, core/daemon/fleet.h): its prober's verdicts apply like
//   a probe's, at once; its "unhealthy" holds back the back-off trial a follower (which does
//   not probe) otherwise runs after live-traffic failures.
// Availability (admin only)
// - Start: Available, cancelling a graceful stop. Drain: Draining (cancels a graceful stop).
//   GracefulStop: Draining until a tick sees nothing in flight, then Unavailable.
//   ForcefulStop: Unavailable at once. Only Start leaves Unavailable: drain and graceful stop
//   of a stopped server leave it stopped (draining would let affine clients back in).
#include "health/server_health.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace harrow::health {
namespace {

HealthPolicy normalised(HealthPolicy policy) {
  policy.fall = std::max<uint32_t>(policy.fall, 1);  // ARR allows retries="0": one failure
  policy.rise = std::max<uint32_t>(policy.rise, 1);
  policy.max_live_failures = std::max<uint32_t>(policy.max_live_failures, 1);
  policy.backoff = std::max(policy.backoff, Millis{0});
  policy.max_backoff = std::max(policy.max_backoff, policy.backoff);
  policy.live_failure_period = std::max(policy.live_failure_period, Millis{0});
  return policy;
}

std::string duration_text(Millis d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + "s";
  return std::to_string(d.count()) + "ms";
}

std::string probe_text(const ProbeResult& result) {
  if (!result.detail.empty()) return result.detail;
  switch (result.kind) {
    case ProbeResultKind::BadStatus:
      return "status " + std::to_string(result.status);
    case ProbeResultKind::ConnectFailed:
      return "connect failed";
    case ProbeResultKind::Timeout:
      return "timeout";
    case ProbeResultKind::BodyMismatch:
      return "body mismatch";
    case ProbeResultKind::InvalidResponse:
      return "invalid response";
    case ProbeResultKind::Pass:
      break;
  }
  return probe_result_name(result.kind);
}

uint32_t saturating_increment(uint32_t n) {
  return n == std::numeric_limits<uint32_t>::max() ? n : n + 1;
}

void append(std::string& reasons, const std::string& reason) {
  if (!reasons.empty()) reasons += "; ";
  reasons += reason;
}

}  // namespace

ServerHealth::ServerHealth(const HealthPolicy& policy, TimePoint now)
    : policy_(normalised(policy)),
      live_window_start_(now),
      unhealthy_since_(now),
      trial_since_(now) {}

bool ServerHealth::healthy() const {
  return healthy_;
}
Availability ServerHealth::availability() const {
  return availability_;
}

ServerState ServerHealth::published() const {
  return ServerState{.healthy = healthy_, .availability = availability_};
}

std::optional<Transition> ServerHealth::changed(const ServerState& before,
                                                std::string reason) const {
  ServerState after = published();
  if (after == before) return std::nullopt;
  return Transition{.before = before, .after = after, .reason = std::move(reason)};
}

Millis ServerHealth::current_backoff() const {
  // backoff * 2^failed_trials_, saturating at max_backoff without overflowing.
  Millis backoff = policy_.backoff;
  for (uint32_t i = 0; i < failed_trials_ && backoff.count() > 0 && backoff < policy_.max_backoff;
       ++i) {
    backoff = backoff > policy_.max_backoff / 2 ? policy_.max_backoff : backoff * 2;
  }
  return backoff;
}

void ServerHealth::reset_live_failures() {
  live_failures_ = 0;
}

void ServerHealth::become_healthy(bool on_trial, TimePoint now) {
  healthy_ = true;
  admin_unhealthy_ = false;
  fleet_unhealthy_ = false;
  trial_ = on_trial;
  trial_since_ = now;
  if (!on_trial) failed_trials_ = 0;
  consecutive_failures_ = 0;
  consecutive_passes_ = 0;
  reset_live_failures();
}

void ServerHealth::become_unhealthy(TimePoint now) {
  if (trial_ && failed_trials_ < 63) ++failed_trials_;
  healthy_ = false;
  trial_ = false;
  unhealthy_since_ = now;
  consecutive_failures_ = 0;
  consecutive_passes_ = 0;
  reset_live_failures();
}

void ServerHealth::end_trial_if_due(TimePoint now) {
  if (trial_ && now >= trial_since_ + current_backoff()) {
    trial_ = false;
    failed_trials_ = 0;
  }
}

std::optional<Transition> ServerHealth::on_probe(const ProbeResult& result, TimePoint now) {
  ServerState before = published();
  if (result.kind == ProbeResultKind::Pass) {
    consecutive_failures_ = 0;
    consecutive_passes_ = saturating_increment(consecutive_passes_);
    if (consecutive_passes_ < policy_.rise) return std::nullopt;
    // A probe's verdict of "healthy" is a plain one: any trial or back-off is over.
    bool was_healthy = healthy_;
    if (!was_healthy) become_healthy(false, now);
    trial_ = false;
    failed_trials_ = 0;
    if (was_healthy) return std::nullopt;
    return changed(before, policy_.rise == 1
                               ? std::string("probe passed")
                               : std::to_string(policy_.rise) + " consecutive passed probes");
  }
  consecutive_passes_ = 0;
  consecutive_failures_ = saturating_increment(consecutive_failures_);
  if (!healthy_ || consecutive_failures_ < policy_.fall) return std::nullopt;
  become_unhealthy(now);
  std::string reason = policy_.fall == 1
                           ? "probe failed (" + probe_text(result) + ")"
                           : std::to_string(policy_.fall) +
                                 " consecutive failed probes (last: " + probe_text(result) + ")";
  return changed(before, std::move(reason));
}

std::optional<Transition> ServerHealth::on_live_failures(uint32_t failures, TimePoint now) {
  ServerState before = published();
  end_trial_if_due(now);
  if (failures == 0 || !healthy_) return std::nullopt;
  if (trial_) {
    become_unhealthy(now);
    return changed(before, "trial failed (next back-off " + duration_text(current_backoff()) + ")");
  }
  if (policy_.live_failure_period.count() > 0 && live_failures_ > 0 &&
      now >= live_window_start_ + policy_.live_failure_period) {
    live_failures_ = 0;  // the window expired: this report opens a new one
  }
  if (live_failures_ == 0) live_window_start_ = now;
  live_failures_ =
      std::min<uint64_t>(live_failures_ + failures, std::numeric_limits<uint64_t>::max() / 2);
  if (live_failures_ < policy_.max_live_failures) return std::nullopt;
  std::string reason = std::to_string(live_failures_) +
                       (live_failures_ == 1 ? " live-traffic failure" : " live-traffic failures");
  if (policy_.live_failure_period.count() > 0) {
    reason += " within " + duration_text(policy_.live_failure_period);
  }
  become_unhealthy(now);
  return changed(before, std::move(reason));
}

std::optional<Transition> ServerHealth::on_admin(AdminCommand command, TimePoint now) {
  ServerState before = published();
  const char* reason = "";
  switch (command) {
    case AdminCommand::Start:
      availability_ = Availability::Available;
      stopping_gracefully_ = false;
      reason = "admin: start";
      break;
    case AdminCommand::Drain:
      if (availability_ != Availability::Unavailable) availability_ = Availability::Draining;
      stopping_gracefully_ = false;
      reason = "admin: drain";
      break;
    case AdminCommand::GracefulStop:
      if (availability_ != Availability::Unavailable) {
        availability_ = Availability::Draining;
        stopping_gracefully_ = true;
      }
      reason = "admin: graceful stop";
      break;
    case AdminCommand::ForcefulStop:
      availability_ = Availability::Unavailable;
      stopping_gracefully_ = false;
      reason = "admin: forceful stop";
      break;
    case AdminCommand::SetHealthy:
      if (healthy_) {
        // Already healthy: the operator's word still ends a trial and restarts the counts.
        trial_ = false;
        failed_trials_ = 0;
        consecutive_failures_ = 0;
        consecutive_passes_ = 0;
        reset_live_failures();
      } else {
        become_healthy(false, now);
      }
      reason = "admin: healthy";
      break;
    case AdminCommand::SetUnhealthy:
      if (healthy_) become_unhealthy(now);
      consecutive_failures_ = 0;
      consecutive_passes_ = 0;
      admin_unhealthy_ = true;
      reason = "admin: unhealthy";
      break;
  }
  return changed(before, reason);
}

std::optional<Transition> ServerHealth::on_fleet(bool healthy, const std::string& reason,
                                                 TimePoint now) {
  ServerState before = published();
  if (healthy) {
    if (!healthy_) {
      become_healthy(false, now);
    } else {
      fleet_unhealthy_ = false;
    }
  } else {
    if (healthy_) become_unhealthy(now);
    fleet_unhealthy_ = true;
  }
  return changed(before, reason);
}

std::optional<Transition> ServerHealth::on_tick(uint64_t in_flight, TimePoint now) {
  ServerState before = published();
  std::string reasons;
  if (stopping_gracefully_ && in_flight == 0) {
    availability_ = Availability::Unavailable;
    stopping_gracefully_ = false;
    append(reasons, "graceful stop complete");
  }
  end_trial_if_due(now);
  if (!policy_.active_probing && !healthy_ && !admin_unhealthy_ && !fleet_unhealthy_ &&
      now >= unhealthy_since_ + current_backoff()) {
    append(reasons, "trial after " + duration_text(current_backoff()) + " back-off");
    become_healthy(true, now);
  }
  return changed(before, std::move(reasons));
}

void ServerHealth::set_policy(const HealthPolicy& policy) {
  policy_ = normalised(policy);
  // State is kept; only the thresholds move. The streaks and the live count are true counts
  // (saturating, never clamped to a threshold), compared with >=: one that already meets a
  // lowered threshold takes effect at the next probe / failure report of its kind, since
  // set_policy reports no transition. Clamping them to the new threshold instead would forget
  // real passes when a later reload raises it again.
  if (policy_.active_probing) {
    // Probes govern recovery from now on: no half-open trial, no back-off.
    trial_ = false;
    failed_trials_ = 0;
  }
}

}  // namespace harrow::health

// ServerHealth against a reference model: random sequences of probe results, live-traffic
// failures, admin commands, ticks, clock steps and reloads, applied to both; after every step
// the published (healthy, availability) must agree and a Transition must be reported exactly
// when that pair changed.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <initializer_list>
#include <ostream>
#include <vector>

#include "health/server_health.h"

namespace harrow::health {
namespace {

// The rules of server_health.cc written out plainly, one field per fact, no saturation.
class Model {
 public:
  Model(const HealthPolicy& policy, TimePoint now)
      : p_(policy), window_start_(now), down_since_(now), trial_since_(now) {}

  bool healthy = true;
  Availability availability = Availability::Available;

  void probe(bool pass, TimePoint now) {
    if (pass) {
      fails_ = 0;
      ++passes_;
      if (passes_ >= rise()) {
        if (!healthy) up(false, now);
        trial_ = false;
        failed_trials_ = 0;
      }
    } else {
      passes_ = 0;
      ++fails_;
      if (healthy && fails_ >= fall()) down(now);
    }
  }

  void live(uint32_t n, TimePoint now) {
    if (trial_ && now >= trial_since_ + backoff()) end_trial();
    if (n == 0 || !healthy) return;
    if (trial_) return down(now);
    if (p_.live_failure_period > Millis{0} && live_ > 0 &&
        now >= window_start_ + p_.live_failure_period) {
      live_ = 0;
    }
    if (live_ == 0) window_start_ = now;
    live_ += n;
    if (live_ >= std::max<uint32_t>(p_.max_live_failures, 1)) down(now);
  }

  void admin(AdminCommand c, TimePoint now) {
    switch (c) {
      case AdminCommand::Start:
        availability = Availability::Available;
        stopping_ = false;
        break;
      case AdminCommand::Drain:
        if (availability != Availability::Unavailable) availability = Availability::Draining;
        stopping_ = false;
        break;
      case AdminCommand::GracefulStop:
        if (availability != Availability::Unavailable) {
          availability = Availability::Draining;
          stopping_ = true;
        }
        break;
      case AdminCommand::ForcefulStop:
        availability = Availability::Unavailable;
        stopping_ = false;
        break;
      case AdminCommand::SetHealthy:
        if (!healthy) up(false, now);
        trial_ = false;
        failed_trials_ = 0;
        fails_ = passes_ = live_ = 0;
        break;
      case AdminCommand::SetUnhealthy:
        if (healthy) down(now);
        fails_ = passes_ = 0;
        admin_down_ = true;
        break;
    }
  }

  void tick(uint64_t in_flight, TimePoint now) {
    if (stopping_ && in_flight == 0) {
      availability = Availability::Unavailable;
      stopping_ = false;
    }
    if (trial_ && now >= trial_since_ + backoff()) end_trial();
    if (!p_.active_probing && !healthy && !admin_down_ && now >= down_since_ + backoff()) {
      up(true, now);
    }
  }

  void set_policy(const HealthPolicy& policy) {
    p_ = policy;
    if (p_.active_probing) end_trial();
  }

 private:
  uint64_t fall() const { return std::max<uint32_t>(p_.fall, 1); }
  uint64_t rise() const { return std::max<uint32_t>(p_.rise, 1); }
  Millis backoff() const {
    Millis cap = std::max(p_.max_backoff, p_.backoff);
    Millis b = p_.backoff;
    for (int i = 0; i < failed_trials_; ++i) b = std::min(b * 2, cap);
    return b;
  }
  void end_trial() {
    trial_ = false;
    failed_trials_ = 0;
  }
  void up(bool trial, TimePoint now) {
    healthy = true;
    admin_down_ = false;
    trial_ = trial;
    trial_since_ = now;
    if (!trial) failed_trials_ = 0;
    fails_ = passes_ = live_ = 0;
  }
  void down(TimePoint now) {
    if (trial_) ++failed_trials_;
    healthy = false;
    trial_ = false;
    down_since_ = now;
    fails_ = passes_ = live_ = 0;
  }

  HealthPolicy p_;
  bool stopping_ = false;
  uint64_t fails_ = 0, passes_ = 0, live_ = 0;
  TimePoint window_start_;
  bool admin_down_ = false;
  TimePoint down_since_;
  bool trial_ = false;
  TimePoint trial_since_;
  int failed_trials_ = 0;
};

enum class Kind { Pass, Fail, Live, Admin, Tick, Step, Reload };
constexpr size_t kKinds = 7;
const char* const kKindNames[kKinds] = {"pass", "fail", "live", "admin", "tick", "step", "reload"};

// The argument that matters is the one of the event's kind.
struct Event {
  Kind kind = Kind::Tick;
  ProbeResultKind failure = ProbeResultKind::Timeout;  // Fail
  uint32_t live = 0;                                   // Live: failures reported
  AdminCommand command = AdminCommand::Start;          // Admin
  uint64_t in_flight = 0;                              // Tick
  Millis step{0};                                      // Step: 0..20 s
  HealthPolicy policy;                                 // Reload
};

std::ostream& operator<<(std::ostream& os, const HealthPolicy& p) {
  return os << "{probing=" << p.active_probing << " fall=" << p.fall << " rise=" << p.rise
            << " max_live=" << p.max_live_failures << " period=" << p.live_failure_period.count()
            << "ms backoff=" << p.backoff.count() << "ms max_backoff=" << p.max_backoff.count()
            << "ms}";
}

std::ostream& operator<<(std::ostream& os, const Event& e) {
  os << kKindNames[static_cast<int>(e.kind)] << '(';
  switch (e.kind) {
    case Kind::Pass:
      break;
    case Kind::Fail:
      os << probe_result_name(e.failure);
      break;
    case Kind::Live:
      os << e.live;
      break;
    case Kind::Admin:
      os << static_cast<int>(e.command);
      break;
    case Kind::Tick:
      os << "in_flight=" << e.in_flight;
      break;
    case Kind::Step:
      os << e.step.count() << "ms";
      break;
    case Kind::Reload:
      os << e.policy;
      break;
  }
  return os << ')';
}

rc::Gen<HealthPolicy> gen_policy() {
  return rc::gen::apply(
      [](bool probing, uint32_t fall, uint32_t rise, uint32_t max_live, int64_t period,
         int64_t backoff, int64_t max_backoff) {
        return HealthPolicy{.active_probing = probing,
                            .fall = fall,
                            .rise = rise,
                            .max_live_failures = max_live,
                            .live_failure_period = Millis{period},
                            .backoff = Millis{backoff},
                            .max_backoff = Millis{max_backoff}};
      },
      rc::gen::arbitrary<bool>(), rc::gen::inRange<uint32_t>(0, 5),
      rc::gen::inRange<uint32_t>(0, 4), rc::gen::inRange<uint32_t>(0, 7),
      rc::gen::elementOf(std::vector<int64_t>{0, 0, 5'000, 30'000}),
      rc::gen::elementOf(std::vector<int64_t>{0, 1'000, 10'000, 30'000}),
      rc::gen::elementOf(std::vector<int64_t>{0, 20'000, 60'000, 300'000}));
}

// Events of one kind; Kind::Pass is the only one that needs no argument.
rc::Gen<Event> gen_event_of(Kind kind) {
  auto event = [kind](auto field, auto gen) {
    return rc::gen::map(std::move(gen), [kind, field](auto value) {
      Event e{.kind = kind};
      e.*field = value;
      return e;
    });
  };
  switch (kind) {
    case Kind::Fail:  // one of the five failure kinds
      return event(&Event::failure, rc::gen::map(rc::gen::inRange(1, kProbeResultKinds), [](int k) {
        return static_cast<ProbeResultKind>(k);
      }));
    case Kind::Live:  // mostly a few, so counts build up across reports and windows
      return event(&Event::live,
                   rc::gen::weightedOneOf<uint32_t>({{4, rc::gen::inRange<uint32_t>(0, 3)},
                                                     {1, rc::gen::inRange<uint32_t>(0, 13)}}));
    case Kind::Admin:
      return event(&Event::command,
                   rc::gen::element(AdminCommand::Start, AdminCommand::Drain,
                                    AdminCommand::GracefulStop, AdminCommand::ForcefulStop,
                                    AdminCommand::SetHealthy, AdminCommand::SetUnhealthy));
    case Kind::Tick:
      return event(&Event::in_flight, rc::gen::inRange<uint64_t>(0, 3));
    case Kind::Step:  // whole seconds half the time, so steps land on windows and back-offs
      return event(&Event::step,
                   rc::gen::map(rc::gen::oneOf(rc::gen::inRange<int64_t>(0, 20'001),
                                               rc::gen::map(rc::gen::inRange<int64_t>(0, 21),
                                                            [](int64_t s) { return s * 1000; })),
                                [](int64_t ms) { return Millis{ms}; }));
    case Kind::Reload:
      return event(&Event::policy, gen_policy());
    case Kind::Pass:
      break;
  }
  return rc::gen::just(Event{.kind = Kind::Pass});
}

// A sequence whose mix of kinds is itself random (weights 0..4 per allowed kind), so some runs
// are all probes and others long live-traffic and back-off stories.
std::vector<Event> gen_events(const std::vector<Kind>& allowed) {
  std::vector<size_t> weights;
  size_t total = 0;
  for (size_t i = 0; i < allowed.size(); ++i) {
    weights.push_back(*rc::gen::inRange<size_t>(0, 5));
    total += weights.back();
  }
  if (total == 0) return {};
  size_t count = *rc::gen::inRange<size_t>(0, 500);
  std::vector<Event> events;
  events.reserve(count);
  for (size_t n = 0; n < count; ++n) {
    size_t r = *rc::gen::inRange<size_t>(0, total);
    size_t i = 0;
    while (r >= weights[i]) r -= weights[i++];
    events.push_back(*gen_event_of(allowed[i]));
  }
  return events;
}

const std::vector<Kind> kAllKinds = {Kind::Pass, Kind::Fail, Kind::Live,  Kind::Admin,
                                     Kind::Tick, Kind::Step, Kind::Reload};

ProbeResult probe_of(const Event& e) {
  if (e.kind == Kind::Pass) return ProbeResult{.kind = ProbeResultKind::Pass, .status = 200};
  return ProbeResult{.kind = e.failure,
                     .status = e.failure == ProbeResultKind::BadStatus ? 503 : 0};
}

// Applies `e` to the server (and the model, if given); the clock moves only on Step.
std::optional<Transition> apply(const Event& e, ServerHealth& h, Model* m, TimePoint& now) {
  switch (e.kind) {
    case Kind::Pass:
    case Kind::Fail:
      if (m) m->probe(e.kind == Kind::Pass, now);
      return h.on_probe(probe_of(e), now);
    case Kind::Live:
      if (m) m->live(e.live, now);
      return h.on_live_failures(e.live, now);
    case Kind::Admin:
      if (m) m->admin(e.command, now);
      return h.on_admin(e.command, now);
    case Kind::Tick:
      if (m) m->tick(e.in_flight, now);
      return h.on_tick(e.in_flight, now);
    case Kind::Step:
      now += e.step;
      return std::nullopt;
    case Kind::Reload:
      if (m) m->set_policy(e.policy);
      h.set_policy(e.policy);
      return std::nullopt;
  }
  return std::nullopt;
}

// HealthPolicy lives outside this file's namespace, so rapidcheck cannot find its operator<<:
// the properties log it themselves.
HealthPolicy initial_policy() {
  HealthPolicy policy = *gen_policy();
  RC_LOG() << "initial policy " << policy << '\n';
  return policy;
}

RC_GTEST_PROP(ServerHealthProperty, AgreesWithTheReferenceModel, ()) {
  HealthPolicy policy = initial_policy();
  auto events = gen_events(kAllKinds);
  TimePoint now = TimePoint{} + Millis{*rc::gen::inRange<int64_t>(0, 1'000'000)};
  ServerHealth h(policy, now);
  Model m(policy, now);
  for (const Event& e : events) {
    ServerState before{.healthy = m.healthy, .availability = m.availability};
    auto t = apply(e, h, &m, now);
    ServerState after{.healthy = m.healthy, .availability = m.availability};
    RC_ASSERT(h.healthy() == m.healthy);
    RC_ASSERT(static_cast<int>(h.availability()) == static_cast<int>(m.availability));
    RC_ASSERT(t.has_value() == (before != after));
    if (t) {
      RC_ASSERT(t->before == before);
      RC_ASSERT(t->after == after);
      RC_ASSERT(!t->reason.empty());
    }
  }
}

RC_GTEST_PROP(ServerHealthProperty, LiveTrafficAloneNeverMakesHealthyWhenProbing, ()) {
  HealthPolicy policy = initial_policy();
  policy.active_probing = true;
  TimePoint now = TimePoint{};
  ServerHealth h(policy, now);
  // Down by whichever route; then nothing but live traffic, ticks, time and availability.
  switch (*rc::gen::inRange(0, 3)) {
    case 0:
      for (uint32_t i = 0; i < std::max<uint32_t>(policy.fall, 1); ++i) {
        h.on_probe(ProbeResult{.kind = ProbeResultKind::Timeout}, now);
      }
      break;
    case 1:
      h.on_live_failures(std::max<uint32_t>(policy.max_live_failures, 1), now);
      break;
    default:
      h.on_admin(AdminCommand::SetUnhealthy, now);
      break;
  }
  RC_ASSERT(!h.healthy());
  auto events = gen_events({Kind::Live, Kind::Tick, Kind::Step, Kind::Admin});
  for (const Event& e : events) {
    // An admin may make it healthy; live traffic, ticks and time may not.
    if (e.kind == Kind::Admin && e.command == AdminCommand::SetHealthy) continue;
    auto t = apply(e, h, nullptr, now);
    RC_ASSERT(!h.healthy());
    // (Parenthesised: RC_ASSERT captures operands, so a bare || would not short-circuit.)
    RC_ASSERT(!(t.has_value() && t->after.healthy));
  }
}

RC_GTEST_PROP(ServerHealthProperty, ForcefulStopStaysUnavailableUntilStart, ()) {
  HealthPolicy policy = initial_policy();
  auto events = gen_events(kAllKinds);
  size_t stop_at = *rc::gen::inRange<size_t>(0, events.size() + 1);
  events.insert(events.begin() + static_cast<std::ptrdiff_t>(stop_at),
                Event{.kind = Kind::Admin, .command = AdminCommand::ForcefulStop});
  TimePoint now = TimePoint{};
  ServerHealth h(policy, now);
  bool stopped = false;
  for (const Event& e : events) {
    apply(e, h, nullptr, now);
    if (e.kind == Kind::Admin && e.command == AdminCommand::ForcefulStop) stopped = true;
    if (e.kind == Kind::Admin && e.command == AdminCommand::Start) stopped = false;
    if (stopped) RC_ASSERT(h.availability() == Availability::Unavailable);
  }
}

}  // namespace
}  // namespace harrow::health

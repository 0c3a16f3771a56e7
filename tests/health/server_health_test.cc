// ServerHealth, rule by rule: each scenario is a table of events at explicit times, with the
// state expected after each one and the reason of the transition it must (or must not) report.
#include "health/server_health.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace harrow::health {
namespace {

TimePoint at(int64_t ms) {
  return TimePoint{} + Millis{ms};
}
constexpr int64_t kSec = 1000;

enum class Ev {
  Pass,     // passing probe
  Fail,     // probe answered with status `arg`
  Timeout,  // probe timed out
  Refused,  // connect failed, detail "ECONNREFUSED"
  Live,     // `arg` live-traffic failures
  Admin,    // admin command `arg`
  Tick,     // tick with `arg` requests in flight
};
constexpr bool H = true;   // healthy
constexpr bool U = false;  // unhealthy
constexpr Availability kAv = Availability::Available;
constexpr Availability kDr = Availability::Draining;
constexpr Availability kUn = Availability::Unavailable;
constexpr uint64_t cmd(AdminCommand c) {
  return static_cast<uint64_t>(c);
}
constexpr uint64_t kStart = cmd(AdminCommand::Start);
constexpr uint64_t kDrain = cmd(AdminCommand::Drain);
constexpr uint64_t kGraceful = cmd(AdminCommand::GracefulStop);
constexpr uint64_t kForceful = cmd(AdminCommand::ForcefulStop);
constexpr uint64_t kSetHealthy = cmd(AdminCommand::SetHealthy);
constexpr uint64_t kSetUnhealthy = cmd(AdminCommand::SetUnhealthy);

struct Step {
  Ev ev;
  int64_t at_ms;
  uint64_t arg;
  const char* reason;  // the transition must be reported with this in its reason; null: none
  bool healthy;
  Availability availability;
};

std::optional<Transition> apply(ServerHealth& h, const Step& s) {
  TimePoint now = at(s.at_ms);
  switch (s.ev) {
    case Ev::Pass:
      return h.on_probe(ProbeResult{.kind = ProbeResultKind::Pass, .status = 200}, now);
    case Ev::Fail:
      return h.on_probe(
          ProbeResult{.kind = ProbeResultKind::BadStatus, .status = static_cast<int>(s.arg)}, now);
    case Ev::Timeout:
      return h.on_probe(ProbeResult{.kind = ProbeResultKind::Timeout}, now);
    case Ev::Refused:
      return h.on_probe(
          ProbeResult{
              .kind = ProbeResultKind::ConnectFailed, .error = -111, .detail = "ECONNREFUSED"},
          now);
    case Ev::Live:
      return h.on_live_failures(static_cast<uint32_t>(s.arg), now);
    case Ev::Admin:
      return h.on_admin(static_cast<AdminCommand>(s.arg), now);
    case Ev::Tick:
      return h.on_tick(s.arg, now);
  }
  return std::nullopt;
}

void run(ServerHealth& h, const std::vector<Step>& steps) {
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    SCOPED_TRACE("step " + std::to_string(i) + " at " + std::to_string(s.at_ms) + " ms");
    ServerState before{.healthy = h.healthy(), .availability = h.availability()};
    auto t = apply(h, s);
    EXPECT_EQ(h.healthy(), s.healthy);
    EXPECT_EQ(h.availability(), s.availability);
    if (s.reason == nullptr) {
      EXPECT_FALSE(t.has_value()) << "unexpected transition: " << t->reason;
      continue;
    }
    ASSERT_TRUE(t.has_value()) << "expected a transition: " << s.reason;
    EXPECT_NE(t->reason.find(s.reason), std::string::npos) << t->reason;
    EXPECT_EQ(t->before, before);
    EXPECT_EQ(t->after, (ServerState{.healthy = s.healthy, .availability = s.availability}));
    EXPECT_NE(t->before, t->after);
  }
}

HealthPolicy probing(uint32_t fall = 3, uint32_t rise = 1) {
  return HealthPolicy{.active_probing = true, .fall = fall, .rise = rise};
}

HealthPolicy passive(uint32_t max_live, Millis backoff = Millis{10'000},
                     Millis max_backoff = Millis{40'000}) {
  return HealthPolicy{.active_probing = false,
                      .max_live_failures = max_live,
                      .backoff = backoff,
                      .max_backoff = max_backoff};
}

struct Scenario {
  const char* name;
  HealthPolicy policy;
  std::vector<Step> steps;
};

void PrintTo(const Scenario& s, std::ostream* os) {
  *os << s.name;
}

class ServerHealthRules : public testing::TestWithParam<Scenario> {};

TEST_P(ServerHealthRules, FollowsTheTable) {
  ServerHealth h(GetParam().policy, at(0));
  EXPECT_TRUE(h.healthy());
  EXPECT_EQ(h.availability(), kAv);
  run(h, GetParam().steps);
}

const Scenario kScenarios[] = {
    {"FallConsecutiveFailuresMarkUnhealthyOnePassRecovers",
     probing(3),
     {
         {Ev::Fail, 0, 503, nullptr, H, kAv},
         {Ev::Fail, 1 * kSec, 503, nullptr, H, kAv},
         {Ev::Fail, 2 * kSec, 503, "3 consecutive failed probes (last: status 503)", U, kAv},
         {Ev::Fail, 3 * kSec, 503, nullptr, U, kAv},  // one line per transition, not per probe
         {Ev::Pass, 4 * kSec, 0, "probe passed", H, kAv},
         {Ev::Pass, 5 * kSec, 0, nullptr, H, kAv},
     }},
    {"PassResetsTheFailureStreak",
     probing(3),
     {
         {Ev::Fail, 0, 500, nullptr, H, kAv},
         {Ev::Fail, 1, 500, nullptr, H, kAv},
         {Ev::Pass, 2, 0, nullptr, H, kAv},
         {Ev::Fail, 3, 500, nullptr, H, kAv},
         {Ev::Fail, 4, 500, nullptr, H, kAv},
         {Ev::Timeout, 5, 0, "3 consecutive failed probes (last: timeout)", U, kAv},
     }},
    {"RiseConsecutivePassesAndAFailureResetsThem",
     probing(1, 2),
     {
         {Ev::Refused, 0, 0, "probe failed (ECONNREFUSED)", U, kAv},
         {Ev::Pass, 1, 0, nullptr, U, kAv},
         {Ev::Fail, 2, 404, nullptr, U, kAv},
         {Ev::Pass, 3, 0, nullptr, U, kAv},
         {Ev::Pass, 4, 0, "2 consecutive passed probes", H, kAv},
     }},
    {"PassesBeforeAFallDoNotCountTowardsRecovery",
     HealthPolicy{.active_probing = true, .fall = 3, .rise = 2, .max_live_failures = 1},
     {
         {Ev::Pass, 0, 0, nullptr, H, kAv},
         {Ev::Pass, 1, 0, nullptr, H, kAv},
         {Ev::Live, 2, 1, "1 live-traffic failure", U, kAv},
         {Ev::Pass, 3, 0, nullptr, U, kAv},
         {Ev::Pass, 4, 0, "2 consecutive passed probes", H, kAv},
     }},
    {"RetriesZeroMeansOneFailure",
     probing(0, 0),
     {
         {Ev::Fail, 0, 500, "probe failed (status 500)", U, kAv},
         {Ev::Pass, 1, 0, "probe passed", H, kAv},
     }},
    {"LiveFailuresSinceLastHealthyWithPeriodZero",
     HealthPolicy{.active_probing = true, .max_live_failures = 10},
     {
         {Ev::Live, 0, 4, nullptr, H, kAv},
         {Ev::Live, 3600 * kSec, 5, nullptr, H, kAv},  // no window: an hour later still counts
         {Ev::Live, 7200 * kSec, 1, "10 live-traffic failures", U, kAv},
         {Ev::Live, 7201 * kSec, 50, nullptr, U, kAv},  // already out: ignored
         {Ev::Tick, 9000 * kSec, 0, nullptr, U, kAv},   // probing: no back-off trial
         {Ev::Pass, 9001 * kSec, 0, "probe passed", H, kAv},
         {Ev::Live, 9002 * kSec, 9, nullptr, H, kAv},  // the count restarted at healthy
         {Ev::Live, 9003 * kSec, 0, nullptr, H, kAv},
         {Ev::Live, 9004 * kSec, 1, "10 live-traffic failures", U, kAv},
     }},
    {"LiveFailuresInAFixedWindow",
     HealthPolicy{
         .active_probing = true, .max_live_failures = 10, .live_failure_period = Millis{60'000}},
     {
         {Ev::Live, 0, 6, nullptr, H, kAv},  // opens the window [0, 60 s)
         {Ev::Live, 59'999, 3, nullptr, H, kAv},
         {Ev::Live, 60'000, 1, nullptr, H, kAv},  // expired: a new window [60 s, 120 s)
         {Ev::Live, 100'000, 8, nullptr, H, kAv},
         {Ev::Live, 119'999, 1, "10 live-traffic failures within 60s", U, kAv},
     }},
    {"ABatchAboveTheMaximumReportsItsCount",
     HealthPolicy{.active_probing = true, .max_live_failures = 10},
     {
         {Ev::Live, 0, 25, "25 live-traffic failures", U, kAv},
     }},
    {"LiveTrafficNeverMarksHealthyWithProbing",
     probing(1),
     {
         {Ev::Fail, 0, 502, "probe failed", U, kAv},
         {Ev::Live, 10 * kSec, 0, nullptr, U, kAv},
         {Ev::Tick, 20 * kSec, 0, nullptr, U, kAv},
         {Ev::Tick, 3600 * kSec, 0, nullptr, U, kAv},
     }},
    {"BackOffTrialDoublesWhileTrialsFailThenResets",
     passive(2, Millis{10'000}, Millis{40'000}),
     {
         {Ev::Live, 0, 2, "2 live-traffic failures", U, kAv},
         {Ev::Tick, 9'999, 0, nullptr, U, kAv},
         {Ev::Tick, 10'000, 0, "trial after 10s back-off", H, kAv},
         {Ev::Live, 12'000, 1, "trial failed", U, kAv},  // one failure is enough on trial
         {Ev::Tick, 31'999, 0, nullptr, U, kAv},
         {Ev::Tick, 32'000, 0, "trial after 20s back-off", H, kAv},
         {Ev::Live, 33'000, 1, "trial failed", U, kAv},
         {Ev::Tick, 72'999, 0, nullptr, U, kAv},
         {Ev::Tick, 73'000, 0, "trial after 40s back-off", H, kAv},
         {Ev::Live, 74'000, 3, "trial failed", U, kAv},
         {Ev::Tick, 114'000, 0, "trial after 40s back-off", H, kAv},  // capped at max_backoff
         {Ev::Tick, 153'999, 0, nullptr, H, kAv},                     // still on trial
         {Ev::Tick, 154'000, 0, nullptr, H, kAv},  // a whole back-off without failure: plain
         {Ev::Live, 155'000, 1, nullptr, H, kAv},  // so one failure no longer marks it
         {Ev::Live, 156'000, 1, "2 live-traffic failures", U, kAv},
         {Ev::Tick, 166'000, 0, "trial after 10s back-off", H, kAv},  // back-off was reset
     }},
    {"TrialEndsByTimeEvenWithoutATick",
     passive(2),
     {
         {Ev::Live, 0, 2, "2 live-traffic failures", U, kAv},
         {Ev::Tick, 10'000, 0, "trial after 10s back-off", H, kAv},
         {Ev::Live, 20'000, 1, nullptr, H, kAv},  // trial over at 20 s: counted normally
         {Ev::Live, 21'000, 1, "2 live-traffic failures", U, kAv},
         {Ev::Tick, 31'000, 0, "trial after 10s back-off", H, kAv},
     }},
    {"AZeroReportDoesNotFailATrial",
     passive(1),
     {
         {Ev::Live, 0, 1, "1 live-traffic failure", U, kAv},
         {Ev::Tick, 10'000, 0, "trial after 10s back-off", H, kAv},
         {Ev::Live, 11'000, 0, nullptr, H, kAv},  // a report of zero failures is not a failure
         {Ev::Tick, 12'000, 0, nullptr, H, kAv},
     }},
    {"AdminAvailability",
     probing(),
     {
         {Ev::Admin, 0, kDrain, "admin: drain", H, kDr},
         {Ev::Admin, 1, kDrain, nullptr, H, kDr},
         {Ev::Tick, 2, 0, nullptr, H, kDr},  // a plain drain never completes by itself
         {Ev::Admin, 3, kStart, "admin: start", H, kAv},
         {Ev::Admin, 4, kStart, nullptr, H, kAv},
         {Ev::Admin, 5, kGraceful, "admin: graceful stop", H, kDr},
         {Ev::Tick, 6, 3, nullptr, H, kDr},
         {Ev::Tick, 7, 1, nullptr, H, kDr},
         {Ev::Tick, 8, 0, "graceful stop complete", H, kUn},
         {Ev::Tick, 9, 0, nullptr, H, kUn},
         {Ev::Admin, 10, kDrain, nullptr, H, kUn},  // only start leaves a stop
         {Ev::Admin, 11, kGraceful, nullptr, H, kUn},
         {Ev::Admin, 12, kStart, "admin: start", H, kAv},
         {Ev::Admin, 13, kForceful, "admin: forceful stop", H, kUn},
         {Ev::Admin, 14, kForceful, nullptr, H, kUn},
         {Ev::Admin, 15, kStart, "admin: start", H, kAv},
         {Ev::Admin, 16, kDrain, "admin: drain", H, kDr},
         {Ev::Admin, 17, kForceful, "admin: forceful stop", H, kUn},
     }},
    {"StartCancelsAGracefulStop",
     probing(),
     {
         {Ev::Admin, 0, kGraceful, "admin: graceful stop", H, kDr},
         {Ev::Admin, 1, kStart, "admin: start", H, kAv},
         {Ev::Tick, 2, 0, nullptr, H, kAv},
     }},
    {"DrainCancelsAGracefulStopButKeepsDraining",
     probing(),
     {
         {Ev::Admin, 0, kGraceful, "admin: graceful stop", H, kDr},
         {Ev::Admin, 1, kDrain, nullptr, H, kDr},
         {Ev::Tick, 2, 0, nullptr, H, kDr},
         {Ev::Admin, 3, kGraceful, nullptr, H, kDr},  // draining already: no published change
         {Ev::Tick, 4, 0, "graceful stop complete", H, kUn},
     }},
    {"ForcefulStopDuringAGracefulStop",
     probing(),
     {
         {Ev::Admin, 0, kGraceful, "admin: graceful stop", H, kDr},
         {Ev::Admin, 1, kForceful, "admin: forceful stop", H, kUn},
         {Ev::Admin, 2, kStart, "admin: start", H, kAv},
         {Ev::Tick, 3, 0, nullptr, H, kAv},
     }},
    {"HealthAndAvailabilityAreIndependent",
     probing(1),
     {
         {Ev::Admin, 0, kDrain, "admin: drain", H, kDr},
         {Ev::Fail, 1, 500, "probe failed", U, kDr},
         {Ev::Admin, 2, kForceful, "admin: forceful stop", U, kUn},
         {Ev::Pass, 3, 0, "probe passed", H, kUn},
         {Ev::Admin, 4, kStart, "admin: start", H, kAv},
     }},
    {"SetUnhealthyUntilTheNextPassingProbe",
     probing(3, 1),
     {
         {Ev::Admin, 0, kSetUnhealthy, "admin: unhealthy", U, kAv},
         {Ev::Admin, 1, kSetUnhealthy, nullptr, U, kAv},
         {Ev::Fail, 2, 500, nullptr, U, kAv},
         {Ev::Pass, 3, 0, "probe passed", H, kAv},
     }},
    {"SetUnhealthyThenRiseApplies",
     probing(3, 2),
     {
         {Ev::Pass, 0, 0, nullptr, H, kAv},
         {Ev::Admin, 1, kSetUnhealthy, "admin: unhealthy", U, kAv},
         {Ev::Pass, 2, 0, nullptr, U, kAv},
         {Ev::Pass, 3, 0, "2 consecutive passed probes", H, kAv},
     }},
    {"SetHealthyUntilFallFailures",
     probing(3),
     {
         {Ev::Fail, 0, 500, nullptr, H, kAv},
         {Ev::Fail, 1, 500, nullptr, H, kAv},
         {Ev::Fail, 2, 500, "3 consecutive failed probes", U, kAv},
         {Ev::Admin, 3, kSetHealthy, "admin: healthy", H, kAv},
         {Ev::Fail, 4, 500, nullptr, H, kAv},
         {Ev::Fail, 5, 500, nullptr, H, kAv},
         {Ev::Fail, 6, 500, "3 consecutive failed probes", U, kAv},
     }},
    {"SetHealthyRestartsTheStreakAndTheLiveCount",
     HealthPolicy{.active_probing = true, .fall = 3, .max_live_failures = 3},
     {
         {Ev::Fail, 0, 500, nullptr, H, kAv},
         {Ev::Fail, 1, 500, nullptr, H, kAv},
         {Ev::Live, 2, 2, nullptr, H, kAv},
         {Ev::Admin, 3, kSetHealthy, nullptr, H, kAv},
         {Ev::Fail, 4, 500, nullptr, H, kAv},
         {Ev::Live, 5, 2, nullptr, H, kAv},
         {Ev::Live, 6, 1, "3 live-traffic failures", U, kAv},
     }},
    {"SetUnhealthyWithoutProbingSticksUntilAdmin",
     passive(2),
     {
         {Ev::Admin, 0, kSetUnhealthy, "admin: unhealthy", U, kAv},
         {Ev::Tick, 10'000, 0, nullptr, U, kAv},
         {Ev::Tick, 3'600'000, 0, nullptr, U, kAv},
         {Ev::Admin, 3'600'001, kSetHealthy, "admin: healthy", H, kAv},
         {Ev::Live, 3'600'002, 1, nullptr, H, kAv},  // plain healthy: the maximum applies
     }},
    {"SetUnhealthyOverridesATrial",
     passive(2),
     {
         {Ev::Live, 0, 2, "2 live-traffic failures", U, kAv},
         {Ev::Tick, 10'000, 0, "trial after 10s back-off", H, kAv},
         {Ev::Admin, 11'000, kSetUnhealthy, "admin: unhealthy", U, kAv},
         {Ev::Tick, 1'000'000, 0, nullptr, U, kAv},
     }},
    {"SetHealthyEndsATrial",
     passive(2),
     {
         {Ev::Live, 0, 2, "2 live-traffic failures", U, kAv},
         {Ev::Tick, 10'000, 0, "trial after 10s back-off", H, kAv},
         {Ev::Admin, 11'000, kSetHealthy, nullptr, H, kAv},
         {Ev::Live, 12'000, 1, nullptr, H, kAv},  // no longer on trial
         {Ev::Live, 13'000, 1, "2 live-traffic failures", U, kAv},
         {Ev::Tick, 23'000, 0, "trial after 10s back-off", H, kAv},
     }},
    {"OneTickCanCompleteAStopAndStartATrial",
     passive(1),
     {
         {Ev::Admin, 0, kGraceful, "admin: graceful stop", H, kDr},
         {Ev::Live, 1'000, 1, "1 live-traffic failure", U, kDr},
         {Ev::Tick, 11'000, 0, "graceful stop complete; trial after 10s back-off", H, kUn},
     }},
    {"ZeroBackOffTrialsAtTheNextTick",
     passive(2, Millis{0}, Millis{0}),
     {
         {Ev::Live, 0, 2, "2 live-traffic failures", U, kAv},
         {Ev::Tick, 0, 0, "trial after 0s back-off", H, kAv},
         {Ev::Live, 0, 1, nullptr, H, kAv},  // the trial (0 s long) is already over
     }},
};

INSTANTIATE_TEST_SUITE_P(Table, ServerHealthRules, testing::ValuesIn(kScenarios),
                         [](const testing::TestParamInfo<Scenario>& info) {
                           return std::string(info.param.name);
                         });

TEST(ServerHealth, TransitionsLeaveTheGenerationToTheTable) {
  ServerHealth h(probing(1), at(0));
  auto t = h.on_probe(ProbeResult{.kind = ProbeResultKind::BadStatus, .status = 500}, at(1));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->before.generation, 0u);
  EXPECT_EQ(t->after.generation, 0u);
}

TEST(ServerHealth, ProbeDetailIsPreferredOverTheKind) {
  ServerHealth h(probing(2), at(0));
  h.on_probe(ProbeResult{.kind = ProbeResultKind::Timeout}, at(0));
  auto t = h.on_probe(
      ProbeResult{
          .kind = ProbeResultKind::BodyMismatch, .status = 200, .detail = "body lacks \"OK\""},
      at(1));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->reason, "2 consecutive failed probes (last: body lacks \"OK\")");
}

TEST(ServerHealth, ProbeKindsWithoutDetail) {
  struct Case {
    ProbeResultKind kind;
    const char* text;
  };
  const Case cases[] = {{ProbeResultKind::ConnectFailed, "connect failed"},
                        {ProbeResultKind::Timeout, "timeout"},
                        {ProbeResultKind::BodyMismatch, "body mismatch"},
                        {ProbeResultKind::InvalidResponse, "invalid response"},
                        {ProbeResultKind::BadStatus, "status 418"}};
  for (const auto& c : cases) {
    ServerHealth h(probing(1), at(0));
    auto t = h.on_probe(ProbeResult{.kind = c.kind, .status = 418}, at(0));
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(t->reason, std::string("probe failed (") + c.text + ")");
  }
}

TEST(ServerHealthPolicy, ReloadKeepsStateAndCompletesALoweredFall) {
  ServerHealth h(probing(3), at(0));
  EXPECT_TRUE(h.on_admin(AdminCommand::Drain, at(0)));
  h.on_probe(ProbeResult{.kind = ProbeResultKind::Timeout}, at(1));
  h.on_probe(ProbeResult{.kind = ProbeResultKind::Timeout}, at(2));
  h.set_policy(probing(2));
  EXPECT_TRUE(h.healthy());
  EXPECT_EQ(h.availability(), kDr);
  auto t = h.on_probe(ProbeResult{.kind = ProbeResultKind::Timeout}, at(3));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->reason, "2 consecutive failed probes (last: timeout)");
}

TEST(ServerHealthPolicy, ReloadRaisingFallKeepsTheStreak) {
  ServerHealth h(probing(2), at(0));
  h.on_probe(ProbeResult{.kind = ProbeResultKind::Timeout}, at(1));
  h.set_policy(probing(4));
  EXPECT_FALSE(h.on_probe(ProbeResult{.kind = ProbeResultKind::Timeout}, at(2)));
  EXPECT_FALSE(h.on_probe(ProbeResult{.kind = ProbeResultKind::Timeout}, at(3)));
  EXPECT_TRUE(h.on_probe(ProbeResult{.kind = ProbeResultKind::Timeout}, at(4)));
}

TEST(ServerHealthPolicy, ReloadLoweringRiseCompletesOnTheNextPass) {
  ServerHealth h(probing(1, 3), at(0));
  h.on_probe(ProbeResult{.kind = ProbeResultKind::Timeout}, at(0));
  h.on_probe(ProbeResult{.kind = ProbeResultKind::Pass}, at(1));
  h.on_probe(ProbeResult{.kind = ProbeResultKind::Pass}, at(2));
  h.set_policy(probing(1, 1));
  EXPECT_FALSE(h.healthy());
  auto t = h.on_probe(ProbeResult{.kind = ProbeResultKind::Pass}, at(3));
  ASSERT_TRUE(t.has_value());
  EXPECT_TRUE(h.healthy());
}

TEST(ServerHealthPolicy, StreaksSurviveAThresholdLoweredAndRaisedAgain) {
  ServerHealth h(probing(1, 2), at(0));
  h.on_probe(ProbeResult{.kind = ProbeResultKind::Timeout}, at(0));
  h.on_probe(ProbeResult{.kind = ProbeResultKind::Pass}, at(1));  // 1 of 2
  h.set_policy(probing(1, 1));
  h.set_policy(probing(1, 2));
  EXPECT_FALSE(h.healthy());
  auto t = h.on_probe(ProbeResult{.kind = ProbeResultKind::Pass}, at(2));  // 2 of 2
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->reason, "2 consecutive passed probes");
}

TEST(ServerHealthPolicy, ReloadLoweringTheLiveMaximum) {
  ServerHealth h(HealthPolicy{.active_probing = true, .max_live_failures = 10}, at(0));
  EXPECT_FALSE(h.on_live_failures(7, at(0)));
  h.set_policy(HealthPolicy{.active_probing = true, .max_live_failures = 5});
  EXPECT_TRUE(h.healthy());
  auto t = h.on_live_failures(1, at(1));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->reason, "8 live-traffic failures");
}

TEST(ServerHealthPolicy, ProbingTurnedOnStopsTrials) {
  ServerHealth h(passive(1), at(0));
  ASSERT_TRUE(h.on_live_failures(1, at(0)));
  h.set_policy(HealthPolicy{.active_probing = true, .max_live_failures = 1});
  EXPECT_FALSE(h.on_tick(0, at(3'600'000)));
  EXPECT_FALSE(h.healthy());
  EXPECT_TRUE(h.on_probe(ProbeResult{.kind = ProbeResultKind::Pass}, at(3'600'001)));
}

TEST(ServerHealthPolicy, ProbingTurnedOnEndsATrial) {
  ServerHealth h(passive(2), at(0));
  ASSERT_TRUE(h.on_live_failures(2, at(0)));
  ASSERT_TRUE(h.on_tick(0, at(10'000)));  // on trial
  h.set_policy(HealthPolicy{.active_probing = true, .max_live_failures = 2});
  EXPECT_FALSE(h.on_live_failures(1, at(10'001)));  // one failure no longer ends it
  EXPECT_TRUE(h.healthy());
}

TEST(ServerHealthPolicy, ProbingTurnedOffRetriesAfterTheBackOff) {
  ServerHealth h(probing(1), at(0));
  ASSERT_TRUE(h.on_probe(ProbeResult{.kind = ProbeResultKind::Timeout}, at(5'000)));
  h.set_policy(passive(10));
  EXPECT_FALSE(h.on_tick(0, at(14'999)));
  auto t = h.on_tick(0, at(15'000));  // 10 s after it became unhealthy
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->reason, "trial after 10s back-off");
}

TEST(ServerHealthPolicy, ReloadKeepsTheBackOffProgress) {
  ServerHealth h(passive(1, Millis{10'000}, Millis{300'000}), at(0));
  ASSERT_TRUE(h.on_live_failures(1, at(0)));
  ASSERT_TRUE(h.on_tick(0, at(10'000)));
  ASSERT_TRUE(h.on_live_failures(1, at(11'000)));            // back-off now 20 s
  h.set_policy(passive(1, Millis{5'000}, Millis{300'000}));  // now 10 s (5 s doubled once)
  EXPECT_FALSE(h.on_tick(0, at(20'999)));
  auto t = h.on_tick(0, at(21'000));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->reason, "trial after 10s back-off");
}

TEST(ServerHealth, SubSecondBackOffIsReportedInMilliseconds) {
  ServerHealth h(passive(1, Millis{1'500}), at(0));
  ASSERT_TRUE(h.on_live_failures(1, at(0)));
  auto t = h.on_tick(0, at(1'500));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->reason, "trial after 1500ms back-off");
  t = h.on_live_failures(1, at(1'600));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->reason, "trial failed (next back-off 3s)");
}

}  // namespace
}  // namespace harrow::health

namespace harrow::health {
namespace {

// A fleet follower: its policy has no active probing (another instance probes), the fleet's
// prober's verdicts apply at once, and its "unhealthy" holds back the back-off trial that a
// follower's own live-traffic failures would otherwise get.
TEST(ServerHealthFleet, TheFleetProbersVerdictsApplyAndItsUnhealthySticks) {
  HealthPolicy follower;
  follower.active_probing = false;
  follower.max_live_failures = 1;
  follower.backoff = Millis{10'000};
  ServerHealth h(follower, TimePoint{});
  std::optional<Transition> t = h.on_fleet(false, "fleet prober: probe failed", TimePoint{});
  ASSERT_TRUE(t.has_value());
  EXPECT_FALSE(h.healthy());
  EXPECT_EQ(t->reason, "fleet prober: probe failed");
  EXPECT_FALSE(h.wants_tick());  // no trial while the fleet says unhealthy
  EXPECT_FALSE(h.on_tick(0, TimePoint{} + Millis{60'000}).has_value());
  EXPECT_FALSE(h.healthy());
  t = h.on_fleet(true, "fleet prober: probe passed", TimePoint{} + Millis{61'000});
  ASSERT_TRUE(t.has_value());
  EXPECT_TRUE(h.healthy());
  EXPECT_FALSE(h.on_fleet(true, "again", TimePoint{} + Millis{62'000}).has_value());
  // The follower's own live-traffic failure: unhealthy here only, with a trial after back-off.
  ASSERT_TRUE(h.on_live_failures(1, TimePoint{} + Millis{63'000}).has_value());
  EXPECT_FALSE(h.healthy());
  EXPECT_TRUE(h.wants_tick());
  ASSERT_TRUE(h.on_tick(0, TimePoint{} + Millis{73'000}).has_value());
  EXPECT_TRUE(h.healthy());
  // Admin availability is not the fleet's verdict's business.
  h.on_admin(AdminCommand::Drain, TimePoint{} + Millis{74'000});
  h.on_fleet(false, "x", TimePoint{} + Millis{75'000});
  EXPECT_EQ(h.availability(), Availability::Draining);
}

}  // namespace
}  // namespace harrow::health

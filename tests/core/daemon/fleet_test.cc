// The fleet's election and hand-over rules against an in-memory etcd (leases that expire,
// watches, partitions) and a clock the test moves: no thread, no socket, no sleep.
#include "core/daemon/fleet.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <memory>
#include <set>

namespace harrow::fleet {
namespace {

using etcd::Event;
using etcd::KeyValue;

class FakeClient;

// The store: one revision counter, keys, leases with deadlines, watches.
struct FakeEtcd {
  TimePoint now{};
  bool up = true;
  int64_t revision = 1;
  int64_t next_lease = 100;
  std::map<std::string, KeyValue> kvs;
  std::map<int64_t, std::pair<Millis, TimePoint>> leases;  // ttl, deadline
  std::deque<std::function<void()>> pending;               // answers, delivered by pump()
  std::set<FakeClient*> clients;
  int puts = 0;
  int creates = 0;  // election txns

  void notify(const Event& e);
  void put(const std::string& key, const std::string& value, int64_t lease) {
    KeyValue& kv = kvs[key];
    ++revision;
    if (kv.create_revision == 0) kv.create_revision = revision;
    kv.key = key;
    kv.value = value;
    kv.lease = lease;
    kv.mod_revision = revision;
    ++puts;
    notify(Event{false, kv});
  }
  void erase(const std::string& key) {
    auto it = kvs.find(key);
    if (it == kvs.end()) return;
    ++revision;
    KeyValue gone{key, "", 0, revision, 0};
    kvs.erase(it);
    notify(Event{true, gone});
  }
  void revoke(int64_t lease) {
    leases.erase(lease);
    std::vector<std::string> doomed;
    for (auto& [k, kv] : kvs) {
      if (kv.lease == lease) doomed.push_back(k);
    }
    for (const std::string& k : doomed) erase(k);
  }
  void expire() {
    if (!up) return;  // a stopped cluster expires nothing; on restart leases get a fresh TTL
    std::vector<int64_t> dead;
    for (auto& [id, l] : leases) {
      if (now >= l.second) dead.push_back(id);
    }
    for (int64_t id : dead) revoke(id);
  }
  void set_up(bool on);
  void pump() {
    while (!pending.empty()) {
      auto f = std::move(pending.front());
      pending.pop_front();
      f();
    }
  }
};

class FakeClient : public Store {
 public:
  explicit FakeClient(FakeEtcd& e) : e_(e) { e_.clients.insert(this); }
  ~FakeClient() override { e_.clients.erase(this); }
  bool reachable = true;

  bool answers() const { return reachable && e_.up; }
  void set_reachable(bool on) {
    reachable = on;
    if (!on) break_watch();
  }
  void break_watch() {
    if (!watching_) return;
    watching_ = false;
    auto broken = broken_;
    e_.pending.push_back([broken] { broken(); });
  }
  void event(const Event& ev) {
    if (!watching_ || !answers() || ev.kv.key.compare(0, prefix_.size(), prefix_) != 0) return;
    auto events = events_;
    e_.pending.push_back([events, ev] { events({ev}); });
  }

  void grant(int64_t ttl, std::function<void(bool, int64_t)> done) override {
    if (!answers()) return fail([done] { done(false, 0); });
    int64_t id = e_.next_lease++;
    e_.leases[id] = {Millis{ttl * 1000}, e_.now + Millis{ttl * 1000}};
    e_.pending.push_back([done, id] { done(true, id); });
  }
  void keepalive(int64_t lease, std::function<void(bool, int64_t)> done) override {
    if (!answers()) return fail([done] { done(false, 0); });
    auto it = e_.leases.find(lease);
    int64_t ttl = 0;
    if (it != e_.leases.end()) {
      it->second.second = e_.now + it->second.first;
      ttl = it->second.first.count() / 1000;
    }
    e_.pending.push_back([done, ttl] { done(true, ttl); });
  }
  void create(const std::string& key, const std::string& value, int64_t lease,
              std::function<void(bool, bool, KeyValue)> done) override {
    if (!answers()) return fail([done] { done(false, false, {}); });
    ++e_.creates;
    auto it = e_.kvs.find(key);
    if (it != e_.kvs.end()) {
      KeyValue current = it->second;
      e_.pending.push_back([done, current] { done(true, false, current); });
      return;
    }
    if (lease != 0 && e_.leases.count(lease) == 0) {  // etcd: "requested lease not found"
      return fail([done] { done(false, false, {}); });
    }
    e_.put(key, value, lease);
    e_.pending.push_back([done] { done(true, true, {}); });
  }
  void replace(const std::string& key, const std::string& value, int64_t lease,
               int64_t mod_revision, std::function<void(bool, bool, KeyValue)> done) override {
    if (!answers()) return fail([done] { done(false, false, {}); });
    auto it = e_.kvs.find(key);
    if (it == e_.kvs.end() || it->second.mod_revision != mod_revision) {
      KeyValue current = it == e_.kvs.end() ? KeyValue{} : it->second;
      e_.pending.push_back([done, current] { done(true, false, current); });
      return;
    }
    e_.put(key, value, lease);
    e_.pending.push_back([done] { done(true, true, {}); });
  }
  void put(const std::string& key, const std::string& value, int64_t lease,
           std::function<void(bool)> done) override {
    if (!answers()) return fail([done] { done(false); });
    e_.put(key, value, lease);
    e_.pending.push_back([done] { done(true); });
  }
  void get_prefix(const std::string& prefix,
                  std::function<void(bool, std::vector<KeyValue>, int64_t)> done) override {
    if (!answers()) return fail([done] { done(false, {}, 0); });
    std::vector<KeyValue> out;
    for (auto& [k, kv] : e_.kvs) {
      if (k.compare(0, prefix.size(), prefix) == 0) out.push_back(kv);
    }
    int64_t rev = e_.revision;
    e_.pending.push_back([done, out, rev] { done(true, out, rev); });
  }
  void watch_prefix(const std::string& prefix, int64_t,
                    std::function<void(const std::vector<Event>&)> events,
                    std::function<void()> broken) override {
    ++watches;
    if (!answers()) {
      e_.pending.push_back([broken] { broken(); });
      return;
    }
    prefix_ = prefix;
    events_ = std::move(events);
    broken_ = std::move(broken);
    watching_ = true;
  }
  void cancel_watch() override { watching_ = false; }
  void revoke(int64_t lease, std::function<void(bool)> done) override {
    if (!answers()) return fail([done] { done(false); });
    e_.revoke(lease);
    e_.pending.push_back([done] { done(true); });
  }
  int watches = 0;

 private:
  void fail(std::function<void()> f) { e_.pending.push_back(std::move(f)); }
  FakeEtcd& e_;
  bool watching_ = false;
  std::string prefix_;
  std::function<void(const std::vector<Event>&)> events_;
  std::function<void()> broken_;
};

void FakeEtcd::notify(const Event& e) {
  for (FakeClient* c : clients) c->event(e);
}

void FakeEtcd::set_up(bool on) {
  up = on;
  if (!on) {
    for (FakeClient* c : clients) c->break_watch();
  } else {
    for (auto& [id, l] : leases) l.second = now + l.first;  // etcd renews leases on a new leader
  }
}

struct FakeLocal : Local {
  std::map<std::string, bool> probing;
  int announcements = 0;
  std::vector<std::string> health;  // "farm server healthy|unhealthy"
  std::vector<std::string> admin;   // "farm server command"
  std::vector<std::string> lines;
  void set_probing(const std::string& farm, bool on, bool announce) override {
    probing[farm] = on;
    if (announce) ++announcements;
  }
  void apply_health(const std::string& farm, const std::string& server, bool healthy,
                    const std::string&) override {
    health.push_back(farm + " " + server + (healthy ? " healthy" : " unhealthy"));
  }
  void apply_admin(const std::string& farm, const std::string& server,
                   const std::string& command) override {
    admin.push_back(farm + " " + server + " " + command);
  }
  void log(bool, const std::string& line) override { lines.push_back(line); }
  std::vector<std::pair<std::string, int64_t>> configs;
  void apply_config(const std::string& text, int64_t revision) override {
    configs.emplace_back(text, revision);
  }
};

struct Instance {
  Instance(FakeEtcd& e, const std::string& id, Millis ttl, bool shared = false)
      : client(e), core(Settings{"/harrow/", "edge", id, ttl, shared}, client, local) {}
  FakeClient client;
  FakeLocal local;
  FleetCore core;
};

class Fleet : public ::testing::Test {
 protected:
  static constexpr Millis kTtl{3000};
  static constexpr Millis kStep{100};

  Instance& add(const std::string& id, std::vector<std::string> farms = {"web"}) {
    instances_.push_back(std::make_unique<Instance>(etcd_, id, kTtl));
    Instance& i = *instances_.back();
    i.core.set_farms(farms, etcd_.now);
    i.core.start(etcd_.now);
    etcd_.pump();
    return i;
  }
  void advance(Millis d) {
    for (Millis t{0}; t < d; t += kStep) {
      etcd_.now += kStep;
      etcd_.expire();
      for (auto& i : instances_) {
        if (crashed_.count(i.get()) == 0) i->core.tick(etcd_.now);
      }
      etcd_.pump();
    }
  }
  // A crashed process: no ticks, no answers (its lease runs out on its own).
  void crash(Instance& i) {
    crashed_.insert(&i);
    i.client.set_reachable(false);
  }
  int probers(const std::string& farm = "web") {
    int n = 0;
    for (auto& i : instances_) {
      if (crashed_.count(i.get()) == 0 && i->core.probes(farm)) ++n;
    }
    return n;
  }
  Instance* leader(const std::string& farm = "web") {
    for (auto& i : instances_) {
      if (crashed_.count(i.get()) == 0 && i->core.role(farm) == Role::Leader) return i.get();
    }
    return nullptr;
  }

  FakeEtcd etcd_;
  std::vector<std::unique_ptr<Instance>> instances_;
  std::set<Instance*> crashed_;
};

TEST_F(Fleet, OneProberPerFarmAndTheOthersFollow) {
  Instance& a = add("a", {"web", "api"});
  Instance& b = add("b", {"web", "api"});
  Instance& c = add("c", {"web", "api"});
  advance(Millis{500});
  EXPECT_EQ(probers("web"), 1);
  EXPECT_EQ(probers("api"), 1);
  EXPECT_EQ(a.core.role("web"), Role::Leader);  // first to ask
  EXPECT_EQ(b.core.role("web"), Role::Follower);
  EXPECT_EQ(c.core.role("api"), Role::Follower);
  EXPECT_TRUE(a.local.probing["web"]);
  EXPECT_FALSE(b.local.probing["web"]);
  EXPECT_FALSE(c.local.probing["web"]);
  EXPECT_GE(a.local.announcements, 2);  // took over both farms: states published
  // Quiet times stay quiet: no election churn while leases are kept alive.
  int puts = etcd_.puts;
  advance(Millis{30'000});
  EXPECT_EQ(etcd_.puts, puts);
  EXPECT_EQ(leader(), &a);
}

TEST_F(Fleet, WithoutAnswerAnInstanceWaitsAtMostATtlThenProbesAlone) {
  etcd_.set_up(false);
  Instance& a = add("a");
  advance(kTtl - Millis{200});
  EXPECT_EQ(a.core.role("web"), Role::Waiting);
  EXPECT_FALSE(a.local.probing["web"]);
  advance(Millis{400});
  EXPECT_EQ(a.core.role("web"), Role::Alone);
  EXPECT_TRUE(a.local.probing["web"]);
  EXPECT_FALSE(a.core.connected());
}

TEST_F(Fleet, ACrashedProbersFarmMovesWithinTheTtl) {
  Instance& a = add("a");
  Instance& b = add("b");
  Instance& c = add("c");
  advance(Millis{500});
  ASSERT_EQ(leader(), &a);
  crash(a);
  Millis waited{0};
  while (leader() == nullptr && waited < Millis{20'000}) {
    advance(kStep);
    waited += kStep;
  }
  ASSERT_NE(leader(), nullptr);
  // The lease was last renewed at most TTL/3 before the crash: it runs out within the TTL,
  // and the DELETE event elects within half a second (the spread against a herd of txns).
  EXPECT_LE(waited, kTtl + Millis{500} + kStep);
  EXPECT_EQ(probers(), 1);
  Instance* l = leader();
  EXPECT_TRUE(l == &b || l == &c);
  EXPECT_TRUE(l->local.probing["web"]);
}

TEST_F(Fleet, ManyFarmsFreedAtOnceDoNotMakeEveryInstanceSendATxnPerFarm) {
  std::vector<std::string> farms;
  for (int f = 0; f < 100; ++f) farms.push_back("farm" + std::to_string(f));
  Instance& first = add("i0", farms);
  advance(Millis{300});
  int before = etcd_.creates;
  for (int i = 1; i < 10; ++i) add("i" + std::to_string(i), farms);
  advance(Millis{500});
  // Newcomers see the holders in their snapshot: no txn at all.
  EXPECT_EQ(etcd_.creates, before);
  for (const std::string& f : farms) ASSERT_EQ(probers(f), 1) << f;
  before = etcd_.creates;
  crash(first);
  advance(kTtl + Millis{1500});
  for (const std::string& f : farms) ASSERT_EQ(probers(f), 1) << f;
  // Without the spread: 9 txns per farm. With it, the first winner's PUT stops most others.
  EXPECT_LE(etcd_.creates - before, 3 * 100);
}

TEST_F(Fleet, TheLeaderCutOffProbesAloneAndSomeoneElseTakesOver) {
  Instance& a = add("a");
  Instance& b = add("b");
  advance(Millis{500});
  ASSERT_EQ(leader(), &a);
  a.client.set_reachable(false);
  advance(kTtl + Millis{1000});
  // Two probers for the time being: `a` alone (it cannot know), `b` for the fleet.
  EXPECT_EQ(a.core.role("web"), Role::Alone);
  EXPECT_TRUE(a.local.probing["web"]);
  EXPECT_EQ(b.core.role("web"), Role::Leader);
  EXPECT_EQ(probers(), 2);
  // Back: `a` finds b's key and follows; one prober again.
  a.client.set_reachable(true);
  advance(Millis{1500});
  EXPECT_EQ(a.core.role("web"), Role::Follower);
  EXPECT_FALSE(a.local.probing["web"]);
  EXPECT_EQ(probers(), 1);
  EXPECT_TRUE(a.core.connected());
}

TEST_F(Fleet, AStoreOutageMakesEveryoneProbeAndThenOneAgain) {
  add("a");
  add("b");
  add("c");
  advance(Millis{500});
  ASSERT_EQ(probers(), 1);
  etcd_.set_up(false);
  advance(kTtl + Millis{300});
  EXPECT_EQ(probers(), 3);  // never nobody: traffic never stays on dead servers
  for (auto& i : instances_) EXPECT_FALSE(i->core.connected());
  etcd_.set_up(true);
  advance(Millis{2000});
  EXPECT_EQ(probers(), 1);
  for (auto& i : instances_) EXPECT_TRUE(i->core.connected());
  // `a`'s key outlived the outage on its old lease (etcd renews leases on restart): `a` moved
  // it to its new lease rather than leave the farm unprobed until the old one ran out.
  EXPECT_NE(leader(), nullptr);
  advance(Millis{10'000});
  EXPECT_EQ(probers(), 1);
}

TEST_F(Fleet, TheProbersTransitionsReachTheFollowersOnly) {
  Instance& a = add("a");
  Instance& b = add("b");
  advance(Millis{500});
  a.core.publish_health("web", "10.0.0.1:80", false, "3 consecutive failed probes");
  b.core.publish_health("web", "10.0.0.2:80", false, "not the prober");  // not published
  etcd_.pump();
  ASSERT_EQ(b.local.health.size(), 1u);
  EXPECT_EQ(b.local.health[0], "web 10.0.0.1:80 unhealthy");
  EXPECT_TRUE(a.local.health.empty());
  // A newcomer takes the last published state from the snapshot.
  Instance& c = add("c");
  advance(Millis{300});
  ASSERT_EQ(c.local.health.size(), 1u);
  EXPECT_EQ(c.local.health[0], "web 10.0.0.1:80 unhealthy");
}

TEST_F(Fleet, AdminCommandsReachEveryOtherInstanceAndNewcomers) {
  Instance& a = add("a");
  Instance& b = add("b");
  Instance& c = add("c");
  advance(Millis{500});
  b.core.publish_admin("web", "10.0.0.1:80", "drain");
  etcd_.pump();
  EXPECT_TRUE(b.local.admin.empty());  // applied where it was given, not twice
  ASSERT_EQ(a.local.admin.size(), 1u);
  EXPECT_EQ(a.local.admin[0], "web 10.0.0.1:80 drain");
  ASSERT_EQ(c.local.admin.size(), 1u);
  Instance& d = add("d");
  advance(Millis{300});
  ASSERT_EQ(d.local.admin.size(), 1u);
  EXPECT_EQ(d.local.admin[0], "web 10.0.0.1:80 drain");
  // A re-sync (broken watch) does not apply the same command again.
  c.client.break_watch();
  advance(Millis{1500});
  EXPECT_EQ(c.local.admin.size(), 1u);
  EXPECT_GE(c.client.watches, 2);
}

TEST_F(Fleet, AnExpiredLeaseStartsANewSessionAndElectsAgain) {
  Instance& a = add("a");
  advance(Millis{500});
  ASSERT_EQ(leader(), &a);
  etcd_.revoke(a.core.lease());  // e.g. etcd did not hear from us in time
  advance(Millis{2000});
  EXPECT_EQ(a.core.role("web"), Role::Leader);
  EXPECT_TRUE(a.local.probing["web"]);
  EXPECT_EQ(etcd_.kvs.count("/harrow/edge/leader/web"), 1u);
  EXPECT_EQ(etcd_.kvs["/harrow/edge/leader/web"].lease, a.core.lease());
}

TEST_F(Fleet, LeavingFreesTheFarmAtOnce) {
  Instance& a = add("a");
  Instance& b = add("b");
  advance(Millis{500});
  ASSERT_EQ(leader(), &a);
  a.core.stop();
  crashed_.insert(&a);
  etcd_.pump();
  advance(Millis{700});  // at once, but for the election's spread
  EXPECT_EQ(leader(), &b);
}

TEST_F(Fleet, NewFarmsOnReloadAreElectedAndRemovedOnesForgotten) {
  Instance& a = add("a", {"web"});
  Instance& b = add("b", {"web"});
  advance(Millis{500});
  b.core.set_farms({"web", "api"}, etcd_.now);
  etcd_.pump();
  EXPECT_EQ(b.core.role("api"), Role::Leader);
  a.core.set_farms({}, etcd_.now);
  EXPECT_TRUE(a.core.roles().empty());
}

TEST_F(Fleet, SharedConfigurationRevisionsReachInstancesThatAskForThem) {
  etcd_.put("/harrow/edge/config", "<configuration>1</configuration>", 0);
  instances_.push_back(std::make_unique<Instance>(etcd_, "s", kTtl, /*shared=*/true));
  Instance& shared = *instances_.back();
  shared.core.set_farms({"web"}, etcd_.now);
  shared.core.start(etcd_.now);
  Instance& plain = add("p");
  advance(Millis{300});
  ASSERT_EQ(shared.local.configs.size(), 1u);  // from the snapshot
  EXPECT_EQ(shared.local.configs[0].first, "<configuration>1</configuration>");
  int64_t first = shared.local.configs[0].second;
  etcd_.put("/harrow/edge/config", "<configuration>2</configuration>", 0);
  etcd_.pump();
  ASSERT_EQ(shared.local.configs.size(), 2u);  // from the watch
  EXPECT_GT(shared.local.configs[1].second, first);
  EXPECT_TRUE(plain.local.configs.empty());  // without sharedConfig: never
  // A re-sync does not hand the same revision over again.
  shared.client.break_watch();
  advance(Millis{1500});
  EXPECT_EQ(shared.local.configs.size(), 2u);
  shared.core.publish_config_status(shared.local.configs[1].second, false,
                                    "etcd:/harrow/edge/config@9:1:1: error: x");
  etcd_.pump();
  EXPECT_EQ(etcd_.kvs["/harrow/edge/config-status/s"].value,
            std::to_string(shared.local.configs[1].second) +
                " rejected\netcd:/harrow/edge/config@9:1:1: error: x");
}

TEST(FleetValues, HealthValuesRoundTrip) {
  bool healthy = true;
  std::string instance, reason;
  ASSERT_TRUE(parse_health_value(health_value(false, "a", "probe failed (status 503)"), healthy,
                                 instance, reason));
  EXPECT_FALSE(healthy);
  EXPECT_EQ(instance, "a");
  EXPECT_EQ(reason, "probe failed (status 503)");
  EXPECT_FALSE(parse_health_value("maybe a x", healthy, instance, reason));
  EXPECT_FALSE(parse_health_value("healthy", healthy, instance, reason));
}

}  // namespace
}  // namespace harrow::fleet

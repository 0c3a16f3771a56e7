// One prober per farm for a whole fleet of Harrows, coordinated through etcd (never through a
// protocol of Harrow's own). Pure logic: the store and this instance's probers are interfaces,
// time is passed in; core/daemon/fleet_service.h runs it on a thread with the etcd client, and
// the unit tests run it against an in-memory store with a hand-moved clock.
//
// Keys under PREFIX + NAME + "/" (NAME: <fleet name>):
//   leader/FARM          this instance's id, on this instance's lease: the farm's prober
//   health/FARM/SERVER   "healthy|unhealthy INSTANCE REASON": the prober's last transition
//   admin/FARM/SERVER    "COMMAND INSTANCE": the last admin state command, from any instance
//   config               with sharedConfig: the configuration (XML), put by the operator
//   config-status/INSTANCE  "REVISION ok" or "REVISION rejected" and the errors, one a line
//
// - Session: one lease per instance (TTL = leaseTtl), kept alive every TTL/3; a snapshot of the
//   fleet's keys, then one watch over them from the snapshot's revision.
// - Election per farm: a txn creates leader/FARM if absent (create_revision == 0) on our lease.
//   The winner probes and publishes each health *transition* its probes cause (not each
//   probe); the others stop probing and apply what it publishes. The key goes with the lease:
//   a dead or cut-off prober's farms are free after at most the TTL, the watchers see the
//   DELETE and race for it; the winner probes within a second. So probing moves within
//   healthCheck interval + TTL. Our own key on the lease of an earlier session (we were cut
//   off, etcd kept the old lease alive) is taken over with a txn on its mod_revision, so a
//   store outage does not leave a farm without a prober for a TTL afterwards.
// - Cut off: no successful reply from the store for a TTL (by then our lease, and with it any
//   leadership, is gone too): every farm is probed here again ("alone"), logged and counted;
//   a new session starts as soon as the store answers, and the elections run again.
// - Admin commands on any instance are put under admin/ and applied by every other instance.
// - etcd's load stays proportional to changes: a snapshot that shows a farm held by another
//   instance makes this one a follower without a txn, and a freed farm is asked for after a
//   random delay (at most half a second) unless its new holder showed up meanwhile.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/daemon/etcd_protocol.h"

namespace harrow::fleet {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Millis = std::chrono::milliseconds;

// The store's operations (etcd's v3 API), asynchronous; callbacks come later on the same
// thread (never from inside the call). `ok` false: no answer from any endpoint.
class Store {
 public:
  virtual ~Store() = default;
  virtual void grant(int64_t ttl_seconds, std::function<void(bool ok, int64_t lease)> done) = 0;
  // ttl 0: the lease no longer exists.
  virtual void keepalive(int64_t lease, std::function<void(bool ok, int64_t ttl)> done) = 0;
  virtual void create(const std::string& key, const std::string& value, int64_t lease,
                      std::function<void(bool ok, bool created, etcd::KeyValue current)> done) = 0;
  // Puts `key` only if its mod_revision is still `mod_revision`.
  virtual void replace(
      const std::string& key, const std::string& value, int64_t lease, int64_t mod_revision,
      std::function<void(bool ok, bool replaced, etcd::KeyValue current)> done) = 0;
  virtual void put(const std::string& key, const std::string& value, int64_t lease,
                   std::function<void(bool ok)> done) = 0;
  virtual void get_prefix(
      const std::string& prefix,
      std::function<void(bool ok, std::vector<etcd::KeyValue> kvs, int64_t revision)> done) = 0;
  // Replaces any earlier watch. `broken` is called once if the watch ends.
  virtual void watch_prefix(const std::string& prefix, int64_t start_revision,
                            std::function<void(const std::vector<etcd::Event>&)> events,
                            std::function<void()> broken) = 0;
  virtual void cancel_watch() = 0;
  virtual void revoke(int64_t lease, std::function<void(bool ok)> done) = 0;
};

// What the fleet does to this instance's probers (thread-safe on the real side).
class Local {
 public:
  virtual ~Local() = default;
  virtual void set_probing(const std::string& farm, bool probes_here, bool announce) = 0;
  virtual void apply_health(const std::string& farm, const std::string& server, bool healthy,
                            const std::string& reason) = 0;
  // `command`: start, drain, gracefulStop, forcefulStop, healthy, unhealthy.
  virtual void apply_admin(const std::string& farm, const std::string& server,
                           const std::string& command) = 0;
  virtual void log(bool warning, const std::string& line) = 0;
  // sharedConfig: a new revision of the config key (checked and applied, or rejected, by the
  // instance, which then calls FleetCore::publish_config_status).
  virtual void apply_config(const std::string& text, int64_t revision) = 0;
};

struct Settings {
  std::string prefix = "/harrow/";  // ends with '/'
  std::string name;
  std::string instance;
  Millis lease_ttl{10'000};
  bool shared_config = false;
};

enum class Role {
  Waiting,   // no answer yet: not probing (for at most a TTL, then Alone)
  Leader,    // holds leader/FARM: probes and publishes
  Follower,  // another instance holds it: applies what it publishes
  Alone,     // cut off from the store: probes on its own
};
const char* role_name(Role role);

class FleetCore {
 public:
  FleetCore(Settings settings, Store& store, Local& local);

  // The farms this instance probes (lower-case names; those with a health-check URL).
  void set_farms(const std::vector<std::string>& farms, TimePoint now);
  void start(TimePoint now);
  // Every few hundred milliseconds: keepalives, the cut-off rule, reconnection, elections.
  void tick(TimePoint now);
  // This instance's probes changed a server's health: published if it leads the farm.
  void publish_health(const std::string& farm, const std::string& server, bool healthy,
                      const std::string& reason);
  // An admin command given here (already applied here): put for the others.
  void publish_admin(const std::string& farm, const std::string& server,
                     const std::string& command);
  // sharedConfig: what this instance made of the config key's revision `revision`.
  void publish_config_status(int64_t revision, bool applied, const std::string& errors);
  // Leaving: the lease is revoked, so the farms we lead are free at once.
  void stop();

  bool connected() const { return session_ready_; }
  Role role(const std::string& farm) const;
  bool probes(const std::string& farm) const;
  const std::map<std::string, Role>& roles() const { return roles_; }
  int64_t lease() const { return lease_; }

  std::string leader_key(const std::string& farm) const { return base_ + "leader/" + farm; }
  std::string health_key(const std::string& farm, const std::string& server) const {
    return base_ + "health/" + farm + "/" + server;
  }
  std::string admin_key(const std::string& farm, const std::string& server) const {
    return base_ + "admin/" + farm + "/" + server;
  }
  std::string config_key() const { return base_ + "config"; }
  std::string config_status_key() const { return base_ + "config-status/" + settings_.instance; }

 private:
  void begin_session(TimePoint now);
  void end_session();
  void sync(uint64_t generation);
  void start_watch(uint64_t generation, int64_t from_revision);
  void elect(const std::string& farm);
  void elected(const std::string& farm, uint64_t gen, bool ok, bool created,
               const etcd::KeyValue& current);
  void set_role(const std::string& farm, Role role);
  void go_alone(const char* why);
  void on_kv(const etcd::KeyValue& kv, bool initial);
  void on_delete(const std::string& key);
  void answered() { last_ok_ = now_; }

  Settings settings_;
  Store& store_;
  Local& local_;
  std::string base_;  // prefix + name + "/"
  TimePoint now_{};
  std::map<std::string, Role> roles_;
  std::map<std::string, bool> electing_;  // a create txn in flight
  // The admin keys' mod_revision already applied (a re-sync applies only what is newer).
  std::map<std::string, int64_t> applied_admin_;
  uint64_t generation_ = 0;  // bumped per session: answers for an older one are dropped
  bool started_ = false;
  bool session_starting_ = false;
  bool session_ready_ = false;  // lease granted, snapshot applied, watch started
  bool stopped_ = false;
  bool keepalive_in_flight_ = false;
  bool watch_alive_ = false;
  bool cut_off_ = false;  // went Alone; logged once per outage
  int64_t lease_ = 0;
  int64_t revision_ = 0;  // last revision seen (snapshot or watch)
  TimePoint last_ok_{};
  TimePoint last_keepalive_{};
  TimePoint last_attempt_{};
  TimePoint last_retry_{};  // elections and a broken watch are retried once a second
  // Farms whose leader key went away, and when to ask for it: a random moment within
  // kElectionSpread, so a hundred instances seeing a thousand farms freed at once do not all
  // send a thousand txns; the first winner's PUT reaches the others before most of them ask.
  std::map<std::string, TimePoint> elect_at_;
  uint64_t rng_state_ = 0;
  int64_t config_revision_ = 0;  // the config key's mod_revision last handed to Local
};

// The values under health/ (exposed for tests).
std::string health_value(bool healthy, const std::string& instance, const std::string& reason);
bool parse_health_value(const std::string& value, bool& healthy, std::string& instance,
                        std::string& reason);

}  // namespace harrow::fleet

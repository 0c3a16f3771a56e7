#include "core/daemon/fleet.h"

#include <algorithm>

namespace harrow::fleet {
namespace {

constexpr Millis kRetry{1000};
constexpr Millis kElectionSpread{500};

bool probing_role(Role r) {
  return r == Role::Leader || r == Role::Alone;
}

std::string seconds_text(Millis d) {
  return std::to_string(d.count() / 1000) + "." + std::to_string(d.count() % 1000 / 100) + "s";
}

}  // namespace

const char* role_name(Role role) {
  switch (role) {
    case Role::Waiting:
      return "waiting";
    case Role::Leader:
      return "prober";
    case Role::Follower:
      return "follower";
    case Role::Alone:
      return "alone";
  }
  return "?";
}

std::string health_value(bool healthy, const std::string& instance, const std::string& reason) {
  return std::string(healthy ? "healthy " : "unhealthy ") + instance + " " + reason;
}

bool parse_health_value(const std::string& value, bool& healthy, std::string& instance,
                        std::string& reason) {
  size_t a = value.find(' ');
  if (a == std::string::npos) return false;
  std::string word = value.substr(0, a);
  if (word != "healthy" && word != "unhealthy") return false;
  healthy = word == "healthy";
  size_t b = value.find(' ', a + 1);
  instance = value.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
  reason = b == std::string::npos ? "" : value.substr(b + 1);
  return !instance.empty();
}

FleetCore::FleetCore(Settings settings, Store& store, Local& local)
    : settings_(std::move(settings)),
      store_(store),
      local_(local),
      base_(settings_.prefix + settings_.name + "/"),
      rng_state_(std::hash<std::string>{}(settings_.instance) | 1) {}

Role FleetCore::role(const std::string& farm) const {
  auto it = roles_.find(farm);
  return it == roles_.end() ? Role::Waiting : it->second;
}

bool FleetCore::probes(const std::string& farm) const {
  return probing_role(role(farm));
}

void FleetCore::set_farms(const std::vector<std::string>& farms, TimePoint now) {
  now_ = now;
  for (auto it = roles_.begin(); it != roles_.end();) {
    if (std::find(farms.begin(), farms.end(), it->first) == farms.end()) {
      // Our leader key (if any) stays on our lease until we leave; nobody probes the farm.
      electing_.erase(it->first);
      elect_at_.erase(it->first);
      it = roles_.erase(it);
    } else {
      ++it;
    }
  }
  for (const std::string& farm : farms) {
    if (roles_.count(farm) != 0) continue;
    roles_[farm] = Role::Waiting;
    if (cut_off_) {
      set_role(farm, Role::Alone);
    } else if (session_ready_) {
      elect(farm);
    }
  }
}

void FleetCore::start(TimePoint now) {
  now_ = now;
  started_ = true;
  last_ok_ = now;
  begin_session(now);
}

void FleetCore::begin_session(TimePoint now) {
  if (session_starting_ || session_ready_ || stopped_) return;
  session_starting_ = true;
  last_attempt_ = now;
  uint64_t gen = ++generation_;
  int64_t ttl = std::max<int64_t>(1, settings_.lease_ttl.count() / 1000);
  store_.grant(ttl, [this, gen](bool ok, int64_t lease) {
    if (gen != generation_) return;
    if (!ok) {
      session_starting_ = false;  // tick() tries again in a second
      return;
    }
    answered();
    lease_ = lease;
    sync(gen);
  });
}

void FleetCore::sync(uint64_t gen) {
  store_.get_prefix(base_, [this, gen](bool ok, std::vector<etcd::KeyValue> kvs, int64_t rev) {
    if (gen != generation_) return;
    if (!ok) {
      if (!session_ready_) {
        // Start over (the lease we got, if still alive, simply expires).
        ++generation_;
        session_starting_ = false;
        lease_ = 0;
      } else {
        watch_alive_ = false;  // a re-sync after a broken watch: tick() tries again
      }
      return;
    }
    answered();
    revision_ = std::max(revision_, rev);
    std::map<std::string, std::string> holders;  // farm → instance holding leader/FARM
    for (const etcd::KeyValue& kv : kvs) {
      on_kv(kv, true);
      std::string leader_prefix = base_ + "leader/";
      if (kv.key.compare(0, leader_prefix.size(), leader_prefix) == 0) {
        holders[kv.key.substr(leader_prefix.size())] = kv.value;
      }
    }
    start_watch(gen, rev + 1);
    bool first = !session_ready_;
    session_starting_ = false;
    session_ready_ = true;
    if (first) {
      last_keepalive_ = now_;
      local_.log(false, std::string("fleet: ") + (cut_off_ ? "etcd answers again" : "connected") +
                            "; lease " + std::to_string(lease_) + ", electing the probers of " +
                            std::to_string(roles_.size()) + " farm(s)");
      cut_off_ = false;
    }
    for (auto& [farm, role] : roles_) {
      auto held = holders.find(farm);
      if (held != holders.end() && held->second != settings_.instance) {
        set_role(farm, Role::Follower);  // no txn: the snapshot says who probes
      } else {
        elect(farm);
      }
    }
  });
}

void FleetCore::start_watch(uint64_t gen, int64_t from_revision) {
  watch_alive_ = true;
  store_.watch_prefix(
      base_, from_revision,
      [this, gen](const std::vector<etcd::Event>& events) {
        if (gen != generation_) return;
        answered();
        for (const etcd::Event& e : events) {
          revision_ = std::max(revision_, e.kv.mod_revision);
          if (e.deleted) {
            on_delete(e.kv.key);
          } else {
            on_kv(e.kv, false);
          }
        }
      },
      [this, gen] {
        if (gen != generation_) return;
        watch_alive_ = false;  // tick() takes a new snapshot and watches again
      });
}

void FleetCore::end_session() {
  ++generation_;
  if (session_ready_ || session_starting_) store_.cancel_watch();
  session_ready_ = false;
  session_starting_ = false;
  keepalive_in_flight_ = false;
  watch_alive_ = false;
  electing_.clear();
  elect_at_.clear();
  lease_ = 0;
}

void FleetCore::elect(const std::string& farm) {
  if (!session_ready_ || electing_[farm]) return;
  electing_[farm] = true;
  uint64_t gen = generation_;
  store_.create(leader_key(farm), settings_.instance, lease_,
                [this, gen, farm](bool ok, bool created, etcd::KeyValue current) {
                  elected(farm, gen, ok, created, current);
                });
}

void FleetCore::elected(const std::string& farm, uint64_t gen, bool ok, bool created,
                        const etcd::KeyValue& current) {
  if (gen != generation_) return;
  electing_[farm] = false;
  if (!ok || roles_.count(farm) == 0) return;  // retried by tick()
  answered();
  if (created || (current.value == settings_.instance && current.lease == lease_)) {
    set_role(farm, Role::Leader);
  } else if (current.value == settings_.instance && !current.key.empty()) {
    // Ours, from an earlier session: move it to this session's lease.
    electing_[farm] = true;
    store_.replace(leader_key(farm), settings_.instance, lease_, current.mod_revision,
                   [this, gen, farm](bool ok2, bool replaced, etcd::KeyValue now_held) {
                     if (replaced) now_held = etcd::KeyValue{};
                     elected(farm, gen, ok2, replaced, now_held);
                   });
  } else if (!current.key.empty()) {
    set_role(farm, Role::Follower);
  }
  // Absent again (the holder's lease just expired): the DELETE event, or tick(), elects again.
}

void FleetCore::set_role(const std::string& farm, Role role) {
  auto it = roles_.find(farm);
  if (it == roles_.end() || it->second == role) return;
  Role before = it->second;
  it->second = role;
  bool was = probing_role(before);
  bool now = probing_role(role);
  if (was != now || role == Role::Leader) local_.set_probing(farm, now, role == Role::Leader);
  const char* what = role == Role::Leader     ? "this instance probes it for the fleet"
                     : role == Role::Follower ? "another instance probes it"
                     : role == Role::Alone    ? "probing it here (cut off from etcd)"
                                              : "waiting for the election";
  local_.log(role == Role::Alone, "fleet: farm=" + farm + ": " + role_name(before) + " -> " +
                                      role_name(role) + ": " + what);
}

void FleetCore::go_alone(const char* why) {
  if (!cut_off_) {
    local_.log(true, std::string("fleet: cut off from etcd (") + why +
                         "); every farm is probed here until it answers");
  }
  cut_off_ = true;
  end_session();
  for (auto& [farm, role] : roles_) set_role(farm, Role::Alone);
}

void FleetCore::on_kv(const etcd::KeyValue& kv, bool initial) {
  if (kv.key.compare(0, base_.size(), base_) != 0) return;
  std::string rest = kv.key.substr(base_.size());
  auto split = [](const std::string& text, size_t from, std::string& farm, std::string& server) {
    size_t slash = text.find('/', from);
    if (slash == std::string::npos) return false;
    farm = text.substr(from, slash - from);
    server = text.substr(slash + 1);
    return !farm.empty() && !server.empty();
  };
  std::string farm, server;
  if (rest == "config") {
    if (!settings_.shared_config || kv.mod_revision <= config_revision_) return;
    config_revision_ = kv.mod_revision;
    local_.apply_config(kv.value, kv.mod_revision);
  } else if (rest.rfind("leader/", 0) == 0) {
    farm = rest.substr(7);
    bool ours = kv.value == settings_.instance && kv.lease == lease_;
    if (initial || ours || roles_.count(farm) == 0) return;
    // Someone else holds it now: whatever we thought, we do not lead it (our lease expired),
    // and a pending request for it is moot.
    elect_at_.erase(farm);
    Role r = role(farm);
    if (r == Role::Leader || r == Role::Waiting) set_role(farm, Role::Follower);
  } else if (rest.rfind("health/", 0) == 0 && split(rest, 7, farm, server)) {
    bool healthy = true;
    std::string instance, reason;
    if (!parse_health_value(kv.value, healthy, instance, reason)) return;
    if (instance == settings_.instance) return;
    Role r = role(farm);
    if (roles_.count(farm) == 0 || r == Role::Leader || r == Role::Alone) return;
    local_.apply_health(farm, server, healthy, reason + " (" + instance + ")");
  } else if (rest.rfind("admin/", 0) == 0 && split(rest, 6, farm, server)) {
    int64_t& applied = applied_admin_[kv.key];
    if (kv.mod_revision != 0 && kv.mod_revision <= applied) return;
    applied = kv.mod_revision;
    size_t space = kv.value.find(' ');
    std::string command = kv.value.substr(0, space);
    std::string instance = space == std::string::npos ? "" : kv.value.substr(space + 1);
    // Our own commands were applied when given; a snapshot (start, reconnection) applies
    // every command, ours from an earlier run included.
    if (!initial && instance == settings_.instance) return;
    local_.apply_admin(farm, server, command);
  }
}

void FleetCore::on_delete(const std::string& key) {
  if (key.compare(0, base_.size(), base_) != 0) return;
  std::string rest = key.substr(base_.size());
  if (rest.rfind("leader/", 0) != 0) return;
  std::string farm = rest.substr(7);
  if (roles_.count(farm) == 0) return;
  // Our own key gone means our lease is: keep probing until the new election says otherwise.
  uint64_t z = (rng_state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  elect_at_[farm] = now_ + Millis{static_cast<int64_t>(z % kElectionSpread.count())};
}

void FleetCore::tick(TimePoint now) {
  now_ = now;
  if (!started_ || stopped_) return;
  if (!cut_off_ && now - last_ok_ > settings_.lease_ttl) {
    go_alone(("no answer for " + seconds_text(std::chrono::duration_cast<Millis>(now - last_ok_)))
                 .c_str());
  }
  if (!session_ready_ && !session_starting_ && now - last_attempt_ >= kRetry) begin_session(now);
  if (!session_ready_) return;
  for (auto it = elect_at_.begin(); it != elect_at_.end();) {
    if (now >= it->second) {
      std::string farm = it->first;
      it = elect_at_.erase(it);
      elect(farm);
    } else {
      ++it;
    }
  }
  Millis every = std::max(Millis{200}, settings_.lease_ttl / 3);
  if (!keepalive_in_flight_ && now - last_keepalive_ >= every) {
    keepalive_in_flight_ = true;
    last_keepalive_ = now;
    uint64_t gen = generation_;
    store_.keepalive(lease_, [this, gen, every](bool ok, int64_t ttl) {
      if (gen != generation_) return;
      keepalive_in_flight_ = false;
      if (!ok) {
        last_keepalive_ = now_ - every + Millis{300};  // again soon
        return;
      }
      answered();
      if (ttl > 0) return;
      local_.log(true, "fleet: lease " + std::to_string(lease_) +
                           " expired (etcd did not hear from us for a TTL); new session");
      end_session();
      for (auto& [farm, role] : roles_) {
        if (role == Role::Leader) set_role(farm, Role::Waiting);
      }
      begin_session(now_);
    });
  }
  if (now - last_retry_ >= kRetry) {
    last_retry_ = now;
    if (!watch_alive_) {
      watch_alive_ = true;  // sync() watches again; if it fails, the next retry tries again
      sync(generation_);
    }
    for (auto& [farm, role] : roles_) {
      if (role == Role::Waiting || role == Role::Alone) elect(farm);
    }
  }
}

void FleetCore::publish_health(const std::string& farm, const std::string& server, bool healthy,
                               const std::string& reason) {
  if (!session_ready_ || role(farm) != Role::Leader) return;
  store_.put(health_key(farm, server), health_value(healthy, settings_.instance, reason), 0,
             [this, farm, server](bool ok) {
               if (!ok) {
                 local_.log(true, "fleet: farm=" + farm + " server=" + server +
                                      ": health change not published (etcd did not answer)");
               }
             });
}

void FleetCore::publish_admin(const std::string& farm, const std::string& server,
                              const std::string& command) {
  if (!session_ready_) {
    local_.log(true, "fleet: farm=" + farm + " server=" + server + ": " + command +
                         " applied on this instance only (not connected to etcd)");
    return;
  }
  store_.put(admin_key(farm, server), command + " " + settings_.instance, 0,
             [this, farm, server, command](bool ok) {
               if (!ok) {
                 local_.log(true, "fleet: farm=" + farm + " server=" + server + ": " + command +
                                      " applied on this instance only (etcd did not answer)");
               }
             });
}

void FleetCore::publish_config_status(int64_t revision, bool applied, const std::string& errors) {
  if (!session_ready_) return;
  std::string value = std::to_string(revision) + (applied ? " ok" : " rejected\n" + errors);
  store_.put(config_status_key(), value, 0, [this](bool ok) {
    if (!ok) local_.log(true, "fleet: configuration status not published (etcd did not answer)");
  });
}

void FleetCore::stop() {
  if (stopped_) return;
  if (lease_ != 0) store_.revoke(lease_, [](bool) {});
  end_session();
  stopped_ = true;
}

}  // namespace harrow::fleet

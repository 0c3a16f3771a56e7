#include "core/daemon/health_service.h"

#include <algorithm>

#include "core/base/ascii.h"
#include "core/base/log.h"
#include "core/daemon/fleet_service.h"
#include "core/http1/http_head.h"

namespace harrow {

bool split_health_url(const std::string& url, std::string& host_header, std::string& path,
                      bool* https) {
  std::string_view u = url;
  bool secure = u.size() >= 9 && iequals(u.substr(0, 8), "https://");
  if (!secure && (u.size() < 8 || !iequals(u.substr(0, 7), "http://"))) return false;
  if (https != nullptr) *https = secure;
  u.remove_prefix(secure ? 8 : 7);
  size_t slash = u.find_first_of("/?");
  host_header = std::string(u.substr(0, slash));
  if (host_header.empty()) return false;
  path = slash == std::string_view::npos ? "/" : std::string(u.substr(slash));
  if (path.front() == '?') path.insert(path.begin(), '/');
  return true;
}

health::ProbedFarm make_probed_farm(const std::shared_ptr<const Snapshot>& snapshot,
                                    size_t farm_index) {
  const SnapshotFarm& farm = snapshot->farms[farm_index];
  const config::FarmConfig& cfg = *farm.config;
  const config::HealthCheckConfig& hc = cfg.health_check;
  health::ProbedFarm spec;
  spec.farm = cfg.name;
  spec.pool = cfg.application_pool;
  std::string host, path;
  bool https = false;
  spec.policy.active_probing = split_health_url(hc.url, host, path, &https);
  if (https && snapshot->tls_client) {
    const tls::ClientContexts::UpstreamTls& settings = snapshot->tls_client->for_farm(cfg.name);
    spec.request.tls = snapshot->tls_client;
    spec.request.tls_ctx = settings.ctx;
    spec.request.tls_verify = settings.verify;
  } else if (https) {
    spec.policy.active_probing = false;
  }
  spec.policy.fall = std::max<uint32_t>(1, hc.retries);
  spec.policy.rise = std::max<uint32_t>(1, hc.healthy_threshold);
  spec.jitter = hc.jitter_percent / 100.0;
  spec.policy.max_live_failures = std::max<uint32_t>(1, hc.max_live_traffic_failures);
  spec.policy.live_failure_period = hc.live_traffic_failure_period;
  spec.interval = std::max(hc.interval, health::Millis{100});
  spec.min_servers = hc.min_servers;
  spec.request.host_header = host;
  spec.request.path = path;
  spec.request.user_agent = "Harrow-HealthCheck/" HARROW_VERSION " (farm=" + cfg.name + "; pool=" +
                            (cfg.application_pool.empty() ? "-" : cfg.application_pool) + ")";
  spec.request.timeout = std::max(hc.timeout, health::Millis{1});
  spec.request.statuses = health::StatusMatcher::parse(hc.status_code_match)
                              .value_or(*health::StatusMatcher::parse("200-399"));
  spec.request.response_match = hc.response_match;
  spec.request.http2 = farm.http2;
  for (const ServerEndpoint& ep : farm.servers) {
    health::ProbedServer s;
    s.label = ep.label;
    s.resolved = ep.probe_resolved;
    s.probe_address = ep.probe_addr;
    if (https) {
      s.tls_name = ep.config->health_check_alternate_host_name.empty()
                       ? ep.tls_name
                       : ep.config->health_check_alternate_host_name;
    }
    if (!ep.config->health_check_alternate_host_name.empty() && !host.empty()) {
      // The alternate host is also what the probe asks for, as ARR does.
      size_t colon = host.rfind(':');
      s.host_header =
          ep.config->health_check_alternate_host_name +
          (colon != std::string::npos && host.find(']') == std::string::npos ? host.substr(colon)
                                                                             : "");
    }
    spec.servers.push_back(std::move(s));
  }
  spec.table = farm.health;
  // Workers' counters for this farm, summed; the closure keeps the snapshot alive.
  spec.traffic = [snapshot, farm_index](std::vector<uint64_t>& live, std::vector<uint64_t>& busy) {
    const SnapshotFarm& f = snapshot->farms[farm_index];
    for (const auto& row : f.metrics) {
      for (size_t i = 0; i < row.size() && i < live.size(); ++i) {
        live[i] += row[i].live_failures.get();
        busy[i] += row[i].in_flight.get();
      }
    }
  };
  spec.log = [](const std::string& line) { log_line(LogLevel::Warn, "%s", line.c_str()); };
  return spec;
}

const char* admin_command_name(health::AdminCommand command) {
  switch (command) {
    case health::AdminCommand::Start:
      return "start";
    case health::AdminCommand::Drain:
      return "drain";
    case health::AdminCommand::GracefulStop:
      return "gracefulStop";
    case health::AdminCommand::ForcefulStop:
      return "forcefulStop";
    case health::AdminCommand::SetHealthy:
      return "healthy";
    case health::AdminCommand::SetUnhealthy:
      return "unhealthy";
  }
  return "?";
}

std::optional<health::AdminCommand> admin_command_from_name(const std::string& name) {
  for (health::AdminCommand c :
       {health::AdminCommand::Start, health::AdminCommand::Drain,
        health::AdminCommand::GracefulStop, health::AdminCommand::ForcefulStop,
        health::AdminCommand::SetHealthy, health::AdminCommand::SetUnhealthy}) {
    if (iequals(name, admin_command_name(c))) return c;
  }
  return std::nullopt;
}

void HealthService::fleet_set_probing(const std::string& farm, bool probes_here, bool announce) {
  std::lock_guard<std::mutex> lock(mutex_);
  fleet_probing_[farm] = probes_here;
  auto it = probers_.find(farm);
  if (it != probers_.end()) it->second->set_probing(probes_here, announce);
}

void HealthService::fleet_apply_health(const std::string& farm, const std::string& server,
                                       bool healthy, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = probers_.find(farm);
  if (it != probers_.end()) it->second->apply_fleet(server, healthy, reason);
}

void HealthService::fleet_apply_admin(const std::string& farm, const std::string& server,
                                      const std::string& command) {
  std::optional<health::AdminCommand> c = admin_command_from_name(command);
  if (!c) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = probers_.find(farm);
  if (it != probers_.end()) it->second->command(server, *c);
}

void HealthService::reconcile(const std::shared_ptr<const Snapshot>& snapshot) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::map<std::string, std::unique_ptr<health::FarmProber>> next;
  std::vector<std::string> fleet_farms;
  for (size_t f = 0; f < snapshot->farms.size(); ++f) {
    std::string key = to_ascii_lower(snapshot->farms[f].config->name);
    health::ProbedFarm spec = make_probed_farm(snapshot, f);
    if (fleet_ != nullptr && spec.policy.active_probing) {
      // Not probing until the fleet says so (at most a lease TTL: then it probes alone).
      auto known = fleet_probing_.find(key);
      spec.probes_here = known != fleet_probing_.end() && known->second;
      FleetService* fleet = fleet_;
      spec.on_probe_transition = [fleet, key](const std::string& server, bool healthy,
                                              const std::string& reason) {
        fleet->publish_health(key, server, healthy, reason);
      };
      fleet_farms.push_back(key);
    }
    auto it = probers_.find(key);
    if (it != probers_.end()) {
      it->second->update(std::move(spec));
      next[key] = std::move(it->second);
      probers_.erase(it);
    } else {
      next[key] = std::make_unique<health::FarmProber>(std::move(spec));
    }
  }
  probers_ = std::move(next);  // farms no longer configured: their probers stop and join here
  if (fleet_ != nullptr) fleet_->set_farms(std::move(fleet_farms));
}

HealthService::CommandResult HealthService::command(const Snapshot& snapshot,
                                                    const std::string& farm,
                                                    const std::string& server,
                                                    health::AdminCommand command, bool publish) {
  std::lock_guard<std::mutex> lock(mutex_);
  const SnapshotFarm* runtime = nullptr;
  for (const SnapshotFarm& f : snapshot.farms) {
    if (iequals(f.config->name, farm)) runtime = &f;
  }
  auto it = probers_.find(to_ascii_lower(farm));
  if (runtime == nullptr || it == probers_.end()) return CommandResult::UnknownFarm;
  int matches = 0;
  std::string label;
  for (const ServerEndpoint& ep : runtime->servers) {
    if (iequals(ep.label, server) || iequals(ep.config->address, server)) {
      ++matches;
      label = ep.label;
    }
  }
  if (matches != 1) return CommandResult::UnknownServer;
  it->second->command(label, command);
  if (publish && fleet_ != nullptr) {
    fleet_->publish_admin(to_ascii_lower(farm), label, admin_command_name(command));
  }
  return CommandResult::Done;
}

}  // namespace harrow

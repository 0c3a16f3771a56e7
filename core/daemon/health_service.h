// Keeps exactly one FarmProber per farm name across the life of the process: created for new
// farms, updated in place on reload, stopped for farms a reload removed. Main thread, but for
// the fleet_* calls, which the fleet's thread makes (a mutex guards the probers' map).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/proxy/snapshot.h"
#include "health/farm_prober.h"

namespace harrow {

class FleetService;

class HealthService {
 public:
  // With a fleet (<harrow><fleet>): probers start without probing until the fleet says this
  // instance probes, their probes' transitions are published, admin commands too. Before the
  // first reconcile(); `fleet` outlives this service's probers.
  void attach_fleet(FleetService* fleet) { fleet_ = fleet; }

  // Makes the probers match `snapshot` (start-up and every reload).
  void reconcile(const std::shared_ptr<const Snapshot>& snapshot);

  enum class CommandResult { Done, UnknownFarm, UnknownServer };
  // Admin API: `server` is "address:port" or an address that names one server of the farm.
  // `publish`: given here by a person (admin API), so the fleet hears of it too.
  CommandResult command(const Snapshot& snapshot, const std::string& farm,
                        const std::string& server, health::AdminCommand command,
                        bool publish = false);

  size_t prober_count() const { return probers_.size(); }
  void stop_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    probers_.clear();
  }

  // The fleet's thread (FleetService::Hooks).
  void fleet_set_probing(const std::string& farm, bool probes_here, bool announce);
  void fleet_apply_health(const std::string& farm, const std::string& server, bool healthy,
                          const std::string& reason);
  void fleet_apply_admin(const std::string& farm, const std::string& server,
                         const std::string& command);

 private:
  std::mutex mutex_;  // probers_ and fleet_probing_, against the fleet's thread
  std::map<std::string, std::unique_ptr<health::FarmProber>> probers_;  // lower-case farm name
  FleetService* fleet_ = nullptr;
  std::map<std::string, bool> fleet_probing_;  // what the fleet last said, for new probers
};

// The admin command's name as the admin API and the fleet's admin keys spell it.
const char* admin_command_name(health::AdminCommand command);
std::optional<health::AdminCommand> admin_command_from_name(const std::string& name);

// What a farm's <healthCheck> means for its prober (exposed for tests).
health::ProbedFarm make_probed_farm(const std::shared_ptr<const Snapshot>& snapshot, size_t farm);

// Splits an http:// or https:// health-check URL into host header and path (`https` says
// which, when given); false for anything else.
bool split_health_url(const std::string& url, std::string& host_header, std::string& path,
                      bool* https = nullptr);

}  // namespace harrow

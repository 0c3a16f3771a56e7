// Keeps exactly one FarmProber per farm name across the life of the process: created for new
// farms, updated in place on reload, stopped for farms a reload removed. Main thread only.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "core/proxy/snapshot.h"
#include "health/farm_prober.h"

namespace harrow {

class HealthService {
 public:
  // Makes the probers match `snapshot` (start-up and every reload).
  void reconcile(const std::shared_ptr<const Snapshot>& snapshot);

  enum class CommandResult { Done, UnknownFarm, UnknownServer };
  // Admin API: `server` is "address:port" or an address that names one server of the farm.
  CommandResult command(const Snapshot& snapshot, const std::string& farm,
                        const std::string& server, health::AdminCommand command);

  size_t prober_count() const { return probers_.size(); }
  void stop_all() { probers_.clear(); }

 private:
  std::map<std::string, std::unique_ptr<health::FarmProber>> probers_;  // lower-case farm name
};

// What a farm's <healthCheck> means for its prober (exposed for tests).
health::ProbedFarm make_probed_farm(const std::shared_ptr<const Snapshot>& snapshot, size_t farm);

// Splits an http:// or https:// health-check URL into host header and path (`https` says
// which, when given); false for anything else.
bool split_health_url(const std::string& url, std::string& host_header, std::string& path,
                      bool* https = nullptr);

}  // namespace harrow

// Host-name affinity (ARR's useHostName with the HostNameRoundRobin provider, for shared
// hosting): each site (Host header) is pinned to a few servers of the farm, so a site's
// application stays warm on those servers only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "balancer/balancer.h"

namespace harrow::balancer {

// Shared by every worker thread of the process (one per farm): pick() takes a mutex.
class HostAffinity {
 public:
  // timeout_ns: a host unseen for this long forgets its servers (ARR's affinity timeout).
  // per_host_servers: ARR's <host name="…" servers="N"> (name case-insensitive, without port).
  // server_count: servers in the farm. default_servers: servers for any other host (ARR: 1).
  HostAffinity(uint64_t timeout_ns, std::vector<std::pair<std::string, uint32_t>> per_host_servers,
               size_t server_count, uint32_t default_servers = 1);

  // The server for a request to `host` (a Host header: case and port are ignored). On first
  // sight (or after the timeout) the host is allocated its N servers round robin over the
  // available ones, continuing where the previous allocation stopped; later requests go round
  // robin among its servers. An allocated server that is unavailable is replaced by the next
  // available one. nullopt when no server is available.
  std::optional<size_t> pick(std::string_view host, const AvailableServers& availability,
                             uint64_t now_ns);

  // Hosts currently remembered (expired ones are dropped at most once per timeout period).
  size_t hosts() const;

 private:
  struct Entry {
    std::vector<size_t> servers;
    size_t next = 0;  // round robin among `servers`
    uint64_t last_used_ns = 0;
  };

  static std::string normalize(std::string_view host);
  uint32_t servers_for(const std::string& host) const;
  std::optional<size_t> next_available(const AvailableServers& availability,
                                       const std::vector<size_t>& taken);
  void forget_idle(uint64_t now_ns);
  // Whether `timeout` has passed since `since` (worker clocks may be read slightly out of
  // order: an earlier `now` than `since` is no time at all).
  bool idle_for(uint64_t since, uint64_t now_ns) const {
    return now_ns > since && now_ns - since >= timeout_ns_;
  }

  mutable std::mutex mutex_;
  const uint64_t timeout_ns_;
  const size_t server_count_;
  const uint32_t default_servers_;
  std::unordered_map<std::string, uint32_t> per_host_servers_;  // normalized names
  std::unordered_map<std::string, Entry> entries_;
  size_t cursor_ = 0;  // where the next allocation starts
  uint64_t last_sweep_ns_ = 0;
};

}  // namespace harrow::balancer

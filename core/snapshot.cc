#include "core/snapshot.h"

#include <netdb.h>

#include <algorithm>
#include <cstring>

namespace harrow {
namespace {

bool resolve(const std::string& host, uint16_t port, sockaddr_storage& out, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  std::string service = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &result);
  if (rc != 0 || result == nullptr) {
    error = gai_strerror(rc);
    return false;
  }
  std::memcpy(&out, result->ai_addr, result->ai_addrlen);
  freeaddrinfo(result);
  return true;
}

std::string with_port(const std::string& host, uint16_t port) {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

namespace {

// Health and counters follow a server across a reload by identity, not by position.
void carry_over(Snapshot& next, const Snapshot& previous) {
  for (size_t f = 0; f < previous.farms.size(); ++f) {
    const FarmRuntime& old_farm = previous.farms[f];
    for (size_t s = 0; s < old_farm.servers.size(); ++s) {
      size_t nf, ns;
      if (!find_same_server(next, previous, f, s, nf, ns)) continue;
      FarmRuntime& farm = next.farms[nf];
      farm.health->share_slot(ns, *old_farm.health, s);
      farm.health->share_panic(*old_farm.health);
      size_t rows = std::min(farm.metrics.size(), old_farm.metrics.size());
      for (size_t w = 0; w < rows; ++w) farm.metrics[w][ns].add_from(old_farm.metrics[w][s]);
    }
  }
}

}  // namespace

bool find_same_server(const Snapshot& snapshot, const Snapshot& other, size_t farm, size_t server,
                      size_t& out_farm, size_t& out_server) {
  const FarmRuntime& theirs = other.farms[farm];
  const ServerEndpoint& target = theirs.servers[server];
  for (size_t f = 0; f < snapshot.farms.size(); ++f) {
    if (!iequals(snapshot.farms[f].config->name, theirs.config->name)) continue;
    for (size_t s = 0; s < snapshot.farms[f].servers.size(); ++s) {
      if (iequals(snapshot.farms[f].servers[s].label, target.label)) {
        out_farm = f;
        out_server = s;
        return true;
      }
    }
  }
  return false;
}

std::shared_ptr<const Snapshot> build_snapshot(std::shared_ptr<const config::Config> config,
                                               int workers, const Snapshot* previous,
                                               std::vector<std::string>& warnings) {
  auto snap = std::make_shared<Snapshot>();
  snap->config = config;
  snap->farms.reserve(config->farms.size());
  for (const config::FarmConfig& farm : config->farms) {
    FarmRuntime rt;
    rt.config = &farm;
    rt.health = std::make_shared<health::HealthTable>(farm.servers.size());
    // The loader validated the list, so parse() succeeds; "500-" is ARR's default.
    rt.live_failure_codes = health::StatusMatcher::parse(farm.health_check.live_traffic_failure_codes)
                                .value_or(*health::StatusMatcher::parse("500-"));
    for (size_t i = 0; i < farm.servers.size(); ++i) {
      const config::ServerConfig& server = farm.servers[i];
      ServerEndpoint ep;
      ep.config = &server;
      ep.label = with_port(server.address, server.http_port);
      ep.authority = server.http_port == 80 ? server.address : ep.label;
      std::string error;
      ep.resolved = resolve(server.address, server.http_port, ep.addr, error);
      if (!ep.resolved) {
        warnings.push_back("farm '" + farm.name + "': server '" + server.address +
                           "' does not resolve (" + error + "); it takes no traffic");
      }
      if (!farm.health_check.url.empty()) {
        const std::string& probe_host = server.health_check_alternate_host_name.empty()
                                            ? server.address
                                            : server.health_check_alternate_host_name;
        uint16_t probe_port = server.health_check_alternate_port != 0
                                  ? server.health_check_alternate_port
                                  : server.http_port;
        ep.probe_resolved = resolve(probe_host, probe_port, ep.probe_addr, error);
        if (!ep.probe_resolved) {
          warnings.push_back("farm '" + farm.name + "': health probes for '" + server.address +
                             "' go to '" + probe_host + "', which does not resolve (" + error +
                             ")");
        }
      }
      rt.servers.push_back(std::move(ep));
    }
    rt.metrics.reserve(static_cast<size_t>(workers));
    for (int w = 0; w < workers; ++w) rt.metrics.emplace_back(farm.servers.size());
    snap->farms.push_back(std::move(rt));
  }
  if (previous != nullptr) carry_over(*snap, *previous);
  snap->router = std::make_unique<Router>(*config);
  return snap;
}

}  // namespace harrow

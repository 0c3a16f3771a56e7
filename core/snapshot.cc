#include "core/snapshot.h"

#include <netdb.h>

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

std::shared_ptr<const Snapshot> build_snapshot(std::shared_ptr<const config::Config> config,
                                               std::vector<std::string>& warnings) {
  auto snap = std::make_shared<Snapshot>();
  snap->config = config;
  snap->farms.reserve(config->farms.size());
  for (const config::FarmConfig& farm : config->farms) {
    FarmRuntime rt;
    rt.config = &farm;
    rt.health = std::make_unique<health::HealthTable>(farm.servers.size());
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
      if (!server.enabled) {
        rt.health->store(i, true, health::Availability::Unavailable);
      }
      rt.servers.push_back(std::move(ep));
    }
    snap->farms.push_back(std::move(rt));
  }
  snap->router = std::make_unique<Router>(*config);
  return snap;
}

}  // namespace harrow

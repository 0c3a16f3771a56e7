// What a loaded configuration becomes at run time, shared read-only by all workers: each
// farm's servers with their socket addresses, the farm's health table, and the compiled rules.
// Built on the main thread; a worker holds it by shared_ptr for as long as it uses it.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/router.h"
#include "health/health_table.h"

namespace harrow {

struct ServerEndpoint {
  const config::ServerConfig* config = nullptr;
  std::string label;  // "address:port", as logs and metrics name the server
  std::string authority;  // Host header value when the client's Host is not preserved
  sockaddr_storage addr{};
  bool resolved = false;
};

struct FarmRuntime {
  const config::FarmConfig* config = nullptr;
  std::vector<ServerEndpoint> servers;
  std::unique_ptr<health::HealthTable> health;
};

struct Snapshot {
  std::shared_ptr<const config::Config> config;
  std::vector<FarmRuntime> farms;
  std::unique_ptr<Router> router;
};

// Resolves every server address (blocking: call it on the main thread). A server whose name
// does not resolve stays in the farm as unavailable, with a warning in `warnings`.
std::shared_ptr<const Snapshot> build_snapshot(std::shared_ptr<const config::Config> config,
                                               std::vector<std::string>& warnings);

}  // namespace harrow

// What a loaded configuration becomes at run time, shared read-only by all workers: each
// farm's servers with their socket addresses, the farm's health table, and the compiled rules.
// Built on the main thread; a worker holds it by shared_ptr for as long as it uses it.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "balancer/affinity.h"
#include "balancer/balancer.h"
#include "balancer/host_affinity.h"
#include "config/config.h"
#include "core/cache/cache.h"
#include "core/proxy/affinity_cookie.h"
#include "core/proxy/farm_hash_key.h"
#include "core/proxy/metrics.h"
#include "core/rewrite/router.h"
#include "core/rewrite/sites.h"
#include "core/tls/tls_context.h"
#include "health/health_table.h"
#include "health/status_match.h"

namespace harrow {

struct ServerEndpoint {
  const config::ServerConfig* config = nullptr;
  std::string label;      // "address:port", as logs and metrics name the server
  std::string authority;  // Host header value when the client's Host is not preserved
  sockaddr_storage addr{};
  bool resolved = false;
  // For rewrites to https://FARM/: the httpsPort, the Host sent, and the name the server's
  // certificate must carry (SNI; hostName when set, else the address).
  sockaddr_storage tls_addr{};
  std::string tls_authority;
  std::string tls_name;
  // Where health probes go: the server, or its healthCheckAlternateHostName/Port.
  sockaddr_storage probe_addr{};
  bool probe_resolved = false;
};

// One farm has one type per place that holds it:
//   config::FarmConfig      the <webFarm> as the file says it (plain data);
//   SnapshotFarm            resolved for a snapshot and shared by every worker (below);
//   WorkerFarm              one worker's own state for it (balancer, idle pools; worker.h);
//   balancer::BalancedFarm  what a balancer is built from (balanced_farm() below);
//   health::ProbedFarm      what the farm's prober is given (health/farm_prober.h).
struct SnapshotFarm {
  const config::FarmConfig* config = nullptr;
  bool http2 = false;  // <upstreamHttp2>: the servers are spoken to over HTTP/2
  std::vector<ServerEndpoint> servers;
  std::shared_ptr<health::HealthTable> health;  // shared with the farm's prober
  // liveTrafficFailureCodes: responses with these statuses count against a server's health.
  health::StatusMatcher live_failure_codes;
  // Counters per worker, per server: [worker][server]. Each worker writes only its own row,
  // the admin thread sums the rows.
  // mutable: counters change while the configuration they describe does not.
  mutable std::vector<std::vector<ServerMetrics>> metrics;
  // Cookie affinity (useCookie): cookie value <-> server, and the Set-Cookie fields.
  std::unique_ptr<const balancer::AffinityIndex> affinity_index;
  std::unique_ptr<const AffinityCookies> affinity_cookies;
  // Host-name affinity (useHostName): which servers each Host is pinned to, shared by every
  // worker (it takes a lock; only farms that ask for it pay for it).
  std::unique_ptr<balancer::HostAffinity> host_affinity;
  // RequestHash farms: what each request hashes.
  std::unique_ptr<const FarmHashKey> hash_key;
};

// The balancer's spec of a farm: ARR's algorithm, its options, and its servers in order.
balancer::BalancedFarm balanced_farm(const SnapshotFarm& farm);

struct Snapshot {
  std::shared_ptr<const config::Config> config;
  // The file's farms, then one implicit farm per <proxy enabled="true"> target (below).
  std::vector<SnapshotFarm> farms;
  std::deque<config::FarmConfig> proxy_farms;  // deque: SnapshotFarm points into it
  // Index in `farms` of the implicit farm for `authority` ("host[:port]"), or -1.
  int proxy_farm(std::string_view authority) const;
  std::unique_ptr<Router> router;
  std::unique_ptr<SiteTable> sites;
  // https listeners' certificates and upstream https settings (null: none configured).
  std::shared_ptr<const tls::ServerContexts> tls_server;
  std::shared_ptr<const tls::ClientContexts> tls_client;
  // The response cache every cached farm shares (null: no farm caches). A reload keeps the
  // previous one, entries and all, while <memoryCache> stays the same.
  std::shared_ptr<cache::Cache> cache;
};

// The TLS contexts a configuration needs, built (and its files checked) before the snapshot.
struct TlsContexts {
  std::shared_ptr<const tls::ServerContexts> server;
  std::shared_ptr<const tls::ClientContexts> client;
};

// Resolves every server address (blocking: call it on the main thread). A server whose name
// does not resolve stays in the farm as unavailable, with a warning in `warnings`. With a
// `previous` snapshot (a reload), servers with the same farm name, address and port keep their
// health state and counters. `resolve` false (--explain): no name is looked up, no server is
// marked resolved, and nothing touches the network.
std::shared_ptr<const Snapshot> build_snapshot(std::shared_ptr<const config::Config> config,
                                               int workers, const Snapshot* previous,
                                               std::vector<std::string>& warnings,
                                               TlsContexts tls = {}, bool resolve = true);

// The server in `snapshot` that is the same server as farm `farm`, server `server` of `other`
// (same farm name, address and port), or false.
bool find_same_server(const Snapshot& snapshot, const Snapshot& other, size_t farm, size_t server,
                      size_t& out_farm, size_t& out_server);

}  // namespace harrow

#include "core/proxy/snapshot.h"

#include "core/base/ascii.h"
#include "core/http1/http_head.h"

#include <netdb.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace harrow {
namespace {

bool resolve_name(const std::string& host, uint16_t port, sockaddr_storage& out,
                  std::string& error) {
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

// "http://host:port/x" or "host:port" → "host:port" (lower-cased); empty when the authority
// is computed per request (contains a {reference}) or the URL is https.
std::string static_authority(std::string_view url) {
  if (url.size() >= 7 && iequals(url.substr(0, 7), "http://")) {
    url.remove_prefix(7);
  } else if (url.find("://") != std::string_view::npos) {
    return {};
  }
  std::string_view authority = url.substr(0, url.find_first_of("/?#"));
  if (authority.empty() || authority.find('{') != std::string_view::npos) return {};
  return to_ascii_lower(authority);
}

}  // namespace

// With <proxy enabled="true">, a rule may rewrite to a host that is no farm (ARR's plain
// reverse proxy). Each such host known when the file loads — written in a rule (global, server
// or site), or a value of
// a rewrite map (the CDN pattern http://{Map:{HTTP_HOST}}/…) — becomes a one-server farm
// with the global <proxy> protocol settings, so it is resolved once, pooled, counted and
// health-checked like any farm. Hosts computed from the request alone are refused (502), never
// resolved per request: Harrow is not an open proxy.
void add_proxy_farms(const config::Config& config, Snapshot& snap) {
  if (!config.global_proxy_enabled) return;
  std::vector<std::string> authorities;
  auto consider = [&](std::string_view url) {
    std::string authority = static_authority(url);
    if (authority.empty() || config.find_farm(authority) != nullptr) return;
    if (std::find(authorities.begin(), authorities.end(), authority) == authorities.end()) {
      authorities.push_back(authority);
    }
  };
  // Every rule set proxies alike: global, server-level <rules>, and each site's own (the
  // walkthroughs write their reverse-proxy rules in a site's web.config).
  auto consider_rules = [&](const std::vector<config::RuleConfig>& rules) {
    for (const config::RuleConfig& rule : rules) {
      if (rule.action == config::ActionType::Rewrite) consider(rule.action_url);
    }
  };
  consider_rules(config.global_rules);
  consider_rules(config.distributed_rules);
  for (const config::SiteConfig& site : config.sites) consider_rules(site.rules);
  for (const config::RewriteMapConfig& map : config.rewrite_maps) {
    for (const auto& entry : map.entries) consider(entry.second);
    consider(map.default_value);
  }
  for (const std::string& authority : authorities) {
    config::FarmConfig farm;
    farm.name = authority;
    farm.protocol = config.global_proxy;
    config::ServerConfig server;
    size_t colon = authority.rfind(':');
    bool has_port = colon != std::string::npos && authority.find(']', colon) == std::string::npos;
    server.address = authority.substr(0, has_port ? colon : std::string::npos);
    if (server.address.size() > 2 && server.address.front() == '[') {
      server.address = server.address.substr(1, server.address.size() - 2);
    }
    if (has_port) {
      unsigned port = 0;
      std::from_chars(authority.data() + colon + 1, authority.data() + authority.size(), port);
      if (port == 0 || port > 65535) continue;
      server.http_port = static_cast<uint16_t>(port);
    }
    farm.servers.push_back(server);
    snap.proxy_farms.push_back(std::move(farm));
  }
}

int Snapshot::proxy_farm(std::string_view authority) const {
  size_t first = farms.size() - proxy_farms.size();
  for (size_t i = first; i < farms.size(); ++i) {
    if (iequals(farms[i].config->name, authority)) return static_cast<int>(i);
  }
  // "host" and "host:80" name the same target.
  if (authority.find(':') == std::string_view::npos) {
    for (size_t i = first; i < farms.size(); ++i) {
      std::string_view name = farms[i].config->name;
      if (name.size() == authority.size() + 3 &&
          iequals(name.substr(0, authority.size()), authority) &&
          name.substr(authority.size()) == ":80") {
        return static_cast<int>(i);
      }
    }
  }
  return -1;
}

namespace {

// Health and counters follow a server across a reload by identity, not by position.
void carry_over(Snapshot& next, const Snapshot& previous) {
  for (size_t f = 0; f < previous.farms.size(); ++f) {
    const SnapshotFarm& old_farm = previous.farms[f];
    for (size_t s = 0; s < old_farm.servers.size(); ++s) {
      size_t nf, ns;
      if (!find_same_server(next, previous, f, s, nf, ns)) continue;
      SnapshotFarm& farm = next.farms[nf];
      farm.health->share_server(ns, *old_farm.health, s);
      farm.health->share_panic(*old_farm.health);
      size_t rows = std::min(farm.metrics.size(), old_farm.metrics.size());
      for (size_t w = 0; w < rows; ++w) farm.metrics[w][ns].add_from(old_farm.metrics[w][s]);
    }
  }
}

// What the farm's <affinity> and <loadBalancing> need at run time beyond the balancer itself.
void add_balancing_state(const config::FarmConfig& farm, SnapshotFarm& rt) {
  const config::AffinityConfig& affinity = farm.affinity;
  if (affinity.use_cookie) {
    std::vector<std::string> hosts;
    for (const config::ServerConfig& server : farm.servers) hosts.push_back(server.address);
    auto index = std::make_unique<balancer::AffinityIndex>(hosts);
    std::vector<std::string> values;
    for (size_t i = 0; i < hosts.size(); ++i) values.push_back(index->value(i));
    rt.affinity_cookies = std::make_unique<AffinityCookies>(affinity, values);
    rt.affinity_index = std::move(index);
  }
  if (affinity.use_host_name) {
    std::vector<std::pair<std::string, uint32_t>> per_host;
    for (const auto& host : affinity.hosts) per_host.emplace_back(host.name, host.servers);
    rt.host_affinity = std::make_unique<balancer::HostAffinity>(
        static_cast<uint64_t>(affinity.timeout.count()) * 1'000'000, std::move(per_host),
        farm.servers.size());
  }
  if (farm.load_balancing.algorithm == balancer::Algorithm::RequestHash) {
    rt.hash_key = std::make_unique<FarmHashKey>(farm.load_balancing);
  }
}

}  // namespace

bool find_same_server(const Snapshot& snapshot, const Snapshot& other, size_t farm, size_t server,
                      size_t& out_farm, size_t& out_server) {
  const SnapshotFarm& theirs = other.farms[farm];
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
                                               std::vector<std::string>& warnings, TlsContexts tls,
                                               bool resolve) {
  auto snap = std::make_shared<Snapshot>();
  snap->tls_server = std::move(tls.server);
  snap->tls_client = std::move(tls.client);
  snap->config = config;
  add_proxy_farms(*config, *snap);
  std::vector<const config::FarmConfig*> farms;
  for (const config::FarmConfig& farm : config->farms) farms.push_back(&farm);
  for (const config::FarmConfig& farm : snap->proxy_farms) farms.push_back(&farm);
  snap->farms.reserve(farms.size());
  for (const config::FarmConfig* farm_ptr : farms) {
    const config::FarmConfig& farm = *farm_ptr;
    SnapshotFarm rt;
    rt.config = &farm;
    rt.http2 = config->farm_speaks_http2(farm.name);
    rt.health = std::make_shared<health::HealthTable>(farm.servers.size());
    // The loader validated the list, so parse() succeeds; "500-" is ARR's default.
    rt.live_failure_codes =
        health::StatusMatcher::parse(farm.health_check.live_traffic_failure_codes)
            .value_or(*health::StatusMatcher::parse("500-"));
    for (size_t i = 0; i < farm.servers.size(); ++i) {
      const config::ServerConfig& server = farm.servers[i];
      ServerEndpoint ep;
      ep.config = &server;
      ep.label = with_port(server.address, server.http_port);
      ep.authority = server.http_port == 80 ? server.address : ep.label;
      std::string error;
      ep.resolved = resolve && resolve_name(server.address, server.http_port, ep.addr, error);
      if (ep.resolved) {
        ep.tls_addr = ep.addr;
        uint16_t port = htons(server.https_port);
        if (ep.tls_addr.ss_family == AF_INET6) {
          reinterpret_cast<sockaddr_in6*>(&ep.tls_addr)->sin6_port = port;
        } else {
          reinterpret_cast<sockaddr_in*>(&ep.tls_addr)->sin_port = port;
        }
      }
      ep.tls_authority =
          server.https_port == 443 ? server.address : with_port(server.address, server.https_port);
      ep.tls_name = server.host_name.empty() ? server.address : server.host_name;
      if (!ep.resolved && resolve) {
        warnings.push_back("farm '" + farm.name + "': server '" + server.address +
                           "' does not resolve (" + error + "); it takes no traffic");
      }
      if (resolve && !farm.health_check.url.empty()) {
        const std::string& probe_host = server.health_check_alternate_host_name.empty()
                                            ? server.address
                                            : server.health_check_alternate_host_name;
        bool https_probe = farm.health_check.url.size() > 8 &&
                           (farm.health_check.url.compare(0, 8, "https://") == 0 ||
                            farm.health_check.url.compare(0, 8, "HTTPS://") == 0);
        uint16_t probe_port = server.health_check_alternate_port != 0
                                  ? server.health_check_alternate_port
                              : https_probe ? server.https_port
                                            : server.http_port;
        ep.probe_resolved = resolve_name(probe_host, probe_port, ep.probe_addr, error);
        if (!ep.probe_resolved) {
          warnings.push_back("farm '" + farm.name + "': health probes for '" + server.address +
                             "' go to '" + probe_host + "', which does not resolve (" + error +
                             ")");
        }
      }
      rt.servers.push_back(std::move(ep));
    }
    add_balancing_state(farm, rt);
    rt.metrics.reserve(static_cast<size_t>(workers));
    for (int w = 0; w < workers; ++w) rt.metrics.emplace_back(farm.servers.size());
    snap->farms.push_back(std::move(rt));
  }
  if (previous != nullptr) carry_over(*snap, *previous);
  snap->router = std::make_unique<Router>(*config);
  bool caching = false;
  for (const config::FarmConfig& farm : config->farms) caching = caching || farm.cache.active();
  if (caching) {
    const config::MemoryCacheConfig& m = config->memory_cache;
    size_t bytes = static_cast<size_t>(m.max_cache_size_mb) << 20;
    size_t max_object = static_cast<size_t>(m.max_response_size);
    const config::DiskCacheConfig& d = config->disk_cache;
    const cache::Cache* old = previous != nullptr ? previous->cache.get() : nullptr;
    bool same_disk =
        old != nullptr && (old->disk() == nullptr ? d.path.empty()
                                                  : old->disk()->directory() == d.path &&
                                                        old->disk()->max_bytes() == d.max_bytes());
    if (old != nullptr && old->memory().capacity() == bytes &&
        old->memory().max_object() == max_object && same_disk) {
      snap->cache = previous->cache;
    } else if (resolve) {
      // (--explain builds a snapshot too; it touches no disk.)
      snap->cache = std::make_shared<cache::Cache>(bytes, max_object);
      if (!d.path.empty()) {
        auto disk = std::make_unique<cache::DiskTier>(d.path, d.max_bytes(), d.low_watermark,
                                                      d.high_watermark);
        std::string error;
        if (disk->open(error)) {
          snap->cache->attach_disk(std::move(disk));
        } else {
          warnings.push_back(error + "; caching in memory only");
        }
      }
    }
  }
  snap->sites = std::make_unique<SiteTable>(*config);
  return snap;
}

balancer::BalancedFarm balanced_farm(const SnapshotFarm& farm) {
  const config::LoadBalancingConfig& lb = farm.config->load_balancing;
  balancer::BalancedFarm spec;
  spec.algorithm = lb.algorithm;
  spec.randomize_ties = lb.randomize_lb_ties;
  spec.response_time_period_ns =
      static_cast<uint64_t>(lb.least_response_time_period.count()) * 1'000'000;
  spec.hash_balance_factor = lb.hash_balance_factor;
  for (const ServerEndpoint& s : farm.servers) {
    spec.servers.push_back(
        {s.config->address + ":" + std::to_string(s.config->http_port), s.config->weight});
  }
  return spec;
}

}  // namespace harrow

#include "core/daemon/capabilities.h"

#include <arpa/inet.h>

#include "core/base/ascii.h"
#include "core/proxy/farm_hash_key.h"

namespace harrow {

namespace {

bool is_ip_literal(const std::string& address) {
  unsigned char buffer[sizeof(in6_addr)];
  std::string bare = address;
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']')
    bare = bare.substr(1, bare.size() - 2);
  return inet_pton(AF_INET, bare.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, bare.c_str(), buffer) == 1;
}

}  // namespace

std::string migration_report(const config::Config& config) {
  std::string out = "runs as: ";
  if (!config.run_as.user.empty()) {
    out += "user " + config.run_as.user +
           (config.run_as.group.empty() ? "" : " group " + config.run_as.group) +
           " (after binding, when started as root)\n";
  } else if (config.run_as.allow_root) {
    out += "the starting user, root allowed (allowRunAsRoot=\"true\")\n";
  } else {
    out += "the starting user; as root only on loopback addresses (<harrow user=...> to drop)\n";
  }
  out += "state file: " + (config.state_file.empty() ? std::string("(none)") : config.state_file) +
         "\n";

  std::vector<std::string> differences = {
      "a farm with no available server: 503 (reason no_server) where ARR answers 502.4",
      "an upstream that does not answer within the protocol timeout: 504 (upstream_timeout) "
      "where ARR answers 502.3 (12002)",
      "an upstream that refuses, resets or times out the connection: 502 with the reason "
      "(upstream_connect_refused, upstream_reset, ...) in the access log and metrics",
      "a request no rule sends to a farm: 404 (no_route); IIS would serve it from the site",
  };
  size_t probed = 0, host_names = 0;
  for (const config::FarmConfig& farm : config.farms) {
    if (!farm.health_check.url.empty()) ++probed;
    for (const config::ServerConfig& server : farm.servers) {
      if (!is_ip_literal(server.address)) ++host_names;
    }
  }
  if (probed > 0) {
    differences.push_back(
        std::to_string(probed) +
        " farm(s) with a healthCheck url: probed by one prober per farm, not once per "
        "application pool; a failing server is logged once per state change, not per probe");
  }
  if (host_names > 0) {
    differences.push_back(std::to_string(host_names) +
                          " server address(es) are host names: resolved when the configuration "
                          "is loaded or reloaded (SIGHUP), not per connection");
  }
  // Rules that read a <providers> provider: IIS runs the provider's .NET code, Harrow none.
  auto never_matches = [&](const std::string& kind, const std::string& name,
                           const std::string& provider) {
    differences.push_back(kind + " '" + name + "' reads rewrite provider '" + provider +
                          "': providers are not run, so it never matches");
  };
  auto rules_with_providers = [&](const std::vector<config::RuleConfig>& rules) {
    for (const config::RuleConfig& r : rules) {
      if (r.enabled && !r.provider.empty()) never_matches("rule", r.name, r.provider);
    }
  };
  auto outbound_with_providers = [&](const config::OutboundConfig& out) {
    for (const config::OutboundRuleConfig& r : out.rules) {
      std::string provider = r.provider;
      for (const config::PreConditionConfig& p : out.pre_conditions) {
        if (provider.empty() && iequals(p.name, r.pre_condition)) provider = p.provider;
      }
      if (r.enabled && !provider.empty()) never_matches("outbound rule", r.name, provider);
    }
  };
  rules_with_providers(config.global_rules);
  rules_with_providers(config.distributed_rules);
  outbound_with_providers(config.outbound);
  for (const config::SiteConfig& site : config.sites) {
    rules_with_providers(site.rules);
    outbound_with_providers(site.outbound);
  }
  differences.push_back(
      "only this file is read: URL Rewrite rules in a site's own web.config belong in "
      "<location path=\"SITE\"> here");
  out += "differs from ARR (" + std::to_string(differences.size()) + "):\n";
  for (const std::string& line : differences) out += "  " + line + "\n";
  return out;
}

std::vector<std::string> features_not_acted_on(const config::Config& config) {
  std::vector<std::string> out;
  for (const config::FarmConfig& farm : config.farms) {
    const std::string where = "farm '" + farm.name + "': ";
    const config::LoadBalancingConfig& lb = farm.load_balancing;
    if (lb.algorithm == balancer::Algorithm::RequestHash && !lb.hash_server_variable.empty() &&
        !FarmHashKey::knows_variable(lb.hash_server_variable)) {
      out.push_back(where + "loadBalancing hashServerVariable=\"" + lb.hash_server_variable +
                    "\" (not a server variable Harrow has: the URL is hashed instead)");
    }
    if (farm.protocol.http_version != config::HttpVersionMode::PassThrough &&
        farm.protocol.http_version != config::HttpVersionMode::Http11) {
      out.push_back(where + "protocol httpVersion=\"Http10\" (requests go upstream as HTTP/1.1)");
    }
  }
  // The server-level <proxy> is the protocol of every rewrite to a host that is not a farm.
  if (config.global_proxy.http_version == config::HttpVersionMode::Http10) {
    out.push_back(
        "<system.webServer><proxy httpVersion=\"Http10\"> (requests go upstream as HTTP/1.1)");
  }
  if (config.certificates.empty()) {
    for (const config::ListenConfig& l : config.listeners) {
      if (l.tls) {
        out.push_back("listener " + l.address +
                      " with TLS (no <harrow><certificate> for it: skipped)");
      }
    }
  }
  return out;
}

namespace {

// "IP:PORT" / "[V6]:PORT" → (IP, port).
bool split_listen(const std::string& address, std::string& ip, unsigned& port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  ip = address.substr(0, colon);
  if (ip.size() > 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  port = 0;
  for (size_t i = colon + 1; i < address.size(); ++i) {
    if (address[i] < '0' || address[i] > '9') return false;
    port = port * 10 + static_cast<unsigned>(address[i] - '0');
  }
  return true;
}

bool is_loopback_name(const std::string& a) {
  return a == "localhost" || a == "::1" || a.rfind("127.", 0) == 0;
}

}  // namespace

std::vector<std::string> binding_loop_warnings(const config::Config& config) {
  std::vector<std::string> out;
  for (const config::SiteConfig& site : config.sites) {
    for (const config::SiteBindingConfig& b : site.bindings) {
      std::string ip;
      unsigned port = 0;
      if (!split_listen(b.address, ip, port)) continue;
      bool any = ip == "0.0.0.0" || ip == "::" || ip.empty();
      for (const config::FarmConfig& farm : config.farms) {
        for (const config::ServerConfig& server : farm.servers) {
          unsigned server_port = b.https ? server.https_port : server.http_port;
          if (server_port != port) continue;
          std::string address = to_ascii_lower(server.address);
          bool same = address == ip || (any && is_loopback_name(address)) ||
                      (is_loopback_name(ip) && address == "localhost");
          if (!same) continue;
          out.push_back("site '" + site.name + "' binding " + b.address + " is also farm '" +
                        farm.name + "' server " + server.address + ":" + std::to_string(port) +
                        ": Harrow listens there itself, so what the farm sends to that server "
                        "comes back to Harrow (a loop); for blue/green on one host give the "
                        "backends their own ports");
        }
      }
    }
  }
  return out;
}

}  // namespace harrow

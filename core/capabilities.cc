#include "core/capabilities.h"

#include "core/request_hash.h"

namespace harrow {

std::vector<std::string> features_not_acted_on(const config::Config& config) {
  std::vector<std::string> out;
  for (const config::FarmConfig& farm : config.farms) {
    const std::string where = "farm '" + farm.name + "': ";
    std::string_view url = farm.health_check.url;
    if (url.size() >= 8 && (url.substr(0, 8) == "https://" || url.substr(0, 8) == "HTTPS://")) {
      out.push_back(where + "healthCheck url=\"" + farm.health_check.url +
                    "\" (https probes need upstream TLS, not built yet: no active probing)");
    }
    const config::LoadBalancingConfig& lb = farm.load_balancing;
    if (lb.algorithm == config::Algorithm::RequestHash && !lb.hash_server_variable.empty() &&
        !RequestHashKey::knows_variable(lb.hash_server_variable)) {
      out.push_back(where + "loadBalancing hashServerVariable=\"" + lb.hash_server_variable +
                    "\" (not a server variable Harrow has: the URL is hashed instead)");
    }
    if (farm.protocol.http_version != config::HttpVersionMode::PassThrough &&
        farm.protocol.http_version != config::HttpVersionMode::Http11) {
      out.push_back(where + "protocol httpVersion=\"Http10\" (requests go upstream as HTTP/1.1)");
    }
  }
  for (const config::RuleConfig& rule : config.global_rules) {
    std::string_view url = rule.action_url;
    if (rule.action == config::ActionType::Rewrite && url.size() > 8 &&
        (url.substr(0, 8) == "https://" || url.substr(0, 8) == "HTTPS://")) {
      out.push_back("rule '" + rule.name +
                    "': rewrite to https:// (no upstream TLS yet: answered 502 "
                    "upstream_tls_unavailable)");
    }
  }
  for (const config::ListenConfig& l : config.listeners) {
    if (l.tls) out.push_back("listener " + l.address + " with TLS (not built yet: skipped)");
  }
  return out;
}

}  // namespace harrow

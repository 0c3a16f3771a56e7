#include "core/rewrite/sites.h"

#include "core/base/ascii.h"

namespace harrow {
namespace {

std::string_view without_port(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  return host.substr(0, host.find(':'));
}

}  // namespace

int SiteTable::match(std::string_view listener_address, std::string_view host) const {
  host = without_port(host);
  int on_listener_any_host = -1;
  int elsewhere_same_host = -1;
  int elsewhere_any_host = -1;
  bool listener_named = false;
  for (size_t i = 0; i < config_.sites.size(); ++i) {
    for (const config::SiteBindingConfig& b : config_.sites[i].bindings) {
      bool same_host = !b.host.empty() && iequals(b.host, host);
      if (b.address == listener_address) {
        listener_named = true;
        if (same_host) return static_cast<int>(i);
        if (b.host.empty() && on_listener_any_host < 0) on_listener_any_host = static_cast<int>(i);
      } else if (same_host && elsewhere_same_host < 0) {
        elsewhere_same_host = static_cast<int>(i);
      } else if (b.host.empty() && elsewhere_any_host < 0) {
        elsewhere_any_host = static_cast<int>(i);
      }
    }
  }
  if (listener_named) return on_listener_any_host;
  return elsewhere_same_host >= 0 ? elsewhere_same_host : elsewhere_any_host;
}

}  // namespace harrow

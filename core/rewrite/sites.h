// Which IIS site a request belongs to, by its listener and Host, as IIS matches bindings: on
// the listener's own address a binding for the request's host name beats one without a host.
// Listeners that no site binding names (--listen, <harrow><listen>) serve every site: by host
// name, else the first site with a binding for any host.
#pragma once

#include <string_view>

#include "config/config.h"

namespace harrow {

class SiteTable {
 public:
  explicit SiteTable(const config::Config& config) : config_(config) {}

  // Index into Config::sites, or -1 when no site matches (then only server-level rules run).
  // `host` may carry a port, which is ignored.
  int match(std::string_view listener_address, std::string_view host) const;

 private:
  const config::Config& config_;
};

}  // namespace harrow

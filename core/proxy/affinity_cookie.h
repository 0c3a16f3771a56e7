// Cookie affinity on the wire (ARR's <affinity useCookie="true">): the Set-Cookie values a
// farm hands out for each server, built once per config snapshot, and finding the affinity
// value in a request's Cookie headers.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/http1/http_head.h"

namespace harrow {

class AffinityCookies {
 public:
  // `values`: each server's cookie value (balancer::AffinityIndex::value), in server order.
  AffinityCookies(const config::AffinityConfig& affinity, const std::vector<std::string>& values);

  // The Set-Cookie field values that pin a client to `server`: "NAME=VALUE; Path=/; HttpOnly"
  // with the configured Domain / Max-Age / Secure / SameSite, and with sameSite="None" also
  // the "NAMESameSite" twin App Service sends (the first cookie then carries no SameSite, for
  // browsers that reject SameSite=None).
  const std::vector<std::string>& set_cookie(size_t server) const { return set_cookie_[server]; }

  // The value of this farm's affinity cookie in `head` (either name), or empty. A request may
  // carry several Cookie fields; the first cookie with the name wins.
  std::string_view find(const MessageHead& head) const;

  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::string same_site_name_;  // NAME + "SameSite", or empty
  std::vector<std::vector<std::string>> set_cookie_;
};

// The value of cookie `name` in one Cookie field value ("a=1; b=2"), and whether it was there.
bool find_cookie(std::string_view cookies, std::string_view name, std::string_view& value);

}  // namespace harrow

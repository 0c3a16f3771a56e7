#include "core/proxy/affinity_cookie.h"

#include "core/base/ascii.h"

namespace harrow {

AffinityCookies::AffinityCookies(const config::AffinityConfig& affinity,
                                 const std::vector<std::string>& values)
    : name_(affinity.cookie_name) {
  // Never a port in Domain: browsers drop such cookies, and affinity silently stops working.
  std::string domain = affinity.domain;
  if (size_t colon = domain.find(':'); colon != std::string::npos) domain.resize(colon);
  std::string common = "; Path=/; HttpOnly";
  if (!domain.empty()) common += "; Domain=" + domain;
  if (affinity.max_age.count() > 0) {
    common += "; Max-Age=" + std::to_string(affinity.max_age.count() / 1000);
  }
  bool none = affinity.same_site == config::SameSite::None;
  if (none) same_site_name_ = name_ + "SameSite";
  for (const std::string& value : values) {
    std::vector<std::string>& fields = set_cookie_.emplace_back();
    std::string first = name_ + "=" + value + common;
    if (affinity.secure) first += "; Secure";
    if (affinity.same_site == config::SameSite::Lax) first += "; SameSite=Lax";
    if (affinity.same_site == config::SameSite::Strict) first += "; SameSite=Strict";
    fields.push_back(std::move(first));
    // Browsers accept SameSite=None only with Secure.
    if (none) fields.push_back(same_site_name_ + "=" + value + common + "; SameSite=None; Secure");
  }
}

bool find_cookie(std::string_view cookies, std::string_view name, std::string_view& value) {
  while (!cookies.empty()) {
    size_t semi = cookies.find(';');
    std::string_view pair = cookies.substr(0, semi);
    while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) pair.remove_prefix(1);
    size_t eq = pair.find('=');
    if (eq != std::string_view::npos) {
      std::string_view key = pair.substr(0, eq);
      while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.remove_suffix(1);
      if (key == name) {  // cookie names are case-sensitive
        value = pair.substr(eq + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
          value.remove_prefix(1);
        }
        while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
          value.remove_suffix(1);
        }
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
          value = value.substr(1, value.size() - 2);
        }
        return true;
      }
    }
    if (semi == std::string_view::npos) break;
    cookies.remove_prefix(semi + 1);
  }
  return false;
}

std::string_view AffinityCookies::find(const MessageHead& head) const {
  std::string_view value;
  for (const HeaderField& f : head.fields()) {
    if (!iequals(f.name, "cookie")) continue;
    if (find_cookie(f.value, name_, value)) return value;
    if (!same_site_name_.empty() && find_cookie(f.value, same_site_name_, value)) return value;
  }
  return {};
}

}  // namespace harrow

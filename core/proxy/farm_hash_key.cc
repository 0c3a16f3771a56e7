#include "core/proxy/farm_hash_key.h"

#include <charconv>

#include "balancer/balancer.h"
#include "core/base/ascii.h"

namespace harrow {
namespace {

std::string_view query_of(std::string_view target) {
  size_t q = target.find('?');
  return q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
}

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

// The raw value of parameter `name` in `query` ("a=1&b=2"); names compare without case, as
// IIS treats them. Empty when absent.
std::string_view query_value(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (iequals(pair.substr(0, eq), name)) {
      return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

}  // namespace

bool FarmHashKey::knows_variable(std::string_view name) {
  static constexpr std::string_view kBuiltins[] = {
      "URL",         "PATH_INFO",   "REQUEST_URI",    "UNENCODED_URL", "QUERY_STRING", "HTTP_HOST",
      "REMOTE_ADDR", "REMOTE_HOST", "REQUEST_METHOD", "SERVER_PORT",   "HTTPS"};
  for (std::string_view b : kBuiltins) {
    if (iequals(name, b)) return true;
  }
  return name.size() > 5 && istarts_with(name, "HTTP_");
}

FarmHashKey::FarmHashKey(const config::LoadBalancingConfig& balancing) {
  std::string_view v = balancing.hash_server_variable;
  if (v.empty() || !knows_variable(v) || iequals(v, "REQUEST_URI") || iequals(v, "UNENCODED_URL")) {
    source_ = Source::Url;
  } else if (iequals(v, "QUERY_STRING")) {
    // "Query string hash": only the named parameters, when names are given.
    std::string_view names = balancing.query_string_names;
    while (!names.empty()) {
      size_t comma = names.find(',');
      std::string_view name = names.substr(0, comma);
      while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
      while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
      if (!name.empty()) query_names_.emplace_back(name);
      if (comma == std::string_view::npos) break;
      names.remove_prefix(comma + 1);
    }
    source_ = query_names_.empty() ? Source::QueryString : Source::QueryNames;
  } else if (iequals(v, "URL") || iequals(v, "PATH_INFO")) {
    source_ = Source::Path;
  } else if (iequals(v, "HTTP_HOST")) {
    source_ = Source::Host;
  } else if (iequals(v, "REMOTE_ADDR") || iequals(v, "REMOTE_HOST")) {
    source_ = Source::RemoteAddr;
  } else if (iequals(v, "REQUEST_METHOD")) {
    source_ = Source::Method;
  } else if (iequals(v, "SERVER_PORT")) {
    source_ = Source::ServerPort;
  } else if (iequals(v, "HTTPS")) {
    source_ = Source::Https;
  } else {
    source_ = Source::Header;
    for (char c : v.substr(5)) header_ += c == '_' ? '-' : ascii_lower(c);
  }
}

uint64_t FarmHashKey::hash(const RequestFacts& facts, std::span<const HeaderField> rule_headers,
                           std::string& buffer) const {
  std::string_view key;
  switch (source_) {
    case Source::Url:
      key = facts.target;
      break;
    case Source::Path:
      key = path_of(facts.target);
      break;
    case Source::QueryString:
      key = query_of(facts.target);
      break;
    case Source::QueryNames: {
      // Values joined with '&' so ("ab", "") and ("a", "b") stay different keys.
      buffer.clear();
      std::string_view query = query_of(facts.target);
      for (const std::string& name : query_names_) {
        buffer.append(query_value(query, name));
        buffer += '&';
      }
      key = buffer;
      break;
    }
    case Source::Host:
      key = facts.host;
      for (const HeaderField& f : rule_headers) {
        if (iequals(f.name, "host")) key = f.value;
      }
      break;
    case Source::Method:
      key = facts.method;
      break;
    case Source::RemoteAddr:
      key = facts.remote_addr;
      break;
    case Source::ServerPort: {
      char digits[8];
      auto [end, ec] = std::to_chars(digits, digits + sizeof digits, facts.server_port);
      buffer.assign(digits, static_cast<size_t>(end - digits));
      key = buffer;
      break;
    }
    case Source::Https:
      key = facts.https ? "on" : "off";
      break;
    case Source::Header: {
      bool set_by_rule = false;
      for (const HeaderField& f : rule_headers) {
        if (iequals(f.name, header_)) {
          key = f.value;
          set_by_rule = true;
        }
      }
      if (!set_by_rule && facts.head != nullptr) key = facts.head->find(header_);
      break;
    }
  }
  return balancer::hash_key(key);
}

}  // namespace harrow

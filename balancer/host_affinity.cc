#include "balancer/host_affinity.h"

#include <algorithm>

#include "core/base/ascii.h"

namespace harrow::balancer {

HostAffinity::HostAffinity(uint64_t timeout_ns,
                           std::vector<std::pair<std::string, uint32_t>> per_host_servers,
                           size_t server_count, uint32_t default_servers)
    : timeout_ns_(timeout_ns),
      server_count_(server_count),
      default_servers_(std::max<uint32_t>(default_servers, 1)) {
  for (auto& [name, n] : per_host_servers)
    per_host_servers_[normalize(name)] = std::max<uint32_t>(n, 1);
}

std::string HostAffinity::normalize(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');  // [v6]:port
    if (close != std::string_view::npos) host = host.substr(0, close + 1);
  } else if (size_t colon = host.find(':'); colon != std::string_view::npos &&
                                            host.find(':', colon + 1) == std::string_view::npos) {
    host = host.substr(0, colon);  // name:port (a bare IPv6 address has several colons)
  }
  return to_ascii_lower(host);
}

uint32_t HostAffinity::servers_for(const std::string& host) const {
  auto it = per_host_servers_.find(host);
  uint32_t n = it != per_host_servers_.end() ? it->second : default_servers_;
  return static_cast<uint32_t>(std::min<size_t>(n, server_count_));
}

std::optional<size_t> HostAffinity::next_available(const AvailableServers& availability,
                                                   const std::vector<size_t>& taken) {
  for (size_t tried = 0; tried < server_count_; ++tried) {
    size_t s = cursor_;
    cursor_ = cursor_ + 1 == server_count_ ? 0 : cursor_ + 1;
    if (availability.available(s) && std::find(taken.begin(), taken.end(), s) == taken.end()) {
      return s;
    }
  }
  return std::nullopt;
}

void HostAffinity::forget_idle(uint64_t now_ns) {
  if (now_ns - last_sweep_ns_ < timeout_ns_) return;  // at most one sweep per timeout
  last_sweep_ns_ = now_ns;
  std::erase_if(entries_,
                [&](const auto& kv) { return now_ns - kv.second.last_used_ns >= timeout_ns_; });
}

std::optional<size_t> HostAffinity::pick(std::string_view host,
                                         const AvailableServers& availability, uint64_t now_ns) {
  std::string key = normalize(host);
  std::lock_guard lock(mutex_);
  if (server_count_ == 0) return std::nullopt;
  forget_idle(now_ns);
  auto [it, inserted] = entries_.try_emplace(key);
  Entry& entry = it->second;
  if (!inserted && idle_for(entry.last_used_ns, now_ns)) entry = Entry{};  // expired
  entry.last_used_ns = std::max(entry.last_used_ns, now_ns);

  // Replace allocated servers that went away (or drop them when there is no spare).
  for (size_t i = 0; i < entry.servers.size();) {
    if (availability.available(entry.servers[i])) {
      ++i;
    } else if (std::optional<size_t> spare = next_available(availability, entry.servers)) {
      entry.servers[i++] = *spare;
    } else {
      entry.servers.erase(entry.servers.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  // Allocate up to the host's share.
  for (uint32_t want = servers_for(key); entry.servers.size() < want;) {
    std::optional<size_t> s = next_available(availability, entry.servers);
    if (!s) break;
    entry.servers.push_back(*s);
  }
  if (entry.servers.empty()) return std::nullopt;
  size_t chosen = entry.servers[entry.next % entry.servers.size()];
  entry.next = (entry.next + 1) % entry.servers.size();
  return chosen;
}

size_t HostAffinity::hosts() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace harrow::balancer

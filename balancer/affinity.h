// ARR's client-affinity cookie (ARRAffinity): the value that names a server, and the lookup from
// a cookie back to the server it names.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace harrow::balancer {

// The ARRAffinity cookie value for a server host name: lower-case hex of SHA-256 over the host
// name, ASCII-lower-cased, encoded as UTF-16LE (what ARR and YARP's ARR-compatible policy
// compute; YARP prints upper-case hex, so lookups accept either). Input is UTF-8; a byte that is
// not valid UTF-8 is hashed as U+FFFD.
std::string arr_affinity_value(std::string_view host);

// Cookie values of one farm's servers, built once per configuration snapshot.
class AffinityIndex {
 public:
  // hosts: each server's host name, in server order.
  explicit AffinityIndex(const std::vector<std::string>& hosts);

  // The cookie value of `server` (< the number of hosts given).
  const std::string& value(size_t server) const { return values_[server]; }

  // The server a cookie value names, upper- or lower-case hex; nullopt for anything else. Two
  // servers with the same host name share a value: the first in server order is returned.
  // Does not allocate.
  std::optional<size_t> find(std::string_view cookie_value) const;

 private:
  std::vector<std::string> values_;
  std::vector<size_t> by_value_;  // server indexes sorted by (value, index)
};

}  // namespace harrow::balancer

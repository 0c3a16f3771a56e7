// ARR's status-code lists: "200-399", "200-299,304", "500-" (500 and up). Used for
// healthCheck statusCodeMatch and liveTrafficFailureCodes.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace harrow::health {

class StatusMatcher {
 public:
  // nullopt if `spec` is not a comma list of codes and ranges within 100..999.
  static std::optional<StatusMatcher> parse(std::string_view spec);
  bool matches(int status) const;

 private:
  std::vector<std::pair<int, int>> ranges_;  // inclusive
};

}  // namespace harrow::health

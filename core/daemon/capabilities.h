// What a configuration asks for that this build parses but does not act on yet. Printed by
// --check-config and logged at start-up, so nothing in a user's file is silently dropped.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace harrow {

// One line per feature, naming where it is used (e.g. "farm 'shop': healthCheck url ...").
std::vector<std::string> features_not_acted_on(const config::Config& config);

// The migration report's own part of --check-config, for someone coming from ARR: who the
// process runs as, where health state is kept, and where Harrow behaves differently from ARR
// with this file ("differs from ARR (N):" and one indented line each).
std::string migration_report(const config::Config& config);

// Site bindings that are also a farm server's address (blue/green on one box): requests the
// farm sends there come back to Harrow. One line each, printed by --check-config as
// "warning: …" and logged at start-up.
std::vector<std::string> binding_loop_warnings(const config::Config& config);

}  // namespace harrow

// Patterns that may backtrack catastrophically: a group repeated without bound that itself
// holds an unbounded repeat ("(a+)+", "(.*)*", "(\w+\s?)*"). Such a pattern can take
// exponential time on a long input that almost matches; at run time the regex limits stop it
// (the request then fails with rule_match_error), and --check-config warns about it here.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace harrow {

// True if `pattern` (ECMAScript/PCRE syntax) repeats, without bound, a group that holds an
// unbounded repeat. A heuristic: it looks at the pattern's text, not at what can match.
bool has_nested_quantifier(std::string_view pattern);

// "PATH:LINE:COL: warning: …" for every rule, condition and outbound pattern of `config`
// that has_nested_quantifier, in file order.
std::vector<std::string> nested_quantifier_warnings(const config::Config& config);

}  // namespace harrow

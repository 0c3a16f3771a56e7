#include "config/config.h"
#include "core/base/ascii.h"

#include <algorithm>
#include <string_view>

#include "config/loader.h"

namespace harrow::config {
namespace {

using harrow::ascii_lower;
using harrow::iequals;

}  // namespace

const FarmConfig* Config::find_farm(std::string_view name) const {
  // Farm names are IIS collection keys, which compare case-insensitively; rewrite URLs
  // (http://SHOP/…) name them in whatever case the rule's author typed.
  for (const FarmConfig& farm : farms) {
    if (iequals(farm.name, name)) return &farm;
  }
  return nullptr;
}

bool Config::farm_speaks_http2(std::string_view name) const {
  for (const UpstreamHttp2Config& u : upstream_http2) {
    if (iequals(u.farm, name)) return true;
  }
  return false;
}

std::string Diagnostic::format_error() const {
  return where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) +
         ": error: " + message;
}

}  // namespace harrow::config

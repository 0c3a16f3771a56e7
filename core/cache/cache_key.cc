#include "core/cache/cache_key.h"

#include "core/base/ascii.h"

namespace harrow::cache {

namespace {

// A separator no header, path or host can hold (control bytes are refused before here).
constexpr char kSep = '\x1f';

}  // namespace

bool make_primary_key(const KeyParts& parts, QueryStringHandling query, PrimaryKey& out) {
  if (query == QueryStringHandling::NoCaching && !parts.query.empty()) return false;
  out.host = to_ascii_lower(parts.host);
  if (!out.host.empty() && out.host.back() == '.') out.host.pop_back();
  out.url.assign(parts.path);
  if (query == QueryStringHandling::Accept && !parts.query.empty()) {
    out.url.push_back('?');
    out.url.append(parts.query);
  }
  std::string_view target = parts.target;
  if (query == QueryStringHandling::Ignore) target = target.substr(0, target.find('?'));
  out.key.clear();
  out.key.append(parts.farm).push_back(kSep);
  out.key.append(out.host).push_back(kSep);
  out.key.append(out.url).push_back(kSep);
  out.key.append(target);
  for (const auto& [name, value] : parts.rule_headers) {
    out.key.push_back(kSep);
    out.key.append(to_ascii_lower(name)).push_back(':');
    out.key.append(value);
  }
  return true;
}

std::string secondary_key(std::span<const std::string> vary, std::span<const HeaderField> fields) {
  std::string key;
  for (const std::string& name : vary) {
    key.append(name).push_back(':');
    bool first = true;
    for (const HeaderField& f : fields) {
      if (!iequals(f.name, name)) continue;
      if (!first) key.push_back(',');
      first = false;
      // Normalise list spacing so "gzip, br" and "gzip,br" match.
      std::string_view v = f.value;
      bool after_comma = true;
      for (char c : v) {
        if (c == ' ' || c == '\t') {
          if (!after_comma) key.push_back(' ');
          continue;
        }
        if (c == ',') {
          while (!key.empty() && key.back() == ' ') key.pop_back();
          after_comma = true;
        } else {
          after_comma = false;
        }
        key.push_back(c);
      }
      while (!key.empty() && key.back() == ' ') key.pop_back();
    }
    key.push_back(kSep);
  }
  return key;
}

}  // namespace harrow::cache

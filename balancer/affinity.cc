#include "balancer/affinity.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include "core/base/ascii.h"

namespace harrow::balancer {
namespace {

constexpr size_t kHexLength = 64;  // SHA-256 = 32 bytes

// Appends the code point decoded from UTF-8 at s[i] (advancing i) as UTF-16LE bytes.
void append_utf16le(std::string_view s, size_t& i, std::string& out) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char lead = byte(i);
  uint32_t cp = 0xFFFD;
  size_t len = 1;
  if (lead < 0x80) {
    cp = static_cast<unsigned char>(ascii_lower(static_cast<char>(lead)));
  } else {
    size_t need = (lead & 0xE0) == 0xC0   ? 2
                  : (lead & 0xF0) == 0xE0 ? 3
                  : (lead & 0xF8) == 0xF0 ? 4
                                          : 0;
    if (need != 0 && i + need <= s.size()) {
      uint32_t v = lead & (0xFF >> (need + 1));
      bool ok = true;
      for (size_t k = 1; k < need && ok; ++k) {
        ok = (byte(i + k) & 0xC0) == 0x80;
        v = (v << 6) | (byte(i + k) & 0x3F);
      }
      static constexpr uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
      if (ok && v >= kMinimum[need] && v <= 0x10FFFF && (v < 0xD800 || v > 0xDFFF)) {
        cp = v;
        len = need;
      }
    }
  }
  i += len;
  auto unit = [&](uint32_t u) {
    out.push_back(static_cast<char>(u & 0xFF));
    out.push_back(static_cast<char>(u >> 8));
  };
  if (cp < 0x10000) {
    unit(cp);
  } else {
    cp -= 0x10000;
    unit(0xD800 + (cp >> 10));
    unit(0xDC00 + (cp & 0x3FF));
  }
}

}  // namespace

std::string arr_affinity_value(std::string_view host) {
  std::string utf16;
  utf16.reserve(host.size() * 2);
  for (size_t i = 0; i < host.size();) append_utf16le(host, i, utf16);
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int digest_length = 0;
  EVP_Digest(utf16.data(), utf16.size(), digest.data(), &digest_length, EVP_sha256(), nullptr);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * digest_length);
  for (unsigned int i = 0; i < digest_length; ++i) {
    hex.push_back(kDigits[digest[i] >> 4]);
    hex.push_back(kDigits[digest[i] & 0xF]);
  }
  return hex;
}

AffinityIndex::AffinityIndex(const std::vector<std::string>& hosts) {
  values_.reserve(hosts.size());
  for (const std::string& host : hosts) values_.push_back(arr_affinity_value(host));
  by_value_.resize(values_.size());
  for (size_t i = 0; i < values_.size(); ++i) by_value_[i] = i;
  // By (value, index): a shared value finds the first server in order.
  std::sort(by_value_.begin(), by_value_.end(), [this](size_t a, size_t b) {
    return values_[a] != values_[b] ? values_[a] < values_[b] : a < b;
  });
}

std::optional<size_t> AffinityIndex::find(std::string_view cookie_value) const {
  if (cookie_value.size() != kHexLength) return std::nullopt;
  std::array<char, kHexLength> lower;
  for (size_t i = 0; i < kHexLength; ++i) {
    int v = hex_value(cookie_value[i]);
    if (v < 0) return std::nullopt;
    lower[i] = "0123456789abcdef"[v];
  }
  std::string_view wanted(lower.data(), lower.size());
  auto it =
      std::lower_bound(by_value_.begin(), by_value_.end(), wanted,
                       [this](size_t server, std::string_view v) { return values_[server] < v; });
  if (it == by_value_.end() || values_[*it] != wanted) return std::nullopt;
  return *it;
}

}  // namespace harrow::balancer

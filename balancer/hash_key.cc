// hash_key: a stable 64-bit hash of a request's hash key. Multiply-fold rounds in the style of
// wyhash (each 16-byte block is folded into the state through a 64×64→128-bit product, high
// half XOR low half), then the murmur3 64-bit finaliser so every input bit reaches every
// output bit. Bytes are read little-endian whatever the host, so the value is the same on
// every machine, process and version: RequestHash maps a key to the same server everywhere.
#include <cstdint>
#include <cstring>
#include <string_view>

#include "balancer/balancer.h"

namespace harrow::balancer {
namespace {

constexpr uint64_t kSeed = 0x9E3779B97F4A7C15ull;  // 2^64 / golden ratio
constexpr uint64_t kMixA = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kMixB = 0x165667B19E3779F9ull;
constexpr uint64_t kMixC = 0xD6E8FEB86659FD93ull;

inline uint64_t fold_multiply(uint64_t a, uint64_t b) {
  unsigned __int128 product = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(product) ^ static_cast<uint64_t>(product >> 64);
}

// Up to 8 bytes as a little-endian integer (missing high bytes are zero).
inline uint64_t read_le(const unsigned char* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

inline uint64_t murmur_finalize(uint64_t h) {
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 33;
  return h;
}

}  // namespace

uint64_t hash_key(std::string_view key) {
  const auto* p = reinterpret_cast<const unsigned char*>(key.data());
  size_t left = key.size();
  uint64_t h = kSeed ^ (static_cast<uint64_t>(key.size()) * kMixA);
  while (left >= 16) {
    // The state enters both factors through XOR and is XORed back in afterwards, so an input
    // block cannot zero the state (a plain multiply-fold would lose it if a factor hit 0).
    h ^= fold_multiply(read_le(p, 8) ^ kMixA ^ h, read_le(p + 8, 8) ^ kMixB);
    p += 16;
    left -= 16;
  }
  uint64_t a = read_le(p, left < 8 ? left : 8);
  uint64_t b = left > 8 ? read_le(p + 8, left - 8) : 0;
  h ^= fold_multiply(a ^ kMixB ^ h, b ^ kMixC ^ static_cast<uint64_t>(key.size()));
  return murmur_finalize(h);
}

}  // namespace harrow::balancer

#include "core/base/ip_text.h"

#include <array>
#include <cstring>

namespace harrow {
namespace {

// "0".."255" as up to three digits and a length, built at compile time: an address is four
// table copies, not four divisions loops.
struct Octet {
  char digits[4];
  uint8_t length;
};

constexpr std::array<Octet, 256> kOctets = [] {
  std::array<Octet, 256> table{};
  for (int n = 0; n < 256; ++n) {
    Octet& o = table[n];
    if (n >= 100) o.digits[o.length++] = static_cast<char>('0' + n / 100);
    if (n >= 10) o.digits[o.length++] = static_cast<char>('0' + n / 10 % 10);
    o.digits[o.length++] = static_cast<char>('0' + n % 10);
  }
  return table;
}();

}  // namespace

char* write_ipv4(char* out, const uint8_t* ip) {
  // Three digit bytes are copied whatever the octet's length; what is past it is overwritten
  // by the next dot or octet, and the last copy still ends within kIpv4TextMax.
  for (int i = 0; i < 3; ++i) {
    const Octet& o = kOctets[ip[i]];
    std::memcpy(out, o.digits, 3);
    out += o.length;
    *out++ = '.';
  }
  const Octet& last = kOctets[ip[3]];
  std::memcpy(out, last.digits, 3);
  return out + last.length;
}

char* write_port(char* out, uint16_t n) {
  char digits[5];
  int count = 0;
  do {
    digits[count++] = static_cast<char>('0' + n % 10);
    n = static_cast<uint16_t>(n / 10);
  } while (n != 0);
  while (count > 0) *out++ = digits[--count];
  return out;
}

}  // namespace harrow

#include "core/ip_text.h"

namespace harrow {
namespace {

char* write_decimal(char* out, unsigned n) {
  char digits[5];
  int count = 0;
  do {
    digits[count++] = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  while (count > 0) *out++ = digits[--count];
  return out;
}

}  // namespace

char* write_ipv4(char* out, const uint8_t* ip) {
  for (int i = 0; i < 4; ++i) {
    if (i != 0) *out++ = '.';
    out = write_decimal(out, ip[i]);
  }
  return out;
}

char* write_port(char* out, uint16_t n) {
  return write_decimal(out, n);
}

}  // namespace harrow

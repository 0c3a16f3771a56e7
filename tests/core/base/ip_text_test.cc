#include "core/base/ip_text.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cstring>
#include <string>

namespace harrow {
namespace {

std::string ipv4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  const uint8_t ip[4] = {a, b, c, d};
  char out[kIpv4TextMax];
  return std::string(out, write_ipv4(out, ip));
}

TEST(IpText, WritesDottedQuads) {
  EXPECT_EQ(ipv4(127, 0, 0, 1), "127.0.0.1");
  EXPECT_EQ(ipv4(0, 0, 0, 0), "0.0.0.0");
  EXPECT_EQ(ipv4(255, 255, 255, 255), "255.255.255.255");
  EXPECT_EQ(ipv4(10, 200, 3, 99), "10.200.3.99");
}

TEST(IpText, WritesPorts) {
  char out[5];
  EXPECT_EQ(std::string(out, write_port(out, 0)), "0");
  EXPECT_EQ(std::string(out, write_port(out, 80)), "80");
  EXPECT_EQ(std::string(out, write_port(out, 65535)), "65535");
}

// The same text as the C library's inet_ntop for every IPv4 address.
RC_GTEST_PROP(IpText, AgreesWithInetNtop, (uint32_t address)) {
  uint8_t ip[4];
  std::memcpy(ip, &address, 4);
  char ours[kIpv4TextMax];
  char theirs[INET_ADDRSTRLEN];
  RC_ASSERT(inet_ntop(AF_INET, ip, theirs, sizeof theirs) != nullptr);
  RC_ASSERT(std::string(ours, write_ipv4(ours, ip)) == std::string(theirs));
}

}  // namespace
}  // namespace harrow

// The ARRAffinity cookie value: SHA-256 over the lower-cased host name in UTF-16LE, as hex.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstdio>
#include <string>

#include "balancer/affinity.h"

namespace harrow::balancer {
namespace {

// Expected value computed here independently: OpenSSL over a hand-written UTF-16LE encoding.
std::string sha256_hex_of_utf16le_ascii(const std::string& lower_ascii) {
  std::string bytes;
  for (char c : lower_ascii) {
    bytes.push_back(c);
    bytes.push_back('\0');
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  std::string hex;
  char buf[3];
  for (unsigned int i = 0; i < length; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", digest[i]);
    hex += buf;
  }
  return hex;
}

TEST(AffinityCookie, KnownAnswer) {
  // printf 'web1' | iconv -t UTF-16LE | sha256sum
  EXPECT_EQ(arr_affinity_value("web1"),
            "d9d97694b108104760540410222c72aec69699254859d1542dc91a2a121aa2a6");
}

TEST(AffinityCookie, LowerCasesTheHostBeforeHashing) {
  std::string expected = sha256_hex_of_utf16le_ascii("server-a.contoso.com");
  EXPECT_EQ(expected, "4677004d8001dd3ac83cfb76b6def03204b9df2f75fb464205122d45c99695b7");
  EXPECT_EQ(arr_affinity_value("Server-A.Contoso.COM"), expected);
  EXPECT_EQ(arr_affinity_value("server-a.contoso.com"), expected);
}

TEST(AffinityCookie, NonAsciiHostIsHashedAsUtf16) {
  // python3: hashlib.sha256('bücher.example'.encode('utf-16-le')).hexdigest()
  EXPECT_EQ(arr_affinity_value("b\xC3\xBC"
                               "cher.example"),
            "efd732d6fe0bdfa6b9d24ec23df1121fdf266625d4dd91c7991b857f48854c4e");
}

TEST(AffinityIndex, FindsTheServerFromEitherCaseOfHex) {
  AffinityIndex index({"web1", "web2", "Web3"});
  EXPECT_EQ(index.value(0), arr_affinity_value("web1"));
  EXPECT_EQ(index.value(2), arr_affinity_value("web3"));
  for (size_t s = 0; s < 3; ++s) {
    std::string lower = index.value(s), upper = lower;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(index.find(lower), s);
    EXPECT_EQ(index.find(upper), s);  // YARP's ARR-compatible policy writes upper case
  }
}

TEST(AffinityIndex, RejectsUnknownAndMalformedValues) {
  AffinityIndex index({"web1", "web2"});
  EXPECT_FALSE(index.find(arr_affinity_value("web9")).has_value());
  EXPECT_FALSE(index.find("").has_value());
  EXPECT_FALSE(index.find(index.value(0).substr(1)).has_value());
  std::string bad = index.value(0);
  bad[10] = 'g';
  EXPECT_FALSE(index.find(bad).has_value());
  EXPECT_FALSE(index.find(index.value(0) + "0").has_value());
}

TEST(AffinityIndex, SharedHostNameFindsTheFirstServer) {
  AffinityIndex index({"web2", "web1", "WEB1"});
  EXPECT_EQ(index.find(arr_affinity_value("web1")), 1u);
}

}  // namespace
}  // namespace harrow::balancer

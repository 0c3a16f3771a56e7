// TLS configuration: <certificate>, <tls> and <upstreamTls> as the loader reads them, and the
// certificate checks (files, key matching) that --check-config and reloads run.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "config/loader.h"
#include "core/tls/tls_context.h"

namespace harrow {
namespace {

config::LoadResult load(const std::string& harrow_xml) {
  return config::load_config_text(
      "<configuration>\n"
      "  <webFarms><webFarm name=\"lab\"/></webFarms>\n"
      "  <harrow>\n" +
          harrow_xml + "  </harrow>\n</configuration>\n",
      "f.config");
}

std::vector<std::string> errors_of(const config::LoadResult& result) {
  std::vector<std::string> out;
  for (const config::Diagnostic& d : result.errors) out.push_back(d.format_error());
  return out;
}

TEST(TlsConfig, CertificatesTlsAndUpstreamTlsAreRead) {
  config::LoadResult result = load(
      "    <certificate host=\"Shop.Example.com\" certificateFile=\"/c/shop.pem\" "
      "keyFile=\"/c/shop.key\" chainFile=\"/c/chain.pem\" ocspResponseFile=\"/c/o.der\"/>\n"
      "    <certificate host=\"*.example.com\" certificateFile=\"/c/all.pem\" "
      "default=\"true\"/>\n"
      "    <tls unknownServerName=\"reject\" cipherSuites=\"TLS_AES_128_GCM_SHA256\" "
      "clientCertificate=\"optional\" clientCaFile=\"/c/ca.pem\" sessionCacheSize=\"0\"/>\n"
      "    <upstreamTls caFile=\"/c/backends.pem\"/>\n"
      "    <upstreamTls farm=\"LAB\" verifyCertificate=\"false\"/>\n");
  ASSERT_TRUE(result.config.has_value()) << errors_of(result).front();
  const config::Config& c = *result.config;
  ASSERT_EQ(c.certificates.size(), 2u);
  EXPECT_EQ(c.certificates[0].host, "shop.example.com");
  EXPECT_EQ(c.certificates[0].key_file, "/c/shop.key");
  EXPECT_EQ(c.certificates[0].chain_file, "/c/chain.pem");
  EXPECT_EQ(c.certificates[0].ocsp_response_file, "/c/o.der");
  EXPECT_FALSE(c.certificates[0].is_default);
  EXPECT_EQ(c.certificates[0].where.line, 4);
  EXPECT_TRUE(c.certificates[1].is_default);
  EXPECT_TRUE(c.tls.reject_unknown_server_name);
  EXPECT_EQ(c.tls.cipher_suites, "TLS_AES_128_GCM_SHA256");
  EXPECT_EQ(c.tls.client_certificate, config::ClientCertificateMode::Optional);
  EXPECT_EQ(c.tls.session_cache_size, 0u);
  ASSERT_EQ(c.upstream_tls.size(), 2u);
  EXPECT_TRUE(c.upstream_tls[0].farm.empty());
  EXPECT_TRUE(c.upstream_tls[0].verify_certificate);
  EXPECT_EQ(c.upstream_tls[0].ca_file, "/c/backends.pem");
  EXPECT_FALSE(c.upstream_tls[1].verify_certificate);
}

TEST(TlsConfig, MistakesAreErrorsWithPositions) {
  config::LoadResult result = load(
      "    <certificate host=\"a\" certificateFile=\"/1\" default=\"true\"/>\n"
      "    <certificate host=\"A\" certificateFile=\"/2\" default=\"true\"/>\n"
      "    <certificate keyFile=\"/3\"/>\n"
      "    <tls clientCertificate=\"always\" unknownServerName=\"drop\"/>\n"
      "    <upstreamTls farm=\"nope\"/>\n");
  EXPECT_EQ(errors_of(result),
            (std::vector<std::string>{
                "f.config:5:5: error: a second <certificate default=\"true\">: one default only",
                "f.config:5:5: error: a second <certificate> for host 'a' (first at line 4, "
                "column 5)",
                "f.config:6:5: error: missing required attribute 'certificateFile' on "
                "<certificate>",
                "f.config:7:10: error: bad value 'always' for attribute 'clientCertificate' on "
                "<tls>: expected one of none, optional, require",
                "f.config:7:37: error: bad value 'drop' for attribute 'unknownServerName' on "
                "<tls>: expected one of default, reject",
                "f.config:8:5: error: <upstreamTls> names unknown farm 'nope'"}));
}

TEST(TlsConfig, ClientCertificatesNeedTheirCa) {
  config::LoadResult result = load("    <tls clientCertificate=\"require\"/>\n");
  EXPECT_EQ(errors_of(result),
            (std::vector<std::string>{"f.config:4:5: error: clientCertificate needs clientCaFile "
                                      "(the CAs that sign them)"}));
}

// PEM files made here with OpenSSL: two EC keys and a certificate for the first.
class CertificateFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/harrow-tls-unit-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    EVP_PKEY* key1 = EVP_EC_gen("P-256");
    EVP_PKEY* key2 = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key1);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "C", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("US"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "ST", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("Washington"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("unit.test"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key1, EVP_sha256());
    write_pem(path("cert.pem"), [&](FILE* f) { PEM_write_X509(f, cert); });
    write_pem(path("key1.pem"), [&](FILE* f) {
      PEM_write_PrivateKey(f, key1, nullptr, nullptr, 0, nullptr, nullptr);
    });
    write_pem(path("key2.pem"), [&](FILE* f) {
      PEM_write_PrivateKey(f, key2, nullptr, nullptr, 0, nullptr, nullptr);
    });
    dn_ = tls::arr_distinguished_name(name);
    X509_free(cert);
    EVP_PKEY_free(key1);
    EVP_PKEY_free(key2);
  }
  void TearDown() override {
    for (const char* f : {"cert.pem", "key1.pem", "key2.pem"}) std::remove(path(f).c_str());
    rmdir(dir_.c_str());
  }
  template <typename Write>
  static void write_pem(const std::string& file, Write write) {
    FILE* f = std::fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    write(f);
    std::fclose(f);
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  config::Config with_certificate(const std::string& cert, const std::string& key) {
    config::Config c;
    c.certificates.push_back({.host = "unit.test",
                              .certificate_file = cert,
                              .key_file = key,
                              .where = {"f.config", 7, 5}});
    c.listeners.push_back({"127.0.0.1:0", true, {}});
    return c;
  }

  std::string dir_;
  std::string dn_;
};

TEST_F(CertificateFiles, MatchingKeyBuildsContexts) {
  std::vector<config::Diagnostic> errors;
  auto contexts =
      tls::ServerContexts::build(with_certificate(path("cert.pem"), path("key1.pem")), errors);
  EXPECT_TRUE(errors.empty()) << errors.front().format_error();
  ASSERT_NE(contexts, nullptr);
  EXPECT_EQ(contexts->certificate_count(), 1u);
  // X-ARR-SSL's certificate part: EC P-256 is 256 bits; issuer = subject (self-signed).
  EXPECT_EQ(contexts->arr_ssl_key_bits(contexts->initial()), "256|");
  EXPECT_EQ(contexts->arr_ssl_names(contexts->initial()), "|" + dn_ + "|" + dn_);
}

TEST_F(CertificateFiles, DistinguishedNamesAreWrittenTheWindowsWay) {
  EXPECT_EQ(dn_, "C=US, S=Washington, CN=unit.test");
}

TEST_F(CertificateFiles, KeyThatDoesNotMatchIsAnErrorAtTheCertificate) {
  std::vector<config::Diagnostic> errors =
      tls::check(with_certificate(path("cert.pem"), path("key2.pem")));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].format_error(), "f.config:7:5: error: keyFile " + path("key2.pem") +
                                          " does not match certificateFile " + path("cert.pem"));
}

TEST_F(CertificateFiles, MissingFilesAreErrorsAtTheCertificate) {
  std::vector<config::Diagnostic> errors =
      tls::check(with_certificate(path("nope.pem"), path("key1.pem")));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].format_error(),
            "f.config:7:5: error: cannot open " + path("nope.pem") + ": No such file or directory");
  errors = tls::check(with_certificate(path("cert.pem"), path("gone.key")));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].message.find("cannot open " + path("gone.key")), std::string::npos);
}

TEST_F(CertificateFiles, NoCertificateMeansNoServerContexts) {
  std::vector<config::Diagnostic> errors;
  config::Config c;
  c.listeners.push_back({"127.0.0.1:0", true, {}});
  EXPECT_EQ(tls::ServerContexts::build(c, errors), nullptr);
  EXPECT_TRUE(errors.empty());
}

TEST(UpstreamTls, FarmSettingsFallBackToTheGlobalOnes) {
  config::Config c;
  c.upstream_tls.push_back({.farm = "Lab", .verify_certificate = false});
  std::vector<config::Diagnostic> errors;
  auto contexts = tls::ClientContexts::build(c, errors);
  ASSERT_NE(contexts, nullptr);
  EXPECT_FALSE(contexts->for_farm("lab").verify);
  EXPECT_TRUE(contexts->for_farm("shop").verify);
  EXPECT_NE(contexts->for_farm("shop").ctx, nullptr);
}

TEST(UpstreamTls, UnreadableCaFileIsAnError) {
  config::Config c;
  c.upstream_tls.push_back({.ca_file = "/nonexistent/ca.pem", .where = {"f.config", 9, 5}});
  std::vector<config::Diagnostic> errors = tls::check(c);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].where.line, 9);
  EXPECT_NE(errors[0].message.find("cannot load caFile /nonexistent/ca.pem"), std::string::npos);
}

}  // namespace
}  // namespace harrow

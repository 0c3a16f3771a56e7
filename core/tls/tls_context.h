// TLS configuration made live: the server-side SSL_CTXs (one per <certificate>, chosen by SNI)
// and the client-side SSL_CTXs for farms reached over https://. Built on the main thread when a
// configuration loads (start-up, --check-config, reload) and shared read-only by every worker
// through the snapshot. A connection holds its own reference to the SSL_CTX it uses, so a
// reload never pulls a certificate from under a live connection.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "config/loader.h"

namespace harrow::tls {

// The certificates Harrow presents on https listeners.
class ServerContexts {
 public:
  // nullptr with `errors` set (at the <certificate> or <tls> element) when a file is missing,
  // unreadable, or a key does not match its certificate. nullptr with no errors when the
  // configuration has no certificate.
  static std::shared_ptr<const ServerContexts> build(const config::Config& config,
                                                     std::vector<config::Diagnostic>& errors);
  ~ServerContexts();
  ServerContexts(const ServerContexts&) = delete;
  ServerContexts& operator=(const ServerContexts&) = delete;

  // The context a new connection starts with (the default certificate); its SNI callback
  // switches to the one for the name the client asks for.
  SSL_CTX* initial() const { return contexts_[default_index_].ctx; }
  // X-ARR-SSL's certificate part, "keybits|" and "|issuer|subject" around the cipher bits.
  const std::string& arr_ssl_key_bits(SSL_CTX* ctx) const;
  const std::string& arr_ssl_names(SSL_CTX* ctx) const;
  size_t certificate_count() const { return contexts_.size(); }

 private:
  struct Entry {
    SSL_CTX* ctx = nullptr;
    std::string key_bits;  // "2048|"
    std::string names;     // "|issuer DN|subject DN"
    std::string ocsp;      // DER OCSP response to staple; empty = none
  };
  ServerContexts() = default;
  const Entry* find(SSL_CTX* ctx) const;
  const Entry* for_name(std::string_view host) const;
  static int on_server_name(SSL* ssl, int* alert, void* arg);
  static int on_ocsp_status(SSL* ssl, void* arg);

  std::vector<Entry> contexts_;
  std::unordered_map<std::string, size_t> exact_;     // lower-case host → entry
  std::unordered_map<std::string, size_t> wildcard_;  // "example.com" for "*.example.com"
  size_t default_index_ = 0;
  bool reject_unknown_names_ = false;
};

// Client contexts for upstream https, one per farm that needs one (index = farm index in the
// snapshot; null for farms that are never reached over TLS is fine: built lazily for all).
class ClientContexts {
 public:
  // Builds one context per distinct caFile among the farms. nullptr with `errors` when a CA
  // file cannot be loaded; nullptr without errors when nothing in the configuration can reach
  // a server over TLS (no <upstreamTls>, no https:// rewrite, map value or health URL): a
  // context and the system CA store cost milliseconds to load, on every reload.
  static std::shared_ptr<const ClientContexts> build(const config::Config& config,
                                                     std::vector<config::Diagnostic>& errors);
  ~ClientContexts();
  ClientContexts(const ClientContexts&) = delete;
  ClientContexts& operator=(const ClientContexts&) = delete;

  struct UpstreamTls {
    SSL_CTX* ctx = nullptr;  // not owned (shared between farms with the same settings)
    bool verify = true;
  };
  // The settings for farm `name` (case-insensitive), or the global ones.
  const UpstreamTls& for_farm(std::string_view name) const;

 private:
  ClientContexts() = default;
  static SSL_CTX* new_context(const config::UpstreamTlsConfig& settings, std::string& why);
  std::vector<SSL_CTX*> owned_;
  std::unordered_map<std::string, UpstreamTls> farms_;  // lower-case farm name → settings
  UpstreamTls global_;
};

// The client context for etcd over https:// (<fleet caFile certificateFile keyFile>): etcd's
// certificate must chain to `ca_file`; the client certificate, when given, is presented for
// etcd's --client-cert-auth. nullptr with `why` when a file cannot be loaded or the key does
// not match. The caller owns the context (SSL_CTX_free).
SSL_CTX* new_fleet_context(const config::FleetConfig& fleet, std::string& why);

// Checks the certificate files of `config` without keeping anything: for --check-config and
// before a reload. Same errors as ServerContexts::build / ClientContexts::build.
std::vector<config::Diagnostic> check(const config::Config& config);

// The DN as X-ARR-SSL writes it: "C=US, S=Washington, O=Example, CN=example.com".
std::string arr_distinguished_name(X509_NAME* name);

// The SSL ex_data slot that, when non-null, makes a server session offer h2 by ALPN.
int alpn_h2_index();

}  // namespace harrow::tls

#include "core/tls/tls_context.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>

#include "core/base/ascii.h"

namespace harrow::tls {
namespace {

constexpr char kSessionIdContext[] = "harrow";
constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
// The server's preference when the listener offers HTTP/2: h2, then http/1.1.
constexpr unsigned char kAlpnH2Http11[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

// OpenSSL's queued errors as one line (and the queue emptied).
std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

bool readable(const std::string& path, std::string& why) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    why = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

// Session tickets: one process-wide set of keys shared by every worker and every reload, so a
// ticket issued by one worker resumes on another and survives a SIGHUP. The current key
// encrypts; the previous one still decrypts (and asks for a fresh ticket) for one more period.
class TicketKeys {
 public:
  static TicketKeys& instance() {
    static TicketKeys keys;
    return keys;
  }

  struct Key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
  };

  // The key to encrypt with now (rotating when it is older than the period).
  Key current() {
    std::lock_guard<std::mutex> lock(mutex_);
    rotate_if_due();
    return keys_[0];
  }
  // The key named `name`: 1 = current, 2 = previous (renew the ticket), 0 = unknown.
  int find(const unsigned char name[16], Key& out) {
    std::lock_guard<std::mutex> lock(mutex_);
    rotate_if_due();
    for (int i = 0; i < count_; ++i) {
      if (std::memcmp(keys_[i].name, name, 16) == 0) {
        out = keys_[i];
        return i == 0 ? 1 : 2;
      }
    }
    return 0;
  }

 private:
  static constexpr auto kPeriod = std::chrono::hours(12);

  void rotate_if_due() {
    auto now = std::chrono::steady_clock::now();
    if (count_ > 0 && now - made_ < kPeriod) return;
    keys_[1] = keys_[0];
    RAND_bytes(keys_[0].name, sizeof keys_[0].name);
    RAND_bytes(keys_[0].aes, sizeof keys_[0].aes);
    RAND_bytes(keys_[0].hmac, sizeof keys_[0].hmac);
    count_ = count_ == 0 ? 1 : 2;
    made_ = now;
  }

  std::mutex mutex_;
  Key keys_[2]{};
  int count_ = 0;
  std::chrono::steady_clock::time_point made_;
};

bool init_mac(EVP_MAC_CTX* mac, const unsigned char* key) {
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key), 32),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end()};
  return EVP_MAC_CTX_set_params(mac, params) == 1;
}

int on_ticket_key(SSL* ssl, unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                  EVP_MAC_CTX* mac, int encrypt) {
  TicketKeys::Key key;
  if (encrypt) {
    key = TicketKeys::instance().current();
    std::memcpy(key_name, key.name, 16);
    if (RAND_bytes(iv, EVP_CIPHER_iv_length(EVP_aes_256_cbc())) != 1) return -1;
    if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes, iv) != 1) return -1;
    return init_mac(mac, key.hmac) ? 1 : -1;
  }
  int found = TicketKeys::instance().find(key_name, key);
  if (found == 0) return 0;  // unknown key: a full handshake
  if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes, iv) != 1) return -1;
  if (!init_mac(mac, key.hmac)) return -1;
  // TLS 1.3 clients use a ticket once: a resumption must hand out a fresh one (2 = renew), or
  // every other connection of a client would be a full handshake.
  return SSL_version(ssl) == TLS1_3_VERSION ? 2 : found;
}

int on_alpn(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
            unsigned int inlen, void*) {
  unsigned char* selected = nullptr;
  bool h2 = SSL_get_ex_data(ssl, alpn_h2_index()) != nullptr;
  const unsigned char* offered = h2 ? kAlpnH2Http11 : kAlpnHttp11;
  unsigned int offered_len = h2 ? sizeof kAlpnH2Http11 : sizeof kAlpnHttp11;
  if (SSL_select_next_proto(&selected, outlen, offered, offered_len, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // the client offers no http/1.1: go on without ALPN
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

struct CtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxDeleter>;

// Settings every server context shares.
bool configure_server(SSL_CTX* ctx, const config::TlsConfig& tls, std::string& why) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx, tls.ciphers.c_str()) != 1) {
    why = "bad ciphers \"" + tls.ciphers + "\": " + openssl_errors();
    return false;
  }
  if (!tls.cipher_suites.empty() && SSL_CTX_set_ciphersuites(ctx, tls.cipher_suites.c_str()) != 1) {
    why = "bad cipherSuites \"" + tls.cipher_suites + "\": " + openssl_errors();
    return false;
  }
  SSL_CTX_set_session_id_context(ctx, reinterpret_cast<const unsigned char*>(kSessionIdContext),
                                 sizeof kSessionIdContext - 1);
  SSL_CTX_set_session_cache_mode(
      ctx, tls.session_cache_size == 0 ? SSL_SESS_CACHE_OFF : SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(ctx, tls.session_cache_size);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
  SSL_CTX_set_num_tickets(ctx, 1);
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn, nullptr);
  if (tls.client_certificate != config::ClientCertificateMode::None) {
    if (SSL_CTX_load_verify_locations(ctx, tls.client_ca_file.c_str(), nullptr) != 1) {
      why = "cannot load clientCaFile " + tls.client_ca_file + ": " + openssl_errors();
      return false;
    }
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(ctx, names);
    }
    int mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;
    if (tls.client_certificate == config::ClientCertificateMode::Require) {
      mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    }
    SSL_CTX_set_verify(ctx, mode, nullptr);
  }
  return true;
}

bool load_certificate(SSL_CTX* ctx, const config::CertificateConfig& cert, std::string& why) {
  const std::string& key_file = cert.key_file.empty() ? cert.certificate_file : cert.key_file;
  if (!readable(cert.certificate_file, why)) return false;
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.certificate_file.c_str()) != 1) {
    why = "cannot load certificateFile " + cert.certificate_file + ": " + openssl_errors();
    return false;
  }
  if (!cert.chain_file.empty()) {
    if (!readable(cert.chain_file, why)) return false;
    BIO* bio = BIO_new_file(cert.chain_file.c_str(), "r");
    int added = 0;
    while (X509* x = bio != nullptr ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr) {
      if (SSL_CTX_add_extra_chain_cert(ctx, x) != 1) {
        X509_free(x);
        break;
      }
      ++added;
    }
    BIO_free(bio);
    ERR_clear_error();  // the end of the file reads as an error
    if (added == 0) {
      why = "no PEM certificate in chainFile " + cert.chain_file;
      return false;
    }
  }
  if (!readable(key_file, why)) return false;
  BIO* bio = BIO_new_file(key_file.c_str(), "r");
  EVP_PKEY* key =
      bio != nullptr ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  if (key == nullptr) {
    why = "cannot load keyFile " + key_file + ": " + openssl_errors();
    return false;
  }
  bool matches = X509_check_private_key(SSL_CTX_get0_certificate(ctx), key) == 1;
  bool used = matches && SSL_CTX_use_PrivateKey(ctx, key) == 1;
  EVP_PKEY_free(key);
  if (!matches) {
    ERR_clear_error();
    why = "keyFile " + key_file + " does not match certificateFile " + cert.certificate_file;
    return false;
  }
  if (!used) {
    why = "cannot use keyFile " + key_file + ": " + openssl_errors();
    return false;
  }
  return true;
}

bool read_file(const std::string& path, std::string& out, std::string& why) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    why = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  out.assign(std::istreambuf_iterator<char>(in), {});
  return true;
}

bool has_https(std::string_view text) {
  for (size_t i = 0; i + 6 <= text.size(); ++i) {
    if (ascii_lower(text[i]) == 'h' && lower(text.substr(i, 6)) == "https:") return true;
  }
  return false;
}

// Whether any rule, rewrite map or health check of `config` can send traffic over https://.
bool mentions_https(const config::Config& config) {
  auto rules = [](const std::vector<config::RuleConfig>& list) {
    for (const config::RuleConfig& r : list) {
      if (has_https(r.action_url)) return true;
    }
    return false;
  };
  if (rules(config.global_rules) || rules(config.distributed_rules)) return true;
  for (const config::SiteConfig& site : config.sites) {
    if (rules(site.rules)) return true;
  }
  for (const config::RewriteMapConfig& map : config.rewrite_maps) {
    if (has_https(map.default_value)) return true;
    for (const auto& entry : map.entries) {
      if (has_https(entry.second)) return true;
    }
  }
  for (const config::FarmConfig& farm : config.farms) {
    if (has_https(farm.health_check.url)) return true;
  }
  return false;
}

}  // namespace

std::string arr_distinguished_name(X509_NAME* name) {
  std::string out;
  int count = X509_NAME_entry_count(name);
  for (int i = 0; i < count; ++i) {
    X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry));
    // Windows spells stateOrProvinceName "S" where OpenSSL says "ST".
    const char* label = nid == NID_stateOrProvinceName ? "S" : OBJ_nid2sn(nid);
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
    if (len < 0) continue;
    if (!out.empty()) out += ", ";
    out += label;
    out += '=';
    out.append(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
    OPENSSL_free(utf8);
  }
  return out;
}

// ------------------------------------------------------------------------- server contexts

std::shared_ptr<const ServerContexts> ServerContexts::build(
    const config::Config& config, std::vector<config::Diagnostic>& errors) {
  // Without any certificate, https listeners are skipped (an IIS file keeps its certificates
  // in the Windows store; --check-config lists them as not acted on).
  if (config.certificates.empty()) return nullptr;
  std::shared_ptr<ServerContexts> out(new ServerContexts);
  out->reject_unknown_names_ = config.tls.reject_unknown_server_name;
  size_t before = errors.size();
  for (const config::CertificateConfig& cert : config.certificates) {
    CtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    std::string why;
    if (!ctx || !configure_server(ctx.get(), config.tls, why)) {
      errors.push_back({config.tls.where.line != 0 ? config.tls.where : cert.where, why});
      ERR_clear_error();
      return nullptr;  // the same for every certificate: say it once
    }
    if (!load_certificate(ctx.get(), cert, why)) {
      errors.push_back({cert.where, why});
      ERR_clear_error();
      continue;
    }
    Entry entry;
    if (!cert.ocsp_response_file.empty()) {
      if (!read_file(cert.ocsp_response_file, entry.ocsp, why)) {
        errors.push_back({cert.where, why});
        continue;
      }
      SSL_CTX_set_tlsext_status_cb(ctx.get(), &ServerContexts::on_ocsp_status);
      SSL_CTX_set_tlsext_status_arg(ctx.get(), out.get());
    }
    X509* x = SSL_CTX_get0_certificate(ctx.get());
    EVP_PKEY* key = X509_get0_pubkey(x);
    entry.key_bits = std::to_string(key != nullptr ? EVP_PKEY_bits(key) : 0) + "|";
    entry.names = "|" + arr_distinguished_name(X509_get_issuer_name(x)) + "|" +
                  arr_distinguished_name(X509_get_subject_name(x));
    entry.ctx = ctx.release();
    size_t index = out->contexts_.size();
    out->contexts_.push_back(std::move(entry));
    if (cert.is_default) out->default_index_ = index;
    if (cert.host.size() > 2 && cert.host.compare(0, 2, "*.") == 0) {
      out->wildcard_.emplace(cert.host.substr(2), index);
    } else if (!cert.host.empty()) {
      out->exact_.emplace(lower(cert.host), index);
    }
  }
  if (errors.size() != before) return nullptr;
  // Every connection starts on the default context; the callback there picks the real one.
  SSL_CTX* first = out->initial();
  SSL_CTX_set_tlsext_servername_callback(first, &ServerContexts::on_server_name);
  SSL_CTX_set_tlsext_servername_arg(first, out.get());
  return out;
}

ServerContexts::~ServerContexts() {
  for (Entry& e : contexts_) {
    // Connections still using a context hold their own reference; the callbacks' argument
    // must not outlive this object, so the SNI switch is cut on the initial context.
    SSL_CTX_set_tlsext_servername_arg(e.ctx, nullptr);
    SSL_CTX_set_tlsext_status_arg(e.ctx, nullptr);
    SSL_CTX_free(e.ctx);
  }
}

const ServerContexts::Entry* ServerContexts::find(SSL_CTX* ctx) const {
  for (const Entry& e : contexts_) {
    if (e.ctx == ctx) return &e;
  }
  return &contexts_[default_index_];
}

const std::string& ServerContexts::arr_ssl_key_bits(SSL_CTX* ctx) const {
  return find(ctx)->key_bits;
}

const std::string& ServerContexts::arr_ssl_names(SSL_CTX* ctx) const {
  return find(ctx)->names;
}

const ServerContexts::Entry* ServerContexts::for_name(std::string_view host) const {
  std::string name = lower(host);
  if (auto it = exact_.find(name); it != exact_.end()) return &contexts_[it->second];
  size_t dot = name.find('.');
  if (dot != std::string::npos) {
    if (auto it = wildcard_.find(name.substr(dot + 1)); it != wildcard_.end()) {
      return &contexts_[it->second];
    }
  }
  return nullptr;
}

int ServerContexts::on_server_name(SSL* ssl, int* alert, void* arg) {
  auto* self = static_cast<const ServerContexts*>(arg);
  if (self == nullptr) return SSL_TLSEXT_ERR_NOACK;
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_NOACK;  // no SNI: the default certificate
  const Entry* entry = self->for_name(name);
  if (entry == nullptr) {
    if (self->reject_unknown_names_) {
      *alert = SSL_AD_UNRECOGNIZED_NAME;
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
  }
  if (entry->ctx != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, entry->ctx);
  return SSL_TLSEXT_ERR_OK;
}

int ServerContexts::on_ocsp_status(SSL* ssl, void* arg) {
  auto* self = static_cast<const ServerContexts*>(arg);
  if (self == nullptr) return SSL_TLSEXT_ERR_NOACK;
  const Entry* entry = self->find(SSL_get_SSL_CTX(ssl));
  if (entry->ocsp.empty()) return SSL_TLSEXT_ERR_NOACK;
  auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(entry->ocsp.size()));
  if (copy == nullptr) return SSL_TLSEXT_ERR_NOACK;
  std::memcpy(copy, entry->ocsp.data(), entry->ocsp.size());
  SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(entry->ocsp.size()));
  return SSL_TLSEXT_ERR_OK;
}

// ------------------------------------------------------------------------- client contexts

std::shared_ptr<const ClientContexts> ClientContexts::build(
    const config::Config& config, std::vector<config::Diagnostic>& errors) {
  if (config.upstream_tls.empty() && !mentions_https(config)) return nullptr;
  std::shared_ptr<ClientContexts> out(new ClientContexts);
  // One context per distinct CA file (verification itself is per connection).
  std::unordered_map<std::string, SSL_CTX*> by_ca;
  auto context_for = [&](const config::UpstreamTlsConfig& u) -> SSL_CTX* {
    if (auto it = by_ca.find(u.ca_file); it != by_ca.end()) return it->second;
    std::string why;
    SSL_CTX* ctx = new_context(u, why);
    if (ctx == nullptr) {
      errors.push_back({u.where, why});
      return nullptr;
    }
    out->owned_.push_back(ctx);
    by_ca.emplace(u.ca_file, ctx);
    return ctx;
  };
  config::UpstreamTlsConfig global;
  for (const config::UpstreamTlsConfig& u : config.upstream_tls) {
    if (u.farm.empty()) global = u;
  }
  size_t before = errors.size();
  out->global_ = {context_for(global), global.verify_certificate};
  for (const config::UpstreamTlsConfig& u : config.upstream_tls) {
    if (u.farm.empty()) continue;
    out->farms_[lower(u.farm)] = {context_for(u), u.verify_certificate};
  }
  if (errors.size() != before) return nullptr;
  return out;
}

// A client context with what every outbound TLS connection of Harrow's shares: TLS 1.2 or
// later, no renegotiation or compression, HTTP/1.1 by ALPN. Null (and `why`) on failure.
static SSL_CTX* new_http11_client_context(std::string& why) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) {
    why = "cannot make a TLS context: " + openssl_errors();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_protos(ctx, kAlpnHttp11, sizeof kAlpnHttp11);
  return ctx;
}

SSL_CTX* ClientContexts::new_context(const config::UpstreamTlsConfig& u, std::string& why) {
  SSL_CTX* ctx = new_http11_client_context(why);
  if (ctx == nullptr) return nullptr;
  // Sessions are kept by the worker per server (WorkerServer), not in the context.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  int ok;
  if (u.ca_file.empty()) {
    // The system store, its bundle read now (not by a worker during its first handshake).
    ok = SSL_CTX_set_default_verify_paths(ctx);
    SSL_CTX_load_verify_locations(ctx, X509_get_default_cert_file(), nullptr);
    ERR_clear_error();  // no bundle file: the hashed directory still serves
  } else {
    ok = SSL_CTX_load_verify_locations(ctx, u.ca_file.c_str(), nullptr);
  }
  if (ok != 1) {
    why = "cannot load caFile " + u.ca_file + ": " + openssl_errors();
    SSL_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

ClientContexts::~ClientContexts() {
  for (SSL_CTX* ctx : owned_) SSL_CTX_free(ctx);
}

const ClientContexts::UpstreamTls& ClientContexts::for_farm(std::string_view name) const {
  if (!farms_.empty()) {
    if (auto it = farms_.find(lower(name)); it != farms_.end()) return it->second;
  }
  return global_;
}

SSL_CTX* new_fleet_context(const config::FleetConfig& fleet, std::string& why) {
  SSL_CTX* ctx = new_http11_client_context(why);
  if (ctx == nullptr) return nullptr;
  if (SSL_CTX_load_verify_locations(ctx, fleet.ca_file.c_str(), nullptr) != 1) {
    why = "cannot load caFile " + fleet.ca_file + ": " + openssl_errors();
    SSL_CTX_free(ctx);
    return nullptr;
  }
  if (!fleet.certificate_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, fleet.certificate_file.c_str()) != 1) {
      why = "cannot load certificateFile " + fleet.certificate_file + ": " + openssl_errors();
    } else if (SSL_CTX_use_PrivateKey_file(ctx, fleet.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      why = "cannot load keyFile " + fleet.key_file + ": " + openssl_errors();
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
      why =
          "keyFile " + fleet.key_file + " does not match certificateFile " + fleet.certificate_file;
    }
    if (!why.empty()) {
      ERR_clear_error();
      SSL_CTX_free(ctx);
      return nullptr;
    }
  }
  return ctx;
}

std::vector<config::Diagnostic> check(const config::Config& config) {
  std::vector<config::Diagnostic> errors;
  ServerContexts::build(config, errors);
  ClientContexts::build(config, errors);
  if (config.fleet.enabled && config.fleet.tls) {
    std::string why;
    SSL_CTX* ctx = new_fleet_context(config.fleet, why);
    if (ctx == nullptr) errors.push_back({config.fleet.where, why});
    SSL_CTX_free(ctx);
  }
  return errors;
}

int alpn_h2_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

}  // namespace harrow::tls

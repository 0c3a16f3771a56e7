#include "tls_front.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string_view>
#include <thread>

namespace origin {
namespace {

bool write_all(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = ::write(fd, data, len);
    if (n <= 0) return false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

int connect_backend(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  if (getaddrinfo(host.c_str(), service.c_str(), &hints, &res) != 0 || res == nullptr) return -1;
  int fd = ::socket(res->ai_family, SOCK_STREAM, 0);
  if (fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return fd;
}

void relay(SSL_CTX* ctx, int client, std::string host, int backend_port) {
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, client);
  int backend = -1;
  if (SSL_accept(ssl) == 1) backend = connect_backend(host, backend_port);
  char buf[16384];
  while (backend >= 0) {
    if (SSL_pending(ssl) == 0) {
      pollfd fds[2] = {{client, POLLIN, 0}, {backend, POLLIN, 0}};
      if (::poll(fds, 2, 120'000) <= 0) break;
      if (fds[1].revents != 0) {
        ssize_t n = ::read(backend, buf, sizeof buf);
        if (n <= 0 || SSL_write(ssl, buf, static_cast<int>(n)) <= 0) break;
      }
      if (fds[0].revents == 0) continue;
    }
    int n = SSL_read(ssl, buf, sizeof buf);
    if (n <= 0) {
      if (SSL_get_error(ssl, n) == SSL_ERROR_WANT_READ) continue;
      break;
    }
    if (!write_all(backend, buf, static_cast<size_t>(n))) break;
  }
  if (backend >= 0) {
    SSL_shutdown(ssl);
    ::close(backend);
  }
  SSL_free(ssl);
  ::close(client);
  ERR_clear_error();
}

// `arg` is the TlsFrontOptions::alpn string, which lives as long as the SSL_CTX (never freed).
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void* arg) {
  const auto* want = static_cast<const std::string*>(arg);
  for (unsigned int i = 0; i < inlen;) {
    unsigned int len = in[i];
    if (i + 1 + len > inlen) break;
    if (std::string_view(reinterpret_cast<const char*>(in + i + 1), len) == *want) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

int start_tls_front(const TlsFrontOptions& options, std::string& error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    error = "cannot load " + options.cert_file + " / " + options.key_file;
    return -1;
  }
  if (!options.client_ca_file.empty()) {
    SSL_CTX_load_verify_locations(ctx, options.client_ca_file.c_str(), nullptr);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  if (!options.alpn.empty()) {
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, new std::string(options.alpn));
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string service = std::to_string(options.port);
  if (getaddrinfo(options.host.c_str(), service.c_str(), &hints, &res) != 0 || res == nullptr) {
    error = "cannot resolve " + options.host;
    return -1;
  }
  int fd = ::socket(res->ai_family, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 512) != 0) {
    error = std::string("cannot listen for TLS: ") + std::strerror(errno);
    freeaddrinfo(res);
    return -1;
  }
  freeaddrinfo(res);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  int port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                         : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  std::string host = options.host;
  int backend_port = options.backend_port;
  std::thread([fd, ctx, host, backend_port] {
    for (;;) {
      int client = ::accept(fd, nullptr, nullptr);
      if (client < 0) continue;
      std::thread(relay, ctx, client, host, backend_port).detach();
    }
  }).detach();
  return port;
}

}  // namespace origin

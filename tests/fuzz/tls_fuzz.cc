// The TLS record → HTTP path: a server tls::Session (the one https listeners run) fed either
// raw bytes as ciphertext (first input byte even: garbage handshakes must fail cleanly, never
// crash) or, after a real handshake with an OpenSSL client over memory, the input as
// application data in records of a size the second byte picks. Oracle for the second mode:
// the plaintext that comes out of decrypt() is exactly what the client sent (however the
// records split it), it gets the same decision from the request path (request_driver.h) as
// the bytes fed to that path directly, and a response written through the session's
// WriteFilter decrypts on the client to the same bytes.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "core/base/io_buffer.h"
#include "core/tls/tls_context.h"
#include "core/tls/tls_session.h"
#include "request_driver.h"

namespace {

using harrow::InputBuffer;
using harrow::OutBatch;
namespace tls = harrow::tls;

// A self-signed P-256 certificate written once to /tmp, loaded the way a listener loads it.
std::shared_ptr<const tls::ServerContexts> server_contexts() {
  static std::shared_ptr<const tls::ServerContexts> contexts = [] {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("fuzz.test"), -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    X509_sign(cert, key, EVP_sha256());
    std::string path = "/tmp/harrow-tls-fuzz-" + std::to_string(getpid()) + ".pem";
    FILE* f = std::fopen(path.c_str(), "w");
    PEM_write_X509(f, cert);
    PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    X509_free(cert);
    EVP_PKEY_free(key);
    harrow::config::Config config;
    config.certificates.push_back({.host = "fuzz.test", .certificate_file = path});
    std::vector<harrow::config::Diagnostic> errors;
    auto built = tls::ServerContexts::build(config, errors);
    std::remove(path.c_str());
    if (!built) __builtin_trap();
    return built;
  }();
  return contexts;
}

// The server side: a session writing to one end of a socket pair, as a connection's would.
struct Server {
  uv_loop_t loop{};
  uv_pipe_t pipe{};
  int peer = -1;  // the other end: what the server wrote is read here
  std::unique_ptr<OutBatch> out;
  std::unique_ptr<tls::Session> session;
  InputBuffer plain;

  static void on_write(uv_write_t* req, int) {
    harrow::write_request_finish(req);
    static_cast<Server*>(req->handle->data)->out->write_done();
  }

  Server() {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) __builtin_trap();
    int big = 4 << 20;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    uv_loop_init(&loop);
    uv_pipe_init(&loop, &pipe, 0);
    uv_pipe_open(&pipe, fds[0]);
    pipe.data = this;
    peer = fds[1];
    auto* stream = reinterpret_cast<uv_stream_t*>(&pipe);
    out = std::make_unique<OutBatch>(stream, &Server::on_write);
    session = tls::Session::accept(server_contexts(), stream, &Server::on_write, out.get());
    out->set_filter(session.get());
  }
  ~Server() {
    plain.release();
    out->clear();
    uv_close(reinterpret_cast<uv_handle_t*>(&pipe), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);  // queued writes complete (cancelled) before the close
    session.reset();
    uv_loop_close(&loop);
    ::close(peer);
  }

  // Feeds ciphertext and decrypts what can be.
  tls::Session::Status feed(const char* data, size_t len) {
    tls::Session::Status status = tls::Session::Status::Ok;
    while (len > 0 && status == tls::Session::Status::Ok) {
      uv_buf_t room = session->read_buffer();
      if (room.len == 0) break;
      size_t n = std::min<size_t>(len, room.len);
      std::memcpy(room.base, data, n);
      session->received(n);
      data += n;
      len -= n;
      status = session->decrypt(plain);
      uv_run(&loop, UV_RUN_NOWAIT);
    }
    return status;
  }

  // What the server wrote so far.
  std::string written() {
    uv_run(&loop, UV_RUN_NOWAIT);
    std::string out_bytes;
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(peer, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) break;
      out_bytes.append(buf, static_cast<size_t>(n));
    }
    return out_bytes;
  }

  std::string take_plaintext() {
    std::string text;
    if (plain.block != nullptr) {
      text.assign(plain.parse_begin(), plain.unconsumed());
      plain.parse_pos = plain.fill;
    }
    return text;
  }
};

// An OpenSSL client over memory BIOs.
struct Client {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = nullptr;
  BIO* in = BIO_new(BIO_s_mem());   // from the server
  BIO* out = BIO_new(BIO_s_mem());  // to the server
  Client() {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    ssl = SSL_new(ctx);
    SSL_set_bio(ssl, in, out);
    SSL_set_connect_state(ssl);
    SSL_set_tlsext_host_name(ssl, "fuzz.test");
  }
  ~Client() {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
  std::string pending() {
    std::string bytes;
    char buf[16384];
    int n;
    while ((n = BIO_read(out, buf, sizeof buf)) > 0) bytes.append(buf, static_cast<size_t>(n));
    return bytes;
  }
};

bool handshake(Client& client, Server& server) {
  for (int round = 0; round < 8; ++round) {
    int rc = SSL_do_handshake(client.ssl);
    std::string to_server = client.pending();
    if (!to_server.empty() &&
        server.feed(to_server.data(), to_server.size()) != tls::Session::Status::Ok) {
      return false;
    }
    std::string to_client = server.written();
    BIO_write(client.in, to_client.data(), static_cast<int>(to_client.size()));
    if (rc == 1 && server.session->handshake_done()) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  if (data[0] % 2 == 0) {
    // Garbage (or a mutated handshake) as ciphertext: any status, no crash, bounded output.
    Server server;
    server.feed(reinterpret_cast<const char*>(data + 1), size - 1);
    server.written();
    return 0;
  }
  size_t record = 1 + data[1] % 200;
  std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);
  Server server;
  Client client;
  if (!handshake(client, server)) __builtin_trap();
  std::string received;
  for (size_t at = 0; at < input.size(); at += record) {
    std::string_view piece = input.substr(at, record);
    if (SSL_write(client.ssl, piece.data(), static_cast<int>(piece.size())) <= 0) {
      __builtin_trap();
    }
    std::string records = client.pending();
    if (server.feed(records.data(), records.size()) != tls::Session::Status::Ok) {
      __builtin_trap();
    }
    received += server.take_plaintext();
  }
  if (received != input) __builtin_trap();
  // The request path decides the same on the decrypted bytes as on the plain ones.
  harrow::RequestLimits limits;
  harrow::testing::RequestDriver over_tls(limits);
  harrow::testing::RequestDriver plain(limits);
  harrow::testing::Decision a = over_tls.run(received, received.size());
  harrow::testing::Decision b = plain.run(input, input.size());
  if (a.forwarded != b.forwarded || a.rejected != b.rejected || a.upstream != b.upstream) {
    __builtin_trap();
  }
  // A response written through the WriteFilter decrypts on the client to the same bytes.
  harrow::IoBlock* block = harrow::block_acquire();
  size_t n = std::min<size_t>(input.size(), harrow::IoBlock::kCapacity);
  std::memcpy(block->data, input.data(), n);
  server.out->add(block, block->data, n);
  server.out->add_static("\r\n");
  harrow::block_unref(block);
  server.out->flush();
  std::string ciphertext = server.written();
  BIO_write(client.in, ciphertext.data(), static_cast<int>(ciphertext.size()));
  std::string echoed;
  char buf[16384];
  int got;
  while ((got = SSL_read(client.ssl, buf, sizeof buf)) > 0) echoed.append(buf, got);
  if (echoed != std::string(input.substr(0, n)) + "\r\n") __builtin_trap();
  return 0;
}

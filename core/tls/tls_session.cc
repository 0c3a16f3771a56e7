#include "core/tls/tls_session.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include <cstring>

#include "core/tls/tls_context.h"

namespace harrow::tls {
namespace {

// A TLS record carries at most 16 KiB of plaintext: small buffers (a response head, chunk-size
// lines) are gathered up to that so they share records instead of each costing one.
constexpr size_t kRecordPlaintext = 16 * 1024;

}  // namespace

BIO_METHOD* Session::bio_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "harrow-iobuffer");
    BIO_meth_set_read(m, &Session::bio_read);
    BIO_meth_set_write(m, &Session::bio_write);
    BIO_meth_set_ctrl(m, &Session::bio_ctrl);
    BIO_meth_set_create(m, [](BIO* bio) {
      BIO_set_init(bio, 1);
      return 1;
    });
    return m;
  }();
  return method;
}

int Session::bio_read(BIO* bio, char* data, int len) {
  auto* self = static_cast<Session*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  InputBuffer& in = self->cipher_in_;
  uint32_t available = in.block != nullptr ? in.unconsumed() : 0;
  if (available == 0) {
    BIO_set_retry_read(bio);
    return -1;
  }
  uint32_t n = std::min<uint32_t>(available, static_cast<uint32_t>(len));
  std::memcpy(data, in.parse_begin(), n);
  in.parse_pos += n;
  return static_cast<int>(n);
}

int Session::bio_write(BIO* bio, const char* data, int len) {
  auto* self = static_cast<Session*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  size_t left = static_cast<size_t>(len);
  while (left > 0) {
    if (self->pending_.empty() || self->pending_.back().len == IoBlock::kCapacity) {
      self->pending_.push_back({block_acquire(), 0});
    }
    Pending& tail = self->pending_.back();
    size_t n = std::min<size_t>(left, IoBlock::kCapacity - tail.len);
    std::memcpy(tail.block->data + tail.len, data, n);
    tail.len += static_cast<uint32_t>(n);
    data += n;
    left -= n;
  }
  return len;
}

long Session::bio_ctrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

Session::Session(SSL* ssl, uv_stream_t* stream, uv_write_cb cb, OutBatch* out)
    : ssl_(ssl), stream_(stream), cb_(cb), out_(out) {
  BIO* bio = BIO_new(bio_method());
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);  // one BIO both ways; SSL_free frees it
}

std::unique_ptr<Session> Session::accept(std::shared_ptr<const ServerContexts> contexts,
                                         uv_stream_t* stream, uv_write_cb cb, OutBatch* out,
                                         bool offer_h2) {
  SSL* ssl = SSL_new(contexts->initial());
  if (ssl == nullptr) return nullptr;
  static int offer = 1;
  if (offer_h2) SSL_set_ex_data(ssl, alpn_h2_index(), &offer);
  SSL_set_accept_state(ssl);
  std::unique_ptr<Session> session(new Session(ssl, stream, cb, out));
  session->server_contexts_ = std::move(contexts);
  return session;
}

std::unique_ptr<Session> Session::connect(SSL_CTX* ctx, const std::string& server_name, bool verify,
                                          SSL_SESSION* resume, uv_stream_t* stream, uv_write_cb cb,
                                          OutBatch* out, std::string_view alpn) {
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return nullptr;
  SSL_set_connect_state(ssl);
  if (!alpn.empty()) {
    // The ALPN wire format: each protocol name after its length byte.
    std::string wire(1, static_cast<char>(alpn.size()));
    wire.append(alpn);
    SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned>(wire.size()));
  }
  // SNI carries host names only, never IP literals (RFC 6066).
  unsigned char ip[16];
  bool is_ip = inet_pton(AF_INET, server_name.c_str(), ip) == 1 ||
               inet_pton(AF_INET6, server_name.c_str(), ip) == 1;
  if (!is_ip) SSL_set_tlsext_host_name(ssl, server_name.c_str());
  if (verify) {
    SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
    if (is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_name.c_str());
    } else {
      SSL_set1_host(ssl, server_name.c_str());
    }
  } else {
    SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
  }
  if (resume != nullptr) SSL_set_session(ssl, resume);
  std::unique_ptr<Session> session(new Session(ssl, stream, cb, out));
  // The ClientHello goes out now; the rest of the handshake follows the server's answers.
  int rc = SSL_do_handshake(ssl);
  if (rc != 1 && SSL_get_error(ssl, rc) != SSL_ERROR_WANT_READ) return nullptr;
  if (session->send_pending() != 0) return nullptr;
  return session;
}

Session::~Session() {
  SSL_free(ssl_);
  cipher_in_.release();
  for (Pending& p : pending_) block_unref(p.block);
}

void Session::record_error(int rc) {
  int err = SSL_get_error(ssl_, rc);
  char buf[256];
  unsigned long e = ERR_peek_last_error();
  if (e != 0) {
    ERR_error_string_n(e, buf, sizeof buf);
    error_ = buf;
  } else if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_SSL) {
    error_ = "unexpected end of the TLS stream";
  } else {
    error_ = "TLS error " + std::to_string(err);
  }
  long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK) {
    error_ += std::string(" (certificate: ") + X509_verify_cert_error_string(verify) + ")";
  }
  ERR_clear_error();
}

Session::Status Session::decrypt(InputBuffer& in) {
  if (!first_bytes_seen_ && cipher_in_.block != nullptr && cipher_in_.unconsumed() > 0) {
    first_bytes_seen_ = true;
    // A handshake record starts with 0x16; a request line with an upper-case method.
    unsigned char first = static_cast<unsigned char>(*cipher_in_.parse_begin());
    if (SSL_is_server(ssl_) && first >= 'A' && first <= 'Z') return Status::PlainHttp;
  }
  Status status = Status::Ok;
  for (;;) {
    uv_buf_t room = in.next_read_buffer();
    if (room.len == 0) break;
    size_t got = 0;
    int rc = SSL_read_ex(ssl_, room.base, room.len, &got);
    if (rc == 1) {
      in.commit(got);
      // Everything read is decrypted: skip the call that would only say "want more".
      if (cipher_in_.unconsumed() == 0 && SSL_has_pending(ssl_) == 0) break;
      continue;
    }
    int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ) break;
    if (err == SSL_ERROR_ZERO_RETURN) {
      status = Status::Closed;
    } else {
      record_error(rc);
      status = Status::Failed;
    }
    break;
  }
  if (send_pending() != 0 && status == Status::Ok) status = Status::Failed;
  cipher_in_.release_if_drained();
  return status;
}

bool Session::has_buffered() const {
  return SSL_pending(ssl_) > 0 || (cipher_in_.block != nullptr && cipher_in_.unconsumed() > 0);
}

void Session::shutdown() {
  if (SSL_is_init_finished(ssl_) == 1) SSL_shutdown(ssl_);
  ERR_clear_error();
  send_pending();
}

int Session::write(const uv_buf_t* bufs, int count) {
  char staging[kRecordPlaintext];
  size_t staged = 0;
  bool failed = false;
  auto seal = [&](const char* data, size_t len) {
    size_t written = 0;
    if (len != 0 && SSL_write_ex(ssl_, data, len, &written) != 1) failed = true;
  };
  for (int i = 0; i < count && !failed; ++i) {
    const uv_buf_t& b = bufs[i];
    if (staged + b.len <= sizeof staging) {
      std::memcpy(staging + staged, b.base, b.len);
      staged += b.len;
      continue;
    }
    seal(staging, staged);
    staged = 0;
    if (b.len < sizeof staging / 2) {
      std::memcpy(staging, b.base, b.len);
      staged = b.len;
    } else {
      seal(b.base, b.len);
    }
  }
  if (!failed) seal(staging, staged);
  if (failed) ERR_clear_error();
  int rc = send_pending();
  return failed ? UV_EPROTO : rc;
}

int Session::send_pending() {
  size_t i = 0;
  int rc = 0;
  while (i < pending_.size() && rc == 0) {
    WriteRequest* w = write_request_new(out_);
    uv_buf_t bufs[WriteRequest::kMaxBlocks];
    int n = 0;
    for (; i < pending_.size() && n < WriteRequest::kMaxBlocks; ++i, ++n) {
      bufs[n] = uv_buf_init(pending_[i].block->data, pending_[i].len);
      write_request_adopt(w, pending_[i].block);  // the write request owns the reference now
    }
    int first = 0;
    int written = uv_try_write(stream_, bufs, static_cast<unsigned>(n));
    if (written > 0) {
      size_t left = static_cast<size_t>(written);
      while (first < n && left >= bufs[first].len) {
        left -= bufs[first].len;
        ++first;
      }
      if (first < n) {
        bufs[first].base += left;
        bufs[first].len -= static_cast<unsigned>(left);
      }
    }
    if (first == n) {
      write_request_finish(&w->req);
      continue;
    }
    rc = uv_write(&w->req, stream_, bufs + first, static_cast<unsigned>(n - first), cb_);
    if (rc != 0) {
      write_request_finish(&w->req);
    } else {
      out_->write_started();
    }
  }
  for (; i < pending_.size(); ++i) block_unref(pending_[i].block);
  pending_.clear();
  return rc;
}

const std::string& Session::arr_ssl() {
  if (!headers_made_) make_headers();
  return arr_ssl_;
}

const std::string& Session::client_certificate() {
  if (!headers_made_) make_headers();
  return client_certificate_;
}

void Session::make_headers() {
  headers_made_ = true;
  if (server_contexts_) {
    SSL_CTX* ctx = SSL_get_SSL_CTX(ssl_);
    arr_ssl_ = server_contexts_->arr_ssl_key_bits(ctx);
    arr_ssl_ += std::to_string(SSL_get_cipher_bits(ssl_, nullptr));
    arr_ssl_ += server_contexts_->arr_ssl_names(ctx);
  }
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (cert == nullptr) return;
  int len = i2d_X509(cert, nullptr);
  if (len <= 0) return;
  std::string der(static_cast<size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509(cert, &p);
  client_certificate_.assign(static_cast<size_t>(4 * ((len + 2) / 3)) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(client_certificate_.data()),
                          reinterpret_cast<const unsigned char*>(der.data()), len);
  client_certificate_.resize(static_cast<size_t>(n));
}

}  // namespace harrow::tls

// One TLS connection run on the event loop, without blocking: OpenSSL reads ciphertext from
// and writes ciphertext to memory (custom BIOs over IoBlocks), never from the socket. The
// connection reads the socket into read_buffer(), hands plaintext to its parser through
// decrypt(), and its OutBatch encrypts every batch through write() (a WriteFilter) before one
// uv_write, so backpressure (the stream's write queue) and write callbacks work as for plain TCP.
#pragma once

#include <openssl/ssl.h>
#include <uv.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/io_buffer.h"

namespace harrow::tls {

class ServerContexts;

class Session final : public WriteFilter {
 public:
  // Accepting side: starts on `contexts`' default certificate (SNI switches it).
  // `offer_h2`: ALPN prefers h2 (then http/1.1); alpn() says what was chosen.
  static std::unique_ptr<Session> accept(std::shared_ptr<const ServerContexts> contexts,
                                         uv_stream_t* stream, uv_write_cb cb, OutBatch* out,
                                         bool offer_h2 = false);
  // Connecting side: SNI = `server_name`; with `verify`, the certificate must chain to the
  // context's CAs and name `server_name`. `resume` (may be null) is a session to resume.
  // `alpn` (may be empty): the one protocol offered by ALPN ("h2"); alpn() says if chosen.
  static std::unique_ptr<Session> connect(SSL_CTX* ctx, const std::string& server_name, bool verify,
                                          SSL_SESSION* resume, uv_stream_t* stream, uv_write_cb cb,
                                          OutBatch* out, std::string_view alpn = {});
  ~Session() override;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // For libuv's alloc callback: room for ciphertext (empty when the buffered ciphertext
  // waits for room in the plaintext buffer).
  uv_buf_t read_buffer() { return cipher_in_.next_read_buffer(); }
  void received(size_t n) { cipher_in_.commit(n); }
  // Drops the ciphertext read so far (a connection that is only draining its input).
  void discard_input() { cipher_in_.release(); }

  enum class Status {
    Ok,         // progress or nothing to do yet (want more ciphertext)
    Closed,     // the peer sent close_notify
    Failed,     // handshake or record failure: close the connection
    PlainHttp,  // the first bytes are an HTTP request, not a TLS handshake
  };
  // Runs the handshake and decrypts into `in` as far as its free space and the buffered
  // ciphertext allow. Handshake output is written at once (through the OutBatch's stream).
  Status decrypt(InputBuffer& in);
  // Plaintext or ciphertext still buffered here (decrypt() can make progress without a read).
  bool has_buffered() const;
  // A byte tunnel's read: decrypts everything buffered into `in` and hands each run of
  // plaintext to `forward(data, len)`, consuming it; `forward` returns false once the tunnel
  // has ended (nothing of `in` or this session may be touched then). Returns Ok when all was
  // forwarded or the tunnel ended, Closed on the peer's close_notify, else the failure.
  template <typename Forward>
  Status decrypt_forwarding(InputBuffer& in, Forward&& forward) {
    do {
      Status status = decrypt(in);
      if (in.block != nullptr && in.unconsumed() > 0) {
        const char* data = in.parse_begin();
        size_t len = in.unconsumed();
        in.parse_pos = in.fill;
        if (!forward(data, len)) return Status::Ok;
      }
      if (status != Status::Ok) return status;
    } while (has_buffered());
    return Status::Ok;
  }
  bool handshake_done() const { return SSL_is_init_finished(ssl_) == 1; }
  // Queues close_notify (written with the next flush).
  void shutdown();
  // Why a handshake failed (OpenSSL's reason), for the logs.
  const std::string& error() const { return error_; }

  // WriteFilter: encrypts `bufs` and writes the records.
  int write(const uv_buf_t* bufs, int count) override;
  // Writes the ciphertext OpenSSL produced on its own (handshake, tickets, alerts).
  int send_pending();

  SSL* ssl() const { return ssl_; }
  // The protocol ALPN chose ("h2", "http/1.1"), or empty.
  std::string_view alpn() const {
    const unsigned char* p = nullptr;
    unsigned int len = 0;
    SSL_get0_alpn_selected(ssl_, &p, &len);
    return std::string_view(reinterpret_cast<const char*>(p), len);
  }
  // X-ARR-SSL: "keybits|cipherbits|issuer DN|subject DN" of the certificate presented
  // (computed once per connection).
  const std::string& arr_ssl();
  // X-ARR-ClientCert: the client's certificate, base64 DER; empty without one.
  const std::string& client_certificate();
  // For upstream sessions: the session to resume the next connection with (owned by caller).
  SSL_SESSION* take_session() { return SSL_get1_session(ssl_); }

 private:
  Session(SSL* ssl, uv_stream_t* stream, uv_write_cb cb, OutBatch* out);
  static BIO_METHOD* bio_method();
  static int bio_read(BIO* bio, char* data, int len);
  static int bio_write(BIO* bio, const char* data, int len);
  static long bio_ctrl(BIO* bio, int cmd, long num, void* ptr);
  void record_error(int rc);

  SSL* ssl_;
  std::shared_ptr<const ServerContexts> server_contexts_;  // keeps SNI's map alive
  uv_stream_t* stream_;
  uv_write_cb cb_;
  OutBatch* out_;
  InputBuffer cipher_in_;  // ciphertext read from the socket, consumed by OpenSSL
  // Ciphertext OpenSSL wrote, waiting to be sent: full blocks, then the one being filled.
  struct Pending {
    IoBlock* block;
    uint32_t len;
  };
  std::vector<Pending> pending_;
  bool first_bytes_seen_ = false;
  bool headers_made_ = false;
  std::string arr_ssl_;
  std::string client_certificate_;
  void make_headers();
  std::string error_;
};

}  // namespace harrow::tls

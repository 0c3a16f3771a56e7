// harrow-origin's TLS mode: an https port in front of the origin's own plain port. Each TLS
// connection gets a thread that terminates TLS (blocking OpenSSL) and relays the plaintext over
// a TCP connection to the plain port, so every per-request control works the same over https.
// A test tool: threads and blocking calls are fine here, unlike in Harrow.
#pragma once

#include <netinet/in.h>

#include <string>

namespace origin {

struct TlsFrontOptions {
  std::string cert_file;  // PEM certificate (chain)
  std::string key_file;   // PEM private key
  std::string host;       // address to listen on
  int port = 0;           // 0 = any free port
  int backend_port = 0;   // the origin's plain port on the same host
  // When set, clients must present a certificate signed by this CA.
  std::string client_ca_file;
  // When set, the one ALPN protocol the front selects (e.g. "h2"); a client that does not offer
  // it gets no ALPN answer.
  std::string alpn;
};

// Binds and starts accepting in a background thread. Returns the bound port, or -1 with
// `error` set.
int start_tls_front(const TlsFrontOptions& options, std::string& error);

}  // namespace origin

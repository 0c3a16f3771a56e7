// harrow-origin: a small, fast HTTP/1.1 origin server for Harrow's tests, demo and benchmarks.
//
//   harrow-origin --listen HOST:PORT [--name NAME] [--workers N] [--delay MS]
//
// Every request is answered with a small text body (the origin's name) unless the request asks
// for something else through query parameters or `X-Origin-<Param>` request headers (the header
// wins when both are given): status=, bytes=, chunked=, delay=, close=, abort=, hang=, echo=,
// header=. See kUsage below for the exact semantics. Every response also reports what the origin
// saw (request body bytes, request number on the connection, connection id), and two
// introspection paths (/_origin/stats, /_origin/headers) let tests count upstream connections
// and inspect what the proxy forwarded.
//
// Design notes:
//  * One uv_loop per worker thread; with --workers > 1 every worker owns its own listening socket
//    bound with SO_REUSEPORT, so the kernel load-balances accepted connections and the workers
//    share nothing but a few atomic counters.
//  * Requests on a connection are answered strictly in order. While a response is outstanding the
//    llhttp parser is paused (HPE_PAUSED from on_message_complete) and later pipelined bytes wait
//    in a small per-connection buffer; reading stops when that buffer fills up.
//  * Nothing is ever buffered in proportion to a body: request bodies are counted (or echoed) as
//    they stream through, `bytes=` bodies are slices of one static pattern buffer, and every body
//    producer only queues more data while libuv's write queue is below a bound.
//  * Small responses go out as a single uv_write (head and body in one allocation from a per-worker
//    free list), which keeps the keep-alive fast path cheap.
//  * libuv owns a handle until its close callback runs, so a connection is freed only after the
//    close callbacks of both of its handles (socket and timer) have fired.

#include <llhttp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/base/ascii.h"
#include "tls_front.h"

namespace {

constexpr const char* kUsage =
    "usage: harrow-origin --listen HOST:PORT [--name NAME] [--workers N] [--delay MS]\n"
    "                     [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]\n"
    "  --tls-cert/--tls-key  also listen on an https port (printed second) in front of the\n"
    "                        plain one; --tls-client-ca asks clients for a certificate\n"
    "  --delay MS    default delay= for every request (a slow server)\n"
    "\n"
    "Per-request controls (query parameter, or request header X-Origin-<Param>; header wins):\n"
    "  status=N      respond with status N (100..999)\n"
    "  bytes=N       body of N bytes, 'a'..'z' repeating (byte i is 'a' + i % 26)\n"
    "  chunked=1     send the body with Transfer-Encoding: chunked (16 KiB chunks)\n"
    "  delay=MS      wait MS milliseconds before sending the response head\n"
    "  close=1       send Connection: close and close after the response\n"
    "  abort=N       send the head and only N body bytes, then reset the connection\n"
    "  hang=1        read the request and never answer\n"
    "  echo=1        stream the request body back\n"
    "  header=N:V    add response header N: V (repeatable)\n"
    "Special paths: /_origin/stats (JSON counters), /_origin/headers (request as received),\n"
    "  /_origin/ws    a WebSocket upgrade (RFC 6455 handshake) answered 101, then every byte\n"
    "                received is echoed raw; hello=TEXT is sent right behind the 101 head, and\n"
    "                a read ending in \"BYE\\n\" is echoed and then the origin sends FIN;\n"
    "                one ending in \"RST\\n\" resets the connection instead.\n";

// ---- Tunables ------------------------------------------------------------------------------

constexpr size_t kReadBufferSize = 64 * 1024;  // One per worker, shared by all its connections.
constexpr size_t kPieceSize = 64 * 1024;       // bytes= body slice per uv_write.
constexpr size_t kChunkSize = 16 * 1024;       // Chunk size for chunked=1.
// A body producer (bytes=) only queues another piece while fewer unsent bytes than this wait in
// the socket's write queue; the write callback resumes it. This is what bounds memory for 1 GiB
// responses to slow readers.
constexpr size_t kPumpWater = 512 * 1024;
// Stop reading from a client while this much response data is unsent (echo=1 or a pipelining
// client that does not read), and resume once it drained below the low-water mark.
constexpr size_t kReadHighWater = 1024 * 1024;
constexpr size_t kReadLowWater = 256 * 1024;
// Pipelined input kept while a response is outstanding; reading pauses above this.
constexpr size_t kMaxBufferedInput = 64 * 1024;
// After a graceful close (FIN sent) keep reading and discarding for this long, so unread request
// bytes do not make the kernel answer with an RST that could destroy the response in flight.
constexpr uint64_t kLingerMs = 2000;
// Inline storage of pooled write requests: fits the head plus a small body.
constexpr size_t kSmallInline = 1024;
constexpr size_t kMaxPooledWrites = 256;
// Room for chunk framing ("<hex>\r\n" ... "\r\n" plus the "0\r\n\r\n" terminator).
constexpr size_t kFramingSlack = 32;

// ---- Process-wide state ----------------------------------------------------------------------

std::string g_name = "origin";
int64_t g_default_delay = -1;  // --delay: every response waits this long unless told otherwise
// Counters reported by /_origin/stats, shared by all workers.
std::atomic<uint64_t> g_accepted{0};
std::atomic<uint64_t> g_open{0};
std::atomic<uint64_t> g_requests{0};
llhttp_settings_t g_settings;

// The bytes= body: byte i of a body is 'a' + i % 26, so a slice starting at body offset `off` is
// g_pattern + off % 26. The extra 26 bytes let any such slice be a full kPieceSize long.
char g_pattern[kPieceSize + 26];

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// ---- Small helpers ---------------------------------------------------------------------------

using harrow::hex_value;
using harrow::iequals;
using harrow::istarts_with;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void append_uint(std::string& out, uint64_t v, int base = 10) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof(buf), v, base);
  out.append(buf, res.ptr);
}

bool parse_uint(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  auto res = std::from_chars(s.data(), s.data() + s.size(), out);
  return res.ec == std::errc() && res.ptr == s.data() + s.size();
}

// Returns 1/0 for a boolean control, -1 when the value is not recognisable.
int parse_bool(std::string_view s) {
  if (s.empty() || s == "1" || iequals(s, "true") || iequals(s, "yes") || iequals(s, "on")) {
    return 1;  // A bare `?close` means "yes".
  }
  if (s == "0" || iequals(s, "false") || iequals(s, "no") || iequals(s, "off")) return 0;
  return -1;
}

// Query-string decoding: %XX escapes and '+' as space, into a reused scratch string.
void url_decode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%' && i + 2 < in.size()) {
      int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        c = static_cast<char>(hi * 16 + lo);
        i += 2;
      }
    }
    out.push_back(c);
  }
}

bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

struct Reason {
  int status;
  std::string_view text;
};
// Sorted by status, for the binary search in reason_phrase().
constexpr Reason kReasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {102, "Processing"},
    {103, "Early Hints"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {418, "I'm a teapot"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {425, "Too Early"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {451, "Unavailable For Legal Reasons"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {507, "Insufficient Storage"},
    {511, "Network Authentication Required"},
};

std::string_view reason_phrase(int status) {
  auto it = std::lower_bound(std::begin(kReasons), std::end(kReasons), status,
                             [](const Reason& r, int s) { return r.status < s; });
  if (it != std::end(kReasons) && it->status == status) return it->text;
  static constexpr std::string_view kClass[] = {"Unknown",     "Informational", "Success",
                                                "Redirection", "Client Error",  "Server Error"};
  int cls = status / 100;
  return cls >= 1 && cls <= 5 ? kClass[cls] : kClass[0];
}

// 1xx, 204 and 304 responses never carry a body (nor body framing headers).
bool status_has_body(int status) {
  return status >= 200 && status != 204 && status != 304;
}

// ---- Write requests --------------------------------------------------------------------------

struct Conn;

// One uv_write: up to 4 buffers (libuv keeps <= 4 without allocating), each either copied into
// the request's inline storage (which directly follows the struct in the same allocation) or a
// reference to static memory (the name, the body pattern, fixed strings).
struct WriteReq {
  uv_write_t req;
  Conn* conn = nullptr;
  size_t cap = 0;
  size_t used = 0;
  unsigned nbufs = 0;
  bool last_inline = false;
  uv_buf_t bufs[4];

  char* storage() { return reinterpret_cast<char*>(this + 1); }

  void copy(const char* p, size_t n) {
    if (n == 0) return;
    assert(used + n <= cap);
    char* dst = storage() + used;
    std::memcpy(dst, p, n);
    used += n;
    if (last_inline) {  // Contiguous with the previous inline buffer: extend it.
      bufs[nbufs - 1].len += n;
      return;
    }
    assert(nbufs < 4);
    bufs[nbufs++] = uv_buf_init(dst, static_cast<unsigned>(n));
    last_inline = true;
  }
  void copy(std::string_view s) { copy(s.data(), s.size()); }

  void ref(const char* p, size_t n) {
    if (n == 0) return;
    assert(nbufs < 4);
    bufs[nbufs++] = uv_buf_init(const_cast<char*>(p), static_cast<unsigned>(n));
    last_inline = false;
  }
};

// ---- Worker ----------------------------------------------------------------------------------

struct Worker {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_async_t stop_async;
  std::thread thread;
  // libuv reads synchronously into the buffer handed out by the alloc callback and the read
  // callback consumes (or copies) it right away, so one buffer per loop serves every connection.
  std::unique_ptr<char[]> read_buf = std::make_unique<char[]>(kReadBufferSize);
  Conn* conns = nullptr;  // Intrusive list of live connections, for shutdown.
  std::vector<WriteReq*> free_writes;
  bool loop_ready = false;

  ~Worker() {
    for (WriteReq* w : free_writes) std::free(w);
  }

  WriteReq* alloc_write(size_t inline_cap) {
    void* mem;
    if (inline_cap <= kSmallInline) {
      inline_cap = kSmallInline;
      if (!free_writes.empty()) {
        mem = free_writes.back();
        free_writes.pop_back();
      } else {
        mem = std::malloc(sizeof(WriteReq) + kSmallInline);
      }
    } else {
      mem = std::malloc(sizeof(WriteReq) + inline_cap);
    }
    if (mem == nullptr) std::abort();
    auto* w = new (mem) WriteReq();
    w->cap = inline_cap;
    return w;
  }

  void free_write(WriteReq* w) {
    if (w->cap == kSmallInline && free_writes.size() < kMaxPooledWrites) {
      free_writes.push_back(w);
      return;
    }
    w->~WriteReq();
    std::free(w);
  }

  void stop();
};

// ---- Connection ------------------------------------------------------------------------------

// Per-request controls; -1 means "not given".
struct Controls {
  int64_t status = -1;
  int64_t bytes = -1;
  int64_t delay = -1;
  int64_t abort = -1;
  int chunked = -1;
  int close = -1;
  int hang = -1;
  int echo = -1;
};

enum class Special { kNone, kStats, kHeaders, kWebSocket };

// ---- WebSocket handshake (RFC 6455 §4.2.2): base64(SHA-1(key + GUID)) --------------------

void sha1(const uint8_t* data, size_t len, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  std::string msg(reinterpret_cast<const char*>(data), len);
  msg.push_back(static_cast<char>(0x80));
  while (msg.size() % 64 != 56) msg.push_back('\0');
  uint64_t bits = static_cast<uint64_t>(len) * 8;
  for (int i = 7; i >= 0; --i) msg.push_back(static_cast<char>(bits >> (i * 8)));
  auto rol = [](uint32_t v, int n) { return (v << n) | (v >> (32 - n)); };
  for (size_t off = 0; off < msg.size(); off += 64) {
    uint32_t w[80];
    for (int i = 0; i < 16; ++i) {
      const auto* b = reinterpret_cast<const uint8_t*>(msg.data() + off + i * 4);
      w[i] = (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
    }
    for (int i = 16; i < 80; ++i) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
      uint32_t f, k;
      if (i < 20) {
        f = (b & c) | (~b & d);
        k = 0x5A827999;
      } else if (i < 40) {
        f = b ^ c ^ d;
        k = 0x6ED9EBA1;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8F1BBCDC;
      } else {
        f = b ^ c ^ d;
        k = 0xCA62C1D6;
      }
      uint32_t t = rol(a, 5) + f + e + k + w[i];
      e = d;
      d = c;
      c = rol(b, 30);
      b = a;
      a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
  }
  for (int i = 0; i < 5; ++i) {
    for (int j = 0; j < 4; ++j) out[i * 4 + j] = static_cast<uint8_t>(h[i] >> (24 - j * 8));
  }
}

std::string websocket_accept(std::string_view key) {
  std::string text(key);
  text += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  uint8_t digest[20];
  sha1(reinterpret_cast<const uint8_t*>(text.data()), text.size(), digest);
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < 20; i += 3) {
    uint32_t n = uint32_t{digest[i]} << 16;
    if (i + 1 < 20) n |= uint32_t{digest[i + 1]} << 8;
    if (i + 2 < 20) n |= digest[i + 2];
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(i + 1 < 20 ? kAlphabet[(n >> 6) & 63] : '=');
    out.push_back(i + 2 < 20 ? kAlphabet[n & 63] : '=');
  }
  return out;
}
enum class BodyKind { kNone, kInline, kPattern, kEcho };

// The response currently being produced on a connection.
struct Response {
  bool active = false;   // Not yet fully queued (or waiting: delay / hang).
  bool sending = false;  // Past the delay: head and body may be written.
  bool head_sent = false;
  bool body_allowed = true;  // False for HEAD and for 1xx/204/304.
  bool chunked = false;
  bool close_after = false;
  bool abort = false;  // Reset the connection once limit bytes of body are written.
  bool hang = false;
  bool terminated = false;  // Chunked terminator queued.
  BodyKind kind = BodyKind::kNone;
  int status = 200;
  std::string_view content_type = "text/plain";
  int64_t content_length = -1;  // Declared length; -1: none (chunked or close-delimited).
  std::string_view body;        // kInline source (points into Conn::body).
  uint64_t limit = 0;           // Body bytes to produce (less than declared when aborting).
  uint64_t sent = 0;            // Body bytes queued so far.
};

struct Conn {
  uv_tcp_t tcp;
  uv_timer_t timer;  // delay= and the lingering-close timeout.
  uv_shutdown_t shutdown_req;
  Worker* worker;
  Conn* prev = nullptr;
  Conn* next = nullptr;
  llhttp_t parser;
  uint64_t id;
  uint64_t requests = 0;  // Requests begun on this connection.
  int open_handles = 2;
  unsigned writes_pending = 0;

  // Connection state.
  bool reading = false;
  bool paused = false;     // llhttp returned HPE_PAUSED; needs llhttp_resume before executing.
  bool peer_eof = false;   // The client finished sending.
  bool finishing = false;  // Graceful close requested (uv_shutdown pending); input is ignored.
  bool draining = false;   // FIN sent; discarding input until EOF or the linger timeout.
  bool aborting = false;   // Reset once the queued writes are on the wire.
  bool closing = false;    // uv_close called.
  bool tunnel = false;     // /_origin/ws answered 101: raw echo from now on.
  std::string ws_key;      // Sec-WebSocket-Key of the current request.
  std::string ws_hello;    // hello=: sent right behind the 101 head.

  // Pipelined input not yet given to the parser (bytes [in_off, size)).
  std::string in_buf;
  size_t in_off = 0;

  // Current request (all strings are cleared, not freed, between requests).
  std::string url;
  std::string field;
  std::string value;
  std::string hdr_dump;    // "Name: value\n" per request header, for /_origin/headers.
  std::string extra_hdrs;  // "Name: value\r\n" lines from header= controls.
  std::string ctl_error;   // Non-empty: answer 400 with this message.
  std::string scratch;     // Query-string decoding.
  std::string scratch2;
  std::string head;  // Response head under construction.
  std::string body;  // Body of introspection / error responses.
  Controls hctl;     // From X-Origin-* headers.
  uint64_t req_body_bytes = 0;
  bool expect_continue = false;
  bool user_content_type = false;
  bool keep_alive = true;
  bool is_head = false;
  bool http10 = false;
  Special special = Special::kNone;
  Controls ctl;  // Effective controls for the current request.

  Response resp;

  Conn(Worker* w, uint64_t conn_id) : worker(w), id(conn_id) {
    llhttp_init(&parser, HTTP_REQUEST, &g_settings);
    parser.data = this;
    tcp.data = this;
    timer.data = this;
  }

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp); }
  size_t queued() { return uv_stream_get_write_queue_size(stream()); }

  // ---- Writing ----

  void submit(WriteReq* w) {
    if (closing || w->nbufs == 0) {
      worker->free_write(w);
      return;
    }
    w->conn = this;
    if (uv_write(&w->req, stream(), w->bufs, w->nbufs, on_write) != 0) {
      worker->free_write(w);
      close();
      return;
    }
    ++writes_pending;
  }

  static void on_write(uv_write_t* req, int status) {
    auto* w = reinterpret_cast<WriteReq*>(req);  // req is the first member.
    Conn* c = w->conn;
    c->worker->free_write(w);
    --c->writes_pending;
    if (status < 0) {  // Peer gone, or UV_ECANCELED because we are closing.
      c->close();
      return;
    }
    c->advance();
  }

  // ---- Closing ----

  void close() {
    if (closing) return;
    closing = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp), on_handle_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), on_handle_closed);
  }

  // abort=: a "crash" mid-response. Only called once every queued write was handed to the
  // kernel, so the client does receive the promised partial body before the RST.
  void reset() {
    if (closing) return;
    closing = true;
    if (uv_tcp_close_reset(&tcp, on_handle_closed) != 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(&tcp), on_handle_closed);
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), on_handle_closed);
  }

  static void on_handle_closed(uv_handle_t* h) {
    auto* c = static_cast<Conn*>(h->data);
    if (--c->open_handles == 0) c->destroy();
  }

  void destroy();

  // Graceful close after the last response: uv_shutdown sends FIN once the queued writes are
  // flushed; then we linger (see kLingerMs).
  void finish() {
    if (finishing || closing) return;
    finishing = true;
    uv_timer_stop(&timer);
    if (uv_shutdown(&shutdown_req, stream(), on_shutdown) != 0) {
      close();
      return;
    }
    update_reading();
  }

  static void on_shutdown(uv_shutdown_t* req, int status) {
    auto* c = static_cast<Conn*>(req->handle->data);
    if (status < 0 || c->peer_eof) {
      c->close();
      return;
    }
    c->draining = true;
    uv_timer_start(&c->timer, on_timer, kLingerMs, 0);
    c->update_reading();
  }

  // ---- Reading ----

  // Reads while there is room for input: stop when the client is not reading our responses
  // (write queue above the high-water mark, with hysteresis) or pipelined input piles up.
  void update_reading() {
    bool want;
    if (closing || peer_eof || aborting) {
      want = false;
    } else if (draining || finishing || resp.hang) {
      want = true;  // Input is discarded; reading only notices the client closing.
    } else {
      size_t q = queued();
      bool room = reading ? q < kReadHighWater : q < kReadLowWater;
      want = room && in_buf.size() - in_off < kMaxBufferedInput;
    }
    if (want == reading) return;
    if (want) {
      if (uv_read_start(stream(), on_alloc, on_read) != 0) {
        close();
        return;
      }
    } else {
      uv_read_stop(stream());
    }
    reading = want;
  }

  static void on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    auto* c = static_cast<Conn*>(h->data);
    *buf = uv_buf_init(c->worker->read_buf.get(), kReadBufferSize);
  }

  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
    auto* c = static_cast<Conn*>(s->data);
    if (nread < 0) {
      if (nread == UV_EOF) {
        c->on_eof();
      } else {
        c->close();
      }
      return;
    }
    if (nread == 0 || c->closing) return;
    if (c->draining || c->finishing || c->aborting || c->resp.hang) return;  // Discard.
    c->on_data(buf->base, static_cast<size_t>(nread));
  }

  void on_data(const char* data, size_t len) {
    if (tunnel) {
      ws_echo(data, len);
      update_reading();
      return;
    }
    if (!paused && in_off == in_buf.size()) {
      // Fast path: parse straight out of the read buffer; keep only what the parser did not take
      // (it paused on a pipelined request).
      size_t used = parse(data, len);
      if (used < len && !finishing && !closing && !aborting) {
        in_buf.append(data + used, len - used);
      }
    } else {
      if (in_off > 0) {
        in_buf.erase(0, in_off);
        in_off = 0;
      }
      in_buf.append(data, len);
      process_input();
    }
    if (tunnel && in_off < in_buf.size()) {
      // Bytes the client sent right behind its upgrade request.
      std::string rest = in_buf.substr(in_off);
      in_buf.clear();
      in_off = 0;
      ws_echo(rest.data(), rest.size());
    }
    finish_if_eof();
    update_reading();
  }

  void on_eof() {
    peer_eof = true;
    update_reading();
    if (closing) return;
    if (draining) {  // Our FIN is out and the client closed too: done.
      close();
      return;
    }
    if (finishing || aborting) return;  // on_shutdown / reset take it from here.
    finish_if_eof();
  }

  // After the client's EOF (FIN), close once the responses to everything it sent are queued.
  void finish_if_eof() {
    if (!peer_eof || closing || finishing || aborting) return;
    if (resp.active && (resp.hang || !resp.sending)) {
      // Nothing of the current response is queued yet (hang=, or delay= pending): treat the FIN
      // as the client leaving and close at once, so /_origin/stats shows a proxy dropping an
      // upstream connection without waiting for the delay. Responses already being sent are
      // still completed for half-closing clients.
      close();
      return;
    }
    if (in_off != in_buf.size()) return;  // Pipelined input still waits for the parser.
    if (!resp.active) {
      finish();
    } else if (resp.kind == BodyKind::kEcho) {
      close();  // All input parsed but the echoed request body is incomplete: it never will be.
    }
  }

  // Runs the parser over buffered input until it pauses or the input is used up.
  void process_input() {
    while (!paused && !closing && !finishing && !aborting && in_off < in_buf.size()) {
      in_off += parse(in_buf.data() + in_off, in_buf.size() - in_off);
    }
    if (in_off == in_buf.size() || finishing || closing) {
      in_buf.clear();
      in_off = 0;
    }
  }

  // One llhttp_execute; returns how many bytes it consumed.
  size_t parse(const char* data, size_t len) {
    llhttp_errno_t err = llhttp_execute(&parser, data, len);
    if (err == HPE_OK) return len;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
      // Upgrades are answered like plain requests and then closed (keep_alive is cleared in
      // on_headers_complete), so an upgrade pause is never resumed.
      paused = true;
      return static_cast<size_t>(llhttp_get_error_pos(&parser) - data);
    }
    on_parse_error(llhttp_get_error_reason(&parser));
    return len;
  }

  void on_parse_error(const char* reason) {
    if (resp.active || finishing || aborting || closing) {
      close();  // Broken mid-response (e.g. bad chunk while echoing): nothing sane to send.
      return;
    }
    body.assign("bad request: ");
    body.append(reason != nullptr ? reason : "unparseable");
    body.push_back('\n');
    resp = Response();
    resp.active = true;
    resp.status = 400;
    resp.close_after = true;
    resp.kind = BodyKind::kInline;
    resp.body = body;
    resp.content_length = static_cast<int64_t>(body.size());
    resp.limit = body.size();
    extra_hdrs.clear();
    user_content_type = false;
    http10 = false;
    start_sending();
  }

  // Resumes the parser once the response it waits for is queued and the client keeps up.
  void maybe_resume() {
    if (tunnel) return;  // the parser never runs again on this connection
    if (!paused || closing || finishing || aborting) return;
    // An echo response runs alongside its request body; any other active response blocks.
    if (resp.active && !(resp.kind == BodyKind::kEcho && resp.sending)) return;
    if (queued() >= kReadLowWater) return;
    llhttp_resume(&parser);
    paused = false;
    process_input();
  }

  // Makes whatever progress is possible; called after each write completes and from timers.
  void advance() {
    if (closing) return;
    if (aborting) {
      if (writes_pending == 0) reset();
      return;
    }
    if (finishing || draining) return;
    if (resp.active && resp.sending && resp.kind != BodyKind::kEcho) pump();
    maybe_resume();
    finish_if_eof();
    update_reading();
  }

  static void on_timer(uv_timer_t* t) {
    auto* c = static_cast<Conn*>(t->data);
    if (c->closing) return;
    if (c->draining) {  // Linger timeout: the client never closed.
      c->close();
      return;
    }
    if (!c->resp.active || c->resp.sending) return;
    // delay= elapsed.
    if (c->resp.kind == BodyKind::kEcho) {
      c->resp.sending = true;
      c->send_echo_head();
    } else {
      c->start_sending();
    }
    c->advance();
  }

  // ---- Parser callbacks ----

  static Conn* of(llhttp_t* p) { return static_cast<Conn*>(p->data); }

  static int on_message_begin(llhttp_t* p) {
    Conn* c = of(p);
    ++c->requests;
    c->url.clear();
    c->field.clear();
    c->value.clear();
    c->hdr_dump.clear();
    c->extra_hdrs.clear();
    c->ctl_error.clear();
    c->hctl = Controls();
    c->req_body_bytes = 0;
    c->expect_continue = false;
    c->user_content_type = false;
    c->special = Special::kNone;
    c->ws_key.clear();
    c->ws_hello.clear();
    return 0;
  }

  // Span callbacks may deliver a URL, header name or value in several pieces (the request is
  // split across reads), so they only accumulate; the *_complete callbacks act on the whole.
  static int on_url(llhttp_t* p, const char* at, size_t len) {
    of(p)->url.append(at, len);
    return 0;
  }

  static int on_header_field(llhttp_t* p, const char* at, size_t len) {
    of(p)->field.append(at, len);
    return 0;
  }

  static int on_header_value(llhttp_t* p, const char* at, size_t len) {
    of(p)->value.append(at, len);
    return 0;
  }

  static int on_header_value_complete(llhttp_t* p) {
    Conn* c = of(p);
    c->on_header(c->field, c->value);
    c->field.clear();
    c->value.clear();
    return 0;
  }

  void on_header(std::string_view name, std::string_view val) {
    hdr_dump.append(name);
    hdr_dump.append(": ");
    hdr_dump.append(val);
    hdr_dump.push_back('\n');
    if (istarts_with(name, "x-origin-")) {
      set_control(hctl, name.substr(9), val);
    } else if (iequals(name, "expect") && iequals(trim(val), "100-continue")) {
      expect_continue = true;
    } else if (iequals(name, "sec-websocket-key")) {
      ws_key.assign(trim(val));
    }
  }

  void set_control(Controls& c, std::string_view key, std::string_view val) {
    auto number = [&](int64_t& out, uint64_t max) {
      uint64_t v;
      if (!parse_uint(trim(val), v) || v > max) {
        bad_control(key, val);
        return;
      }
      out = static_cast<int64_t>(v);
    };
    auto boolean = [&](int& out) {
      int b = parse_bool(trim(val));
      if (b < 0) {
        bad_control(key, val);
        return;
      }
      out = b;
    };
    if (iequals(key, "status")) {
      number(c.status, 999);
      if (c.status >= 0 && c.status < 100) bad_control(key, val);
    } else if (iequals(key, "bytes")) {
      number(c.bytes, INT64_MAX);
    } else if (iequals(key, "delay")) {
      number(c.delay, 24ull * 3600 * 1000);
    } else if (iequals(key, "abort")) {
      number(c.abort, INT64_MAX);
    } else if (iequals(key, "chunked")) {
      boolean(c.chunked);
    } else if (iequals(key, "close")) {
      boolean(c.close);
    } else if (iequals(key, "hang")) {
      boolean(c.hang);
    } else if (iequals(key, "echo")) {
      boolean(c.echo);
    } else if (iequals(key, "header")) {
      add_response_header(val);
    } else if (iequals(key, "hello")) {
      ws_hello.assign(val);
    }
    // Unknown parameters are ignored: tests may add their own for the proxy's sake.
  }

  void bad_control(std::string_view key, std::string_view val) {
    if (!ctl_error.empty()) return;
    ctl_error.assign("bad control value: ");
    ctl_error.append(key);
    ctl_error.push_back('=');
    ctl_error.append(val);
  }

  // header=Name:Value. As a request header the value is "Name:Value" too.
  void add_response_header(std::string_view spec) {
    size_t colon = spec.find(':');
    std::string_view name = colon == std::string_view::npos ? spec : spec.substr(0, colon);
    std::string_view val = colon == std::string_view::npos ? "" : trim(spec.substr(colon + 1));
    bool ok = colon != std::string_view::npos && !name.empty() &&
              std::all_of(name.begin(), name.end(), is_token_char) &&
              val.find_first_of("\r\n") == std::string_view::npos;
    if (!ok) {
      bad_control("header", spec);
      return;
    }
    if (iequals(name, "content-type")) user_content_type = true;
    extra_hdrs.append(name);
    extra_hdrs.append(": ");
    extra_hdrs.append(val);
    extra_hdrs.append("\r\n");
  }

  static int on_headers_complete(llhttp_t* p) { return of(p)->headers_complete(); }

  int headers_complete() {
    is_head = parser.method == HTTP_HEAD;
    http10 = parser.http_major == 0 || (parser.http_major == 1 && parser.http_minor == 0);
    keep_alive = llhttp_should_keep_alive(&parser) != 0 && llhttp_get_upgrade(&parser) == 0;

    std::string_view target = url;
    size_t qpos = target.find('?');
    std::string_view path = target.substr(0, qpos);
    if (path == "/_origin/stats") {
      special = Special::kStats;
    } else if (path == "/_origin/headers") {
      special = Special::kHeaders;
    } else if (path == "/_origin/ws" && llhttp_get_upgrade(&parser) != 0 && !ws_key.empty()) {
      special = Special::kWebSocket;
    }

    // Query controls first, then header controls override them field by field.
    ctl = Controls();
    if (special == Special::kNone) ctl.delay = g_default_delay;
    if (qpos != std::string_view::npos) {
      std::string_view query = target.substr(qpos + 1);
      while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        if (pair.empty()) continue;
        size_t eq = pair.find('=');
        url_decode(pair.substr(0, eq), scratch);
        url_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1),
                   scratch2);
        set_control(ctl, scratch, scratch2);
      }
    }
    auto merge = [](auto& dst, auto src) {
      if (src >= 0) dst = src;
    };
    merge(ctl.status, hctl.status);
    merge(ctl.bytes, hctl.bytes);
    merge(ctl.delay, hctl.delay);
    merge(ctl.abort, hctl.abort);
    merge(ctl.chunked, hctl.chunked);
    merge(ctl.close, hctl.close);
    merge(ctl.hang, hctl.hang);
    merge(ctl.echo, hctl.echo);

    bool has_body = (parser.flags & F_CHUNKED) != 0 || parser.content_length > 0;
    if (expect_continue && has_body && !http10) {
      // Clients (curl) otherwise stall up to a second before sending large bodies.
      WriteReq* w = worker->alloc_write(0);
      w->ref(kContinue.data(), kContinue.size());
      submit(w);
    }

    if (ctl.echo == 1 && ctl.hang != 1 && ctl_error.empty() && special == Special::kNone) {
      return start_echo();
    }
    return 0;
  }

  static int on_body(llhttp_t* p, const char* at, size_t len) {
    Conn* c = of(p);
    c->req_body_bytes += len;
    if (c->resp.active && c->resp.kind == BodyKind::kEcho) c->echo_piece(at, len);
    return 0;
  }

  static int on_message_complete(llhttp_t* p) { return of(p)->message_complete(); }

  int message_complete() {
    if (special == Special::kNone) g_requests.fetch_add(1, std::memory_order_relaxed);
    if (special == Special::kWebSocket) {
      g_requests.fetch_add(1, std::memory_order_relaxed);
      start_websocket();
      return HPE_PAUSED;  // never resumed: what follows is echoed raw
    }
    if (resp.active && resp.kind == BodyKind::kEcho) {
      finish_echo();
    } else {
      start_response();
    }
    // Keep parsing pipelined requests right away only when this response is completely queued
    // and the client keeps up; otherwise pause until advance() resumes us.
    if (resp.active || finishing || aborting || closing || queued() >= kReadHighWater) {
      return HPE_PAUSED;
    }
    return 0;
  }

  // ---- Responses ----

  void start_response() {
    resp = Response();
    resp.active = true;
    resp.close_after = !keep_alive || ctl.close == 1;
    if (!ctl_error.empty()) {
      // A typo in a control should be loud, not silently produce a default response.
      body.assign(ctl_error);
      body.push_back('\n');
      resp.status = 400;
      resp.kind = BodyKind::kInline;
      resp.body = body;
      extra_hdrs.clear();
      user_content_type = false;
    } else {
      resp.status = ctl.status >= 0 ? static_cast<int>(ctl.status) : 200;
      if (special == Special::kStats) {
        build_stats_body();
        resp.kind = BodyKind::kInline;
        resp.body = body;
        resp.content_type = "application/json";
      } else if (special == Special::kHeaders) {
        body.assign(llhttp_method_name(static_cast<llhttp_method_t>(parser.method)));
        body.push_back(' ');
        body.append(url);
        body.append(" HTTP/");
        append_uint(body, parser.http_major);
        body.push_back('.');
        append_uint(body, parser.http_minor);
        body.push_back('\n');
        body.append(hdr_dump);
        resp.kind = BodyKind::kInline;
        resp.body = body;
      } else if (ctl.bytes >= 0) {
        resp.kind = BodyKind::kPattern;
      } else {
        resp.kind = BodyKind::kInline;
        body.assign(g_name);
        body.push_back('\n');
        resp.body = body;
      }
      resp.hang = ctl.hang == 1;
    }
    uint64_t declared =
        resp.kind == BodyKind::kPattern ? static_cast<uint64_t>(ctl.bytes) : resp.body.size();
    resp.body_allowed = !is_head && status_has_body(resp.status);
    // HTTP/1.0 clients cannot parse chunked bodies; they get Content-Length instead.
    resp.chunked = ctl.chunked == 1 && status_has_body(resp.status) && !http10;
    if (status_has_body(resp.status) && !resp.chunked) {
      resp.content_length = static_cast<int64_t>(declared);
    }
    resp.limit = resp.body_allowed ? declared : 0;
    if (ctl_error.empty() && ctl.abort >= 0) {
      resp.abort = true;
      resp.limit = std::min(resp.limit, static_cast<uint64_t>(ctl.abort));
    }
    if (resp.hang) return;  // Never answered; the connection stays until the client leaves.
    if (ctl_error.empty() && ctl.delay > 0) {
      uv_timer_start(&timer, on_timer, static_cast<uint64_t>(ctl.delay), 0);
      return;
    }
    start_sending();
  }

  void build_stats_body() {
    body.assign("{\"name\":\"");
    for (char ch : g_name) {
      if (ch == '"' || ch == '\\') body.push_back('\\');
      body.push_back(ch);
    }
    body.append("\",\"connections_accepted\":");
    append_uint(body, g_accepted.load(std::memory_order_relaxed));
    body.append(",\"connections_open\":");
    append_uint(body, g_open.load(std::memory_order_relaxed));
    body.append(",\"requests\":");
    append_uint(body, g_requests.load(std::memory_order_relaxed));
    body.append("}\n");
  }

  void build_head(bool with_req_bytes) {
    head.clear();
    head.append("HTTP/1.1 ");
    append_uint(head, static_cast<uint64_t>(resp.status));
    head.push_back(' ');
    head.append(reason_phrase(resp.status));
    head.append("\r\n");
    if (!user_content_type) {
      head.append("Content-Type: ");
      head.append(resp.content_type);
      head.append("\r\n");
    }
    head.append("X-Origin: ");
    head.append(g_name);
    if (with_req_bytes) {
      head.append("\r\nX-Origin-Request-Bytes: ");
      append_uint(head, req_body_bytes);
    }
    head.append("\r\nX-Origin-Connection-Requests: ");
    append_uint(head, requests);
    head.append("\r\nX-Origin-Connection-Id: ");
    append_uint(head, id);
    head.append("\r\n");
    head.append(extra_hdrs);
    if (resp.content_length >= 0) {
      head.append("Content-Length: ");
      append_uint(head, static_cast<uint64_t>(resp.content_length));
      head.append("\r\n");
    } else if (resp.chunked) {
      head.append("Transfer-Encoding: chunked\r\n");
    }
    if (resp.close_after) {
      head.append("Connection: close\r\n");
    } else if (http10) {
      head.append("Connection: keep-alive\r\n");
    }
    head.append("\r\n");
  }

  void start_sending() {
    resp.sending = true;
    build_head(/*with_req_bytes=*/true);
    pump();
  }

  // Queues the head (if still unsent) and body pieces while the write queue has room; called
  // again from advance() as writes complete. Small responses leave in a single uv_write.
  void pump() {
    for (;;) {
      bool need_head = !resp.head_sent;
      bool more_body = resp.sent < resp.limit;
      bool need_term =
          resp.chunked && resp.body_allowed && !resp.abort && !resp.terminated && !more_body;
      if (!need_head && !more_body && !need_term) break;
      if (!need_head && queued() >= kPumpWater) return;  // on_write -> advance() resumes us.

      uint64_t left = resp.limit - resp.sent;
      size_t n = 0;
      if (more_body) {
        if (resp.chunked) {
          n = static_cast<size_t>(std::min<uint64_t>(left, kChunkSize));
        } else if (resp.kind == BodyKind::kPattern) {
          n = static_cast<size_t>(std::min<uint64_t>(left, kPieceSize));
        } else {
          n = static_cast<size_t>(left);  // Inline bodies are small: all at once.
        }
      }
      size_t inline_need =
          kFramingSlack + (need_head ? head.size() : 0) + (resp.kind == BodyKind::kInline ? n : 0);
      WriteReq* w = worker->alloc_write(inline_need);
      if (need_head) {
        w->copy(head);
        resp.head_sent = true;
      }
      if (n > 0) {
        if (resp.chunked) {
          char line[24];
          auto res = std::to_chars(line, line + 16, n, 16);
          *res.ptr++ = '\r';
          *res.ptr++ = '\n';
          w->copy(line, static_cast<size_t>(res.ptr - line));
        }
        if (resp.kind == BodyKind::kPattern) {
          w->ref(g_pattern + resp.sent % 26, n);
        } else {
          // Copied: Conn::body is rewritten by the next request while this write may be queued.
          w->copy(resp.body.data() + resp.sent, n);
        }
        if (resp.chunked) w->copy("\r\n", 2);
        resp.sent += n;
      }
      if (resp.chunked && resp.body_allowed && !resp.abort && resp.sent == resp.limit) {
        w->copy("0\r\n\r\n", 5);
        resp.terminated = true;
      }
      submit(w);
      if (closing) return;
    }
    response_done();
  }

  // Everything for the current response is queued.
  void response_done() {
    resp.active = false;
    uv_timer_stop(&timer);
    if (resp.abort) {
      aborting = true;
      update_reading();
      if (writes_pending == 0) reset();  // Otherwise on_write -> advance() resets.
      return;
    }
    if (resp.close_after) finish();
  }

  // echo=1: the head goes out when the request head is complete and the body follows piece by
  // piece as it arrives, framed like the request's (Content-Length kept, chunked stays chunked).
  int start_echo() {
    resp = Response();
    resp.active = true;
    resp.kind = BodyKind::kEcho;
    resp.status = ctl.status >= 0 ? static_cast<int>(ctl.status) : 200;
    resp.body_allowed = !is_head && status_has_body(resp.status);
    resp.close_after = !keep_alive || ctl.close == 1;
    bool req_chunked = (parser.flags & F_CHUNKED) != 0;
    bool req_length = (parser.flags & F_CONTENT_LENGTH) != 0 && !req_chunked;
    if (status_has_body(resp.status)) {
      if ((ctl.chunked == 1 || req_chunked) && !http10) {
        resp.chunked = true;
      } else if (req_length) {
        resp.content_length = static_cast<int64_t>(parser.content_length);
      } else if (req_chunked) {
        resp.close_after = true;  // HTTP/1.0 + unknown length: delimit the body by closing.
      } else {
        resp.content_length = 0;  // No request body.
      }
    }
    if (ctl.delay > 0) {
      uv_timer_start(&timer, on_timer, static_cast<uint64_t>(ctl.delay), 0);
      return HPE_PAUSED;  // Hold the body back until the head has been sent.
    }
    resp.sending = true;
    send_echo_head();
    return closing ? HPE_PAUSED : 0;
  }

  void start_websocket() {
    head.assign(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
    head.append("Sec-WebSocket-Accept: ");
    head.append(websocket_accept(ws_key));
    head.append("\r\nX-Origin: ");
    head.append(g_name);
    head.append("\r\nX-Origin-Connection-Id: ");
    append_uint(head, id);
    head.append("\r\n");
    head.append(extra_hdrs);
    head.append("\r\n");
    head.append(ws_hello);
    WriteReq* w = worker->alloc_write(head.size());
    w->copy(head);
    submit(w);
    tunnel = true;
  }

  // Tunnel: echoes what arrives; reading stops while the write queue is above kReadHighWater
  // (update_reading), which bounds the copies in flight.
  void ws_echo(const char* data, size_t len) {
    if (len == 0) return;
    if (len >= 4 && std::string_view(data + len - 4, 4) == "RST\n") {
      reset();  // a server that crashes mid-tunnel
      return;
    }
    WriteReq* w = worker->alloc_write(len);
    w->copy(data, len);
    submit(w);
    if (len >= 4 && std::string_view(data + len - 4, 4) == "BYE\n") finish();
  }

  void send_echo_head() {
    build_head(/*with_req_bytes=*/false);
    WriteReq* w = worker->alloc_write(head.size());
    w->copy(head);
    resp.head_sent = true;
    submit(w);
  }

  void echo_piece(const char* at, size_t len) {
    if (!resp.body_allowed || len == 0) return;
    // The read buffer is reused by the next read, so the piece is copied; reading stops when
    // the write queue is above kReadHighWater, which bounds the copies in flight.
    WriteReq* w = worker->alloc_write(len + kFramingSlack);
    if (resp.chunked) {
      char line[24];
      auto res = std::to_chars(line, line + 16, len, 16);
      *res.ptr++ = '\r';
      *res.ptr++ = '\n';
      w->copy(line, static_cast<size_t>(res.ptr - line));
    }
    w->copy(at, len);
    if (resp.chunked) w->copy("\r\n", 2);
    resp.sent += len;
    submit(w);
  }

  void finish_echo() {
    if (resp.chunked && resp.body_allowed) {
      WriteReq* w = worker->alloc_write(0);
      w->ref("0\r\n\r\n", 5);
      submit(w);
    }
    response_done();
  }
};

void Conn::destroy() {
  if (prev != nullptr) {
    prev->next = next;
  } else {
    worker->conns = next;
  }
  if (next != nullptr) next->prev = prev;
  g_open.fetch_sub(1, std::memory_order_relaxed);
  delete this;
}

void Worker::stop() {
  uv_close(reinterpret_cast<uv_handle_t*>(&listener), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&stop_async), nullptr);
  for (Conn* c = conns; c != nullptr; c = c->next) c->close();
}

void on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;
  auto* w = static_cast<Worker*>(server->data);
  uint64_t id = g_accepted.fetch_add(1, std::memory_order_relaxed) + 1;
  g_open.fetch_add(1, std::memory_order_relaxed);
  auto* c = new Conn(w, id);
  c->next = w->conns;
  if (w->conns != nullptr) w->conns->prev = c;
  w->conns = c;
  uv_tcp_init(&w->loop, &c->tcp);
  uv_timer_init(&w->loop, &c->timer);
  if (uv_accept(server, c->stream()) != 0) {
    c->close();
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);  // Small responses must not wait for Nagle.
  c->update_reading();
}

// ---- Startup ---------------------------------------------------------------------------------

struct Options {
  std::string host;  // As given (IPv6 without brackets).
  std::string port;
  int workers = 1;
  std::string tls_cert;  // --tls-cert: also serve https
  std::string tls_key;
  std::string tls_client_ca;
};

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "harrow-origin: %s\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  Options opt;
  bool have_listen = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view val;
    size_t eq = arg.find('=');
    bool inline_val = arg.starts_with("--") && eq != std::string_view::npos;
    if (inline_val) {
      val = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (arg != "--listen" && arg != "--name" && arg != "--workers" && arg != "--delay" &&
        arg != "--tls-cert" && arg != "--tls-key" && arg != "--tls-client-ca") {
      usage_error("unknown argument: " + std::string(arg));
    }
    if (!inline_val) {
      if (i + 1 >= argc) usage_error("missing value for " + std::string(arg));
      val = argv[++i];
    }
    if (arg == "--listen") {
      size_t colon = val.rfind(':');
      if (colon == std::string_view::npos) usage_error("--listen wants HOST:PORT");
      std::string_view host = val.substr(0, colon);
      if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
      }
      opt.host = host;
      opt.port = val.substr(colon + 1);
      uint64_t port;
      if (!parse_uint(opt.port, port) || port > 65535) usage_error("bad port in --listen");
      have_listen = true;
    } else if (arg == "--delay") {
      uint64_t ms;
      if (!parse_uint(val, ms) || ms > 60'000) usage_error("--delay wants 0..60000 ms");
      g_default_delay = static_cast<int64_t>(ms);
    } else if (arg == "--tls-cert") {
      opt.tls_cert = val;
    } else if (arg == "--tls-key") {
      opt.tls_key = val;
    } else if (arg == "--tls-client-ca") {
      opt.tls_client_ca = val;
    } else if (arg == "--name") {
      if (val.empty()) usage_error("--name must not be empty");
      g_name = val;
    } else {
      uint64_t n;
      if (!parse_uint(val, n) || n < 1 || n > 256) usage_error("--workers wants 1..256");
      opt.workers = static_cast<int>(n);
    }
  }
  if (!have_listen) usage_error("--listen is required");
  return opt;
}

bool resolve(const Options& opt, sockaddr_storage& out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const char* host = opt.host.empty() ? nullptr : opt.host.c_str();
  int rc = getaddrinfo(host, opt.port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    std::fprintf(stderr, "harrow-origin: cannot resolve %s: %s\n", opt.host.c_str(),
                 gai_strerror(rc));
    return false;
  }
  std::memcpy(&out, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return true;
}

// Binds and listens worker `w` on `addr`; with SO_REUSEPORT when several workers share the port.
int listen_worker(Worker& w, const sockaddr_storage& addr, bool reuseport) {
  int rc = uv_tcp_init_ex(&w.loop, &w.listener, addr.ss_family);
  if (rc != 0) return rc;
  w.listener.data = &w;
  if (reuseport) {
    // The socket already exists (uv_tcp_init_ex with a family), so the option can be set before
    // bind, which is where the kernel checks it.
    uv_os_fd_t fd;
    rc = uv_fileno(reinterpret_cast<uv_handle_t*>(&w.listener), &fd);
    if (rc != 0) return rc;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
      return uv_translate_sys_error(errno);
    }
  }
  rc = uv_tcp_bind(&w.listener, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc != 0) return rc;
  return uv_listen(reinterpret_cast<uv_stream_t*>(&w.listener), 1024, on_connection);
}

std::vector<std::unique_ptr<Worker>>* g_workers = nullptr;
uv_signal_t g_sigterm;
uv_signal_t g_sigint;

void on_signal(uv_signal_t*, int) {
  for (auto& w : *g_workers) uv_async_send(&w->stop_async);
  uv_close(reinterpret_cast<uv_handle_t*>(&g_sigterm), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&g_sigint), nullptr);
}

void on_stop_async(uv_async_t* a) {
  static_cast<Worker*>(a->data)->stop();
}

// Closes and reaps a worker whose loop thread never started (startup failure).
void discard_worker(Worker& w) {
  if (!w.loop_ready) return;
  uv_walk(
      &w.loop,
      [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) uv_close(h, nullptr);
      },
      nullptr);
  uv_run(&w.loop, UV_RUN_DEFAULT);
  uv_loop_close(&w.loop);
}

}  // namespace

int main(int argc, char** argv) {
  Options opt = parse_args(argc, argv);
  // A peer closing while we write must surface as a write error, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  for (size_t i = 0; i < sizeof(g_pattern); ++i) g_pattern[i] = static_cast<char>('a' + i % 26);

  llhttp_settings_init(&g_settings);
  g_settings.on_message_begin = Conn::on_message_begin;
  g_settings.on_url = Conn::on_url;
  g_settings.on_header_field = Conn::on_header_field;
  g_settings.on_header_value = Conn::on_header_value;
  g_settings.on_header_value_complete = Conn::on_header_value_complete;
  g_settings.on_headers_complete = Conn::on_headers_complete;
  g_settings.on_body = Conn::on_body;
  g_settings.on_message_complete = Conn::on_message_complete;

  sockaddr_storage addr{};
  if (!resolve(opt, addr)) return 1;

  uv_loop_t main_loop;
  uv_loop_init(&main_loop);
  uv_signal_init(&main_loop, &g_sigterm);
  uv_signal_init(&main_loop, &g_sigint);
  uv_signal_start(&g_sigterm, on_signal, SIGTERM);
  uv_signal_start(&g_sigint, on_signal, SIGINT);

  std::vector<std::unique_ptr<Worker>> workers;
  g_workers = &workers;
  int port = 0;
  for (int i = 0; i < opt.workers; ++i) {
    auto w = std::make_unique<Worker>();
    uv_loop_init(&w->loop);
    w->loop_ready = true;
    uv_async_init(&w->loop, &w->stop_async, on_stop_async);
    w->stop_async.data = w.get();
    int rc = listen_worker(*w, addr, opt.workers > 1);
    workers.push_back(std::move(w));
    if (rc != 0) {
      std::fprintf(stderr, "harrow-origin: cannot listen on %s:%s: %s\n", opt.host.c_str(),
                   opt.port.c_str(), uv_strerror(rc));
      for (auto& dw : workers) discard_worker(*dw);
      uv_close(reinterpret_cast<uv_handle_t*>(&g_sigterm), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(&g_sigint), nullptr);
      uv_run(&main_loop, UV_RUN_DEFAULT);
      uv_loop_close(&main_loop);
      return 1;
    }
    if (i == 0) {
      // Port 0: the first bind picks the port; the other workers join that same port.
      sockaddr_storage bound{};
      int len = sizeof(bound);
      uv_tcp_getsockname(&workers[0]->listener, reinterpret_cast<sockaddr*>(&bound), &len);
      if (bound.ss_family == AF_INET6) {
        port = ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
        reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port = htons(static_cast<uint16_t>(port));
      } else {
        port = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
        reinterpret_cast<sockaddr_in*>(&addr)->sin_port = htons(static_cast<uint16_t>(port));
      }
    }
  }

  bool v6_literal = opt.host.find(':') != std::string::npos;
  std::printf("origin %s listening on http://%s%s%s:%d\n", g_name.c_str(), v6_literal ? "[" : "",
              opt.host.c_str(), v6_literal ? "]" : "", port);
  if (!opt.tls_cert.empty()) {
    origin::TlsFrontOptions front;
    front.cert_file = opt.tls_cert;
    front.key_file = opt.tls_key.empty() ? opt.tls_cert : opt.tls_key;
    front.client_ca_file = opt.tls_client_ca;
    front.host = opt.host.empty() ? "127.0.0.1" : opt.host;
    front.backend_port = port;
    std::string error;
    int tls_port = origin::start_tls_front(front, error);
    if (tls_port < 0) {
      std::fprintf(stderr, "harrow-origin: %s\n", error.c_str());
      std::exit(1);
    }
    std::printf("origin %s listening on https://%s%s%s:%d\n", g_name.c_str(), v6_literal ? "[" : "",
                opt.host.c_str(), v6_literal ? "]" : "", tls_port);
  }
  std::fflush(stdout);

  for (auto& w : workers) {
    Worker* wp = w.get();
    wp->thread = std::thread([wp] { uv_run(&wp->loop, UV_RUN_DEFAULT); });
  }
  uv_run(&main_loop, UV_RUN_DEFAULT);  // Returns once a signal closed the signal handles.
  for (auto& w : workers) {
    w->thread.join();
    uv_loop_close(&w->loop);
  }
  uv_loop_close(&main_loop);
  return 0;
}

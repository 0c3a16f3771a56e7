// harrow-h2-origin: a small HTTP/2 origin server for Harrow's tests and benchmarks.
//
//   harrow-h2-origin --listen HOST:PORT [--name NAME] [--tls-cert PEM --tls-key PEM]
//
// The plain port speaks HTTP/2 with prior knowledge (h2c, no Upgrade); with a certificate a
// second port terminates TLS, selects `h2` by ALPN and relays to the plain port. See kUsage for
// the endpoints. Every response carries `x-origin-name: NAME`.
//
// Design notes:
//  * One uv_loop, one thread; nghttp2 owns the framing (server session, mem_recv/mem_send) and
//    this file owns the streams.
//  * Flow control is the backpressure: automatic WINDOW_UPDATEs are off and request body bytes
//    are acknowledged (nghttp2_session_consume) only once they have been echoed back into
//    nghttp2, or at once when the endpoint does not use the body. A client that does not read
//    its echo therefore cannot send more than one stream window per stream (and one connection
//    window in all), and output is only produced while the socket's write queue is small.
//  * A stream is freed when nghttp2 closes it; a stream with a timer (the slow gRPC method) is
//    freed from the timer's close callback, since libuv owns a handle until then.

#include <netdb.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <uv.h>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "tls_front.h"

namespace {

constexpr const char* kUsage =
    "usage: harrow-h2-origin --listen HOST:PORT [--name NAME] [--tls-cert PEM --tls-key PEM]\n"
    "  --listen      HTTP/2 with prior knowledge (h2c) on this address; port 0 = any free port\n"
    "  --tls-cert/--tls-key  also listen on a TLS port (printed second) that selects h2 by ALPN\n"
    "  --name        the x-origin-name response header (default: h2origin)\n"
    "\n"
    "Endpoints (anything else: 404):\n"
    "  /bytes/N      N body bytes ('a'..'z' repeating) with content-length\n"
    "  /echo         the request body streamed back as it arrives\n"
    "  /count        how many requests (other than /count) this process has answered so far\n"
    "  POST /harrow.test.Echo/Unary, /harrow.test.Echo/Stream  (content-type: application/grpc)\n"
    "                gRPC-style echo: every length-prefixed message (1 byte flag, 4 byte length)\n"
    "                back as it arrives, then trailers grpc-status: 0 and grpc-message\n"
    "  POST /harrow.test.Echo/Slow   answers (echo) only after 2 s; a grpc-timeout request header\n"
    "                that ends first gets grpc-status: 4 (DEADLINE_EXCEEDED) instead\n"
    "  POST /harrow.test.Echo/Fail   ends with grpc-status: 13 and a grpc-message\n";

// ---- Tunables ------------------------------------------------------------------------------

constexpr size_t kReadBufferSize = 64 * 1024;
// Output: nghttp2 frames are pulled while fewer unsent bytes than this wait in libuv's queue.
constexpr size_t kWriteHighWater = 256 * 1024;
// Input: stop reading from a client while this much output is unsent (a client that sends but
// does not read); control frame floods are bounded by nghttp2's own outbound limits.
constexpr size_t kReadPauseWater = 1024 * 1024;
constexpr size_t kWriteBatch = 64 * 1024;  // nghttp2 output gathered per uv_write
constexpr uint32_t kMaxConcurrentStreams = 100;
constexpr int32_t kStreamWindow = 64 * 1024;        // request body buffered per stream, at most
constexpr int32_t kConnectionWindow = 1024 * 1024;  // and per connection, at most
constexpr uint64_t kSlowMs = 2000;                  // the slow gRPC method's answer time
constexpr uint64_t kMaxBytes = uint64_t{1} << 40;   // /bytes/N upper bound

// ---- Process-wide state ----------------------------------------------------------------------

std::string g_name = "h2origin";
uint64_t g_answered = 0;  // /count
uv_loop_t* g_loop = nullptr;

// ---- Streams -----------------------------------------------------------------------------------

enum class Kind { kFixed, kBytes, kEcho, kGrpcEcho, kGrpcSlow };

struct Conn;

// gRPC message framing, tracked over the echoed bytes: a message is 1 flag byte, a 4-byte
// big-endian length, then that many bytes.
struct GrpcFraming {
  uint8_t prefix[5];
  size_t prefix_have = 0;
  uint64_t payload_left = 0;
  uint64_t messages = 0;

  void feed(const uint8_t* p, size_t n) {
    while (n > 0) {
      if (payload_left > 0) {
        size_t take = static_cast<size_t>(std::min<uint64_t>(payload_left, n));
        payload_left -= take;
        p += take;
        n -= take;
        if (payload_left == 0) ++messages;
        continue;
      }
      prefix[prefix_have++] = *p++;
      --n;
      if (prefix_have == 5) {
        prefix_have = 0;
        payload_left = (uint64_t{prefix[1]} << 24) | (uint64_t{prefix[2]} << 16) |
                       (uint64_t{prefix[3]} << 8) | prefix[4];
        if (payload_left == 0) ++messages;
      }
    }
  }
  bool mid_message() const { return prefix_have > 0 || payload_left > 0; }
};

struct Stream {
  Conn* conn;
  int32_t id;
  std::string method, path, content_type, grpc_timeout;
  Kind kind = Kind::kFixed;
  std::string body;         // kFixed: the response body
  size_t body_off = 0;      // kFixed: how much of it was sent
  uint64_t bytes_left = 0;  // kBytes: body bytes still to produce
  uint64_t bytes_sent = 0;
  // Request body bytes received but not yet echoed; `in_off` is how far they were echoed.
  std::string in;
  size_t in_off = 0;
  bool request_ended = false;
  bool deferred = false;  // the data source returned NGHTTP2_ERR_DEFERRED
  bool unary = false;
  GrpcFraming framing;
  uv_timer_t* timer = nullptr;  // kGrpcSlow only
  bool deadline_first = false;  // kGrpcSlow: the client's grpc-timeout ends before the answer

  Stream(Conn* c, int32_t stream_id) : conn(c), id(stream_id) {}
  size_t buffered() const { return in.size() - in_off; }
};

void free_stream(Stream* s) {
  if (s->timer == nullptr) {
    delete s;
    return;
  }
  uv_timer_stop(s->timer);
  s->timer->data = s;
  uv_close(reinterpret_cast<uv_handle_t*>(s->timer), [](uv_handle_t* h) {
    auto* stream = static_cast<Stream*>(h->data);
    delete reinterpret_cast<uv_timer_t*>(h);
    stream->timer = nullptr;
    delete stream;
  });
}

// ---- Connection --------------------------------------------------------------------------------

struct WriteReq {
  uv_write_t req;
  std::string data;
};

struct Conn {
  uv_tcp_t tcp;
  nghttp2_session* session = nullptr;
  std::unordered_set<Stream*> streams;
  // Bytes handed back to nghttp2 as consumed once the current nghttp2 call returns: (stream id,
  // bytes); stream id 0 = the connection window only (a stream closed with unread bytes).
  std::vector<std::pair<int32_t, size_t>> to_consume;
  int writes_pending = 0;
  bool reading = false;
  bool closing = false;

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp); }
  size_t unsent() const { return tcp.write_queue_size; }

  void close() {
    if (closing) return;
    closing = true;
    for (Stream* s : streams) free_stream(s);
    streams.clear();
    nghttp2_session_del(session);
    session = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp),
             [](uv_handle_t* h) { delete static_cast<Conn*>(h->data); });
  }

  void apply_consumed() {
    for (auto [id, n] : to_consume) {
      if (id == 0) {
        nghttp2_session_consume_connection(session, n);
      } else {
        nghttp2_session_consume(session, id, n);
      }
    }
    to_consume.clear();
  }

  // Pulls frames out of nghttp2 while the socket keeps up; closes once nghttp2 is done.
  void flush() {
    while (!closing && unsent() < kWriteHighWater) {
      auto* w = new WriteReq;
      while (w->data.size() < kWriteBatch) {
        const uint8_t* data;
        ssize_t n = nghttp2_session_mem_send(session, &data);
        if (n < 0) {
          delete w;
          close();
          return;
        }
        if (n == 0) break;
        w->data.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
        apply_consumed();
      }
      apply_consumed();
      if (w->data.empty()) {
        delete w;
        break;
      }
      w->req.data = this;
      uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
      ++writes_pending;
      int rc = uv_write(&w->req, stream(), &buf, 1, [](uv_write_t* req, int status) {
        auto* wr = reinterpret_cast<WriteReq*>(req);
        auto* c = static_cast<Conn*>(req->data);
        delete wr;
        --c->writes_pending;
        if (c->closing) return;
        if (status < 0) {
          c->close();
          return;
        }
        c->flush();
      });
      if (rc != 0) {
        --writes_pending;
        delete w;
        close();
        return;
      }
    }
    if (closing) return;
    if (!nghttp2_session_want_read(session) && !nghttp2_session_want_write(session) &&
        writes_pending == 0) {
      close();
      return;
    }
    update_reading();
  }

  void update_reading() {
    bool want = unsent() < kReadPauseWater;
    if (want == reading) return;
    reading = want;
    if (want) {
      uv_read_start(
          stream(),
          [](uv_handle_t*, size_t, uv_buf_t* buf) {
            static char read_buf[kReadBufferSize];
            *buf = uv_buf_init(read_buf, sizeof read_buf);
          },
          on_read);
    } else {
      uv_read_stop(stream());
    }
  }

  static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
    auto* c = static_cast<Conn*>(s->data);
    if (c->closing) return;
    if (n < 0) {
      c->close();
      return;
    }
    if (n == 0) return;
    ssize_t rv =
        nghttp2_session_mem_recv(c->session, reinterpret_cast<const uint8_t*>(buf->base), n);
    if (rv < 0) {
      // A flood or a client that is not speaking HTTP/2: nothing more worth sending.
      if (rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
        c->close();
        return;
      }
      nghttp2_session_terminate_session(c->session, NGHTTP2_PROTOCOL_ERROR);
    }
    c->apply_consumed();
    c->flush();
  }
};

Stream* stream_of(nghttp2_session* session, int32_t id) {
  return static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, id));
}

// ---- Responses ---------------------------------------------------------------------------------

nghttp2_nv nv(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

// Finishes a gRPC call from inside the data source: trailers after the echoed messages.
void submit_grpc_trailers(nghttp2_session* session, Stream* s) {
  std::string_view status = "0", message = "OK";
  if (s->framing.mid_message()) {
    status = "13";
    message = "request ended inside a message";
  } else if (s->unary && s->framing.messages != 1) {
    status = "13";
    message = "a unary call takes exactly one message";
  }
  nghttp2_nv trailers[] = {nv("grpc-status", status), nv("grpc-message", message)};
  nghttp2_submit_trailer(session, s->id, trailers, 2);
}

ssize_t read_body(nghttp2_session* session, int32_t, uint8_t* buf, size_t length,
                  uint32_t* data_flags, nghttp2_data_source* source, void*) {
  auto* s = static_cast<Stream*>(source->ptr);
  switch (s->kind) {
    case Kind::kFixed: {
      size_t n = std::min(length, s->body.size() - s->body_off);
      std::memcpy(buf, s->body.data() + s->body_off, n);
      s->body_off += n;
      if (s->body_off == s->body.size()) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(n);
    }
    case Kind::kBytes: {
      size_t n = static_cast<size_t>(std::min<uint64_t>(length, s->bytes_left));
      for (size_t i = 0; i < n; ++i) buf[i] = static_cast<uint8_t>('a' + (s->bytes_sent + i) % 26);
      s->bytes_left -= n;
      s->bytes_sent += n;
      if (s->bytes_left == 0) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(n);
    }
    case Kind::kEcho:
    case Kind::kGrpcEcho:
    case Kind::kGrpcSlow: {
      size_t n = std::min(length, s->buffered());
      if (n > 0) {
        std::memcpy(buf, s->in.data() + s->in_off, n);
        s->in_off += n;
        if (s->in_off == s->in.size() || s->in_off >= static_cast<size_t>(kStreamWindow)) {
          s->in.erase(0, s->in_off);  // keeps only what was not echoed: at most a window
          s->in_off = 0;
        }
        s->conn->to_consume.emplace_back(s->id, n);
      }
      if (s->buffered() == 0 && s->request_ended) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        if (s->kind != Kind::kEcho) {
          *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
          submit_grpc_trailers(session, s);
        }
        return static_cast<ssize_t>(n);
      }
      if (n == 0) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
      }
      return static_cast<ssize_t>(n);
    }
  }
  return NGHTTP2_ERR_CALLBACK_FAILURE;
}

void respond(nghttp2_session* session, Stream* s, std::string_view status,
             std::vector<nghttp2_nv> extra, bool with_body) {
  std::vector<nghttp2_nv> hdrs = {nv(":status", status), nv("x-origin-name", g_name)};
  hdrs.insert(hdrs.end(), extra.begin(), extra.end());
  nghttp2_data_provider provider{};
  provider.source.ptr = s;
  provider.read_callback = read_body;
  nghttp2_submit_response(session, s->id, hdrs.data(), hdrs.size(),
                          with_body ? &provider : nullptr);
}

void respond_text(nghttp2_session* session, Stream* s, std::string_view status, std::string text) {
  s->kind = Kind::kFixed;
  s->body = std::move(text);
  std::string length = std::to_string(s->body.size());
  respond(session, s, status, {nv("content-type", "text/plain"), nv("content-length", length)},
          true);
}

// A gRPC call that ends without a body: one HEADERS frame with the status (Trailers-Only).
void respond_grpc_status(nghttp2_session* session, Stream* s, std::string_view code,
                         std::string_view message) {
  respond(session, s, "200",
          {nv("content-type", "application/grpc"), nv("grpc-status", code),
           nv("grpc-message", message)},
          false);
}

// grpc-timeout: 1 to 8 digits and a unit (H M S m u n); returns milliseconds, or -1.
int64_t parse_grpc_timeout(std::string_view v) {
  if (v.size() < 2 || v.size() > 9) return -1;
  uint64_t n = 0;
  auto res = std::from_chars(v.data(), v.data() + v.size() - 1, n);
  if (res.ec != std::errc() || res.ptr != v.data() + v.size() - 1) return -1;
  switch (v.back()) {
    case 'H':
      return static_cast<int64_t>(n * 3'600'000);
    case 'M':
      return static_cast<int64_t>(n * 60'000);
    case 'S':
      return static_cast<int64_t>(n * 1000);
    case 'm':
      return static_cast<int64_t>(n);
    case 'u':
      return static_cast<int64_t>((n + 999) / 1000);
    case 'n':
      return static_cast<int64_t>((n + 999'999) / 1'000'000);
    default:
      return -1;
  }
}

void on_slow_timer(uv_timer_t* t) {
  auto* s = static_cast<Stream*>(t->data);
  Conn* c = s->conn;
  if (c->closing) return;
  if (s->deadline_first) {
    respond_grpc_status(c->session, s, "4", "deadline exceeded");
  } else {
    respond(c->session, s, "200", {nv("content-type", "application/grpc")}, true);
  }
  c->flush();
}

void start_slow(Stream* s) {
  int64_t deadline = s->grpc_timeout.empty() ? -1 : parse_grpc_timeout(s->grpc_timeout);
  s->timer = new uv_timer_t;
  uv_timer_init(g_loop, s->timer);
  s->timer->data = s;
  s->deadline_first = deadline >= 0 && static_cast<uint64_t>(deadline) < kSlowMs;
  uv_timer_start(s->timer, on_slow_timer,
                 s->deadline_first ? static_cast<uint64_t>(deadline) : kSlowMs, 0);
}

void dispatch(nghttp2_session* session, Stream* s) {
  std::string_view path = s->path;
  path = path.substr(0, path.find('?'));
  constexpr std::string_view kGrpc = "/harrow.test.Echo/";
  if (path == "/count") {
    respond_text(session, s, "200", std::to_string(g_answered) + "\n");
    return;
  }
  ++g_answered;
  if (path.starts_with("/bytes/")) {
    std::string_view digits = path.substr(7);
    uint64_t n = 0;
    auto res = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (digits.empty() || res.ec != std::errc() || res.ptr != digits.data() + digits.size() ||
        n > kMaxBytes) {
      respond_text(session, s, "400", "bad byte count\n");
      return;
    }
    s->kind = Kind::kBytes;
    s->bytes_left = n;
    std::string length = std::to_string(n);
    respond(session, s, "200",
            {nv("content-type", "application/octet-stream"), nv("content-length", length)}, n > 0);
    return;
  }
  if (path == "/echo") {
    s->kind = Kind::kEcho;
    respond(session, s, "200", {nv("content-type", "application/octet-stream")}, true);
    return;
  }
  if (path.starts_with(kGrpc)) {
    std::string_view method = path.substr(kGrpc.size());
    if (method != "Unary" && method != "Stream" && method != "Slow" && method != "Fail") {
      respond_grpc_status(session, s, "12", "unknown method");
      return;
    }
    if (s->method != "POST" || !s->content_type.starts_with("application/grpc")) {
      respond_text(session, s, "415", "gRPC wants POST and content-type application/grpc\n");
      return;
    }
    if (method == "Fail") {
      respond_grpc_status(session, s, "13", "harrow-h2-origin: this method always fails");
    } else if (method == "Slow") {
      s->kind = Kind::kGrpcSlow;
      start_slow(s);
    } else {
      s->kind = Kind::kGrpcEcho;
      s->unary = method == "Unary";
      respond(session, s, "200", {nv("content-type", "application/grpc")}, true);
    }
    return;
  }
  respond_text(session, s, "404", "not found\n");
}

// ---- nghttp2 callbacks -------------------------------------------------------------------------

int on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto* c = static_cast<Conn*>(user);
  auto* s = new Stream(c, frame->hd.stream_id);
  c->streams.insert(s);
  nghttp2_session_set_stream_user_data(session, s->id, s);
  return 0;
}

int on_header(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
              size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void*) {
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  Stream* s = stream_of(session, frame->hd.stream_id);
  if (s == nullptr) return 0;
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string v(reinterpret_cast<const char*>(value), valuelen);
  if (n == ":method") {
    s->method = std::move(v);
  } else if (n == ":path") {
    s->path = std::move(v);
  } else if (n == "content-type") {
    s->content_type = std::move(v);
  } else if (n == "grpc-timeout") {
    s->grpc_timeout = std::move(v);
  }
  return 0;
}

void request_ended(nghttp2_session* session, Stream* s) {
  s->request_ended = true;
  if (s->deferred) {
    s->deferred = false;
    nghttp2_session_resume_data(session, s->id);
  }
}

int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void*) {
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  Stream* s = stream_of(session, frame->hd.stream_id);
  if (s == nullptr) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    dispatch(session, s);
  }
  if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) request_ended(session, s);
  return 0;
}

int on_data_chunk_recv(nghttp2_session* session, uint8_t, int32_t stream_id, const uint8_t* data,
                       size_t len, void* user) {
  auto* c = static_cast<Conn*>(user);
  Stream* s = stream_of(session, stream_id);
  bool echoes = s != nullptr && (s->kind == Kind::kEcho || s->kind == Kind::kGrpcEcho ||
                                 s->kind == Kind::kGrpcSlow);
  if (!echoes) {
    c->to_consume.emplace_back(stream_id, len);  // unused body: its window reopens at once
    return 0;
  }
  s->in.append(reinterpret_cast<const char*>(data), len);
  if (s->kind != Kind::kEcho) s->framing.feed(data, len);
  if (s->deferred) {
    s->deferred = false;
    nghttp2_session_resume_data(session, stream_id);
  }
  return 0;
}

int on_stream_close(nghttp2_session* session, int32_t stream_id, uint32_t, void* user) {
  auto* c = static_cast<Conn*>(user);
  Stream* s = stream_of(session, stream_id);
  if (s == nullptr) return 0;
  if (s->buffered() > 0) c->to_consume.emplace_back(0, s->buffered());
  c->streams.erase(s);
  free_stream(s);
  return 0;
}

nghttp2_session_callbacks* g_callbacks = nullptr;
nghttp2_option* g_option = nullptr;

void on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;
  auto* c = new Conn;
  uv_tcp_init(g_loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, c->stream()) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp),
             [](uv_handle_t* h) { delete static_cast<Conn*>(h->data); });
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  nghttp2_session_server_new2(&c->session, g_callbacks, c, g_option);
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
  };
  nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, 2);
  nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  c->flush();
}

// ---- Startup -----------------------------------------------------------------------------------

struct Options {
  std::string host;  // As given (IPv6 without brackets).
  std::string port;
  std::string tls_cert;
  std::string tls_key;
};

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "harrow-h2-origin: %s\n%s", msg.c_str(), kUsage);
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
    if (arg != "--listen" && arg != "--name" && arg != "--tls-cert" && arg != "--tls-key") {
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
      unsigned port = 0;
      auto res = std::from_chars(opt.port.data(), opt.port.data() + opt.port.size(), port);
      if (opt.port.empty() || res.ec != std::errc() ||
          res.ptr != opt.port.data() + opt.port.size() || port > 65535) {
        usage_error("bad port in --listen");
      }
      have_listen = true;
    } else if (arg == "--name") {
      if (val.empty()) usage_error("--name must not be empty");
      g_name = val;
    } else if (arg == "--tls-cert") {
      opt.tls_cert = val;
    } else {
      opt.tls_key = val;
    }
  }
  if (!have_listen) usage_error("--listen is required");
  return opt;
}

uv_signal_t g_sigterm;
uv_signal_t g_sigint;

void on_signal(uv_signal_t*, int) {
  uv_stop(g_loop);
}

}  // namespace

int main(int argc, char** argv) {
  Options opt = parse_args(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);

  nghttp2_session_callbacks_new(&g_callbacks);
  nghttp2_session_callbacks_set_on_begin_headers_callback(g_callbacks, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(g_callbacks, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(g_callbacks, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(g_callbacks, on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(g_callbacks, on_stream_close);
  nghttp2_option_new(&g_option);
  nghttp2_option_set_no_auto_window_update(g_option, 1);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc =
      getaddrinfo(opt.host.empty() ? nullptr : opt.host.c_str(), opt.port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    std::fprintf(stderr, "harrow-h2-origin: cannot resolve %s: %s\n", opt.host.c_str(),
                 gai_strerror(rc));
    return 1;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  g_loop = &loop;
  uv_tcp_t listener;
  uv_tcp_init(&loop, &listener);
  listener.data = nullptr;  // connections' handles point at their Conn; this one at nothing
  rc = uv_tcp_bind(&listener, res->ai_addr, 0);
  freeaddrinfo(res);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener), 1024, on_connection);
  if (rc != 0) {
    std::fprintf(stderr, "harrow-h2-origin: cannot listen on %s:%s: %s\n", opt.host.c_str(),
                 opt.port.c_str(), uv_strerror(rc));
    return 1;
  }
  sockaddr_storage bound{};
  int len = sizeof(bound);
  uv_tcp_getsockname(&listener, reinterpret_cast<sockaddr*>(&bound), &len);
  int port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                         : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);

  bool v6_literal = opt.host.find(':') != std::string::npos;
  std::printf("origin %s listening on http://%s%s%s:%d\n", g_name.c_str(), v6_literal ? "[" : "",
              opt.host.c_str(), v6_literal ? "]" : "", port);
  if (!opt.tls_cert.empty()) {
    origin::TlsFrontOptions front;
    front.cert_file = opt.tls_cert;
    front.key_file = opt.tls_key.empty() ? opt.tls_cert : opt.tls_key;
    front.host = opt.host.empty() ? "127.0.0.1" : opt.host;
    front.backend_port = port;
    front.alpn = "h2";
    std::string error;
    int tls_port = origin::start_tls_front(front, error);
    if (tls_port < 0) {
      std::fprintf(stderr, "harrow-h2-origin: %s\n", error.c_str());
      return 1;
    }
    std::printf("origin %s listening on https://%s%s%s:%d\n", g_name.c_str(), v6_literal ? "[" : "",
                opt.host.c_str(), v6_literal ? "]" : "", tls_port);
  }
  std::fflush(stdout);

  uv_signal_init(&loop, &g_sigterm);
  uv_signal_init(&loop, &g_sigint);
  uv_signal_start(&g_sigterm, on_signal, SIGTERM);
  uv_signal_start(&g_sigint, on_signal, SIGINT);
  uv_run(&loop, UV_RUN_DEFAULT);
  // Stopped by a signal: close every handle (connections free themselves in their callbacks).
  uv_walk(
      &loop,
      [](uv_handle_t* h, void*) {
        if (uv_is_closing(h)) return;
        if (h->type == UV_TCP && h->data != nullptr) {
          static_cast<Conn*>(h->data)->close();
        } else if (h->type != UV_TIMER) {
          uv_close(h, nullptr);
        }
      },
      nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  nghttp2_option_del(g_option);
  nghttp2_session_callbacks_del(g_callbacks);
  return 0;
}

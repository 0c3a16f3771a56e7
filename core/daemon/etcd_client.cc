#include "core/daemon/etcd_client.h"

#include <netdb.h>

#include <cstring>

#include "core/base/io_buffer.h"
#include "core/base/log.h"
#include "core/base/socket_address.h"
#include "core/tls/tls_session.h"

namespace harrow::etcd {

enum class Mode { Unary, FirstObject, Stream };

struct EtcdClient::Attempt {
  std::string path;
  std::string body;
  Mode mode = Mode::Unary;
  size_t tries = 0;
  std::string token;  // etcd v3 auth: the Authorization header
  Reply done;
  std::function<void(const std::string&)> message;  // Stream
  std::function<void(const std::string&)> ended;    // Stream
};

// One HTTP/1.1 exchange with one endpoint. Freed when both of its handles have closed.
struct Conn {
  EtcdClient* client = nullptr;
  std::shared_ptr<EtcdClient::Attempt> attempt;
  size_t endpoint = 0;
  uv_tcp_t tcp{};
  uv_timer_t timer{};
  uv_connect_t connect{};
  uv_write_t write{};
  std::string request;
  HttpReplyReader reader;
  JsonObjectSplitter splitter;
  int closing = 0;
  bool done = false;    // the attempt's outcome was decided
  bool silent = false;  // abandoned: no callback
  bool tcp_open = false;
  // https:// endpoints: the request goes through `out` into the session after the handshake;
  // the reply is decrypted into `plain`.
  std::unique_ptr<OutBatch> out;
  std::unique_ptr<tls::Session> tls;
  InputBuffer plain;
  bool handshaking = false;

  ~Conn() {
    tls.reset();
    out.reset();
    plain.release();
  }

  static void on_connect(uv_connect_t* req, int status) {
    auto* c = static_cast<Conn*>(req->data);
    if (c->done) return;
    if (status < 0) return c->fail(std::string("connect: ") + uv_strerror(status));
    if (c->client->tls_ != nullptr) return c->start_tls();
    uv_buf_t buf = uv_buf_init(c->request.data(), static_cast<unsigned>(c->request.size()));
    c->write.data = c;
    int rc = uv_write(&c->write, reinterpret_cast<uv_stream_t*>(&c->tcp), &buf, 1, &Conn::on_write);
    if (rc < 0) return c->fail(std::string("write: ") + uv_strerror(rc));
    uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), &Conn::on_alloc, &Conn::on_read);
  }
  static void on_write(uv_write_t* req, int status) {
    auto* c = static_cast<Conn*>(req->data);
    if (status < 0 && !c->done) c->fail(std::string("write: ") + uv_strerror(status));
  }
  void start_tls() {
    auto* stream = reinterpret_cast<uv_stream_t*>(&tcp);
    out = std::make_unique<OutBatch>(stream, &Conn::on_tls_write);
    // The host of HOST:PORT: etcd's certificate must name it (a DNS name or an IP address).
    std::string host = client->endpoint(endpoint);
    host.resize(host.rfind(':'));
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    tls = tls::Session::connect(client->tls_, host, true, nullptr, stream, &Conn::on_tls_write,
                                out.get());
    if (tls == nullptr) return fail("TLS start failed");
    out->set_filter(tls.get());
    handshaking = true;  // the request follows the handshake (tls_read)
    uv_read_start(stream, &Conn::on_alloc, &Conn::on_read);
  }
  static void on_tls_write(uv_write_t* req, int status) {
    auto* c = static_cast<Conn*>(req->handle->data);
    write_request_finish(req);
    c->out->write_done();
    if (status < 0 && !c->done) c->fail(std::string("write: ") + uv_strerror(status));
  }
  // Ciphertext arrived: the handshake's progress, then the reply's plaintext to plain_read.
  void tls_read(ssize_t n) {
    if (n < 0) {
      if (handshaking) return fail("connection closed during the TLS handshake");
      return plain_read(n, nullptr);
    }
    tls->received(static_cast<size_t>(n));
    for (;;) {
      tls::Session::Status status = tls->decrypt(plain);
      if (status == tls::Session::Status::Failed) {
        return fail((handshaking ? "TLS handshake failed: " : "TLS error: ") + tls->error());
      }
      if (handshaking && tls->handshake_done()) {
        handshaking = false;
        out->add_copy(request.data(), request.size(), false);
        if (int rc = out->flush(); rc != 0) return fail(std::string("write: ") + uv_strerror(rc));
      }
      if (plain.block != nullptr && plain.unconsumed() > 0) {
        const char* data = plain.parse_begin();
        auto len = static_cast<ssize_t>(plain.unconsumed());
        plain.parse_pos = plain.fill;
        plain_read(len, data);
        if (done) return;
      }
      if (status == tls::Session::Status::Closed) return plain_read(UV_EOF, nullptr);
      if (!tls->has_buffered()) break;
    }
    plain.release_if_drained();
  }
  static void on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    auto* c = static_cast<Conn*>(h->data);
    if (c->tls != nullptr) {
      *buf = c->tls->read_buffer();
      return;
    }
    static thread_local char chunk[64 * 1024];
    *buf = uv_buf_init(chunk, sizeof chunk);
  }
  static void on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
    auto* c = static_cast<Conn*>(stream->data);
    if (c->done || n == 0) return;
    if (c->tls != nullptr) return c->tls_read(n);
    c->plain_read(n, buf->base);
  }
  // Reply bytes (plaintext), or the end of the stream (n < 0).
  void plain_read(ssize_t n, const char* data) {
    Conn* c = this;
    if (n < 0) {
      if (n == UV_EOF && c->reader.finish()) return c->complete();
      if (c->attempt->mode == Mode::Stream && c->reader.status() == 200) {
        return c->end_stream(n == UV_EOF ? "stream closed" : uv_strerror(static_cast<int>(n)));
      }
      return c->fail(n == UV_EOF ? "closed: " + c->reader.error()
                                 : std::string("read: ") + uv_strerror(static_cast<int>(n)));
    }
    if (!c->reader.feed(std::string_view(data, static_cast<size_t>(n)))) {
      return c->fail(c->reader.error());
    }
    if (c->reader.head_done() && c->reader.status() == 200 && c->attempt->mode != Mode::Unary) {
      // Streamed reply: objects as they come.
      c->splitter.feed(c->reader.take_body());
      std::string object;
      while (!c->done && c->splitter.next(object)) {
        // A streamed RPC (keepalive, watch) answers 200 and puts etcd's refusal of the token
        // in the stream. (Keys and values are base64 in etcd's JSON: only an error has words.)
        if (TokenAuth::is_token_error(object)) {
          if (object.size() > 200) object.resize(200);
          return c->refuse(object);
        }
        if (c->attempt->mode == Mode::FirstObject) return c->succeed(object);
        uv_timer_stop(&c->timer);  // a stream that answered is not timed out
        c->client->current_ = c->endpoint;
        c->attempt->tries = 0;
        if (!c->silent) c->attempt->message(object);
      }
      if (c->splitter.failed()) return c->fail("bad streamed reply");
    }
    if (c->reader.complete()) c->complete();
  }
  static void on_timeout(uv_timer_t* t) {
    auto* c = static_cast<Conn*>(t->data);
    if (!c->done) c->fail("timed out");
  }

  void complete() {
    if (reader.status() != 200) {
      std::string body = reader.body();
      if (body.size() > 200) body.resize(200);
      std::string why = "HTTP " + std::to_string(reader.status()) + ": " + body;
      // etcd refused the credentials, not the request: another endpoint would too, and the
      // caller (TokenAuth) decides whether a new token is worth one retry.
      if (reader.status() == 401 || TokenAuth::is_token_error(why)) return refuse(why);
      return fail(why);
    }
    if (attempt->mode == Mode::Unary) return succeed(reader.body());
    if (attempt->mode == Mode::FirstObject) return fail("stream ended without a reply");
    end_stream("stream ended");
  }
  void succeed(const std::string& body) {
    done = true;
    client->current_ = endpoint;
    if (!silent) attempt->done(true, body, "");
    shut();
  }
  void end_stream(const std::string& why) {
    done = true;
    if (!silent) attempt->ended(why);
    shut();
  }
  // The answer is a failure the next endpoint would give as well.
  void refuse(const std::string& why) {
    done = true;
    client->current_ = endpoint;
    std::string where = client->endpoint(endpoint) + ": " + why;
    if (!silent) {
      if (attempt->mode == Mode::Stream) {
        attempt->ended(where);
      } else {
        attempt->done(false, "", where);
      }
    }
    shut();
  }
  // This endpoint did not answer: the next one gets the request, or the caller the failure.
  void fail(const std::string& why) {
    done = true;
    EtcdClient* c = client;
    std::shared_ptr<EtcdClient::Attempt> a = attempt;
    bool quiet = silent;
    shut();
    if (quiet || c->closed_) return;
    std::string where = c->endpoint(endpoint) + ": " + why;
    if (++a->tries < c->endpoints_.size()) {
      c->current_ = (endpoint + 1) % c->endpoints_.size();
      c->start(a);
      return;
    }
    a->tries = 0;
    if (a->mode == Mode::Stream) {
      a->ended(where);
    } else {
      a->done(false, "", where);
    }
  }
  void shut() {
    if (closing != 0) return;
    if (client->watch_ == this) client->watch_ = nullptr;
    closing = 2;
    auto closed = [](uv_handle_t* h) {
      auto* c = static_cast<Conn*>(h->data);
      if (--c->closing == 0) c->client->finished(c);
    };
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp), closed);
  }
};

EtcdClient::EtcdClient(uv_loop_t* loop, std::vector<std::string> endpoints,
                       std::chrono::milliseconds timeout, Security security)
    : loop_(loop), endpoints_(std::move(endpoints)), timeout_(timeout), tls_(security.tls) {
  if (!security.user.empty()) {
    auth_ = std::make_unique<TokenAuth>(
        std::move(security.user), std::move(security.password),
        [this](const std::string& path, const std::string& body, const std::string& token,
               bool first_object,
               Reply done) { send(path, body, token, first_object, std::move(done)); });
    auth_->on_refresh([](const std::string& why) {
      log_line(LogLevel::Info, "fleet: etcd refused the token (%s); authenticating again",
               why.c_str());
    });
  }
}

EtcdClient::~EtcdClient() {
  // close() ran and the loop ran the close callbacks; anything left would be a leak to report.
  for (Conn* c : conns_) delete c;
}

void EtcdClient::call(const std::string& path, std::string body, bool first_object, Reply done) {
  if (auth_) return auth_->call(path, std::move(body), first_object, std::move(done));
  send(path, body, "", first_object, std::move(done));
}

void EtcdClient::send(const std::string& path, const std::string& body, const std::string& token,
                      bool first_object, Reply done) {
  if (closed_) return;
  auto a = std::make_shared<Attempt>();
  a->path = path;
  a->body = body;
  a->token = token;
  a->mode = first_object ? Mode::FirstObject : Mode::Unary;
  a->done = std::move(done);
  start(std::move(a));
}

void EtcdClient::watch(std::string body, std::function<void(const std::string&)> message,
                       std::function<void(const std::string&)> ended) {
  cancel_watch();
  if (!auth_) return start_watch(std::move(body), "", std::move(message), std::move(ended));
  uint64_t generation = ++watch_generation_;
  auth_->with_token([this, generation, body = std::move(body), message = std::move(message),
                     ended = std::move(ended)](bool ok, const std::string& token) mutable {
    if (closed_ || generation != watch_generation_) return;  // cancelled meanwhile
    if (!ok) return ended(token);
    start_watch(std::move(body), token, std::move(message), std::move(ended));
  });
}

void EtcdClient::start_watch(std::string body, const std::string& token,
                             std::function<void(const std::string&)> message,
                             std::function<void(const std::string&)> ended) {
  auto a = std::make_shared<Attempt>();
  a->path = "/v3/watch";
  a->token = token;
  a->body = std::move(body);
  a->mode = Mode::Stream;
  a->message = std::move(message);
  a->ended = std::move(ended);
  start(std::move(a));
}

void EtcdClient::cancel_watch() {
  ++watch_generation_;
  if (watch_ == nullptr) return;
  watch_->silent = true;
  watch_->done = true;
  watch_->shut();
  watch_ = nullptr;
}

void EtcdClient::close() {
  closed_ = true;
  for (Conn* c : conns_) {
    c->silent = true;
    c->done = true;
    c->shut();
  }
}

void EtcdClient::finished(Conn* conn) {
  conns_.erase(conn);
  delete conn;
}

namespace {

bool resolve(const std::string& hostport, sockaddr_storage& out) {
  std::string error;
  if (parse_socket_address(hostport, out, error)) return true;
  size_t colon = hostport.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = hostport.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  // A name: resolved on the fleet's thread, which nothing on the request path waits for.
  if (getaddrinfo(host.c_str(), hostport.substr(colon + 1).c_str(), &hints, &res) != 0) {
    return false;
  }
  std::memcpy(&out, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return true;
}

}  // namespace

void EtcdClient::start(std::shared_ptr<Attempt> a) {
  if (closed_) return;
  auto* c = new Conn();
  c->client = this;
  c->attempt = std::move(a);
  c->endpoint = current_ % endpoints_.size();
  conns_.insert(c);
  if (c->attempt->mode == Mode::Stream) watch_ = c;
  const std::string& hostport = endpoints_[c->endpoint];
  c->request = "POST " + c->attempt->path + " HTTP/1.1\r\nHost: " + hostport +
               (c->attempt->token.empty() ? "" : "\r\nAuthorization: " + c->attempt->token) +
               "\r\nContent-Type: application/json\r\nContent-Length: " +
               std::to_string(c->attempt->body.size()) + "\r\nConnection: close\r\n\r\n" +
               c->attempt->body;
  uv_tcp_init(loop_, &c->tcp);
  uv_timer_init(loop_, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->connect.data = c;
  uv_timer_start(&c->timer, &Conn::on_timeout, static_cast<uint64_t>(timeout_.count()), 0);
  sockaddr_storage addr{};
  if (!resolve(hostport, addr)) return c->fail("cannot resolve");
  int rc = uv_tcp_connect(&c->connect, &c->tcp, reinterpret_cast<const sockaddr*>(&addr),
                          &Conn::on_connect);
  if (rc < 0) c->fail(std::string("connect: ") + uv_strerror(rc));
}

// ---- Store ----

void EtcdStore::grant(int64_t ttl_seconds, std::function<void(bool, int64_t)> done) {
  client_.call("/v3/lease/grant", lease_grant_body(ttl_seconds), false,
               [this, done](bool ok, const std::string& body, const std::string& error) {
                 int64_t lease = 0, ttl = 0;
                 std::string why = error;
                 ok = ok && parse_lease_grant_reply(body, lease, ttl, why);
                 if (!ok) last_error_ = why;
                 done(ok, lease);
               });
}

void EtcdStore::keepalive(int64_t lease, std::function<void(bool, int64_t)> done) {
  client_.call("/v3/lease/keepalive", lease_id_body(lease), true,
               [this, done](bool ok, const std::string& body, const std::string& error) {
                 int64_t ttl = 0;
                 std::string why = error;
                 ok = ok && parse_keepalive_reply(body, ttl, why);
                 if (!ok) last_error_ = why;
                 done(ok, ttl);
               });
}

void EtcdStore::create(const std::string& key, const std::string& value, int64_t lease,
                       std::function<void(bool, bool, KeyValue)> done) {
  conditional_put(create_txn_body(key, value, lease), std::move(done));
}

void EtcdStore::replace(const std::string& key, const std::string& value, int64_t lease,
                        int64_t mod_revision, std::function<void(bool, bool, KeyValue)> done) {
  conditional_put(replace_txn_body(key, value, lease, mod_revision), std::move(done));
}

void EtcdStore::conditional_put(std::string body, std::function<void(bool, bool, KeyValue)> done) {
  client_.call("/v3/kv/txn", std::move(body), false,
               [this, done](bool ok, const std::string& reply, const std::string& error) {
                 bool succeeded = false;
                 KeyValue current;
                 std::string why = error;
                 ok = ok && parse_create_txn_reply(reply, succeeded, current, why);
                 if (!ok) last_error_ = why;
                 done(ok, succeeded, std::move(current));
               });
}

void EtcdStore::put(const std::string& key, const std::string& value, int64_t lease,
                    std::function<void(bool)> done) {
  client_.call("/v3/kv/put", put_body(key, value, lease), false,
               [this, done](bool ok, const std::string& body, const std::string& error) {
                 int64_t revision = 0;
                 std::string why = error;
                 ok = ok && parse_put_reply(body, revision, why);
                 if (!ok) last_error_ = why;
                 done(ok);
               });
}

void EtcdStore::get_prefix(const std::string& prefix,
                           std::function<void(bool, std::vector<KeyValue>, int64_t)> done) {
  client_.call("/v3/kv/range", range_body(prefix, prefix_end(prefix)), false,
               [this, done](bool ok, const std::string& body, const std::string& error) {
                 int64_t revision = 0;
                 std::vector<KeyValue> kvs;
                 std::string why = error;
                 ok = ok && parse_range_reply(body, revision, kvs, why);
                 if (!ok) last_error_ = why;
                 done(ok, std::move(kvs), revision);
               });
}

void EtcdStore::watch_prefix(const std::string& prefix, int64_t start_revision,
                             std::function<void(const std::vector<Event>&)> events,
                             std::function<void()> broken) {
  auto ended = std::make_shared<bool>(false);
  auto end = [this, broken, ended](const std::string& why) {
    if (*ended) return;
    *ended = true;
    last_error_ = why;
    if (TokenAuth::is_token_error(why)) client_.forget_token();
    broken();
  };
  client_.watch(
      watch_create_body(prefix, prefix_end(prefix), start_revision),
      [this, events, end](const std::string& object) {
        WatchMessage m;
        std::string why;
        if (!parse_watch_message(object, m, why)) {
          client_.cancel_watch();
          return end("bad watch message: " + why);
        }
        if (m.canceled) {
          client_.cancel_watch();
          return end("watch canceled: " + m.cancel_reason);
        }
        if (!m.events.empty()) events(m.events);
      },
      end);
}

void EtcdStore::revoke(int64_t lease, std::function<void(bool)> done) {
  client_.call("/v3/lease/revoke", lease_id_body(lease), false,
               [done](bool ok, const std::string&, const std::string&) { done(ok); });
}

}  // namespace harrow::etcd

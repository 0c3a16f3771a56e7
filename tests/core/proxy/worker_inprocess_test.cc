// ClientConnection and UpstreamConnection driven through a real Worker on loopback (see
// worker_fixture.h), against a scripted origin: keep-alive connections the server closes as
// they are reused, reloads that land between a request's first byte and its retry, and the
// counters that say what each case did (retries, live-traffic failures).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/core/proxy/worker_fixture.h"

namespace harrow {
namespace {

using testing::wait_until;
using testing::WorkerFixture;

constexpr int kIoTimeoutMs = 3000;  // any single wait on a socket; a test that needs it failed

void set_io_timeouts(int fd) {
  timeval tv{kIoTimeoutMs / 1000, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

bool wait_readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) > 0;
}

// A head and its Content-Length body, complete in `buffer`: its length, or 0 if not yet.
size_t message_length(const std::string& buffer) {
  size_t end = buffer.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  std::string head = buffer.substr(0, end);
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t body = 0;
  size_t at = head.find("\r\ncontent-length:");
  if (at != std::string::npos) body = std::stoul(head.substr(at + 17));
  size_t total = end + 4 + body;
  return buffer.size() >= total ? total : 0;
}

// A self-signed certificate for 127.0.0.2, written to a file Harrow's <upstreamTls caFile> trusts
// (the file, not the system store: loading that costs a reload a quarter of a second), and the
// origin's TLS context serving it.
class OriginCertificate {
 public:
  OriginCertificate() {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("origin.test"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    // Harrow checks the server's address against the certificate (its SNI name is the address).
    X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name,
                                              const_cast<char*>("IP:127.0.0.2"));
    X509_add_ext(cert, san, -1);
    X509_EXTENSION_free(san);
    X509_sign(cert, key, EVP_sha256());
    char dir[] = "/tmp/harrow-worker-test-XXXXXX";
    if (::mkdtemp(dir) == nullptr) {
      ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    } else {
      dir_ = dir;
      ca_file_ = dir_ + "/origin.pem";
      FILE* f = std::fopen(ca_file_.c_str(), "w");
      if (f != nullptr) {
        PEM_write_X509(f, cert);
        std::fclose(f);
      }
    }
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx, cert);
    SSL_CTX_use_PrivateKey(ctx, key);
    ctx_ = std::shared_ptr<SSL_CTX>(ctx, SSL_CTX_free);
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  ~OriginCertificate() {
    if (!ca_file_.empty()) std::remove(ca_file_.c_str());
    if (!dir_.empty()) ::rmdir(dir_.c_str());
  }
  OriginCertificate(const OriginCertificate&) = delete;
  OriginCertificate& operator=(const OriginCertificate&) = delete;

  const std::shared_ptr<SSL_CTX>& context() const { return ctx_; }
  const std::string& ca_file() const { return ca_file_; }

 private:
  std::string dir_;
  std::string ca_file_;
  std::shared_ptr<SSL_CTX> ctx_;
};

// One origin server on `ip`:0, on its own thread: accepts connections and answers each request
// with 200 and the body "NAME PATH". Told to (close_reused), it closes a keep-alive connection
// when the connection's next request arrives, after reading it and without answering: what a
// server does whose keep-alive timeout fired just as Harrow reused the connection (RFC 9112
// §9.3.1). That close is deterministic, where a close right after a response would race with
// Harrow noticing it in its idle pool. With hold, it waits for release() before closing; with
// go_away, it also stops listening then, so that a new connection is refused.
class ScriptedOrigin {
 public:
  ScriptedOrigin(const char* ip, std::string name, std::shared_ptr<SSL_CTX> tls = nullptr)
      : name_(std::move(name)), tls_(std::move(tls)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    ::inet_pton(AF_INET, ip, &addr.sin_addr);
    int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_, 16) != 0) {
      ADD_FAILURE() << "origin cannot listen on " << ip << ": " << std::strerror(errno);
      return;
    }
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~ScriptedOrigin() {
    stop_ = true;
    released_ = true;
    if (thread_.joinable()) thread_.join();
    for (Conn& c : conns_) drop(c);
    if (listener_ >= 0) ::close(listener_);
  }

  uint16_t port() const { return port_; }
  void close_reused(int times, bool hold = false, bool go_away = false) {
    hold_ = hold;
    go_away_ = go_away;
    close_reused_ = times;
  }
  bool holding() const { return holding_; }
  void release() { released_ = true; }
  int connections() const { return accepted_; }
  // "METHOD PATH" of every request read, answered or not, in order.
  std::vector<std::string> requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }

 private:
  struct Conn {
    int fd = -1;
    SSL* ssl = nullptr;
    std::string in;
    int answered = 0;
  };

  void run() {
    // Bounded: the destructor sets stop_; every wait below has a timeout.
    while (!stop_) {
      std::vector<pollfd> fds{{listener_, POLLIN, 0}};
      for (Conn& c : conns_) fds.push_back({c.fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 10) < 0) break;
      if (fds[0].revents & POLLIN) accept_one();
      for (size_t i = 1; i < fds.size(); ++i) {
        Conn& c = conns_[i - 1];
        bool pending = c.ssl != nullptr && SSL_pending(c.ssl) > 0;
        if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) || pending) serve(c);
      }
      std::erase_if(conns_, [](const Conn& c) { return c.fd < 0; });
    }
  }

  void accept_one() {
    int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    set_io_timeouts(fd);
    Conn c;
    c.fd = fd;
    if (tls_) {
      c.ssl = SSL_new(tls_.get());
      SSL_set_fd(c.ssl, fd);
      if (SSL_accept(c.ssl) != 1) {  // blocking, bounded by the socket's timeouts
        ERR_clear_error();
        drop(c);
        return;
      }
    }
    ++accepted_;
    conns_.push_back(c);
  }

  void serve(Conn& c) {
    char buffer[16384];
    ssize_t n = c.ssl != nullptr ? SSL_read(c.ssl, buffer, sizeof buffer)
                                 : ::recv(c.fd, buffer, sizeof buffer, 0);
    if (n <= 0) {
      ERR_clear_error();
      drop(c);
      return;
    }
    c.in.append(buffer, static_cast<size_t>(n));
    while (size_t length = message_length(c.in)) {
      std::string request = c.in.substr(0, length);
      c.in.erase(0, length);
      size_t first_space = request.find(' ');
      size_t second_space = request.find(' ', first_space + 1);
      std::string path = request.substr(first_space + 1, second_space - first_space - 1);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        requests_.push_back(request.substr(0, second_space));
      }
      if (c.answered > 0 && close_reused_ > 0) {
        --close_reused_;
        if (hold_) {
          holding_ = true;
          wait_until([&] { return released_.load(); }, std::chrono::milliseconds(kIoTimeoutMs));
        }
        if (go_away_ && listener_ >= 0) {
          // Before the close Harrow hears of: its new connection finds nobody listening.
          ::close(listener_);  // poll() skips the negative fd from now on
          listener_ = -1;
        }
        drop(c);  // no close_notify, no answer: the connection just ends
        return;
      }
      std::string body = name_ + " " + path;
      std::string response =
          "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      if (c.ssl != nullptr) {
        SSL_write(c.ssl, response.data(), static_cast<int>(response.size()));
      } else {
        ::send(c.fd, response.data(), response.size(), MSG_NOSIGNAL);
      }
      ++c.answered;
    }
  }

  static void drop(Conn& c) {
    if (c.ssl != nullptr) SSL_free(c.ssl);
    c.ssl = nullptr;
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
  }

  std::string name_;
  std::shared_ptr<SSL_CTX> tls_;
  int listener_ = -1;
  uint16_t port_ = 0;
  std::vector<Conn> conns_;  // origin thread only
  std::atomic<int> close_reused_{0};
  std::atomic<bool> hold_{false};
  std::atomic<bool> go_away_{false};
  std::atomic<bool> holding_{false};
  std::atomic<bool> released_{false};
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

// A client connection to the worker, blocking with timeouts.
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    set_io_timeouts(fd_);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      ADD_FAILURE() << "connect: " << std::strerror(errno);
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void send(const std::string& bytes) {
    ASSERT_EQ(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  // The next response (Content-Length framed, as both origin answers and Harrow's own errors
  // are), or what came before the connection ended or the timeout.
  std::string response() {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(kIoTimeoutMs);
    while (message_length(in_) == 0 && std::chrono::steady_clock::now() < until) {
      if (!wait_readable(fd_, 50)) continue;
      char buffer[4096];
      ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      in_.append(buffer, static_cast<size_t>(n));
    }
    size_t length = message_length(in_);
    if (length == 0) length = in_.size();
    std::string out = in_.substr(0, length);
    in_.erase(0, length);
    return out;
  }
  std::string get(const std::string& path) {
    send("GET " + path + " HTTP/1.1\r\nHost: test\r\n\r\n");
    return response();
  }

 private:
  int fd_ = -1;
  std::string in_;
};

int status_of(const std::string& response) {
  if (response.size() < 12 || response.compare(0, 5, "HTTP/") != 0) return 0;
  return std::atoi(response.c_str() + 9);
}
std::string body_of(const std::string& response) {
  size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

std::string server_xml(const char* address, uint16_t port, bool tls = false) {
  std::string p = std::to_string(port);
  return std::string("<server address=\"") + address + "\"><applicationRequestRouting httpPort=\"" +
         p + "\"" + (tls ? " httpsPort=\"" + p + "\"" : "") + "/></server>";
}

// A farm whose balancer sends one URL to one server, so a second request for the same URL
// goes where the first went (and reuses its connection).
std::string farm_xml(const std::string& name, const std::string& servers) {
  return "<webFarm name=\"" + name + "\">" + servers +
         "<applicationRequestRouting><loadBalancing algorithm=\"RequestHash\"/>"
         "</applicationRequestRouting></webFarm>";
}

std::string config_xml(const std::string& farms, const std::string& rules,
                       const std::string& harrow = "") {
  return "<configuration><webFarms>" + farms +
         "</webFarms><system.webServer><rewrite><globalRules>" + rules +
         "</globalRules></rewrite></system.webServer><harrow>" + harrow +
         "</harrow></configuration>";
}

std::string rule_xml(const std::string& name, const std::string& match, const std::string& url) {
  return "<rule name=\"" + name + "\" stopProcessing=\"true\"><match url=\"" + match +
         "\"/><action type=\"Rewrite\" url=\"" + url + "\"/></rule>";
}

// ---------------------------------------------------------------------------------------------

class WorkerInProcess : public ::testing::Test {
 protected:
  WorkerFixture harrow;
};

// A two-server farm: the pooled connection the first request left is closed by its server as
// the second request reuses it. The second request goes again to the same server on a new
// connection (not to the other server), and the server's health does not pay for it.
TEST_F(WorkerInProcess, StalePooledConnectionIsRetriedOnTheSameServer) {
  ScriptedOrigin a("127.0.0.2", "A");
  ScriptedOrigin b("127.0.0.3", "B");
  harrow.start(config_xml(
      farm_xml("app", server_xml("127.0.0.2", a.port()) + server_xml("127.0.0.3", b.port())),
      rule_xml("app", ".*", "http://app/{R:0}")));
  ASSERT_TRUE(harrow.started());

  Client client(harrow.port());
  std::string first = client.get("/same");
  ASSERT_EQ(status_of(first), 200) << first;
  std::string home = body_of(first).substr(0, 1);  // where RequestHash sends "/same"
  ScriptedOrigin& home_origin = home == "A" ? a : b;
  ScriptedOrigin& other_origin = home == "A" ? b : a;
  const std::string home_address = home == "A" ? "127.0.0.2" : "127.0.0.3";
  ServerMetrics& m = WorkerFixture::server(harrow.first(), "app", home_address);
  ASSERT_TRUE(wait_until([&] { return m.idle_connections.get() == 1; }));

  home_origin.close_reused(1);
  std::string second = client.get("/same");
  EXPECT_EQ(status_of(second), 200) << second;
  EXPECT_EQ(body_of(second), home + " /same");
  EXPECT_EQ(home_origin.connections(), 2);
  EXPECT_EQ(other_origin.connections(), 0);
  EXPECT_EQ(home_origin.requests().size(), 3u);  // the second request twice: lost, then retried
  EXPECT_EQ(m.retries.get(), 1u);
  EXPECT_EQ(m.connections_reused.get(), 1u);
  EXPECT_EQ(m.connections_opened.get(), 2u);
  EXPECT_EQ(m.live_failures.get(), 0u);
  for (int f = 0; f < kFailureCount; ++f) EXPECT_EQ(m.failures[f].get(), 0u) << f;
  EXPECT_EQ(harrow.worker().metrics().failures[static_cast<int>(Failure::upstream_reset)].get(),
            0u);
}

// The same, but the server went away for good: after the stale connection, the fresh one is
// refused. That is a failure of the server (its live-traffic count moves) and the request,
// still whole and without a body, fails over to the other server.
TEST_F(WorkerInProcess, StaleRetryRefusedFailsOverToTheOtherServer) {
  ScriptedOrigin a("127.0.0.2", "A");
  ScriptedOrigin b("127.0.0.3", "B");
  harrow.start(config_xml(
      farm_xml("app", server_xml("127.0.0.2", a.port()) + server_xml("127.0.0.3", b.port())),
      rule_xml("app", ".*", "http://app/{R:0}")));
  ASSERT_TRUE(harrow.started());

  Client client(harrow.port());
  std::string first = client.get("/same");
  ASSERT_EQ(status_of(first), 200) << first;
  bool home_is_a = body_of(first).starts_with("A");
  ScriptedOrigin& home = home_is_a ? a : b;
  ScriptedOrigin& other = home_is_a ? b : a;
  ServerMetrics& m =
      WorkerFixture::server(harrow.first(), "app", home_is_a ? "127.0.0.2" : "127.0.0.3");
  ServerMetrics& other_m =
      WorkerFixture::server(harrow.first(), "app", home_is_a ? "127.0.0.3" : "127.0.0.2");
  ASSERT_TRUE(wait_until([&] { return m.idle_connections.get() == 1; }));

  home.close_reused(1, /*hold=*/false, /*go_away=*/true);
  std::string second = client.get("/same");
  EXPECT_EQ(status_of(second), 200) << second;
  EXPECT_EQ(body_of(second), std::string(home_is_a ? "B" : "A") + " /same");
  EXPECT_EQ(other.connections(), 1);
  EXPECT_EQ(m.retries.get(), 2u);  // the fresh retry, then the fail-over
  EXPECT_EQ(m.live_failures.get(), 1u);
  EXPECT_EQ(m.failures[static_cast<int>(Failure::upstream_connect_refused)].get(), 1u);
  EXPECT_EQ(m.in_flight.get(), 0u);
  EXPECT_EQ(other_m.live_failures.get(), 0u);
  // Counted as the exchange ends, which may be just after the client has its response.
  EXPECT_TRUE(wait_until([&] { return other_m.responses_by_class[2].get() == 1; }));
}

// A request with a body whose pooled connection the server closed is not sent twice (the body
// went into the lost connection, and a POST is not replayed): the client gets 502, and the
// server's live-traffic failures do not move (a closed keep-alive connection says nothing of
// its health).
TEST_F(WorkerInProcess, PostOnStalePooledConnectionIs502AndNotReplayed) {
  ScriptedOrigin a("127.0.0.2", "A");
  harrow.start(config_xml(farm_xml("app", server_xml("127.0.0.2", a.port())),
                          rule_xml("app", ".*", "http://app/{R:0}")));
  ASSERT_TRUE(harrow.started());
  ServerMetrics& m = WorkerFixture::server(harrow.first(), "app", "127.0.0.2");

  Client client(harrow.port());
  ASSERT_EQ(status_of(client.get("/first")), 200);
  ASSERT_TRUE(wait_until([&] { return m.idle_connections.get() == 1; }));

  a.close_reused(1);
  client.send("POST /form HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello");
  std::string answer = client.response();
  EXPECT_EQ(status_of(answer), 502) << answer;
  EXPECT_EQ(a.requests(), (std::vector<std::string>{"GET /first", "POST /form"}));
  EXPECT_EQ(a.connections(), 1);
  EXPECT_EQ(m.retries.get(), 0u);
  EXPECT_EQ(m.connections_opened.get(), 1u);
  EXPECT_EQ(m.live_failures.get(), 0u);
}

// Over https, two reloads' worth of epochs. The farms of the second configuration start with a
// new one, so "app" moves from index 0 to 1 and "other" from 1 to 2; the idle pool moves with
// them to the new epoch.
class WorkerInProcessReload : public WorkerInProcess {
 protected:
  void SetUp() override {
    a_ = std::make_unique<ScriptedOrigin>("127.0.0.2", "A", certificate_.context());
    c_ = std::make_unique<ScriptedOrigin>("127.0.0.3", "C");
    // The farm in front names C's address: a request sent there by a stale index is answered
    // "C", not "A".
    std::string app = farm_xml("app", server_xml("127.0.0.2", a_->port(), true));
    std::string other = farm_xml("other", server_xml("127.0.0.3", c_->port()));
    std::string front = farm_xml("front", server_xml("127.0.0.3", c_->port()));
    std::string rules = rule_xml("other", "^other/(.*)", "http://other/{R:1}") +
                        rule_xml("app", ".*", "https://app/{R:0}");
    std::string upstream_tls = "<upstreamTls caFile=\"" + certificate_.ca_file() + "\"/>";
    before_ = config_xml(app + other, rules, upstream_tls);
    after_ = config_xml(front + app + other, rules, upstream_tls);
    harrow.start(before_);
    ASSERT_TRUE(harrow.started());
    client_ = std::make_unique<Client>(harrow.port());
    // A pooled connection to C: when it shows in the new snapshot's counters, the worker has
    // adopted it.
    ASSERT_EQ(body_of(client_->get("/other/x")), "C /x");
    // A pooled TLS connection to A.
    ASSERT_EQ(body_of(client_->get("/a")), "A /a");
    ASSERT_TRUE(wait_until([&] { return before("app").idle_connections.get() == 1; }));
    ASSERT_TRUE(wait_until([&] { return before("other").idle_connections.get() == 1; }));
  }

  ServerMetrics& before(const std::string& farm) {
    return WorkerFixture::server(harrow.first(), farm, farm == "app" ? "127.0.0.2" : "127.0.0.3");
  }
  ServerMetrics& after(const std::string& farm) {
    return WorkerFixture::server(harrow.latest(), farm, farm == "app" ? "127.0.0.2" : "127.0.0.3");
  }
  // Publishes the second configuration and waits until the worker runs it.
  void reload() {
    ASSERT_NE(harrow.publish(after_), nullptr);
    ASSERT_EQ(WorkerFixture::farm_index(harrow.latest(), "app"), 1);
    ASSERT_TRUE(wait_until([&] { return after("other").idle_connections.get() == 1; }));
  }

  OriginCertificate certificate_;
  std::unique_ptr<ScriptedOrigin> a_, c_;
  std::unique_ptr<Client> client_;
  std::string before_, after_;
};

// The request's first byte arrives before the reload, the rest after: it runs on the
// configuration it started with, whose pool the reload emptied, so it opens a connection to
// A itself. The next request runs on the new configuration and reuses the TLS connection the
// reload moved; A closes that one as it is reused, and the retry goes to A again.
TEST_F(WorkerInProcessReload, RequestBegunBeforeReloadThenStaleRetryOnTheMovedPool) {
  ASSERT_TRUE(wait_until([&] { return harrow.worker().metrics().exchanges_active.get() == 0; }));
  Client second(harrow.port());
  second.send("GET /a HTTP/1.1\r\nHo");
  ASSERT_TRUE(wait_until([&] { return harrow.worker().metrics().exchanges_active.get() == 1; }));
  reload();
  ASSERT_TRUE(wait_until([&] { return after("app").idle_connections.get() == 1; }));
  second.send("st: test\r\n\r\n");
  std::string answer = second.response();
  EXPECT_EQ(status_of(answer), 200) << answer;
  EXPECT_EQ(body_of(answer), "A /a");
  EXPECT_EQ(before("app").connections_opened.get(), 2u);
  EXPECT_EQ(before("app").retries.get(), 0u);

  a_->close_reused(1);
  std::string third = client_->get("/a");
  EXPECT_EQ(status_of(third), 200) << third;
  EXPECT_EQ(body_of(third), "A /a");
  EXPECT_EQ(after("app").connections_reused.get(), 1u);
  EXPECT_EQ(after("app").retries.get(), 1u);
  EXPECT_EQ(after("app").live_failures.get(), 0u);
  EXPECT_EQ(c_->requests(), (std::vector<std::string>{"GET /x"}));
}

// The request reuses A's pooled TLS connection before the reload; A closes it only after the
// worker adopted the new configuration. The fresh retry runs on the configuration the request
// started with (A is farm 0 there, "front" is farm 0 now) and is answered by A.
TEST_F(WorkerInProcessReload, StaleRetryAfterReloadRunsOnTheRequestsConfiguration) {
  a_->close_reused(1, /*hold=*/true);
  client_->send("GET /a HTTP/1.1\r\nHost: test\r\n\r\n");
  ASSERT_TRUE(wait_until([&] { return a_->holding(); }));
  reload();
  a_->release();
  std::string answer = client_->response();
  EXPECT_EQ(status_of(answer), 200) << answer;
  EXPECT_EQ(body_of(answer), "A /a");
  EXPECT_EQ(before("app").retries.get(), 1u);
  EXPECT_EQ(before("app").live_failures.get(), 0u);
  EXPECT_EQ(after("app").retries.get(), 0u);
  EXPECT_EQ(a_->connections(), 2);
  // And the new configuration serves the next request.
  std::string next = client_->get("/a");
  EXPECT_EQ(status_of(next), 200) << next;
  EXPECT_EQ(body_of(next), "A /a");
  EXPECT_EQ(c_->requests(), (std::vector<std::string>{"GET /x"}));
}

}  // namespace
}  // namespace harrow

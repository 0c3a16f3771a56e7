// ProbeClient against a tiny HTTP server on 127.0.0.1 (plain sockets on a thread, one
// connection at a time), on a real libuv loop that the test drives until `done` was called or
// a deadline passed.
#include "health/probe_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace harrow::health {
namespace {

using namespace std::chrono_literals;

constexpr int kPeerWaitMs = 3000;  // bound on every blocking step of the server

// One accepted connection, handled on the server thread.
class Peer {
 public:
  Peer(int fd, int stop_fd) : fd_(fd), stop_fd_(stop_fd) {}
  ~Peer() { close(); }

  // Reads one request head; false on EOF, error, timeout or server stop.
  bool read_request(std::string* head = nullptr) {
    while (true) {
      size_t end = buffer_.find("\r\n\r\n");
      if (end != std::string::npos) {
        if (head != nullptr) *head = buffer_.substr(0, end + 4);
        buffer_.erase(0, end + 4);
        return true;
      }
      if (!wait(POLLIN)) return false;
      char chunk[4096];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  bool write(std::string_view bytes) {
    while (!bytes.empty()) {
      if (!wait(POLLOUT)) return false;
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Blocks until the client closes the connection (or stop, or the bound).
  void wait_closed() {
    char chunk[4096];
    while (wait(POLLIN) && ::recv(fd_, chunk, sizeof chunk, 0) > 0) {
    }
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  bool wait(short events) {
    if (fd_ < 0) return false;
    pollfd p[2] = {{fd_, events, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(p, 2, kPeerWaitMs) <= 0 || (p[1].revents != 0)) return false;
    return true;
  }

  int fd_;
  int stop_fd_;
  std::string buffer_;
};

class TestServer {
 public:
  explicit TestServer(std::function<void(Peer&)> handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 16) != 0) {
      ADD_FAILURE() << "test server: bind/listen failed";
    }
    socklen_t len = sizeof address_;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address_), &len);
    if (::pipe2(stop_pipe_, O_CLOEXEC) != 0) ADD_FAILURE() << "test server: pipe failed";
    thread_ = std::thread([this] { run(); });
  }

  ~TestServer() {
    char c = 0;
    if (::write(stop_pipe_[1], &c, 1) != 1) ADD_FAILURE() << "test server: stop failed";
    thread_.join();
    ::close(listen_fd_);
    ::close(stop_pipe_[0]);
    ::close(stop_pipe_[1]);
  }

  const sockaddr_storage& address() const { return address_; }
  int accepted() const { return accepted_.load(); }

  std::vector<std::string> heads() const {
    std::lock_guard lock(mutex_);
    return heads_;
  }
  void record(std::string head) {
    std::lock_guard lock(mutex_);
    heads_.push_back(std::move(head));
  }

  // Waits (bounded) until `n` connections were handled and closed by the server.
  bool wait_finished(int n) {
    std::unique_lock lock(mutex_);
    return finished_cv_.wait_for(lock, 1s, [&] { return finished_ >= n; });
  }

 private:
  void run() {
    while (true) {
      pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0 || p[1].revents != 0) return;
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) continue;
      ++accepted_;
      {
        Peer peer(fd, stop_pipe_[0]);
        handler_(peer);
      }
      std::lock_guard lock(mutex_);
      ++finished_;
      finished_cv_.notify_all();
    }
  }

  std::function<void(Peer&)> handler_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  sockaddr_storage address_{};
  std::atomic<int> accepted_{0};
  mutable std::mutex mutex_;
  std::condition_variable finished_cv_;
  int finished_ = 0;
  std::vector<std::string> heads_;
  std::thread thread_;
};

std::string response(int status, std::string_view body, std::string_view headers = "") {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " Whatever\r\n";
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  r += headers;
  r += "\r\n";
  r += body;
  return r;
}

std::string path_of(const std::string& head) {
  size_t start = head.find(' ') + 1;
  return head.substr(start, head.find(' ', start) - start);
}

// A keep-alive server answering every request with respond(path).
std::function<void(Peer&)> serve(TestServer** server,
                                 std::function<std::string(const std::string&)> respond) {
  return [server, respond = std::move(respond)](Peer& peer) {
    std::string head;
    while (peer.read_request(&head)) {
      (*server)->record(head);
      if (!peer.write(respond(path_of(head)))) return;
    }
  };
}

StatusMatcher statuses(std::string_view spec) {
  std::optional<StatusMatcher> m = StatusMatcher::parse(spec);
  EXPECT_TRUE(m.has_value()) << spec;
  return m.value_or(StatusMatcher{});
}

class ProbeClientTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(uv_loop_init(&loop_), 0); }

  void TearDown() override {
    // Every client is gone by now: their handles' close callbacks run here, and none may stay.
    for (int i = 0; i < 100 && uv_run(&loop_, UV_RUN_NOWAIT) != 0; ++i) {
    }
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle outlived its ProbeClient";
  }

  ProbeRequest request(const TestServer& server, std::string path = "/health") {
    ProbeRequest r;
    r.address = server.address();
    r.host_header = "example.test";
    r.path = std::move(path);
    r.user_agent = "Harrow-HealthCheck/test (farm=f; pool=p)";
    r.timeout = 1000ms;
    r.statuses = statuses("200-399");
    return r;
  }

  // Drives the loop until `cond` holds or `deadline` passes; false on the deadline.
  bool run_until(const std::function<bool()>& cond, Millis deadline = 1500ms) {
    uv_timer_t watchdog;
    bool fired = false;
    watchdog.data = &fired;
    uv_timer_init(&loop_, &watchdog);
    uv_update_time(&loop_);
    uv_timer_start(
        &watchdog, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; },
        static_cast<uint64_t>(deadline.count()), 0);
    while (!cond() && !fired) uv_run(&loop_, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t*>(&watchdog), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);  // runs the watchdog's close
    return cond();
  }

  // One probe, run to its end. A probe that never reports yields a failure and nullopt.
  std::optional<ProbeResult> probe(ProbeClient& client, const ProbeRequest& r) {
    std::optional<ProbeResult> result;
    int calls = 0;
    client.probe(r, [&](ProbeResult res) {
      ++calls;
      result = std::move(res);
    });
    EXPECT_EQ(calls, 0) << "done called from inside probe()";
    EXPECT_TRUE(client.busy());
    if (!run_until([&] { return calls > 0; })) {
      ADD_FAILURE() << "probe did not complete";
      return std::nullopt;
    }
    EXPECT_EQ(calls, 1);
    EXPECT_FALSE(client.busy());
    return result;
  }

  uv_loop_t loop_;
};

TEST_F(ProbeClientTest, PassSendsTheProbeRequest) {
  TestServer* s = nullptr;
  TestServer server(serve(&s, [](const std::string&) { return response(200, "ok"); }));
  s = &server;
  ProbeClient client(&loop_);
  ProbeRequest r = request(server, "/health?x=1");
  auto result = probe(client, r);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::Pass) << result->detail;
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->error, 0);
  ASSERT_EQ(server.heads().size(), 1u);
  EXPECT_EQ(server.heads()[0],
            "GET /health?x=1 HTTP/1.1\r\nHost: example.test\r\n"
            "User-Agent: Harrow-HealthCheck/test (farm=f; pool=p)\r\nAccept: */*\r\n"
            "Connection: keep-alive\r\n\r\n");
}

TEST_F(ProbeClientTest, EmptyPathIsSlash) {
  TestServer* s = nullptr;
  TestServer server(serve(&s, [](const std::string&) { return response(200, ""); }));
  s = &server;
  ProbeClient client(&loop_);
  auto result = probe(client, request(server, ""));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::Pass);
  ASSERT_EQ(server.heads().size(), 1u);
  EXPECT_EQ(path_of(server.heads()[0]), "/");
}

TEST_F(ProbeClientTest, BadStatus) {
  TestServer* s = nullptr;
  TestServer server(serve(&s, [](const std::string&) { return response(503, "down"); }));
  s = &server;
  ProbeClient client(&loop_);
  auto result = probe(client, request(server));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::BadStatus);
  EXPECT_EQ(result->status, 503);
  EXPECT_EQ(result->detail, "status 503");
  // The small error page was read to its end: the connection carries the next probe.
  result = probe(client, request(server));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::BadStatus);
  EXPECT_EQ(client.connections_opened(), 1u);
}

TEST_F(ProbeClientTest, StatusCodeMatchList) {
  TestServer* s = nullptr;
  // The path names the status to answer with: "/302" → 302.
  TestServer server(
      serve(&s, [](const std::string& path) { return response(std::stoi(path.substr(1)), ""); }));
  s = &server;
  ProbeClient client(&loop_);
  const std::pair<int, ProbeResultKind> cases[] = {
      {200, ProbeResultKind::Pass},      {204, ProbeResultKind::Pass},
      {299, ProbeResultKind::Pass},      {304, ProbeResultKind::Pass},
      {302, ProbeResultKind::BadStatus}, {404, ProbeResultKind::BadStatus},
      {500, ProbeResultKind::BadStatus},
  };
  for (const auto& [status, kind] : cases) {
    ProbeRequest r = request(server, "/" + std::to_string(status));
    r.statuses = statuses("200-299,304");
    auto result = probe(client, r);
    ASSERT_TRUE(result);
    EXPECT_EQ(result->kind, kind) << status;
    EXPECT_EQ(result->status, status);
  }
  EXPECT_EQ(client.connections_opened(), 1u);
}

TEST_F(ProbeClientTest, InterimResponsesAreSkipped) {
  TestServer* s = nullptr;
  TestServer server(serve(&s, [](const std::string&) {
    return "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" +
           response(200, "healthy");
  }));
  s = &server;
  ProbeClient client(&loop_);
  ProbeRequest r = request(server);
  r.response_match = "healthy";
  auto result = probe(client, r);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::Pass) << result->detail;
  EXPECT_EQ(result->status, 200);
  result = probe(client, r);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::Pass) << result->detail;
  EXPECT_EQ(client.connections_opened(), 1u);
}

TEST_F(ProbeClientTest, ResponseMatchAcrossReads) {
  TestServer server([](Peer& peer) {
    while (peer.read_request()) {
      const std::string body = "status: he" + std::string("althy, all good");
      std::string all = response(200, body);
      size_t split = all.size() - std::string("althy, all good").size();
      if (!peer.write(std::string_view(all).substr(0, split))) return;
      // Not waiting for anything: a gap so that the two halves reach the client in two reads.
      std::this_thread::sleep_for(30ms);
      if (!peer.write(std::string_view(all).substr(split))) return;
    }
  });
  ProbeClient client(&loop_);
  ProbeRequest r = request(server);
  r.response_match = "healthy";
  auto result = probe(client, r);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::Pass) << result->detail;
  // Found, and the (small) response read to its end: the connection is reused.
  result = probe(client, r);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::Pass) << result->detail;
  EXPECT_EQ(client.connections_opened(), 1u);
}

std::string chunked(const std::vector<std::string>& chunks) {
  std::string r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  char size[32];
  for (const std::string& c : chunks) {
    snprintf(size, sizeof size, "%zx\r\n", c.size());
    r += size;
    r += c;
    r += "\r\n";
  }
  r += "0\r\n\r\n";
  return r;
}

TEST_F(ProbeClientTest, ResponseMatchInChunkedBodyAcrossChunks) {
  TestServer* s = nullptr;
  // Each chunk reaches the matcher as its own piece, whatever the reads: "he" | "althy" and
  // "hea" | "l" | "thy" (a piece shorter than the match).
  TestServer server(serve(&s, [](const std::string& path) {
    if (path == "/two") return chunked({"status: he", "althy", ", all good"});
    if (path == "/three") return chunked({"xxhea", "l", "thyxx"});
    return chunked({"status: heal", "thx", "y"});  // "healthxy": no "healthy"
  }));
  s = &server;
  ProbeClient client(&loop_);
  for (const char* path : {"/two", "/three"}) {
    ProbeRequest r = request(server, path);
    r.response_match = "healthy";
    auto result = probe(client, r);
    ASSERT_TRUE(result);
    EXPECT_EQ(result->kind, ProbeResultKind::Pass) << path << ": " << result->detail;
  }
  ProbeRequest r = request(server, "/none");
  r.response_match = "healthy";
  auto result = probe(client, r);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::BodyMismatch);
  EXPECT_EQ(client.connections_opened(), 1u);
}

TEST_F(ProbeClientTest, ResponseMatchNotFound) {
  TestServer* s = nullptr;
  TestServer server(serve(&s, [](const std::string&) { return response(200, "Healthy? no"); }));
  s = &server;
  ProbeClient client(&loop_);
  ProbeRequest r = request(server);
  r.response_match = "healthy";  // case-sensitive
  auto result = probe(client, r);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::BodyMismatch);
  EXPECT_EQ(result->status, 200);
  EXPECT_NE(result->detail.find("responseMatch not found"), std::string::npos) << result->detail;
}

TEST_F(ProbeClientTest, ResponseMatchOnOneByteNeedleAndBadStatusSkipsTheBody) {
  TestServer* s = nullptr;
  TestServer server(serve(&s, [](const std::string& path) {
    return path == "/bad" ? response(500, "x") : response(200, "abcx");
  }));
  s = &server;
  ProbeClient client(&loop_);
  ProbeRequest r = request(server);
  r.response_match = "x";
  auto result = probe(client, r);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::Pass);
  r.path = "/bad";
  result = probe(client, r);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::BadStatus);
}

// A server that sends a `total`-byte body of 'x' (with "healthy" at `match_at` if set) and
// records whether the client went away before the end.
std::function<void(Peer&)> big_body(size_t total, std::optional<size_t> match_at,
                                    std::atomic<bool>* cut_short) {
  return [=](Peer& peer) {
    while (peer.read_request()) {
      std::string head = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(total) + "\r\n\r\n";
      if (!peer.write(head)) return;
      std::string block(64 * 1024, 'x');
      for (size_t sent = 0; sent < total; sent += block.size()) {
        std::string piece = block.substr(0, std::min(block.size(), total - sent));
        if (match_at && *match_at >= sent && *match_at < sent + piece.size()) {
          piece.replace(*match_at - sent, 7, "healthy");
        }
        if (!peer.write(piece)) {
          *cut_short = true;
          return;
        }
      }
    }
  };
}

TEST_F(ProbeClientTest, ResponseMatchReadsAtMostOneMiB) {
  std::atomic<bool> cut_short{false};
  TestServer server(big_body(32u << 20, std::nullopt, &cut_short));
  ProbeClient client(&loop_);
  ProbeRequest r = request(server);
  r.response_match = "healthy";
  auto result = probe(client, r);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::BodyMismatch);
  EXPECT_EQ(result->detail, "responseMatch not found in the first 1 MiB");
  ASSERT_TRUE(server.wait_finished(1));
  EXPECT_TRUE(cut_short) << "the client read the whole body";
}

TEST_F(ProbeClientTest, ResponseMatchBeyondOneMiBIsNotFound) {
  std::atomic<bool> cut_short{false};
  TestServer server(big_body(2u << 20, (1u << 20) + 100, &cut_short));
  ProbeClient client(&loop_);
  ProbeRequest r = request(server);
  r.response_match = "healthy";
  auto result = probe(client, r);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::BodyMismatch);
}

TEST_F(ProbeClientTest, ResponseMatchEarlyInALargeBodyClosesInsteadOfReadingOn) {
  std::atomic<bool> cut_short{false};
  TestServer server(big_body(32u << 20, 1000, &cut_short));
  ProbeClient client(&loop_);
  ProbeRequest r = request(server);
  r.response_match = "healthy";
  auto result = probe(client, r);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::Pass) << result->detail;
  ASSERT_TRUE(server.wait_finished(1));
  EXPECT_TRUE(cut_short);
  // The next probe needs a new connection.
  result = probe(client, r);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::Pass) << result->detail;
  EXPECT_EQ(client.connections_opened(), 2u);
}

TEST_F(ProbeClientTest, ConnectionRefused) {
  // A port that nothing listens on: bound, never listened.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ProbeRequest r;
  socklen_t len = sizeof r.address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&r.address), &len);
  r.path = "/";
  r.host_header = "example.test";
  r.statuses = statuses("200-399");
  r.timeout = 1000ms;
  ProbeClient client(&loop_);
  auto result = probe(client, r);
  ::close(fd);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::ConnectFailed);
  EXPECT_EQ(result->error, UV_ECONNREFUSED);
  EXPECT_EQ(result->detail, "ECONNREFUSED");
}

TEST_F(ProbeClientTest, ImmediateConnectErrorIsStillReportedLater) {
  ProbeRequest r;  // address family AF_UNSPEC: uv_tcp_connect fails at once
  r.statuses = statuses("200");
  ProbeClient client(&loop_);
  auto result = probe(client, r);  // checks that done is not called inside probe()
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::ConnectFailed);
  EXPECT_NE(result->error, 0);
}

TEST_F(ProbeClientTest, TimeoutWhenTheServerNeverAnswers) {
  TestServer server([](Peer& peer) {
    if (peer.read_request()) peer.wait_closed();
  });
  ProbeClient client(&loop_);
  ProbeRequest r = request(server);
  r.timeout = 200ms;
  auto start = std::chrono::steady_clock::now();
  auto result = probe(client, r);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::Timeout);
  EXPECT_GE(elapsed, 190ms);
  EXPECT_LT(elapsed, 1000ms);
  // The timed-out connection is closed: the server sees it go.
  EXPECT_TRUE(server.wait_finished(1));
}

TEST_F(ProbeClientTest, TimeoutCoversAResponseThatStalls) {
  TestServer server([](Peer& peer) {
    if (!peer.read_request()) return;
    if (peer.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhal")) peer.wait_closed();
  });
  ProbeClient client(&loop_);
  ProbeRequest r = request(server);
  r.timeout = 200ms;
  r.response_match = "healthy";
  auto result = probe(client, r);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::Timeout);
  EXPECT_EQ(result->status, 200);
}

TEST_F(ProbeClientTest, KeepAliveReusesTheConnection) {
  TestServer* s = nullptr;
  TestServer server(serve(&s, [](const std::string&) { return response(200, "ok"); }));
  s = &server;
  ProbeClient client(&loop_);
  for (int i = 0; i < 3; ++i) {
    auto result = probe(client, request(server));
    ASSERT_TRUE(result);
    EXPECT_EQ(result->kind, ProbeResultKind::Pass);
  }
  EXPECT_EQ(client.connections_opened(), 1u);
  EXPECT_EQ(server.accepted(), 1);
  EXPECT_EQ(server.heads().size(), 3u);
}

TEST_F(ProbeClientTest, ConnectionCloseMeansReconnect) {
  TestServer server([](Peer& peer) {
    if (peer.read_request()) peer.write(response(200, "ok", "Connection: close\r\n"));
  });
  ProbeClient client(&loop_);
  for (int i = 0; i < 2; ++i) {
    auto result = probe(client, request(server));
    ASSERT_TRUE(result);
    EXPECT_EQ(result->kind, ProbeResultKind::Pass) << i << ": " << result->detail;
  }
  EXPECT_EQ(client.connections_opened(), 2u);
  EXPECT_EQ(server.accepted(), 2);
}

TEST_F(ProbeClientTest, BodyUntilCloseCompletesButIsNotReused) {
  TestServer server([](Peer& peer) {
    if (peer.read_request()) peer.write("HTTP/1.1 200 OK\r\n\r\nall healthy here");
  });
  ProbeClient client(&loop_);
  ProbeRequest r = request(server);
  r.response_match = "healthy here";
  for (int i = 0; i < 2; ++i) {
    auto result = probe(client, r);
    ASSERT_TRUE(result);
    EXPECT_EQ(result->kind, ProbeResultKind::Pass) << i << ": " << result->detail;
  }
  EXPECT_EQ(client.connections_opened(), 2u);
}

// A bounded one-shot signal from the test to the server thread.
class Gate {
 public:
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  bool wait() {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, 1s, [&] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

// The server answers once (keep-alive), then closes the connection when the test says so.
std::function<void(Peer&)> answer_once_then_close(Gate* close_now) {
  return [close_now](Peer& peer) {
    if (peer.read_request() && peer.write(response(200, "ok"))) close_now->wait();
  };
}

TEST_F(ProbeClientTest, IdleConnectionClosedByTheServerIsNoticed) {
  Gate close_now;
  TestServer server(answer_once_then_close(&close_now));
  ProbeClient client(&loop_);
  auto result = probe(client, request(server));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::Pass);
  close_now.open();
  ASSERT_TRUE(server.wait_finished(1));
  // The idle connection's end is an event for the loop: one turn notices it (the watchdog
  // would fire instead if the client did not read while idle).
  bool watchdog = false;
  uv_timer_t t;
  t.data = &watchdog;
  uv_timer_init(&loop_, &t);
  uv_update_time(&loop_);
  uv_timer_start(
      &t, [](uv_timer_t* h) { *static_cast<bool*>(h->data) = true; }, 1000, 0);
  uv_run(&loop_, UV_RUN_ONCE);
  EXPECT_FALSE(watchdog);
  uv_close(reinterpret_cast<uv_handle_t*>(&t), nullptr);
  uv_run(&loop_, UV_RUN_NOWAIT);

  result = probe(client, request(server));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::Pass) << result->detail;
  EXPECT_EQ(client.connections_opened(), 2u);
  EXPECT_EQ(server.accepted(), 2);
}

TEST_F(ProbeClientTest, ServerCloseRacingTheNextProbeIsRetriedOnce) {
  Gate close_now;
  TestServer server(answer_once_then_close(&close_now));
  ProbeClient client(&loop_);
  auto result = probe(client, request(server));
  ASSERT_TRUE(result);
  close_now.open();
  ASSERT_TRUE(server.wait_finished(1));
  // The loop has not run since the server closed: the probe goes out on the dead connection,
  // meets its end with nothing received, and is retried once on a new one.
  result = probe(client, request(server));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::Pass) << result->detail;
  EXPECT_EQ(client.connections_opened(), 2u);
}

TEST_F(ProbeClientTest, ClosedWithoutAnswerOnAFreshConnectionFails) {
  TestServer server([](Peer& peer) { peer.read_request(); });
  ProbeClient client(&loop_);
  auto result = probe(client, request(server));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::ConnectFailed);
  EXPECT_NE(result->error, 0);
  EXPECT_EQ(client.connections_opened(), 1u);  // no retry: the connection was not reused
}

TEST_F(ProbeClientTest, ClosedMidResponseIsInvalid) {
  static constexpr std::string_view kTruncated =
      "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort";
  TestServer server([](Peer& peer) {
    if (peer.read_request()) peer.write(kTruncated);
  });
  ProbeClient client(&loop_);
  auto result = probe(client, request(server));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::InvalidResponse);
  EXPECT_EQ(result->detail,
            "connection closed after " + std::to_string(kTruncated.size()) + " bytes");
}

TEST_F(ProbeClientTest, UnparseableResponseIsInvalid) {
  TestServer server([](Peer& peer) {
    if (peer.read_request()) peer.write("SMTP ready\r\n\r\n");
    peer.wait_closed();
  });
  ProbeClient client(&loop_);
  auto result = probe(client, request(server));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::InvalidResponse);
  EXPECT_FALSE(result->detail.empty());
}

TEST_F(ProbeClientTest, BytesAfterTheResponseMeanNoReuse) {
  TestServer* s = nullptr;
  TestServer server(serve(&s, [](const std::string&) { return response(200, "ok") + "junk"; }));
  s = &server;
  ProbeClient client(&loop_);
  for (int i = 0; i < 2; ++i) {
    auto result = probe(client, request(server));
    ASSERT_TRUE(result);
    EXPECT_EQ(result->kind, ProbeResultKind::Pass);
  }
  EXPECT_EQ(client.connections_opened(), 2u);
}

TEST_F(ProbeClientTest, DestroyInsideDone) {
  TestServer* s = nullptr;
  TestServer server(serve(&s, [](const std::string&) { return response(200, "ok"); }));
  s = &server;
  auto client = std::make_unique<ProbeClient>(&loop_);
  std::optional<ProbeResult> result;
  client->probe(request(server), [&](ProbeResult r) {
    result = std::move(r);
    client.reset();  // with its kept-alive connection open
  });
  ASSERT_TRUE(run_until([&] { return result.has_value(); }));
  EXPECT_EQ(result->kind, ProbeResultKind::Pass);
  EXPECT_EQ(client, nullptr);
  EXPECT_TRUE(server.wait_finished(1));  // the connection was closed
}

TEST_F(ProbeClientTest, DestroyInsideDoneAfterFailures) {
  TestServer server([](Peer& peer) {
    if (peer.read_request()) peer.wait_closed();
  });
  for (Millis timeout : {Millis(50), Millis(1000)}) {
    auto client = std::make_unique<ProbeClient>(&loop_);
    ProbeRequest r = request(server);
    r.timeout = timeout;
    if (timeout == Millis(1000)) r.address = sockaddr_storage{};  // immediate connect error
    std::optional<ProbeResult> result;
    client->probe(r, [&](ProbeResult res) {
      result = std::move(res);
      client.reset();
    });
    ASSERT_TRUE(run_until([&] { return result.has_value(); }));
    EXPECT_EQ(client, nullptr);
  }
}

TEST_F(ProbeClientTest, DestroyWithAProbeInFlight) {
  TestServer server([](Peer& peer) {
    if (peer.read_request()) peer.wait_closed();
  });
  bool called = false;
  {
    ProbeClient client(&loop_);
    client.probe(request(server), [&](ProbeResult) { called = true; });
    run_until([&] { return server.accepted() == 1; }, 500ms);
  }
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_FALSE(called);
  EXPECT_TRUE(server.wait_finished(1));
}

TEST_F(ProbeClientTest, ANewProbeCancelsTheOneInFlight) {
  TestServer* s = nullptr;
  TestServer server(serve(&s, [](const std::string&) { return response(200, "ok"); }));
  s = &server;
  ProbeClient client(&loop_);
  int first = 0;
  client.probe(request(server), [&](ProbeResult) { ++first; });
  auto result = probe(client, request(server));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, ProbeResultKind::Pass);
  EXPECT_EQ(first, 0);
}

TEST_F(ProbeClientTest, ProbeFromInsideDone) {
  TestServer* s = nullptr;
  TestServer server(serve(&s, [](const std::string&) { return response(200, "ok"); }));
  s = &server;
  ProbeClient client(&loop_);
  int passes = 0;
  std::function<void(ProbeResult)> again = [&](ProbeResult r) {
    if (r.kind == ProbeResultKind::Pass) ++passes;
    if (passes < 3) client.probe(request(server), again);
  };
  client.probe(request(server), again);
  ASSERT_TRUE(run_until([&] { return passes == 3 && !client.busy(); }));
  EXPECT_EQ(client.connections_opened(), 1u);
}

}  // namespace
}  // namespace harrow::health

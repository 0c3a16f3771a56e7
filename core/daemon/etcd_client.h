// A small client for etcd's v3 JSON gateway over HTTP/1.1 on a libuv loop (the fleet's own
// thread: fleet_service.h), and the fleet's Store on top of it. One connection per request
// ("Connection: close"): the fleet sends a few requests per lease TTL, so a pool would save
// nothing worth its states; the watch is one long-lived streamed reply. A request that gets
// no 200 from an endpoint (refused, reset, timed out, "no leader" 503) is tried at the next,
// starting from the last endpoint that answered. libuv is in this header only because the
// client lives on a caller's loop; nothing else of Harrow includes it.
#pragma once

#include <openssl/ssl.h>
#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/daemon/etcd_auth.h"
#include "core/daemon/fleet.h"

namespace harrow::etcd {

struct Conn;

class EtcdClient {
 public:
  // How etcd is reached beyond plain HTTP (<fleet caFile … user passwordFile>).
  struct Security {
    // https:// endpoints: TLS with this context (tls::new_fleet_context), etcd's certificate
    // checked against the endpoint's host. Not owned; outlives the client.
    SSL_CTX* tls = nullptr;
    // etcd v3 auth: every request and the watch carry the user's token (etcd_auth.h).
    std::string user;
    std::string password;
  };
  // `endpoints`: "HOST:PORT" each.
  EtcdClient(uv_loop_t* loop, std::vector<std::string> endpoints, std::chrono::milliseconds timeout,
             Security security);
  ~EtcdClient();  // after close(), once the loop has run the close callbacks
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  using Reply = std::function<void(bool ok, const std::string& body, const std::string& error)>;
  // POST `path` with `body`. `first_object`: the reply is a stream (lease keepalive); the
  // first JSON object in it is the answer.
  void call(const std::string& path, std::string body, bool first_object, Reply done);
  // POST /v3/watch: each streamed object goes to `message`; `ended` once when the stream ends
  // (not after cancel_watch()).
  void watch(std::string body, std::function<void(const std::string& object)> message,
             std::function<void(const std::string& why)> ended);
  void cancel_watch();
  // The watch ended on a token etcd no longer accepts: the next request authenticates again.
  void forget_token() {
    if (auth_) auth_->forget_token();
  }
  // Abandons every request (their callbacks are not called) and closes the connections.
  void close();
  // Connections not yet closed (close() then run the loop until this is 0).
  size_t open_connections() const { return conns_.size(); }
  const std::string& endpoint(size_t i) const { return endpoints_[i]; }

 private:
  struct Attempt;
  void start(std::shared_ptr<Attempt> attempt);
  void send(const std::string& path, const std::string& body, const std::string& token,
            bool first_object, Reply done);
  void start_watch(std::string body, const std::string& token,
                   std::function<void(const std::string& object)> message,
                   std::function<void(const std::string& why)> ended);
  void finished(Conn* conn);
  friend struct Conn;

  uv_loop_t* loop_;
  std::vector<std::string> endpoints_;
  std::chrono::milliseconds timeout_;
  size_t current_ = 0;  // the endpoint that answered last
  std::set<Conn*> conns_;
  Conn* watch_ = nullptr;
  uint64_t watch_generation_ = 0;  // a watch waiting for a token starts only if still current
  bool closed_ = false;
  SSL_CTX* tls_ = nullptr;
  std::unique_ptr<TokenAuth> auth_;
};

// fleet::Store over EtcdClient.
class EtcdStore : public fleet::Store {
 public:
  explicit EtcdStore(EtcdClient& client) : client_(client) {}
  void grant(int64_t ttl_seconds, std::function<void(bool, int64_t)> done) override;
  void keepalive(int64_t lease, std::function<void(bool, int64_t)> done) override;
  void create(const std::string& key, const std::string& value, int64_t lease,
              std::function<void(bool, bool, KeyValue)> done) override;
  void replace(const std::string& key, const std::string& value, int64_t lease,
               int64_t mod_revision, std::function<void(bool, bool, KeyValue)> done) override;
  void put(const std::string& key, const std::string& value, int64_t lease,
           std::function<void(bool)> done) override;
  void get_prefix(const std::string& prefix,
                  std::function<void(bool, std::vector<KeyValue>, int64_t)> done) override;
  void watch_prefix(const std::string& prefix, int64_t start_revision,
                    std::function<void(const std::vector<Event>&)> events,
                    std::function<void()> broken) override;
  void cancel_watch() override { client_.cancel_watch(); }
  void revoke(int64_t lease, std::function<void(bool)> done) override;
  // The last reply that could not be read, for the log.
  const std::string& last_error() const { return last_error_; }

 private:
  // A create-if-absent or compare-and-replace txn: done(ok, succeeded, the key as it is now).
  void conditional_put(std::string body, std::function<void(bool, bool, KeyValue)> done);

  EtcdClient& client_;
  std::string last_error_;
};

}  // namespace harrow::etcd

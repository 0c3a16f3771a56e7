// etcd v3 authentication for the fleet's client (<fleet user passwordFile>): the user's token
// from POST /v3/auth/authenticate, sent as the Authorization header of every request and of
// the watch. etcd's "simple" tokens expire (--auth-token-ttl, 5 minutes by default) and any
// token dies with a restart of the member that issued it, so a reply that says the token is
// invalid makes one new authentication and one retry of the request, never more (a password
// etcd refuses is the caller's failure, not a loop). Kept apart from the HTTP client so the
// refresh logic is tested with injected replies.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace harrow::etcd {

class TokenAuth {
 public:
  using Reply = std::function<void(bool ok, const std::string& body, const std::string& error)>;
  // Sends one request with `token` in Authorization (none when empty).
  using Send = std::function<void(const std::string& path, const std::string& body,
                                  const std::string& token, bool first_object, Reply done)>;

  TokenAuth(std::string user, std::string password, Send send);
  TokenAuth(const TokenAuth&) = delete;
  TokenAuth& operator=(const TokenAuth&) = delete;

  // `path` with the token (authenticating first when there is none); an invalid-token reply
  // clears it, authenticates again and retries once.
  void call(const std::string& path, std::string body, bool first_object, Reply done);
  // Runs `then` with a token (authenticating first when there is none), or with the reason
  // there is none: for the watch, whose stream is not retried here.
  void with_token(std::function<void(bool ok, const std::string& token_or_error)> then);
  // The watch or a request said the token is no longer good: the next one authenticates.
  void forget_token() { token_.clear(); }
  const std::string& token() const { return token_; }
  // Called with etcd's reason when a request's token was refused and a new one is fetched
  // (for the log: tokens that keep expiring say the TTL is too short).
  void on_refresh(std::function<void(const std::string& why)> f) { on_refresh_ = std::move(f); }
  size_t authentications() const { return authentications_; }

  // Whether an error from etcd means "authenticate again" (invalid or expired token, a token
  // older than a change of users or roles, or none sent).
  static bool is_token_error(const std::string& error);

 private:
  void authenticate();

  std::string user_;
  std::string password_;
  Send send_;
  std::string token_;
  bool authenticating_ = false;
  std::vector<std::function<void(bool, const std::string&)>> waiting_;
  size_t authentications_ = 0;
  std::function<void(const std::string&)> on_refresh_;
};

// JSON of /v3/auth/authenticate's request, and its reply's token.
std::string authenticate_body(const std::string& user, const std::string& password);
bool parse_authenticate_reply(const std::string& json, std::string& token, std::string& error);

}  // namespace harrow::etcd

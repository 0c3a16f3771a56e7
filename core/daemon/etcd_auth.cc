#include "core/daemon/etcd_auth.h"

#include "core/daemon/json_value.h"

namespace harrow::etcd {

std::string authenticate_body(const std::string& user, const std::string& password) {
  return "{\"name\":" + json_quoted(user) + ",\"password\":" + json_quoted(password) + "}";
}

bool parse_authenticate_reply(const std::string& json, std::string& token, std::string& error) {
  JsonValue doc;
  if (!parse_json(json, doc, error)) return false;
  if (doc.kind != JsonValue::Kind::Object) {
    error = "authenticate: not a JSON object";
    return false;
  }
  if (const JsonValue* e = doc.get("error")) {
    error = "etcd: " + (e->kind == JsonValue::Kind::Object ? e->str("message") : e->text);
    return false;
  }
  token = doc.str("token");
  if (token.empty()) {
    error = "authenticate: no token in etcd's reply";
    return false;
  }
  return true;
}

bool TokenAuth::is_token_error(const std::string& error) {
  // etcd's words (etcdserver/api/v3rpc/rpctypes): ErrInvalidAuthToken, ErrAuthOldRevision,
  // ErrUserEmpty (no token at all), and the gateway's 401 for codes.Unauthenticated.
  for (const char* words :
       {"invalid auth token", "revision in header is old", "user name is empty", "HTTP 401"}) {
    if (error.find(words) != std::string::npos) return true;
  }
  return false;
}

TokenAuth::TokenAuth(std::string user, std::string password, Send send)
    : user_(std::move(user)), password_(std::move(password)), send_(std::move(send)) {}

void TokenAuth::with_token(std::function<void(bool, const std::string&)> then) {
  if (!token_.empty()) return then(true, token_);
  waiting_.push_back(std::move(then));
  if (!authenticating_) authenticate();
}

void TokenAuth::authenticate() {
  authenticating_ = true;
  ++authentications_;
  send_("/v3/auth/authenticate", authenticate_body(user_, password_), "", false,
        [this](bool ok, const std::string& body, const std::string& error) {
          authenticating_ = false;
          std::string why = error;
          std::string token;
          ok = ok && parse_authenticate_reply(body, token, why);
          if (ok) {
            token_ = token;
          } else {
            why = "authentication as " + user_ + " failed: " + why;
          }
          std::vector<std::function<void(bool, const std::string&)>> waiting;
          waiting.swap(waiting_);
          for (auto& w : waiting) w(ok, ok ? token_ : why);
        });
}

void TokenAuth::call(const std::string& path, std::string body, bool first_object, Reply done) {
  auto attempt = [this, path, body, first_object, done](bool retry, auto& self) -> void {
    with_token(
        [this, path, body, first_object, done, retry, self](bool ok, const std::string& token) {
          if (!ok) return done(false, "", token);
          send_(path, body, token, first_object,
                [this, done, retry, self, token](bool ok, const std::string& reply,
                                                 const std::string& error) {
                  if (!ok && retry && is_token_error(error)) {
                    // Only the token that failed is dropped: another request may have fetched a
                    // new one meanwhile.
                    if (token_ == token) {
                      token_.clear();
                      if (on_refresh_) on_refresh_(error);
                    }
                    return self(false, self);
                  }
                  done(ok, reply, error);
                });
        });
  };
  attempt(true, attempt);
}

}  // namespace harrow::etcd

// TokenAuth (core/daemon/etcd_auth.h): the token fetched once and sent on every request, a new
// one fetched once when etcd says the token is invalid, never a loop; replies injected.
#include "core/daemon/etcd_auth.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>

namespace harrow::etcd {
namespace {

// Records every request and answers from a script (or leaves it pending).
struct FakeEtcd {
  struct Sent {
    std::string path, body, token;
    TokenAuth::Reply reply;
  };
  std::vector<Sent> sent;
  // Scripted answers by path: each request to a path takes the next one; none = pending.
  struct Answer {
    bool ok;
    std::string body, error;
  };
  std::map<std::string, std::deque<Answer>> script;

  TokenAuth::Send sender() {
    return [this](const std::string& path, const std::string& body, const std::string& token, bool,
                  TokenAuth::Reply reply) {
      sent.push_back({path, body, token, reply});
      auto& answers = script[path];
      if (answers.empty()) return;
      Answer a = answers.front();
      answers.pop_front();
      reply(a.ok, a.body, a.error);
    };
  }
  std::vector<std::string> tokens_for(const std::string& path) const {
    std::vector<std::string> out;
    for (const Sent& s : sent) {
      if (s.path == path) out.push_back(s.token);
    }
    return out;
  }
};

const char* kInvalid =
    "127.0.0.1:2379: HTTP 401: {\"error\":\"etcdserver: invalid auth token\",\"code\":16}";

struct Outcome {
  int calls = 0;
  bool ok = false;
  std::string body, error;
  TokenAuth::Reply reply() {
    return [this](bool o, const std::string& b, const std::string& e) {
      ++calls;
      ok = o;
      body = b;
      error = e;
    };
  }
};

TEST(EtcdAuth, AuthenticatesOnceAndSendsTheTokenOnEveryRequest) {
  FakeEtcd etcd;
  etcd.script["/v3/auth/authenticate"] = {{true, R"({"header":{},"token":"tok.1"})", ""}};
  etcd.script["/v3/kv/put"] = {{true, "{}", ""}, {true, "{}", ""}};
  TokenAuth auth("root", "pa\"ss", etcd.sender());
  Outcome a, b;
  auth.call("/v3/kv/put", "{}", false, a.reply());
  auth.call("/v3/kv/put", "{}", false, b.reply());
  EXPECT_TRUE(a.ok && b.ok);
  EXPECT_EQ(auth.authentications(), 1u);
  EXPECT_EQ(etcd.tokens_for("/v3/kv/put"), (std::vector<std::string>{"tok.1", "tok.1"}));
  ASSERT_EQ(etcd.sent[0].path, "/v3/auth/authenticate");
  EXPECT_EQ(etcd.sent[0].body, R"({"name":"root","password":"pa\"ss"})");
  EXPECT_EQ(etcd.sent[0].token, "");
}

TEST(EtcdAuth, RequestsWaitingForTheTokenShareOneAuthentication) {
  FakeEtcd etcd;  // the authentication stays pending
  TokenAuth auth("root", "pw", etcd.sender());
  Outcome a, b;
  auth.call("/v3/kv/put", "{}", false, a.reply());
  auth.call("/v3/kv/range", "{}", false, b.reply());
  std::string watch_token;
  auth.with_token([&](bool ok, const std::string& t) { watch_token = ok ? t : "failed"; });
  ASSERT_EQ(etcd.sent.size(), 1u);
  etcd.script["/v3/kv/put"] = {{true, "{}", ""}};
  etcd.script["/v3/kv/range"] = {{true, "{}", ""}};
  TokenAuth::Reply reply = etcd.sent[0].reply;  // a copy: the replies below grow `sent`
  reply(true, R"({"token":"t"})", "");
  EXPECT_EQ(auth.authentications(), 1u);
  EXPECT_TRUE(a.ok && b.ok);
  EXPECT_EQ(watch_token, "t");
  EXPECT_EQ(etcd.sent.size(), 3u);
}

TEST(EtcdAuth, AnInvalidTokenIsRefreshedOnceAndTheRequestRetried) {
  FakeEtcd etcd;
  etcd.script["/v3/auth/authenticate"] = {{true, R"({"token":"old"})", ""},
                                          {true, R"({"token":"new"})", ""}};
  etcd.script["/v3/lease/keepalive"] = {
      {true, "{}", ""}, {false, "", kInvalid}, {true, R"({"result":{}})", ""}};
  TokenAuth auth("root", "pw", etcd.sender());
  std::vector<std::string> refreshed;
  auth.on_refresh([&](const std::string& why) { refreshed.push_back(why); });
  Outcome first, second;
  auth.call("/v3/lease/keepalive", "{}", true, first.reply());
  EXPECT_TRUE(first.ok);
  // The token expired (or the member restarted): one new token, one retry, the caller sees
  // only the retry's answer.
  auth.call("/v3/lease/keepalive", "{}", true, second.reply());
  EXPECT_EQ(second.calls, 1);
  EXPECT_TRUE(second.ok) << second.error;
  EXPECT_EQ(second.body, R"({"result":{}})");
  EXPECT_EQ(auth.authentications(), 2u);
  EXPECT_EQ(etcd.tokens_for("/v3/lease/keepalive"),
            (std::vector<std::string>{"old", "old", "new"}));
  EXPECT_EQ(auth.token(), "new");
  EXPECT_EQ(refreshed, (std::vector<std::string>{kInvalid}));
}

TEST(EtcdAuth, ATokenRefusedTwiceIsTheCallersFailureNotALoop) {
  FakeEtcd etcd;
  etcd.script["/v3/auth/authenticate"] = {{true, R"({"token":"a"})", ""},
                                          {true, R"({"token":"b"})", ""}};
  etcd.script["/v3/kv/txn"] = {{false, "", kInvalid}, {false, "", kInvalid}};
  TokenAuth auth("root", "pw", etcd.sender());
  Outcome o;
  auth.call("/v3/kv/txn", "{}", false, o.reply());
  EXPECT_EQ(o.calls, 1);
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.error.find("invalid auth token"), std::string::npos) << o.error;
  EXPECT_EQ(auth.authentications(), 2u);
  EXPECT_EQ(etcd.sent.size(), 4u);  // authenticate, txn, authenticate, txn
}

TEST(EtcdAuth, OtherFailuresAreNotRetried) {
  FakeEtcd etcd;
  etcd.script["/v3/auth/authenticate"] = {{true, R"({"token":"a"})", ""}};
  etcd.script["/v3/kv/put"] = {{false, "", "127.0.0.1:2379: HTTP 503: no leader"}};
  TokenAuth auth("root", "pw", etcd.sender());
  Outcome o;
  auth.call("/v3/kv/put", "{}", false, o.reply());
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(auth.authentications(), 1u);
  EXPECT_EQ(etcd.sent.size(), 2u);
  EXPECT_EQ(auth.token(), "a");  // still good for the next request
}

TEST(EtcdAuth, ARefusedPasswordFailsTheRequestWithoutSendingIt) {
  FakeEtcd etcd;
  etcd.script["/v3/auth/authenticate"] = {
      {false, "",
       "127.0.0.1:2379: HTTP 400: {\"error\":\"etcdserver: authentication failed, invalid user "
       "ID or password\",\"code\":3}"},
      {true, R"({"token":"t"})", ""}};
  etcd.script["/v3/kv/range"] = {{true, "{}", ""}};
  TokenAuth auth("root", "wrong", etcd.sender());
  Outcome o;
  auth.call("/v3/kv/range", "{}", false, o.reply());
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.error.find("authentication as root failed"), std::string::npos) << o.error;
  EXPECT_NE(o.error.find("invalid user ID or password"), std::string::npos) << o.error;
  EXPECT_TRUE(etcd.tokens_for("/v3/kv/range").empty());
  // The next request tries again (the password may have been set in etcd meanwhile).
  Outcome later;
  auth.call("/v3/kv/range", "{}", false, later.reply());
  EXPECT_TRUE(later.ok);
  EXPECT_EQ(auth.authentications(), 2u);
}

TEST(EtcdAuth, AWatchThatLostItsTokenMakesTheNextRequestAuthenticate) {
  FakeEtcd etcd;
  etcd.script["/v3/auth/authenticate"] = {{true, R"({"token":"a"})", ""},
                                          {true, R"({"token":"b"})", ""}};
  TokenAuth auth("root", "pw", etcd.sender());
  std::string token;
  auth.with_token([&](bool, const std::string& t) { token = t; });
  EXPECT_EQ(token, "a");
  auth.forget_token();
  auth.with_token([&](bool, const std::string& t) { token = t; });
  EXPECT_EQ(token, "b");
}

TEST(EtcdAuth, TokenErrorsAndReplies) {
  EXPECT_TRUE(TokenAuth::is_token_error(kInvalid));
  EXPECT_TRUE(TokenAuth::is_token_error("etcd: etcdserver: user name is empty"));
  EXPECT_TRUE(TokenAuth::is_token_error("etcd: auth: revision in header is old"));
  EXPECT_FALSE(TokenAuth::is_token_error("etcdserver: authentication failed, invalid user ID"));
  EXPECT_FALSE(TokenAuth::is_token_error("etcdserver: permission denied"));
  EXPECT_FALSE(TokenAuth::is_token_error("timed out"));

  std::string token, error;
  EXPECT_TRUE(
      parse_authenticate_reply(R"({"header":{"revision":"3"},"token":"x.y"})", token, error));
  EXPECT_EQ(token, "x.y");
  EXPECT_FALSE(parse_authenticate_reply(R"({"error":"etcdserver: bad","code":3})", token, error));
  EXPECT_EQ(error, "etcd: etcdserver: bad");
  EXPECT_FALSE(parse_authenticate_reply(R"({"header":{}})", token, error));
  EXPECT_FALSE(parse_authenticate_reply("not json", token, error));
  EXPECT_EQ(authenticate_body("u\n", "p\\"), R"({"name":"u\u000a","password":"p\\"})");
}

}  // namespace
}  // namespace harrow::etcd

// etcd's v3 API as its JSON gateway speaks it over HTTP/1.1 (etcd 3.4: POST /v3/kv/range,
// /v3/kv/put, /v3/kv/txn, /v3/lease/grant, /v3/lease/keepalive, /v3/watch …), without I/O:
// request bodies, reply parsers, the splitter for the gateway's streamed replies and an
// HTTP/1.1 response reader. Keys and values are base64 in the JSON; 64-bit numbers are JSON
// strings. The I/O is core/daemon/etcd_client.h; the fuzz target drives the parsers here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace harrow::etcd {

std::string base64_encode(std::string_view bytes);
// False for anything but standard base64 with optional padding.
bool base64_decode(std::string_view text, std::string& out);
// The range_end that makes a range request cover every key starting with `prefix`.
std::string prefix_end(std::string_view prefix);

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t lease = 0;
};

struct Event {
  bool deleted = false;  // DELETE (or a lease's expiry); otherwise PUT
  KeyValue kv;
};

// Request bodies (JSON text).
std::string range_body(std::string_view key, std::string_view range_end);
std::string put_body(std::string_view key, std::string_view value, int64_t lease);
std::string delete_body(std::string_view key);
// A txn that puts `key` only if it does not exist (create_revision == 0), and otherwise reads
// it: the election's one round trip.
std::string create_txn_body(std::string_view key, std::string_view value, int64_t lease);
// A txn that puts `key` only if it is still at `mod_revision` (and otherwise reads it): taking
// over our own key left on a lease of an earlier session.
std::string replace_txn_body(std::string_view key, std::string_view value, int64_t lease,
                             int64_t mod_revision);
std::string lease_grant_body(int64_t ttl_seconds);
std::string lease_id_body(int64_t lease);  // keepalive and revoke
std::string watch_create_body(std::string_view key, std::string_view range_end,
                              int64_t start_revision);

// Reply parsers: false with `error` for anything that is not the reply they expect (including
// the gateway's {"error": …} and {"code": …, "message": …} answers).
bool parse_range_reply(std::string_view json, int64_t& revision, std::vector<KeyValue>& kvs,
                       std::string& error);
bool parse_put_reply(std::string_view json, int64_t& revision, std::string& error);
// `current` is the key's value when the txn did not create (or replace) it.
bool parse_create_txn_reply(std::string_view json, bool& created, KeyValue& current,
                            std::string& error);
bool parse_lease_grant_reply(std::string_view json, int64_t& lease, int64_t& ttl,
                             std::string& error);
// One message of the keepalive stream; ttl 0: the lease is gone.
bool parse_keepalive_reply(std::string_view json, int64_t& ttl, std::string& error);

struct WatchMessage {
  bool created = false;
  bool canceled = false;
  int64_t revision = 0;          // the header's: the store's revision when this was sent
  int64_t compact_revision = 0;  // canceled because the start revision was compacted away
  std::string cancel_reason;
  std::vector<Event> events;
};
bool parse_watch_message(std::string_view json, WatchMessage& out, std::string& error);

// The gateway streams replies as JSON objects one after another (newline-separated in
// practice; this does not depend on it): feed bytes, take whole objects out.
class JsonObjectSplitter {
 public:
  explicit JsonObjectSplitter(size_t max_object = 4 << 20) : max_(max_object) {}
  void feed(std::string_view bytes) { buffer_.append(bytes); }
  // The next whole object, or false. After failed() nothing more comes out.
  bool next(std::string& object);
  // Bytes outside an object other than white space, a bracket closed by the wrong one, or an
  // object longer than the maximum.
  bool failed() const { return failed_; }

 private:
  std::string buffer_;
  size_t scanned_ = 0;  // bytes of buffer_ already scanned for the current object
  size_t start_ = 0;    // where the current object starts (npos-like: buffer_.size())
  bool in_object_ = false;
  std::string closers_;  // the brackets the current object still has to close, innermost last
  bool in_string_ = false;
  bool escaped_ = false;
  bool failed_ = false;
  size_t max_;
};

// An HTTP/1.1 response read off a socket (llhttp): status, and the body as it comes, chunked
// or not. A response larger than `max_body` is an error.
class HttpReplyReader {
 public:
  explicit HttpReplyReader(size_t max_body = 8 << 20);
  ~HttpReplyReader();
  HttpReplyReader(const HttpReplyReader&) = delete;
  HttpReplyReader& operator=(const HttpReplyReader&) = delete;

  // False once the bytes are not a valid response (error() says why).
  bool feed(std::string_view bytes);
  // The peer closed: true if that ends the response (a body read to the end of the stream).
  bool finish();
  int status() const { return status_; }
  bool head_done() const { return head_done_; }
  bool complete() const { return complete_; }
  // Body bytes not taken yet (take_body() empties it, for streamed replies).
  const std::string& body() const { return body_; }
  std::string take_body() { return std::move(body_); }
  const std::string& error() const { return error_; }

  struct Parser;

 private:
  std::unique_ptr<Parser> parser_;
  int status_ = 0;
  bool head_done_ = false;
  bool complete_ = false;
  bool failed_ = false;
  size_t max_body_;
  size_t body_total_ = 0;
  std::string body_;
  std::string error_;
  friend struct Parser;
};

}  // namespace harrow::etcd

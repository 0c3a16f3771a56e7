#include "core/daemon/etcd_protocol.h"

#include <llhttp.h>

#include <cerrno>
#include <cstdlib>

#include "core/daemon/json_value.h"

namespace harrow::etcd {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_digit(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// 64-bit numbers come as JSON strings from the gateway ("revision": "12"); accept numbers too.
bool int_of(const JsonValue* v, int64_t& out) {
  if (v == nullptr) {
    out = 0;  // proto3 leaves zero values out
    return true;
  }
  if (v->kind == JsonValue::Kind::Number) {
    if (v->number < -9.2e18 || v->number > 9.2e18) return false;
    out = static_cast<int64_t>(v->number);
    return true;
  }
  if (v->kind != JsonValue::Kind::String || v->text.empty() || v->text.size() > 20) return false;
  errno = 0;
  char* end = nullptr;
  long long n = std::strtoll(v->text.c_str(), &end, 10);
  if (errno != 0 || end != v->text.c_str() + v->text.size()) return false;
  out = n;
  return true;
}

bool bytes_of(const JsonValue* v, std::string& out) {
  out.clear();
  if (v == nullptr) return true;
  return v->kind == JsonValue::Kind::String && base64_decode(v->text, out);
}

// The gateway's failures: {"error": "...", "code": N, "message": "..."} (unary) or
// {"error": {"grpc_code": N, "message": "..."}} (streams).
bool gateway_error(const JsonValue& doc, std::string& error) {
  if (doc.kind != JsonValue::Kind::Object) {
    error = "not a JSON object";
    return true;
  }
  const JsonValue* e = doc.get("error");
  if (e == nullptr) return false;
  if (e->kind == JsonValue::Kind::Object) {
    error = "etcd: " + e->str("message");
  } else {
    error = "etcd: " + (e->kind == JsonValue::Kind::String ? e->text : std::string(e->raw));
  }
  return true;
}

bool parse_document(std::string_view json, JsonValue& doc, std::string& error) {
  if (!parse_json(json, doc, error)) {
    error = "invalid JSON: " + error;
    return false;
  }
  return !gateway_error(doc, error);
}

bool parse_header_revision(const JsonValue& doc, int64_t& revision, std::string& error) {
  const JsonValue* header = doc.get("header");
  if (header == nullptr || header->kind != JsonValue::Kind::Object) {
    error = "reply without a header";
    return false;
  }
  if (!int_of(header->get("revision"), revision)) {
    error = "bad revision";
    return false;
  }
  return true;
}

bool parse_kv(const JsonValue& v, KeyValue& kv, std::string& error) {
  if (v.kind != JsonValue::Kind::Object || !bytes_of(v.get("key"), kv.key) ||
      !bytes_of(v.get("value"), kv.value) ||
      !int_of(v.get("create_revision"), kv.create_revision) ||
      !int_of(v.get("mod_revision"), kv.mod_revision) || !int_of(v.get("lease"), kv.lease)) {
    error = "bad key-value";
    return false;
  }
  return true;
}

bool parse_kvs(const JsonValue* list, std::vector<KeyValue>& kvs, std::string& error) {
  kvs.clear();
  if (list == nullptr) return true;
  if (list->kind != JsonValue::Kind::Array) {
    error = "kvs is not an array";
    return false;
  }
  for (const JsonValue& item : list->items) {
    KeyValue kv;
    if (!parse_kv(item, kv, error)) return false;
    kvs.push_back(std::move(kv));
  }
  return true;
}

// The {"result": {...}} wrapper of a streamed message.
const JsonValue* stream_result(const JsonValue& doc, std::string& error) {
  const JsonValue* result = doc.get("result");
  if (result == nullptr || result->kind != JsonValue::Kind::Object) {
    error = "stream message without a result";
    return nullptr;
  }
  return result;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t n = (uint32_t{static_cast<uint8_t>(bytes[i])} << 16) |
                 (uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8) |
                 static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  size_t rest = bytes.size() - i;
  if (rest != 0) {
    uint32_t n = uint32_t{static_cast<uint8_t>(bytes[i])} << 16;
    if (rest == 2) n |= uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8;
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += rest == 2 ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool base64_decode(std::string_view text, std::string& out) {
  out.clear();
  if (text.size() % 4 != 0) return false;
  for (size_t i = 0; i < text.size(); i += 4) {
    int d[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = text[i + k];
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        d[k] = 0;
        ++pad;
        continue;
      }
      if (pad != 0) return false;  // data after padding
      d[k] = base64_digit(c);
      if (d[k] < 0) return false;
    }
    uint32_t n =
        (uint32_t(d[0]) << 18) | (uint32_t(d[1]) << 12) | (uint32_t(d[2]) << 6) | uint32_t(d[3]);
    out += static_cast<char>(n >> 16);
    if (pad < 2) out += static_cast<char>((n >> 8) & 0xFF);
    if (pad < 1) out += static_cast<char>(n & 0xFF);
  }
  return true;
}

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<uint8_t>(end.back()) < 0xFF) {
      end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

std::string range_body(std::string_view key, std::string_view range_end) {
  return R"({"key":")" + base64_encode(key) + R"(","range_end":")" + base64_encode(range_end) +
         R"("})";
}

std::string put_body(std::string_view key, std::string_view value, int64_t lease) {
  std::string body =
      R"({"key":")" + base64_encode(key) + R"(","value":")" + base64_encode(value) + '"';
  if (lease != 0) body += R"(,"lease":")" + std::to_string(lease) + '"';
  return body + '}';
}

std::string delete_body(std::string_view key) {
  return R"({"key":")" + base64_encode(key) + R"("})";
}

std::string create_txn_body(std::string_view key, std::string_view value, int64_t lease) {
  std::string k = base64_encode(key);
  return R"({"compare":[{"key":")" + k +
         R"(","target":"CREATE","result":"EQUAL","create_revision":"0"}],"success":[{"request_put":)" +
         put_body(key, value, lease) + R"(}],"failure":[{"request_range":{"key":")" + k +
         R"("}}]})";
}

std::string replace_txn_body(std::string_view key, std::string_view value, int64_t lease,
                             int64_t mod_revision) {
  std::string k = base64_encode(key);
  return R"({"compare":[{"key":")" + k + R"(","target":"MOD","result":"EQUAL","mod_revision":")" +
         std::to_string(mod_revision) + R"("}],"success":[{"request_put":)" +
         put_body(key, value, lease) + R"(}],"failure":[{"request_range":{"key":")" + k +
         R"("}}]})";
}

std::string lease_grant_body(int64_t ttl_seconds) {
  return R"({"TTL":")" + std::to_string(ttl_seconds) + R"("})";
}

std::string lease_id_body(int64_t lease) {
  return R"({"ID":")" + std::to_string(lease) + R"("})";
}

std::string watch_create_body(std::string_view key, std::string_view range_end,
                              int64_t start_revision) {
  return R"({"create_request":{"key":")" + base64_encode(key) + R"(","range_end":")" +
         base64_encode(range_end) + R"(","start_revision":")" + std::to_string(start_revision) +
         R"("}})";
}

bool parse_range_reply(std::string_view json, int64_t& revision, std::vector<KeyValue>& kvs,
                       std::string& error) {
  JsonValue doc;
  return parse_document(json, doc, error) && parse_header_revision(doc, revision, error) &&
         parse_kvs(doc.get("kvs"), kvs, error);
}

bool parse_put_reply(std::string_view json, int64_t& revision, std::string& error) {
  JsonValue doc;
  return parse_document(json, doc, error) && parse_header_revision(doc, revision, error);
}

bool parse_create_txn_reply(std::string_view json, bool& created, KeyValue& current,
                            std::string& error) {
  JsonValue doc;
  int64_t revision = 0;
  if (!parse_document(json, doc, error) || !parse_header_revision(doc, revision, error)) {
    return false;
  }
  const JsonValue* succeeded = doc.get("succeeded");
  if (succeeded != nullptr && succeeded->kind != JsonValue::Kind::Bool) {
    error = "succeeded is not a boolean";
    return false;
  }
  created = succeeded != nullptr && succeeded->boolean;
  current = KeyValue{};
  if (created) return true;
  // The failure branch's range: the key as it is (absent if it went away meanwhile).
  const JsonValue* responses = doc.get("responses");
  if (responses == nullptr) return true;
  if (responses->kind != JsonValue::Kind::Array) {
    error = "responses is not an array";
    return false;
  }
  for (const JsonValue& r : responses->items) {
    if (r.kind != JsonValue::Kind::Object) {
      error = "bad response";
      return false;
    }
    const JsonValue* range = r.get("response_range");
    if (range == nullptr) continue;
    std::vector<KeyValue> kvs;
    if (range->kind != JsonValue::Kind::Object || !parse_kvs(range->get("kvs"), kvs, error)) {
      if (error.empty()) error = "bad response_range";
      return false;
    }
    if (!kvs.empty()) current = std::move(kvs.front());
  }
  return true;
}

bool parse_lease_grant_reply(std::string_view json, int64_t& lease, int64_t& ttl,
                             std::string& error) {
  JsonValue doc;
  if (!parse_document(json, doc, error)) return false;
  if (!int_of(doc.get("ID"), lease) || !int_of(doc.get("TTL"), ttl) || lease == 0) {
    error = doc.str("error").empty() ? "lease grant without an ID" : doc.str("error");
    return false;
  }
  return true;
}

bool parse_keepalive_reply(std::string_view json, int64_t& ttl, std::string& error) {
  JsonValue doc;
  if (!parse_document(json, doc, error)) return false;
  const JsonValue* result = stream_result(doc, error);
  if (result == nullptr) return false;
  if (!int_of(result->get("TTL"), ttl)) {
    error = "bad TTL";
    return false;
  }
  return true;
}

bool parse_watch_message(std::string_view json, WatchMessage& out, std::string& error) {
  out = WatchMessage{};
  JsonValue doc;
  if (!parse_document(json, doc, error)) return false;
  const JsonValue* result = stream_result(doc, error);
  if (result == nullptr || !parse_header_revision(*result, out.revision, error)) return false;
  for (const char* flag : {"created", "canceled"}) {
    const JsonValue* v = result->get(flag);
    if (v != nullptr && v->kind != JsonValue::Kind::Bool) {
      error = std::string(flag) + " is not a boolean";
      return false;
    }
    (flag[1] == 'r' ? out.created : out.canceled) = v != nullptr && v->boolean;
  }
  if (!int_of(result->get("compact_revision"), out.compact_revision)) {
    error = "bad compact_revision";
    return false;
  }
  out.cancel_reason = result->str("cancel_reason");
  const JsonValue* events = result->get("events");
  if (events == nullptr) return true;
  if (events->kind != JsonValue::Kind::Array) {
    error = "events is not an array";
    return false;
  }
  for (const JsonValue& e : events->items) {
    Event event;
    if (e.kind != JsonValue::Kind::Object) {
      error = "bad event";
      return false;
    }
    const JsonValue* type = e.get("type");
    if (type != nullptr && (type->kind != JsonValue::Kind::String ||
                            (type->text != "PUT" && type->text != "DELETE"))) {
      error = "bad event type";
      return false;
    }
    event.deleted = type != nullptr && type->text == "DELETE";  // PUT is proto3's zero: left out
    const JsonValue* kv = e.get("kv");
    if (kv == nullptr || !parse_kv(*kv, event.kv, error)) {
      if (error.empty()) error = "event without a key";
      return false;
    }
    out.events.push_back(std::move(event));
  }
  return true;
}

bool JsonObjectSplitter::next(std::string& object) {
  if (failed_) return false;
  size_t i = scanned_;
  for (; i < buffer_.size(); ++i) {
    char c = buffer_[i];
    if (!in_object_) {
      if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
      if (c != '{') {
        failed_ = true;
        return false;
      }
      in_object_ = true;
      start_ = i;
      closers_ = "}";
      continue;
    }
    if (i - start_ >= max_) {
      failed_ = true;
      return false;
    }
    if (in_string_) {
      if (escaped_) {
        escaped_ = false;
      } else if (c == '\\') {
        escaped_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      continue;
    }
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      closers_ += c == '{' ? '}' : ']';
    } else if (c == '}' || c == ']') {
      if (closers_.empty() || closers_.back() != c) {
        failed_ = true;  // "{]": not JSON, and no way to tell where the object ends
        return false;
      }
      closers_.pop_back();
      if (closers_.empty()) {
        object.assign(buffer_, start_, i + 1 - start_);
        buffer_.erase(0, i + 1);
        scanned_ = 0;
        in_object_ = false;
        return true;
      }
    }
  }
  if (in_object_ && buffer_.size() - start_ > max_) failed_ = true;
  if (!in_object_) {
    buffer_.clear();  // only white space so far
    i = 0;
  }
  scanned_ = i;
  return false;
}

struct HttpReplyReader::Parser {
  llhttp_t parser;
  HttpReplyReader* owner = nullptr;

  static Parser& of(llhttp_t* p) { return *static_cast<Parser*>(p->data); }
  static int on_headers_complete(llhttp_t* p) {
    HttpReplyReader& r = *of(p).owner;
    r.status_ = p->status_code;
    r.head_done_ = true;
    return 0;
  }
  static int on_body(llhttp_t* p, const char* at, size_t length) {
    HttpReplyReader& r = *of(p).owner;
    r.body_total_ += length;
    if (r.body_total_ > r.max_body_) return -1;
    r.body_.append(at, length);
    return 0;
  }
  static int on_message_complete(llhttp_t* p) {
    of(p).owner->complete_ = true;
    return HPE_PAUSED;  // one response per connection: whatever follows is not read
  }
  static const llhttp_settings_t& settings() {
    static const llhttp_settings_t s = [] {
      llhttp_settings_t v;
      llhttp_settings_init(&v);
      v.on_headers_complete = &Parser::on_headers_complete;
      v.on_body = &Parser::on_body;
      v.on_message_complete = &Parser::on_message_complete;
      return v;
    }();
    return s;
  }
};

HttpReplyReader::HttpReplyReader(size_t max_body)
    : parser_(std::make_unique<Parser>()), max_body_(max_body) {
  llhttp_init(&parser_->parser, HTTP_RESPONSE, &Parser::settings());
  parser_->parser.data = parser_.get();
  parser_->owner = this;
}

HttpReplyReader::~HttpReplyReader() = default;

bool HttpReplyReader::feed(std::string_view bytes) {
  if (failed_) return false;
  if (complete_ || bytes.empty()) return true;
  llhttp_errno_t e = llhttp_execute(&parser_->parser, bytes.data(), bytes.size());
  if (e == HPE_OK || (e == HPE_PAUSED && complete_)) return true;
  failed_ = true;
  error_ = body_total_ > max_body_ ? "response too large"
                                   : std::string("invalid response: ") + llhttp_errno_name(e);
  return false;
}

bool HttpReplyReader::finish() {
  if (complete_) return true;
  if (failed_) return false;
  llhttp_errno_t e = llhttp_finish(&parser_->parser);
  if ((e == HPE_OK || e == HPE_PAUSED) && complete_) return true;
  failed_ = true;
  if (error_.empty()) error_ = "connection closed before the response ended";
  return false;
}

}  // namespace harrow::etcd

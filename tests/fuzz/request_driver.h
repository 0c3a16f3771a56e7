// Drives Harrow's HTTP/1 request decoder (core/http1/request_decoder.h, the code
// ClientConnection runs) over a byte string delivered in reads of a given size; an accepted head
// has its path canonicalized (url_path.h), is routed by ARR's pass-through rule
// (http://f/{R:0}) and rewritten by write_upstream_request(), with the body re-framed (chunks
// re-chunked, trailers dropped). Shared by the request fuzz targets and the forwarding property
// test.
#pragma once

#include <llhttp.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/http1/http_head.h"
#include "core/http1/request_checks.h"
#include "core/http1/request_decoder.h"
#include "core/http1/url_path.h"
#include "core/rewrite/router.h"

namespace harrow::testing {

// The target the origin receives for a client's `target`: absolute-form reduced to origin-form
// (the router's rewrite always begins with '/'), any other form unchanged.
inline std::string origin_form(std::string_view target) {
  TargetParts parts = split_target(target);
  std::string out;
  if (parts.absolute && (parts.path.empty() || parts.path.front() != '/')) out = "/";
  out.append(parts.path);
  return out;
}

struct Decision {
  bool forwarded = false;   // a complete request was accepted and written upstream
  bool rejected = false;    // refused (framer, llhttp or head check)
  bool incomplete = false;  // the bytes ended mid-request
  Failure failure = Failure::bad_request;
  std::string method;
  std::string target;
  std::string judged_path;                                  // the canonical path the rules matched
  std::string forwarded_target;                             // the target written upstream
  std::vector<std::pair<std::string, std::string>> fields;  // the client's head
  std::string upstream;  // the bytes the origin receives: head and re-framed body
  std::string body;      // the body as decoded
  size_t consumed = 0;   // bytes of the input making up the request
};

class RequestDriver final : public RequestDecoderEvents {
 public:
  explicit RequestDriver(RequestLimits limits = {}) : limits_(limits) {
    config_.farms.resize(1);
    config_.farms[0].name = "f";
    config::RuleConfig rule;
    rule.name = "ARR_f_loadbalance";
    rule.pattern_syntax = config::PatternSyntax::Wildcard;
    rule.match_url = "*";
    rule.action = config::ActionType::Rewrite;
    rule.action_url = "http://f/{R:0}";
    rule.stop_processing = true;
    config_.global_rules.push_back(rule);
    router_ = std::make_unique<Router>(config_);
  }

  // Runs the first request in `input` (delivered in reads of `read_size` bytes).
  Decision run(std::string_view input, size_t read_size) {
    decision_ = Decision();
    complete_ = rejected_head_ = false;
    decoder_.reset(limits_, &head_, this);
    if (read_size == 0) read_size = 1;
    size_t available = 0;  // bytes "read" so far
    size_t consumed = 0;   // bytes the decoder is done with
    while (true) {
      RequestDecoder::Step step =
          decoder_.decode(input.data() + consumed, static_cast<uint32_t>(available - consumed));
      consumed += step.consumed;
      switch (step.status) {
        case RequestDecoder::Status::Rejected:
          return reject(decoder_.rejection().failure);
        case RequestDecoder::Status::NeedInput:
          if (available == input.size()) {
            decision_.incomplete = true;
            return decision_;
          }
          available = std::min(input.size(), available + read_size);  // the next read
          break;
        case RequestDecoder::Status::Paused:
          if (complete_) {
            decision_.forwarded = true;
            decision_.consumed = consumed;
            return decision_;
          }
          // Paused at the head: judged, then the body follows.
          if (rejected_head_) return reject(head_rejection_.failure);
          decoder_.resume();
          break;
      }
    }
  }

  // RequestDecoderEvents
  void request_begin() override {}
  void request_head() override { on_head(); }
  void request_body(const char* at, size_t len) override {
    decision_.body.append(at, len);
    if (decoder_.chunked()) {
      char line[24];
      int n = std::snprintf(line, sizeof line, "%zx\r\n", len);
      decision_.upstream.append(line, static_cast<size_t>(n));
      decision_.upstream.append(at, len);
      decision_.upstream.append("\r\n");
    } else {
      decision_.upstream.append(at, len);
    }
  }
  void request_end() override {
    complete_ = true;
    if (decoder_.chunked()) decision_.upstream.append("0\r\n\r\n");
  }

 private:
  Decision& reject(Failure f) {
    decision_.rejected = true;
    decision_.failure = f;
    return decision_;
  }

  void on_head() {
    decision_.method = decoder_.method_name();
    decision_.target = head_.target();
    for (const HeaderField& f : head_.fields()) decision_.fields.emplace_back(f.name, f.value);
    rejected_head_ = decoder_.head_rejected();
    if (rejected_head_) {
      head_rejection_ = decoder_.rejection();
      return;
    }
    UpstreamRequest up;
    up.method = decision_.method;
    // As the connection does: an absolute-form target is forwarded in origin-form (the
    // router's rewrite always begins with '/'), its authority standing for Host; the rules
    // judge the canonical path, and the target sent is what they made of it.
    TargetParts parts = split_target(head_.target());
    origin_target_ = origin_form(head_.target());
    if (!canonicalize_target(origin_target_, UrlLimits{}, decision_.judged_path, head_rejection_)) {
      rejected_head_ = true;
      return;
    }
    if (origin_target_ == "*") {
      decision_.forwarded_target = "*";
    } else {
      RequestFacts facts;
      facts.method = decision_.method;
      facts.target = origin_target_;
      facts.path = decision_.judged_path;
      RouteDecision route = router_->route(facts, scratch_);
      decision_.forwarded_target.assign(route.target);
    }
    up.target = decision_.forwarded_target;
    up.head = &head_;
    up.host = parts.absolute ? parts.authority : head_.find("host");
    if (up.host.empty()) up.host = "origin.test";
    up.chunked_body = decoder_.chunked();
    up.forwarded_for_name = "X-Forwarded-For";
    up.forwarded_for_value = "127.0.0.1:1";
    std::vector<char> buf(limits_.max_request_line + limits_.max_header_bytes + 4096);
    HeadWriter w(buf.data(), buf.size());
    write_upstream_request(up, w);
    decision_.upstream.assign(buf.data(), w.size());
  }

  RequestLimits limits_;
  config::Config config_;
  std::unique_ptr<Router> router_;
  RouteScratch scratch_;
  RequestDecoder decoder_;
  MessageHead head_;
  Decision decision_;
  Rejection head_rejection_;
  std::string origin_target_;
  bool rejected_head_ = false;
  bool complete_ = false;
};

// What an origin sees: parses `bytes` as requests with strict llhttp.
struct ParsedUpstream {
  int messages = 0;
  bool error = false;
  std::string method, target, body;
  std::vector<std::pair<std::string, std::string>> fields;
};

inline ParsedUpstream parse_upstream(std::string_view bytes) {
  struct State {
    ParsedUpstream out;
    std::string name, value;
  } st;
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_url = [](llhttp_t* p, const char* at, size_t len) {
    static_cast<State*>(p->data)->out.target.append(at, len);
    return 0;
  };
  s.on_header_field = [](llhttp_t* p, const char* at, size_t len) {
    static_cast<State*>(p->data)->name.append(at, len);
    return 0;
  };
  s.on_header_value = [](llhttp_t* p, const char* at, size_t len) {
    static_cast<State*>(p->data)->value.append(at, len);
    return 0;
  };
  s.on_header_value_complete = [](llhttp_t* p) {
    auto* st = static_cast<State*>(p->data);
    st->out.fields.emplace_back(st->name, st->value);
    st->name.clear();
    st->value.clear();
    return 0;
  };
  s.on_headers_complete = [](llhttp_t* p) {
    auto* st = static_cast<State*>(p->data);
    st->out.method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
    return 0;
  };
  s.on_body = [](llhttp_t* p, const char* at, size_t len) {
    static_cast<State*>(p->data)->out.body.append(at, len);
    return 0;
  };
  s.on_message_complete = [](llhttp_t* p) {
    ++static_cast<State*>(p->data)->out.messages;
    return 0;
  };
  llhttp_t parser;
  llhttp_init(&parser, HTTP_REQUEST, &s);
  parser.data = &st;
  if (llhttp_execute(&parser, bytes.data(), bytes.size()) != HPE_OK) st.out.error = true;
  return st.out;
}

}  // namespace harrow::testing

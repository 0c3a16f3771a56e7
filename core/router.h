// URL Rewrite global rules, compiled once per config snapshot: decides which web farm a
// request goes to and with which URL. Patterns are shared read-only by all workers; each
// worker brings its own RouteScratch (match data, string buffers), so routing takes no lock.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/http_head.h"

namespace harrow {

// What rules may look at: IIS server variables come from here.
struct RequestFacts {
  std::string_view method;
  std::string_view target;  // raw request-target as received ({REQUEST_URI})
  std::string_view host;  // {HTTP_HOST}
  bool https = false;  // {HTTPS}
  uint16_t server_port = 0;  // {SERVER_PORT}
  std::string_view remote_addr;  // {REMOTE_ADDR}
  const MessageHead* head = nullptr;  // {HTTP_*}
};

struct RouteDecision {
  enum class Kind { Farm, NoRoute };
  Kind kind = Kind::NoRoute;
  int farm = -1;  // index into Config::farms
  std::string_view target;  // origin-form URL to send upstream (points into the scratch)
  std::string_view rule;  // name of the rule that decided
};

class RouteScratch;

class Router {
 public:
  // Compiles the rules; rules were validated by the loader, so this does not fail for a
  // config that loaded.
  explicit Router(const config::Config& config);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  RouteDecision route(const RequestFacts& facts, RouteScratch& scratch) const;

  struct CompiledPattern;
  struct CompiledRule;

 private:
  const config::Config& config_;
  std::vector<std::unique_ptr<CompiledRule>> rules_;
};

// Per-worker working memory for Router::route.
class RouteScratch {
 public:
  RouteScratch();
  ~RouteScratch();
  RouteScratch(const RouteScratch&) = delete;
  RouteScratch& operator=(const RouteScratch&) = delete;

  struct Impl;  // defined in router.cc

 private:
  friend class Router;
  std::unique_ptr<Impl> impl_;
};

}  // namespace harrow

#include "core/proxy/phases.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/base/log.h"
#include "core/http1/url_path.h"
#include "core/proxy/snapshot.h"
#include "core/proxy/upstream_connection.h"
#include "core/proxy/worker.h"
#include "core/tls/tls_session.h"

namespace harrow {

// ---------------------------------------------------------------- what the phases share

// At most one log line a second per worker: an attacker's inputs must not flood the log.
void report_match_error(const Router& router, const RouteScratch& scratch) {
  thread_local uint64_t last_ns = 0;
  uint64_t now = uv_hrtime();
  if (last_ns != 0 && now - last_ns < 1'000'000'000) return;
  last_ns = now;
  std::string_view rule = router.failed_rule(scratch);
  std::string why = scratch.match_error_text();
  log_line(LogLevel::Warn, "rule '%.*s': pattern match failed (%s): request refused with 500",
           static_cast<int>(rule.size()), rule.data(), why.c_str());
}

const char* client_ip(Exchange& ex, const ClientSide& client) {
  if (ex.peer_ip[0] == '\0') client.peer->format_ip(ex.peer_ip, sizeof ex.peer_ip);
  return ex.peer_ip;
}

const char* client_ip_port(Exchange& ex, const ClientSide& client) {
  if (ex.peer[0] == '\0') client.peer->format_ip_port(ex.peer, sizeof ex.peer);
  return ex.peer;
}

const char* local_ip(Exchange& ex, const ClientSide& client) {
  // Only the access log needs it: asked for then, not for every accepted connection.
  if (ex.local_ip[0] != '\0') return ex.local_ip;
  sockaddr_storage local{};
  int len = sizeof local;
  if (uv_tcp_getsockname(client.socket, reinterpret_cast<sockaddr*>(&local), &len) == 0) {
    if (local.ss_family == AF_INET6) {
      uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&local), ex.local_ip, sizeof ex.local_ip);
    } else {
      uv_ip4_name(reinterpret_cast<sockaddr_in*>(&local), ex.local_ip, sizeof ex.local_ip);
    }
  }
  return ex.local_ip;
}

std::string_view request_host(const Exchange& ex) {
  // RFC 9112 §3.2.2: an absolute-form target's authority stands for Host (the head check made
  // sure a Host sent with it agrees); an HTTP/1.0 request may send it without a Host.
  TargetParts target = split_target(ex.head.target());
  return target.absolute ? target.authority : ex.head.find("host");
}

bool listener_allows_host(const ListenSocket& listener, std::string_view host) {
  if (listener.host_names.empty()) return true;
  // Compare without the port: "shop.example.com:8080" is the binding "shop.example.com".
  size_t colon = host.rfind(':');
  if (colon != std::string_view::npos && host.find(']', colon) == std::string_view::npos) {
    host = host.substr(0, colon);
  }
  for (const std::string& name : listener.host_names) {
    if (iequals(name, host)) return true;
  }
  return false;
}

RequestFacts request_facts(Exchange& ex, const ClientSide& client) {
  RequestFacts facts;
  facts.method = ex.decoder.method_name();
  facts.target = split_target(ex.head.target()).path;
  facts.host = request_host(ex);
  facts.server_port = client.listener->port;
  facts.remote_addr = client_ip(ex, client);
  facts.remote_port = client.peer->port;
  // getsockname() only for configurations whose rules read the local address.
  if (ex.snap != nullptr && ex.snap->router->reads_local_addr())
    facts.local_addr = local_ip(ex, client);
  facts.http10 = (ex.decoder.http_major() == 1 && ex.decoder.http_minor() == 0);
  facts.http2 = client.http2;
  facts.variables = ex.rule_variables;
  facts.path = ex.canonical_path;
  facts.head = &ex.head;
  facts.site = ex.site;
  facts.https = client.tls != nullptr;
  return facts;
}

// ---------------------------------------------------------------- phase 1: choose upstream

namespace {

// The server for this request: the one its affinity cookie names while that server may serve
// it, else host-name affinity or the farm's balancer. nullopt (with `failure` set) when there
// is none.
std::optional<size_t> choose_server(Exchange& ex, Worker& worker, WorkerFarm& farm,
                                    const RequestFacts& facts,
                                    std::span<const HeaderField> rule_headers, Failure& failure) {
  const SnapshotFarm& rt = *farm.runtime;
  ex.set_affinity_cookie = false;
  if (rt.affinity_index != nullptr) {
    std::string_view value = rt.affinity_cookies->find(ex.head);
    if (!value.empty()) {
      std::optional<size_t> affine = rt.affinity_index->find(value);
      if (affine && farm.availability->serves_affine(*affine)) {
        worker.server_metrics(*ex.snap, ex.farm, *affine).affinity_kept.add();
        return affine;
      }
      if (rt.config->affinity.failure_policy == config::AffinityFailurePolicy::Return503) {
        failure = Failure::affinity_unavailable;
        return std::nullopt;
      }
    }
    // No cookie, or one naming a server that is gone: balance, and pin to the new server.
    ex.set_affinity_cookie = true;
  }
  uint64_t now = uv_hrtime();
  if (rt.host_affinity != nullptr)
    return rt.host_affinity->pick(facts.host, *farm.availability, now);
  balancer::PickContext ctx{*farm.availability, worker.random(), now};
  if (rt.hash_key != nullptr) ctx.hash = rt.hash_key->hash(facts, rule_headers, ex.hash_buffer);
  return farm.balancer->pick(ctx);
}

UpstreamChoice pick_server(Exchange& ex, Worker& worker, const RequestFacts& facts,
                           std::span<const HeaderField> rule_headers) {
  UpstreamChoice choice;
  WorkerFarm& farm = ex.epoch->farm(ex.farm);
  std::optional<size_t> pick;
  Failure no_pick = Failure::no_server;
  if (farm.runtime->config->enabled) {
    pick = choose_server(ex, worker, farm, facts, rule_headers, no_pick);
  }
  if (!pick) {
    choice.kind = UpstreamChoice::Kind::Fail;
    choice.failure = no_pick;
    return choice;
  }
  choice.kind = UpstreamChoice::Kind::Server;
  choice.server = *pick;
  return choice;
}

}  // namespace

UpstreamChoice choose_upstream(Exchange& ex, const ClientSide& client, Worker& worker) {
  UpstreamChoice choice;
  auto fail = [&choice](Failure failure) {
    choice.kind = UpstreamChoice::Kind::Fail;
    choice.failure = failure;
    return choice;
  };
  RequestFacts facts = request_facts(ex, client);
  facts.site = ex.snap->sites->match(client.listener->address, facts.host);
  ex.site = facts.site;
  ex.site_name = facts.site >= 0 ? std::string_view(ex.snap->config->sites[facts.site].name)
                                 : std::string_view{};
  ex.exchange_started_ns = uv_hrtime();
  worker.new_request_id(ex.log_id);
  // Rules judge the path as IIS hands it to URL Rewrite (decoded, canonical), and the origin is
  // sent that path (core/http1/url_path.h); what cannot be made canonical is refused here.
  const config::LimitsConfig& limits = ex.snap->config->limits;
  UrlLimits url_limits{limits.max_url, limits.max_query_string, limits.allow_double_escaping};
  Rejection why;
  std::string_view path = facts.target;
  if (path.empty() || (path.front() != '/' && path != "*")) {
    ex.detail_text.assign("/").append(path);  // absolute-form without a path: "/"
    path = ex.detail_text;
  }
  if (!canonicalize_target(path, url_limits, ex.canonical_path, why)) {
    ex.log_detail = why.detail;
    return fail(why.failure);
  }
  facts.path = ex.canonical_path;
  RouteDecision decision = ex.snap->router->route(facts, worker.route_scratch());
  if (worker.route_scratch().match_error() != 0) {
    // A pattern that could not be evaluated decides nothing: failing closed keeps a deny rule
    // from being skipped by an input crafted to exhaust the regex limits.
    report_match_error(*ex.snap->router, worker.route_scratch());
    ex.log_detail = "a rule's pattern reached the regex limits";
    return fail(Failure::rule_match_error);
  }
  ex.rule = decision.rule;
  switch (decision.kind) {
    case RouteDecision::Kind::Farm:
      ex.farm = decision.farm;
      break;
    case RouteDecision::Kind::Proxy:
      if (decision.https) break;  // answered below like a farm over https
      ex.farm = ex.snap->proxy_farm(decision.authority);
      if (ex.farm < 0) {
        ex.log_detail =
            "host computed from the request; only hosts written in the configuration "
            "are proxied";
        return fail(Failure::proxy_target_unknown);
      }
      break;
    case RouteDecision::Kind::NoRoute:
      if (!decision.rule.empty()) {
        ex.log_detail =
            "the rule rewrites to a URL that names no farm; proxying to a host that is not a "
            "farm needs <system.webServer><proxy enabled=\"true\"/> in applicationHost.config";
      }
      return fail(Failure::no_route);
    case RouteDecision::Kind::Abort:
      choice.kind = UpstreamChoice::Kind::Abort;
      choice.failure = Failure::rule_aborted;
      return choice;
    case RouteDecision::Kind::Redirect: {
      // IIS sends Location absolute, built from the request's scheme and Host.
      choice.kind = UpstreamChoice::Kind::Respond;
      choice.status = decision.status;
      choice.location = absolute_location(decision.target, facts.https, facts.host);
      return choice;
    }
    case RouteDecision::Kind::CustomResponse:
      choice.kind = UpstreamChoice::Kind::Respond;
      choice.status = decision.status;
      choice.reason = decision.reason;
      choice.body = decision.body;
      return choice;
  }
  if (decision.https && decision.kind == RouteDecision::Kind::Proxy) {
    ex.log_detail = "the global proxy reaches hosts over http:// only";
    return fail(Failure::upstream_tls);
  }
  ex.upstream_tls = decision.https;
  if (ex.upstream_tls && !ex.snap->tls_client) {
    ex.log_detail = "no https:// target was in the configuration when it loaded";
    return fail(Failure::upstream_tls);
  }
  ex.target.assign(decision.target);
  ex.rule_header_text.clear();
  for (const HeaderField& f : decision.set_headers)
    ex.rule_header_text.emplace_back(f.name, f.value);
  ex.rule_variables.assign(decision.set_variables.begin(), decision.set_variables.end());
  // The cache answers (or waits for another request's fill) before a server is picked: a hit
  // costs no server anything.
  switch (cache_lookup(ex, *ex.snap->router, facts.method, facts.target, facts.host)) {
    case CacheLookup::Hit:
      if (ex.cache->background) {
        // stale-while-revalidate: the server that revalidates is picked as for a miss.
        UpstreamChoice server = pick_server(ex, worker, facts, decision.set_headers);
        if (server.kind == UpstreamChoice::Kind::Server) {
          choice.server = server.server;
          choice.revalidate = true;
        } else {
          ex.cache->background = false;
          ex.cache->finish_fill();
        }
      }
      choice.kind = UpstreamChoice::Kind::Cached;
      return choice;
    case CacheLookup::Wait:
      choice.kind = UpstreamChoice::Kind::Wait;
      return choice;
    case CacheLookup::Forward:
      break;
  }
  return pick_server(ex, worker, facts, decision.set_headers);
}

UpstreamChoice resume_after_cache_wait(Exchange& ex, const ClientSide& client, Worker& worker) {
  switch (cache_after_wait(ex)) {
    case CacheLookup::Hit: {
      UpstreamChoice choice;
      choice.kind = UpstreamChoice::Kind::Cached;
      return choice;
    }
    case CacheLookup::Wait: {
      // The disk tier had nothing fresh, and another request is asking the origin already.
      UpstreamChoice choice;
      choice.kind = UpstreamChoice::Kind::Wait;
      return choice;
    }
    case CacheLookup::Forward:
      break;
  }
  RequestFacts facts = request_facts(ex, client);
  facts.site = ex.site;
  facts.path = ex.canonical_path;
  std::vector<HeaderField> rule_headers;
  for (const auto& [name, value] : ex.rule_header_text) rule_headers.push_back({name, value});
  return pick_server(ex, worker, facts, rule_headers);
}

// ---------------------------------------------------------------- phase 2: the upstream request

void build_upstream_request(Exchange& ex, const ClientSide& client, HeadWriter& out) {
  const SnapshotFarm& farm = ex.snap->farms[ex.farm];
  const config::ProtocolConfig& protocol = farm.config->protocol;
  std::string_view host = protocol.preserve_host_header ? request_host(ex) : std::string_view{};
  if (host.empty()) {
    host =
        ex.upstream_tls ? farm.servers[ex.server].tls_authority : farm.servers[ex.server].authority;
  }
  ex.rule_headers.clear();
  for (const auto& [name, value] : ex.rule_header_text) {
    if (iequals(name, "host")) host = value;  // a rule set HTTP_HOST
    ex.rule_headers.push_back({name, value});
  }
  ex.upstream_host = host;
  // to_chars, not snprintf: this runs for every request.
  *std::to_chars(ex.max_forwards, ex.max_forwards + sizeof ex.max_forwards - 1,
                 protocol.max_forwards)
       .ptr = '\0';
  // What ARR adds to every forwarded request; client-sent values are always replaced.
  HeaderField harrow_headers[5];
  size_t n = 0;
  harrow_headers[n++] = {"Max-Forwards", ex.max_forwards};
  // As IIS sends it: the URL as the client wrote it (raw, with its query), never the rewrite.
  harrow_headers[n++] = {"X-Original-URL", split_target(ex.head.target()).path};
  if (!protocol.log_guid_name.empty()) harrow_headers[n++] = {protocol.log_guid_name, ex.log_id};
  // X-ARR-SSL and X-ARR-ClientCert only for a request that came over TLS (the certificate one
  // only with a client certificate), as ARR does: applications test for their presence. A
  // client's own copies never pass, whether Harrow sets the header or not.
  std::string_view strip[2];
  size_t stripped = 0;
  if (!protocol.ssl_header_name.empty()) {
    if (client.tls != nullptr) {
      harrow_headers[n++] = {protocol.ssl_header_name, client.tls->arr_ssl()};
    } else {
      strip[stripped++] = protocol.ssl_header_name;
    }
  }
  if (!protocol.client_cert_header_name.empty()) {
    if (client.tls != nullptr && !client.tls->client_certificate().empty()) {
      harrow_headers[n++] = {protocol.client_cert_header_name, client.tls->client_certificate()};
    } else {
      strip[stripped++] = protocol.client_cert_header_name;
    }
  }
  UpstreamRequest request;
  request.method = ex.decoder.method_name();
  // An asterisk-form target (OPTIONS *) asks about the server, not a resource: it goes as it
  // came (RFC 9112 §3.2.4), not as the rules' "/*".
  request.target = ex.head.target() == "*" ? std::string_view("*") : std::string_view(ex.target);
  request.head = &ex.head;
  request.host = host;
  request.chunked_body = ex.request_chunked;
  request.keep_alive = protocol.keep_alive;
  if (ex.websocket) request.upgrade = "websocket";
  request.forwarded_for_name = protocol.x_forwarded_for_header_name;
  request.forwarded_for_value = protocol.include_port_in_x_forwarded_for
                                    ? std::string_view(client_ip_port(ex, client))
                                    : std::string_view(client_ip(ex, client));
  request.harrow_headers = std::span<const HeaderField>(harrow_headers, n);
  request.strip = std::span<const std::string_view>(strip, stripped);
  request.rule_headers = ex.rule_headers;
  write_upstream_request(request, out);
}

// ---------------------------------------------------------------- phase 3: the client response

namespace {

// The outbound rule whose header value the response writer refused (empty if none did).
std::string_view unsafe_outbound_rule(const Exchange& ex) {
  for (const auto& [rule, value] : ex.outbound_rule_values) {
    if (!HeadWriter::safe_value(value)) return rule;
  }
  return {};
}

// Applies the outbound rules to a response head about to be written; may set up ex.html and
// ex.body_text. False when a rule's pattern reached the regex limits: the response must not go
// out as if the rule had not matched.
bool apply_outbound(Exchange& ex, const ClientSide& client, Worker& worker, const MessageHead& head,
                    ClientResponse& response, bool has_body, bool& close) {
  const Router& router = *ex.snap->router;
  if (!router.has_outbound(ex.site)) return true;
  RequestFacts facts = request_facts(ex, client);
  facts.response_status = response.status;
  OutboundDecision decision =
      router.outbound(facts, head, response.replace, worker.route_scratch());
  if (worker.route_scratch().match_error() != 0) return false;
  ex.outbound_rule_values.clear();
  for (size_t i = 0; i < decision.set_headers.size(); ++i)
    ex.outbound_rule_values.emplace_back(decision.set_rules[i], decision.set_headers[i].second);
  if (!decision.set_headers.empty()) {
    // Rules see, and override, what reverseRewriteHostInResponseHeaders already rewrote.
    ex.outbound_replace.assign(response.replace.begin(), response.replace.end());
    ex.outbound_add.assign(response.add.begin(), response.add.end());
    for (const auto& set : decision.set_headers) {
      // Named, not a structured binding: clang 14 (the fuzz build) cannot capture those.
      const std::string_view name = set.first;
      const std::string_view value = set.second;
      std::vector<HeaderField>& into = head.has(name) ? ex.outbound_replace : ex.outbound_add;
      auto same = std::find_if(into.begin(), into.end(),
                               [&](const HeaderField& f) { return iequals(f.name, name); });
      if (same != into.end() && &into == &ex.outbound_replace) {
        same->value = value;
      } else if (same != into.end() && !iequals(name, "set-cookie")) {
        same->value = value;
      } else {
        into.push_back({name, value});
      }
    }
    response.replace = ex.outbound_replace;
    response.add = ex.outbound_add;
  }
  if ((decision.body_rules == 0 && decision.text_rules == 0) || !has_body) return true;
  std::string_view encoding = head.find("content-encoding");
  if (!encoding.empty() && !iequals(encoding, "identity")) {
    // Rewriting links inside a gzip (or br…) body would corrupt it: pass it on untouched.
    log_line(LogLevel::Info,
             "outbound rules with filterByTags skipped for %.*s: the response "
             "body is %.*s-encoded",
             static_cast<int>(ex.target.size()), ex.target.data(),
             static_cast<int>(encoding.size()), encoding.data());
    return true;
  }
  ex.text_body_rules = decision.text_rules;
  if (decision.text_rules != 0) ex.body_text = std::make_unique<BodyTextState>();
  ex.html_body_rules = decision.body_rules;
  if (decision.body_rules != 0)
    ex.html = std::make_unique<HtmlRewriter>(
        decision.tags, std::move(decision.custom_tags),
        [&ex, client, &worker](std::string_view tag, std::string_view attribute,
                               std::string_view value, std::string& out) {
          RequestFacts facts = request_facts(ex, client);
          facts.response_status = ex.status;
          bool rewritten = ex.snap->router->rewrite_body_url(
              facts, ex.html_body_rules, tag, attribute, value, worker.route_scratch(), out);
          if (worker.route_scratch().match_error() != 0) {
            if (!ex.html_match_failed) report_match_error(*ex.snap->router, worker.route_scratch());
            ex.html_match_failed = true;
          }
          return rewritten;
        });
  // The body changes length: re-framed as chunked, or ended by the close for HTTP/1.0.
  response.keep_content_length = false;
  if (ex.decoder.http11()) {
    response.chunked = true;
    ex.response_chunked = true;
  } else {
    response.chunked = false;
    ex.response_chunked = false;
    close = true;
    response.close = true;
    response.http10_keep_alive = false;
  }
  return true;
}

}  // namespace

ResponseHeadResult build_client_response(Exchange& ex, const ClientSide& client, Worker& worker,
                                         const MessageHead& head, int status, bool& close,
                                         HeadWriter& out) {
  ResponseHeadResult result;
  bool client_http11 = ex.decoder.http11();
  ClientResponse response;
  response.status = status;
  response.reason = head.target();
  response.head = &head;
  // Only an upgrade Harrow forwarded gets a 101 this far (upstream_connection.cc).
  bool switching = status == 101;
  bool no_body = ex.head_request || status == 204 || status == 304 || switching;
  // Transfer codings other than chunked (gzip, …) go to the client as they came, never
  // relabelled; an HTTP/1.0 client may not be sent Transfer-Encoding at all (RFC 9112 §6.1).
  result.no_body = no_body;
  bool codings = !no_body && has_transfer_codings(head);
  if (codings && (!client_http11 || client.http2)) {
    result.kind = ResponseHeadResult::Kind::Refused;
    result.detail = client.http2 ? "transfer coding other than chunked for an HTTP/2 client"
                                 : "transfer coding other than chunked for an HTTP/1.0 client";
    return result;
  }
  ex.response_head_sent = true;
  uint64_t first_byte_us = (uv_hrtime() - ex.exchange_started_ns) / 1000;
  ex.server_metrics->first_byte_time.observe(first_byte_us);
  ex.header_ms = static_cast<int64_t>(first_byte_us / 1000);
  if (cache_refresh_on_304(ex, head, status) || cache_stale_on_error(ex, status)) {
    // The origin confirmed the cached entry (a 304), or failed while a stale entry may stand
    // in (stale-if-error): the client gets the entry.
    if (ex.snap->farms[ex.farm].live_failure_codes.matches(status)) count_live_failure(ex);
    if (!ex.client_keep_alive || !ex.request_done || worker.stopping()) close = true;
    result.cached_body = write_cached_response(ex, close, client_http11 || client.http2, out);
    result.status = cached_response_status(ex);
    result.no_body = ex.head_request || result.status == 204 || result.status == 304;
    if (out.overflowed() || out.unsafe()) {
      ex.response_head_sent = false;
      result.kind = ResponseHeadResult::Kind::Refused;
      result.detail = "cached response head larger than a block";
    }
    return result;
  }
  // Framing comes from Harrow's own parse: a Content-Length a Connection header names is kept
  // (MessageHead never makes it hop-by-hop), so the client reads the body Harrow delimited.
  // That is safer than a 502: Harrow writes its own Connection header, so no later hop sees
  // the server's list, and refusing would only break odd but unambiguous servers.
  bool upstream_length = head.has("content-length") && !head.has("transfer-encoding");
  if (no_body || upstream_length) {
    // A 204 must not carry Content-Length (RFC 9110 §8.6); a 304 or HEAD's is metadata.
    response.keep_content_length = status != 204 && !switching;
  } else if (codings) {
    response.forward_transfer_encoding = true;
    response.keep_content_length = false;
    if (ex.upstream->response_chunked()) {
      // "gzip, chunked": the body is re-chunked under the codings as they came.
      ex.response_chunked = true;
      response.chunked = true;
    } else {
      // Chunked not final ("gzip", "chunked, gzip"): the close delimits the body (RFC 9112
      // §6.3), to the client as from the server.
      close = true;
    }
  } else if (client_http11) {
    ex.response_chunked = true;
    response.chunked = true;
    response.keep_content_length = false;
  } else {
    close = true;  // HTTP/1.0 client, unknown length: the close ends the body
    response.keep_content_length = false;
  }
  // A request whose body is still arriving cannot be followed by another on this connection
  // unless Harrow reads the rest; closing is simpler and safe.
  if (!ex.client_keep_alive || !ex.request_done || worker.stopping()) close = true;
  response.close = close;
  response.http10_keep_alive = !client_http11 && !close;
  if (switching) response.upgrade = head.find("upgrade");
  const SnapshotFarm& farm = ex.snap->farms[ex.farm];
  if (farm.live_failure_codes.matches(status)) count_live_failure(ex);
  if (farm.config->protocol.arr_response_header) response.powered_by = "Harrow/" HARROW_VERSION;
  HeaderField replacements[2];
  size_t replaced = 0;
  if (farm.config->protocol.reverse_rewrite_host_in_response_headers) {
    // Redirects the server aims at itself must send the client back through Harrow.
    const ServerEndpoint& server = farm.servers[ex.server];
    std::string_view backend[] = {server.authority, server.label, ex.upstream_host};
    std::string_view client_host = request_host(ex);
    std::string_view location = head.find("location");
    if (reverse_rewrite_location(location, backend, "http", client_host, ex.rewritten_location)) {
      replacements[replaced++] = {"Location", ex.rewritten_location};
    }
    std::string_view content_location = head.find("content-location");
    if (reverse_rewrite_location(content_location, backend, "http", client_host,
                                 ex.rewritten_content_location)) {
      replacements[replaced++] = {"Content-Location", ex.rewritten_content_location};
    }
  }
  response.replace = std::span<const HeaderField>(replacements, replaced);
  // ARR's application opt-out: the server may ask that this response set no affinity cookie.
  static constexpr std::string_view kAffinityOptOut[] = {"Arr-Disable-Session-Affinity"};
  HeaderField cookies[3];
  size_t cookie_count = 0;
  if (ex.cache != nullptr && !ex.cache->hit_header.empty()) {
    cookies[cookie_count++] = {ex.cache->hit_header, "0"};  // ARR's logCacheHitName: a miss
  }
  if (farm.affinity_cookies != nullptr) {
    response.remove = kAffinityOptOut;
    if (ex.set_affinity_cookie && !iequals(head.find("arr-disable-session-affinity"), "true")) {
      for (const std::string& value : farm.affinity_cookies->set_cookie(ex.server)) {
        cookies[cookie_count++] = {"Set-Cookie", value};
      }
      ex.server_metrics->affinity_assigned.add();
    }
  }
  response.add = std::span<const HeaderField>(cookies, cookie_count);
  // A transfer-coded body is not HTML the rewriter could read.
  if (!apply_outbound(ex, client, worker, head, response, !no_body && !codings, close)) {
    // Failing closed: an outbound rule that could not be evaluated may be the one that strips
    // a header or rewrites a link, so the response does not go out without it.
    ex.response_head_sent = false;
    ex.html.reset();
    ex.response_chunked = false;
    report_match_error(*ex.snap->router, worker.route_scratch());
    ex.log_detail = "an outbound rule's pattern reached the regex limits";
    result.kind = ResponseHeadResult::Kind::MatchError;
    return result;
  }
  write_client_response(response, out);
  if (out.unsafe()) {
    // An outbound rule or the server gave a header a value that would split the head: nothing
    // of it reaches the client. A rule's is a 500 naming the rule; the server's own status
    // reason or field (llhttp lets a few such bytes through) is an invalid response, a 502.
    ex.html.reset();
    ex.response_chunked = false;
    ex.response_head_sent = false;
    result.rule = unsafe_outbound_rule(ex);
    if (result.rule.empty()) {
      result.kind = ResponseHeadResult::Kind::Refused;
      result.detail = "control character or invalid byte in the server's status reason or a header";
    } else {
      result.kind = ResponseHeadResult::Kind::UnsafeRule;
    }
    return result;
  }
  if (out.overflowed()) {
    ex.html.reset();
    ex.response_chunked = false;
    ex.response_head_sent = false;
    result.kind = ResponseHeadResult::Kind::Refused;
    result.detail = "response head larger than a block";
    return result;
  }
  cache_begin_fill(ex, head, status, out.text(),
                   ex.html != nullptr || ex.body_text != nullptr || no_body || codings);
  return result;
}

std::string_view rewrite_response_body(Exchange& ex, const ClientSide& client, Worker& worker,
                                       std::string_view piece, bool last) {
  if (ex.html != nullptr) {
    ex.html_out.clear();
    if (last) {
      ex.html->finish(ex.html_out);
    } else {
      ex.html->feed(piece, ex.html_out);
    }
    piece = ex.html_out;
  }
  if (!ex.html_match_failed && ex.body_text != nullptr) {
    ex.text_out.clear();
    piece = rewrite_body_text(ex, client, worker, piece, last);
  }
  return piece;
}

const char* unsafe_rule_detail(Exchange& ex, std::string_view rule, const char* where) {
  ex.detail_text.assign("rule \"").append(rule.empty() ? "-" : rule);
  ex.detail_text.append("\" put a control character (CR, LF, NUL, ...) in ").append(where);
  return ex.detail_text.c_str();
}

std::string_view rewrite_body_text(Exchange& ex, const ClientSide& client, Worker& worker,
                                   std::string_view piece, bool last) {
  RequestFacts facts = request_facts(ex, client);
  facts.response_status = ex.status;
  const Router& router = *ex.snap->router;
  if (!router.rewrite_body_text(facts, ex.text_body_rules, *ex.body_text, piece, last,
                                worker.route_scratch(), ex.text_out)) {
    if (!ex.html_match_failed) report_match_error(router, worker.route_scratch());
    ex.html_match_failed = true;
  }
  return ex.text_out;
}

// ---------------------------------------------------------------- phase 4: log

void log_exchange(Exchange& ex, const ClientSide& client, Worker& worker, uint64_t bytes_sent) {
  if (!ex.request_begun || ex.access_logged) return;
  ex.access_logged = true;
  AccessLogBuffer& log = worker.access_log();
  if (!log.enabled()) return;
  AccessLogEntry e;
  e.server_ip = local_ip(ex, client);
  e.client_ip = client_ip(ex, client);
  e.client_port = client.peer->port;
  e.server_port = client.listener->port;
  e.method = ex.head.target().empty() ? "-" : ex.decoder.method_name();
  e.target = ex.head.target();
  e.host = request_host(ex);
  e.user_agent = ex.head.find("user-agent");
  e.status = ex.sent_status;
  e.bytes_sent = bytes_sent;
  e.bytes_received = ex.request_bytes;
  e.time_taken_ms = uv_now(worker.loop()) - ex.request_started_ms;
  if (ex.farm >= 0) {
    const SnapshotFarm& farm = ex.snap->farms[ex.farm];
    e.farm = farm.config->name;
    if (ex.server_metrics != nullptr) e.server = farm.servers[ex.server].label;
  }
  if (ex.failed) {
    e.reason = failure_token(ex.failure);
    if (ex.failure_uv_status != 0) e.upstream_error = uv_err_name(ex.failure_uv_status);
  }
  e.log_id = ex.log_id;
  e.site = ex.site_name;
  e.cache = cache_outcome_token(ex.cache_outcome);
  e.upstream_connect_ms = ex.connect_ms;
  e.upstream_header_ms = ex.header_ms;
  e.retries = ex.retries;
  e.version = client.http2                   ? std::string_view("HTTP/2")
              : ex.decoder.http_minor() == 0 ? std::string_view("HTTP/1.0")
                                             : std::string_view("HTTP/1.1");
  log.add(e);
}

void log_failure(Exchange& ex, const ClientSide& client, Failure failure, int uv_status,
                 bool retried) {
  LogLevel level = failure == Failure::client_aborted ? LogLevel::Info : LogLevel::Warn;
  if (!log_enabled(level)) return;
  std::string_view target = ex.head.target().substr(0, 200);
  // A request refused before llhttp read its method (by the framer) has none to name.
  const char* method = ex.head.target().empty() ? "-" : ex.decoder.method_name();
  std::string server = "-";
  std::string farm = "-";
  std::string pool = "-";
  if (ex.farm >= 0) {
    const SnapshotFarm& f = ex.snap->farms[ex.farm];
    farm = f.config->name;
    if (!f.config->application_pool.empty()) pool = f.config->application_pool;
    if (ex.in_flight_counted || ex.upstream != nullptr) server = f.servers[ex.server].label;
  }
  log_line(
      level,
      "%s %s log_id=%s client=%s request=\"%s %.*s\" farm=%s pool=%s server=%s retries=%u%s%s%s%s",
      retried ? "retry" : std::to_string(failure_status(failure)).c_str(),
      std::string(failure_token(failure)).c_str(), ex.log_id[0] != '\0' ? ex.log_id : "-",
      client_ip_port(ex, client), method, static_cast<int>(target.size()), target.data(),
      farm.c_str(), pool.c_str(), server.c_str(), ex.retries, uv_status != 0 ? " error=" : "",
      uv_status != 0 ? uv_err_name(uv_status) : "", ex.log_detail != nullptr ? " detail=" : "",
      ex.log_detail != nullptr ? ex.log_detail : "");
}

void count_live_failure(const Exchange& ex, int uv_status) {
  if (uv_status == UV_EMFILE || uv_status == UV_ENFILE || uv_status == UV_ENOBUFS ||
      uv_status == UV_ENOMEM) {
    return;
  }
  ex.server_metrics->live_failures.add();
  ex.snap->farms[static_cast<size_t>(ex.farm)].health->ring_traffic_bell();
}

}  // namespace harrow

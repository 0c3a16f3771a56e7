#include "core/daemon/ctl.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "config/loader.h"
#include "core/base/ascii.h"

namespace harrow {

// ---- helpers ------------------------------------------------------------------------------

std::string render_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line.append(widths[c] - row[c].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

bool admin_target(std::string_view address, std::string& host_port, std::string& error) {
  std::string_view a = address;
  if (a.starts_with("http://")) a.remove_prefix(7);
  while (!a.empty() && a.back() == '/') a.remove_suffix(1);
  size_t colon = a.rfind(':');
  if (a.empty() || colon == std::string_view::npos || colon + 1 == a.size() ||
      a.size() - colon - 1 > 5) {
    error = "admin address must be HOST:PORT, not '" + std::string(address) + "'";
    return false;
  }
  for (char c : a.substr(colon + 1)) {
    if (c < '0' || c > '9') {
      error = "admin address must be HOST:PORT, not '" + std::string(address) + "'";
      return false;
    }
  }
  std::string_view host = a.substr(0, colon);
  std::string_view port = a.substr(colon + 1);
  // A listener on every address is reached on loopback, which is also what it answers
  // without a token.
  if (host == "*" || host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  if (host == "[::]") host = "[::1]";
  if (host.find(':') != std::string_view::npos && host.front() != '[') {
    error = "an IPv6 admin address is written [ADDRESS]:PORT, not '" + std::string(address) + "'";
    return false;
  }
  host_port = std::string(host) + ":" + std::string(port);
  return true;
}

std::vector<std::string> metrics_for_server(std::string_view metrics, std::string_view server) {
  std::vector<std::string> out;
  std::string exact = "server=\"" + std::string(server) + "\"";
  std::string by_address = "server=\"" + std::string(server) + ":";
  size_t pos = 0;
  while (pos < metrics.size()) {
    size_t end = metrics.find('\n', pos);
    if (end == std::string_view::npos) end = metrics.size();
    std::string_view line = metrics.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line.front() == '#') continue;
    if (server.empty() || line.find(exact) != std::string_view::npos ||
        line.find(by_address) != std::string_view::npos) {
      out.emplace_back(line);
    }
  }
  return out;
}

namespace {

struct HttpAnswer {
  int status = 0;
  std::string body;
};

std::string url_encode(std::string_view v) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : v) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == ':') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// One request on its own connection, read to the end (the admin API closes after each
// answer). Blocking, with timeouts: this is a command, not the event loop.
bool http_exchange(const std::string& host_port, const std::string& token, const char* method,
                   const std::string& path, const std::string& content_type,
                   const std::string& body, HttpAnswer& answer, std::string& error) {
  size_t colon = host_port.rfind(':');
  std::string host = host_port.substr(0, colon);
  std::string port = host_port.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    error = "cannot resolve " + host_port + ": " + gai_strerror(rc);
    return false;
  }
  int fd = -1;
  std::string connect_error = "no address";
  for (addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    timeval timeout{30, 0};  // SO_SNDTIMEO also bounds connect() on Linux (socket(7))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      connect_error = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) {
    error = "cannot reach the admin listener at " + host_port + ": " + connect_error;
    return false;
  }
  std::string request = std::string(method) + " " + path + " HTTP/1.1\r\nHost: " + host_port +
                        "\r\nConnection: close\r\nUser-Agent: harrow-ctl\r\n";
  // The admin API's mark of a deliberate change: a browser form cannot send it.
  if (std::strcmp(method, "POST") == 0) request += "X-Harrow-Admin: 1\r\n";
  if (!token.empty()) request += "Authorization: Bearer " + token + "\r\n";
  if (!content_type.empty()) request += "Content-Type: " + content_type + "\r\n";
  if (std::strcmp(method, "POST") == 0 || !body.empty()) {
    request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n" + body;
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = "cannot send to the admin listener at " + host_port + ": " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buffer[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = "no answer from the admin listener at " + host_port + ": " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    response.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  size_t head_end = response.find("\r\n\r\n");
  if (!response.starts_with("HTTP/1.") || response.size() < 12 || head_end == std::string::npos) {
    error = "the admin listener at " + host_port + " did not answer in HTTP/1.1";
    return false;
  }
  answer.status = std::atoi(response.c_str() + 9);
  answer.body = response.substr(head_end + 4);
  // The admin API always answers with Content-Length and closes; a chunked answer would come
  // from something else listening there.
  return true;
}

struct CtlOptions {
  std::optional<std::string> admin;
  std::optional<std::string> config;
  std::optional<std::string> token;
  std::optional<std::string> token_file;
  bool json = false;
  std::vector<std::string> headers;  // explain --header
  std::vector<std::string> words;    // the subcommand and its arguments
};

bool read_token(const std::string& path, std::string& token, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read the admin token file " + path + ": " + std::strerror(errno);
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  token = text.str();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (token.empty()) {
    error = "the admin token file " + path + " is empty";
    return false;
  }
  return true;
}

// The API's error text from a JSON answer ({"error": …} or a reload's {"errors": …}).
std::string api_error(const HttpAnswer& a) {
  JsonValue v;
  std::string ignored;
  std::string message;
  if (parse_json(a.body, v, ignored) && v.kind == JsonValue::Kind::Object) {
    message = v.str("error");
    if (message.empty()) message = v.str("errors");
  }
  if (message.empty()) message = a.body;
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return "HTTP " + std::to_string(a.status) + ": " + message;
}

std::string number_text(const JsonValue* v) {
  if (v == nullptr) return "";
  if (v->kind == JsonValue::Kind::Bool) return v->boolean ? "yes" : "no";
  return std::string(v->raw);
}

const char* kStateCommands[][2] = {{"drain", "drain"},
                                   {"stop", "gracefulStop"},
                                   {"start", "start"},
                                   {"forcefulstop", "forcefulStop"}};

class Ctl {
 public:
  Ctl(CtlOptions options, std::string target, std::string token)
      : o_(std::move(options)), target_(std::move(target)), token_(std::move(token)) {}

  int run() {
    const std::string& verb = o_.words[0];
    size_t args = o_.words.size() - 1;
    auto need = [&](size_t n, const char* form) {
      if (args == n) return true;
      std::fprintf(stderr, "harrow ctl: usage: harrow ctl %s\n", form);
      return false;
    };
    if (verb == "farms") return need(0, "farms") ? farms() : kCtlUsage;
    if (verb == "servers") return need(1, "servers FARM") ? servers(o_.words[1]) : kCtlUsage;
    for (const auto& [name, state] : kStateCommands) {
      if (verb == name) {
        if (!need(2, (verb + " FARM SERVER").c_str())) return kCtlUsage;
        return server_command("state", state);
      }
    }
    if (verb == "healthy" || verb == "unhealthy") {
      if (!need(2, (verb + " FARM SERVER").c_str())) return kCtlUsage;
      return server_command("health", verb);
    }
    if (verb == "reload") return need(0, "reload") ? reload() : kCtlUsage;
    if (verb == "explain") return need(1, "explain \"METHOD URL\"") ? explain() : kCtlUsage;
    if (verb == "metrics") {
      if (args > 1) {
        need(1, "metrics [SERVER]");  // prints the usage
        return kCtlUsage;
      }
      return metrics(args == 1 ? o_.words[1] : "");
    }
    if (verb == "healthz") return need(0, "healthz") ? healthz() : kCtlUsage;
    std::fprintf(stderr, "harrow ctl: unknown command '%s'\n%s", verb.c_str(), ctl_usage_text());
    return kCtlUsage;
  }

 private:
  // Sends one request; on failure prints why and sets `code`.
  bool call(const char* method, const std::string& path, const std::string& type,
            const std::string& body, HttpAnswer& a, int& code) {
    std::string error;
    if (!http_exchange(target_, token_, method, path, type, body, a, error)) {
      std::fprintf(stderr, "harrow ctl: %s\n", error.c_str());
      code = kCtlUnreachable;
      return false;
    }
    if (a.status < 200 || a.status > 299) {
      std::fprintf(stderr, "harrow ctl: %s\n", api_error(a).c_str());
      code = kCtlApiError;
      return false;
    }
    return true;
  }

  bool fetch_farms(JsonValue& doc, std::string& body, int& code) {
    HttpAnswer a;
    if (!call("GET", "/api/farms", "", "", a, code)) return false;
    body = std::move(a.body);
    std::string error;
    const JsonValue* list = nullptr;
    if (!parse_json(body, doc, error) || (list = doc.get("farms")) == nullptr ||
        list->kind != JsonValue::Kind::Array) {
      std::fprintf(stderr, "harrow ctl: /api/farms did not answer with its JSON: %s\n",
                   error.c_str());
      code = kCtlApiError;
      return false;
    }
    return true;
  }

  int farms() {
    JsonValue doc;
    std::string body;
    int code = kCtlOk;
    if (!fetch_farms(doc, body, code)) return code;
    if (o_.json) {
      std::fputs(body.c_str(), stdout);
      return kCtlOk;
    }
    std::vector<std::vector<std::string>> rows = {{"FARM", "POOL", "ENABLED", "SERVERS", "HEALTHY",
                                                   "AVAILABLE", "REQUESTS", "FAILED", "CURRENT"}};
    for (const JsonValue& farm : doc.get("farms")->items) {
      size_t healthy = 0, available = 0;
      double requests = 0, failed = 0, current = 0;
      const JsonValue* servers = farm.get("servers");
      size_t count = servers != nullptr ? servers->items.size() : 0;
      for (size_t i = 0; i < count; ++i) {
        const JsonValue& s = servers->items[i];
        const JsonValue* h = s.get("isHealthy");
        if (h != nullptr && h->boolean) ++healthy;
        if (s.str("state") == "Available") ++available;
        if (const JsonValue* v = s.get("totalRequests")) requests += v->number;
        if (const JsonValue* v = s.get("failedRequests")) failed += v->number;
        if (const JsonValue* v = s.get("currentRequests")) current += v->number;
      }
      auto whole = [](double d) { return std::to_string(static_cast<unsigned long long>(d)); };
      rows.push_back({farm.str("name"), farm.str("applicationPool"),
                      number_text(farm.get("enabled")), std::to_string(count),
                      std::to_string(healthy), std::to_string(available), whole(requests),
                      whole(failed), whole(current)});
    }
    std::fputs(render_table(rows).c_str(), stdout);
    return kCtlOk;
  }

  int servers(const std::string& name) {
    JsonValue doc;
    std::string body;
    int code = kCtlOk;
    if (!fetch_farms(doc, body, code)) return code;
    const JsonValue* farm = nullptr;
    for (const JsonValue& f : doc.get("farms")->items) {
      if (iequals(f.str("name"), name)) farm = &f;
    }
    if (farm == nullptr) {
      std::fprintf(stderr, "harrow ctl: unknown farm '%s'\n", name.c_str());
      return kCtlApiError;
    }
    if (o_.json) {
      std::printf("%.*s\n", static_cast<int>(farm->raw.size()), farm->raw.data());
      return kCtlOk;
    }
    std::vector<std::vector<std::string>> rows = {{"SERVER", "STATE", "HEALTHY", "ENABLED",
                                                   "WEIGHT", "REQUESTS", "FAILED", "CURRENT",
                                                   "REQ/S", "RESPONSE_MS", "WEBSOCKETS"}};
    if (const JsonValue* servers = farm->get("servers")) {
      for (const JsonValue& s : servers->items) {
        rows.push_back({s.str("endpoint"), s.str("state"), number_text(s.get("isHealthy")),
                        number_text(s.get("enabled")), s.str("weight"), s.str("totalRequests"),
                        s.str("failedRequests"), s.str("currentRequests"),
                        s.str("requestPerSecond"), s.str("responseTime"),
                        s.str("currentWebSocketRequests")});
      }
    }
    std::fputs(render_table(rows).c_str(), stdout);
    return kCtlOk;
  }

  int server_command(const char* verb, const std::string& value) {
    std::string path = "/api/farms/" + url_encode(o_.words[1]) + "/servers/" +
                       url_encode(o_.words[2]) + "/" + verb;
    HttpAnswer a;
    int code = kCtlOk;
    if (!call("POST", path, "text/plain", value, a, code)) return code;
    if (o_.json) {
      std::fputs(a.body.c_str(), stdout);
    } else {
      std::printf("farm %s server %s: %s %s\n", o_.words[1].c_str(), o_.words[2].c_str(), verb,
                  value.c_str());
    }
    return kCtlOk;
  }

  int reload() {
    HttpAnswer a;
    int code = kCtlOk;
    if (!call("POST", "/api/reload", "", "", a, code)) return code;
    if (o_.json) {
      std::fputs(a.body.c_str(), stdout);
    } else {
      std::printf("configuration reloaded\n");
    }
    return kCtlOk;
  }

  int explain() {
    std::string body = "{\"request\":" + json_quoted(o_.words[1]) + ",\"headers\":[";
    for (size_t i = 0; i < o_.headers.size(); ++i) {
      body += (i ? "," : "") + json_quoted(o_.headers[i]);
    }
    body += "]}";
    HttpAnswer a;
    int code = kCtlOk;
    if (!call("POST", "/api/explain", "application/json", body, a, code)) return code;
    if (o_.json) {
      std::fputs(a.body.c_str(), stdout);
      return kCtlOk;
    }
    JsonValue doc;
    std::string error;
    const JsonValue* report = nullptr;
    if (!parse_json(a.body, doc, error) || (report = doc.get("report")) == nullptr) {
      std::fprintf(stderr, "harrow ctl: /api/explain did not answer with its JSON: %s\n",
                   error.c_str());
      return kCtlApiError;
    }
    for (const JsonValue& line : report->items) std::printf("%s\n", line.text.c_str());
    return kCtlOk;
  }

  int metrics(const std::string& server) {
    HttpAnswer a;
    int code = kCtlOk;
    if (!call("GET", "/metrics", "", "", a, code)) return code;
    std::vector<std::string> lines = metrics_for_server(a.body, server);
    if (lines.empty() && !server.empty()) {
      std::fprintf(stderr, "harrow ctl: no metrics name server '%s'\n", server.c_str());
      return kCtlApiError;
    }
    if (!o_.json) {
      for (const std::string& line : lines) std::printf("%s\n", line.c_str());
      return kCtlOk;
    }
    // [{"name":…,"labels":"farm=\"a\",…","value":…}]: the text format's sample lines
    // (name{labels} value) for scripts that read JSON only.
    std::string out = "[";
    for (size_t i = 0; i < lines.size(); ++i) {
      const std::string& line = lines[i];
      size_t brace = line.find('{');
      size_t close = line.rfind('}');
      size_t space = line.rfind(' ');
      std::string name = line.substr(0, std::min(brace, space));
      std::string labels = brace != std::string::npos && close != std::string::npos && close > brace
                               ? line.substr(brace + 1, close - brace - 1)
                               : "";
      std::string value = space != std::string::npos ? line.substr(space + 1) : "";
      out += (i ? "," : "") + std::string("{\"name\":") + json_quoted(name) +
             ",\"labels\":" + json_quoted(labels) + ",\"value\":" + json_quoted(value) + "}";
    }
    out += "]\n";
    std::fputs(out.c_str(), stdout);
    return kCtlOk;
  }

  int healthz() {
    HttpAnswer a;
    int code = kCtlOk;
    if (!call("GET", "/healthz", "", "", a, code)) return code;
    std::fputs(o_.json ? "{\"ok\":true}\n" : a.body.c_str(), stdout);
    return kCtlOk;
  }

  CtlOptions o_;
  std::string target_;
  std::string token_;
};

}  // namespace

const char* ctl_usage_text() {
  return "usage: harrow ctl [--admin ADDR:PORT] [--config PATH] [--token T | --token-file F]\n"
         "                  [--json] COMMAND\n"
         "\n"
         "  farms                        farms with server counts and totals\n"
         "  servers FARM                 a farm's servers: state, health, counters\n"
         "  drain FARM SERVER            take no new requests; finish the ones in flight\n"
         "  stop FARM SERVER             graceful stop (ARR's gracefulStop)\n"
         "  start FARM SERVER            take requests again\n"
         "  forcefulstop FARM SERVER     stop now\n"
         "  healthy|unhealthy FARM SERVER  set the server's health by hand\n"
         "  reload                       reload the configuration file\n"
         "  explain \"METHOD URL\" [--header \"Name: value\"]...  trace one request\n"
         "  metrics [SERVER]             Prometheus samples naming SERVER (address or\n"
         "                               address:port); every sample without SERVER\n"
         "  healthz                      the liveness check\n"
         "\n"
         "  --admin ADDR:PORT  the admin listener (default: the --config file's <admin address>,\n"
         "                     else 127.0.0.1:9180)\n"
         "  --config PATH      read the admin address and tokenFile from this configuration\n"
         "  --token T          bearer token; --token-file F reads it from a file\n"
         "  --json             the API's JSON instead of tables\n"
         "\n"
         "exit: 0 done, 1 the admin API refused (its message on stderr), 2 usage,\n"
         "      3 admin listener unreachable\n";
}

int run_ctl(int argc, const char* const* argv) {
  CtlOptions o;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view value;
    bool inline_value = false;
    if (size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      inline_value = true;
    }
    auto take = [&](std::optional<std::string>& into) {
      if (!inline_value) {
        if (i + 1 >= argc) return false;
        value = argv[++i];
      }
      into = std::string(value);
      return true;
    };
    bool ok = true;
    if (arg == "--help" || arg == "-h") {
      std::fputs(ctl_usage_text(), stdout);
      return kCtlOk;
    } else if (arg == "--json") {
      o.json = true;
    } else if (arg == "--admin") {
      ok = take(o.admin);
    } else if (arg == "--config" || arg == "-c") {
      ok = take(o.config);
    } else if (arg == "--token") {
      ok = take(o.token);
    } else if (arg == "--token-file") {
      ok = take(o.token_file);
    } else if (arg == "--header" || arg == "-H") {
      std::optional<std::string> h;
      ok = take(h);
      if (ok) o.headers.push_back(*h);
    } else if (arg.starts_with("-") && arg.size() > 1) {
      std::fprintf(stderr, "harrow ctl: unknown option '%s'\n%s", std::string(arg).c_str(),
                   ctl_usage_text());
      return kCtlUsage;
    } else {
      o.words.emplace_back(arg);
    }
    if (!ok) {
      std::fprintf(stderr, "harrow ctl: option %s needs a value\n", std::string(arg).c_str());
      return kCtlUsage;
    }
  }
  if (o.words.empty()) {
    std::fputs(ctl_usage_text(), stderr);
    return kCtlUsage;
  }
  std::string address = o.admin.value_or("127.0.0.1:9180");
  std::string token = o.token.value_or("");
  std::string error;
  if (o.token_file && !read_token(*o.token_file, token, error)) {
    std::fprintf(stderr, "harrow ctl: %s\n", error.c_str());
    return kCtlUsage;
  }
  if (o.config) {
    config::LoadResult loaded = config::load_config_file(*o.config);
    if (!loaded.config) {
      for (const config::Diagnostic& d : loaded.errors) {
        std::fprintf(stderr, "%s\n", d.format_error().c_str());
      }
      return kCtlUsage;
    }
    if (!o.admin) address = loaded.config->admin_address;
    if (!o.token && !o.token_file && !loaded.config->admin_token_file.empty() &&
        !read_token(loaded.config->admin_token_file, token, error)) {
      std::fprintf(stderr, "harrow ctl: %s (or pass --token)\n", error.c_str());
      return kCtlUsage;
    }
  }
  std::string target;
  if (!admin_target(address, target, error)) {
    std::fprintf(stderr, "harrow ctl: %s\n", error.c_str());
    return kCtlUsage;
  }
  if (!o.headers.empty() && o.words[0] != "explain") {
    std::fprintf(stderr, "harrow ctl: --header goes with explain\n");
    return kCtlUsage;
  }
  return Ctl(std::move(o), std::move(target), std::move(token)).run();
}

}  // namespace harrow

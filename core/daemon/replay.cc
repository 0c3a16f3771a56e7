#include "core/daemon/replay.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <istream>
#include <regex>
#include <sstream>

#include "core/admin/explain.h"
#include "core/base/ascii.h"

namespace harrow {
namespace {

std::string lower_text(std::string_view v) {
  std::string out(v);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size()) break;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    out.push_back(line.substr(start, i - start));
  }
  return out;
}

// W3C logs write an absent value as "-", and IIS writes a space inside a header value as '+'.
std::string header_value(std::string_view v) {
  std::string out(v);
  for (char& c : out) {
    if (c == '+') c = ' ';
  }
  return out;
}

bool is_token(std::string_view v) {
  if (v.empty()) return false;
  for (char c : v) {
    unsigned char u = static_cast<unsigned char>(c);
    // (strchr finds the terminating NUL too: a NUL byte is no token character.)
    if (!(std::isalnum(u) || (c != '\0' && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr))) {
      return false;
    }
  }
  return true;
}

bool absolute_url(std::string_view v) {
  return istarts_with(v, "http://") || istarts_with(v, "https://");
}

// "http://farm/a?b" → "/a?b"; a path stays as it is.
std::string_view path_of(std::string_view url) {
  if (!absolute_url(url)) return url;
  size_t slash = url.find('/', url.find("//") + 2);
  return slash == std::string_view::npos ? std::string_view("/") : url.substr(slash);
}

// The reason token and status Harrow would answer with, from the report's lines.
std::string refusal_reason(const Explanation& ex) {
  static const std::regex before_rules(R"(refused before any rule: ([a-z_]+) \((\d{3})\))");
  static const std::regex answer(R"(: (\d{3}) ([a-z][a-z_]*))");
  for (auto it = ex.lines.rbegin(); it != ex.lines.rend(); ++it) {
    std::smatch m;
    if (std::regex_search(*it, m, before_rules)) return m[2].str() + " " + m[1].str();
    if (std::regex_search(*it, m, answer)) return m[1].str() + " " + m[2].str();
  }
  return std::to_string(ex.status) + " " + ex.outcome;
}

void list(std::vector<ReplayFinding>& findings, ReplayFinding finding) {
  if (findings.size() < ReplaySummary::kListed) findings.push_back(std::move(finding));
}

}  // namespace

W3cLogReader::Line W3cLogReader::read(std::string_view line, LoggedRequest& out,
                                      std::string& error) {
  if (line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);  // a UTF-8 byte order mark
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  if (split_fields(line).empty()) return Line::Blank;
  if (line.front() == '#') {
    if (!istarts_with(line, "#Fields:")) return Line::Directive;
    fields_.clear();
    fields_error_.clear();
    std::vector<std::string> names;
    for (std::string_view name : split_fields(line.substr(8))) names.push_back(lower_text(name));
    auto index = [&](std::initializer_list<const char*> candidates) {
      for (const char* c : candidates) {
        for (size_t i = 0; i < names.size(); ++i) {
          if (names[i] == c) return static_cast<int>(i);
        }
      }
      return -1;
    };
    method_ = index({"cs-method"});
    stem_ = index({"cs-uri-stem"});
    query_ = index({"cs-uri-query"});
    host_ = index({"cs(host)"});
    server_ip_ = index({"s-ip"});
    server_port_ = index({"s-port"});
    status_ = index({"sc-status"});
    farm_ = index({"x-farm"});
    // URL Rewrite puts the URL the client sent in X-Original-URL when it rewrites; IIS logs it
    // as a request header field or as a custom field of that name.
    original_url_ = index({"cs(x-original-url)", "x-original-url"});
    if (method_ < 0 || stem_ < 0) {
      fields_error_ = "#Fields: names no cs-method or no cs-uri-stem: no request can be read";
      error = fields_error_;
      return Line::Malformed;
    }
    fields_ = std::move(names);
    return Line::Directive;
  }
  if (fields_.empty()) {
    error = fields_error_.empty() ? "a request line before any #Fields: directive"
                                  : "no usable #Fields: directive (" + fields_error_ + ")";
    return Line::Malformed;
  }
  std::vector<std::string_view> values = split_fields(line);
  if (values.size() != fields_.size()) {
    error = std::to_string(values.size()) + " fields where #Fields: names " +
            std::to_string(fields_.size());
    return Line::Malformed;
  }
  auto value = [&](int i) -> std::string_view {
    if (i < 0) return {};
    std::string_view v = values[static_cast<size_t>(i)];
    return v == "-" ? std::string_view{} : v;
  };
  out = LoggedRequest{};
  out.method = std::string(value(method_));
  if (!is_token(out.method)) {
    error = "cs-method " + std::string(values[static_cast<size_t>(method_)]) + " is not a method";
    return Line::Malformed;
  }
  std::string_view stem = value(stem_);
  if (stem.empty() || (stem.front() != '/' && !absolute_url(stem))) {
    error = "cs-uri-stem " + std::string(values[static_cast<size_t>(stem_)]) + " is not a path";
    return Line::Malformed;
  }
  std::string logged(stem);
  if (!value(query_).empty()) logged += "?" + std::string(value(query_));
  std::string original = logged;
  if (std::string_view sent = value(original_url_); !sent.empty()) {
    if (sent.front() != '/' && !absolute_url(sent)) {
      error = "X-Original-URL " + std::string(sent) + " is not a path";
      return Line::Malformed;
    }
    original = std::string(sent);
    out.rewritten = logged;
  }
  if (std::string_view s = value(status_); !s.empty()) {
    int n = 0;
    for (char c : s) {
      n = n * 10 + (c - '0');
      if (c < '0' || c > '9' || n > 999) {
        error = "sc-status " + std::string(s) + " is not a status";
        return Line::Malformed;
      }
    }
    out.status = n;
  }
  std::string_view port = value(server_port_);
  std::string authority(value(host_));
  if (authority.empty()) {
    std::string_view ip = value(server_ip_);
    authority = ip.empty() ? "localhost" : std::string(ip);
    if (authority.find(':') != std::string::npos) authority = "[" + authority + "]";
    if (!port.empty() && port != "80" && port != "443") authority += ":" + std::string(port);
  }
  if (absolute_url(original)) {
    // The scheme is case-insensitive (RFC 3986 section 3.1); --explain reads it lower-case.
    size_t colon = original.find(':');
    out.url = lower_text(std::string_view(original).substr(0, colon)) + original.substr(colon);
  } else {
    out.url = std::string(port == "443" ? "https://" : "http://") + authority + original;
  }
  for (size_t i = 0; i < fields_.size(); ++i) {
    const std::string& name = fields_[i];
    if (!name.starts_with("cs(") || !name.ends_with(")") || static_cast<int>(i) == host_ ||
        static_cast<int>(i) == original_url_) {
      continue;
    }
    std::string_view v = value(static_cast<int>(i));
    if (v.empty()) continue;
    out.headers.push_back(name.substr(3, name.size() - 4) + ": " + header_value(v));
  }
  if (farm_ >= 0) out.farm = std::string(value(farm_));
  return Line::Request;
}

void replay_request(const Snapshot& snapshot, const LoggedRequest& request,
                    const std::string& where, ReplaySummary& s) {
  std::string line = request.method + " " + request.url;
  Explanation ex = explain_request(snapshot, ExplainInput{line, request.headers}, false);
  if (!ex.ok) {
    ++s.malformed;
    list(s.malformed_lines, {where, line, ex.error});
    return;
  }
  ++s.requests;
  ++s.outcomes[ex.outcome];
  if (!ex.rule.empty()) ++s.rules[ex.rule];
  if (!ex.farm.empty()) ++s.farms[ex.farm];
  bool forwarded = ex.outcome == "farm" || ex.outcome == "proxy";
  if (ex.outcome == "no-route") {
    ++s.no_route;
    list(s.unroutable, {where, line, "404 no_route"});
    return;
  }
  if (ex.outcome == "refused" || (forwarded && ex.status != 0)) {
    ++s.refused;
    std::string reason = refusal_reason(ex);
    ++s.refusal_reasons[reason];
    list(s.refusals, {where, line, reason});
    return;
  }
  if (request.rewritten) {
    std::string_view iis = path_of(*request.rewritten);
    if (!forwarded) {
      ++s.rewrite_differences;
      list(s.differences, {where, line,
                           "IIS rewrote to " + std::string(iis) + "; Harrow answers: " +
                               ex.outcome + (ex.status ? " " + std::to_string(ex.status) : "")});
    } else if (path_of(ex.url) != iis) {
      ++s.rewrite_differences;
      list(s.differences,
           {where, line,
            "IIS rewrote to " + std::string(iis) + ", Harrow to " + std::string(path_of(ex.url))});
    }
  }
  if (request.farm && !iequals(*request.farm, ex.farm)) {
    ++s.farm_differences;
    list(s.differences,
         {where, line,
          "the log says farm " + (request.farm->empty() ? std::string("(none)") : *request.farm) +
              ", the configuration sends it to " + (ex.farm.empty() ? "(none)" : ex.farm)});
  }
}

namespace {

void replay_stream(const Snapshot& snapshot, std::istream& in, const std::string& file,
                   ReplaySummary& summary) {
  W3cLogReader reader;
  std::string text;
  LoggedRequest request;
  std::string error;
  for (size_t number = 1; std::getline(in, text); ++number) {
    std::string where = file + ":" + std::to_string(number);
    switch (reader.read(text, request, error)) {
      case W3cLogReader::Line::Request:
        replay_request(snapshot, request, where, summary);
        break;
      case W3cLogReader::Line::Malformed:
        ++summary.malformed;
        list(summary.malformed_lines, {where, "", error});
        break;
      case W3cLogReader::Line::Directive:
      case W3cLogReader::Line::Blank:
        break;
    }
  }
}

void counts(std::ostringstream& o, const char* title, const std::map<std::string, uint64_t>& m) {
  if (m.empty()) return;
  size_t width = 0;
  for (const auto& [name, n] : m) width = std::max(width, name.size());
  o << title << ":\n";
  for (const auto& [name, n] : m) {
    o << "  " << name << std::string(width - name.size() + 2, ' ') << n << "\n";
  }
}

void findings(std::ostringstream& o, const std::vector<ReplayFinding>& list, uint64_t total) {
  for (const ReplayFinding& f : list) {
    o << "  " << f.where << ": " << (f.request.empty() ? "" : f.request + ": ") << f.detail << "\n";
  }
  if (total > list.size()) o << "  … and " << total - list.size() << " more\n";
}

}  // namespace

void replay_text(const Snapshot& snapshot, std::string_view text, const std::string& file,
                 ReplaySummary& summary) {
  std::istringstream in{std::string(text)};
  replay_stream(snapshot, in, file, summary);
}

std::string render_replay_summary(const ReplaySummary& s) {
  std::ostringstream o;
  o << "replay: " << s.requests << " requests routed, " << s.malformed << " malformed lines\n";
  counts(o, "outcomes", s.outcomes);
  counts(o, "farms", s.farms);
  counts(o, "rules", s.rules);
  o << "404 no_route: " << s.no_route << "\n";
  findings(o, s.unroutable, s.no_route);
  o << "refused: " << s.refused << "\n";
  for (const auto& [reason, n] : s.refusal_reasons) o << "  " << reason << ": " << n << "\n";
  findings(o, s.refusals, s.refused);
  o << "rewritten URL differs from IIS's: " << s.rewrite_differences << "\n";
  o << "farm differs from the log's: " << s.farm_differences << "\n";
  findings(o, s.differences, s.rewrite_differences + s.farm_differences);
  if (s.malformed > 0) {
    o << "malformed lines (skipped): " << s.malformed << "\n";
    findings(o, s.malformed_lines, s.malformed);
  }
  o << (s.clean() ? "result: every request routes as logged\n"
                  : "result: some requests would not route as logged\n");
  return o.str();
}

int replay_files(const Snapshot& snapshot, const std::vector<std::string>& files, FILE* out) {
  ReplaySummary summary;
  for (const std::string& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "harrow: --replay: cannot read %s: %s\n", file.c_str(),
                   std::strerror(errno));
      return 2;
    }
    replay_stream(snapshot, in, file, summary);
  }
  std::fputs(render_replay_summary(summary).c_str(), out);
  return summary.clean() ? kReplayClean : kReplayDifferences;
}

}  // namespace harrow

#include "core/rewrite/template_compiler.h"

#include <algorithm>
#include <charconv>
#include <stdexcept>

#include "core/base/ascii.h"

namespace harrow {

using config::PatternSyntax;

void Router::CompiledPattern::compile(const std::string& pattern, PatternSyntax s, bool icase,
                                      bool neg) {
  syntax = s;
  ignore_case = icase;
  negate = neg;
  if (syntax == PatternSyntax::ExactMatch) {
    exact = pattern;
    return;
  }
  std::string regex;
  if (syntax == PatternSyntax::Wildcard && pattern == "*") {
    match_all = true;
    capture_count = 1;
    return;
  }
  if (syntax == PatternSyntax::Wildcard && pattern.find('*') == std::string::npos &&
      std::all_of(pattern.begin(), pattern.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
    // No '*' and ASCII: the whole input must equal it, exactly what ExactMatch compares.
    literal = true;
    exact = pattern;
    return;
  }
  if (syntax == PatternSyntax::Wildcard) {
    utf = std::any_of(pattern.begin(), pattern.end(),
                      [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
    regex = "^";
    for (char c : pattern) {
      if (c == '*') {
        regex += "(.*)";
      } else {
        if (!is_ascii_alnum(c) && static_cast<unsigned char>(c) < 0x80) {
          regex += '\\';
        }
        regex += c;
      }
    }
    regex += "$";
  } else {
    regex = pattern;
  }
  uint32_t options = (utf ? PCRE2_UTF : 0) | (ignore_case ? PCRE2_CASELESS : 0) |
                     (syntax == PatternSyntax::Wildcard ? PCRE2_DOTALL : 0);
  int error = 0;
  PCRE2_SIZE offset = 0;
  code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(regex.data()), regex.size(), options, &error,
                       &offset, nullptr);
  if (code == nullptr) {
    throw std::runtime_error("pattern does not compile: " + pattern);
  }
  jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;  // else the interpreter does it
  pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &capture_count);
}

namespace router_internal {

std::string response_header_for_variable(std::string_view name) {
  std::string header;
  for (char c : name.substr(9)) header += c == '_' ? '-' : ascii_lower(c);
  return header;
}

Var builtin_variable(std::string_view name, std::string& header) {
  struct Entry {
    std::string_view name;
    Var var;
  };
  static constexpr Entry kNames[] = {
      {"HTTP_HOST", Var::HttpHost},
      {"HTTPS", Var::Https},
      {"QUERY_STRING", Var::QueryString},
      {"REQUEST_URI", Var::RequestUri},
      {"UNENCODED_URL", Var::UnencodedUrl},
      {"URL", Var::Url},
      {"PATH_INFO", Var::PathInfo},
      {"REQUEST_METHOD", Var::RequestMethod},
      {"REMOTE_ADDR", Var::RemoteAddr},
      {"SERVER_PORT", Var::ServerPort},
      {"SERVER_PORT_SECURE", Var::ServerPortSecure},
      {"HTTP_URL", Var::UnencodedUrl},
      {"SCRIPT_NAME", Var::PathInfo},
      {"CACHE_URL", Var::CacheUrl},
      {"SERVER_NAME", Var::ServerName},
      {"SERVER_PROTOCOL", Var::ServerProtocol},
      {"REMOTE_PORT", Var::RemotePort},
      {"REMOTE_HOST", Var::RemoteAddr},
      {"LOCAL_ADDR", Var::LocalAddr},
      {"APP_WARMING_UP", Var::AppWarmingUp},
      {"AUTH_TYPE", Var::Empty},
      {"AUTH_USER", Var::Empty},
      {"LOGON_USER", Var::Empty},
      {"REMOTE_USER", Var::Empty},
      {"RESPONSE_STATUS", Var::ResponseStatus},
  };
  for (const Entry& e : kNames) {
    if (iequals(name, e.name)) return e.var;
  }
  if (iequals(name, "CONTENT_LENGTH") || iequals(name, "CONTENT_TYPE")) {
    header = iequals(name, "CONTENT_TYPE") ? "content-type" : "content-length";
    return Var::Header;
  }
  if (name.size() > 5 && istarts_with(name, "HTTP_")) {
    header.clear();
    for (char c : name.substr(5)) header += c == '_' ? '-' : ascii_lower(c);
    return Var::Header;
  }
  if (name.size() > 9 && istarts_with(name, "RESPONSE_")) {
    header = response_header_for_variable(name);
    return Var::ResponseHeader;
  }
  return Var::Unknown;
}

std::string header_for_variable(std::string_view name) {
  std::string header;
  if (name.size() <= 5 || !istarts_with(name, "HTTP_")) return header;
  bool word_start = true;
  for (char c : name.substr(5)) {
    if (c == '_') {
      header += '-';
      word_start = true;
    } else {
      header += word_start ? ascii_upper(c) : ascii_lower(c);
      word_start = false;
    }
  }
  return header;
}

int find_variable(const TemplateContext& ctx, std::string_view name) {
  for (size_t i = 0; i < ctx.variables.size(); ++i) {
    if (iequals(ctx.variables[i]->name, name)) return static_cast<int>(i);
  }
  return -1;
}

namespace {

// Compiles the inside of one {…} reference into `out` (appending at most one node). Unknown
// names produce nothing, so they expand to the empty string as in IIS.
void parse_reference(std::string_view ref, const TemplateContext& ctx, Template& out) {
  size_t colon = ref.find(':');
  std::string_view name = ref.substr(0, colon);
  Node node;
  if (colon != std::string_view::npos && name.find('{') == std::string_view::npos) {
    std::string_view arg = ref.substr(colon + 1);
    if (iequals(name, "R") || iequals(name, "C")) {
      size_t n = 0;
      auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), n);
      if (ec != std::errc() || end != arg.data() + arg.size() || n > 1000) return;
      node.op = iequals(name, "R") ? Op::RuleCapture : Op::ConditionCapture;
      node.index = static_cast<int>(n);
      out.push_back(std::move(node));
      return;
    }
    if (iequals(name, "ToLower")) {
      node.op = Op::ToLower;
    } else if (iequals(name, "UrlEncode")) {
      node.op = Op::UrlEncode;
    } else if (iequals(name, "UrlDecode")) {
      node.op = Op::UrlDecode;
    } else if (iequals(name, "HtmlEncode")) {
      node.op = Op::HtmlEncode;
    } else {
      auto map = std::find_if(ctx.maps.begin(), ctx.maps.end(),
                              [&](const auto& m) { return iequals(m->name, name); });
      if (map == ctx.maps.end()) return;  // not a function or a map: nothing
      node.op = Op::Map;
      node.index = static_cast<int>(map - ctx.maps.begin());
    }
    parse_template(arg, ctx, node.children);
    out.push_back(std::move(node));
    return;
  }
  node.op = Op::Variable;
  node.var = builtin_variable(ref, node.text);
  node.slot = find_variable(ctx, ref);
  if (node.var == Var::Unknown && node.slot < 0) return;
  if ((node.var == Var::LocalAddr || node.var == Var::ServerName || node.var == Var::CacheUrl) &&
      ctx.reads_local_addr != nullptr) {
    *ctx.reads_local_addr = true;
  }
  out.push_back(std::move(node));
}

}  // namespace

void parse_template(std::string_view text, const TemplateContext& ctx, Template& out) {
  auto literal = [&](std::string_view piece) {
    if (piece.empty()) return;
    if (out.empty() || out.back().op != Op::Literal) out.push_back(Node{});
    out.back().text.append(piece);
  };
  size_t i = 0;
  while (i < text.size()) {
    size_t open = text.find('{', i);
    if (open == std::string_view::npos) {
      literal(text.substr(i));
      return;
    }
    size_t close = std::string_view::npos;
    int depth = 0;
    for (size_t k = open; k < text.size(); ++k) {
      if (text[k] == '{') {
        ++depth;
      } else if (text[k] == '}' && --depth == 0) {
        close = k;
        break;
      }
    }
    if (close == std::string_view::npos) {
      literal(text.substr(i));
      return;
    }
    literal(text.substr(i, open - i));
    parse_reference(text.substr(open + 1, close - open - 1), ctx, out);
    i = close + 1;
  }
}

}  // namespace router_internal

}  // namespace harrow

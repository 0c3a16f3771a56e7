#include "core/rewrite/rule_evaluator.h"

#include <algorithm>
#include <charconv>

#include "core/base/ascii.h"
#include "core/rewrite/text_functions.h"

namespace harrow {

RouteScratch::RouteScratch() : impl_(std::make_unique<Impl>()) {}
RouteScratch::~RouteScratch() = default;

int RouteScratch::match_error() const {
  return impl_->match_error;
}

std::string RouteScratch::match_error_text() const {
  PCRE2_UCHAR buffer[120];
  int n = pcre2_get_error_message(impl_->match_error, buffer, sizeof buffer);
  return n < 0 ? "error " + std::to_string(impl_->match_error)
               : std::string(reinterpret_cast<const char*>(buffer), static_cast<size_t>(n));
}

namespace router_internal {

using config::PatternSyntax;

std::vector<std::string_view> traced_groups(std::string_view input, const Impl& s) {
  std::vector<std::string_view> out;
  for (const auto& [offset, length] : s.ranges) {
    out.push_back(offset <= input.size() ? input.substr(offset, length) : std::string_view{});
  }
  return out;
}

namespace {

// "host:port" → "host", "[::1]:80" → "[::1]".
std::string_view host_without_port(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  return host.substr(0, host.find(':'));
}

void append_number(std::string& out, unsigned value) {
  char digits[12];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, static_cast<size_t>(end - digits));
}

// The request path as outbound rules see {URL}: decoded and canonical, with its '/'.
std::string_view request_path(const RequestFacts& f) {
  if (!f.path.empty()) return f.path;
  return f.target.substr(0, f.target.find('?'));
}

}  // namespace

std::string_view response_header(const Eval& e, std::string_view lower_name) {
  if (e.response_sets != nullptr) {
    for (auto it = e.response_sets->rbegin(); it != e.response_sets->rend(); ++it) {
      if (iequals(it->first, lower_name)) return it->second;
    }
  }
  return e.response != nullptr ? e.response->find(lower_name) : std::string_view{};
}

void append_builtin(Var var, std::string_view header, const Eval& e, std::string& out) {
  const RequestFacts& f = e.facts;
  switch (var) {
    case Var::Unknown:
      return;
    case Var::HttpHost:
      out.append(f.host);
      return;
    case Var::Https:
      out.append(f.https ? "on" : "off");
      return;
    case Var::QueryString:
      out.append(e.s.query);
      return;
    case Var::RequestUri:
    case Var::UnencodedUrl:
      out.append(f.target);
      return;
    case Var::Url:
    case Var::PathInfo:
      if (e.outbound) {
        out.append(request_path(f));
        return;
      }
      out += '/';
      out.append(e.s.url);
      return;
    case Var::RequestMethod:
      out.append(f.method);
      return;
    case Var::RemoteAddr:
      out.append(f.remote_addr);
      return;
    case Var::ServerPort:
      append_number(out, f.server_port);
      return;
    case Var::CacheUrl: {
      std::string_view name = host_without_port(f.host);
      out.append(f.https ? "https://" : "http://");
      out.append(name.empty() ? f.local_addr : name);
      out += ':';
      append_number(out, f.server_port);
      out.append(f.target);
      return;
    }
    case Var::ServerName: {
      std::string_view name = host_without_port(f.host);
      out.append(name.empty() ? f.local_addr : name);
      return;
    }
    case Var::ServerProtocol:
      out.append(f.http2 ? "HTTP/2" : f.http10 ? "HTTP/1.0" : "HTTP/1.1");
      return;
    case Var::RemotePort:
      append_number(out, f.remote_port);
      return;
    case Var::LocalAddr:
      out.append(f.local_addr);
      return;
    case Var::AppWarmingUp:
      out += '0';
      return;
    case Var::Empty:
      return;
    case Var::ResponseStatus:
      if (f.response_status > 0) append_number(out, static_cast<unsigned>(f.response_status));
      return;
    case Var::ServerPortSecure:
      out += f.https ? '1' : '0';
      return;
    case Var::Header:
      if (f.head != nullptr) out.append(f.head->find(header));
      return;
    case Var::ResponseHeader:
      out.append(response_header(e, header));
      return;
  }
}

namespace {

// Appends the expansion of `t` to `out` (which must not be s.url, s.query or a slot value).
void expand_append(std::span<const Node> t, const Eval& e, std::string& out) {
  for (const Node& n : t) {
    size_t from = out.size();
    switch (n.op) {
      case Op::Literal:
        out.append(n.text);
        break;
      case Op::RuleCapture:
        if (static_cast<size_t>(n.index) < e.s.rule_ranges.size()) {
          auto [off, len] = e.s.rule_ranges[n.index];
          out.append(e.s.url, off, len);
        }
        break;
      case Op::ConditionCapture:
        if (static_cast<size_t>(n.index) < e.s.condition_captures.size()) {
          out.append(e.s.condition_captures[n.index]);
        }
        break;
      case Op::Variable:
        if (n.slot >= 0 && slot_is_set(e.s, n.slot)) {
          out.append(e.s.slots[n.slot].value);
        } else {
          append_builtin(n.var, n.text, e, out);
        }
        break;
      case Op::ToLower:
        expand_append(n.children, e, out);
        to_lower_from(out, from);
        break;
      case Op::UrlEncode:
        expand_append(n.children, e, out);
        url_encode_from(out, from);
        break;
      case Op::UrlDecode:
        expand_append(n.children, e, out);
        url_decode_from(out, from);
        break;
      case Op::HtmlEncode:
        expand_append(n.children, e, out);
        html_encode_from(out, from);
        break;
      case Op::Map: {
        expand_append(n.children, e, out);
        const Router::CompiledMap& map = *e.maps[n.index];
        std::string_view key(out.data() + from, out.size() - from);
        auto it = std::lower_bound(
            map.entries.begin(), map.entries.end(), key,
            [](const auto& entry, std::string_view k) { return iless(entry.first, k); });
        std::string_view value = (it != map.entries.end() && iequals(it->first, key))
                                     ? std::string_view(it->second)
                                     : std::string_view(map.default_value);
        out.resize(from);
        out.append(value);
        break;
      }
    }
  }
}

}  // namespace

void expand(const Template& t, const Eval& e, std::string& out) {
  out.clear();
  expand_append(t, e, out);
}

namespace {

// True if `n` reads the decoded request path: {R:n} of an inbound rule, {URL} / {PATH_INFO}
// unless a rule set them, or {ToLower:…} of one of those (only the case changes).
bool reads_decoded_path(const Node& n, const Eval& e) {
  if (n.op == Op::RuleCapture) return true;
  if (n.op == Op::ToLower) {
    return std::any_of(n.children.begin(), n.children.end(),
                       [&](const Node& c) { return reads_decoded_path(c, e); });
  }
  if (n.op != Op::Variable || (n.var != Var::Url && n.var != Var::PathInfo)) return false;
  return n.slot < 0 || !slot_is_set(e.s, n.slot);
}

}  // namespace

void expand_url(const Template& t, const Eval& e, std::string& out) {
  out.clear();
  for (size_t i = 0; i < t.size(); ++i) {
    size_t from = out.size();
    expand_append(std::span<const Node>(&t[i], 1), e, out);
    if (reads_decoded_path(t[i], e)) path_encode_from(out, from);
  }
}

bool match_pattern(const Router::CompiledPattern& p, std::string_view input, bool input_ascii,
                   Impl& s) {
  s.ranges.clear();
  if (s.match_error != 0) return false;  // the routing has failed already: nothing holds
  bool matched;
  if (p.match_all) {
    matched = true;
    if (!p.negate) {
      s.ranges.emplace_back(0, input.size());
      s.ranges.emplace_back(0, input.size());
    }
  } else if (p.syntax == PatternSyntax::ExactMatch || p.literal) {
    matched = p.ignore_case ? iequals(input, p.exact) : input == p.exact;
    if (matched && !p.negate) s.ranges.emplace_back(0, input.size());
  } else {
    auto subject = reinterpret_cast<PCRE2_SPTR>(input.data());
    int rc;
    if (p.jit && (!p.utf || input_ascii)) {
      // The fast path skips pcre2_match's checks, which hold here: the subject is valid UTF-8
      // (or the pattern is not UTF) and the match data is big enough.
      rc = pcre2_jit_match(p.code, subject, input.size(), 0, 0, s.match, s.match_context);
    } else {
      rc = pcre2_match(p.code, subject, input.size(), 0, 0, s.match, s.match_context);
    }
    // Subjects that are not valid UTF-8 do not match a UTF pattern (PCRE2_ERROR_UTF8_ERR*);
    // any other failure (match, depth or heap limit, JIT stack) stops the routing: the
    // caller fails the request instead of treating the pattern as not matching.
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH &&
        !(rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21)) {
      s.match_error = rc;
      s.error_pattern = &p;
      s.ranges.clear();
      return false;
    }
    matched = rc >= 0;  // 0: matched, but the ovector was too small (cannot happen here)
    if (matched && !p.negate) {
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.match);
      size_t groups = rc == 0 ? pcre2_get_ovector_count(s.match) : static_cast<size_t>(rc);
      for (size_t i = 0; i < groups; ++i) {
        if (ov[2 * i] == PCRE2_UNSET) {
          s.ranges.emplace_back(0, 0);
        } else {
          s.ranges.emplace_back(ov[2 * i], ov[2 * i + 1] - ov[2 * i]);
        }
      }
    }
  }
  return matched != p.negate;
}

namespace {

// Copies the groups in s.ranges (out of `input`) to `captures`, from group `first` on.
void keep_captures(std::string_view input, const Impl& s, size_t first, Captures& captures) {
  for (size_t i = first; i < s.ranges.size(); ++i) {
    captures.add(input.substr(s.ranges[i].first, s.ranges[i].second));
  }
}

// The expansion of a condition's input. An input that is just one server variable held
// elsewhere ("{HTTP_HOST}", the commonest) is returned as a view of it, without copying;
// anything else is expanded into s.input. The view stays valid while the conditions run.
// `ascii` tells whether the input is all ASCII (known in advance for the Host).
std::string_view condition_input(const Template& t, const Eval& e, bool& ascii) {
  if (t.size() == 1 && t[0].op == Op::Variable) {
    const Node& n = t[0];
    std::string_view view;
    if (n.slot >= 0 && slot_is_set(e.s, n.slot)) {
      view = e.s.slots[n.slot].value;
    } else {
      switch (n.var) {
        case Var::HttpHost:
          ascii = e.s.host_ascii;
          return e.facts.host;
        case Var::QueryString:
          view = e.s.query;
          break;
        case Var::RequestUri:
        case Var::UnencodedUrl:
          view = e.facts.target;
          break;
        case Var::RequestMethod:
          view = e.facts.method;
          break;
        case Var::RemoteAddr:
          view = e.facts.remote_addr;
          break;
        case Var::Header:
          if (e.facts.head != nullptr) view = e.facts.head->find(n.text);
          break;
        default:
          expand(t, e, e.s.input);
          view = e.s.input;
          break;
      }
    }
    ascii = is_ascii(view);
    return view;
  }
  expand(t, e, e.s.input);
  ascii = is_ascii(e.s.input);
  return e.s.input;
}

}  // namespace

bool conditions_hold(const std::vector<std::unique_ptr<Router::CompiledPattern>>& conditions,
                     const std::vector<Template>& inputs, config::LogicalGrouping grouping,
                     bool track_all_captures, const Eval& e) {
  Impl& s = e.s;
  s.condition_captures.clear();
  bool any = grouping == config::LogicalGrouping::MatchAny;
  for (size_t i = 0; i < conditions.size(); ++i) {
    bool ascii = true;
    std::string_view input = condition_input(inputs[i], e, ascii);
    bool matched = match_pattern(*conditions[i], input, ascii, s);
    if (e.trace != nullptr) e.trace->condition(i, input, matched, traced_groups(input, s));
    if (matched) {
      if (!track_all_captures) {
        s.condition_captures.clear();
        keep_captures(input, s, 0, s.condition_captures);
      } else {
        keep_captures(input, s, s.condition_captures.size() == 0 ? 0 : 1, s.condition_captures);
      }
      if (any) return true;
    } else if (!any) {
      return false;
    }
  }
  return !any || conditions.empty();
}

bool conditions_hold(const Router::CompiledRule& rule, const Eval& e) {
  bool hold = conditions_hold(rule.conditions, rule.condition_inputs, rule.config->logical_grouping,
                              rule.config->track_all_captures, e);
  if (e.trace != nullptr) e.trace->conditions(hold);
  return hold;
}

}  // namespace router_internal

}  // namespace harrow

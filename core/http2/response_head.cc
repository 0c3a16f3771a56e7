#include "core/http2/response_head.h"

#include <cstring>

#include "core/base/ascii.h"
#include "core/base/byte_runs.h"
#include "core/http2/connection_specific.h"

namespace harrow::http2 {

namespace {

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

}  // namespace

// One pass over the text: each name is lower-cased as it is read, each line's end found with
// memchr (a head is parsed once per response, so this is on every response's path).
bool ResponseHead::parse(std::string_view http1) {
  fields_.clear();
  status_ = 0;
  text_.assign(http1);
  char* text = text_.data();
  const char* end = text + text_.size();
  // "HTTP/1.1 NNN reason\r\n"
  constexpr std::string_view kVersion = "HTTP/1.1 ";
  if (text_.size() < 14 || std::string_view(text, kVersion.size()) != kVersion) return false;
  for (int i = 0; i < 3; ++i) {
    char c = text[9 + i];
    if (c < '0' || c > '9') return false;
    status_text[i] = c;
    status_ = status_ * 10 + (c - '0');
  }
  const char* cr = static_cast<const char*>(std::memchr(text + 12, '\r', end - (text + 12)));
  if (cr == nullptr || cr + 1 == end || cr[1] != '\n') return false;
  char* p = text + (cr + 2 - text);
  while (p < end) {
    if (*p == '\r') return p + 2 == end && p[1] == '\n';  // the empty line ends the head
    char* name = p;
    while (p < end && *p != ':' && *p != '\r') {
      *p = ascii_lower(*p);
      ++p;
    }
    if (p == end || *p != ':' || p == name) return false;
    std::string_view field_name(name, p - name);
    ++p;
    while (p < end && is_ows(*p)) ++p;
    cr = static_cast<const char*>(std::memchr(p, '\r', end - p));
    if (cr == nullptr || cr + 1 == end || cr[1] != '\n') return false;
    const char* value_end = cr;
    while (value_end > p && is_ows(value_end[-1])) --value_end;
    if (!connection_specific(field_name)) {
      fields_.push_back({field_name, std::string_view(p, value_end - p)});
    }
    p = text + (cr + 2 - text);
  }
  return false;
}

void ResponseHead::reset(int status) {
  fields_.clear();
  status_ = status;
  status_text[0] = static_cast<char>('0' + status / 100 % 10);
  status_text[1] = static_cast<char>('0' + status / 10 % 10);
  status_text[2] = static_cast<char>('0' + status % 10);
}

void ResponseHead::add(char* name, size_t name_len, std::string_view value) {
  ascii_lower_in_place(name, name_len);
  std::string_view lower(name, name_len);
  if (!connection_specific(lower)) fields_.push_back({lower, value});
}

}  // namespace harrow::http2

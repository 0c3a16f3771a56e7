#include "core/http2/response_head.h"

#include "core/base/ascii.h"

namespace harrow::http2 {

namespace {

bool connection_specific(std::string_view name) {
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
         name == "transfer-encoding" || name == "upgrade";
}

}  // namespace

bool ResponseHead::parse(std::string_view http1) {
  fields_.clear();
  status_ = 0;
  text_.assign(http1);
  std::string_view text = text_;
  size_t line_end = text.find("\r\n");
  // "HTTP/1.1 NNN reason"
  if (line_end == std::string_view::npos || line_end < 12 || !text.starts_with("HTTP/1.1 ")) {
    return false;
  }
  for (int i = 0; i < 3; ++i) {
    char c = text[9 + i];
    if (c < '0' || c > '9') return false;
    status_text[i] = c;
    status_ = status_ * 10 + (c - '0');
  }
  size_t pos = line_end + 2;
  while (pos < text.size()) {
    size_t end = text.find("\r\n", pos);
    if (end == std::string_view::npos) return false;
    if (end == pos) return pos + 2 == text.size();  // the empty line ends the head
    std::string_view line = text.substr(pos, end - pos);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    for (size_t i = 0; i < colon; ++i) text_[pos + i] = ascii_lower(text_[pos + i]);
    std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (!connection_specific(name)) fields_.push_back({name, value});
    pos = end + 2;
  }
  return false;
}

}  // namespace harrow::http2

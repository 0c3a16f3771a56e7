// RFC 9113 §8.2.2: the fields that are about one connection and never cross an HTTP/2 hop
// (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade).
#pragma once

#include <string_view>

namespace harrow::http2 {

// `lower_name` is lower case. The length picks the one name it could be (this is asked of
// every field of every response).
inline bool connection_specific(std::string_view lower_name) {
  switch (lower_name.size()) {
    case 7:
      return lower_name == "upgrade";
    case 10:
      return lower_name == "connection" || lower_name == "keep-alive";
    case 16:
      return lower_name == "proxy-connection";
    case 17:
      return lower_name == "transfer-encoding";
    default:
      return false;
  }
}

}  // namespace harrow::http2

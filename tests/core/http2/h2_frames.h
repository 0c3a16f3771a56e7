// Raw HTTP/2 frames for tests and the fuzz seeds: a client that sends exactly the bytes a test
// asks for, valid or not, and a reader for what the server sends back.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace harrow::http2::testing {

inline std::string frame(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
  std::string out;
  size_t n = payload.size();
  out += static_cast<char>(n >> 16);
  out += static_cast<char>(n >> 8);
  out += static_cast<char>(n);
  out += static_cast<char>(type);
  out += static_cast<char>(flags);
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>(stream >> shift);
  out.append(payload);
  return out;
}

inline std::string u32(uint32_t v) {
  std::string out;
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>(v >> shift);
  return out;
}

inline std::string preface() {
  return std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + frame(NGHTTP2_SETTINGS, 0, 0, "");
}

// An HPACK encoder kept across header blocks, as a client's is.
class Encoder {
 public:
  Encoder() { nghttp2_hd_deflate_new(&deflater_, 4096); }
  ~Encoder() { nghttp2_hd_deflate_del(deflater_); }
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;
  std::string encode(const std::vector<std::pair<std::string, std::string>>& fields) {
    std::vector<nghttp2_nv> nva;
    for (const auto& [name, value] : fields) {
      nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                     reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                     value.size(), NGHTTP2_NV_FLAG_NONE});
    }
    std::string out(nghttp2_hd_deflate_bound(deflater_, nva.data(), nva.size()), '\0');
    ssize_t n = nghttp2_hd_deflate_hd(deflater_, reinterpret_cast<uint8_t*>(out.data()), out.size(),
                                      nva.data(), nva.size());
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return out;
  }

 private:
  nghttp2_hd_deflater* deflater_ = nullptr;
};

inline std::vector<std::pair<std::string, std::string>> get_request(std::string path = "/") {
  return {{":method", "GET"}, {":scheme", "https"}, {":authority", "a.test"}, {":path", path}};
}

struct Frame {
  uint8_t type;
  uint8_t flags;
  uint32_t stream;
  std::string payload;
};

inline std::vector<Frame> frames_of(std::string_view bytes) {
  std::vector<Frame> out;
  while (bytes.size() >= 9) {
    auto b = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
    size_t len = (size_t{b(0)} << 16) | (size_t{b(1)} << 8) | b(2);
    if (bytes.size() < 9 + len) break;
    uint32_t stream =
        ((uint32_t{b(5)} << 24) | (uint32_t{b(6)} << 16) | (uint32_t{b(7)} << 8) | b(8)) &
        0x7fffffffu;
    out.push_back({b(3), b(4), stream, std::string(bytes.substr(9, len))});
    bytes.remove_prefix(9 + len);
  }
  return out;
}

inline uint32_t read_u32(std::string_view p, size_t at) {
  return (uint32_t{static_cast<uint8_t>(p[at])} << 24) |
         (uint32_t{static_cast<uint8_t>(p[at + 1])} << 16) |
         (uint32_t{static_cast<uint8_t>(p[at + 2])} << 8) | static_cast<uint8_t>(p[at + 3]);
}

}  // namespace harrow::http2::testing

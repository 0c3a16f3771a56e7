// The response head Harrow built (core/proxy/phases.h writes every client response head as
// HTTP/1.1 text, through HeadWriter's checks) as HTTP/2 header fields: the status line's code
// becomes :status, names become lower case, and the fields that mean something only to an
// HTTP/1 connection (RFC 9113 §8.2.2: Connection, Keep-Alive, Proxy-Connection,
// Transfer-Encoding, Upgrade) are left out. The text is Harrow's own, so it is well formed;
// anything else is refused rather than guessed at.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace harrow::http2 {

struct ResponseField {
  std::string_view name;  // lower case, into ResponseHead::text
  std::string_view value;
};

class ResponseHead {
 public:
  // Takes `http1` ("HTTP/1.1 200 OK\r\nName: value\r\n...\r\n\r\n"). False if it is not a
  // head Harrow writes.
  bool parse(std::string_view http1);
  // The same head built from fields written and checked elsewhere (HeadWriter::keep_fields()
  // over the head phase 3 wrote), without parsing the text again: reset(), then add() each
  // field in order. add() lower-cases `name` in place (the caller's bytes, never sent as
  // HTTP/1 text) and leaves out the connection-specific fields. The views stay the caller's.
  void reset(int status);
  void add(char* name, size_t name_len, std::string_view value);
  int status() const { return status_; }
  char status_text[4] = {0, 0, 0, 0};  // :status's value
  const std::vector<ResponseField>& fields() const { return fields_; }

 private:
  std::string text_;  // the head, names lower-cased in place
  std::vector<ResponseField> fields_;
  int status_ = 0;
};

}  // namespace harrow::http2

// The HTTP/2 server session (core/http2/server_session.h) against arbitrary frames: the input
// (after the connection preface, which is prepended) is fed in pieces whose sizes come from the
// first byte, every request is answered, and every request head that reaches the owner must
// become an HTTP/1.1 head the decoder reads as exactly one head, or be refused by it; and when
// the decoder takes the head from the fields themselves (RequestDecoder::decode_fields()), it
// must be the same head with the same judgement.
#include <cstdint>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "core/http1/request_decoder.h"
#include "core/http2/server_session.h"

namespace {

using harrow::http2::ServerSession;
using harrow::http2::SessionEvents;
using harrow::http2::SessionLimits;
using harrow::http2::Stream;

class HeadOnly final : public harrow::RequestDecoderEvents {
 public:
  void request_begin() override {}
  void request_head() override { ++heads; }
  void request_body(const char*, size_t) override {}
  void request_end() override {}
  int heads = 0;
};

class Owner final : public SessionEvents {
 public:
  ServerSession* session = nullptr;
  std::deque<Stream> streams;
  std::string head;
  std::vector<harrow::HeaderField> head_fields;

  Stream* h2_open(int32_t) override {
    if (streams.size() > 1000) return nullptr;
    streams.emplace_back();
    return &streams.back();
  }
  void h2_request(Stream* stream, const harrow::http2::RequestFields& fields,
                  bool end_stream) override {
    if (!fields.too_large() &&
        fields.write_http1(!end_stream, head) == harrow::http2::RequestFields::Result::Ok) {
      harrow::RequestDecoder decoder;
      harrow::MessageHead message;
      HeadOnly events;
      decoder.reset(harrow::RequestLimits{}, &message, &events);
      harrow::RequestDecoder::Step step =
          decoder.decode(head.data(), static_cast<uint32_t>(head.size()));
      if (step.status != harrow::RequestDecoder::Status::Rejected && events.heads != 1) {
        __builtin_trap();  // a head Harrow built from HTTP/2 fields must read as one head
      }
      // The fields road (what H2Stream takes first) must give that same head and judgement.
      fields.http1_fields(!end_stream, head_fields);
      harrow::RequestDecoder by_fields;
      harrow::MessageHead fields_message;
      HeadOnly fields_events;
      by_fields.reset(harrow::RequestLimits{}, &fields_message, &fields_events);
      if (by_fields.decode_fields(fields.method(), fields.path(), head_fields)) {
        bool same =
            step.status == harrow::RequestDecoder::Status::Paused && fields_events.heads == 1 &&
            by_fields.head_rejected() == decoder.head_rejected() &&
            (!decoder.head_rejected() ||
             by_fields.rejection().failure == decoder.rejection().failure) &&
            by_fields.method() == decoder.method() && by_fields.chunked() == decoder.chunked() &&
            by_fields.has_body() == decoder.has_body() &&
            fields_message.target() == message.target() &&
            fields_message.fields().size() == message.fields().size();
        for (size_t i = 0; same && i < message.fields().size(); ++i) {
          same = fields_message.fields()[i].name == message.fields()[i].name &&
                 fields_message.fields()[i].value == message.fields()[i].value;
        }
        if (!same) __builtin_trap();  // the two roads of RequestDecoder disagree
      }
    }
    static char status[] = "200";
    static char name[] = ":status";
    nghttp2_nv nv[] = {{reinterpret_cast<uint8_t*>(name), reinterpret_cast<uint8_t*>(status), 7, 3,
                        NGHTTP2_NV_FLAG_NONE}};
    session->submit_response(stream, nv, true);
  }
  void h2_body(Stream* stream, const uint8_t*, size_t len) override {
    session->consume(stream, len);
  }
  void h2_body_end(Stream*) override {}
  void h2_closed(Stream*, uint32_t) override {}
  Pull h2_pull(Stream*, uint8_t* buf, size_t len) override {
    Pull pull;
    pull.bytes = len < 5 ? len : 5;
    std::memcpy(buf, "hello", pull.bytes);
    pull.end = true;
    return pull;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t piece = 1 + data[0];
  std::string input = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  input.append(reinterpret_cast<const char*>(data + 1), size - 1);
  Owner owner;
  SessionLimits limits;
  limits.max_header_list = 8 * 1024;
  ServerSession session(limits, &owner);
  owner.session = &session;
  std::string out;
  uint64_t now = 1000;
  for (size_t at = 0; at < input.size(); at += piece) {
    size_t n = input.size() - at < piece ? input.size() - at : piece;
    bool go_on = session.receive(reinterpret_cast<const uint8_t*>(input.data() + at), n, now);
    now += 3;
    out.clear();
    session.send_to(out);
    if (!go_on) break;
  }
  return 0;
}

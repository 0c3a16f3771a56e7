#include "core/base/io_buffer.h"

#include <gtest/gtest.h>

#include <unistd.h>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace harrow {
namespace {

TEST(InputBuffer, FirstReadGoesToASmallBlock) {
  InputBuffer in;
  uv_buf_t a = in.next_read_buffer();
  ASSERT_NE(a.base, nullptr);
  EXPECT_EQ(a.len, IoBlock::kSmallCapacity);
  in.commit(10);
  ASSERT_NE(in.block, nullptr);
  EXPECT_EQ(in.block->data, a.base);
  EXPECT_EQ(in.unconsumed(), 10u);
  in.release();
  EXPECT_EQ(in.block, nullptr);
}

TEST(InputBuffer, AReadThatBringsNothingLeavesTheConnectionWithoutABlock) {
  InputBuffer a;
  InputBuffer b;
  uv_buf_t first = a.next_read_buffer();  // an idle connection wakes up: EOF or nothing
  EXPECT_EQ(a.block, nullptr);
  uv_buf_t second = b.next_read_buffer();  // the next one reads into the same landing block
  EXPECT_EQ(second.base, first.base);
  b.commit(5);  // ... and keeps it, since bytes came
  EXPECT_EQ(b.block->data, first.base);
  uv_buf_t third = a.next_read_buffer();
  EXPECT_NE(third.base, first.base);
  a.release();
  b.release();
}

TEST(InputBuffer, ReusesTheBlockWhenEverythingWasParsed) {
  InputBuffer in;
  uv_buf_t a = in.next_read_buffer();
  in.commit(100);
  in.parse_pos = 100;
  uv_buf_t b = in.next_read_buffer();
  EXPECT_EQ(b.base, a.base);  // nothing points into it: start over at the front
  EXPECT_EQ(b.len, IoBlock::kSmallCapacity);
  in.release();
}

TEST(InputBuffer, AppendsAfterUnparsedBytes) {
  InputBuffer in;
  in.next_read_buffer();
  in.commit(100);
  in.parse_pos = 40;
  uv_buf_t b = in.next_read_buffer();
  EXPECT_EQ(b.base, in.block->data + 100);
  EXPECT_EQ(b.len, IoBlock::kSmallCapacity - 100);
  EXPECT_EQ(in.unconsumed(), 60u);
  in.release();
}

TEST(InputBuffer, AReadThatFillsASmallBlockMovesOnToLargeBlocks) {
  InputBuffer in;
  in.next_read_buffer();
  in.commit(IoBlock::kSmallCapacity);  // the read took all it was offered
  std::memcpy(in.block->data + IoBlock::kSmallCapacity - 4, "head", 4);
  in.parse_pos = IoBlock::kSmallCapacity - 4;
  uv_buf_t b = in.next_read_buffer();
  EXPECT_EQ(in.block->capacity, IoBlock::kCapacity);
  EXPECT_EQ(std::memcmp(in.block->data, "head", 4), 0);  // the unparsed tail came along
  EXPECT_EQ(b.base, in.block->data + 4);
  EXPECT_EQ(b.len, IoBlock::kCapacity - 4);
  // Drained but still streaming: the next block is large too.
  in.parse_pos = in.fill = IoBlock::kCapacity;
  block_ref(in.block);  // a write still points into it
  IoBlock* old = in.block;
  uv_buf_t c = in.next_read_buffer();
  EXPECT_NE(in.block, old);
  EXPECT_EQ(c.len, IoBlock::kCapacity);
  block_unref(old);
  // Once released (the connection went idle), reads start small again.
  in.release();
  EXPECT_EQ(in.next_read_buffer().len, IoBlock::kSmallCapacity);
  in.commit(1);
  EXPECT_EQ(in.block->capacity, IoBlock::kSmallCapacity);
  in.release();
}

TEST(InputBuffer, ABodyParsedReadByReadStillReadsLargeBlocks) {
  // A request body streaming in: each read is parsed (and forwarded) before the next, so the
  // connection lets its block go after every read. A read that filled its offer still means
  // more is queued: the next read gets a large block, not the 4 KiB landing block.
  InputBuffer in;
  EXPECT_EQ(in.next_read_buffer().len, IoBlock::kSmallCapacity);
  in.commit(IoBlock::kSmallCapacity);
  in.parse_pos = in.fill;
  in.release_if_drained();
  EXPECT_EQ(in.block, nullptr);
  for (int i = 0; i < 3; ++i) {
    uv_buf_t b = in.next_read_buffer();
    ASSERT_EQ(b.len, IoBlock::kCapacity) << "read " << i;
    in.commit(b.len);
    in.parse_pos = in.fill;
    in.release_if_drained();
    EXPECT_EQ(in.block, nullptr);
  }
  // The body's last read did not fill its offer: the connection goes back to small reads.
  uv_buf_t last = in.next_read_buffer();
  in.commit(last.len / 2);
  in.parse_pos = in.fill;
  in.release_if_drained();
  EXPECT_EQ(in.next_read_buffer().len, IoBlock::kSmallCapacity);
  in.release();
}

TEST(InputBuffer, AShortReadStaysInTheSmallBlock) {
  InputBuffer in;
  in.next_read_buffer();
  in.commit(200);  // a partial request head: the read did not fill the buffer
  uv_buf_t b = in.next_read_buffer();
  EXPECT_EQ(in.block->capacity, IoBlock::kSmallCapacity);
  EXPECT_EQ(b.base, in.block->data + 200);
  in.release();
}

TEST(InputBuffer, MovesAPendingTailToAFreshBlockWhenFull) {
  InputBuffer in;
  in.streaming = true;
  in.next_read_buffer();
  in.commit(1);
  IoBlock* old = in.block;
  ASSERT_EQ(old->capacity, IoBlock::kCapacity);
  block_ref(old);  // a write still points into it
  std::memcpy(old->data + IoBlock::kCapacity - 10, "0123456789", 10);
  in.fill = IoBlock::kCapacity;
  in.parse_pos = IoBlock::kCapacity - 10;
  uv_buf_t b = in.next_read_buffer();
  ASSERT_NE(in.block, old);
  EXPECT_EQ(std::memcmp(in.block->data, "0123456789", 10), 0);
  EXPECT_EQ(in.unconsumed(), 10u);
  EXPECT_EQ(b.base, in.block->data + 10);
  EXPECT_EQ(old->refs, 1u);  // only the "write" holds it now
  block_unref(old);
  in.release();
}

TEST(InputBuffer, RefusesToReadWhenUnparsedBytesFillTheBlock) {
  InputBuffer in;
  in.streaming = true;
  in.next_read_buffer();
  in.commit(1);
  ASSERT_EQ(in.block->capacity, IoBlock::kCapacity);
  in.fill = IoBlock::kCapacity;
  in.parse_pos = 1;
  uv_buf_t b = in.next_read_buffer();
  EXPECT_EQ(b.len, 0u);
  in.release();
}

TEST(IoBlock, FreeListRecyclesBlocks) {
  IoBlock* a = block_acquire();
  block_unref(a);
  IoBlock* b = block_acquire();
  EXPECT_EQ(a, b);
  EXPECT_EQ(b->refs, 1u);
  block_unref(b);
}

TEST(IoBlock, SmallAndLargeBlocksKeepTheirSizesThroughTheFreeLists) {
  IoBlock* small = block_acquire_small();
  IoBlock* large = block_acquire();
  EXPECT_EQ(small->capacity, IoBlock::kSmallCapacity);
  EXPECT_EQ(large->capacity, IoBlock::kCapacity);
  block_unref(small);
  block_unref(large);
  EXPECT_EQ(block_acquire(), large);
  EXPECT_EQ(block_acquire_small(), small);
  block_unref(small);
  block_unref(large);
}

// Records what a batch would write (a filter takes the bytes at once, as TLS does).
class Recorder : public WriteFilter {
 public:
  int write(const uv_buf_t* bufs, int count) override {
    calls.push_back(count);
    for (int i = 0; i < count; ++i) bytes.append(bufs[i].base, bufs[i].len);
    return 0;
  }
  std::vector<int> calls;
  std::string bytes;
};

TEST(OutBatch, TinyChunksAreCopiedTogetherIntoFewBuffers) {
  Recorder rec;
  OutBatch out(nullptr, nullptr);
  out.set_filter(&rec);
  IoBlock* block = block_acquire();
  std::memset(block->data, 'x', 16);
  std::string expected;
  for (int i = 0; i < 2000; ++i) {
    out.add_chunk(block, block->data + (i % 16), 1);
    expected += "1\r\nx\r\n";
  }
  // One request, the stage blocks it points into, never the block the bytes were read into.
  EXPECT_LT(out.memory(), kWriteRequestMemory + 2 * (IoBlock::kCapacity + 256));
  EXPECT_EQ(block->refs, 1u);
  EXPECT_EQ(out.flush(), 0);
  EXPECT_EQ(rec.bytes, expected);
  ASSERT_EQ(rec.calls.size(), 1u);
  EXPECT_LE(rec.calls[0], 2);  // a small stage, then a large one
  EXPECT_EQ(out.memory(), 0u);
  block_unref(block);
}

TEST(OutBatch, MemoryCountsABlockOnceAtItsFullSize) {
  Recorder rec;
  OutBatch out(nullptr, nullptr);
  out.set_filter(&rec);
  IoBlock* block = block_acquire();
  std::memset(block->data, 'y', 4096);
  out.add(block, block->data, 1000);
  out.add_static("--");
  out.add(block, block->data + 1000, 3000);
  EXPECT_EQ(out.memory(), kWriteRequestMemory + block->memory());
  EXPECT_EQ(out.flush(), 0);
  EXPECT_EQ(rec.bytes, std::string(1000, 'y') + "--" + std::string(3000, 'y'));
  EXPECT_EQ(out.memory(), 0u);
  EXPECT_EQ(block->refs, 1u);
  block_unref(block);
}

TEST(OutBatch, CopiesAreChunkedInPiecesThatFitABlock) {
  Recorder rec;
  OutBatch out(nullptr, nullptr);
  out.set_filter(&rec);
  std::string big(100000, 'z');
  out.add_copy(big.data(), big.size(), true);
  out.add_last_chunk();
  EXPECT_EQ(out.flush(), 0);
  // Decode the chunks back.
  std::string body;
  size_t pos = 0;
  while (true) {
    size_t eol = rec.bytes.find("\r\n", pos);
    ASSERT_NE(eol, std::string::npos);
    size_t size = std::stoul(rec.bytes.substr(pos, eol - pos), nullptr, 16);
    pos = eol + 2;
    if (size == 0) break;
    body += rec.bytes.substr(pos, size);
    ASSERT_EQ(rec.bytes.substr(pos + size, 2), "\r\n");
    pos += size + 2;
  }
  EXPECT_EQ(body, big);
  EXPECT_EQ(out.memory(), 0u);
}

TEST(OutBatch, ABlockSharedByWritesCountsUntilTheLastOfThemCompletes) {
  OutBatch a(nullptr, nullptr);
  OutBatch b(nullptr, nullptr);
  IoBlock* block = block_acquire();
  // Two writes of one batch: counted once, until the later one completes.
  WriteRequest* w1 = write_request_new(&a);
  block_ref(block);
  write_request_adopt(w1, block);
  WriteRequest* w2 = write_request_new(&a);
  block_ref(block);
  write_request_adopt(w2, block);
  EXPECT_EQ(a.memory(), 2 * kWriteRequestMemory + block->memory());
  write_request_finish(&w1->req);
  EXPECT_EQ(a.memory(), kWriteRequestMemory + block->memory());
  // A write of another batch (a pipelined body to the next server): counted there too.
  WriteRequest* w3 = write_request_new(&b);
  block_ref(block);
  write_request_adopt(w3, block);
  EXPECT_EQ(b.memory(), kWriteRequestMemory + block->memory());
  write_request_finish(&w2->req);
  EXPECT_EQ(a.memory(), 0u);
  EXPECT_EQ(b.memory(), kWriteRequestMemory + block->memory());
  write_request_finish(&w3->req);
  EXPECT_EQ(b.memory(), 0u);
  EXPECT_EQ(block->refs, 1u);
  block_unref(block);
}

TEST(OutBatch, PinnedBytesAreWrittenInPlaceAndCountedAtTheirLength) {
  Recorder rec;
  OutBatch out(nullptr, nullptr);
  out.set_filter(&rec);
  auto body = std::make_shared<const std::string>(300000, 'p');
  out.add_static("head\r\n\r\n");
  out.add_pinned(body, body->data(), body->size());
  EXPECT_EQ(body.use_count(), 2);  // the write request holds it
  EXPECT_EQ(out.memory(), kWriteRequestMemory + body->size());
  EXPECT_EQ(out.flush(), 0);
  EXPECT_EQ(rec.bytes, "head\r\n\r\n" + *body);
  ASSERT_EQ(rec.calls.size(), 1u);
  EXPECT_EQ(rec.calls[0], 2);  // the head and the body: no copy, no split
  EXPECT_EQ(body.use_count(), 1);
  EXPECT_EQ(out.memory(), 0u);
}

TEST(OutBatch, ShortPinnedPiecesAreCopiedAndHoldNoReference) {
  Recorder rec;
  OutBatch out(nullptr, nullptr);
  out.set_filter(&rec);
  auto body = std::make_shared<const std::string>(100, 'q');
  out.add_pinned(body, body->data(), body->size());
  EXPECT_EQ(body.use_count(), 1);
  EXPECT_EQ(out.flush(), 0);
  EXPECT_EQ(rec.bytes, *body);
}

TEST(OutBatch, ManyPinnedObjectsSpreadOverWriteRequests) {
  Recorder rec;
  OutBatch out(nullptr, nullptr);
  out.set_filter(&rec);
  std::vector<std::shared_ptr<const std::string>> bodies;
  std::string expected;
  for (int i = 0; i < 5; ++i) {
    bodies.push_back(std::make_shared<const std::string>(1000, static_cast<char>('a' + i)));
    out.add_pinned(bodies.back(), bodies.back()->data(), bodies.back()->size());
    expected += *bodies.back();
  }
  EXPECT_EQ(out.flush(), 0);
  EXPECT_EQ(rec.bytes, expected);
  EXPECT_EQ(rec.calls.size(), 3u);  // WriteRequest::kMaxPins objects per request
  for (const auto& b : bodies) EXPECT_EQ(b.use_count(), 1);
}

// A real stream whose reader lags: the pinned object stays referenced (and counted) until the
// queued write completes, and what arrives is the object's bytes.
TEST(OutBatch, APinnedObjectIsHeldUntilAQueuedWriteCompletes) {
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  uv_file fds[2];
  ASSERT_EQ(uv_pipe(fds, UV_NONBLOCK_PIPE, 0), 0);
  uv_pipe_t writer;
  ASSERT_EQ(uv_pipe_init(&loop, &writer, 0), 0);
  ASSERT_EQ(uv_pipe_open(&writer, fds[1]), 0);
  struct State {
    OutBatch* out;
    int done = 0;
  } state;
  OutBatch out(reinterpret_cast<uv_stream_t*>(&writer), [](uv_write_t* req, int status) {
    auto* st = static_cast<State*>(req->handle->data);
    write_request_finish(req);
    st->out->write_done();
    EXPECT_EQ(status, 0);
    ++st->done;
  });
  state.out = &out;
  writer.data = &state;
  auto body = std::make_shared<const std::string>(1 << 20, 'r');
  out.add_pinned(body, body->data(), body->size());
  ASSERT_EQ(out.flush(), 0);
  ASSERT_EQ(out.in_flight(), 1);  // a pipe takes far less than 1 MiB at once
  EXPECT_EQ(body.use_count(), 2);
  EXPECT_GE(out.memory(), body->size() / 2);
  std::string got;
  char buf[65536];
  for (int rounds = 0; rounds < 10000 && got.size() < body->size(); ++rounds) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    uv_run(&loop, UV_RUN_NOWAIT);
  }
  for (int rounds = 0; rounds < 100 && state.done == 0; ++rounds) uv_run(&loop, UV_RUN_NOWAIT);
  EXPECT_EQ(state.done, 1);
  EXPECT_EQ(got, *body);
  EXPECT_EQ(body.use_count(), 1);
  EXPECT_EQ(out.memory(), 0u);
  uv_close(reinterpret_cast<uv_handle_t*>(&writer), nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  close(fds[0]);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

}  // namespace
}  // namespace harrow

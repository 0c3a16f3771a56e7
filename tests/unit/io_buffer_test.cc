#include "core/io_buffer.h"

#include <gtest/gtest.h>

#include <cstring>

namespace harrow {
namespace {

TEST(InputBuffer, ReusesTheBlockWhenEverythingWasParsed) {
  InputBuffer in;
  uv_buf_t a = in.next_read_buffer();
  ASSERT_NE(a.base, nullptr);
  EXPECT_EQ(a.len, IoBlock::kCapacity);
  in.fill = 100;
  in.parse_pos = 100;
  uv_buf_t b = in.next_read_buffer();
  EXPECT_EQ(b.base, a.base);  // nothing points into it: start over at the front
  in.release();
}

TEST(InputBuffer, AppendsAfterUnparsedBytes) {
  InputBuffer in;
  in.next_read_buffer();
  in.fill = 100;
  in.parse_pos = 40;
  uv_buf_t b = in.next_read_buffer();
  EXPECT_EQ(b.base, in.block->data + 100);
  EXPECT_EQ(in.unconsumed(), 60u);
  in.release();
}

TEST(InputBuffer, MovesAPendingTailToAFreshBlockWhenFull) {
  InputBuffer in;
  in.next_read_buffer();
  IoBlock* old = in.block;
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
  in.next_read_buffer();
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

}  // namespace
}  // namespace harrow

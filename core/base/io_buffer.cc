#include "core/base/io_buffer.h"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace harrow {
namespace {

// Free lists are per thread: a block or write request is only ever touched by the worker
// that acquired it, so recycling needs no lock. Each list is capped so a burst does not pin
// memory for the life of the process, and io_pools_trim() gives back what sat unused.
constexpr size_t kMaxFreeBlocks = 512;        // 32 MiB
constexpr size_t kMaxFreeSmallBlocks = 1024;  // 4 MiB
constexpr size_t kMaxFreeWrites = 4096;

// A free list and the fewest entries it held since the last trim.
template <typename T>
struct FreeList {
  std::vector<T*> items;
  size_t low = 0;
  T* pop() {
    T* item = items.back();
    items.pop_back();
    if (items.size() < low) low = items.size();
    return item;
  }
};

struct ThreadPools {
  FreeList<IoBlock> blocks;
  FreeList<IoBlock> small_blocks;
  FreeList<WriteRequest> writes;
  // The small block reads of block-less (idle) connections land in; a read that brings bytes
  // hands it to its connection (see InputBuffer::commit).
  IoBlock* landing = nullptr;
  // The same for a block-less connection with a body streaming in (its last read filled all it
  // was offered): a large block, so it still holds nothing until the bytes are there.
  IoBlock* landing_large = nullptr;
  size_t freed = 0;     // bytes given back to the allocator since the last trim
  bool missed = false;  // a free list was empty (malloc) since the last trim
  ~ThreadPools() { release(); }
  void release() {
    std::free(landing);
    landing = nullptr;
    std::free(landing_large);
    landing_large = nullptr;
    for (IoBlock* b : blocks.items) std::free(b);
    for (IoBlock* b : small_blocks.items) std::free(b);
    for (WriteRequest* w : writes.items) delete w;
    blocks.items.clear();
    small_blocks.items.clear();
    writes.items.clear();
  }
};

thread_local ThreadPools pools;

IoBlock* block_from(FreeList<IoBlock>& free_list, uint32_t capacity) {
  IoBlock* b;
  if (!free_list.items.empty()) {
    b = free_list.pop();
  } else {
    pools.missed = true;
    b = static_cast<IoBlock*>(std::malloc(sizeof(IoBlock) + capacity));
    if (b == nullptr) throw std::bad_alloc();
    b->capacity = capacity;
    b->data = reinterpret_cast<char*>(b + 1);
  }
  b->refs = 1;
  b->charged_by = nullptr;
  return b;
}

WriteRequest* write_request_acquire(OutBatch* owner) {
  WriteRequest* w;
  if (!pools.writes.items.empty()) {
    w = pools.writes.pop();
  } else {
    pools.missed = true;
    w = new WriteRequest;
  }
  w->owner = owner;
  w->block_count = 0;
  w->charged = 0;
  w->pin_count = 0;
  w->pinned_bytes = 0;
  w->scratch_used = 0;
  return w;
}

template <typename T, typename Free>
void trim_list(FreeList<T>& list, size_t each, Free free_one) {
  size_t n = std::min(list.low, list.items.size());
  list.low = list.items.size() - n;
  if (n == 0) return;
  for (size_t i = 0; i < n; ++i) free_one(list.items[i]);
  list.items.erase(list.items.begin(), list.items.begin() + static_cast<std::ptrdiff_t>(n));
  list.items.shrink_to_fit();
  list.low = list.items.size();
  pools.freed += n * each;
}

// The chunk-size line of a staged piece (below 64 KiB: at most four hex digits).
size_t put_chunk_line(char* p, size_t len) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t n = 0;
  for (int shift = 12; shift > 0; shift -= 4) {
    if (len >> shift != 0) p[n++] = kHex[(len >> shift) & 0xF];
  }
  p[n++] = kHex[len & 0xF];
  p[n++] = '\r';
  p[n++] = '\n';
  return n;
}

}  // namespace

void write_request_release(WriteRequest* w) {
  for (int i = 0; i < w->block_count; ++i) {
    IoBlock* b = w->blocks[i];
    if ((w->charged & (1u << i)) != 0) w->owner->memory_ -= b->memory();
    if (b->charged_by == w) b->charged_by = nullptr;
    block_unref(b);
  }
  w->block_count = 0;
  w->charged = 0;
  for (int i = 0; i < w->pin_count; ++i) w->pins[i].reset();
  w->pin_count = 0;
  if (w->owner != nullptr) w->owner->memory_ -= kWriteRequestMemory + w->pinned_bytes;
  w->pinned_bytes = 0;
  w->owner = nullptr;
  if (pools.writes.items.size() < kMaxFreeWrites) {
    pools.writes.items.push_back(w);
  } else {
    delete w;
    pools.freed += sizeof(WriteRequest);
  }
}

void write_request_adopt(WriteRequest* w, IoBlock* block) {
  int i = w->block_count++;
  w->blocks[i] = block;
  if (w->owner == nullptr) return;
  WriteRequest* prev = block->charged_by;
  if (prev != nullptr && prev->owner == w->owner) {
    // An earlier write of this batch counts it: the count moves to this one, which completes
    // last (a stream's writes complete in order), so the block is counted until it is free.
    for (int j = 0; j < prev->block_count; ++j) {
      if (prev->blocks[j] == block) prev->charged &= ~(1u << j);
    }
  } else {
    // Not counted here yet. (A write of another batch may point into it too, when a
    // connection's input block outlives the server connection it was forwarded to: each
    // batch then counts it, and each request lets go of its own count.)
    w->owner->memory_ += block->memory();
  }
  w->charged |= 1u << i;
  if (prev == nullptr || prev->owner == w->owner) block->charged_by = w;
}

IoBlock* block_acquire() {
  return block_from(pools.blocks, IoBlock::kCapacity);
}

IoBlock* block_acquire_small() {
  return block_from(pools.small_blocks, IoBlock::kSmallCapacity);
}

void block_ref(IoBlock* block) {
  ++block->refs;
}

void block_unref(IoBlock* block) {
  assert(block->refs > 0);
  if (--block->refs != 0) return;
  bool small = block->capacity == IoBlock::kSmallCapacity;
  std::vector<IoBlock*>& free_list = small ? pools.small_blocks.items : pools.blocks.items;
  if (free_list.size() < (small ? kMaxFreeSmallBlocks : kMaxFreeBlocks)) {
    free_list.push_back(block);
  } else {
    pools.freed += block->memory();
    std::free(block);
  }
}

void io_pools_release_thread() {
  pools.release();
}

bool io_pools_empty() {
  return pools.blocks.items.empty() && pools.small_blocks.items.empty() &&
         pools.writes.items.empty() && pools.freed == 0;
}

size_t io_pools_trim(bool& busy) {
  trim_list(pools.blocks, sizeof(IoBlock) + IoBlock::kCapacity, [](IoBlock* b) { std::free(b); });
  trim_list(pools.small_blocks, sizeof(IoBlock) + IoBlock::kSmallCapacity,
            [](IoBlock* b) { std::free(b); });
  trim_list(pools.writes, sizeof(WriteRequest), [](WriteRequest* w) { delete w; });
  busy = pools.missed;
  pools.missed = false;
  size_t freed = pools.freed;
  pools.freed = 0;
  return freed;
}

uv_buf_t InputBuffer::next_read_buffer() {
  if (block != nullptr) {
    // The last read took every byte it was offered: more is queued behind it (a body is
    // streaming in), so it goes on in large blocks.
    if (fill == offered_end) streaming = true;
    if (parse_pos == fill && block->refs == 1) {
      // Nothing else points into it: start over at the front.
      parse_pos = fill = 0;
    }
    bool small = block->capacity == IoBlock::kSmallCapacity;
    uint32_t min_read = small ? kSmallMinRead : kMinRead;
    if (!(small && streaming) && block->capacity - fill >= min_read) {
      return offer(fill);
    }
    uint32_t pending = fill - parse_pos;
    if (pending != 0) {
      if (!small && pending > block->capacity - kMinRead) {
        // Unconsumed bytes fill the block: the caller stops reading until the parser resumes.
        return uv_buf_init(nullptr, 0);
      }
      // Move the unconsumed tail to a fresh large block; writes in flight may still point into
      // the old one, so it cannot be compacted in place.
      IoBlock* next = block_acquire();
      std::memcpy(next->data, block->data + parse_pos, pending);
      block_unref(block);
      block = next;
      parse_pos = 0;
      fill = pending;
      return offer(fill);
    }
    block_unref(block);
  }
  parse_pos = fill = 0;
  // Nothing is lent until bytes arrive: see commit().
  block = nullptr;
  IoBlock*& landing = streaming ? pools.landing_large : pools.landing;
  if (landing == nullptr) landing = streaming ? block_acquire() : block_acquire_small();
  offered_end = landing->capacity;
  return uv_buf_init(landing->data, landing->capacity);
}

void InputBuffer::commit(size_t nread) {
  if (block == nullptr) {
    // The read went to a landing block (next_read_buffer chose it by `streaming`, which nothing
    // changes in between): it is this connection's now.
    IoBlock*& landing = streaming ? pools.landing_large : pools.landing;
    block = landing;
    landing = nullptr;
    parse_pos = fill = 0;
  }
  fill += static_cast<uint32_t>(nread);
}

uv_buf_t InputBuffer::offer(uint32_t from) {
  offered_end = block->capacity;
  return uv_buf_init(block->data + from, block->capacity - from);
}

void InputBuffer::release_if_drained() {
  if (block == nullptr || parse_pos != fill) return;
  bool more_queued = fill == offered_end;
  release();
  streaming = more_queued;
}

void InputBuffer::release() {
  if (block != nullptr) block_unref(block);
  block = nullptr;
  parse_pos = fill = offered_end = 0;
  streaming = false;
}

WriteRequest* write_request_new(OutBatch* owner) {
  if (owner != nullptr) owner->memory_ += kWriteRequestMemory;
  return write_request_acquire(owner);
}

void write_request_finish(uv_write_t* req) {
  write_request_release(reinterpret_cast<WriteRequest*>(req));
}

void OutBatch::hold(IoBlock* block) {
  for (int i = 0; i < req_->block_count; ++i) {
    if (req_->blocks[i] == block) return;
  }
  block_ref(block);
  write_request_adopt(req_, block);
}

void OutBatch::make_room(int bufs, int scratch, IoBlock* block) {
  if (req_ != nullptr) {
    bool block_fits = block == nullptr || req_->block_count < WriteRequest::kMaxBlocks;
    if (!block_fits) {
      for (int i = 0; i < req_->block_count; ++i) {
        if (req_->blocks[i] == block) block_fits = true;
      }
    }
    if (count_ + bufs <= WriteRequest::kMaxBufs &&
        req_->scratch_used + scratch <= WriteRequest::kScratch && block_fits) {
      return;
    }
    flush_request();
  }
  req_ = write_request_new(this);
}

void OutBatch::add(IoBlock* block, const char* data, size_t len) {
  if (len == 0) return;
  if (len < kCopyBelow) {
    stage(data, len, false);
    return;
  }
  make_room(1, 0, block);
  hold(block);
  req_->bufs[count_++] = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
  total_bytes_ += len;
}

void OutBatch::add_pinned(std::shared_ptr<const void> owner, const char* data, size_t len) {
  if (len == 0) return;
  if (len < kCopyBelow) {
    stage(data, len, false);
    return;
  }
  // One buffer entry of at most 4 GiB per piece (uv_buf_t's length).
  constexpr size_t kMaxPiece = size_t{1} << 30;
  while (len > 0) {
    size_t n = std::min(len, kMaxPiece);
    bool held = false;
    if (req_ != nullptr) {
      for (int i = 0; i < req_->pin_count; ++i) held = held || req_->pins[i] == owner;
    }
    if (req_ == nullptr || count_ + 1 > WriteRequest::kMaxBufs ||
        (!held && req_->pin_count == WriteRequest::kMaxPins)) {
      flush_request();
      req_ = write_request_new(this);
      held = false;
    }
    if (!held) {
      req_->pins[req_->pin_count++] = owner;
    }
    req_->pinned_bytes += static_cast<uint32_t>(n);
    memory_ += static_cast<uint32_t>(n);
    req_->bufs[count_++] = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(n));
    total_bytes_ += n;
    data += n;
    len -= n;
  }
}

void OutBatch::add_static(std::string_view text) {
  make_room(1, 0, nullptr);
  req_->bufs[count_++] =
      uv_buf_init(const_cast<char*>(text.data()), static_cast<unsigned>(text.size()));
  total_bytes_ += text.size();
}

void OutBatch::add_chunk(IoBlock* block, const char* data, size_t len) {
  if (len == 0) return;  // a zero-size chunk would end the body
  if (len < kCopyBelow) {
    stage(data, len, true);
    return;
  }
  constexpr int kLineMax = 20;
  make_room(3, kLineMax, block);
  hold(block);
  char* line = req_->scratch + req_->scratch_used;
  int n = std::snprintf(line, kLineMax, "%zx\r\n", len);
  req_->scratch_used += n;
  req_->bufs[count_++] = uv_buf_init(line, static_cast<unsigned>(n));
  req_->bufs[count_++] = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
  req_->bufs[count_++] = uv_buf_init(const_cast<char*>("\r\n"), 2);
  total_bytes_ += static_cast<uint64_t>(n) + len + 2;
}

void OutBatch::add_copy(const char* data, size_t len, bool chunked) {
  // In pieces that fit a staging block, each its own chunk.
  constexpr size_t kPiece = IoBlock::kCapacity / 2;
  while (len > 0) {
    size_t n = std::min(len, kPiece);
    stage(data, n, chunked);
    data += n;
    len -= n;
  }
}

void OutBatch::stage(const char* data, size_t len, bool chunked) {
  constexpr size_t kFraming = 8;  // "fff\r\n" and "\r\n" around a staged chunk
  size_t need = len + (chunked ? kFraming : 0);
  // Nothing points into the stage any more (its writes are done): start over at the front.
  if (stage_ != nullptr && stage_->refs == 1) stage_fill_ = 0;
  if (stage_ == nullptr || stage_->capacity - stage_fill_ < need) {
    // The first stage of a burst is small; one that fills up is followed by large ones.
    IoBlock* next = stage_ == nullptr && need <= IoBlock::kSmallCapacity ? block_acquire_small()
                                                                         : block_acquire();
    drop_stage();
    stage_ = next;
  }
  char* start = stage_->data + stage_fill_;
  char* p = start;
  if (chunked) p += put_chunk_line(p, len);
  std::memcpy(p, data, len);
  p += len;
  if (chunked) {
    *p++ = '\r';
    *p++ = '\n';
  }
  auto n = static_cast<unsigned>(p - start);
  stage_fill_ += n;
  total_bytes_ += n;
  if (req_ != nullptr && count_ > 0) {
    uv_buf_t& last = req_->bufs[count_ - 1];
    if (last.base + last.len == start) {  // right behind the previous staged piece
      last.len += n;
      return;
    }
  }
  make_room(1, 0, stage_);
  hold(stage_);
  req_->bufs[count_++] = uv_buf_init(start, n);
}

void OutBatch::drop_stage() {
  if (stage_ != nullptr) block_unref(stage_);
  stage_ = nullptr;
  stage_fill_ = 0;
}

int OutBatch::flush() {
  int rc = flush_request();
  // With nothing left pointing into the stage, an idle connection keeps no block.
  if (stage_ != nullptr && stage_->refs == 1) drop_stage();
  return rc;
}

int OutBatch::flush_request() {
  if (req_ == nullptr) return 0;
  if (count_ == 0) {
    write_request_release(req_);
    req_ = nullptr;
    return 0;
  }
  WriteRequest* w = req_;
  req_ = nullptr;
  uv_buf_t* bufs = w->bufs;
  int n = count_;
  count_ = 0;
  if (filter_ != nullptr) {
    // The filter has copied (encrypted) the bytes: what they lived in can go now.
    int rc = filter_->write(bufs, n);
    write_request_release(w);
    if (rc != 0) last_error_ = rc;
    return rc;
  }
  // Try the write now: when the socket takes it all (the common case) there is no write
  // request, no completion callback and — with libuv 1.44 — no epoll_ctl to drop the POLLOUT
  // interest afterwards, two system calls fewer per response.
  int written = uv_try_write(stream_, bufs, static_cast<unsigned>(n));
  if (written > 0) {
    size_t left = static_cast<size_t>(written);
    int first = 0;
    while (first < n && left >= bufs[first].len) {
      left -= bufs[first].len;
      ++first;
    }
    if (first == n) {
      write_request_release(w);
      return 0;
    }
    bufs[first].base += left;
    bufs[first].len -= static_cast<unsigned>(left);
    for (int i = first; i < n; ++i) bufs[i - first] = bufs[i];
    n -= first;
  }
  // Otherwise (EAGAIN, a partial write, or an error uv_write will report) queue the rest.
  int rc = uv_write(&w->req, stream_, bufs, static_cast<unsigned>(n), cb_);
  if (rc != 0) {
    last_error_ = rc;
    write_request_release(w);
    return rc;
  }
  ++in_flight_;
  return 0;
}

void OutBatch::clear() {
  if (req_ != nullptr) write_request_release(req_);
  req_ = nullptr;
  count_ = 0;
  drop_stage();
}

}  // namespace harrow

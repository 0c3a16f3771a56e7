#include "core/io_buffer.h"

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
// memory for the life of the process.
constexpr size_t kMaxFreeBlocks = 512;  // 32 MiB
constexpr size_t kMaxFreeWrites = 4096;

struct ThreadPools {
  std::vector<IoBlock*> blocks;
  std::vector<WriteRequest*> writes;
  ~ThreadPools() { release(); }
  void release() {
    for (IoBlock* b : blocks) std::free(b);
    for (WriteRequest* w : writes) delete w;
    blocks.clear();
    writes.clear();
  }
};

thread_local ThreadPools pools;

WriteRequest* write_request_acquire() {
  WriteRequest* w;
  if (!pools.writes.empty()) {
    w = pools.writes.back();
    pools.writes.pop_back();
  } else {
    w = new WriteRequest;
  }
  w->block_count = 0;
  w->scratch_used = 0;
  return w;
}

void write_request_release(WriteRequest* w) {
  for (int i = 0; i < w->block_count; ++i) block_unref(w->blocks[i]);
  w->block_count = 0;
  if (pools.writes.size() < kMaxFreeWrites) {
    pools.writes.push_back(w);
  } else {
    delete w;
  }
}

}  // namespace

IoBlock* block_acquire() {
  IoBlock* b;
  if (!pools.blocks.empty()) {
    b = pools.blocks.back();
    pools.blocks.pop_back();
  } else {
    b = static_cast<IoBlock*>(std::malloc(sizeof(IoBlock)));
    if (b == nullptr) throw std::bad_alloc();
    b->capacity = IoBlock::kCapacity;
  }
  b->refs = 1;
  return b;
}

void block_ref(IoBlock* block) {
  ++block->refs;
}

void block_unref(IoBlock* block) {
  assert(block->refs > 0);
  if (--block->refs != 0) return;
  if (pools.blocks.size() < kMaxFreeBlocks) {
    pools.blocks.push_back(block);
  } else {
    std::free(block);
  }
}

void io_pools_release_thread() {
  pools.release();
}

uv_buf_t InputBuffer::next_read_buffer() {
  if (block != nullptr) {
    if (parse_pos == fill && block->refs == 1) {
      // Nothing else points into it: start over at the front.
      parse_pos = fill = 0;
    }
    if (block->capacity - fill >= kMinRead) {
      return uv_buf_init(block->data + fill, block->capacity - fill);
    }
    uint32_t pending = fill - parse_pos;
    if (pending != 0) {
      if (pending > block->capacity - kMinRead) {
        // Unconsumed bytes fill the block: the caller stops reading until the parser resumes.
        return uv_buf_init(nullptr, 0);
      }
      // Move the unconsumed tail to a fresh block; writes in flight may still point into the
      // old one, so it cannot be compacted in place.
      IoBlock* next = block_acquire();
      std::memcpy(next->data, block->data + parse_pos, pending);
      block_unref(block);
      block = next;
      parse_pos = 0;
      fill = pending;
      return uv_buf_init(block->data + fill, block->capacity - fill);
    }
    block_unref(block);
  }
  block = block_acquire();
  parse_pos = fill = 0;
  return uv_buf_init(block->data, block->capacity);
}

void InputBuffer::release_if_drained() {
  if (block != nullptr && parse_pos == fill) release();
}

void InputBuffer::release() {
  if (block != nullptr) block_unref(block);
  block = nullptr;
  parse_pos = fill = 0;
}

WriteRequest* write_request_new() {
  return write_request_acquire();
}

void write_request_finish(uv_write_t* req) {
  write_request_release(reinterpret_cast<WriteRequest*>(req));
}

void OutBatch::hold(IoBlock* block) {
  for (int i = 0; i < req_->block_count; ++i) {
    if (req_->blocks[i] == block) return;
  }
  block_ref(block);
  req_->blocks[req_->block_count++] = block;
}

void OutBatch::make_room(int bufs, int scratch, IoBlock* block) {
  if (req_ != nullptr) {
    bool block_fits = block == nullptr || req_->block_count < WriteRequest::kMaxBlocks;
    if (!block_fits) {
      for (int i = 0; i < req_->block_count; ++i) {
        if (req_->blocks[i] == block) block_fits = true;
      }
    }
    if (count_ + bufs <= kMaxBufs && req_->scratch_used + scratch <= WriteRequest::kScratch &&
        block_fits) {
      return;
    }
    flush();
  }
  req_ = write_request_acquire();
}

void OutBatch::add(IoBlock* block, const char* data, size_t len) {
  if (len == 0) return;
  make_room(1, 0, block);
  hold(block);
  bufs_[count_++] = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
  total_bytes_ += len;
}

void OutBatch::add_static(std::string_view text) {
  make_room(1, 0, nullptr);
  bufs_[count_++] = uv_buf_init(const_cast<char*>(text.data()), static_cast<unsigned>(text.size()));
  total_bytes_ += text.size();
}

void OutBatch::add_chunk(IoBlock* block, const char* data, size_t len) {
  if (len == 0) return;  // a zero-size chunk would end the body
  constexpr int kLineMax = 20;
  make_room(3, kLineMax, block);
  hold(block);
  char* line = req_->scratch + req_->scratch_used;
  int n = std::snprintf(line, kLineMax, "%zx\r\n", len);
  req_->scratch_used += n;
  bufs_[count_++] = uv_buf_init(line, static_cast<unsigned>(n));
  bufs_[count_++] = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
  bufs_[count_++] = uv_buf_init(const_cast<char*>("\r\n"), 2);
  total_bytes_ += static_cast<uint64_t>(n) + len + 2;
}

int OutBatch::flush() {
  if (req_ == nullptr) return 0;
  if (count_ == 0) {
    write_request_release(req_);
    req_ = nullptr;
    return 0;
  }
  WriteRequest* w = req_;
  req_ = nullptr;
  int n = count_;
  count_ = 0;
  if (filter_ != nullptr) {
    // The filter has copied (encrypted) the bytes: what they lived in can go now.
    int rc = filter_->write(bufs_, n);
    write_request_release(w);
    if (rc != 0) last_error_ = rc;
    return rc;
  }
  // Try the write now: when the socket takes it all (the common case) there is no write
  // request, no completion callback and — with libuv 1.44 — no epoll_ctl to drop the POLLOUT
  // interest afterwards, two system calls fewer per response.
  int written = uv_try_write(stream_, bufs_, static_cast<unsigned>(n));
  if (written > 0) {
    size_t left = static_cast<size_t>(written);
    int first = 0;
    while (first < n && left >= bufs_[first].len) {
      left -= bufs_[first].len;
      ++first;
    }
    if (first == n) {
      write_request_release(w);
      return 0;
    }
    bufs_[first].base += left;
    bufs_[first].len -= static_cast<unsigned>(left);
    for (int i = first; i < n; ++i) bufs_[i - first] = bufs_[i];
    n -= first;
  }
  // Otherwise (EAGAIN, a partial write, or an error uv_write will report) queue the rest.
  int rc = uv_write(&w->req, stream_, bufs_, static_cast<unsigned>(n), cb_);
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
}

}  // namespace harrow

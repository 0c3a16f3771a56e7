// Reference-counted I/O blocks and batched writes. A read lands in a block; body bytes are
// forwarded to the other side as slices of that same block (no copy), and the block returns to
// the worker's free list when the last write that points into it completes. Blocks and write
// requests are recycled per thread, so the request path does not allocate once warm.
//
// Blocks come in two sizes. A connection's first read after it was idle lands in a small block
// (a request head, a small response); only a read that fills all it was offered — a body
// streaming in — moves the connection to large blocks, until it is drained again. So a
// connection trickling a head holds 4 KiB, not 64, and an idle one holds none: a connection
// without a block reads into the worker's landing block, and takes it over only when the read
// brings bytes (an EOF, a reset or a spurious wake-up on an idle connection allocates nothing,
// however many connections close at once).
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace harrow {

class OutBatch;
struct WriteRequest;

struct IoBlock {
  static constexpr uint32_t kCapacity = 64 * 1024;      // a large block
  static constexpr uint32_t kSmallCapacity = 4 * 1024;  // a small block
  uint32_t refs;
  uint32_t capacity;  // kCapacity or kSmallCapacity
  char* data;         // `capacity` bytes, allocated right after this header
  // The write request whose batch's memory() counts this block: the latest of that batch's
  // writes pointing into it (a batch counts a block once, however many of its writes share it,
  // until the last of them completes). Null when no write points into it.
  WriteRequest* charged_by;

  // What one block costs in memory, header and allocator overhead included.
  size_t memory() const { return sizeof(IoBlock) + capacity + 16; }
};

// A fresh large block with refs == 1, from this thread's free list.
IoBlock* block_acquire();
// A fresh small block with refs == 1, from this thread's free list.
IoBlock* block_acquire_small();
void block_ref(IoBlock* block);
// Drops one reference; the block goes back to this thread's free list at zero.
void block_unref(IoBlock* block);
// Frees this thread's free lists (call when a worker thread ends).
void io_pools_release_thread();
// Frees what this thread's free lists kept unused since the last call (the fewest entries a
// list held in that time), so memory taken in a burst goes back once the burst is over.
// Returns the bytes given back to the allocator since the last call (trimmed here, or freed
// because a list was full), and sets `busy` if the free lists ran dry (malloc) meanwhile.
size_t io_pools_trim(bool& busy);
// Whether this thread's free lists hold nothing and nothing was freed since the last trim: a
// trim now would have nothing to give back.
bool io_pools_empty();

// The read side of one connection: reads append to the free tail of the current block, the
// HTTP parser consumes from `parse_pos`. Bytes the parser has not consumed yet (a paused
// parser, pipelined requests) stay where they are until it resumes.
struct InputBuffer {
  IoBlock* block = nullptr;
  uint32_t parse_pos = 0;
  uint32_t fill = 0;
  uint32_t offered_end = 0;  // where the last buffer handed to a read ends in `block`
  bool streaming = false;    // a read filled all it was offered: read into large blocks

  static constexpr uint32_t kMinRead = 4096;       // smallest read offered in a large block
  static constexpr uint32_t kSmallMinRead = 1024;  // ... in a small block

  // For libuv's alloc callback. Returns an empty buffer when unconsumed bytes fill the block:
  // the owner must stop reading until the parser makes progress.
  uv_buf_t next_read_buffer();
  // For the read callback: `nread` > 0 bytes landed in the buffer next_read_buffer() gave.
  void commit(size_t nread);
  uint32_t unconsumed() const { return fill - parse_pos; }
  const char* parse_begin() const { return block->data + parse_pos; }
  // Lets go of the block when nothing in it is waiting to be parsed (idle connections hold none).
  // A read that filled all it was offered has more queued behind it, so the next read still goes
  // to a large block: a body streaming in is read 64 KiB at a time even when every read is parsed
  // (and its block let go) before the next.
  void release_if_drained();
  void release();

 private:
  // The free space of `block` from `from` on, as the next read's buffer.
  uv_buf_t offer(uint32_t from);
};

class OutBatch;

// Turns a batch's buffers into what goes on the wire (TLS encrypts them). It writes with
// write requests from write_request_new() and the batch's callback, and tells the batch of
// each write it started (OutBatch::write_started()).
class WriteFilter {
 public:
  virtual ~WriteFilter() = default;
  // `bufs` are valid only during the call. Returns 0 or a libuv error.
  virtual int write(const uv_buf_t* bufs, int count) = 0;
};

// One uv_write being collected or in flight: its buffers, the blocks they point into, and
// scratch space for the small strings (chunk-size lines) that frame them. Kept here rather than
// in OutBatch so an idle connection does not carry a buffer array.
struct WriteRequest {
  static constexpr int kMaxBlocks = 4;
  static constexpr int kMaxPins = 2;
  static constexpr int kMaxBufs = 64;
  static constexpr int kScratch = 256;
  uv_write_t req;
  OutBatch* owner;  // the batch whose memory() counts it (null: counted nowhere)
  IoBlock* blocks[kMaxBlocks];
  int block_count;
  unsigned charged;  // bit i: blocks[i] is counted in owner's memory() for this request
  // Immutable objects outside the blocks that bufs point into (a cached response's body),
  // kept alive until the write completes, and the bytes charged to owner's memory() for them.
  std::shared_ptr<const void> pins[kMaxPins];
  int pin_count;
  uint32_t pinned_bytes;
  int scratch_used;
  uv_buf_t bufs[kMaxBufs];
  char scratch[kScratch];
};

// What one write request costs while it exists: itself, the copy of its buffer array libuv
// makes for a queued write, and the allocator's overhead for both.
inline constexpr size_t kWriteRequestMemory =
    sizeof(WriteRequest) + WriteRequest::kMaxBufs * sizeof(uv_buf_t) + 2 * 16;

// Collects the buffers for one uv_write (one writev) to a fixed stream during a parser run,
// so a read that yields many body pieces costs one system call on the other side. When it
// fills up mid-run it writes what it has and keeps collecting.
//
// memory() is what the batch's write requests hold: each request, and each block one of them
// points into (counted once, at its full size). Backpressure compares it, not a byte count, with
// its bounds, so the bound holds however the bytes are cut: a piece smaller than kCopyBelow is
// copied (with its chunk framing) into a staging block the batch fills densely, next to the
// pieces before it, rather than costing a buffer entry and pinning the block it was read into.
class OutBatch {
 public:
  // `cb` runs for every write this batch starts; it must call write_request_finish() and
  // then this batch's write_done().
  OutBatch(uv_stream_t* stream, uv_write_cb cb) : stream_(stream), cb_(cb) {}
  OutBatch(const OutBatch&) = delete;
  OutBatch& operator=(const OutBatch&) = delete;
  ~OutBatch() { clear(); }

  // Adds bytes that live in `block` (referenced until the write completes).
  void add(IoBlock* block, const char* data, size_t len);
  // Adds bytes with static storage duration.
  void add_static(std::string_view text);
  // Adds bytes that live in an immutable object `owner` keeps alive (a cached response): they
  // are written from where they are, not copied, and `owner` is referenced until the write
  // completes. Counted in memory() at their length, so the connection's bounds (pipelining,
  // backpressure) hold as for a copy. Short pieces are copied (see kCopyBelow).
  void add_pinned(std::shared_ptr<const void> owner, const char* data, size_t len);
  // Adds `data` as one HTTP/1.1 chunk (size line, data, CRLF).
  void add_chunk(IoBlock* block, const char* data, size_t len);
  // Adds the last-chunk and an empty trailer section.
  void add_last_chunk() { add_static("0\r\n\r\n"); }
  // Adds a copy of `data` (as one or more HTTP/1.1 chunks with `chunked`).
  void add_copy(const char* data, size_t len, bool chunked);
  bool empty() const { return count_ == 0; }
  // Memory held by this batch's write requests (collecting and in flight): see above.
  size_t memory() const { return memory_; }

  // Starts the write of everything collected. Returns 0 or the uv_write error (a failed
  // write is dropped). The batch is empty afterwards either way.
  int flush();
  // Drops everything collected without writing.
  void clear();

  // Writes started and not completed yet.
  int in_flight() const { return in_flight_; }
  // Bytes ever added (for the access log's byte counts).
  uint64_t total_bytes() const { return total_bytes_; }
  void write_done() {
    --in_flight_;
    if (stage_ != nullptr && stage_->refs == 1 && req_ == nullptr) drop_stage();
  }
  int last_error() const { return last_error_; }
  // With a filter (TLS), flush() hands it the buffers instead of writing them.
  void set_filter(WriteFilter* filter) { filter_ = filter; }
  void write_started() { ++in_flight_; }

  // Pieces below this are copied into the staging block (see above).
  static constexpr size_t kCopyBelow = 256;

 private:
  friend void write_request_release(WriteRequest* w);
  friend WriteRequest* write_request_new(OutBatch* owner);
  friend void write_request_adopt(WriteRequest* w, IoBlock* block);
  void make_room(int bufs, int scratch, IoBlock* block);
  void hold(IoBlock* block);
  // Starts the write of the collected request (flush() without letting go of the stage).
  int flush_request();
  // Copies `len` bytes (framed as a chunk with `chunked`) behind the staged bytes.
  void stage(const char* data, size_t len, bool chunked);
  void drop_stage();

  uv_stream_t* stream_;
  uv_write_cb cb_;
  WriteRequest* req_ = nullptr;  // collecting; its bufs[0, count_) are filled
  int count_ = 0;
  int in_flight_ = 0;
  uint64_t total_bytes_ = 0;
  int last_error_ = 0;
  WriteFilter* filter_ = nullptr;
  IoBlock* stage_ = nullptr;  // where small pieces are copied to (a reference of its own)
  uint32_t stage_fill_ = 0;
  uint32_t memory_ = 0;
};

// A write request from this thread's free list, holding no blocks (for WriteFilters), counted
// in `owner`'s memory() until it is finished.
WriteRequest* write_request_new(OutBatch* owner);
// Hands `block` (one reference, which the request now owns) to `w`, counted in its owner's
// memory() while the request holds it.
void write_request_adopt(WriteRequest* w, IoBlock* block);

// Releases what a completed write held and recycles it. Call first in every uv_write_cb that
// was given to OutBatch::flush.
void write_request_finish(uv_write_t* req);

}  // namespace harrow

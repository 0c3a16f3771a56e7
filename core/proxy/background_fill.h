// Cache fills that run without a client, on the worker that started them:
//
// - A fill that outlives its client. When a client goes away (a closed connection, a reset
//   HTTP/2 stream) while the response it asked for streams from the origin into the cache, the
//   server connection is handed to a detached fill, which reads the rest of the response into
//   the entry being stored and stores it, so the requests waiting on the fill (request
//   consolidation) are answered from the cache instead of each asking the origin.
// - A background revalidation (stale-while-revalidate, RFC 5861): a stale entry answers the
//   client at once while one request per key asks the origin with the entry's validators; a
//   304 refreshes the entry, anything else removes it (the next request fetches it afresh).
//
// Memory stays bounded whatever the object size: only a response the memory tier can hold is
// stored at all (maxResponseSize; one that grows past it stops being stored, and its detached
// fill then ends and closes the server connection), and a revalidation reads no body. Time
// stays bounded by the server connection's connect and inactivity timeouts. Both keep the
// server counted in flight, and tell the balancer how the request went, until they end.
#pragma once

#include <cstddef>
#include <cstdint>

namespace harrow {

struct ClientSide;
struct Exchange;
class Worker;

// From a client connection or stream about to let go of `ex` because its client is gone. When
// `ex` is storing a response whose body is still streaming, the server connection is handed to
// a detached fill (ex.upstream and ex.cache become null, and the in-flight count moves to the
// fill; `response_bytes` is what the client was sent); returns whether it was.
bool detach_cache_fill(Exchange& ex, uint64_t response_bytes);

// `ex` answers from a stale entry and leads its key's revalidation (ex.cache->background):
// sends the request the client's exchange would have sent, with the entry's validators, to
// `server` of ex.farm, for a background owner. Called before the cached answer is written; the
// client's exchange keeps no server connection and no in-flight count. Returns whether it
// started (not for HTTP/2 farms, or a head that cannot be written: the fill then just ends).
bool start_background_revalidation(Exchange& ex, Worker& worker, const ClientSide& client,
                                   size_t server);

// The same before the response head came, for an HTTP/1 client whose request head has gone
// to the server (`ex` led the key's fill and no outbound rule applies to its site): the whole
// exchange goes to the background fill, which judges and stores the response as the client's
// would have been, then gives the exchange back to `worker`'s pool. On true `ex` is null.
bool detach_cache_exchange(Exchange*& ex, Worker& worker, const ClientSide& client);

// Background fills running on this thread (tests).
size_t background_fills();
// A worker's stop: ends the fills still running on its thread (their server connections close;
// the requests waiting on them go to the origin).
void close_background_fills();

}  // namespace harrow

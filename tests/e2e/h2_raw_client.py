#!/usr/bin/python3
"""A raw HTTP/2 client for the attack tests: sends exactly the frames an attack is made of and
reports, as one JSON line, what came back (GOAWAY code and debug data, RST_STREAM codes, the
statuses of the responses, whether the server closed). Runs under /usr/bin/python3, where
Debian's python3-hpack lives. Every loop is bounded in count and time.

usage: h2_raw_client.py PORT ATTACK [COUNT]
"""
import json
import socket
import struct
import sys
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def request_fields(path="/", method="GET", extra=()):
    return [(":method", method), (":scheme", "http"), (":authority", "h2.test"), (":path", path),
            *extra]


class Client:
    def __init__(self, port, settings=b""):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_allowed_table_size = 65536
        self.buf = b""
        self.report = {"goaway": None, "goaway_debug": "", "resets": {}, "statuses": {},
                       "closed": False, "data": {}}
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0, settings))

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.report["closed"] = True
            return False

    def headers(self, stream, fields, end_stream=True):
        return frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), stream,
                     self.enc.encode(fields))

    def read(self, seconds, until=None):
        """Reads frames for up to `seconds` (or until `until(report)` is true, or the close)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.report["closed"]:
            if until is not None and until(self.report):
                return
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self.report["closed"] = True
                break
            self.buf += chunk
            self._frames()

    def _frames(self):
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                return
            kind, flags = self.buf[3], self.buf[4]
            stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = self.buf[9:9 + length]
            self.buf = self.buf[9 + length:]
            if kind == GOAWAY:
                self.report["goaway"] = int.from_bytes(payload[4:8], "big")
                self.report["goaway_debug"] = payload[8:].decode(errors="replace")
            elif kind == RST_STREAM:
                self.report["resets"][str(stream)] = int.from_bytes(payload[:4], "big")
            elif kind == HEADERS:
                for name, value in self.dec.decode(payload):
                    if name == ":status":
                        self.report["statuses"][str(stream)] = int(value)
            elif kind == DATA:
                key = str(stream)
                self.report["data"][key] = self.report["data"].get(key, 0) + len(payload)
            elif kind == SETTINGS and not flags & ACK:
                self.send(frame(SETTINGS, ACK, 0))
            elif kind == PING and not flags & ACK:
                pass  # floods below never answer; a PING from Harrow is not expected


def main():
    port, attack = int(sys.argv[1]), sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    if attack == "zero-window":
        # SETTINGS_INITIAL_WINDOW_SIZE = 0, and no WINDOW_UPDATE ever: a slow reader.
        c = Client(port, struct.pack(">HI", 4, 0))
    else:
        c = Client(port)
    if attack == "get":
        c.send(c.headers(1, request_fields("/")))
        c.read(10, lambda r: "1" in r["statuses"] and "1" in r["data"])
    elif attack == "idle":
        # One request, then nothing: read until Harrow says GOAWAY and closes.
        c.send(c.headers(1, request_fields("/")))
        c.read(15)
    elif attack == "rapid-reset":
        out = b""
        for i in range(count):
            sid = 2 * i + 1
            out += c.headers(sid, request_fields("/")) + frame(RST_STREAM, 0, sid, struct.pack(">I", 8))
            if len(out) > 60000:
                if not c.send(out):
                    break
                out = b""
        c.send(out)
        c.read(10, lambda r: r["goaway"] is not None)
    elif attack == "continuation-flood":
        block = c.enc.encode(request_fields("/"))
        c.send(frame(HEADERS, 0, 1, block[:1]))
        for _ in range(count):
            if not c.send(frame(CONTINUATION, 0, 1, b"")):
                break
        c.read(10, lambda r: r["goaway"] is not None)
    elif attack == "hpack-bomb":
        # One 4000-byte value enters the dynamic table, then a one-byte reference to it, again
        # and again: a 13 KB frame that decodes to 48 MB of fields.
        block = c.enc.encode(request_fields("/"))
        block += b"\x40\x06x-bomb\x7f\xa1\x1e" + b"b" * 4000 + b"\xbe" * 12000
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
        c.read(10, lambda r: "1" in r["statuses"] or r["goaway"] is not None)
        # The connection still serves (HPACK state intact): a normal request after it.
        # Never-indexed fields use the static table only: the client's encoder does not know
        # of the entry added by hand above, so it must not reference its dynamic table.
        fields = [hpack.NeverIndexedHeaderTuple(n, v) for n, v in request_fields("/")]
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, hpack.Encoder().encode(fields)))
        c.read(10, lambda r: "3" in r["statuses"] or r["goaway"] is not None)
    elif attack == "big-headers":
        # 100 KB of fields: a HEADERS frame and CONTINUATION frames of at most 16 KiB each.
        fields = request_fields("/", extra=[(f"x-h{i}", "v" * 1000) for i in range(100)])
        block = c.enc.encode(fields)
        pieces = [block[i:i + 16384] for i in range(0, len(block), 16384)]
        out = b""
        for i, piece in enumerate(pieces):
            flags = (END_HEADERS if i == len(pieces) - 1 else 0) | (END_STREAM if i == 0 else 0)
            out += frame(HEADERS if i == 0 else CONTINUATION, flags, 1, piece)
        c.send(out)
        c.read(10, lambda r: "1" in r["statuses"])
    elif attack in ("settings-flood", "ping-flood", "empty-data-flood"):
        if attack == "empty-data-flood":
            c.send(c.headers(1, request_fields("/", "POST"), end_stream=False))
            unit = frame(DATA, 0, 1, b"")
        elif attack == "ping-flood":
            unit = frame(PING, 0, 0, b"12345678")
        else:
            unit = frame(SETTINGS, 0, 0, b"")
        for _ in range(count // 100):
            if not c.send(unit * 100):
                break
        c.read(10)  # until Harrow closes the connection
    elif attack == "too-many-streams":
        out = b""
        for i in range(count):
            out += c.headers(2 * i + 1, request_fields("/", "POST"), end_stream=False)
        c.send(out)
        c.read(3)
    elif attack == "zero-window":
        c.send(c.headers(1, request_fields("/x?bytes=4000000")))
        c.read(20, lambda r: r["goaway"] is not None or "1" in r["resets"])
    elif attack == "bad-pseudo":
        # A request without :path (RFC 9113 §8.3.1): a stream error, the connection lives on.
        fields = [(":method", "GET"), (":scheme", "http"), (":authority", "h2.test")]
        c.send(c.headers(1, fields))
        c.send(c.headers(3, request_fields("/", extra=[("connection", "keep-alive")])))
        c.send(c.headers(5, request_fields("/", extra=[("host", "other.test")])))
        c.send(c.headers(7, request_fields("/")))
        c.read(10, lambda r: "7" in r["statuses"])
    else:
        sys.exit(f"unknown attack {attack}")
    print(json.dumps(c.report))


if __name__ == "__main__":
    main()

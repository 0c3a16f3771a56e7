"""End-to-end: WebSocket upgrades through Harrow. harrow-origin's /_origin/ws answers the RFC 6455
handshake with 101 and then echoes every byte raw; the tests speak to Harrow with raw sockets."""
import base64
import hashlib
import json
import os
import re
import signal
import socket
import tempfile
import threading
import time

from harness import (SANITIZED, HarrowTestCase, config_xml, dead_port, farm_xml, rule_xml,
                     wait_for)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_for(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def upgrade_request(path="/_origin/ws", extra=b"", method=b"GET", upgrade=b"websocket"):
    return (method + b" " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
            b"Upgrade: " + upgrade + b"\r\nSec-WebSocket-Key: " + KEY.encode() +
            b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n")


def read_head(s):
    """Reads up to the end of a response head; returns (status, headers, bytes after it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before the head ended: {data!r}")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return status, headers, rest


def read_exactly(s, n, have=b""):
    data = have
    while len(data) < n:
        chunk = s.recv(min(65536, n - len(data)))
        if not chunk:
            raise AssertionError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def read_until_close(s):
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def metric(text, name, **labels):
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return int(float(line.rsplit(" ", 1)[1]))
    raise AssertionError(f"no {name} {labels} in metrics")


class WebSocket(HarrowTestCase):
    def start(self, harrow_xml="", servers=None):
        self.o = self.origin("o")
        self.dir = self.enterContext(tempfile.TemporaryDirectory())
        self.log_path = os.path.join(self.dir, "access.log")
        servers = servers or [("127.0.0.1", self.o.port, 1)]
        self.h = self.harrow(config_xml(
            [farm_xml("f", servers)], [rule_xml("r", "f")],
            harrow=f'<accessLog path="{self.log_path}" format="json"/>' + harrow_xml))
        return self.h

    def setUp(self):
        super().setUp()
        self.sockets = []

    def tearDown(self):
        # An open tunnel would hold Harrow's graceful stop for its whole shutdown timeout.
        for s in self.sockets:
            s.close()
        super().tearDown()

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.h.port), timeout=10)
        self.sockets.append(s)
        return s

    def handshake(self, path="/_origin/ws", after=b""):
        s = self.connect()
        s.sendall(upgrade_request(path) + after)
        status, headers, rest = read_head(s)
        self.assertEqual(status, 101, headers)
        return s, headers, rest

    def server_metric(self, name, **labels):
        _, text = self.h.admin_get("/metrics")
        return metric(text, name, farm="f", **labels)

    def access_log(self, count):
        def read():
            if not os.path.exists(self.log_path):
                return None
            with open(self.log_path) as f:
                rows = [json.loads(l) for l in f.read().splitlines() if l.strip()]
            return rows if len(rows) >= count else None
        return wait_for(read, 10, f"{count} access log lines")

    def test_handshake_echo_and_pipelined_bytes_both_ways(self):
        self.start()
        # Bytes behind the request head (sent in the same packet) and bytes behind the 101 head
        # (hello=, in the origin's same write) both belong to the tunnel.
        s, headers, rest = self.handshake("/_origin/ws?hello=HELLO", after=b"EARLY")
        self.assertEqual(headers["sec-websocket-accept"], [accept_for(KEY)])
        self.assertEqual([v.lower() for v in headers["upgrade"]], ["websocket"])
        self.assertEqual([v.lower() for v in headers["connection"]], ["upgrade"])
        self.assertIn("x-powered-by", headers)
        self.assertNotIn("content-length", headers)
        self.assertNotIn("transfer-encoding", headers)
        self.assertEqual(read_exactly(s, 10, rest), b"HELLOEARLY")
        for message in [b"ping\n", b"\x81\x05hello", bytes(range(256)) * 40]:
            s.sendall(message)
            self.assertEqual(read_exactly(s, len(message)), message)
        self.assertEqual(self.server_metric("harrow_server_websocket_current"), 1)
        self.assertEqual(self.server_metric("harrow_server_websocket_requests_total"), 1)
        _, farms = self.h.admin_get("/api/farms")
        server = json.loads(farms)["farms"][0]["servers"][0]
        self.assertEqual(server["currentWebSocketRequests"], 1)
        self.assertEqual(server["totalWebSocketRequests"], 1)
        sent = 5 + 5 + 7 + 256 * 40
        wait_for(lambda: json.loads(self.h.admin_get("/api/farms")[1])["farms"][0]["servers"][0]
                 ["webSocketBytesSent"] == sent, 10, "webSocketBytesSent")
        s.close()
        wait_for(lambda: self.server_metric("harrow_server_websocket_current") == 0, 10,
                 "the tunnel to close")
        self.assertEqual(self.server_metric("harrow_server_websocket_bytes_total", direction="sent"),
                         sent)
        self.assertEqual(
            self.server_metric("harrow_server_websocket_bytes_total", direction="received"),
            sent + len(b"HELLO"))
        self.assertEqual(self.server_metric("harrow_server_websocket_failures_total"), 0)
        # One access log line, written when the tunnel ended: status 101, bytes both ways.
        row = self.access_log(1)[0]
        self.assertEqual(row["status"], 101)
        self.assertGreater(row["bytesSent"], sent + 5)
        self.assertGreater(row["bytesReceived"], sent)

    def test_a_pooled_connection_carries_the_upgrade_and_never_returns_to_the_pool(self):
        self.start()
        s = self.connect()
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, rest = read_head(s)
        self.assertEqual((status, read_exactly(s, 2, rest)), (200, b"o\n"))
        pooled = headers["x-origin-connection-id"]
        t, headers, _ = self.handshake()
        self.assertEqual(headers["x-origin-connection-id"], pooled)
        t.sendall(b"BYE\n")
        self.assertEqual(read_until_close(t), b"BYE\n")
        t.close()
        wait_for(lambda: self.server_metric("harrow_server_websocket_current") == 0, 10,
                 "the tunnel to close")
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, _ = read_head(s)
        self.assertEqual(status, 200)
        self.assertNotEqual(headers["x-origin-connection-id"], pooled)

    def test_large_transfer_with_a_slow_reader_stays_bounded(self):
        self.start()
        s, _, rest = self.handshake()
        size = 32 * 1024 * 1024
        pattern = bytes(range(251)) * 261  # 65511 bytes: misaligned with every buffer size
        failure = []

        def send():
            try:
                sent = 0
                while sent < size:
                    piece = pattern[: min(len(pattern), size - sent)]
                    s.sendall(piece)
                    sent += len(piece)
            except OSError as e:
                failure.append(e)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        received = bytearray(rest)
        deadline = time.monotonic() + 120
        slow_until = time.monotonic() + 2  # a slow reader first: backpressure must hold
        while len(received) < size and time.monotonic() < deadline:
            if time.monotonic() < slow_until:
                time.sleep(0.05)
                chunk = s.recv(4096)
            else:
                chunk = s.recv(1 << 20)
            if not chunk:
                break
            received += chunk
        sender.join(30)
        self.assertEqual(failure, [])
        self.assertEqual(len(received), size)
        expected = (pattern * (size // len(pattern) + 1))[:size]
        self.assertTrue(received == expected, "the echoed bytes differ from those sent")
        if not SANITIZED:
            # Backpressure bounds what Harrow holds per direction (about 1 MiB of unsent bytes
            # plus socket buffers), whatever the transfer size.
            self.assertLess(self.h.rss_peak_kib(), 24 * 1024, "harrow's RSS grew with the transfer")

    def test_idle_tunnel_is_closed(self):
        self.start('<timeouts webSocketIdle="00:00:01"/>')
        s, _, _ = self.handshake()
        s.sendall(b"x")
        self.assertEqual(read_exactly(s, 1), b"x")
        start = time.monotonic()
        self.assertEqual(read_until_close(s), b"")
        self.assertLess(time.monotonic() - start, 8)
        wait_for(lambda: self.server_metric("harrow_server_websocket_current") == 0, 10,
                 "the tunnel to be counted closed")
        self.assertEqual(self.access_log(1)[0]["status"], 101)
        wait_for(lambda: "ended: idle" in self.h.stderr(), 10, "the idle log line")

    def test_origin_close_reaches_the_client(self):
        self.start()
        s, _, _ = self.handshake()
        s.sendall(b"BYE\n")  # the origin echoes it, then sends FIN
        self.assertEqual(read_until_close(s), b"BYE\n")
        # Half-closed by the origin: the client may still send, then closes its side too.
        s.shutdown(socket.SHUT_WR)
        wait_for(lambda: self.server_metric("harrow_server_websocket_current") == 0, 10,
                 "the tunnel to close")

    def test_origin_reset_ends_the_client_connection(self):
        self.start()
        s, _, _ = self.handshake()
        s.sendall(b"RST\n")
        try:
            self.assertEqual(read_until_close(s), b"")
        except ConnectionResetError:
            pass  # either way the client learns the tunnel is gone
        wait_for(lambda: self.server_metric("harrow_server_websocket_current") == 0, 10,
                 "the tunnel to close")
        wait_for(lambda: "ended: server" in self.h.stderr(), 10, "the log line")
        self.assertEqual(self.access_log(1)[0]["status"], 101)

    def test_client_half_close_is_carried_to_the_origin(self):
        self.start()
        s, _, _ = self.handshake()
        s.sendall(b"last words")
        s.shutdown(socket.SHUT_WR)
        # The origin sees EOF, finishes echoing, and closes: the client reads it all, then EOF.
        self.assertEqual(read_until_close(s), b"last words")
        wait_for(lambda: self.server_metric("harrow_server_websocket_current") == 0, 10,
                 "the tunnel to close")

    def test_non_101_answer_is_proxied_normally(self):
        self.start()
        s = self.connect()
        s.sendall(upgrade_request("/plain"))
        status, headers, rest = read_head(s)
        self.assertEqual(status, 200)
        body = read_until_close(s)  # the connection ends after the refused upgrade
        self.assertEqual(rest + body, b"o\n")
        self.assertEqual(self.server_metric("harrow_server_websocket_requests_total"), 1)
        self.assertEqual(self.server_metric("harrow_server_websocket_current"), 0)
        self.assertEqual(self.server_metric("harrow_server_websocket_failures_total"), 0)

    def test_failed_upgrade_is_502_with_a_reason(self):
        self.start(servers=[("127.0.0.1", dead_port(), 1)])
        s = self.connect()
        s.sendall(upgrade_request())
        status, _, rest = read_head(s)
        self.assertEqual(status, 502)
        self.assertIn(b"upstream_connect_refused", rest + read_until_close(s))
        self.assertEqual(self.server_metric("harrow_server_websocket_failures_total"), 1)
        self.assertEqual(self.server_metric("harrow_server_websocket_current"), 0)

    def forwarded_head(self, request):
        s = self.connect()
        s.sendall(request)
        status, _, rest = read_head(s)
        return status, rest + read_until_close(s)

    def test_h2c_upgrade_is_stripped(self):
        self.start()
        status, body = self.forwarded_head(
            b"GET /_origin/headers HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
        self.assertEqual(status, 200)
        self.assertNotRegex(body.decode().lower(), r"(?m)^(upgrade|http2-settings):")
        self.assertEqual(self.server_metric("harrow_server_websocket_requests_total"), 0)

    def test_upgrade_with_a_body_is_a_plain_request(self):
        self.start()
        status, body = self.forwarded_head(upgrade_request(
            "/_origin/headers", method=b"POST", extra=b"Content-Length: 5\r\n") + b"hello")
        self.assertEqual(status, 200)
        self.assertNotRegex(body.decode().lower(), r"(?m)^upgrade:")
        self.assertEqual(self.server_metric("harrow_server_websocket_requests_total"), 0)

    def test_upgrade_headers_reach_the_origin(self):
        self.start()
        status, body = self.forwarded_head(
            upgrade_request("/_origin/headers", extra=b"Sec-WebSocket-Protocol: chat\r\n"))
        # Not the ws path, so the origin answers 200 with what it received.
        self.assertEqual(status, 200)
        text = body.decode()
        self.assertRegex(text, r"(?mi)^upgrade: websocket$")
        self.assertRegex(text, r"(?mi)^connection: upgrade$")
        self.assertIn(f"Sec-WebSocket-Key: {KEY}", text)
        self.assertIn("Sec-WebSocket-Protocol: chat", text)

    def test_graceful_stop_closes_tunnels_after_its_timeout(self):
        self.start('<timeouts shutdown="00:00:01"/>')
        s, _, _ = self.handshake()
        start = time.monotonic()
        self.h.proc.send_signal(signal.SIGTERM)
        self.assertEqual(read_until_close(s), b"")
        self.assertEqual(self.h.proc.wait(20), 0)
        self.assertLess(time.monotonic() - start, 15)
        self.assertEqual(self.h.stop(), 0)


if __name__ == "__main__":
    import unittest
    unittest.main()

"""End-to-end: idle keep-alive client connections hold no per-request state (an Exchange), and
connections that take and give back Exchanges request after request, pipelined, with bodies
and failures, still get every answer, in order."""
import re
import socket
import time
import unittest

from harness import (HarrowTestCase, config_xml, dead_port, decode_chunked, farm_xml, rule_xml,
                     wait_for)


def gauge(h, name):
    _, text = h.admin_get("/metrics")
    return int(re.search(r"(?m)^%s (\d+)$" % re.escape(name), text).group(1))


class ResponseReader:
    """Reads HTTP/1.1 responses one after another from a socket (Content-Length, chunked, or
    ended by the close)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _until(self, marker):
        while marker not in self.buf:
            self._fill()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read(self):
        """Returns (status, headers dict lower-cased, body)."""
        head = self._until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = self._exactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            raw = b""
            while True:
                size_line = self._until(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                raw += size_line
                if size == 0:
                    raw += self._until(b"\r\n")
                    break
                raw += self._exactly(size + 2)
            body = decode_chunked(raw)
        else:
            body = b""
            try:
                while True:
                    self._fill()
            except EOFError:
                body, self.buf = self.buf, b""
        return status, headers, body

    def closed(self):
        """True if the peer closes without sending anything more."""
        try:
            self._fill()
        except EOFError:
            return self.buf == b""
        return False


class IdleConnections(HarrowTestCase):
    def setUp(self):
        super().setUp()
        self.o = self.origin("o")
        # Every request to the dead farm must meet the refused connect (502), however slow the
        # build: live-traffic failures never take its server out here.
        dead = farm_xml("dead", [("127.0.0.1", dead_port(), 1)],
                        extra='<healthCheck maxLiveTrafficFailures="1000000"/>')
        live = farm_xml("f", [("127.0.0.1", self.o.port, 1)])
        self.h = self.harrow(config_xml([dead, live], [rule_xml("to-dead", "dead", "dead*"),
                                                       rule_xml("r", "f")]))

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.h.port), timeout=20)

    def test_idle_keep_alive_connections_hold_no_exchange(self):
        socks = [self.connect() for _ in range(200)]
        try:
            for i, s in enumerate(socks):
                s.sendall(b"GET /?header=X-Seq:%d HTTP/1.1\r\nHost: t\r\n\r\n" % i)
            for i, s in enumerate(socks):
                status, headers, _ = ResponseReader(s).read()
                self.assertEqual((status, headers.get("x-seq")), (200, str(i)))
            wait_for(lambda: gauge(self.h, "harrow_connections_active") == 200, 10,
                     "200 connections open")
            # Every response is out and nothing is left to parse: none holds an Exchange.
            wait_for(lambda: gauge(self.h, "harrow_exchanges_active") == 0, 10,
                     "no exchange held by an idle connection")

            # A request under way holds one, and only until it is answered.
            socks[0].sendall(b"GET /?header=X-Seq:again HTTP/1.1\r\nHo")
            wait_for(lambda: gauge(self.h, "harrow_exchanges_active") == 1, 10,
                     "the connection reading a head holds an exchange")
            socks[0].sendall(b"st: t\r\n\r\n")
            status, headers, _ = ResponseReader(socks[0]).read()
            self.assertEqual((status, headers.get("x-seq")), (200, "again"))
            wait_for(lambda: gauge(self.h, "harrow_exchanges_active") == 0, 10,
                     "the exchange given back")

            # A second round on every idle connection: each takes one again and gives it back.
            for i, s in enumerate(socks):
                s.sendall(b"GET /?header=X-Seq:%d HTTP/1.1\r\nHost: t\r\n\r\n" % (i + 1000))
            for i, s in enumerate(socks):
                status, headers, _ = ResponseReader(s).read()
                self.assertEqual((status, headers.get("x-seq")), (200, str(i + 1000)))
            wait_for(lambda: gauge(self.h, "harrow_exchanges_active") == 0, 10,
                     "no exchange held after the second round")
        finally:
            for s in socks:
                s.close()
        wait_for(lambda: gauge(self.h, "harrow_connections_active") == 0, 10, "all closed")
        # A closed connection's Exchange goes back in its close callback, a loop turn later.
        wait_for(lambda: gauge(self.h, "harrow_exchanges_active") == 0, 10, "no exchange held")

    def test_pipelined_requests_with_bodies_and_failures_answered_in_order(self):
        rounds, count = 3, 40
        socks = [self.connect() for _ in range(count)]
        readers = [ResponseReader(s) for s in socks]
        try:
            for r in range(rounds):
                for i, s in enumerate(socks):
                    payload = b"body-%d-%d" % (r, i)
                    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in [b"c-", payload])
                    s.sendall(
                        b"GET /?header=X-Seq:a%d HTTP/1.1\r\nHost: t\r\n\r\n" % i +
                        b"POST /?echo=1 HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" %
                        (len(payload), payload) +
                        b"GET /dead/x HTTP/1.1\r\nHost: t\r\n\r\n" +
                        b"POST /?echo=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                        + chunks + b"0\r\n\r\n" +
                        b"GET /?status=404&header=X-Seq:b%d HTTP/1.1\r\nHost: t\r\n\r\n" % i)
                for i, reader in enumerate(readers):
                    payload = b"body-%d-%d" % (r, i)
                    status, headers, _ = reader.read()
                    self.assertEqual((status, headers.get("x-seq")), (200, "a%d" % i))
                    self.assertEqual(reader.read()[::2], (200, payload))
                    status, headers, _ = reader.read()  # the dead farm: Harrow's own 502
                    self.assertEqual(status, 502)
                    self.assertNotIn("close", headers.get("connection", "").lower())
                    self.assertEqual(reader.read()[::2], (200, b"c-" + payload))
                    status, headers, _ = reader.read()
                    self.assertEqual((status, headers.get("x-seq")), (404, "b%d" % i))
                wait_for(lambda: gauge(self.h, "harrow_exchanges_active") == 0, 10,
                         "no exchange held between rounds")
            # A bad request behind good ones: the good ones are answered, then 400 and the close.
            for i, s in enumerate(socks):
                s.sendall(b"GET /?header=X-Seq:last%d HTTP/1.1\r\nHost: t\r\n\r\n" % i +
                          b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n")
            for i, reader in enumerate(readers):
                status, headers, _ = reader.read()
                self.assertEqual((status, headers.get("x-seq")), (200, "last%d" % i))
                self.assertEqual(reader.read()[0], 400)
                self.assertTrue(reader.closed())
        finally:
            for s in socks:
                s.close()
        wait_for(lambda: gauge(self.h, "harrow_connections_active") == 0, 10, "all closed")
        # A closed connection's Exchange goes back in its close callback, a loop turn later.
        wait_for(lambda: gauge(self.h, "harrow_exchanges_active") == 0, 10, "no exchange held")

    def test_idle_timeout_and_partial_head_after_keep_alive(self):
        # A connection idle after a request, then a head that never ends: the 408 still names
        # the timeout (an Exchange is taken for the partial head and freed with the connection).
        self.h.stop()
        self.h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", self.o.port, 1)])],
                                        [rule_xml("r", "f")],
                                        harrow='<timeouts clientHeader="00:00:01"/>'))
        s = self.connect()
        reader = ResponseReader(s)
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        self.assertEqual(reader.read()[0], 200)
        time.sleep(0.2)
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        status, headers, body = reader.read()
        self.assertEqual(status, 408)
        self.assertIn(b"client_header_timeout", body)
        self.assertTrue(reader.closed())
        s.close()
        wait_for(lambda: gauge(self.h, "harrow_connections_active") == 0, 10, "closed")
        self.assertEqual(gauge(self.h, "harrow_exchanges_active"), 0)


if __name__ == "__main__":
    unittest.main()

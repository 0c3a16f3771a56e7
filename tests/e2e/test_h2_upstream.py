"""End-to-end: HTTP/2 to the servers of a farm named by <upstreamHttp2 farm=…/>, h2c with prior
knowledge over http:// and h2 by ALPN over https://, many exchanges multiplexed on one
connection per server and worker; gRPC-style calls pass end to end (trailers, grpc-status,
streaming both ways, deadlines). The servers are harrow-h2-origin processes (tests/origin)."""
import collections
import os
import re
import socket
import subprocess
import tempfile
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events

from h2client import Client, grpc_call, grpc_frame, grpc_status
from harness import (HarrowTestCase, SelfSignedCertificate, config_xml, request, rule_xml,
                     wait_for)

CERT = None


def setUpModule():
    global CERT
    CERT = SelfSignedCertificate()


def tearDownModule():
    CERT.cleanup()


def tls_files():
    return CERT.files()


def farm(name, servers, extra=""):
    """servers: list of (address, port, https_port or None)."""
    rows = []
    for address, port, https_port in servers:
        https = f' httpsPort="{https_port}"' if https_port else ""
        rows.append(f'<server address="{address}"><applicationRequestRouting httpPort="{port}"'
                    f'{https} weight="1"/></server>')
    arr = f"<applicationRequestRouting>{extra}</applicationRequestRouting>" if extra else ""
    return f'<webFarm name="{name}">{"".join(rows)}{arr}</webFarm>'


def tls_rule(name, farm_name):
    return (f'<rule name="{name}" patternSyntax="Wildcard" stopProcessing="true">'
            f'<match url="*"/><action type="Rewrite" url="https://{farm_name}/{{R:0}}"/></rule>')


def established_to(port):
    """TCP connections in ESTABLISHED state whose remote port is `port` (from /proc/net/tcp)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.readlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == "01" and int(cols[2].split(":")[1], 16) == port:
                count += 1
    return count


GRPC = [("content-type", "application/grpc"), ("te", "trailers")]


class ResettingOrigin:
    """An h2c server (the h2 library, one thread) that resets streams when asked: /reset before
    any response (INTERNAL_ERROR), /refuse (REFUSED_STREAM), /cut after the head and some DATA;
    anything else is a 200 "ok". Counts requests by path."""

    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.listener = socket.create_server((host, 0))
        self.port = self.listener.getsockname()[1]
        self.counts = collections.Counter()
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        self.listener.settimeout(0.2)
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, sock):
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                 header_encoding="utf-8"))
        c.initiate_connection()
        sock.sendall(c.data_to_send())
        sock.settimeout(0.5)
        deadline = time.monotonic() + 30
        while not self.stopping and time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            for ev in c.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if not isinstance(ev, h2.events.RequestReceived):
                    continue
                path = dict(ev.headers)[":path"]
                self.counts[path] += 1
                sid = ev.stream_id
                if path == "/reset":
                    c.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
                elif path == "/refuse":
                    c.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
                elif path == "/cut":
                    c.send_headers(sid, [(":status", "200"), ("content-length", "100000")])
                    c.send_data(sid, b"x" * 1000)
                    c.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
                else:
                    c.send_headers(sid, [(":status", "200"), ("content-length", "2")])
                    c.send_data(sid, b"ok", end_stream=True)
            sock.sendall(c.data_to_send())
        sock.close()

    def stop(self):
        self.stopping = True
        self.listener.close()
        self.thread.join(5)


class Http2Upstream(HarrowTestCase):
    def start(self, farms, rules, extra=""):
        harrow = ('<listen address="127.0.0.1:0"/><listen address="127.0.0.2:0" http2="true"/>'
                  + extra)
        self.h = self.harrow(config_xml(farms, rules, harrow), listen=False)
        self.plain = self.h.port
        self.h2c = int(re.search(r"harrow: listening on http://127\.0\.0\.2:(\d+)",
                                 self.h.stderr()).group(1))
        return self.h

    def h2c_farm(self, *origins):
        self.start([farm("g", [(o.host, o.port, None) for o in origins])], [rule_xml("all", "g")],
                   '<upstreamHttp2 farm="g"/>')

    def test_http1_and_http2_clients_reach_an_h2c_farm_over_one_connection(self):
        o = self.h2_origin("h2one")
        self.h2c_farm(o)
        status, headers, body = request(self.plain, path="/bytes/70000")
        self.assertEqual((status, len(body), headers["x-origin-name"]), (200, 70000, "h2one"))
        self.assertEqual(body[:5], b"abcde")
        # A request body both ways, larger than every window on the way.
        payload = bytes(range(256)) * 3000
        status, _, body = request(self.plain, "POST", "/echo", body=payload)
        self.assertEqual((status, body), (200, payload))
        status, _, body = request(self.plain, "POST", "/echo", body=iter([b"x" * 1000] * 50),
                                  chunked=True)
        self.assertEqual((status, body), (200, b"x" * 50000))
        self.assertEqual(request(self.plain, path="/missing")[0], 404)
        # Many exchanges at once, from HTTP/1 and HTTP/2 clients, share one server connection.
        results = []

        def one(i):
            s, _, b = request(self.plain, path=f"/bytes/{1000 + i}")
            results.append((s, len(b) == 1000 + i))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        with Client("127.0.0.2", self.h2c) as c:
            sids = [c.start("GET", f"/bytes/{i}", end_stream=True) for i in range(1, 17)]
            for i, sid in enumerate(sids, start=1):
                r = c.wait(sid)
                self.assertEqual((r.status, len(r.body)), (200, i))
        for t in threads:
            t.join(30)
        self.assertEqual(results, [(200, True)] * 16)
        self.assertEqual(established_to(o.port), 1)

    def test_a_second_connection_once_the_server_stream_limit_is_reached(self):
        # harrow-h2-origin allows 100 concurrent streams; 120 slow calls at once need two
        # connections (and no more).
        o = self.h2_origin("busy")
        self.h2c_farm(o)
        clients = [Client("127.0.0.2", self.h2c) for _ in range(2)]
        calls = []
        for c in clients:
            self.addCleanup(c.close)
            for i in range(60):
                sid = c.start("POST", "/harrow.test.Echo/Slow", GRPC)
                c.send(sid, grpc_frame(b"s%d" % i), end_stream=True)
                calls.append((c, sid, b"s%d" % i))
        wait_for(lambda: established_to(o.port) == 2, 5, "a second server connection")
        for c, sid, message in calls:
            r = c.wait(sid)
            self.assertEqual((grpc_status(r), r.messages()), (0, [message]))
        self.assertEqual(established_to(o.port), 2)

    def test_grpc_calls_pass_with_trailers_streaming_and_deadlines(self):
        o = self.h2_origin("grpc")
        self.h2c_farm(o)
        with Client("127.0.0.2", self.h2c) as c:
            r = grpc_call(c, "/harrow.test.Echo/Unary", [b"hello"])
            self.assertEqual((r.status, r.headers["content-type"]), (200, "application/grpc"))
            self.assertEqual(r.messages(), [b"hello"])
            self.assertEqual(r.trailers, {"grpc-status": "0", "grpc-message": "OK"})
            # Both ways at once: each message comes back before the next one is sent.
            sid = c.start("POST", "/harrow.test.Echo/Stream", GRPC)
            sent = [b"one", b"two" * 3000, b""]
            for i, msg in enumerate(sent):
                c.send(sid, grpc_frame(msg))
                expect = b"".join(grpc_frame(m) for m in sent[:i + 1])
                self.assertEqual(c.read_body(sid, len(expect)), expect)
                self.assertFalse(c.streams[sid].ended)
            c.send(sid, b"", end_stream=True)
            r = c.wait(sid)
            self.assertEqual((r.messages(), grpc_status(r)), (sent, 0))
            # A failing method's status and message.
            r = grpc_call(c, "/harrow.test.Echo/Fail", [b"x"])
            self.assertEqual(grpc_status(r), 13)
            # grpc-timeout reaches the server untouched: the short deadline ends its call first.
            started = time.monotonic()
            short = c.start("POST", "/harrow.test.Echo/Slow", GRPC + [("grpc-timeout", "200m")])
            c.send(short, grpc_frame(b"late"), end_stream=True)
            r = c.wait(short)
            self.assertLess(time.monotonic() - started, 1.5)
            self.assertEqual(grpc_status(r), 4)
        # An HTTP/1.1 client gets the trailers in the chunked body's trailer section.
        s = socket.create_connection(("127.0.0.1", self.plain), timeout=10)
        body = grpc_frame(b"hi")
        s.sendall(b"POST /harrow.test.Echo/Unary HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/grpc\r\nTE: trailers\r\nConnection: close\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        data = b""
        while True:
            piece = s.recv(65536)
            if not piece:
                break
            data += piece
        s.close()
        head, _, rest = data.partition(b"\r\n\r\n")
        self.assertIn(b"Transfer-Encoding: chunked", head)
        self.assertTrue(rest.endswith(b"0\r\ngrpc-status: 0\r\ngrpc-message: OK\r\n\r\n"), rest)

    def test_tls_farm_selects_h2_by_alpn_and_an_http1_only_server_fails(self):
        o = self.h2_origin("secure", tls=tls_files())
        http1 = self.origin("oldtls", tls=tls_files())
        self.start([farm("s", [("127.0.0.1", o.port, o.tls_port)]),
                    farm("old", [("127.0.0.1", http1.port, http1.tls_port)])],
                   ['<rule name="old" patternSyntax="Wildcard" stopProcessing="true">'
                    '<match url="old/*"/><action type="Rewrite" url="https://old/{R:1}"/></rule>',
                    tls_rule("all", "s")],
                   '<upstreamTls verifyCertificate="false"/>'
                   '<upstreamHttp2 farm="s"/><upstreamHttp2 farm="old"/>')
        status, headers, body = request(self.plain, path="/bytes/20000")
        self.assertEqual((status, len(body), headers["x-origin-name"]), (200, 20000, "secure"))
        with Client("127.0.0.2", self.h2c) as c:
            r = grpc_call(c, "/harrow.test.Echo/Unary", [b"tls"])
            self.assertEqual((r.messages(), grpc_status(r)), ([b"tls"], 0))
        self.assertEqual(established_to(o.tls_port), 1)
        status, _, body = request(self.plain, path="/old/x")
        self.assertEqual(status, 502)
        self.assertIn(b"upstream_tls", body)
        self.assertIn("did not select h2 by ALPN", self.h.stderr())

    def test_a_stopped_server_is_a_502_and_the_farm_fails_over(self):
        dead = self.h2_origin("dead")
        live = self.h2_origin("live", host="127.0.0.3")
        self.h2c_farm(dead, live)
        dead.stop()
        names = set()
        for _ in range(4):
            status, headers, _ = request(self.plain, path="/bytes/3")
            self.assertEqual(status, 200)
            names.add(headers["x-origin-name"])
        self.assertEqual(names, {"live"})
        live.stop()
        status, _, body = request(self.plain, path="/bytes/3")
        self.assertEqual(status, 502)
        self.assertIn(b"upstream_connect", body)

    def test_health_probes_speak_http2(self):
        # harrow-h2-origin speaks nothing but HTTP/2: a passing probe went over HTTP/2.
        up = self.h2_origin("up")
        down = self.h2_origin("down", host="127.0.0.3")
        health = ('<healthCheck url="http://g.example/bytes/3" interval="00:00:00.2" '
                  'timeout="00:00:01" retries="2"/>')
        self.start([farm("g", [(up.host, up.port, None), (down.host, down.port, None)], health)],
                   [rule_xml("all", "g")], '<upstreamHttp2 farm="g"/>')
        wait_for(lambda: re.search(r'harrow_health_probes_total\{farm="g",[^}]*result="pass"\} [4-9]',
                                   self.h.admin_get("/metrics")[1]), 10, "passing HTTP/2 probes")
        self.assertNotIn("unhealthy", self.h.stderr())
        # Probes reuse their connection: one per server for all of them.
        self.assertEqual(established_to(up.port), 1)
        down.stop()
        wait_for(lambda: "server=127.0.0.3:" in self.h.stderr() and "-> unhealthy" in
                 self.h.stderr(), 10, "the stopped server marked unhealthy")
        self.assertEqual(self.h.stderr().count("-> unhealthy"), 1, self.h.stderr())
        for _ in range(4):
            status, headers, _ = request(self.plain, path="/bytes/2")
            self.assertEqual((status, headers["x-origin-name"]), (200, "up"))

    def test_server_resets_are_502s_under_the_retry_rules(self):
        o = ResettingOrigin()
        self.addCleanup(o.stop)
        self.start([farm("r", [(o.host, o.port, None)])], [rule_xml("all", "r")],
                   '<upstreamHttp2 farm="r"/>')
        self.assertEqual(request(self.plain, path="/fine")[:3:2], (200, b"ok"))
        # A GET reset before any response byte is replayed once (a stream is never reused),
        # then answered 502; a POST is never sent twice.
        status, _, body = request(self.plain, path="/reset")
        self.assertEqual((status, o.counts["/reset"]), (502, 2))
        self.assertIn(b"upstream_reset", body)
        status, _, body = request(self.plain, "POST", "/reset", body=b"data")
        self.assertEqual((status, o.counts["/reset"]), (502, 3))
        status, _, _ = request(self.plain, path="/refuse")
        self.assertEqual((status, o.counts["/refuse"]), (502, 2))
        # Reset after the response began: the client's stream is reset in turn, not completed.
        with Client("127.0.0.2", self.h2c) as c:
            r = c.get("/cut")
            # (The head may or may not have been written before the reset.)
            self.assertLess(len(r.body), 100000)
            self.assertFalse(r.ended)
            self.assertIsNotNone(r.reset)
            self.assertEqual(c.get("/fine").body, b"ok")
        self.assertEqual(established_to(o.port), 1)

    def test_unknown_farm_is_a_configuration_error(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "harrow.config")
            with open(path, "w") as f:
                f.write(config_xml([farm("g", [("127.0.0.1", 1, None)])], [rule_xml("all", "g")],
                                   '<upstreamHttp2 farm="nope"/>'))
            from harness import HARROW
            r = subprocess.run([HARROW, "--check-config", "--config", path], capture_output=True,
                               text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("<upstreamHttp2> names unknown farm 'nope'", r.stderr + r.stdout)


if __name__ == "__main__":
    import unittest
    unittest.main()

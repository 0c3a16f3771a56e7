"""End-to-end: the real harrow binary proxying to harrow-origin backends."""
import collections
import http.client
import os
import socket
import subprocess
import threading
import time
import unittest

from harness import (HarrowTestCase, SANITIZED, config_xml, decode_chunked, farm_xml,
                     raw_exchange, request, rule_xml, wait_for)

MiB = 1024 * 1024


class Balancing(HarrowTestCase):
    def test_weights_3_to_1_over_400_requests(self):
        a, b = self.origin("a", "127.0.0.2"), self.origin("b", "127.0.0.3")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.2", a.port, 3),
                                                    ("127.0.0.3", b.port, 1)])],
                                   [rule_xml("r", "f")]), workers=1)
        counts = collections.Counter()
        conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
        for _ in range(400):
            conn.request("GET", "/")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            counts[resp.getheader("X-Origin")] += 1
            resp.read()
        conn.close()
        self.assertEqual(counts, {"a": 300, "b": 100})

    def test_weights_hold_with_two_workers_and_fresh_connections(self):
        a, b = self.origin("a", "127.0.0.2"), self.origin("b", "127.0.0.3")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.2", a.port, 3),
                                                    ("127.0.0.3", b.port, 1)])],
                                   [rule_xml("r", "f")]), workers=2)
        counts = collections.Counter()
        for _ in range(400):
            status, headers, _ = request(h.port)
            self.assertEqual(status, 200)
            counts[headers["x-origin"]] += 1
        # Each worker runs its own exact 3:1 cycle; the two cycles can each be mid-way.
        self.assertLessEqual(abs(counts["a"] - 300), 6, counts)
        self.assertEqual(counts["a"] + counts["b"], 400)

    def test_disabled_server_gets_nothing(self):
        a, b = self.origin("a", "127.0.0.2"), self.origin("b", "127.0.0.3")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.2", a.port, 1),
                                                    ("127.0.0.3", b.port, 1, False)])],
                                   [rule_xml("r", "f")]))
        names = {request(h.port)[1]["x-origin"] for _ in range(20)}
        self.assertEqual(names, {"a"})


class KeepAlive(HarrowTestCase):
    def test_both_sides_keep_alive(self):
        o = self.origin("o")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                                   [rule_xml("r", "f")]))
        conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
        client_sockets = set()
        for i in range(50):
            conn.request("GET", f"/n{i}")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.getheader("X-Origin-Connection-Requests"), str(i + 1))
            resp.read()
            client_sockets.add(id(conn.sock))
        conn.close()
        self.assertEqual(len(client_sockets), 1, "client connection was not kept alive")
        # One upstream connection for 50 requests (plus the stats request itself).
        self.assertEqual(o.stats()["connections_accepted"], 2)

    def test_fresh_client_connections_reuse_pooled_upstream(self):
        o = self.origin("o")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                                   [rule_xml("r", "f")]))
        for _ in range(30):
            self.assertEqual(request(h.port)[0], 200)
        self.assertEqual(o.stats()["connections_accepted"], 2)

    def test_origin_connection_close_is_not_reused(self):
        o = self.origin("o")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                                   [rule_xml("r", "f")]))
        for _ in range(5):
            self.assertEqual(request(h.port, path="/?close=1")[0], 200)
        self.assertEqual(o.stats()["connections_accepted"], 6)

    def test_pipelined_requests_are_answered_in_order(self):
        o = self.origin("o")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                                   [rule_xml("r", "f")]))
        reqs = b"".join(
            b"GET /?delay=%d&header=X-Seq:%d HTTP/1.1\r\nHost: t\r\n\r\n" % (d, i)
            for i, d in enumerate([60, 0, 30]))
        reqs += b"GET /?header=X-Seq:3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        out = raw_exchange(h.port, reqs)
        seqs = [line.split(b":")[1].strip() for line in out.split(b"\r\n")
                if line.lower().startswith(b"x-seq:")]
        self.assertEqual(seqs, [b"0", b"1", b"2", b"3"])
        self.assertEqual(out.count(b"HTTP/1.1 200"), 4)


class Framing(HarrowTestCase):
    def setUp(self):
        super().setUp()
        self.o = self.origin("o")
        # The 100 MiB upload below is above the default maxAllowedContentLength (30,000,000).
        self.h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", self.o.port, 1)])],
                                        [rule_xml("r", "f")],
                                        harrow='<limits maxAllowedContentLength="200000000"/>'))

    def test_chunked_response_is_streamed_chunked(self):
        out = raw_exchange(self.h.port, b"GET /?bytes=100000&chunked=1 HTTP/1.1\r\nHost: t\r\n"
                                        b"Connection: close\r\n\r\n")
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertIn(b"transfer-encoding: chunked", head.lower())
        self.assertEqual(len(decode_chunked(body)), 100000)

    def test_chunked_request_reaches_origin(self):
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in [b"hello ", b"chunked ", b"world"])
        out = raw_exchange(self.h.port, b"POST /?echo=1 HTTP/1.1\r\nHost: t\r\n"
                                        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                           + body + b"0\r\n\r\n")
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertIn(b"200", head.split(b"\r\n")[0])
        self.assertEqual(decode_chunked(body), b"hello chunked world")
        status, headers, data = request(self.h.port, "POST", "/?echo=1",
                                        body=iter([b"abc", b"def"]), chunked=True)
        self.assertEqual((status, data), (200, b"abcdef"))

    def test_content_length_body_round_trip(self):
        payload = os.urandom(300000)
        status, _, data = request(self.h.port, "POST", "/?echo=1", body=payload)
        self.assertEqual(status, 200)
        self.assertEqual(data, payload)

    def test_head_204_304_have_no_body(self):
        for path, method in [("/?bytes=500", "HEAD"), ("/?status=204", "GET"),
                             ("/?status=304", "GET")]:
            conn = http.client.HTTPConnection("127.0.0.1", self.h.port, timeout=10)
            conn.request(method, path)
            resp = conn.getresponse()
            self.assertEqual(resp.read(), b"")
            # The connection stays usable: a body would have desynchronised it.
            conn.request("GET", "/")
            resp2 = conn.getresponse()
            self.assertEqual(resp2.status, 200)
            self.assertEqual(resp2.read(), b"o\n")
            conn.close()

    def test_http10_client_gets_a_close_delimited_or_sized_body(self):
        out = raw_exchange(self.h.port, b"GET /?bytes=1000&chunked=1 HTTP/1.0\r\n\r\n")
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertNotIn(b"chunked", head.lower())
        self.assertEqual(len(body), 1000)

    def test_hop_by_hop_headers_are_dropped_and_forwarding_headers_added(self):
        out = raw_exchange(self.h.port,
                           b"GET /_origin/headers HTTP/1.1\r\nHost: shop.example\r\n"
                           b"Connection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\n"
                           b"Proxy-Authorization: x\r\nTE: trailers\r\nUpgrade: h2c\r\n"
                           b"X-Kept: yes\r\n\r\n")
        head, _, body = out.partition(b"\r\n\r\n")
        lines = body.decode().lower().splitlines()
        names = {l.split(":")[0] for l in lines if ":" in l}
        for dropped in ["x-secret", "keep-alive", "proxy-authorization", "te", "upgrade"]:
            self.assertNotIn(dropped, names)
        self.assertIn("host: shop.example", lines)
        self.assertIn("x-kept: yes", lines)
        xff = [l for l in lines if l.startswith("x-forwarded-for:")]
        self.assertEqual(len(xff), 1)
        self.assertRegex(xff[0], r"x-forwarded-for: 127\.0\.0\.1:\d+$")

    def test_absolute_form_target_reaches_the_origin_in_origin_form(self):
        # RFC 9112 §3.2.2: the authority of an absolute-form target stands for Host (an HTTP/1.0
        # client may send no Host at all); rules and the origin see the path and query.
        for request, host in [
                (b"GET http://shop.example/_origin/headers?a=1 HTTP/1.0\r\n\r\n", "shop.example"),
                (b"GET http://Shop.Example:8080/_origin/headers?a=1 HTTP/1.1\r\n"
                 b"Host: shop.example:8080\r\nConnection: close\r\n\r\n", "shop.example:8080")]:
            with self.subTest(request=request):
                out = raw_exchange(self.h.port, request)
                head, _, body = out.partition(b"\r\n\r\n")
                self.assertIn(b" 200 ", head.split(b"\r\n")[0], out[:200])
                lines = body.decode().splitlines()
                self.assertEqual(lines[0], "GET /_origin/headers?a=1 HTTP/1.1")
                hosts = [l for l in lines if l.lower().startswith("host:")]
                self.assertEqual(len(hosts), 1, lines)
                self.assertEqual(hosts[0].split(":", 1)[1].strip().lower(), host)

    def test_large_body_both_ways_with_bounded_memory(self):
        size = 100 * MiB
        # Download.
        result = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
             self.h.url(f"/?bytes={size}")], capture_output=True, text=True, timeout=300)
        self.assertEqual(result.stdout, f"200 {size}")
        # Upload, streamed from a generator.
        def chunks():
            block = b"x" * 65536
            for _ in range(size // 65536):
                yield block
        conn = http.client.HTTPConnection("127.0.0.1", self.h.port, timeout=300)
        conn.request("PUT", "/upload", body=chunks(), headers={"Content-Length": str(size)})
        resp = conn.getresponse()
        resp.read()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("X-Origin-Request-Bytes"), str(size))
        conn.close()
        if not SANITIZED:
            self.assertLess(self.h.rss_peak_kib(), 64 * 1024, "harrow's peak RSS grew with the body")


class Failures(HarrowTestCase):
    def test_origin_down_gives_502_with_reason(self):
        # Bind then close a port so nothing listens there.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
        s.close()
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", dead_port, 1)])],
                                   [rule_xml("r", "f")]))
        start = time.monotonic()
        status, _, body = request(h.port)
        self.assertEqual(status, 502)
        self.assertIn(b"upstream_connect_refused", body)
        self.assertLess(time.monotonic() - start, 10)
        wait_for(lambda: "upstream_connect_refused" in h.stderr(), what="the failure log line")
        self.assertIn(f"server=127.0.0.1:{dead_port}", h.stderr())

    def test_no_available_server_gives_503(self):
        o = self.origin("o")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1, False)])],
                                   [rule_xml("r", "f")]))
        status, _, body = request(h.port)
        self.assertEqual(status, 503)
        self.assertIn(b"no_server", body)

    def test_no_matching_rule_gives_404(self):
        o = self.origin("o")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                                   [rule_xml("r", "f", pattern="^api/(.*)", syntax="ECMAScript")]))
        self.assertEqual(request(h.port, path="/api/x")[0], 200)
        self.assertEqual(request(h.port, path="/other")[0], 404)

    def test_upstream_timeout_gives_504(self):
        o = self.origin("o")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)],
                                             protocol='<protocol timeout="00:00:01"/>')],
                                   [rule_xml("r", "f")]))
        status, _, body = request(h.port, path="/?hang=1")
        self.assertEqual(status, 504)
        self.assertIn(b"upstream_timeout", body)

    def test_origin_dying_mid_body_closes_the_client(self):
        o = self.origin("o")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                                   [rule_xml("r", "f")]))
        out = raw_exchange(h.port, b"GET /?bytes=100000&abort=5000 HTTP/1.1\r\nHost: t\r\n\r\n")
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertIn(b"200", head.split(b"\r\n")[0])
        self.assertLess(len(body), 100000)
        wait_for(lambda: "upstream_truncated" in h.stderr(), what="the truncation log line")

    def test_malformed_request_gives_400_and_close(self):
        o = self.origin("o")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                                   [rule_xml("r", "f")]))
        out = raw_exchange(h.port, b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400"), out[:100])
        smuggle = (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        self.assertTrue(raw_exchange(h.port, smuggle).startswith(b"HTTP/1.1 400"))
        self.assertEqual(o.stats()["requests"], 0)


class Lifecycle(HarrowTestCase):
    def test_sigterm_lets_in_flight_requests_finish(self):
        o = self.origin("o")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                                   [rule_xml("r", "f")]))
        result = {}

        def slow():
            result["r"] = request(h.port, path="/?delay=700")

        t = threading.Thread(target=slow)
        t.start()
        wait_for(lambda: o.stats()["requests"] >= 1, what="the request to reach the origin")
        code = h.stop()
        t.join(10)
        self.assertEqual(code, 0)
        self.assertEqual(result["r"][0], 200)

    def test_admin_endpoints(self):
        o = self.origin("o")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                                   [rule_xml("r", "f")]))
        request(h.port)
        self.assertEqual(h.admin_get("/healthz"), (200, "ok\n"))
        # Counted as the exchange ends, just after the response is written.
        line = (f'harrow_server_responses_total{{farm="f",server="127.0.0.1:{o.port}",'
                f'pool="",code="2xx"}} 1')
        wait_for(lambda: line in h.admin_get("/metrics")[1] or None, 10, "the response counted")
        status, text = h.admin_get("/metrics")
        self.assertEqual(status, 200)
        # Latency histograms per server: one observation of each kind for one request.
        for name in ["response", "first_byte", "connect"]:
            self.assertIn(f'harrow_server_{name}_seconds_count{{farm="f",server="127.0.0.1:{o.port}",'
                          f'pool=""}} 1', text)
            self.assertIn(f'harrow_server_{name}_seconds_bucket{{farm="f",server="127.0.0.1:{o.port}",'
                          f'pool="",le="+Inf"}} 1', text)
        status, text = h.admin_get("/api/farms")
        self.assertEqual(status, 200)
        self.assertIn('"totalRequests":1', text)
        self.assertRegex(text, r'"requestPerSecond":[0-9.]+,"responseTime":\d+')
        self.assertEqual(h.admin_get("/nope")[0], 404)


if __name__ == "__main__":
    unittest.main()

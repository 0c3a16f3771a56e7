"""harrow-h2-origin and the h2client test library, checked against each other and against curl:
the HTTP/2 tests of Harrow stand on both, so both are tested here on their own."""
import subprocess
import time
import unittest

from h2client import (CONTINUATION, END_HEADERS, PROTOCOL_ERROR,
                      SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_CONCURRENT_STREAMS, Client,
                      NotNegotiated, RawConnection, grpc_call, grpc_frame, grpc_status)
from harness import HarrowTestCase, SelfSignedCertificate

CERT = None


def setUpModule():
    global CERT
    CERT = SelfSignedCertificate()


def tearDownModule():
    CERT.cleanup()


def tls_files():
    return CERT.files()


def curl(*args):
    out = subprocess.run(["curl", "-s", "--max-time", "10", *args], capture_output=True,
                         timeout=30, check=True)
    return out.stdout.decode()


class H2OriginTest(HarrowTestCase):
    def test_curl_speaks_h2c_and_h2_over_tls(self):
        o = self.h2_origin("alpha", tls=tls_files())
        out = curl("--http2-prior-knowledge", "-D", "-", "-o", "/dev/null", "-w",
                   "%{http_version} %{size_download}", f"http://127.0.0.1:{o.port}/bytes/1000")
        self.assertIn("x-origin-name: alpha", out)
        self.assertIn("content-length: 1000", out)
        self.assertTrue(out.endswith("2 1000"), out)
        out = curl("-k", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{size_download}",
                   f"https://127.0.0.1:{o.tls_port}/bytes/70000")
        self.assertEqual(out, "2 70000")
        body = curl("--http2-prior-knowledge", f"http://127.0.0.1:{o.port}/bytes/30")
        self.assertEqual(body, "abcdefghijklmnopqrstuvwxyzabcd")
        code = curl("--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}",
                    f"http://127.0.0.1:{o.port}/no/such/path")
        self.assertEqual(code, "404")

    def test_client_negotiates_h2_by_alpn_and_counts_requests(self):
        o = self.h2_origin("beta", tls=tls_files())
        with Client("127.0.0.1", o.tls_port, tls=True) as c:
            self.assertEqual(c.alpn, "h2")
            self.assertEqual(c.get("/count").body, b"0\n")
            r = c.get("/bytes/5")
            self.assertEqual((r.status, r.body, r.headers["x-origin-name"]), (200, b"abcde", "beta"))
            self.assertEqual(c.get("/nothing").status, 404)
            self.assertEqual(c.get("/count").body, b"2\n")
        # A client that offers only http/1.1 gets no ALPN answer from this h2-only port.
        with self.assertRaises(NotNegotiated) as refused:
            Client("127.0.0.1", o.tls_port, tls=True, alpn=("http/1.1",))
        self.assertIsNone(refused.exception.selected)

    def test_echo_streams_a_large_body_under_flow_control(self):
        o = self.h2_origin("gamma")
        body = bytes(range(256)) * 4096  # 1 MiB: many times the origin's 64 KiB stream window
        with Client("127.0.0.1", o.port) as c:
            r = c.request("POST", "/echo", body=body)
            self.assertEqual((r.status, r.ended), (200, True))
            self.assertEqual(r.body, body)

    def test_grpc_unary_and_stream_echo_each_message_then_trailers(self):
        o = self.h2_origin("delta")
        with Client("127.0.0.1", o.port) as c:
            r = grpc_call(c, "/harrow.test.Echo/Unary", [b"hello"])
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["content-type"], "application/grpc")
            self.assertEqual(r.messages(), [b"hello"])
            self.assertEqual(r.trailers, {"grpc-status": "0", "grpc-message": "OK"})
            # Streaming: each message comes back before the next one is sent.
            sid = c.start("POST", "/harrow.test.Echo/Stream",
                          [("content-type", "application/grpc"), ("te", "trailers")])
            for i, msg in enumerate([b"one", b"two" * 1000, b""]):
                c.send(sid, grpc_frame(msg))
                expect = b"".join(grpc_frame(m) for m in [b"one", b"two" * 1000, b""][:i + 1])
                self.assertEqual(c.read_body(sid, len(expect)), expect)
                self.assertFalse(c.streams[sid].ended)
            c.send(sid, b"", end_stream=True)
            r = c.wait(sid)
            self.assertEqual(r.messages(), [b"one", b"two" * 1000, b""])
            self.assertEqual(grpc_status(r), 0)
            # Unary with two messages, and a message cut short, are errors.
            self.assertEqual(grpc_status(grpc_call(c, "/harrow.test.Echo/Unary", [b"a", b"b"])), 13)
            sid = c.start("POST", "/harrow.test.Echo/Stream", [("content-type", "application/grpc")])
            c.send(sid, grpc_frame(b"whole")[:-2], end_stream=True)
            r = c.wait(sid)
            self.assertEqual(grpc_status(r), 13)
            self.assertEqual(r.trailers["grpc-message"], "request ended inside a message")

    def test_grpc_deadline_failure_and_content_type(self):
        o = self.h2_origin("epsilon")
        with Client("127.0.0.1", o.port) as c:
            # Both slow calls on one connection at once: the deadline ends its call early.
            started = time.monotonic()
            headers = [("content-type", "application/grpc"), ("te", "trailers")]
            short = c.start("POST", "/harrow.test.Echo/Slow", headers + [("grpc-timeout", "200m")])
            c.send(short, grpc_frame(b"late"), end_stream=True)
            long = c.start("POST", "/harrow.test.Echo/Slow", headers + [("grpc-timeout", "5S")])
            c.send(long, grpc_frame(b"in time"), end_stream=True)
            r = c.wait(short)
            self.assertLess(time.monotonic() - started, 1.5)
            self.assertEqual(grpc_status(r), 4)
            self.assertEqual(r.body, b"")
            self.assertTrue(r.ended)
            r = c.wait(long)
            self.assertGreaterEqual(time.monotonic() - started, 1.9)
            self.assertEqual((grpc_status(r), r.messages()), (0, [b"in time"]))

            r = grpc_call(c, "/harrow.test.Echo/Fail", [b"x"])
            self.assertEqual(grpc_status(r), 13)
            self.assertIn("always fails", r.headers["grpc-message"])
            self.assertEqual(c.request("POST", "/harrow.test.Echo/Unary", body=b"x").status, 415)

    def test_zero_window_reader_gets_headers_and_no_data(self):
        o = self.h2_origin("zeta")
        with RawConnection("127.0.0.1", o.port, settings={SETTINGS_INITIAL_WINDOW_SIZE: 0},
                           auto_window=False) as raw:
            sid = raw.request("GET", "/bytes/100000")
            out = raw.collect(1.0)
            self.assertEqual(out.streams[sid].status, 200)
            self.assertEqual(out.streams[sid].data_bytes, 0)
            self.assertFalse(out.closed)
            self.assertEqual(out.settings[SETTINGS_MAX_CONCURRENT_STREAMS], 100)
            # A window for 1000 bytes lets exactly 1000 through; the origin serves others meanwhile.
            raw.window_update(sid, 1000)
            out = raw.collect(1.0, until=lambda o: o.streams[sid].data_bytes >= 1000)
            with Client("127.0.0.1", o.port) as c:
                self.assertEqual(c.get("/bytes/3").body, b"abc")
            raw.collect(0.3)
            self.assertEqual(out.streams[sid].data_bytes, 1000)

    def test_raw_connection_reports_goaway_and_stream_resets(self):
        o = self.h2_origin("eta")
        # A CONTINUATION that follows no HEADERS is a connection error (RFC 9113 §6.10).
        with RawConnection("127.0.0.1", o.port) as raw:
            raw.send_frame(CONTINUATION, END_HEADERS, 1, b"")
            out = raw.read_until_closed(5)
            self.assertTrue(out.closed)
            self.assertEqual(out.goaway_code, PROTOCOL_ERROR)
            self.assertIn(b"CONTINUATION", out.goaway_debug)
        # A malformed request is a stream error: that stream alone is reset (RFC 9113 §8.1.1).
        with RawConnection("127.0.0.1", o.port) as raw:
            no_path = raw.new_stream_id()
            raw.send_headers(no_path, [(":method", "GET"), (":scheme", "http"),
                                       (":authority", "127.0.0.1")])
            upper = raw.new_stream_id()
            raw.send_headers(upper, raw.request_headers("GET", "/bytes/1", [("X-Upper", "1")]))
            good = raw.request("GET", "/bytes/1")
            self.assertEqual(raw.response(good).status, 200)
            out = raw.collect(2, until=lambda o: len(o.resets) >= 2)
            self.assertEqual(out.resets, {no_path: PROTOCOL_ERROR, upper: PROTOCOL_ERROR})
            self.assertIsNone(out.goaway_code)
        # Once the client acknowledged SETTINGS_MAX_CONCURRENT_STREAMS (100), opening more is a
        # connection error.
        with RawConnection("127.0.0.1", o.port) as raw:
            raw.collect(2, until=lambda o: SETTINGS_MAX_CONCURRENT_STREAMS in o.settings)
            self.assertEqual(raw.outcome.settings[SETTINGS_MAX_CONCURRENT_STREAMS], 100)
            ids = raw.open_streams(120)
            out = raw.read_until_closed(5)
            self.assertTrue(out.closed)
            self.assertEqual(out.goaway_code, PROTOCOL_ERROR)
            self.assertEqual(out.goaway_last_stream, ids[99])
        # A rapid-reset burst: every loop in the helper is bounded; the origin survives it.
        with RawConnection("127.0.0.1", o.port, timeout=3) as raw:
            sent = raw.rapid_reset(2000, path="/bytes/10")
            self.assertGreater(sent, 0)
            raw.read_until_closed(3)
        with Client("127.0.0.1", o.port) as c:
            self.assertEqual(c.get("/bytes/2").body, b"ab")


if __name__ == "__main__":
    unittest.main()

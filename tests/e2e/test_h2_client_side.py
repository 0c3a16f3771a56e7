"""End-to-end: HTTP/2 from clients. TLS listeners offer h2 by ALPN (http2="false" turns it off),
plain listeners with http2="true" take HTTP/2 with prior knowledge beside HTTP/1.1. Requests
go through the same rules, farms and logs as HTTP/1; the attacks of the last years each end the
connection with a GOAWAY that names them (h2client.RawConnection sends their frames)."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

from h2client import (SETTINGS_INITIAL_WINDOW_SIZE, RawConnection)
from harness import (HarrowTestCase, SelfSignedCertificate, config_xml, farm_xml, rule_xml,
                     wait_for)

ENHANCE_YOUR_CALM, PROTOCOL_ERROR, REFUSED_STREAM, NO_ERROR = 11, 1, 7, 0


def curl(*args, timeout=30):
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True,
                          timeout=timeout)


CERT = None


def setUpModule():
    global CERT
    CERT = SelfSignedCertificate("h2.test")


def tearDownModule():
    CERT.cleanup()


class Http2(HarrowTestCase):
    def start(self, listen='<listen address="127.0.0.1:0" tls="true"/>', extra="", farms=None,
              rules=None, origin_delay=None):
        self.o = self.origin("o", delay_ms=origin_delay)
        farms = farms or [farm_xml("f", [("127.0.0.1", self.o.port, 1)])]
        rules = rules or [rule_xml("all", "f")]
        self.log_dir = tempfile.TemporaryDirectory(prefix="harrow-h2-log-")
        self.access_log = os.path.join(self.log_dir.name, "access.log")
        harrow = (listen + f'<listen address="127.0.0.1:0" http2="true"/>'
                  f'<certificate certificateFile="{CERT.cert}" keyFile="{CERT.key}"/>'
                  f'<accessLog path="{self.access_log}"/>' + extra)
        self.h = self.harrow(config_xml(farms, rules, harrow), listen=False)
        self.addCleanup(self.log_dir.cleanup)
        return self.h

    def tls_url(self, path="/"):
        return f"https://h2.test:{self.h.tls_ports[0]}{path}"

    def tls_curl(self, *args, path="/"):
        return curl("-k", "--resolve", f"h2.test:{self.h.tls_ports[0]}:127.0.0.1", *args,
                    self.tls_url(path))

    def h2c_curl(self, *args, path="/"):
        return curl("--http2-prior-knowledge", *args, f"http://127.0.0.1:{self.h.port}{path}")

    # --- negotiation

    def test_tls_listener_speaks_h2_and_plain_listener_h2c_beside_http11(self):
        self.start()
        r = self.tls_curl("--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}")
        self.assertEqual(r.stdout.decode(), "2 200", r.stderr)
        r = self.h2c_curl("-o", "/dev/null", "-w", "%{http_version} %{http_code}")
        self.assertEqual(r.stdout.decode(), "2 200", r.stderr)
        # The same plain port still speaks HTTP/1.1.
        r = curl("--http1.1", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                 f"http://127.0.0.1:{self.h.port}/")
        self.assertEqual(r.stdout.decode(), "1.1 200", r.stderr)

    def test_http2_false_keeps_a_tls_listener_on_http11_and_plain_listeners_default_off(self):
        self.start(listen='<listen address="127.0.0.1:0" tls="true" http2="false"/>'
                          '<listen address="127.0.0.2:0"/>')
        r = self.tls_curl("--http2", "-o", "/dev/null", "-w", "%{http_version}")
        self.assertEqual(r.stdout.decode(), "1.1", r.stderr)
        plain = [p for p in self.h.ports]
        text = self.h.stderr()
        default_port = int(re.search(r"listening on http://127\.0\.0\.2:(\d+)", text).group(1))
        r = curl("--http2-prior-knowledge", f"http://127.0.0.2:{default_port}/")
        self.assertNotEqual(r.returncode, 0, "no HTTP/2 without http2=\"true\" on a plain port")
        self.assertTrue(plain)

    # --- the same exchange as HTTP/1

    def test_bodies_stream_both_ways_intact(self):
        self.start()
        payload = os.urandom(3 * 1024 * 1024 + 17)
        with tempfile.NamedTemporaryFile() as f:
            f.write(payload)
            f.flush()
            for run in (self.tls_curl, self.h2c_curl):
                r = run("--data-binary", f"@{f.name}", "-o", "-", path="/echo?echo=1")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, payload)
        r = self.tls_curl("--http2", "-o", "-", path="/big?bytes=2000000")
        self.assertEqual(len(r.stdout), 2000000)

    def test_rules_see_http2_and_the_log_says_so(self):
        rules = ['<rule name="proto" stopProcessing="true"><match url=".*"/>'
                 '<serverVariables><set name="HTTP_X_PROTO" value="{SERVER_PROTOCOL} {HTTPS}"/>'
                 '</serverVariables><action type="Rewrite" url="http://f/{R:0}"/></rule>']
        self.start(rules=rules)
        r = self.tls_curl("--http2", path="/_origin/headers")
        self.assertIn(b"x-proto: http/2 on", r.stdout.lower())
        self.assertIn(b"x-arr-ssl", r.stdout.lower())
        r = self.h2c_curl(path="/_origin/headers")
        self.assertIn(b"x-proto: http/2 off", r.stdout.lower())
        wait_for(lambda: os.path.exists(self.access_log) and
                 open(self.access_log).read().count("HTTP/2") >= 2, 10, "access log lines")

    def test_heads_judged_from_fields_and_from_text_reach_the_origin_alike(self):
        # GET is judged from its fields; PROPFIND (a method llhttp must read) goes through the
        # HTTP/1.1 text. Both reach the origin with the same fields.
        self.start()
        for method in ("GET", "PROPFIND"):
            r = self.h2c_curl("-X", method, "-H", "X-Road: both", "-w", "\n%{http_code}",
                              path="/_origin/headers")
            self.assertTrue(r.stdout.endswith(b"\n200"), (method, r.stdout, r.stderr))
            self.assertIn(b"x-road: both", r.stdout.lower(), method)

    def test_errors_get_their_status_and_reason_over_http2(self):
        farms = [farm_xml("f", [("127.0.0.9", 9, 1)])]
        self.start(farms=farms)
        r = self.tls_curl("--http2", "-w", "\n%{http_code}")
        self.assertTrue(r.stdout.decode().endswith("502"), r.stdout)
        self.assertIn(b"upstream_connect_refused", r.stdout)
        self.assertIn("502 upstream_connect_refused", self.h.stderr())

    def test_many_concurrent_streams_on_one_connection(self):
        self.start()
        r = subprocess.run(["h2load", "-n", "2000", "-c", "2", "-m", "50",
                            f"http://127.0.0.1:{self.h.port}/"], capture_output=True, text=True,
                           timeout=60)
        self.assertIn("2000 succeeded", r.stdout, r.stdout + r.stderr)
        self.assertIn("status codes: 2000 2xx", r.stdout)

    def test_graceful_stop_sends_goaway_and_finishes_open_streams(self):
        self.start(origin_delay=1500)
        slow = subprocess.Popen(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null",
                                 "-w", "%{http_code}", f"http://127.0.0.1:{self.h.port}/slow"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(lambda: self.o.stats().get("requests", 0) >= 1 or None, 10, "the slow request")
        self.h.proc.send_signal(signal.SIGTERM)
        out, err = slow.communicate(timeout=30)
        self.assertEqual(out.decode(), "200", err)
        self.assertEqual(self.h.proc.wait(30), 0)

    @unittest.skipUnless(shutil.which("chromium"), "chromium is not installed")
    def test_chromium_loads_the_status_page_over_h2(self):
        # The farm's one server is Harrow's own admin listener: a browser loads the status page
        # through the https listener, and the access log says which protocol it spoke.
        # The admin listener answers its own address only: the farm sends it, not the client's.
        self.start(farms=[farm_xml("f", [("127.0.0.1", 1, 1)],
                                   protocol='<protocol preserveHostHeader="false"/>')])
        with open(self.h.config_path) as f:
            text = f.read()
        self.h.reload(re.sub(r'httpPort="\d+"', f'httpPort="{self.h.admin_port}"', text))
        with tempfile.TemporaryDirectory(prefix="harrow-chromium-") as profile:
            r = subprocess.run(
                ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--ignore-certificate-errors", f"--user-data-dir={profile}",
                 "--host-resolver-rules=MAP h2.test 127.0.0.1", "--dump-dom", self.tls_url("/")],
                capture_output=True, text=True, timeout=60)
        self.assertIn("Harrow", r.stdout, r.stderr[-2000:])
        self.assertIn("<table", r.stdout)
        wait_for(lambda: any("HTTP/2" in line and "Chrom" in line
                             for line in open(self.access_log).read().splitlines()) or None,
                 10, "an access log line of Chromium's HTTP/2 request")

    def raw(self, **kwargs):
        c = RawConnection("127.0.0.1", self.h.port, authority="h2.test", **kwargs)
        self.addCleanup(c.close)
        return c

    def test_an_idle_connection_gets_goaway_and_is_closed(self):
        self.start(extra='<timeouts clientKeepAlive="00:00:01"/>')
        c = self.raw()
        self.assertEqual(c.response(c.request("GET", "/")).status, 200)
        o = c.read_until_closed(15)
        self.assertEqual(o.goaway_code, NO_ERROR, o)  # nothing was lost
        self.assertTrue(o.closed, o)
        self.assertIn("harrow_http2_streams_total 1", self.h.admin_get("/metrics")[1])
        # Closed after its lingering read (the client's FIN or 2 s).
        wait_for(lambda: "harrow_http2_connections_active 0" in self.h.admin_get("/metrics")[1]
                 or None, 10, "the HTTP/2 connection to close")

    # --- limits and attacks

    def test_rapid_reset_gets_goaway_and_bounded_work(self):
        self.start()
        c = self.raw()
        c.rapid_reset(3000)
        o = c.collect(10, until=lambda o: o.goaway_code is not None)
        self.assertEqual(o.goaway_code, ENHANCE_YOUR_CALM, o)
        self.assertEqual(o.goaway_debug, b"h2_rapid_reset")
        self.assertIn("h2_rapid_reset", self.h.stderr())
        self.assertLessEqual(self.o.stats().get("requests", 0), 300)
        c2 = self.raw()
        self.assertEqual(c2.response(c2.request("GET", "/")).status, 200)

    def test_continuation_flood_gets_goaway(self):
        self.start()
        for fragment in (0, 1000):
            c = self.raw()
            c.continuation_flood(10000, fragment_bytes=fragment)
            o = c.read_until_closed(10)
            self.assertEqual(o.goaway_code, ENHANCE_YOUR_CALM, (fragment, o))
            self.assertEqual(o.goaway_debug, b"h2_continuation_flood")
        self.assertIn("h2_continuation_flood", self.h.stderr())

    def test_hpack_bomb_is_a_431_and_the_connection_lives_on(self):
        self.start()
        c = self.raw()
        sid = c.hpack_bomb(12000)
        self.assertEqual(c.response(sid).status, 431)
        self.assertEqual(c.response(c.request("GET", "/")).status, 200)
        self.assertIsNone(c.outcome.goaway_code)
        self.assertLess(self.h.rss_peak_kib(), 200 * 1024)

    def test_oversized_header_list_is_a_431(self):
        self.start()
        c = self.raw()
        self.assertEqual(c.response(c.oversized_headers(100_000)).status, 431)

    def test_settings_ping_and_empty_data_floods_get_goaway(self):
        self.start()
        for attack in ("settings_flood", "ping_flood", "empty_data_flood"):
            c = self.raw(answer_ping=False)
            getattr(c, attack)(20000)
            o = c.read_until_closed(10)
            self.assertEqual(o.goaway_code, ENHANCE_YOUR_CALM, (attack, o))
            self.assertEqual(o.goaway_debug, b"h2_flood", attack)
            self.assertTrue(o.closed, attack)
        self.assertIn("h2_flood", self.h.stderr())

    def test_streams_above_the_limit_are_not_served(self):
        self.start(extra='<http2 maxConcurrentStreams="10"/>')
        c = self.raw()
        c.collect(2, until=lambda o: o.settings)  # the client has Harrow's SETTINGS
        ids = c.open_streams(12)
        o = c.collect(3)
        # RFC 9113 §5.1.2: a stream error (REFUSED_STREAM) or, for a client that ignores the
        # limit it acknowledged, a connection error (GOAWAY PROTOCOL_ERROR).
        refused = all(o.resets.get(sid) == REFUSED_STREAM for sid in ids[10:])
        self.assertTrue(refused or o.goaway_code == PROTOCOL_ERROR, o)
        self.assertLessEqual(self.o.stats().get("requests", 0), 10)

    def test_zero_window_reader_is_cut_after_client_send(self):
        self.start(extra='<timeouts clientSend="00:00:02"/>')
        c = self.raw(settings={SETTINGS_INITIAL_WINDOW_SIZE: 0}, auto_window=False)
        sid = c.request("GET", "/x?bytes=4000000")
        o = c.collect(20, until=lambda o: o.goaway_code is not None or sid in o.resets)
        self.assertTrue(sid in o.resets or o.goaway_code is not None, o)
        wait_for(lambda: "client_send_timeout" in self.h.stderr() or None, 10,
                 "the client_send_timeout line")

    def test_malformed_requests_are_stream_errors(self):
        self.start()
        c = self.raw()
        no_path = [(":method", "GET"), (":scheme", "http"), (":authority", "h2.test")]
        c.send_headers(1, no_path)
        c.send_headers(3, c.request_headers("GET", "/", [("connection", "keep-alive")]))
        c.send_headers(5, c.request_headers("GET", "/", [("host", "other.test")]))
        c.send_headers(7, c.request_headers("GET", "/"))
        o = c.collect(10, until=lambda o: 7 in o.streams and o.streams[7].ended)
        self.assertEqual(o.resets.get(1), PROTOCOL_ERROR, o)  # no :path
        self.assertEqual(o.resets.get(3), PROTOCOL_ERROR, o)  # a connection-specific field
        self.assertEqual(o.streams[5].status, 400, o)  # :authority and Host disagree
        self.assertEqual(o.streams[7].status, 200, o)
        self.assertIsNone(o.goaway_code)

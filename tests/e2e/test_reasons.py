"""End-to-end: every failure reason Harrow can produce on loopback is produced by a scripted
fault, answered with its status, named in the error log line and counted under its metric
label (core/base/failure.h: no failure without a reason)."""
import http.client
import re
import socket
import threading
import time

from harness import HarrowTestCase, dead_port, config_xml, farm_xml, raw_exchange, request, rule_xml, wait_for


class BrokenOrigin:
    """A server that misbehaves on purpose: 'reset' closes before answering, 'garbage' answers
    with something that is not HTTP."""

    def __init__(self, mode):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.mode = mode
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.sock.settimeout(0.2)
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            try:
                conn.recv(65536)
                if self.mode == "garbage":
                    conn.sendall(b"HELLO THERE\r\n\r\n")
            except OSError:
                pass
            conn.close()

    def stop(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


class Reasons(HarrowTestCase):
    def setUp(self):
        super().setUp()
        self.live = self.origin("live")
        self.reset = BrokenOrigin("reset")
        self.garbage = BrokenOrigin("garbage")
        self.addCleanup(self.reset.stop)
        self.addCleanup(self.garbage.stop)
        farms = [
            farm_xml("live", [("127.0.0.1", self.live.port, 1)]),
            farm_xml("slow", [("127.0.0.2", self.live.port, 1)],
                     protocol='<protocol timeout="00:00:01"/>'),
            farm_xml("dead", [("127.0.0.1", dead_port(), 1)]),
            farm_xml("none", [("127.0.0.1", self.live.port, 1, False)]),
            farm_xml("reset", [("127.0.0.1", self.reset.port, 1)]),
            farm_xml("garbage", [("127.0.0.1", self.garbage.port, 1)]),
            # Its httpsPort speaks plain HTTP: the TLS handshake fails.
            f'<webFarm name="plaintls"><server address="127.0.0.1"><applicationRequestRouting '
            f'httpPort="{self.live.port}" httpsPort="{self.live.port}"/></server></webFarm>',
        ]
        rules = [rule_xml(name, name, pattern=f"^{name}/.*", syntax="ECMAScript")
                 for name in ["live", "dead", "none", "reset", "garbage"]]
        rules.append(rule_xml("slow", "slow", pattern="^slow/.*", syntax="ECMAScript"))
        rules.append('<rule name="drop" stopProcessing="true"><match url="^drop"/>'
                     '<action type="AbortRequest"/></rule>')
        rules.append('<rule name="tls" stopProcessing="true"><match url="^tls/(.*)"/>'
                     '<action type="Rewrite" url="https://plaintls/{R:1}"/></rule>')
        rules.append('<rule name="open" stopProcessing="true"><match url="^open/(.*)"/>'
                     '<action type="Rewrite" url="http://{HTTP_HOST}/{R:1}"/></rule>')
        text = config_xml(farms, rules, harrow='<timeouts clientHeader="00:00:01"/>').replace(
            "<system.webServer>", '<system.webServer><proxy enabled="true"/>')
        # The live origin must also answer on 127.0.0.2 for the "slow" farm: start one there.
        self.slow_origin = self.origin("slow", host="127.0.0.2")
        text = text.replace(f'<server address="127.0.0.2"><applicationRequestRouting httpPort="{self.live.port}"',
                            f'<server address="127.0.0.2"><applicationRequestRouting httpPort="{self.slow_origin.port}"')
        self.h = self.harrow(text)

    def assert_reason(self, reason, status):
        h = self.h
        wait_for(lambda: re.search(rf"harrow: \w+: {status} {reason} ", h.stderr()), 10,
                 f"a log line for {reason}")
        _, metrics = h.admin_get("/metrics")
        count = re.search(rf'harrow_request_failures_total{{reason="{reason}"}} (\d+)', metrics)
        self.assertTrue(count and int(count.group(1)) >= 1, f"metric for {reason}")
        per_listener = re.search(
            rf'harrow_listener_request_failures_total{{listener="http://127.0.0.1:{h.port}",'
            rf'reason="{reason}"}} (\d+)', metrics)
        self.assertTrue(per_listener and int(per_listener.group(1)) >= 1,
                        f"per-listener metric for {reason}")

    def test_every_reason_is_answered_logged_and_counted(self):
        port = self.h.port
        # The request's own fault.
        out = raw_exchange(port, b"GET /live/ HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400"), out[:60])
        self.assert_reason("bad_request", 400)
        big = b"X-Big: " + b"a" * 70000 + b"\r\n"
        out = raw_exchange(port, b"GET /live/ HTTP/1.1\r\nHost: t\r\n" + big + b"\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 431"), out[:60])
        self.assert_reason("request_header_too_large", 431)
        out = raw_exchange(port, b"GET /live/ HTTP/1.1\r\nHost: t\r\n")  # never finishes its head
        self.assertTrue(out.startswith(b"HTTP/1.1 408"), out[:60])
        self.assert_reason("client_header_timeout", 408)
        out = raw_exchange(port, b"POST /slow/ HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n12345")
        self.assertTrue(out.startswith(b"HTTP/1.1 408"), out[:60])
        self.assert_reason("client_body_timeout", 408)
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /slow/?hang=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.2)
        s.close()
        self.assert_reason("client_aborted", 0)
        # Routing.
        self.assertEqual(request(port, path="/nowhere")[0], 404)
        self.assert_reason("no_route", 404)
        self.assertEqual(raw_exchange(port, b"GET /drop HTTP/1.1\r\nHost: t\r\n\r\n"), b"")
        self.assert_reason("rule_aborted", 0)
        self.assertEqual(request(port, path="/none/")[0], 503)
        self.assert_reason("no_server", 503)
        self.assertEqual(request(port, path="/tls/")[0], 502)
        self.assert_reason("upstream_tls", 502)
        self.assertEqual(request(port, path="/open/", headers={"Host": "127.0.0.1:9"})[0], 502)
        self.assert_reason("proxy_target_unknown", 502)
        # The server's fault.
        self.assertEqual(request(port, path="/dead/")[0], 502)
        self.assert_reason("upstream_connect_refused", 502)
        self.assertEqual(request(port, path="/reset/")[0], 502)
        self.assert_reason("upstream_reset", 502)
        self.assertEqual(request(port, path="/garbage/")[0], 502)
        self.assert_reason("upstream_invalid_response", 502)
        self.assertEqual(request(port, path="/slow/?hang=1")[0], 504)
        self.assert_reason("upstream_timeout", 504)
        out = raw_exchange(port, b"GET /live/?bytes=100000&abort=10 HTTP/1.1\r\nHost: t\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 200"))
        self.assert_reason("upstream_truncated", 0)
        # upstream_connect_failed and upstream_connect_timeout need a network that drops or
        # rejects packets other than by refusal; loopback only refuses.

"""End-to-end: the framing and the fields Harrow forwards come only from its own parse.

- A Connection header never strips a field that frames or routes a message (Content-Length,
  Transfer-Encoding, Host): a request that asks for it is refused (RFC 9110 §7.6.1 names
  Connection options; HAProxy answers 400), a response keeps its framing.
- A close-delimited response (RFC 9112 §6.3 item 8) is forwarded whole; over upstream TLS
  only the server's close_notify ends it, a bare TCP close is a truncation (RFC 9112 §9.8).
- '_' twins of the fields Harrow frames, routes or sets never reach the origin; several
  X-Forwarded-For lines are merged.
- X-ARR-SSL / X-ARR-ClientCert only go with requests that came over TLS.
- An idempotent request whose fresh connection closed before any response byte is retried once.
- Transfer codings other than chunked are forwarded as they came, never relabelled.
- OPTIONS * goes as it came; an absolute-form target may spell Host's default port.
"""
import gzip
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time

from harness import (HarrowTestCase, config_xml, decode_chunked, farm_xml, request, rule_xml,
                     wait_for)
from test_hardening import OK2, RawOrigin, exchange, read_all

H = b"Host: t\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"


def post_with_connection(option):
    return (b"POST /ok HTTP/1.1\r\n" + H + b"Connection: " + option + b"\r\n"
            b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED)


# Requests refused because a Connection header names a field that frames or routes them
# (name, bytes, status, reason token, "head"): the table make_seeds.py also reads.
FRAMING_REJECTED = [
    ("connection_names_content_length", post_with_connection(b"Content-Length"), 400, "bad_framing", "head"),
    ("connection_names_content_length_in_a_list", post_with_connection(b"close, content-length"),
     400, "bad_framing", "head"),
    ("connection_names_content_length_second_line",
     b"POST /ok HTTP/1.1\r\n" + H + b"Connection: keep-alive\r\nConnection: CONTENT-LENGTH\r\n"
     b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED, 400, "bad_framing", "head"),
    ("connection_names_transfer_encoding",
     b"POST /ok HTTP/1.1\r\n" + H + b"Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n", 400, "bad_framing", "head"),
    ("connection_names_host", b"GET /ok HTTP/1.1\r\n" + H + b"Connection: Host\r\n\r\n",
     400, "bad_framing", "head"),
]

# Near misses that are proxied (each with Connection: close).
FRAMING_ACCEPTED = [
    ("connection_names_te_and_keep_alive",
     b"GET /ok HTTP/1.1\r\n" + H + b"Connection: close, TE, Keep-Alive\r\nTE: trailers\r\n\r\n"),
    ("underscore_twins", b"POST /ok HTTP/1.1\r\n" + H + b"Connection: close\r\nContent-Length: 2\r\n"
     b"Content_Length: 40\r\nTransfer_Encoding: chunked\r\nX_Forwarded_For: 6.6.6.6\r\n\r\nhi"),
    ("forwarded_for_lines", b"GET /ok HTTP/1.1\r\n" + H + b"Connection: close\r\n"
     b"X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2, 3.3.3.3\r\n\r\n"),
    ("options_asterisk", b"OPTIONS * HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"),
    ("absolute_form_default_port", b"GET http://t:80/ok HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"),
    ("absolute_form_host_default_port", b"GET http://t/ok HTTP/1.1\r\nHost: t:80\r\nConnection: close\r\n\r\n"),
]

GZ = gzip.compress(b"compressed body " * 20, mtime=0)  # fixed bytes: the seeds are reproducible

# Server answers (path: (bytes, then)): the table make_seeds.py also reads for corpus/response.
SCRIPT = {
    "/ok": (OK2, "keep"),
    "/conn-cl": (b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 2\r\n\r\nok", "keep"),
    "/conn-cl-close": (b"HTTP/1.1 200 OK\r\nConnection: close, Content-Length\r\nContent-Length: 2\r\n\r\nok",
                       "keep"),
    "/close-delimited": ([b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello ", b"until the close"],
                         "close"),
    "/te-gzip-chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                         + b"%x\r\n" % len(GZ) + GZ + b"\r\n0\r\n\r\n", "keep"),
    "/te-gzip": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n" + GZ, "close"),
    "/te-chunked-gzip": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n" + GZ, "close"),
    "*": (b"HTTP/1.1 200 OK\r\nAllow: GET\r\nContent-Length: 0\r\n\r\n", "keep"),
}


def responses(data):
    return re.findall(rb"HTTP/1\.1 (\d\d\d) ", data)


def split_response(data):
    head, _, body = data.partition(b"\r\n\r\n")
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields.setdefault(name.strip().lower().decode(), []).append(value.strip().decode())
    return head, fields, body


class FlakyOrigin:
    """Closes its first `drops` connections as soon as it has read a request head (no answer
    byte), then answers every request with OK2. Records every request head it read."""

    def __init__(self, drops, host="127.0.0.1"):
        self.drops = drops
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self.serve, args=(conn, self.connections), daemon=True).start()

    def serve(self, conn, number):
        conn.settimeout(10)
        buf = b""
        try:
            while self.running:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                self.requests.append((number, head))
                if number <= self.drops:
                    return  # closed before any response byte
                m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                need = int(m.group(1)) if m else 0
                while len(buf) < need:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                buf = buf[need:]
                # Connection: close, so no connection is pooled and every exchange is fresh.
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                return
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


class FramingTestCase(HarrowTestCase):
    def start(self, script=SCRIPT, access_log=False):
        self.raw = RawOrigin(script)
        self.addCleanup(self.raw.stop)
        self.log_path = None
        harrow = ""
        if access_log:
            self.log_dir = self.tmpdir()
            self.log_path = os.path.join(self.log_dir, "access.json")
            harrow = f'<accessLog path="{self.log_path}" format="json"/>'
        self.h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", self.raw.port, 1)])],
                                        [rule_xml("r", "f")], harrow=harrow))
        return self.h

    def tmpdir(self):
        import tempfile
        d = tempfile.TemporaryDirectory(prefix="harrow-framing-")
        self.addCleanup(d.cleanup)
        return d.name

    def access_rows(self, count):
        def rows():
            if not os.path.exists(self.log_path):
                return None
            with open(self.log_path) as f:
                lines = [json.loads(line) for line in f if line.strip()]
            return lines if len(lines) >= count else None
        return wait_for(rows, 10, f"{count} access log lines")

    def origin_heads(self):
        return [head for _, head in self.raw.requests]


class ConnectionNamedFraming(FramingTestCase):
    def test_request_whose_connection_names_a_framing_field_is_refused(self):
        h = self.start()
        for name, data, status, token, _ in FRAMING_REJECTED:
            with self.subTest(name=name):
                before = len(self.raw.requests)
                out, closed = exchange(h.port, data)
                self.assertEqual(responses(out), [str(status).encode()], out[:300])
                self.assertIn(token.encode(), out)
                self.assertTrue(closed)
                # Nothing of it, and above all not its body as a request, reached the origin.
                self.assertEqual(len(self.raw.requests), before, self.raw.requests[before:])
                # Another client's request gets its own answer.
                status2, _, body2 = request(h.port, path="/ok")
                self.assertEqual((status2, body2), (200, b"ok"))
        self.assertNotIn("/smuggled", self.raw.paths())
        log = h.stderr()
        self.assertRegex(log, r"400 bad_framing .*detail=Connection names Content-Length")
        self.assertRegex(log, r"400 bad_framing .*detail=Connection names Transfer-Encoding")
        self.assertRegex(log, r"400 bad_framing .*detail=Connection names Host")

    def test_smuggling_attempt_and_a_second_client(self):
        h = self.start()
        attacker = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        attacker.sendall(post_with_connection(b"Content-Length"))
        victim = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        victim.sendall(b"GET /ok?victim HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
        attacked, victim_out = read_all(attacker), read_all(victim)
        attacker.close()
        victim.close()
        self.assertEqual(responses(attacked), [b"400"])
        self.assertIn(b"bad_framing", attacked)
        self.assertEqual(responses(victim_out), [b"200"])
        self.assertTrue(victim_out.endswith(b"\r\n\r\nok"), victim_out)
        self.assertEqual(self.raw.paths(), ["/ok?victim"])

    def test_near_misses_are_proxied(self):
        h = self.start()
        for name, data in FRAMING_ACCEPTED:
            with self.subTest(name=name):
                out, closed = exchange(h.port, data)
                self.assertEqual(responses(out), [b"200"], out[:300])
                self.assertTrue(closed)

    def test_response_content_length_named_by_connection_still_frames_it(self):
        h = self.start()
        for path in (b"/conn-cl", b"/conn-cl-close"):
            with self.subTest(path=path):
                s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
                s.sendall(b"GET " + path + b" HTTP/1.1\r\n" + H + b"\r\n"
                          b"GET /ok HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
                out = read_all(s)
                s.close()
                self.assertEqual(responses(out), [b"200", b"200"], out)
                head, fields, body = split_response(out)
                self.assertEqual(fields.get("content-length"), ["2"], head)
                self.assertNotIn("transfer-encoding", fields)
                self.assertTrue(body.startswith(b"okHTTP/1.1 200 "), body)
                self.assertTrue(out.endswith(b"\r\n\r\nok"))


class CloseDelimitedResponse(FramingTestCase):
    def test_http11_client_gets_a_complete_chunked_body(self):
        h = self.start(access_log=True)
        out, closed = exchange(h.port, b"GET /close-delimited HTTP/1.1\r\n" + H + b"\r\n")
        head, fields, body = split_response(out)
        self.assertEqual(responses(out), [b"200"], out)
        self.assertEqual(fields.get("transfer-encoding"), ["chunked"], head)
        self.assertTrue(body.endswith(b"0\r\n\r\n"), body)
        self.assertEqual(decode_chunked(body), b"hello until the close")
        rows = self.access_rows(1)
        self.assertEqual(rows[0]["status"], 200)
        self.assertEqual(rows[0]["reason"], "ok")
        self.assertNotIn("upstream_truncated", h.stderr())
        # The server's connection ended with the body: the next request takes a new one.
        self.assertEqual(request(h.port, path="/ok")[2], b"ok")
        self.assertEqual(self.raw.connections, 2)

    def test_http10_client_gets_the_body_ended_by_the_close(self):
        h = self.start()
        out, closed = exchange(h.port, b"GET /close-delimited HTTP/1.0\r\n\r\n")
        head, fields, body = split_response(out)
        self.assertTrue(closed)
        self.assertEqual(responses(out), [b"200"], out)
        self.assertNotIn("transfer-encoding", fields)
        self.assertEqual(body, b"hello until the close")
        self.assertNotIn("upstream_truncated", h.stderr())

    def test_curl_reads_it_without_error(self):
        h = self.start()
        run = subprocess.run(["curl", "-sS", "--max-time", "20", h.url("/close-delimited")],
                             capture_output=True, timeout=30)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.stdout, b"hello until the close")


class TlsRawOrigin(RawOrigin):
    """RawOrigin behind TLS, driven through memory BIOs so the records' grouping on the wire is
    exact. The last piece of an answer goes out in one send with what follows it:
    "close_notify" (the alert, then the TCP close), "late_close_notify" (the alert in a later
    send) or "abrupt" (the TCP close alone, no alert)."""

    def __init__(self, script, cert, key):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        super().__init__(script)

    def serve(self, conn, number):
        conn.settimeout(10)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.context.wrap_bio(incoming, outgoing, server_side=True)

        def flush():
            data = outgoing.read()
            if data:
                conn.sendall(data)

        def pump():
            flush()
            data = conn.recv(65536)
            if not data:
                raise EOFError
            incoming.write(data)

        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pump()
            buf = b""
            while b"\r\n\r\n" not in buf:
                try:
                    buf += tls.read(65536)
                except ssl.SSLWantReadError:
                    pump()
            head = buf.partition(b"\r\n\r\n")[0]
            self.requests.append((number, head))
            answer, after = self.script[head.split(b" ")[1].decode()]
            pieces = answer if isinstance(answer, list) else [answer]
            for piece in pieces[:-1]:
                tls.write(piece)
                flush()
                time.sleep(0.05)
            tls.write(pieces[-1])
            if after == "late_close_notify":
                flush()
                time.sleep(0.1)
            if after in ("close_notify", "late_close_notify"):
                try:
                    tls.unwrap()
                except ssl.SSLWantReadError:
                    pass  # close_notify is written; Harrow's own is not awaited
            flush()
        except (OSError, EOFError, ssl.SSLError):
            pass
        finally:
            conn.close()


TLS_SCRIPT = {
    "/close-delimited": (SCRIPT["/close-delimited"][0], "close_notify"),
    "/close-delimited-late": (SCRIPT["/close-delimited"][0], "late_close_notify"),
    "/close-delimited-abrupt": (SCRIPT["/close-delimited"][0], "abrupt"),
    "/te-gzip": (SCRIPT["/te-gzip"][0], "close_notify"),
    "/te-gzip-abrupt": (SCRIPT["/te-gzip"][0], "abrupt"),
    "/cl-close": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "close_notify"),
}


class CloseDelimitedOverUpstreamTls(FramingTestCase):
    """The same answers over an https upstream: the server's close_notify ends the body."""

    @classmethod
    def setUpClass(cls):
        from test_tls import Certificates
        cls.certs = Certificates()

    @classmethod
    def tearDownClass(cls):
        cls.certs.cleanup()

    def start(self):
        cert, key = self.certs.pem("origin")
        self.raw = TlsRawOrigin(TLS_SCRIPT, cert, key)
        self.addCleanup(self.raw.stop)
        self.log_dir = self.tmpdir()
        self.log_path = os.path.join(self.log_dir, "access.json")
        farm = (f'<webFarm name="secure"><server address="127.0.0.1">'
                f'<applicationRequestRouting httpPort="{self.raw.port}" '
                f'httpsPort="{self.raw.port}"/></server></webFarm>')
        rule = ('<rule name="tls" stopProcessing="true"><match url=".*"/>'
                '<action type="Rewrite" url="https://secure/{R:0}"/></rule>')
        self.h = self.harrow(config_xml([farm], [rule], harrow=(
            f'<upstreamTls caFile="{self.certs.ca}"/>'
            f'<accessLog path="{self.log_path}" format="json"/>')))
        return self.h

    def test_http11_client_gets_a_complete_chunked_body(self):
        h = self.start()
        for n, path in enumerate((b"/close-delimited", b"/close-delimited-late"), 1):
            with self.subTest(path=path):
                out, closed = exchange(h.port, b"GET " + path + b" HTTP/1.1\r\n" + H +
                                       b"Connection: close\r\n\r\n")
                head, fields, body = split_response(out)
                self.assertEqual(responses(out), [b"200"], out)
                self.assertEqual(fields.get("transfer-encoding"), ["chunked"], head)
                self.assertTrue(body.endswith(b"0\r\n\r\n"), body)
                self.assertEqual(decode_chunked(body), b"hello until the close")
                rows = self.access_rows(n)
                self.assertEqual((rows[-1]["status"], rows[-1]["reason"]), (200, "ok"))
        self.assertNotIn("upstream_truncated", h.stderr())

    def test_http10_client_gets_the_body_ended_by_the_close(self):
        h = self.start()
        out, closed = exchange(h.port, b"GET /close-delimited HTTP/1.0\r\n\r\n")
        head, fields, body = split_response(out)
        self.assertTrue(closed)
        self.assertEqual(responses(out), [b"200"], out)
        self.assertEqual(body, b"hello until the close")
        self.assertNotIn("upstream_truncated", h.stderr())

    def test_transfer_coding_not_chunked_is_delimited_by_close_notify(self):
        h = self.start()
        out, closed = exchange(h.port, b"GET /te-gzip HTTP/1.1\r\n" + H + b"\r\n")
        head, fields, body = split_response(out)
        self.assertEqual(responses(out), [b"200"], out[:200])
        self.assertTrue(closed)
        self.assertEqual(fields.get("transfer-encoding"), ["gzip"], head)
        self.assertEqual(body, GZ)
        self.assertEqual(self.access_rows(1)[0]["reason"], "ok")
        self.assertNotIn("upstream_truncated", h.stderr())

    def test_content_length_body_then_close_notify_in_the_same_read(self):
        h = self.start()
        for _ in range(2):
            self.assertEqual(request(h.port, path="/cl-close")[:3:2], (200, b"ok"))
        self.assertEqual(self.raw.connections, 2)  # not reused after close_notify
        self.assertNotIn("upstream_truncated", h.stderr())

    def test_tcp_close_without_close_notify_is_a_truncation(self):
        h = self.start()
        for n, path in enumerate((b"/close-delimited-abrupt", b"/te-gzip-abrupt"), 1):
            with self.subTest(path=path):
                out, closed = exchange(h.port, b"GET " + path + b" HTTP/1.1\r\n" + H +
                                       b"Connection: close\r\n\r\n")
                head, fields, body = split_response(out)
                self.assertTrue(closed)
                # The head (and the bytes received) went out; the response is never completed.
                self.assertEqual(responses(out), [b"200"], out[:200])
                if path == b"/close-delimited-abrupt":
                    self.assertEqual(fields.get("transfer-encoding"), ["chunked"], head)
                    self.assertFalse(body.endswith(b"0\r\n\r\n"), body)
                rows = self.access_rows(n)
                self.assertEqual(rows[-1]["reason"], "upstream_truncated", rows[-1])
        # Harrow is unharmed: a well-closed answer follows.
        out, _ = exchange(h.port, b"GET /close-delimited HTTP/1.0\r\n\r\n")
        self.assertEqual(split_response(out)[2], b"hello until the close")


class ForwardedFields(FramingTestCase):
    def sent_head(self, extra):
        h = self.h
        out, _ = exchange(h.port, b"GET /ok HTTP/1.1\r\n" + H + b"Connection: close\r\n" + extra + b"\r\n")
        self.assertEqual(responses(out), [b"200"], out[:300])
        return self.origin_heads()[-1]

    def test_underscore_twins_never_reach_the_origin(self):
        self.start()
        twins = [b"Content_Length: 40", b"Transfer_Encoding: chunked", b"X_Forwarded_For: 6.6.6.6",
                 b"X_ARR_SSL: forged", b"X_ARR_ClientCert: forged", b"X_ARR_LOG_ID: forged",
                 b"X_Original_URL: /admin", b"Max_Forwards: 99", b"Proxy_Connection: x",
                 b"Keep_Alive: 5"]
        head = self.sent_head(b"".join(t + b"\r\n" for t in twins) + b"X_Custom_Name: kept\r\n")
        for t in twins:
            self.assertNotIn(t.split(b":")[0].lower(), head.lower(), head)
        self.assertNotIn(b"6.6.6.6", head)
        self.assertNotIn(b"forged", head)
        self.assertNotIn(b"/admin", head)
        self.assertIn(b"\r\nX_Custom_Name: kept", head)
        self.assertRegex(head, rb"\r\nX-Original-URL: /ok(\r\n|$)")

    def test_several_forwarded_for_lines_are_merged_in_order(self):
        self.start()
        head = self.sent_head(b"X-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2, 3.3.3.3\r\n")
        lines = [l for l in head.split(b"\r\n") if l.lower().startswith(b"x-forwarded-for:")]
        self.assertEqual(len(lines), 1, head)
        self.assertRegex(lines[0], rb"^X-Forwarded-For: 1\.1\.1\.1, 2\.2\.2\.2, 3\.3\.3\.3, "
                                   rb"127\.0\.0\.1(:\d+)?$")

    def test_arr_ssl_headers_only_over_tls(self):
        self.start()
        head = self.sent_head(b"X-ARR-SSL: forged\r\nX-ARR-ClientCert: forged\r\n")
        self.assertNotIn(b"x-arr-ssl", head.lower())
        self.assertNotIn(b"x-arr-clientcert", head.lower())
        self.assertIn(b"\r\nX-ARR-LOG-ID: ", head)


class Retries(HarrowTestCase):
    def start(self, drops):
        self.origin_ = FlakyOrigin(drops)
        self.addCleanup(self.origin_.stop)
        return self.harrow(config_xml([farm_xml("f", [("127.0.0.1", self.origin_.port, 1)])],
                                      [rule_xml("r", "f")]))

    def retries_metric(self, h):
        _, metrics = h.admin_get("/metrics")
        return sum(int(n) for n in re.findall(r'harrow_server_retries_total{[^}]*} (\d+)', metrics))

    def test_idempotent_request_is_retried_once_on_a_new_connection(self):
        h = self.start(drops=1)
        for method in (b"GET", b"HEAD", b"OPTIONS", b"DELETE"):
            with self.subTest(method=method):
                self.origin_.connections = 0
                self.origin_.drops = 1
                before = len(self.origin_.requests)
                out, _ = exchange(h.port, method + b" /r HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
                self.assertEqual(responses(out), [b"200"], out)
                self.assertEqual(len(self.origin_.requests) - before, 2)
        self.assertGreaterEqual(self.retries_metric(h), 4)
        self.assertRegex(h.stderr(), r"upstream_reset .*retries=0")

    def test_retry_happens_once_only(self):
        h = self.start(drops=5)
        out, _ = exchange(h.port, b"GET /r HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
        self.assertEqual(responses(out), [b"502"], out)
        self.assertEqual(len(self.origin_.requests), 2)

    def test_post_is_not_retried(self):
        h = self.start(drops=1)
        for body in (b"x", b""):
            with self.subTest(body=body):
                self.origin_.connections = 0
                before = len(self.origin_.requests)
                out, _ = exchange(h.port, b"POST /r HTTP/1.1\r\n" + H + b"Connection: close\r\n"
                                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
                self.assertEqual(responses(out), [b"502"], out)
                self.assertIn(b"upstream_reset", out)
                self.assertEqual(len(self.origin_.requests) - before, 1)
        self.assertEqual(self.retries_metric(h), 0)


class TransferCodings(FramingTestCase):
    def test_chunked_final_keeps_the_codings_and_the_chunks(self):
        h = self.start()
        out, _ = exchange(h.port, b"GET /te-gzip-chunked HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
        head, fields, body = split_response(out)
        self.assertEqual(responses(out), [b"200"], out[:200])
        te = ", ".join(fields.get("transfer-encoding", []))
        self.assertEqual(te, "gzip, chunked", head)
        self.assertEqual(decode_chunked(body), GZ)
        self.assertEqual(gzip.decompress(decode_chunked(body)), b"compressed body " * 20)

    def test_chunked_not_final_is_delimited_by_the_close(self):
        h = self.start()
        for path, te in ((b"/te-gzip", "gzip"), (b"/te-chunked-gzip", "chunked, gzip")):
            with self.subTest(path=path):
                out, closed = exchange(h.port, b"GET " + path + b" HTTP/1.1\r\n" + H +
                                       b"Connection: close\r\n\r\n")
                head, fields, body = split_response(out)
                self.assertEqual(responses(out), [b"200"], out[:200])
                self.assertTrue(closed)
                self.assertEqual(", ".join(fields.get("transfer-encoding", [])), te, head)
                self.assertEqual(fields.get("connection"), ["close"], head)
                self.assertEqual(body, GZ)
        self.assertNotIn("upstream_truncated", h.stderr())

    def test_http10_client_is_never_sent_relabelled_codings(self):
        h = self.start()
        out, _ = exchange(h.port, b"GET /te-gzip-chunked HTTP/1.0\r\n\r\n")
        self.assertEqual(responses(out), [b"502"], out[:200])
        self.assertIn(b"upstream_invalid_response", out)
        self.assertNotIn(GZ[:10], out)
        # The server's connection was not reused for what followed.
        self.assertEqual(request(h.port, path="/ok")[2], b"ok")


class RequestTargets(FramingTestCase):
    def test_options_asterisk_goes_as_it_came(self):
        h = self.start()
        out, _ = exchange(h.port, b"OPTIONS * HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
        self.assertEqual(responses(out), [b"200"], out)
        self.assertTrue(self.origin_heads()[-1].startswith(b"OPTIONS * HTTP/1.1\r\n"),
                        self.origin_heads()[-1])

    def test_absolute_form_with_the_default_port_is_forwarded(self):
        h = self.start()
        for target, host in ((b"http://t:80/ok", b"t"), (b"http://t/ok", b"t:80")):
            with self.subTest(target=target, host=host):
                out, _ = exchange(h.port, b"GET " + target + b" HTTP/1.1\r\nHost: " + host +
                                  b"\r\nConnection: close\r\n\r\n")
                self.assertEqual(responses(out), [b"200"], out)
        out, _ = exchange(h.port, b"GET http://t:8080/ok HTTP/1.1\r\nHost: t\r\n\r\n")
        self.assertEqual(responses(out), [b"400"], out)
        self.assertIn(b"bad_host", out)


if __name__ == "__main__":
    import unittest
    unittest.main()

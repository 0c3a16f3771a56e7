"""TLS end to end: https listeners (SNI, X-ARR-SSL, {HTTPS}, client certificates, reload),
upstream https to an origin in TLS mode, and a flood of garbage handshakes. Certificates are
made at test time with the `openssl` command."""
import base64
import http.client
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (HARROW, HarrowTestCase, config_xml, farm_xml, request, rule_xml, wait_for)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


class Certificates:
    """A CA, server certificates for a.test, b.test and the origin (127.0.0.1), a second
    a.test certificate (for rotation) and a client certificate, all signed by the CA."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="harrow-tls-")
        self.ca = self.path("ca.pem")
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-keyout", self.path("ca.key"), "-out", self.ca,
                "-subj", "/C=US/ST=Washington/O=Harrow Test/CN=Harrow Test CA")
        self.issue("a", "/O=Harrow/CN=a.test", "DNS:a.test")
        self.issue("b", "/O=Harrow/CN=b.test", "DNS:b.test")
        self.issue("a2", "/O=Harrow Renewed/CN=a.test", "DNS:a.test")
        self.issue("origin", "/CN=origin.test", "DNS:origin.test,IP:127.0.0.1")
        self.issue("client", "/O=Harrow/CN=client.test", "DNS:client.test")
        self.other_ca = self.path("other-ca.pem")
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-keyout", self.path("other-ca.key"), "-out", self.other_ca,
                "-subj", "/CN=Some Other CA")

    def path(self, name):
        return os.path.join(self.dir, name)

    def issue(self, name, subject, san):
        key, csr, ext = self.path(name + ".key"), self.path(name + ".csr"), self.path(name + ".ext")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                "-subj", subject)
        with open(ext, "w") as f:
            f.write(f"subjectAltName={san}\n")
        openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.path("ca.key"),
                "-CAcreateserial", "-days", "2", "-out", self.path(name + ".pem"),
                "-extfile", ext)

    def pem(self, name):
        return self.path(name + ".pem"), self.path(name + ".key")

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


CERTS = None


def setUpModule():
    global CERTS
    CERTS = Certificates()


def tearDownModule():
    CERTS.cleanup()


def certificate_xml(host, name, default=False, chain=False):
    cert, key = CERTS.pem(name)
    extra = ' default="true"' if default else ""
    if chain:
        extra += f' chainFile="{CERTS.ca}"'
    return f'<certificate host="{host}" certificateFile="{cert}" keyFile="{key}"{extra}/>'


def tls_harrow_xml(farms, rules, extra=""):
    return config_xml(farms, rules,
                      '<listen address="127.0.0.1:0" tls="true"/>' +
                      certificate_xml("a.test", "a", default=True, chain=True) +
                      certificate_xml("b.test", "b") + extra)


def client_context(cafile=None):
    ctx = ssl.create_default_context(cafile=cafile or CERTS.ca)
    return ctx


class NamedHttps(http.client.HTTPConnection):
    """HTTPS to 127.0.0.1:port with SNI and certificate checks for `name` (curl's --resolve)."""

    def __init__(self, port, name, context=None):
        super().__init__("127.0.0.1", port, timeout=30)
        self.name = name
        self.context = context or client_context()

    def connect(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        self.sock = self.context.wrap_socket(raw, server_hostname=self.name)


def tls_request(port, host, path="/", headers=None, context=None):
    """One HTTPS request on a fresh connection with SNI `host`; returns (status, headers,
    body, peer certificate)."""
    conn = NamedHttps(port, host, context)
    conn.request("GET", path, headers={"Host": host, **(headers or {})})
    resp = conn.getresponse()
    body = resp.read()
    peer = conn.sock.getpeercert()
    hdrs = {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    return resp.status, hdrs, body, peer


def subject_of(peer):
    return dict(x[0] for x in peer["subject"])


def origin_headers(body):
    """The request as /_origin/headers echoes it: {lower-case name: [values]}."""
    out = {}
    for line in body.decode().splitlines()[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            out.setdefault(name.strip().lower(), []).append(value.strip())
    return out


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True,
                          timeout=30)


class HttpsListener(HarrowTestCase):
    def start(self, extra="", rules=None, farms=None):
        o = self.origin("o")
        farms = farms or [farm_xml("f", [("127.0.0.1", o.port, 1)])]
        rules = rules or [rule_xml("all", "f", pattern=".*", syntax="ECMAScript")]
        h = self.harrow(tls_harrow_xml(farms, rules, extra))
        self.assertEqual(len(h.tls_ports), 1, h.stderr())
        self.assertRegex(h.stderr(), r"harrow: listening on https://127\.0\.0\.1:\d+")
        return o, h, h.tls_ports[0]

    def test_sni_selects_the_certificate_for_each_name(self):
        _, h, port = self.start()
        for name in ("a.test", "b.test"):
            # curl checks the certificate against the CA and the name it asked for.
            r = curl("--cacert", CERTS.ca, "--resolve", f"{name}:{port}:127.0.0.1",
                     f"https://{name}:{port}/_origin/headers")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(f"Host: {name}:{port}".encode(), r.stdout)
            status, _, _, peer = tls_request(port, name, "/_origin/headers")
            self.assertEqual(status, 200)
            self.assertEqual(subject_of(peer)["commonName"], name)

    def test_unknown_name_gets_the_default_certificate(self):
        _, _, port = self.start()
        ctx = client_context()
        ctx.check_hostname = False
        status, _, _, peer = tls_request(port, "unknown.test", "/", context=ctx)
        self.assertEqual(status, 200)
        self.assertEqual(subject_of(peer)["commonName"], "a.test")

    def test_unknown_name_can_be_refused_with_an_alert(self):
        _, _, port = self.start('<tls unknownServerName="reject"/>')
        ctx = client_context()
        ctx.check_hostname = False
        with self.assertRaises(ssl.SSLError) as caught:
            tls_request(port, "unknown.test", "/", context=ctx)
        self.assertIn("UNRECOGNIZED_NAME", str(caught.exception).upper())
        self.assertEqual(tls_request(port, "b.test", "/")[0], 200)

    def test_only_tls_1_2_and_1_3(self):
        _, _, port = self.start()
        for version, ok in ((ssl.TLSVersion.TLSv1_2, True), (ssl.TLSVersion.TLSv1_3, True)):
            ctx = client_context()
            ctx.minimum_version = ctx.maximum_version = version
            self.assertEqual(tls_request(port, "a.test", "/", context=ctx)[0], 200)
        r = curl("--cacert", CERTS.ca, "--resolve", f"a.test:{port}:127.0.0.1", "--tlsv1.1",
                 "--tls-max", "1.1", f"https://a.test:{port}/")
        self.assertNotEqual(r.returncode, 0)

    def test_alpn_prefers_h2_then_http_1_1(self):
        _, _, port = self.start()
        for offered, chosen in ((["h2", "http/1.1"], "h2"), (["http/1.1", "h2"], "h2"),
                                (["http/1.1"], "http/1.1")):
            ctx = client_context()
            ctx.set_alpn_protocols(offered)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="a.test") as s:
                    self.assertEqual(s.selected_alpn_protocol(), chosen, offered)

    def test_x_arr_ssl_reaches_the_origin_and_replaces_a_client_value(self):
        o, h, port = self.start('<listen address="127.0.0.1:0"/>')
        status, _, body, _ = tls_request(port, "b.test", "/_origin/headers",
                                         headers={"X-ARR-SSL": "forged"})
        self.assertEqual(status, 200)
        values = origin_headers(body)["x-arr-ssl"]
        self.assertEqual(len(values), 1, values)
        bits, cipher_bits, issuer, subject = values[0].split("|")
        self.assertEqual(bits, "2048")
        self.assertIn(cipher_bits, ("128", "256"))
        self.assertEqual(issuer, "C=US, S=Washington, O=Harrow Test, CN=Harrow Test CA")
        self.assertEqual(subject, "O=Harrow, CN=b.test")
        # Plain HTTP: no header at all (applications test for its presence), and a client
        # value is still dropped.
        _, _, body = request(h.port, path="/_origin/headers", headers={"X-ARR-SSL": "forged"})
        self.assertNotIn("x-arr-ssl", origin_headers(body))

    def test_https_server_variable_is_on_over_tls(self):
        o, h, port = self.start('<listen address="127.0.0.1:0"/>', rules=[
            '<rule name="tls" stopProcessing="true"><match url=".*"/><conditions>'
            '<add input="{HTTPS}" pattern="^ON$"/></conditions>'
            '<action type="CustomResponse" statusCode="299" statusReason="Secure"/></rule>',
            rule_xml("all", "f", pattern=".*", syntax="ECMAScript")])
        self.assertEqual(tls_request(port, "a.test", "/")[0], 299)
        self.assertEqual(request(h.port, path="/")[0], 200)

    def test_plain_http_on_the_tls_port_is_answered_400(self):
        _, _, port = self.start()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data)
        self.assertIn(b"plain HTTP request was sent to an HTTPS port", data)

    def test_large_bodies_both_ways_and_keep_alive(self):
        _, _, port = self.start()
        conn = NamedHttps(port, "a.test")
        payload = os.urandom(3_000_000)
        conn.request("POST", "/?echo=1", body=payload, headers={"Host": "a.test"})
        resp = conn.getresponse()
        self.assertEqual(resp.read(), payload)
        conn.request("GET", "/?bytes=5000000&chunked=1", headers={"Host": "a.test"})
        resp = conn.getresponse()
        body = resp.read()
        self.assertEqual(len(body), 5_000_000)
        self.assertEqual(body[:26], b"abcdefghijklmnopqrstuvwxyz")
        self.assertEqual(resp.getheader("X-Origin-Connection-Requests"), "2")
        conn.close()

    def test_session_resumption_with_tickets_across_workers(self):
        o = self.origin("o")
        h = self.harrow(tls_harrow_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                                       [rule_xml("all", "f", pattern=".*", syntax="ECMAScript")]),
                        workers=2)
        port = h.tls_ports[0]
        ctx = client_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # the session is known right after it
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.test") as s:
                session = s.session
        reused = 0
        for _ in range(8):  # both workers see some of these connections
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="a.test", session=session) as s:
                    reused += s.session_reused
        self.assertEqual(reused, 8)

    def test_tls_1_3_resumption_hands_out_a_fresh_ticket_each_time(self):
        _, _, port = self.start()
        ctx = client_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        session = None
        reused = []
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="a.test", session=session) as s:
                    s.sendall(b"GET /?bytes=1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                    while s.recv(4096):  # the ticket comes before the response
                        pass
                    reused.append(s.session_reused)
                    session = s.session  # a TLS 1.3 ticket is used once: take the new one
        self.assertEqual(reused, [False, True, True, True])

    def test_client_certificate_reaches_the_origin(self):
        _, _, port = self.start(
            f'<tls clientCertificate="optional" clientCaFile="{CERTS.ca}"/>')
        cert, key = CERTS.pem("client")
        ctx = client_context()
        ctx.load_cert_chain(cert, key)
        _, _, body, _ = tls_request(port, "a.test", "/_origin/headers", context=ctx,
                                    headers={"X-ARR-ClientCert": "forged"})
        with open(cert) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        self.assertEqual(origin_headers(body)["x-arr-clientcert"],
                         [base64.b64encode(der).decode()])
        # Optional: a client without one still gets through, without the header (a forged
        # one is dropped).
        _, _, body, _ = tls_request(port, "a.test", "/_origin/headers",
                                    headers={"X-ARR-ClientCert": "forged"})
        self.assertNotIn("x-arr-clientcert", origin_headers(body))

    def test_reload_picks_up_a_renewed_certificate_and_keeps_open_connections(self):
        o = self.origin("o")
        cert = os.path.join(CERTS.dir, "live.pem")
        key = os.path.join(CERTS.dir, "live.key")
        shutil.copy(CERTS.path("a.pem"), cert)
        shutil.copy(CERTS.path("a.key"), key)
        text = config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                          [rule_xml("all", "f", pattern=".*", syntax="ECMAScript")],
                          '<listen address="127.0.0.1:0" tls="true"/>'
                          f'<certificate host="a.test" certificateFile="{cert}" keyFile="{key}"/>')
        h = self.harrow(text)
        port = h.tls_ports[0]
        self.assertEqual(subject_of(tls_request(port, "a.test")[3])["organizationName"], "Harrow")
        kept = NamedHttps(port, "a.test")
        kept.request("GET", "/?bytes=3", headers={"Host": "a.test"})
        self.assertEqual(kept.getresponse().read(), b"abc")
        shutil.copy(CERTS.path("a2.pem"), cert)
        shutil.copy(CERTS.path("a2.key"), key)
        h.reload()
        peer = tls_request(port, "a.test")[3]
        self.assertEqual(subject_of(peer)["organizationName"], "Harrow Renewed")
        # The connection opened before the reload goes on with the certificate it started with.
        kept.request("GET", "/?bytes=10", headers={"Host": "a.test"})
        self.assertEqual(kept.getresponse().read(), b"abcdefghij")
        self.assertEqual(subject_of(kept.sock.getpeercert())["organizationName"], "Harrow")
        kept.close()

    def test_reload_with_a_broken_key_is_rejected_and_serving_goes_on(self):
        o = self.origin("o")
        h = self.harrow(tls_harrow_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                                       [rule_xml("all", "f", pattern=".*", syntax="ECMAScript")]))
        port = h.tls_ports[0]
        bad = tls_harrow_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                             [rule_xml("all", "f", pattern=".*", syntax="ECMAScript")]).replace(
            CERTS.path("b.key"), CERTS.path("a.key"))
        with open(h.config_path, "w") as f:
            f.write(bad)
        before = h.stderr().count("reload rejected")
        h.proc.send_signal(__import__("signal").SIGHUP)
        wait_for(lambda: h.stderr().count("reload rejected") > before, 10, "reload rejected")
        self.assertIn("does not match", h.stderr())
        self.assertEqual(tls_request(port, "b.test")[0], 200)

    def test_garbage_handshakes_do_not_disturb_a_normal_client(self):
        _, h, port = self.start()
        stop = threading.Event()
        sent = [0]

        def flood():
            junk = os.urandom(2048)
            deadline = time.monotonic() + 10
            while not stop.is_set() and sent[0] < 2000 and time.monotonic() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                        s.sendall(b"\x16\x03\x01\x02\x00" + junk)
                        s.recv(64)
                except OSError:
                    pass
                sent[0] += 1

        threads = [threading.Thread(target=flood) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for i in range(30):
                status, _, body, _ = tls_request(port, "a.test", f"/?bytes={i}")
                self.assertEqual(status, 200)
                self.assertEqual(len(body), i)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertGreater(sent[0], 0)
        _, metrics = h.admin_get("/metrics")
        failures = int(re.search(r"(?m)^harrow_tls_handshake_failures_total (\d+)", metrics)[1])
        self.assertGreater(failures, 0)


class CheckConfig(unittest.TestCase):
    def check(self, harrow_xml):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "harrow.config")
            with open(path, "w") as f:
                f.write(config_xml([farm_xml("f", [("127.0.0.1", 8080, 1)])],
                                   [rule_xml("all", "f")], harrow_xml))
            r = subprocess.run([HARROW, "--check-config", "--config", path],
                               capture_output=True, text=True, timeout=30)
            return r, path

    def test_missing_certificate_file(self):
        r, path = self.check('<listen address="127.0.0.1:0" tls="true"/>\n'
                             '<certificate certificateFile="/nonexistent/c.pem" '
                             'keyFile="/nonexistent/c.key"/>')
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertRegex(r.stderr, re.escape(path) + r":\d+:\d+: error: cannot open "
                         r"/nonexistent/c\.pem")

    def test_key_that_does_not_match(self):
        cert, _ = CERTS.pem("a")
        _, key = CERTS.pem("b")
        r, path = self.check(f'<certificate certificateFile="{cert}" keyFile="{key}"/>')
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertRegex(r.stderr, re.escape(path) + r":\d+:\d+: error: keyFile .* does not "
                         r"match certificateFile")

    def test_good_certificates_pass(self):
        r, _ = self.check(certificate_xml("a.test", "a", default=True) +
                          certificate_xml("*.b.test", "b"))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_unknown_attribute_is_an_error(self):
        cert, key = CERTS.pem("a")
        r, path = self.check(f'<certificate certificateFile="{cert}" keyFile="{key}" '
                             'pasword="x"/>')
        self.assertEqual(r.returncode, 2)
        self.assertIn(path, r.stderr)


class UpstreamHttps(HarrowTestCase):
    def start(self, upstream_tls):
        o = self.origin("o", tls=CERTS.pem("origin"))
        farm = (f'<webFarm name="secure"><server address="127.0.0.1">'
                f'<applicationRequestRouting httpPort="{o.port}" httpsPort="{o.tls_port}"/>'
                f'</server></webFarm>')
        rule = ('<rule name="tls" stopProcessing="true"><match url=".*"/>'
                '<action type="Rewrite" url="https://secure/{R:0}"/></rule>')
        h = self.harrow(config_xml([farm], [rule], upstream_tls))
        return o, h

    def test_verified_against_a_configured_ca(self):
        o, h = self.start(f'<upstreamTls caFile="{CERTS.ca}"/>')
        status, hdrs, body = request(h.port, path="/_origin/headers")
        self.assertEqual(status, 200, body)
        # The plain port never saw a direct connection from Harrow: only the TLS front's.
        status, hdrs, body = request(h.port, path="/?bytes=100")
        self.assertEqual((status, len(body)), (200, 100))
        # Pooled: the second request went over the same TLS connection.
        self.assertEqual(hdrs["x-origin-connection-requests"], "2")

    def test_verification_failure_is_502_upstream_tls(self):
        o, h = self.start(f'<upstreamTls caFile="{CERTS.other_ca}"/>')
        status, _, body = request(h.port, path="/")
        self.assertEqual(status, 502)
        self.assertIn(b"upstream_tls", body)
        self.assertIn("certificate verify failed", h.stderr())

    def test_farm_opt_out_for_lab_setups_is_logged_loudly(self):
        o, h = self.start(f'<upstreamTls caFile="{CERTS.other_ca}"/>'
                          '<upstreamTls farm="secure" verifyCertificate="false"/>')
        self.assertEqual(request(h.port, path="/")[0], 200)
        self.assertRegex(h.stderr(), r"warn: upstream TLS certificate verification is OFF for "
                                     r"farm secure")

    def test_websocket_tunnel_over_tls_on_both_sides(self):
        o = self.origin("o", tls=CERTS.pem("origin"))
        farm = (f'<webFarm name="secure"><server address="127.0.0.1">'
                f'<applicationRequestRouting httpPort="{o.port}" httpsPort="{o.tls_port}"/>'
                f'</server></webFarm>')
        rule = ('<rule name="tls" stopProcessing="true"><match url=".*"/>'
                '<action type="Rewrite" url="https://secure/{R:0}"/></rule>')
        h = self.harrow(tls_harrow_xml([farm], [rule], f'<upstreamTls caFile="{CERTS.ca}"/>'))
        ctx = client_context()
        with socket.create_connection(("127.0.0.1", h.tls_ports[0]), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.test") as s:
                s.sendall(b"GET /_origin/ws?hello=HI HTTP/1.1\r\nHost: a.test\r\n"
                          b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          b"Sec-WebSocket-Version: 13\r\n\r\n")
                data = b""
                while b"\r\n\r\n" not in data:
                    data += s.recv(65536)
                head, rest = data.split(b"\r\n\r\n", 1)
                self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
                for message in [b"ping", os.urandom(300_000)]:
                    s.sendall(message)
                    got = rest
                    rest = b""
                    while len(got) < len(message) + (2 if message == b"ping" else 0):
                        chunk = s.recv(65536)
                        self.assertTrue(chunk, "closed mid-echo")
                        got += chunk
                    expected = (b"HI" + message) if message == b"ping" else message
                    self.assertEqual(got, expected)

    def test_large_bodies_over_upstream_tls(self):
        o, h = self.start(f'<upstreamTls caFile="{CERTS.ca}"/>')
        payload = os.urandom(2_000_000)
        status, _, body = request(h.port, method="POST", path="/?echo=1", body=payload)
        self.assertEqual((status, body == payload), (200, True))
        status, _, body = request(h.port, path="/?bytes=4000000")
        self.assertEqual((status, len(body)), (200, 4_000_000))


class HttpsHealthProbes(HarrowTestCase):
    def start(self, upstream_tls):
        o = self.origin("o", tls=CERTS.pem("origin"))
        health = ('<applicationRequestRouting><healthCheck url="https://origin.test/_origin/headers" '
                  'interval="00:00:01" timeout="00:00:02" responseMatch="Host: origin.test"/>'
                  '</applicationRequestRouting>')
        farm = (f'<webFarm name="secure"><server address="127.0.0.1">'
                f'<applicationRequestRouting httpPort="{o.port}" httpsPort="{o.tls_port}"/>'
                f'</server>{health}</webFarm>')
        rule = ('<rule name="tls" stopProcessing="true"><match url=".*"/>'
                '<action type="Rewrite" url="https://secure/{R:0}"/></rule>')
        return o, self.harrow(config_xml([farm], [rule], upstream_tls))

    def probes(self, h, result):
        m = re.search(rf'harrow_health_probes_total{{farm="secure",[^}}]*result="{result}"}} (\d+)',
                      h.admin_get("/metrics")[1])
        return int(m.group(1)) if m else 0

    def test_https_probe_passes_with_a_trusted_certificate(self):
        o, h = self.start(f'<upstreamTls caFile="{CERTS.ca}"/>')
        wait_for(lambda: self.probes(h, "pass") >= 2, 10, "passing https probes")
        self.assertNotIn("unhealthy", h.stderr())
        # Traffic goes there too, over its own TLS connection.
        self.assertEqual(request(h.port, path="/?bytes=5")[2], b"abcde")

    def test_https_probe_fails_on_an_untrusted_certificate(self):
        o, h = self.start(f'<upstreamTls caFile="{CERTS.other_ca}"/>')
        wait_for(lambda: "-> unhealthy" in h.stderr(), 15, "the server marked unhealthy")
        self.assertEqual(self.probes(h, "pass"), 0)
        self.assertIn("certificate verify failed", h.stderr())


if __name__ == "__main__":
    unittest.main()

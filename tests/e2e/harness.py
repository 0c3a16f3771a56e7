"""Helpers for Harrow's end-to-end tests: start the real `harrow` binary and `harrow-origin`
backends on loopback port 0, talk to them with real clients, and clean up.

Tests never sleep to wait for something: they poll with a deadline (`wait_for`).
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest

HARROW = os.environ.get("HARROW_BIN", "harrow")
ORIGIN = os.environ.get("HARROW_ORIGIN_BIN", "harrow-origin")
H2_ORIGIN = os.environ.get("HARROW_H2_ORIGIN_BIN", "harrow-h2-origin")
SANITIZED = os.environ.get("HARROW_SANITIZED") == "1"


def dead_port():
    """A loopback port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Origin:
    """One harrow-origin process."""

    def __init__(self, name, host="127.0.0.1", workers=1, port=0, delay_ms=None, tls=None):
        """tls: (certificate PEM, key PEM) to also serve https on `tls_port`."""
        self.name = name
        self.host = host
        self.workers = workers
        self.delay_ms = delay_ms
        self.tls = tls
        delay = ["--delay", str(delay_ms)] if delay_ms is not None else []
        tls_args = ["--tls-cert", tls[0], "--tls-key", tls[1]] if tls else []
        self.proc = subprocess.Popen(
            [ORIGIN, "--name", name, "--listen", f"{host}:{port}", "--workers", str(workers),
             *delay, *tls_args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on http://[^ ]+:(\d+)", line)
        if not m:
            self.proc.kill()
            raise AssertionError(f"origin {name} did not start: {line!r}")
        self.port = int(m.group(1))
        self.tls_port = None
        if tls:
            line = self.proc.stdout.readline()
            m = re.search(r"listening on https://[^ ]+:(\d+)", line)
            if not m:
                self.proc.kill()
                raise AssertionError(f"origin {name} did not start https: {line!r}")
            self.tls_port = int(m.group(1))

    def stats(self):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        conn.request("GET", "/_origin/stats")
        data = json.loads(conn.getresponse().read())
        conn.close()
        return data

    def restart(self):
        """Starts again on the same address and port (after stop())."""
        self.__init__(self.name, self.host, self.workers, self.port, self.delay_ms, self.tls)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.proc.stdout.closed:
            self.proc.stdout.close()


class H2Origin:
    """One harrow-h2-origin process: HTTP/2 with prior knowledge on `port`, and with `tls`
    (certificate PEM, key PEM) h2 by ALPN on `tls_port`."""

    def __init__(self, name, host="127.0.0.1", tls=None):
        self.name = name
        self.host = host
        tls_args = ["--tls-cert", tls[0], "--tls-key", tls[1]] if tls else []
        self.proc = subprocess.Popen([H2_ORIGIN, "--name", name, "--listen", f"{host}:0", *tls_args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.port = self._port(r"listening on http://[^ ]+:(\d+)")
        self.tls_port = self._port(r"listening on https://[^ ]+:(\d+)") if tls else None

    def _port(self, pattern):
        line = self.proc.stdout.readline()
        m = re.search(pattern, line)
        if not m:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"h2 origin {self.name} did not start: {line!r}")
        return int(m.group(1))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.proc.stdout.closed:
            self.proc.stdout.close()


def farm_xml(name, servers, protocol="", extra=""):
    """servers: list of (address, port, weight[, enabled])."""
    rows = []
    for s in servers:
        address, port, weight = s[0], s[1], s[2]
        enabled = "" if len(s) < 4 or s[3] else ' enabled="false"'
        rows.append(f'<server address="{address}"{enabled}>'
                    f'<applicationRequestRouting httpPort="{port}" weight="{weight}"/></server>')
    arr = f"<applicationRequestRouting>{protocol}{extra}</applicationRequestRouting>" if (protocol or extra) else ""
    return f'<webFarm name="{name}">{"".join(rows)}{arr}</webFarm>'


def rule_xml(name, farm, pattern="*", syntax="Wildcard", conditions=""):
    return (f'<rule name="{name}" patternSyntax="{syntax}" stopProcessing="true">'
            f'<match url="{pattern}"/>{conditions}'
            f'<action type="Rewrite" url="http://{farm}/{{R:0}}"/></rule>')


def config_xml(farms, rules, harrow=""):
    return ("<configuration><webFarms>" + "".join(farms) + "</webFarms>"
            "<system.webServer><rewrite><globalRules>" + "".join(rules) +
            "</globalRules></rewrite></system.webServer>"
            f"<harrow>{harrow}</harrow></configuration>")


class SelfSignedCertificate:
    """A throwaway self-signed EC P-256 certificate for `name` (CN and subjectAltName) in a
    temporary directory: `cert`, `key` (mode 0600, as Harrow wants key files), `files()`."""

    def __init__(self, name="127.0.0.1"):
        self.dir = tempfile.TemporaryDirectory(prefix="harrow-cert-")
        self.cert = os.path.join(self.dir.name, "cert.pem")
        self.key = os.path.join(self.dir.name, "key.pem")
        kind = "IP" if re.fullmatch(r"[\d.]+|[0-9a-fA-F:]+", name) else "DNS"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-subj", f"/CN={name}", "-addext", f"subjectAltName={kind}:{name}",
                        "-keyout", self.key, "-out", self.cert],
                       check=True, capture_output=True, timeout=60)
        os.chmod(self.key, 0o600)

    def files(self):
        return self.cert, self.key

    def cleanup(self):
        self.dir.cleanup()


class Harrow:
    """One harrow process, started on port 0 with its stderr captured to a file."""

    def __init__(self, config_text, workers=1, extra_args=(), listen=True):
        self.dir = tempfile.TemporaryDirectory(prefix="harrow-e2e-")
        self.config_path = os.path.join(self.dir.name, "harrow.config")
        with open(self.config_path, "w") as f:
            f.write(config_text)
        self.log_path = os.path.join(self.dir.name, "stderr.log")
        self.log = open(self.log_path, "w")
        listen_args = ["--listen", "127.0.0.1:0"] if listen else []
        self.proc = subprocess.Popen(
            [HARROW, "--config", self.config_path, "--workers", str(workers),
             *listen_args, "--admin", "127.0.0.1:0", *extra_args],
            stdout=subprocess.DEVNULL, stderr=self.log)
        text = wait_for(lambda: self._started(), 20, "harrow to print its listening lines")
        self.ports = [int(p) for p in
                      re.findall(r"harrow: listening on http://127\.0\.0\.1:(\d+)", text)]
        self.tls_ports = [int(p) for p in
                          re.findall(r"harrow: listening on https://127\.0\.0\.1:(\d+)", text)]
        self.port = self.ports[0] if self.ports else None
        self.admin_port = int(re.search(r"harrow: admin on http://127\.0\.0\.1:(\d+)", text).group(1))

    def _started(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"harrow exited with {self.proc.returncode}: {self.stderr()}")
        text = self.stderr()
        return text if ("harrow: admin on" in text and "harrow: listening on" in text) else None

    def stderr(self):
        with open(self.log_path) as f:
            return f.read()

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def rss_peak_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def admin_post(self, path, body="", headers=None):
        """A change through the admin API; it carries X-Harrow-Admin, which a browser form or
        simple cross-site request cannot (the admin API refuses changes without it)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        conn.request("POST", path, body=body,
                     headers={"X-Harrow-Admin": "1"} if headers is None else headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, data.decode()

    def reload(self, text=None, count=None):
        """Rewrites the config (if given), sends SIGHUP and waits for the reload log line."""
        if text is not None:
            tmp = self.config_path + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, self.config_path)
        before = self.stderr().count("configuration reloaded") if count is None else count
        self.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: self.stderr().count("configuration reloaded") > before, 10, "reload")

    def admin_get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        return resp.status, body.decode()

    def server_state(self, endpoint):
        """(state, isHealthy) of the server whose endpoint is `endpoint` in /api/farms, or None."""
        farms = json.loads(self.admin_get("/api/farms")[1])
        for farm in farms["farms"]:
            for s in farm["servers"]:
                if s["endpoint"] == endpoint:
                    return s["state"], s["isHealthy"]
        return None

    def stop(self, timeout=30):
        """SIGTERM; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("harrow did not stop within %ss of SIGTERM" % timeout)
        self.log.close()
        code = self.proc.returncode
        self.dir.cleanup()
        return code


def request(port, method="GET", path="/", headers=None, body=None, timeout=30, chunked=False):
    """One request on a fresh connection; returns (status, headers dict lower-cased, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
    resp = conn.getresponse()
    data = resp.read()
    hdrs = {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    return resp.status, hdrs, data


def decode_chunked(body):
    """Decodes an HTTP/1.1 chunked body (no trailers); raises on bad framing."""
    out, rest = b"", body
    while True:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            raise ValueError("truncated chunked body")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out += rest[:size]
        if rest[size:size + 2] != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
        rest = rest[size + 2:]


def raw_exchange(port, data, timeout=10, until_close=True):
    """Sends raw bytes and returns everything read until the peer closes (or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    chunks = []
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
            if not until_close:
                break
    except socket.timeout:
        pass
    s.close()
    return b"".join(chunks)


class HarrowTestCase(unittest.TestCase):
    """Tracks processes so every test cleans up, and checks Harrow exits 0 on SIGTERM."""

    def setUp(self):
        self._origins = []
        self._harrows = []

    def tearDown(self):
        for h in self._harrows:
            if h.proc.poll() is None:
                code = h.stop()
                self.assertEqual(code, 0, "harrow exit code after SIGTERM")
        for o in self._origins:
            o.stop()

    def origin(self, name, host="127.0.0.1", workers=1, delay_ms=None, tls=None):
        o = Origin(name, host, workers, delay_ms=delay_ms, tls=tls)
        self._origins.append(o)
        return o

    def h2_origin(self, name, host="127.0.0.1", tls=None):
        o = H2Origin(name, host, tls)
        self._origins.append(o)
        return o

    def harrow(self, config_text, workers=1, extra_args=(), listen=True):
        h = Harrow(config_text, workers, extra_args, listen)
        self._harrows.append(h)
        return h

"""End-to-end: the admin listener refuses what a web page in an operator's browser could send
(form POSTs, cross-site requests, DNS-rebound Host names), bounds its connections and their
time, and insists on a token file only its owner can read."""
import http.client
import json
import os
import re
import resource
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import (HARROW, HarrowTestCase, config_xml, farm_xml, request, rule_xml,
                     wait_for)


def admin_request(port, method, path, body=None, headers=None):
    """(status, body text) for one request; `headers` may set Host (else 127.0.0.1:port)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    hdrs = dict(headers or {})
    skip_host = "Host" in hdrs
    conn.putrequest(method, path, skip_host=skip_host, skip_accept_encoding=True)
    for name, value in hdrs.items():
        conn.putheader(name, value)
    data = body.encode() if isinstance(body, str) else body
    if data is not None:
        conn.putheader("Content-Length", str(len(data)))
    conn.endheaders(data)
    resp = conn.getresponse()
    text = resp.read().decode()
    conn.close()
    return resp.status, text


def server_state(h, address):
    _, text = h.admin_get("/api/farms")
    for farm in json.loads(text)["farms"]:
        for server in farm["servers"]:
            if server["address"] == address:
                return server["state"]
    return None


class AdminRequests(HarrowTestCase):
    def setUp(self):
        super().setUp()
        o = self.origin("o")
        self.h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                                        [rule_xml("r", "f")]))
        self.port = self.h.admin_port
        self.state_path = "/api/farms/f/servers/127.0.0.1/state"

    def test_form_post_is_refused_and_changes_nothing(self):
        for content_type in ("application/x-www-form-urlencoded", "text/plain",
                             "multipart/form-data; boundary=x"):
            status, text = admin_request(self.port, "POST", self.state_path, "drain=",
                                         {"Content-Type": content_type})
            self.assertEqual(status, 403, (content_type, text))
            self.assertIn("X-Harrow-Admin", json.loads(text)["error"])
        status, _ = admin_request(self.port, "POST", "/api/reload", "")
        self.assertEqual(status, 403)
        self.assertEqual(server_state(self.h, "127.0.0.1"), "Available")
        self.assertNotIn("configuration reloaded", self.h.stderr())

    def test_json_or_custom_header_post_works(self):
        status, text = admin_request(self.port, "POST", self.state_path, '{"state":"drain"}',
                                     {"Content-Type": "application/json"})
        self.assertEqual(status, 200, text)
        wait_for(lambda: server_state(self.h, "127.0.0.1") == "Draining", 10, "the drain")
        status, text = admin_request(self.port, "POST", self.state_path, "start",
                                     {"X-Harrow-Admin": "1",
                                      "Origin": f"http://127.0.0.1:{self.port}",
                                      "Sec-Fetch-Site": "same-origin"})
        self.assertEqual(status, 200, text)
        wait_for(lambda: server_state(self.h, "127.0.0.1") == "Available", 10, "the start")
        status, _ = admin_request(self.port, "POST", "/api/reload", "",
                                  {"X-Harrow-Admin": "1", "Host": f"localhost:{self.port}"})
        self.assertEqual(status, 200)

    def test_wrong_host_is_refused(self):
        for host in ("rebind.attacker.example:%d" % self.port, "rebind.attacker.example",
                     "127.0.0.1:1", "localhost", "[::1]:1", ""):
            status, text = admin_request(self.port, "GET", "/api/farms", None, {"Host": host})
            self.assertEqual(status, 403, (host, text))
            self.assertNotIn("farms", json.loads(text))
        status, _ = admin_request(self.port, "POST", self.state_path, "drain",
                                  {"X-Harrow-Admin": "1",
                                   "Host": "rebind.attacker.example:%d" % self.port})
        self.assertEqual(status, 403)
        self.assertEqual(server_state(self.h, "127.0.0.1"), "Available")
        # Its own names are fine.
        for host in (f"127.0.0.1:{self.port}", f"LOCALHOST:{self.port}"):
            self.assertEqual(admin_request(self.port, "GET", "/metrics", None,
                                           {"Host": host})[0], 200, host)

    def test_cross_site_origin_is_refused(self):
        for headers in ({"Origin": "http://evil.example"},
                        {"Origin": "null"},
                        {"Origin": f"http://127.0.0.1:{self.port + 1 if self.port < 65535 else 1}"},
                        {"Sec-Fetch-Site": "cross-site"},
                        {"Sec-Fetch-Site": "same-site"}):
            status, text = admin_request(self.port, "POST", self.state_path, '{"state":"drain"}',
                                         {"Content-Type": "application/json",
                                          "X-Harrow-Admin": "1", **headers})
            self.assertEqual(status, 403, (headers, text))
            self.assertIn("cross-site", json.loads(text)["error"])
        self.assertEqual(server_state(self.h, "127.0.0.1"), "Available")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class AdminConnections(HarrowTestCase):
    def test_idle_admin_connections_do_not_stop_the_proxy(self):
        o = self.origin("o")
        text = config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])], [rule_xml("r", "f")])
        # A small descriptor table, as on a host with many proxied connections: 100 idle admin
        # connections would fill it.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (112, hard))
        try:
            h = self.harrow(text)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        self.assertEqual(request(h.port)[0], 200)
        base = fd_count(h.proc.pid)
        idle = []
        try:
            for _ in range(100):
                idle.append(socket.create_connection(("127.0.0.1", h.admin_port), timeout=10))
            # Harrow has taken every connection it will (the rest it closed at once).
            wait_for(lambda: fd_count(h.proc.pid) >= base + 60, 10, "admin connections accepted")
            time.sleep(0.3)
            self.assertLessEqual(fd_count(h.proc.pid), base + 64 + 2)
            for _ in range(5):
                self.assertEqual(request(h.port)[0], 200)
        finally:
            for s in idle:
                s.close()
        wait_for(lambda: h.admin_get("/healthz")[0] == 200, 10, "the admin listener to answer")

    def test_slow_admin_header_is_closed(self):
        o = self.origin("o")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                                   [rule_xml("r", "f")]))
        s = socket.create_connection(("127.0.0.1", h.admin_port), timeout=1)
        start = time.monotonic()
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % h.admin_port)
        closed = False
        try:
            # A header line a second, never the end of the head (slowloris).
            while time.monotonic() - start < 25:
                try:
                    if s.recv(4096) == b"":
                        closed = True
                        break
                except socket.timeout:
                    s.sendall(b"X-Drip: 1\r\n")
        except (ConnectionResetError, BrokenPipeError):
            closed = True
        finally:
            s.close()
        # Within the loop's bound: a head that keeps dripping lines does not keep its connection.
        self.assertTrue(closed, "the admin listener kept a connection whose head never ended")
        self.assertEqual(h.admin_get("/healthz")[0], 200)


class AdminTokenFile(HarrowTestCase):
    def config_with_token(self, mode):
        d = self.enterContext(tempfile.TemporaryDirectory(prefix="harrow-token-"))
        token = os.path.join(d, "admin.token")
        with open(token, "w") as f:
            f.write("s3cret-token\n")
        os.chmod(token, mode)
        path = os.path.join(d, "harrow.config")
        text = config_xml([farm_xml("f", [("127.0.0.1", 1, 1)])], [rule_xml("r", "f")],
                          '\n<admin address="127.0.0.1:0"\n       tokenFile="%s"/>' % token)
        with open(path, "w") as f:
            f.write(text)
        return path, token

    def test_token_file_others_can_read_is_a_config_error(self):
        for mode in (0o644, 0o640, 0o604):
            path, token = self.config_with_token(mode)
            for args in (["--check-config"], ["--listen", "127.0.0.1:0"]):
                r = subprocess.run([HARROW, *args, "--config", path], capture_output=True,
                                   text=True, timeout=30)
                self.assertEqual(r.returncode, 2, (mode, args, r.stderr))
                # The attribute's position: line 3, column 8.
                self.assertRegex(r.stderr, re.escape(path) + r":3:8: error: token file .*mode 0"
                                 + oct(mode)[2:], r.stderr)
                self.assertNotIn("listening on", r.stderr)

    def test_token_file_only_its_owner_reads_is_accepted(self):
        path, _ = self.config_with_token(0o600)
        r = subprocess.run([HARROW, "--check-config", "--config", path], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_bearer_token_makes_a_change_non_simple(self):
        # A browser cannot add an Authorization header cross-site without a preflight, so a
        # verified token stands for the custom header; a wrong token is still 401.
        path, _ = self.config_with_token(0o600)
        with open(path) as f:
            h = self.harrow(f.read())
        state = "/api/farms/f/servers/127.0.0.1/state"
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        status, text = admin_request(h.admin_port, "POST", state, "drain",
                                     {**form, "Authorization": "Bearer s3cret-token"})
        self.assertEqual(status, 200, text)
        status, text = admin_request(h.admin_port, "POST", state, "start",
                                     {**form, "Authorization": "Bearer wrong"})
        self.assertEqual(status, 401, text)
        status, text = admin_request(h.admin_port, "POST", state, "start",
                                     {**form, "Authorization": "Bearer s3cret-token",
                                      "Origin": "http://evil.example"})
        self.assertEqual(status, 403, text)

    def test_token_file_symlink_is_refused(self):
        path, token = self.config_with_token(0o600)
        link = token + ".link"
        os.symlink(token, link)
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace(token + '"', link + '"'))
        r = subprocess.run([HARROW, "--check-config", "--config", path], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertRegex(r.stderr, re.escape(path) + r":3:8: error: token file .* symbolic link")


class AdminBeyondLoopback(HarrowTestCase):
    def test_admin_on_any_address_warns_and_takes_mapped_loopback_as_loopback(self):
        o = self.origin("o")
        d = self.enterContext(tempfile.TemporaryDirectory(prefix="harrow-any-"))
        path = os.path.join(d, "harrow.config")
        with open(path, "w") as f:
            f.write(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                               [rule_xml("r", "f")], '<admin address="[::]:0"/>').replace(
                                   "<harrow>", '<harrow allowRunAsRoot="true">'))
        r = subprocess.run([HARROW, "--check-config", "--config", path], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("warning: the admin listener [::]:0 is reachable beyond loopback",
                      r.stdout)
        log_path = os.path.join(d, "stderr.log")
        with open(log_path, "w") as log:
            proc = subprocess.Popen([HARROW, "--config", path, "--workers", "1",
                                     "--listen", "127.0.0.1:0"], stdout=subprocess.DEVNULL,
                                    stderr=log)
        try:
            def started():
                with open(log_path) as f:
                    text = f.read()
                if proc.poll() is not None:
                    raise AssertionError(text)
                return re.search(r"harrow: admin on http://\[::\]:(\d+)", text)
            port = int(wait_for(started, 20, "harrow to start").group(1))
            with open(log_path) as f:
                self.assertIn("reachable beyond loopback", f.read())
            # An IPv4 client of a [::] listener arrives as ::ffff:127.0.0.1: still loopback.
            status, text = admin_request(port, "GET", "/healthz")
            self.assertEqual((status, text), (200, "ok\n"))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                self.assertEqual(proc.wait(30), 0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise


if __name__ == "__main__":
    unittest.main()

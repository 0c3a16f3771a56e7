"""End-to-end: files Harrow opens (often as root) are never reached through a symbolic link,
rules whose patterns cannot be evaluated fail closed, and a reload after the privilege drop
still reads TLS keys only root may read."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import time
import unittest

from harness import (HARROW, HarrowTestCase, config_xml, farm_xml, request, rule_xml,
                     wait_for)

IS_ROOT = os.geteuid() == 0


def run_briefly(args, timeout=15):
    """Runs harrow expecting it to exit by itself; (exit code, stderr). A harrow that keeps
    running is stopped and reported as None."""
    proc = subprocess.Popen([HARROW, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        _, err = proc.communicate(timeout=timeout)
        return proc.returncode, err
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        return None, err


class SymlinkedFiles(HarrowTestCase):
    def setUp(self):
        super().setUp()
        self.dir = self.enterContext(tempfile.TemporaryDirectory(prefix="harrow-files-"))
        os.chmod(self.dir, 0o755)
        self.o = self.origin("o")
        # A file only root may touch, that a symbolic link at a log path points at.
        self.secret = os.path.join(self.dir, "secret")
        with open(self.secret, "w") as f:
            f.write("root's own\n")
        os.chmod(self.secret, 0o600)

    def config(self, harrow_attrs="", inner=""):
        path = os.path.join(self.dir, "harrow.config")
        text = config_xml([farm_xml("f", [("127.0.0.1", self.o.port, 1)])], [rule_xml("r", "f")],
                          inner)
        if harrow_attrs:
            text = text.replace("<harrow>", f"<harrow {harrow_attrs}>")
        with open(path, "w") as f:
            f.write(text)
        return path

    def assert_secret_untouched(self):
        st = os.lstat(self.secret)
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (os.geteuid(), 0o600))
        with open(self.secret) as f:
            self.assertEqual(f.read(), "root's own\n")

    def test_symlinked_access_log_is_refused(self):
        log = os.path.join(self.dir, "access.log")
        os.symlink(self.secret, log)
        user = 'user="nobody"' if IS_ROOT else ""
        code, err = run_briefly(["--config", self.config(user, f'<accessLog path="{log}"/>'),
                                 "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        self.assertEqual(code, 1, err)
        self.assertIn(f"refusing access log {log}: it is a symbolic link", err)
        self.assertNotIn("listening on", err)
        self.assert_secret_untouched()

    def test_access_log_that_is_not_a_regular_file_is_refused(self):
        log = os.path.join(self.dir, "fifo.log")
        os.mkfifo(log)
        code, err = run_briefly(["--config", self.config("", f'<accessLog path="{log}"/>'),
                                 "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        self.assertEqual(code, 1, err)
        self.assertRegex(err, r"access log .*(not a regular file|No such device)")

    def test_new_log_file_is_0640_and_reopen_refuses_a_symlink(self):
        log = os.path.join(self.dir, "access.log")
        user = 'user="nobody"' if IS_ROOT else ""
        with open(self.config(user, f'<accessLog path="{log}"/>')) as f:
            h = self.harrow(f.read())
        st = os.stat(log)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
        if IS_ROOT:
            self.assertEqual(st.st_uid, int(subprocess.run(["id", "-u", "nobody"],
                                                           capture_output=True,
                                                           text=True).stdout))
        # A rotation that leaves a symbolic link where the log was: SIGUSR1 refuses it and
        # keeps writing to the old file.
        os.rename(log, log + ".1")
        os.symlink(self.secret, log)
        h.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: "SIGUSR1: refusing access log" in h.stderr(), 10, "the refusal")
        self.assertEqual(request(h.port)[0], 200)
        self.assert_secret_untouched()

    def test_state_file_is_not_written_through_a_symlink(self):
        state = os.path.join(self.dir, "harrow.state")
        os.symlink(self.secret, state + ".tmp")
        with open(self.config(f'stateFile="{state}"')) as f:
            h = self.harrow(f.read())
        self.assertEqual(h.admin_post("/api/farms/f/servers/127.0.0.1/state", "drain")[0], 200)
        wait_for(lambda: os.path.exists(state), 10, "the state file")
        self.assertFalse(os.path.islink(state))
        with open(state) as f:
            self.assertIn("draining", f.read())
        self.assert_secret_untouched()


DENY_RULES = """
<rule name="deny-bad-agents" stopProcessing="true">
  <match url=".*" />
  <conditions>
    <add input="{HTTP_USER_AGENT}" pattern="^(a+)+$" />
  </conditions>
  <action type="CustomResponse" statusCode="403" statusReason="Forbidden" />
</rule>
<rule name="allow-unless-nested" stopProcessing="true">
  <match url=".*" />
  <conditions>
    <add input="{HTTP_X_PROBE}" pattern="^(\\w+\\s?)*$" negate="true" />
  </conditions>
  <action type="CustomResponse" statusCode="403" statusReason="Forbidden" />
</rule>
"""


class RegexLimits(HarrowTestCase):
    def test_pattern_that_reaches_the_limits_fails_closed(self):
        o = self.origin("o")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                                   [DENY_RULES, rule_xml("r", "f")]))
        self.assertEqual(request(h.port, headers={"User-Agent": "a" * 100})[0], 403)
        self.assertEqual(request(h.port, headers={"User-Agent": "curl"})[0], 200)
        before = o.stats()["requests"]
        status, _, _ = request(h.port, headers={"User-Agent": "a" * 40000 + "!"})
        self.assertEqual(status, 500)
        # A negated condition must not hold because its pattern failed.
        status, _, _ = request(h.port, headers={"X-Probe": "ab " * 3000 + "!"})
        self.assertEqual(status, 500)
        self.assertEqual(o.stats()["requests"], before)  # neither reached the origin
        wait_for(lambda: "rule 'deny-bad-agents': pattern match failed" in h.stderr(), 10,
                 "the log line naming the rule")
        _, text = h.admin_get("/metrics")
        self.assertIn('harrow_request_failures_total{reason="rule_match_error"} 2', text)
        self.assertEqual(request(h.port, headers={"User-Agent": "curl"})[0], 200)

    def test_outbound_pattern_that_reaches_the_limits_fails_closed(self):
        # An outbound rule that cannot be evaluated may be the one that hides a header or
        # rewrites a link: the response never goes out as if it had not matched.
        from test_outbound import config_with_outbound
        header_rule = ('<rule name="hide-probe"><match serverVariable="RESPONSE_X_Probe" '
                       'pattern="^(a+)+$"/><action type="Rewrite" value=""/></rule>')
        o = self.origin("o")
        h = self.harrow(config_with_outbound(o, header_rule))
        status, hdrs, _ = request(h.port, path="/?header=X-Probe:" + "a" * 20)
        self.assertEqual(status, 200)
        self.assertFalse(hdrs.get("x-probe"))
        status, hdrs, _ = request(h.port, path="/?header=X-Probe:" + "a" * 1000 + "!")
        self.assertEqual(status, 500)
        self.assertNotIn("x-probe", hdrs)
        wait_for(lambda: "rule 'hide-probe': pattern match failed" in h.stderr(), 10,
                 "the log line naming the outbound rule")
        self.assertEqual(request(h.port)[0], 200)

        body_rule = ('<rule name="links"><match filterByTags="A" pattern="^(a+)+$"/>'
                     '<action type="Rewrite" value="/x"/></rule>')
        h2 = self.harrow(config_with_outbound(o, body_rule))
        page = '<html><a href="' + "a" * 1000 + '!">x</a></html>'
        path = "/?echo=1&header=Content-Type:text/html"
        with socket.create_connection(("127.0.0.1", h2.port), timeout=10) as s:
            s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                       % (path, len(page), page)).encode())
            got = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        # The head may be out before the body: the connection ends, the link the rule could
        # not judge never reaches the client and the response has no last chunk.
        self.assertNotIn(b'!">x</a>', got)
        self.assertFalse(got.endswith(b"0\r\n\r\n"), got[-200:])
        wait_for(lambda: "rule_match_error" in h2.stderr(), 10, "the failure in the log")

    def test_check_config_warns_about_nested_quantifiers(self):
        d = self.enterContext(tempfile.TemporaryDirectory(prefix="harrow-regex-"))
        path = os.path.join(d, "harrow.config")
        with open(path, "w") as f:
            f.write(config_xml([farm_xml("f", [("127.0.0.1", 1, 1)])],
                               [DENY_RULES, rule_xml("r", "f", "^(.*)*$", "ECMAScript"),
                                rule_xml("fine", "f", r"^(\w+)/([a-z]+)?(.*)$", "ECMAScript")]))
        r = subprocess.run([HARROW, "--check-config", "--config", path], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        warnings = [l for l in r.stderr.splitlines() if ": warning: " in l]
        self.assertEqual(len(warnings), 3, r.stderr)
        self.assertRegex(warnings[0], re.escape(path) + r":5:5: warning: rule 'deny-bad-agents' "
                         r"condition pattern \"\^\(a\+\)\+\$\"")
        self.assertRegex(warnings[1], re.escape(path) + r":12:5: warning: rule "
                         r"'allow-unless-nested' condition")
        self.assertRegex(warnings[2], re.escape(path) + r":\d+:\d+: warning: rule 'r' pattern")
        self.assertNotIn("'fine'", r.stderr)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def served_certificate(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="a.test") as s:
            return s.getpeercert(binary_form=True)


@unittest.skipIf(not IS_ROOT, "needs root to drop privileges")
class KeyReloadAfterDrop(HarrowTestCase):
    def test_reload_rereads_root_only_keys_after_dropping_privileges(self):
        o = self.origin("o")
        d = self.enterContext(tempfile.TemporaryDirectory(prefix="harrow-keys-"))
        os.chmod(d, 0o755)  # the run-as user reads the config on reload
        keys = os.path.join(d, "keys")
        os.mkdir(keys, 0o700)
        cert, key = os.path.join(keys, "a.pem"), os.path.join(keys, "a.key")

        def issue(cn):
            openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", key + ".new", "-out", cert + ".new", "-subj", f"/CN={cn}")
            for p in (key, cert):
                os.chmod(p + ".new", 0o600)
                os.replace(p + ".new", p)

        issue("first.test")
        text = config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])], [rule_xml("r", "f")],
                          '<listen address="127.0.0.1:0" tls="true"/>'
                          f'<certificate certificateFile="{cert}" keyFile="{key}" '
                          'default="true"/>').replace("<harrow>", '<harrow user="nobody">')
        h = self.harrow(text)
        os.chmod(h.config_path, 0o644)
        os.chmod(os.path.dirname(h.config_path), 0o755)
        self.assertIn("running as user nobody", h.stderr())
        with open(f"/proc/{h.proc.pid}/status") as f:
            self.assertRegex(f.read(), r"CapEff:\s+0+\n")  # nothing effective while serving
        first = served_certificate(h.tls_ports[0])
        issue("second.test")
        h.reload()
        self.assertNotIn("reload rejected", h.stderr())
        second = served_certificate(h.tls_ports[0])
        self.assertNotEqual(first, second)
        with open(cert) as f:
            pem = f.read()
        self.assertEqual(ssl.DER_cert_to_PEM_cert(second).strip(), pem.strip())
        with open(f"/proc/{h.proc.pid}/status") as f:
            self.assertRegex(f.read(), r"CapEff:\s+0+\n")


if __name__ == "__main__":
    unittest.main()

"""End-to-end: the fleet over TLS with etcd's authentication (<fleet caFile certificateFile
keyFile user passwordFile>). One etcd member serving https only, with --client-cert-auth and
v3 auth enabled (root with a password, tokens that expire after a second), certificates made with openssl in a temporary
directory. Two Harrows with the right CA, client certificate and password elect one prober, and
their writes after their tokens expired go through (authenticating again);
one with a wrong password and one trusting the wrong CA say why in the log, report
harrow_fleet_connected 0 and probe on their own. --check-config reports an unreadable caFile
and a group-readable passwordFile at their line."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import HARROW, HarrowTestCase, config_xml, dead_port, rule_xml, wait_for

ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"
TTL = 2


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=d)


def make_cert(d, ca, name, subject, san=None):
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout",
            f"{name}.key", "-out", f"{name}.csr", cwd=d)
    ext = os.path.join(d, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\n")
        f.write("extendedKeyUsage=serverAuth,clientAuth\n")
        if san:
            f.write(f"subjectAltName={san}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", f"{name}.crt", cwd=d)


@unittest.skipUnless(os.path.exists(ETCD) and os.path.exists(ETCDCTL),
                     "etcd is not installed (Debian packages etcd-server, etcd-client)")
class FleetTls(HarrowTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="harrow-fleet-tls-")
        d = self.tmp
        make_ca(d, "ca")
        make_ca(d, "other-ca")
        make_cert(d, "ca", "server", "/CN=etcd", san="IP:127.0.0.1")
        # No CommonName: with auth enabled, etcd's JSON gateway refuses a client certificate
        # that has one ("CommonName of client sending a request against gateway will be
        # ignored"); the user comes from the password, the certificate passes --client-cert-auth.
        make_cert(d, "ca", "client", "/O=harrow")
        self.files = {n: os.path.join(d, n) for n in
                      ("ca.crt", "other-ca.crt", "server.crt", "server.key", "client.crt",
                       "client.key")}
        for name, text in (("password", "s3cret pass\n"), ("wrong-password", "nope\n")):
            path = os.path.join(d, name)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o600)
            self.files[name] = path
        self.port, self.peer = dead_port(), dead_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.start_etcd()
        for args in (("user", "add", "root", "--new-user-password=s3cret pass"),
                     ("auth", "enable")):
            r = self.etcdctl(*args)
            self.assertEqual(r.returncode, 0, r.stderr)

    def start_etcd(self):
        d, peer = self.tmp, self.peer
        log = open(os.path.join(d, "etcd.log"), "a")
        self.etcd = subprocess.Popen(
            [ETCD, "--name", "m0", "--data-dir", os.path.join(d, "data"),
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"m0=http://127.0.0.1:{peer}",
             "--cert-file", self.files["server.crt"], "--key-file", self.files["server.key"],
             "--trusted-ca-file", self.files["ca.crt"], "--client-cert-auth",
             # Tokens unused for a second expire. (etcd 3.4 checks no token on a lease
             # keepalive, so the steady state keeps no token alive: the next write finds it
             # expired.)
             "--auth-token-ttl", "1",
             "--heartbeat-interval", "50", "--election-timeout", "500"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(lambda: self.etcdctl("endpoint", "health").returncode == 0, 15, "etcd up")

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            self.etcd.kill()
            self.etcd.wait()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def etcdctl(self, *args):
        env = dict(os.environ, ETCDCTL_API="3")
        return subprocess.run(
            [ETCDCTL, "--endpoints", self.url, "--cacert", self.files["ca.crt"], "--cert",
             self.files["client.crt"], "--key", self.files["client.key"],
             "--dial-timeout", "2s", *args],
            env=env, capture_output=True, text=True, timeout=10)

    def config(self, instance, ca="ca.crt", password="password", probe=None, ca_path=None,
               ttl=TTL):
        farm = (f'<webFarm name="web"><server address="{probe.host}">'
                f'<applicationRequestRouting httpPort="{probe.port}"/></server>'
                f'<applicationRequestRouting><healthCheck url="http://web.example/hc"'
                f' interval="00:00:01" timeout="00:00:01" retries="1"/>'
                f'</applicationRequestRouting></webFarm>')
        fleet = (f'<fleet endpoints="{self.url}" name="tls" instance="{instance}"'
                 f' leaseTtl="{ttl}"\n caFile="{ca_path or self.files[ca]}"'
                 f' certificateFile="{self.files["client.crt"]}"'
                 f' keyFile="{self.files["client.key"]}"\n user="root"'
                 f' passwordFile="{self.files[password]}"/>')
        return config_xml([farm], [rule_xml("all", "web")], harrow=fleet)

    def metrics(self, h):
        return h.admin_get("/metrics")[1]

    def probes_here(self, h):
        return re.search(r'harrow_fleet_prober\{farm="web",[^}]*\} 1', self.metrics(h)) is not None

    def connected(self, h):
        return "harrow_fleet_connected 1" in self.metrics(h)

    def test_tls_and_auth_elect_one_prober_and_bad_credentials_probe_alone(self):
        started = time.monotonic()
        origin = self.origin("o")
        fleet = [self.harrow(self.config(name, probe=origin)) for name in "ab"]
        try:
            wait_for(lambda: all(map(self.connected, fleet)) and
                     sum(map(self.probes_here, fleet)) == 1, 10, "one prober over TLS with auth")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{fleet[0].stderr()}") from None
        # The keys are there, written with the token (etcd refuses a request without one).
        keys = self.etcdctl("--user", "root:s3cret pass", "get", "/harrow/tls/", "--prefix",
                            "--keys-only")
        self.assertEqual(keys.returncode, 0, keys.stderr)
        self.assertIn("/harrow/tls/", keys.stdout)
        before = origin.stats()["requests"]
        t0 = time.monotonic()
        time.sleep(3.0)
        n, elapsed = origin.stats()["requests"] - before, time.monotonic() - t0
        # One prober: interval 1 s ± 10 % jitter, ±1 for the edges; two would double it.
        self.assertLessEqual(n, int(elapsed / 0.9) + 1, f"{n} probes in {elapsed:.1f}s")
        self.assertGreaterEqual(n, int(elapsed / 1.1) - 1, f"{n} probes in {elapsed:.1f}s")

        # Both tokens have expired by now (only keepalives for 3 s). The prober publishes a
        # transition and the follower a drain: each write is told "invalid auth token", the
        # instance authenticates again, retries, and the other instance sees the result.
        prober = next(h for h in fleet if self.probes_here(h))
        follower = next(h for h in fleet if h is not prober)
        label = f"{origin.host}:{origin.port}"
        origin.stop()
        wait_for(lambda: follower.server_state(label)[1] is False, 5,
                 "the prober's verdict on the follower")
        self.assertEqual(follower.admin_post(f"/api/farms/web/servers/{label}/state",
                                             "drain")[0], 200)
        wait_for(lambda: prober.server_state(label)[0] == "Draining", 5,
                 "the follower's drain on the prober")
        for h in fleet:
            self.assertIn("refused the token", h.stderr())
            self.assertIn("invalid auth token", h.stderr())
        self.assertTrue(all(map(self.connected, fleet)))
        self.assertEqual(sum(map(self.probes_here, fleet)), 1)

        # A wrong password and a CA that did not sign etcd's certificate: cut off, said in the
        # log and the metric, probing alone.
        wrong_password = self.harrow(self.config("c", password="wrong-password", probe=origin))
        wrong_ca = self.harrow(self.config("d", ca="other-ca.crt", probe=origin))
        for h in (wrong_password, wrong_ca):
            wait_for(lambda: self.probes_here(h) and "harrow_fleet_connected 0" in self.metrics(h),
                     TTL + 5, "a cut-off instance probing alone")
        wait_for(lambda: "authentication as root failed" in wrong_password.stderr(), 5,
                 "the refused password in the log")
        self.assertIn("authentication failed", wrong_password.stderr())
        wait_for(lambda: "TLS handshake failed" in wrong_ca.stderr(), 5,
                 "the handshake failure in the log")
        for h in (wrong_password, wrong_ca):
            self.assertIn("cut off from etcd", h.stderr())
        # The good two still share one prober.
        self.assertEqual(sum(map(self.probes_here, fleet)), 1)
        self.assertTrue(all(map(self.connected, fleet)))
        self.assertLess(time.monotonic() - started, 40)

    def test_check_config_reports_tls_and_password_files_at_their_line(self):
        origin = self.origin("o")
        path = os.path.join(self.tmp, "check.config")
        with open(path, "w") as f:
            f.write(self.config("a", probe=origin, ca_path=os.path.join(self.tmp, "missing.crt")))
        r = subprocess.run([HARROW, "--config", path, "--check-config"], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertRegex(r.stderr, rf"{re.escape(path)}:\d+:\d+: error: cannot load caFile")
        os.chmod(self.files["password"], 0o640)
        with open(path, "w") as f:
            f.write(self.config("a", probe=origin))
        r = subprocess.run([HARROW, "--config", path, "--check-config"], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertRegex(r.stderr, rf"{re.escape(path)}:\d+:\d+: error: password file .* has mode "
                                   r"0640")


if __name__ == "__main__":
    unittest.main()

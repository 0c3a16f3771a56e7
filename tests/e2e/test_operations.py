"""End-to-end: operating Harrow. It writes nothing but its configured files (checked under
strace in a read-only working directory); a new binary takes over from a running one
(SO_REUSEPORT, then SIGTERM to the old) under load without a failed request; started as
root it refuses public addresses unless told who to become."""
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (HARROW, SANITIZED, HarrowTestCase, config_xml, farm_xml, rule_xml,
                     wait_for)

MIGRATE_REQ = "/proc/sys/net/ipv4/tcp_migrate_req"

# Flags of open(2) that make a path written to, and calls that change the file system.
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")
MUTATING_CALLS = ("mkdir", "mkdirat", "unlink", "unlinkat", "rmdir", "rename", "renameat",
                  "renameat2", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmodat",
                  "chown", "lchown", "fchownat", "truncate", "mknod", "mknodat", "utimensat",
                  "creat")


def written_paths(strace_text):
    """Paths the traced process opened for writing or changed, from `strace -f -e trace=%file`
    output (successful calls only)."""
    out = set()
    for line in strace_text.splitlines():
        m = re.match(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?(\w+)\((.*)\)\s+=\s+(-?\d+)", line)
        if not m or int(m.group(3)) < 0:
            continue
        call, args = m.group(1), m.group(2)
        paths = re.findall(r'"((?:[^"\\]|\\.)*)"', args)
        if call in ("open", "openat", "openat2"):
            if any(flag in args for flag in WRITE_FLAGS):
                out.update(paths[:1])
        elif call in MUTATING_CALLS:
            out.update(paths)
    return out


@unittest.skipIf(shutil.which("strace") is None, "strace is not installed")
class WritesOnlyItsFiles(HarrowTestCase):
    def test_read_only_working_directory_under_strace(self):
        origin = self.origin("a")
        files = tempfile.TemporaryDirectory(prefix="harrow-files-")
        self.addCleanup(files.cleanup)
        access_log = os.path.join(files.name, "access.log")
        state_file = os.path.join(files.name, "harrow.state")
        config_path = os.path.join(files.name, "harrow.config")
        with open(config_path, "w") as f:
            f.write(config_xml(
                [farm_xml("f", [("127.0.0.1", origin.port, 1)])], [rule_xml("r", "f")],
                f'<accessLog path="{access_log}"/>').replace(
                    "<harrow>", f'<harrow stateFile="{state_file}">'))
        cwd = tempfile.mkdtemp(prefix="harrow-cwd-")
        os.chmod(cwd, 0o555)
        self.addCleanup(os.rmdir, cwd)
        trace_path = os.path.join(files.name, "strace.out")
        stderr_path = os.path.join(files.name, "stderr.log")
        env = dict(os.environ)
        if SANITIZED:  # LeakSanitizer cannot run under ptrace; the rest of ASan can
            env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        with open(stderr_path, "w") as log:
            tracer = subprocess.Popen(
                ["strace", "-f", "-qq", "-e", "trace=%file", "-o", trace_path,
                 HARROW, "--config", config_path, "--workers", "2", "--listen", "127.0.0.1:0",
                 "--admin", "127.0.0.1:0"], cwd=cwd, stdout=subprocess.DEVNULL, stderr=log,
                env=env)

        def stderr():
            with open(stderr_path) as f:
                return f.read()

        def started():
            if tracer.poll() is not None:
                raise AssertionError(f"harrow under strace exited: {stderr()}")
            return "harrow: admin on" in stderr()

        try:
            wait_for(started, 60, "harrow under strace to start")
            port = int(re.search(r"listening on http://127\.0\.0\.1:(\d+)", stderr()).group(1))
            admin = int(re.search(r"admin on http://127\.0\.0\.1:(\d+)", stderr()).group(1))
            with open(f"/proc/{tracer.pid}/task/{tracer.pid}/children") as f:
                harrow_pid = int(f.read().split()[0])
            for path in ("/", "/a", "/b?x=1"):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", path)
                self.assertEqual(conn.getresponse().status, 200)
                conn.close()
            for path in ("/metrics", "/api/farms", "/"):
                conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=10)
                conn.request("GET", path)
                self.assertEqual(conn.getresponse().status, 200)
                conn.close()
            os.kill(harrow_pid, signal.SIGHUP)
            wait_for(lambda: "configuration reloaded" in stderr(), 20, "reload")
            os.rename(access_log, access_log + ".1")
            os.kill(harrow_pid, signal.SIGUSR1)
            wait_for(lambda: "SIGUSR1: reopened" in stderr(), 20, "log reopen")
            os.kill(harrow_pid, signal.SIGTERM)
            self.assertEqual(tracer.wait(60), 0, stderr())
        finally:
            if tracer.poll() is None:
                tracer.kill()
                tracer.wait()
        with open(trace_path) as f:
            trace = f.read()
        written = written_paths(trace)
        allowed = {access_log, state_file}
        self.assertTrue(written, "the trace shows no write at all: is the parser blind?\n" +
                        trace[:2000])
        self.assertIn(access_log, written)
        unexpected = {p for p in written
                      if p not in allowed and not p.startswith(state_file + ".")}
        self.assertEqual(unexpected, set(), "harrow wrote outside its configured files")
        self.assertEqual(os.listdir(cwd), [])
        with open(state_file) as f:  # written at shutdown, through a temporary file
            self.assertTrue(f.read().startswith("# harrow state 1\n"))
        self.assertIn(state_file + ".tmp", written)

    def test_parser_sees_writes(self):
        # The parser itself must catch each kind of write, or the test above proves nothing.
        sample = "\n".join([
            '123 openat(AT_FDCWD, "/tmp/a", O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC, 0644) = 5',
            '[pid   124] openat(AT_FDCWD, "/etc/x", O_RDONLY|O_CLOEXEC) = 6',
            'openat(AT_FDCWD, "/tmp/failed", O_RDWR) = -1 EACCES (Permission denied)',
            'rename("/s.tmp", "/s") = 0',
            '125 mkdir("/tmp/d", 0755) = 0',
            'unlinkat(AT_FDCWD, "/tmp/u", 0) = 0',
        ])
        self.assertEqual(written_paths(sample), {"/tmp/a", "/s.tmp", "/s", "/tmp/d", "/tmp/u"})


class RootPolicy(HarrowTestCase):
    """Started as root (CI runs as root) without <harrow user>: public addresses are refused."""

    @unittest.skipIf(os.geteuid() != 0, "needs root")
    def test_root_refuses_a_public_listener_without_a_user(self):
        config = config_xml([farm_xml("f", [("127.0.0.1", 9, 1)])], [rule_xml("r", "f")])
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "h.config")
            with open(path, "w") as f:
                f.write(config)
            r = subprocess.run([HARROW, "--config", path, "--listen", "0.0.0.0:0",
                                "--admin", "127.0.0.1:0"], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("refusing to proxy as root on 0.0.0.0:0", r.stderr)
            self.assertNotIn("listening on", r.stderr)
            with open(path, "w") as f:
                f.write(config.replace("<harrow>", '<harrow user="no-such-user-harrow">'))
            r = subprocess.run([HARROW, "--config", path, "--listen", "0.0.0.0:0",
                                "--admin", "127.0.0.1:0"], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("user 'no-such-user-harrow' does not exist", r.stderr)

    @unittest.skipIf(os.geteuid() != 0, "needs root")
    def test_root_with_a_user_drops_privileges(self):
        origin = self.origin("a")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", origin.port, 1)])],
                                   [rule_xml("r", "f")]).replace(
                                       "<harrow>", '<harrow user="nobody" group="nogroup">'),
                        workers=2)
        with open(f"/proc/{h.proc.pid}/status") as f:
            status = f.read()
        nobody = subprocess.run(["id", "-u", "nobody"], capture_output=True, text=True).stdout
        self.assertRegex(status, rf"Uid:\s+{nobody.strip()}\s+{nobody.strip()}\s+")
        self.assertRegex(status, r"CapEff:\s+0+\n")
        self.assertIn("running as user nobody", h.stderr())
        conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
        conn.request("GET", "/")
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()


class StateFile(HarrowTestCase):
    """<harrow stateFile>: a new process starts with the health state the old one wrote."""

    def test_new_process_avoids_servers_the_old_one_knew_down_or_drained(self):
        a = self.origin("a", "127.0.0.2")
        b = self.origin("b", "127.0.0.3")
        c = self.origin("c", "127.0.0.4")
        d = tempfile.TemporaryDirectory(prefix="harrow-state-")
        self.addCleanup(d.cleanup)
        state = os.path.join(d.name, "harrow.state")
        config = config_xml([farm_xml("f", [("127.0.0.2", a.port, 1), ("127.0.0.3", b.port, 1),
                                            ("127.0.0.4", c.port, 1)])],
                            [rule_xml("r", "f")]).replace(
                                "<harrow>", f'<harrow stateFile="{state}">')

        def origins(h, n=30):
            seen = set()
            for _ in range(n):
                conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
                conn.request("GET", "/state")
                resp = conn.getresponse()
                resp.read()
                conn.close()
                self.assertEqual(resp.status, 200)
                seen.add(resp.getheader("X-Origin"))
            return seen

        old = self.harrow(config)
        self.assertEqual(origins(old), {"a", "b", "c"})
        self.assertEqual(old.admin_post("/api/farms/f/servers/127.0.0.3/health", "unhealthy")[0],
                         200)
        self.assertEqual(old.admin_post("/api/farms/f/servers/127.0.0.4/state", "drain")[0], 200)

        def written():
            try:
                with open(state) as f:
                    return f.read()
            except FileNotFoundError:
                return ""

        wait_for(lambda: f"f\t127.0.0.3:{b.port}\tunhealthy\tavailable" in written() and
                 f"f\t127.0.0.4:{c.port}\thealthy\tdraining" in written(), 10,
                 "the state file to record the change")
        self.assertIn(f"f\t127.0.0.2:{a.port}\thealthy\tavailable", written())
        self.assertFalse(os.path.exists(state + ".tmp"))
        self.assertEqual(old.stop(), 0)
        self._harrows.remove(old)

        new = self.harrow(config)
        self.assertIn("state file: 2 servers start unhealthy or out of rotation", new.stderr())
        self.assertEqual(origins(new), {"a"})
        self.assertEqual(new.stop(), 0)
        self._harrows.remove(new)
        # Without the state file the same configuration uses every server.
        os.unlink(state)
        fresh = self.harrow(config)
        self.assertEqual(origins(fresh), {"a", "b", "c"})


APPLICATION_HOST = """<?xml version="1.0" encoding="UTF-8"?>
<configuration>
  <configSections><sectionGroup name="system.webServer" /></configSections>
  <system.applicationHost>
    <applicationPools><add name="DefaultAppPool" /><add name="shop" /></applicationPools>
    <sites>
      <site name="Default Web Site" id="1">
        <bindings>
          <binding protocol="http" bindingInformation="*:80:" />
          <binding protocol="https" bindingInformation="*:443:" sslFlags="0" />
        </bindings>
      </site>
    </sites>
  </system.applicationHost>
  <webFarms>
    <webFarm name="shop" enabled="true">
      <applicationPool name="shop" />
      <server address="10.0.0.11" enabled="true">
        <applicationRequestRouting httpPort="8080" weight="100" />
      </server>
      <server address="web2.shop.internal" enabled="true">
        <applicationRequestRouting httpPort="8080" weight="100" />
      </server>
      <applicationRequestRouting>
        <protocol timeout="00:00:45"><cache enabled="true" /></protocol>
        <healthCheck url="http://shop/health" interval="00:00:10" />
      </applicationRequestRouting>
    </webFarm>
  </webFarms>
  <system.webServer>
    <modules><add name="SomeModule" /></modules>
    <rewrite><globalRules>
      <rule name="ARR_shop_loadbalance" patternSyntax="Wildcard" stopProcessing="true">
        <match url="*" /><action type="Rewrite" url="http://shop/{R:0}" />
      </rule>
    </globalRules></rewrite>
  </system.webServer>
  <harrow user="harrow" group="harrow" />
</configuration>
"""


class MigrationReport(unittest.TestCase):
    def test_check_config_on_an_application_host_config(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "applicationHost.config")
            with open(path, "w") as f:
                f.write(APPLICATION_HOST)
            r = subprocess.run([HARROW, "--check-config", "--config", path],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        self.assertTrue(out.startswith(f"configuration: {path}\n"), out)
        # What will be served.
        self.assertRegex(out, r"(?m)^farms \(1\):\n  shop ")
        self.assertIn("ARR_shop_loadbalance -> farm shop", out)
        self.assertRegex(out, r"(?m)^listeners \(2\):\n  http://0\.0\.0\.0:80\n  https://")
        # The farm's <cache> is acted on (not listed); the https binding this build skips is.
        self.assertNotIn("protocol/cache", out)
        self.assertRegex(out, r"(?m)^not acted on by this build yet \(\d+\):\n(  .*\n)*"
                              r"  listener 0\.0\.0\.0:443 with TLS")
        # Where Harrow differs from ARR, for this file.
        m = re.search(r"(?m)^differs from ARR \((\d+)\):\n((?:  .*\n)+)", out)
        self.assertIsNotNone(m, out)
        lines = m.group(2).splitlines()
        self.assertEqual(int(m.group(1)), len(lines))
        self.assertTrue(any("503" in l and "502.4" in l for l in lines), lines)
        self.assertTrue(any("504" in l and "502.3" in l for l in lines), lines)
        self.assertTrue(any("1 farm(s) with a healthCheck url" in l for l in lines), lines)
        self.assertTrue(any("1 server address(es) are host names" in l for l in lines), lines)
        self.assertIn("runs as: user harrow group harrow (after binding, when started as root)",
                      out)
        self.assertIn("state file: (none)", out)


class GracefulStop(HarrowTestCase):
    def test_second_sigterm_stops_now(self):
        origin = self.origin("a")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", origin.port, 1)])],
                                   [rule_xml("r", "f")],
                                   harrow='<timeouts shutdown="00:05:00"/>'), workers=2)
        # A request the origin never answers holds the graceful stop for its 5 minutes.
        stuck = socket.create_connection(("127.0.0.1", h.port), timeout=20)
        stuck.sendall(b"GET /?hang=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: origin.stats()["requests"] >= 1, 10, "the request to reach the origin")
        h.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "stopping: finishing in-flight requests" in h.stderr(), 10, "the stop")
        time.sleep(0.5)
        self.assertIsNone(h.proc.poll(), "the in-flight request should hold the graceful stop")
        started = time.monotonic()
        h.proc.send_signal(signal.SIGTERM)
        self.assertEqual(h.proc.wait(10), 0)  # exits by itself, not killed by the signal
        self.assertLess(time.monotonic() - started, 5)
        self.assertIn("second stop signal", h.stderr())
        self.assertEqual(stuck.recv(1), b"")  # the connection was closed
        stuck.close()
        self.assertEqual(h.stop(), 0)

    def test_sigint_after_sigterm_also_stops_now(self):
        origin = self.origin("a")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", origin.port, 1)])],
                                   [rule_xml("r", "f")],
                                   harrow='<timeouts shutdown="00:05:00"/>'))
        stuck = socket.create_connection(("127.0.0.1", h.port), timeout=20)
        stuck.sendall(b"GET /?hang=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: origin.stats()["requests"] >= 1, 10, "the request to reach the origin")
        h.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "stopping: finishing in-flight requests" in h.stderr(), 10, "the stop")
        h.proc.send_signal(signal.SIGINT)
        self.assertEqual(h.proc.wait(10), 0)
        stuck.close()
        self.assertEqual(h.stop(), 0)

    def test_connection_accepted_before_sigterm_gets_its_first_request_answered(self):
        origin = self.origin("a")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", origin.port, 1)])],
                                   [rule_xml("r", "f")]), workers=2)

        def active():
            _, text = h.admin_get("/metrics")
            return int(re.search(r"(?m)^harrow_connections_active (\d+)", text).group(1))

        talker = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        silent = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        wait_for(lambda: active() == 2, 10, "both connections accepted")
        h.proc.send_signal(signal.SIGTERM)
        started = time.monotonic()

        def refused():
            try:
                socket.create_connection(("127.0.0.1", h.port), timeout=1).close()
                return False
            except ConnectionRefusedError:
                return True
            except ConnectionResetError:
                # The SYN reached a listener that closed before accepting it: not yet.
                return False

        wait_for(refused, 10, "every worker to close its listener")
        talker.sendall(b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
        response = b""
        while True:
            chunk = talker.recv(65536)
            if not chunk:
                break
            response += chunk
        talker.close()
        self.assertRegex(response, rb"^HTTP/1\.1 200 ")
        self.assertIn(b"Connection: close", response)
        # The connection that never speaks does not hold the stop for clientHeader (30 s).
        h.proc.wait(10)
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(h.stop(), 0)
        self.assertEqual(silent.recv(1), b"")
        silent.close()


class Load:
    """A bounded client loop: `threads` clients, each sending requests on fresh connections
    until stopped (or `limit` seconds), counting successes and failures."""

    def __init__(self, port, threads=32, limit=60.0):
        self.port = port
        self.ok = 0
        self.failures = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.deadline = time.monotonic() + limit
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def run(self):
        while not self.stop_event.is_set() and time.monotonic() < self.deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/upgrade", headers={"Connection": "close"})
                resp = conn.getresponse()
                resp.read()
                conn.close()
                with self.lock:
                    if resp.status == 200:
                        self.ok += 1
                    else:
                        self.failures.append(f"status {resp.status}")
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.failures.append(repr(e))

    def count(self):
        with self.lock:
            return self.ok

    def finish(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(30)


class BinaryUpgrade(HarrowTestCase):
    """A new process starts beside the old one on the same port; the old one gets SIGTERM."""

    def setUp(self):
        super().setUp()
        try:
            with open(MIGRATE_REQ) as f:
                self.saved_migrate = f.read().strip()
        except OSError:
            self.skipTest(f"{MIGRATE_REQ} is missing (kernel before 5.14)")
        if self.saved_migrate != "1":
            try:
                with open(MIGRATE_REQ, "w") as f:
                    f.write("1")
            except OSError as e:
                self.skipTest(f"cannot enable {MIGRATE_REQ} ({e}); without it the kernel resets "
                              "connections queued on a closing listener")
            self.addCleanup(self.restore_migrate)

    def restore_migrate(self):
        with open(MIGRATE_REQ, "w") as f:
            f.write(self.saved_migrate)

    def test_switch_under_load_fails_no_request(self):
        a = self.origin("a", "127.0.0.2")
        config = config_xml([farm_xml("f", [("127.0.0.2", a.port, 1)])], [rule_xml("r", "f")])
        old = self.harrow(config, workers=2)
        load = Load(old.port)
        try:
            wait_for(lambda: load.count() >= 200, 30, "load through the old process")
            new = self.harrow(config.replace("<harrow>",
                                             f'<harrow><listen address="127.0.0.1:{old.port}"/>'),
                              workers=2, listen=False)
            self.assertEqual(new.port, old.port)
            before = load.count()
            wait_for(lambda: load.count() >= before + 200, 30, "load while both run")
            self.assertEqual(old.stop(), 0)
            after = load.count()
            wait_for(lambda: load.count() >= after + 200, 30, "load through the new process")
        finally:
            load.finish()
        self.assertEqual(load.failures, [], f"{len(load.failures)} failed of "
                         f"{load.ok + len(load.failures)}")
        self.assertGreater(load.ok, 600)
        # Both processes served: the old one until SIGTERM, the new one after.
        status = http.client.HTTPConnection("127.0.0.1", new.admin_port, timeout=10)
        status.request("GET", "/metrics")
        metrics = status.getresponse().read().decode()
        status.close()
        served = sum(float(v) for v in re.findall(
            r'^harrow_requests_total(?:\{[^}]*\})?\s+(\S+)$', metrics, re.M))
        self.assertGreater(served, 0, metrics[:2000])


if __name__ == "__main__":
    unittest.main()

"""End-to-end: binary upgrade on SIGUSR2 (core/daemon/upgrade.h) under load.

The built binary is copied to a temporary bin/harrow and started from there ("v1"); the test
then puts a new file at that path ("v2": another copy of the binary, or a script standing in
for a broken build) and sends SIGUSR2, while client threads send requests on fresh and on
kept-alive connections. Counted: connections refused or reset, requests that fail. The new
binary is told apart from the old by its inode (/proc/PID/exe).

The new process is a child of the old one and outlives it; this test makes itself a child
subreaper (prctl(2) PR_SET_CHILD_SUBREAPER) so that it inherits, stops and reaps it.
"""
import ctypes
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

from harness import HARROW, HarrowTestCase, config_xml, farm_xml, rule_xml, wait_for

PR_SET_CHILD_SUBREAPER = 36
LOAD_SECONDS = 6.0
LOAD_MAX_REQUESTS = 20000  # per client thread


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


class Load:
    """Client threads: half open a connection per request, half keep theirs alive.

    A kept-alive connection the server closes while idle (as a stopping process does with
    idle connections) fails the next request before any byte of a response; clients then
    retry once on a new connection (RFC 9112 section 9.3.1.1: the request, a GET, is
    idempotent). Such retries are counted apart; a retry that fails is a failure."""

    def __init__(self, port, threads=4):
        self.port = port
        self.ok = 0
        self.refused = 0
        self.failed = 0
        self.retried = 0
        self.errors = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i % 2 == 1,), daemon=True)
                        for i in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        """Waits for the threads to reach their deadline or request cap."""
        for t in self.threads:
            t.join(LOAD_SECONDS + 30)

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(30)

    def _count(self, field, error=None):
        with self.lock:
            setattr(self, field, getattr(self, field) + 1)
            if error is not None and len(self.errors) < 10:
                self.errors.append(error)

    def _get(self, conn):
        conn.request("GET", "/upgrade")
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise AssertionError(f"status {resp.status}: {body[:200]!r}")

    def _run(self, keep_alive):
        deadline = time.monotonic() + LOAD_SECONDS
        conn = None
        for _ in range(LOAD_MAX_REQUESTS):
            if self.stop_event.is_set() or time.monotonic() > deadline:
                break
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self._get(conn)
                self._count("ok")
            except ConnectionRefusedError as e:
                self._count("refused", repr(e))
                conn.close()
                conn = None
                continue
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                conn.close()
                conn = None
                if not reused:
                    self._count("failed", repr(e))
                    continue
                self._count("retried")
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                try:
                    self._get(conn)
                    self._count("ok")
                except Exception as e2:  # noqa: BLE001 - every failure is counted
                    self._count("failed", "retry: " + repr(e2))
                    conn.close()
                    conn = None
                    continue
            except Exception as e:  # noqa: BLE001
                self._count("failed", repr(e))
                conn.close()
                conn = None
                continue
            if not keep_alive:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()


class UpgradeTest(HarrowTestCase):
    def setUp(self):
        super().setUp()
        become_subreaper()
        self.dir = tempfile.TemporaryDirectory(prefix="harrow-upgrade-")
        self.bin = os.path.join(self.dir.name, "bin", "harrow")
        os.makedirs(os.path.dirname(self.bin))
        shutil.copy2(HARROW, self.bin)
        self.origin_a = self.origin("a")
        self.origin_b = self.origin("b", host="127.0.0.2")
        self.config_path = os.path.join(self.dir.name, "harrow.config")
        self.state_path = os.path.join(self.dir.name, "harrow.state")
        with open(self.config_path, "w") as f:
            f.write(config_xml(
                [farm_xml("f", [("127.0.0.1", self.origin_a.port, 1),
                                ("127.0.0.2", self.origin_b.port, 1)])],
                [rule_xml("all", "f")]).replace(
                    "<harrow>", f'<harrow stateFile="{self.state_path}">'))
        self.log_path = os.path.join(self.dir.name, "stderr.log")
        self.log = open(self.log_path, "w")
        self.old = None
        self.others = []  # pids of processes the old one started that outlived it

    def tearDown(self):
        for pid in self.others:
            self._stop_pid(pid)
        if self.old is not None and self.old.poll() is None:
            self.old.send_signal(signal.SIGTERM)
            self.old.wait(30)
        self.log.close()
        # Both processes write here; under ASan/UBSan a report fails the test.
        for report in ("Sanitizer", "runtime error:"):
            self.assertNotIn(report, self.stderr())
        self.dir.cleanup()
        super().tearDown()

    @staticmethod
    def _stop_pid(pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise AssertionError(f"pid {pid} did not stop within 30 s of SIGTERM")

    def stderr(self):
        with open(self.log_path) as f:
            return f.read()

    def start_v1(self, env_extra=None):
        env = dict(os.environ, **(env_extra or {}))
        self.old = subprocess.Popen(
            [self.bin, "--config", self.config_path, "--workers", "2",
             "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=self.log, env=env)

        def started():
            if self.old.poll() is not None:
                raise AssertionError(f"harrow exited with {self.old.returncode}: {self.stderr()}")
            text = self.stderr()
            return text if "harrow: admin on" in text else None

        text = wait_for(started, 20, "harrow to start")
        self.port = int(re.search(r"listening on http://127\.0\.0\.1:(\d+)", text).group(1))
        self.admin_port = int(re.search(r"admin on http://127\.0\.0\.1:(\d+)", text).group(1))
        self.v1_inode = os.stat(self.bin).st_ino

    def install(self, make_file):
        """Replaces bin/harrow as a package manager does: a new file renamed over the path."""
        tmp = self.bin + ".new"
        make_file(tmp)
        os.chmod(tmp, 0o755)
        os.replace(tmp, self.bin)

    def script(self, body):
        def make(path):
            with open(path, "w") as f:
                f.write("#!/bin/sh\n" + body.replace("REAL", HARROW) + "\n")
        return make

    def get(self, port, path="/after"):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp.status

    def upgrade_under_load(self, wait_text, trigger=None):
        load = Load(self.port)
        load.start()
        try:
            time.sleep(1.5)  # the load runs before, during and after the upgrade
            before = self.stderr()
            if trigger is None:
                self.old.send_signal(signal.SIGUSR2)
            else:
                trigger()
            text = wait_for(
                lambda: (lambda t: t if re.search(wait_text, t[len(before):]) else None)(
                    self.stderr()), 20, wait_text)
            load.join()
        finally:
            load.stop()
        started = re.search(r"upgrade: started \S+ as pid (\d+)", text[len(before):])
        if started:
            self.others.append(int(started.group(1)))
        summary = (f"ok={load.ok} refused={load.refused} failed={load.failed} "
                   f"retried={load.retried} errors={load.errors}")
        print(f"\n{self.id()}: {summary}", flush=True)
        self.assertGreater(load.ok, 100, summary)
        self.assertEqual(load.refused, 0, summary)
        self.assertEqual(load.failed, 0, summary)
        return text[len(before):]

    def test_new_binary_takes_over_without_a_refused_connection(self):
        self.start_v1()
        self.install(lambda path: shutil.copy2(HARROW, path))
        v2_inode = os.stat(self.bin).st_ino
        self.assertNotEqual(v2_inode, self.v1_inode)
        # The load keeps running after the hand-over: wait for the old process's exit.
        log = self.upgrade_under_load(r"upgrade: pid \d+ is ready and serves[\s\S]*stopped")
        new_pid = int(re.search(r"upgrade: pid (\d+) is ready", log).group(1))
        self.assertEqual(self.old.wait(30), 0, "old process exit code")
        self.assertNotEqual(new_pid, self.old.pid)
        self.assertEqual(os.stat(f"/proc/{new_pid}/exe").st_ino, v2_inode, "new process runs v2")
        # Two workers' sockets for the one listener, and the admin listener.
        self.assertIn(f"upgrade: pid {new_pid} serves 3 inherited sockets", self.stderr())
        # Same port, same admin port, the new process behind both.
        self.assertEqual(self.get(self.port), 200)
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        conn.request("GET", "/api/farms")
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()
        self.others.remove(new_pid)
        self.assertEqual(self._stop_pid(new_pid), 0, "new process exit code after SIGTERM")

    def origins_seen(self, n=20):
        seen = set()
        for _ in range(n):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.request("GET", "/which")
            resp = conn.getresponse()
            resp.read()
            conn.close()
            self.assertEqual(resp.status, 200)
            seen.add(resp.getheader("X-Origin"))
        return seen

    def test_drain_state_survives_the_upgrade(self):
        self.start_v1()
        self.assertEqual(self.origins_seen(), {"a", "b"})
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        conn.request("POST", "/api/farms/f/servers/127.0.0.2/state", body="drain",
                     headers={"X-Harrow-Admin": "1"})
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()
        # At once, before the once-a-second state writer runs: the upgrade writes it first.
        self.install(lambda path: shutil.copy2(HARROW, path))
        self.old.send_signal(signal.SIGUSR2)
        m = wait_for(lambda: re.search(r"upgrade: pid (\d+) is ready", self.stderr()), 20,
                     "the upgrade")
        self.others.append(int(m.group(1)))
        self.assertEqual(self.old.wait(30), 0)
        self.assertIn("state file: 1 servers start unhealthy or out of rotation", self.stderr())
        self.assertEqual(self.origins_seen(), {"a"})
        # The old process did not write an older view over the new one's at its exit.
        with open(self.state_path) as f:
            self.assertIn(f"f\t127.0.0.2:{self.origin_b.port}\thealthy\tdraining", f.read())

    def test_new_binary_failing_its_configuration_check_changes_nothing(self):
        self.start_v1()
        self.install(self.script(
            'for a in "$@"; do [ "$a" = --check-config ] && '
            '{ echo "v2: configuration rejected" >&2; exit 1; }; done\nexec REAL "$@"'))
        log = self.upgrade_under_load(r"upgrade failed")
        self.assertIn("upgrade: v2: configuration rejected", log)
        self.assertRegex(log, r"upgrade failed: \S+ --check-config exited with status 1; "
                              r"this process keeps serving")
        self.assertNotIn("upgrade: started", log)
        self.assertIsNone(self.old.poll(), "old process still runs")
        self.assertEqual(self.get(self.port), 200)
        # The old process still upgrades once a good binary is in place.
        self.install(lambda path: shutil.copy2(HARROW, path))
        self.old.send_signal(signal.SIGUSR2)
        text = wait_for(lambda: re.search(r"upgrade: pid (\d+) is ready", self.stderr()), 20,
                        "second upgrade")
        self.others.append(int(text.group(1)))
        self.assertEqual(self.old.wait(30), 0)

    def test_new_process_never_ready_is_killed_and_old_keeps_serving(self):
        self.start_v1({"HARROW_UPGRADE_TIMEOUT": "2"})
        # Passes the check, then never serves (nor writes to the readiness pipe).
        self.install(self.script(
            'for a in "$@"; do [ "$a" = --check-config ] && exec REAL "$@"; done\n'
            'exec sleep 60'))
        log = self.upgrade_under_load(r"upgrade failed")
        self.assertIn("upgrade failed: the new process was not ready within 2 s; this process "
                      "keeps serving", log)
        pid = int(re.search(r"upgrade: started \S+ as pid (\d+)", log).group(1))
        # Killed and reaped by the old process.
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, "the unready process to go")
        self.others.remove(pid)
        self.assertIsNone(self.old.poll(), "old process still runs")
        self.assertEqual(self.get(self.port), 200)
        self.old.send_signal(signal.SIGTERM)
        self.assertEqual(self.old.wait(30), 0)

    def test_stop_during_an_upgrade_kills_the_new_process_and_exits_0(self):
        self.start_v1()
        self.install(self.script(
            'for a in "$@"; do [ "$a" = --check-config ] && exec REAL "$@"; done\n'
            'exec sleep 60'))
        self.old.send_signal(signal.SIGUSR2)
        m = wait_for(lambda: re.search(r"upgrade: started \S+ as pid (\d+)", self.stderr()), 20,
                     "the new process to start")
        pid = int(m.group(1))
        self.others.append(pid)
        self.old.send_signal(signal.SIGTERM)
        self.assertEqual(self.old.wait(30), 0)
        self.assertIn("upgrade abandoned: this process is stopping", self.stderr())
        self.assertFalse(os.path.exists(f"/proc/{pid}"), "killed and reaped before the exit")
        self.others.remove(pid)


class NotifyReceiver:
    """Stands in for systemd's side of sd_notify(3): a datagram socket named by NOTIFY_SOCKET
    that records the service's main PID as `MAINPID=` sets it, where `systemctl show
    --property MainPID --value` (a stub) reads it."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify")
        self.main_pid_file = os.path.join(directory, "mainpid")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def set_main_pid(self, pid):
        tmp = self.main_pid_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{pid}\n")
        os.replace(tmp, self.main_pid_file)

    def _run(self):
        while not self.closed.is_set():
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            self.messages.append(data)
            for line in data.splitlines():
                if line.startswith("MAINPID="):
                    self.set_main_pid(int(line[len("MAINPID="):]))

    def close(self):
        self.closed.set()
        self.thread.join(5)
        self.sock.close()


class PostinstTest(UpgradeTest):
    """The package's postinst upgrade step (packaging/debian/postinst, upgrade_in_place), run
    as dpkg would on a systemd machine, with systemd's part played by NotifyReceiver and a
    `systemctl` stub. (Installing real packages needs a running systemd: the maintainer
    script only acts when /run/systemd/system exists.)"""

    def setUp(self):
        super().setUp()
        self.notify = NotifyReceiver(self.dir.name)
        stub_dir = os.path.join(self.dir.name, "stub")
        os.makedirs(stub_dir)
        with open(os.path.join(stub_dir, "systemctl"), "w") as f:
            f.write("#!/bin/sh\n"
                    '[ "$*" = "show --property MainPID --value harrow.service" ] || exit 1\n'
                    f"cat '{self.notify.main_pid_file}'\n")
        os.chmod(os.path.join(stub_dir, "systemctl"), 0o755)
        self.path = stub_dir + ":" + os.environ.get("PATH", "/usr/bin:/bin")
        source = os.environ.get("HARROW_SOURCE_DIR",
                                os.path.join(os.path.dirname(__file__), "..", ".."))
        with open(os.path.join(source, "packaging", "debian", "postinst")) as f:
            text = f.read()
        m = re.search(r"^upgrade_in_place\(\) \{\n.*?^\}\n", text, re.S | re.M)
        self.assertIsNotNone(m, "postinst defines upgrade_in_place")
        self.function = m.group(0)

    def tearDown(self):
        self.notify.close()
        super().tearDown()

    def run_postinst_step(self):
        return subprocess.run(["sh", "-c", self.function + "upgrade_in_place"],
                              env=dict(os.environ, PATH=self.path), capture_output=True,
                              text=True, timeout=60)

    # The base class's cases are not run again here.
    test_new_binary_takes_over_without_a_refused_connection = None
    test_new_binary_failing_its_configuration_check_changes_nothing = None
    test_new_process_never_ready_is_killed_and_old_keeps_serving = None
    test_stop_during_an_upgrade_kills_the_new_process_and_exits_0 = None
    test_drain_state_survives_the_upgrade = None

    def test_postinst_upgrades_the_running_service_in_place(self):
        self.start_v1({"NOTIFY_SOCKET": self.notify.path})
        wait_for(lambda: any("READY=1" in m for m in self.notify.messages), 10, "READY=1")
        self.notify.set_main_pid(self.old.pid)
        self.install(lambda path: shutil.copy2(HARROW, path))
        result = {}

        def postinst():
            result["run"] = self.run_postinst_step()

        worker = threading.Thread(target=postinst)
        log = self.upgrade_under_load(r"upgrade: pid \d+ is ready and serves[\s\S]*stopped",
                                      trigger=worker.start)
        worker.join(60)
        run = result["run"]
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.stderr, "")
        new_pid = int(re.search(r"upgrade: pid (\d+) is ready", log).group(1))
        with open(self.notify.main_pid_file) as f:
            self.assertEqual(int(f.read()), new_pid, "systemd was told the new main PID")
        self.assertNotIn("STOPPING=1", "".join(self.notify.messages),
                         "the service never looked like it was stopping")
        self.assertEqual(self.old.wait(30), 0)
        self.assertEqual(self.get(self.port), 200)

    def test_postinst_restarts_a_binary_that_does_not_catch_sigusr2(self):
        # A main process whose SIGUSR2 would kill it (an older harrow): no signal is sent,
        # the caller falls back to try-restart.
        stand_in = subprocess.Popen(["sleep", "60"])
        try:
            self.notify.set_main_pid(stand_in.pid)
            run = self.run_postinst_step()
            self.assertEqual(run.returncode, 1, run.stderr)
            self.assertIsNone(stand_in.poll(), "the process was not signalled")
        finally:
            stand_in.kill()
            stand_in.wait()

    def test_postinst_does_nothing_without_a_running_service(self):
        self.notify.set_main_pid(0)
        self.assertEqual(self.run_postinst_step().returncode, 1)


if __name__ == "__main__":
    unittest.main()

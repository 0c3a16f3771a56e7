"""End-to-end: the Debian package. Builds harrow_VERSION_amd64.deb from the build tree with
cpack, installs it with dpkg, checks the installed default configuration, runs the installed
binary as root (it binds, then becomes user harrow) with systemd's notify protocol, proxies,
reloads on SIGHUP, stops, and removes then purges the package: nothing may be left behind.

Needs root and dpkg (CI runs as root on Debian). It refuses to touch a machine where a harrow
package or a harrow user already exists.
"""
import glob
import http.client
import os
import pwd
import grp
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import HARROW, SANITIZED, Origin, config_xml, farm_xml, rule_xml, wait_for

BUILD_DIR = os.path.dirname(os.path.dirname(os.path.abspath(HARROW)))
INSTALLED_FILES = [
    "/usr/sbin/harrow",
    "/etc/harrow/harrow.config",
    "/lib/systemd/system/harrow.service",
    "/etc/logrotate.d/harrow",
    "/usr/share/man/man8/harrow.8.gz",
    "/usr/share/man/man5/harrow.config.5.gz",
    "/usr/share/doc/harrow/copyright",
    "/usr/share/doc/harrow/changelog.gz",
    "/usr/share/doc/harrow/examples/demo.config",
    "/usr/lib/sysctl.d/60-harrow.conf",
    "/usr/share/bash-completion/completions/harrow",
]


def skip_reason():
    if os.geteuid() != 0:
        return "installing a package needs root"
    if SANITIZED:
        return "the package is built and tested from the release build"
    for tool in ("dpkg", "dpkg-deb", "cpack"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not os.path.exists(os.path.join(BUILD_DIR, "CPackConfig.cmake")):
        return f"no CPackConfig.cmake in {BUILD_DIR}"
    if package_installed():
        return "a harrow package is already installed here; the test will not replace it"
    try:
        pwd.getpwnam("harrow")
        return "a user named harrow already exists here; the test will not purge it"
    except KeyError:
        pass
    return None


def package_installed():
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "harrow"],
                       capture_output=True, text=True)
    return r.returncode == 0 and "installed" in r.stdout and "not-installed" not in r.stdout


def run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)


class NotifySocket:
    """Stands in for systemd's $NOTIFY_SOCKET: an abstract datagram socket (any user may send
    to it, as to /run/systemd/notify)."""

    def __init__(self):
        self.name = f"@harrow-package-test-{os.getpid()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.sock.settimeout(10)

    def receive(self):
        return self.sock.recv(4096).decode()

    def close(self):
        self.sock.close()


@unittest.skipIf(skip_reason() is not None, skip_reason() or "")
class DebianPackage(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="harrow-package-")
        os.chmod(self.tmp, 0o755)  # the harrow user reads the config on reload
        self.origins = []
        self.proc = None
        self.main_pid_file = None  # after a binary upgrade: where the new main PID is

    def tearDown(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.main_pid_file and os.path.exists(self.main_pid_file):
            with open(self.main_pid_file) as f:
                pid = int(f.read() or 0)
            if pid > 0 and (self.proc is None or pid != self.proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
        for o in self.origins:
            o.stop()
        if package_installed() or os.path.exists("/etc/harrow"):
            run(["dpkg", "--purge", "harrow"])
        shutil.rmtree(self.tmp, ignore_errors=True)

    def build_package(self, version=None):
        out = os.path.join(self.tmp, "package" + (f"-{version}" if version else ""))
        r = run(["cpack", "-G", "DEB", "--config", os.path.join(BUILD_DIR, "CPackConfig.cmake"),
                 "-B", out] + (["-D", f"CPACK_PACKAGE_VERSION={version}"] if version else []))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        debs = glob.glob(os.path.join(out, "harrow_*_amd64.deb"))
        self.assertEqual(len(debs), 1, os.listdir(out))
        self.assertRegex(os.path.basename(debs[0]), r"^harrow_\d+\.\d+\.\d+_amd64\.deb$")
        if version:
            self.assertEqual(os.path.basename(debs[0]), f"harrow_{version}_amd64.deb")
        return debs[0]

    def test_install_run_reload_remove_purge(self):
        deb = self.build_package()

        fields = run(["dpkg-deb", "-f", deb, "Depends"]).stdout
        expected = ["libuv1", "libpugixml1v5", "libpcre2-8-0", "libc6", "libstdc++6", "adduser"]
        if re.search(r"lib(ssl|crypto)\.so\.3", run(["readelf", "-d", HARROW]).stdout):  # OpenSSL 3
            expected.append("libssl3")
        for lib in expected:
            self.assertRegex(fields, rf"(^|, ){re.escape(lib)}( |,|$)", fields)

        r = run(["dpkg", "-i", deb])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for path in INSTALLED_FILES:
            self.assertTrue(os.path.exists(path), path)
        conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "harrow"]).stdout
        self.assertIn("/etc/harrow/harrow.config", conffiles)
        self.assertIn("/etc/logrotate.d/harrow", conffiles)
        user = pwd.getpwnam("harrow")
        self.assertEqual(os.stat("/var/log/harrow").st_uid, user.pw_uid)
        self.assertEqual(os.stat("/var/lib/harrow").st_uid, user.pw_uid)
        self.assertEqual(user.pw_shell, "/usr/sbin/nologin")

        # The installed default is valid and says what it serves.
        r = run(["/usr/sbin/harrow", "--check-config"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("configuration: /etc/harrow/harrow.config", r.stdout)
        self.assertIn("ARR_local_loadbalance -> farm local", r.stdout)
        self.assertIn("http://0.0.0.0:80", r.stdout)
        if shutil.which("systemd-analyze"):
            r = run(["systemd-analyze", "verify", "/lib/systemd/system/harrow.service"])
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        # The installed binary, started as root: binds, becomes harrow, tells "systemd".
        a = Origin("alpha", "127.0.0.2")
        b = Origin("beta", "127.0.0.3")
        self.origins += [a, b]
        config_path = os.path.join(self.tmp, "harrow.config")
        access_log = "/var/log/harrow/package-test.log"

        def write_config(farm):
            text = config_xml(
                [farm_xml("alpha", [("127.0.0.2", a.port, 1)]),
                 farm_xml("beta", [("127.0.0.3", b.port, 1)])],
                [rule_xml("r", farm)],
                f'<listen address="127.0.0.1:0"/><admin address="127.0.0.1:0"/>'
                f'<accessLog path="{access_log}"/>').replace(
                    "<harrow>", '<harrow user="harrow" group="harrow" '
                                'stateFile="/var/lib/harrow/package-test.state">')
            with open(config_path + ".tmp", "w") as f:
                f.write(text)
            os.chmod(config_path + ".tmp", 0o644)
            os.replace(config_path + ".tmp", config_path)

        write_config("alpha")
        notify = NotifySocket()
        self.addCleanup(notify.close)
        stderr_path = os.path.join(self.tmp, "stderr.log")
        env = dict(os.environ, NOTIFY_SOCKET=notify.name)
        with open(stderr_path, "w") as log:
            self.proc = subprocess.Popen(["/usr/sbin/harrow", "--config", config_path,
                                          "--workers", "2"],
                                         stdout=subprocess.DEVNULL, stderr=log, env=env)

        def stderr():
            with open(stderr_path) as f:
                return f.read()

        def started():
            if self.proc.poll() is not None:
                raise AssertionError(f"harrow exited {self.proc.returncode}: {stderr()}")
            return "harrow: admin on" in stderr()

        wait_for(started, 20, "the installed harrow to start")
        self.assertEqual(notify.receive(), "READY=1\nSTATUS=serving")
        port = int(re.search(r"harrow: listening on http://127\.0\.0\.1:(\d+)", stderr()).group(1))
        with open(f"/proc/{self.proc.pid}/status") as f:
            status = f.read()
        uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
        self.assertEqual(set(uids), {str(user.pw_uid)}, status)
        self.assertRegex(status, r"CapEff:\s+0+\n")

        def get():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/package")
            resp = conn.getresponse()
            resp.read()
            conn.close()
            return resp.status, resp.getheader("X-Origin")

        self.assertEqual(get(), (200, "alpha"))

        # SIGHUP (systemctl reload): RELOADING=1 with a monotonic time stamp, then READY=1.
        write_config("beta")
        self.proc.send_signal(signal.SIGHUP)
        self.assertRegex(notify.receive(), r"^RELOADING=1\nMONOTONIC_USEC=\d+$")
        self.assertEqual(notify.receive(), "READY=1")
        self.assertIn("configuration reloaded", stderr())
        self.assertEqual(get(), (200, "beta"))
        # The log file opened as root was handed to the harrow user.
        self.assertEqual(os.stat(access_log).st_uid, user.pw_uid)

        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(notify.receive(), "STOPPING=1")
        self.assertEqual(self.proc.wait(30), 0, stderr())
        # The state file was written by the harrow user into the package's state directory.
        self.assertEqual(os.stat("/var/lib/harrow/package-test.state").st_uid, user.pw_uid)

        # Remove keeps the configuration and the user; purge removes everything.
        r = run(["dpkg", "-r", "harrow"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertFalse(os.path.exists("/usr/sbin/harrow"))
        self.assertFalse(os.path.exists("/lib/systemd/system/harrow.service"))
        self.assertTrue(os.path.exists("/etc/harrow/harrow.config"))
        r = run(["dpkg", "--purge", "harrow"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for path in INSTALLED_FILES + ["/etc/harrow", "/var/log/harrow", "/var/lib/harrow",
                                       "/usr/share/doc/harrow"]:
            self.assertFalse(os.path.exists(path), f"{path} left after purge")
        with self.assertRaises(KeyError):
            pwd.getpwnam("harrow")
        with self.assertRaises(KeyError):
            grp.getgrnam("harrow")
        self.assertFalse(package_installed())
        r = run(["dpkg-query", "-W", "harrow"])
        self.assertNotEqual(r.returncode, 0, "dpkg still knows the package: " + r.stdout)

    def test_package_upgrade_under_load_refuses_no_connection(self):
        """dpkg installs version 2 over a running version 1; the postinst's upgrade step
        (SIGUSR2 to the service's main PID, then wait for a new one) hands the sockets over.
        systemd's part (the main PID, MAINPID=) is played by the test: the package's scripts
        only talk to the service when systemd runs (/run/systemd/system)."""
        if os.path.isdir("/run/systemd/system"):
            self.skipTest("systemd runs here: dpkg would act on the real service")
        from test_upgrade import Load, NotifyReceiver, become_subreaper

        become_subreaper()
        deb_v1 = self.build_package()
        deb_v2 = self.build_package("99.0.0")
        r = run(["dpkg", "-i", deb_v1])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        a = Origin("alpha", "127.0.0.2")
        b = Origin("beta", "127.0.0.3")
        self.origins += [a, b]
        config_path = os.path.join(self.tmp, "harrow.config")
        with open(config_path, "w") as f:
            f.write(config_xml(
                [farm_xml("f", [("127.0.0.2", a.port, 1), ("127.0.0.3", b.port, 1)])],
                [rule_xml("r", "f")],
                '<listen address="127.0.0.1:0"/><admin address="127.0.0.1:0"/>').replace(
                    "<harrow>", '<harrow user="harrow" group="harrow" '
                                'stateFile="/var/lib/harrow/package-test.state">'))
        os.chmod(config_path, 0o644)
        notify = NotifyReceiver(self.tmp)
        self.addCleanup(notify.close)
        self.main_pid_file = notify.main_pid_file
        os.chmod(notify.path, 0o666)  # the harrow user sends to it
        stderr_path = os.path.join(self.tmp, "stderr.log")
        with open(stderr_path, "w") as log:
            self.proc = subprocess.Popen(
                ["/usr/sbin/harrow", "--config", config_path, "--workers", "2"],
                stdout=subprocess.DEVNULL, stderr=log,
                env=dict(os.environ, NOTIFY_SOCKET=notify.path))

        def stderr():
            with open(stderr_path) as f:
                return f.read()

        def started():
            if self.proc.poll() is not None:
                raise AssertionError(f"harrow exited {self.proc.returncode}: {stderr()}")
            return "harrow: admin on" in stderr()

        wait_for(started, 20, "the installed harrow to start")
        notify.set_main_pid(self.proc.pid)
        port = int(re.search(r"harrow: listening on http://127\.0\.0\.1:(\d+)", stderr()).group(1))
        v1_inode = os.stat("/usr/sbin/harrow").st_ino

        # The postinst's step as written in the package, with `systemctl show` answered from
        # what the service told "systemd".
        stub = os.path.join(self.tmp, "stub")
        os.makedirs(stub)
        with open(os.path.join(stub, "systemctl"), "w") as f:
            f.write("#!/bin/sh\n"
                    '[ "$*" = "show --property MainPID --value harrow.service" ] || exit 1\n'
                    f"cat '{notify.main_pid_file}'\n")
        os.chmod(os.path.join(stub, "systemctl"), 0o755)
        r = run(["dpkg-deb", "-e", deb_v2, os.path.join(self.tmp, "control")])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.tmp, "control", "postinst")) as f:
            step = re.search(r"^upgrade_in_place\(\) \{\n.*?^\}\n", f.read(), re.S | re.M)
        self.assertIsNotNone(step, "the package's postinst has the upgrade step")

        load = Load(port)
        load.start()
        try:
            time.sleep(1.0)
            r = run(["dpkg", "-i", deb_v2])
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            v2_inode = os.stat("/usr/sbin/harrow").st_ino
            r = run(["sh", "-c", step.group(0) + "upgrade_in_place"],
                    env=dict(os.environ, PATH=stub + ":" + os.environ.get("PATH", "/usr/bin:/bin")))
            self.assertEqual((r.returncode, r.stderr), (0, ""), stderr())
            load.join()
        finally:
            load.stop()
        summary = (f"ok={load.ok} refused={load.refused} failed={load.failed} "
                   f"retried={load.retried} errors={load.errors}")
        print(f"\n{self.id()}: {summary}", flush=True)
        self.assertGreater(load.ok, 100, summary)
        self.assertEqual((load.refused, load.failed), (0, 0), summary)

        self.assertEqual(run(["dpkg-query", "-W", "-f=${Version}", "harrow"]).stdout, "99.0.0")
        self.assertNotEqual(v1_inode, v2_inode)
        with open(notify.main_pid_file) as f:
            new_pid = int(f.read())
        self.assertNotEqual(new_pid, self.proc.pid)
        self.assertEqual(self.proc.wait(30), 0, stderr())
        self.assertEqual(os.stat(f"/proc/{new_pid}/exe").st_ino, v2_inode, "runs version 2")
        with open(f"/proc/{new_pid}/status") as f:
            uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", f.read(), re.M).groups()
        self.assertEqual(set(uids), {str(pwd.getpwnam("harrow").pw_uid)})
        os.kill(new_pid, signal.SIGTERM)
        _, status = os.waitpid(new_pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, stderr())
        self.main_pid_file = None


if __name__ == "__main__":
    unittest.main()

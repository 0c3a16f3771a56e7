"""End-to-end: the access log says, for every request, which server served it and why a
failed one failed; it survives logrotate's rename + SIGUSR1."""
import json
import os
import signal
import socket

from harness import HarrowTestCase, dead_port, config_xml, farm_xml, request, rule_xml, wait_for


class AccessLog(HarrowTestCase):
    def start(self, fmt):
        self.o = self.origin("o")
        self.dead = dead_port()
        self.dir = self.enterContext(__import__("tempfile").TemporaryDirectory())
        self.path = os.path.join(self.dir, "access.log")
        return self.harrow(config_xml(
            [farm_xml("live", [("127.0.0.1", self.o.port, 1)]),
             farm_xml("down", [("127.0.0.1", self.dead, 1)])],
            [rule_xml("down", "down", pattern="^down/.*", syntax="ECMAScript"),
             rule_xml("live", "live", pattern="^(live|_origin)/.*", syntax="ECMAScript")],
            harrow=f'<accessLog path="{self.path}" format="{fmt}"/>'))

    def lines(self, count):
        def read():
            if not os.path.exists(self.path):
                return None
            with open(self.path) as f:
                rows = [l for l in f.read().splitlines() if l and not l.startswith("#")]
            return rows if len(rows) >= count else None
        return wait_for(read, 10, f"{count} access log lines")

    def test_w3c_lines_name_server_reason_and_log_id(self):
        h = self.start("w3c")
        _, _, body = request(h.port, path="/_origin/headers", headers={"Host": "x"})
        request(h.port, path="/live/page?q=1", headers={"User-Agent": "probe agent"})
        request(h.port, path="/down/x")
        request(h.port, path="/nowhere")
        rows = self.lines(4)
        with open(self.path) as f:
            self.assertTrue(f.readline().startswith("#Software: Harrow"))
        fields_line = [l for l in open(self.path) if l.startswith("#Fields:")][0].split()[1:]
        parsed = [dict(zip(fields_line, r.split(" "))) for r in rows]
        by_stem = {p["cs-uri-stem"]: p for p in parsed}
        ok = by_stem["/live/page"]
        self.assertEqual(ok["cs-uri-query"], "q=1")
        self.assertEqual(ok["sc-status"], "200")
        self.assertEqual(ok["cs(User-Agent)"], "probe+agent")
        self.assertEqual(ok["x-farm"], "live")
        self.assertEqual(ok["x-server"], f"127.0.0.1:{self.o.port}")
        self.assertEqual(ok["x-reason"], "ok")
        self.assertEqual(ok["s-ip"], "127.0.0.1")
        self.assertRegex(ok["x-upstream-header-ms"], r"^\d+$")
        self.assertEqual(ok["x-retries"], "0")
        down = by_stem["/down/x"]
        self.assertEqual(down["sc-status"], "502")
        self.assertEqual(down["x-reason"], "upstream_connect_refused")
        self.assertEqual(down["x-upstream-error"], "ECONNREFUSED")
        self.assertEqual(down["x-server"], f"127.0.0.1:{self.dead}")
        self.assertEqual(down["x-upstream-connect-ms"], "-")
        self.assertEqual(down["x-upstream-header-ms"], "-")
        self.assertEqual(by_stem["/nowhere"]["x-reason"], "no_route")
        self.assertEqual(by_stem["/nowhere"]["sc-status"], "404")
        # The id in the log is the one the origin received.
        sent_id = [l.split(":", 1)[1].strip() for l in body.decode().splitlines()
                   if l.lower().startswith("x-arr-log-id:")]
        self.assertEqual(sent_id, [by_stem["/_origin/headers"]["x-arr-log-id"]])

    def test_json_lines_and_reopen_after_rotation(self):
        h = self.start("json")
        request(h.port, path="/live/a")
        rows = [json.loads(l) for l in self.lines(1)]
        self.assertEqual(rows[0]["status"], 200)
        self.assertEqual(rows[0]["farm"], "live")
        self.assertEqual(rows[0]["reason"], "ok")
        self.assertEqual(rows[0]["serverIp"], "127.0.0.1")
        self.assertGreater(rows[0]["bytesSent"], 0)
        os.rename(self.path, self.path + ".1")
        h.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: "reopened" in h.stderr(), what="the reopen log line")
        request(h.port, path="/live/b")
        rows = [json.loads(l) for l in self.lines(1)]
        self.assertEqual(rows[0]["path"], "/live/b")
        with open(self.path + ".1") as f:
            self.assertEqual(len(f.read().splitlines()), 1)

    def test_reopen_during_traffic_loses_no_line(self):
        import http.client
        import threading
        h = self.start("json")
        total = 3000
        done = threading.Event()

        def traffic():
            conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
            for i in range(total):
                conn.request("GET", f"/live/{i}")
                conn.getresponse().read()
            conn.close()
            done.set()

        t = threading.Thread(target=traffic)
        t.start()
        wait_for(lambda: os.path.exists(self.path) and os.path.getsize(self.path) > 0, 10,
                 "the first flushed lines")
        os.rename(self.path, self.path + ".1")
        h.proc.send_signal(signal.SIGUSR1)
        t.join(60)
        self.assertTrue(done.is_set())

        def count():
            n = 0
            for p in (self.path + ".1", self.path):
                if os.path.exists(p):
                    with open(p) as f:
                        n += sum(1 for line in f if line.strip())
            return n if n >= total else None

        self.assertEqual(wait_for(count, 10, f"{total} lines across both files"), total)
        paths = set()
        for p in (self.path + ".1", self.path):
            with open(p) as f:
                paths.update(json.loads(line)["path"] for line in f if line.strip())
        self.assertEqual(len(paths), total)  # every request exactly once

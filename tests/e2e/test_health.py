"""End-to-end: health. The headline: one probe per server per interval, whatever the number
of workers, listeners, rules, application pools or reloads (health/farm_prober.h)."""
import collections
import http.client
import re
import time
import unittest

from harness import HarrowTestCase, config_xml, farm_xml, request, rule_xml, wait_for


def health_xml(url, interval="00:00:01", extra=""):
    return f'<healthCheck url="{url}" interval="{interval}" timeout="00:00:01" {extra}/>'


class ProbeCount(HarrowTestCase):
    """Origins used only as probe targets: every request they count is a probe."""

    def run_window(self, workers):
        origins = [self.origin(f"s{i}", host=f"127.0.0.{i + 2}") for i in range(3)]
        servers = [(o.host, o.port, 1) for o in origins]
        farm = farm_xml("probed", servers, extra=health_xml("http://probed.example/hc"))
        farm = farm.replace('<webFarm name="probed">',
                            '<webFarm name="probed"><applicationPool name="PoolA"/>')
        rules = [rule_xml(f"r{i}", "probed", pattern=f"^site{i}/.*", syntax="ECMAScript")
                 for i in range(3)]
        pools = ('<system.applicationHost><applicationPools><add name="PoolA"/><add name="PoolB"/>'
                 '</applicationPools></system.applicationHost>')
        listeners = '<listen address="127.0.0.1:0"/><listen address="127.0.0.6:0"/>'
        text = config_xml([farm], rules, harrow=listeners).replace(
            "</configuration>", pools + "</configuration>")
        h = self.harrow(text, workers=workers, listen=False)
        self.assertEqual(h.stderr().count("harrow: listening on"), 2, "two listeners (two sites)")
        # Let every server get its first probe (spread over the first interval), then measure.
        wait_for(lambda: all(o.stats()["requests"] >= 1 for o in origins), 5, "first probes")
        start_counts = [o.stats()["requests"] for o in origins]
        t0 = time.monotonic()
        reloads = 0
        variants = [text, text.replace('name="r0"', 'name="r0-renamed"')]
        while time.monotonic() - t0 < 6.0:
            reloads += 1
            h.reload(variants[reloads % 2])
            if reloads >= 20:
                break
            time.sleep(0.1)
        while time.monotonic() - t0 < 6.0:
            time.sleep(0.05)
        window = time.monotonic() - t0
        counts = [o.stats()["requests"] - c for o, c in zip(origins, start_counts)]
        self.assertEqual(reloads, 20)
        # Interval 1 s with ±10 % jitter: between window/1.1 and window/0.9 probes, ±1 for the
        # edges. A probe per worker, per listener, per rule or per reload would blow the top.
        low, high = int(window / 1.1) - 1, int(window / 0.9) + 1
        for o, n in zip(origins, counts):
            self.assertGreaterEqual(n, low, f"{o.name} got {n} probes in {window:.1f}s")
            self.assertLessEqual(n, high, f"{o.name} got {n} probes in {window:.1f}s")
        _, metrics = h.admin_get("/metrics")
        total = sum(int(v) for v in re.findall(
            r'harrow_health_probes_total\{farm="probed",[^}]*result="pass"\} (\d+)', metrics))
        self.assertGreaterEqual(total, sum(counts))
        return counts

    def test_one_probe_per_interval_with_1_worker(self):
        self.run_window(1)

    def test_one_probe_per_interval_with_4_workers(self):
        self.run_window(4)

    def test_one_probe_per_interval_with_8_workers(self):
        self.run_window(8)


class ProbeRequest(HarrowTestCase):
    def test_probe_carries_host_user_agent_and_path(self):
        o = self.origin("o")
        # The probes fetch the origin's header echo; each farm's responseMatch passes only if the
        # probe sent what ARR users expect.
        url = "http://shop.example.com/_origin/headers?probe=1"
        farms = [
            farm_xml("ua", [("127.0.0.1", o.port, 1)], extra=health_xml(
                url, extra='responseMatch="Harrow-HealthCheck/"')),
            farm_xml("host", [("127.0.0.1", o.port, 1)], extra=health_xml(
                url, extra='responseMatch="Host: shop.example.com"')),
            farm_xml("path", [("127.0.0.1", o.port, 1)], extra=health_xml(
                url, extra='responseMatch="GET /_origin/headers?probe=1 HTTP/1.1"')),
        ]
        h = self.harrow(config_xml(farms, [rule_xml("r", "ua")]))
        for farm in ["ua", "host", "path"]:
            wait_for(lambda: re.search(
                rf'harrow_health_probes_total{{farm="{farm}",[^}}]*result="pass"}} [1-9]',
                h.admin_get("/metrics")[1]), 5, f"a passing probe for {farm}")
        self.assertNotIn("unhealthy", h.stderr())


class Transitions(HarrowTestCase):
    def farm_with(self, servers, health, extra_harrow=""):
        return config_xml([farm_xml("f", servers, extra=health)], [rule_xml("r", "f")],
                          harrow=extra_harrow)

    def test_dead_server_leaves_rotation_and_comes_back(self):
        a = self.origin("a", host="127.0.0.2")
        b = self.origin("b", host="127.0.0.3")
        h = self.harrow(self.farm_with(
            [(a.host, a.port, 1), (b.host, b.port, 1)],
            health_xml("http://f.example/", interval="00:00:00.3", extra='retries="2"')))
        names = collections.Counter(request(h.port)[1]["x-origin"] for _ in range(10))
        self.assertEqual(names, {"a": 5, "b": 5})
        b.stop()
        wait_for(lambda: "server=127.0.0.3:" in h.stderr() and "-> unhealthy" in h.stderr(),
                 10, "b marked unhealthy")
        for _ in range(10):
            status, headers, _ = request(h.port)
            self.assertEqual((status, headers.get("x-origin")), (200, "a"))
        # One log line for the transition, not one per failed probe.
        time.sleep(1.0)
        self.assertEqual(h.stderr().count("-> unhealthy"), 1, h.stderr())
        b.restart()
        wait_for(lambda: "-> healthy" in h.stderr(), 10, "b healthy again")
        names = collections.Counter(request(h.port)[1]["x-origin"] for _ in range(10))
        self.assertEqual(names, {"a": 5, "b": 5})

    def test_response_match_mismatch_makes_the_farm_unavailable(self):
        a = self.origin("a")
        h = self.harrow(self.farm_with(
            [(a.host, a.port, 1)],
            health_xml("http://f.example/", interval="00:00:00.3",
                       extra='retries="1" responseMatch="all good"')))
        wait_for(lambda: "-> unhealthy" in h.stderr(), 10, "unhealthy on body mismatch")
        self.assertIn("responseMatch", h.stderr())
        status, _, body = request(h.port)
        self.assertEqual(status, 503)
        self.assertIn(b"no_server", body)

    def test_min_servers_panic_mode_keeps_serving(self):
        a, b = self.origin("a", host="127.0.0.2"), self.origin("b", host="127.0.0.3")
        h = self.harrow(self.farm_with(
            [(a.host, a.port, 1), (b.host, b.port, 1)],
            health_xml("http://f.example/", interval="00:00:00.3",
                       extra='retries="1" responseMatch="never there" minServers="1"')))
        wait_for(lambda: "panic mode on" in h.stderr(), 10, "panic mode")
        names = collections.Counter(request(h.port)[1]["x-origin"] for _ in range(10))
        self.assertEqual(names, {"a": 5, "b": 5})
        self.assertIn('harrow_farm_panic{farm="f",pool=""} 1', h.admin_get("/metrics")[1])

    def test_live_traffic_failures_mark_unhealthy_without_probes(self):
        a, b = self.origin("a", host="127.0.0.2"), self.origin("b", host="127.0.0.3")
        h = self.harrow(self.farm_with(
            [(a.host, a.port, 1), (b.host, b.port, 1)],
            '<healthCheck maxLiveTrafficFailures="3" liveTrafficFailureCodes="500-599"/>'))
        # b answers 500 to requests that say so; a too, but a is never asked to.
        for _ in range(20):
            request(h.port, path="/?status=500")
        wait_for(lambda: "-> unhealthy" in h.stderr(), 10, "a server marked unhealthy")
        self.assertIn("live-traffic", h.stderr())


class AdminState(HarrowTestCase):
    def test_drain_and_start_and_bad_input(self):
        a, b = self.origin("a", host="127.0.0.2"), self.origin("b", host="127.0.0.3")
        h = self.harrow(config_xml([farm_xml("f", [(a.host, a.port, 1), (b.host, b.port, 1)])],
                                   [rule_xml("r", "f")]))
        self.assertEqual(h.admin_post(f"/api/farms/f/servers/127.0.0.3/state", "drain")[0], 200)
        wait_for(lambda: "-> healthy/draining" in h.stderr(), 5, "drain applied")
        self.assertEqual({request(h.port)[1]["x-origin"] for _ in range(6)}, {"a"})
        self.assertEqual(h.admin_post(f"/api/farms/f/servers/127.0.0.3:{b.port}/state",
                                      '{"state": "start"}')[0], 200)
        wait_for(lambda: "-> healthy/available" in h.stderr(), 5, "start applied")
        self.assertEqual({request(h.port)[1]["x-origin"] for _ in range(6)}, {"a", "b"})
        self.assertEqual(h.admin_post("/api/farms/f/servers/127.0.0.3/health", "unhealthy")[0], 200)
        wait_for(lambda: "-> unhealthy" in h.stderr(), 5, "set unhealthy")
        self.assertEqual({request(h.port)[1]["x-origin"] for _ in range(6)}, {"a"})
        self.assertEqual(h.admin_post("/api/farms/nope/servers/x/state", "drain")[0], 404)
        self.assertEqual(h.admin_post("/api/farms/f/servers/10.9.9.9/state", "drain")[0], 404)
        self.assertEqual(h.admin_post("/api/farms/f/servers/127.0.0.2/state", "sideways")[0], 400)
        self.assertEqual(h.admin_get("/api/farms/f/servers/127.0.0.2/state")[0], 405)
        self.assertIn('"state":"Available"', h.admin_get("/api/farms")[1])


if __name__ == "__main__":
    unittest.main()


class KillUnderLoad(HarrowTestCase):
    @unittest.skipUnless(__import__("shutil").which("wrk"), "wrk is not installed")
    def test_killing_a_server_under_load_loses_no_request(self):
        a = self.origin("a", host="127.0.0.2", workers=2)
        b = self.origin("b", host="127.0.0.3", workers=2)
        h = self.harrow(config_xml(
            [farm_xml("f", [(a.host, a.port, 1), (b.host, b.port, 1)],
                      extra=health_xml("http://f.example/", interval="00:00:00.5",
                                       extra='retries="2"'))],
            [rule_xml("r", "f")]), workers=2)
        load = __import__("subprocess").Popen(
            ["wrk", "-t1", "-c16", "-d5s", h.url("/")],
            stdout=__import__("subprocess").PIPE, stderr=__import__("subprocess").STDOUT, text=True)
        time.sleep(1.5)
        b.stop()
        out, _ = load.communicate(timeout=60)
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        self.assertGreater(requests, 1000, out)
        self.assertNotIn("Non-2xx", out, out)
        self.assertNotIn("Socket errors", out, out)
        # Requests that met the dead server were failed over (logged), not failed.
        self.assertRegex(h.stderr(), r"upstream_(connect_refused|reset) .*server=127\.0\.0\.3:")
        wait_for(lambda: "-> unhealthy" in h.stderr(), 10, "b marked unhealthy")
        self.assertEqual({request(h.port)[1]["x-origin"] for _ in range(6)}, {"a"})
        b.restart()
        wait_for(lambda: "-> healthy" in h.stderr(), 10, "b healthy after the next probe")
        self.assertEqual({request(h.port)[1]["x-origin"] for _ in range(6)}, {"a", "b"})

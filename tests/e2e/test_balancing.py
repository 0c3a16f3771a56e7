"""End-to-end: every <loadBalancing algorithm>, cookie affinity (ARR-compatible values) and
host-name affinity, through the real binary against real origins."""
import collections
import hashlib
import http.client
import threading
import unittest

from harness import HarrowTestCase, config_xml, farm_xml, request, rule_xml, wait_for


def affinity_value(address):
    """ARR's ARRAffinity value: SHA-256 over the lower-cased host name as UTF-16LE, in hex."""
    return hashlib.sha256(address.lower().encode("utf-16-le")).hexdigest()


def balancing(algorithm, attrs=""):
    return f'<loadBalancing algorithm="{algorithm}" {attrs}/>'


def counts(port, n, path="/", headers=None):
    seen = collections.Counter()
    for _ in range(n):
        status, hdrs, _ = request(port, path=path, headers=headers)
        assert status == 200, status
        seen[hdrs["x-origin"]] += 1
    return seen


def parallel_counts(port, threads, per_thread, path="/"):
    """`threads` clients, each sending `per_thread` requests on its own keep-alive connection."""
    seen = collections.Counter()
    lock = threading.Lock()
    errors = []

    def client():
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for _ in range(per_thread):
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                with lock:
                    seen[resp.getheader("X-Origin")] += 1
            conn.close()
        except Exception as e:  # reported below, on the test thread
            errors.append(e)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(120)
    if errors:
        raise errors[0]
    return seen


class Algorithms(HarrowTestCase):
    def farm(self, algorithm, origins, weights=None, attrs="", workers=1):
        weights = weights or [1] * len(origins)
        servers = [(o.host, o.port, w) for o, w in zip(origins, weights)]
        text = config_xml([farm_xml("f", servers, extra=balancing(algorithm, attrs))],
                          [rule_xml("r", "f")])
        return self.harrow(text, workers=workers)

    def test_weighted_round_robin_converges_with_four_workers(self):
        a, b = self.origin("a", host="127.0.0.2"), self.origin("b", host="127.0.0.3")
        h = self.farm("WeightedRoundRobin", [a, b], weights=[3, 1], workers=4)
        # Fresh connections land on any of the 4 workers; each balances on its own, and the
        # sum still follows the weights.
        seen = counts(h.port, 400)
        self.assertGreater(seen["a"], 260, seen)
        self.assertLess(seen["a"], 340, seen)

    def test_least_requests_avoids_the_busy_server(self):
        fast = self.origin("fast", host="127.0.0.2")
        slow = self.origin("slow", host="127.0.0.3", delay_ms=300)
        h = self.farm("LeastRequests", [fast, slow])
        seen = parallel_counts(h.port, threads=6, per_thread=8)
        # Each request held by the slow server counts against it; the fast one drains at once.
        self.assertEqual(sum(seen.values()), 48)
        self.assertGreater(seen["fast"], 3 * seen["slow"], seen)

    def test_least_response_time_moves_share_off_a_slow_server(self):
        fast = self.origin("fast", host="127.0.0.2")
        slow = self.origin("slow", host="127.0.0.3", delay_ms=150)
        h = self.farm("LeastResponseTime", [fast, slow])
        seen = counts(h.port, 60)
        # One at a time, so in-flight counts are equal: only the measured latency tells them apart.
        self.assertGreaterEqual(seen["slow"], 1, "a server without samples gets probe traffic")
        self.assertGreater(seen["fast"], 45, seen)

    def test_weighted_total_traffic_follows_weights_in_bytes(self):
        a, b = self.origin("a", host="127.0.0.2"), self.origin("b", host="127.0.0.3")
        h = self.farm("WeightedTotalTraffic", [a, b], weights=[3, 1])
        seen = counts(h.port, 200, path="/?bytes=2000")
        self.assertGreater(seen["a"], 120, seen)
        self.assertLess(seen["a"], 180, seen)

    def test_request_hash_pins_each_url(self):
        origins = [self.origin(n, host=f"127.0.0.{i + 2}") for i, n in enumerate("abc")]
        h = self.farm("RequestHash", origins)
        owners = {}
        for i in range(30):
            path = f"/item/{i}?v=1"
            first = request(h.port, path=path)[1]["x-origin"]
            self.assertEqual(counts(h.port, 3, path=path), {first: 3})
            owners[path] = first
        self.assertEqual(len(set(owners.values())), 3, "30 URLs spread over all 3 servers")

    def test_request_hash_over_a_server_variable(self):
        origins = [self.origin(n, host=f"127.0.0.{i + 2}") for i, n in enumerate("abc")]
        h = self.farm("RequestHash", origins, attrs='hashServerVariable="HTTP_X_USER"')
        owners = set()
        for user in ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"):
            seen = {request(h.port, path=f"/p{i}", headers={"X-User": user})[1]["x-origin"]
                    for i in range(5)}
            self.assertEqual(len(seen), 1, f"{user}: every path on one server")
            owners |= seen
        self.assertGreater(len(owners), 1)

    def test_query_string_hash_uses_only_the_named_parameters(self):
        origins = [self.origin(n, host=f"127.0.0.{i + 2}") for i, n in enumerate("abc")]
        h = self.farm("RequestHash", origins,
                      attrs='hashServerVariable="QUERY_STRING" queryStringNames="tenant"')
        owners = set()
        for tenant in range(12):
            seen = {request(h.port, path=f"/x?page={i}&tenant=t{tenant}")[1]["x-origin"]
                    for i in range(4)}
            self.assertEqual(len(seen), 1, f"tenant {tenant}: other parameters do not matter")
            owners |= seen
        self.assertGreater(len(owners), 1)

    def test_removing_a_server_moves_only_its_keys(self):
        origins = [self.origin(n, host=f"127.0.0.{i + 2}") for i, n in enumerate("abcd")]
        servers = [(o.host, o.port, 1) for o in origins]
        text = config_xml([farm_xml("f", servers, extra=balancing("RequestHash"))],
                          [rule_xml("r", "f")])
        h = self.harrow(text)
        paths = [f"/k/{i}" for i in range(80)]
        before = {p: request(h.port, path=p)[1]["x-origin"] for p in paths}
        h.reload(config_xml([farm_xml("f", servers[1:], extra=balancing("RequestHash"))],
                            [rule_xml("r", "f")]))
        after = {p: request(h.port, path=p)[1]["x-origin"] for p in paths}
        moved = [p for p in paths if before[p] != after[p]]
        self.assertTrue(all(before[p] == "a" for p in moved), "only the removed server's keys move")
        self.assertNotIn("a", after.values())


class CookieAffinity(HarrowTestCase):
    def start(self, affinity_attrs="", servers=None, origins=None):
        origins = origins or [self.origin("a", host="127.0.0.2"), self.origin("b", host="127.0.0.3")]
        servers = servers or [(o.host, o.port, 1) for o in origins]
        extra = f'<affinity useCookie="true" {affinity_attrs}/>'
        self.text = config_xml([farm_xml("f", servers, extra=extra)], [rule_xml("r", "f")])
        return self.harrow(self.text), origins

    def test_first_response_pins_the_client_and_later_requests_stay(self):
        h, (a, b) = self.start()
        status, hdrs, _ = request(h.port)
        self.assertEqual(status, 200)
        server = hdrs["x-origin"]
        host = a.host if server == "a" else b.host
        value = affinity_value(host)
        self.assertEqual(hdrs["set-cookie"], f"ARRAffinity={value}; Path=/; HttpOnly")
        # 100 requests carrying the cookie: all on the same server, no new cookie.
        for _ in range(100):
            _, hdrs, _ = request(h.port, headers={"Cookie": f"other=1; ARRAffinity={value}"})
            self.assertEqual(hdrs["x-origin"], server)
            self.assertNotIn("set-cookie", hdrs)
        # The value is accepted in upper-case hex too (another proxy may have issued it).
        _, hdrs, _ = request(h.port, headers={"Cookie": f"ARRAffinity={value.upper()}"})
        self.assertEqual(hdrs["x-origin"], server)

    def test_disabled_affine_server_means_a_new_server_and_a_new_cookie(self):
        h, (a, b) = self.start()
        cookie = f"ARRAffinity={affinity_value(b.host)}"
        self.assertEqual(request(h.port, headers={"Cookie": cookie})[1]["x-origin"], "b")
        self.assertEqual(h.admin_post("/api/farms/f/servers/127.0.0.3/state", "forcefulStop")[0], 200)
        wait_for(lambda: "unavailable" in h.stderr(), 5, "stop applied")
        _, hdrs, _ = request(h.port, headers={"Cookie": cookie})
        self.assertEqual(hdrs["x-origin"], "a")
        self.assertEqual(hdrs["set-cookie"], f"ARRAffinity={affinity_value(a.host)}; Path=/; HttpOnly")

    def test_server_removed_by_reload_means_a_new_cookie(self):
        h, (a, b) = self.start()
        cookie = f"ARRAffinity={affinity_value(a.host)}"
        self.assertEqual(request(h.port, headers={"Cookie": cookie})[1]["x-origin"], "a")
        h.reload(self.text.replace(f'<server address="{a.host}">', '<server address="127.0.0.9">'))
        _, hdrs, _ = request(h.port, headers={"Cookie": cookie})
        self.assertIn(hdrs["x-origin"], ("a", "b"))
        self.assertIn("set-cookie", hdrs)
        self.assertNotIn(affinity_value(a.host), hdrs["set-cookie"])

    def test_draining_server_keeps_its_affine_clients(self):
        h, (a, b) = self.start()
        cookie = f"ARRAffinity={affinity_value(b.host)}"
        self.assertEqual(h.admin_post("/api/farms/f/servers/127.0.0.3/state", "drain")[0], 200)
        wait_for(lambda: "draining" in h.stderr(), 5, "drain applied")
        for _ in range(10):
            self.assertEqual(request(h.port, headers={"Cookie": cookie})[1]["x-origin"], "b")
        # New clients are not sent there.
        self.assertEqual(counts(h.port, 10), {"a": 10})

    def test_return503_policy(self):
        h, (a, b) = self.start('affinityFailurePolicy="Return503"')
        cookie = f"ARRAffinity={affinity_value(b.host)}"
        self.assertEqual(h.admin_post("/api/farms/f/servers/127.0.0.3/health", "unhealthy")[0], 200)
        wait_for(lambda: "-> unhealthy" in h.stderr(), 5, "health applied")
        status, hdrs, _ = request(h.port, headers={"Cookie": cookie})
        self.assertEqual(status, 503)
        self.assertIn("affinity_unavailable", h.stderr())
        # Without a cookie the client is balanced as usual.
        self.assertEqual(request(h.port)[0], 200)

    def test_backend_opt_out_sets_no_cookie_and_is_not_passed_on(self):
        h, _ = self.start()
        _, hdrs, _ = request(h.port, path="/?header=Arr-Disable-Session-Affinity:true")
        self.assertNotIn("set-cookie", hdrs)
        self.assertNotIn("arr-disable-session-affinity", hdrs)

    def test_cookie_attributes_for_todays_browsers(self):
        h, (a, b) = self.start('cookieName="Sticky" sameSite="None" domain="example.com:8080" '
                               'maxAge="01:00:00"')
        conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        cookies = resp.msg.get_all("Set-Cookie")
        server_host = a.host if resp.getheader("X-Origin") == "a" else b.host
        value = affinity_value(server_host)
        self.assertEqual(cookies, [
            f"Sticky={value}; Path=/; HttpOnly; Domain=example.com; Max-Age=3600",
            f"StickySameSite={value}; Path=/; HttpOnly; Domain=example.com; Max-Age=3600; "
            "SameSite=None; Secure"])
        conn.close()
        # Either cookie pins the client.
        other = "b" if resp.getheader("X-Origin") == "a" else "a"
        other_value = affinity_value(a.host if other == "a" else b.host)
        for name in ("Sticky", "StickySameSite"):
            hdrs = request(h.port, headers={"Cookie": f"{name}={other_value}"})[1]
            self.assertEqual(hdrs["x-origin"], other)

    def test_client_affinity_survives_a_failed_connect(self):
        a = self.origin("a", host="127.0.0.2")
        b = self.origin("b", host="127.0.0.3")
        h, _ = self.start(origins=[a, b])
        b.stop()
        cookie = f"ARRAffinity={affinity_value(b.host)}"
        _, hdrs, _ = request(h.port, headers={"Cookie": cookie})
        self.assertEqual(hdrs["x-origin"], "a")
        self.assertIn(affinity_value(a.host), hdrs["set-cookie"], "re-pinned to the server that answered")


class HostAffinity(HarrowTestCase):
    def test_each_host_stays_on_its_servers(self):
        origins = [self.origin(n, host=f"127.0.0.{i + 2}") for i, n in enumerate("abc")]
        servers = [(o.host, o.port, 1) for o in origins]
        extra = ('<affinity useHostName="true"><host name="big.example" servers="2"/></affinity>')
        h = self.harrow(config_xml([farm_xml("f", servers, extra=extra)], [rule_xml("r", "f")]))
        owners = {}
        for site in ("one.example", "two.example", "three.example"):
            seen = counts(h.port, 6, headers={"Host": site})
            self.assertEqual(len(seen), 1, f"{site} on one server: {seen}")
            owners[site] = next(iter(seen))
        self.assertEqual(len(set(owners.values())), 3, "hosts allocated round robin")
        big = counts(h.port, 10, headers={"Host": "BIG.example:8080"})
        self.assertEqual(len(big), 2, f"big.example gets 2 servers: {big}")


if __name__ == "__main__":
    unittest.main()

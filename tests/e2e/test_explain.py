"""End-to-end: `harrow --check-config --explain "GET URL" [--header …]` and POST /api/explain —
what Harrow would do with one request (site, rules and conditions, rewritten URL, farm, the
server the balancer would pick and why, outbound rules), without touching the network."""
import hashlib
import json
import os
import subprocess
import unittest

from harness import HARROW, HarrowTestCase, config_xml, farm_xml, rule_xml

EXAMPLES = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))

# One representative request per example: (file, request, headers, outcome, farm, rule).
CASES = [
    ("affinity.config", "GET http://127.0.0.1:18080/css/site.css", [], "farm", "assets", "assets"),
    ("application-pools.config", "GET http://portal.example.com/home", [], "farm", "portal",
     "portal"),
    ("demo.config", "GET http://localhost/", [], "farm", "demo", "ARR_demo_loadbalance"),
    ("global-proxy.config", "GET http://127.0.0.1/legacy/report?id=7", [], "proxy",
     "127.0.0.102:18112", "legacy-service"),
    ("harrow-section.config", "GET http://localhost/x", [], "farm", "backend",
     "ARR_backend_loadbalance"),
    ("health-check.config", "POST http://orders.example/orders", [], "farm", "orders",
     "ARR_orders_loadbalance"),
    ("host-routing.config", "GET http://news.example.com/today", [], "farm", "blog",
     "blog-by-host"),
    ("incident-fragment.config", "GET http://localhost/", [], "no-route", None, None),
    ("load-balancing.config", "GET http://localhost/app/dashboard?tenant=acme", [], "farm",
     "tenants", "tenants"),
    ("rewrite-features.config", "GET http://localhost/Docs/Index.html", [], "redirect", None,
     "lower-case-paths"),
    ("sites-and-outbound.config", "GET http://shop.example:18110/legacy/cart", [], "farm", "shop",
     "shop-to-farm"),
    ("sites-bindings.config", "GET http://www.example.com:18080/", [], "farm", "intranet",
     "ARR_intranet_loadbalance"),
    ("weighted-farm.config", "GET http://localhost/products/42", [], "farm", "catalog",
     "ARR_catalog_loadbalance"),
]


def explain(config_path, request, headers=()):
    args = [HARROW, "--check-config", "--config", config_path, "--explain", request]
    for h in headers:
        args += ["--header", h]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def affinity_value(address):
    return hashlib.sha256(address.lower().encode("utf-16-le")).hexdigest().upper()


class ExplainExamplesTest(unittest.TestCase):
    def test_every_example_is_covered(self):
        names = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".config"))
        self.assertEqual(sorted(c[0] for c in CASES), names)

    def test_every_example_explains_a_request(self):
        for name, request, headers, outcome, farm, rule in CASES:
            with self.subTest(example=name):
                r = explain(os.path.join(EXAMPLES, name), request, headers)
                self.assertEqual(r.returncode, 0, r.stderr)
                out = r.stdout
                self.assertIn("request: " + request.split(" ", 1)[0], out)
                self.assertIn("decision: ", out)
                if rule is not None:
                    self.assertIn(f'rule "{rule}"', out)
                if outcome in ("farm", "proxy"):
                    self.assertIn(f"farm {farm}:", out)
                    self.assertIn("server picked: ", out)
                    self.assertIn("assumed healthy (offline", out)
                if outcome == "no-route":
                    self.assertIn("404 no_route", out)
                if outcome == "redirect":
                    self.assertIn("redirects: ", out)

    def test_host_routing_shows_conditions_and_server(self):
        r = explain(os.path.join(EXAMPLES, "host-routing.config"),
                    "GET http://news.example.com/today?x=1")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        # The shop rule's pattern matched, its condition did not.
        self.assertIn('rule "shop-by-host"', out)
        self.assertRegex(out, r'condition \{HTTP_HOST\} ~ "\^\(www\\\.\)\?shop.*with input '
                              r'"news\.example\.com": no match')
        self.assertIn("conditions (MatchAll): do not hold", out)
        self.assertIn("conditions (MatchAny): hold", out)
        self.assertIn('{R:0}="today"', out)
        self.assertIn('decision: rule "blog-by-host" rewrites to farm "blog" over http, URL sent: '
                      "/today?x=1", out)
        self.assertRegex(out, r"server picked: 127\.0\.0\.\d+:\d+ \(WeightedRoundRobin")

    def test_rewrite_features_redirect_abort_and_variables(self):
        path = os.path.join(EXAMPLES, "rewrite-features.config")
        r = explain(path, "GET http://localhost/Docs/Index.html?q=1")
        self.assertIn("Location: http://localhost/docs/index.html?q=1", r.stdout)
        r = explain(path, "GET http://localhost/.git/config")
        self.assertIn('rule "no-dotfiles" aborts', r.stdout)
        r = explain(path, "GET https://localhost/cart")
        self.assertIn('set server variable HTTP_X_FORWARDED_PROTO = "https"', r.stdout)
        self.assertIn("request header set by the rules: X-Forwarded-Proto: https", r.stdout)

    def test_sites_and_outbound(self):
        r = explain(os.path.join(EXAMPLES, "sites-and-outbound.config"),
                    "GET http://shop.example:18110/legacy/cart")
        out = r.stdout
        self.assertIn("site: Shop", out)
        self.assertIn("global rules (<globalRules>):", out)
        self.assertIn("site rules (<location", out)
        self.assertIn('set server variable HTTP_X_SITE = "shop"', out)
        self.assertIn("URL sent: /cart", out)
        self.assertIn('"backend-links"', out)
        self.assertIn('"https-redirects"', out)
        self.assertIn("header RESPONSE_Location", out)

    def test_affinity_cookie_names_the_server(self):
        path = os.path.join(EXAMPLES, "affinity.config")
        value = affinity_value("127.0.0.82")
        r = explain(path, "GET http://127.0.0.1:18080/account",
                    [f"Cookie: ARRAffinity_sessions={value}"])
        self.assertIn("server picked: 127.0.0.82:18801 (the affinity cookie ARRAffinity_sessions "
                      "names it)", r.stdout)
        r = explain(path, "GET http://127.0.0.1:18080/account")
        self.assertIn("the response sets the affinity cookie ARRAffinity_sessions=", r.stdout)

    def test_request_hash_is_stable(self):
        path = os.path.join(EXAMPLES, "load-balancing.config")
        first = explain(path, "GET http://localhost/app/x?tenant=acme").stdout
        second = explain(path, "GET http://localhost/app/y?tenant=acme").stdout
        pick = [l for l in first.splitlines() if l.startswith("server picked:")]
        self.assertEqual(len(pick), 1)
        self.assertIn("RequestHash", pick[0])
        self.assertIn(pick[0], second)

    def test_bad_request_line_and_flag_rules(self):
        path = os.path.join(EXAMPLES, "demo.config")
        r = explain(path, "GET /relative")
        self.assertEqual(r.returncode, 2)
        self.assertIn("must be absolute", r.stderr)
        r = subprocess.run([HARROW, "--config", path, "--explain", "GET http://x/"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--check-config", r.stderr)

    def test_config_errors_still_exit_2(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".config", delete=False) as f:
            f.write("<configuration><webFarms><webFarm name='a'><bogus/></webFarm></webFarms>"
                    "</configuration>")
        try:
            r = explain(f.name, "GET http://a/")
            self.assertEqual(r.returncode, 2)
            self.assertRegex(r.stderr, r":\d+:\d+: error: ")
        finally:
            os.unlink(f.name)

    def test_help_mentions_explain(self):
        r = subprocess.run([HARROW, "--help"], capture_output=True, text=True, timeout=60)
        self.assertIn("--explain", r.stdout)
        self.assertIn("--header", r.stdout)


class ExplainAdminTest(HarrowTestCase):
    def test_api_explain_uses_live_health(self):
        a = self.origin("a")
        b = self.origin("b", host="127.0.0.2")
        h = self.harrow(config_xml(
            [farm_xml("web", [("127.0.0.1", a.port, 100), ("127.0.0.2", b.port, 100, False)])],
            [rule_xml("ARR_web_loadbalance", "web")]))
        body = json.dumps({"request": "GET http://shop.example/a/b?x=1",
                           "headers": ["X-Test: 1"]})
        status, text = h.admin_post("/api/explain", body)
        self.assertEqual(status, 200, text)
        doc = json.loads(text)
        self.assertEqual(doc["outcome"], "farm")
        self.assertEqual(doc["farm"], "web")
        self.assertEqual(doc["rule"], "ARR_web_loadbalance")
        self.assertEqual(doc["url"], "/a/b?x=1")
        self.assertEqual(doc["server"], f"127.0.0.1:{a.port}")
        report = "\n".join(doc["report"])
        self.assertIn("as the running proxy sees it now", report)
        self.assertIn('enabled="false"', report)
        # Nothing was sent upstream: the only connection the origin saw is this stats query.
        self.assertEqual(a.stats()["connections_accepted"], 1)

    def test_api_explain_is_a_guarded_post(self):
        h = self.harrow(config_xml([farm_xml("web", [("127.0.0.1", 1, 100)])],
                                   [rule_xml("r", "web")]))
        body = json.dumps({"request": "GET http://x/"})
        status, _ = h.admin_post("/api/explain", body, headers={"Content-Type": "text/plain"})
        self.assertEqual(status, 403)
        status, text = h.admin_post("/api/explain", body,
                                    headers={"Content-Type": "application/json"})
        self.assertEqual(status, 200, text)
        status, _ = h.admin_get("/api/explain")
        self.assertEqual(status, 405)
        status, text = h.admin_post("/api/explain", "{\"nope\": 1}")
        self.assertEqual(status, 400)


if __name__ == "__main__":
    unittest.main()

"""End-to-end: `harrow --check-config --config X --replay LOG...` routes the requests of W3C logs
offline — IIS's u_ex*.log (tests/data/iis-logs, written by IIS's documented format) and
Harrow's own access log — and says what would not route as logged, with its exit code."""
import os
import re
import subprocess
import tempfile

from harness import HARROW, HarrowTestCase, config_xml, farm_xml, request, rule_xml

DATA = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data",
                                     "iis-logs"))
SHOP = os.path.join(DATA, "shop.config")


def h_port(out):
    """The listener port in the replayed URLs (the log names the Host the client sent)."""
    return int(re.search(r"http://127\.0\.0\.1:(\d+)/", out).group(1))


def replay(config, *logs):
    p = subprocess.run([HARROW, "--check-config", "--config", config, "--replay", *logs],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


class ReplayIisLogsTest(HarrowTestCase):
    def test_a_log_that_routes_exits_0(self):
        rc, out, err = replay(SHOP, os.path.join(DATA, "u_ex261201.log"))
        self.assertEqual(rc, 0, out + err)
        self.assertIn("replay: 10 requests routed, 0 malformed lines", out)
        self.assertIn("  shop  7\n", out)
        self.assertIn("  legacy-catalog  1\n", out)
        self.assertIn("result: every request routes as logged", out)

    def test_unroutable_refused_and_malformed_lines_exit_1(self):
        log = os.path.join(DATA, "u_ex261202.log")
        rc, out, err = replay(SHOP, log)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("404 no_route: 2", out)
        self.assertIn(f"{log}:9: GET http://10.0.0.5/favicon.ico: 404 no_route", out)
        self.assertIn("  503 no_server: 1", out)
        self.assertIn("  404 double_escaping: 1", out)
        self.assertIn(f"{log}:10: 14 fields where #Fields: names 15", out)
        self.assertIn(f"{log}:12: cs-uri-stem shop/index.aspx is not a path", out)

    def test_rewrites_that_differ_from_iis_are_listed(self):
        log = os.path.join(DATA, "u_ex261203.log")
        rc, out, err = replay(SHOP, log)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("rewritten URL differs from IIS's: 1", out)
        self.assertIn(f"{log}:7: GET http://10.0.0.5/catalog/sprockets.aspx: IIS rewrote to "
                      "/products/sprockets.aspx, Harrow to /products/sprockets", out)

    def test_several_logs_add_up_and_an_unreadable_one_is_an_error(self):
        logs = [os.path.join(DATA, n) for n in ("u_ex261201.log", "u_ex261203.log")]
        rc, out, err = replay(SHOP, *logs)
        self.assertEqual(rc, 1)
        self.assertIn("replay: 14 requests routed", out)
        rc, out, err = replay(SHOP, os.path.join(DATA, "no-such.log"))
        self.assertEqual(rc, 2)
        self.assertIn("cannot read", err)


class ReplayHarrowLogTest(HarrowTestCase):
    def test_own_access_log_replays_and_shows_a_changed_farm(self):
        tmp = tempfile.TemporaryDirectory(prefix="harrow-replay-")
        self.addCleanup(tmp.cleanup)
        log = os.path.join(tmp.name, "access.log")
        config = os.path.join(tmp.name, "harrow.config")
        a = self.origin("a")
        b = self.origin("b")
        farms = [farm_xml("web", [("127.0.0.1", a.port, 100)]),
                 farm_xml("api", [("127.0.0.1", b.port, 100)])]
        rules = [rule_xml("api", "api", "api/*"), rule_xml("web", "web", "site/*")]
        h = self.harrow(config_xml(farms, rules, f'<accessLog path="{log}" format="w3c"/>'))
        for path in ("/site/a", "/api/x?id=1", "/site/b", "/nothing"):
            request(h.port, path=path)
        self.assertEqual(h.stop(), 0)
        with open(log) as f:
            self.assertEqual(len([line for line in f if not line.startswith("#")]), 4)

        with open(config, "w") as f:
            f.write(config_xml(farms, rules))
        rc, out, err = replay(config, log)
        self.assertEqual(rc, 1, out + err)  # /nothing: no rule sends it anywhere
        self.assertIn("replay: 4 requests routed, 0 malformed lines", out)
        self.assertIn("404 no_route: 1", out)
        self.assertIn("farm differs from the log's: 0", out)
        self.assertIn("  web  2\n", out)

        # A configuration that sends everything to the web farm: the API request and the one
        # that found no farm now go elsewhere than the log says.
        with open(config, "w") as f:
            f.write(config_xml(farms, [rule_xml("web", "web", "*")]))
        rc, out, err = replay(config, log)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("farm differs from the log's: 2", out)
        self.assertIn("GET http://127.0.0.1:%d/api/x?id=1: the log says farm api, the "
                      "configuration sends it to web" % h_port(out), out)

"""End-to-end: Harrow's /metrics and the operations assets in packaging/ against promtool.

One scripted run (a farm with a health check and a live origin, a farm whose only server refuses
connections, a path no rule matches, one rejected and one applied reload) feeds every test:
- promtool check metrics on the live scrape: exit 0 and not a single warning;
- exact counter values for the run;
- packaging/prometheus/harrow-alerts.yml: promtool check rules, and promtool test rules with
  synthetic series (each alert fires when it should and stays quiet when it should);
- packaging/grafana/harrow.json: valid JSON, a ${DS_PROMETHEUS} data source, farm/server/pool
  variables, every query parses as PromQL, and every metric and label it uses is in the scrape.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

from harness import Harrow, Origin, config_xml, farm_xml, request, rule_xml, wait_for

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ALERTS = os.path.join(ROOT, "packaging", "prometheus", "harrow-alerts.yml")
DASHBOARD = os.path.join(ROOT, "packaging", "grafana", "harrow.json")
PROMTOOL = shutil.which("promtool")
HISTOGRAMS = {"harrow_server_response_seconds", "harrow_server_connect_seconds",
              "harrow_server_first_byte_seconds"}
PROBE_RESULTS = ["pass", "connect_failed", "timeout", "bad_status", "body_mismatch",
                 "invalid_response"]
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"instance", "job"}

SERIES_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
# Harrow's own metric names, and the process_* ones it exports per Prometheus conventions.
NAME_RE = re.compile(r"\b(?:harrow|process)_[a-z_]+")
SELECTOR_RE = re.compile(r'\b((?:harrow|process)_[a-z_]+)\s*\{([^}]*)\}')
MATCHER_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')


def promtool(*args, stdin=None):
    p = subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout + p.stderr


class Scrape:
    """The text exposition parsed: # TYPE per family, and every sample with its labels."""

    def __init__(self, text):
        self.text = text
        self.types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
        self.samples = []  # (name, {label: value}, float)
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = SERIES_RE.match(line)
            if not m:
                raise AssertionError(f"unparsable sample line: {line!r}")
            self.samples.append((m.group(1), dict(LABEL_RE.findall(m.group(2) or "")),
                                 float(m.group(3))))

    def family(self, name):
        """The family a sample or a query's metric name belongs to (None: not exported)."""
        if name in self.types:
            return name
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if base != name and self.types.get(base) in ("histogram", "summary"):
            return base
        return None

    def labels_of(self, family):
        names = set()
        for name, labels, _ in self.samples:
            if self.family(name) == family:
                names |= labels.keys()
        return names

    def select(self, name, **labels):
        return [(l, v) for n, l, v in self.samples
                if n == name and all(l.get(k) == str(v2) for k, v2 in labels.items())]

    def value(self, name, **labels):
        """The value of the one sample of `name` whose labels include `labels`."""
        rows = self.select(name, **labels)
        if len(rows) != 1:
            raise AssertionError(f"{len(rows)} samples of {name} with {labels}, expected 1")
        return rows[0][1]


def dashboard_exprs(dash):
    """Every PromQL expression of the dashboard (panel targets, also inside collapsed rows, and
    annotation queries) and every template variable query (label_values(...))."""
    exprs, var_queries = [], []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    exprs.append((p["title"], t["expr"]))
            walk(p.get("panels", []))

    walk(dash["panels"])
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            exprs.append((f"annotation {a['name']}", a["expr"]))
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            var_queries.append((f"variable {v['name']}", q))
    return exprs, var_queries


def as_promql(expr):
    """Grafana's variables replaced the way Grafana would for a query with 'All' selected."""
    fixed = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h",
             "__range_s": "3600", "__interval_ms": "60000"}
    return re.sub(r"\$\{?(\w+)\}?", lambda m: fixed.get(m.group(1), ".*"), expr)


@unittest.skipUnless(PROMTOOL, "promtool not installed (packaging/install-deps installs "
                               "Debian's prometheus package)")
class LiveScrape(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = Origin("live", host="127.0.0.2")
        # A port bound but never listening: every connect to it is refused.
        cls.dead_socket = socket.socket()
        cls.dead_socket.bind(("127.0.0.3", 0))
        cls.dead = f"127.0.0.3:{cls.dead_socket.getsockname()[1]}"
        cls.live = f"127.0.0.2:{cls.origin.port}"
        health = ('<healthCheck url="http://app.example/health" interval="00:00:00.5" '
                  'timeout="00:00:01"/>')
        cls.config = config_xml(
            [farm_xml("app", [("127.0.0.2", cls.origin.port, 1)], extra=health),
             farm_xml("dead", [("127.0.0.3", cls.dead_socket.getsockname()[1], 1)])],
            [rule_xml("app", "app", pattern="^app/", syntax="ECMAScript"),
             rule_xml("dead", "dead", pattern="^dead/", syntax="ECMAScript")])
        cls.harrow = Harrow(cls.config)
        try:
            cls.run_script()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def run_script(cls):
        h = cls.harrow
        wait_for(lambda: re.search(
            r'harrow_health_probes_total\{farm="app",[^}]*result="pass"\} [1-9]',
            h.admin_get("/metrics")[1]), 10, "the first passing probe")
        # One rejected reload, then one applied (the same configuration).
        with open(h.config_path, "w") as f:
            f.write("<configuration><webFarms>")
        h.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload rejected" in h.stderr(), 10, "the rejected reload")
        h.reload(cls.config)

        cls.statuses, cls.body_bytes = [], 0
        for i in range(5):
            status, _, body = request(h.port, path=f"/app/{i}")
            cls.statuses.append(status)
            cls.body_bytes += len(body)
        for i in range(2):
            cls.statuses.append(request(h.port, path=f"/dead/{i}")[0])
        cls.statuses.append(request(h.port, path="/nowhere")[0])

        def settled():
            s = Scrape(h.admin_get("/metrics")[1])
            done = (s.value("harrow_connections_active") == 0 and
                    sum(v for _, v in s.select("harrow_server_in_flight_requests")) == 0)
            return s if done else None

        cls.scrape = wait_for(settled, 10, "every connection closed")

    @classmethod
    def tearDownClass(cls):
        code = cls.harrow.stop() if hasattr(cls, "harrow") else 0
        cls.origin.stop()
        cls.dead_socket.close()
        if code != 0:
            raise AssertionError(f"harrow exited with {code} after SIGTERM")

    # --- (a) promtool check metrics -------------------------------------------------------

    def test_scripted_statuses(self):
        self.assertEqual(self.statuses, [200] * 5 + [502] * 2 + [404])

    def test_promtool_check_metrics_is_silent(self):
        code, out = promtool("check", "metrics", stdin=self.scrape.text)
        self.assertEqual((code, out), (0, ""), "promtool check metrics on a live scrape")

    def test_histograms_are_exported_and_well_formed(self):
        for family in sorted(HISTOGRAMS):
            self.assertEqual(self.scrape.types.get(family), "histogram", family)
        for family, kind in self.scrape.types.items():
            if kind != "histogram":
                continue
            series = {}
            for labels, v in self.scrape.select(f"{family}_bucket"):
                key = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
                series.setdefault(key, []).append((float(labels["le"]), v))
            self.assertTrue(series, f"{family} has no buckets")
            for key, buckets in series.items():
                les = [le for le, _ in buckets]
                self.assertEqual(les, sorted(les), f"{family}{key} bucket order")
                self.assertEqual(les[0], 0.0001, f"{family}{key} first bucket is 100 µs")
                self.assertEqual(les[-2:], [60.0, float("inf")], f"{family}{key} ends 60 s, +Inf")
                counts = [v for _, v in buckets]
                self.assertEqual(counts, sorted(counts), f"{family}{key} buckets are cumulative")
                labels = dict(key)
                self.assertEqual(self.scrape.value(f"{family}_count", **labels), counts[-1])
                self.assertGreaterEqual(self.scrape.value(f"{family}_sum", **labels), 0)

    # --- (b) exact counters -------------------------------------------------------------------

    def test_process_counters(self):
        s = self.scrape
        self.assertTrue(s.select("harrow_build_info")[0][0]["version"])
        self.assertEqual(s.value("harrow_requests_total"), 8)
        self.assertEqual(s.value("harrow_connections_accepted_total"), 8)
        self.assertEqual(s.value("harrow_connections_rejected_total"), 0)
        self.assertEqual(s.value("harrow_connections_active"), 0)
        self.assertEqual(s.value("harrow_config_reloads_total"), 1)
        self.assertEqual(s.value("harrow_config_reload_failures_total"), 1)
        self.assertEqual(s.value("harrow_workers"), 1)
        self.assertGreaterEqual(s.value("harrow_config_last_reload_success_timestamp_seconds"),
                                s.value("process_start_time_seconds"))
        self.assertLess(s.value("process_open_fds"), s.value("process_max_fds"))
        failures = {l["reason"]: v for l, v in s.select("harrow_request_failures_total")}
        self.assertIn("upstream_timeout", failures)
        self.assertEqual({r: v for r, v in failures.items() if v},
                         {"no_route": 1, "upstream_connect_refused": 2})

    def test_live_server_counters(self):
        s, srv = self.scrape, dict(farm="app", server=self.live, pool="")
        codes = {l["code"]: v for l, v in s.select("harrow_server_responses_total", **srv)}
        self.assertEqual(codes, {"1xx": 0, "2xx": 5, "3xx": 0, "4xx": 0, "5xx": 0})
        self.assertEqual(sum(v for _, v in s.select("harrow_server_failures_total", **srv)), 0)
        self.assertEqual(s.value("harrow_server_received_bytes_total", **srv), self.body_bytes)
        self.assertEqual(s.value("harrow_server_sent_bytes_total", **srv), 0)
        # One worker, sequential requests: one connection, then the pooled one four times.
        self.assertEqual(s.value("harrow_server_connections_opened_total", **srv), 1)
        self.assertEqual(s.value("harrow_server_connections_reused_total", **srv), 4)
        self.assertEqual(s.value("harrow_server_idle_connections", **srv), 1)
        self.assertEqual(s.value("harrow_server_retries_total", **srv), 0)
        self.assertEqual(s.value("harrow_server_in_flight_requests", **srv), 0)
        self.assertEqual(s.value("harrow_server_live_failures_total", **srv), 0)
        self.assertEqual(s.value("harrow_server_healthy", **srv), 1)
        self.assertEqual(s.value("harrow_server_available", **srv), 1)
        self.assertEqual(s.value("harrow_server_state_transitions_total", **srv), 0)
        probes = {l["result"]: v for l, v in s.select("harrow_health_probes_total", **srv)}
        self.assertEqual(sorted(probes), sorted(PROBE_RESULTS))
        self.assertGreaterEqual(probes.pop("pass"), 1)
        self.assertEqual(set(probes.values()), {0})
        self.assertEqual(s.value("harrow_server_response_seconds_count", **srv), 5)
        self.assertEqual(s.value("harrow_server_first_byte_seconds_count", **srv), 5)
        self.assertEqual(s.value("harrow_server_connect_seconds_count", **srv), 1)
        self.assertGreater(s.value("harrow_server_response_seconds_sum", **srv), 0)
        self.assertEqual(s.value("harrow_farm_panic", farm="app", pool=""), 0)

    def test_dead_server_counters(self):
        s, srv = self.scrape, dict(farm="dead", server=self.dead, pool="")
        codes = {l["code"]: v for l, v in s.select("harrow_server_responses_total", **srv)}
        self.assertEqual(codes, {"1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 2})
        reasons = {l["reason"]: v for l, v in s.select("harrow_server_failures_total", **srv)}
        self.assertEqual({r for r, v in reasons.items() if v}, {"upstream_connect_refused"})
        self.assertEqual(s.value("harrow_server_received_bytes_total", **srv), 0)
        self.assertEqual(s.value("harrow_server_sent_bytes_total", **srv), 0)
        self.assertEqual(s.value("harrow_server_connections_reused_total", **srv), 0)
        self.assertEqual(s.value("harrow_server_idle_connections", **srv), 0)
        self.assertEqual(s.value("harrow_server_retries_total", **srv), 0)
        self.assertEqual(s.value("harrow_server_in_flight_requests", **srv), 0)
        # No health check and fewer live failures than maxLiveTrafficFailures (10): healthy.
        self.assertEqual(s.value("harrow_server_healthy", **srv), 1)
        self.assertEqual(s.value("harrow_server_available", **srv), 1)
        self.assertEqual(s.value("harrow_server_state_transitions_total", **srv), 0)
        self.assertEqual(sum(v for _, v in s.select("harrow_health_probes_total", **srv)), 0)
        for family in sorted(HISTOGRAMS):
            # A server's histogram series appear with its first observation.
            self.assertEqual(sum(v for _, v in s.select(f"{family}_count", **srv)), 0, family)
        self.assertEqual(s.value("harrow_farm_panic", farm="dead", pool=""), 0)

    def test_refused_connect_counted_once_per_request(self):
        # A failover that finds no other server must not count the failure twice (once in
        # fail_over, once when it is answered): two refused requests are two failures.
        s, srv = self.scrape, dict(farm="dead", server=self.dead, pool="")
        self.assertEqual(
            (s.value("harrow_server_failures_total", reason="upstream_connect_refused", **srv),
             s.value("harrow_server_live_failures_total", **srv),
             self.harrow.stderr().count("502 upstream_connect_refused")),
            (2, 2, 2))

    # --- (c) alert rules ---------------------------------------------------------------------

    def test_alert_rules_pass_promtool_check(self):
        code, out = promtool("check", "rules", ALERTS)
        self.assertEqual(code, 0, out)
        self.assertIn("SUCCESS", out)

    def test_alert_rules_use_exported_metrics_and_labels(self):
        with open(ALERTS) as f:
            text = "\n".join(line for line in f if not line.lstrip().startswith("#"))
        self.check_names_and_labels([("alerts", text)], [])

    def test_alert_rules_fire_as_intended(self):
        with tempfile.TemporaryDirectory(prefix="harrow-promtool-") as d:
            path = os.path.join(d, "harrow-alerts.test.json")  # JSON is YAML
            with open(path, "w") as f:
                json.dump(ALERT_UNIT_TESTS, f, indent=1)
            code, out = promtool("test", "rules", path)
        self.assertEqual(code, 0, out)

    # --- (d) Grafana dashboard -----------------------------------------------------------------

    def load_dashboard(self):
        with open(DASHBOARD) as f:
            return json.load(f)

    def test_dashboard_structure(self):
        dash = self.load_dashboard()
        self.assertGreaterEqual(dash["schemaVersion"], 36)
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        self.assertEqual((variables["DS_PROMETHEUS"]["type"],
                          variables["DS_PROMETHEUS"]["query"]), ("datasource", "prometheus"))
        for name in ["farm", "server", "pool"]:
            q = variables[name]["query"]
            q = q["query"] if isinstance(q, dict) else q
            self.assertRegex(q, rf"^label_values\(harrow_[a-z_]+(\{{.*\}})?, {name}\)$")
            # 'All' must also match an empty pool label (a farm without an application pool).
            self.assertEqual(variables[name]["allValue"], ".*")
        ids, kinds = [], set()

        def walk(panels):
            for p in panels:
                ids.append(p["id"])
                kinds.add(p["type"])
                if p["type"] != "row":
                    self.assertEqual(p["datasource"]["uid"], "${DS_PROMETHEUS}", p["title"])
                    self.assertTrue(p["targets"], p["title"])
                    for t in p["targets"]:
                        self.assertEqual(t["datasource"]["uid"], "${DS_PROMETHEUS}", p["title"])
                walk(p.get("panels", []))

        walk(dash["panels"])
        self.assertEqual(len(ids), len(set(ids)), "panel ids are unique")
        self.assertTrue({"timeseries", "heatmap", "state-timeline", "stat"} <= kinds, kinds)

    def test_dashboard_uses_exported_metrics_and_labels(self):
        exprs, var_queries = dashboard_exprs(self.load_dashboard())
        self.assertGreater(len(exprs), 30)
        self.check_names_and_labels(exprs, var_queries)

    def test_dashboard_queries_parse_as_promql(self):
        exprs, _ = dashboard_exprs(self.load_dashboard())
        rules = {"groups": [{"name": "harrow-dashboard", "rules": [
            {"record": f"harrow_dashboard:query_{i}", "expr": as_promql(e)}
            for i, (_, e) in enumerate(exprs)]}]}
        with tempfile.TemporaryDirectory(prefix="harrow-promtool-") as d:
            path = os.path.join(d, "dashboard-queries.json")
            with open(path, "w") as f:
                json.dump(rules, f, indent=1)
            code, out = promtool("check", "rules", path)
        self.assertEqual(code, 0, out)

    def check_names_and_labels(self, exprs, var_queries):
        s = self.scrape
        for where, text in exprs + var_queries:
            for name in NAME_RE.findall(text):
                self.assertIsNotNone(s.family(name), f"{where}: {name} is not in the scrape")
            for name, matchers in SELECTOR_RE.findall(text):
                known = s.labels_of(s.family(name)) | TARGET_LABELS
                for label in MATCHER_RE.findall(matchers):
                    self.assertIn(label, known, f"{where}: {name} has no label {label}")


# promtool test rules input for packaging/prometheus/harrow-alerts.yml. Checked through the
# ALERTS series, so the tests pin which alerts fire (state and labels) without repeating the
# annotation texts.
def _series(name, values, **labels):
    labels = {"job": "harrow", "instance": "h:9180", **labels}
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{body}}}", "values": values}


def _alerts(name, at, *expected, state="firing"):
    samples = []
    for labels in expected:
        labels = {"alertname": name, "alertstate": state, "job": "harrow", "instance": "h:9180",
                  **labels}
        body = ",".join(f'{k}="{v}"' for k, v in labels.items())
        samples.append({"labels": f"ALERTS{{{body}}}", "value": 1})
    return {"expr": f'ALERTS{{alertname="{name}",alertstate="{state}"}}', "eval_time": at,
            "exp_samples": samples}


def _server(farm, server, pool="p"):
    return {"farm": farm, "server": server, "pool": pool}


WEB_A, WEB_B, WEB_C = _server("web", "a:80"), _server("web", "b:80"), _server("web", "c:80")
DOWN_D = _server("down", "d:80")
OK_E = _server("ok", "e:80")

ALERT_UNIT_TESTS = {
    "rule_files": [ALERTS],
    "evaluation_interval": "1m",
    "tests": [{
        "interval": "1m",
        "input_series": [
            _series("up", "1 0x10"),
            # web: a goes unhealthy at 1m; b stays healthy; c is unhealthy but drained.
            _series("harrow_server_healthy", "1 0x100", **WEB_A),
            _series("harrow_server_available", "1x100", **WEB_A),
            _series("harrow_server_healthy", "1x100", **WEB_B),
            _series("harrow_server_available", "1x100", **WEB_B),
            _series("harrow_server_healthy", "0x100", **WEB_C),
            _series("harrow_server_available", "0x100", **WEB_C),
            # down: its only server fails at 2m and the farm panics at 1m.
            _series("harrow_server_healthy", "1 1 0x100", **DOWN_D),
            _series("harrow_server_available", "1x100", **DOWN_D),
            _series("harrow_farm_panic", "0 1x100", farm="down", pool="p"),
            _series("harrow_farm_panic", "0x100", farm="web", pool="p"),
            _series("harrow_server_healthy", "1x100", **OK_E),
            _series("harrow_server_available", "1x100", **OK_E),
            # web: 10 % 5xx and 10 % refused connects; ok: 1 % 5xx and many client aborts.
            _series("harrow_server_responses_total", "0+90x100", code="2xx", **WEB_B),
            _series("harrow_server_responses_total", "0+10x100", code="5xx", **WEB_B),
            _series("harrow_server_failures_total", "0+10x100",
                    reason="upstream_connect_refused", **WEB_B),
            _series("harrow_server_responses_total", "0+99x100", code="2xx", **OK_E),
            _series("harrow_server_responses_total", "0+1x100", code="5xx", **OK_E),
            _series("harrow_server_failures_total", "0+50x100", reason="client_aborted", **OK_E),
            # Timeouts: b none for 70 minutes, then 6 a minute; e a steady 3 a minute (3 % of
            # its responses: not rising, and under the failure ratio's 5 %).
            _series("harrow_server_failures_total", "0x70 6+6x30", reason="upstream_timeout",
                    **WEB_B),
            _series("harrow_server_failures_total", "0+3x100", reason="upstream_timeout", **OK_E),
            # One rejected reload at 2m.
            _series("harrow_config_reload_failures_total", "0 0 1x100"),
            # a: a transition every minute for 8 minutes; b: two.
            _series("harrow_server_state_transitions_total", "0+1x8 8x100", **WEB_A),
            _series("harrow_server_state_transitions_total", "0 0 1 2 2x100", **WEB_B),
            # File descriptors: Harrow at 90 % from 1m; another job's process at 95 %.
            _series("harrow_build_info", "1x100", version="0.1.0"),
            _series("process_open_fds", "100 900x100"),
            _series("process_max_fds", "1000x100"),
            {"series": 'process_open_fds{job="node",instance="n:9100"}', "values": "950x100"},
            {"series": 'process_max_fds{job="node",instance="n:9100"}', "values": "1000x100"},
        ],
        "promql_expr_test": [
            _alerts("HarrowTargetDown", "1m", {"severity": "critical"}, state="pending"),
            _alerts("HarrowTargetDown", "3m", {"severity": "critical"}),
            _alerts("HarrowServerUnhealthy", "2m", {"severity": "warning", **WEB_A},
                    {"severity": "warning", **DOWN_D}, state="pending"),
            _alerts("HarrowServerUnhealthy", "4m", {"severity": "warning", **WEB_A},
                    {"severity": "warning", **DOWN_D}),
            _alerts("HarrowFarmPanic", "3m", {"severity": "critical", "farm": "down",
                                              "pool": "p"}),
            _alerts("HarrowFarmNoHealthyServer", "1m"),
            _alerts("HarrowFarmNoHealthyServer", "4m", {"severity": "critical", "farm": "down",
                                                        "pool": "p"}),
            _alerts("HarrowFarm5xxRatioHigh", "4m"),
            _alerts("HarrowFarm5xxRatioHigh", "12m", {"severity": "warning", "farm": "web",
                                                      "pool": "p"}),
            _alerts("HarrowFarmFailureRatioHigh", "12m", {"severity": "warning", "farm": "web",
                                                          "pool": "p"}),
            _alerts("HarrowUpstreamTimeoutsRising", "60m"),
            _alerts("HarrowUpstreamTimeoutsRising", "85m", {"severity": "warning", **WEB_B}),
            _alerts("HarrowConfigReloadFailed", "4m", {"severity": "warning"}),
            _alerts("HarrowConfigReloadFailed", "25m"),
            _alerts("HarrowServerFlapping", "9m", {"severity": "warning", **WEB_A}),
            _alerts("HarrowServerFlapping", "30m"),
            _alerts("HarrowFileDescriptorsNearLimit", "3m", {"severity": "warning"},
                    state="pending"),
            _alerts("HarrowFileDescriptorsNearLimit", "7m", {"severity": "warning"}),
        ],
    }],
}


if __name__ == "__main__":
    unittest.main()

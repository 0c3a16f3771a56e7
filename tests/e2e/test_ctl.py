"""End-to-end: `harrow ctl …`, the command-line client of a running Harrow's admin API — every
subcommand against a real process, its tables and --json, and its errors (unknown farm or
server, a refused reload, a missing token, no admin listener)."""
import json
import os
import subprocess
import tempfile

from harness import (HARROW, HarrowTestCase, config_xml, dead_port, farm_xml, request, rule_xml,
                     wait_for)


def ctl(*args, admin=None):
    """Runs `harrow ctl [--admin 127.0.0.1:PORT] ARGS`; returns (exit code, stdout, stderr)."""
    prefix = ["--admin", f"127.0.0.1:{admin}"] if admin is not None else []
    p = subprocess.run([HARROW, "ctl", *prefix, *args], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


class CtlTest(HarrowTestCase):
    def setUp(self):
        super().setUp()
        self.a = self.origin("a")
        self.b = self.origin("b")
        self.config = config_xml(
            [farm_xml("web", [("127.0.0.1", self.a.port, 100), ("localhost", self.b.port, 100)]),
             farm_xml("api", [("127.0.0.1", self.b.port, 50)])],
            [rule_xml("api", "api", "api/*"), rule_xml("web", "web")])
        self.h = self.harrow(self.config)

    def server(self, farm, endpoint):
        rc, out, err = ctl("--json", "servers", farm, admin=self.h.admin_port)
        self.assertEqual(rc, 0, err)
        return next(s for s in json.loads(out)["servers"] if s["endpoint"] == endpoint)

    def test_farms_table_and_json(self):
        for _ in range(3):
            self.assertEqual(request(self.h.port, path="/x")[0], 200)
        rc, out, err = ctl("farms", admin=self.h.admin_port)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertEqual(lines[0].split()[:4], ["FARM", "POOL", "ENABLED", "SERVERS"])
        rows = {line.split()[0]: line.split() for line in lines[1:]}
        self.assertEqual(set(rows), {"web", "api"})
        # FARM, ENABLED, SERVERS, HEALTHY, AVAILABLE, REQUESTS (the pool column is empty).
        self.assertEqual(rows["web"][1:6], ["yes", "2", "2", "2", "3"])
        rc, out, err = ctl("--json", "farms", admin=self.h.admin_port)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), json.loads(self.h.admin_get("/api/farms")[1]) | {
            "farms": json.loads(out)["farms"]})
        self.assertEqual([f["name"] for f in json.loads(out)["farms"]], ["web", "api"])

    def test_servers_table_json_and_unknown_farm(self):
        rc, out, err = ctl("servers", "web", admin=self.h.admin_port)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertEqual(lines[0].split()[:3], ["SERVER", "STATE", "HEALTHY"])
        endpoints = sorted(line.split()[0] for line in lines[1:])
        self.assertEqual(endpoints, sorted([f"127.0.0.1:{self.a.port}", f"localhost:{self.b.port}"]))
        rc, out, err = ctl("--json", "servers", "api", admin=self.h.admin_port)
        self.assertEqual(rc, 0, err)
        farm = json.loads(out)
        self.assertEqual(farm["name"], "api")
        self.assertEqual(farm["servers"][0]["weight"], 50)
        rc, out, err = ctl("servers", "nope", admin=self.h.admin_port)
        self.assertEqual(rc, 1)
        self.assertIn("unknown farm 'nope'", err)
        self.assertEqual(out, "")

    def test_state_commands_change_the_server(self):
        endpoint = f"127.0.0.1:{self.a.port}"
        for verb, state in [("drain", "Draining"), ("start", "Available"),
                            ("stop", "Unavailable"), ("start", "Available"),
                            ("forcefulstop", "Unavailable"), ("start", "Available")]:
            rc, out, err = ctl(verb, "web", endpoint, admin=self.h.admin_port)
            self.assertEqual(rc, 0, f"{verb}: {err}")
            self.assertIn(f"farm web server {endpoint}", out)
            # A graceful stop drains until a health tick sees nothing in flight.
            wait_for(lambda: self.server("web", endpoint)["state"] == state, 10,
                     f"{verb} to make the server {state}")
        # The address alone names the server when it is unique in the farm.
        rc, out, err = ctl("--json", "drain", "api", "127.0.0.1", admin=self.h.admin_port)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["state"], "drain")
        self.assertEqual(self.server("api", f"127.0.0.1:{self.b.port}")["state"], "Draining")

    def test_state_command_errors_carry_the_api_message(self):
        rc, out, err = ctl("drain", "web", "10.9.9.9", admin=self.h.admin_port)
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 404: unknown server", err)
        rc, out, err = ctl("drain", "nope", "127.0.0.1", admin=self.h.admin_port)
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 404: unknown farm", err)
        rc, out, err = ctl("drain", "web", admin=self.h.admin_port)
        self.assertEqual(rc, 2)
        self.assertIn("usage: harrow ctl drain FARM SERVER", err)

    def test_health_commands(self):
        endpoint = f"127.0.0.1:{self.a.port}"
        rc, out, err = ctl("unhealthy", "web", endpoint, admin=self.h.admin_port)
        self.assertEqual(rc, 0, err)
        self.assertFalse(self.server("web", endpoint)["isHealthy"])
        rc, out, err = ctl("healthy", "web", endpoint, admin=self.h.admin_port)
        self.assertEqual(rc, 0, err)
        self.assertTrue(self.server("web", endpoint)["isHealthy"])

    def test_reload_applies_and_a_bad_file_is_refused_with_its_errors(self):
        grown = self.config.replace("</webFarms>",
                                    farm_xml("extra", [("127.0.0.1", self.a.port, 1)]) + "</webFarms>")
        with open(self.h.config_path, "w") as f:
            f.write(grown)
        rc, out, err = ctl("reload", admin=self.h.admin_port)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "configuration reloaded\n")
        rc, out, err = ctl("--json", "farms", admin=self.h.admin_port)
        self.assertIn("extra", [f["name"] for f in json.loads(out)["farms"]])
        with open(self.h.config_path, "w") as f:
            f.write("<configuration><webFarms><webFarm name='x'><bogus/></webFarm></webFarms>"
                    "</configuration>")
        rc, out, err = ctl("reload", admin=self.h.admin_port)
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 400", err)
        self.assertIn(self.h.config_path + ":1:", err)
        rc, out, err = ctl("--json", "farms", admin=self.h.admin_port)
        self.assertIn("extra", [f["name"] for f in json.loads(out)["farms"]])

    def test_explain(self):
        rc, out, err = ctl("explain", "GET http://shop.example/api/orders", admin=self.h.admin_port)
        self.assertEqual(rc, 0, err)
        self.assertIn('decision: rule "api" rewrites to farm "api"', out)
        rc, out, err = ctl("--json", "explain", "GET http://shop.example/home", "--header",
                           "Cookie: a=b", admin=self.h.admin_port)
        self.assertEqual(rc, 0, err)
        ex = json.loads(out)
        self.assertEqual((ex["outcome"], ex["farm"], ex["rule"]), ("farm", "web", "web"))
        self.assertIn("  header Cookie: a=b", ex["report"])
        rc, out, err = ctl("explain", "not a request", admin=self.h.admin_port)
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 400", err)

    def test_metrics_for_a_server(self):
        self.assertEqual(request(self.h.port, path="/api/x")[0], 200)
        endpoint = f"127.0.0.1:{self.b.port}"
        rc, out, err = ctl("metrics", endpoint, admin=self.h.admin_port)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertTrue(lines)
        for line in lines:
            self.assertIn(f'server="{endpoint}"', line)
        self.assertIn(f'harrow_server_responses_total{{farm="api",server="{endpoint}",pool="",'
                      f'code="2xx"}} 1', lines)
        rc, out, err = ctl("--json", "metrics", endpoint, admin=self.h.admin_port)
        self.assertEqual(rc, 0, err)
        samples = json.loads(out)
        self.assertEqual(len(samples), len(lines))
        self.assertIn({"name": "harrow_server_responses_total",
                       "labels": f'farm="api",server="{endpoint}",pool="",code="2xx"',
                       "value": "1"}, samples)
        rc, out, err = ctl("metrics", "10.9.9.9", admin=self.h.admin_port)
        self.assertEqual(rc, 1)
        self.assertIn("no metrics name server '10.9.9.9'", err)
        rc, out, err = ctl("healthz", admin=self.h.admin_port)
        self.assertEqual((rc, out), (0, "ok\n"))

    def test_unreachable_admin_and_usage_errors(self):
        rc, out, err = ctl("farms", admin=dead_port())
        self.assertEqual(rc, 3)
        self.assertIn("cannot reach the admin listener", err)
        rc, out, err = ctl("frobnicate", admin=self.h.admin_port)
        self.assertEqual(rc, 2)
        self.assertIn("unknown command 'frobnicate'", err)
        rc, out, err = ctl("--bogus", "farms")
        self.assertEqual(rc, 2)
        rc, out, err = ctl("--admin", "nonsense", "farms")
        self.assertEqual(rc, 2)
        self.assertIn("HOST:PORT", err)


COMPLETION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packaging",
                          "harrow.bash-completion")


def complete(*words):
    """The bash completion's candidates for the last of `words` (harrow's path is the first)."""
    script = (f"source {COMPLETION}\n"
              "COMP_WORDS=(\"$@\"); COMP_CWORD=$(( $# - 1 ))\n"
              "_harrow; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    p = subprocess.run(["bash", "-c", script, "complete", HARROW, *words], capture_output=True,
                       text=True, timeout=30)
    return sorted(w for w in p.stdout.split("\n") if w)


class CtlCompletionTest(HarrowTestCase):
    def test_bash_completion_asks_the_admin_api_for_names(self):
        a = self.origin("a")
        h = self.harrow(config_xml([farm_xml("web", [("127.0.0.1", a.port, 100)]),
                                    farm_xml("wiki", [("127.0.0.1", a.port, 1)])],
                                   [rule_xml("web", "web")]))
        admin = f"127.0.0.1:{h.admin_port}"
        self.assertEqual(complete("c"), ["ctl"])
        self.assertIn("--check-config", complete("--che"))
        self.assertEqual(complete("ctl", "--admin", admin, "dr"), ["drain"])
        self.assertEqual(complete("ctl", "--admin", admin, "drain", "w"), ["web", "wiki"])
        self.assertEqual(complete("ctl", "--admin", admin, "drain", "web", ""),
                         [f"127.0.0.1:{a.port}"])
        self.assertEqual(complete("ctl", "--admin", admin, "servers", "wi"), ["wiki"])
        # No admin listener: no names, and no error text on the command line.
        self.assertEqual(complete("ctl", "--admin", f"127.0.0.1:{dead_port()}", "servers", ""), [])


class CtlConfigTest(HarrowTestCase):
    def test_address_and_token_come_from_the_config(self):
        port = dead_port()
        tmp = tempfile.TemporaryDirectory(prefix="harrow-ctl-")
        self.addCleanup(tmp.cleanup)
        token = os.path.join(tmp.name, "token")
        with open(token, "w") as f:
            f.write("s3cret-token\n")
        os.chmod(token, 0o600)
        a = self.origin("a")
        text = config_xml([farm_xml("web", [("127.0.0.1", a.port, 100)])], [rule_xml("web", "web")],
                          f'<admin address="127.0.0.1:{port}" tokenFile="{token}"/>')
        h = self.harrow(text, extra_args=("--admin", f"127.0.0.1:{port}"))
        self.assertEqual(h.admin_port, port)
        rc, out, err = ctl("--config", h.config_path, "farms")
        self.assertEqual(rc, 0, err)
        self.assertIn("web", out)
        rc, out, err = ctl("--config", h.config_path, "drain", "web", "127.0.0.1")
        self.assertEqual(rc, 0, err)
        # Without the token (the address alone) the API refuses, and ctl says why.
        rc, out, err = ctl("farms", admin=port)
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 401: bearer token required", err)
        rc, out, err = ctl("--token", "wrong", "farms", admin=port)
        self.assertEqual(rc, 1)
        rc, out, err = ctl("--token-file", token, "--json", "servers", "web", admin=port)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["servers"][0]["state"], "Draining")

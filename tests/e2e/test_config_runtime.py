"""End-to-end: what the configuration means at run time — ARR's request headers, host
routing, reload with SIGHUP and the admin API, and reload under load."""
import collections
import http.client
import os
import re
import shutil
import signal
import subprocess
import time
import unittest

from harness import HarrowTestCase, config_xml, farm_xml, raw_exchange, request, rule_xml, wait_for


def origin_headers(port, path="/_origin/headers", headers=None):
    status, _, body = request(port, path=path, headers=headers or {})
    lines = body.decode().splitlines()
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields.setdefault(name.strip().lower(), value.strip())
    return status, lines[0], fields


class ArrHeaders(HarrowTestCase):
    def test_request_carries_arr_headers_and_replaces_client_copies(self):
        o = self.origin("o")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                                   [rule_xml("r", "f")]))
        status, request_line, fields = origin_headers(
            h.port, "/_origin/headers?x=1",
            {"X-ARR-SSL": "forged", "X-ARR-LOG-ID": "forged", "Max-Forwards": "99"})
        self.assertEqual(status, 200)
        self.assertEqual(request_line, "GET /_origin/headers?x=1 HTTP/1.1")
        self.assertEqual(fields["max-forwards"], "10")
        self.assertEqual(fields["x-original-url"], "/_origin/headers?x=1")
        # Plain HTTP: no X-ARR-SSL / X-ARR-ClientCert at all (ARR sends them over TLS only).
        self.assertNotIn("x-arr-ssl", fields)
        self.assertNotIn("x-arr-clientcert", fields)
        self.assertRegex(fields["x-arr-log-id"],
                         r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        # A fresh id per request.
        self.assertNotEqual(origin_headers(h.port)[2]["x-arr-log-id"], fields["x-arr-log-id"])

    def test_protocol_settings_change_what_is_sent(self):
        o = self.origin("o")
        protocol = ('<protocol preserveHostHeader="false" xForwardedForHeaderName="X-Client" '
                    'includePortInXForwardedFor="false" arrResponseHeader="false" maxForwards="3" '
                    'logGuidName="X-Request-Id"/>')
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)], protocol=protocol)],
                                   [rule_xml("r", "f")]))
        _, _, fields = origin_headers(h.port, headers={"Host": "public.example"})
        self.assertEqual(fields["host"], f"127.0.0.1:{o.port}")
        self.assertEqual(fields["x-client"], "127.0.0.1")
        self.assertNotIn("x-forwarded-for", fields)
        self.assertEqual(fields["max-forwards"], "3")
        self.assertIn("x-request-id", fields)
        _, headers, _ = request(h.port)
        self.assertNotIn("x-powered-by", headers)

    def test_reverse_rewrite_host_in_location(self):
        o = self.origin("o")
        protocol = ('<protocol preserveHostHeader="false" '
                    'reverseRewriteHostInResponseHeaders="true"/>')
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)], protocol=protocol)],
                                   [rule_xml("r", "f")]))
        back = f"http://127.0.0.1:{o.port}"
        status, headers, _ = request(
            h.port, path=f"/?status=302&header=Location:{back}/next%3Fa%3D1",
            headers={"Host": "shop.example.com"})
        self.assertEqual(status, 302)
        self.assertEqual(headers["location"], "http://shop.example.com/next?a=1")
        _, headers, _ = request(h.port, path="/?status=302&header=Location:https://other.example/",
                                headers={"Host": "shop.example.com"})
        self.assertEqual(headers["location"], "https://other.example/")

    def test_response_says_who_proxied_it(self):
        o = self.origin("o")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])],
                                   [rule_xml("r", "f")]))
        _, headers, _ = request(h.port)
        self.assertRegex(headers["x-powered-by"], r"^Harrow/\d+\.\d+\.\d+$")


class Routing(HarrowTestCase):
    def test_host_conditions_pick_the_farm(self):
        a, b = self.origin("a"), self.origin("b")
        cond = '<conditions><add input="{{HTTP_HOST}}" pattern="^{}$"/></conditions>'
        h = self.harrow(config_xml(
            [farm_xml("shop", [("127.0.0.1", a.port, 1)]), farm_xml("api", [("127.0.0.1", b.port, 1)])],
            [rule_xml("shop", "shop", pattern=".*", syntax="ECMAScript",
                      conditions=cond.format(r"shop\.example\.com")),
             rule_xml("api", "api", pattern=".*", syntax="ECMAScript",
                      conditions=cond.format(r"api\.example\.com"))]))
        self.assertEqual(request(h.port, headers={"Host": "shop.example.com"})[1]["x-origin"], "a")
        self.assertEqual(request(h.port, headers={"Host": "API.example.com"})[1]["x-origin"], "b")
        self.assertEqual(request(h.port, headers={"Host": "other.example.com"})[0], 404)

    def test_https_rewrite_goes_to_the_https_port_over_tls(self):
        o = self.origin("o")
        rule = ('<rule name="tls" stopProcessing="true"><match url=".*"/>'
                '<action type="Rewrite" url="https://f/{R:0}"/></rule>')
        # The server's httpsPort answers plain HTTP, so the handshake cannot succeed.
        farm = (f'<webFarm name="f"><server address="127.0.0.1"><applicationRequestRouting '
                f'httpPort="{o.port}" httpsPort="{o.port}"/></server></webFarm>')
        h = self.harrow(config_xml([farm], [rule]))
        status, _, body = request(h.port)
        self.assertEqual(status, 502)
        self.assertIn(b"upstream_tls", body)


class Reload(HarrowTestCase):
    def write(self, h, text):
        tmp = h.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, h.config_path)

    def test_sighup_switches_farms_and_a_bad_file_changes_nothing(self):
        a, b = self.origin("a"), self.origin("b")
        first = config_xml([farm_xml("f", [("127.0.0.1", a.port, 1)])], [rule_xml("r", "f")])
        second = config_xml([farm_xml("g", [("127.0.0.1", b.port, 1)])], [rule_xml("r", "g")])
        h = self.harrow(first)
        conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
        conn.request("GET", "/")
        resp = conn.getresponse()
        self.assertEqual(resp.getheader("X-Origin"), "a")
        resp.read()

        self.write(h, second)
        h.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in h.stderr(), what="the reload log line")
        # Same keep-alive client connection, new snapshot.
        conn.request("GET", "/")
        resp = conn.getresponse()
        self.assertEqual(resp.getheader("X-Origin"), "b")
        resp.read()
        conn.close()

        self.write(h, second.replace("<webFarms>", "<webFarms><bogus/>"))
        h.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload rejected" in h.stderr(), what="the rejection log line")
        self.assertIn("error: unknown element", h.stderr())
        self.assertEqual(request(h.port)[1]["x-origin"], "b")
        _, text = h.admin_get("/metrics")
        self.assertIn("harrow_config_reloads_total 1", text)
        self.assertIn("harrow_config_reload_failures_total 1", text)

    def test_admin_reload_endpoint(self):
        a = self.origin("a")
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", a.port, 1)])], [rule_xml("r", "f")]))
        conn = http.client.HTTPConnection("127.0.0.1", h.admin_port, timeout=10)
        conn.request("POST", "/api/reload", headers={"X-Harrow-Admin": "1"})
        resp = conn.getresponse()
        self.assertEqual((resp.status, resp.read()), (200, b'{"reloaded":true}\n'))
        self.write(h, "<configuration><webFarms><webFarm/></webFarms></configuration>")
        conn = http.client.HTTPConnection("127.0.0.1", h.admin_port, timeout=10)
        conn.request("POST", "/api/reload", headers={"X-Harrow-Admin": "1"})
        resp = conn.getresponse()
        body = resp.read().decode()
        self.assertEqual(resp.status, 400)
        self.assertIn("harrow.config:1:", body)
        self.assertEqual(h.admin_get("/api/reload")[0], 405)

    def test_health_counters_and_pools_survive_reload_for_unchanged_servers(self):
        a = self.origin("a")
        text = config_xml([farm_xml("f", [("127.0.0.1", a.port, 1)])], [rule_xml("r", "f")])
        h = self.harrow(text)
        for _ in range(5):
            request(h.port)
        self.write(h, text.replace('name="r"', 'name="renamed"'))
        h.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in h.stderr(), what="reload")
        for _ in range(5):
            request(h.port)
        # Counted as the exchange ends, just after the response is written: the worker may
        # not have counted the last one when the client has it.
        line = (f'harrow_server_responses_total{{farm="f",server="127.0.0.1:{a.port}",'
                f'pool="",code="2xx"}} 10')
        wait_for(lambda: line in h.admin_get("/metrics")[1] or None, 10, "ten 2xx responses counted")
        # The pooled upstream connection carried over: still one connection at the origin.
        self.assertEqual(a.stats()["connections_accepted"], 2)

    @unittest.skipUnless(shutil.which("wrk"), "wrk is not installed")
    def test_fifty_reloads_under_load_lose_nothing(self):
        a, b = self.origin("a", workers=2), self.origin("b", host="127.0.0.2", workers=2)
        configs = [
            config_xml([farm_xml("f", [("127.0.0.1", a.port, 3), ("127.0.0.2", b.port, 1)])],
                       [rule_xml("r", "f")]),
            config_xml([farm_xml("f", [("127.0.0.1", a.port, 1), ("127.0.0.2", b.port, 3)])],
                       [rule_xml("r", "f")]),
        ]
        h = self.harrow(configs[0], workers=2)
        load = subprocess.Popen(["wrk", "-t1", "-c20", "-d6s", h.url("/")],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.5)
        for i in range(50):
            self.write(h, configs[(i + 1) % 2])
            h.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: h.stderr().count("configuration reloaded") >= i + 1, what=f"reload {i + 1}")
        out, _ = load.communicate(timeout=60)
        self.assertIn("requests in", out)
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        self.assertGreater(requests, 100)
        self.assertNotIn("Non-2xx", out, out)
        self.assertNotIn("Socket errors", out, out)
        self.assertNotIn("warn:", h.stderr())


if __name__ == "__main__":
    unittest.main()


class GlobalProxy(HarrowTestCase):
    def test_rewrites_to_configured_hosts_proxy_and_others_are_refused(self):
        a, b = self.origin("a"), self.origin("b", host="127.0.0.2")
        text = f"""<configuration>
  <system.webServer>
    <proxy enabled="true" />
    <rewrite>
      <rewriteMaps>
        <rewriteMap name="Backends">
          <add key="shop.example" value="127.0.0.2:{b.port}" />
        </rewriteMap>
      </rewriteMaps>
      <globalRules>
        <rule name="static" stopProcessing="true">
          <match url="^static/(.*)" />
          <action type="Rewrite" url="http://127.0.0.1:{a.port}/{{R:1}}" />
        </rule>
        <rule name="open" stopProcessing="true">
          <match url="^open/(.*)" />
          <action type="Rewrite" url="http://{{HTTP_HOST}}/{{R:1}}" />
        </rule>
        <rule name="mapped" stopProcessing="true">
          <match url="(.*)" />
          <action type="Rewrite" url="http://{{Backends:{{HTTP_HOST}}}}/{{R:1}}" />
        </rule>
      </globalRules>
    </rewrite>
  </system.webServer>
</configuration>"""
        h = self.harrow(text)
        status, headers, _ = request(h.port, path="/static/x?q=1")
        self.assertEqual((status, headers["x-origin"]), (200, "a"))
        _, _, fields = origin_headers(h.port, "/static/_origin/headers")
        # The global <proxy> defaults apply: ARR's preserveHostHeader is false there.
        self.assertEqual(fields["host"], f"127.0.0.1:{a.port}")
        status, headers, _ = request(h.port, path="/page", headers={"Host": "shop.example"})
        self.assertEqual((status, headers["x-origin"]), (200, "b"))
        # A host taken from the request reaches only hosts the configuration names.
        status, _, body = request(h.port, path="/open/x", headers={"Host": "127.0.0.1:9"})
        self.assertEqual(status, 502)
        self.assertIn(b"proxy_target_unknown", body)
        self.assertEqual(request(h.port, path="/page", headers={"Host": "other.example"})[0], 502)
        self.assertIn(f'farm="127.0.0.1:{a.port}"', h.admin_get("/metrics")[1])


class SiteBindings(HarrowTestCase):
    def test_host_name_bindings_answer_only_their_hosts(self):
        o = self.origin("o")
        sites = ('<system.applicationHost><sites>'
                 '<site name="shop" id="1"><bindings>'
                 '<binding protocol="http" bindingInformation="127.0.0.1:0:shop.example"/>'
                 '</bindings></site>'
                 '<site name="blog" id="2"><bindings>'
                 '<binding protocol="http" bindingInformation="127.0.0.1:0:blog.example"/>'
                 '</bindings></site>'
                 '</sites></system.applicationHost>')
        text = config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])], [rule_xml("r", "f")]).replace(
            "</configuration>", sites + "</configuration>")
        h = self.harrow(text, listen=False)
        self.assertEqual(request(h.port, headers={"Host": "shop.example"})[0], 200)
        self.assertEqual(request(h.port, headers={"Host": "BLOG.example:8080"})[0], 200)
        status, _, body = request(h.port, headers={"Host": "evil.example"})
        self.assertEqual(status, 400)
        self.assertIn(b"invalid_hostname", body)
        self.assertEqual(o.stats()["requests"], 2)


class RuleActions(HarrowTestCase):
    def test_redirect_custom_response_abort_and_server_variables(self):
        o = self.origin("o")
        rules = """
        <rule name="old-blog" stopProcessing="true">
          <match url="^blog/(.*)" />
          <action type="Redirect" url="https://blog.example.com/{R:1}" redirectType="Permanent" />
        </rule>
        <rule name="deny-admin" stopProcessing="true">
          <match url="^admin" />
          <action type="CustomResponse" statusCode="403" statusReason="Forbidden"
                  statusDescription="Admin is not reachable from here" />
        </rule>
        <rule name="drop" stopProcessing="true">
          <match url="^drop" />
          <action type="AbortRequest" />
        </rule>
        <rule name="app" stopProcessing="true">
          <match url="(.*)" />
          <serverVariables>
            <set name="HTTP_X_FORWARDED_PROTO" value="http" />
            <set name="HTTP_X_TENANT" value="{ToLower:{HTTP_HOST}}" />
          </serverVariables>
          <action type="Rewrite" url="http://f/{R:1}" />
        </rule>"""
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])], [rules]))
        status, headers, _ = request(h.port, path="/blog/2024/post?x=1")
        self.assertEqual(status, 301)
        self.assertEqual(headers["location"], "https://blog.example.com/2024/post?x=1")
        status, _, body = request(h.port, path="/admin/users")
        self.assertEqual((status, body), (403, b"Admin is not reachable from here"))
        self.assertEqual(raw_exchange(h.port, b"GET /drop HTTP/1.1\r\nHost: t\r\n\r\n"), b"")
        _, _, fields = origin_headers(h.port, headers={"Host": "Shop.Example.COM",
                                                       "X-Tenant": "forged"})
        self.assertEqual(fields["x-forwarded-proto"], "http")
        self.assertEqual(fields["x-tenant"], "shop.example.com")
        self.assertEqual(o.stats()["requests"], 0)  # only the header echo reached the origin
        _, text = h.admin_get("/metrics")
        self.assertIn('harrow_request_failures_total{reason="rule_aborted"} 1', text)


class AdminToken(HarrowTestCase):
    def test_bearer_token_guards_every_admin_endpoint(self):
        import tempfile
        o = self.origin("o")
        tmp = self.enterContext(tempfile.TemporaryDirectory())
        token_path = os.path.join(tmp, "admin.token")
        with open(token_path, "w") as f:
            f.write("s3cret-token\n")
        os.chmod(token_path, 0o600)
        h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", o.port, 1)])], [rule_xml("r", "f")],
                                   harrow=f'<admin address="127.0.0.1:0" tokenFile="{token_path}"/>'))

        def get(path, token=None, method="GET"):
            conn = http.client.HTTPConnection("127.0.0.1", h.admin_port, timeout=10)
            conn.request(method, path, headers={"Authorization": f"Bearer {token}"} if token else {})
            resp = conn.getresponse()
            resp.read()
            return resp.status, resp.getheader("WWW-Authenticate")

        self.assertEqual(get("/metrics"), (401, "Bearer"))
        self.assertEqual(get("/metrics", "wrong")[0], 401)
        self.assertEqual(get("/api/reload", "s3cret-toke", "POST")[0], 401)
        self.assertEqual(get("/metrics", "s3cret-token")[0], 200)
        self.assertEqual(get("/api/farms", "s3cret-token")[0], 200)
        # The proxy itself is not affected.
        self.assertEqual(request(h.port)[0], 200)


class ProxyFromEveryRuleSetTest(HarrowTestCase):
    """<proxy enabled="true">: a rewrite to a literal http://host:port/ proxies there whether the
    rule is global, server-level or a site's own, as ARR does."""

    def config(self, port, where):
        rule = ('<rule name="to-origin" stopProcessing="true"><match url="(.*)"/>'
                f'<action type="Rewrite" url="http://127.0.0.1:{port}/{{R:1}}"/></rule>')
        server_rules = f"<rules>{rule}</rules>" if where == "server" else ""
        location = ""
        sites = ""
        if where == "site":
            sites = ('<system.applicationHost><sites><site name="S" id="1"><bindings>'
                     '<binding protocol="http" bindingInformation="127.0.0.1:18999:"/>'
                     "</bindings></site></sites></system.applicationHost>")
            location = ('<location path="S"><system.webServer><rewrite><rules>' + rule +
                        "</rules></rewrite></system.webServer></location>")
        return ("<configuration>" + sites +
                '<system.webServer><proxy enabled="true"/><rewrite><globalRules/>' +
                server_rules + "</rewrite></system.webServer>" + location +
                "<harrow></harrow></configuration>")

    def test_server_level_rules_proxy_to_a_literal_host(self):
        o = self.origin("o")
        h = self.harrow(self.config(o.port, "server"))
        status, _, body = request(h.port, path="/_origin/headers")
        self.assertEqual(status, 200, body)

    def test_site_rules_proxy_to_a_literal_host(self):
        o = self.origin("o")
        h = self.harrow(self.config(o.port, "site"))
        status, _, body = request(h.port, path="/_origin/headers")
        self.assertEqual(status, 200, body)


class RedirectLocationTest(HarrowTestCase):
    """A Redirect to a relative URL is sent as IIS sends it: absolute, with the request's scheme
    and Host."""

    def test_relative_redirect_becomes_absolute(self):
        rules = ('<rule name="moved" stopProcessing="true"><match url="^old/(.*)"/>'
                 '<action type="Redirect" url="/new/{R:1}" redirectType="Permanent"/></rule>'
                 '<rule name="bare" stopProcessing="true"><match url="^bare$"/>'
                 '<action type="Redirect" url="elsewhere" appendQueryString="false"/></rule>'
                 '<rule name="abs" stopProcessing="true"><match url="^abs$"/>'
                 '<action type="Redirect" url="https://other.example/x"/></rule>')
        h = self.harrow(config_xml([], [rules]))
        status, headers, _ = request(h.port, path="/old/a?b=1",
                                     headers={"Host": "shop.example:8080"})
        self.assertEqual(status, 301)
        self.assertEqual(headers["location"], "http://shop.example:8080/new/a?b=1")
        _, headers, _ = request(h.port, path="/bare?q=1", headers={"Host": "shop.example"})
        self.assertEqual(headers["location"], "http://shop.example/elsewhere")
        _, headers, _ = request(h.port, path="/abs", headers={"Host": "shop.example"})
        self.assertEqual(headers["location"], "https://other.example/x")


class GlobalProxyHttpVersionTest(unittest.TestCase):
    """<system.webServer><proxy httpVersion="Http10"> is listed by --check-config, never
    silently ignored (Harrow speaks HTTP/1.1 upstream)."""

    def test_listed_as_not_acted_on(self):
        import tempfile
        from harness import HARROW
        text = ('<configuration><system.webServer><proxy enabled="true" httpVersion="Http10"/>'
                "</system.webServer><harrow><listen address=\"127.0.0.1:18998\"/></harrow>"
                "</configuration>")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "h.config")
            with open(path, "w") as f:
                f.write(text)
            r = subprocess.run([HARROW, "--check-config", "--config", path],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('<system.webServer><proxy httpVersion="Http10">', r.stdout)


class UnresolvedServerTest(HarrowTestCase):
    """A server whose name does not resolve takes no traffic, and the admin API and status page
    never show it as healthy."""

    def test_unresolved_server_is_not_healthy(self):
        import json
        o = self.origin("o")
        h = self.harrow(config_xml(
            [farm_xml("f", [("127.0.0.1", o.port, 100), ("no-such-host.invalid", 80, 100)])],
            [rule_xml("r", "f")]))
        status, body = h.admin_get("/api/farms")
        self.assertEqual(status, 200)
        farms = json.loads(body)
        farms = farms["farms"] if isinstance(farms, dict) else farms
        servers = {s["address"]: s for s in farms[0]["servers"]}
        self.assertFalse(servers["no-such-host.invalid"]["isHealthy"])
        self.assertFalse(servers["no-such-host.invalid"]["resolved"])
        self.assertTrue(servers["127.0.0.1"]["isHealthy"])
        status, page = h.admin_get("/")
        row = page[page.index("no-such-host.invalid"):]
        row = row[:row.index("</tr>")]
        self.assertIn("unresolved", row)
        self.assertNotIn(">healthy<", row)


class BindingLoopWarningTest(unittest.TestCase):
    """A site binding that is also a farm server's address (blue/green on one box) is warned
    about: what the farm sends there comes back to Harrow."""

    def test_check_config_warns(self):
        import tempfile
        from harness import HARROW
        text = ('<configuration><webFarms><webFarm name="green">'
                '<server address="127.0.0.1"><applicationRequestRouting httpPort="18996"/>'
                "</server></webFarm></webFarms>"
                "<system.applicationHost><sites><site name=\"Blue\" id=\"1\"><bindings>"
                '<binding protocol="http" bindingInformation="*:18996:"/></bindings></site>'
                "</sites></system.applicationHost>"
                '<system.webServer><rewrite><globalRules><rule name="r" patternSyntax="Wildcard">'
                '<match url="*"/><action type="Rewrite" url="http://green/{R:0}"/></rule>'
                "</globalRules></rewrite></system.webServer></configuration>")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "h.config")
            with open(path, "w") as f:
                f.write(text)
            r = subprocess.run([HARROW, "--check-config", "--config", path],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("warning: site 'Blue' binding 0.0.0.0:18996 is also farm 'green' server "
                      "127.0.0.1:18996", r.stdout)

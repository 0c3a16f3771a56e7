"""End-to-end: Microsoft's URL Rewrite walkthroughs, with their rules as published (only host
names and ports adapted), give the results the pages show.

- "Reverse Proxy with URL Rewrite v2 and Application Request Routing" (learn.microsoft.com/
  iis/extensions/url-rewrite-module/reverse-proxy-with-url-rewrite-v2-and-application-request-
  routing): /webmail/ and /payroll/ proxied to two applications, and an outbound rule that puts
  the application's folder back in front of the links of its pages ({URL} is the path the client
  asked for).
- "Modifying HTTP Response Headers" (…/url-rewrite-module/modifying-http-response-headers): the
  inbound rule keeps the Host in ORIGINAL_HOST, the outbound rule rewrites the Location of
  redirects ({RESPONSE_STATUS} 3xx) back to the public host and folder.

Plus the common RestoreAcceptEncoding pair of rules, which rewrite a request variable outbound.
"""
import http.server
import os
import subprocess
import tempfile
import threading
import unittest

from harness import HARROW, HarrowTestCase, raw_exchange, request


class App:
    """One of the walkthrough's back-end applications (webmail, payroll): default.aspx is a
    page linking to /default.aspx, index.aspx redirects to default.aspx as the second
    walkthrough's web.config rule does (IIS makes the Location absolute). Remembers the
    request headers it was sent."""

    def __init__(self, name):
        app = self
        self.name = name
        self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                app.seen.append({k.lower(): v for k, v in self.headers.items()})
                port = self.server.server_address[1]
                if self.path.startswith("/index.aspx"):
                    self.send_response(301)
                    self.send_header("Location", f"http://localhost:{port}/default.aspx")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = (f"<html><body><h1>{app.name}</h1>"
                        '<a href="/default.aspx">here</a></body></html>').encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# The first walkthrough's inbound rules (sample12.xml), in the server-level <rules> the
# Default Web Site inherits; 127.0.0.1:PORT stands for localhost:8081 and :8082.
INBOUND = """
        <rule name="Reverse Proxy to webmail" stopProcessing="true">
            <match url="^webmail/(.*)" />
            <action type="Rewrite" url="http://127.0.0.1:{webmail}/{{R:1}}" />
        </rule>
        <rule name="Reverse Proxy to payroll" stopProcessing="true">
            <match url="^payroll/(.*)" />
            <action type="Rewrite" url="http://127.0.0.1:{payroll}/{{R:1}}" />
        </rule>"""

# The first walkthrough's outbound rule, "Add application prefix", as its steps define it.
ADD_APPLICATION_PREFIX = r"""
        <outboundRules>
            <rule name="Add application prefix" preCondition="IsHTML">
                <match filterByTags="A" pattern="^/(.*)" />
                <conditions>
                    <add input="{URL}" pattern="^/(webmail|payroll)/.*" />
                </conditions>
                <action type="Rewrite" value="/{C:1}/{R:1}" />
            </rule>
            <preConditions>
                <preCondition name="IsHTML">
                    <add input="{RESPONSE_CONTENT_TYPE}" pattern="^text/html" />
                </preCondition>
            </preConditions>
        </outboundRules>"""

# The second walkthrough: ORIGINAL_HOST allowed and set by the webmail rule, and the
# "Rewrite Location Header" outbound rule. (The page's step 4 and 11 write ORIGINAL_URL where
# steps 2 and 9 write ORIGINAL_HOST; the screenshots and the condition use ORIGINAL_HOST.)
INBOUND_KEEPING_HOST = """
        <rule name="Reverse Proxy to webmail" stopProcessing="true">
            <match url="^webmail/(.*)" />
            <serverVariables>
                <set name="ORIGINAL_HOST" value="{{HTTP_HOST}}" />
            </serverVariables>
            <action type="Rewrite" url="http://127.0.0.1:{webmail}/{{R:1}}" />
        </rule>
        <rule name="Reverse Proxy to payroll" stopProcessing="true">
            <match url="^payroll/(.*)" />
            <action type="Rewrite" url="http://127.0.0.1:{payroll}/{{R:1}}" />
        </rule>"""

REWRITE_LOCATION_HEADER = r"""
        <outboundRules>
            <rule name="Rewrite Location Header" preCondition="IsRedirection">
                <match serverVariable="RESPONSE_Location" pattern="^http://[^/]+/(.*)" />
                <conditions>
                    <add input="{ORIGINAL_HOST}" pattern=".+" />
                    <add input="{URL}" pattern="^/(webmail|payroll)/.*" />
                </conditions>
                <action type="Rewrite" value="http://{ORIGINAL_HOST}/{C:1}/{R:1}" />
            </rule>
            <preConditions>
                <preCondition name="IsRedirection">
                    <add input="{RESPONSE_STATUS}" pattern="3\d\d" />
                </preCondition>
            </preConditions>
        </outboundRules>"""


def walkthrough_config(inbound, outbound, allowed=""):
    return f"""<configuration>
  <system.webServer>
    <proxy enabled="true" />
    <rewrite>
      {allowed}
      <rules>{inbound}
      </rules>{outbound}
    </rewrite>
  </system.webServer>
</configuration>
"""


class Walkthroughs(HarrowTestCase):
    def setUp(self):
        super().setUp()
        self.webmail = App("webmail")
        self.payroll = App("payroll")
        self.addCleanup(self.webmail.stop)
        self.addCleanup(self.payroll.stop)

    def ports(self):
        return {"webmail": self.webmail.port, "payroll": self.payroll.port}

    def test_reverse_proxy_walkthrough_adds_the_application_prefix_to_links(self):
        h = self.harrow(walkthrough_config(INBOUND.format(**self.ports()), ADD_APPLICATION_PREFIX))
        for app in ("webmail", "payroll"):
            status, hdrs, data = request(h.port, path=f"/{app}/default.aspx",
                                         headers={"Host": "localhost"})
            self.assertEqual(status, 200)
            page = data  # http.client has undone the chunked framing
            self.assertIn(f"<h1>{app}</h1>".encode(), page)
            # sample14.html / sample15.html: the link now leads back through the proxy.
            self.assertIn(f'<a href="/{app}/default.aspx">'.encode(), page)

    def test_x_original_url_is_the_url_as_the_client_sent_it(self):
        h = self.harrow(walkthrough_config(INBOUND.format(**self.ports()), ""))
        reply = raw_exchange(h.port, b"GET http://localhost/webmail/default.aspx?a=%41 HTTP/1.1\r\n"
                                     b"Host: localhost\r\nConnection: close\r\n\r\n")
        self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply[:100])
        self.assertEqual(self.webmail.seen[-1]["x-original-url"], "/webmail/default.aspx?a=%41")

    def test_modifying_response_headers_walkthrough_rewrites_the_redirect(self):
        allowed = ('<allowedServerVariables><add name="ORIGINAL_HOST" />'
                   "</allowedServerVariables>")
        h = self.harrow(walkthrough_config(INBOUND_KEEPING_HOST.format(**self.ports()),
                                           REWRITE_LOCATION_HEADER, allowed))
        status, hdrs, _ = request(h.port, path="/webmail/index.aspx",
                                  headers={"Host": "localhost"})
        self.assertEqual(status, 301)
        self.assertEqual(hdrs["location"], "http://localhost/webmail/default.aspx")
        # Not a redirect: the precondition keeps the rule away.
        status, _, _ = request(h.port, path="/webmail/default.aspx", headers={"Host": "localhost"})
        self.assertEqual(status, 200)
        # payroll's rule sets no ORIGINAL_HOST: the first condition fails, Location stays.
        status, hdrs, _ = request(h.port, path="/payroll/index.aspx",
                                  headers={"Host": "localhost"})
        self.assertEqual(status, 301)
        self.assertEqual(hdrs["location"], f"http://localhost:{self.payroll.port}/default.aspx")

    def test_a_variable_no_rule_sets_is_named_by_check_config(self):
        # The page's own step 4 sets ORIGINAL_URL, while its condition reads ORIGINAL_HOST: IIS
        # would expand it to "" and the rule would never fire; Harrow says so before starting.
        inbound = INBOUND_KEEPING_HOST.format(**self.ports()).replace(
            'name="ORIGINAL_HOST"', 'name="ORIGINAL_URL"')
        allowed = ('<allowedServerVariables><add name="ORIGINAL_URL" />'
                   "</allowedServerVariables>")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "web.config")
            with open(path, "w") as f:
                f.write(walkthrough_config(inbound, REWRITE_LOCATION_HEADER, allowed))
            run = subprocess.run([HARROW, "--check-config", "--config", path],
                                 capture_output=True, text=True, timeout=30)
        self.assertEqual(run.returncode, 2, run.stderr)
        lines = [l for l in run.stderr.splitlines() if "ORIGINAL_HOST" in l]
        self.assertEqual(len(lines), 2, run.stderr)  # the condition and the action value
        self.assertRegex(lines[0], r"web\.config:\d+:\d+: error: .*\{ORIGINAL_HOST\} is not a "
                                   r"server variable Harrow knows, and no rule sets it")


class RestoreAcceptEncoding(HarrowTestCase):
    """The rule pair that lets outbound rules read an uncompressed body: the server is sent no
    Accept-Encoding, and the outbound rule writes the client's back into the request variable
    (where IIS's compression module reads it; Harrow compresses nothing, so the response goes
    out as the server sent it)."""

    def test_the_server_gets_no_accept_encoding_and_the_rules_load(self):
        app = App("webmail")
        self.addCleanup(app.stop)
        rules = f"""
        <rule name="Reverse Proxy" stopProcessing="true">
            <match url="(.*)" />
            <serverVariables>
                <set name="HTTP_X_ORIGINAL_ACCEPT_ENCODING" value="{{HTTP_ACCEPT_ENCODING}}" />
                <set name="HTTP_ACCEPT_ENCODING" value="" />
            </serverVariables>
            <action type="Rewrite" url="http://127.0.0.1:{app.port}/{{R:1}}" />
        </rule>"""
        outbound = r"""
        <outboundRules>
            <rule name="RestoreAcceptEncoding" preCondition="NeedsRestoringAcceptEncoding">
                <match serverVariable="HTTP_ACCEPT_ENCODING" pattern="^(.*)" />
                <action type="Rewrite" value="{HTTP_X_ORIGINAL_ACCEPT_ENCODING}" />
            </rule>
            <rule name="Show" >
                <match serverVariable="RESPONSE_X_Accept_Encoding" pattern=".*" />
                <action type="Rewrite" value="{HTTP_ACCEPT_ENCODING}" />
            </rule>
            <preConditions>
                <preCondition name="NeedsRestoringAcceptEncoding">
                    <add input="{HTTP_X_ORIGINAL_ACCEPT_ENCODING}" pattern=".+" />
                </preCondition>
            </preConditions>
        </outboundRules>"""
        allowed = ('<allowedServerVariables><add name="HTTP_X_ORIGINAL_ACCEPT_ENCODING" />'
                   '<add name="HTTP_ACCEPT_ENCODING" /></allowedServerVariables>')
        h = self.harrow(walkthrough_config(rules, outbound, allowed))
        status, hdrs, _ = request(h.port, path="/default.aspx",
                                  headers={"Accept-Encoding": "gzip, br"})
        self.assertEqual(status, 200)
        self.assertEqual(app.seen[-1].get("accept-encoding", ""), "")
        self.assertEqual(app.seen[-1]["x-original-accept-encoding"], "gzip, br")
        self.assertNotIn("content-encoding", hdrs)
        # The rule after RestoreAcceptEncoding reads the restored value.
        self.assertEqual(hdrs["x-accept-encoding"], "gzip, br")


if __name__ == "__main__":
    unittest.main()

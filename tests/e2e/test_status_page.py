"""End-to-end: the status page for people (GET / on the admin listener), fetched over HTTP and,
when Debian's chromium is installed, rendered by a real headless browser."""
import html.parser
import http.client
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import unittest
import zlib

from harness import HarrowTestCase, config_xml, farm_xml, request, rule_xml, wait_for

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class PageParser(html.parser.HTMLParser):
    """Checks that every element is closed, in order (a stand-in for a validator that needs no
    network), and collects the tables: rows of cell texts, the header row first."""

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.tables, self.panels = [], [], [], []
        self.cell = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            # The health panels' small tables apart from the farms' server tables.
            (self.panels if "mini" in (dict(attrs).get("class") or "") else self.tables).append([])
            self.current = self.panels if "mini" in (dict(attrs).get("class") or "") else self.tables
        elif tag == "tr":
            self.current[-1].append([])
        elif tag in ("td", "th"):
            self.cell = ""
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else ''}>")
            return
        self.stack.pop()
        if tag in ("td", "th"):
            self.current[-1][-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data

    def column(self, name, tables=None):
        """The named column's cells over every server table's (or `tables`') body rows."""
        out = []
        for table in self.tables if tables is None else tables:
            index = table[0].index(name)
            out += [row[index] for row in table[1:]]
        return out


def png_info(path):
    """(width, height, distinct byte values in the decoded pixel data) of a PNG file."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise AssertionError(f"{path} is not a PNG")
    pos, width, height, idat = 8, 0, 0, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


class StatusPage(HarrowTestCase):
    def start(self):
        """Two origins behind one farm, and 20 requests through it. (Not setUp: tearDown, which
        stops the processes, does not run when setUp fails.)"""
        # A farm names each server by address once: two loopback addresses.
        self.a = self.origin("a", host="127.0.0.2")
        self.b = self.origin("b", host="127.0.0.3")
        farm = farm_xml("web", [(self.a.host, self.a.port, 100), (self.b.host, self.b.port, 50)])
        self.h = self.harrow(config_xml([farm], [rule_xml("all", "web")]))
        for i in range(20):
            status, _, _ = request(self.h.port, path=f"/page/{i}")
            self.assertEqual(status, 200)
        self.labels = [f"{o.host}:{o.port}" for o in (self.a, self.b)]

    def test_page_lists_every_server(self):
        self.start()
        status, headers, body = request(self.h.admin_port, path="/")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/html"), headers["content-type"])
        page = body.decode("utf-8")
        self.assertTrue(page.startswith("<!DOCTYPE html>"))
        self.assertIn("<title>Harrow status</title>", page)
        self.assertIn('<meta http-equiv="refresh" content="5">', page)
        self.assertIn(">web ", page)
        for label in self.labels:
            self.assertIn(f">{label}<", page)
        self.assertEqual(page.count("<svg "), 4, "two sparklines per server")
        self.assertNotIn("panic mode", page)
        # Self-contained and well formed.
        for asset in ("<script", "<link", "<img", "src=", "http://", "https://"):
            self.assertNotIn(asset, page)
        parser = PageParser()
        parser.feed(page)
        parser.close()
        self.assertEqual(parser.errors, [])
        self.assertEqual(parser.stack, [])
        self.assertEqual(parser.column("Server"), self.labels)
        self.assertEqual(parser.column("Weight"), ["100", "50"])
        self.assertEqual(parser.column("Health"), ["healthy", "healthy"])
        self.assertEqual(parser.column("State"), ["Available", "Available"])
        # Every request counted once, on one of the two servers; each got some (round robin by
        # weight), none failed, and both have a response-time estimate.
        requests = [int(n.replace(",", "")) for n in parser.column("Requests")]
        self.assertEqual(sum(requests), 20, requests)
        self.assertTrue(all(n > 0 for n in requests), requests)
        self.assertEqual(parser.column("Failures"), ["0", "0"])
        for p50, p99 in zip(parser.column("p50 ms"), parser.column("p99 ms")):
            self.assertGreater(float(p50), 0)
            self.assertGreaterEqual(float(p99), float(p50))

    @unittest.skipUnless(shutil.which("chromium"), "chromium is not installed")
    def test_renders_in_headless_chromium(self):
        self.start()
        with tempfile.TemporaryDirectory(prefix="harrow-chromium-") as tmp:
            url = f"http://127.0.0.1:{self.h.admin_port}/"
            env = dict(os.environ, HOME=tmp, XDG_CONFIG_HOME=tmp, XDG_CACHE_HOME=tmp)
            common = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                      "--no-first-run", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync",
                      f"--user-data-dir={tmp}/profile"]
            png = os.path.join(tmp, "page.png")
            shot = subprocess.run(common + [f"--screenshot={png}", "--window-size=1200,800", url],
                                  env=env, capture_output=True, text=True, timeout=60)
            self.assertTrue(os.path.exists(png),
                            f"no screenshot (exit {shot.returncode}): {shot.stderr[-2000:]}")
            width, height, distinct = png_info(png)
            self.assertEqual((width, height), (1200, 800))
            self.assertGreater(distinct, 16, "the screenshot is blank")
            # The DOM as the browser built it: the table made it through the real parser.
            dom = subprocess.run(common + ["--dump-dom", url], env=env, capture_output=True,
                                 text=True, timeout=60)
            self.assertEqual(dom.returncode, 0, dom.stderr[-2000:])
            self.assertIn("<title>Harrow status</title>", dom.stdout)
            for label in self.labels:
                self.assertIn(f">{label}<", dom.stdout)
            self.assertEqual(dom.stdout.count("<svg "), 4)


def chromium_args(tmp):
    return ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp}/profile"]


def chromium_env(tmp):
    return dict(os.environ, HOME=tmp, XDG_CONFIG_HOME=tmp, XDG_CACHE_HOME=tmp)


class StatusPageActions(HarrowTestCase):
    """The Drain / Stop / Start forms: a plain HTML form POST to /status/servers, taken only
    with the page's token and from the admin listener's own origin."""

    def start(self, health_url=""):
        self.a = self.origin("a", host="127.0.0.2")
        self.b = self.origin("b", host="127.0.0.3")
        extra = (f'<healthCheck url="{health_url}" interval="00:00:02" timeout="00:00:01"/>'
                 if health_url else "")
        farm = farm_xml("web", [(self.a.host, self.a.port, 100), (self.b.host, self.b.port, 50)],
                        extra=extra)
        self.h = self.harrow(config_xml([farm], [rule_xml("all", "web")]))
        self.label = f"{self.a.host}:{self.a.port}"
        self.origin_header = f"http://127.0.0.1:{self.h.admin_port}"

    def page(self):
        status, headers, body = request(self.h.admin_port, path="/")
        self.assertEqual(status, 200)
        return headers, body.decode()

    def token(self):
        return re.search(r'name="token" value="([^"]+)"', self.page()[1]).group(1)

    def post(self, body, headers):
        conn = http.client.HTTPConnection("127.0.0.1", self.h.admin_port, timeout=10)
        conn.request("POST", "/status/servers", body=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
        resp = conn.getresponse()
        data = resp.read().decode()
        location = resp.getheader("Location")
        conn.close()
        return resp.status, data, location

    def form(self, token, state="drain"):
        fields = {"farm": "web", "server": self.label, "state": state}
        if token is not None:
            fields["token"] = token
        return "&".join(f"{k}={v}" for k, v in fields.items())

    def state(self):
        farms = json.loads(self.h.admin_get("/api/farms")[1])["farms"]
        return next(s["state"] for s in farms[0]["servers"] if s["endpoint"] == self.label)

    def test_page_has_a_form_per_server_and_refuses_framing(self):
        self.start()
        headers, page = self.page()
        self.assertEqual(headers["x-frame-options"], "DENY")
        self.assertEqual(headers["content-security-policy"], "frame-ancestors 'none'")
        self.assertEqual(page.count('<form class="actions" method="post" '
                                    'action="/status/servers"'), 2)
        self.assertEqual(len(set(re.findall(r'name="token" value="([^"]+)"', page))), 1)
        parser = PageParser()
        parser.feed(page)
        self.assertEqual(parser.errors, [])
        self.assertEqual(parser.column("Actions"), ["DrainStopStart"] * 2)

    def test_a_good_form_drains_then_starts_the_server(self):
        self.start()
        status, body, location = self.post(self.form(self.token()),
                                           {"Origin": self.origin_header,
                                            "Sec-Fetch-Site": "same-origin"})
        self.assertEqual((status, location), (303, "/"), body)
        # The prober thread applies the command: the API answers before the table shows it.
        wait_for(lambda: self.state() == "Draining", 10, "the server to drain")
        # Referer alone (a browser that sends no Origin) names the page too.
        status, body, _ = self.post(self.form(self.token(), "start"),
                                    {"Referer": self.origin_header + "/"})
        self.assertEqual(status, 303, body)
        wait_for(lambda: self.state() == "Available", 10, "the server to start")

    def test_bad_absent_or_foreign_tokens_are_refused(self):
        self.start()
        good = self.token()
        other = self.harrow(config_xml([farm_xml("x", [("127.0.0.1", self.a.port, 1)])],
                                       [rule_xml("x", "x")]))
        foreign = re.search(r'name="token" value="([^"]+)"',
                            request(other.admin_port, path="/")[2].decode()).group(1)
        issued, mac = good.split(".")
        forged = f"{int(issued) + 1}.{mac}"
        for token, why in [(None, "the form has no token field"),
                           ("", "token is not one this admin listener issued"),
                           ("123.abc", "token is not one this admin listener issued"),
                           (forged, "token is not one this admin listener issued"),
                           (foreign, "token is not one this admin listener issued")]:
            status, body, _ = self.post(self.form(token), {"Origin": self.origin_header})
            self.assertEqual(status, 403, f"{token}: {body}")
            self.assertIn(why, body)
        self.assertEqual(self.state(), "Available")

    def test_cross_site_forms_are_refused_even_with_a_good_token(self):
        self.start()
        token = self.token()
        for headers, why in [
                ({"Origin": "http://evil.example"}, "Origin http://evil.example is not"),
                ({"Origin": "null"}, "Origin null is not"),
                ({"Origin": f"http://127.0.0.1:{self.h.port}"}, "is not"),
                ({"Referer": "http://evil.example/page"}, "Referer http://evil.example/page"),
                ({"Origin": self.origin_header, "Sec-Fetch-Site": "cross-site"},
                 "Sec-Fetch-Site: cross-site"),
                ({}, "without Origin or Referer")]:
            status, body, _ = self.post(self.form(token), headers)
            self.assertEqual(status, 403, f"{headers}: {body}")
            self.assertIn(why, body)
        self.assertEqual(self.state(), "Available")
        # The form endpoint takes forms only by POST.
        self.assertEqual(self.h.admin_get("/status/servers")[0], 405)

    def test_health_panel_shows_the_probe(self):
        self.start(health_url="http://web/_origin/stats")
        wait_for(lambda: self.page()[1].count('<span class="badge ok">pass: status 200</span>') == 2, 15,
                 "both servers probed")
        page = self.page()[1]
        self.assertIn('<code class="probe-url">http://web/_origin/stats</code> every 2 s', page)
        parser = PageParser()
        parser.feed(page)
        self.assertEqual(parser.errors, [])
        self.assertEqual(parser.column("Last probe", parser.panels), ["pass: status 200"] * 2)
        for when in parser.column("Next probe", parser.panels):
            self.assertRegex(when, r"^in [0-2] s$")
        self.assertIn("TLS handshakes failed: 0", page)

    @unittest.skipUnless(shutil.which("chromium"), "chromium is not installed")
    def test_chromium_sends_a_cross_site_form_and_it_is_refused(self):
        """A page elsewhere (here a file) that knows a valid token and submits the form at once,
        as a cross-site attack would: the real browser marks it cross-site and nothing changes.
        (Chromium's command line cannot click the page's own buttons without a DevTools
        client, so the same-origin path is tested over HTTP above.)"""
        self.start()
        token = self.token()
        with tempfile.TemporaryDirectory(prefix="harrow-chromium-") as tmp:
            attack = os.path.join(tmp, "attack.html")
            with open(attack, "w") as f:
                f.write(f'<html><body><form method="post" action="{self.origin_header}'
                        f'/status/servers"><input type="hidden" name="token" value="{token}">'
                        f'<input type="hidden" name="farm" value="web"><input type="hidden" '
                        f'name="server" value="{self.label}"><input type="hidden" name="state" '
                        'value="drain"></form><script>document.forms[0].submit()</script>'
                        '</body></html>')
            dom = subprocess.run(chromium_args(tmp) + ["--virtual-time-budget=5000",
                                                       "--dump-dom", "file://" + attack],
                                 env=chromium_env(tmp), capture_output=True, text=True,
                                 timeout=60)
            self.assertIn("cross-site form refused", dom.stdout, dom.stderr[-2000:])
        self.assertEqual(self.state(), "Available")

    @unittest.skipUnless(shutil.which("chromium"), "chromium is not installed")
    def test_chromium_renders_the_buttons_and_health_panel(self):
        """The page as a browser builds it, and a screenshot (saved to
        $HARROW_STATUS_SCREENSHOT when set, which is how docs/status-page.png is made)."""
        self.start(health_url="http://web/_origin/stats")
        for i in range(30):
            request(self.h.port, path=f"/page/{i}")
        wait_for(lambda: self.page()[1].count('<span class="badge ok">pass: status 200</span>') == 2, 15,
                 "both servers probed")
        status, _, _ = self.post(self.form(self.token()), {"Origin": self.origin_header})
        self.assertEqual(status, 303)
        url = self.origin_header + "/"
        with tempfile.TemporaryDirectory(prefix="harrow-chromium-") as tmp:
            png = os.path.join(tmp, "page.png")
            shot = subprocess.run(chromium_args(tmp) + [f"--screenshot={png}",
                                                        "--window-size=1280,900", url],
                                  env=chromium_env(tmp), capture_output=True, text=True,
                                  timeout=60)
            self.assertTrue(os.path.exists(png), f"no screenshot: {shot.stderr[-2000:]}")
            width, height, distinct = png_info(png)
            self.assertEqual((width, height), (1280, 900))
            self.assertGreater(distinct, 16, "the screenshot is blank")
            if os.environ.get("HARROW_STATUS_SCREENSHOT"):
                shutil.copyfile(png, os.environ["HARROW_STATUS_SCREENSHOT"])
            dom = subprocess.run(chromium_args(tmp) + ["--dump-dom", url],
                                 env=chromium_env(tmp), capture_output=True, text=True,
                                 timeout=60)
            self.assertEqual(dom.returncode, 0, dom.stderr[-2000:])
        parser = PageParser()
        parser.feed(dom.stdout)
        self.assertEqual(parser.column("Actions"), ["DrainStopStart"] * 2)
        self.assertEqual(parser.column("State"), ["Draining", "Available"])
        self.assertEqual(parser.column("Last probe", parser.panels), ["pass: status 200"] * 2)
        self.assertEqual(dom.stdout.count('action="/status/servers"'), 2)


if __name__ == "__main__":
    unittest.main()

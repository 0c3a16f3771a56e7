"""End-to-end: the status page for people (GET / on the admin listener), fetched over HTTP and,
when Debian's chromium is installed, rendered by a real headless browser."""
import html.parser
import os
import shutil
import struct
import subprocess
import tempfile
import unittest
import zlib

from harness import HarrowTestCase, config_xml, farm_xml, request, rule_xml

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class PageParser(html.parser.HTMLParser):
    """Checks that every element is closed, in order (a stand-in for a validator that needs no
    network), and collects the tables: rows of cell texts, the header row first."""

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.tables = [], [], []
        self.cell = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
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
            self.tables[-1][-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data

    def column(self, name):
        """The named column's cells over every table's body rows."""
        out = []
        for table in self.tables:
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


if __name__ == "__main__":
    unittest.main()

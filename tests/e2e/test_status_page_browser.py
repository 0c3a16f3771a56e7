"""End-to-end: the status page's per-server Drain / Start buttons clicked in a real headless
Chromium, driven over the DevTools protocol (CDP) with a WebSocket client written here on the
standard library, so the test needs nothing beyond Debian's chromium package."""
import base64
import hashlib
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

from harness import HarrowTestCase, config_xml, farm_xml, rule_xml, wait_for

# Every wait on the browser is bounded by this many seconds.
WAIT = 15.0

# RFC 6455 section 1.3: the server proves it read the handshake by hashing the key with this.
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WebSocket:
    """A minimal RFC 6455 client: text frames out (masked, as section 5.3 requires of a client),
    whole messages in (continuations joined, pings answered). Enough for CDP."""

    def __init__(self, url, timeout):
        m = re.match(r"ws://([^/:]+):(\d+)(/.*)$", url)
        if not m:
            raise AssertionError(f"not a ws:// URL: {url}")
        host, port, path = m.group(1), int(m.group(2)), m.group(3)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\n"
                          b"Host: " + f"{host}:{port}".encode() + b"\r\n"
                          b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: " + key + b"\r\n"
                          b"Sec-WebSocket-Version: 13\r\n\r\n")
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if not re.match(r"HTTP/1\.1 101 ", lines[0]):
            raise AssertionError(f"WebSocket handshake refused: {lines[0]}")
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (line.partition(":") for line in lines[1:])}
        accept = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            raise AssertionError(f"bad Sec-WebSocket-Accept: {headers}")

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise AssertionError("DevTools closed the WebSocket")
        self.buffer += data

    def _take(self, n):
        while len(self.buffer) < n:
            self._fill()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send_text(self, text):
        self._send_frame(0x1, text.encode("utf-8"))

    def receive_text(self, deadline):
        """The next whole text message; raises socket.timeout past the deadline."""
        message = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("no WebSocket message before the deadline")
            self.sock.settimeout(remaining)
            first, second = self._take(2)
            fin, opcode, masked, n = first & 0x80, first & 0x0F, second & 0x80, second & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._take(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._take(8))[0]
            mask = self._take(4) if masked else None
            payload = self._take(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise AssertionError("DevTools closed the WebSocket")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            message += payload
            if fin:
                return message.decode("utf-8")

    def close(self):
        try:
            self._send_frame(0x8, struct.pack(">H", 1000))
        except OSError:
            pass
        self.sock.close()


class DevTools:
    """CDP commands over one page target's WebSocket. Events arriving while a command waits
    for its answer are kept, in order, for wait_event; the rest are ignored."""

    def __init__(self, ws_url):
        self.ws = WebSocket(ws_url, WAIT)
        self.next_id = 0
        self.events = []

    def command(self, method, **params):
        self.next_id += 1
        sent = self.next_id
        self.ws.send_text(json.dumps({"id": sent, "method": method, "params": params}))
        deadline = time.monotonic() + WAIT
        while True:
            try:
                message = json.loads(self.ws.receive_text(deadline))
            except socket.timeout:
                raise AssertionError(f"no answer to {method} in {WAIT}s (a dialog open?)") from None
            if message.get("id") == sent:
                if "error" in message:
                    raise AssertionError(f"{method} failed: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def forget_events(self):
        self.events = []

    def wait_event(self, method, what):
        deadline = time.monotonic() + WAIT
        while True:
            for i, event in enumerate(self.events):
                if event["method"] == method:
                    del self.events[:i + 1]
                    return event.get("params", {})
            self.events = []
            try:
                message = json.loads(self.ws.receive_text(deadline))
            except socket.timeout:
                raise AssertionError(
                    f"timed out after {WAIT}s waiting for {what} ({method})") from None
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression):
        result = self.command("Runtime.evaluate", expression=expression, returnByValue=True,
                              awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"page script threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self):
        self.ws.close()


class Chromium:
    """Headless Chromium with DevTools on a loopback port 0, in its own process group (its
    renderer and zygote children go with it) and a throwaway profile."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="harrow-chromium-")
        env = dict(os.environ, HOME=self.tmp.name, XDG_CONFIG_HOME=self.tmp.name,
                   XDG_CACHE_HOME=self.tmp.name)
        self.proc = subprocess.Popen(
            ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", f"--user-data-dir={self.tmp.name}/profile",
             "about:blank"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        # A thread drains stderr for the whole run (a full pipe would stall the browser) and
        # hands each line over, so reading the port is a bounded wait.
        self.lines, self.stderr_tail = queue.Queue(), []
        threading.Thread(target=self._drain, daemon=True).start()
        self.port = self._devtools_port()

    def _drain(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            self.stderr_tail = (self.stderr_tail + [line])[-40:]
            self.lines.put(line)
        self.lines.put(None)

    def _devtools_port(self):
        deadline = time.monotonic() + WAIT
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                line = ""
                if remaining <= 0:
                    raise AssertionError(f"chromium printed no DevTools line in {WAIT}s: "
                                         f"{''.join(self.stderr_tail)}")
            if line is None:
                raise AssertionError(f"chromium exited with {self.proc.wait()}: "
                                     f"{''.join(self.stderr_tail)}")
            m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if m:
                return int(m.group(1))

    def _json(self, method, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        if resp.status != 200:
            raise AssertionError(f"DevTools {method} {path}: {resp.status} {body[:200]!r}")
        return json.loads(body)

    def page(self):
        """A DevTools session on a page target: the about:blank tab, or a new one."""
        pages = [t for t in self._json("GET", "/json/list") if t.get("type") == "page"]
        target = pages[0] if pages else self._json("PUT", "/json/new?about:blank")
        return DevTools(target["webSocketDebuggerUrl"])

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc.stderr.close()
        self.tmp.cleanup()


@unittest.skipUnless(shutil.which("chromium"), "chromium is not installed")
class StatusPageInChromium(HarrowTestCase):
    def start(self):
        """Two origins behind one farm. (Not setUp: tearDown, which stops the processes, does
        not run when setUp fails.)"""
        self.a = self.origin("a", host="127.0.0.2")
        self.b = self.origin("b", host="127.0.0.3")
        farm = farm_xml("web", [(self.a.host, self.a.port, 100), (self.b.host, self.b.port, 50)])
        self.h = self.harrow(config_xml([farm], [rule_xml("all", "web")]))
        self.label = f"{self.a.host}:{self.a.port}"
        self.other = f"{self.b.host}:{self.b.port}"

    def state(self, label=None):
        farms = json.loads(self.h.admin_get("/api/farms")[1])["farms"]
        return next(s["state"] for s in farms[0]["servers"]
                    if s["endpoint"] == (label or self.label))

    def click(self, page, state):
        """Clicks the button named `state` in this server's form, as a person would (the
        page's confirm() is answered yes), and waits for the 303 back to the page to load."""
        page.forget_events()
        outcome = page.evaluate(
            "(() => {"
            " const server = [...document.querySelectorAll('form input[name=\"server\"]')]"
            f"  .find(input => input.value === {json.dumps(self.label)});"
            " if (!server) return 'no form for the server';"
            f" const button = server.form.querySelector('button[value={json.dumps(state)}]');"
            " if (!button) return 'no button';"
            " button.click();"
            " return 'clicked';"
            "})()")
        self.assertEqual(outcome, "clicked")
        page.wait_event("Page.loadEventFired", f"the page to load again after {state}")
        self.assertEqual(page.evaluate("location.pathname"), "/")
        self.assertEqual(page.evaluate("document.title"), "Harrow status")

    def test_drain_then_start_buttons_change_the_server(self):
        self.start()
        browser = Chromium()
        try:
            page = browser.page()
            try:
                page.command("Page.enable")
                # A dialog would wait for a person; answer every confirm() yes.
                page.command("Page.addScriptToEvaluateOnNewDocument",
                             source="window.confirm = () => true")
                page.command("Page.navigate", url=f"http://127.0.0.1:{self.h.admin_port}/")
                page.wait_event("Page.loadEventFired", "the status page to load")
                self.assertEqual(page.evaluate("document.forms.length"), 2)
                self.assertEqual(self.state(), "Available")

                self.click(page, "drain")
                # The prober thread applies the command: the API answers before the table.
                wait_for(lambda: self.state() == "Draining", WAIT, "the server to drain")
                self.assertEqual(self.state(self.other), "Available")

                self.click(page, "start")
                wait_for(lambda: self.state() == "Available", WAIT, "the server to start")
                self.assertEqual(self.state(self.other), "Available")
            finally:
                page.close()
        finally:
            browser.stop()


if __name__ == "__main__":
    unittest.main()

"""End-to-end: what one connection can make Harrow hold is bounded in memory, not in bytes, so
it holds however the traffic is cut, and it goes back once the connections are gone.

Each test attacks with a few connections at once and reads the harrow process's RSS
(/proc/PID/status): its peak growth must stay under a generous multiple of the per-connection
bound the README documents (PER_CONNECTION), and after the connections close RSS must come back
near where it started. Attacks: a client that pipelines requests and never reads (and is dropped
at clientSend, with client_send_timeout in the access log), a request body in 1-byte chunks to a
server that does not read, a response in 1-byte chunks to a client that does not read, and HTML
rewriting of a fast server's page to a client that does not read."""
import os
import socket
import tempfile
import threading
import time
import unittest

from harness import HarrowTestCase, SANITIZED, config_xml, farm_xml, rule_xml, wait_for

MIB = 1024 * 1024
CONNECTIONS = 8
# The README's per-connection bound while a body streams either way (1 MiB of queued writes,
# plus what one read can add before the check and the two read buffers), rounded up.
PER_CONNECTION = 2 * MIB
# Peak RSS growth allowed for CONNECTIONS attackers: twice the bound each, plus room for the
# free lists, the allocator and the kernel's view of pages.
PEAK_ALLOWED = CONNECTIONS * 2 * PER_CONNECTION + 16 * MIB
# How close to the starting RSS the process must come back once the attackers are gone.
RETURN_SLACK = 4 * MIB


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def small_buffer_socket():
    """A client socket that holds little in the kernel, so what is not read waits in Harrow."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return s


def send_for(sock, data, seconds):
    """Sends as much of `data` as the peer takes within `seconds` (never blocks longer)."""
    sock.setblocking(False)
    deadline = time.monotonic() + seconds
    view = memoryview(data)
    while view and time.monotonic() < deadline:
        try:
            n = sock.send(view[:65536])
            view = view[n:]
        except BlockingIOError:
            time.sleep(0.005)
        except OSError:
            break
    return len(data) - len(view)


class RawOrigin:
    """A loopback server whose every connection is handed to `serve(conn)` in a thread."""

    def __init__(self, serve):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.serve = serve
        self.stopped = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            self.serve(conn)
        except OSError:
            pass

    def stop(self):
        self.stopped = True
        self.listener.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        b = conn.recv(4096)
        if not b:
            raise OSError("closed")
        data += b
    return data


@unittest.skipIf(SANITIZED, "RSS under AddressSanitizer says nothing about Harrow's own use")
class BoundedMemory(HarrowTestCase):
    def start(self, port, harrow="", outbound=""):
        self.log_dir = tempfile.TemporaryDirectory(prefix="harrow-mem-")
        self.access_log = os.path.join(self.log_dir.name, "access.log")
        text = config_xml([farm_xml("f", [("127.0.0.1", port, 1)])], [rule_xml("r", "f")],
                          harrow=f'<accessLog path="{self.access_log}" format="w3c"/>' + harrow)
        if outbound:
            text = text.replace("</globalRules>",
                                "</globalRules><outboundRules>" + outbound + "</outboundRules>")
        h = self.harrow(text, workers=1)
        # Warm up (pools, the access log, the loop), then take the baseline.
        s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        s.close()
        time.sleep(0.3)
        self.baseline = status_kib(h.proc.pid, "VmRSS") * 1024
        return h

    def tearDown(self):
        super().tearDown()
        if hasattr(self, "log_dir"):
            self.log_dir.cleanup()

    def assert_peak_bounded(self, h, what, allowed=PEAK_ALLOWED):
        peak = status_kib(h.proc.pid, "VmHWM") * 1024
        growth = peak - self.baseline
        print(f"\n{what}: baseline {self.baseline / MIB:.1f} MiB, peak growth "
              f"{growth / MIB:.1f} MiB (allowed {allowed / MIB:.0f})", flush=True)
        self.assertLess(growth, allowed, f"{what}: RSS grew {growth / MIB:.1f} MiB")

    def assert_bounded_and_returned(self, h, clients, what, then=None, allowed=PEAK_ALLOWED):
        try:
            self.assert_peak_bounded(h, what, allowed)
        finally:
            for c in clients:
                c.close()
            if then is not None:
                then()
        # The memory goes back: free lists are trimmed and the allocator returns pages.
        def back():
            rss = status_kib(h.proc.pid, "VmRSS") * 1024
            return rss if rss - self.baseline < RETURN_SLACK else None
        try:
            rss = wait_for(back, 8, "RSS to come back")
            print(f"{what}: back to {(rss - self.baseline) / MIB:.1f} MiB above the start",
                  flush=True)
        except AssertionError:
            rss = status_kib(h.proc.pid, "VmRSS") * 1024
            self.fail(f"{what}: RSS still {(rss - self.baseline) / MIB:.1f} MiB above the start "
                      "after the connections closed")

    def attack_until_stuck(self, h, start_one, connections=CONNECTIONS):
        """Opens `connections` attackers (start_one(h) each), then lets Harrow take what it will:
        for at least 3 s, then until its RSS has not grown for a second (at most 12 s)."""
        clients = [start_one(h) for _ in range(connections)]
        start = time.monotonic()
        last, since = status_kib(h.proc.pid, "VmRSS"), start
        while time.monotonic() < start + 12 and (time.monotonic() < start + 3 or
                                                 time.monotonic() - since < 1.0):
            time.sleep(0.1)
            rss = status_kib(h.proc.pid, "VmRSS")
            if rss > last + 256:
                last, since = rss, time.monotonic()
        return clients

    def test_pipelining_client_that_never_reads(self):
        o = self.origin("o")
        h = self.start(o.port, harrow='<timeouts clientSend="00:00:02"/>')
        request = b"GET /?bytes=2000 HTTP/1.1\r\nHost: t\r\n\r\n"
        pipeline = request * 5000  # 200 KB of requests, 10 MB of responses

        def start_one(h):
            s = small_buffer_socket()
            s.connect(("127.0.0.1", h.port))
            threading.Thread(target=send_for, args=(s, pipeline, 3), daemon=True).start()
            return s

        clients = self.attack_until_stuck(h, start_one)
        self.assert_peak_bounded(h, "pipelining")
        # Harrow stops reading requests while the responses are not taken, and drops the
        # client at clientSend, saying why in the access log.
        def dropped():
            if not os.path.exists(self.access_log):
                return 0
            with open(self.access_log) as f:
                return f.read().count(" client_send_timeout ") >= CONNECTIONS
        wait_for(dropped, 15, "every client dropped with client_send_timeout")
        self.assert_bounded_and_returned(h, clients, "pipelining")

    def test_request_body_in_one_byte_chunks_to_a_server_that_does_not_read(self):
        done = threading.Event()

        def black_hole(conn):
            done.wait(30)  # reads nothing
        origin = RawOrigin(black_hole)
        self.addCleanup(origin.stop)
        self.addCleanup(done.set)
        h = self.start(origin.port)
        body = b"1\r\nx\r\n" * 2000000  # 12 MB on the wire, 2 MB of body

        def start_one(h):
            s = socket.create_connection(("127.0.0.1", h.port))
            s.sendall(b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            threading.Thread(target=send_for, args=(s, body, 10), daemon=True).start()
            return s

        clients = self.attack_until_stuck(h, start_one)
        # Harrow does not read a client it holds back: the server's end closing ends them.
        self.assert_bounded_and_returned(h, clients, "1-byte request chunks", then=origin.stop)

    def test_response_in_one_byte_chunks_to_a_client_that_does_not_read(self):
        chunks = b"1\r\nx\r\n" * 2000000  # 12 MB of framing for 2 MB of body

        def tiny_chunks(conn):
            read_head(conn)
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            conn.sendall(chunks)
            conn.sendall(b"0\r\n\r\n")
        origin = RawOrigin(tiny_chunks)
        self.addCleanup(origin.stop)
        h = self.start(origin.port)

        def start_one(h):
            s = small_buffer_socket()
            s.connect(("127.0.0.1", h.port))
            s.sendall(b"GET /tiny HTTP/1.1\r\nHost: t\r\n\r\n")
            return s

        clients = self.attack_until_stuck(h, start_one)
        self.assert_bounded_and_returned(h, clients, "1-byte response chunks")

    def test_html_rewriting_of_a_fast_server_to_a_client_that_does_not_read(self):
        # 10 MB of links in 200-byte chunks: each chunk is rewritten and sent on by itself.
        chunk = b'<a href="http://backend.internal/p">x</a>' * 5
        body = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 48000 + b"0\r\n\r\n"

        def html(conn):
            read_head(conn)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n" + body)
        origin = RawOrigin(html)
        self.addCleanup(origin.stop)
        rules = ('<rule name="links"><match filterByTags="A" '
                 'pattern="^http://backend\\.internal/(.*)"/>'
                 '<action type="Rewrite" value="/public/{R:1}"/></rule>')
        h = self.start(origin.port, outbound=rules)

        def start_one(h):
            s = small_buffer_socket()
            s.connect(("127.0.0.1", h.port))
            s.sendall(b"GET /page HTTP/1.1\r\nHost: t\r\n\r\n")
            return s

        clients = self.attack_until_stuck(h, start_one)
        self.assert_bounded_and_returned(h, clients, "HTML rewriting")

    def test_memory_of_many_stalled_downloads_goes_back(self):
        # Enough stalled downloads that the free lists would keep tens of MiB after them.
        o = self.origin("o")
        h = self.start(o.port)
        connections = 40

        def start_one(h):
            s = small_buffer_socket()
            s.connect(("127.0.0.1", h.port))
            s.sendall(b"GET /?bytes=50000000 HTTP/1.1\r\nHost: t\r\n\r\n")
            return s

        clients = self.attack_until_stuck(h, start_one, connections)
        self.assert_bounded_and_returned(h, clients, "stalled downloads",
                                         allowed=connections * 2 * PER_CONNECTION + 16 * MIB)


if __name__ == "__main__":
    unittest.main()

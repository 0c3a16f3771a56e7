"""End-to-end: when Harrow itself runs out of file descriptors (a burst of more simultaneous
requests than its open-file limit allows upstream sockets for), the requests that cannot get a
server connection are answered 502, but the servers are not blamed: their health stays as it
was, so the burst does not take every server out of rotation."""
import re
import resource
import socket
import time

from harness import HarrowTestCase, config_xml, farm_xml, rule_xml, wait_for


def healthy_servers(h):
    _, text = h.admin_get("/metrics")
    return [int(v) for v in re.findall(r'(?m)^harrow_server_healthy\{farm="f"[^}]*\} (\d+)$', text)]


class ResourceExhaustion(HarrowTestCase):
    def test_descriptor_exhaustion_is_no_live_traffic_failure_of_the_servers(self):
        # The origin answers after a while, so the upstream sockets of the burst are all open
        # at once.
        a = self.origin("a", delay_ms=300)
        b = self.origin("b", host="127.0.0.2", delay_ms=300)
        h = self.harrow(config_xml(
            [farm_xml("f", [("127.0.0.1", a.port, 1), ("127.0.0.2", b.port, 1)],
                      extra='<healthCheck maxLiveTrafficFailures="2"/>')],
            [rule_xml("r", "f")]), workers=1)
        self.assertEqual(healthy_servers(h), [1, 1])
        # Few descriptors left: the 60 clients take most, their upstream sockets do not fit.
        soft, hard = resource.prlimit(h.proc.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(h.proc.pid, resource.RLIMIT_NOFILE, (96, hard))
        socks = [socket.create_connection(("127.0.0.1", h.port), timeout=20) for _ in range(60)]
        try:
            for s in socks:
                s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            statuses = []
            for s in socks:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                statuses.append(int(data.split()[1]) if data else 0)
        finally:
            for s in socks:
                s.close()
        self.assertIn(200, statuses)
        self.assertIn(502, statuses)  # the limit was reached: some got no server connection
        self.assertIn("EMFILE", h.stderr())
        # The prober folds live-traffic failures in as soon as a worker reports one: none came.
        time.sleep(0.5)
        self.assertEqual(healthy_servers(h), [1, 1])
        self.assertNotIn("live-traffic failures", h.stderr())
        # Once the burst is over, requests are served again.
        resource.prlimit(h.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
        wait_for(lambda: self._ok(h), 10, "a request served after the burst")

    @staticmethod
    def _ok(h):
        s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
        finally:
            s.close()


if __name__ == "__main__":
    import unittest
    unittest.main()

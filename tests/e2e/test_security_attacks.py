"""End-to-end: attacks from outside the other security suites, each sent raw on loopback.

- Host is uri-host [":" port] (RFC 3986 §3.2.2-3): a port that is not digits, two ports, an
  unclosed IPv6 literal, a list (',') or percent-escapes are a malformed Host, 400 bad_host
  (RFC 9112 §3.2).
- An overlong UTF-8 form of '.' or '/' (%c0%ae, %e0%80%ae, %c0%af) is not UTF-8 (RFC 3629 §3):
  400, never judged as opaque bytes and then decoded by the origin as a dot segment.
- A 1xx response has no body (RFC 9112 §6.3): bytes after its head are the next response, never
  passed to the client as a body; more than 10 interim responses are a 502.
- A control byte in the server's own status reason or fields is the server's invalid response
  (502 upstream_invalid_response), not a rule's unsafe rewrite.
- The admin API refuses a second line of a field it judges, also after an empty first one.
Plus request smuggling, Host and path variants that were already refused or proxied as they
should be, kept as regression cases.
"""
import re
import socket

from harness import HarrowTestCase, config_xml, farm_xml, request, rule_xml
from test_hardening import OK2, RawOrigin, exchange, read_all

H = b"Host: t\r\n"
C = b"Connection: close\r\n"

# (name, request bytes, status, reason token): refused before anything reaches the origin.
ATTACKS_REJECTED = [
    # Host (RFC 9112 §3.2, RFC 3986 §3.2.2-3)
    ("host_port_not_digits", b"GET / HTTP/1.1\r\nHost: t:80x\r\n\r\n", 400, "bad_host"),
    ("host_two_ports", b"GET / HTTP/1.1\r\nHost: t:80:81\r\n\r\n", 400, "bad_host"),
    ("host_unclosed_ipv6", b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, "bad_host"),
    ("host_ipv6_junk_after", b"GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400, "bad_host"),
    ("host_list", b"GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", 400, "bad_host"),
    ("host_percent_crlf", b"GET / HTTP/1.1\r\nHost: t%0d%0a\r\n\r\n", 400, "bad_host"),
    ("host_port_too_long", b"GET / HTTP/1.1\r\nHost: t:000080\r\n\r\n", 400, "bad_host"),
    ("host_space_inside", b"GET / HTTP/1.1\r\nHost: t t\r\n\r\n", 400, "bad_host"),
    ("host_twice_other_case", b"GET / HTTP/1.1\r\nHost: t\r\nhOST: t\r\n\r\n", 400, "bad_host"),
    ("absolute_form_bad_port", b"GET http://t:8o/ HTTP/1.1\r\nHost: t\r\n\r\n", 400, "bad_request"),
    ("absolute_form_userinfo", b"GET http://a@t/ HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
    ("absolute_form_empty_authority", b"GET http:///admin HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
    ("absolute_form_backslash", b"GET http://t\\@evil/ HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
    # overlong UTF-8 and other spellings of '.' and '/'
    ("overlong_dot_2", b"GET /x/%c0%ae%c0%ae/admin HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
    ("overlong_dot_3", b"GET /x/%e0%80%ae%e0%80%ae/admin HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
    ("overlong_slash", b"GET /x%c0%af..%c0%afadmin HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
    ("overlong_slash_4", b"GET /x%f0%80%80%afadmin HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
    ("overlong_nul", b"GET /admin%c0%80 HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
    ("percent_u_escape", b"GET /x/%u002e%u002e/admin HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
    ("dot_dot_above_root", b"GET /%2e%2e/ok HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
    ("nul_decoded", b"GET /admin%00.jpg HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
    # framing
    ("te_chunked_chunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
     400, "bad_framing"),
    ("te_chunked_vertical_tab_after", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n",
     400, "bad_request"),
    ("te_form_feed", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: \x0cchunked\r\n\r\n0\r\n\r\n",
     400, "bad_request"),
    ("te_quoted", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n", 400, "bad_framing"),
    ("te_empty_with_cl", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: \r\nContent-Length: 3\r\n\r\nabc",
     400, "bad_framing"),
    ("te_identity_with_cl", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc",
     400, "bad_framing"),
    ("cl_hex", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nhello", 400, "bad_framing"),
    ("cl_empty", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: \r\n\r\nhello", 400, "bad_framing"),
    ("cl_u64_max_plus_one", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 18446744073709551616\r\n\r\nx",
     400, "bad_framing"),
    ("cl_obs_fold", b"POST / HTTP/1.1\r\n" + H + b"Content-Length:\r\n 5\r\n\r\nhello", 400, "bad_request"),
    ("cl_nul", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\x00\r\n\r\nhello", 400, "bad_request"),
    ("nul_in_name", b"GET / HTTP/1.1\r\n" + H + b"X-\x00A: b\r\n\r\n", 400, "bad_request"),
    ("http09_simple_request", b"GET /\r\n\r\n", 400, "bad_request"),
    ("http10_te_chunked", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad_framing"),
    ("header_line_100k", b"GET / HTTP/1.1\r\n" + H + b"X-A: " + b"a" * 100000 + b"\r\n\r\n",
     431, "request_header_too_large"),
    ("header_name_100k", b"GET / HTTP/1.1\r\n" + H + b"X" * 100000 + b": a\r\n\r\n", 431, "request_header_too_large"),
    ("header_fields_5000", b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(5000)) + b"\r\n",
     431, "request_header_too_large"),
]

# Near misses that are proxied, each with the request line the origin must receive.
ATTACKS_ACCEPTED = [
    ("host_ipv6_literal", b"GET /ok HTTP/1.1\r\nHost: [::1]:80\r\n" + C + b"\r\n", b"GET /ok HTTP/1.1"),
    ("host_empty_port", b"GET /ok HTTP/1.1\r\nHost: t:\r\n" + C + b"\r\n", b"GET /ok HTTP/1.1"),
    ("host_whitespace_around", b"GET /ok HTTP/1.1\r\nHost: \t t \t\r\n" + C + b"\r\n", b"GET /ok HTTP/1.1"),
    ("absolute_form_without_path", b"GET http://t HTTP/1.1\r\n" + H + C + b"\r\n", b"GET / HTTP/1.1"),
    ("absolute_form_query_only", b"GET http://t?x=1 HTTP/1.1\r\n" + H + C + b"\r\n", b"GET /?x=1 HTTP/1.1"),
    ("encoded_question_mark", b"GET /ok%3fx HTTP/1.1\r\n" + H + C + b"\r\n", b"GET /ok%3Fx HTTP/1.1"),
    ("encoded_hash", b"GET /ok%23x HTTP/1.1\r\n" + H + C + b"\r\n", b"GET /ok%23x HTTP/1.1"),
    ("path_parameter", b"GET /ok;x=1 HTTP/1.1\r\n" + H + C + b"\r\n", b"GET /ok;x=1 HTTP/1.1"),
    ("latin1_byte_is_not_overlong", b"GET /caf%e9 HTTP/1.1\r\n" + H + C + b"\r\n", b"GET /caf%E9 HTTP/1.1"),
    ("utf8_two_bytes", b"GET /caf%c3%a9 HTTP/1.1\r\n" + H + C + b"\r\n", b"GET /caf%C3%A9 HTTP/1.1"),
    ("get_with_body", b"GET /ok HTTP/1.1\r\n" + H + C + b"Content-Length: 5\r\n\r\nhello", b"GET /ok HTTP/1.1"),
    ("expect_100_continue_with_body", b"POST /ok HTTP/1.1\r\n" + H + C + b"Expect: 100-continue\r\n"
     b"Content-Length: 5\r\n\r\nhello", b"POST /ok HTTP/1.1"),
    # Last: the scripted origin does not read a chunked body, so its connection ends here.
    ("te_chunked_trailing_space", b"POST /ok HTTP/1.1\r\n" + H + C + b"Transfer-Encoding: chunked \r\n\r\n0\r\n\r\n",
     b"POST /ok HTTP/1.1"),
]

GET = b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n"

class Script(dict):
    """Answers OK2 to any path it does not name."""

    def __missing__(self, path):
        return (OK2, "keep")


# Server answers (path: (bytes, then)): the table make_seeds.py also reads for corpus/response.
SCRIPT = Script({
    "/ok": (OK2, "keep"),
    # A 1xx with framing fields: what follows the head is the next response, not a body.
    "/interim-length": (b"HTTP/1.1 199 Odd\r\nContent-Length: 14\r\n\r\nHTTP/1.1 200 OK\r\n"
                        b"Content-Length: 6\r\n\r\nserved" + OK2, "keep"),
    "/interim-chunked": (b"HTTP/1.1 150 Odd\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nforged\r\n0\r\n\r\n" + OK2,
                         "keep"),
    "/continue-length": (b"HTTP/1.1 100 Continue\r\nContent-Length: 6\r\n\r\nforged" + OK2, "keep"),
    "/interim-flood": (b"HTTP/1.1 100 Continue\r\n\r\n" * 2000 + OK2, "keep"),
    "/interim-ten": (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" * 10 + OK2, "keep"),
    "/reason-control": (b"HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok", "keep"),
    "/name-with-space": (b"HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 2\r\n\r\nok", "keep"),
    "/cl-twice-same": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", "keep"),
    "/cl-plus": (b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", "keep"),
    "/cl-list": (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", "keep"),
    "/te-xchunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\nContent-Length: 2\r\n\r\nok", "keep"),
    "/unasked-101": (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged", "keep"),
    "/head-chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nforged\r\n0\r\n\r\n", "keep"),
})


def statuses(data):
    return re.findall(rb"HTTP/1\.1 (\d\d\d) ", data)


class AttackTestCase(HarrowTestCase):
    def start(self):
        self.raw = RawOrigin(SCRIPT)
        self.addCleanup(self.raw.stop)
        deny = ('<rule name="deny-admin" stopProcessing="true"><match url="^admin(/|$)"/>'
                '<action type="CustomResponse" statusCode="403" statusReason="Forbidden"'
                ' statusDescription="denied"/></rule>')
        self.h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", self.raw.port, 1)])],
                                        [deny, rule_xml("r", "f")]))
        return self.h

    def pipelined(self, first, method=b"GET"):
        """`first`, then GET /ok on the same connection; returns the bytes the client read."""
        s = socket.create_connection(("127.0.0.1", self.h.port), timeout=10)
        s.sendall(method + b" " + first + b" HTTP/1.1\r\n" + H + b"\r\n"
                  b"GET /ok HTTP/1.1\r\n" + H + C + b"\r\n")
        out = read_all(s)
        s.close()
        return out


class RequestAttacks(AttackTestCase):
    def test_refused_requests_never_reach_the_origin(self):
        h = self.start()
        for name, data, status, token in ATTACKS_REJECTED:
            with self.subTest(case=name):
                before = len(self.raw.requests)
                out, closed = exchange(h.port, data + GET % b"/ok?smuggled")
                self.assertEqual(statuses(out), [str(status).encode()], (name, out[:300]))
                self.assertIn(b"(" + token.encode() + b")", out)
                self.assertTrue(closed, name)
                self.assertEqual(self.raw.requests[before:], [], name)
        self.assertNotIn("/ok?smuggled", self.raw.paths())
        for token in {c[3] for c in ATTACKS_REJECTED}:
            self.assertRegex(h.stderr(), rf" \d\d\d {token} .*detail=")

    def test_near_misses_are_proxied_as_judged(self):
        h = self.start()
        for name, data, line in ATTACKS_ACCEPTED:
            with self.subTest(case=name):
                before = len(self.raw.requests)
                out, closed = exchange(h.port, data)
                self.assertEqual(statuses(out), [b"200"], (name, out[:300]))
                heads = [head for _, head in self.raw.requests[before:]]
                self.assertEqual(len(heads), 1, heads)
                self.assertEqual(heads[0].split(b"\r\n")[0], line)

    def test_a_request_after_a_refused_one_is_never_read(self):
        h = self.start()
        out, closed = exchange(h.port, b"GET / HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n" + GET % b"/ok?smuggled")
        self.assertEqual(statuses(out), [b"400"])
        self.assertTrue(closed)
        self.assertEqual(self.raw.requests, [])


class InterimResponses(AttackTestCase):
    def test_an_interim_head_carries_no_body(self):
        self.start()
        for path in (b"/interim-chunked", b"/continue-length"):
            with self.subTest(path=path):
                out = self.pipelined(path)
                self.assertNotIn(b"forged", out)
                # The interim head went out alone; the bytes after it were no response: 502.
                self.assertEqual(statuses(out)[1:2], [b"502"], out)
                self.assertIn(b"upstream_invalid_response", out)
                self.assertTrue(out.endswith(b"\r\n\r\nok"), out[-40:])
        out = self.pipelined(b"/interim-length")
        self.assertEqual(statuses(out), [b"199", b"200", b"200"], out)
        interim = out.split(b"\r\n\r\n", 1)[0]
        self.assertNotIn(b"content-length", interim.lower())
        self.assertIn(b"\r\n\r\nserved", out)
        # The surplus OK2 after that answer was not read as the next request's response, and
        # that connection did not go back to the pool.
        self.assertEqual(out.count(b"\r\n\r\nok"), 1)

    def test_an_interim_flood_is_an_invalid_response(self):
        h = self.start()
        out = self.pipelined(b"/interim-flood")
        self.assertLessEqual(out.count(b" 100 Continue"), 10)
        self.assertIn(b"502", statuses(out))
        self.assertIn(b"upstream_invalid_response", out)
        self.assertTrue(out.endswith(b"\r\n\r\nok"), out[-40:])
        # Ten are a normal exchange.
        out = self.pipelined(b"/interim-ten")
        self.assertEqual(statuses(out), [b"103"] * 10 + [b"200", b"200"])
        self.assertEqual(request(h.port, path="/ok")[2], b"ok")


class InvalidServerResponses(AttackTestCase):
    def test_server_bytes_that_cannot_be_forwarded_are_a_502(self):
        h = self.start()
        for path in (b"/reason-control", b"/name-with-space", b"/cl-twice-same", b"/cl-plus",
                     b"/cl-list", b"/te-xchunked", b"/unasked-101"):
            with self.subTest(path=path):
                out = self.pipelined(path)
                self.assertEqual(statuses(out), [b"502", b"200"], out[:300])
                self.assertIn(b"(upstream_invalid_response)", out)
                self.assertNotIn(b"forged", out)
                self.assertNotIn(b"\x01", out)
        self.assertNotIn("unsafe_rewrite", h.stderr())

    def test_head_response_with_a_chunked_body_is_not_forwarded(self):
        self.start()
        out = self.pipelined(b"/head-chunked", method=b"HEAD")
        self.assertEqual(statuses(out), [b"200", b"200"], out)
        self.assertNotIn(b"forged", out)


UPGRADE = (b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n")
SMUGGLED = b"GET /smuggled HTTP/1.1\r\n" + H + b"\r\n"


class UpgradeSmuggling(AttackTestCase):
    def test_bytes_after_an_upgrade_the_server_did_not_accept_are_never_a_request(self):
        h = self.start()
        for name, head in [
                ("websocket", b"GET /ok HTTP/1.1\r\n" + H + UPGRADE),
                ("websocket_http10", b"GET /ok HTTP/1.0\r\n" + UPGRADE),
                ("websocket_with_body", b"GET /ok HTTP/1.1\r\n" + H + UPGRADE + b"Content-Length: 0\r\n"),
                ("h2c", b"GET /ok HTTP/1.1\r\n" + H + b"Connection: Upgrade\r\nUpgrade: h2c\r\n"),
                ("connection_list", b"GET /ok HTTP/1.1\r\n" + H + b"Connection: keep-alive, Upgrade\r\n"
                 b"Upgrade: WebSocket\r\n")]:
            with self.subTest(case=name):
                out, closed = exchange(h.port, head + b"\r\n" + SMUGGLED)
                self.assertEqual(statuses(out), [b"200"], out[:300])
                self.assertTrue(closed)
        self.assertNotIn("/smuggled", self.raw.paths())


# (name, extra header lines, status) for POST …/state with a valid Host; refused unless 200.
ADMIN_CASES = [
    ("admin_header", b"X-Harrow-Admin: 1\r\n", 200),
    ("admin_header_after_an_empty_one", b"X-Harrow-Admin:\r\nX-Harrow-Admin: 1\r\n", 403),
    ("admin_header_twice", b"X-Harrow-Admin: 1\r\nX-Harrow-Admin: 1\r\n", 403),
    ("content_type_after_an_empty_one", b"Content-Type:\r\nContent-Type: application/json\r\n", 403),
    ("content_type_list", b"Content-Type: text/plain, application/json\r\n", 403),
    ("content_type_twice", b"Content-Type: text/plain\r\nContent-Type: application/json\r\n", 403),
    ("origin_after_an_empty_one", b"X-Harrow-Admin: 1\r\nOrigin:\r\nOrigin: http://evil.example\r\n", 403),
    ("origin_null", b"X-Harrow-Admin: 1\r\nOrigin: null\r\n", 403),
    ("underscore_twin", b"X_Harrow_Admin: 1\r\n", 403),
]

ADMIN_HOSTS = [  # (Host line, status) with X-Harrow-Admin: 1
    (b"Host: 127.0.0.1:{port}.evil.example\r\n", 403),
    (b"Host: localhost.:{port}\r\n", 403),
    (b"Host: LOCALHOST:{port}\r\n", 200),
    (b"Host: 127.0.0.1\r\n", 403),
    (b"Host: 127.0.0.1:0{port}\r\n", 403),
    (b"Host:\r\nHost: 127.0.0.1:{port}\r\n", 403),
    (b"", 403),
]


class AdminAttacks(HarrowTestCase):
    def setUp(self):
        super().setUp()
        self.o = self.origin("o")
        self.h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", self.o.port, 1)])],
                                        [rule_xml("r", "f")]))

    def post(self, fields, version=b"HTTP/1.1"):
        data = (b"POST /api/farms/f/servers/127.0.0.1/state " + version + b"\r\n" + fields +
                b"Content-Length: 5\r\n\r\nstart")
        out, _ = exchange(self.h.admin_port, data)
        return int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.1 ") else None

    def test_repeated_or_listed_fields_are_refused(self):
        host = b"Host: 127.0.0.1:%d\r\n" % self.h.admin_port
        for name, extra, status in ADMIN_CASES:
            with self.subTest(case=name):
                self.assertEqual(self.post(host + extra), status)

    def test_host_tricks_are_refused(self):
        for line, status in ADMIN_HOSTS:
            line = line.replace(b"{port}", str(self.h.admin_port).encode())
            with self.subTest(host=line):
                self.assertEqual(self.post(line + b"X-Harrow-Admin: 1\r\n"), status)
        self.assertEqual(self.post(b"X-Harrow-Admin: 1\r\n", version=b"HTTP/1.0"), 403)

    def test_method_tricks_change_nothing(self):
        port = self.h.admin_port
        host = b"Host: 127.0.0.1:%d\r\nX-Harrow-Admin: 1\r\n" % port
        for method, status in ((b"HEAD", b"405"), (b"GET", b"405"), (b"PUT", b"405"), (b"post", b"400")):
            with self.subTest(method=method):
                out, _ = exchange(port, method + b" /api/farms/f/servers/127.0.0.1/state HTTP/1.1\r\n" +
                                  host + b"\r\n")
                self.assertTrue(out.startswith(b"HTTP/1.1 " + status), out[:100])
        _, farms = self.h.admin_get("/api/farms")
        self.assertNotIn("drain", farms.lower())


if __name__ == "__main__":
    import unittest
    unittest.main()

"""End-to-end: HTTP/1.1 hardening. A table of raw requests, each sent on its own connection:
what the client gets back (status, reason token, the connection closed when framing is in
doubt) and what the origin received (nothing, for a refused request).

Cases come from RFC 9112 (§2.2 line endings, §3 request line, §5 field syntax, §6.1/§6.3 message
body length, §7.1 chunked coding, §11.2 request smuggling), RFC 9110 (Host, methods) and public
desync research: llhttp CVE-2022-32213/32214/32215, CVE-2022-35256, CVE-2023-30589 and the
classic CL.TE / TE.CL / TE.TE variants.
"""
import re
import select
import socket
import threading
import time

from harness import (HarrowTestCase, config_xml, dead_port, decode_chunked, farm_xml, request, rule_xml,
                     wait_for)

BODY_LIMIT = 100000  # maxAllowedContentLength for this suite (IIS requestLimits element)

H = b"Host: t\r\n"


def chunked(*parts):
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def post_chunked(body, extra=b""):
    return b"POST / HTTP/1.1\r\n" + H + extra + b"Transfer-Encoding: chunked\r\n\r\n" + body


# (name, request bytes, expected status, expected reason token, where it is refused)
# where: "head" = nothing of the request may reach the origin (no connection either);
#        "body" = the head was forwarded, the origin must never see a complete request.
REJECTED = [
    # --- Content-Length / Transfer-Encoding (RFC 9112 §6.1, §6.3; §11.2 CL.TE and TE.CL)
    ("cl_then_te", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     400, "bad_framing", "head"),
    ("te_then_cl", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
     400, "bad_framing", "head"),
    ("cl_duplicate_same", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
     400, "bad_framing", "head"),
    ("cl_duplicate_differ", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0\r\nContent-Length: 5\r\n\r\nhello",
     400, "bad_framing", "head"),
    ("cl_list", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello", 400, "bad_framing", "head"),
    ("cl_plus_sign", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", 400, "bad_framing", "head"),
    ("cl_negative", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\nhello", 400, "bad_framing", "head"),
    ("cl_inner_space", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1 0\r\n\r\nhello", 400, "bad_framing", "head"),
    ("cl_overflow", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999\r\n\r\nx",
     400, "bad_framing", "head"),
    ("te_gzip_only", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 400, "bad_framing", "head"),
    ("te_gzip_then_chunked", post_chunked(b"0\r\n\r\n").replace(b"chunked\r\n\r\n", b"gzip, chunked\r\n\r\n"),
     400, "bad_framing", "head"),
    ("te_chunked_then_gzip", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n",
     400, "bad_framing", "head"),
    ("te_twice", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     400, "bad_framing", "head"),
    ("te_chunked_then_identity", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", 400, "bad_framing", "head"),
    ("te_xchunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n", 400, "bad_framing", "head"),
    ("te_vertical_tab_CVE_2022_32213", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n",
     400, "bad_request", "head"),
    ("te_on_http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad_framing", "head"),
    ("te_on_http10_with_cl", b"POST / HTTP/1.0\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     400, "bad_framing", "head"),
    ("te_obs_fold_CVE_2022_32215", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n , identity\r\n\r\n0\r\n\r\n",
     400, "bad_request", "head"),
    ("te_space_before_colon", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc",
     400, "bad_request", "head"),
    # --- chunked coding (RFC 9112 §7.1)
    ("chunk_size_not_hex", post_chunked(b"zz\r\nab\r\n0\r\n\r\n"), 400, "bad_framing", "body"),
    ("chunk_size_negative", post_chunked(b"-1\r\na\r\n0\r\n\r\n"), 400, "bad_framing", "body"),
    ("chunk_size_0x_prefix", post_chunked(b"0x1\r\na\r\n0\r\n\r\n"), 400, "bad_framing", "body"),
    ("chunk_size_overflow", post_chunked(b"ffffffffffffffffff\r\na\r\n0\r\n\r\n"), 400, "bad_framing", "body"),
    ("chunk_size_leading_zeros_oversize", post_chunked(b"0" * 2000 + b"1\r\na\r\n0\r\n\r\n"),
     400, "bad_framing", "body"),
    ("chunk_size_trailing_space", post_chunked(b"1 \r\na\r\n0\r\n\r\n"), 400, "bad_framing", "body"),
    ("chunk_size_bare_lf", post_chunked(b"1\na\r\n0\r\n\r\n"), 400, "bad_framing", "body"),
    ("chunk_size_bare_cr", post_chunked(b"1\ra\r\n0\r\n\r\n"), 400, "bad_framing", "body"),
    ("chunk_ext_bare_lf", post_chunked(b"1;a=b\nx\r\nx\r\n0\r\n\r\n"), 400, "bad_framing", "body"),
    ("chunk_ext_bare_cr", post_chunked(b"1;a=b\rx\r\nx\r\n0\r\n\r\n"), 400, "bad_framing", "body"),
    ("chunk_ext_nul", post_chunked(b"1;a=\x00\r\nx\r\n0\r\n\r\n"), 400, "bad_framing", "body"),
    ("chunk_ext_oversize", post_chunked(b"1;a=" + b"b" * 2000 + b"\r\nx\r\n0\r\n\r\n"), 400, "bad_framing", "body"),
    ("chunk_data_longer_than_size", post_chunked(b"1\r\nxyz\r\n0\r\n\r\n"), 400, "bad_framing", "body"),
    ("chunk_data_bare_lf", post_chunked(b"1\r\nx\n0\r\n\r\n"), 400, "bad_framing", "body"),
    ("last_chunk_bare_lf_end", post_chunked(b"0\r\n\n"), 400, "bad_framing", "body"),
    ("trailer_bare_lf", post_chunked(b"0\r\nX-T: 1\n\r\n"), 400, "bad_framing", "body"),
    ("trailer_obs_fold", post_chunked(b"0\r\nX-T: 1\r\n 2\r\n\r\n"), 400, "bad_framing", "body"),
    # --- field syntax (RFC 9112 §2.2, §5)
    ("obs_fold", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n", 400, "bad_request", "head"),
    ("obs_fold_tab", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n\tc\r\n\r\n", 400, "bad_request", "head"),
    ("space_before_colon", b"GET / HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n", 400, "bad_request", "head"),
    ("tab_before_colon", b"GET / HTTP/1.1\r\n" + H + b"X-A\t: b\r\n\r\n", 400, "bad_request", "head"),
    ("space_before_first_field", b"GET / HTTP/1.1\r\n Host: t\r\n\r\n", 400, "bad_request", "head"),
    ("bare_cr_in_value_CVE_2022_32214", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\rX-B: c\r\n\r\n", 400, "bad_request", "head"),
    ("bare_cr_line_end_CVE_2023_30589", b"GET / HTTP/1.1\r\nHost: t\rContent-Length: 5\r\n\r\nhello",
     400, "bad_request", "head"),
    ("bare_lf_everywhere", b"GET / HTTP/1.1\nHost: t\nX-A: b\n\n", 400, "bad_request", "head"),
    ("bare_lf_one_field", b"GET / HTTP/1.1\r\nHost: t\nX-A: b\r\n\r\n", 400, "bad_request", "head"),
    ("bare_lf_end_of_head", b"GET / HTTP/1.1\r\nHost: t\r\n\n", 400, "bad_request", "head"),
    ("bare_cr_end_of_head_CVE_2022_35256", b"GET / HTTP/1.1\r\nHost: t\r\n\rX", 400, "bad_request", "head"),
    ("nul_in_value", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\x00c\r\n\r\n", 400, "bad_request", "head"),
    ("ctl_in_value", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\x01c\r\n\r\n", 400, "bad_request", "head"),
    ("del_in_value", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\x7fc\r\n\r\n", 400, "bad_request", "head"),
    ("escape_in_value", b"GET / HTTP/1.1\r\n" + H + b"X-A: \x1b[31m\r\n\r\n", 400, "bad_request", "head"),
    ("invalid_name_char", b"GET / HTTP/1.1\r\n" + H + b"X[A]: b\r\n\r\n", 400, "bad_request", "head"),
    ("non_ascii_name", b"GET / HTTP/1.1\r\n" + H + b"X-\xc3\xa9: b\r\n\r\n", 400, "bad_request", "head"),
    ("empty_name", b"GET / HTTP/1.1\r\n" + H + b": b\r\n\r\n", 400, "bad_request", "head"),
    ("name_without_colon", b"GET / HTTP/1.1\r\n" + H + b"Bad Header\r\n\r\n", 400, "bad_request", "head"),
    # --- request line (RFC 9112 §3)
    ("invalid_method_char", b"G@T / HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request", "head"),
    ("lowercase_method", b"get / HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request", "head"),
    ("unknown_method", b"FOO / HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request", "head"),
    ("double_space_request_line", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request", "head"),
    ("tab_in_target", b"GET /\ta HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request", "head"),
    ("ctl_in_target", b"GET /\x01 HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request", "head"),
    ("nul_in_target", b"GET /\x00 HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request", "head"),
    ("non_ascii_target", b"GET /\xe9 HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request", "head"),
    ("fragment_in_target", b"GET /a#b HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request", "head"),
    ("http09_request_line", b"GET /\r\n" + H + b"\r\n", 400, "bad_request", "head"),
    ("leading_bare_lf", b"\nGET / HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request", "head"),
    ("space_after_version", b"GET / HTTP/1.1 \r\n" + H + b"\r\n", 400, "bad_request", "head"),
    ("lowercase_version", b"GET / http/1.1\r\n" + H + b"\r\n", 400, "bad_request", "head"),
    ("version_two_digit_minor", b"GET / HTTP/1.10\r\n" + H + b"\r\n", 400, "bad_request", "head"),
    ("version_http2", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505, "http_version_not_supported", "head"),
    ("version_http12", b"GET / HTTP/1.2\r\n" + H + b"\r\n", 505, "http_version_not_supported", "head"),
    ("version_http09", b"GET / HTTP/0.9\r\n" + H + b"\r\n", 505, "http_version_not_supported", "head"),
    ("version_http3", b"GET / HTTP/3.0\r\n" + H + b"\r\n", 505, "http_version_not_supported", "head"),
    # --- request-target forms and Host (RFC 9112 §3.2, RFC 9110 §7.2)
    ("http11_without_host", b"GET / HTTP/1.1\r\n\r\n", 400, "bad_host", "head"),
    ("two_hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "bad_host", "head"),
    ("two_hosts_same", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "bad_host", "head"),
    ("host_with_userinfo", b"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400, "bad_host", "head"),
    ("host_with_slash", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "bad_host", "head"),
    ("empty_host_http11", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", 400, "bad_host", "head"),
    ("absolute_form_host_mismatch", b"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", 400, "bad_host", "head"),
    ("absolute_form_userinfo", b"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_request", "head"),
    ("absolute_form_other_scheme", b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_request", "head"),
    ("relative_target", b"GET a/b HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request", "head"),
    ("asterisk_with_get", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request", "head"),
    # --- methods
    ("connect", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405, "method_not_allowed", "head"),
    ("trace", b"TRACE / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", 405, "method_not_allowed", "head"),
    # --- limits
    ("request_line_too_long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n",
     414, "request_line_too_large", "head"),
    ("header_section_too_large", b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n",
     431, "request_header_too_large", "head"),
    ("too_many_header_fields", b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n",
     431, "request_header_too_large", "head"),
    ("content_length_above_limit", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % (BODY_LIMIT + 1),
     413, "request_body_too_large", "head"),
    ("chunked_body_above_limit", post_chunked(chunked(b"x" * 60000, b"y" * 60000)), 413, "request_body_too_large", "body"),
]

# Near misses that must still be proxied (each closes its connection with Connection: close).
ACCEPTED = [
    ("plain_get", b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"),
    ("chunked_with_extension_and_trailer",
     post_chunked(b"3;name=value\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n", b"Connection: close\r\n")),
    ("te_with_tab_ows", b"POST / HTTP/1.1\r\n" + H + b"Connection: close\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n"),
    ("te_chunked_uppercase", b"POST / HTTP/1.1\r\n" + H + b"Connection: close\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n"),
    ("content_length_leading_zeros", b"POST / HTTP/1.1\r\n" + H + b"Connection: close\r\nContent-Length: 003\r\n\r\nabc"),
    ("http10_without_host", b"GET / HTTP/1.0\r\n\r\n"),
    ("one_leading_empty_line", b"\r\nGET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"),
    ("obs_text_in_value", b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\nX-A: caf\xc3\xa9\r\n\r\n"),
    ("tab_in_value", b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\nX-A: a\tb\r\n\r\n"),
    ("header_fields_at_limit", b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n" +
     b"".join(b"X-%d: v\r\n" % i for i in range(98)) + b"\r\n"),
    ("body_at_limit", b"POST / HTTP/1.1\r\n" + H + b"Connection: close\r\nContent-Length: %d\r\n\r\n" % BODY_LIMIT
     + b"z" * BODY_LIMIT),
]


def exchange(port, data, timeout=10):
    """Sends `data`, reads until the peer closes. Returns (bytes, closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
    except OSError:
        pass  # Harrow may answer and close before taking everything
    chunks, closed = [], False
    try:
        while True:
            b = s.recv(65536)
            if not b:
                closed = True
                break
            chunks.append(b)
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    s.close()
    return b"".join(chunks), closed


class RequestValidation(HarrowTestCase):
    def setUp(self):
        super().setUp()
        self.o = self.origin("o")
        text = config_xml([farm_xml("f", [("127.0.0.1", self.o.port, 1)])], [rule_xml("r", "f")])
        text = text.replace(
            "<system.webServer>",
            "<system.webServer><security><requestFiltering>"
            f'<requestLimits maxAllowedContentLength="{BODY_LIMIT}"/>'
            "</requestFiltering></security>")
        self.h = self.harrow(text)

    def test_rejected_requests_never_reach_the_origin(self):
        self.assertGreaterEqual(len(REJECTED), 80)
        for name, data, status, reason, where in REJECTED:
            with self.subTest(case=name):
                before = self.o.stats()
                out, closed = exchange(self.h.port, data)
                status_line = out.split(b"\r\n", 1)[0]
                self.assertTrue(status_line.startswith(b"HTTP/1.1 %d " % status), (name, out[:200]))
                self.assertIn(b"(" + reason.encode() + b")", out, name)
                self.assertEqual(out.count(b"HTTP/1.1 "), 1, (name, out[:300]))
                if status != 405:
                    self.assertTrue(closed, f"{name}: connection left open")
                    self.assertIn(b"connection: close", out.lower(), name)
                after = self.o.stats()
                # Only the stats request itself reaches the origin.
                self.assertEqual(after["requests"], before["requests"], f"{name} reached the origin")
                if where == "head":
                    self.assertEqual(after["connections_accepted"], before["connections_accepted"] + 1,
                                     f"{name}: Harrow connected upstream")
        _, metrics = self.h.admin_get("/metrics")
        for reason in {r[3] for r in REJECTED}:
            self.assertRegex(metrics, rf'harrow_request_failures_total{{reason="{reason}"}} [1-9]')
        log = self.h.stderr()
        for reason in {r[3] for r in REJECTED}:
            self.assertRegex(log, rf" \d\d\d {reason} .*detail=", reason)

    def test_near_misses_are_proxied(self):
        for name, data in ACCEPTED:
            with self.subTest(case=name):
                before = self.o.stats()["requests"]
                out, closed = exchange(self.h.port, data)
                self.assertTrue(out.startswith(b"HTTP/1.1 200 "), (name, out[:200]))
                self.assertTrue(closed, name)
                self.assertEqual(self.o.stats()["requests"], before + 1, name)

    def test_trailers_are_dropped_and_body_reframed(self):
        body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n"
        out, _ = exchange(self.h.port, b"POST /?echo=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                                       b"Transfer-Encoding: chunked\r\n\r\n" + body)
        head, _, rest = out.partition(b"\r\n\r\n")
        self.assertIn(b" 200 ", head.split(b"\r\n")[0])
        self.assertEqual(decode_chunked(rest), b"hello world")

    def test_pipelined_request_after_a_refused_one_is_not_read(self):
        # CL.TE smuggling attempt: the "body" would be a second request if the framing were
        # guessed; Harrow refuses the first and reads nothing after it.
        before = self.o.stats()["requests"]
        data = (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n")
        out, closed = exchange(self.h.port, data)
        self.assertTrue(out.startswith(b"HTTP/1.1 400"), out[:100])
        self.assertEqual(out.count(b"HTTP/1.1"), 1)
        self.assertTrue(closed)
        self.assertEqual(self.o.stats()["requests"], before)

    def test_valid_pipeline_then_bad_request_answers_the_good_ones_first(self):
        before = self.o.stats()["requests"]
        data = (b"GET /?delay=50 HTTP/1.1\r\nHost: t\r\n\r\n"
                b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
                b"GET / HTTP/1.1\r\nHost: t\r\nX-A : b\r\n\r\n")
        out, closed = exchange(self.h.port, data)
        statuses = re.findall(rb"HTTP/1\.1 (\d\d\d) ", out)
        self.assertEqual(statuses, [b"200", b"200", b"400"])
        self.assertTrue(closed)
        self.assertEqual(self.o.stats()["requests"], before + 2)

    def test_trace_allowed_when_configured(self):
        text = config_xml([farm_xml("f", [("127.0.0.1", self.o.port, 1)])], [rule_xml("r", "f")],
                          harrow='<limits allowTrace="true"/>')
        h2 = self.harrow(text)
        out, _ = exchange(h2.port, b"TRACE / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out[:100])

    def test_limits_are_configurable(self):
        text = config_xml([farm_xml("f", [("127.0.0.1", self.o.port, 1)])], [rule_xml("r", "f")],
                          harrow='<limits maxRequestLine="100" maxRequestHeaderBytes="300" '
                                 'maxRequestHeaders="3" maxAllowedContentLength="10"/>')
        h2 = self.harrow(text)
        cases = [
            (b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
            (b"GET / HTTP/1.1\r\nHost: t\r\nX-A: " + b"a" * 300 + b"\r\n\r\n", 431),
            (b"GET / HTTP/1.1\r\nHost: t\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431),
            (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n", 413),
            (post_chunked(chunked(b"x" * 6, b"y" * 5)), 413),
            (b"GET /" + b"a" * 60 + b" HTTP/1.1\r\nHost: t\r\nA: 1\r\nConnection: close\r\n\r\n", 200),
            (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789", 200),
        ]
        for data, status in cases:
            out, _ = exchange(h2.port, data)
            self.assertTrue(out.startswith(b"HTTP/1.1 %d " % status), (data[:60], out[:100]))


def request_status(port):
    return request(port, timeout=10)[0]


def request_full(port):
    return request(port, timeout=30)


def read_status(sock):
    """Reads one response head from `sock`; returns its status (int) or None at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        b = sock.recv(4096)
        if not b:
            return None
        data += b
    return int(data.split(b" ", 2)[1])


class SlowClients(HarrowTestCase):
    def setUp(self):
        super().setUp()
        self.o = self.origin("o")

    def start(self, harrow_xml):
        text = config_xml([farm_xml("f", [("127.0.0.1", self.o.port, 1)])], [rule_xml("r", "f")],
                          harrow=harrow_xml)
        return self.harrow(text)

    def test_slowloris_trickling_head_gets_408(self):
        h = self.start('<timeouts clientHeader="00:00:01"/>')
        s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        start = time.monotonic()
        # One byte every 100 ms: the head never completes; the timeout counts from its start,
        # not from the last byte. Stop trickling as soon as Harrow answers.
        for b in b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200:
            if select.select([s], [], [], 0.1)[0] or time.monotonic() - start > 8:
                break
            s.sendall(bytes([b]))
        out = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
        s.close()
        self.assertTrue(out.startswith(b"HTTP/1.1 408"), out[:80])
        self.assertIn(b"client_header_timeout", out)
        self.assertLess(time.monotonic() - start, 8, "the trickle kept the connection open")

    def test_idle_keep_alive_connection_is_closed(self):
        h = self.start('<timeouts clientKeepAlive="00:00:01"/>')
        s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        self.assertEqual(read_status(s), 200)
        # Harrow closes the idle connection: the next read sees EOF well before our timeout.
        start = time.monotonic()
        rest = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
        s.close()
        self.assertLess(time.monotonic() - start, 9)

    def test_client_that_stops_reading_is_dropped(self):
        h = self.start('<timeouts clientSend="00:00:01"/>')
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.connect(("127.0.0.1", h.port))
        s.sendall(b"GET /?bytes=200000000 HTTP/1.1\r\nHost: t\r\n\r\n")
        # Never read. Harrow must give up on us and say why.
        wait_for(lambda: "client_send_timeout" in h.stderr(), 20, "the send timeout")
        s.close()
        _, metrics = h.admin_get("/metrics")
        self.assertRegex(metrics, r'harrow_request_failures_total{reason="client_send_timeout"} 1')
        self.assertNotIn("upstream_timeout", h.stderr())
        # The server was not at fault: nothing counted against it.
        self.assertNotRegex(metrics, r'harrow_server_live_failures_total{[^}]*} [1-9]')
        self.assertEqual(request_status(h.port), 200)

    def read_all(self, s):
        out = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return out
            out += chunk

    def test_stalled_body_gets_408_and_the_origin_connection_is_closed(self):
        # clientBody (1 s) is far below the farm's timeout (30 s): it alone governs the body.
        h = self.start('<timeouts clientBody="00:00:01"/>')
        s = socket.create_connection(("127.0.0.1", h.port), timeout=20)
        start = time.monotonic()
        s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        out = self.read_all(s)
        s.close()
        self.assertTrue(out.startswith(b"HTTP/1.1 408"), out[:80])
        self.assertIn(b"(client_body_timeout)", out)
        self.assertIn(b"connection: close", out.lower())
        self.assertLess(time.monotonic() - start, 8)
        wait_for(lambda: "408 client_body_timeout" in h.stderr(), 10, "the log line")
        _, metrics = h.admin_get("/metrics")
        self.assertRegex(metrics, r'harrow_request_failures_total{reason="client_body_timeout"} 1')
        self.assertNotRegex(metrics, r'harrow_request_failures_total{reason="upstream_timeout"} [1-9]')
        # The origin saw the head and part of the body: that connection is closed, not pooled.
        wait_for(lambda: self.o.stats()["connections_open"] == 1, 10, "the upstream connection to close")
        self.assertEqual(request_status(h.port), 200)

    def test_body_trickling_slower_than_the_timeout_gets_408(self):
        h = self.start('<timeouts clientBody="00:00:01"/>')
        s = socket.create_connection(("127.0.0.1", h.port), timeout=20)
        s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 20\r\n\r\n")
        start = time.monotonic()
        # A byte every 400 ms resets the idle timeout; the gap of 1.5 s after them does not.
        for _ in range(4):
            s.sendall(b"y")
            time.sleep(0.4)
        out = self.read_all(s)
        s.close()
        self.assertTrue(out.startswith(b"HTTP/1.1 408"), out[:80])
        self.assertGreater(time.monotonic() - start, 1.5)

    def test_body_trickling_within_the_timeout_is_served(self):
        h = self.start('<timeouts clientBody="00:00:01"/>')
        s = socket.create_connection(("127.0.0.1", h.port), timeout=20)
        s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 8\r\n\r\n")
        for _ in range(8):  # 8 bytes over ~2.4 s: slower overall than clientBody, never idle that long
            time.sleep(0.3)
            s.sendall(b"z")
        out = self.read_all(s)
        s.close()
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out[:80])
        self.assertIn(b"X-Origin-Request-Bytes: 8", out)

    def test_body_stalling_after_the_response_began_ends_the_connection(self):
        h = self.start('<timeouts clientBody="00:00:01"/>')
        s = socket.create_connection(("127.0.0.1", h.port), timeout=20)
        # echo=1: the origin answers at once and echoes the body as it arrives.
        s.sendall(b"POST /?echo=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + b"e" * 10)
        out = self.read_all(s)
        s.close()
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out[:80])
        self.assertTrue(out.endswith(b"e" * 10), out[-40:])  # no 408 appended: the head was out
        wait_for(lambda: "client_body_timeout" in h.stderr(), 10, "the log line")
        wait_for(lambda: self.o.stats()["connections_open"] == 1, 10, "the upstream connection to close")

    def test_connection_limit_answers_503_overloaded(self):
        h = self.start('<limits maxConnections="20"/>')
        held = [socket.create_connection(("127.0.0.1", h.port), timeout=10) for _ in range(20)]
        # The 20 held connections are accepted (answered when they ask).
        held[0].sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        self.assertEqual(read_status(held[0]), 200)
        extra = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        extra.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        out = b""
        while True:
            chunk = extra.recv(4096)
            if not chunk:
                break
            out += chunk
        extra.close()
        self.assertTrue(out.startswith(b"HTTP/1.1 503"), out[:80])
        self.assertIn(b"(overloaded)", out)
        wait_for(lambda: "503 overloaded" in h.stderr(), 10, "the overloaded log line")
        for s in held:
            s.close()
        # Below the limit again: served.
        wait_for(lambda: request_status(h.port) == 200, 10, "service after the held connections close")

    def test_per_client_ip_cap(self):
        h = self.start('<limits maxConnectionsPerClient="3"/>')
        held = [socket.create_connection(("127.0.0.1", h.port), timeout=10) for _ in range(3)]
        for s in held:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            self.assertEqual(read_status(s), 200)
        fourth = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        fourth.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        out = fourth.recv(4096)
        fourth.close()
        self.assertTrue(out.startswith(b"HTTP/1.1 503"), out[:80])
        self.assertIn(b"client_connection_limit", out)
        held[0].close()
        wait_for(lambda: request_status(h.port) == 200, 10, "a slot freed by a close")
        for s in held[1:]:
            s.close()

    def test_thousands_of_idle_and_trickling_connections_do_not_starve_a_client(self):
        h = self.start('<timeouts clientHeader="00:01:00"/>')
        idle, trickling = [], []
        try:
            for i in range(3000):
                s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
                (trickling if i % 2 else idle).append(s)
            answered = 0
            deadline = time.monotonic() + 60
            for round_ in range(20):
                # Each trickling connection sends one more byte of a head that never ends.
                for s in trickling:
                    s.send(b"GET / HTTP/1.1\r\nX-Slow: "[round_ % 24:round_ % 24 + 1] or b"a")
                status, _, body = request_full(h.port)
                self.assertEqual((status, body), (200, b"o\n"))
                answered += 1
                self.assertLess(time.monotonic(), deadline)
            self.assertEqual(answered, 20)
        finally:
            for s in idle + trickling:
                s.close()


class RawOrigin:
    """A scripted origin: answers each request with the exact bytes `script[path]` gives
    (bytes, or a list of byte strings sent with short pauses), then keeps the connection,
    closes it, or holds it without answering more. Records (connection number, request head)
    for every request it reads."""

    def __init__(self, script, host="127.0.0.1"):
        self.script = script
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.connections = 0
        self.running = True
        self.threads = []
        self.acceptor = threading.Thread(target=self.accept_loop, daemon=True)
        self.acceptor.start()

    def accept_loop(self):
        self.sock.settimeout(0.1)
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            t = threading.Thread(target=self.serve, args=(conn, self.connections), daemon=True)
            t.start()
            self.threads.append(t)

    def serve(self, conn, number):
        conn.settimeout(10)
        buf = b""
        try:
            while self.running:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                path = head.split(b" ")[1].decode()
                self.requests.append((number, head))
                answer, after = self.script[path.split("?")[0]]
                m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                need = int(m.group(1)) if m and after != "early" else 0
                while len(buf) < need:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                buf = buf[need:]
                for piece in (answer if isinstance(answer, list) else [answer]):
                    conn.sendall(piece)
                    time.sleep(0.05)
                if after in ("close", "early"):
                    conn.close()
                    return
                if after == "hold":
                    time.sleep(3)
                    conn.close()
                    return
        except OSError:
            pass
        finally:
            conn.close()

    def paths(self):
        return [head.split(b" ")[1].decode() for _, head in self.requests]

    def stop(self):
        self.running = False
        self.acceptor.join(2)
        self.sock.close()


def read_all(sock):
    out = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return out


OK2 = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class UpstreamFaults(HarrowTestCase):
    SCRIPT = {
        "/ok": (OK2, "keep"),
        "/204-with-body": (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", "keep"),
        "/304-with-body": (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello", "keep"),
        "/head-with-body": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "keep"),
        "/more-than-declared": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"
                                b"Content-Length: 6\r\n\r\nforged", "keep"),
        "/short-body": (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "close"),
        "/broken-chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n", "hold"),
        "/truncated-chunked": ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", b"9\r\nabc"],
                               "close"),
        "/interim": (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + OK2, "keep"),
        "/obs-fold": (b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok", "keep"),
        "/bare-lf": (b"HTTP/1.1 200 OK\nX-A: a\nContent-Length: 2\n\nok", "keep"),
        "/nul-in-value": (b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok", "keep"),
        "/cl-and-te": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "keep"),
        "/two-cl": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", "keep"),
        "/bad-status": (b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", "keep"),
        "/huge-head": (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\nContent-Length: 2\r\n\r\nok", "keep"),
        "/early": (b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno", "early"),
        "/refuse-expect": (b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno", "early"),
    }

    def setUp(self):
        super().setUp()
        self.raw = RawOrigin(self.SCRIPT)
        self.addCleanup(self.raw.stop)
        self.h = self.harrow(config_xml([farm_xml("f", [("127.0.0.1", self.raw.port, 1)])],
                                        [rule_xml("r", "f")]))

    def get(self, sock, path, method=b"GET", extra=b""):
        sock.sendall(method + b" " + path + b" HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n")

    def test_bodies_that_must_not_be_forwarded_and_connections_not_reused(self):
        for path, method in [(b"/204-with-body", b"GET"), (b"/304-with-body", b"GET"),
                             (b"/head-with-body", b"HEAD"), (b"/more-than-declared", b"GET")]:
            with self.subTest(path=path):
                conns_before = self.raw.connections
                s = socket.create_connection(("127.0.0.1", self.h.port), timeout=10)
                self.get(s, path, method)
                self.get(s, b"/ok", extra=b"Connection: close\r\n")
                out = read_all(s)
                s.close()
                statuses = re.findall(rb"HTTP/1\.1 (\d\d\d) ", out)
                self.assertEqual(len(statuses), 2, out)
                self.assertNotIn(b"hello", out)
                self.assertNotIn(b"forged", out)
                self.assertTrue(out.endswith(b"\r\n\r\nok"), out[-60:])
                # The connection with surplus bytes was closed, not pooled: nothing else goes
                # over it.
                index = len(self.raw.requests) - 2
                bad_conn, bad_head = self.raw.requests[index]
                self.assertIn(path, bad_head)
                for _ in range(3):
                    self.assertEqual(request(self.h.port, path="/ok")[2], b"ok")
                later = [n for n, _ in self.raw.requests[index + 1:]]
                self.assertEqual(len(later), 4)
                self.assertNotIn(bad_conn, later, path)
                self.assertGreater(self.raw.connections, conns_before)

    def test_invalid_response_heads_give_502(self):
        for path in [b"/bare-lf", b"/nul-in-value", b"/cl-and-te", b"/two-cl",
                     b"/bad-status", b"/huge-head"]:
            with self.subTest(path=path):
                s = socket.create_connection(("127.0.0.1", self.h.port), timeout=10)
                self.get(s, path, extra=b"Connection: close\r\n")
                out = read_all(s)
                s.close()
                self.assertTrue(out.startswith(b"HTTP/1.1 502 "), out[:200])
                self.assertIn(b"upstream_invalid_response", out)
                self.assertEqual(out.count(b"HTTP/1.1 "), 1, out[:300])

    def test_obs_fold_in_a_response_becomes_a_space(self):
        # RFC 9112 §5.2: a proxy replaces each obs-fold with SP (or answers 502); never
        # forwards the fold.
        s = socket.create_connection(("127.0.0.1", self.h.port), timeout=10)
        self.get(s, b"/obs-fold", extra=b"Connection: close\r\n")
        out = read_all(s)
        s.close()
        self.assertTrue(out.startswith(b"HTTP/1.1 200 "), out[:100])
        self.assertIn(b"\r\nX-A: a b\r\n", out)

    def test_broken_bodies_end_the_client_connection_without_a_clean_end(self):
        for path, reason in [(b"/short-body", "upstream_truncated"),
                             (b"/broken-chunked", "upstream_invalid_response"),
                             (b"/truncated-chunked", "upstream_truncated")]:
            with self.subTest(path=path):
                s = socket.create_connection(("127.0.0.1", self.h.port), timeout=10)
                self.get(s, path)
                self.get(s, b"/ok")  # pipelined: must never be answered on this connection
                out = read_all(s)
                s.close()
                self.assertTrue(out.startswith(b"HTTP/1.1 200 "), out[:100])
                self.assertEqual(out.count(b"HTTP/1.1 "), 1, out)
                self.assertFalse(out.endswith(b"0\r\n\r\n"), out[-40:])
                if b"chunked" in path:
                    self.assertIn(b"hello", out)
                wait_for(lambda: f" {reason} " in self.h.stderr(), 10, reason)

    def test_interim_responses_are_forwarded(self):
        s = socket.create_connection(("127.0.0.1", self.h.port), timeout=10)
        self.get(s, b"/interim", extra=b"Connection: close\r\n")
        out = read_all(s)
        s.close()
        self.assertTrue(out.startswith(b"HTTP/1.1 103 "), out[:100])
        self.assertIn(b"Link: </a.css>", out)
        self.assertEqual(re.findall(rb"HTTP/1\.1 (\d\d\d) ", out), [b"103", b"200"])
        self.assertTrue(out.endswith(b"\r\n\r\nok"))
        # An HTTP/1.0 client gets no interim response.
        s = socket.create_connection(("127.0.0.1", self.h.port), timeout=10)
        s.sendall(b"GET /interim HTTP/1.0\r\n\r\n")
        out = read_all(s)
        s.close()
        self.assertEqual(re.findall(rb"HTTP/1\.1 (\d\d\d) ", out), [b"200"])

    def test_early_answer_leaves_the_rest_of_the_body_unread(self):
        smuggled = b"GET /ok?smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
        body = (smuggled * 40000)[:1000000]
        s = socket.create_connection(("127.0.0.1", self.h.port), timeout=10)
        s.sendall(b"POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
        try:
            s.sendall(body)
        except OSError:
            pass
        out = read_all(s)
        s.close()
        self.assertEqual(re.findall(rb"HTTP/1\.1 (\d\d\d) ", out), [b"413"])
        self.assertNotIn("/ok?smuggled", self.raw.paths())

    def test_expect_100_refused_body_is_not_read_as_a_request(self):
        s = socket.create_connection(("127.0.0.1", self.h.port), timeout=10)
        s.sendall(b"POST /refuse-expect HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 38\r\n\r\n")
        status = read_status(s)
        self.assertEqual(status, 401)
        # A client that sends its body anyway must not have it read as the next request.
        try:
            s.sendall(b"GET /ok?smuggled HTTP/1.1\r\nHost: t\r\n\r\n")
        except OSError:
            pass
        rest = read_all(s)
        s.close()
        self.assertNotIn(b"HTTP/1.1 200", rest)
        self.assertNotIn("/ok?smuggled", self.raw.paths())

    def test_requests_after_connection_close_are_not_read(self):
        s = socket.create_connection(("127.0.0.1", self.h.port), timeout=10)
        s.sendall(b"GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                  b"GET /ok?second HTTP/1.1\r\nHost: t\r\n\r\n")
        out = read_all(s)
        s.close()
        self.assertEqual(out.count(b"HTTP/1.1 "), 1)
        self.assertNotIn("/ok?second", self.raw.paths())


class Retries(HarrowTestCase):
    def run_farm(self, retries):
        live = self.origin("live", host="127.0.0.4")
        farm = farm_xml("f", [("127.0.0.2", dead_port(), 1), ("127.0.0.3", dead_port(), 1),
                              ("127.0.0.4", live.port, 1)])
        h = self.harrow(config_xml([farm], [rule_xml("r", "f")],
                                   harrow=f'<limits retries="{retries}"/>'))
        statuses = [request(h.port)[0] for _ in range(9)]
        return h, statuses

    def test_retries_bound_the_servers_tried(self):
        # Two refusing servers in front of a live one: with two retries every request lands.
        h, statuses = self.run_farm(2)
        self.assertEqual(statuses, [200] * 9)
        _, metrics = h.admin_get("/metrics")
        retried = sum(int(n) for n in re.findall(r'harrow_server_retries_total{[^}]*} (\d+)', metrics))
        self.assertGreater(retried, 0)
        self.assertRegex(h.stderr(), r"upstream_connect_refused .* retries=\d")

    def test_no_retries_means_the_first_failure_stands(self):
        h, statuses = self.run_farm(0)
        self.assertIn(502, statuses)
        self.assertIn(200, statuses)
        _, metrics = h.admin_get("/metrics")
        retried = sum(int(n) for n in re.findall(r'harrow_server_retries_total{[^}]*} (\d+)', metrics))
        self.assertEqual(retried, 0)

    def test_post_is_not_replayed_after_the_server_got_it(self):
        # Reads the request, then closes without answering.
        raw = RawOrigin({"/": (b"", "close")}, host="127.0.0.2")
        self.addCleanup(raw.stop)
        other = RawOrigin({"/": (OK2, "keep")}, host="127.0.0.3")
        self.addCleanup(other.stop)
        farm = farm_xml("f", [("127.0.0.2", raw.port, 1), ("127.0.0.3", other.port, 1)])
        h = self.harrow(config_xml([farm], [rule_xml("r", "f")], harrow='<limits retries="1"/>'))
        results = [request(h.port, "POST", "/", body=b"x")[0] for _ in range(4)]
        self.assertIn(502, results)
        # Every POST went to exactly one server: none was sent twice.
        self.assertEqual(len(raw.requests) + len(other.requests), 4)
        # A GET that met the same reset is replayed on the other server.
        gets = [request(h.port)[0] for _ in range(4)]
        self.assertEqual(gets, [200] * 4)

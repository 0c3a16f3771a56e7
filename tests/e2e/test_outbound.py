"""End-to-end: URL Rewrite outbound rules. Header rules (RESPONSE_*), HTML link rewriting as the
body streams (bounded memory), preconditions, compressed bodies left intact, rewrite maps, and
the composition with reverseRewriteHostInResponseHeaders."""
import re
import socket
import threading
import unittest

from harness import (HarrowTestCase, SANITIZED, decode_chunked, farm_xml, request, rule_xml,
                     wait_for)


def config_with_outbound(origin, outbound, protocol="", maps=""):
    farm = farm_xml("f", [(origin.host, origin.port, 1)], protocol=protocol)
    return ("<configuration><webFarms>" + farm + "</webFarms>"
            "<system.webServer><rewrite>" + maps +
            "<globalRules>" + rule_xml("r", "f") + "</globalRules>"
            "<outboundRules>" + outbound + "</outboundRules>"
            "</rewrite></system.webServer></configuration>")


LOCATION_RULE = (
    '<rule name="public-location">'
    '<match serverVariable="RESPONSE_Location" pattern="^http://backend\\.internal/(.*)"/>'
    '<action type="Rewrite" value="https://www.example.com/{R:1}"/></rule>')

HTML_RULES = (
    '<rule name="links" preCondition="IsHTML">'
    '<match filterByTags="A, Img" pattern="^http://backend\\.internal/(.*)"/>'
    '<action type="Rewrite" value="/public/{R:1}"/></rule>'
    '<preConditions><preCondition name="IsHTML">'
    '<add input="{RESPONSE_CONTENT_TYPE}" pattern="^text/html"/>'
    '</preCondition></preConditions>')


def echo(port, body, content_type="text/html", extra=""):
    """POSTs `body`; the origin echoes it back with the given Content-Type."""
    path = f"/?echo=1&header=Content-Type:{content_type}{extra}"
    return request(port, method="POST", path=path, body=body)


class HeaderRules(HarrowTestCase):
    def test_location_is_rewritten_to_the_public_host(self):
        o = self.origin("o")
        h = self.harrow(config_with_outbound(o, LOCATION_RULE))
        status, hdrs, _ = request(
            h.port, path="/?status=302&header=Location:http://backend.internal/cart?x=1")
        self.assertEqual(status, 302)
        self.assertEqual(hdrs["location"], "https://www.example.com/cart?x=1")
        # Other locations are left alone.
        _, hdrs, _ = request(h.port, path="/?status=302&header=Location:http://elsewhere/x")
        self.assertEqual(hdrs["location"], "http://elsewhere/x")

    def test_reverse_rewrite_runs_first_then_outbound_rules(self):
        o = self.origin("o", host="127.0.0.2")
        rule = ('<rule name="https"><match serverVariable="RESPONSE_Location" '
                'pattern="^http://(.*)"/><action type="Rewrite" value="https://{R:1}"/></rule>')
        h = self.harrow(config_with_outbound(
            o, rule, protocol='<protocol reverseRewriteHostInResponseHeaders="true"/>'))
        _, hdrs, _ = request(h.port, headers={"Host": "shop.example"},
                             path=f"/?status=302&header=Location:http://{o.host}:{o.port}/y")
        self.assertEqual(hdrs["location"], "https://shop.example/y")

    def test_a_rule_can_add_a_header_from_a_rewrite_map(self):
        o = self.origin("o")
        maps = ('<rewriteMaps><rewriteMap name="Policies" defaultValue="none">'
                '<add key="shop.example" value="strict"/></rewriteMap></rewriteMaps>')
        rule = ('<rule name="policy"><match serverVariable="RESPONSE_X_Policy" pattern=".*"/>'
                '<action type="Rewrite" value="{Policies:{HTTP_HOST}}"/></rule>')
        h = self.harrow(config_with_outbound(o, rule, maps=maps))
        self.assertEqual(request(h.port, headers={"Host": "SHOP.example"})[1]["x-policy"], "strict")
        self.assertEqual(request(h.port, headers={"Host": "other"})[1]["x-policy"], "none")


class BodyRules(HarrowTestCase):
    def test_links_in_html_are_rewritten(self):
        o = self.origin("o")
        h = self.harrow(config_with_outbound(o, HTML_RULES))
        page = (b'<html><a href="http://backend.internal/p?q=1">x</a>'
                b"<IMG SRC='http://backend.internal/i.png'><a href=/local>y</a>"
                b'<script>var s = "<a href=\\"http://backend.internal/no\\">";</script></html>')
        status, hdrs, body = echo(h.port, page)
        self.assertEqual(status, 200)
        self.assertNotIn("content-length", hdrs)
        self.assertEqual(body, page.replace(b"http://backend.internal/p", b"/public/p")
                         .replace(b"http://backend.internal/i.png", b"/public/i.png"))

    def test_precondition_keeps_other_content_types_untouched(self):
        o = self.origin("o")
        h = self.harrow(config_with_outbound(o, HTML_RULES))
        page = b'<a href="http://backend.internal/p">x</a>'
        status, hdrs, body = echo(h.port, page, content_type="text/plain")
        self.assertEqual(body, page)
        self.assertEqual(hdrs.get("content-length"), str(len(page)))

    def test_a_compressed_body_is_left_intact(self):
        o = self.origin("o")
        h = self.harrow(config_with_outbound(o, HTML_RULES))
        page = b'<a href="http://backend.internal/p">x</a>'  # stands in for gzip bytes
        _, hdrs, body = echo(h.port, page, extra="&header=Content-Encoding:gzip")
        self.assertEqual(body, page)
        wait_for(lambda: "-encoded" in h.stderr(), 5, "the skip is logged")
        self.assertIn("gzip", h.stderr())

    def test_ten_mebibytes_stream_through_with_bounded_memory(self):
        o = self.origin("o")
        h = self.harrow(config_with_outbound(o, HTML_RULES))
        unit = b'<p>text text text</p><a href="http://backend.internal/item">i</a>\n'
        repeat = (10 << 20) // len(unit) + 1
        expected_unit = unit.replace(b"http://backend.internal/item", b"/public/item")
        head = (f"POST /?echo=1&header=Content-Type:text/html HTTP/1.1\r\nHost: x\r\n"
                f"Content-Length: {len(unit) * repeat}\r\nConnection: close\r\n\r\n").encode()
        s = socket.create_connection(("127.0.0.1", h.port), timeout=60)

        def send():
            s.sendall(head)
            block = unit * 1000
            for i in range(0, repeat, 1000):
                s.sendall(block if i + 1000 <= repeat else unit * (repeat - i))

        sender = threading.Thread(target=send)
        sender.start()
        received = bytearray()
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            received += chunk
        sender.join(60)
        s.close()
        head_end = received.index(b"\r\n\r\n")
        self.assertIn(b"Transfer-Encoding: chunked", bytes(received[:head_end]))
        body = decode_chunked(bytes(received[head_end + 4:]))
        self.assertEqual(len(body), len(expected_unit) * repeat)
        self.assertEqual(body, expected_unit * repeat)
        # Streaming, not buffering: far less than the 10 MiB body (twice, in and out). ASan's
        # quarantine keeps freed memory resident, so the bound holds for the release build only.
        if not SANITIZED:
            self.assertLess(h.rss_peak_kib(), 24 * 1024)


WHOLE_BODY_RULES = (
    '<rule name="api-host" preCondition="IsScript">'
    '<match pattern="http://backend\\.internal(:\\d+)?/"/>'
    '<action type="Rewrite" value="https://www.example.com/"/></rule>'
    '<rule name="first-banner"><match filterByTags="None" pattern="BANNER" occurrences="1"/>'
    '<action type="Rewrite" value="banner"/></rule>'
    '<preConditions><preCondition name="IsScript">'
    '<add input="{RESPONSE_CONTENT_TYPE}" pattern="javascript"/>'
    '</preCondition></preConditions>')


class WholeBodyRules(HarrowTestCase):
    """A <match pattern> without filterByTags (or with "None") rewrites the body text itself,
    as it streams: matches that span reads are found, occurrences limits the replacements."""

    def test_the_body_text_is_rewritten_as_it_streams(self):
        o = self.origin("o")
        h = self.harrow(config_with_outbound(o, WHOLE_BODY_RULES))
        unit = b"BANNER fetch('http://backend.internal:8080/api/v1'); // http://elsewhere/\n"
        repeat = (10 << 20) // len(unit) + 1
        expected_unit = unit.replace(b"http://backend.internal:8080/", b"https://www.example.com/")
        head = (f"POST /?echo=1&header=Content-Type:application/javascript HTTP/1.1\r\n"
                f"Host: x\r\nContent-Length: {len(unit) * repeat}\r\n"
                f"Connection: close\r\n\r\n").encode()
        s = socket.create_connection(("127.0.0.1", h.port), timeout=60)

        def send():
            s.sendall(head)
            block = unit * 1000
            for i in range(0, repeat, 1000):
                s.sendall(block if i + 1000 <= repeat else unit * (repeat - i))

        sender = threading.Thread(target=send)
        sender.start()
        received = bytearray()
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            received += chunk
        sender.join(60)
        s.close()
        head_end = received.index(b"\r\n\r\n")
        self.assertIn(b"Transfer-Encoding: chunked", bytes(received[:head_end]))
        body = decode_chunked(bytes(received[head_end + 4:]))
        # occurrences="1": only the first BANNER changes.
        self.assertEqual(body, b"banner" + (expected_unit * repeat)[len(b"BANNER"):])
        if not SANITIZED:  # streamed, not buffered (see the HTML test above)
            self.assertLess(h.rss_peak_kib(), 24 * 1024)

    def test_the_precondition_keeps_other_bodies_untouched(self):
        o = self.origin("o")
        h = self.harrow(config_with_outbound(o, WHOLE_BODY_RULES))
        status, hdrs, body = echo(h.port, b"x http://backend.internal/ y", "text/plain")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"x http://backend.internal/ y")


class OutboundConfig(unittest.TestCase):
    def test_bad_outbound_rules_are_config_errors(self):
        import os
        import subprocess
        import tempfile
        from harness import HARROW
        text = ("<configuration><system.webServer><rewrite><outboundRules>"
                '<rule name="a" preCondition="Nope"><match filterByTags="A, Imgg" pattern="x"/>'
                '<action type="Rewrite" value="y"/></rule>'
                '<rule name="b"><match serverVariable="SERVER_NAEM" pattern="x"/></rule>'
                "</outboundRules></rewrite></system.webServer></configuration>")
        with tempfile.NamedTemporaryFile("w", suffix=".config", delete=False) as f:
            f.write(text)
        try:
            result = subprocess.run([HARROW, "--check-config", "--config", f.name],
                                    capture_output=True, text=True, timeout=30)
        finally:
            os.unlink(f.name)
        self.assertEqual(result.returncode, 2)
        self.assertIn("names preCondition 'Nope'", result.stderr)
        self.assertIn("unknown tag 'Imgg' in filterByTags; did you mean 'Img'", result.stderr)
        self.assertIn("{SERVER_NAEM} is not a server variable Harrow knows", result.stderr)


if __name__ == "__main__":
    unittest.main()

"""End-to-end: rules judge the canonical path and the origin gets what was judged; bytes a rule
produces never become syntax.

IIS hands URL Rewrite the path http.sys decoded and canonicalized (escapes decoded, '\\' as '/',
repeated slashes merged, dot segments removed); request filtering refuses double escaping
(404.11) and URLs or query strings over maxUrl / maxQueryString (404.14 / 404.15). A CR, LF, NUL
or other control byte that a rule produces ({UrlDecode:...}, back-references, server variables)
in a request line, header, status reason or Location is refused with 500 unsafe_rewrite and the
rule's name in the log, never written."""
import http.client
import os
import unittest
import xml.etree.ElementTree as ET

from harness import HarrowTestCase, farm_xml, raw_exchange, request

SOURCE = os.environ.get("HARROW_SOURCE_DIR",
                        os.path.join(os.path.dirname(__file__), "..", ".."))


def no_dotfiles_rule():
    """The <rule name="no-dotfiles"> of examples/rewrite-features.config, as text."""
    tree = ET.parse(os.path.join(SOURCE, "examples", "rewrite-features.config"))
    for rule in tree.iter("rule"):
        if rule.get("name") == "no-dotfiles":
            return ET.tostring(rule, encoding="unicode")
    raise AssertionError("examples/rewrite-features.config has no no-dotfiles rule")


DENY_RULES = (
    '<rule name="deny-admin" stopProcessing="true"><match url="^admin(/|$)"/>'
    '<action type="AbortRequest"/></rule>'
    '<rule name="deny-secret" stopProcessing="true"><match url="^secret(/|$)"/>'
    '<action type="CustomResponse" statusCode="403" statusReason="Forbidden"'
    ' statusDescription="denied"/></rule>')

# Each rule takes its payload from the query string (v=...), which URL Rewrite does not decode,
# and decodes it itself: %0d%0a becomes CR LF in what the rule produces.
INJECTING_RULES = (
    '<rule name="crlf-path" stopProcessing="true"><match url="^inject/path$"/>'
    '<conditions><add input="{QUERY_STRING}" pattern="^v=(.*)$"/></conditions>'
    '<action type="Rewrite" url="http://f/{UrlDecode:{C:1}}" appendQueryString="false"/></rule>'
    '<rule name="crlf-header" stopProcessing="true"><match url="^inject/header$"/>'
    '<conditions><add input="{QUERY_STRING}" pattern="^v=(.*)$"/></conditions>'
    '<serverVariables><set name="HTTP_X_INJECTED" value="{UrlDecode:{C:1}}"/></serverVariables>'
    '<action type="Rewrite" url="http://f/_origin/headers" appendQueryString="false"/></rule>'
    '<rule name="crlf-location" stopProcessing="true"><match url="^inject/location$"/>'
    '<conditions><add input="{QUERY_STRING}" pattern="^v=(.*)$"/></conditions>'
    '<action type="Redirect" url="http://example.com/{UrlDecode:{C:1}}"'
    ' appendQueryString="false"/></rule>'
    '<rule name="crlf-status" stopProcessing="true"><match url="^inject/status$"/>'
    '<conditions><add input="{QUERY_STRING}" pattern="^v=(.*)$"/></conditions>'
    '<action type="CustomResponse" statusCode="403" statusReason="{UrlDecode:{C:1}}"'
    ' statusDescription="x"/></rule>')

OUTBOUND_RULE = (
    '<outboundRules><rule name="crlf-response">'
    '<match serverVariable="RESPONSE_X_Echo" pattern=".*"/>'
    '<action type="Rewrite" value="{UrlDecode:{HTTP_X_PAYLOAD}}"/></rule></outboundRules>')

CATCH_ALL = ('<rule name="app" stopProcessing="true"><match url="(.*)"/>'
             '<action type="Rewrite" url="http://f/{R:1}"/></rule>')


def config(origin, rules, outbound="", filtering=""):
    return ("<configuration><webFarms>" + farm_xml("f", [(origin.host, origin.port, 1)]) +
            "</webFarms><system.webServer>" + filtering + "<rewrite>"
            '<allowedServerVariables><add name="HTTP_X_INJECTED"/></allowedServerVariables>'
            "<globalRules>" + rules + CATCH_ALL + "</globalRules>" + outbound +
            "</rewrite></system.webServer></configuration>")


def get(port, target, headers=b""):
    """Sends GET `target` raw (no client-side normalization); returns the response bytes."""
    data = b"GET " + target.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
    return raw_exchange(port, data + headers + b"\r\n")


def fuzz_seeds():
    """The raw requests of this file, for tests/fuzz/make_seeds.py."""
    targets = [v.format("admin") for v in DenyRulesSeeTheCanonicalPath.VARIANTS]
    targets += ["/%2egit/config", "/x/.%2e/.svn/entries", "/_origin%2Fheaders?a=%2e%2E&b=/../",
                "/%252e", "/a%2541", "/%25%32%65", "/100%25", "/..", "/%2e%2e/x", "/a%00b",
                "/a%0d%0aX-Evil:%201", "/a%7f", "/a%zz", "/" + "a" * 4096, "/x?" + "q" * 2049,
                "/inject/path?v=" + RuleOutputNeverBecomesSyntax.PAYLOAD]
    return [("security_" + t[:40], b"GET " + t.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
            for t in targets]


def status_of(response):
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else None


class DenyRulesSeeTheCanonicalPath(HarrowTestCase):
    VARIANTS = ["/{}/x", "/%61dmin/x", "/./{}/x", "/x/../{}/x", "//{}/x", "/%2e/{}/x",
                "/x/%2e%2e/{}/x", "/x%2f..%2f{}/x", "/x\\..\\{}\\x", "/%5c{}/x", "/{}",
                "/{}//", "/x/./../{}"]

    def setUp(self):
        super().setUp()
        self.o = self.origin("o")
        self.h = self.harrow(config(self.o, DENY_RULES))

    def test_abort_rule_denies_every_spelling_of_admin(self):
        for variant in self.VARIANTS:
            target = variant.format("admin")
            with self.subTest(target=target):
                self.assertEqual(get(self.h.port, target), b"", "AbortRequest closes silently")
        for target in ["/administrator", "/x/admin", "/adm%69n-panel", "/%2e%2eadmin"]:
            with self.subTest(target=target):
                self.assertEqual(status_of(get(self.h.port, target)), 200)

    def test_custom_response_rule_denies_every_spelling_of_secret(self):
        for variant in self.VARIANTS:
            target = variant.replace("%61dmin", "%73ecret").format("secret")
            with self.subTest(target=target):
                self.assertEqual(status_of(get(self.h.port, target)), 403)


class NoDotfilesExample(HarrowTestCase):
    def test_encoded_dot_does_not_slip_past_the_example_rule(self):
        o = self.origin("o")
        h = self.harrow(config(o, no_dotfiles_rule()))
        for target in ["/.git/config", "/%2egit/config", "/%2Egit/config", "/x/%2eenv",
                       "/x/.%2e/.svn/entries", "/x//.git/HEAD"]:
            with self.subTest(target=target):
                self.assertEqual(get(h.port, target), b"")
        self.assertEqual(status_of(get(h.port, "/git/config")), 200)


class OriginReceivesTheCanonicalPath(HarrowTestCase):
    def test_request_line_at_the_origin(self):
        o = self.origin("o")
        h = self.harrow(config(o, ""))
        for target in ["/_origin/./headers", "/_origin//headers", "/x/../_origin/headers",
                       "/%5Forigin/headers", "/_origin%2Fheaders", "/_origin\\headers",
                       "//_origin/x/y/../../headers"]:
            with self.subTest(target=target):
                response = get(h.port, target + "?a=%2e%2E&b=/../")
                self.assertEqual(status_of(response), 200)
                body = response.split(b"\r\n\r\n", 1)[1]
                # The query string is not decoded or normalized (as in IIS).
                self.assertTrue(
                    body.startswith(b"GET /_origin/headers?a=%2e%2E&b=/../ HTTP/1.1\n"), body)

    def test_query_is_matched_as_received_and_the_path_decoded(self):
        o = self.origin("o")
        rule = ('<rule name="q" stopProcessing="true"><match url="^x y$"/>'
                '<conditions><add input="{QUERY_STRING}" pattern="^a=%41$"/></conditions>'
                '<action type="CustomResponse" statusCode="418" statusReason="Teapot"/></rule>')
        h = self.harrow(config(o, rule))
        self.assertEqual(status_of(get(h.port, "/x%20y?a=%41")), 418)
        self.assertEqual(status_of(get(h.port, "/x%20y?a=A")), 200)


class RefusedPaths(HarrowTestCase):
    def setUp(self):
        super().setUp()
        self.o = self.origin("o")
        self.h = self.harrow(config(self.o, ""))

    def assert_refused(self, target, status, reason):
        response = get(self.h.port, target)
        self.assertEqual(status_of(response), status, response[:200])
        self.assertIn(reason.encode(), response)

    def test_double_escaping_is_404(self):
        for target in ["/%252e", "/a%2541", "/%25%32%65", "/x/%252e%252e/admin"]:
            with self.subTest(target=target):
                self.assert_refused(target, 404, "double_escaping")
        # A '%' that does not read as an escape once decoded is not double escaping.
        self.assertEqual(status_of(get(self.h.port, "/100%25")), 200)

    def test_dot_dot_above_the_root_is_400(self):
        for target in ["/..", "/../x", "/x/../../y", "/%2e%2e/x"]:
            with self.subTest(target=target):
                self.assert_refused(target, 400, "bad_request")

    def test_control_bytes_once_decoded_are_400(self):
        for target in ["/a%00b", "/a%0d%0aX-Evil:%201", "/a%7f", "/a%09"]:
            with self.subTest(target=target):
                self.assert_refused(target, 400, "bad_request")

    def test_long_url_is_404(self):
        self.assert_refused("/" + "a" * 4096, 404, "url_too_long")
        self.assertEqual(status_of(get(self.h.port, "/" + "a" * 4095)), 200)

    def test_long_query_string_is_404(self):
        self.assert_refused("/x?" + "q" * 2049, 404, "query_string_too_long")
        self.assertEqual(status_of(get(self.h.port, "/x?" + "q" * 2048)), 200)


class RequestFilteringConfig(HarrowTestCase):
    def test_iis_request_limits_and_double_escaping_are_honoured(self):
        o = self.origin("o")
        filtering = ('<security><requestFiltering allowDoubleEscaping="true">'
                     '<requestLimits maxUrl="100" maxQueryString="10"/>'
                     '</requestFiltering></security>')
        h = self.harrow(config(o, "", filtering=filtering))
        self.assertEqual(status_of(get(h.port, "/" + "a" * 101)), 404)
        self.assertEqual(status_of(get(h.port, "/x?" + "q" * 11)), 404)
        # Allowed double escaping: "%2541" is judged as "%41" and sent on as it came.
        response = get(h.port, "/_origin/headers?x")
        self.assertEqual(status_of(response), 200)
        self.assertEqual(status_of(get(h.port, "/a%2541")), 200)


class RuleOutputNeverBecomesSyntax(HarrowTestCase):
    PAYLOAD = "x%0d%0aX-Evil:%201%0d%0a%0d%0aGET%20/evil%20HTTP/1.1"

    def setUp(self):
        super().setUp()
        self.o = self.origin("o")
        self.h = self.harrow(config(self.o, INJECTING_RULES, outbound=OUTBOUND_RULE))

    def assert_unsafe(self, target, rule, headers=b""):
        response = get(self.h.port, target, headers)
        self.assertEqual(status_of(response), 500, response[:300])
        self.assertIn(b"unsafe_rewrite", response)
        self.assertNotIn(b"X-Evil", response.split(b"\r\n\r\n", 1)[0])
        self.assertIn(f'rule "{rule}"', self.h.stderr())

    def test_upstream_path(self):
        self.assert_unsafe("/inject/path?v=" + self.PAYLOAD, "crlf-path")

    def test_upstream_header(self):
        self.assert_unsafe("/inject/header?v=" + self.PAYLOAD, "crlf-header")

    def test_redirect_location(self):
        self.assert_unsafe("/inject/location?v=" + self.PAYLOAD, "crlf-location")

    def test_custom_response_status_reason(self):
        self.assert_unsafe("/inject/status?v=" + self.PAYLOAD, "crlf-status")

    def test_nul_and_other_controls(self):
        self.assert_unsafe("/inject/header?v=a%00b", "crlf-header")
        self.assert_unsafe("/inject/status?v=a%01b", "crlf-status")
        self.assert_unsafe("/inject/path?v=a%20b", "crlf-path")  # a space splits a request line
        # Text without such bytes passes: HTAB and spaces are fine in values and reasons.
        self.assertEqual(status_of(get(self.h.port, "/inject/status?v=Go%20away%09now")), 403)
        response = get(self.h.port, "/inject/header?v=a%20b%09c")
        self.assertEqual(status_of(response), 200)
        self.assertIn(b"X-Injected: a b\tc", response)

    def test_outbound_header_value_replaces_the_response_with_500(self):
        self.assert_unsafe("/x?header=X-Echo:1", "crlf-response",
                           b"X-Payload: a%0d%0aSet-Cookie:%20evil=1\r\n")

    def test_the_pooled_connection_and_the_client_connection_stay_clean(self):
        before = self.o.stats()["requests"]
        stats_cost = self.o.stats()["requests"] - before
        conn = http.client.HTTPConnection("127.0.0.1", self.h.port, timeout=10)
        try:
            conn.request("GET", "/first")  # opens the pooled upstream connection
            resp = conn.getresponse()
            self.assertEqual((resp.status, resp.read()), (200, b"o\n"))
            counted = self.o.stats()["requests"]
            conn.request("GET", "/inject/path?v=" + self.PAYLOAD)
            resp = conn.getresponse()
            self.assertEqual(resp.status, 500)
            self.assertIn(b"unsafe_rewrite", resp.read())
            # Nothing reached the origin: no request, let alone a second one.
            self.assertEqual(self.o.stats()["requests"] - counted, stats_cost)
            conn.request("GET", "/_origin/headers")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertTrue(resp.read().startswith(b"GET /_origin/headers HTTP/1.1\n"))
        finally:
            conn.close()


if __name__ == "__main__":
    unittest.main()

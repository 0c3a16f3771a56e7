"""End-to-end: IIS sites. A request belongs to the site whose binding matches it; the global
rules run first, then the site's own rules from <location path="SITE">, which may set only
the server variables <allowedServerVariables> lists."""
import os
import subprocess
import tempfile
import unittest

from harness import HARROW, HarrowTestCase, farm_xml, request, wait_for
from test_config_runtime import origin_headers


def sites_config(shop, blog, extra_location_rule=""):
    farms = farm_xml("shopfarm", [(shop.host, shop.port, 1)]) + farm_xml(
        "blogfarm", [(blog.host, blog.port, 1)])

    def site(name, site_id, host):
        return (f'<site name="{name}" id="{site_id}"><bindings>'
                f'<binding protocol="http" bindingInformation="127.0.0.1:0:{host}"/>'
                '</bindings></site>')

    def location(site_name, farm, tag):
        return (f'<location path="{site_name}"><system.webServer><rewrite><rules>'
                f'{extra_location_rule}'
                f'<rule name="{site_name}-to-farm"><match url="(.*)"/>'
                f'<serverVariables><set name="HTTP_X_SITE_TAG" value="{tag}"/></serverVariables>'
                f'<action type="Rewrite" url="http://{farm}/{{R:1}}"/></rule>'
                '</rules></rewrite></system.webServer></location>')

    return ("<configuration>"
            f"<webFarms>{farms}</webFarms>"
            "<system.applicationHost><sites>"
            + site("Shop", 1, "shop.example") + site("Blog", 2, "blog.example") +
            "</sites></system.applicationHost>"
            "<system.webServer><rewrite>"
            '<allowedServerVariables><add name="HTTP_X_SITE_TAG"/></allowedServerVariables>'
            "<globalRules>"
            '<rule name="legacy" stopProcessing="true"><match url="^legacy/(.*)"/>'
            '<action type="Rewrite" url="{R:1}"/></rule>'
            "</globalRules></rewrite></system.webServer>"
            + location("Shop", "shopfarm", "shop") + location("Blog", "blogfarm", "blog") +
            "<harrow><accessLog path=\"ACCESS_LOG\"/></harrow>"
            "</configuration>")


class Sites(HarrowTestCase):
    def start(self):
        shop = self.origin("shop", host="127.0.0.2")
        blog = self.origin("blog", host="127.0.0.3")
        self.log_dir = tempfile.TemporaryDirectory(prefix="harrow-sites-")
        self.access_log = os.path.join(self.log_dir.name, "access.log")
        text = sites_config(shop, blog).replace("ACCESS_LOG", self.access_log)
        return self.harrow(text, listen=False)

    def tearDown(self):
        super().tearDown()
        if hasattr(self, "log_dir"):
            self.log_dir.cleanup()

    def test_each_host_reaches_its_sites_farm(self):
        h = self.start()
        self.assertEqual(request(h.port, headers={"Host": "shop.example"})[1]["x-origin"], "shop")
        self.assertEqual(request(h.port, headers={"Host": "BLOG.example:80"})[1]["x-origin"], "blog")
        self.assertEqual(request(h.port, headers={"Host": "other.example"})[0], 400)

    def test_global_rules_run_before_the_site_rules_and_variables_reach_the_origin(self):
        h = self.start()
        # The global rule strips "legacy/"; the site rule then sends what is left to its farm,
        # with the server variable it set as a request header.
        status, line, fields = origin_headers(h.port, path="/legacy/_origin/headers",
                                              headers={"Host": "blog.example"})
        self.assertEqual(status, 200)
        self.assertTrue(line.startswith("GET /_origin/headers "), line)
        self.assertEqual(fields["x-site-tag"], "blog")

    def test_access_log_names_the_site(self):
        h = self.start()
        request(h.port, path="/a", headers={"Host": "shop.example"})
        request(h.port, path="/b", headers={"Host": "blog.example"})
        h.stop()

        def lines():
            with open(self.access_log) as f:
                return [line for line in f if not line.startswith("#")]
        wait_for(lambda: len(lines()) >= 2, 5, "two access log lines")
        fields = next(line for line in open(self.access_log) if line.startswith("#Fields:"))
        site = fields.split()[1:].index("s-sitename")
        by_path = {line.split()[5]: line.split()[site] for line in lines()}
        self.assertEqual(by_path, {"/a": "Shop", "/b": "Blog"})


class SiteConfigErrors(unittest.TestCase):
    def check(self, text):
        with tempfile.NamedTemporaryFile("w", suffix=".config", delete=False) as f:
            f.write(text)
        try:
            return subprocess.run([HARROW, "--check-config", "--config", f.name],
                                  capture_output=True, text=True, timeout=30)
        finally:
            os.unlink(f.name)

    class FakeOrigin:
        def __init__(self, host):
            self.host, self.port = host, 18000

    def test_site_rules_may_set_only_allowed_variables(self):
        text = sites_config(self.FakeOrigin("127.0.0.2"), self.FakeOrigin("127.0.0.3"))
        text = text.replace('<add name="HTTP_X_SITE_TAG"/>', "")
        result = self.check(text)
        self.assertEqual(result.returncode, 2, result.stderr)
        errors = [line for line in result.stderr.splitlines() if ": error: " in line]
        self.assertEqual(len(errors), 2, result.stderr)
        for line in errors:
            self.assertIn("sets server variable 'HTTP_X_SITE_TAG'", line)
            self.assertIn("allowedServerVariables", line)

    def test_a_location_for_no_site_is_an_error(self):
        text = sites_config(self.FakeOrigin("127.0.0.2"), self.FakeOrigin("127.0.0.3"))
        text = text.replace('<location path="Blog">', '<location path="Blgo">')
        result = self.check(text)
        self.assertEqual(result.returncode, 2)
        self.assertIn('<location path="Blgo"> names no site', result.stderr)
        self.assertIn("did you mean 'Blog'", result.stderr)


if __name__ == "__main__":
    unittest.main()

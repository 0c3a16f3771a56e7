"""End-to-end: the example configurations in examples/. Every one passes
`harrow --check-config` and its summary names every farm; errors planted in them (by text
substitution, in a temporary copy) exit 2 and are reported as PATH:LINE:COL: error: at the line
and element they were planted on."""
import glob
import os
import re
import subprocess
import tempfile
import unittest
import xml.etree.ElementTree as ET

from harness import HARROW

EXAMPLES = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))

# One example per ARR feature Harrow reads; deleting or renaming one fails a test.
FEATURE_EXAMPLES = [
    "weighted-farm.config",
    "host-routing.config",
    "application-pools.config",
    "health-check.config",
    "affinity.config",
    "load-balancing.config",
    "rewrite-features.config",
    "global-proxy.config",
    "sites-bindings.config",
    "sites-and-outbound.config",
    "harrow-section.config",
    "incident-fragment.config",
]

# Examples are meant to be run on one machine without surprises: loopback addresses and ports
# 18000-18999 only. Exceptions: the incident report's fragment is verbatim (its server is the
# report's host), and demo.config belongs to examples/demo, which picks its own ports.
ADDRESS_POLICY_EXCEPTIONS = {"incident-fragment.config", "demo.config"}

ERROR_LINE = re.compile(r"^(?P<path>.+):(?P<line>\d+):(?P<col>\d+): error: (?P<message>.*)$")


def example_files():
    return sorted(glob.glob(os.path.join(EXAMPLES, "*.config")))


def check_config(path):
    return subprocess.run([HARROW, "--check-config", "--config", path],
                          capture_output=True, text=True, timeout=120)


def local_name(tag):
    return tag.rsplit("}", 1)[-1].lower()


def attribute(element, name):
    """An attribute by case-insensitive name, as Harrow reads them."""
    for key, value in element.attrib.items():
        if key.lower() == name.lower():
            return value
    return None


def farm_names(path):
    root = ET.parse(path).getroot()
    return [attribute(e, "name") for e in root.iter() if local_name(e.tag) == "webfarm"]


def parse_errors(stderr):
    """Every stderr line must be one error in the contract's format."""
    errors = []
    for line in stderr.splitlines():
        m = ERROR_LINE.match(line)
        if not m:
            raise AssertionError(f"stderr line is not PATH:LINE:COL: error: …: {line!r}")
        errors.append((m["path"], int(m["line"]), int(m["col"]), m["message"]))
    return errors


class Examples(unittest.TestCase):
    def test_there_is_one_example_per_feature(self):
        present = {os.path.basename(f) for f in example_files()}
        for name in FEATURE_EXAMPLES:
            self.assertIn(name, present)

    def test_every_example_passes_check_config_and_names_its_farms(self):
        files = example_files()
        self.assertGreaterEqual(len(files), len(FEATURE_EXAMPLES))
        for path in files:
            with self.subTest(example=os.path.basename(path)):
                result = check_config(path)
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertNotIn("error:", result.stderr)
                self.assertIn(f"configuration: {path}\n", result.stdout)
                names = farm_names(path)
                self.assertIn(f"farms ({len(names)}):", result.stdout)
                for name in names:
                    self.assertRegex(result.stdout, rf"(?m)^  {re.escape(name)}[ \n]")

    def test_every_example_starts_with_a_comment(self):
        for path in example_files():
            with self.subTest(example=os.path.basename(path)):
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                text = re.sub(r"^<\?xml[^>]*\?>\s*", "", text)
                self.assertTrue(text.startswith("<!--"), "the file must open with a comment")
                self.assertGreater(len(text[:text.index("-->")].split()), 10,
                                   "the opening comment should explain what the file shows")

    def test_examples_use_loopback_addresses_and_high_ports(self):
        def loopback(host):
            host = host.strip("[]")
            return host.startswith("127.") or host in ("::1", "localhost")

        def high_port(port):
            return 18000 <= int(port) <= 18999

        for path in example_files():
            name = os.path.basename(path)
            if name in ADDRESS_POLICY_EXCEPTIONS:
                continue
            with self.subTest(example=name):
                for e in ET.parse(path).getroot().iter():
                    tag = local_name(e.tag)
                    address = attribute(e, "address")
                    if address is not None:
                        host, _, port = address.rpartition(":") if tag != "server" else (
                            address, "", "")
                        self.assertTrue(loopback(host), f"<{tag} address={address!r}>")
                        if port:
                            self.assertTrue(high_port(port), f"<{tag} address={address!r}>")
                    for port_attribute in ("httpPort", "httpsPort", "healthCheckAlternatePort"):
                        port = attribute(e, port_attribute)
                        if port is not None and port != "0":
                            self.assertTrue(high_port(port), f"<{tag} {port_attribute}={port!r}>")
                    host_name = attribute(e, "healthCheckAlternateHostName")
                    if host_name is not None:
                        self.assertTrue(loopback(host_name), host_name)
                    binding = attribute(e, "bindingInformation")
                    if binding is not None and attribute(e, "protocol") in ("http", "https"):
                        ip, port, _ = binding.split(":")
                        self.assertTrue(loopback(ip) and high_port(port), binding)
                    url = attribute(e, "url")
                    m = re.match(r"https?://([0-9.]+|\[[0-9a-f:]+\])(?::(\d+))?/", url or "")
                    if tag == "action" and m:
                        self.assertTrue(loopback(m[1]) and high_port(m[2] or "80"), url)


# (what, example, text in the example, replacement, element the error is reported on,
#  words of the expected message)
PLANTED = [
    ("unknown attribute", "weighted-farm.config",
     '<applicationRequestRouting httpPort="18102" weight="200" />',
     '<applicationRequestRouting httpPort="18102" wieght="200" />',
     "@wieght", "unknown attribute 'wieght'"),
    ("unknown attribute in lower-case names", "incident-fragment.config",
     'usecookie="true"', 'usecokie="true"',
     "@usecokie", "unknown attribute 'usecokie'"),
    ("bad timeSpan", "application-pools.config",
     'interval="00:00:30"', 'interval="30"',
     "@interval", "bad value '30' for attribute 'interval'"),
    ("bad timeSpan", "harrow-section.config",
     'connect="00:00:03"', 'connect="00:00:60"',
     "@connect", "bad value '00:00:60' for attribute 'connect'"),
    ("duplicate server", "weighted-farm.config",
     '<server address="127.0.0.12" enabled="true">',
     '<server address="127.0.0.11" enabled="true">',
     "server", "duplicate server address '127.0.0.11'"),
    ("rule to an unknown farm", "host-routing.config",
     '<action type="Rewrite" url="http://blog/{R:1}" />',
     '<action type="Rewrite" url="http://blgo/{R:1}" />',
     "action", "rewrites to unknown farm 'blgo'"),
    ("unknown applicationPool", "application-pools.config",
     '<applicationPool name="ProxyPool-Portal" />',
     '<applicationPool name="ProxyPool-Portl" />',
     "applicationPool", "names applicationPool 'ProxyPool-Portl'"),
]


class PlantedErrors(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="harrow-examples-")
        self.addCleanup(self.tmp.cleanup)

    def plant(self, example, substitutions, name):
        """Applies (old, new, tag) substitutions to a copy of `example`; returns its path and,
        per substitution, the (line, column) where the error belongs: the element `tag` on the
        planted line, or, for `@name`, that attribute's name (attribute errors point at the
        attribute, wherever its element starts)."""
        with open(os.path.join(EXAMPLES, example), encoding="utf-8") as f:
            text = f.read()
        expected = []
        for old, new, tag in substitutions:
            self.assertEqual(text.count(old), 1, f"{example} must contain {old!r} exactly once")
            self.assertNotIn("\n", old + new)
            start = text.index(old)
            line_start = text.rfind("\n", 0, start) + 1
            line_text = text[line_start:text.find("\n", start)]
            line = text.count("\n", 0, start) + 1
            new_line = line_text.replace(old, new)
            if tag.startswith("@"):
                column = new_line.lower().find(" " + tag[1:].lower() + "=") + 2
            else:
                column = new_line.lower().find("<" + tag.lower()) + 1
            self.assertGreater(column, 0, f"{tag} must be on the planted line: {line_text!r}")
            text = text[:start] + new + text[start + len(old):]
            expected.append((line, column))
        path = os.path.join(self.tmp.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path, expected

    def test_each_planted_error_is_reported_at_its_line(self):
        for i, (what, example, old, new, tag, message) in enumerate(PLANTED):
            with self.subTest(what=what, example=example):
                path, [(line, column)] = self.plant(example, [(old, new, tag)], f"planted{i}.config")
                result = check_config(path)
                self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
                self.assertNotIn("farms (", result.stdout)
                errors = parse_errors(result.stderr)
                self.assertEqual(len(errors), 1, result.stderr)
                self.assertEqual(errors[0][:3], (path, line, column), result.stderr)
                self.assertIn(message, errors[0][3])

    def test_every_error_in_a_file_is_reported_in_line_order(self):
        # Three mistakes in one file: all reported in one run, sorted by position.
        path, expected = self.plant("weighted-farm.config", [
            ('<server address="127.0.0.12" enabled="true">',
             '<server address="127.0.0.11" enabled="true">', "server"),
            ('<applicationRequestRouting httpPort="18103" weight="100" />',
             '<applicationRequestRouting httpPort="18103" weight="0" />',
             "@weight"),
            ('<action type="Rewrite" url="http://catalog/{R:0}" />',
             '<action type="Rewrite" url="http://catalogue/{R:0}" />', "action"),
        ], "several.config")
        result = check_config(path)
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        errors = parse_errors(result.stderr)
        self.assertEqual([e[:3] for e in errors], [(path, l, c) for l, c in expected],
                         result.stderr)
        self.assertIn("duplicate server address '127.0.0.11'", errors[0][3])
        self.assertIn("bad value '0' for attribute 'weight'", errors[1][3])
        self.assertIn("rewrites to unknown farm 'catalogue'", errors[2][3])


if __name__ == "__main__":
    unittest.main()

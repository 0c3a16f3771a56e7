#!/usr/bin/env python3
"""Writes the request, chunked and response seed corpora from the end-to-end hardening table
(tests/e2e/test_hardening.py) and the requests of tests/e2e/test_security_rules.py, so every
case there is also a fuzzing starting point.
Run from anywhere: python3 tests/fuzz/make_seeds.py"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import test_hardening as t  # noqa: E402

def write(corpus, name, data):
    path = os.path.join(HERE, "corpus", corpus)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, re.sub(r"[^A-Za-z0-9_.-]", "_", name)), "wb") as f:
        f.write(data)


cases = [(c[0], c[1]) for c in t.REJECTED] + list(t.ACCEPTED)
for name, data in cases:
    # The first byte picks the read size (1 + byte % 97): one-byte reads and larger ones.
    write("request", "e2e_" + name, b"\x00" + data)
    write("request", "e2e_" + name + "_r7", b"\x06" + data)
    if b"Transfer-Encoding: chunked\r\n\r\n" in data and len(data) < 16384:
        write("chunked", "e2e_" + name, data.split(b"Transfer-Encoding: chunked\r\n\r\n", 1)[1])
for name, body in [("plain", b"5\r\nhello\r\n0\r\n\r\n"),
                   ("extensions", b"5;a=b;c\r\nhello\r\nA;x=y\r\n0123456789\r\n0\r\n\r\n"),
                   ("trailers", b"1\r\nx\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n"),
                   ("upper_hex", b"00aB\r\n" + b"z" * 0xab + b"\r\n0\r\n\r\n"),
                   ("pipelined", b"0\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")]:
    write("chunked", name, body)
import test_security_rules as security  # noqa: E402
for name, data in security.fuzz_seeds():
    write("request", name, b"\x00" + data)
for path, (answer, _) in t.UpstreamFaults.SCRIPT.items():
    data = b"".join(answer) if isinstance(answer, list) else answer
    write("response", "e2e" + path.replace("/", "_"), data)
write("response", "chunked_ok", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
write("response", "connection_list", b"HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n")
# The framing cases of tests/e2e/test_security_framing.py: Connection naming framing fields,
# '_' twins, asterisk-form, and responses that are close-delimited or transfer-coded.
import test_security_framing as f  # noqa: E402
for name, data in [(c[0], c[1]) for c in f.FRAMING_REJECTED] + list(f.FRAMING_ACCEPTED):
    write("request", "e2e_" + name, b"\x00" + data)
    write("request", "e2e_" + name + "_r7", b"\x06" + data)
for path, (answer, _) in f.SCRIPT.items():
    if path == "/ok":
        continue  # the hardening suite's answer already
    data = b"".join(answer) if isinstance(answer, list) else answer
    write("response", "framing" + path.replace("/", "_").replace("*", "_asterisk"), data)
# The attack cases of tests/e2e/test_security_attacks.py: Host syntax, overlong UTF-8, framing
# variants, and server answers with interim bodies, interim floods and control bytes.
import test_security_attacks as a  # noqa: E402
for name, data in [(c[0], c[1]) for c in a.ATTACKS_REJECTED] + [(c[0], c[1]) for c in a.ATTACKS_ACCEPTED]:
    if len(data) > 16384:
        continue  # the limits cases: the hardening table has them already
    write("request", "attack_" + name, b"\x00" + data)
    write("request", "attack_" + name + "_r7", b"\x06" + data)
for path, (answer, _) in a.SCRIPT.items():
    if path == "/ok":
        continue
    write("response", "attack" + path.replace("/", "_"), answer)
print("seeds written")

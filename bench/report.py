#!/usr/bin/env python3
"""Helper for bench/run (python3 stdlib only).

Subcommands:
  wait-http URL SECONDS              poll URL until it answers 200 (exit 1 on timeout)
  measure --pid PID --proxy NAME --conns C --run K --out FILE --raw FILE --max-seconds S -- WRK...
                                     run one wrk load against a proxy; record requests/s, latency,
                                     errors, CPU ticks used by the proxy's process tree during the
                                     run and its RSS (sampled every 100 ms) into a JSON record
  wrk-summary FILE                   print a one-line summary of a saved wrk output
  record-summary FILE                print a one-line summary of a measure record
  idle --pid PID --port P --connections N --proxy NAME --run K --out FILE
                                     open N keep-alive client connections, one request on each,
                                     then hold them idle and record the proxy's RSS per connection
  burst --pid PID --port P --connections N --proxy NAME --run K --out FILE [--settle S]
                                     open N client connections, send one GET on each at once, read
                                     every answer, hold them idle: peak RSS growth per request in
                                     flight, and RSS per idle connection S seconds after the burst
  stream --pid PID --url URL --proxy NAME --run K --out FILE [--upload-bytes N]
                                     one very large body through the proxy (download, or an
                                     upload of N bytes): MiB/s and the proxy's RSS growth
  syscalls --pid PID --proxy NAME --out FILE -- WRK...
                                     system calls per request: strace -c -f attached to every
                                     thread of the proxy while a request-capped wrk runs
  h2load --pid PID --proxy NAME --load L --streams M --conns C --run K --out FILE --raw FILE
         --max-seconds S -- H2LOAD...
                                     run one h2load (HTTP/2) load against a proxy: requests/s,
                                     negotiated protocol, errors, the proxy's CPU per request and RSS
  h2-idle --pid PID --port P --connections N --proxy NAME --run K --out FILE
                                     open N TLS connections that negotiate h2 by ALPN, one request
                                     on each, then hold them idle: the proxy's RSS per connection
  h2-summary FILE                    print a one-line summary of an h2load record
  cpu-window --pid PID --proxy NAME --load LABEL --run K --out FILE [--seconds S] [--status-url URL]
                                     CPU the proxy's processes use over S seconds with no client
                                     traffic (% of one core), its threads and wake-ups, and the
                                     requests the origin counted meanwhile (nginx stub_status)
  summarize --meta FILE --records DIR --out FILE
                                     median over runs, print the table, write the results JSON
"""

import json
import os
import re
import selectors
import socket
import signal
import ssl
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# ---- /proc -------------------------------------------------------------------------------------

def _stat_fields(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read().decode("ascii", "replace")
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(")") + 2:].split()
    return rest  # rest[0] is field 3 (state)


def process_tree(root):
    """root and all its descendants (by ppid), e.g. nginx master + workers."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(entry)[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(pids):
    """utime+stime of every process (each covers all of its threads)."""
    total = 0
    for p in pids:
        try:
            f = _stat_fields(p)
            total += int(f[11]) + int(f[12])  # fields 14 (utime) and 15 (stime)
        except (OSError, ValueError, IndexError):
            pass
    return total


def system_busy_ticks():
    """non-idle ticks of all CPUs from /proc/stat (user nice system irq softirq steal)."""
    with open("/proc/stat") as f:
        parts = f.readline().split()
    vals = [int(x) for x in parts[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    guest = sum(vals[8:10]) if len(vals) > 9 else 0      # already counted in user/nice
    return sum(vals) - idle - guest


def rss_kb(pids, key="VmRSS"):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
                        break
        except (OSError, ValueError):
            pass
    return total


# ---- wrk output --------------------------------------------------------------------------------

_UNITS_US = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0, "m": 60_000_000.0, "h": 3_600_000_000.0}


def _duration_us(text):
    for unit in ("us", "ms", "s", "m", "h"):
        if text.endswith(unit):
            num = text[: -len(unit)]
            try:
                return float(num) * _UNITS_US[unit]
            except ValueError:
                continue
    return None


def parse_wrk(text):
    r = {"rps": None, "requests": None, "seconds": None, "p50_us": None, "p75_us": None,
         "p90_us": None, "p99_us": None, "p999_us": None, "non2xx": 0, "sock_connect": 0, "sock_read": 0,
         "sock_write": 0, "sock_timeout": 0, "bytes_read": None}
    in_dist = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Latency Distribution"):
            in_dist = True
            continue
        if in_dist:
            parts = line.split()
            if len(parts) == 2 and parts[0].endswith("%"):
                key = {"50%": "p50_us", "75%": "p75_us", "90%": "p90_us", "99%": "p99_us"}.get(parts[0])
                if key:
                    r[key] = _duration_us(parts[1])
                continue
            in_dist = False
        if line.startswith("P99.9:"):
            r["p999_us"] = float(line.split()[1])
        elif line.startswith("Requests/sec:"):
            r["rps"] = float(line.split()[1])
        elif " requests in " in line:
            # "123456 requests in 10.00s, 140.00MB read"
            parts = line.replace(",", "").split()
            r["requests"] = int(parts[0])
            r["seconds"] = (_duration_us(parts[3]) or 0) / 1e6
            size = parts[4]
            for unit, mul in (("KB", 1024), ("MB", 1024 ** 2), ("GB", 1024 ** 3), ("B", 1)):
                if size.endswith(unit):
                    try:
                        r["bytes_read"] = int(float(size[: -len(unit)]) * mul)
                    except ValueError:
                        pass
                    break
        elif line.startswith("Non-2xx or 3xx responses:"):
            r["non2xx"] = int(line.split(":")[1])
        elif line.startswith("Socket errors:"):
            # "Socket errors: connect 0, read 0, write 0, timeout 12"
            body = line.split(":", 1)[1].replace(",", "").split()
            for name, val in zip(body[0::2], body[1::2]):
                r["sock_" + name] = int(val)
    r["errors"] = r["non2xx"] + r["sock_connect"] + r["sock_read"] + r["sock_write"] + r["sock_timeout"]
    return r


# ---- subcommands -------------------------------------------------------------------------------

def cmd_wait_http(argv):
    url, seconds = argv[0], float(argv[1])
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                body = resp.read()
                if resp.status == 200:
                    print(len(body))
                    return 0
        except Exception:
            pass
        time.sleep(0.1)
    return 1


def cmd_measure(argv):
    sep = argv.index("--")
    opts, wrk = argv[:sep], argv[sep + 1:]
    o = dict(zip(opts[0::2], opts[1::2]))
    pid = int(o["--pid"])
    max_seconds = float(o["--max-seconds"])

    pids = process_tree(pid)
    peak = {"rss": rss_kb(pids)}
    stop = threading.Event()

    def sampler():
        while not stop.wait(0.1):
            peak["rss"] = max(peak["rss"], rss_kb(process_tree(pid)))

    proc = None

    def on_term(signum, frame):
        if proc and proc.poll() is None:
            proc.kill()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    t = threading.Thread(target=sampler, daemon=True)
    t.start()
    origin_pids = process_tree(int(o["--origin-pid"])) if "--origin-pid" in o else []
    origin0 = cpu_ticks(origin_pids)
    busy0 = system_busy_ticks()
    kids0 = os.times()
    ticks0 = cpu_ticks(pids)
    t0 = time.monotonic()
    proc = subprocess.Popen(wrk, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=max_seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        out += "\n[bench] wrk killed after %.0f s\n" % max_seconds
    wall = time.monotonic() - t0
    pids_after = process_tree(pid)
    ticks1 = cpu_ticks(sorted(set(pids) | set(pids_after)))
    busy1 = system_busy_ticks()
    origin1 = cpu_ticks(origin_pids)
    kids1 = os.times()
    stop.set()
    t.join()
    rss_after = rss_kb(pids_after)
    peak["rss"] = max(peak["rss"], rss_after)

    with open(o["--raw"], "w") as f:
        f.write(out)
    rec = parse_wrk(out)
    cpu_s = (ticks1 - ticks0) / CLK_TCK
    origin_cpu_s = (origin1 - origin0) / CLK_TCK
    wrk_cpu_s = (kids1.children_user - kids0.children_user) + (kids1.children_system - kids0.children_system)
    busy_s = (busy1 - busy0) / CLK_TCK
    # Everything else on the machine (other jobs, this script): a contention indicator.
    other_cpu_s = max(0.0, busy_s - cpu_s - origin_cpu_s - wrk_cpu_s)
    rec.update({
        "proxy": o["--proxy"], "connections": int(o["--conns"]), "run": int(o["--run"]),
        "load": o.get("--load", "c%s" % o["--conns"]),
        "mib_per_s": _mib_per_s(rec, int(o.get("--upload-bytes", "0"))),
        "wrk_exit": proc.returncode, "wall_s": round(wall, 3), "cpu_s": cpu_s,
        "cpu_s_per_100k": (cpu_s / rec["requests"] * 100_000) if rec["requests"] else None,
        "proxy_cpu_pct": 100 * cpu_s / wall, "origin_cpu_pct": 100 * origin_cpu_s / wall,
        "wrk_cpu_pct": 100 * wrk_cpu_s / wall, "other_cpu_pct": 100 * other_cpu_s / wall,
        "rss_peak_kb": peak["rss"], "rss_after_kb": rss_after, "processes": len(pids_after),
        "raw": o["--raw"],
    })
    with open(o["--out"], "w") as f:
        json.dump(rec, f, indent=1)
    return 0


def _mib_per_s(rec, upload_bytes):
    """Payload throughput: bytes wrk read per second, or the request bodies it sent."""
    if upload_bytes:
        return rec["rps"] * upload_bytes / 2 ** 20 if rec["rps"] else None
    if rec["bytes_read"] and rec["seconds"]:
        return rec["bytes_read"] / rec["seconds"] / 2 ** 20
    return None


def _threads(pids):
    out = []
    for p in pids:
        try:
            out.extend(int(t) for t in os.listdir(f"/proc/{p}/task"))
        except OSError:
            pass
    return out


def cmd_idle(argv):
    """N idle keep-alive connections, each served one request first (so every proxy has set
    up whatever it keeps per connection), then held open while the proxy's RSS is read."""
    o = dict(zip(argv[0::2], argv[1::2]))
    pid, port, n = int(o["--pid"]), int(o["--port"]), int(o["--connections"])
    deadline = time.monotonic() + float(o.get("--max-seconds", "120"))
    pids = process_tree(pid)
    time.sleep(0.5)
    rss0 = rss_kb(pids)
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    sel = selectors.DefaultSelector()
    socks, done, failed = [], 0, 0
    state = {}
    batch = 500  # connects in flight at once (the listen backlog is finite)
    pending = 0
    i = 0
    while (done + failed < n) and time.monotonic() < deadline:
        while i < n and pending < batch:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
            state[s] = bytearray()
            sel.register(s, selectors.EVENT_WRITE)
            pending += 1
            i += 1
        for key, ev in sel.select(timeout=0.5):
            s = key.fileobj
            if ev & selectors.EVENT_WRITE:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    sel.unregister(s)
                    failed += 1
                    pending -= 1
                    continue
                s.send(request)
                sel.modify(s, selectors.EVENT_READ)
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                failed += 1
                pending -= 1
                continue
            buf = state[s]
            buf += data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                continue
            m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", bytes(buf[:end + 2]))
            if m and len(buf) >= end + 4 + int(m.group(1)):
                sel.unregister(s)
                done += 1
                pending -= 1
    time.sleep(1.0)  # let the proxy settle (buffers returned, pools trimmed)
    # Connections the proxy closed in the meantime do not count as idle ones held.
    alive = 0
    for s in socks:
        try:
            alive += 1 if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b"" else 0
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    pids = process_tree(pid)
    rss1 = rss_kb(pids)
    for s in socks:
        s.close()
    rec = {"proxy": o["--proxy"], "load": "idle", "run": int(o.get("--run", "1")),
           "connections": n, "served": done, "failed": failed, "alive": alive,
           "rss_before_kb": rss0, "rss_idle_kb": rss1,
           "bytes_per_idle_conn": (rss1 - rss0) * 1024 / alive if alive else None,
           "errors": failed + (n - alive)}
    with open(o["--out"], "w") as f:
        json.dump(rec, f, indent=1)
    return 0


# ---- HTTP/2 (scenario h2) ------------------------------------------------------------------------

def _h2load_seconds(value, unit):
    return float(value) * {"s": 1, "ms": 1e-3, "us": 1e-6}[unit]


def parse_h2load(text):
    """The numbers of one h2load run; `protocol` is what ALPN selected (None: nothing)."""
    rec = {"rps": None, "seconds": None, "requests": 0, "succeeded": 0, "failed": 0,
           "errored": 0, "timeout": 0, "status_2xx": 0, "bytes_read": None, "protocol": None,
           "mean_us": None}
    m = re.search(r"finished in ([\d.]+)(s|ms|us), ([\d.]+) req/s", text)
    if m:
        rec["seconds"] = _h2load_seconds(m.group(1), m.group(2))
        rec["rps"] = float(m.group(3))
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    if m:
        (rec["requests"], _, _, rec["succeeded"], rec["failed"], rec["errored"],
         rec["timeout"]) = (int(x) for x in m.groups())
    m = re.search(r"status codes: (\d+) 2xx", text)
    if m:
        rec["status_2xx"] = int(m.group(1))
    m = re.search(r"traffic: \S+ \((\d+)\) total", text)
    if m:
        rec["bytes_read"] = int(m.group(1))
    m = re.search(r"Application protocol: (\S+)", text)
    if m:
        rec["protocol"] = m.group(1)
    m = re.search(r"TLS Protocol: (\S+)\s+Cipher: (\S+)", text)
    rec["tls"] = f"{m.group(1)} {m.group(2)}" if m else None
    m = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(s|ms|us)", text)
    if m:
        rec["mean_us"] = _h2load_seconds(m.group(1), m.group(2)) * 1e6
    rec["errors"] = rec["failed"] + rec["errored"] + rec["timeout"] + max(
        0, rec["succeeded"] - rec["status_2xx"])
    return rec


def cmd_h2load(argv):
    """One h2load run, accounted like `measure`: proxy CPU ticks and RSS around it."""
    sep = argv.index("--")
    opts, cmd = argv[:sep], argv[sep + 1:]
    o = dict(zip(opts[0::2], opts[1::2]))
    pid = int(o["--pid"])
    pids = process_tree(pid)
    peak = {"rss": rss_kb(pids)}
    stop = threading.Event()

    def sampler():
        while not stop.wait(0.1):
            peak["rss"] = max(peak["rss"], rss_kb(process_tree(pid)))

    t = threading.Thread(target=sampler, daemon=True)
    t.start()
    ticks0 = cpu_ticks(pids)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=float(o["--max-seconds"]))
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        out += "\n[bench] h2load killed after %s s\n" % o["--max-seconds"]
    wall = time.monotonic() - t0
    pids_after = process_tree(pid)
    ticks1 = cpu_ticks(sorted(set(pids) | set(pids_after)))
    stop.set()
    t.join()
    with open(o["--raw"], "w") as f:
        f.write(out)
    rec = parse_h2load(out)
    cpu_s = (ticks1 - ticks0) / CLK_TCK
    done = rec["status_2xx"]
    rec.update({
        "kind": "h2load", "proxy": o["--proxy"], "load": o["--load"], "run": int(o["--run"]),
        "connections": int(o["--conns"]), "streams": int(o["--streams"]),
        "negotiated": rec["protocol"] == "h2", "h2load_exit": proc.returncode,
        "wall_s": round(wall, 3), "cpu_s": cpu_s,
        "cpu_us_per_req": cpu_s / done * 1e6 if done else None,
        "proxy_cpu_pct": 100 * cpu_s / wall,
        "rss_peak_kb": peak["rss"], "rss_after_kb": rss_kb(pids_after), "raw": o["--raw"],
    })
    if not rec["negotiated"]:
        rec["rps"] = rec["cpu_us_per_req"] = None
    with open(o["--out"], "w") as f:
        json.dump(rec, f, indent=1)
    return 0


def _h2_frames(buf):
    """Splits complete frames off `buf`: ([(type, flags, stream id, payload)], rest)."""
    frames = []
    while len(buf) >= 9:
        length = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + length:
            break
        ftype, flags, sid = struct.unpack(">BBI", buf[3:9])
        frames.append((ftype, flags, sid & 0x7FFFFFFF, buf[9:9 + length]))
        buf = buf[9 + length:]
    return frames, buf


def _h2_one_request(s, authority, deadline):
    """Preface, SETTINGS and GET / on stream 1 over a connected h2 socket; reads until the
    response ended (acknowledging the server's SETTINGS). True on a complete 200 response."""
    # HPACK by hand: :method GET, :scheme https, :path / from the static table, then :authority
    # as a literal without indexing that names static entry 1.
    block = b"\x82\x87\x84\x01" + bytes([len(authority)]) + authority
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + struct.pack(">I", 0)[1:] + b"\x04\x00" +
              struct.pack(">I", 0) + struct.pack(">I", len(block))[1:] + b"\x01\x05" +
              struct.pack(">I", 1) + block)
    buf, status_ok = b"", False
    while time.monotonic() < deadline:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        data = s.recv(65536)
        if not data:
            return False
        frames, buf = _h2_frames(buf + data)
        for ftype, flags, sid, payload in frames:
            if ftype == 4 and not flags & 1:  # SETTINGS: acknowledge
                s.sendall(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
            elif ftype == 7:  # GOAWAY
                return False
            elif ftype == 1 and sid == 1:
                if flags & 0x8:  # PADDED
                    payload = payload[1:len(payload) - payload[0]]
                if flags & 0x20:  # PRIORITY
                    payload = payload[5:]
                while payload[:1] and payload[0] & 0xE0 == 0x20:  # dynamic table size update
                    payload = payload[1:]
                # The first field: ":status: 200" is static table entry 8, one byte 0x88.
                status_ok = status_ok or payload[:1] == b"\x88"
            if sid == 1 and ftype in (0, 1) and flags & 1:
                return status_ok
            if ftype == 3 and sid == 1:  # RST_STREAM
                return False
    return False


def cmd_h2_idle(argv):
    """N idle h2 connections over TLS (ALPN h2), each served one request first, then held open
    while the proxy's RSS is read: RSS growth per connection."""
    o = dict(zip(argv[0::2], argv[1::2]))
    pid, port, n = int(o["--pid"]), int(o["--port"]), int(o["--connections"])
    deadline = time.monotonic() + float(o.get("--max-seconds", "120"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    authority = b"127.0.0.1:%d" % port
    pids = process_tree(pid)
    time.sleep(0.5)
    rss0 = rss_kb(pids)
    socks, done, failed, negotiated = [], 0, 0, None
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
            s = ctx.wrap_socket(raw, server_hostname="bench.test")
        except OSError:
            failed += 1
            continue
        socks.append(s)
        if negotiated is None:
            negotiated = s.selected_alpn_protocol() == "h2"
            if not negotiated:
                break
        try:
            ok = _h2_one_request(s, authority, min(deadline, time.monotonic() + 10))
        except OSError:
            ok = False
        done += ok
        failed += not ok
    time.sleep(1.0)  # let the proxy settle (buffers returned, pools trimmed)
    alive = 0
    for s in socks:
        s.setblocking(False)
        try:
            alive += 1 if s.recv(65536) != b"" else 0  # a frame (PING, GOAWAY): still open
        except (ssl.SSLWantReadError, BlockingIOError):
            alive += 1
        except OSError:
            pass
    rss1 = rss_kb(process_tree(pid))
    for s in socks:
        s.close()
    rec = {"kind": "h2idle", "proxy": o["--proxy"], "load": o.get("--load", "h2-idle"),
           "run": int(o.get("--run", "1")), "connections": n, "served": done, "failed": failed,
           "alive": alive if negotiated else 0, "negotiated": bool(negotiated),
           "rss_before_kb": rss0, "rss_idle_kb": rss1,
           "bytes_per_idle_conn": (rss1 - rss0) * 1024 / alive if negotiated and alive else None,
           "errors": (failed + (n - alive)) if negotiated else 0}
    with open(o["--out"], "w") as f:
        json.dump(rec, f, indent=1)


def _raise_nofile(want):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cmd_burst(argv):
    """N client connections, established first and left quiet; then one GET on every one of
    them at once (a tight send loop), every answer read, and the connections held idle. The
    proxy's RSS is sampled every 2 ms from before the connections to the end of the burst."""
    import select
    o = dict(zip(argv[0::2], argv[1::2]))
    pid, port, n = int(o["--pid"]), int(o["--port"]), int(o["--connections"])
    settle = float(o.get("--settle", "10"))
    deadline = time.monotonic() + float(o.get("--max-seconds", "120"))
    limit = _raise_nofile(n + 100)
    if limit < n + 20:
        print(f"burst: open-file limit {limit} is below {n} connections", file=sys.stderr)
        return 1
    pids = process_tree(pid)
    time.sleep(0.3)
    rss0 = rss_kb(pids)
    request = b"GET /1k HTTP/1.1\r\nHost: bench\r\n\r\n"
    ep = select.epoll()
    socks = {}
    connected, failed, i, pending = 0, 0, 0, 0
    batch = 1000  # connects in flight at once (the listen backlog is finite)
    while connected + failed < n and time.monotonic() < deadline:
        while i < n and pending < batch:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks[s.fileno()] = s
            ep.register(s.fileno(), select.EPOLLOUT)
            pending += 1
            i += 1
        for fd, ev in ep.poll(0.5):
            s = socks[fd]
            ep.unregister(fd)
            pending -= 1
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                failed += 1
                del socks[fd]
                s.close()
            else:
                connected += 1
    time.sleep(0.5)
    rss_connected = rss_kb(pids)

    samples = []
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            samples.append(rss_kb(pids))
            time.sleep(0.002)

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    time.sleep(0.02)
    t0 = time.monotonic()
    for fd, s in socks.items():
        try:
            s.send(request)
        except OSError:
            pass
        ep.register(fd, select.EPOLLIN)
    t_sent = time.monotonic()
    bufs = {fd: b"" for fd in socks}
    done, broken = 0, 0
    open_fds = set(socks)
    while open_fds and time.monotonic() < deadline:
        for fd, ev in ep.poll(0.5):
            try:
                data = socks[fd].recv(65536)
            except OSError:
                data = b""
            if not data:
                ep.unregister(fd)
                open_fds.discard(fd)
                broken += 1
                continue
            buf = bufs[fd] + data
            bufs[fd] = buf
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                continue
            m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", buf[:end + 2])
            if m and len(buf) >= end + 4 + int(m.group(1)):
                ok = buf.startswith(b"HTTP/1.1 200")
                ep.unregister(fd)
                open_fds.discard(fd)
                done += 1 if ok else 0
                broken += 0 if ok else 1
    t_done = time.monotonic()
    time.sleep(0.1)
    stop.set()
    th.join()
    rss_peak = max(samples) if samples else rss_kb(pids)
    rss_after = rss_kb(pids)
    # Idle after the burst: the answers were read; the connections stay open and quiet.
    idle_samples = []
    t_end = time.monotonic() + settle
    while time.monotonic() < t_end:
        time.sleep(min(1.0, max(0.0, t_end - time.monotonic())))
        idle_samples.append(rss_kb(pids))
    alive = 0
    for s in socks.values():
        try:
            alive += 1 if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b"" else 0
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    rss_idle = rss_kb(process_tree(pid))
    for s in socks.values():
        s.close()
    ep.close()
    rec = {"proxy": o["--proxy"], "load": o.get("--load", "burst-c%d" % n), "kind": "burst",
           "run": int(o.get("--run", "1")), "connections": n, "connected": connected,
           "served": done, "failed": failed + broken + (connected - done - broken), "alive": alive,
           "send_ms": (t_sent - t0) * 1000, "burst_ms": (t_done - t0) * 1000,
           "rss_before_kb": rss0, "rss_connected_kb": rss_connected, "rss_peak_kb": rss_peak,
           "rss_after_burst_kb": rss_after, "rss_idle_kb": rss_idle,
           "rss_idle_per_s_kb": idle_samples,
           # Every connection's request was in flight at once (answered or not).
           "bytes_per_inflight": (rss_peak - rss0) * 1024 / connected if connected else None,
           "bytes_per_idle_conn": (rss_idle - rss0) * 1024 / alive if alive else None,
           "errors": failed + broken + (n - alive)}
    with open(o["--out"], "w") as f:
        json.dump(rec, f, indent=1)
    print("burst %-8s %5d served of %d in %.0f ms, peak +%.1f MiB = %.0f B per request in flight,"
          " %.0f B per idle connection after %.0f s (%d alive)" % (
              o["--proxy"], done, n, rec["burst_ms"], (rss_peak - rss0) / 1024,
              rec["bytes_per_inflight"] or 0, rec["bytes_per_idle_conn"] or 0, settle, alive))
    return 0


def cmd_stream(argv):
    """One huge body through the proxy with curl: MiB/s and the proxy's RSS growth (peak during
    the transfer minus RSS before it)."""
    o = dict(zip(argv[0::2], argv[1::2]))
    pid = int(o["--pid"])
    upload = int(o.get("--upload-bytes", "0"))
    pids = process_tree(pid)
    rss0 = rss_kb(pids)
    peak = {"rss": rss0}
    stop = threading.Event()

    def sampler():
        while not stop.wait(0.05):
            peak["rss"] = max(peak["rss"], rss_kb(pids))

    t = threading.Thread(target=sampler, daemon=True)
    t.start()
    ticks0 = cpu_ticks(pids)
    cmd = ["curl", "-s", "-o", "/dev/null", "--max-time", o.get("--max-seconds", "120"),
           "-w", "%{http_code} %{size_download} %{size_upload} %{time_total}"]
    feeder = None
    if upload:
        # A chunked PUT from a pipe: neither curl nor this script holds the body.
        cmd += ["-T", "-", "-H", "Expect:"]
        feeder = subprocess.Popen(["head", "-c", str(upload), "/dev/zero"], stdout=subprocess.PIPE)
        proc = subprocess.run(cmd + [o["--url"]], stdin=feeder.stdout, capture_output=True, text=True)
        feeder.stdout.close()
        feeder.wait()
    else:
        proc = subprocess.run(cmd + [o["--url"]], capture_output=True, text=True)
    ticks1 = cpu_ticks(pids)
    stop.set()
    t.join()
    parts = proc.stdout.split()
    code, down, up, secs = (parts + ["0", "0", "0", "0"])[:4]
    moved = float(up if upload else down)
    ok = code == "200" and moved >= (upload or 1)
    rec = {"proxy": o["--proxy"], "load": o.get("--load", "stream"), "run": int(o.get("--run", "1")),
           "http_code": code, "bytes": moved, "seconds": float(secs),
           "mib_per_s": moved / 2 ** 20 / float(secs) if float(secs) > 0 else None,
           "cpu_s": (ticks1 - ticks0) / CLK_TCK,
           "rss_before_kb": rss0, "rss_peak_kb": peak["rss"],
           "rss_growth_kb": peak["rss"] - rss0, "errors": 0 if ok else 1}
    with open(o["--out"], "w") as f:
        json.dump(rec, f, indent=1)
    return 0


def cmd_syscalls(argv):
    """strace -c -f on every thread of the proxy while a request-capped wrk runs."""
    sep = argv.index("--")
    opts, wrk = argv[:sep], argv[sep + 1:]
    o = dict(zip(opts[0::2], opts[1::2]))
    tids = _threads(process_tree(int(o["--pid"])))
    summary = o["--out"] + ".strace"
    cmd = ["strace", "-c", "-f", "-o", summary]
    for t in tids:
        cmd += ["-p", str(t)]
    tracer = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attach
    out = subprocess.run(wrk, capture_output=True, text=True, timeout=float(o.get("--max-seconds", "120"))).stdout
    time.sleep(0.2)
    tracer.send_signal(signal.SIGINT)
    tracer.wait(timeout=20)
    calls, per_call = 0, {}
    for line in open(summary):
        f = line.split()
        if len(f) >= 5 and f[-1] == "total":
            calls = int(f[3])
        elif len(f) >= 5 and f[0][0].isdigit() and not line.startswith("-"):
            try:
                per_call[f[-1]] = int(f[3])
            except ValueError:
                pass
    r = parse_wrk(out)
    rec = {"proxy": o["--proxy"], "load": "syscalls", "requests": r["requests"], "calls": calls,
           "per_request": calls / r["requests"] if r["requests"] else None,
           "by_call_per_request": {k: round(v / r["requests"], 3) for k, v in
                                   sorted(per_call.items(), key=lambda kv: -kv[1])} if r["requests"] else {},
           "errors": r["errors"]}
    with open(o["--out"], "w") as f:
        json.dump(rec, f, indent=1)
    return 0


def fmt_lat(us):
    if us is None:
        return "-"
    if us >= 1_000_000:
        return f"{us / 1e6:.2f}s"
    if us >= 1000:
        return f"{us / 1000:.2f}ms"
    return f"{us:.0f}us"


def cmd_wrk_summary(argv):
    r = parse_wrk(open(argv[0]).read())
    err = "" if not r["errors"] else (
        f"  ERRORS non2xx={r['non2xx']} connect={r['sock_connect']} read={r['sock_read']} "
        f"write={r['sock_write']} timeout={r['sock_timeout']}")
    rps = f"{r['rps']:.0f}" if r["rps"] is not None else "?"
    print(f"{rps} req/s  p50 {fmt_lat(r['p50_us'])}  p99 {fmt_lat(r['p99_us'])}{err}")
    return 0


def cmd_record_summary(argv):
    r = json.load(open(argv[0]))
    err = "" if not r["errors"] else (
        f"  ERRORS non2xx={r['non2xx']} connect={r['sock_connect']} read={r['sock_read']} "
        f"write={r['sock_write']} timeout={r['sock_timeout']}")
    rps = f"{r['rps']:.0f}" if r["rps"] is not None else "?"
    cpu = f"{r['cpu_s_per_100k']:.2f}" if r["cpu_s_per_100k"] is not None else "?"
    print(f"{rps:>7} req/s  p50 {fmt_lat(r['p50_us']):>7}  p99 {fmt_lat(r['p99_us']):>8}  "
          f"CPU {cpu} s/100k  | %core: proxy {r['proxy_cpu_pct']:.0f} origin {r['origin_cpu_pct']:.0f} "
          f"wrk {r['wrk_cpu_pct']:.0f} other {r['other_cpu_pct']:.0f}{err}")
    return 0


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _ratio(a, b):
    return (a / b) if (a is not None and b) else None


def _best_ratio(per, key, pick, harrow="harrow"):
    """Harrow's value over the best peer's (pick = max or min), with the peer's name."""
    if harrow not in per or per[harrow].get(key) is None:
        return {"ratio": None, "best_peer": None}
    cand = [(per[p][key], p) for p in per if p != harrow and per[p].get(key) is not None]
    if not cand:
        return {"ratio": None, "best_peer": None}
    v, name = pick(cand)
    return {"ratio": _ratio(per[harrow][key], v), "best_peer": name}


def _fmt_ratio(r):
    return ("x%.2f" % r["ratio"] if r["ratio"] is not None else "-") + f" (vs {r['best_peer']})"


def _errors_note(w, per):
    for p, s in per.items():
        if s.get("errors"):
            w(f"!! {p}: {s['errors']} errors over {s['runs']} runs")


def _table_wrk(w, rs_load, names):
    per = {}
    for p in names:
        rs = [r for r in rs_load if r["proxy"] == p]
        per[p] = {
            "runs": len(rs),
            "connections": rs[0]["connections"],
            "rps": _median([r["rps"] for r in rs]),
            "mib_per_s": _median([r.get("mib_per_s") for r in rs]),
            "p50_us": _median([r["p50_us"] for r in rs]),
            "p99_us": _median([r["p99_us"] for r in rs]),
            "p999_us": _median([r.get("p999_us") for r in rs]),
            "cpu_s_per_100k": _median([r["cpu_s_per_100k"] for r in rs]),
            "other_cpu_pct": _median([r.get("other_cpu_pct") for r in rs]),
            "rss_peak_kb": _median([r["rss_peak_kb"] for r in rs]),
            "rss_after_kb": _median([r["rss_after_kb"] for r in rs]),
            "bytes_per_req": _median([(r["bytes_read"] / r["requests"]) if r["requests"] and r["bytes_read"] else None for r in rs]),
            "errors": sum(r["errors"] for r in rs),
            "rps_all": [r["rps"] for r in sorted(rs, key=lambda r: r["run"])],
        }
    hdr = (f"{'proxy':<15}{'req/s':>9}{'MiB/s':>8}{'p50':>9}{'p99':>9}{'p99.9':>9}{'CPU s/100k':>11}"
           f"{'RSS peak':>10}{'B/req':>8}{'errors':>7}  req/s per run")
    w(hdr)
    w("-" * len(hdr))
    for p, s in per.items():
        cpu = f"{s['cpu_s_per_100k']:.2f}" if s["cpu_s_per_100k"] is not None else "-"
        rps = f"{s['rps']:.0f}" if s["rps"] is not None else "-"
        mib = f"{s['mib_per_s']:.0f}" if s["mib_per_s"] is not None else "-"
        bpr = f"{s['bytes_per_req']:.0f}" if s["bytes_per_req"] else "-"
        runs = " ".join(f"{x:.0f}" if x is not None else "?" for x in s["rps_all"])
        w(f"{p:<15}{rps:>9}{mib:>8}{fmt_lat(s['p50_us']):>9}{fmt_lat(s['p99_us']):>9}"
          f"{fmt_lat(s['p999_us']):>9}{cpu:>11}{s['rss_peak_kb'] / 1024:>8.1f}MB{bpr:>8}{s['errors']:>7}  {runs}")
    ratios = {}
    if "harrow" in per:
        ratios = {
            "rps": _best_ratio(per, "rps", max), "p99": _best_ratio(per, "p99_us", min),
            "p999": _best_ratio(per, "p999_us", min),
            "cpu_per_req": _best_ratio(per, "cpu_s_per_100k", min),
            "rss_peak": _best_ratio(per, "rss_peak_kb", min)}
        w(f"harrow vs best peer: req/s {_fmt_ratio(ratios['rps'])} higher=better | p99 "
          f"{_fmt_ratio(ratios['p99'])} | p99.9 {_fmt_ratio(ratios['p999'])} | CPU/req "
          f"{_fmt_ratio(ratios['cpu_per_req'])} lower=better | RSS peak {_fmt_ratio(ratios['rss_peak'])}")
    elif "harrow-farm2" in per and "harrow-farm50" in per:
        a, b = per["harrow-farm50"], per["harrow-farm2"]
        ratios = {"farm50_vs_farm2_rps": _ratio(a["rps"], b["rps"]),
                  "farm50_vs_farm2_cpu": _ratio(a["cpu_s_per_100k"], b["cpu_s_per_100k"])}
        w("50-server farm vs 2-server farm: req/s x%.3f, CPU/req x%.3f" % (
            ratios["farm50_vs_farm2_rps"] or 0, ratios["farm50_vs_farm2_cpu"] or 0))
    busy = max((s["other_cpu_pct"] or 0) for s in per.values()) if per else 0
    if busy >= 10:
        w(f"note: other processes used up to {busy:.0f}% of a core during the runs (median per "
          f"proxy) — the machine was shared; trust CPU/req and ratios more than req/s")
    _errors_note(w, per)
    return {"proxies": per, "harrow_vs_best_peer": ratios}


def _table_idle(w, rs_load, names):
    per = {}
    for p in names:
        rs = [r for r in rs_load if r["proxy"] == p]
        per[p] = {"runs": len(rs), "connections": rs[0]["connections"],
                  "alive": _median([r["alive"] for r in rs]),
                  "rss_before_kb": _median([r["rss_before_kb"] for r in rs]),
                  "rss_idle_kb": _median([r["rss_idle_kb"] for r in rs]),
                  "bytes_per_idle_conn": _median([r["bytes_per_idle_conn"] for r in rs]),
                  "errors": sum(r["errors"] for r in rs)}
    hdr = f"{'proxy':<15}{'idle conns':>11}{'RSS before':>12}{'RSS idle':>12}{'B/idle conn':>13}{'errors':>7}"
    w(hdr)
    w("-" * len(hdr))
    for p, s in per.items():
        b = f"{s['bytes_per_idle_conn']:.0f}" if s["bytes_per_idle_conn"] is not None else "-"
        w(f"{p:<15}{s['alive']:>11.0f}{s['rss_before_kb'] / 1024:>10.1f}MB{s['rss_idle_kb'] / 1024:>10.1f}MB{b:>13}{s['errors']:>7}")
    ratios = {"bytes_per_idle_conn": _best_ratio(per, "bytes_per_idle_conn", min)}
    w(f"harrow vs best peer: bytes per idle connection {_fmt_ratio(ratios['bytes_per_idle_conn'])} lower=better")
    _errors_note(w, per)
    return {"proxies": per, "harrow_vs_best_peer": ratios}


def _spread(values):
    values = [v for v in values if v is not None]
    return (min(values), max(values)) if values else (None, None)


def _table_burst(w, rs_load, names):
    per = {}
    for p in names:
        rs = sorted((r for r in rs_load if r["proxy"] == p), key=lambda r: r["run"])
        inflight = [r["bytes_per_inflight"] for r in rs]
        idle = [r["bytes_per_idle_conn"] for r in rs]
        per[p] = {"runs": len(rs), "connections": rs[0]["connections"],
                  "served": _median([r["served"] for r in rs]),
                  "burst_ms": _median([r["burst_ms"] for r in rs]),
                  "rss_before_kb": _median([r["rss_before_kb"] for r in rs]),
                  "rss_peak_growth_kb": _median([r["rss_peak_kb"] - r["rss_before_kb"] for r in rs]),
                  "bytes_per_inflight": _median(inflight),
                  "bytes_per_inflight_spread": _spread(inflight),
                  "bytes_per_idle_conn": _median(idle),
                  "bytes_per_idle_conn_spread": _spread(idle),
                  "bytes_per_inflight_all": inflight, "bytes_per_idle_conn_all": idle,
                  "errors": sum(r["errors"] for r in rs)}
    hdr = (f"{'proxy':<10}{'served':>8}{'burst ms':>10}{'RSS before':>12}{'peak growth':>13}"
           f"{'B/in flight':>13}{'(min-max)':>16}{'B/idle conn':>13}{'(min-max)':>16}{'errors':>7}")
    w(hdr)
    w("-" * len(hdr))

    def rng(sp):
        return "-" if sp[0] is None else f"{sp[0]:.0f}-{sp[1]:.0f}"

    for p, s in per.items():
        w(f"{p:<10}{s['served']:>8.0f}{s['burst_ms']:>10.0f}{s['rss_before_kb'] / 1024:>10.1f}MB"
          f"{s['rss_peak_growth_kb'] / 1024:>11.1f}MB{s['bytes_per_inflight'] or 0:>13.0f}"
          f"{rng(s['bytes_per_inflight_spread']):>16}{s['bytes_per_idle_conn'] or 0:>13.0f}"
          f"{rng(s['bytes_per_idle_conn_spread']):>16}{s['errors']:>7}")
    ratios = {"bytes_per_inflight": _best_ratio(per, "bytes_per_inflight", min),
              "bytes_per_idle_conn": _best_ratio(per, "bytes_per_idle_conn", min)}
    w(f"harrow vs best peer: memory per request in flight {_fmt_ratio(ratios['bytes_per_inflight'])} | "
      f"per idle connection after the burst {_fmt_ratio(ratios['bytes_per_idle_conn'])} lower=better")
    _errors_note(w, per)
    return {"proxies": per, "harrow_vs_best_peer": ratios}


def _ctx_switches(pids):
    """voluntary + involuntary context switches of every thread: how often they woke up."""
    total = 0
    for t in _threads(pids):
        try:
            with open(f"/proc/{t}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total


def _origin_requests(url):
    if not url:
        return None
    try:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        return int(text.splitlines()[2].split()[2])  # "accepts handled requests" line
    except (OSError, ValueError, IndexError):
        return None


def cmd_cpu_window(argv):
    o = dict(zip(argv[0::2], argv[1::2]))
    pid, seconds = int(o["--pid"]), float(o.get("--seconds", "10"))
    pids = process_tree(pid)
    c0, w0, r0, t0 = cpu_ticks(pids), _ctx_switches(pids), _origin_requests(o.get("--status-url")), time.monotonic()
    time.sleep(seconds)
    pids = process_tree(pid)
    c1, w1, r1, t1 = cpu_ticks(pids), _ctx_switches(pids), _origin_requests(o.get("--status-url")), time.monotonic()
    wall = t1 - t0
    # The status request itself is one of the origin's requests.
    probes = (r1 - r0 - 1) if (r0 is not None and r1 is not None) else None
    rec = {"proxy": o["--proxy"], "load": o["--load"], "kind": "cpu-window", "run": int(o.get("--run", "1")),
           "seconds": wall, "cpu_pct": 100.0 * (c1 - c0) / CLK_TCK / wall,
           "threads": len(_threads(pids)), "wakeups_per_s": (w1 - w0) / wall,
           "probes_per_s": probes / wall if probes is not None else None,
           "cpu_us_per_probe": (1e6 * (c1 - c0) / CLK_TCK / probes) if probes else None,
           "errors": 0}
    with open(o["--out"], "w") as f:
        json.dump(rec, f, indent=1)
    print("%-14s %-8s run %d: %.2f%% of a core, %d threads, %.0f wake-ups/s%s" % (
        o["--load"], o["--proxy"], rec["run"], rec["cpu_pct"], rec["threads"], rec["wakeups_per_s"],
        "" if rec["probes_per_s"] is None else ", %.0f probes/s, %.0f us CPU per probe" % (
            rec["probes_per_s"], rec["cpu_us_per_probe"] or 0)))
    return 0


def _table_cpu_window(w, rs_load, names):
    per = {}
    for p in names:
        rs = sorted((r for r in rs_load if r["proxy"] == p), key=lambda r: r["run"])
        cpu = [r["cpu_pct"] for r in rs]
        per[p] = {"runs": len(rs), "cpu_pct": _median(cpu), "cpu_pct_spread": _spread(cpu),
                  "cpu_pct_all": cpu, "threads": _median([r["threads"] for r in rs]),
                  "wakeups_per_s": _median([r["wakeups_per_s"] for r in rs]),
                  "probes_per_s": _median([r["probes_per_s"] for r in rs]),
                  "cpu_us_per_probe": _median([r["cpu_us_per_probe"] for r in rs]), "errors": 0}
    hdr = (f"{'proxy':<10}{'% of a core':>12}{'(min-max)':>14}{'threads':>9}{'wake-ups/s':>12}"
           f"{'probes/s':>10}{'us/probe':>10}")
    w(hdr)
    w("-" * len(hdr))
    for p, s in per.items():
        sp = s["cpu_pct_spread"]
        rng = "-" if sp[0] is None else f"{sp[0]:.2f}-{sp[1]:.2f}"
        pr = "-" if s["probes_per_s"] is None else f"{s['probes_per_s']:.0f}"
        us = "-" if s["cpu_us_per_probe"] is None else f"{s['cpu_us_per_probe']:.1f}"
        w(f"{p:<10}{s['cpu_pct']:>12.2f}{rng:>14}{s['threads']:>9.0f}{s['wakeups_per_s']:>12.0f}{pr:>10}{us:>10}")
    ratios = {"cpu_pct": _best_ratio(per, "cpu_pct", min)}
    w(f"harrow vs best peer: CPU {_fmt_ratio(ratios['cpu_pct'])} lower=better")
    return {"proxies": per, "harrow_vs_best_peer": ratios}


def _table_stream(w, rs_load, names):
    per = {}
    for p in names:
        rs = [r for r in rs_load if r["proxy"] == p]
        per[p] = {"runs": len(rs), "mib_per_s": _median([r["mib_per_s"] for r in rs]),
                  "cpu_s": _median([r["cpu_s"] for r in rs]),
                  "rss_before_kb": _median([r["rss_before_kb"] for r in rs]),
                  "rss_growth_kb": _median([r["rss_growth_kb"] for r in rs]),
                  "errors": sum(r["errors"] for r in rs)}
    hdr = f"{'proxy':<15}{'MiB/s':>8}{'CPU s':>8}{'RSS before':>12}{'RSS growth':>12}{'errors':>7}"
    w(hdr)
    w("-" * len(hdr))
    for p, s in per.items():
        mib = f"{s['mib_per_s']:.0f}" if s["mib_per_s"] is not None else "-"
        w(f"{p:<15}{mib:>8}{s['cpu_s']:>8.2f}{s['rss_before_kb'] / 1024:>10.1f}MB{s['rss_growth_kb'] / 1024:>10.1f}MB{s['errors']:>7}")
    ratios = {"mib_per_s": _best_ratio(per, "mib_per_s", max),
              "rss_growth": _best_ratio(per, "rss_growth_kb", min)}
    w(f"harrow vs best peer: MiB/s {_fmt_ratio(ratios['mib_per_s'])} higher=better | RSS growth "
      f"{_fmt_ratio(ratios['rss_growth'])} lower=better")
    _errors_note(w, per)
    return {"proxies": per, "harrow_vs_best_peer": ratios}


def _table_syscalls(w, rs_load, names):
    per = {}
    for p in names:
        r = [r for r in rs_load if r["proxy"] == p][-1]
        per[p] = {"runs": 1, "requests": r["requests"], "calls": r["calls"],
                  "per_request": r["per_request"], "by_call_per_request": r["by_call_per_request"],
                  "errors": r["errors"]}
    hdr = f"{'proxy':<15}{'requests':>10}{'syscalls':>10}{'per req':>9}  top calls per request"
    w(hdr)
    w("-" * len(hdr))
    for p, s in per.items():
        top = " ".join(f"{k}={v}" for k, v in list(s["by_call_per_request"].items())[:6])
        pr = f"{s['per_request']:.2f}" if s["per_request"] is not None else "-"
        w(f"{p:<15}{s['requests'] or 0:>10}{s['calls']:>10}{pr:>9}  {top}")
    ratios = {"per_request": _best_ratio(per, "per_request", min)}
    w(f"harrow vs best peer: syscalls per request {_fmt_ratio(ratios['per_request'])} lower=better")
    return {"proxies": per, "harrow_vs_best_peer": ratios}


def _relative_spread(values):
    values = [v for v in values if v is not None]
    if len(values) < 2 or not _median(values):
        return None
    return (max(values) - min(values)) / _median(values)


def _table_h2load(w, rs_load, names):
    per = {}
    for p in names:
        rs = [r for r in rs_load if r["proxy"] == p]
        ok = all(r["negotiated"] for r in rs)
        per[p] = {
            "runs": len(rs), "negotiated": ok, "protocol": rs[0]["protocol"],
            "connections": rs[0]["connections"], "streams": rs[0]["streams"],
            "rps": _median([r["rps"] for r in rs]) if ok else None,
            "rps_spread": _relative_spread([r["rps"] for r in rs]) if ok else None,
            "mean_us": _median([r["mean_us"] for r in rs]) if ok else None,
            "cpu_us_per_req": _median([r["cpu_us_per_req"] for r in rs]) if ok else None,
            "rss_peak_kb": _median([r["rss_peak_kb"] for r in rs]),
            "errors": sum(r["errors"] for r in rs) if ok else 0,
            "rps_all": [r["rps"] for r in sorted(rs, key=lambda r: r["run"])],
        }
    hdr = (f"{'proxy':<15}{'req/s':>9}{'spread':>8}{'mean':>9}{'CPU us/req':>11}{'RSS peak':>10}"
           f"{'errors':>7}  req/s per run")
    w(hdr)
    w("-" * len(hdr))
    for p, s in per.items():
        if not s["negotiated"]:
            w(f"{p:<15}  h2 not negotiated (ALPN selected {s['protocol'] or 'nothing'})")
            continue
        rps = f"{s['rps']:.0f}" if s["rps"] is not None else "-"
        spread = f"{100 * s['rps_spread']:.0f}%" if s["rps_spread"] is not None else "-"
        cpu = f"{s['cpu_us_per_req']:.1f}" if s["cpu_us_per_req"] is not None else "-"
        runs = " ".join(f"{x:.0f}" if x is not None else "?" for x in s["rps_all"])
        w(f"{p:<15}{rps:>9}{spread:>8}{fmt_lat(s['mean_us']):>9}{cpu:>11}"
          f"{s['rss_peak_kb'] / 1024:>8.1f}MB{s['errors']:>7}  {runs}")
    tls = sorted({r["tls"] for r in rs_load if r.get("tls")})
    w(f"TLS as negotiated by h2load: {', '.join(tls) or '?'}; spread = (max - min) / median")
    ratios = {"rps": _best_ratio(per, "rps", max),
              "cpu_per_req": _best_ratio(per, "cpu_us_per_req", min)}
    if "harrow" in per and not per["harrow"]["negotiated"]:
        w("harrow vs best peer: - (h2 not negotiated)")
    else:
        w(f"harrow vs best peer: req/s {_fmt_ratio(ratios['rps'])} higher=better | CPU/req "
          f"{_fmt_ratio(ratios['cpu_per_req'])} lower=better")
    _errors_note(w, per)
    return {"proxies": per, "harrow_vs_best_peer": ratios}


def _table_h2_idle(w, rs_load, names):
    per = {}
    for p in names:
        rs = [r for r in rs_load if r["proxy"] == p]
        ok = all(r["negotiated"] for r in rs)
        per[p] = {"runs": len(rs), "negotiated": ok, "connections": rs[0]["connections"],
                  "alive": _median([r["alive"] for r in rs]),
                  "rss_before_kb": _median([r["rss_before_kb"] for r in rs]),
                  "rss_idle_kb": _median([r["rss_idle_kb"] for r in rs]),
                  "bytes_per_idle_conn": _median([r["bytes_per_idle_conn"] for r in rs]),
                  "errors": sum(r["errors"] for r in rs)}
    hdr = f"{'proxy':<15}{'idle h2 conns':>14}{'RSS before':>12}{'RSS idle':>12}{'B/idle conn':>13}{'errors':>7}"
    w(hdr)
    w("-" * len(hdr))
    for p, s in per.items():
        if not s["negotiated"]:
            w(f"{p:<15}  h2 not negotiated")
            continue
        b = f"{s['bytes_per_idle_conn']:.0f}" if s["bytes_per_idle_conn"] is not None else "-"
        w(f"{p:<15}{s['alive']:>14.0f}{s['rss_before_kb'] / 1024:>10.1f}MB"
          f"{s['rss_idle_kb'] / 1024:>10.1f}MB{b:>13}{s['errors']:>7}")
    ratios = {"bytes_per_idle_conn": _best_ratio(per, "bytes_per_idle_conn", min)}
    if "harrow" in per and not per["harrow"]["negotiated"]:
        w("harrow vs best peer: - (h2 not negotiated)")
    else:
        w(f"harrow vs best peer: bytes per idle h2 connection "
          f"{_fmt_ratio(ratios['bytes_per_idle_conn'])} lower=better")
    _errors_note(w, per)
    return {"proxies": per, "harrow_vs_best_peer": ratios}


def cmd_h2_summary(argv):
    r = json.load(open(argv[0]))
    if not r["negotiated"]:
        print(f"h2 not negotiated (ALPN selected {r['protocol'] or 'nothing'})")
        return 0
    cpu = f"{r['cpu_us_per_req']:.1f}" if r["cpu_us_per_req"] is not None else "?"
    rps = f"{r['rps']:.0f}" if r["rps"] is not None else "?"
    err = f"  ERRORS {r['errors']}" if r["errors"] else ""
    print(f"{rps:>7} req/s  mean {fmt_lat(r['mean_us']):>8}  CPU {cpu} us/req  "
          f"proxy {r['proxy_cpu_pct']:.0f}% core{err}")
    return 0


def cmd_summarize(argv):
    o = dict(zip(argv[0::2], argv[1::2]))
    meta = json.load(open(o["--meta"]))
    recs = []
    for name in sorted(os.listdir(o["--records"])):
        if name.endswith(".json"):
            recs.append(json.load(open(os.path.join(o["--records"], name))))

    origin = {}
    for name, path in meta.pop("origin_raw", {}).items():
        try:
            r = parse_wrk(open(path).read())
        except OSError:
            r = {"rps": None, "p50_us": None, "p99_us": None, "errors": None}
        origin[name] = {k: r[k] for k in ("rps", "p50_us", "p99_us", "errors")}
    meta["origin_direct"] = origin

    def orig(name):
        r = origin.get(name, {})
        if r.get("rps") is None:
            return f"{name} ?"
        err = f", {r['errors']} errors" if r["errors"] else ""
        return f"{name} {r['rps']:.0f} req/s (p99 {fmt_lat(r['p99_us'])}{err})"

    summary = {}
    lines = []
    w = lines.append
    w("")
    w(f"Harrow vs nginx vs HAProxy — workers={meta['workers']}  wrk -t1 -d{meta['duration']}s  "
      f"runs={meta['runs']} (median)  origin: nginx return 200, {meta['body_bytes']} B body")
    w(f"origin direct (wrk -t1 -c50 -d{meta['origin_duration']}s): "
      f"{orig('nginx')}, {orig('harrow-origin')}")
    if meta.get("loadavg"):
        w(f"machine: {meta.get('cpus')} CPUs, kernel {meta.get('kernel')}, load average before: {meta['loadavg']}")
    order = meta.get("loads") or []
    for r in recs:
        r.setdefault("load", "c%d" % r.get("connections", 0))
        if r["load"] not in order:
            order.append(r["load"])
    for load in order:
        rs_load = [r for r in recs if r["load"] == load]
        if not rs_load:
            continue
        kind = rs_load[0].get("kind") or (
            rs_load[0]["load"] if rs_load[0]["load"] in ("idle", "syscalls") else (
                "stream" if "rss_growth_kb" in rs_load[0] else "wrk"))
        names = []
        for p in meta["proxies"] + sorted({r["proxy"] for r in rs_load}):
            if p not in names and any(r["proxy"] == p for r in rs_load):
                names.append(p)
        w("")
        w(f"load {load}" + (f" — {meta['load_notes'][load]}" if load in meta.get("load_notes", {}) else ""))
        fn = {"wrk": _table_wrk, "idle": _table_idle, "burst": _table_burst,
              "cpu-window": _table_cpu_window, "stream": _table_stream,
              "syscalls": _table_syscalls, "h2load": _table_h2load, "h2idle": _table_h2_idle}[kind]
        summary[load] = fn(w, rs_load, names)

    result = {"meta": meta, "summary": summary, "runs": recs}
    with open(o["--out"], "w") as f:
        json.dump(result, f, indent=1)
    w("")
    w(f"results: {o['--out']}")
    print("\n".join(lines))
    return 0


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, argv = sys.argv[1], sys.argv[2:]
    fn = {"wait-http": cmd_wait_http, "measure": cmd_measure, "wrk-summary": cmd_wrk_summary,
          "record-summary": cmd_record_summary,
          "idle": cmd_idle, "stream": cmd_stream, "syscalls": cmd_syscalls,
          "h2load": cmd_h2load, "h2-idle": cmd_h2_idle, "h2-summary": cmd_h2_summary,
          "burst": cmd_burst, "cpu-window": cmd_cpu_window,
          "summarize": cmd_summarize}.get(cmd)
    if not fn:
        print(__doc__, file=sys.stderr)
        return 2
    return fn(argv)


if __name__ == "__main__":
    sys.exit(main())

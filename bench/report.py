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
  summarize --meta FILE --records DIR --out FILE
                                     median over runs, print the table, write the results JSON
"""

import json
import os
import signal
import statistics
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
         "p90_us": None, "p99_us": None, "non2xx": 0, "sock_connect": 0, "sock_read": 0,
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
        if line.startswith("Requests/sec:"):
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

    proxies = meta["proxies"]
    conns_levels = sorted({r["connections"] for r in recs})
    summary = {}
    lines = []
    w = lines.append
    w("")
    w(f"Harrow vs nginx vs HAProxy — workers={meta['workers']}  wrk -t1 -d{meta['duration']}s  "
      f"runs={meta['runs']} (median)  origin: nginx return 200, {meta['body_bytes']} B body")
    w(f"origin direct (wrk -t1 -c50 -d{meta['origin_duration']}s): "
      f"{orig('nginx')}, {orig('harrow-origin')}")
    for c in conns_levels:
        per = {}
        for p in proxies:
            rs = [r for r in recs if r["proxy"] == p and r["connections"] == c]
            if not rs:
                continue
            per[p] = {
                "runs": len(rs),
                "rps": _median([r["rps"] for r in rs]),
                "p50_us": _median([r["p50_us"] for r in rs]),
                "p99_us": _median([r["p99_us"] for r in rs]),
                "cpu_s_per_100k": _median([r["cpu_s_per_100k"] for r in rs]),
                "other_cpu_pct": _median([r.get("other_cpu_pct") for r in rs]),
                "rss_peak_kb": _median([r["rss_peak_kb"] for r in rs]),
                "rss_after_kb": _median([r["rss_after_kb"] for r in rs]),
                "bytes_per_req": _median([(r["bytes_read"] / r["requests"]) if r["requests"] and r["bytes_read"] else None for r in rs]),
                "errors": sum(r["errors"] for r in rs),
                "non2xx": sum(r["non2xx"] for r in rs),
                "sock_connect": sum(r["sock_connect"] for r in rs),
                "sock_read": sum(r["sock_read"] for r in rs),
                "sock_write": sum(r["sock_write"] for r in rs),
                "sock_timeout": sum(r["sock_timeout"] for r in rs),
                "rps_all": [r["rps"] for r in sorted(rs, key=lambda r: r["run"])],
            }
        peers = [p for p in per if p != "harrow"]
        ratios = {}
        if "harrow" in per and peers:
            h = per["harrow"]

            def best(key, pick):
                cand = [(per[p][key], p) for p in peers if per[p][key] is not None]
                return pick(cand) if cand else (None, None)

            b_rps = best("rps", max)
            b_p99 = best("p99_us", min)
            b_cpu = best("cpu_s_per_100k", min)
            b_rss = best("rss_peak_kb", min)
            ratios = {
                "rps": {"ratio": _ratio(h["rps"], b_rps[0]), "best_peer": b_rps[1], "better": "higher"},
                "p99": {"ratio": _ratio(h["p99_us"], b_p99[0]), "best_peer": b_p99[1], "better": "lower"},
                "cpu_per_req": {"ratio": _ratio(h["cpu_s_per_100k"], b_cpu[0]), "best_peer": b_cpu[1], "better": "lower"},
                "rss_peak": {"ratio": _ratio(h["rss_peak_kb"], b_rss[0]), "best_peer": b_rss[1], "better": "lower"},
            }
        summary[str(c)] = {"proxies": per, "harrow_vs_best_peer": ratios}

        w("")
        w(f"connections={c}")
        hdr = f"{'proxy':<9}{'req/s':>10}{'p50':>10}{'p99':>10}{'CPU s/100k':>12}{'RSS peak':>10}{'RSS after':>10}{'B/req':>7}{'errors':>8}  req/s per run"
        w(hdr)
        w("-" * len(hdr))
        for p in proxies:
            if p not in per:
                continue
            s = per[p]
            cpu = f"{s['cpu_s_per_100k']:.2f}" if s["cpu_s_per_100k"] is not None else "-"
            rps = f"{s['rps']:.0f}" if s["rps"] is not None else "-"
            bpr = f"{s['bytes_per_req']:.0f}" if s["bytes_per_req"] else "-"
            runs = " ".join(f"{x:.0f}" if x is not None else "?" for x in s["rps_all"])
            w(f"{p:<9}{rps:>10}{fmt_lat(s['p50_us']):>10}{fmt_lat(s['p99_us']):>10}{cpu:>12}"
              f"{s['rss_peak_kb'] / 1024:>8.1f}MB{s['rss_after_kb'] / 1024:>8.1f}MB{bpr:>7}{s['errors']:>8}  {runs}")
        if ratios:
            def f(k):
                v = ratios[k]["ratio"]
                return ("x%.2f" % v if v is not None else "-") + f" (vs {ratios[k]['best_peer']})"
            w(f"harrow vs best peer: req/s {f('rps')} higher=better | p99 {f('p99')} lower=better | "
              f"CPU/req {f('cpu_per_req')} lower=better | RSS peak {f('rss_peak')}")
        busy = max((per[p]["other_cpu_pct"] or 0) for p in per) if per else 0
        if busy >= 10:
            w(f"note: other processes used up to {busy:.0f}% of a core during the runs (median per "
              f"proxy) — the machine was shared; trust CPU/req and ratios more than req/s")
        for p in proxies:
            s = per.get(p)
            if s and s["errors"]:
                w(f"!! {p}: {s['errors']} wrk errors over {s['runs']} runs: non2xx={s['non2xx']} "
                  f"connect={s['sock_connect']} read={s['sock_read']} write={s['sock_write']} "
                  f"timeout={s['sock_timeout']}")

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
          "summarize": cmd_summarize}.get(cmd)
    if not fn:
        print(__doc__, file=sys.stderr)
        return 2
    return fn(argv)


if __name__ == "__main__":
    sys.exit(main())

"""The rotate part: rotating knocks (issue 12): knock-to-open latency of a rotating 3-knock
sequence against the fixed 3-knock sequence and a plain TCP handshake, legitimate sequences
under a flood of random datagrams to the rotating range, and kernel memory, apply time and
ordinary traffic's packet rate with a 24 h horizon at 1, 10 and 100 rotating sequences
(scripts/bench.md, "rotate"). It runs on the spa part's helpers."""
import json
import os
import subprocess
import sys

from .lab import (CONNECT, CLIENT_IP, FLOOD_KNOCKS, FLOOD_NET, FLOOD_PORT, KNOCK, SERVER_IP, BenchError, fmt_ms,
                  log, percentile, run)
from .spa import (HANDSHAKE_PORT, PacketFlood, flood_row, listener, measure_scale, scale_rows, secret_spec,
                  write_secret)
from .trafgen import ensure_trafgen

EVERY_S = 30
PROTOCOLS = ["tcp", "udp", "tcp"]
LOW, HIGH = 20000, 40000     # rot000's range; sequence i's is shifted by i * RANGE_STEP
RANGE_STEP = 100             # 100 sequences: 20000-40000 up to 29900-49900, each its own
NAME = "rot000"              # the sequence of the latency and flood measurements

# The derivation of the rotating ports, as knockc computes it (KnockDerivation.rotatingPorts):
# per epoch, a keyed 8-round Feistel permutation of knock slots onto the range, so no port
# serves two knocks within an epoch.
ROTATING_PORTS = r'''
import hmac, hashlib, struct
def rotating_ports(key, name, w, protocols, lo, hi):
    n, size = len(protocols), hi - lo + 1
    per_epoch = size // n                     # windows per epoch
    epoch = w // per_epoch                    # Python's // floors, as the derivation does
    h = max(1, ((size - 1).bit_length() + 1) // 2)
    def f(r, right):
        m = b"knockc-v1\0rotate\0" + name.encode() + b"\0" + struct.pack(">qI", epoch, r << 16 | right)
        return int.from_bytes(hmac.new(key, m, hashlib.sha256).digest()[:4], "big") % (1 << h)
    table = [[f(r, right) for right in range(1 << h)] for r in range(8)]
    def permute(x):
        left, right = x >> h, x & ((1 << h) - 1)
        for r in range(8):
            left, right = right, left ^ table[r][right]
        return left << h | right
    knocks = []
    for i, proto in enumerate(protocols):
        x = permute((w - epoch * per_epoch) * n + i)
        while x >= size:
            x = permute(x)
        knocks.append("%s/%d" % (proto, lo + x))
    return knocks
'''

# One line per attempt. Each try makes one attempt per method, the first method taking turns:
# `handshake` times a connect to the open port; `fixed` and `rotate` derive the current
# window's ports (`rotate`), reset the state and check that the guarded port refuses (all
# untimed), then time from the first knock sent until a connect to the guarded port succeeds
# (connects refused are retried within `open_within_s`).
CLIENT = CONNECT + KNOCK + ROTATING_PORTS + r"""
import json, subprocess, sys, time
cfg = json.loads(sys.argv[1])
host, guarded, rotate = cfg["host"], cfg["guarded"], cfg["rotate"]
secret = bytes.fromhex(rotate["secret"])

derived = {}

def knocks(method):
    if method == "fixed":
        return [tuple(k) for k in cfg["fixed"]]
    # Once per window: a derivation is thousands of HMACs, whose milliseconds of CPU just
    # before t0 would show in the timed part (the scheduler's doing, not the knock's).
    window = int(time.time()) // rotate["every"]
    if window not in derived:
        words = rotating_ports(secret, rotate["name"], window, rotate["knocks"], rotate["low"], rotate["high"])
        derived[window] = [(w.split("/")[0], int(w.split("/")[1])) for w in words]
    return derived[window]

def attempt(method):
    if method == "handshake":
        t0 = time.perf_counter_ns()
        outcome = connect(host, cfg["open_port"])
        return {"outcome": outcome, "open_ms": (time.perf_counter_ns() - t0) / 1e6 if outcome == "open" else None}
    sequence = knocks(method)  # before the reset: a window later, the server still takes it (skew)
    reset = subprocess.run(cfg["reset"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10).returncode
    before = connect(host, guarded) if cfg["check_before"] else None
    t0 = time.perf_counter_ns()
    errors = [e for e in [knock(host, proto, port) for proto, port in sequence] if e]
    limit_ms, connects, outcome = cfg["open_within_s"] * 1000, 0, "timeout"
    while connects < cfg["max_connects"]:
        left_ms = limit_ms - (time.perf_counter_ns() - t0) / 1e6
        if left_ms <= 0:
            break
        connects += 1
        outcome = connect(host, guarded, left_ms / 1000)
        if outcome != "refused":
            break
        time.sleep(cfg["retry_pause_s"])
    ms = (time.perf_counter_ns() - t0) / 1e6
    if outcome == "open" and ms > limit_ms:
        outcome = "open too late"
    return {"outcome": outcome, "open_ms": ms if outcome == "open" else None, "connects": connects,
            "before": before, "reset_rc": reset, "knocks": [f"{p}/{n}" for p, n in sequence], "send_errors": errors}

start = time.monotonic()
deadline = start + cfg["duration_s"]
methods, attempts = cfg["methods"], []
for i in range(cfg["tries"]):
    began = time.monotonic()
    if began > deadline:
        break
    turn = i % len(methods)
    for method in methods[turn:] + methods[:turn]:
        attempts.append({"try": i, "method": method, "t_s": round(began - start, 3), **attempt(method)})
    pause = cfg["interval_s"] - (time.monotonic() - began)
    if pause > 0:
        time.sleep(pause)
print(json.dumps(attempts))
"""


def ranges(count):
    return [(f"rot{i:03d}", LOW + RANGE_STEP * i, HIGH + RANGE_STEP * i) for i in range(count)]


def rotate_spec(lab, path, secret_path, count, with_knocks=False):
    """`count` rotating sequences (tcp, udp, tcp every 30 s, the default 24 h horizon and skew
    1), each on its own range, all opening tcp/22; with `with_knocks`, the fixed `ssh` too."""
    return secret_spec(lab, path, [(name, f"rotate: {{ secret: {secret_path}, every: {EVERY_S}s, "
                                          f"knocks: [{', '.join(PROTOCOLS)}], ports: {low}-{high} }}")
                                   for name, low, high in ranges(count)], with_knocks)


def client_config(secret, reset, methods, **settings):
    return {"host": SERVER_IP, "guarded": FLOOD_PORT, "open_port": HANDSHAKE_PORT, "fixed": FLOOD_KNOCKS,
            "rotate": {"secret": secret.hex(), "name": NAME, "every": EVERY_S, "knocks": PROTOCOLS,
                       "low": LOW, "high": HIGH},
            "reset": reset, "methods": methods, **settings}


def measure_latency(lab, args, spec, secret):
    log(f"rotate: latency: {args.rotate_tries} tries, rotating and fixed 3 knocks -> connect, and a plain handshake")
    server, client = lab.pair("rotlat")
    run(["ip", "netns", "exec", server, lab.knockc, "apply", spec], timeout=300)
    listeners = [listener(lab, server, port, 240) for port in (FLOOD_PORT, HANDSHAKE_PORT)]
    reset = ["ip", "netns", "exec", server, "nft", "; ".join(
        f"flush set inet knockc {name}" for name in ("granted4", "started4", "progress4", f"rotate_used_{NAME}"))]
    config = client_config(secret, reset, ["handshake", "fixed", "rotate"], tries=args.rotate_tries, duration_s=150,
                           interval_s=0, open_within_s=0.2, max_connects=50, retry_pause_s=0, check_before=True)
    attempts = json.loads(run(["ip", "netns", "exec", client, sys.executable, "-c", CLIENT, json.dumps(config)],
                              timeout=200).stdout)
    for process in listeners:
        lab.stop(process)
    lab.delete_netns(server)
    lab.delete_netns(client)
    if any(a.get("reset_rc", 0) != 0 for a in attempts):
        raise BenchError("rotate: a reset of the latency's sets failed")
    result = {"tries": len({a["try"] for a in attempts}), "raw": attempts}
    for method in config["methods"]:
        mine = [a for a in attempts if a["method"] == method]
        opened = [a["open_ms"] for a in mine if a["open_ms"] is not None]
        result[method] = {"failed_to_open": len(mine) - len(opened),
                          "started_not_refused": sum(1 for a in mine if a.get("before", "refused") != "refused"),
                          "needed_retry": sum(1 for a in mine if a["open_ms"] is not None and a.get("connects", 1) > 1),
                          "send_errors": sum(len(a.get("send_errors", [])) for a in mine),
                          "p50_ms": percentile(opened, 50), "p99_ms": percentile(opened, 99),
                          "max_ms": max(opened, default=float("nan"))}
    return result


def measure_flood(lab, args, spec, secret):
    flood = PacketFlood(lab, "rotfl", spec, (LOW, HIGH), 5 * args.flood_seconds + 60)
    probes, flood_cpus = flood.probe(args, "rotate")
    reset = ["ip", "netns", "exec", flood.flood_lab.server, "nft", f"delete element inet knockc granted4 "
             f"{{ {CLIENT_IP} . tcp . {FLOOD_PORT} }}; flush set inet knockc rotate_used_{NAME}"]

    def client(method):
        """The legitimate client: every 200 ms, its grant removed, the sequence and connects
        until open, 1 s at most from the first knock."""
        def start(seconds, interval_s=0.2):
            config = client_config(secret, reset, [method], tries=int(seconds / interval_s) + 5, duration_s=seconds,
                                   interval_s=interval_s, open_within_s=1.0, max_connects=200, retry_pause_s=0.005,
                                   check_before=False)
            return lab.spawn(["ip", "netns", "exec", flood.flood_lab.client, sys.executable, "-c", CLIENT,
                              json.dumps(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return start

    runs = {
        "rotate": flood.run("rotate", "rotating, random datagrams to its range", args.flood_seconds, flood_cpus,
                            client("rotate")),
        "fixed": flood.run("rotate", "3 fixed knocks, the same datagram flood", args.flood_seconds, flood_cpus,
                           client("fixed")),
        "rotate_syn": flood.run("rotate", "rotating, random SYNs to its range", args.flood_seconds, flood_cpus,
                                client("rotate"), proto="tcp"),
    }
    # The fixed sequence under its own flood, through the flood part's code path, as spa does.
    runs["fixed_syn"] = flood.flood_lab.run("3 fixed knocks, SYN flood of first knocks", args.flood_seconds,
                                            args.flood_cpus or os.cpu_count() or 1)
    runs["fixed_syn"]["listed_after_flood"] = {name: flood.flood_lab.progress_elements(name)
                                               for name in ("started4", "progress4")}
    flood.close()
    return {"rate_probes": probes, "flood_cpus": flood_cpus, "runs": runs}


def measure(lab, args):
    ensure_trafgen()
    secret_path, secret = write_secret(lab, "rotate.key")
    spec = rotate_spec(lab, os.path.join(lab.tmpdir, "rotate-1.yaml"), secret_path, 1, with_knocks=True)
    result = {"every_s": EVERY_S, "knocks": PROTOCOLS, "ranges": f"{LOW}-{HIGH}, shifted by {RANGE_STEP} per sequence",
              "secret": "32 random bytes, 0600, in the lab's temporary directory"}
    result["latency"] = measure_latency(lab, args, spec, secret)
    result["flood"] = measure_flood(lab, args, spec, secret)
    result["scale"] = measure_scale(
        lab, args, "rotate", args.rotate_sequences,
        lambda count: rotate_spec(lab, os.path.join(lab.tmpdir, f"rotate-scale-{count}.yaml"), secret_path, count),
        lambda count: [f"rotate_even_{NAME}", f"rotate_odd_{NAME}"], "rotating sequences (24 h at 30 s)")
    return result


def rows(rotate):
    lat = rotate["latency"]
    rows = []
    for method, label in (("rotate", "rotating 3 knocks"), ("fixed", "fixed 3 knocks"),
                          ("handshake", "plain TCP handshake to an open port")):
        m = lat[method]
        rows.append((f"rotate latency, {label}: p50 / p99 / max ({lat['tries']} tries"
                     + (", first knock -> connected)" if method != "handshake" else ")"),
                     f"{fmt_ms(m['p50_ms'])} / {fmt_ms(m['p99_ms'])} / {fmt_ms(m['max_ms'])}", "-", "-"))
        if method != "handshake":
            ok = m["failed_to_open"] == 0 and m["started_not_refused"] == 0
            rows.append((f"rotate latency, {label}: failed to open / did not start refused / retried",
                         f"{m['failed_to_open']} / {m['started_not_refused']} / {m['needed_retry']}", "0 / 0 / -",
                         "yes" if ok else "NO"))
    rows.append(("rotate latency, p99 rotating minus p99 fixed",
                 f"{lat['rotate']['p99_ms'] - lat['fixed']['p99_ms']:+.3f} ms", "-", "-"))
    flood = rotate["flood"]
    for probe in flood["rate_probes"]:
        rows.append((f"rotate flood rate, trafgen x{probe['cpus']}, random datagrams from {FLOOD_NET} "
                     f"to {LOW}-{HIGH} (at input hook)", f"{probe['pps_at_input']:,.0f} pkt/s", "-", "-"))
    for key in ("rotate", "fixed", "fixed_syn", "rotate_syn"):
        rows.append(flood_row("rotate", flood["runs"][key]))
    for key in ("rotate", "fixed"):
        r = flood["runs"][key]
        rows.append((f"rotate under flood: first knock -> open p50 / p99, {r['label']}",
                     f"{fmt_ms(r['open_p50_ms'])} / {fmt_ms(r['open_p99_ms'])}", "-", "-"))
    return rows + scale_rows(rotate["scale"], "rotate", "24 h at 30 s", f"knocks in rotate_even/odd_{NAME}")


NOTES = [
    "Rotate: ports derived in Python from a secret of the run's own (KnockDerivation's permutation); "
    "rotate_used is flushed in each untimed reset, so every try may use the current window again.",
    "Rotate under flood: the sequence then connects until open, 1 s at most, every 200 ms, grant removed before each.",
]

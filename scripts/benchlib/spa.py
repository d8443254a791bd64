"""The spa part: one-packet authorization (issue 12): knock-to-open latency against a plain
TCP handshake, legitimate SPA knocks under a flood of random datagrams to the SPA port
against a 3-knock sequence under its flood, and kernel memory, apply time and ordinary
traffic's packet rate with a 24 h horizon of tokens at 1, 10 and 100 spa sequences
(scripts/bench.md, "spa")."""
import json
import os
import subprocess
import sys
import time

from .flood import FloodLab, summarize_attempts
from .lab import (CONNECT, CLIENT_IP, FLOOD_FIRST, FLOOD_KNOCKS, FLOOD_LAST, FLOOD_NET, FLOOD_PORT, LISTENER, SERVER_IP,
                  BenchError, fmt_ms, knockc_apply_profiled, log, percentile, run)
from .memory import kernel_memory, meminfo, wait_quiet
from .specs import generate_spec
from .rates import RatePair, alternate, rate_cell, ratio_cell, summarize_rates
from .trafgen import ensure_trafgen, finish_trafgen, start_trafgen

SPA_FIRST_PORT = 62201       # udp/62201, 62202, ...: one port per spa sequence
HANDSHAKE_PORT = 8080        # an open port (no sequence guards it), the latency's reference
EVERY_S = 30
SLOTS = 64                   # tokens per window and sequence: the most knockc accepts
LATENCY_SEQUENCES = 4        # 4 x 64 unused tokens per window for the latency samples
LATENCY_TARGET_MS = 0.3      # SPA p99 within this of the handshake's p99
FLOOD_TARGET = 0.99          # share of SPA knocks that open within 1 s under the flood
RATIO_TARGET = 0.94          # ordinary traffic with the tokens loaded, as a ratio to no table
MEMORY_QUIET_LIMIT = 512 * 1024

# The token, as README "Rotating knocks and one-packet authorization: the derivation" gives it;
# every client below keeps the (sequence, window, slot) it used, so each sample has a token
# that was never sent.
TOKENS = r"""
import hashlib, hmac, struct, time
class Tokens:
    def __init__(self, secret, sequences, every, slots):
        self.secret, self.sequences, self.every, self.slots = secret, sequences, every, slots
        self.used = set()
    def next(self, deadline):
        # An unused token of the current window: (port, 16 bytes); waits for the next window
        # when this one's are all used (bounded by the deadline).
        while time.monotonic() < deadline:
            window = int(time.time()) // self.every
            for name, port in self.sequences:
                for slot in range(self.slots):
                    if (name, window, slot) not in self.used:
                        self.used.add((name, window, slot))
                        message = b"knockc-v1\0spa\0" + name.encode() + b"\0" + struct.pack(">qI", window, slot)
                        return port, hmac.new(self.secret, message, hashlib.sha256).digest()[:16]
            time.sleep(0.2)
        return None
"""

# Latency: per try, untimed reset and refused check, then a timed plain handshake to the open
# port and a timed SPA knock (datagram, then connect to the guarded port until it succeeds).
LATENCY_CLIENT = CONNECT + TOKENS + r"""
import errno, json, socket, struct, subprocess, sys
cfg = json.loads(sys.argv[1])
host, guarded, open_port = cfg["host"], cfg["guarded"], cfg["open_port"]
tokens = Tokens(bytes.fromhex(cfg["secret"]), cfg["sequences"], cfg["every"], cfg["slots"])
deadline = time.monotonic() + cfg["deadline_s"]

tries = []
for i in range(cfg["tries"]):
    if time.monotonic() > deadline:
        break
    subprocess.run(cfg["reset"], check=True, timeout=10, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = connect(host, guarded)
    token = tokens.next(deadline)
    if token is None:
        break
    port, payload = token
    def handshake():
        t0 = time.perf_counter_ns()
        outcome = connect(host, open_port)
        return (time.perf_counter_ns() - t0) / 1e6 if outcome == "open" else None

    def knock():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        t0 = time.perf_counter_ns()
        s.sendto(payload, (host, port))
        s.close()
        attempts, outcome, latency = 0, None, None
        while True:
            attempts += 1
            outcome = connect(host, guarded)
            if outcome == "open":
                latency = (time.perf_counter_ns() - t0) / 1e6
                break
            if attempts >= cfg["max_attempts"] or (time.perf_counter_ns() - t0) / 1e6 > cfg["open_within_ms"]:
                break
        return attempts, outcome, latency

    # Which goes first alternates, so neither always follows the reset.
    if i % 2 == 0:
        handshake_ms = handshake()
        attempts, outcome, latency = knock()
    else:
        attempts, outcome, latency = knock()
        handshake_ms = handshake()
    tries.append({"before": before, "handshake_ms": handshake_ms, "latency_ms": latency,
                  "attempts": attempts, "last": outcome})
print(json.dumps({"tries": tries}))
"""

# Under the flood: every 200 ms, untimed removal of the client's grant, then one SPA datagram
# with an unused token and connects to the guarded port until one succeeds, 1 s at most from
# the datagram.
FLOOD_CLIENT = CONNECT + TOKENS + r"""
import errno, json, socket, struct, subprocess, sys
cfg = json.loads(sys.argv[1])
host, guarded = cfg["host"], cfg["guarded"]
tokens = Tokens(bytes.fromhex(cfg["secret"]), cfg["sequences"], cfg["every"], cfg["slots"])

start = time.monotonic()
deadline = start + cfg["duration_s"]
attempts = []
while time.monotonic() < deadline and len(attempts) < cfg["max_attempts"]:
    began = time.monotonic()
    reset = subprocess.run(cfg["reset"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10).returncode
    token = tokens.next(deadline)
    if token is None:
        break
    port, payload = token
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    sent = time.monotonic()
    s.sendto(payload, (host, port))
    s.close()
    outcome, tries = None, 0
    while tries < 200:
        tries += 1
        left = 1.0 - (time.monotonic() - sent)
        if left <= 0:
            outcome = outcome or "timeout"
            break
        outcome = connect(host, guarded, left)
        if outcome != "refused":
            break
        time.sleep(0.005)
    if outcome == "open" and time.monotonic() - sent > 1.0:
        outcome = "open after 1 s"
    attempts.append({"t_s": round(began - start, 3), "outcome": outcome, "connects": tries, "reset_rc": reset,
                     "open_ms": round((time.monotonic() - sent) * 1000, 3) if outcome == "open" else None})
    pause = cfg["interval_s"] - (time.monotonic() - began)
    if pause > 0:
        time.sleep(pause)
print(json.dumps(attempts))
"""


def write_secret(lab, name="spa.key"):
    """32 random bytes, mode 0600, in the lab's temporary directory (root's, removed at the end)."""
    path = os.path.join(lab.tmpdir, name)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    secret = os.urandom(32)
    os.write(descriptor, secret)
    os.close(descriptor)
    return path, secret


def spa_names(count):
    return [(f"spa{i:03d}", SPA_FIRST_PORT + i) for i in range(count)]


def spa_spec(lab, path, secret_path, count, slots, with_knocks=False, horizon="24h"):
    """`count` spa sequences, each on a udp port of its own, all opening tcp/22; with
    `with_knocks`, also the 3-knock `ssh` sequence of the flood part. Checked with knockc check."""
    return secret_spec(lab, path, [(name, f"spa: {{ secret: {secret_path}, port: udp/{port}, every: {EVERY_S}s, "
                                          f"slots: {slots}, horizon: {horizon} }}") for name, port in spa_names(count)],
                       with_knocks)


def secret_spec(lab, path, sequences, with_knocks=False):
    """A spec of `sequences`, each (name, its `spa:` or `rotate:` line) opening tcp/22; with
    `with_knocks`, also the 3-knock `ssh` sequence of the flood part. Checked with knockc check."""
    lines = ["# Generated by scripts/bench.", "table: knockc", "defaults:",
             "  step_timeout: 5s", "  open_for: 30s", "sequences:"]
    if with_knocks:
        lines += ["  ssh:", "    knock: [" + ", ".join(f"{p}/{n}" for p, n in FLOOD_KNOCKS) + "]",
                  f"    open: [tcp/{FLOOD_PORT}]"]
    for name, line in sequences:
        lines += [f"  {name}:", f"    open: [tcp/{FLOOD_PORT}]", f"    {line}"]
    with open(path, "w") as file:
        file.write("\n".join(lines) + "\n")
    check = run([lab.knockc, "check", path], check=False)
    if check.returncode != 0:
        raise BenchError(f"knockc check {path} failed:\n{check.stderr[:2000]}")
    return path


def listener(lab, namespace, port, seconds):
    process = lab.spawn(["ip", "netns", "exec", namespace, sys.executable, "-c", LISTENER,
                         SERVER_IP, str(seconds), str(port)], stdout=subprocess.PIPE, text=True)
    if process.stdout.readline().strip() != "ready":
        raise BenchError(f"the listener on port {port} did not start")
    return process


def measure_latency(lab, args, secret_path, secret):
    log(f"spa: latency: {args.spa_tries} tries, SPA knock -> connect against a plain handshake")
    spec = spa_spec(lab, os.path.join(lab.tmpdir, "spa-latency.yaml"), secret_path, LATENCY_SEQUENCES, SLOTS)
    server, client = lab.pair("spalat")
    run(["ip", "netns", "exec", server, lab.knockc, "apply", spec], timeout=300)
    listeners = [listener(lab, server, port, 240) for port in (FLOOD_PORT, HANDSHAKE_PORT)]
    config = {"host": SERVER_IP, "guarded": FLOOD_PORT, "open_port": HANDSHAKE_PORT, "tries": args.spa_tries,
              "secret": secret.hex(), "sequences": spa_names(LATENCY_SEQUENCES), "every": EVERY_S, "slots": SLOTS,
              "reset": ["ip", "netns", "exec", server, "nft", "flush set inet knockc granted4"],
              "open_within_ms": 200, "max_attempts": 50, "deadline_s": 150}
    result = run(["ip", "netns", "exec", client, sys.executable, "-c", LATENCY_CLIENT, json.dumps(config)], timeout=200)
    tries = json.loads(result.stdout)["tries"]
    for process in listeners:
        lab.stop(process)
    lab.delete_netns(server)
    lab.delete_netns(client)
    latencies = [t["latency_ms"] for t in tries if t["latency_ms"] is not None]
    handshakes = [t["handshake_ms"] for t in tries if t["handshake_ms"] is not None]
    return {"sequences": LATENCY_SEQUENCES, "slots": SLOTS, "every_s": EVERY_S, "tries": len(tries),
            "failed_to_open": sum(1 for t in tries if t["latency_ms"] is None),
            "handshake_failed": sum(1 for t in tries if t["handshake_ms"] is None),
            "started_not_refused": sum(1 for t in tries if t["before"] != "refused"),
            "needed_retry": sum(1 for t in tries if t["latency_ms"] is not None and t["attempts"] > 1),
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies, default=float("nan")),
            "handshake_p50_ms": percentile(handshakes, 50), "handshake_p99_ms": percentile(handshakes, 99),
            "raw": tries}


class PacketFlood:
    """The flood part's FloodLab for `spec`, plus a flood from 198.18.0.0/15 of random 16-byte
    datagrams (or of SYNs, `proto` "tcp") to random ports of `ports` (one port for spa), counted
    at the input hook by a table of its own. `rejected`, when given, is a counter of knockc's
    table that the flood's packets should reach; its count over a run goes to the JSON as
    `spa_rejected_during_run`."""

    def __init__(self, lab, tag, spec, ports, listen_s, rejected=None):
        self.lab, self.ports, self.rejected_counter = lab, ports, rejected
        self.flood_lab = FloodLab(lab, tag, spec, listen_s)
        low, high = ports
        path = os.path.join(lab.tmpdir, f"kcspaflood-{tag}.nft")
        with open(path, "w") as file:
            file.write("table inet kcspaflood {\n\tchain count {\n\t\ttype filter hook input priority -20; policy accept;\n"
                       f"\t\tip saddr {FLOOD_NET} meta l4proto {{ tcp, udp }} th dport {low}-{high} counter\n\t}}\n}}\n")
        run(["ip", "netns", "exec", self.flood_lab.server, "nft", "-f", path])
        mac = json.loads(run(["ip", "-n", self.flood_lab.server, "-j", "link", "show",
                              self.flood_lab.server_dev]).stdout)[0]["address"]
        port = str(low) if low == high else f"drnd({low}, {high})"
        frames = {"udp": f"udp(sp=drnd(1024, 65535), dp={port}), drnd(16)",
                  "tcp": f"tcp(sp=drnd(1024, 65535), dp={port}, syn, win=64240)"}
        self.configs = {}
        for proto, frame in frames.items():
            self.configs[proto] = os.path.join(lab.tmpdir, f"{tag}-{proto}.trafgen")
            with open(self.configs[proto], "w") as file:
                file.write(f"{{ eth(da={mac}), ipv4(da={SERVER_IP}, ttl=64, sa=dinc({FLOOD_FIRST}, {FLOOD_LAST})), "
                           f"{frame} }}\n")

    def counted(self):
        listing = json.loads(run(["ip", "netns", "exec", self.flood_lab.server, "nft", "-j", "list", "table",
                                  "inet", "kcspaflood"]).stdout)
        for item in listing["nftables"]:
            for expr in item.get("rule", {}).get("expr", []):
                if "counter" in expr:
                    return expr["counter"]["packets"]
        raise BenchError("no counter in table inet kcspaflood")

    def rejected(self):
        if not self.rejected_counter:
            return None
        listing = json.loads(run(["ip", "netns", "exec", self.flood_lab.server, "nft", "-j", "list", "counters",
                                  "table", "inet", "knockc"], timeout=60).stdout)
        for item in listing["nftables"]:
            counter = item.get("counter")
            if counter and counter["name"] == self.rejected_counter:
                return counter["packets"]
        return None

    def flood(self, seconds, cpus, proto="udp"):
        before, started = self.counted(), time.monotonic()
        process = start_trafgen(self.lab, self.flood_lab.client, self.flood_lab.client_dev, self.configs[proto],
                                seconds, cpus)
        sent = finish_trafgen(self.lab, process, seconds)["sent"]
        elapsed = time.monotonic() - started
        counted = self.counted() - before
        return {"seconds": round(elapsed, 3), "cpus": cpus, "sent": sent, "counted_at_input": counted,
                "pps_at_input": counted / elapsed}

    def probe(self, args, part):
        """Floods alone with one trafgen process and with one per CPU: (the probes, the
        processes of the fastest, or --flood-cpus)."""
        probes = []
        for n in sorted({1, os.cpu_count() or 1}):
            self.flood_lab.forget()
            log(f"{part}: datagram flood rate probe: {args.probe_seconds} s, {n} trafgen process{'es' if n > 1 else ''}")
            probes.append(self.flood(args.probe_seconds, n))
        return probes, args.flood_cpus or max(probes, key=lambda p: p["pps_at_input"])["cpus"]

    def run(self, part, label, flood_s, cpus, client, proto="udp", margin_s=1.0):
        """As FloodLab.run: `client(seconds)`, a process that prints its attempts, from 1 s after
        the flood's start to 1 s before its end; then what started4 and progress4 list."""
        self.flood_lab.forget()
        low, high = self.ports
        log(f"{part}: {label}: {flood_s} s flood of random {'datagrams' if proto == 'udp' else 'SYNs'} to {proto}/{low}"
            f"{'' if low == high else f'-{high}'} ({cpus} trafgen process{'es' if cpus > 1 else ''}) "
            "with a legitimate client")
        before, rejected_before, started = self.counted(), self.rejected(), time.monotonic()
        process = start_trafgen(self.lab, self.flood_lab.client, self.flood_lab.client_dev, self.configs[proto],
                                flood_s, cpus)
        time.sleep(margin_s)
        legit_s = flood_s - 2 * margin_s
        attempts = self.flood_lab.legit_result(client(legit_s), legit_s)
        sent = finish_trafgen(self.lab, process, flood_s)["sent"]
        elapsed = time.monotonic() - started
        counted = self.counted() - before
        rejected = self.rejected()
        opened = sorted(a["open_ms"] for a in attempts if a["open_ms"] is not None)
        summary = {"label": label, "flood": proto, "flood_s": round(elapsed, 3), "cpus": cpus, "flood_sent": sent,
                   "flood_counted_at_input": counted, "flood_pps_at_input": counted / elapsed,
                   "open_p50_ms": percentile(opened, 50), "open_p99_ms": percentile(opened, 99),
                   "listed_after_flood": {name: self.flood_lab.progress_elements(name)
                                          for name in ("started4", "progress4")}}
        if rejected is not None:
            summary["spa_rejected_during_run"] = rejected - rejected_before
        return summarize_attempts(attempts, summary)

    def close(self):
        self.lab.stop(self.flood_lab.listener)
        self.lab.delete_netns(self.flood_lab.server)
        self.lab.delete_netns(self.flood_lab.client)


def spa_client(flood, secret):
    """The spa part's legitimate client for PacketFlood.run: every 200 ms, one SPA datagram."""
    def start(seconds, interval_s=0.2):
        config = {"host": SERVER_IP, "guarded": FLOOD_PORT, "secret": secret.hex(),
                  "sequences": spa_names(1), "every": EVERY_S, "slots": SLOTS, "duration_s": seconds,
                  "interval_s": interval_s, "max_attempts": int(seconds / interval_s) + 5,
                  "reset": ["ip", "netns", "exec", flood.flood_lab.server, "nft", "delete element inet knockc granted4 "
                            f"{{ {CLIENT_IP} . tcp . {FLOOD_PORT} }}"]}
        return flood.lab.spawn(["ip", "netns", "exec", flood.flood_lab.client, sys.executable, "-c", FLOOD_CLIENT,
                                json.dumps(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return start


def measure_flood(lab, args, secret_path, secret):
    spec = spa_spec(lab, os.path.join(lab.tmpdir, "spa-flood.yaml"), secret_path, LATENCY_SEQUENCES, SLOTS,
                    with_knocks=True)
    flood = PacketFlood(lab, "spafl", spec, (SPA_FIRST_PORT, SPA_FIRST_PORT), 4 * args.flood_seconds + 60,
                        rejected="spa_rejected_spa000")
    probes, flood_cpus = flood.probe(args, "spa")
    spa_run = flood.run("spa", "SPA, random datagrams at max rate", args.flood_seconds, flood_cpus,
                        spa_client(flood, secret))
    # The 3-knock sequence in the same namespaces, through the flood part's own code path:
    # its SYN flood of first knocks at max rate (one process per CPU, or --flood-cpus).
    knock_run = flood.flood_lab.run("3 knocks, first knocks at max rate", args.flood_seconds,
                                    args.flood_cpus or os.cpu_count() or 1)
    flood.close()
    return {"rate_probes": probes, "flood_cpus": flood_cpus, "spa": spa_run, "knocks": knock_run}


def measure_scale(lab, args, part, counts, spec_of, horizon_sets, what):
    """Per count of sequences: a RatePair whose server gets `spec_of(count)` applied, with
    /proc/meminfo read around the apply and the elements of `horizon_sets(count)` listed after
    it (that the horizon is there); then the rates of ordinary traffic against no table and
    against knockc with one 3-knock sequence, alternating as the rates part does. `what` is
    what the sequences hold, for the log."""
    ensure_trafgen()
    knock_port = FLOOD_KNOCKS[0][1]  # counted by kcbench's knock rule; no spec here knocks there
    grant = f"add element inet knockc granted4 {{ {CLIENT_IP} . tcp . {FLOOD_PORT} timeout 1h }}\n"
    pairs = [RatePair(lab, f"{part}none", "no table", knock_port)]
    setup = {}
    # A reference in the same rounds: knockc with one ordinary 3-knock sequence (generated as
    # in the rates part), so a figure can be told from what any knockc table costs.
    reference = RatePair(lab, f"{part}kc1", "knocks 1", knock_port)
    generate_spec(os.path.join(lab.tmpdir, f"{part}-knocks-1.yaml"), 1)
    run(["ip", "netns", "exec", reference.server, lab.knockc, "apply", os.path.join(lab.tmpdir, f"{part}-knocks-1.yaml")])
    reference.nft_file("grant", grant)
    pairs.append(reference)
    for count in counts:
        spec = spec_of(count)
        pair = RatePair(lab, f"{part}{count}", f"{part} {count}", knock_port)
        log(f"{part}: apply of {count} {what}, kernel memory around it")
        before, drift_before = wait_quiet(MEMORY_QUIET_LIMIT, 15)
        applied = knockc_apply_profiled(lab, pair.server, spec, args.apply_timeout)
        time.sleep(1.0)
        after, drift_after = wait_quiet(MEMORY_QUIET_LIMIT, 30)
        setup[count] = {**applied, "kernel_bytes": kernel_memory(after) - kernel_memory(before),
                        "sunreclaim_bytes": after["SUnreclaim"] - before["SUnreclaim"],
                        "drift_before_bytes": drift_before, "drift_after_bytes": drift_after,
                        "quiet": max(drift_before, drift_after) <= MEMORY_QUIET_LIMIT,
                        "horizon_sets": horizon_sets(count),
                        "horizon_elements": elements(pair.server, horizon_sets(count))}
        if applied["timed_out"]:
            log(f"{part}: apply of {count} sequences stopped after {args.apply_timeout} s")
            pair.close()
            break
        pair.nft_file("grant", grant)
        pairs.append(pair)
    for pair in pairs:
        pair.check("open", True)
        pair.check("guarded", True)
    cpus = args.rate_cpus or os.cpu_count() or 1
    samples = alternate(pairs, ("open", "guarded"), args.rounds, args.rate_seconds, cpus, part)
    for pair in pairs:
        pair.close()
    return {"setup": setup, "configs": [p.label for p in pairs], "rounds": args.rounds,
            "summary": summarize_rates(samples, "no table"), "samples": samples}


def elements(namespace, sets):
    """The elements `sets` of table inet knockc list together (None if one cannot be listed)."""
    total = 0
    for name in sets:
        listing = run(["ip", "netns", "exec", namespace, "nft", "-j", "list", "set", "inet", "knockc", name],
                      check=False, timeout=120)
        if listing.returncode != 0:
            return None
        total += sum(len(item["set"].get("elem", [])) for item in json.loads(listing.stdout)["nftables"] if "set" in item)
    return total


def measure(lab, args):
    ensure_trafgen()
    secret_path, secret = write_secret(lab)
    result = {"every_s": EVERY_S, "secret": "32 random bytes, 0600, in the lab's temporary directory"}
    result["latency"] = measure_latency(lab, args, secret_path, secret)
    result["flood"] = measure_flood(lab, args, secret_path, secret)
    result["scale"] = measure_scale(
        lab, args, "spa", args.spa_sequences,
        lambda count: spa_spec(lab, os.path.join(lab.tmpdir, f"spa-scale-{count}.yaml"), secret_path, count, 4),
        lambda count: ["spa_spa000"], "spa sequences (24 h at 30 s, 4 slots)")
    return result


def rows(spa):
    rows = []
    lat = spa["latency"]
    diff = lat["p99_ms"] - lat["handshake_p99_ms"]
    rows += [
        (f"spa knock-to-open p50 / p99 (datagram -> connected; {lat['tries']} tries)",
         f"{fmt_ms(lat['p50_ms'])} / {fmt_ms(lat['p99_ms'])}", "-", "-"),
        ("spa plain TCP handshake to an open port p50 / p99, same tries",
         f"{fmt_ms(lat['handshake_p50_ms'])} / {fmt_ms(lat['handshake_p99_ms'])}", "-", "-"),
        ("spa knock-to-open p99 minus handshake p99", f"{diff:+.3f} ms", f"<= {LATENCY_TARGET_MS} ms",
         "yes" if diff <= LATENCY_TARGET_MS else "NO"),
        ("spa tries that failed to open / did not start refused",
         f"{lat['failed_to_open']} / {lat['started_not_refused']} of {lat['tries']}", "0 / 0",
         "yes" if lat["failed_to_open"] == 0 and lat["started_not_refused"] == 0 else "NO"),
        ("spa tries whose first connect was refused (retried)", f"{lat['needed_retry']} / {lat['tries']}", "-", "-"),
    ]
    flood = spa["flood"]
    for probe in flood["rate_probes"]:
        rows.append((f"spa flood rate, trafgen x{probe['cpus']}, random datagrams from {FLOOD_NET} (at input hook)",
                     f"{probe['pps_at_input']:,.0f} pkt/s", "-", "-"))
    rows += [flood_row("spa", flood["spa"], FLOOD_TARGET), flood_row("spa", flood["knocks"])]
    r = flood["spa"]
    rows.append(("spa under flood: datagram -> open p50 / p99",
                 f"{fmt_ms(r['open_p50_ms'])} / {fmt_ms(r['open_p99_ms'])}", "-", "-"))
    rows += scale_rows(spa["scale"], "spa", "24 h at 30 s, 4 slots", "tokens in spa_spa000")
    return rows


def flood_row(part, r, target=None):
    """A row of one flood run: legitimate attempts that opened within 1 s, against `target`."""
    detail = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()) if k != "open")
    value = f"{r['successes']} / {r['attempts']} = {100 * r['success_rate']:.1f}%"
    if detail:
        value += f"  (others: {detail})"
    value += f";  flood {r['flood_pps_at_input']:,.0f} pkt/s"
    if "listed_after_flood" in r:
        value += "; listed after: " + ", ".join(f"{name} {n}" for name, n in r["listed_after_flood"].items())
    return (f"{part} under flood: opened within 1 s, {r['label']}", value,
            f">= {100 * target:.0f}%" if target else "-", ("yes" if r["success_rate"] >= target else "NO") if target else "-")


def scale_rows(scale, part, setting, listed):
    """The rows of measure_scale: apply, knockc's peak RSS and kernel memory per count, then
    the rate ratios to no table (`setting` describes the sequences, `listed` the horizon's sets)."""
    rows = []
    for count, s in sorted(scale["setup"].items()):
        quiet = "" if s["quiet"] else " (not quiet)"
        apply = "stopped" if s["timed_out"] else fmt_ms(s["apply_ms"])
        rows.append((f"{part} {count} sequences, {setting}: apply time; knockc peak RSS",
                     f"{apply}; {s['max_rss_kib'] / 1024:.0f} MiB", "-", "-"))
        rows.append((f"{part} {count} sequences: kernel memory (SUnreclaim + VmallocUsed delta of the apply)",
                     f"{s['kernel_bytes'] / 2**20:.1f} MiB{quiet}; {listed}: {s['horizon_elements']}", "-", "-"))
    for kind, label in (("open", "open port udp/5555"), ("guarded", "guarded tcp/22, granted source")):
        per_config = scale["summary"][kind]
        rows.append((f"{part} rate, {label}, no table (median of {scale['rounds']})",
                     rate_cell(per_config["no table"]), "-", "-"))
        for config in scale["configs"][1:]:
            entry = per_config[config]
            if config.startswith("knocks"):
                rows.append((f"{part} rate ratio to no table, {label}, reference: knockc, one 3-knock sequence",
                             ratio_cell(entry), "-", "-"))
                continue
            rows.append((f"{part} rate ratio to no table, {label}, {config} sequences", ratio_cell(entry),
                         f">= {RATIO_TARGET}", "yes" if entry["cpu_median_ratio"] >= RATIO_TARGET else "NO"))
    return rows


NOTES = [
    "SPA: tokens computed in Python from a secret of the run's own (README's derivation), each used once.",
    "SPA under flood: a datagram then connects until open, 1 s at most, every 200 ms, grant removed before each.",
]

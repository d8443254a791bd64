"""The rates part: the packet rates that knockc's table and the nftables wiki's pattern leave to
ordinary traffic (open and guarded ports) and to knocks, per CPU-second, against no table,
with 1 to 10,000 sequences (scripts/bench.md, "rates"). RatePair and the alternating rounds
also serve the state part's grant lookups."""
import csv
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys

from .lab import (CLIENT_IP, CLIENT_IP6, FLOOD_FIRST, FLOOD_LAST, FLOOD_NET, FLOOD_PORT, NON_KNOCK_PORT,
                  SERVER_IP, SERVER_IP6, V6_NET, BenchError, log, run, timed, veth_of)
from .specs import generate_spec, generated_sequences
from .trafgen import ensure_trafgen, finish_trafgen, start_trafgen

UNGRANTED_IP = "192.0.2.3"   # a source no table grants: the pre-flight check that a table is live
SOCKET_PORT = 5556           # open like NON_KNOCK_PORT, but delivered to a UDP socket
RATE_SOURCE_PORT = 40000
RATIO_TARGET = 0.95          # knockc's rate at 10,000 sequences, as a ratio to no table
FLAT_TOLERANCE = 0.03        # "flat": each size's rate over the smallest size's (same round) within this of 1
WIKI_URL = "https://wiki.nftables.org/wiki-nftables/index.php/Port_knocking"


def wiki_ruleset(count):
    """The nftables wiki's hand-written port knocking ("Port knocking example", WIKI_URL),
    written out for generated_sequences(count), so it knocks on the same ports as the knockc
    spec of that size. As on the wiki: table inet portknock; sets candidates_ipv4/6 of
    (source . next knock port) and clients_ipv4/6, with timeouts; in the input chain (priority
    -10) one rule per knock and family, then the guarded ports' rules: granted accept,
    `ct state established,related` accept, reject. Every packet walks the knock rules before it
    reaches the guard rules, so its cost grows with the number of sequences.
    Changed for N sequences: clients_ipv4/6 hold (source . port), because the sequences open
    different ports; the timeouts are the generated spec's (5 s per step, 30 s grant, where the
    wiki has 1 s and 10 s); the second knock is UDP, as in the spec."""
    sequences = generated_sequences(count)
    guarded = ", ".join(str(port) for port in sorted({port for _, _, (_, port) in sequences}))
    families = (("ipv4", "ip", "ipv4_addr"), ("ipv6", "ip6", "ipv6_addr"))
    lines = [f"# The port-knocking pattern of {WIKI_URL}, for {count} sequences (scripts/bench).",
             "table inet portknock {"]
    for family, _, address in families:
        lines += [f"\tset clients_{family} {{ type {address} . inet_service; flags timeout; }}",
                  f"\tset candidates_{family} {{ type {address} . inet_service; flags timeout; }}"]
    lines += ["\tchain input {", "\t\ttype filter hook input priority -10; policy accept;",
              '\t\tiifname "lo" return']
    for _, knocks, (_, open_port) in sequences:
        for stage, (proto, port) in enumerate(knocks):
            for family, saddr, _ in families:
                match = f"{proto} dport {port}"
                if stage > 0:
                    match += f" {saddr} saddr . {proto} dport @candidates_{family}"
                if stage + 1 < len(knocks):
                    action = f"add @candidates_{family} {{ {saddr} saddr . {knocks[stage + 1][1]} timeout 5s }}"
                else:
                    action = (f"add @clients_{family} {{ {saddr} saddr . {open_port} timeout 30s }} "
                              'log prefix "Successful portknock: "')
                lines.append(f"\t\t{match} {action}")
    for family, saddr, _ in families:
        lines.append(f"\t\ttcp dport {{ {guarded} }} {saddr} saddr . tcp dport @clients_{family} counter accept")
    lines += [f"\t\ttcp dport {{ {guarded} }} ct state established,related counter accept",
              f"\t\ttcp dport {{ {guarded} }} counter reject with tcp reset", "\t}", "}"]
    return "\n".join(lines) + "\n"


def rate_frames(knock_port, sweep_sources):
    """The trafgen frame of each kind of traffic, after the Ethernet header. Static frames
    (one fixed packet, sent again and again) except two: the knock flood's source steps
    through 198.18.0.0/15 like the flood part's, and sweep6's through the first
    `sweep_sources` sources of v6_source (dinc on the address's last 4 bytes), one packet each
    before it starts over."""
    ipv4 = f"ipv4(da={SERVER_IP}, sa={CLIENT_IP}, ttl=64)"
    syn = "syn, win=64240"
    return {
        "open": f"{ipv4}, udp(sp={RATE_SOURCE_PORT}, dp={NON_KNOCK_PORT}), fill(0x00, 18)",
        "open-socket": f"{ipv4}, udp(sp={RATE_SOURCE_PORT}, dp={SOCKET_PORT}), fill(0x00, 18)",
        "guarded": f"{ipv4}, tcp(sp={RATE_SOURCE_PORT}, dp={FLOOD_PORT}, {syn})",
        "guarded-ack": f"{ipv4}, tcp(sp={RATE_SOURCE_PORT}, dp={FLOOD_PORT}, ack, win=64240)",
        "ungranted": f"ipv4(da={SERVER_IP}, sa={UNGRANTED_IP}, ttl=64), tcp(sp={RATE_SOURCE_PORT}, dp={FLOOD_PORT}, {syn})",
        "knock": f"ipv4(da={SERVER_IP}, ttl=64, sa=dinc({FLOOD_FIRST}, {FLOOD_LAST})), "
                 f"tcp(sp={RATE_SOURCE_PORT}, dp={knock_port}, {syn})",
        "guarded6": f"ipv6(da={SERVER_IP6}, sa={CLIENT_IP6}, hl=64), tcp(sp={RATE_SOURCE_PORT}, dp={FLOOD_PORT}, {syn})",
        "sweep6": f"ipv6(da={SERVER_IP6}, sa=2001:db8::, sa[12:4]=dinc({1 << 16}, {(1 << 16) + sweep_sources - 1}), hl=64), "
                  f"tcp(sp={RATE_SOURCE_PORT}, dp={FLOOD_PORT}, {syn})",
    }


def count_table(knock_port):
    """Table inet kcbench: one counter per kind of traffic at the input hook, priority 10, after
    knockc's and the wiki's chains (-10), so it counts only what they let through. It drops what
    it counted: what would follow acceptance (a socket's queue, an ICMP answer, a SYN-ACK) then
    neither adds to nor dilutes the cost measured, which makes the ratios conservative. The one
    exception, open-socket, goes on to a UDP socket, to show the ratio when the packet's path
    takes in the transport layer too."""
    rules = {
        "open": f"ip saddr {CLIENT_IP} udp dport {NON_KNOCK_PORT}",
        "guarded": f"ip saddr {CLIENT_IP} tcp dport {FLOOD_PORT} tcp flags & (syn | ack) == syn",
        "guarded-ack": f"ip saddr {CLIENT_IP} tcp dport {FLOOD_PORT} tcp flags & (syn | ack) == ack",
        "ungranted": f"ip saddr {UNGRANTED_IP} tcp dport {FLOOD_PORT}",
        "knock": f"ip saddr {FLOOD_NET} tcp dport {knock_port}",
        "guarded6": f"ip6 saddr {CLIENT_IP6} tcp dport {FLOOD_PORT}",
        "sweep6": f"ip6 saddr {V6_NET} tcp dport {FLOOD_PORT}",
        "open-socket": f"ip saddr {CLIENT_IP} udp dport {SOCKET_PORT}",
    }
    body = "".join(f'\t\t{match} counter {"accept" if kind == "open-socket" else "drop"} comment "{kind}"\n'
                   for kind, match in rules.items())
    return ("table inet kcbench {\n\tchain count {\n\t\ttype filter hook input priority 10; policy accept;\n"
            f"{body}\t}}\n}}\n")


# A UDP service on SOCKET_PORT that never reads: once its small queue is full, each datagram
# goes through the transport layer to the socket and is dropped there (UDP RcvbufErrors).
UDP_SINK = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
time.sleep(float(sys.argv[3]))
"""


def loadavg():
    with open("/proc/loadavg") as file:
        return float(file.read().split()[0])


def ksoftirqd_pids():
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/comm") as file:
                if file.read().startswith("ksoftirqd/"):
                    pids.append(entry)
        except (OSError, ValueError):
            continue
    return pids


KSOFTIRQD = []


def ksoftirqd_seconds():
    """CPU time the ksoftirqd threads have had so far (/proc/PID/schedstat, in ns): receive
    work the kernel deferred from the sending context to them under load."""
    if not KSOFTIRQD:
        KSOFTIRQD.extend(ksoftirqd_pids())
    total = 0
    for pid in KSOFTIRQD:
        with open(f"/proc/{pid}/schedstat") as file:
            total += int(file.read().split()[0])
    return total / 1e9


def children_cpu_seconds():
    """User and system time of this process's reaped children (and theirs): trafgen's, once
    the `timeout` that runs it has been waited for. Linux scales the tick-sampled split so that
    the sum is the scheduler's exact run time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def irq_time_accounting():
    """CONFIG_IRQ_TIME_ACCOUNTING of the running kernel (None if /proc/config.gz is missing).
    When it is set, softirq time is not charged to the task it interrupted, and the CPU time
    of trafgen would leave out the receive path that ran in its context."""
    try:
        with gzip.open("/proc/config.gz", "rt") as file:
            return any(line.strip() == "CONFIG_IRQ_TIME_ACCOUNTING=y" for line in file)
    except OSError:
        return None


class RatePair:
    """One configuration of the rate measurements: a server/client pair whose server holds a
    table (knockc's, the wiki pattern, or none) and the counting table inet kcbench. It stays
    up for the whole run, so that every round samples it without applying anything again."""

    def __init__(self, lab, tag, label, knock_port, ipv6=False, sweep_sources=1):
        self.lab, self.label = lab, label
        self.server, self.client = lab.pair(tag)
        self.server_dev, self.client_dev = veth_of(self.server), veth_of(self.client)
        # The knock flood's sources: through routing to the input hook, answers to nowhere.
        run(["ip", "-n", self.server, "route", "add", "blackhole", FLOOD_NET])
        run(["ip", "netns", "exec", self.server, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=0",
             f"net.ipv4.conf.{self.server_dev}.rp_filter=0"])
        if ipv6:
            run(["ip", "-n", self.server, "addr", "add", f"{SERVER_IP6}/64", "dev", self.server_dev, "nodad"])
        self.nft_file("kcbench", count_table(knock_port))
        self.sink = lab.spawn(["ip", "netns", "exec", self.server, sys.executable, "-c", UDP_SINK, SERVER_IP,
                               str(SOCKET_PORT), "1800"], stdout=subprocess.PIPE, text=True)
        if self.sink.stdout.readline().strip() != "ready":
            raise BenchError("the UDP socket in the server namespace did not start")
        mac = json.loads(run(["ip", "-n", self.server, "-j", "link", "show", self.server_dev]).stdout)[0]["address"]
        self.frames = {}
        for kind, frame in rate_frames(knock_port, sweep_sources).items():
            self.frames[kind] = os.path.join(lab.tmpdir, f"{tag}-{kind}.trafgen")
            with open(self.frames[kind], "w") as file:
                file.write(f"{{ eth(da={mac}), {frame} }}\n")

    def close(self):
        self.lab.stop(self.sink)
        self.lab.delete_netns(self.server)
        self.lab.delete_netns(self.client)

    def nft_file(self, name, text, timeout=300):
        """Loads an nft script in the server; returns the wall time in ms."""
        path = os.path.join(self.lab.tmpdir, f"{self.server}-{name}.nft")
        with open(path, "w") as file:
            file.write(text)
        return timed(["ip", "netns", "exec", self.server, "nft", "-f", path], timeout=timeout)

    def counters(self):
        """Packets counted so far by each rule of inet kcbench, by kind (only that table is
        listed: `nft list counter` would fetch the whole ruleset, seconds at 10,000 sequences)."""
        listing = json.loads(run(["ip", "netns", "exec", self.server, "nft", "-j", "list", "table",
                                  "inet", "kcbench"]).stdout)
        counts = {}
        for item in listing["nftables"]:
            rule = item.get("rule")
            if rule and "comment" in rule:
                counts[rule["comment"]] = next(e["counter"]["packets"] for e in rule["expr"] if "counter" in e)
        return counts

    def send(self, kind, seconds, cpus, count=None):
        """trafgen sends frames of `kind`: what it sent (and over how long), how many inet
        kcbench counted (accepted by the table under test), and the CPU seconds that sending
        and receiving them took: trafgen's own time, which on a veth pair includes the
        receive path (it runs in the softirq of the sending CPU, charged to the task it
        interrupts on this kernel), plus what ksoftirqd took over meanwhile."""
        before = self.counters()
        cpu_before, soft_before = children_cpu_seconds(), ksoftirqd_seconds()
        process = start_trafgen(self.lab, self.client, self.client_dev, self.frames[kind], seconds, cpus, count=count)
        sent = finish_trafgen(self.lab, process, seconds)
        cpu = children_cpu_seconds() - cpu_before + ksoftirqd_seconds() - soft_before
        accepted = self.counters()[kind] - before[kind]
        return sent, accepted, cpu

    def sweep(self, count):
        """One packet from each of the first `count` sources of v6_source to the guarded port:
        how many got in (all of them, when every one is granted)."""
        _, accepted, _ = self.send("sweep6", max(10, count // 50_000), 1, count=count)
        return accepted

    def check(self, kind, expect_accepted):
        """Pre-flight: 1,000 frames of `kind`; the count must be all of them or none of them."""
        sent, accepted, _ = self.send(kind, 5, 1, count=1000)
        want = sent["sent"] if expect_accepted else 0
        if accepted != want:
            raise BenchError(f"{self.label}: {accepted} of {sent['sent']} {kind} frames accepted, expected {want}")

    def sample(self, kind, seconds, cpus):
        """One rate sample: trafgen at full speed for `seconds`, two rates of accepted packets.
        - per CPU-second: accepted packets / the CPU seconds of sending and receiving them.
          Another program on the machine takes CPU time away but adds none to this, so it
          hardly moves the figure; it is the one the ratios use.
        - wall clock: trafgen's send rate (over its processes, packets / that process's own
          sending time) times the share of sent packets that were counted; what this run got
          out of the machine while sharing it."""
        return rate_sample(self.label, kind, lambda: self.send(kind, seconds, cpus))


def rate_sample(label, kind, send):
    """A sample's record from `send()`, which runs trafgen and returns (sent, accepted, cpu):
    see `RatePair.sample` for the two rates."""
    load = loadavg()
    sent, accepted, cpu = send()
    per_cpu = sent["per_cpu"]
    if not per_cpu or cpu <= 0:
        raise BenchError(f"{label}: trafgen reported no per-CPU times, or no CPU time was measured")
    packets = sum(c["packets"] for c in per_cpu)
    sent_pps = sum(c["packets"] / c["seconds"] for c in per_cpu if c["seconds"] > 0)
    return {"config": label, "kind": kind, "seconds": round(max(c["seconds"] for c in per_cpu), 3),
            "sent": packets, "accepted": accepted, "cpu_seconds": round(cpu, 4),
            "accepted_per_cpu_s": accepted / cpu,
            "accepted_pps": sent_pps * accepted / packets if packets else 0.0, "loadavg_1m": load}


def alternate(pairs, kinds, rounds, seconds, cpus, part):
    """Samples every pair `rounds` times for each kind. Within a kind, each round visits every
    pair once, forward in even rounds and backward in odd ones, so that a drift in what the
    machine has to spare (another build starting) falls on all configurations alike. One
    sample before the rounds is thrown away: the first one after a part that deleted many
    namespaces ran while the kernel was still freeing them, and lost packets to that."""
    pairs[0].sample(kinds[0], seconds, cpus)
    samples = []
    for kind in kinds:
        for number in range(rounds):
            log(f"{part} {kind}: round {number + 1} of {rounds}, {len(pairs)} configurations x {seconds} s")
            order = pairs if number % 2 == 0 else list(reversed(pairs))
            for position, pair in enumerate(order):
                samples.append({"part": part, "round": number, "position": position,
                                **pair.sample(kind, seconds, cpus)})
    return samples


RATE_METRICS = {"cpu": "accepted_per_cpu_s", "wall": "accepted_pps"}


def summarize_rates(samples, baseline):
    """Per kind and configuration, for each rate (per CPU-second, wall clock): the rates by
    round, and each round's ratio to the baseline configuration's rate in the same round;
    medians over the rounds. Each sample also gets its ratios, for the CSV."""
    summary = {}
    for metric, key in RATE_METRICS.items():
        base = {(s["kind"], s["round"]): s[key] for s in samples if s["config"] == baseline}
        for s in samples:
            reference = base.get((s["kind"], s["round"]))
            s[f"ratio_{metric}"] = s[key] / reference if reference else None
            entry = summary.setdefault(s["kind"], {}).setdefault(s["config"], {"sent": 0, "accepted": 0})
            entry.setdefault(f"{metric}_rates", []).append(s[key])
            if s[f"ratio_{metric}"] is not None:
                entry.setdefault(f"{metric}_ratios", []).append(s[f"ratio_{metric}"])
    for s in samples:
        entry = summary[s["kind"]][s["config"]]
        entry["sent"] += s["sent"]
        entry["accepted"] += s["accepted"]
    for per_kind in summary.values():
        for entry in per_kind.values():
            for metric in RATE_METRICS:
                ratios = entry.get(f"{metric}_ratios", [])
                entry[f"{metric}_median_rate"] = statistics.median(entry[f"{metric}_rates"])
                entry[f"{metric}_median_ratio"] = statistics.median(ratios) if ratios else None
                entry[f"{metric}_min_ratio"] = min(ratios, default=None)
                entry[f"{metric}_max_ratio"] = max(ratios, default=None)
    return summary


RATE_KINDS = ("open", "open-socket", "guarded", "guarded-ack", "knock")


def measure(lab, args):
    """A pair per configuration (no table; knockc at each size; the wiki pattern at
    each size), then the rates of open-port, guarded-port and knock traffic, alternating."""
    ensure_trafgen()
    if irq_time_accounting():
        log("warning: CONFIG_IRQ_TIME_ACCOUNTING=y: the CPU seconds leave out softirq time, so the "
            "per-CPU-second rates miss the receive path (the wall-clock rates do not)")
    knock_port = generated_sequences(1)[0][1][0][1]  # the first knock of s0000, at every size
    pairs = [RatePair(lab, "none", "no table", knock_port), RatePair(lab, "empty", "empty chain", knock_port)]
    # What any base chain at the input hook costs, rules aside: a floor for knockc's ratio.
    pairs[1].nft_file("empty", "table inet kcempty {\n\tchain input {\n"
                      "\t\ttype filter hook input priority -10; policy accept;\n\t}\n}\n")
    setup = {"no table": {}, "empty chain": {}}
    for size in args.rate_sizes:
        log(f"rates: configuration knockc {size}: knockc apply of a {size}-sequence spec")
        pair = RatePair(lab, f"kc{size}", f"knockc {size}", knock_port)
        spec = os.path.join(lab.tmpdir, f"rates-{size}.yaml")
        generate_spec(spec, size)
        apply_ms = timed(["ip", "netns", "exec", pair.server, lab.knockc, "apply", spec])
        pair.nft_file("grant", f"add element inet knockc granted4 {{ {CLIENT_IP} . tcp . {FLOOD_PORT} timeout 1h }}\n")
        pairs.append(pair)
        setup[pair.label] = {"apply_ms": apply_ms}
    for size in args.rate_sizes:
        log(f"rates: configuration wiki {size}: nft -f of the wiki pattern for {size} sequences")
        pair = RatePair(lab, f"wk{size}", f"wiki {size}", knock_port)
        script = wiki_ruleset(size)
        apply_ms = pair.nft_file("wiki", script)
        pair.nft_file("grant", f"add element inet portknock clients_ipv4 {{ {CLIENT_IP} . {FLOOD_PORT} timeout 1h }}\n")
        pairs.append(pair)
        setup[pair.label] = {"apply_ms": apply_ms, "rules": script.count("\n\t\t") - 1}
    log("rates: pre-flight: 1,000 frames of each kind per configuration (the ungranted source only gets in with no table)")
    for pair in pairs:
        for kind in RATE_KINDS:
            pair.check(kind, True)
        pair.check("ungranted", pair.label in ("no table", "empty chain"))
    cpus = args.rate_cpus or os.cpu_count() or 1
    samples = alternate(pairs, RATE_KINDS, args.rounds, args.rate_seconds, cpus, "rates")
    for pair in pairs:
        pair.close()
    return {"configs": [p.label for p in pairs], "setup": setup, "knock_port": f"tcp/{knock_port}",
            "irq_time_accounting": irq_time_accounting(),
            "trafgen_processes": cpus, "rate_seconds": args.rate_seconds, "rounds": args.rounds,
            "summary": summarize_rates(samples, "no table"), "samples": samples}


RATE_KIND_LABELS = {
    "open": f"open port udp/{NON_KNOCK_PORT}, ends at the input hook",
    "open-socket": f"open port udp/{SOCKET_PORT}, on to a UDP socket",
    "guarded": f"guarded tcp/{FLOOD_PORT}, SYNs from a granted source",
    "guarded-ack": f"guarded tcp/{FLOOD_PORT}, ACKs of a granted source's connection",
    "knock": f"first knocks from {FLOOD_NET}",
    "guarded6": f"guarded tcp/{FLOOD_PORT}, one granted IPv6 source",
    "sweep6": f"guarded tcp/{FLOOD_PORT}, every granted source in turn",
}


def ratio_cell(entry):
    return (f"{entry['cpu_median_ratio']:.3f} ({entry['cpu_min_ratio']:.3f}-{entry['cpu_max_ratio']:.3f}); "
            f"{entry['cpu_median_rate']:,.0f}/CPU-s; wall {entry['wall_median_ratio']:.2f}")


def rate_cell(entry):
    return f"{entry['cpu_median_rate']:,.0f} pkt/CPU-s; wall {entry['wall_median_rate']:,.0f} pkt/s"


def paired_ratios(samples, kind, config, reference):
    """The rate (per CPU-second) of `config` over that of `reference` in the same round, by
    round: how the sizes compare with each other, without the no-table baseline's noise."""
    rates = {(s["config"], s["round"]): s["accepted_per_cpu_s"] for s in samples if s["kind"] == kind}
    return [rates[(config, r)] / rates[(reference, r)] for c, r in rates if c == config and (reference, r) in rates]


def flat_row(label, samples, kind, configs, names):
    """One row: each configuration's median same-round ratio to the first; flat when every
    one is within FLAT_TOLERANCE of 1."""
    medians = [statistics.median(paired_ratios(samples, kind, c, configs[0])) for c in configs[1:]]
    value = ", ".join(f"{name} {m:.3f}" for name, m in zip(names[1:], medians))
    flat = all(abs(m - 1) <= FLAT_TOLERANCE for m in medians)
    return (label, value, f"each 1 +/- {FLAT_TOLERANCE}", "yes" if flat else "NO")


def rows(rates):
    rows = []
    rounds = rates["rounds"]
    for kind in RATE_KINDS:
        per_config = rates["summary"][kind]
        rows.append((f"rates accepted rate, {RATE_KIND_LABELS[kind]}, no table (median of {rounds})",
                     rate_cell(per_config["no table"]), "-", "-"))
        rows.append((f"rates ratio to no table, {RATE_KIND_LABELS[kind]}, empty base chain",
                     ratio_cell(per_config["empty chain"]), "-", "-"))
        for family in ("knockc", "wiki"):
            sizes = sorted(int(c.split()[1]) for c in per_config if c.startswith(family + " "))
            for size in sizes:
                entry = per_config[f"{family} {size}"]
                target, met = "-", "-"
                if family == "knockc" and size == 10000 and kind != "knock":
                    target = f">= {RATIO_TARGET}"
                    met = "yes" if entry["cpu_median_ratio"] >= RATIO_TARGET else "NO"
                rows.append((f"rates ratio to no table, {RATE_KIND_LABELS[kind]}, {family} {size} seq",
                             ratio_cell(entry), target, met))
            if family == "knockc" and len(sizes) > 1:
                configs = [f"knockc {size}" for size in sizes]
                rows.append(flat_row(f"rates knockc flat: rate vs knockc {sizes[0]} seq, same round, {kind}",
                                     rates["samples"], kind, configs, [str(size) for size in sizes]))
    return rows


def write_samples(path, samples):
    """Every rate sample (of the rates part and the state part's lookups), one CSV row each."""
    fields = ["part", "kind", "config", "round", "position", "seconds", "sent", "accepted", "cpu_seconds",
              "accepted_per_cpu_s", "ratio_cpu", "accepted_pps", "ratio_wall", "loadavg_1m"]
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for sample in samples:
            writer.writerow(sample)


NOTES = [
    "Rates: trafgen on the client's veth, counted at the server's input hook after the table",
    "(inet kcbench, priority 10), per CPU-second of sending and receiving (wall clock in the JSON).",
    "ratio = that rate over no table's in the same round: median over the rounds (lowest-highest);",
    "'wall' is the same ratio of wall-clock rates, which the machine's other work makes noisy.",
    "Wiki = the nftables wiki's one-rule-per-knock pattern; its ct rule turns on conntrack.",
]

"""The forward part: the rate of an established forwarded flow through a router with knockc's
table (a sequence with `forward: [udp/51820]`, the client granted), as a ratio to the same
router without it, per CPU-second, as the rates part measures (scripts/bench.md, "forward").
Two kinds: routed (the client sends to the backend's address, the router only routes) and
dnat (the client sends to the router's port, which a Docker-like table DNATs to the backend,
in both configurations)."""
import json
import os
import subprocess
import sys

from .lab import BenchError, log, run
from .rates import RATIO_TARGET, alternate, irq_time_accounting, rate_cell, ratio_cell, summarize_rates
from .rates import children_cpu_seconds, ksoftirqd_seconds, rate_sample
from .trafgen import ensure_trafgen, finish_trafgen, start_trafgen

ROUTER_IP = "192.0.2.1"         # the router's side towards the client
CLIENT_IP = "192.0.2.2"
UNGRANTED_IP = "192.0.2.3"      # a source no table grants: the pre-flight check that knockc's table is live
ROUTER_BACK_IP = "198.51.100.1"  # the router's side towards the backend
BACKEND_IP = "198.51.100.10"
PORT = 51820                    # forwarded (and, with the DNAT, published on the router under the same number)
SOURCE_PORT = 40000
FILL = 18                       # payload bytes of a measured frame: udp length 26
SPEC = """sequences:
  vpn:
    knock: [tcp/7100, udp/7000, tcp/7200]
    forward: [udp/51820]
    open_for: 1h
"""
# Docker's `-p 51820:51820/udp`, in a table knockc does not own.
DNAT = (f"table ip dockerish {{\n\tchain prerouting {{ type nat hook prerouting priority dstnat; "
        f"iifname \"{{dev}}\" udp dport {PORT} dnat to {BACKEND_IP}:{PORT}; }}\n}}\n")
# What any base chain at the forward hook costs, rules aside: a floor for knockc's ratio.
EMPTY = "table inet kcempty {\n\tchain forward {\n\t\ttype filter hook forward priority -10; policy accept;\n\t}\n}\n"
# The same chain with one rule that looks at conntrack, which turns conntrack on in the
# namespace, as knockc's forward chain does: what conntrack alone costs a router that had none.
CONNTRACK = ("table inet kcconntrack {\n\tchain forward {\n\t\ttype filter hook forward priority -10; policy accept;\n"
             "\t\tct state invalid drop\n\t}\n}\n")
# At the backend: counts the measured frames (by their length, so the datagrams that set the
# flow up reach the echo) and drops them, as the rates part's inet kcbench does.
COUNT = (f"table inet kcbench {{\n\tchain count {{\n\t\ttype filter hook input priority 10; policy accept;\n"
         f"\t\tudp dport {PORT} udp length {8 + FILL} counter drop comment \"forwarded\"\n\t}}\n}}\n")
# The backend's service: echoes each datagram that reaches the socket (only the set-up ones do).
ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)
"""
# The client's side of the set-up: one datagram from SOURCE_PORT, and its echo back, so that
# conntrack has seen a reply and later packets of the flow are established.
HELLO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(1.0)
for attempt in range(5):
    s.sendto(b"hello", (sys.argv[3], int(sys.argv[4])))
    try:
        if s.recvfrom(2048)[0] == b"hello":
            sys.exit(0)
    except TimeoutError:
        continue
sys.exit("no echo")
"""


class ForwardPath:
    """client -> router -> backend in three namespaces; the router forwards, and holds
    knockc's table (with the client granted), a Docker-like DNAT, both, or neither. Offers
    what rates.alternate needs: a label and sample(kind, seconds, cpus)."""

    def __init__(self, lab, tag, label, knockc, dnat, empty=False, conntrack=False):
        self.lab, self.label, self.dnat = lab, label, dnat
        self.kind = "dnat" if dnat else "routed"
        # pair()'s server (192.0.2.1) is the router, its client (192.0.2.2) the client.
        self.router, self.client = lab.pair(f"{tag}-a")
        self.client_dev = self.device(self.client)
        self.router_dev = self.device(self.router)
        self.backend = lab.netns(f"{tag}-b")
        veth = f"kf{os.getpid()}{lab.counter}"[:13]
        run(["ip", "link", "add", veth + "r", "netns", self.router, "type", "veth", "peer", "name", veth + "b",
             "netns", self.backend])
        run(["ip", "-n", self.router, "addr", "add", f"{ROUTER_BACK_IP}/24", "dev", veth + "r"])
        run(["ip", "-n", self.backend, "addr", "add", f"{BACKEND_IP}/24", "dev", veth + "b"])
        run(["ip", "-n", self.router, "link", "set", veth + "r", "up"])
        run(["ip", "-n", self.backend, "link", "set", veth + "b", "up"])
        run(["ip", "-n", self.backend, "route", "add", "default", "via", ROUTER_BACK_IP])
        run(["ip", "-n", self.client, "route", "add", "default", "via", ROUTER_IP])
        run(["ip", "netns", "exec", self.router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
             "net.ipv6.conf.all.forwarding=1", "net.ipv4.conf.all.rp_filter=0",
             f"net.ipv4.conf.{self.router_dev}.rp_filter=0"])
        self.nft(self.backend, "count", COUNT)
        self.echo = lab.spawn(["ip", "netns", "exec", self.backend, sys.executable, "-c", ECHO, str(PORT)],
                              stdout=subprocess.PIPE, text=True)
        if self.echo.stdout.readline().strip() != "ready":
            raise BenchError("the UDP echo in the backend namespace did not start")
        if dnat:
            self.nft(self.router, "dnat", DNAT.replace("{dev}", self.router_dev))
        if empty:
            self.nft(self.router, "empty", EMPTY)
        if conntrack:
            self.nft(self.router, "conntrack", CONNTRACK)
        if knockc:
            spec = os.path.join(lab.tmpdir, "forward.yaml")
            with open(spec, "w") as file:
                file.write(SPEC)
            applied = run(["ip", "netns", "exec", self.router, lab.knockc, "apply", spec])
            if "forwarding is off" in applied.stderr:
                raise BenchError(f"knockc apply in the router warns that forwarding is off:\n{applied.stderr}")
            self.nft(self.router, "grant",
                     f"add element inet knockc granted4 {{ {CLIENT_IP} . udp . {PORT} timeout 1h }}\n")
        self.destination = ROUTER_IP if dnat else BACKEND_IP
        mac = json.loads(run(["ip", "-n", self.router, "-j", "link", "show", self.router_dev]).stdout)[0]["address"]
        self.frames = {}
        for name, source in (("flow", CLIENT_IP), ("ungranted", UNGRANTED_IP)):
            self.frames[name] = os.path.join(lab.tmpdir, f"{tag}-{name}.trafgen")
            with open(self.frames[name], "w") as file:
                file.write(f"{{ eth(da={mac}), ipv4(da={self.destination}, sa={source}, ttl=64), "
                           f"udp(sp={SOURCE_PORT}, dp={PORT}), fill(0x00, {FILL}) }}\n")

    @staticmethod
    def device(namespace):
        listing = json.loads(run(["ip", "-n", namespace, "-j", "link", "show", "type", "veth"]).stdout)
        return listing[0]["ifname"]

    def nft(self, namespace, name, text):
        path = os.path.join(self.lab.tmpdir, f"{namespace}-{name}.nft")
        with open(path, "w") as file:
            file.write(text)
        run(["ip", "netns", "exec", namespace, "nft", "-f", path])

    def close(self):
        self.lab.stop(self.echo)
        for namespace in (self.client, self.router, self.backend):
            self.lab.delete_netns(namespace)

    def establish(self):
        """The set-up datagram and its echo, through the router: afterwards the flow is
        established in the router's conntrack (when anything there turned conntrack on).
        Again before every sample, so that a UDP entry never times out between samples."""
        result = run(["ip", "netns", "exec", self.client, sys.executable, "-c", HELLO, CLIENT_IP, str(SOURCE_PORT),
                      self.destination, str(PORT)], check=False)
        if result.returncode != 0:
            raise BenchError(f"{self.label} ({self.kind}): the set-up datagram got no echo from the backend: "
                             f"{result.stderr.strip()}")

    def counted(self):
        listing = json.loads(run(["ip", "netns", "exec", self.backend, "nft", "-j", "list", "table", "inet",
                                  "kcbench"]).stdout)
        for item in listing["nftables"]:
            rule = item.get("rule")
            if rule and rule.get("comment") == "forwarded":
                return next(e["counter"]["packets"] for e in rule["expr"] if "counter" in e)
        raise BenchError("no counter in the backend's inet kcbench")

    def send(self, frames, seconds, cpus, count=None):
        """As RatePair.send: what trafgen sent, how many reached the backend, and the CPU
        seconds of sending, forwarding and receiving them (trafgen's, which on veth includes
        the softirq work of the router and the backend, plus ksoftirqd's meanwhile)."""
        before = self.counted()
        cpu_before, soft_before = children_cpu_seconds(), ksoftirqd_seconds()
        process = start_trafgen(self.lab, self.client, self.client_dev, self.frames[frames], seconds, cpus, count=count)
        sent = finish_trafgen(self.lab, process, seconds)
        cpu = children_cpu_seconds() - cpu_before + ksoftirqd_seconds() - soft_before
        return sent, self.counted() - before, cpu

    def check(self, frames, expect_accepted):
        """Pre-flight: 1,000 frames; all of them or none must reach the backend."""
        if frames == "flow":
            self.establish()
        sent, accepted, _ = self.send(frames, 5, 1, count=1000)
        want = sent["sent"] if expect_accepted else 0
        if accepted != want:
            raise BenchError(f"{self.label} ({self.kind}): {accepted} of {sent['sent']} {frames} frames reached "
                             f"the backend, expected {want}")

    def sample(self, kind, seconds, cpus):
        """One sample, as RatePair.sample (per CPU-second and wall clock); `kind` is this
        path's own."""
        if kind != self.kind:
            raise BenchError(f"{self.label} measures {self.kind}, not {kind}")
        self.establish()
        return rate_sample(self.label, kind, lambda: self.send("flow", seconds, cpus))


def conntrack_entries(namespace):
    try:
        return int(run(["ip", "netns", "exec", namespace, "cat", "/proc/sys/net/netfilter/nf_conntrack_count"],
                       check=False).stdout.strip() or 0)
    except ValueError:
        return None


def measure(lab, args):
    """Seven paths (routed and dnat, each without a table of ours, with an empty forward base
    chain, and with knockc's table; routed also with conntrack turned on by a chain of one ct
    rule), a pre-flight of each, then alternating rounds of each kind's paths."""
    ensure_trafgen()
    if irq_time_accounting():
        log("warning: CONFIG_IRQ_TIME_ACCOUNTING=y: the CPU seconds leave out softirq time")
    paths = {}
    for dnat in (False, True):
        kind = "dnat" if dnat else "routed"
        log(f"forward: {kind} paths, without and with knockc's table")
        paths[kind] = [ForwardPath(lab, f"f{kind[0]}n", "no table", False, dnat),
                       ForwardPath(lab, f"f{kind[0]}e", "empty chain", False, dnat, empty=True),
                       *([] if dnat else [ForwardPath(lab, "frc", "conntrack", False, dnat, conntrack=True)]),
                       ForwardPath(lab, f"f{kind[0]}k", "knockc", True, dnat)]
    log("forward: pre-flight: 1,000 frames of the granted flow, and of an ungranted source (refused by knockc's table "
        "on the dnat path only: knockc guards published (DNATed) connections, not routed ones)")
    conntrack = {}
    for kind, pair in paths.items():
        for path in pair:
            path.check("flow", True)
            path.check("ungranted", path.label != "knockc" or kind == "routed")
            conntrack[f"{kind} {path.label}"] = conntrack_entries(path.router)
    cpus = args.rate_cpus or os.cpu_count() or 1
    samples = []
    for kind, pair in paths.items():
        samples += alternate(pair, [kind], args.rounds, args.rate_seconds, cpus, "forward")
    for pair in paths.values():
        for path in pair:
            path.close()
    return {"spec": SPEC, "port": f"udp/{PORT}", "irq_time_accounting": irq_time_accounting(),
            "router_conntrack_entries": conntrack,
            "trafgen_processes": cpus, "rate_seconds": args.rate_seconds, "rounds": args.rounds,
            "summary": summarize_rates(samples, "no table"), "samples": samples}


KIND_LABELS = {
    "routed": f"established udp/{PORT} flow, client -> router -> backend, routed",
    "dnat": f"established udp/{PORT} flow, client -> router (Docker-like DNAT) -> backend",
}


def rows(result):
    rows = []
    rounds = result["rounds"]
    for kind, label in KIND_LABELS.items():
        per_config = result["summary"][kind]
        base = "no table" if kind == "routed" else "the DNAT table alone"
        rows.append((f"forward accepted rate, {label}, {base} (median of {rounds})",
                     rate_cell(per_config["no table"]), "-", "-"))
        rows.append((f"forward ratio to {base}, {label}, with an empty forward base chain",
                     ratio_cell(per_config["empty chain"]), "-", "-"))
        if "conntrack" in per_config:
            rows.append((f"forward ratio to {base}, {label}, with conntrack on (a forward chain of one ct rule)",
                         ratio_cell(per_config["conntrack"]), "-", "-"))
        entry = per_config["knockc"]
        rows.append((f"forward ratio to {base}, {label}, with knockc's table (forward: [udp/{PORT}], granted)",
                     ratio_cell(entry), f">= {RATIO_TARGET}", "yes" if entry["cpu_median_ratio"] >= RATIO_TARGET else "NO"))
    return rows


NOTES = [
    "Forward: trafgen on the client's veth, counted at the backend's input hook, per CPU-second of",
    "sending, forwarding and receiving (the router's and backend's softirq work runs in trafgen's context).",
    "The routed baseline has no conntrack; knockc's forward chain (ct state new) turns it on in the router.",
]

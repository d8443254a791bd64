"""The flood part: legitimate knocks during a flood of first knocks from 198.18.0.0/15,
with the default progress set and a small one, at full rate and at 10,000 pkt/s
(scripts/bench.md, "flood")."""
import json
import os
import subprocess
import sys
import time

from .lab import (CONNECT, KNOCK, CLIENT_IP, FLOOD_FIRST, FLOOD_KNOCKS, FLOOD_LAST, FLOOD_NET, FLOOD_PORT, LISTENER,
                  SERVER_IP, BenchError, log, run, veth_of)
from .specs import ssh_spec
from .trafgen import ensure_trafgen, finish_trafgen, start_trafgen

# A table of its own in the server that counts the flood's packets at the input hook,
# before knockc's chain.
TG_COUNTER_TABLE = f"""table inet kcflood {{
\tchain count {{
\t\ttype filter hook input priority -20; policy accept;
\t\tip saddr {FLOOD_NET} tcp dport {FLOOD_KNOCKS[0][1]} counter
\t}}
}}
"""


LEGIT = CONNECT + KNOCK + r"""
import json, subprocess, sys, time
cfg = json.loads(sys.argv[1])
host, port, knocks = cfg["host"], cfg["port"], cfg["knocks"]

start = time.monotonic()
deadline = start + cfg["duration_s"]
attempts = []
while time.monotonic() < deadline and len(attempts) < cfg["max_attempts"]:
    began = time.monotonic()
    # Untimed: take away the grant of the previous attempt, so every success is earned anew.
    reset = subprocess.run(cfg["reset"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10).returncode
    for proto, p in knocks:
        knock(host, proto, p)
    outcome = connect(host, port)
    attempts.append({"t_s": round(began - start, 3), "outcome": outcome, "reset_rc": reset})
    pause = cfg["interval_s"] - (time.monotonic() - began)
    if pause > 0:
        time.sleep(pause)
print(json.dumps(attempts))
"""


class FloodLab:
    """A server/client pair for the flood: the spec applied in the server, a listener on
    192.0.2.1:22, a counter of the flood's packets at the server's input hook (a table of its
    own, before knockc's chain), and a blackhole route for the flood's sources so that the
    server's answers (RSTs) to them go nowhere. trafgen in the client writes TCP SYNs to
    192.0.2.1:7000 from 198.18.0.0/15 straight onto the client's veth."""

    def __init__(self, lab, tag, spec, listen_s):
        self.lab = lab
        self.server, self.client = lab.pair(tag)
        self.server_dev, self.client_dev = veth_of(self.server), veth_of(self.client)
        run(["ip", "-n", self.server, "route", "add", "blackhole", FLOOD_NET])
        run(["ip", "netns", "exec", self.server, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=0",
             f"net.ipv4.conf.{self.server_dev}.rp_filter=0"])
        run(["ip", "netns", "exec", self.server, lab.knockc, "apply", spec])
        counter = os.path.join(lab.tmpdir, f"kcflood-{tag}.nft")
        with open(counter, "w") as file:
            file.write(TG_COUNTER_TABLE)
        run(["ip", "netns", "exec", self.server, "nft", "-f", counter])
        self.listener = lab.spawn(["ip", "netns", "exec", self.server, sys.executable, "-c", LISTENER,
                                   SERVER_IP, str(listen_s), str(FLOOD_PORT)], stdout=subprocess.PIPE, text=True)
        if self.listener.stdout.readline().strip() != "ready":
            raise BenchError("the listener in the server namespace did not start")
        mac = json.loads(run(["ip", "-n", self.server, "-j", "link", "show", self.server_dev]).stdout)[0]["address"]
        # dinc walks the 131072 sources of 198.18.0.0/15 in turn: every packet is a source the
        # set has not seen for a while (per trafgen process; each has its own counter).
        self.config = os.path.join(lab.tmpdir, f"syn-{tag}.trafgen")
        with open(self.config, "w") as file:
            file.write(f"{{ eth(da={mac}), ipv4(da={SERVER_IP}, ttl=64, sa=dinc({FLOOD_FIRST}, {FLOOD_LAST})), "
                       f"tcp(sp=drnd(1024, 65535), dp={FLOOD_KNOCKS[0][1]}, syn, win=64240) }}\n")

    def counted(self):
        listing = json.loads(run(["ip", "netns", "exec", self.server, "nft", "-j", "list", "table", "inet", "kcflood"]).stdout)
        for item in listing["nftables"]:
            for expr in item.get("rule", {}).get("expr", []):
                if "counter" in expr:
                    return expr["counter"]["packets"]
        raise BenchError("no counter in table inet kcflood")

    def progress_elements(self, name="progress4"):
        """The elements set `name` of table inet knockc lists (expired ones are not listed)."""
        listing = json.loads(run(["ip", "netns", "exec", self.server, "nft", "-j", "list", "set",
                                  "inet", "knockc", name], timeout=60).stdout)
        for item in listing["nftables"]:
            if "set" in item:
                return len(item["set"].get("elem", []))
        return 0

    def forget(self):
        """Empties the progress and grant sets (control plane), so each run starts clean."""
        run(["ip", "netns", "exec", self.server, "nft",
             "flush set inet knockc started4; flush set inet knockc progress4; flush set inet knockc granted4"])

    def start_flood(self, seconds, cpus, rate_pps=None):
        return start_trafgen(self.lab, self.client, self.client_dev, self.config, seconds, cpus, rate_pps)

    def finish_flood(self, process, seconds):
        return finish_trafgen(self.lab, process, seconds)["sent"]

    def flood(self, seconds, cpus, rate_pps=None):
        """A flood alone: packets sent by trafgen and counted at the input hook, per second."""
        before = self.counted()
        started = time.monotonic()
        process = self.start_flood(seconds, cpus, rate_pps)
        sent = self.finish_flood(process, seconds)
        elapsed = time.monotonic() - started
        counted = self.counted() - before
        return {"seconds": round(elapsed, 3), "cpus": cpus, "rate_limit_pps": rate_pps,
                "sent": sent, "counted_at_input": counted, "pps_at_input": counted / elapsed,
                "pps_sent": sent / elapsed if sent else None}

    def legit(self, seconds, interval_s=0.2):
        config = {"host": SERVER_IP, "port": FLOOD_PORT, "knocks": FLOOD_KNOCKS, "duration_s": seconds,
                  "interval_s": interval_s, "max_attempts": int(seconds / interval_s) + 5,
                  "reset": ["ip", "netns", "exec", self.server, "nft", "delete element inet knockc granted4 "
                            f"{{ {CLIENT_IP} . tcp . {FLOOD_PORT} }}"]}
        return self.lab.spawn(["ip", "netns", "exec", self.client, sys.executable, "-c", LEGIT, json.dumps(config)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def legit_result(self, process, seconds):
        try:
            out, err = process.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            self.lab.stop(process)
            raise BenchError("the legitimate client did not stop")
        self.lab.processes.remove(process)
        if process.returncode != 0:
            raise BenchError(f"the legitimate client failed:\n{err[-2000:]}")
        return json.loads(out)

    def run(self, label, flood_s, cpus, rate_pps=None, legit_margin_s=1.0):
        """A flood of `flood_s` seconds with the legitimate client knocking from 1 s after its
        start to 1 s before its end, so every attempt meets the flood in full swing."""
        self.forget()
        log(f"flood: {label}: {flood_s} s flood ({'max rate' if not rate_pps else f'{rate_pps} pps'}, "
            f"{cpus} trafgen process{'es' if cpus > 1 else ''}) with a legitimate client")
        before = self.counted()
        started = time.monotonic()
        flood = self.start_flood(flood_s, cpus, rate_pps)
        time.sleep(legit_margin_s)
        legit_s = flood_s - 2 * legit_margin_s
        client = self.legit(legit_s)
        # progress4 as listed at 1/4, 1/2 and 3/4 of the client's run. A listing leaves out
        # elements that have expired but not been reaped yet, which still take up room.
        listed = []
        for _ in range(3):
            time.sleep(legit_s / 4)
            listed.append(self.progress_elements())
        attempts = self.legit_result(client, legit_s)
        sent = self.finish_flood(flood, flood_s)
        elapsed = time.monotonic() - started
        counted = self.counted() - before
        return summarize_attempts(attempts, {
            "label": label, "flood_s": round(elapsed, 3), "cpus": cpus, "rate_limit_pps": rate_pps,
            "flood_sent": sent, "flood_counted_at_input": counted, "flood_pps_at_input": counted / elapsed,
            "progress4_listed_during_flood": listed})

    def baseline(self, seconds):
        self.forget()
        log(f"flood: no flood: legitimate client alone for {seconds} s")
        attempts = self.legit_result(self.legit(seconds), seconds)
        return summarize_attempts(attempts, {"label": "no flood", "flood_pps_at_input": 0})


def summarize_attempts(attempts, summary):
    outcomes = {}
    for attempt in attempts:
        outcomes[attempt["outcome"]] = outcomes.get(attempt["outcome"], 0) + 1
    successes = outcomes.get("open", 0)
    # A success followed by a failed grant reset would let the next attempt pass unearned.
    unearned = sum(1 for previous, attempt in zip(attempts, attempts[1:])
                   if previous["outcome"] == "open" and attempt["reset_rc"] != 0)
    summary.update({"attempts": len(attempts), "successes": successes,
                    "success_rate": successes / len(attempts) if attempts else float("nan"),
                    "outcomes": outcomes, "grant_reset_failures": unearned, "raw": attempts})
    if unearned:
        raise BenchError(f"{summary['label']}: {unearned} grant resets failed after a success")
    return summary


def measure(lab, args):
    ensure_trafgen()
    cpus = os.cpu_count() or 1
    results = {"step_timeout": "5s", "flood_sources": FLOOD_NET, "distinct_sources": FLOOD_LAST - FLOOD_FIRST + 1,
               "first_knock": f"tcp/{FLOOD_KNOCKS[0][1]}", "legit_interval_s": 0.2, "runs": []}
    listen_s = 4 * args.flood_seconds + 60
    big = FloodLab(lab, "flood", ssh_spec(lab, os.path.join(lab.tmpdir, "flood-default.yaml"), None, "5s"), listen_s)
    # The highest rate: trafgen with one process, and with one per CPU.
    probes = []
    for n in sorted({1, cpus}):
        big.forget()
        log(f"flood: flood rate probe: {args.probe_seconds} s, {n} trafgen process{'es' if n > 1 else ''}")
        probes.append(big.flood(args.probe_seconds, n))
    best = max(probes, key=lambda p: p["pps_at_input"])
    flood_cpus = args.flood_cpus or best["cpus"]
    results.update({"rate_probes": probes, "flood_cpus": flood_cpus})
    results["runs"].append({**big.baseline(args.baseline_seconds), "max_tracked_sources": 65536})
    results["runs"].append({**big.run("max rate, max_tracked_sources 65536 (default)", args.flood_seconds, flood_cpus),
                            "max_tracked_sources": 65536})
    if args.slow_flood_pps:
        results["runs"].append({**big.run(f"{args.slow_flood_pps} pps, max_tracked_sources 65536 (default)",
                                          args.slow_flood_seconds, 1, args.slow_flood_pps), "max_tracked_sources": 65536})
    lab.stop(big.listener)
    lab.delete_netns(big.server)
    lab.delete_netns(big.client)

    small = FloodLab(lab, "flsm", ssh_spec(lab, os.path.join(lab.tmpdir, "flood-small.yaml"),
                                                args.small_max_tracked_sources, "5s"), listen_s)
    results["runs"].append({**small.run(f"max rate, max_tracked_sources {args.small_max_tracked_sources}",
                                        args.flood_seconds, flood_cpus), "max_tracked_sources": args.small_max_tracked_sources})
    if args.slow_flood_pps:
        results["runs"].append({**small.run(f"{args.slow_flood_pps} pps, max_tracked_sources {args.small_max_tracked_sources}",
                                            args.slow_flood_seconds, 1, args.slow_flood_pps),
                                "max_tracked_sources": args.small_max_tracked_sources})
    lab.stop(small.listener)
    lab.delete_netns(small.server)
    lab.delete_netns(small.client)
    return results


def rows(flood):
    rows = []
    for probe in flood["rate_probes"]:
        rows.append((f"flood rate, trafgen x{probe['cpus']}, SYNs from {FLOOD_NET} (at input hook)",
                     f"{probe['pps_at_input']:,.0f} pkt/s", "-", "-"))
    seen = [p["pps_at_input"] for p in flood["rate_probes"]] + [r["flood_pps_at_input"] for r in flood["runs"]]
    rows.append(("flood rate, highest seen (probes and full-rate runs)", f"{max(seen):,.0f} pkt/s", "-", "-"))
    for r in flood["runs"]:
        detail = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()) if k != "open")
        value = f"{r['successes']} / {r['attempts']} = {100 * r['success_rate']:.0f}%"
        if detail:
            value += f"  (others: {detail})"
        if r["flood_pps_at_input"]:
            listed = r["progress4_listed_during_flood"]
            value += f";  flood {r['flood_pps_at_input']:,.0f} pkt/s, progress4 listed {'/'.join(map(str, listed))}"
        rows.append((f"legit knock+connect success, {r['label']}", value, "-", "-"))
    return rows


NOTES = ["Legit: the full sequence then one connect from 192.0.2.2 every 200 ms, its grant removed before each attempt."]

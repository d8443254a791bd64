"""The rules part: how many rules of table inet knockc a packet traverses, from
`nft monitor trace`, for a non-knock packet, a guarded port and a knock, at 1 to 10,000
sequences (scripts/bench.md, "rules")."""
import os
import re
import subprocess
import sys
import threading
import time

from .lab import NON_KNOCK_PORT, SERVER_IP, BenchError, log, run, table_name
from .specs import compiled_spec, generated_specs


TRACE_TABLE = f"""table inet kctrace {{
\tset knocks {{ type inet_service; }}
\tchain pre {{
\t\ttype filter hook prerouting priority -350; policy accept;
\t\tudp dport {NON_KNOCK_PORT} meta nftrace set 1
\t\ttcp dport 22 meta nftrace set 1
\t\ttcp dport @knocks meta nftrace set 1
\t}}
}}
"""


SENDER = r"""
import errno, socket, struct, sys, time
host, udp_port, tcp_port, knock_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b"", (host, udp_port)); s.close()
time.sleep(0.05)
s = socket.socket(); s.settimeout(2)
try:
    s.connect((host, tcp_port)); print("tcp: open")
except ConnectionRefusedError:
    print("tcp: refused")
except OSError as e:
    print("tcp:", e)
s.close()
time.sleep(0.05)
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.connect_ex((host, knock_port)); s.close()
"""


TRACE_LINE = re.compile(r"^trace id (\S+) (\S+) (\S+) (\S+) (.*)$")


def chain_rules(server, table, chain, cache):
    """The rule handles of one chain, in order (`nft -a list chain`)."""
    if chain not in cache:
        listing = run(["ip", "netns", "exec", server, "nft", "-a", "list", "chain", "inet", table, chain]).stdout
        handles = []
        for line in listing.splitlines():
            line = line.strip()
            match = re.search(r"# handle (\d+)$", line)
            if match and not line.startswith(("chain ", "table ")):
                handles.append(int(match.group(1)))
        cache[chain] = handles
    return cache[chain]


def analyse_trace(lines, server, table, cache, rules=True):
    """Per traced packet: its destination, the knockc chains it visited, the verdict, the sum
    of those chains' rule counts (upper bound) and the rules evaluated up to the verdict."""
    packets = {}
    for line in lines:
        match = TRACE_LINE.match(line.strip())
        if not match:
            continue
        trace_id, family, tbl, chain, rest = match.groups()
        packet = packets.setdefault(trace_id, {"dport": None, "events": []})
        if rest.startswith("packet:"):
            dport = re.search(r"(tcp|udp) dport (\d+)", rest)
            if dport:
                packet["dport"] = f"{dport.group(1)}/{dport.group(2)}"
            continue
        if tbl != table or family != "inet":
            continue
        handle = re.search(r"# handle (\d+)", rest)
        verdict = re.search(r"\(verdict ([^)]*)\)\s*$", rest)
        if rest.startswith("rule "):
            packet["events"].append((chain, int(handle.group(1)) if handle else None,
                                     verdict.group(1) if verdict else "?"))
        else:  # "policy accept", "verdict ...", "return ..."
            packet["events"].append((chain, None, rest.strip()))
    out = {}
    for packet in packets.values():
        if packet["dport"] is None or not packet["events"]:
            continue
        if not rules:  # only which packets have knockc events
            out[packet["dport"]] = packet
            continue
        chains = []
        for chain, _, _ in packet["events"]:
            if chain not in chains:
                chains.append(chain)
        counts = {chain: len(chain_rules(server, table, chain, cache)) for chain in chains}
        last_chain, last_handle, last_verdict = packet["events"][-1]
        evaluated = 0
        for chain in chains:
            handles = chain_rules(server, table, chain, cache)
            stop = None
            if last_handle is not None and chain == last_chain:
                stop = last_handle  # the rule that gave the final verdict
            elif last_handle is not None:
                jumps = [h for c, h, v in packet["events"] if c == chain and h is not None
                         and v.split()[0] in ("jump", "goto")]
                stop = jumps[-1] if jumps else None  # still on the call stack
            evaluated += handles.index(stop) + 1 if stop in handles else len(handles)
        out[packet["dport"]] = {
            "chains": chains, "rule_counts": counts, "verdict": last_verdict,
            "rules_traversed": sum(counts.values()), "rules_evaluated_to_verdict": evaluated,
            "events": packet["events"],
        }
    return out


def compiled_rule_count(script):
    """Rules in a compiled nft script: the lines inside chain blocks other than the hook line."""
    count, in_chain = 0, False
    for line in script.splitlines():
        line = line.strip()
        if line.startswith("chain ") and line.endswith("{"):
            in_chain = True
        elif in_chain and line == "}":
            in_chain = False
        elif in_chain and line and not line.startswith(("type ", "policy ", "#")):
            count += 1
    return count


def send(lab, client, argv, timeout=20):
    return run(["ip", "netns", "exec", client, sys.executable, "-c"] + argv, timeout=timeout).stdout


PING = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b"", (sys.argv[1], int(sys.argv[2]))); s.close()
"""


def trace_once(lab, server, client, table, knock_port):
    """Starts `nft -a monitor trace`, waits until it reports (it loads the whole ruleset first,
    ~10 s at 10000 sequences) by sending a udp/5555 datagram every 0.5 s, then sends the three
    packets and returns the monitor's lines once their traces are in."""
    monitor = lab.spawn(["ip", "netns", "exec", server, "timeout", "120", "nft", "-a", "monitor", "trace"],
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = []

    def read():
        for line in monitor.stdout:
            lines.append(line)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while not any(" inet knockc input packet:" in line for line in list(lines)):
            if time.monotonic() > deadline or monitor.poll() is not None:
                raise BenchError("nft monitor trace reported nothing within 90 s")
            send(lab, client, [PING, SERVER_IP, str(NON_KNOCK_PORT)])
            time.sleep(0.5)
        ready = len(lines)
        probe = send(lab, client, [SENDER, SERVER_IP, str(NON_KNOCK_PORT), "22", str(knock_port)])
        wanted = {f"udp/{NON_KNOCK_PORT}", "tcp/22", f"tcp/{knock_port}"}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.3)
            if wanted <= set(analyse_trace(list(lines)[ready:], server, table, {}, rules=False)):
                time.sleep(0.3)  # let the last events of the packets arrive
                break
    finally:
        lab.stop(monitor)
        reader.join(timeout=5)
    return list(lines)[ready:], probe.strip()


def measure(lab, args):
    specs = generated_specs(lab, args.trace_sizes)
    sizes = sorted(specs)
    log(f"rules: rules traversed, trace at {', '.join(map(str, sizes))} sequences")
    server, client = lab.pair("trace")
    table_file = os.path.join(lab.tmpdir, "kctrace.nft")
    with open(table_file, "w") as file:
        file.write(TRACE_TABLE)
    run(["ip", "netns", "exec", server, "nft", "-f", table_file])
    results = {}
    for count in sizes:
        spec = specs[count]["path"]
        table = table_name(lab, specs[min(specs)]["path"])
        run(["ip", "netns", "exec", server, lab.knockc, "apply", spec], timeout=300)
        _, knock_port = specs[count]["first_knock"]
        # Forget the knock state of earlier sizes (apply may keep it) so the knock is a fresh one.
        run(["ip", "netns", "exec", server, "nft", f"flush set inet kctrace knocks; "
             f"add element inet kctrace knocks {{ {knock_port} }}; "
             f"flush set inet {table} progress4; flush set inet {table} granted4"])
        with open(compiled_spec(lab, count, spec)) as file:
            total_rules = compiled_rule_count(file.read())
        wanted = {f"udp/{NON_KNOCK_PORT}", "tcp/22", f"tcp/{knock_port}"}
        lines, probe = trace_once(lab, server, client, table, knock_port)
        analysed = analyse_trace(lines, server, table, {})
        if not wanted <= set(analysed):
            raise BenchError(f"incomplete trace at {count} sequences:\n" + "\n".join(lines[:40]))
        results[count] = {
            "non_knock": analysed[f"udp/{NON_KNOCK_PORT}"], "guarded": analysed["tcp/22"],
            "knock": analysed[f"tcp/{knock_port}"], "knock_port": f"tcp/{knock_port}",
            "guarded_probe": probe, "table_rules_total": total_rules, "trace_lines": lines,
        }
    lab.delete_netns(server)
    lab.delete_netns(client)
    return results


def rows(traces):
    rows = []
    base = traces.get(min(traces))
    for kind, label in (("non_knock", f"non-knock udp/{NON_KNOCK_PORT}"),
                        ("guarded", "guarded tcp/22, not granted"),
                        ("knock", "knock (1st of s0000)")):
        for count, r in sorted(traces.items()):
            t = r[kind]
            value = f"{t['rules_traversed']}  [{' > '.join(t['chains'])} : {t['verdict']}]"
            target, met = "-", "-"
            if kind != "knock" and count != min(traces):
                want = base[kind]["rules_traversed"]
                target = f"= {want} (as at {min(traces)} seq)"
                met = "yes" if t["rules_traversed"] == want else "NO"
            rows.append((f"rules traversed, {label}, {count} seq", value, target, met))
    for count, r in sorted(traces.items()):
        rows.append((f"rules in table inet knockc, {count} seq", str(r["table_rules_total"]), "-", "-"))
    return rows


NOTES = ["rules traversed = sum of the rule counts (nft -a list chain) of the knockc chains the",
         "packet visited in `nft monitor trace`: the most rules the kernel could have evaluated."]

"""The latency part: knock-to-open latency of examples/ssh.yaml, from the last knock to an
accepted connect, and the floor of a connect with no knock (scripts/bench.md, "latency")."""
import json
import re
import subprocess
import sys

from .lab import CONNECT, KNOCK, LISTENER, SERVER_IP, SSH_SPEC, BenchError, fmt_ms, log, percentile, run, table_name

# The client loop, run with `ip netns exec CLIENT`: every try resets the state, checks the
# port is refused, knocks, and times the last knock to the first accepted connect.
CLIENT = CONNECT + KNOCK + r"""
import json, subprocess, sys, time
cfg = json.loads(sys.argv[1])
host, port, knocks = cfg["host"], cfg["port"], cfg["knocks"]
deadline = time.monotonic() + cfg["deadline_s"]
send_errors = []

tries = []
for i in range(cfg["tries"]):
    if time.monotonic() > deadline:
        break
    subprocess.run(cfg["reset"], check=True, timeout=10,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = connect(host, port, cfg["connect_timeout_s"])
    for proto, p in knocks[:-1]:
        send_errors.append(knock(host, proto, p))
    t0 = time.perf_counter_ns()
    send_errors.append(knock(host, *knocks[-1]))
    attempts, outcome, latency = 0, None, None
    while True:
        attempts += 1
        outcome = connect(host, port, cfg["connect_timeout_s"])
        if outcome == "open":
            latency = (time.perf_counter_ns() - t0) / 1e6
            break
        if attempts >= cfg["max_attempts"] or (time.perf_counter_ns() - t0) / 1e6 > cfg["open_within_ms"]:
            break
    tries.append({"before": before, "latency_ms": latency, "attempts": attempts, "last": outcome})

# Floor: the same connect() while the source is granted (after the last try), no knock.
floor = []
for i in range(cfg["floor_tries"]):
    t0 = time.perf_counter_ns()
    outcome = connect(host, port, cfg["connect_timeout_s"])
    if outcome == "open":
        floor.append((time.perf_counter_ns() - t0) / 1e6)
print(json.dumps({"tries": tries, "floor_ms": floor, "send_errors": [e for e in send_errors if e][:20]}))
"""


def parse_sequence(spec_path, sequence):
    """The knocks and first open port of one sequence of a simple spec (flow lists)."""
    text = open(spec_path).read()
    block = re.search(rf"^\s+{re.escape(sequence)}:\s*\n((?:\s{{4,}}.*\n?)*)", text, re.M)
    if not block:
        raise BenchError(f"{spec_path} has no sequence {sequence}")
    knocks = re.search(r"knock:\s*\[([^\]]*)\]", block.group(1))
    opens = re.search(r"open:\s*\[([^\]]*)\]", block.group(1))
    words = [w.strip() for w in knocks.group(1).split(",")]
    parsed = [(w.split("/")[0], int(w.split("/")[1])) for w in words]
    open_port = opens.group(1).split(",")[0].strip()
    if not open_port.startswith("tcp/"):
        raise BenchError("the latency measurement needs a guarded tcp port")
    return parsed, int(open_port.split("/")[1])


def measure(lab, args):
    log(f"latency: knock-to-open, {args.tries} tries, examples/ssh.yaml")
    knocks, port = parse_sequence(SSH_SPEC, "ssh")
    table = table_name(lab, SSH_SPEC)
    server, client = lab.pair("lat")
    run(["ip", "netns", "exec", server, lab.knockc, "apply", SSH_SPEC])
    listener = lab.spawn(["ip", "netns", "exec", server, sys.executable, "-c", LISTENER,
                          SERVER_IP, "240", str(port)], stdout=subprocess.PIPE, text=True)
    if listener.stdout.readline().strip() != "ready":
        raise BenchError("the listener in the server namespace did not start")
    reset = ["ip", "netns", "exec", server, "nft",
             f"flush set inet {table} granted4; flush set inet {table} started4; flush set inet {table} progress4"]
    config = {
        "host": SERVER_IP, "port": port, "knocks": knocks, "tries": args.tries,
        "reset": reset, "connect_timeout_s": 1, "open_within_ms": 200, "max_attempts": 50,
        "floor_tries": 200, "deadline_s": 150,
    }
    result = run(["ip", "netns", "exec", client, sys.executable, "-c", CLIENT, json.dumps(config)],
                 timeout=200)
    data = json.loads(result.stdout)
    lab.stop(listener)
    lab.delete_netns(server)
    lab.delete_netns(client)

    tries = data["tries"]
    latencies = [t["latency_ms"] for t in tries if t["latency_ms"] is not None]
    summary = {
        "spec": "examples/ssh.yaml", "knocks": [f"{p}/{n}" for p, n in knocks], "port": port,
        "tries": len(tries),
        "failed_to_open": sum(1 for t in tries if t["latency_ms"] is None),
        "started_not_refused": sum(1 for t in tries if t["before"] != "refused"),
        "first_try_started_refused": bool(tries) and tries[0]["before"] == "refused",
        "needed_retry": sum(1 for t in tries if t["latency_ms"] is not None and t["attempts"] > 1),
        "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else float("nan"),
        "floor_p50_ms": percentile(data["floor_ms"], 50),
        "floor_p99_ms": percentile(data["floor_ms"], 99),
        "send_errors": data["send_errors"],
        "raw": tries, "floor_raw_ms": data["floor_ms"],
    }
    if len(tries) < args.tries:
        log(f"   only {len(tries)} tries fit in the time bound")
    return summary


def rows(latency):
    return [
        ("knock-to-open p50 (ssh.yaml, last knock -> connected)", fmt_ms(latency["p50_ms"]), "-", "-"),
        ("knock-to-open p99", fmt_ms(latency["p99_ms"]), "< 2 ms", "yes" if latency["p99_ms"] < 2 else "NO"),
        ("knock-to-open max", fmt_ms(latency["max_ms"]), "-", "-"),
        ("tries that failed to open", f"{latency['failed_to_open']} / {latency['tries']}",
         "0", "yes" if latency["failed_to_open"] == 0 else "NO"),
        ("tries that did not start refused", f"{latency['started_not_refused']} / {latency['tries']}",
         "0", "yes" if latency["started_not_refused"] == 0 else "NO"),
        ("tries whose first connect was refused (retried)", f"{latency['needed_retry']} / {latency['tries']}", "-", "-"),
        ("floor: connect p50 / p99 when granted, no knock",
         f"{fmt_ms(latency['floor_p50_ms'])} / {fmt_ms(latency['floor_p99_ms'])}", "-", "-"),
    ]


NOTES = ["Times are wall clock of the whole process (fork/exec included); see scripts/bench.md."]

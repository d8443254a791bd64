"""The proxy part: `knockc knock HOST ... --proxy PORT` as OpenSSH's ProxyCommand, against
the real sshd behind the table of examples/ssh.yaml: login times of plain ssh (granted
already) and of ssh through the proxy (each login knocks, from a revoked state), and the bulk
throughput of a session both ways, plain against proxied (scripts/bench.md, "proxy")."""
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

from .lab import CLIENT_IP, CONNECT, PID, SERVER_IP, SSH_SPEC, BenchError, fmt_ms, log, percentile, run

SSHD = "/usr/sbin/sshd"
SSH_PORT = 22
FAST_DELAY = "1ms"
DEFAULT_DELAY = "200ms"   # knockc knock's default --delay

# Timed logins, run in the client namespace: each run optionally resets the grant (a command
# that runs in the server's namespace, untimed) and checks that port 22 is then closed, then
# times one whole `ssh ... true` (fork/exec, knocks if proxied, handshake, auth, command, exit).
LOGINS = CONNECT + r"""
import json, subprocess, sys, time
cfg = json.loads(sys.argv[1])
deadline = time.monotonic() + cfg["deadline_s"]
runs = []
for i in range(cfg["runs"]):
    if time.monotonic() > deadline:
        break
    before = None
    if cfg["reset"]:
        subprocess.run(cfg["reset"], check=True, timeout=30, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = connect(cfg["host"], cfg["port"])
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cfg["ssh"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=cfg["timeout_s"])
        rc, error = done.returncode, done.stderr.decode(errors="replace")[-500:]
    except subprocess.TimeoutExpired:
        rc, error = "timeout", ""
    ms = (time.perf_counter() - t0) * 1000
    runs.append({"ms": ms if rc == 0 else None, "rc": rc, "before": before, "error": error if rc != 0 else ""})
print(json.dumps(runs))
"""

# Bulk transfers, run in the client namespace: each round one transfer per kind (plain, through
# knockc's --proxy, through `nc` as the reference ProxyCommand) and direction, the order of the
# kinds rotating by round. Only the data phase is timed, not the login:
# - up: the blob on ssh's stdin into `cat >/dev/null`; the server stamps its clock right
#   before cat starts and right after it saw end of file (same machine, same clock);
# - down: `head -c BYTES /dev/zero` read from ssh's stdout, from the first chunk to end of
#   file (the first chunk's bytes are not counted).
BULK = r"""
import json, os, subprocess, sys, time
cfg = json.loads(sys.argv[1])
deadline = time.monotonic() + cfg["deadline_s"]

def up(ssh):
    t0 = time.perf_counter()
    with open(cfg["blob"], "rb") as blob:
        done = subprocess.run(ssh + ["date +%s%N; cat >/dev/null; date +%s%N"], stdin=blob, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=cfg["timeout_s"])
    wall = time.perf_counter() - t0
    stamps = done.stdout.split()
    if done.returncode != 0 or len(stamps) != 2:
        return {"rc": done.returncode, "error": done.stderr.decode(errors="replace")[-500:]}
    seconds = (int(stamps[1]) - int(stamps[0])) / 1e9
    return {"rc": 0, "bytes": cfg["bytes"], "data_s": seconds, "wall_s": wall,
            "mb_per_s": cfg["bytes"] / seconds / 1e6}

def down(ssh):
    t0 = time.perf_counter()
    process = subprocess.Popen(ssh + [f"head -c {cfg['bytes']} /dev/zero"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    fd = process.stdout.fileno()
    total, first, first_at, last_at = 0, 0, None, None
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        last_at = time.perf_counter()
        if first_at is None:
            first_at, first = last_at, len(chunk)
        total += len(chunk)
        if last_at - t0 > cfg["timeout_s"]:
            process.kill()
            break
    error = process.stderr.read().decode(errors="replace")[-500:]
    rc = process.wait(timeout=30)
    wall = time.perf_counter() - t0
    if rc != 0 or total != cfg["bytes"] or first_at is None or last_at <= first_at:
        return {"rc": rc, "bytes": total, "error": error}
    seconds = last_at - first_at
    return {"rc": 0, "bytes": total, "data_s": seconds, "wall_s": wall,
            "mb_per_s": (total - first) / seconds / 1e6}

kinds = list(cfg["ssh"])
results = {direction: {kind: [] for kind in kinds} for direction in ("up", "down")}
for i in range(cfg["runs"]):
    if time.monotonic() > deadline:
        break
    order = kinds[i % len(kinds):] + kinds[:i % len(kinds)]
    for direction, transfer in (("up", up), ("down", down)):
        for kind in order:
            results[direction][kind].append(transfer(cfg["ssh"][kind]))
print(json.dumps(results))
"""


class SshServer:
    """Throwaway host and user keys, known_hosts, authorized_keys and sshd's config in a
    directory of this run's under /run (mode 0700: sshd's StrictModes refuses an
    authorized_keys file below a directory others may write to, such as /tmp), removed at the
    end; sshd -D -e in the server namespace as a process of the Lab's."""

    def __init__(self, lab, namespace):
        missing = [tool for tool in (SSHD, shutil.which("ssh"), shutil.which("ssh-keygen"))
                   if not tool or not os.access(tool, os.X_OK)]
        if missing:
            raise BenchError("the proxy part needs OpenSSH's ssh, ssh-keygen and /usr/sbin/sshd "
                             "(Debian: openssh-client, openssh-server)")
        self.directory = f"/run/knockc-bench-{PID}-ssh"
        shutil.rmtree(self.directory, ignore_errors=True)
        os.mkdir(self.directory, 0o700)
        lab.paths.append(self.directory)
        self.host_key = os.path.join(self.directory, "host_key")
        self.user_key = os.path.join(self.directory, "user_key")
        self.known_hosts = os.path.join(self.directory, "known_hosts")
        self.config = os.path.join(self.directory, "sshd_config")
        self.log_path = os.path.join(self.directory, "sshd.log")
        for key in (self.host_key, self.user_key):
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "knockc-bench", "-f", key])
        with open(self.user_key + ".pub") as file:
            self.write("authorized_keys", file.read())
        with open(self.host_key + ".pub") as file:
            self.write("known_hosts", f"{SERVER_IP} {file.read()}")
        # UsePAM no keeps the host's PAM stack out of it; root logs in with the key only.
        self.write("sshd_config", "\n".join([
            f"Port {SSH_PORT}", f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.directory}/authorized_keys", "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "UsePAM no", f"PidFile {self.directory}/sshd.pid", ""]))
        # sshd's privilege separation directory, which its systemd unit would make (left in place:
        # the machine's own sshd may use it).
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.log = open(self.log_path, "w")
        self.process = lab.spawn(["ip", "netns", "exec", namespace, SSHD, "-D", "-e", "-f", self.config],
                                 stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            if self.process.poll() is not None:
                raise BenchError(f"sshd exited {self.process.returncode}:\n{self.log_text()}")
            if run(["ip", "netns", "exec", namespace, "ss", "-Hltn", f"sport = :{SSH_PORT}"]).stdout.strip():
                break
            if time.monotonic() > deadline:
                raise BenchError(f"sshd did not listen on port {SSH_PORT} within 10 s:\n{self.log_text()}")
            time.sleep(0.05)

    def write(self, name, text):
        path = os.path.join(self.directory, name)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.write(descriptor, text.encode())
        os.close(descriptor)

    def log_text(self):
        self.log.flush()
        with open(self.log_path, errors="replace") as file:
            return file.read()[-2000:]

    def ssh(self, proxy=None):
        """ssh to root@SERVER_IP with the run's keys and nothing of the machine's configuration,
        without the remote command; `proxy` is the ProxyCommand."""
        argv = ["ssh", "-F", "/dev/null", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
                "-o", "IdentitiesOnly=yes", "-i", self.user_key, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        if proxy:
            argv += ["-o", f"ProxyCommand={proxy}"]
        return argv + [f"root@{SERVER_IP}"]


def proxy_command(lab, delay):
    return (f"{shlex.quote(lab.knockc)} knock %h --spec {shlex.quote(SSH_SPEC)} --sequence ssh "
            f"--delay {delay} --proxy %p")


def summarize_logins(runs):
    times = [r["ms"] for r in runs if r["ms"] is not None]
    return {"runs": len(runs), "failed": sum(1 for r in runs if r["ms"] is None),
            "started_not_closed": sum(1 for r in runs if r["before"] not in (None, "refused", "timeout")),
            "p50_ms": percentile(times, 50), "p90_ms": percentile(times, 90),
            "max_ms": max(times, default=float("nan")),
            "errors": sorted({r["error"].strip() for r in runs if r["error"]})[:5], "raw": runs}


def summarize_bulk(samples):
    rates = [s["mb_per_s"] for s in samples if s.get("rc") == 0]
    return {"runs": len(samples), "failed": sum(1 for s in samples if s.get("rc") != 0),
            "p50_mb_per_s": percentile(rates, 50), "min_mb_per_s": min(rates, default=float("nan")),
            "max_mb_per_s": max(rates, default=float("nan")),
            "errors": sorted({s["error"].strip() for s in samples if s.get("error")})[:5], "raw": samples}


def measure(lab, args):
    runs, bulk_runs, size = args.proxy_runs, args.proxy_bulk_runs, args.proxy_bulk_mb * 1_000_000
    log(f"proxy: ssh through knockc knock --proxy against plain ssh, {runs} logins each, "
        f"{bulk_runs} bulk rounds of {args.proxy_bulk_mb} MB")
    server, client = lab.pair("proxy")
    sshd = SshServer(lab, server)
    run(["ip", "netns", "exec", server, lab.knockc, "apply", SSH_SPEC])
    in_client = ["ip", "netns", "exec", client]
    closed = run(in_client + [sys.executable, "-c", CONNECT + f"print(connect({SERVER_IP!r}, {SSH_PORT}))"]).stdout.strip()
    if closed not in ("refused", "timeout"):
        raise BenchError(f"port {SSH_PORT} was {closed} before any knock: is the table there?")
    revoke = ["ip", "netns", "exec", server, lab.knockc, "revoke", CLIENT_IP]

    def logins(label, ssh, reset):
        log(f"proxy: {label}")
        config = {"host": SERVER_IP, "port": SSH_PORT, "runs": runs, "ssh": ssh + ["true"], "reset": reset,
                  "timeout_s": 60, "deadline_s": 600}
        result = run(in_client + [sys.executable, "-c", LOGINS, json.dumps(config)], timeout=700)
        summary = summarize_logins(json.loads(result.stdout))
        if summary["failed"]:
            log(f"   {summary['failed']} logins failed: {summary['errors']}\n   sshd: {sshd.log_text()[-500:]}")
        return summary

    def manual_knock():
        run(in_client + [lab.knockc, "knock", SERVER_IP, "--spec", SSH_SPEC, "--sequence", "ssh",
                         "--then-connect", str(SSH_PORT)], timeout=60)

    result = {"spec": "examples/ssh.yaml", "ssh_version": run(["ssh", "-V"]).stderr.strip(),
              "port_before_knock": closed}
    manual_knock()
    result["plain"] = logins("plain ssh after a manual knock --then-connect 22", sshd.ssh(), None)
    # The reference ProxyCommand: a relay that does not knock (the grant is there).
    nc = shutil.which("nc")
    if nc:
        result["nc"] = logins("ssh through ProxyCommand nc %h %p (no knock, granted already)",
                              sshd.ssh(f"{shlex.quote(nc)} %h %p"), None)
    for key, delay in (("proxy_fast", FAST_DELAY), ("proxy_default", DEFAULT_DELAY)):
        result[key] = logins(f"ssh through --proxy, --delay {delay}, revoked before each login",
                             sshd.ssh(proxy_command(lab, delay)), revoke)
        result[key]["delay"] = delay

    log(f"proxy: bulk, {args.proxy_bulk_mb} MB up (random) and down (zeros), plain and through --proxy")
    blob = os.path.join(lab.tmpdir, "proxy-blob")
    with open("/dev/urandom", "rb") as source, open(blob, "wb") as target:
        left = size
        while left:
            left -= target.write(source.read(min(left, 1 << 20)))
    manual_knock()  # the plain and nc transfers need the grant, which the last revoke may have taken
    config = {"runs": bulk_runs, "bytes": size, "blob": blob, "timeout_s": 300, "deadline_s": 900,
              "ssh": {"plain": sshd.ssh(), "proxy": sshd.ssh(proxy_command(lab, FAST_DELAY))}}
    if nc:
        config["ssh"]["nc"] = sshd.ssh(f"{shlex.quote(nc)} %h %p")
    data = json.loads(run(in_client + [sys.executable, "-c", BULK, json.dumps(config)], timeout=1000).stdout)
    os.unlink(blob)
    result["bulk"] = {direction: {kind: summarize_bulk(samples) for kind, samples in kinds.items()}
                      for direction, kinds in data.items()}
    result["bulk"]["bytes"] = size
    lab.stop(sshd.process)
    sshd.log.close()
    lab.delete_netns(server)
    lab.delete_netns(client)
    return result


BULK_LABELS = {"plain": "plain", "proxy": "knock --proxy", "nc": "ProxyCommand nc"}


def rows(proxy):
    rows = []
    for key, label in (("plain", "plain ssh, granted already (manual knock --then-connect 22)"),
                       ("nc", "ssh through ProxyCommand nc %h %p, no knock, granted already"),
                       ("proxy_fast", f"ssh through knock --proxy, --delay {FAST_DELAY}, revoked before each"),
                       ("proxy_default", f"ssh through knock --proxy, --delay {DEFAULT_DELAY} (default), revoked before each")):
        if key not in proxy:
            continue
        r = proxy[key]
        rows.append((f"proxy: login + true, {label}: p50 / p90 / max ({r['runs']} runs)",
                     f"{fmt_ms(r['p50_ms'])} / {fmt_ms(r['p90_ms'])} / {fmt_ms(r['max_ms'])}", "-", "-"))
        ok = r["failed"] == 0 and r["started_not_closed"] == 0
        revoked = key.startswith("proxy_")
        rows.append((f"proxy: login + true, {label}: failed" + (" / did not start closed" if revoked else ""),
                     f"{r['failed']}" + (f" / {r['started_not_closed']}" if revoked else ""),
                     "0" + (" / 0" if revoked else ""), "yes" if ok else "NO"))
    rows.append(("proxy: login, proxied (1ms) p50 minus plain p50",
                 f"{proxy['proxy_fast']['p50_ms'] - proxy['plain']['p50_ms']:+.1f} ms", "-", "-"))
    if "nc" in proxy:
        rows.append(("proxy: login, proxied (1ms) p50 minus nc p50",
                     f"{proxy['proxy_fast']['p50_ms'] - proxy['nc']['p50_ms']:+.1f} ms", "-", "-"))
    megabytes = proxy["bulk"]["bytes"] // 1_000_000
    for direction, label in (("up", f"{megabytes} MB of /dev/urandom into 'cat >/dev/null'"),
                             ("down", f"'head -c {megabytes}000000 /dev/zero' > /dev/null")):
        kinds = proxy["bulk"][direction]
        names = [k for k in ("plain", "proxy", "nc") if k in kinds]
        p50 = {k: kinds[k]["p50_mb_per_s"] for k in names}
        failed = sum(kinds[k]["failed"] for k in names)
        rows.append((f"proxy: bulk {direction}, {label}: {' / '.join(BULK_LABELS[k] for k in names)} p50 "
                     f"({kinds['plain']['runs']} runs each)", " / ".join(f"{p50[k]:.0f}" for k in names) + " MB/s",
                     "-", "-"))
        ratios = [f"{p50[k] / p50['plain']:.2f}" if p50["plain"] else "nan" for k in names if k != "plain"]
        rows.append((f"proxy: bulk {direction}: {' / '.join(BULK_LABELS[k] for k in names if k != 'plain')} "
                     "as a ratio to plain (p50), failed transfers", f"{' / '.join(ratios)}, {failed}", "-, 0",
                     "yes" if failed == 0 else "NO"))
    return rows


NOTES = [
    "Proxy: sshd (throwaway keys, UsePAM no, root with a key) in the server namespace behind examples/ssh.yaml's "
    "table; ssh from the client namespace. A login row is the wall time of one whole `ssh ... true` (fork/exec, "
    "knocks and the wait for the port when proxied, key exchange, authentication, the command, exit). Plain: "
    "the grant exists already. Proxied: `knockc revoke` of the client in the server namespace before each "
    "login (untimed; port 22 checked closed), so each login really knocks and opens the port.",
    "Proxy: the knock delay is the spec's and the user's choice, not the proxy's cost: 3 knocks make 2 pauses, "
    "so --delay 200ms (knock's default) adds about 400 ms to every proxied login; with --delay 1ms the "
    "difference to plain is the knocks, knockc's start and the relay.",
    "Proxy: `nc %h %p` (netcat-openbsd) is the reference ProxyCommand, a relay that does not knock: what any "
    "ProxyCommand costs against ssh's own socket, apart from knockc.",
    "Proxy bulk: only the data phase is timed (upstream by the server's clock around `cat`, downstream from "
    "the first chunk to end of file), the kinds' order rotating by round; ssh's own encryption and MACs are most "
    "of the CPU. A ProxyCommand puts a pipe and a relay process between ssh and the socket, which on 2 shared "
    "cores competes with ssh and sshd (or, downstream, can take work off ssh's process): compare knock --proxy "
    "with nc, not only with plain. The proxied bulk logins knock with a grant already there.",
]

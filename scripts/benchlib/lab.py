"""What every part of scripts/bench shares: the addresses and ports, the Lab that owns the
namespaces and processes a run creates (and removes them again, also on failure), and small
helpers to run and time commands."""
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

# scripts/benchlib/lab.py -> the checkout
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRATCH = os.path.join(ROOT, ".build-bench")
# The release build of this checkout; --knockc PATH measures another binary instead.
DEFAULT_KNOCKC = os.path.join(SCRATCH, "release", "knockc")
SSH_SPEC = os.path.join(ROOT, "examples", "ssh.yaml")
PID = os.getpid()
SERVER_IP = "192.0.2.1"
CLIENT_IP = "192.0.2.2"
# A port that no generated spec knocks on or guards: the "non-knock packet" of the rules part.
NON_KNOCK_PORT = 5555
# Guarded ports of the generated specs; no knock may use them (knockc check refuses that).
GUARDED = [("tcp", 22), ("tcp", 443), ("tcp", 2222)]
FLOOD_NET = "198.18.0.0/15"          # the benchmarking range: flood sources, set elements
FLOOD_FIRST = (198 << 24) | (18 << 16)  # 198.18.0.0
FLOOD_LAST = FLOOD_FIRST + (1 << 17) - 1  # 198.19.255.255: 131072 distinct sources
FLOOD_KNOCKS = [("tcp", 7000), ("udp", 9000), ("tcp", 8000)]  # those of examples/ssh.yaml
FLOOD_PORT = 22
V6_NET = "2001:db8::/64"
SERVER_IP6 = "2001:db8::1"
CLIENT_IP6 = "2001:db8::2"


def log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


class Lab:
    """Namespaces and processes this run created; all of them go away in cleanup(), also on
    failure, Ctrl-C (KeyboardInterrupt) and SIGTERM/SIGHUP (turned into SystemExit). It also
    carries the knockc binary under test, so every part runs the same one."""

    def __init__(self, knockc):
        self.knockc = knockc
        self.namespaces = []
        self.processes = []
        self.counter = 0
        self.paths = []  # directories a part asked to have removed at the end
        self.tmpdir = tempfile.mkdtemp(prefix=f"knockc-bench-{PID}-")

    def netns(self, tag):
        self.counter += 1
        name = f"knockc-bench-{PID}-{self.counter}-{tag}"
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def delete_netns(self, name):
        kill_namespace_processes(name)
        subprocess.run(["ip", "netns", "del", name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30)
        if name in self.namespaces:
            self.namespaces.remove(name)

    def pair(self, tag):
        """A server and a client namespace joined by a veth pair: 192.0.2.1 <-> 192.0.2.2."""
        server = self.netns(f"{tag}-srv")
        client = self.netns(f"{tag}-cli")
        veth = f"kb{PID}{self.counter}"[:13]
        run(["ip", "link", "add", veth + "s", "netns", server, "type", "veth",
             "peer", "name", veth + "c", "netns", client])
        run(["ip", "-n", server, "addr", "add", f"{SERVER_IP}/24", "dev", veth + "s"])
        run(["ip", "-n", client, "addr", "add", f"{CLIENT_IP}/24", "dev", veth + "c"])
        run(["ip", "-n", server, "link", "set", veth + "s", "up"])
        run(["ip", "-n", client, "link", "set", veth + "c", "up"])
        return server, client

    def spawn(self, argv, **kwargs):
        process = subprocess.Popen(argv, **kwargs)
        self.processes.append(process)
        return process

    def stop(self, process):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if process in self.processes:
            self.processes.remove(process)

    def cleanup(self):
        for process in list(self.processes):
            try:
                self.stop(process)
            except Exception as error:  # keep cleaning up
                log(f"could not stop process {process.pid}: {error}")
        for name in list(self.namespaces):
            try:
                self.delete_netns(name)
            except Exception as error:
                log(f"could not delete namespace {name}: {error}")
        for path in self.paths + [self.tmpdir]:
            shutil.rmtree(path, ignore_errors=True)


def kill_namespace_processes(namespace):
    """SIGKILL to every process still in a namespace this run created (a daemon a command
    left behind, such as apply --confirm's setsid'd reverter), by pid; how many there were."""
    listed = subprocess.run(["ip", "netns", "pids", namespace], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, timeout=30).stdout.split()
    for pid in listed:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    return len(listed)


def run(argv, timeout=60, check=True, **kwargs):
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    result = subprocess.run(argv, timeout=timeout, text=True, **kwargs)
    if check and result.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stderr}{result.stdout}")
    return result


def timed(argv, timeout=300, **kwargs):
    """Wall time of one command in milliseconds (fork/exec included); fails on non-zero exit."""
    kwargs.setdefault("stdout", subprocess.DEVNULL)
    kwargs.setdefault("stderr", subprocess.PIPE)
    start = time.perf_counter()
    result = subprocess.run(argv, timeout=timeout, **kwargs)
    elapsed = (time.perf_counter() - start) * 1000
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace") if result.stderr else ""
        raise BenchError(f"{' '.join(argv)} exited {result.returncode}:\n{stderr}")
    return elapsed


def knockc_apply_profiled(lab, namespace, spec, timeout):
    """`knockc apply` timed, with the largest resident set it reached (ip netns exec execs the
    command, so the waited child is knockc itself) and the last line it printed (its summary);
    killed after `timeout` seconds."""
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = lab.spawn(["ip", "netns", "exec", namespace, lab.knockc, "apply", spec],
                            stdout=stdout, stderr=stderr)
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        elapsed = (time.perf_counter() - start) * 1000
        process.returncode = os.waitstatus_to_exitcode(status)
        lab.processes.remove(process)
        timed_out = elapsed >= timeout * 1000
        if process.returncode != 0 and not timed_out:
            stderr.seek(0)
            raise BenchError(f"knockc apply {spec} exited {process.returncode}:\n"
                             f"{stderr.read().decode(errors='replace')[-2000:]}")
        stdout.seek(0)
        printed = stdout.read().decode(errors="replace").strip().splitlines()
    return {"apply_ms": None if timed_out else elapsed, "max_rss_kib": usage.ru_maxrss, "timed_out": timed_out,
            "summary": printed[-1] if printed else ""}


def mem_available():
    with open("/proc/meminfo") as file:
        for line in file:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def extrapolated_peak(peaks, count):
    """knockc's peak resident set, in bytes, for an apply with `count` live grants, extrapolated
    linearly from `peaks`, the (grants, peak bytes) of earlier applies with fewer; 0 without
    any. An older knockc read every grant and wrote it back (about 1.4 GiB at a million), so
    the parts leave out an apply whose estimate would crowd a shared machine."""
    peaks = sorted(peaks)
    if len(peaks) >= 2:
        (n0, r0), (n1, r1) = peaks[-2:]
        if n1 > n0:
            return r1 + (r1 - r0) / (n1 - n0) * (count - n1)
    if peaks and peaks[-1][0] > 0:
        return peaks[-1][1] * count / peaks[-1][0]
    return 0


# The TCP connect every client loop measures with, prepended to the loops run with
# `ip netns exec NS python3 -c`: a blocking connect bounded by SO_SNDTIMEO (one syscall, no
# poll loop), closed with a RST (linger 0) so no port is left in TIME_WAIT.
CONNECT = r"""
import errno, socket, struct

def connect(host, port, timeout_s=1.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    seconds = max(timeout_s, 0.001)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(seconds), int(seconds % 1 * 1e6)))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    try:
        s.connect((host, port))
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except (BlockingIOError, TimeoutError):
        return "timeout"
    except OSError as e:
        return "error:" + errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()
"""


# The knocks knockc sends, prepended to the client loops as CONNECT is: for tcp/PORT a
# non-blocking connect() abandoned at once with a zero linger (one SYN, and nothing when the
# socket closes in SYN-SENT), for udp/PORT one empty datagram; a fresh socket per knock.
# Returns what went wrong, or None.
KNOCK = r"""
import errno, socket, struct

def knock(host, proto, port):
    if proto == "tcp":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        rc = s.connect_ex((host, port))
        s.close()
        if rc not in (0, errno.EINPROGRESS, errno.EINTR, errno.ECONNREFUSED):
            return f"connect tcp/{port}: {errno.errorcode.get(rc, rc)}"
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        s.sendto(b"", (host, port))
        s.close()
    return None
"""

# Counts the elements of one set over netlink (NFT_MSG_GETSETELEM dump), run with
# `ip netns exec NS python3 -c`.
COUNT_ELEMENTS = r"""
import socket, struct, sys
table, name = sys.argv[1].encode() + b"\0", sys.argv[2].encode() + b"\0"
def attr(kind, payload):
    return struct.pack("HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)
# nfgenmsg: NFPROTO_INET, version 0, res_id 0; NFTA_SET_ELEM_LIST_TABLE (1), _SET (2)
body = struct.pack("BBH", 1, 0, 0) + attr(1, table) + attr(2, name)
# NFNL_SUBSYS_NFTABLES (10) << 8 | NFT_MSG_GETSETELEM (13); NLM_F_REQUEST | NLM_F_DUMP
request = struct.pack("IHHII", 16 + len(body), 10 << 8 | 13, 0x1 | 0x300, 1, 0) + body
sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
sock.bind((0, 0))
sock.send(request)
count = 0
while True:
    data = sock.recv(1 << 20)
    offset = 0
    while offset < len(data):
        length, kind = struct.unpack_from("IH", data, offset)
        if kind == 3:  # NLMSG_DONE
            print(count)
            sys.exit(0)
        if kind == 2:  # NLMSG_ERROR
            error = struct.unpack_from("i", data, offset + 16)[0]
            if error:
                sys.exit(f"netlink error {-error}: {__import__('os').strerror(-error)}")
        else:
            position, end = offset + 20, offset + length  # past nlmsghdr and nfgenmsg
            while position < end:
                size, attribute = struct.unpack_from("HH", data, position)
                if attribute & 0x3fff == 3:  # NFTA_SET_ELEM_LIST_ELEMENTS: NFTA_LIST_ELEM each
                    inner = position + 4
                    while inner < position + size:
                        element_size = struct.unpack_from("H", data, inner)[0]
                        count += 1
                        inner += (element_size + 3) & ~3
                position += (size + 3) & ~3
        offset += (length + 3) & ~3
"""


def count_set_elements(namespace, table, set_name):
    """How many elements `set_name` of `inet table` lists in `namespace` (expired ones are not
    listed), from a netlink dump, without nft's parsing and printing. The dump itself is
    quadratic in the kernel: nf_tables walks the set's hash table from its start again for
    each netlink message (about 530 elements), skipping what it sent. At a million elements
    that took 97 s of system time (115 s wall; 1 s at 100,000), almost all of it in
    rhashtable_walk_next."""
    result = run(["ip", "netns", "exec", namespace, sys.executable, "-c", COUNT_ELEMENTS, table, set_name],
                 timeout=300)
    return int(result.stdout.strip())


def percentile(values, p):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def fmt_ms(value):
    return f"{value:.3f} ms" if value < 10 else f"{value:.0f} ms"


def table_name(lab, spec_path):
    script = run([lab.knockc, "compile", spec_path]).stdout
    match = re.search(r"^table inet (\S+) \{$", script, re.M)
    if not match:
        raise BenchError(f"no table in the compiled {spec_path}")
    return match.group(1)


LISTENER = r"""
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[2])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[3])))
s.listen(1024)
s.settimeout(0.5)
print("ready", flush=True)
while time.monotonic() < deadline:
    try:
        c, _ = s.accept()
    except OSError:
        continue
    c.close()
"""


def veth_of(namespace):
    listing = run(["ip", "-n", namespace, "-o", "link", "show", "type", "veth"]).stdout
    match = re.search(r"^\d+: ([^@:]+)", listing, re.M)
    if not match:
        raise BenchError(f"no veth in {namespace}")
    return match.group(1)

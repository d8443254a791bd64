"""trafgen (Debian package netsniff-ng), which the flood, rates and state parts use to write
frames straight onto a client's veth: installing it, starting it bounded in time and
count, and reading what it says it sent."""
import os
import re
import shutil
import subprocess

from .lab import BenchError, log, run


def ensure_trafgen():
    """trafgen, from Debian's netsniff-ng package; installed with apt-get when missing."""
    if shutil.which("trafgen"):
        return shutil.which("trafgen")
    log("trafgen is missing: apt-get install -y netsniff-ng (Debian package netsniff-ng)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if run(["apt-get", "install", "-y", "netsniff-ng"], check=False, timeout=600, env=env).returncode != 0:
        run(["apt-get", "update"], timeout=600, env=env)
        run(["apt-get", "install", "-y", "netsniff-ng"], timeout=600, env=env)
    if not shutil.which("trafgen"):
        raise BenchError("trafgen is still missing after installing netsniff-ng")
    return shutil.which("trafgen")


def start_trafgen(lab, client, device, config, seconds, cpus, rate_pps=None, count=None):
    """trafgen writing the frames of `config` onto `device` in the client namespace, with
    `cpus` processes (trafgen pins one to each CPU), stopped by SIGINT after `seconds`."""
    argv = ["ip", "netns", "exec", client, "timeout", "-s", "INT", "-k", "5", str(seconds),
            "trafgen", "-o", device, "-i", config, "-P", str(cpus),
            # a count bound as well as the time bound: more than this machine sends in `seconds`
            "-n", str(count or int(seconds * 2_000_000))]
    if rate_pps:
        argv += ["-b", f"{rate_pps}pps"]
    return lab.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


TRAFGEN_CPU_LINE = re.compile(r"(\d+) sec, (\d+) usec on CPU(\d+) \((\d+) packets\)")


def finish_trafgen(lab, process, seconds):
    """Waits for trafgen; its packet count and, per process, the seconds it spent sending
    (trafgen's own clock, from its first packet to the SIGINT: no start-up time in it)."""
    try:
        out, err = process.communicate(timeout=seconds + 15)
    except subprocess.TimeoutExpired:
        lab.stop(process)
        raise BenchError("trafgen did not stop")
    lab.processes.remove(process)
    if process.returncode not in (0, 124):
        raise BenchError(f"trafgen exited {process.returncode}:\n{err[-2000:]}")
    sent = re.search(r"(\d+) packets outgoing", out + err)
    per_cpu = [{"cpu": int(cpu), "seconds": int(sec) + int(usec) / 1e6, "packets": int(packets)}
               for sec, usec, cpu, packets in TRAFGEN_CPU_LINE.findall(out + err)]
    return {"sent": int(sent.group(1)) if sent else None, "per_cpu": per_cpu}

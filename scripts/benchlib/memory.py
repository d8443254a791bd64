"""The memory part: kernel memory per tracked source in progress4 and granted4, read from
/proc/meminfo around filling a set of a fresh table (scripts/bench.md, "memory"). The state
part measures the same way at up to a million IPv6 sources with memory_trial."""
import os
import statistics
import time

from .lab import log, run, timed
from .specs import element_batch, ssh_spec


MEMORY_TARGET_BYTES = 300  # under 300 bytes of kernel memory per tracked source
MEMORY_QUIET_LIMIT = 2 << 20  # bytes the kernel's memory may move in a second around a quiet trial
MEMINFO_KEYS = ("Slab", "SUnreclaim", "SReclaimable", "KReclaimable", "VmallocUsed", "MemFree")


def meminfo():
    """/proc/meminfo in bytes, for the keys the memory measurement reads."""
    values = {}
    with open("/proc/meminfo") as file:
        for line in file:
            key, rest = line.split(":", 1)
            if key in MEMINFO_KEYS:
                values[key] = int(rest.split()[0]) * 1024
    return values


def slabinfo():
    """/proc/slabinfo: active objects and object size of each cache."""
    caches = {}
    with open("/proc/slabinfo") as file:
        for line in file.readlines()[2:]:
            fields = line.split()
            caches[fields[0]] = (int(fields[1]), int(fields[3]))
    return caches


def slab_growth(before, after, count):
    """The slab caches that gained at least one object per 20 sources: where the elements went
    (a kmalloc cache of the element's size, one object per element). Unlike SUnreclaim it is
    not moved by other caches' churn, so it confirms the per-source figure on a busy machine."""
    grown = {}
    for cache, (objects, size) in after.items():
        added = objects - before.get(cache, (0, size))[0]
        if added * 20 >= count:
            grown[cache] = {"objects": added, "object_size": size, "bytes_per_source": added * size / count}
    return grown


def memory_noise(trials, seconds=1.5):
    """How much /proc/meminfo moves over `seconds` with nothing added, `trials` times."""
    noise = []
    for _ in range(trials):
        before = meminfo()
        time.sleep(seconds)
        after = meminfo()
        noise.append({key: after[key] - before[key] for key in MEMINFO_KEYS})
    return noise


def kernel_memory(values):
    """The kernel memory a set's elements and hash buckets can land in."""
    return values["SUnreclaim"] + values["VmallocUsed"]


def wait_quiet(limit, max_s):
    """/proc/meminfo once kernel_memory has moved by at most `limit` bytes over one second
    (or after `max_s` seconds), with how much it moved over that last second."""
    deadline = time.monotonic() + max_s
    previous = meminfo()
    while True:
        time.sleep(1.0)
        current = meminfo()
        drift = abs(kernel_memory(current) - kernel_memory(previous))
        if drift <= limit or time.monotonic() > deadline:
            return current, drift
        previous = current


def memory_trial(lab, spec, batch, count):
    """One trial: a fresh namespace, `knockc apply` of the spec, then /proc/meminfo and
    /proc/slabinfo before and after `nft -f` of the batch of `count` elements. Both readings
    wait until the kernel's memory has held still for a second (at most 15 s before, 30 s
    after). After the fill that wait matters: nf_tables frees a transaction's objects
    (hundreds of bytes per element) from a work queue, and the hash table's resize worker frees
    the old bucket arrays, both after `nft -f` has returned; with 100,000 elements on a busy
    machine that took more than 2 s. The trial is quiet when both waits ended within the
    limit; one that is not was disturbed by something else on the machine."""
    ns = lab.netns("mem")
    try:
        run(["ip", "netns", "exec", ns, lab.knockc, "apply", spec])
        before, drift_before = wait_quiet(MEMORY_QUIET_LIMIT, 15)
        slabs_before = slabinfo()
        add_ms = timed(["ip", "netns", "exec", ns, "nft", "-f", batch], timeout=120)
        time.sleep(1.0)  # RCU callbacks and the hash table's resize worker
        after, drift_after = wait_quiet(MEMORY_QUIET_LIMIT, 30)
        slabs_after = slabinfo()
    finally:
        lab.delete_netns(ns)
    delta = {key: after[key] - before[key] for key in MEMINFO_KEYS}
    return {"delta_bytes": delta, "add_ms": add_ms, "bytes_per_source": delta["SUnreclaim"] / count,
            "bytes_per_source_with_vmalloc": kernel_memory(delta) / count,
            "slab_growth": slab_growth(slabs_before, slabs_after, count),
            "drift_before_bytes": drift_before, "drift_after_bytes": drift_after,
            "quiet": max(drift_before, drift_after) <= MEMORY_QUIET_LIMIT}


def quiet_trials(lab, spec, batch, count, wanted):
    """memory_trial until `wanted` of them were quiet, at most 3 x `wanted` in all; the
    trials, and those that the figure should use (the quiet ones, or all if none was)."""
    trials = []
    while sum(t["quiet"] for t in trials) < wanted and len(trials) < 3 * wanted:
        trials.append(memory_trial(lab, spec, batch, count))
    return trials, [t for t in trials if t["quiet"]] or trials


def measure(lab, args):
    """Kernel memory per tracked source: /proc/meminfo before and after adding N elements to
    one set of a freshly applied table, in a fresh namespace each trial; the median of
    `args.memory_trials` quiet trials (memory_trial). SUnreclaim is the figure: set elements
    and the hash table's bucket arrays are unreclaimable kernel allocations (kmalloc, large
    kmalloc included)."""
    counts = args.memory_sources
    spec = ssh_spec(lab, os.path.join(lab.tmpdir, "memory.yaml"), max(max(counts), 131072), "5s")
    results = {"spec_max_tracked_sources": max(max(counts), 131072), "trials": args.memory_trials,
               "metric": "SUnreclaim", "sets": {}}
    # Noise floor: the same wait with nothing added.
    noise = memory_noise(args.memory_trials)
    results["noise_bytes"] = noise
    results["noise_sunreclaim_median_bytes"] = statistics.median(n["SUnreclaim"] for n in noise)
    for set_name in ("progress4", "granted4"):
        per_set = {}
        for count in counts:
            log(f"memory: {count} elements in {set_name}, {args.memory_trials} trials")
            batch = element_batch(os.path.join(lab.tmpdir, f"elements-{set_name}-{count}.nft"), set_name, count)
            trials, used = quiet_trials(lab, spec, batch, count, args.memory_trials)
            per_source = statistics.median(t["bytes_per_source"] for t in used)
            per_set[count] = {
                "trials": trials, "quiet_trials": sum(t["quiet"] for t in trials),
                "bytes_per_source_median": per_source,
                "slab_bytes_per_source_median": statistics.median(t["delta_bytes"]["Slab"] / count for t in used),
                "ratio_to_target": per_source / MEMORY_TARGET_BYTES,
            }
        results["sets"][set_name] = per_set
    return results


def rows(memory):
    rows = []
    noise = memory["noise_sunreclaim_median_bytes"]
    for set_name, per_set in memory["sets"].items():
        for count, r in sorted(per_set.items()):
            rows.append((f"kernel memory per tracked source, {set_name}, {count} sources "
                         f"(SUnreclaim delta / N, median of {r['quiet_trials']} quiet of {len(r['trials'])})",
                         f"{r['bytes_per_source_median']:.0f} B  ({r['ratio_to_target']:.2f}x target)",
                         f"< {MEMORY_TARGET_BYTES} B",
                         "yes" if r["bytes_per_source_median"] < MEMORY_TARGET_BYTES else "NO"))
    rows.append(("noise: SUnreclaim change over 1.5 s, nothing added (median)", f"{noise / 1024:.0f} KiB", "-", "-"))
    return rows


NOTES = [
    "Memory: /proc/meminfo SUnreclaim after minus before adding N elements, over N; the machine's",
    "other activity adds noise, hence the median of the trials and the noise row.",
]

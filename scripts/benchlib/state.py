"""The state part: the scale of state, with up to a million IPv6 sources: kernel memory per
tracked source, the grant lookup's packet rate, the time of nft -f filling the set, and
`knockc apply` while they are all live (scripts/bench.md, "state")."""
import os
import statistics

from .lab import (CLIENT_IP6, FLOOD_PORT, extrapolated_peak, fmt_ms, knockc_apply_profiled, log,
                  mem_available, run, timed)
from .memory import MEMORY_QUIET_LIMIT, MEMORY_TARGET_BYTES, quiet_trials
from .rates import (RATE_KIND_LABELS, RatePair, alternate, flat_row, rate_cell, ratio_cell,
                    summarize_rates)
from .specs import element_batch, generate_spec, generated_sequences
from .trafgen import ensure_trafgen


def measure(lab, args):
    """Memory per tracked source, grant lookups through the packet rate to the guarded
    port, and apply time, at 100,000 and 1,000,000 sources (IPv6, 2001:db8::/64: 198.18.0.0/15
    holds only 131,072) against a 10,000-source reference and no table."""
    ensure_trafgen()
    counts = sorted(set(args.state_sources) | {args.state_reference})
    size = 1 << max(counts).bit_length()  # max_tracked_sources: room for every source and the client
    spec = os.path.join(lab.tmpdir, "state.yaml")
    generate_spec(spec, 1, [f"max_tracked_sources: {size}"])
    results = {"max_tracked_sources": size, "sources": counts, "memory": {}, "pairs": {},
               "apply_timeout_s": args.apply_timeout}

    # Memory per source, in fresh namespaces (as the memory part), for each set and number of sources.
    # At a million sources the hash table's bucket array outgrows kmalloc and is vmalloc'd,
    # so VmallocUsed counts here as well as SUnreclaim.
    results["memory_quiet_limit_bytes"] = MEMORY_QUIET_LIMIT
    for set_name in ("granted6", "progress6"):
        for count in args.state_sources:
            log(f"state: memory: {count:,} sources in {set_name}, {args.state_memory_trials} quiet trials")
            batch = element_batch(os.path.join(lab.tmpdir, f"state-{set_name}-{count}.nft"), set_name, count)
            trials, used = quiet_trials(lab, spec, batch, count, args.state_memory_trials)
            os.remove(batch)
            per_source = statistics.median(t["bytes_per_source_with_vmalloc"] for t in used)
            results["memory"].setdefault(set_name, {})[count] = {
                "trials": trials, "quiet_trials": sum(t["quiet"] for t in trials),
                "bytes_per_source_median": per_source, "ratio_to_target": per_source / MEMORY_TARGET_BYTES}

    # A pair per number of sources: the client granted, granted6 filled with the sources; and
    # one with no table. A sweep through every granted source checks the fill.
    knock_port = generated_sequences(1)[0][1][0][1]
    pairs = [RatePair(lab, "stnone", "no table", knock_port, ipv6=True, sweep_sources=max(counts))]
    for count in counts:
        log(f"state: pair with {count:,} granted sources")
        pair = RatePair(lab, f"st{count}", f"{count} sources", knock_port, ipv6=True, sweep_sources=count)
        run(["ip", "netns", "exec", pair.server, lab.knockc, "apply", spec])
        pair.nft_file("grant", f"add element inet knockc granted6 {{ {CLIENT_IP6} . tcp . {FLOOD_PORT} timeout 1h }}\n")
        batch = element_batch(os.path.join(lab.tmpdir, f"state-fill-{count}.nft"), "granted6", count)
        fill_ms = timed(["ip", "netns", "exec", pair.server, "nft", "-f", batch], timeout=300)
        os.remove(batch)
        results["pairs"][count] = {"fill_ms": fill_ms, "fill_us_per_source": fill_ms * 1000 / count,
                                   "swept_before_apply": pair.sweep(count)}
        pairs.append(pair)
    for pair in pairs:
        pair.check("guarded6", True)
    cpus = args.rate_cpus or os.cpu_count() or 1
    samples = alternate(pairs, ("guarded6", "sweep6"), args.rounds, args.rate_seconds, cpus, "state")
    results.update({"rate_summary": summarize_rates(samples, "no table"), "samples": samples,
                    "trafgen_processes": cpus, "rounds": args.rounds})

    # The same spec applied again with that many live grants, then the sweep again: every
    # granted source must still get in. knockc changes the table in place and leaves granted6
    # in the kernel, unread; an older knockc (--knockc) read every grant and wrote it back, its
    # memory growing with them, so an apply whose peak, extrapolated from the smaller applies,
    # would take more than 60% of the available memory is left out rather than push a shared
    # machine into swap or OOM.
    peaks = []  # (grants, peak RSS in bytes) of the applies so far
    for pair, count in zip(pairs[1:], counts):
        entry = results["pairs"][count]
        needed = extrapolated_peak(peaks, count + 1)
        if needed > 0.6 * mem_available():
            log(f"state: knockc apply with {count + 1:,} live grants left out: would need about {needed / 2**30:.1f} GiB")
            entry.update({"skipped": True, "estimated_rss_bytes": needed})
            continue
        log(f"state: knockc apply of the same spec with {count + 1:,} live grants (bounded at {args.apply_timeout} s)")
        entry.update(knockc_apply_profiled(lab, pair.server, spec, args.apply_timeout))
        if not entry["timed_out"]:
            peaks.append((count + 1, entry["max_rss_kib"] * 1024))
            entry["swept_after_apply"] = pair.sweep(count)
            pair.check("guarded6", True)  # the client's own grant made it across
    for pair in pairs:
        pair.close()
    return results


def rows(state):
    rows = []
    for set_name, per_set in state["memory"].items():
        for count, r in sorted(per_set.items()):
            used = [t for t in r["trials"] if t["quiet"]] or r["trials"]
            slabs = {}
            for trial in used:
                for cache, growth in trial["slab_growth"].items():
                    slabs.setdefault(cache, []).append(growth["bytes_per_source"])
            # The caches that grew in every trial used: where the elements went.
            where = ", ".join(f"{cache} {statistics.median(v):.0f} B" for cache, v in sorted(slabs.items())
                              if len(v) == len(used))
            rows.append((f"state memory per tracked source, {set_name}, {count:,} sources "
                         f"((SUnreclaim + VmallocUsed) delta / N, median of {r['quiet_trials']} quiet of {len(r['trials'])})",
                         f"{r['bytes_per_source_median']:.0f} B  [slab growth: {where or 'none'}]",
                         f"< {MEMORY_TARGET_BYTES} B", "yes" if r["bytes_per_source_median"] < MEMORY_TARGET_BYTES else "NO"))
    configs = [f"{count} sources" for count in state["sources"]]
    names = [f"{count:,}" for count in state["sources"]]
    for kind in ("guarded6", "sweep6"):
        summary = state["rate_summary"][kind]
        label = RATE_KIND_LABELS[kind]
        rows.append((f"state accepted rate, {label}, no table (median of {state['rounds']})", rate_cell(summary["no table"]), "-", "-"))
        for config, name in zip(configs, names):
            rows.append((f"state ratio to no table, {label}, {name} granted", ratio_cell(summary[config]), "-", "-"))
        rows.append(flat_row(f"state lookup flat: rate vs {names[0]} granted, same round, {kind}",
                             state["samples"], kind, configs, names))
    for count, p in sorted(state["pairs"].items()):
        rows.append((f"state nft -f of {count:,} grants (add element, 5,000 per line)",
                     f"{fmt_ms(p['fill_ms'])}  ({p['fill_us_per_source']:.1f} us per source)", "-", "-"))
    for count, p in sorted(state["pairs"].items()):
        label = f"state knockc apply of the same spec again, {count + 1:,} live grants"
        if p.get("skipped"):
            rows.append((label, f"left out: would need about {p['estimated_rss_bytes'] / 2**30:.1f} GiB", "-", "-"))
            continue
        if p["timed_out"]:
            rows.append((label, f"over {state['apply_timeout_s']} s (stopped)", "-", "NO"))
            continue
        rows.append((label, f"{fmt_ms(p['apply_ms'])}  (knockc peak RSS {p['max_rss_kib'] / 1024:,.0f} MiB)", "-", "-"))
        rows.append((f"state granted sources that still get in after that apply (one packet each)",
                     f"{p['swept_after_apply']:,} / {count:,}", f"= {count:,}",
                     "yes" if p["swept_after_apply"] == count else "NO"))
    return rows


NOTES = ["State: the lookup rates as in the rates part, with the IPv6 sources of 2001:db8::/64;",
         "memory as in the memory part, (SUnreclaim + VmallocUsed) delta over N."]

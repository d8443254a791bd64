"""The apply part: compile and apply times of generated specs of 1 to 10,000 sequences, with
their floors (nft -f of the same bytes, ip netns exec), and apply of a 1,000-sequence spec,
unchanged and with one sequence edited, while 0 to a million grants are live
(scripts/bench.md, "apply")."""
import os
import statistics

from .lab import (BenchError, count_set_elements, extrapolated_peak, fmt_ms, knockc_apply_profiled, log,
                  mem_available, run, timed)
from .specs import compiled_spec, element_batch, generate_spec, generated_specs


def measure(lab, args):
    specs = generated_specs(lab, args.sizes)
    return {"sizes": measure_sizes(lab, args, specs), "with_grants": measure_apply_with_grants(lab, args)}


def measure_sizes(lab, args, specs):
    results = {}
    # Warm-up, not counted: loads the nf_tables modules and warms the page cache.
    warm = lab.netns("warm")
    run(["ip", "netns", "exec", warm, lab.knockc, "apply", specs[min(specs)]["path"]])
    lab.delete_netns(warm)
    for count in sorted(specs):
        spec = specs[count]["path"]
        big = count >= 10000
        compile_runs = args.runs_10000 if big else 5
        apply_runs = args.runs_10000 if big else 3
        log(f"apply: {count} sequences: check, compile x{compile_runs}, apply x{apply_runs}, nft -f x{apply_runs}")

        check = run([lab.knockc, "check", spec], check=False)
        if check.returncode != 0 or "error:" in check.stderr:
            raise BenchError(f"knockc check {spec} failed:\n{check.stderr[:2000]}")
        warnings = check.stderr.count("warning:")

        compiled = compiled_spec(lab, count, spec)
        compiled_bytes = os.path.getsize(compiled)

        compile_ms = [timed([lab.knockc, "compile", spec]) for _ in range(compile_runs)]

        apply_ms, nft_ms, exec_ms = [], [], []
        for _ in range(apply_runs):
            ns = lab.netns(f"apply{count}")
            exec_ms.append(timed(["ip", "netns", "exec", ns, "true"]))
            apply_ms.append(timed(["ip", "netns", "exec", ns, lab.knockc, "apply", spec]))
            lab.delete_netns(ns)
            ns = lab.netns(f"nft{count}")
            nft_ms.append(timed(["ip", "netns", "exec", ns, "nft", "-f", compiled]))
            lab.delete_netns(ns)

        results[count] = {
            "check_warnings": warnings, "compiled_bytes": compiled_bytes,
            "compile_ms": compile_ms, "apply_ms": apply_ms, "nft_f_ms": nft_ms,
            "netns_exec_true_ms": exec_ms,
            "compile_median_ms": statistics.median(compile_ms),
            "apply_median_ms": statistics.median(apply_ms),
            "nft_f_median_ms": statistics.median(nft_ms),
            "netns_exec_median_ms": statistics.median(exec_ms),
        }
    return results


# The spec re-applied while grants are live: 1,000 sequences, as the target of the sizes.
GRANTS_SEQUENCES = 1000
DEFAULT_MAX_TRACKED_SOURCES = 65536


def measure_apply_with_grants(lab, args):
    """`knockc apply` of a 1,000-sequence spec while 0 to a million grants are live in granted6
    (2001:db8::/64; 198.18.0.0/15 holds only 131,072 sources): the same spec again, and the
    spec with one sequence's knocks edited. One namespace per number of grants, filled once by
    nft -f (no packet is sent) and kept; rounds alternate over them, forward and backward. After
    the rounds every grant must still be listed."""
    counts = args.grants
    if not counts:
        return None
    size = max(DEFAULT_MAX_TRACKED_SOURCES, 1 << max(counts).bit_length())
    extra = [f"max_tracked_sources: {size}"]
    specs = {"generated": os.path.join(lab.tmpdir, "grants-spec.yaml"),
             "edited": os.path.join(lab.tmpdir, "grants-spec-edited.yaml")}
    generate_spec(specs["generated"], GRANTS_SEQUENCES, extra)
    generate_spec(specs["edited"], GRANTS_SEQUENCES, extra, edit_first=True)
    for spec in specs.values():
        check = run([lab.knockc, "check", spec], check=False)
        if check.returncode != 0 or "error:" in check.stderr:
            raise BenchError(f"knockc check {spec} failed:\n{check.stderr[:2000]}")
    results = {"sequences": GRANTS_SEQUENCES, "max_tracked_sources": size, "set": "granted6",
               "rounds": args.apply_rounds, "apply_timeout_s": args.apply_timeout, "counts": {}}

    live = {}  # count -> (namespace, the spec its table was last applied from)
    for count in counts:
        log(f"apply: namespace with {count:,} live grants")
        namespace = lab.netns(f"grants{count}")
        run(["ip", "netns", "exec", namespace, lab.knockc, "apply", specs["generated"]], timeout=300)
        fill_ms = None
        if count:
            batch = element_batch(os.path.join(lab.tmpdir, f"grants-{count}.nft"), "granted6", count)
            # One transaction: all N are in, or nft fails. No count here: a dump of a million
            # elements costs about 100 s of kernel time (see count_set_elements).
            fill_ms = timed(["ip", "netns", "exec", namespace, "nft", "-f", batch], timeout=300)
            os.remove(batch)
        live[count] = [namespace, "generated"]
        results["counts"][count] = {"fill_ms": fill_ms, "applies": []}

    # Each round visits every number of grants, forward in even rounds and backward in odd
    # ones, so a drift in what the shared machine has to spare falls on all alike. At each, an
    # apply of the other spec (changed), then of that spec again (same).
    peaks = {}  # count -> knockc's largest peak RSS in bytes so far
    stopped = set()
    for round_index in range(args.apply_rounds):
        order = counts if round_index % 2 == 0 else counts[::-1]
        for count in order:
            if count in stopped:
                continue
            entry = results["counts"][count]
            namespace, current = live[count]
            if count not in peaks:
                needed = extrapolated_peak([(n, r) for n, r in peaks.items() if n < count], count)
                if needed > 0.6 * mem_available():
                    log(f"apply: {count:,} live grants left out: knockc would need about {needed / 2**30:.1f} GiB")
                    entry.update({"skipped": True, "estimated_rss_bytes": needed})
                    stopped.add(count)
                    continue
            for kind in ("changed", "same"):
                spec = current if kind == "same" else ("edited" if current == "generated" else "generated")
                log(f"apply: round {round_index + 1}, {count:,} live grants, {kind} spec "
                    f"(bounded at {args.apply_timeout} s)")
                result = knockc_apply_profiled(lab, namespace, specs[spec], args.apply_timeout)
                result.update({"kind": kind, "round": round_index, "spec": spec})
                entry["applies"].append(result)
                if result["timed_out"]:
                    log(f"apply: stopped after {args.apply_timeout} s; no more applies with {count:,} or more grants")
                    stopped |= {n for n in counts if n >= count}
                    break
                current = live[count][1] = spec
                peaks[count] = max(peaks.get(count, 0), result["max_rss_kib"] * 1024)

    for count in counts:
        namespace = live[count][0]
        results["counts"][count]["grants_after"] = count_set_elements(namespace, "knockc", "granted6")
        lab.delete_netns(namespace)
    for entry in results["counts"].values():
        for kind in ("same", "changed"):
            done = [a for a in entry["applies"] if a["kind"] == kind and not a["timed_out"]]
            entry[kind] = {"runs": len(done),
                           "median_ms": statistics.median(a["apply_ms"] for a in done) if done else None,
                           "max_rss_kib": max((a["max_rss_kib"] for a in done), default=None),
                           "timed_out": any(a["timed_out"] for a in entry["applies"] if a["kind"] == kind)}
    return results


def round_ratios(result, kind, count, reference):
    """For each round in which both ran, the `kind` apply time with `count` grants over the one
    with `reference` grants."""
    def by_round(n):
        return {a["round"]: a["apply_ms"] for a in result["counts"][n]["applies"]
                if a["kind"] == kind and not a["timed_out"]}
    mine, theirs = by_round(count), by_round(reference)
    return [mine[r] / theirs[r] for r in sorted(mine) if r in theirs]


def rows(result):
    rows = []
    sizes = result["sizes"]
    for count, r in sorted(sizes.items()):
        runs = f"median of {len(r['compile_ms'])}"
        rows.append((f"compile, {count} seq ({runs})", fmt_ms(r["compile_median_ms"]), "-", "-"))
        target, met = "-", "-"
        if count == 1000:
            target, met = "< 1000 ms", "yes" if r["apply_median_ms"] < 1000 else "NO"
        rows.append((f"apply (incl. compile), {count} seq (median of {len(r['apply_ms'])})",
                     fmt_ms(r["apply_median_ms"]), target, met))
        rows.append((f"floor: nft -f compiled, {count} seq", fmt_ms(r["nft_f_median_ms"]), "-", "-"))
    if sizes:
        exec_all = [v for r in sizes.values() for v in r["netns_exec_true_ms"]]
        rows.append(("floor: ip netns exec NS true", fmt_ms(statistics.median(exec_all)), "-", "-"))
    grants = result["with_grants"]
    if grants:
        rows += grant_rows(grants)
    return rows


NOTES = ["Times are wall clock of the whole process (fork/exec included); see scripts/bench.md."]


KIND_LABELS = {"same": "the same spec again", "changed": "one sequence's knocks edited"}


def grant_rows(grants):
    rows = []
    counts = sorted(grants["counts"])
    for kind in ("same", "changed"):
        for count in counts:
            entry = grants["counts"][count]
            label = (f"apply {grants['sequences']} seq, {KIND_LABELS[kind]}, {count:,} live grants "
                     f"(median of {entry.get(kind, {}).get('runs', 0)})")
            if entry.get("skipped"):
                rows.append((label, f"left out: would need about {entry['estimated_rss_bytes'] / 2**30:.1f} GiB", "-", "-"))
            elif entry[kind]["median_ms"] is None:
                rows.append((label, f"over {grants['apply_timeout_s']} s (stopped)", "-", "NO"))
            else:
                stopped = f", one over {grants['apply_timeout_s']} s (stopped)" if entry[kind]["timed_out"] else ""
                rows.append((label, f"{fmt_ms(entry[kind]['median_ms'])}  "
                                    f"(knockc peak RSS {entry[kind]['max_rss_kib'] / 1024:,.0f} MiB{stopped})", "-", "-"))
    if 0 in grants["counts"] and counts[-1] > 0:
        top = counts[-1]
        for kind in ("same", "changed"):
            label = f"apply, {KIND_LABELS[kind]}: time with {top:,} grants / with 0 (same round, median)"
            ratios = round_ratios(grants, kind, top, 0)
            if not ratios:
                rows.append((label, "not measured", "<= 1.5", "NO"))
                continue
            ratio = statistics.median(ratios)
            rows.append((label, f"{ratio:.2f}  [{min(ratios):.2f}-{max(ratios):.2f}]", "<= 1.5",
                         "yes" if ratio <= 1.5 else "NO"))
    for count in counts:
        left = grants["counts"][count]["grants_after"]
        rows.append((f"grants left after those applies, {count:,} live grants", f"{left:,} / {count:,}",
                     f"= {count:,}", "yes" if left == count else "NO"))
    return rows

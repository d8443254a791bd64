"""The apply part: compile and apply times of generated specs of 1 to 10,000 sequences, with
their floors (nft -f of the same bytes, ip netns exec), and apply of a changed 1,000-sequence
spec while grants are live (scripts/bench.md, "apply")."""
import json
import os
import statistics

from .lab import BenchError, fmt_ms, log, run, timed
from .specs import compiled_spec, generated_specs


def measure(lab, args):
    specs = generated_specs(lab, args.sizes)
    return {"sizes": measure_sizes(lab, args, specs), "with_grants": measure_apply_with_grants(lab, args, specs)}


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


def measure_apply_with_grants(lab, args, specs):
    """`knockc apply` of a changed 1000-sequence spec while 10,000 grants are live.
    The grants are set elements (198.18.0.0/15, the benchmarking range; no packet is sent),
    added with a 1 h timeout; after the apply every one must still be there."""
    if 1000 not in specs:
        return None
    server = lab.netns("grants")
    run(["ip", "netns", "exec", server, lab.knockc, "apply", specs[1000]["path"]])
    grants = [f"198.18.{i // 250}.{i % 250 + 1} . tcp . 22 timeout 1h" for i in range(args.grants)]
    batch = os.path.join(lab.tmpdir, "grants.nft")
    with open(batch, "w") as file:
        for start in range(0, len(grants), 1000):
            file.write("add element inet knockc granted4 { " + ", ".join(grants[start:start + 1000]) + " }\n")
    run(["ip", "netns", "exec", server, "nft", "-f", batch])
    changed = os.path.join(lab.tmpdir, "spec-1000-changed.yaml")
    with open(specs[1000]["path"]) as source, open(changed, "w") as target:
        target.write(source.read().replace("open_for: 30s", "open_for: 45s"))
    times = []
    for spec in (changed, specs[1000]["path"], changed):
        times.append(timed(["ip", "netns", "exec", server, lab.knockc, "apply", spec]))
    listing = run(["ip", "netns", "exec", server, "nft", "-j", "list", "set", "inet", "knockc", "granted4"]).stdout
    elements = json.loads(listing)["nftables"][1]["set"].get("elem", [])
    lab.delete_netns(server)
    return {"grants": args.grants, "apply_ms": times, "apply_median_ms": statistics.median(times),
            "grants_after": len(elements)}


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
        rows.append((f"apply 1000 seq, {grants['grants']} live grants (median of {len(grants['apply_ms'])})",
                     fmt_ms(grants["apply_median_ms"]), "-", "-"))
        rows.append(("grants left after those applies", f"{grants['grants_after']} / {grants['grants']}",
                     f"= {grants['grants']}", "yes" if grants["grants_after"] == grants["grants"] else "NO"))
    return rows


NOTES = ["Times are wall clock of the whole process (fork/exec included); see scripts/bench.md."]

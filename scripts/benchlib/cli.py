"""Benchmarks for knockc, by what they measure. `scripts/bench` runs every part;
`scripts/bench PART...` runs those parts only:

  latency   knock-to-open latency of examples/ssh.yaml (about 30 s)
  apply     compile and apply times at 1 to 10,000 sequences; apply of 1,000 with 0 to 1,000,000 live grants
  rules     rules a packet traverses, from nft's trace, at 1 to 10,000 sequences
  memory    kernel memory per tracked source (progress4, granted4)
  flood     legitimate knocks during a flood of first knocks
  rates     packet rates with knockc's table and the wiki pattern against no table
  forward   packet rate of an established forwarded flow through a router with knockc's table
  state     scale of state up to a million sources: memory, lookups, apply
  diff      knockc diff and apply --confirm with 0 and 65,536 live elements
  spa       one-packet authorization: latency, legitimate knocks under a datagram flood, 24 h of tokens
  rotate    rotating knocks: latency against fixed knocks, sequences under a flood of their range, 24 h of ports
  proxy     ssh through knockc knock --proxy (ProxyCommand) against plain ssh: login time, bulk MB/s
  watcher   scripts/bench-watch: the watcher's CPU, memory and event latency
  metrics   scripts/bench-metrics: the metrics endpoint under hostile connections

Builds knockc in release mode into .build-bench (unless --no-build, or --knockc PATH names
the binary to measure), then measures in throwaway network namespaces (never the host's
own): see scripts/bench.md for the method of each part. Prints one table on stdout (progress
goes to stderr) and saves the raw numbers as JSON to bench-results/bench-<parts>-<UTC
timestamp>.json, and the rate samples as a CSV beside it. watcher and metrics run their own
scripts, which print their own tables and save their own files, after the table. Needs root.
Python 3 standard library only; flood, rates, forward and state use trafgen (Debian package
netsniff-ng, installed with apt-get when missing); proxy uses OpenSSH's ssh and sshd
(openssh-client, openssh-server) and nc (netcat-openbsd) when there.

The flags of the issue-numbered parts still work and say what they stand for:
--only-issue3 is `memory flood`, --only-issue6 is `rates state`, --skip-issue3/6 leave those
out of the parts as they were (latency apply rules memory flood rates state).
"""
import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time

from . import apply, diff, flood, forward, latency, memory, proxy, rates, rotate, rules, spa, state
from .lab import DEFAULT_KNOCKC, ROOT, SCRATCH, BenchError, Lab, log

# The parts of the one table, in the order they run, each a module with measure(lab, args),
# rows(result) and NOTES.
PARTS = {"latency": latency, "apply": apply, "rules": rules, "memory": memory, "flood": flood,
         "rates": rates, "forward": forward, "state": state, "diff": diff, "spa": spa, "rotate": rotate,
         "proxy": proxy}
# Parts that are scripts of their own, run after the table.
SCRIPTS = {"watcher": "bench-watch", "metrics": "bench-metrics"}
EVERYTHING = list(PARTS) + list(SCRIPTS)
# What the flags named after issues stood for, before the parts had names.
ISSUE_PARTS = {2: ["latency", "apply", "rules"], 3: ["memory", "flood"], 6: ["rates", "state"]}


def parse_counts(text):
    return sorted({int(s) for s in text.split(",") if s.strip()})


def arguments():
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*", metavar="PART",
                        help=f"parts to run, of {', '.join(EVERYTHING)} (default: all)")
    parser.add_argument("--skip", default="", metavar="PART,...", help="parts to leave out")
    parser.add_argument("--knockc", metavar="PATH",
                        help="the knockc binary to measure (default: the release build of this checkout, "
                             "built into .build-bench)")
    parser.add_argument("--no-build", action="store_true", help="use the existing .build-bench binary")

    group = parser.add_argument_group("latency")
    group.add_argument("--tries", type=int, default=300, help="knock-to-open tries (at least 200)")
    group = parser.add_argument_group("apply")
    group.add_argument("--sizes", default="1,100,1000,10000", help="sequence counts of the compile and apply rows")
    group.add_argument("--runs-10000", type=int, default=1,
                       help="compile/apply runs for 10000+ sequences (each apply takes ~20 s)")
    group.add_argument("--grants", default="0,10000,100000,1000000",
                       help="live grants (granted6) during the applies of 1000 sequences, same and edited spec "
                            "(empty: none of those applies)")
    group.add_argument("--apply-rounds", type=int, default=3,
                       help="rounds of those applies; each round applies the edited and the same spec once")
    group.add_argument("--apply-timeout", type=int, default=300,
                       help="seconds after which an apply with live grants is stopped (apply and state)")
    group = parser.add_argument_group("rules")
    group.add_argument("--trace-sizes", default="1,1000,10000", help="sequence counts traced")
    group = parser.add_argument_group("memory")
    group.add_argument("--memory-sources", "--issue3-sources", dest="memory_sources", default="10000,100000",
                       help="tracked sources (at most 131072)")
    group.add_argument("--memory-trials", type=int, default=3, help="quiet trials per figure (median)")
    group = parser.add_argument_group("flood")
    group.add_argument("--flood-seconds", type=int, default=20, help="length of each full-rate flood")
    group.add_argument("--probe-seconds", type=int, default=3, help="length of each flood-rate probe")
    group.add_argument("--baseline-seconds", type=int, default=4, help="legitimate client alone, no flood")
    group.add_argument("--flood-cpus", type=int, default=0,
                       help="trafgen processes for the full-rate floods (0: whichever probe was fastest)")
    group.add_argument("--slow-flood-pps", type=int, default=10000, help="rate of the extra rate-limited floods (0: none)")
    group.add_argument("--slow-flood-seconds", type=int, default=10, help="length of each rate-limited flood")
    group.add_argument("--small-max-tracked-sources", type=int, default=1024,
                       help="max_tracked_sources of the small-set flood runs")
    group = parser.add_argument_group("rates (and state's lookups)")
    group.add_argument("--rate-sizes", "--issue6-sizes", dest="rate_sizes", default="1,100,1000,10000",
                       help="sequence counts of the knockc and wiki-pattern configurations")
    group.add_argument("--rounds", type=int, default=6, help="rounds of the alternating rate samples")
    group.add_argument("--rate-seconds", type=float, default=1.0, help="length of each rate sample")
    group.add_argument("--rate-cpus", type=int, default=0, help="trafgen processes (0: one per CPU)")
    group = parser.add_argument_group("state")
    group.add_argument("--state-sources", default="100000,1000000", help="tracked sources")
    group.add_argument("--state-reference", type=int, default=10000,
                       help="the number of sources the lookup rates are compared with")
    group.add_argument("--state-memory-trials", type=int, default=3, help="memory trials per set and size")
    group = parser.add_argument_group("diff")
    group.add_argument("--diff-elements", default="0,65536", help="live progress elements (at most 131072)")
    group.add_argument("--diff-runs", type=int, default=3, help="runs per number of elements (median)")
    group.add_argument("--diff-timeout", type=int, default=120, help="seconds after which a knockc command is stopped")
    group = parser.add_argument_group("spa (also uses --flood-seconds, --probe-seconds, --flood-cpus, --rounds, "
                                      "--rate-seconds, --rate-cpus, --apply-timeout)")
    group.add_argument("--spa-tries", type=int, default=300, help="SPA knock-to-open tries, each with a handshake")
    group.add_argument("--spa-sequences", default="1,10,100",
                       help="spa sequences of the 24 h horizon's memory, apply and rate rows")
    group = parser.add_argument_group("rotate (also uses --flood-seconds, --probe-seconds, --flood-cpus, --rounds, "
                                      "--rate-seconds, --rate-cpus, --apply-timeout)")
    group.add_argument("--rotate-tries", type=int, default=300,
                       help="knock-to-open tries, each with a rotating sequence, the fixed one and a handshake")
    group.add_argument("--rotate-sequences", default="1,10,100",
                       help="rotating sequences of the 24 h horizon's memory, apply and rate rows")
    group = parser.add_argument_group("proxy")
    group.add_argument("--proxy-runs", type=int, default=15, help="ssh logins per login row (1 to 200)")
    group.add_argument("--proxy-bulk-runs", type=int, default=5,
                       help="bulk rounds, each one plain and one proxied transfer per direction (1 to 50)")
    group.add_argument("--proxy-bulk-mb", type=int, default=50, help="megabytes per bulk transfer (1 to 1000)")
    group = parser.add_argument_group("old flags, named after issues")
    for number in (3, 6):
        group.add_argument(f"--skip-issue{number}", action="store_true",
                           help=f"leave out {' and '.join(ISSUE_PARTS[number])}")
        group.add_argument(f"--only-issue{number}", action="store_true",
                           help=f"the same as `scripts/bench {' '.join(ISSUE_PARTS[number])}`")
    return parser


def chosen_parts(args, parser):
    """The parts to run, in their order; the old flags as they were, with a note."""
    unknown = [p for p in args.parts + [s for s in args.skip.split(",") if s] if p not in EVERYTHING]
    if unknown:
        parser.error(f"no part {', '.join(unknown)}; the parts are {', '.join(EVERYTHING)}")
    old = [(number, kind) for number in (3, 6) for kind in ("skip", "only")
           if getattr(args, f"{kind}_issue{number}")]
    for number in (3, 6):
        if args.__dict__[f"skip_issue{number}"] and args.__dict__[f"only_issue{number}"]:
            parser.error(f"--skip-issue{number} and --only-issue{number} exclude each other")
    if old and args.parts:
        parser.error("name the parts, or use the old --only-issue/--skip-issue flags, not both")
    wanted = list(args.parts) or list(EVERYTHING)
    if old:
        only = [p for number, kind in old if kind == "only" for p in ISSUE_PARTS[number]]
        skipped = [p for number, kind in old if kind == "skip" for p in ISSUE_PARTS[number]]
        wanted = only or [p for number in (2, 3, 6) for p in ISSUE_PARTS[number]]
        wanted = [p for p in wanted if p not in skipped]
        flags = " ".join(f"--{kind}-issue{number}" for number, kind in old)
        print(f"scripts/bench: {flags}: deprecated, named after issues; the same as `scripts/bench {' '.join(wanted)}`",
              file=sys.stderr)
    skip = set(args.skip.split(","))
    return [p for p in EVERYTHING if p in wanted and p not in skip]


def report(parts, results):
    rows = []  # (measurement, value, target, met)
    for part in parts:
        rows += PARTS[part].rows(results[part])
    header = ("measurement", "value", "target", "met?")
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(4)]

    def line(row):
        return " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
    print(line(header))
    print("-+-".join("-" * width for width in widths))
    for row in rows:
        print(line(row))
    print()
    notes = []
    for part in parts:
        notes += [n for n in PARTS[part].NOTES if n not in notes]
    for note in notes:
        print(note)


def main():
    parser = arguments()
    args = parser.parse_args()
    parts = chosen_parts(args, parser)
    if not parts:
        sys.exit("scripts/bench: no part left to run")
    if not 1 <= args.rounds <= 50 or not 0.5 <= args.rate_seconds <= 30:
        sys.exit("--rounds is 1 to 50 and --rate-seconds 0.5 to 30")
    if args.flood_seconds < 5 or args.slow_flood_seconds < 5:
        sys.exit("floods last at least 5 s (the legitimate client starts 1 s in and stops 1 s before the end)")
    if not 1 <= args.diff_runs <= 20 or not 1 <= args.diff_timeout <= 3600:
        sys.exit("--diff-runs is 1 to 20 and --diff-timeout 1 to 3600")
    if not 1 <= args.apply_rounds <= 20 or not 1 <= args.apply_timeout <= 3600:
        sys.exit("--apply-rounds is 1 to 20 and --apply-timeout 1 to 3600")
    if not 1 <= args.proxy_runs <= 200 or not 1 <= args.proxy_bulk_runs <= 50 or not 1 <= args.proxy_bulk_mb <= 1000:
        sys.exit("--proxy-runs is 1 to 200, --proxy-bulk-runs 1 to 50 and --proxy-bulk-mb 1 to 1000")
    for name in ("sizes", "grants", "trace_sizes", "memory_sources", "rate_sizes", "state_sources", "diff_elements",
                 "spa_sequences", "rotate_sequences"):
        setattr(args, name, parse_counts(getattr(args, name)))
    if any(n > 16777215 for n in args.grants):
        sys.exit("--grants: at most 16,777,215 (max_tracked_sources is at most 16,777,216)")
    if any(n > 131072 for n in args.diff_elements):
        sys.exit("--diff-elements: 198.18.0.0/15 has 131,072 addresses")
    if os.geteuid() != 0:
        sys.exit("scripts/bench needs root (network namespaces, nftables)")

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    started = time.monotonic()
    knockc = os.path.abspath(args.knockc) if args.knockc else DEFAULT_KNOCKC
    if not args.knockc and not args.no_build:
        log("building knockc (release) into .build-bench")
        build = subprocess.run(["swift", "build", "-c", "release", "--scratch-path", SCRATCH,
                                "--product", "knockc"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=1800)
        if build.returncode != 0:
            sys.exit(f"build failed:\n{build.stdout[-4000:]}")
    if not os.access(knockc, os.X_OK):
        sys.exit(f"no knockc at {knockc}")

    table_parts = [p for p in parts if p in PARTS]
    results = {}
    if table_parts:
        lab = Lab(knockc)
        exit_code = 0
        try:
            for part in table_parts:
                results[part] = PARTS[part].measure(lab, args)
        except BenchError as error:
            log(f"failed: {error}")
            exit_code = 1
        except KeyboardInterrupt:
            log("interrupted; cleaning up")
            exit_code = 130
        finally:
            lab.cleanup()
        if exit_code:
            sys.exit(exit_code)
        save_and_report(args, knockc, table_parts, results, time.monotonic() - started)

    for part in parts:
        if part in SCRIPTS:
            # Their own table and result file; knockc is already built.
            argv = [os.path.join(ROOT, "scripts", SCRIPTS[part]), "--no-build"]
            argv += ["--knockc", knockc if part == "watcher" else f"knockc={knockc}"]
            log(f"{part}: {' '.join(argv)}")
            sys.stdout.flush()
            if subprocess.run(argv, cwd=ROOT).returncode != 0:
                sys.exit(f"scripts/{SCRIPTS[part]} failed")


def save_and_report(args, knockc, parts, results, elapsed):
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip())
    nft_version = subprocess.run(["nft", "--version"], capture_output=True, text=True).stdout.strip()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    document = {
        "parts": parts, "timestamp": stamp, "commit": commit, "worktree_dirty": dirty, "knockc": knockc,
        "kernel": platform.release(), "nft": nft_version, "cpus": os.cpu_count(),
        "elapsed_s": round(elapsed, 1), "args": vars(args), **results,
    }
    out_dir = os.path.join(ROOT, "bench-results")
    os.makedirs(out_dir, exist_ok=True)
    name = "bench-" + ("all" if parts == list(PARTS) else "-".join(parts))
    out_path = os.path.join(out_dir, f"{name}-{stamp}.json")
    with open(out_path, "w") as file:
        json.dump(document, file, indent=1, default=str)
        file.write("\n")
    samples = [s for part in ("rates", "forward", "state") if part in results for s in results[part]["samples"]]
    if samples:
        samples_path = os.path.join(out_dir, f"{name}-{stamp}-rate-samples.csv")
        rates.write_samples(samples_path, samples)

    report(parts, results)
    print(f"\nraw numbers: {os.path.relpath(out_path, ROOT)}   ({elapsed:.0f} s)")
    if samples:
        print(f"rate samples: {os.path.relpath(samples_path, ROOT)}")

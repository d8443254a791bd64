"""The diff part: `knockc diff` and `knockc apply --confirm` while the progress set holds
0 or 65,536 live elements, which any outsider can create with spoofed first knocks
(scripts/bench.md, "diff"). Neither command needs those elements; the part shows that
their time does not grow with them.

Each run is a fresh namespace with examples/ssh.yaml applied and progress4 filled from
198.18.0.0/15 by nft -f; then `knockc diff` of a changed spec, and `knockc apply` of that
spec with `--confirm 1s`, which reverts after the window (nobody confirms) and then exits.
The confirm state goes to /run/knockc-bench-PID (KNOCKC_RUN_DIR), never /run/knockc. Every
knockc command is stopped after --diff-timeout seconds, and a size at which a command was
stopped is not tried again with more elements."""
import os
import shutil
import signal
import statistics
import subprocess
import threading
import time

from .lab import PID, SSH_SPEC, BenchError, fmt_ms, kill_namespace_processes, log, run
from .specs import element_batch

# What `apply --confirm` prints once the new table is installed and the window has begun.
CONFIRM_PROMPT = "knockc confirm"
CONFIRM_WINDOW_S = 1
# The changed spec that diff compares and apply --confirm installs: examples/ssh.yaml and one
# more sequence, so the live table's sets keep their definitions.
EXTRA_SEQUENCE = """  web:
    knock: [udp/7100, tcp/7300, udp/7200]
    open: [tcp/443]
"""


def changed_spec(lab):
    path = os.path.join(lab.tmpdir, "diff-changed.yaml")
    with open(SSH_SPEC) as source:
        text = source.read()
    with open(path, "w") as target:
        target.write(text.rstrip("\n") + "\n" + EXTRA_SEQUENCE)
    check = run([lab.knockc, "check", path], check=False)
    if check.returncode != 0:
        raise BenchError(f"knockc check {path} failed:\n{check.stderr[:2000]}")
    return path


def stop_group(process):
    """SIGKILL to the process group this run started the command in (start_new_session), which
    holds knockc and the children it waits for; then reaps it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def knockc_bounded(lab, argv, env, timeout, ok_codes):
    """Runs a knockc command, stopped after `timeout` seconds; an exit code not in `ok_codes`
    (None: any) is an error. Each stdout line is timestamped
    as it arrives. Returns the wall time to exit in ms (None when stopped), the exit code, the
    time of the first line containing CONFIRM_PROMPT (ms from the start, None if none came)."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    lab.processes.append(process)
    prompt = []
    errors = []

    def read_stdout():
        for line in process.stdout:
            if CONFIRM_PROMPT.encode() in line and not prompt:
                prompt.append((time.perf_counter() - start) * 1000)

    def read_stderr():
        errors.append(process.stderr.read())
    readers = [threading.Thread(target=read_stdout, daemon=True), threading.Thread(target=read_stderr, daemon=True)]
    for reader in readers:
        reader.start()
    try:
        process.wait(timeout=timeout)
        elapsed = (time.perf_counter() - start) * 1000
    except subprocess.TimeoutExpired:
        stop_group(process)
        elapsed = None
    finally:
        lab.processes.remove(process)
    for reader in readers:
        reader.join(timeout=10)
    stderr = errors[0].decode(errors="replace") if errors else ""
    if elapsed is not None and ok_codes is not None and process.returncode not in ok_codes:
        raise BenchError(f"{' '.join(argv)} exited {process.returncode}:\n{stderr[-2000:]}")
    return {"ms": elapsed, "exit": process.returncode if elapsed is not None else None,
            "prompt_ms": prompt[0] if prompt else None, "stderr_tail": stderr[-300:]}


def one_run(lab, args, count, batch, changed, env, skip):
    """A fresh namespace with `count` live progress elements: diff, then apply --confirm."""
    ns = lab.netns(f"diff{count}")
    try:
        # A plain apply first: apply --confirm restores the spec that one recorded.
        run(["ip", "netns", "exec", ns, lab.knockc, "apply", SSH_SPEC], timeout=120, env=env)
        if batch:
            run(["ip", "netns", "exec", ns, "nft", "-f", batch], timeout=300)
        result = {}
        if "diff" not in skip:
            # diff exits 1 when the spec differs from the live table, as it does here.
            result["diff"] = knockc_bounded(lab, ["ip", "netns", "exec", ns, lab.knockc, "diff", changed],
                                            env, args.diff_timeout, (1,))
        if "confirm" not in skip:
            # Nobody confirms: the reverter restores examples/ssh.yaml after the window, and
            # apply exits non-zero saying so (5 in this tree, 1 before), so any exit will do
            # once the prompt was printed.
            confirm = knockc_bounded(
                lab, ["ip", "netns", "exec", ns, lab.knockc, "apply", changed, "--confirm", f"{CONFIRM_WINDOW_S}s"],
                env, args.diff_timeout, None)
            if confirm["ms"] is not None and confirm["prompt_ms"] is None:
                raise BenchError(f"apply --confirm exited {confirm['exit']} without printing "
                                 f"`{CONFIRM_PROMPT}`:\n{confirm['stderr_tail']}")
            result["confirm"] = confirm
        result["left_in_namespace"] = kill_namespace_processes(ns)
        return result
    finally:
        lab.delete_netns(ns)


def measure(lab, args):
    run_dir = f"/run/knockc-bench-{PID}"
    lab.paths.append(run_dir)
    env = dict(os.environ, KNOCKC_RUN_DIR=run_dir, TMPDIR=lab.tmpdir)
    changed = changed_spec(lab)
    results = {"knockc": lab.knockc, "spec": "examples/ssh.yaml", "changed_spec": "examples/ssh.yaml + " +
               EXTRA_SEQUENCE.split(":")[0].strip(), "confirm_window_s": CONFIRM_WINDOW_S,
               "timeout_s": args.diff_timeout, "runs": args.diff_runs, "elements": {}}
    stopped = set()  # "diff" and/or "confirm" once one was stopped: not tried with more elements
    for count in args.diff_elements:
        batch = element_batch(os.path.join(lab.tmpdir, f"diff-progress-{count}.nft"), "progress4", count) if count else None
        samples = []
        for number in range(args.diff_runs):
            if stopped >= {"diff", "confirm"}:
                break
            log(f"diff: {count:,} live progress elements, run {number + 1} of {args.diff_runs}"
                + (f" (left out after a stop: {', '.join(sorted(stopped))})" if stopped else ""))
            sample = one_run(lab, args, count, batch, changed, env, set(stopped))
            for command in ("diff", "confirm"):
                if command in sample and sample[command]["ms"] is None:
                    stopped.add(command)
            samples.append(sample)
        if batch:
            os.remove(batch)
        results["elements"][count] = summarize(samples)
    shutil.rmtree(run_dir, ignore_errors=True)
    return results


def summarize(samples):
    """Medians over the runs; a command stopped in any run is reported as stopped."""
    def median_of(command, key, minus_ms=0.0):
        values = [s[command][key] for s in samples if command in s]
        if not values:
            return {"left_out": True}
        if any(v is None for v in values):
            return {"stopped": True, "n": len(values)}
        return {"median_ms": statistics.median(values) - minus_ms, "n": len(values)}
    return {
        "diff": median_of("diff", "ms"),
        "confirm_prompt": median_of("confirm", "prompt_ms"),
        "confirm_exit_minus_window": median_of("confirm", "ms", CONFIRM_WINDOW_S * 1000),
        "samples": samples,
    }


def cell(entry, timeout):
    if entry.get("left_out"):
        return "left out (stopped at fewer elements)"
    if entry.get("stopped"):
        return f"> {timeout} s (stopped)"
    return f"{fmt_ms(entry['median_ms'])}  (median of {entry['n']})"


def rows(diff):
    rows = []
    timeout = diff["timeout_s"]
    for count, r in sorted(diff["elements"].items(), key=lambda item: int(item[0])):
        count = int(count)
        rows.append((f"diff: knockc diff of a changed ssh.yaml, {count:,} live progress elements",
                     cell(r["diff"], timeout), "-", "-"))
        rows.append((f"diff: apply --confirm {CONFIRM_WINDOW_S}s, {count:,} live elements, until `knockc confirm` is printed",
                     cell(r["confirm_prompt"], timeout), "-", "-"))
        rows.append((f"diff: apply --confirm {CONFIRM_WINDOW_S}s, {count:,} live elements, until exit minus the window",
                     cell(r["confirm_exit_minus_window"], timeout), "-", "-"))
    return rows


NOTES = ["diff: wall clock of `ip netns exec NS knockc ...` in a fresh namespace per run; apply --confirm",
         "reverts after its window (nobody confirms), so its exit includes the revert."]

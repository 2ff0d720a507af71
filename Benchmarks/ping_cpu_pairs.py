#!/usr/bin/env python3
# The two 10,000 probes/s targets of the trust issue in the same rounds (BENCHMARKS.md, "Ping"):
# CPU beside fping, and the schedule error's p99 beside the C reference loop
# (Benchmarks/ping/sched_ref.c: clock_nanosleep to 40 µs before each due time, then a spin).
# Each round runs, one after another and in an order rotated from round to round (the
# machine's load drifts within a round): the rows ROWS chooses (by default ours, with the
# spin's lead learned at the default quantile, at most 40 µs; ours learning the 99th
# percentile; ours with spin-lead-us = 0), fping, and the C loop. Then, over all rounds: the CPU summed, and the p99 of every probe's
# schedule error pooled (this machine stalls for 1-20 ms a few times a second, the C loop
# as much as ours, so one 5 s run's p99 is decided by how many stalls fell in it), beside
# the medians of the rounds' own ratios. As root, after
# `make bench-ping` built .build/release/mplane-bench.  Usage: [ROWS=...] ping_cpu_pairs.py [ROUNDS]
# ROWS chooses the rows measured against fping and the C loop, comma-separated, from: ours,
# ours q0.99, ours lead 0 (the default: those three), and "C loop again", a second run of the
# same C loop as a control: how far the reference's p99 moves against itself on this machine.
import array
import json
import os
import statistics
import subprocess
import sys
import tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ping_bench as pb
bench = ".build/release/mplane-bench"
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
here = os.path.dirname(os.path.abspath(__file__))
sched_ref = os.path.join(tempfile.mkdtemp(), "sched_ref")
subprocess.run(["cc", "-O2", "-o", sched_ref, os.path.join(here, "ping", "sched_ref.c")], check=True)
targets = tempfile.NamedTemporaryFile("w", suffix=".txt")
targets.write("".join("127.0.%d.%d\n" % (i // 256, i % 256) for i in range(1000)))
targets.flush()
errors_file = os.path.join(tempfile.mkdtemp(), "errors")
pooled = {}


def pool(name):
    a = array.array("q")
    with open(errors_file, "rb") as f:
        a.frombytes(f.read())
    os.remove(errors_file)  # a row that wrote none then fails instead of reading another's
    pooled.setdefault(name, array.array("q")).extend(a)


def ratio(a, b):
    """a ÷ b; in a quiet round the C loop's p99 can round to 0.0 µs: then infinite, or 1 when
    a rounds to 0.0 as well (two runs that agree)."""
    return a / b if b else (1.0 if a == 0 else float("inf"))


def pooled_p99(name):
    v = sorted(pooled[name])
    return v[int((len(v) - 1) * 0.99)] / 1000.0


def ours(name, env):
    d = pb.ours(bench, "scale", "1000", "100", "5", env=dict(env, MPLANE_SCHEDULE_ERRORS_FILE=errors_file))
    pool(name)
    if d["lost"]:
        print("  (ours lost %d with %s)" % (d["lost"], env))
    return {"cpu": d["process_cpu_s"], "p50": d["schedule_error_us"]["p50"], "p99": d["schedule_error_us"]["p99"],
            "lead": "%s–%s" % (d["spin_lead_learned_us"]["min"], d["spin_lead_learned_us"]["max"])}


def fping():
    _, _, cpu = pb.cpu_of(["fping", "-q", "-c", "50", "-p", "100", "-i", "0.1", "-f", targets.name])
    return {"cpu": cpu}


def c_loop(name="C loop"):
    d = json.loads(subprocess.run([sched_ref, "10000", "5", "40", errors_file], capture_output=True, text=True, check=True).stdout)
    pool(name)
    return {"cpu": d["cpu_s"], "p50": d["schedule_error_us"]["p50"], "p99": d["schedule_error_us"]["p99"], "lead": "40"}


candidates = {"ours": lambda: ours("ours", {}),
              "ours q0.99": lambda: ours("ours q0.99", {"MPLANE_SPIN_LEAD_QUANTILE": "0.99"}),
              "ours lead 0": lambda: ours("ours lead 0", {"MPLANE_SPIN_LEAD_US": "0"}),
              "C loop again": lambda: c_loop("C loop again")}
chosen = [name.strip() for name in os.environ.get("ROWS", "ours,ours q0.99,ours lead 0").split(",")]
if len(set(chosen)) != len(chosen):
    sys.exit("ROWS: a row named twice")
for name in chosen:
    if name not in candidates:
        sys.exit("ROWS: unknown row %r (%s)" % (name, ", ".join(candidates)))
rows = [(name, candidates[name]) for name in chosen] + [("fping", fping), ("C loop", c_loop)]
ratios = {name: ([], []) for name in chosen}
cpu_total = {name: 0.0 for name, _ in rows}
for r in range(rounds):
    got = {}
    for i in range(len(rows)):
        name, run = rows[(r + i) % len(rows)]
        got[name] = run()
        cpu_total[name] += got[name]["cpu"]
    f, c = got["fping"]["cpu"], got["C loop"]
    parts = ["fping %.2f s" % f, "C loop %.2f s p99 %.1f µs" % (c["cpu"], c["p99"])]
    for name in ratios:
        o = got[name]
        ratios[name][0].append(o["cpu"] / f)
        ratios[name][1].append(ratio(o["p99"], c["p99"]))
        parts.append("%s %.2f s p50/p99 %.1f/%.1f µs%s: CPU ÷ fping %.2f, p99 ÷ C %.2f" % (
            name, o["cpu"], o["p50"], o["p99"], " lead %s µs" % o["lead"] if name != "ours lead 0" else "",
            o["cpu"] / f, ratio(o["p99"], c["p99"])))
    print("round %d: %s" % (r + 1, "; ".join(parts)), flush=True)
for name, (cpu, p99) in ratios.items():
    print("%s over %d rounds: CPU ÷ fping median %.3f (%.2f–%.2f, ≤ 1 in %d); p99 ÷ C loop median %.2f (≤ 1.5 in %d); both in %d" % (
        name, rounds, statistics.median(cpu), min(cpu), max(cpu), sum(x <= 1 for x in cpu), statistics.median(p99),
        sum(x <= 1.5 for x in p99), sum(a <= 1 and b <= 1.5 for a, b in zip(cpu, p99))))
c99 = pooled_p99("C loop")
print("pooled over %d rounds: fping %.2f s; C loop %.2f s, p99 %.1f µs" % (rounds, cpu_total["fping"], cpu_total["C loop"], c99))
for name in ratios:
    p99 = pooled_p99(name)
    print("pooled %s: CPU %.2f s, ÷ fping %.3f; p99 %.1f µs, ÷ C loop %.2f" % (
        name, cpu_total[name], cpu_total[name] / cpu_total["fping"], p99, ratio(p99, c99)))

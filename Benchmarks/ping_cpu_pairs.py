#!/usr/bin/env python3
# The two 10,000 probes/s targets of the trust issue in the same rounds (BENCHMARKS.md, "Ping"):
# CPU beside fping, and the schedule error's p99 beside the C reference loop
# (Benchmarks/ping/sched_ref.c: clock_nanosleep to 40 µs before each due time, then a spin).
# Each round runs ours (default: the spin's lead learned, at most 40 µs), ours with
# spin-lead-us = 0, fping, and the C loop, one after another. As root, after `make bench-ping`
# built .build/release/mplane-bench.  Usage: ping_cpu_pairs.py [ROUNDS]
import json
import os
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
for r in range(rounds):
    d = pb.ours(bench, "scale", "1000", "100", "5")
    z = pb.ours(bench, "scale", "1000", "100", "5", env={"MPLANE_SPIN_LEAD_US": "0"})
    _, err, cpu = pb.cpu_of(["fping", "-q", "-c", "50", "-p", "100", "-i", "0.1", "-f", targets.name])
    ref = json.loads(subprocess.run([sched_ref, "10000", "5", "40"], capture_output=True, text=True).stdout)
    lead = d.get("spin_lead_learned_us", {})
    print("round %d: ours %.2f s, p99 %.1f µs (lead %s–%s µs, lost %d); lead 0 %.2f s, p50/p99 %.1f/%.1f µs; fping %.2f s; "
          "C loop %.2f s, p99 %.1f µs | CPU ours/fping %.2f (lead 0: %.2f), p99 ours/C %.2f" % (
              r + 1, d["process_cpu_s"], d["schedule_error_us"]["p99"], lead.get("min"), lead.get("max"), d["lost"],
              z["process_cpu_s"], z["schedule_error_us"]["p50"], z["schedule_error_us"]["p99"], cpu,
              ref["cpu_s"], ref["schedule_error_us"]["p99"],
              d["process_cpu_s"] / cpu, z["process_cpu_s"] / cpu, d["schedule_error_us"]["p99"] / ref["schedule_error_us"]["p99"]))
    sys.stdout.flush()

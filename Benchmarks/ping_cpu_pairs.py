#!/usr/bin/env python3
# CPU at 10,000 probes/s, ours (default spin and spin-lead-us = 0) beside fping, three paired
# runs (BENCHMARKS.md, "Batched system calls"). As root, after `make bench-ping` built
# .build/release/mplane-bench; writes the 1,000 targets to a temporary file.
import tempfile
import sys, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ping_bench as pb
bench = ".build/release/mplane-bench"
targets = tempfile.NamedTemporaryFile("w", suffix=".txt")
targets.write("".join("127.0.%d.%d\n" % (i // 256, i % 256) for i in range(1000)))
targets.flush()
for r in range(3):
    d = pb.ours(bench, "scale", "1000", "100", "5")
    z = pb.ours(bench, "scale", "1000", "100", "5", env={"MPLANE_SPIN_LEAD_US": "0"})
    _, err, cpu = pb.cpu_of(["fping", "-q", "-c", "50", "-p", "100", "-i", "0.1", "-f", targets.name])
    print("run %d: ours %.2f s (p99 %.1f, lost %d), ours lead 0 %.2f s (p50 %.1f), fping %.2f s; ratio %.2f / %.2f" % (
        r + 1, d["process_cpu_s"], d["schedule_error_us"]["p99"], d["lost"], z["process_cpu_s"], z["schedule_error_us"]["p50"], cpu,
        d["process_cpu_s"] / cpu, z["process_cpu_s"] / cpu))

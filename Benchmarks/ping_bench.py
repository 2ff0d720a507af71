#!/usr/bin/env python3
# Ping benchmark: our ICMP engine beside iputils ping and fping, in one run, on loopback;
# then the capture service's counting loop under a flood on lo.
# Needs root (raw sockets, and ping/fping at 1 ms intervals). Run through `make bench-ping`.
#
# Usage: ping_bench.py PATH_TO_MPLANE_BENCH
import json
import os
import re
import subprocess
import sys
import tempfile


def stats(values_us):
    v = sorted(values_us)
    def pct(p):
        return v[min(len(v) - 1, int((len(v) - 1) * p + 0.5))]
    return {"n": len(v), "min": v[0], "p50": pct(0.5), "p99": pct(0.99), "max": v[-1]}


def cpu_of(argv, env=None):
    """Runs argv (with env added); returns (stdout, stderr, user+sys CPU seconds of the child)."""
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, **(env or {})))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return p.stdout, p.stderr, cpu


def ours(bench, *args, env=None):
    out, err, cpu = cpu_of([bench, "ping", *args], env=env)
    if not out.strip():
        sys.exit("mplane-bench ping %s failed: %s" % (" ".join(args), err))
    d = json.loads(out)
    d["process_cpu_s"] = round(cpu, 3)
    return d


def main(argv):
    bench = argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    sched_ref = os.path.join(tempfile.mkdtemp(), "sched_ref")
    subprocess.run(["cc", "-O2", "-o", sched_ref, os.path.join(here, "ping", "sched_ref.c")], check=True)
    rows = {}
    # 1,000 probes at 1 ms to 127.0.0.1.
    d = ours(bench, "rtt", "1000", "1")
    rows["ours (kernel tx+rx timestamps)"] = {k: d["rtt_us"][k] for k in ("min", "p50", "p99")} | {"lost": d["lost"]}
    d = ours(bench, "rtt-user-tx", "1000", "1")
    rows["ours (user tx, kernel rx: ping's method)"] = {k: d["rtt_us"][k] for k in ("min", "p50", "p99")} | {"lost": d["lost"]}
    out, _, _ = cpu_of(["ping", "-n", "-c", "1000", "-i", "0.001", "127.0.0.1"])
    times = [float(m) * 1000 for m in re.findall(r"time=([\d.]+) ms", out)]
    s = stats(times)
    rows["iputils ping -c 1000 -i 0.001"] = {k: s[k] for k in ("min", "p50", "p99")} | {"lost": 1000 - s["n"]}
    _, err, _ = cpu_of(["fping", "-q", "-C", "1000", "-p", "1", "127.0.0.1"])
    vals = [float(x) * 1000 for x in err.split(":", 1)[1].split() if x != "-"]
    s = stats(vals)
    rows["fping -C 1000 -p 1"] = {k: s[k] for k in ("min", "p50", "p99")} | {"lost": 1000 - s["n"]}

    print("### RTT on loopback, 1,000 probes at 1 ms (µs)\n")
    print("| tool | min | median | p99 | lost |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        print("| %s | %.3f | %.3f | %.3f | %d |" % (name, r["min"], r["p50"], r["p99"], r["lost"]))

    # Scale: 1,000 targets in 127.0.0.0/22 at 1 s, and 10,000 packets/s.
    print("\n### Scale on loopback (1,000 targets, 127.0.0.0/22)\n")
    print("| run | tool | sent | lost | CPU s | CPU per 1k probes, ms | send-schedule error p50 / p99 µs |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        for i in range(1000):
            f.write("127.0.%d.%d\n" % (i // 256, i % 256))
        f.flush()
        runs = (("1,000 pps (1 s period, 5 s)", 1000, 5), ("10,000 pps (0.1 s period, 5 s)", 100, 5),
                ("50,000 pps (20 ms period, 5 s)", 20, 5), ("100,000 pps (10 ms period, 5 s)", 10, 5))
        for label, interval_ms, seconds in runs:
            # Ours as shipped (batched system calls, 40 µs spin lead); one system call per
            # datagram; and, at 10,000/s, without the spin (`spin-lead-us = 0`).
            variants = [("ours", [], {}), ("ours, one call per datagram", ["1"], {})]
            if interval_ms == 100:
                variants.append(("ours, spin-lead-us = 0", [], {"MPLANE_SPIN_LEAD_US": "0"}))
            for name, extra, env in variants:
                d = ours(bench, "scale", "1000", str(interval_ms), str(seconds), *extra, env=env)
                print("| %s | %s | %d | %d | %.2f | %.2f | %.1f / %.1f |" % (
                    label, name, d["sent"], d["lost"], d["process_cpu_s"], 1000 * d["process_cpu_s"] / d["sent"],
                    d["schedule_error_us"]["p50"], d["schedule_error_us"]["p99"]))
            rounds = seconds * 1000 // interval_ms
            # fping: -p period per target, -i gap between any two probes (1 ms is its floor
            # for 1,000 pps; 0.1 ms for 10,000 pps needs -i 0.1).
            gap = "%g" % (interval_ms / 1000.0)
            # fping 5.1 keeps at most 65,536 sequence numbers for 10 s: past about 6,500
            # probes/s it runs only as many rounds as fit (it refuses more).
            rounds = min(rounds, 65536 // 1000 - 5) if interval_ms < 100 else rounds
            _, err, cpu = cpu_of(["fping", "-q", "-c", str(rounds), "-p", str(interval_ms), "-i", gap, "-f", f.name])
            sent = lost = 0
            for m in re.finditer(r"xmt/rcv/%loss = (\d+)/(\d+)/", err):
                sent += int(m.group(1))
                lost += int(m.group(1)) - int(m.group(2))
            print("| %s | fping | %d | %d | %.2f | %.2f | n/a |" % (label, sent, lost, cpu, 1000 * cpu / max(sent, 1)))
            if interval_ms == 100:
                # The schedule-precision reference: a minimal C loop at the same rate
                # (clock_nanosleep to 40 µs before each due time, then a spin).
                ref = json.loads(subprocess.run([sched_ref, "10000", str(seconds), "40"], capture_output=True,
                                                text=True).stdout)
                print("| %s | C reference loop | %d | n/a | %.2f | %.2f | %.1f / %.1f |" % (
                    label, ref["sent"], ref["cpu_s"], 1000 * ref["cpu_s"] / ref["sent"],
                    ref["schedule_error_us"]["p50"], ref["schedule_error_us"]["p99"]))

    # The socket design under many jobs: one raw socket per job, each with its kernel
    # identifier filter, so every reply passes every job's filter. The same 1,000 targets
    # and 10,000 probes/s in all, split between 1, 10 and 50 jobs running at once.
    print("\n### Many jobs at once: one socket per job (10,000 probes/s in all, 5 s)\n")
    print("| jobs | sent | lost | replies read by the wrong job | CPU s | CPU per 1k probes, ms | schedule error p50 / p99 µs |")
    print("|---|---|---|---|---|---|---|")
    for jobs in (1, 10, 50):
        d = ours(bench, "jobs", str(jobs), "1000", "100", "5")
        print("| %d | %d | %d | %d | %.2f | %.2f | %.1f / %.1f |" % (
            jobs, d["sent"], d["lost"], d["foreign_or_stray"], d["process_cpu_s"], 1000 * d["process_cpu_s"] / d["sent"],
            d["schedule_error_us"]["p50"], d["schedule_error_us"]["p99"]))

    # Capture: a flood of small UDP datagrams on lo, counted through a BPF filter.
    out, err, _ = cpu_of([bench, "capture", "3"])
    if out.strip():
        d = json.loads(out)
        print("\n### Capture on lo (3 s flood of 46-byte UDP datagrams from a second thread)\n")
        print("| sent | counted | dropped | counted per s | capture thread CPU per frame |")
        print("|---|---|---|---|---|")
        print("| %d | %d | %d | %d | %.2f µs |" % (d["sent"], d["counted"], d["dropped"], d["frames_per_s"],
                                                 d["cpu_ns_per_frame"] / 1000.0))
    else:
        print("capture benchmark failed: %s" % err)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
# Measures how fast the Python reference implementation of mPlane
# (mplane-sdk 0.9.0) parses and writes three kinds of message, as a baseline
# for our own codec benchmarks.
#
# Usage: ri_bench.py CAP.json SPEC.json RESULT.json [--seconds S]
#
# Each file holds the JSON text of one message (Benchmarks/fixtures/ has
# capability.json, specification.json and result-1000.json). For each, the
# script times mplane.model.parse_json(text) and mplane.model.unparse_json(msg)
# in loops of at least S seconds (default 1.0), three times, and keeps the
# best rate. stdout receives one JSON object:
#   {"capability": {"parse_per_s": ..., "unparse_per_s": ..., "bytes": ...},
#    "specification": {...}, "result": {...}}
# where bytes is the UTF-8 size of the input text.

import argparse
import json
import sys
import time

import mplane.model

REPETITIONS = 3


def rate(operation, seconds):
    """Calls per second of operation over a loop of at least `seconds`."""
    clock = time.perf_counter
    calls = 0
    start = clock()
    deadline = start + seconds
    while True:
        operation()
        calls += 1
        now = clock()
        if now >= deadline:
            return calls / (now - start)


def best_rate(operation, seconds):
    operation()  # warm-up, and fail early if the message is unusable
    return max(rate(operation, seconds) for _ in range(REPETITIONS))


def measure(path, seconds):
    with open(path, "r", encoding="utf-8") as f:
        text = f.read()
    msg = mplane.model.parse_json(text)
    return {
        "parse_per_s": round(best_rate(lambda: mplane.model.parse_json(text), seconds), 1),
        "unparse_per_s": round(best_rate(lambda: mplane.model.unparse_json(msg), seconds), 1),
        "bytes": len(text.encode("utf-8")),
    }


def main():
    parser = argparse.ArgumentParser(
        description="Parse/unparse throughput of the mPlane reference implementation.")
    parser.add_argument("capability", metavar="CAP.json")
    parser.add_argument("specification", metavar="SPEC.json")
    parser.add_argument("result", metavar="RESULT.json")
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="minimum length of each timed loop (default 1.0)")
    args = parser.parse_args()
    if args.seconds <= 0:
        parser.error("--seconds must be positive")

    mplane.model.initialize_registry()
    report = {}
    for kind in ("capability", "specification", "result"):
        report[kind] = measure(getattr(args, kind), args.seconds)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

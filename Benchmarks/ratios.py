#!/usr/bin/env python3
# Prints the BENCHMARKS.md table from the JSON figures of mplane-bench and ri_bench.py.
import json
import sys

ours = json.load(open(sys.argv[1]))
ri = json.load(open(sys.argv[2]))
print("| message | bytes | ours parse/s | RI parse/s | ratio | ours serialise/s | RI serialise/s | ratio |")
print("|---|---|---|---|---|---|---|---|")
for name in ("capability", "specification", "result"):
    o, r = ours[name], ri[name]
    print("| %s | %d | %s | %s | %.1fx | %s | %s | %.1fx |" % (
        name, o["bytes"], f'{o["parse_per_s"]:,}', f'{int(r["parse_per_s"]):,}', o["parse_per_s"] / r["parse_per_s"],
        f'{o["unparse_per_s"]:,}', f'{int(r["unparse_per_s"]):,}', o["unparse_per_s"] / r["unparse_per_s"]))

if "scheduler" in ours:
    print()
    print("| scheduler | figure |")
    print("|---|---|")
    print("| jobs started and completed per second (loopback service, 2000 at once) | %s |" % f'{ours["scheduler"]["jobs_per_s"]:,}')
if "column" in ours:
    print("| rows appended per second into a preallocated natural column | %s |" % f'{ours["column"]["natural_rows_per_s"]:,}')

#!/bin/bash
# Passive flow metering over a trace (BENCHMARKS.md, "Passive flows"), all in one run:
#   ours     mplane-bench flows: the flows-file path (libpcap read, decode, flow table with
#            biflows, TCP state, RTT, retransmissions, the result rows)
#   read     Benchmarks/flows/pcap_read.c: pcap_next_ex and nothing else (the read limit)
#   5-tuple  Benchmarks/flows/pcap_5tuple.c: pcap_next_ex and a plain 5-tuple table (the floor)
#   tcpdump  tcpdump -r FILE -w /dev/null
# Usage: Benchmarks/flow_bench.sh MPLANE_BENCH [RUNS]   (run by `make bench-flows`)
set -euo pipefail
bench=${1:?usage: flow_bench.sh MPLANE_BENCH [RUNS]}
for tool in cc tcpdump python3 /usr/bin/time; do
  command -v "$tool" > /dev/null || { echo "flow_bench.sh: $tool is missing (make deps installs tcpdump)" >&2; exit 1; }
done
runs=${2:-5}
work=$(mktemp -d /tmp/mplane-flow-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
here=$(cd "$(dirname "$0")" && pwd)
cc -O2 -o "$work/pcap_read" "$here/flows/pcap_read.c" -lpcap
cc -O2 -o "$work/pcap_5tuple" "$here/flows/pcap_5tuple.c" -lpcap
# 120,000 conversations of about 10 packets (1.2 M packets), 2,000 open at a time.
"$bench" trace "$work/many.pcap" 120000 10 >/dev/null
# 1 M conversations of about 2 packets, all open at once in a 1 M-entry table (its memory).
"$bench" trace "$work/million.pcap" 1000000 2 >/dev/null
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }
frames=$("$work/pcap_read" "$work/many.pcap" | field frames)
echo "trace: $frames packets, $(stat -c %s "$work/many.pcap") bytes; $runs runs each, median packets/s"
declare -A pps
for r in $(seq "$runs"); do
  pps[ours]+="$("$bench" flows "$work" many.pcap | field pps) "
  pps[read]+="$("$work/pcap_read" "$work/many.pcap" | field pps) "
  pps[tuple]+="$("$work/pcap_5tuple" "$work/many.pcap" | field pps) "
  t0=$(date +%s.%N); tcpdump -r "$work/many.pcap" -w /dev/null 2>/dev/null; t1=$(date +%s.%N)
  pps[tcpdump]+="$(python3 -c "print(round($frames/($t1-$t0)))") "
done
for k in ours read tuple tcpdump; do
  m=$(tr ' ' '\n' <<<"${pps[$k]}" | grep . | median)
  printf '%-8s %12.0f pps   runs: %s\n' "$k" "$m" "${pps[$k]}"
  eval "m_$k=$m"
done
python3 - "$m_ours" "$m_read" "$m_tuple" "$m_tcpdump" <<'PY'
import sys
o, r, t, d = map(float, sys.argv[1:])
print(f"ratios: ours/5-tuple {o/t:.2f}, ours/read {o/r:.2f}, ours/tcpdump {o/d:.2f}")
PY
# Resident memory of a flows run with a 1 M-entry table over the 1 M-conversation trace.
/usr/bin/time -f "1M-entry table: max RSS %M KiB" "$bench" flows "$work" million.pcap 1048576

#!/usr/bin/env bash
# Idle RSS of an mpcom binary: the median VmRSS of N starts of its embedded default
# configuration, each read 1 s after the first GET answered. With --cold, the binary is
# dropped from the page cache before each start (deploy/cold-cache.py), as after a reboot.
#   Benchmarks/idle_rss.sh [--cold] BINARY [N=7]
set -euo pipefail
cd "$(dirname "$0")/.."
cold=no; [ "${1:-}" = --cold ] && { cold=yes; shift; }
bin=$1; n=${2:-7}; values=()
for i in $(seq "$n"); do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  [ $cold = yes ] && python3 deploy/cold-cache.py "$bin"
  "$bin" --port "$port" --log-level warning > /dev/null 2>&1 &
  pid=$!
  for _ in $(seq 50); do curl -sf --max-time 5 -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  sleep 1
  values+=("$(awk '/VmRSS/ {print $2}' /proc/$pid/status)")
  kill $pid; wait $pid 2>/dev/null || true
done
printf '%s\n' "${values[@]}" | sort -n | awk -v b="$bin" -v c=$cold \
  '{a[NR]=$1} END {printf "%s (cold: %s): median %d KiB, min %d, max %d, %d starts\n", b, c, a[int((NR+1)/2)], a[1], a[NR], NR}'

#!/usr/bin/env bash
# Idle RSS of an mpcom binary: the median VmRSS of N starts of its embedded default
# configuration, each read 1 s after the first GET answered. With --cold, the binary is
# dropped from the page cache before each start (deploy/cold-cache.py), as after a reboot.
# With --tls, the same configuration with a [TLS] section (a throwaway PKI from
# deploy/make-certs.sh) and the GET over mutual TLS.
#   Benchmarks/idle_rss.sh [--cold] [--tls] BINARY [N=7]
set -euo pipefail
cd "$(dirname "$0")/.."
cold=no; [ "${1:-}" = --cold ] && { cold=yes; shift; }
tls=no; [ "${1:-}" = --tls ] && { tls=yes; shift; }
bin=$1; n=${2:-7}; values=()
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
config=(); scheme=http; get=(curl -sf --max-time 5 -o /dev/null)
if [ $tls = yes ]; then
  deploy/make-certs.sh "$tmp/pki" > /dev/null
  { printf '[TLS]\ncert = %s\nkey = %s\nca-chain = %s\n\n' "$tmp/pki/component-1.crt" "$tmp/pki/component-1.key" "$tmp/pki/ca.crt"
    "$bin" --print-config; } > "$tmp/mpcom.conf"
  config=(--config "$tmp/mpcom.conf"); scheme=https
  get+=(--cacert "$tmp/pki/ca.crt" --cert "$tmp/pki/client-1.crt" --key "$tmp/pki/client-1.key")
fi
for i in $(seq "$n"); do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  [ $cold = yes ] && python3 deploy/cold-cache.py "$bin"
  "$bin" "${config[@]}" --port "$port" --log-level warning > /dev/null 2>&1 &
  pid=$!
  for _ in $(seq 50); do "${get[@]}" "$scheme://127.0.0.1:$port/" && break; sleep 0.1; done
  sleep 1
  values+=("$(awk '/VmRSS/ {print $2}' /proc/$pid/status)")
  kill $pid; wait $pid 2>/dev/null || true
done
printf '%s\n' "${values[@]}" | sort -n | awk -v b="$bin" -v c=$cold \
  -v t=$tls '{a[NR]=$1} END {printf "%s (cold: %s, tls: %s): median %d KiB, min %d, max %d, %d starts\n", b, c, t, a[int((NR+1)/2)], a[1], a[NR], NR}'

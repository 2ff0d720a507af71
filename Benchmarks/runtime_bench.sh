#!/usr/bin/env bash
# Runtime benchmark: our mpcom against the reference implementation's mpcom, in one run, on
# loopback. Bounded: a few seconds of wrk per server. Run through `make bench-runtime`.
set -euo pipefail
cd "$(dirname "$0")/.."
OURS=${OURS:-.build/release/mpcom}
RI_MPCOM=${RI_MPCOM:-.venv-ri/bin/mpcom}
PY=${PY:-.venv-ri/bin/python}
PORT_OURS=${PORT_OURS:-18901}
PORT_RI=${PORT_RI:-18902}
DURATION=${DURATION:-5}
TOKEN=1eb3b3c09578b8f741ca644ef30e012c   # the loopback capability, the same token on both
tmp=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

cat > "$tmp/ri.conf" <<CONF
[component]
workflow = client-initiated
listen-port = $PORT_RI
registry_preload = $PWD/Tests/Interop/loopback-registry.json
[module_loopback]
module = mplane.components.loopback
CONF
# Start from a cold page cache for our binary, as after a reboot (see deploy/cold-cache.py).
python3 deploy/cold-cache.py "$OURS"
"$OURS" --port "$PORT_OURS" --log-level error > "$tmp/ours.log" 2>&1 &
ours_pid=$!
here=$PWD
(cd "$tmp" && exec "$here/$PY" "$here/$RI_MPCOM" --config "$tmp/ri.conf" > "$tmp/ri.log" 2>&1) &
ri_pid=$!
for _ in $(seq 50); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT_OURS/capability/$TOKEN" && curl -sf -o /dev/null "http://127.0.0.1:$PORT_RI/capability/$TOKEN" && break
  sleep 0.2
done
rss() { awk '/VmRSS/ {print $2}' /proc/$1/status; }
sleep 1
echo "idle RSS: ours $(rss $ours_pid) KiB, RI $(rss $ri_pid) KiB"
for name in ours ri; do
  port=$PORT_OURS; [ $name = ri ] && port=$PORT_RI
  echo "== $name: GET /capability/<token>, wrk -t1 -c8 -d${DURATION}s"
  wrk -t1 -c8 -d"${DURATION}s" --latency "http://127.0.0.1:$port/capability/$TOKEN" | grep -E "Requests/sec|50%|99%"
done
spec='{"specification": "measure", "version": 1, "registry": "http://mplane.corvid.ch/registry/loopback", "label": "bench", "when": "now", "parameters": {"test.input": "x"}, "results": ["test.output"], "token": "TOKEN"}'
for name in ours ri; do
  port=$PORT_OURS; [ $name = ri ] && port=$PORT_RI
  times=()
  for i in $(seq 20); do
    t=$(curl -s -o /dev/null -w '%{time_total}' -XPOST -H 'Content-Type: application/x-mplane+json' \
        --data-binary "${spec/TOKEN/$name-$i-$RANDOM}" "http://127.0.0.1:$port/")
    times+=("$t")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v n="$name" '{a[NR]=$1} END {printf "== %s: POST loopback specification -> result: median %.1f ms, max %.1f ms (20 requests)\n", n, a[int((NR+1)/2)]*1000, a[NR]*1000}'
done
# A GET while a 3 s specification is being held (ours only: the RI's loopback has no duration).
curl -s -o /dev/null -XPOST -H 'Content-Type: application/x-mplane+json' --data-binary \
  '{"specification": "measure", "registry": "http://mplane.corvid.ch/registry/loopback", "label": "hold", "when": "now + 3s / 1s", "parameters": {"test.input": "x"}, "results": ["time", "test.output", "test.counter"], "token": "hold"}' \
  "http://127.0.0.1:$PORT_OURS/" &
hold_pid=$!
sleep 0.5
echo "== ours: GET during a running 3 s specification, wrk -t1 -c4 -d2s"
wrk -t1 -c4 -d2s --latency "http://127.0.0.1:$PORT_OURS/capability/$TOKEN" | grep -E "Requests/sec|50%|99%"
wait $hold_pid 2>/dev/null || true

# Component-initiated: queue -> result, with and without callback control, against the
# same minimal supervisor (Benchmarks/ci_bench.py).
cat > "$tmp/ours-ci.conf" <<CONF
[component]
workflow = component-initiated
client_host = 127.0.0.1
client_port = {port}
[module_loopback]
module = mplane.components.loopback
CONF
cat > "$tmp/ri-ci.conf" <<CONF
[component]
workflow = component-initiated
client_host = 127.0.0.1
client_port = {port}
registration_path = register/capability
specification_path = show/specification
result_path = register/result
registry_preload = $PWD/Tests/Interop/loopback-registry.json
[module_loopback]
module = mplane.components.loopback
CONF
python3 Benchmarks/ci_bench.py ours 10 10 4 -- "$OURS" --config "$tmp/ours-ci.conf" --log-level error
(cd "$tmp" && python3 "$here/Benchmarks/ci_bench.py" ri 3 10 3 -- "$here/$PY" "$here/$RI_MPCOM" --config "$tmp/ri-ci.conf")

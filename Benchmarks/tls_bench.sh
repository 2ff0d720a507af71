#!/usr/bin/env bash
# TLS benchmark (`make bench-tls`): our release mpcom over mutual TLS beside plain HTTP, the
# RI's mpcom over TLS, and nginx with client-certificate verification (the C floor), in one
# run on loopback. Load: Benchmarks/tls_load.c (wrk cannot present a client certificate),
# built here; plain HTTP also with wrk, to place the generator. Certificates: a throwaway
# PKI from deploy/make-certs.sh (EC P-256). Bounded: a few seconds per figure.
set -euo pipefail
cd "$(dirname "$0")/.."
OURS=${OURS:-.build/release/mpcom}
PY=${PY:-.venv-ri/bin/python}
RI_MPCOM=${RI_MPCOM:-.venv-ri/bin/mpcom}
D=${DURATION:-5}
TOKEN=1eb3b3c09578b8f741ca644ef30e012c   # the loopback capability, the same token on both
tmp=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cc -O2 -o "$tmp/tls_load" Benchmarks/tls_load.c -lssl -lcrypto -lpthread
deploy/make-certs.sh "$tmp/pki" > /dev/null
P=$tmp/pki
client=(--ca "$P/ca.crt" --cert "$P/client-1.crt" --key "$P/client-1.key")
wait_for() { for _ in $(seq 100); do curl -s -o /dev/null --cacert "$P/ca.crt" --cert "$P/client-1.crt" --key "$P/client-1.key" "$1" && return 0; sleep 0.1; done; echo "not up: $1"; return 1; }
load() { echo "  $("$tmp/tls_load" 127.0.0.1 "$@")"; }

# Ours, plain and TLS (the embedded default configuration, with a [TLS] section for TLS).
{ printf '[TLS]\ncert = %s\nkey = %s\nca-chain = %s\n\n' "$P/component-1.crt" "$P/component-1.key" "$P/ca.crt"; "$OURS" --print-config; } > "$tmp/ours-tls.conf"
plain=$(free_port); tls=$(free_port)
"$OURS" --port "$plain" --log-level error > "$tmp/ours-plain.log" 2>&1 &
"$OURS" --config "$tmp/ours-tls.conf" --port "$tls" --log-level error > "$tmp/ours-tls.log" 2>&1 &
wait_for "http://127.0.0.1:$plain/capability"; wait_for "https://127.0.0.1:$tls/capability"
echo "ours, GET /capability/$TOKEN:"
echo "  wrk plain keep-alive: $(wrk -t1 -c8 -d${D}s "http://127.0.0.1:$plain/capability/$TOKEN" | awk '/Requests\/sec/ {print $2 " req/s"}')"
load "$plain" "/capability/$TOKEN" 8 "$D"
load "$tls" "/capability/$TOKEN" 8 "$D" "${client[@]}"
load "$tls" "/capability/$TOKEN" 4 "$D" --handshakes "${client[@]}"
echo "  idle RSS after the runs: plain $(awk '/VmRSS/ {print $2}' /proc/$(pgrep -f "$OURS --port $plain")/status) KiB, TLS $(awk '/VmRSS/ {print $2}' /proc/$(pgrep -f "ours-tls.conf")/status) KiB"

# The RI's mpcom over TLS (tornado with ssl_options; with [TLS] it requires [Roles] and [Authorizations]).
ri=$(free_port)
cat > "$tmp/ri.conf" <<CONF
[TLS]
cert = $P/component-1.crt
key = $P/component-1.key
ca-chain = $P/ca.crt
[Roles]
org.example.clients.client-1 = bench
[Authorizations]
test-loopback = bench
[component]
workflow = client-initiated
listen-port = $ri
registry_preload = $PWD/Tests/Interop/loopback-registry.json
[module_loopback]
module = mplane.components.loopback
CONF
here=$PWD
(cd "$tmp" && exec "$here/$PY" "$here/$RI_MPCOM" --config "$tmp/ri.conf" > "$tmp/ri.log" 2>&1) &
wait_for "https://127.0.0.1:$ri/capability/$TOKEN"
echo "RI mpcom over TLS, GET /capability/$TOKEN:"
load "$ri" "/capability/$TOKEN" 8 "$D" "${client[@]}"
load "$ri" "/capability/$TOKEN" 4 "$D" --handshakes "${client[@]}"
kill %3 2>/dev/null || true

# nginx with mutual TLS serving a file the size of our answer: what the same TLS library
# family costs in C.
if command -v nginx > /dev/null; then
  ng=$(free_port)
  mkdir -p "$tmp/www/capability"
  curl -s --cacert "$P/ca.crt" --cert "$P/client-1.crt" --key "$P/client-1.key" "https://127.0.0.1:$tls/capability/$TOKEN" > "$tmp/www/capability/$TOKEN"
  cat > "$tmp/nginx.conf" <<CONF
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
events { worker_connections 256; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$ng ssl;
    ssl_certificate $P/component-1.crt;
    ssl_certificate_key $P/component-1.key;
    ssl_client_certificate $P/ca.crt;
    ssl_verify_client on;
    ssl_session_cache off;
    ssl_session_tickets off;
    root $tmp/www;
  }
}
CONF
  nginx -c "$tmp/nginx.conf" -e "$tmp/nginx.err"
  wait_for "https://127.0.0.1:$ng/capability/$TOKEN"
  echo "nginx 1 worker, mutual TLS, the same bytes as a file:"
  load "$ng" "/capability/$TOKEN" 8 "$D" "${client[@]}"
  load "$ng" "/capability/$TOKEN" 4 "$D" --handshakes "${client[@]}"
  kill "$(cat "$tmp/nginx.pid")"
else
  echo "nginx: not installed (make bench-tls installs nginx-light)"
fi

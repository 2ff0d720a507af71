#!/usr/bin/env bash
# Regenerates deploy/link/mpcom.order, the function order the release link uses.
#
# Runs the release mpcom under callgrind (valgrind), with the embedded default configuration
# and a [TLS] section (a throwaway PKI from deploy/make-certs.sh), through start-up, the
# requests a client makes over mutual TLS, a loopback measurement, a ping, a capture and a
# graceful stop, then writes the
# functions it ran (in callgrind's order, which groups them by object): those that ran after
# start-up first, then start-up's. lld places them
# first in .text, so the code the probe needs sits in about 1.5 MB of contiguous pages
# instead of being spread over 14 MB; idle RSS falls accordingly (BENCHMARKS.md). A stale
# file costs memory, never correctness: names that no longer exist are skipped.
#
#   make order     (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-.build/release/mpcom}
OUT=${2:-deploy/link/mpcom.order}
command -v valgrind >/dev/null || { echo "train-order: needs valgrind (apt-get install valgrind)"; exit 1; }
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
strip --strip-debug -o "$tmp/mpcom" "$BIN"   # valgrind cannot read the toolchain's DWARF 5
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
deploy/make-certs.sh "$tmp/pki" > /dev/null
{ printf '[TLS]\ncert = %s\nkey = %s\nca-chain = %s\n\n' "$tmp/pki/component-1.crt" "$tmp/pki/component-1.key" "$tmp/pki/ca.crt"
  "$BIN" --print-config; } > "$tmp/mpcom.conf"
valgrind --tool=callgrind --demangle=no --callgrind-out-file="$tmp/cg.out" \
  "$tmp/mpcom" --config "$tmp/mpcom.conf" --port "$port" --log-level info > "$tmp/mpcom.log" 2>&1 &
pid=$!
url=https://127.0.0.1:$port
curl() { command curl --cacert "$tmp/pki/ca.crt" --cert "$tmp/pki/client-1.crt" --key "$tmp/pki/client-1.key" "$@"; }
up=no
for _ in $(seq 300); do curl -sf -o /dev/null "$url/" && { up=yes; break; }; sleep 0.2; done
[ $up = yes ] || { echo "train-order: mpcom did not answer under callgrind: $(tail -3 "$tmp/mpcom.log")"; exit 1; }
# Start-up is over (mpcom listens and has released its start-up pages): what ran so far goes
# to cg.out.1, the steady state to cg.out.2 (dumped before the stop), the stop to cg.out.
# callgrind_control exits 0 even when it reached nothing: the dumps are checked below.
timeout 60 callgrind_control -d $pid > /dev/null || true
json='Content-Type: application/x-mplane+json'
post() { curl -s -o /dev/null -w "%{http_code} " -XPOST -H "$json" --data-binary "$1" "$url/"; }
curl -s -o /dev/null "$url/capability"
curl -s -o /dev/null -H 'Accept: application/x-mplane+json' "$url/capability"
loopback=$(curl -s "$url/capability" | grep -o "/capability/[0-9a-f]*" | head -1)
curl -s -o /dev/null "$url$loopback"
curl -s -o /dev/null "$url/capability/test-loopback"
post '{"specification": "measure", "version": 1, "registry": "http://mplane.corvid.ch/registry/loopback", "label": "test-loopback", "when": "now", "parameters": {"test.input": "x"}, "results": ["test.output"], "token": "train-1"}'
post "$(sed 's/"now + 3s \/ 1s"/"now + 1s \/ 1s"/' deploy/messages/specification-ping-average-ip4.json)"
post '{"specification": "measure", "version": 1, "registry": "http://mplane-swift.invalid/registry/probe", "label": "capture-lo", "when": "now + 1s / 1s", "parameters": {"source.interface": "lo", "capture.filter": "udp or icmp"}, "results": ["time", "packets.ip", "octets.ip", "packets.tcp", "octets.tcp", "packets.udp", "octets.udp", "packets.unobserved", "flows"], "token": "train-capture"}'
post '{"specification": "measure", "version": 1, "registry": "http://mplane.corvid.ch/registry/loopback", "label": "test-counter", "when": "now + 8s / 1s", "parameters": {"test.input": "x"}, "results": ["time", "test.output", "test.counter"], "token": "train-2"}'
post '{"redemption": "measure", "version": 1, "registry": "http://mplane.corvid.ch/registry/loopback", "label": "test-counter", "when": "now + 8s / 1s", "parameters": {"test.input": "x"}, "results": ["time", "test.output", "test.counter"], "token": "train-2"}'
post '{"interrupt": "measure", "version": 1, "registry": "http://mplane.corvid.ch/registry/loopback", "label": "test-counter", "when": "now + 8s / 1s", "parameters": {"test.input": "x"}, "results": ["time", "test.output", "test.counter"], "token": "train-2"}'
post '{"specification": "measure", "token": "no-such-capability"}'
post 'not json'
# A client without a certificate, refused in the handshake (check-release makes one too).
command curl -s -o /dev/null --cacert "$tmp/pki/ca.crt" "$url/capability" || true
echo
timeout 60 callgrind_control -d $pid > /dev/null || true
kill -INT $pid
# A stop that hangs under valgrind must not hang `make order`: a killed run leaves its last
# trace empty (no totals), the script then fails and the old order file stays.
timeout 120 tail --pid=$pid -f /dev/null || kill -KILL $pid
wait $pid || true
for part in cg.out.1 cg.out.2 cg.out; do
  grep -q '^totals:' "$tmp/$part" 2>/dev/null || { echo "train-order: no complete trace $part (callgrind_control, or a killed run)"; exit 1; }
done
python3 - "$tmp/cg.out.2" "$tmp/mpcom" "$OUT.tmp" "$(dirname "$(command -v swiftc)")/../lib/swift_static/linux" "$tmp/cg.out.1" "$tmp/cg.out" <<'PY'
import collections, glob, re, subprocess, sys
trace, binary, out, static_lib_dir, startup, stop = sys.argv[1:]
# The steady state's functions first, packed together: once mpcom has released its start-up
# pages (README, "Release"), only they fault back in. Start-up's and the stop's follow.
seen, order = set(), []
for path in (trace, startup, stop):
    for line in open(path, errors="replace"):
        m = re.match(r"^c?fn=\(\d+\) (.+)$", line.rstrip("\n"))
        if m and m.group(1) not in seen:
            seen.add(m.group(1)); order.append(m.group(1))
nm = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
copies = collections.Counter(p[2] for p in (l.split() for l in nm.splitlines()) if len(p) == 3 and p[1] in "tTwW")

# lld orders whole input sections. Our code and the packages are built with one section per
# function, but the toolchain's prebuilt archives keep most code in one .text per object
# (1.6 MB for the standard library). Such a section becomes hot when a function that only
# it defines runs; a name it merely shares with other objects (merged thunks, value
# witnesses, specialisations kept local) must not drag it in.
def unsplit_text_functions(archive):
    """name -> {(member, binding)} for functions in an archive member's single .text > 16 KB."""
    found = collections.defaultdict(set)
    text_index = {}
    member = None
    for line in subprocess.run(["readelf", "-SW", archive], capture_output=True, text=True, errors="replace").stdout.splitlines():
        if line.startswith("File: "):
            member = line[6:]
        m = re.match(r"\s*\[\s*(\d+)\] \.text\s+PROGBITS\s+\S+\s+\S+\s+([0-9a-f]+)", line)
        if m and int(m.group(2), 16) > 16384:
            text_index[member] = m.group(1)
    for line in subprocess.run(["readelf", "-sW", archive], capture_output=True, text=True, errors="replace").stdout.splitlines():
        if line.startswith("File: "):
            member = line[6:]
            continue
        p = line.split()
        if len(p) == 8 and p[3] == "FUNC" and text_index.get(member) == p[6]:
            found[p[7]].add((member, p[4]))
    return found

unsplit = collections.defaultdict(set)
for archive in sorted(glob.glob(static_lib_dir + "/*.a")):
    for name, homes in unsplit_text_functions(archive).items():
        unsplit[name] |= homes
# A prebuilt section is hot when a function that ran lives there for sure: a strong global
# (the one definition there is), or a local defined nowhere else.
hot_members = set()
for n in order:
    homes = unsplit.get(n, set())
    hot_members |= {m for m, bind in homes if bind == "GLOBAL"}
    if copies[n] == 1 and len(homes) == 1 and next(iter(homes))[1] == "LOCAL":
        hot_members.add(next(iter(homes))[0])
# lld orders every local copy of a name and the winning copy of a weak one, which may be a
# prebuilt one: leave out names with such a copy in a cold prebuilt section.
def pulls_cold(n):
    return any(m not in hot_members for m, bind in unsplit.get(n, ()) if bind in ("LOCAL", "WEAK"))
kept = [n for n in order if copies[n] >= 1 and not pulls_cold(n)]
with open(out, "w") as f:
    f.write("\n".join(kept) + "\n")
print(f"train-order: {len(kept)} functions written to {out[:-4]}; left out: "
      f"{sum(1 for n in order if copies[n] == 0)} from shared libraries, "
      f"{sum(1 for n in order if copies[n] >= 1 and pulls_cold(n))} "
      f"that would pull a cold prebuilt section in; hot prebuilt sections: "
      + ", ".join(sorted(m.rsplit("/", 1)[-1] for m in hot_members)))
PY
mv "$OUT.tmp" "$OUT"

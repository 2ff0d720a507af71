#!/usr/bin/env bash
# The alternative to the systemd unit's AmbientCapabilities: give the binary itself the
# capabilities the measurement services need (raw ICMP sockets, packet capture), so an
# unprivileged user can run it. Re-run after every upgrade of the binary.
set -euo pipefail
bin=${1:-/usr/local/bin/mpcom}
command -v setcap >/dev/null || { echo "setcap not found: apt-get install libcap2-bin"; exit 1; }
setcap cap_net_raw,cap_net_admin+ep "$bin"
getcap "$bin"

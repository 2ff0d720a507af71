#!/usr/bin/env bash
# Builds the shipped binaries into .build/dist/: the release build of the Makefile (static
# Swift standard library and libstdc++, lean lld link; see README "Deployment"), stripped.
# Prints their sizes and what they link. Keep .build/release/mpcom (unstripped) of the same
# build to symbolize crash addresses.
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory release
mkdir -p .build/dist
for b in mpcom mpcli; do
  strip -o ".build/dist/$b" ".build/release/$b"
  echo "$b: $(stat -c %s ".build/dist/$b") bytes"
  ldd ".build/dist/$b" | sed 's/^/  /'
done

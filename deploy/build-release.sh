#!/usr/bin/env bash
# Builds the shipped binaries: release, static Swift standard library, stripped, into
# .build/dist/. Prints their sizes and what they link.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --static-swift-stdlib -Xswiftc -gnone --product mpcom
swift build -c release --static-swift-stdlib -Xswiftc -gnone --product mpcli
mkdir -p .build/dist
for b in mpcom mpcli; do
  strip -o ".build/dist/$b" ".build/release/$b"
  echo "$b: $(du -h ".build/dist/$b" | cut -f1)"
  ldd ".build/dist/$b" | sed 's/^/  /'
done

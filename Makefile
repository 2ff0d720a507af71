# mPlane probe in Swift: the two commands the README opens with, and the tools behind them.
#
#   make run    build and run the main job
#   make test   run every test (what CI runs)
#
# Both install what they need (Debian packages through apt-get, the Python reference
# implementation into .venv-ri from PyPI). The Swift toolchain itself must be on PATH.

SHELL := /bin/bash
SWIFT ?= swift
# Release builds: static Swift standard library, no debug info, one section per function, and
# a lean link (lld; packed relative relocations; nothing exported; the code the probe runs
# first in .text, in the order of deploy/link/mpcom.order, the unnamed helpers together).
# See deploy/link/ and BENCHMARKS.md.
LINK_DIR := $(abspath deploy/link)
# The C++ runtime the Swift runtime needs, linked statically too: a directory searched before
# the compiler's that holds only libstdc++.a (1.2 MiB less idle RSS than libstdc++.so).
STATIC_CXX := $(abspath .build/static-libstdc++)
RELEASE_FLAGS := -c release --static-swift-stdlib -Xswiftc -gnone -Xswiftc -L$(STATIC_CXX) \
  -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections \
  -Xswiftc -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs \
  -Xlinker --version-script=$(LINK_DIR)/exports.map -Xlinker -T -Xlinker $(LINK_DIR)/unnamed.ld \
  -Xlinker --symbol-ordering-file=$(LINK_DIR)/mpcom.order -Xlinker --no-warn-symbol-ordering
VENV := .venv-ri
RI_PYTHON := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := python3 python3-venv python3-pip iproute2 nftables libpcap-dev libsqlite3-dev postgresql iputils-ping curl openssl libedit-dev tshark tcpdump time

.PHONY: run supervisor test deps ri build release linkage order bench bench-runtime bench-ping bench-tls bench-flows fuzz fuzz-http soak clean

run: deps release
	.build/release/mpcli check --quiet deploy/messages/*.json
	.build/release/mpcom $(MPCOM_ARGS)

# The supervisor with its embedded store, on loopback (probe side 8888, client side 8889).
# A component for it: make run MPCOM_ARGS="--config deploy/component-to-local-mpsup.conf"
supervisor: deps
	$(SWIFT) build -c release --product mpsup
	.build/release/mpsup $(MPSUP_ARGS)

test: deps ri
	$(SWIFT) build --build-tests
	MPLANE_RI_PYTHON=$(abspath $(RI_PYTHON)) $(SWIFT) test --skip-build
	$(MAKE) --no-print-directory linkage

# Debian packages, installed only when missing.
deps:
	@command -v $(SWIFT) >/dev/null || { echo "error: no Swift toolchain on PATH (expected /opt/swift/usr/bin)"; exit 1; }
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	 python3 -m venv --help >/dev/null 2>&1 && missing=$${missing/ python3-venv/}; \
	 command -v python3 >/dev/null && missing=$${missing/ python3-pip/} && missing=$${missing/ python3 / } && missing=$${missing% python3}; \
	 if [ -n "$${missing// /}" ]; then echo "installing:$$missing"; $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

# The Python reference implementation (mplane-sdk 0.9.0 from PyPI) in a virtualenv.
ri: $(RI_PYTHON)
$(RI_PYTHON):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check mplane-sdk==0.9.0

build:
	$(SWIFT) build

release: $(STATIC_CXX)/libstdc++.a .build/link-inputs.stamp
	$(SWIFT) build $(RELEASE_FLAGS) --product mpcli
	$(SWIFT) build $(RELEASE_FLAGS) --product mpcom

# Asked of the toolchain's clang, which does the link, so that both pick the same GCC.
$(STATIC_CXX)/libstdc++.a:
	@cc=$$(command -v clang || command -v gcc); a=$$($$cc -print-file-name=libstdc++.a); \
	 [ -f "$$a" ] || { echo "error: no static libstdc++.a (Debian: apt-get install libstdc++-12-dev, or the -dev of your GCC)"; exit 1; }; \
	 mkdir -p $(@D) && ln -sf "$$a" $@

# SwiftPM does not know the link's own inputs: relink when one of them changes.
.build/link-inputs.stamp: $(wildcard deploy/link/*.map deploy/link/*.ld deploy/link/*.order)
	rm -f .build/release/mpcom .build/release/mpcli
	mkdir -p .build && touch $@

# The binaries as they ship: what they link, what they export, their size, and a smoke run.
linkage: release
	deploy/check-release.sh

# Regenerate deploy/link/mpcom.order from a callgrind run of the release mpcom (needs valgrind).
order: deps release
	@command -v valgrind >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq valgrind; }
	deploy/link/train-order.sh .build/release/mpcom deploy/link/mpcom.order
	$(MAKE) --no-print-directory release

# Codec benchmarks, ours and the reference's in the same run (see BENCHMARKS.md).
bench: deps ri $(STATIC_CXX)/libstdc++.a
	$(SWIFT) build $(RELEASE_FLAGS) --product mplane-bench
	@echo "== ours"; .build/release/mplane-bench Benchmarks/fixtures $${SECONDS_PER_RUN:-1} | tee .build/bench-ours.json
	@echo "== reference"; $(RI_PYTHON) Benchmarks/ri_bench.py Benchmarks/fixtures/capability.json \
	   Benchmarks/fixtures/specification.json Benchmarks/fixtures/result-1000.json \
	   --seconds $${SECONDS_PER_RUN:-1} | tee .build/bench-ri.json
	@python3 Benchmarks/ratios.py .build/bench-ours.json .build/bench-ri.json

# mpcom over mutual TLS beside plain HTTP, the RI over TLS and nginx (BENCHMARKS.md, "TLS").
bench-tls: deps release ri
	@command -v nginx >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nginx-light libssl-dev wrk; }
	Benchmarks/tls_bench.sh | tee .build/bench-tls.txt

# mpcom against the RI's mpcom on loopback (idle RSS, requests/s, latencies); needs wrk.
bench-runtime: deps ri release
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk; }
	bash Benchmarks/runtime_bench.sh | tee .build/bench-runtime.txt

# The ping engine beside iputils ping and fping on loopback (needs root); see BENCHMARKS.md.
bench-ping: deps $(STATIC_CXX)/libstdc++.a
	@for p in iputils-ping fping; do dpkg -s $$p >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq iputils-ping fping; break; }; done
	$(SWIFT) build $(RELEASE_FLAGS) --product mplane-bench
	set -o pipefail; python3 Benchmarks/ping_bench.py .build/release/mplane-bench | tee .build/bench-ping.md

# Flow metering over a 1.2 M-packet trace beside a bare pcap read loop, a C 5-tuple table and
# tcpdump; the memory of a 1 M-entry flow table (BENCHMARKS.md, "Passive flows").
bench-flows: deps $(STATIC_CXX)/libstdc++.a
	$(SWIFT) build $(RELEASE_FLAGS) --product mplane-bench
	set -o pipefail; Benchmarks/flow_bench.sh .build/release/mplane-bench | tee .build/bench-flows.txt

# libFuzzer over the JSON decoder and encoder. FUZZ_RUNS inputs (default one million).
fuzz:
	$(SWIFT) build -c release --product mplane-fuzz --scratch-path .build-fuzz \
	  -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING
	mkdir -p fuzz-corpus && cp -n Benchmarks/fixtures/capability.json Benchmarks/fixtures/specification.json \
	  deploy/messages/*.json fuzz-corpus/ 2>/dev/null || true
	.build-fuzz/release/mplane-fuzz -runs=$${FUZZ_RUNS:-1000000} -max_len=4096 -timeout=10 fuzz-corpus

# libFuzzer over the HTTP request path (request line, headers, body through the router and the
# scheduler, in process). FUZZ_RUNS inputs (default one million).
fuzz-http:
	$(SWIFT) build -c release --product mplane-fuzz-http --scratch-path .build-fuzz \
	  -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING
	mkdir -p fuzz-corpus-http && for f in Benchmarks/fixtures/specification.json deploy/messages/*.json; do \
	  n=fuzz-corpus-http/$$(basename $$f); [ -e $$n ] || { printf 'POST / HTTP/1.1\r\nContent-Type: application/x-mplane+json\r\n\r\n' > $$n; cat $$f >> $$n; }; done
	printf 'GET /capability HTTP/1.1\r\nAccept: application/x-mplane+json\r\n\r\n' > fuzz-corpus-http/get
	.build-fuzz/release/mplane-fuzz-http -runs=$${FUZZ_RUNS:-1000000} -max_len=4096 -timeout=10 fuzz-corpus-http

# The soak of BENCHMARKS.md: the release mpcom under mixed load for SOAK_MINUTES (default 10).
soak: release
	@port=$$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'); \
	 .build/release/mpcom --port $$port --log-level warning 2>.build/soak-mpcom.log & pid=$$!; sleep 1; \
	 python3 Benchmarks/soak.py --url http://127.0.0.1:$$port/ --pid $$pid --minutes $${SOAK_MINUTES:-10} --out .build/soak.json; \
	 status=$$?; kill $$pid; exit $$status

clean:
	rm -rf .build .build-fuzz $(VENV) fuzz-corpus fuzz-corpus-http

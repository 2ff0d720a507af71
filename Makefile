# mPlane probe in Swift: the two commands the README opens with, and the tools behind them.
#
#   make run    build and run the main job
#   make test   run every test (what CI runs)
#
# Both install what they need (Debian packages through apt-get, the Python reference
# implementation into .venv-ri from PyPI). The Swift toolchain itself must be on PATH.

SHELL := /bin/bash
SWIFT ?= swift
RELEASE_FLAGS := -c release --static-swift-stdlib -Xswiftc -gnone
VENV := .venv-ri
RI_PYTHON := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := python3 python3-venv python3-pip iproute2 nftables libpcap-dev

.PHONY: run test deps ri build release linkage bench bench-runtime bench-ping fuzz clean

run: deps release
	.build/release/mpcli check --quiet deploy/messages/*.json
	.build/release/mpcom $(MPCOM_ARGS)

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
	 if [ -n "$${missing// /}" ]; then echo "installing:$$missing"; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; fi

# The Python reference implementation (mplane-sdk 0.9.0 from PyPI) in a virtualenv.
ri: $(RI_PYTHON)
$(RI_PYTHON):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check mplane-sdk==0.9.0

build:
	$(SWIFT) build

release:
	$(SWIFT) build $(RELEASE_FLAGS) --product mpcli
	$(SWIFT) build $(RELEASE_FLAGS) --product mpcom

# The binaries we ship must not need full Foundation (ICU) nor a shared Swift runtime.
linkage: release
	@for bin in .build/release/mpcom .build/release/mpcli; do deps=$$(ldd $$bin); \
	 if grep -qE 'libFoundation\.so|libFoundationInternationalization|lib_FoundationICU' <<<"$$deps"; then \
	   echo "linkage: FAIL: $$bin links full Foundation:"; echo "$$deps"; exit 1; fi; \
	 if grep -q 'libswiftCore\.so' <<<"$$deps"; then echo "linkage: FAIL: $$bin links the Swift runtime dynamically"; exit 1; fi; \
	 if nm $$bin | grep -q 'FoundationInternationalization\|_FoundationICU'; then echo "linkage: FAIL: $$bin embeds full Foundation/ICU"; exit 1; fi; \
	 echo "linkage: ok: $$bin ($$(du -k $$bin | cut -f1) KiB) needs no Foundation and no shared Swift runtime"; done

# Codec benchmarks, ours and the reference's in the same run (see BENCHMARKS.md).
bench: deps ri
	$(SWIFT) build -c release --product mplane-bench
	@echo "== ours"; .build/release/mplane-bench Benchmarks/fixtures $${SECONDS_PER_RUN:-1} | tee .build/bench-ours.json
	@echo "== reference"; $(RI_PYTHON) Benchmarks/ri_bench.py Benchmarks/fixtures/capability.json \
	   Benchmarks/fixtures/specification.json Benchmarks/fixtures/result-1000.json \
	   --seconds $${SECONDS_PER_RUN:-1} | tee .build/bench-ri.json
	@python3 Benchmarks/ratios.py .build/bench-ours.json .build/bench-ri.json

# mpcom against the RI's mpcom on loopback (idle RSS, requests/s, latencies); needs wrk.
bench-runtime: deps ri release
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk; }
	bash Benchmarks/runtime_bench.sh | tee .build/bench-runtime.txt

# The ping engine beside iputils ping and fping on loopback (needs root); see BENCHMARKS.md.
bench-ping: deps
	@for p in iputils-ping fping; do dpkg -s $$p >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq iputils-ping fping; break; }; done
	$(SWIFT) build -c release --product mplane-bench
	python3 Benchmarks/ping_bench.py .build/release/mplane-bench | tee .build/bench-ping.md

# libFuzzer over the JSON decoder and encoder. FUZZ_RUNS inputs (default one million).
fuzz:
	$(SWIFT) build -c release --product mplane-fuzz --scratch-path .build-fuzz \
	  -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING
	mkdir -p fuzz-corpus && cp -n Benchmarks/fixtures/capability.json Benchmarks/fixtures/specification.json \
	  deploy/messages/*.json fuzz-corpus/ 2>/dev/null || true
	.build-fuzz/release/mplane-fuzz -runs=$${FUZZ_RUNS:-1000000} -max_len=4096 -timeout=10 fuzz-corpus

clean:
	rm -rf .build .build-fuzz $(VENV) fuzz-corpus

#!/usr/bin/env python3
"""Drops FILE's pages from the page cache (after syncing it), so that the next start reads
it as after a reboot: how a binary was last written (linker, cp, package manager) decides
the size of its cached folios, and with them how much one page fault maps, which moves idle
RSS by up to 1 MiB. Used by deploy/check-release.sh and Benchmarks/runtime_bench.sh."""
import os
import sys

for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)

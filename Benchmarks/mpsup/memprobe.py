#!/usr/bin/env python3
"""Resident memory of mpsup with N components registered (BENCHMARKS.md, "Supervisor": the memory
the PostgreSQL store cost). Usage, from the repository root after a release build:
    [STORE=postgres] python3 Benchmarks/mpsup/memprobe.py N [WRAPPER ...]
e.g. STORE=postgres python3 Benchmarks/mpsup/memprobe.py 5000 heaptrack -o /tmp/ht, then
heaptrack_print -f /tmp/ht.zst --print-peaks 1."""
import sys, os, json, time, signal, subprocess, threading, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench
N = int(sys.argv[1]); wrap = sys.argv[2:]  # e.g. heaptrack -o /tmp/mem/ht
work = tempfile.mkdtemp(prefix="memprobe-", dir="/var/tmp"); os.chmod(work, 0o755)
cleanup = []
try:
    store = bench.start_cluster(work, cleanup) if os.environ.get("STORE") == "postgres" else "sqlite:" + work + "/s.sqlite"
    probe, client = bench.free_port(), bench.free_port()
    conf = os.path.join(work, "c.conf")
    open(conf, "w").write("[supervisor]\nmax-connections-per-client = 1024\nmax-components-per-address = 1000000\nabsent-after = 3600\n")
    sup = subprocess.Popen(wrap + [os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".build", "release", "mpsup"), "--config", conf, "--store", store, "--probe-port", str(probe),
                            "--client-port", str(client), "--log-level", "warning"], stdout=open(work + "/log", "wb"), stderr=subprocess.STDOUT)
    assert bench.wait_port(probe, 60)
    pid = int(subprocess.run(["pgrep", "-n", "-f", "release/mpsup --config " + conf], capture_output=True, text=True).stdout.split()[0])
    print("idle", bench.rss_kib(pid))
    reg = json.dumps({"envelope": "message", "version": 1, "contents": [bench.LOOPBACK_CAP, bench.CALLBACK_CAP]}).encode()
    def register(lo, hi):
        for i in range(lo, hi):
            s, _ = bench.request("POST", "http://127.0.0.1:%d/register/capability" % probe, reg, {"Content-Type": bench.MPLANE, "X-MPlane-Component": "sim-%d" % i})
            assert s == 200, s
    th = [threading.Thread(target=register, args=(k * N // 8, (k + 1) * N // 8)) for k in range(8)]
    [t.start() for t in th]; [t.join() for t in th]
    print("registered", bench.rss_kib(pid))
    with open("/proc/%d/status" % pid) as f: print([l.strip() for l in f if l.startswith(("Threads", "RssAnon", "RssFile"))])
    time.sleep(float(os.environ.get("HOLD", "0")))
    sup.send_signal(signal.SIGTERM); sup.wait(60)
finally:
    for f in cleanup: f()

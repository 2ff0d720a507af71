#!/usr/bin/env python3
"""The supervisor's benchmark (BENCHMARKS.md, "Supervisor"): polls per second with 10,000
registered components, 1 % of polls finding work (at saturation, from wrk's 64 connections, and
offered at a fixed rate, RATE, default 10,000/s, by openloop.c); results acknowledged durably per second from
64 posting clients (single-row and 1,000-row results); resident memory meanwhile; and the RI's
mpsup answering empty polls in the same run. The load comes from wrk on the same two cores.

Usage: bench.py MPSUP_BINARY [SECONDS]    (run from the repository root; needs wrk, and the RI
in .venv-ri for its part). Prints one JSON object. The store is a file under /var/tmp (a real
disk, not tmpfs); with STORE=postgres, a throwaway PostgreSQL cluster there instead (Debian's
initdb, default durability settings, reached over a Unix socket). pg_test_fsync's figure for
that disk is printed beside, and each phase's CPU, in cores, by part (mpsup, postgres, the load).
"""
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
LOOPBACK_CAP = {
    "capability": "measure", "version": 1, "registry": "http://mplane.corvid.ch/registry/loopback",
    "label": "test-loopback", "when": "now ... future", "parameters": {"test.input": "*"}, "results": ["test.output"],
}
CALLBACK_CAP = {"capability": "callback", "version": 1, "registry": "http://ict-mplane.eu/registry/core",
                "label": "callback", "when": "now ... future", "parameters": {}, "results": []}
MPLANE = "application/x-mplane+json"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, url, body=None, headers=None, timeout=10):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_port(port, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def proc_cpu(pid):
    """User + system CPU seconds of a live process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_snapshot(sup_pid):
    """CPU seconds so far: mpsup, every postgres process (on this machine), and the load; and the time."""
    pg = 0.0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/comm" % d) as f:
                    if f.read().strip() == "postgres":
                        pg += proc_cpu(int(d))
            except OSError:
                pass
    ch, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    # The load: wrk or openloop (waited-for children) and this script's feeder threads (perf too, when profiling).
    return {"mpsup": proc_cpu(sup_pid), "postgres": pg, "load": ch.ru_utime + ch.ru_stime + me.ru_utime + me.ru_stime,
            "wall": time.monotonic()}


class Profile:
    """PROFILE=<phase>: perf records the whole machine (call graphs) while that phase runs, into
    PROFILE_OUT (default /tmp/mpsup-<phase>.perf.data). Phases: polls, polls_at_rate, results_1_rows,
    results_1000_rows."""
    def __init__(self, phase):
        self.phase, self.proc = phase, None

    def __enter__(self):
        if os.environ.get("PROFILE") == self.phase:
            out = os.environ.get("PROFILE_OUT", "/tmp/mpsup-%s.perf.data" % self.phase)
            self.proc = subprocess.Popen(["perf", "record", "-a", "-g", "-F", "499", "-o", out],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)

    def __exit__(self, *exc):
        if self.proc:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(60)


def cpu_delta(before, after):
    """Cores used on average between two snapshots, by part."""
    wall = after["wall"] - before["wall"]
    return {k: round((after[k] - before[k]) / wall, 2) for k in before if k != "wall"}


def openloop(binary, port, rate, seconds, components, connections=64):
    """Polls due at a fixed rate (open loop): the latency at that rate, not at saturation."""
    out = subprocess.run([binary, "127.0.0.1", str(port), str(rate), str(seconds), str(connections), str(components)],
                         capture_output=True, text=True, timeout=seconds + 60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wrk(url, script, seconds, env=None, connections=64):
    out = subprocess.run(["wrk", "-t2", "-c%d" % connections, "-d%ds" % seconds, "--latency", "-s", script, url],
                         capture_output=True, text=True, env=dict(os.environ, **(env or {})), timeout=seconds + 60)
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))

    def pct(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)" % p, text, re.M)
        if not m:
            return None
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    return {"requests_per_s": rps, "p50_ms": pct(50), "p99_ms": pct(99),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(1) if errors else None}


def start_cluster(work, cleanup):
    """A throwaway PostgreSQL cluster in WORK/pg (as the postgres user when root); its URL."""
    bins = sorted(os.listdir("/usr/lib/postgresql"), key=int)
    bin = "/usr/lib/postgresql/%s/bin/" % bins[-1]
    data = os.path.join(work, "pg")
    os.mkdir(data, 0o700)
    as_owner = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
    if os.getuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    subprocess.run(as_owner + [bin + "initdb", "-D", data + "/data", "-A", "trust", "-U", "postgres", "-E", "UTF8"],
                   check=True, capture_output=True)
    subprocess.run(as_owner + [bin + "pg_ctl", "-D", data + "/data", "-w", "-l", data + "/log", "-o",
                               "-k %s -p %d -c listen_addresses= -c max_connections=200" % (data, port), "start"],
                   check=True, capture_output=True)
    cleanup.append(lambda: subprocess.run(as_owner + [bin + "pg_ctl", "-D", data + "/data", "-m", "immediate", "stop"],
                                          capture_output=True))
    subprocess.run(as_owner + ["psql", "-h", data, "-p", str(port), "-U", "postgres", "-q", "-c", "CREATE DATABASE bench"],
                   check=True, capture_output=True)
    return "postgres://postgres@/bench?host=%s&port=%d" % (data, port)


def main(argv):
    mpsup = os.path.abspath(argv[1])
    seconds = int(argv[2]) if len(argv) > 2 else 10
    components = int(os.environ.get("COMPONENTS", "10000"))
    out = {"components": components, "seconds": seconds}
    work = tempfile.mkdtemp(prefix="mpsup-bench-", dir="/var/tmp")
    os.chmod(work, 0o755)
    procs = []
    procs_cleanup = []
    try:
        fsync = subprocess.run(["sh", "-c", "ls /usr/lib/postgresql/*/bin/pg_test_fsync | tail -1"], capture_output=True, text=True).stdout.strip()
        if fsync:
            t = subprocess.run([fsync, "-s", "2", "-f", os.path.join(work, "fsync.test")], capture_output=True, text=True, timeout=120).stdout
            m = re.search(r"fdatasync\s+([\d.]+) ops/sec", t)
            out["pg_test_fsync_fdatasync_ops_per_s"] = float(m.group(1)) if m else None

        store = "sqlite:" + os.path.join(work, "s.sqlite")
        if os.environ.get("STORE") == "postgres":
            store = start_cluster(work, procs_cleanup)
            out["store"] = "postgres"
        else:
            out["store"] = "sqlite"
        loader = os.path.join(work, "openloop")
        subprocess.run(["cc", "-O2", "-o", loader, os.path.join(HERE, "openloop.c")], check=True)
        rate = int(os.environ.get("RATE", "10000"))
        probe, client = free_port(), free_port()
        # The load comes from one address: let it hold wrk's 64 connections and register the fleet.
        conf = os.path.join(work, "mpsup.conf")
        with open(conf, "w") as f:
            f.write("[supervisor]\nmax-connections-per-client = 1024\nmax-components-per-address = 1000000\n"
                    "max-queued-per-component = 100000\nreply-wait = 0.001\nabsent-after = 3600\n")
        sup = subprocess.Popen([mpsup, "--config", conf, "--store", store, "--probe-port", str(probe),
                                "--client-port", str(client), "--log-level", "warning"],
                               stdout=open(os.path.join(work, "mpsup.log"), "wb"), stderr=subprocess.STDOUT)
        procs.append(sup)
        assert wait_port(probe) and wait_port(client), "mpsup did not start"
        out["rss_kib_idle"] = rss_kib(sup.pid)

        # Register the fleet (8 threads).
        reg = json.dumps({"envelope": "message", "version": 1, "contents": [LOOPBACK_CAP, CALLBACK_CAP]}).encode()

        def register(lo, hi):
            for i in range(lo, hi):
                s, _ = request("POST", "http://127.0.0.1:%d/register/capability" % probe, reg,
                               {"Content-Type": MPLANE, "X-MPlane-Component": "sim-%d" % i})
                assert s == 200, s
        started = time.time()
        threads = [threading.Thread(target=register, args=(k * components // 8, (k + 1) * components // 8)) for k in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        out["registrations_per_s"] = round(components / (time.time() - started))
        request("POST", "http://127.0.0.1:%d/register/capability" % probe, reg, {"Content-Type": MPLANE, "X-MPlane-Component": "bench-poster"})
        out["rss_kib_registered"] = rss_kib(sup.pid)

        # 1 % of the components get a specification a second each, through the client side.
        _, body = request("GET", "http://127.0.0.1:%d/component" % client)
        tokens = {c["name"]: c["capabilities"][0]["token"] for c in json.loads(body)["components"] if c["capabilities"]}
        busy = ["sim-%d" % i for i in range(0, components, 100)]
        stop = threading.Event()
        queued = [0]

        def feed(names):
            n = 0
            while not stop.is_set():
                t0 = time.time()
                for name in names:
                    n += 1
                    spec = dict(LOOPBACK_CAP)
                    spec.pop("capability")
                    spec.update({"specification": "measure", "when": "now", "parameters": {"test.input": "w%d" % n}})
                    s, _ = request("POST", "http://127.0.0.1:%d/capability/%s" % (client, tokens[name]),
                                   json.dumps(spec).encode(), {"Content-Type": MPLANE})
                    if s == 200:
                        with lock:
                            queued[0] += 1
                stop.wait(max(0, 1 - (time.time() - t0)))
        lock = threading.Lock()
        feeders = [threading.Thread(target=feed, args=(busy[k::4],)) for k in range(4)]
        [f.start() for f in feeders]
        rss_peak = [0]

        def sample():
            while not stop.is_set():
                rss_peak[0] = max(rss_peak[0], rss_kib(sup.pid) or 0)
                stop.wait(0.2)
        sampler = threading.Thread(target=sample)
        sampler.start()
        env = {"COMPONENTS": str(components)}
        before = cpu_snapshot(sup.pid)
        with Profile("polls"):
            out["polls"] = wrk("http://127.0.0.1:%d" % probe, os.path.join(HERE, "poll.lua"), seconds, env)
        after = cpu_snapshot(sup.pid)
        out["polls"]["cores"] = cpu_delta(before, after)
        out["polls"]["specifications_queued"] = queued[0]
        out["polls"]["share_of_polls_with_work"] = round(queued[0] / (out["polls"]["requests_per_s"] * seconds), 4)
        # The same load offered at a fixed rate, the feeders still queueing: the tail at that rate.
        queued_before = queued[0]
        with Profile("polls_at_rate"):
            out["polls_at_rate"] = openloop(loader, probe, rate, seconds, components)
        out["polls_at_rate"]["cores"] = cpu_delta(after, cpu_snapshot(sup.pid))
        out["polls_at_rate"]["share_of_polls_with_work"] = round((queued[0] - queued_before) / max(1, out["polls_at_rate"]["answered"]), 4)
        stop.set()
        [f.join() for f in feeders]
        sampler.join()
        out["rss_kib_peak_polling"] = rss_peak[0]

        # Jobs for the results to answer: specifications with tokens of our own, fanned out to
        # every component (one transaction each); each component's job token is then
        # md5(<token> NUL <component> NUL <client identity>), the client being the RI's
        # unauthenticated identity in plain HTTP; the load generator reads them from a file.
        import hashlib
        spec = dict(LOOPBACK_CAP)
        spec.pop("capability")
        spec.update({"specification": "measure", "when": "now", "parameters": {"test.input": "r"}})
        rounds = int(os.environ.get("RESULT_JOBS_PER_COMPONENT", "30"))
        started = time.time()
        for k in range(rounds):
            spec["token"] = "bench-%d" % k
            s, body = request("POST", "http://127.0.0.1:%d/fanout" % client, json.dumps(spec).encode(), {"Content-Type": MPLANE}, timeout=120)
            assert s == 200, (s, body[:500])
        out["jobs_queued_per_s"] = round(rounds * components / (time.time() - started))
        jobs = os.path.join(work, "jobs.txt")
        with open(jobs, "w") as f:
            for k in range(rounds):
                for i in range(components):
                    name = "sim-%d" % i
                    derived = "bench-%d\0%s\0Identity.Unauthenticated.Default" % (k, name)
                    f.write("%s %s\n" % (name, hashlib.md5(derived.encode()).hexdigest()))
        for rows in (1, 1000):
            before = cpu_snapshot(sup.pid)
            with Profile("results_%d_rows" % rows):
                r = wrk("http://127.0.0.1:%d" % probe, os.path.join(HERE, "results.lua"), seconds, {"ROWS": str(rows), "JOBS": jobs})
            r["cores"] = cpu_delta(before, cpu_snapshot(sup.pid))
            r["rows_per_s"] = round(r["requests_per_s"] * rows)
            out["results_%d_rows" % rows] = r
        _, listing = request("GET", "http://127.0.0.1:%d/component" % client)
        out["results_stored"] = int(subprocess.run([mpsup, "results", "--store", store,
                                                    "--limit", "100000000"], capture_output=True, text=True).stdout.count("\n")) - 1
        out["rss_kib_end"] = rss_kib(sup.pid)
        sup.send_signal(signal.SIGTERM)
        sup.wait(20)

        # The RI's mpsup, empty polls from its one plain-HTTP identity.
        ri = os.path.join(ROOT, ".venv-ri", "bin", "mpsup")
        if os.path.exists(ri):
            rp, rc = free_port(), free_port()
            conf = os.path.join(work, "ri.conf")
            with open(conf, "w") as f:
                f.write("[client]\nworkflow = component-initiated\nlisten-port = %d\nlisten-spec-link = http://127.0.0.1:%d/\n"
                        "registration-path = register/capability\nspecification-path = show/specification\nresult-path = register/result\n"
                        "[component]\nworkflow = client-initiated\nlisten-port = %d\nlisten-cap-link = http://127.0.0.1:%d/\n"
                        "registry_preload = %s\n" % (rp, rp, rc, rc, os.path.join(ROOT, "Tests", "Interop", "loopback-registry.json")))
            p = subprocess.Popen([os.path.join(ROOT, ".venv-ri", "bin", "python"), ri, "--config", conf], cwd=work,
                                 stdout=open(os.path.join(work, "ri.log"), "wb"), stderr=subprocess.STDOUT, start_new_session=True)
            procs.append(p)
            if wait_port(rp):
                request("POST", "http://127.0.0.1:%d/register/capability" % rp, reg, {"Content-Type": MPLANE})
                out["ri_mpsup_polls"] = wrk("http://127.0.0.1:%d" % rp, os.path.join(HERE, "poll.lua"), seconds, {"COMPONENTS": "1"})
        return 0
    finally:
        for f in procs_cleanup:
            f()
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL) if p is not procs[0] else p.kill()
                except ProcessLookupError:
                    pass
        if os.environ.get("KEEP"):
            out["work"] = work
        else:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    sys.exit(main(sys.argv))

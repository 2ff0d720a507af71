#!/usr/bin/env python3
# Component-initiated benchmark: a minimal supervisor (standard library only) queues a
# loopback specification and times how long the component takes to deliver its result,
# with callback control (every poll is answered with a callback 0.2 s ahead) and without
# (the component's own poll interval, 5 s for both). Run through `make bench-runtime`.
#
# Usage: ci_bench.py NAME ROUNDS_NOW_CALLBACKS ROUNDS_AT_CALLBACKS ROUNDS_NOW_PLAIN -- COMMAND... (the
# command gets the supervisor's port for {port} in its arguments and in the .conf files it
# names, which are copied, not changed).
import datetime
import http.server
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time

LOOPBACK = "http://mplane.corvid.ch/registry/loopback"


class Supervisor:
    def __init__(self):
        self.lock = threading.Lock()
        self.queue = []
        self.registered = threading.Event()
        self.results = {}
        self.callbacks = True

    def handler(self):
        sup = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, code, body):
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/x-mplane+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                now = time.monotonic()
                if self.path.rstrip("/").endswith("register/capability"):
                    env = json.loads(body)
                    labels = [m.get("label") for m in env.get("contents", [])]
                    sup.registered.set()
                    return self.reply(200, json.dumps({l: {"registered": "ok"} for l in labels}))
                msg = json.loads(body)
                for m in msg.get("contents", [msg]):
                    if "result" in m:
                        with sup.lock:
                            sup.results.setdefault(m.get("token"), now)
                self.reply(200, "{}")

            def do_GET(self):
                with sup.lock:
                    contents, sup.queue = sup.queue, []
                    if sup.callbacks:
                        at = (datetime.datetime.utcnow() + datetime.timedelta(seconds=0.2)).strftime("%Y-%m-%d %H:%M:%S.%f")
                        contents = contents + [{
                            "specification": "callback", "version": 1, "registry": "http://ict-mplane.eu/registry/core",
                            "label": "callback", "when": "%s ... %s" % (at, at), "parameters": {}, "results": []}]
                self.reply(200, json.dumps({"contents": contents, "envelope": "message", "version": 1}))

        return H


def main(argv):
    name, now_cb, at_cb, now_plain = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    verbose = bool(os.environ.get("CI_BENCH_VERBOSE"))
    command = argv[argv.index("--") + 1:]
    sup = Supervisor()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), sup.handler())
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    command = [a.replace("{port}", str(port)) for a in command]
    # Configuration files in the command are templates: run a copy with the port filled in.
    for i, a in enumerate(command):
        if a.endswith(".conf"):
            text = open(a).read().replace("{port}", str(port))
            command[i] = a + ".%d" % port
            open(command[i], "w").write(text)
    log = open(command[-1] + ".log" if command[-1].endswith(".conf.%d" % port) else "/dev/null", "w")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not sup.registered.wait(30):
            sys.exit("%s never registered" % name)
        # Immediate specifications ("now") measure queue -> result directly. Specifications
        # that start 1 s after they are queued ("at") are what the RI can deliver: its
        # component-initiated mode loses the result of a job that ends before its scheduler
        # has filed it (KeyError in return_results), which an immediate loopback job always does.
        for mode, start, rounds in (("with callback control", "now", now_cb), ("with callback control", "at", at_cb),
                                    ("without callbacks", "now", now_plain)):
            if rounds == 0:
                continue
            sup.callbacks = mode.startswith("with ")
            time.sleep(0.5 if sup.callbacks else 6)  # let the polling settle into the mode
            took = []
            for i in range(rounds):
                token = "%s-%s-%s-%d-%d" % (name, "cb" if sup.callbacks else "plain", start, i, int(time.time()))
                t0 = time.monotonic()
                offset = 0.0
                when = "now"
                if start == "at":
                    offset = 1.0
                    when = (datetime.datetime.utcnow() + datetime.timedelta(seconds=offset)).strftime("%Y-%m-%d %H:%M:%S.%f")
                spec = {"specification": "measure", "version": 1, "registry": LOOPBACK, "label": "bench-%d" % i,
                        "when": when, "parameters": {"test.input": "x"}, "results": ["test.output"], "token": token,
                        "link": "http://127.0.0.1:%d/register/result" % port}
                with sup.lock:
                    sup.queue.append(spec)
                deadline = t0 + offset + 8
                while time.monotonic() < deadline:
                    with sup.lock:
                        if token in sup.results:
                            took.append(sup.results[token] - t0 - offset)
                            break
                    time.sleep(0.005)
                else:
                    took.append(float("nan"))
                if verbose:
                    print("   %s %s %s round %d: %.0f ms" % (name, mode, start, i, 1000 * took[-1]), file=sys.stderr)
                # Queue the next one at a random point of the poll cycle.
                time.sleep(random.uniform(0.3, 0.7) if sup.callbacks else random.uniform(1, 4))
            ok = [t for t in took if t == t]
            what = "queue -> result" if start == "now" else "scheduled start (queued 1 s ahead) -> result"
            if ok:
                print("== %s: component-initiated, %s, %s: median %.0f ms, max %.0f ms (%d of %d delivered)" % (
                    name, mode, what, 1000 * statistics.median(ok), 1000 * max(ok), len(ok), rounds), flush=True)
            else:
                print("== %s: component-initiated, %s, %s: none of %d delivered" % (name, mode, what, rounds), flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

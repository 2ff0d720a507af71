#!/usr/bin/env python3
# Our mpcli against the reference implementation's component running its ping: the RI's
# mpcom (client-initiated, its ping module on 127.0.0.1) with a `ping` wrapper first on its
# PATH that turns the BSD `-S <source>` it passes into iputils' `-I <source>` (its ping does
# not run on Linux otherwise); then `mpcli runcap ping-average-ip4 --json` and
# `mpcli runcap ping-detail-ip4` against it.
#
# Prints one JSON object (mpcli's exit statuses and output) on its last line; exits 0 unless
# the script itself broke. Every process started is stopped; every wait is bounded.
#
# Usage: ri_ping_mpcli.py MPCLI_BINARY
import json
import os
import shutil
import subprocess
import sys
import tempfile

from ri_mpsup_chain import free_port, install_ping_wrapper, listening, start, stop, wait_until

VENV_BIN = os.path.dirname(os.path.abspath(sys.executable))

RI_COMPONENT_CONF = """\
[component]
workflow = client-initiated
listen-port = {port}

[module_ping]
module = mplane.components.ping
ip4addr = 127.0.0.1
"""


def main(argv):
    if len(argv) != 2:
        print("usage: ri_ping_mpcli.py MPCLI_BINARY", file=sys.stderr)
        return 2
    mpcli = os.path.abspath(argv[1])
    out = {"errors": []}
    work = tempfile.mkdtemp(prefix="ri-ping-mpcli-")
    proc = None
    try:
        bindir = install_ping_wrapper(work)
        if not bindir:
            out["errors"].append("no ping on PATH (Debian: iputils-ping)")
            return 0
        port = free_port()
        with open(os.path.join(work, "ri.conf"), "w") as f:
            f.write(RI_COMPONENT_CONF.format(port=port))
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
        proc = start([sys.executable, os.path.join(VENV_BIN, "mpcom"), "--config", os.path.join(work, "ri.conf")],
                     os.path.join(work, "ri.log"), work)
        if not wait_until(lambda: listening(port), 30):
            out["errors"].append("the RI's component did not listen: " + open(os.path.join(work, "ri.log"), errors="replace").read()[-800:])
            return 0
        url = "http://127.0.0.1:%d/" % port
        for name, args in (("average", ["ping-average-ip4", "--json", "--when", "now + 3s / 1s"]),
                           ("detail", ["ping-detail-ip4", "--when", "now + 3s / 1s"])):
            run = subprocess.run([mpcli, "runcap"] + args + ["--url", url, "--set", "destination.ip4=127.0.0.1", "--poll", "0.5",
                                                            "--timeout", "30"],
                                 capture_output=True, text=True, timeout=90, env=dict(os.environ, COLUMNS="100"))
            out[name] = {"status": run.returncode, "stdout": run.stdout, "stderr": run.stderr[-800:]}
    except Exception as e:  # the script itself broke: say how
        out["errors"].append("%s: %s" % (type(e).__name__, e))
    finally:
        stop(proc)
        shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

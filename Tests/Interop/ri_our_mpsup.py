#!/usr/bin/env python3
# Our supervisor in the middle of the reference implementation's programs:
#
#   RI client (HttpInitiatorClient) -> our mpsup (client side) -> queued for one component
#   RI component (mplane-sdk's mpcom, component-initiated, its ping module) -> our mpsup (probe side)
#   our mpcom (component-initiated, callback control, its ping)             -> our mpsup (probe side)
#
# mpsup reads an RI-format supervisor configuration (the one ri_mpsup_chain.py gives the
# RI's own mpsup). Both components offer ping-average-ip4 from 127.0.0.1, so the client sees
# two capabilities with that label, told apart by their tokens (ours carries limit metadata,
# the RI's none). The client invokes each by token and redeems until the result comes; the
# script reports which component's store row holds each result.
#
# The RI's ping component runs `ping -S <source>` (BSD); a wrapper first on its PATH rewrites
# that to iputils' `-I <source>`.
#
# Prints one JSON object; exits 0 unless the script itself broke. Every process started is
# stopped at the end; every wait is bounded.
#
# Usage: ri_our_mpsup.py MPSUP_BINARY MPCOM_BINARY
import json
import os
import shutil
import subprocess
import sys
import tempfile

import mplane.client
import mplane.model
import mplane.tls

import ri_common
from ri_mpsup_chain import MPSUP_CONF, install_ping_wrapper, free_port, listening, read_lines, report, start, stop, wait_until

VENV_BIN = os.path.dirname(os.path.abspath(sys.executable))
WAIT = 45  # seconds, for registration and for each result

RI_COMPONENT_CONF = """\
[component]
workflow = component-initiated
client_host = 127.0.0.1
client_port = {probe_port}
registration_path = register/capability
specification_path = show/specification
result_path = register/result

[module_ping]
module = mplane.components.ping
ip4addr = 127.0.0.1
"""

OUR_COMPONENT_CONF = """\
[component]
workflow = component-initiated
client_host = 127.0.0.1
client_port = {probe_port}
component-name = swift-probe
poll-interval = 1
backoff-max = 1

[module_ping]
module = mplane.components.ping
ip4addr = 127.0.0.1
"""

def main(argv):
    if len(argv) != 3:
        print("usage: ri_our_mpsup.py MPSUP_BINARY MPCOM_BINARY", file=sys.stderr)
        return 2
    ri_common.pin_hash_seed()
    ri_common.init()
    mpsup_binary, mpcom_binary = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    out = {"capabilities": [], "runs": {}, "stored": [], "errors": []}
    work = tempfile.mkdtemp(prefix="our-mpsup-")
    procs = []
    try:
        if not install_ping_wrapper(work):
            out["errors"].append("no ping on PATH (Debian: iputils-ping)")
            return 0

        probe_port, client_port = free_port(), free_port()
        while client_port == probe_port:
            client_port = free_port()
        store = os.path.join(work, "mpsup.sqlite")
        with open(os.path.join(work, "mpsup.conf"), "w") as f:
            f.write(MPSUP_CONF.format(probe_port=probe_port, client_port=client_port,
                                      registry=ri_common.LOOPBACK_REGISTRY_FILE))
        with open(os.path.join(work, "ri-com.conf"), "w") as f:
            f.write(RI_COMPONENT_CONF.format(probe_port=probe_port))
        with open(os.path.join(work, "our-com.conf"), "w") as f:
            f.write(OUR_COMPONENT_CONF.format(probe_port=probe_port))

        sup = start([mpsup_binary, "--config", "mpsup.conf", "--store", "sqlite:" + store],
                    os.path.join(work, "mpsup.log"), work)
        procs.append(sup)
        if not wait_until(lambda: sup.poll() is None and listening(probe_port) and listening(client_port), 15):
            out["errors"].append("mpsup did not open its ports within 15 s (exit status %s)" % sup.poll())
            return 0
        env = dict(os.environ, PATH=os.path.join(work, "bin") + os.pathsep + os.environ.get("PATH", ""))
        ri_com = subprocess.Popen([os.path.join(VENV_BIN, "mpcom"), "--config", "ri-com.conf"], cwd=work,
                                  stdout=open(os.path.join(work, "ri-com.log"), "wb"), stderr=subprocess.STDOUT,
                                  env=dict(env, PYTHONUNBUFFERED="1"), start_new_session=True)
        procs.append(ri_com)
        our_com = start([mpcom_binary, "--config", "our-com.conf"], os.path.join(work, "our-com.log"), work)
        procs.append(our_com)

        client = mplane.client.HttpInitiatorClient({}, mplane.tls.TlsState({}))
        base = "http://127.0.0.1:%d/" % client_port

        def both():
            try:
                client.retrieve_capabilities(base)
            except Exception as e:  # noqa: BLE001 - reported, then retried until the deadline
                out["last_crawl_error"] = ri_common.describe_error(e)
            caps = [client._capabilities[t] for t in client.capability_tokens()]
            pings = [c for c in caps if c.get_label() == "ping-average-ip4"]
            return pings if len(pings) >= 2 else None

        pings = wait_until(both, WAIT, step=0.5)
        for t in client.capability_tokens():
            c = client._capabilities[t]
            out["capabilities"].append({"label": c.get_label(), "token": t, "link": c.get_link(),
                                        "metadata": sorted(c.metadata_names())})
        if not pings:
            out["errors"].append("two ping-average-ip4 capabilities not offered within %d s" % WAIT)
            return 0

        # Which token reaches which component: mpsup's list of components.
        import urllib.request
        with urllib.request.urlopen(base + "component", timeout=10) as r:
            components = json.loads(r.read().decode("utf-8"))["components"]
        owner = {c["token"]: comp["name"] for comp in components for c in comp["capabilities"]}
        out["components"] = {comp["name"]: comp["present"] for comp in components}
        for cap in pings:
            who = "ours" if owner.get(cap.get_token()) == "swift-probe" else "ri"
            run = {"token": cap.get_token(), "component": owner.get(cap.get_token())}
            out["runs"][who] = run
            try:
                spec = client.invoke_capability(cap.get_token(), "now + 2s / 1s", {"destination.ip4": "127.0.0.1"})
            except Exception as e:  # noqa: BLE001
                run["error"] = "invoke: " + ri_common.describe_error(e)
                continue
            run["spec_token"] = spec.get_token()
            run["receipt_tokens"] = list(client.receipt_tokens())

            def reply():
                try:
                    r = client.result_for(spec.get_label())
                except Exception as e:  # noqa: BLE001
                    run["last_redeem_error"] = ri_common.describe_error(e)
                    return None
                return r if isinstance(r, (mplane.model.Result, mplane.model.Exception)) else None

            res = wait_until(reply, WAIT, step=1.0)
            if isinstance(res, mplane.model.Result):
                run["result_token"] = res.get_token()
                run["count"] = str(res._resultcolumns["delay.twoway.icmp.count"][0])
                run["result_metadata"] = sorted(res.metadata_names())
            elif isinstance(res, mplane.model.Exception):
                run["error"] = "exception: %s" % res._errmsg
            else:
                run["error"] = "no result within %d s" % WAIT

        listing = subprocess.run([mpsup_binary, "results", "--store", "sqlite:" + store],
                                 capture_output=True, text=True, timeout=30)
        for line in listing.stdout.splitlines()[1:]:
            f = line.split("\t")
            if len(f) >= 8:
                out["stored"].append({"component": f[1], "label": f[2], "rows": f[5], "token": f[7]})
        return 0
    finally:
        for p in reversed(procs):
            stop(p)
        out["mpsup_log"] = [l for l in read_lines(os.path.join(work, "mpsup.log"))
                            if " error " in l or " warning " in l or "registered" in l][:40]
        out["ri_component_log"] = read_lines(os.path.join(work, "ri-com.log"))[-20:]
        out["our_component_log"] = [l for l in read_lines(os.path.join(work, "our-com.log"))
                                    if " error " in l or " warning " in l][:20]
        report(out, work)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

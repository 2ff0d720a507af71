#!/usr/bin/env python3
# ri_our_mpsup.py over mutual TLS: our supervisor between the reference implementation's
# component and its client, every connection https with certificates from one CA:
#
#   RI client (HttpInitiatorClient, client-1)  -> our mpsup, client side
#   RI component (mplane-sdk's mpcom, component-initiated, component-1) -> our mpsup, probe side
#
# mpsup (supervisor-1) reads an RI-format supervisor configuration with [TLS], [Roles] and
# [Authorizations]: client-1 has a role allowed test-loopback. The RI component runs the SDK's
# own loopback module (no ping, so no wrapper) and its [Roles]/[Authorizations] let
# supervisor-1 see test-loopback: the RI registers only what the supervisor's identity may use.
# The links are https, as an RI-format configuration with TLS spells them out (the RI's
# programs have no default for them).
#
# The client crawls mpsup's capabilities, reads GET /component (the component is listed under
# its certificate's identity), runs test-loopback (starting a few seconds ahead, for an RI
# race described where it is invoked) and redeems until the result comes. A
# second client certificate with no role (client-2) must see neither the component nor the
# capability.
#
# Prints one JSON object as its last line; exits 0 unless the script itself broke. Every
# process started is stopped at the end; every wait is bounded.
#
# Usage: ri_our_mpsup_tls.py MPSUP_BINARY
import datetime
import json
import os
import re
import socket
import subprocess
import sys
import tempfile

import mplane.client
import mplane.model
import mplane.tls

import ri_common
from ri_mpsup_chain import LinkCollector, free_port, invoke_and_redeem, read_lines, report, start, stop, wait_until  # noqa: F401 - LinkCollector patches the RI's crawl
from ri_supervisor_tls import make_pki

VENV_BIN = os.path.dirname(os.path.abspath(sys.executable))
WAIT = 20  # seconds, for registration and for the result (the RI component polls every 5 s)
START_DELAY = 8  # seconds from invoking test-loopback to its start (see the comment there)

# No listen-spec-link or listen-cap-link: mpsup derives https links from its [TLS] section.
MPSUP_CONF = """\
[TLS]
cert = {pki}/supervisor-1.crt
key = {pki}/supervisor-1.key
ca-chain = {pki}/ca.crt

[Roles]
org.example.clients.client-1 = guest

[Authorizations]
test-loopback = guest

[client]
workflow = component-initiated
listen-host = 127.0.0.1
listen-port = {probe_port}
registration-path = register/capability
specification-path = show/specification
result-path = register/result

[component]
scheduler_max_results = 20
registry_preload = {registry}
workflow = client-initiated
registration_path = register/capability
specification_path = show/specification
result_path = register/result
listen-port = {client_port}
"""

RI_COMPONENT_CONF = """\
[TLS]
cert = {pki}/component-1.crt
key = {pki}/component-1.key
ca-chain = {pki}/ca.crt

[Roles]
org.example.supervisors.supervisor-1 = supervisor

[Authorizations]
test-loopback = supervisor

[component]
workflow = component-initiated
registry_preload = {registry}
client_host = 127.0.0.1
client_port = {probe_port}
registration_path = register/capability
specification_path = show/specification
result_path = register/result

[module_loopback]
module = mplane.components.loopback
"""


def tls_state(pki, name):
    return mplane.tls.TlsState({"TLS": {"cert": os.path.join(pki, name + ".crt"), "key": os.path.join(pki, name + ".key"),
                                        "ca-chain": os.path.join(pki, "ca.crt")}})


def components(tls, port):
    """mpsup's GET /component on its client side, as the holder of `tls` sees it."""
    r = tls.pool_for("https", "127.0.0.1", port).request("GET", "/component", timeout=10.0, retries=False)
    if r.status != 200:
        raise RuntimeError("GET /component: status %d: %s" % (r.status, r.data[:200]))
    return json.loads(r.data.decode("utf-8"))["components"]


def bound_ports(log_path):
    """The ports of mpsup's `listening` line, or None before it is written."""
    for line in read_lines(log_path):
        m = re.search(r"mpsup\.client_port=(\d+) mpsup\.probe_port=(\d+)", line)
        if m:
            return int(m.group(2)), int(m.group(1))
    return None


def main(argv):
    if len(argv) != 2:
        print("usage: ri_our_mpsup_tls.py MPSUP_BINARY", file=sys.stderr)
        return 2
    ri_common.pin_hash_seed()
    ri_common.init()
    # mpsup holds a specification POST up to its 5 s reply wait before it answers.
    socket.setdefaulttimeout(15.0)
    mpsup_binary = os.path.abspath(argv[1])
    out = {"labels": [], "components": [], "result": None, "errors": []}
    work = tempfile.mkdtemp(prefix="our-mpsup-tls-")
    sup = ri_com = None
    try:
        pki = os.path.join(work, "pki")
        failure = make_pki(pki, more=[("client-2", "clients")])
        if failure:
            out["errors"].append(failure)
            return 0

        probe_port, client_port = free_port(), free_port()
        while client_port == probe_port:
            client_port = free_port()
        out["ports"] = {"probe_side": probe_port, "client_side": client_port}
        store = os.path.join(work, "mpsup.sqlite")
        with open(os.path.join(work, "mpsup.conf"), "w") as f:
            f.write(MPSUP_CONF.format(pki=pki, probe_port=probe_port, client_port=client_port,
                                      registry=ri_common.LOOPBACK_REGISTRY_FILE))
        with open(os.path.join(work, "ri-com.conf"), "w") as f:
            f.write(RI_COMPONENT_CONF.format(pki=pki, probe_port=probe_port, registry=ri_common.LOOPBACK_REGISTRY_FILE))

        sup_log = os.path.join(work, "mpsup.log")
        sup = start([mpsup_binary, "serve", "--config", "mpsup.conf", "--store", "sqlite:" + store], sup_log, work)
        # The `listening` line, not a probe connection: a bare TCP connect would only add a
        # failed handshake to the log.
        if not wait_until(lambda: sup.poll() is not None or bound_ports(sup_log), 15) or sup.poll() is not None:
            out["errors"].append("mpsup did not log its ports within 15 s (exit status %s)" % sup.poll())
            return 0
        if bound_ports(sup_log) != (probe_port, client_port):
            out["errors"].append("mpsup listens on %s, not the configured ports" % (bound_ports(sup_log),))
            return 0

        ri_com = start([os.path.join(VENV_BIN, "mpcom"), "--config", "ri-com.conf"], os.path.join(work, "ri-com.log"), work)

        tls = tls_state(pki, "client-1")
        client = mplane.client.HttpInitiatorClient({}, tls)
        base = "https://127.0.0.1:%d/" % client_port

        def offered():
            try:
                client.retrieve_capabilities(base)
            except Exception as e:  # noqa: BLE001 - reported, then retried until the deadline
                out["last_crawl_error"] = ri_common.describe_error(e)
            return "test-loopback" in client.capability_labels()

        registered = bool(wait_until(lambda: ri_com.poll() is not None or offered(), WAIT, step=0.5)) \
            and "test-loopback" in client.capability_labels()
        if registered:
            out.pop("last_crawl_error", None)
        out["labels"] = sorted(client.capability_labels())
        if not registered:
            out["errors"].append("test-loopback not offered by mpsup within %d s (RI component exit status %s)"
                                 % (WAIT, ri_com.poll()))
            return 0
        out["capability_link"] = client.capability_for("test-loopback").get_link()
        out["mpsup_identity"] = client.identity_for("test-loopback")

        try:
            listed = components(tls, client_port)
            out["components"] = [c["name"] for c in listed]
            out["component_labels"] = sorted(cap["label"] for c in listed for cap in c["capabilities"] if cap["label"])
        except Exception as e:  # noqa: BLE001
            out["errors"].append("components: " + ri_common.describe_error(e))

        # Without a role: nothing to see.
        try:
            other_tls = tls_state(pki, "client-2")
            other = mplane.client.HttpInitiatorClient({}, other_tls)
            other.retrieve_capabilities(base)
            out["unauthorised"] = {"labels": sorted(other.capability_labels()),
                                   "components": [c["name"] for c in components(other_tls, client_port)]}
        except Exception as e:  # noqa: BLE001
            out["errors"].append("client-2: " + ri_common.describe_error(e))

        # Not "now": the RI's scheduler starts a job's thread before it files the job
        # (Scheduler.submit_job), so a job that ends at once, as loopback does, calls back
        # before it is filed; the callback's job_for_message raises KeyError and the result is
        # never sent. A start after the RI component's next poll (every 5 s) leaves it time.
        when = mplane.model.unparse_time(datetime.datetime.utcnow() + datetime.timedelta(seconds=START_DELAY))
        out["when"] = when
        if invoke_and_redeem(client, when, "via our mpsup over TLS", out, WAIT) is None and "spec_label" not in out:
            return 0  # the invocation itself failed

        # Which component the store filed the result under.
        listing = subprocess.run([mpsup_binary, "results", "--store", "sqlite:" + store],
                                 capture_output=True, text=True, timeout=30)
        out["stored"] = []
        for line in listing.stdout.splitlines()[1:]:
            f = line.split("\t")
            if len(f) >= 8:
                out["stored"].append({"component": f[1], "label": f[2], "rows": f[5], "token": f[7]})
        return 0
    finally:
        stop(ri_com)
        stop(sup)
        # The RI reads its peer's identity over a connection of its own, which it closes
        # without a TLS close_notify: counted, not listed.
        sup_lines = read_lines(os.path.join(work, "mpsup.log"))
        out["mpsup_unclean_tls_closes"] = sum("error=uncleanShutdown" in l for l in sup_lines)
        out["mpsup_log"] = [l for l in sup_lines if "error=uncleanShutdown" not in l
                            and (" error " in l or " warning " in l or " notice " in l or "registered" in l)][:40]
        out["ri_component_log"] = [l for l in read_lines(os.path.join(work, "ri-com.log"))
                                   if l.strip() and not l.startswith("Added <Service")][-20:]
        report(out, work)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

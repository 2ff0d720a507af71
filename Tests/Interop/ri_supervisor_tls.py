#!/usr/bin/env python3
# ri_supervisor.py over mutual TLS, with our component as a program: the reference
# implementation's listener (mplane.client.HttpListenerClient, what its mpsup uses for its
# probe side) serves https with the supervisor-1 certificate; our mpcom (the binary given;
# component-initiated, [TLS] with the component-1 certificate, loopback and counter) registers
# with it, pulls a test-loopback and a test-counter specification and posts the results back.
#
# A fresh PKI (deploy/make-certs.sh) in a temporary directory. The listener's configuration
# has the [TLS], [Roles] and [Authorizations] sections the RI's mpsup needs with TLS (the
# listener itself consults only [TLS]); our mpcom's [Roles] and [Authorizations] give the
# supervisor's identity a role allowed both test services, since with them it registers only
# what the supervisor's identity may use.
#
# Prints one JSON object as its last line: the labels registered, the identity the RI read
# from our component's certificate, the results, what went wrong and our component's
# warnings. Every process started is stopped at the end; every wait is bounded. Exits 0
# unless the script itself broke.
#
# Usage: ri_supervisor_tls.py MPCOM_BINARY
import json
import os
import subprocess
import sys
import tempfile
import time

import tornado.gen
import tornado.ioloop

import mplane.client
import mplane.model
import mplane.tls

import ri_common
from ri_mpsup_chain import free_port, read_lines, report, start, stop
from ri_supervisor import lookup, pump, wait_for

REPO = os.path.dirname(os.path.dirname(ri_common.HERE))
MAKE_CERTS = os.path.join(REPO, "deploy", "make-certs.sh")
WAIT = 20  # seconds, for registration and for each result

MPCOM_CONF = """\
[TLS]
cert = {pki}/component-1.crt
key = {pki}/component-1.key
ca-chain = {pki}/ca.crt

[Roles]
org.example.supervisors.supervisor-1 = supervisor

[Authorizations]
test-loopback = supervisor
test-counter = supervisor

[component]
workflow = component-initiated
client_host = 127.0.0.1
client_port = {port}
registration_path = register/capability
specification_path = show/specification
result_path = register/result
poll-interval = 1
backoff-max = 1

[module_loopback]
module = mplane.components.loopback

[module_counter]
module = counter
"""


def make_pki(directory, more=()):
    """A CA and the component-1, supervisor-1 and client-1 certificates in `directory`
    (deploy/make-certs.sh), then one more for each (name, OU) in `more`; None when that
    worked, else what went wrong."""
    for args in [[]] + [["issue", name, ou] for name, ou in more]:
        try:
            r = subprocess.run(["bash", MAKE_CERTS, directory] + args, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            return "make-certs.sh %s: %s" % (" ".join(args), ri_common.describe_error(e))
        if r.returncode != 0:
            return "make-certs.sh %s exited %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()[-500:])
    return None


def main(argv):
    if len(argv) != 2:
        print("usage: ri_supervisor_tls.py MPCOM_BINARY", file=sys.stderr)
        return 2
    ri_common.pin_hash_seed()
    ri_common.init()
    mpcom_binary = os.path.abspath(argv[1])
    out = {"registered": False, "labels": [], "errors": []}
    work = tempfile.mkdtemp(prefix="ri-sup-tls-")
    com = None
    try:
        pki = os.path.join(work, "pki")
        failure = make_pki(pki)
        if failure:
            out["errors"].append(failure)
            return 0
        port = free_port()
        out["port"] = port
        config = {
            "TLS": {"cert": os.path.join(pki, "supervisor-1.crt"), "key": os.path.join(pki, "supervisor-1.key"),
                    "ca-chain": os.path.join(pki, "ca.crt")},
            "Roles": {"org.example.clients.client-1": "guest"},
            "Authorizations": {"test-loopback": "guest", "test-counter": "guest"},
            "client": {"listen-port": str(port),
                       "listen-spec-link": "https://127.0.0.1:%d/register/result" % port},
        }
        tls = mplane.tls.TlsState(config)
        out["supervisor_identity"] = tls.extract_local_identity()
        client = mplane.client.HttpListenerClient(config, tls)

        with open(os.path.join(work, "mpcom.conf"), "w") as f:
            f.write(MPCOM_CONF.format(pki=pki, port=port))
        com = start([mpcom_binary, "--config", "mpcom.conf", "--log-level", "info"], os.path.join(work, "mpcom.log"), work)

        out["registered"] = bool(wait_for(lambda: com.poll() is not None or "test-loopback" in client.capability_labels(), WAIT)
                                 and "test-loopback" in client.capability_labels())
        out["labels"] = sorted(client.capability_labels())
        # The identities the RI read from our component's certificate: the one it filed the
        # capabilities under, and the one its callback capability came from.
        out["component_identities"] = sorted({client.identity_for(t) for t in client.capability_tokens()})
        out["callback_from"] = sorted(client._callback_capability)
        if not out["registered"]:
            out["errors"].append("test-loopback not registered within %d s (mpcom exit status %s)" % (WAIT, com.poll()))
            return 0

        client.invoke_capability("test-loopback", "now", {"test.input": "pushed over TLS"}, relabel="lb")
        res = wait_for(lambda: isinstance(lookup(client, "lb"), (mplane.model.Result, mplane.model.Exception)) and lookup(client, "lb"), WAIT)
        if isinstance(res, mplane.model.Result):
            out["loopback_output"] = res._resultcolumns["test.output"][0]
            out["loopback_from"] = client._receipt_identities.get(res.get_token())
        elif isinstance(res, mplane.model.Exception):
            out["errors"].append("loopback: exception: %s" % res._errmsg)
        else:
            out["errors"].append("loopback: no result within %d s (holds: %s)" % (WAIT, type(lookup(client, "lb")).__name__))

        client.invoke_capability("test-counter", "now + 2s / 1s", {"test.input": "c"}, relabel="cnt")
        res = wait_for(lambda: isinstance(lookup(client, "cnt"), (mplane.model.Result, mplane.model.Exception)) and lookup(client, "cnt"), WAIT)
        if isinstance(res, mplane.model.Result):
            out["counter_rows"] = res.count_result_rows()
        elif isinstance(res, mplane.model.Exception):
            out["errors"].append("counter: exception: %s" % res._errmsg)
        else:
            out["errors"].append("counter: no result within %d s" % WAIT)
        return 0
    finally:
        stop(com)
        out["mpcom_log"] = [l for l in read_lines(os.path.join(work, "mpcom.log"))
                            if " error " in l or " warning " in l or " notice " in l or "registered" in l][:40]
        report(out, work)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

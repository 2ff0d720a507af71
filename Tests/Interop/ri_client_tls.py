#!/usr/bin/env python3
# ri_client.py over mutual TLS: the reference implementation's HTTP client
# (mplane.client.HttpInitiatorClient) drives one of our components at an https URL, with
# the TLS state the RI builds from a configuration's [TLS] section (cert, key, ca-chain).
#
# The component must know the client's certificate (issued by CA) and give its identity a
# role allowed test-loopback and test-counter ([Roles], [Authorizations]).
#
# Steps: retrieve the capabilities (the RI also opens a connection of its own to read the
# component's identity from its certificate), run test-loopback (a result straight in the
# reply), a 3 s test-counter run, and a 60 s one interrupted after its first receipt; report
# what came back.
#
# Usage: ri_client_tls.py https://127.0.0.1:PORT/ CA CERT KEY
# Prints one JSON object as its last line; exits 0 unless the script itself broke (the Swift
# test judges the results).
import json
import os
import socket
import sys
import time

import mplane.client
import mplane.model
import mplane.tls

import ri_common


def main(argv):
    if len(argv) != 5:
        print("usage: ri_client_tls.py URL CA CERT KEY", file=sys.stderr)
        return 2
    ri_common.pin_hash_seed()
    ri_common.init()
    # Our component holds a specification's reply up to its 5 s reply wait, as the RI's does.
    socket.setdefaulttimeout(30.0)
    url = argv[1]
    ca, cert, key = (os.path.abspath(p) for p in argv[2:5])
    out = {"labels": [], "errors": []}
    tls = mplane.tls.TlsState({"TLS": {"ca-chain": ca, "cert": cert, "key": key}})
    out["client_identity"] = tls.extract_local_identity()
    client = mplane.client.HttpInitiatorClient({}, tls)
    try:
        client.retrieve_capabilities(url)
    except Exception as e:  # noqa: BLE001 - reported: the handshake is what this tests
        out["errors"].append("retrieve_capabilities: " + ri_common.describe_error(e))
        print(json.dumps(out))
        return 0
    out["labels"] = sorted(client.capability_labels())
    # The identity the RI read from the component's certificate.
    if "test-loopback" in client.capability_labels():
        out["component_identity"] = client.identity_for("test-loopback")
        out["capability_link"] = client.capability_for("test-loopback").get_link()
    else:
        out["errors"].append("test-loopback not offered")
        print(json.dumps(out))
        return 0

    # The loopback service: a result straight in the reply.
    try:
        spec = client.invoke_capability("test-loopback", "now", {"test.input": "hello over TLS"})
        res = client.result_for(spec.get_token())
        out["loopback_kind"] = res.kind_str() if ri_common.is_statement(res) else type(res).__name__
        if isinstance(res, mplane.model.Result):
            out["loopback_output"] = res._resultcolumns["test.output"][0]
    except Exception as e:  # noqa: BLE001
        out["errors"].append("loopback: " + ri_common.describe_error(e))

    # The counter: 3 s run, shorter than the 5 s reply wait.
    if "test-counter" in client.capability_labels():
        try:
            client.invoke_capability("test-counter", "now + 2s / 1s", {"test.input": "c"}, relabel="counter-short")
            res = client.result_for("counter-short")
            out["counter_kind"] = res.kind_str() if ri_common.is_statement(res) else type(res).__name__
            if isinstance(res, mplane.model.Result):
                out["counter_rows"] = res.count_result_rows()
        except Exception as e:  # noqa: BLE001
            out["errors"].append("counter: " + ri_common.describe_error(e))

        # A long job: receipt, redemption gives a receipt, interrupt, redemption gives the rows.
        try:
            client.invoke_capability("test-counter", "now + 60s / 1s", {"test.input": "long"}, relabel="counter-long")
            first = client.result_for("counter-long")
            out["long_first_kind"] = first.kind_str() if ri_common.is_statement(first) else type(first).__name__
            time.sleep(2.5)
            client.interrupt_capability("counter-long")
            time.sleep(0.5)
            res = client.result_for("counter-long")
            out["long_after_interrupt_kind"] = res.kind_str() if ri_common.is_statement(res) else type(res).__name__
            if isinstance(res, mplane.model.Result):
                out["long_rows"] = res.count_result_rows()
        except Exception as e:  # noqa: BLE001
            out["errors"].append("long counter: " + ri_common.describe_error(e))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

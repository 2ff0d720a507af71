#!/usr/bin/env python3
# Drives one of our components with the reference implementation's own HTTP client
# (mplane.client.HttpInitiatorClient), as an operator's existing tooling would.
#
# Usage: ri_client.py http://127.0.0.1:PORT/
# Prints one JSON object with what happened at each step; exits 0 unless the script
# itself broke (the Swift test judges the results).
import json
import socket
import sys
import time

import mplane.client
import mplane.model
import mplane.tls

import ri_common


def main(argv):
    ri_common.pin_hash_seed()
    ri_common.init()
    # ri_common caps sockets at 5 s; our component holds a specification's reply up to its
    # 5 s reply wait, as the RI's does, so allow more here.
    socket.setdefaulttimeout(30.0)
    url = argv[1]
    out = {}
    client = mplane.client.HttpInitiatorClient({}, mplane.tls.TlsState({}))
    client.retrieve_capabilities(url)
    out["labels"] = sorted(client.capability_labels())
    out["tokens"] = sorted(client.capability_tokens())

    # The loopback service: a result straight in the reply.
    spec = client.invoke_capability("test-loopback", "now", {"test.input": "hello from the RI"})
    res = client.result_for(spec.get_token())
    out["loopback_kind"] = res.kind_str()
    if isinstance(res, mplane.model.Result):
        out["loopback_output"] = res._resultcolumns["test.output"][0]

    # The counter: 3 s run, longer than nothing, shorter than the 5 s reply wait.
    spec = client.invoke_capability("test-counter", "now + 2s / 1s", {"test.input": "c"}, relabel="counter-short")
    res = client.result_for("counter-short")
    out["counter_kind"] = res.kind_str()
    if isinstance(res, mplane.model.Result):
        out["counter_rows"] = res.count_result_rows()

    # A long job: receipt, redemption gives a receipt, interrupt, redemption gives the rows.
    spec = client.invoke_capability("test-counter", "now + 60s / 1s", {"test.input": "long"}, relabel="counter-long")
    first = client.result_for("counter-long")
    out["long_first_kind"] = first.kind_str()
    time.sleep(2.5)
    client.interrupt_capability("counter-long")
    time.sleep(0.5)
    res = client.result_for("counter-long")
    out["long_after_interrupt_kind"] = res.kind_str()
    if isinstance(res, mplane.model.Result):
        out["long_rows"] = res.count_result_rows()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

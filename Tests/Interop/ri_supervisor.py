#!/usr/bin/env python3
# Plays the supervisor side of the component-initiated workflow with the reference
# implementation's listener (mplane.client.HttpListenerClient, what its mpsup uses): waits
# for our component to register, queues specifications (one with a callback), an interrupt,
# and reports what came back.
#
# Usage: ri_supervisor.py PORT
# Prints one JSON object; exits 0 unless the script itself broke.
import json
import sys
import time

import tornado.gen
import tornado.ioloop

import mplane.client
import mplane.model
import mplane.tls

import ri_common


def pump(seconds):
    """Runs the main thread's IOLoop for a while: the listener's server lives on it (its
    own background thread starts a different, empty loop under tornado 6)."""
    tornado.ioloop.IOLoop.current().run_sync(lambda: tornado.gen.sleep(seconds))


def lookup(client, label):
    """What the client holds for `label` (a receipt, a result) or None yet."""
    try:
        return client.result_for(label)
    except KeyError:
        return None


def wait_for(predicate, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        pump(0.1)
    return None


def main(argv):
    ri_common.pin_hash_seed()
    ri_common.init()
    port = int(argv[1])
    config = {"client": {"listen-port": str(port), "listen-spec-link": "http://127.0.0.1:%d/register/result" % port}}
    client = mplane.client.HttpListenerClient(config, mplane.tls.TlsState({}))
    out = {}
    out["registered"] = bool(wait_for(lambda: "test-loopback" in client.capability_labels(), 30))
    out["labels"] = sorted(client.capability_labels())
    out["callback_known"] = bool(client._callback_capability)
    if not out["registered"]:
        print(json.dumps(out))
        return 0

    client.invoke_capability("test-loopback", "now", {"test.input": "pushed"}, relabel="lb")
    res = wait_for(lambda: isinstance(lookup(client, "lb"), mplane.model.Result) and lookup(client, "lb"), 30)
    out["loopback_output"] = res._resultcolumns["test.output"][0] if res else None

    # Not with callback_when: the RI's listener then queues an envelope and its own
    # specification handler crashes printing the envelope's (absent) token, losing both.
    client.invoke_capability("test-counter", "now + 2s / 1s", {"test.input": "c"}, relabel="cnt")
    res = wait_for(lambda: isinstance(lookup(client, "cnt"), mplane.model.Result) and lookup(client, "cnt"), 30)
    out["counter_rows"] = res.count_result_rows() if res else None

    client.invoke_capability("test-counter", "now + 60s / 1s", {"test.input": "long"}, relabel="long")
    out["long_receipt"] = bool(wait_for(lambda: isinstance(lookup(client, "long"), mplane.model.Receipt), 30))
    pump(2)
    try:
        client.interrupt_capability("long")
    except KeyError as e:
        # Seen once under load: the receipt had not arrived. Report it instead of a traceback.
        out["interrupt_error"] = ri_common.describe_error(e)
        print(json.dumps(out))
        return 0
    res = wait_for(lambda: isinstance(lookup(client, "long"), mplane.model.Result) and lookup(client, "long"), 30)
    out["long_rows"] = res.count_result_rows() if res else None
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

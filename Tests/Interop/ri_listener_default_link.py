#!/usr/bin/env python3
# The supervisor side of the component-initiated workflow, played by the reference
# implementation's listener (mplane.client.HttpListenerClient) with the specification link
# its own configurations use: the listener's base URL, http://127.0.0.1:PORT/ (the RI has no
# built-in default; leaving listen-spec-link out is a KeyError, which this script checks).
#
# The RI's listener serves three paths only: register/capability, show/specification and
# register/result (each also with a trailing slash); a POST to the link itself ("/") gets a
# 404. To show where our component sent things, a catch-all handler is appended after the
# RI's own routes: it records each request no RI route took and answers 404, as the RI would.
#
# Waits for our component (started by the caller, polling 127.0.0.1:PORT) to register, queues
# test-loopback once and test-counter "now + 2s / 1s" once, waits at most 30 s for each
# result, and prints one JSON object. Exits 0 unless the script itself broke.
#
# Usage: ri_listener_default_link.py PORT
import json
import sys

import tornado.web

import mplane.client
import mplane.model
import mplane.tls

import ri_common
from ri_supervisor import lookup, wait_for

WAIT = 30  # seconds, for each wait


class StrayRequest(tornado.web.RequestHandler):
    """Records a request none of the RI's routes matched, then answers 404."""

    def initialize(self, log):
        self._stray = log  # not self._log: tornado's RequestHandler has a _log method

    def _record(self):
        entry = {"method": self.request.method, "path": self.request.path}
        if self.request.body:
            try:
                doc = json.loads(self.request.body.decode("utf-8"))
                entry["kind"] = next((k for k in ("receipt", "result", "exception", "envelope") if k in doc), None)
                entry["label"] = doc.get("label")
            except (ValueError, UnicodeDecodeError, AttributeError):
                entry["kind"] = None
        self._stray.append(entry)
        self.send_error(404)

    def get(self):
        self._record()

    def post(self):
        self._record()


def spec_link_is_required(port):
    """True if the RI's listener refuses a [client] section without listen-spec-link.
    The KeyError comes before the listener binds its port, so nothing is left behind."""
    try:
        mplane.client.HttpListenerClient({"client": {"listen-port": str(port)}}, mplane.tls.TlsState({}))
    except KeyError:
        return True
    return False


def result_of(client, label):
    value = lookup(client, label)
    return value if isinstance(value, (mplane.model.Result, mplane.model.Exception)) else None


def main(argv):
    ri_common.pin_hash_seed()
    ri_common.init()
    port = int(argv[1])
    link = "http://127.0.0.1:%d/" % port
    out = {"spec_link": link, "spec_link_required": spec_link_is_required(port)}

    client = mplane.client.HttpListenerClient({"client": {"listen-port": str(port), "listen-spec-link": link}},
                                              mplane.tls.TlsState({}))
    stray = []
    client._tornado_application.wildcard_router.add_rules([(r"/.*", StrayRequest, {"log": stray})])

    out["registered"] = bool(wait_for(lambda: "test-loopback" in client.capability_labels(), WAIT))
    out["labels"] = sorted(client.capability_labels())
    if not out["registered"]:
        out["stray_requests"] = stray
        print(json.dumps(out))
        return 0

    spec = client.invoke_capability("test-loopback", "now", {"test.input": "default-link"}, relabel="lb")
    out["queued_link"] = spec.get_link()
    res = wait_for(lambda: result_of(client, "lb"), WAIT)
    out["loopback_receipt"] = isinstance(lookup(client, "lb"), mplane.model.Receipt) or isinstance(res, mplane.model.Result)
    out["loopback_output"] = res._resultcolumns["test.output"][0] if isinstance(res, mplane.model.Result) else None

    # The RI's own component has no test-counter; with it standing in, this part is skipped.
    out["counter_receipt"] = out["counter_rows"] = None
    if "test-counter" in client.capability_labels():
        client.invoke_capability("test-counter", "now + 2s / 1s", {"test.input": "c"}, relabel="cnt")
        res = wait_for(lambda: result_of(client, "cnt"), WAIT)
        out["counter_receipt"] = isinstance(lookup(client, "cnt"), mplane.model.Receipt) or isinstance(res, mplane.model.Result)
        out["counter_rows"] = res.count_result_rows() if isinstance(res, mplane.model.Result) else None

    # Both specifications were pulled if nothing is left queued for the component.
    out["specs_pulled"] = not any(client._outgoing.values())
    out["stray_requests"] = stray
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

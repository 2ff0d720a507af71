#!/usr/bin/env python3
# Invokes our ping capabilities with the reference implementation's own client
# (mplane.client.HttpInitiatorClient), after preloading our probe registry as an
# operator's RI tooling would (registry_preload).
#
# Usage: ri_ping.py http://127.0.0.1:PORT/ PROBE_REGISTRY_JSON
# Prints one JSON object; exits 0 unless the script itself broke.
import json
import socket
import sys

import mplane.client
import mplane.model
import mplane.tls

import ri_common


def rows(res):
    if not isinstance(res, mplane.model.Result):
        return None
    names = list(res._resultcolumns.keys())
    return [{n: str(res._resultcolumns[n][i]) for n in names} for i in range(res.count_result_rows())]


def main(argv):
    ri_common.pin_hash_seed()
    ri_common.init()
    mplane.model.preload_registry(argv[2])
    socket.setdefaulttimeout(30.0)
    out = {}
    client = mplane.client.HttpInitiatorClient({}, mplane.tls.TlsState({}))
    client.retrieve_capabilities(argv[1])
    out["labels"] = sorted(client.capability_labels())

    # The RI's own capability, as its ping service offers it.
    client.invoke_capability("ping-average-ip4", "now + 2s / 1s",
                             {"source.ip4": "127.0.0.1", "destination.ip4": "127.0.0.1"}, relabel="avg")
    res = client.result_for("avg")
    out["average_kind"] = res.kind_str()
    out["average"] = rows(res)

    # Ours: every parameter given, as the RI's client always does.
    client.invoke_capability("ping-stats-ip4", "now + 2s / 1s",
                             {"source.ip4": "127.0.0.1", "destination.ip4": "127.0.0.2",
                              "icmp.payload.octets": 100, "icmp.timeout.ms": 500, "ip.ttl": 9, "ip.tos": 0},
                             relabel="stats")
    res = client.result_for("stats")
    out["stats_kind"] = res.kind_str()
    out["stats"] = rows(res)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

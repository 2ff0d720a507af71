#!/usr/bin/env python3
# Generates reference mPlane messages with the Python reference
# implementation (mplane-sdk 0.9.0), for checking our encoder and decoder
# against the exact text the SDK produces.
#
# Usage: ri_generate.py            (no arguments)
#
# stdout receives a JSON array of entries
#   {"name": "...", "json": "<exact mplane.model.unparse_json text>",
#    "kind": "capability" | "specification" | ..., "token": "..." | null,
#    "schema_hash": "..." | null}
# Every message is built through the SDK's Python API. For statements,
# get_token() is called before unparse_json, so the token is part of the
# text; token and schema_hash are null for exceptions and envelopes.
# Entries whose name ends in "-emit-only" hold text the SDK can write but
# cannot parse back (CIDR set constraints). A form the SDK refuses is left
# out, with a note on stderr.
#
# The SDK prints a set constraint in Python set order, which depends on the
# hash seed; the script re-executes itself with PYTHONHASHSEED=0 so that its
# output is the same on every run.

import ipaddress
import json
import sys

import mplane.model as mm

import ri_common

CORE = ri_common.CORE_REGISTRY_URI
LOOPBACK = ri_common.LOOPBACK_REGISTRY_URI

PING_AVERAGE_RESULTS = ("delay.twoway.icmp.us.min", "delay.twoway.icmp.us.mean",
                        "delay.twoway.icmp.us.max", "delay.twoway.icmp.count")


class Collector:
    """Accumulates entries; a builder that raises is skipped with a note."""

    def __init__(self):
        self.entries = []
        self.skipped = []

    def add(self, name, build, token_only=False):
        """Build a message (build is a callable returning it), record its
        text, and return it for later builders; None if the SDK refused."""
        try:
            msg = build()
            statement = ri_common.is_statement(msg)
            token = msg.get_token() if statement else None
            text = mm.unparse_json(msg, token_only=token_only)
            entry = {
                "name": name,
                "json": text,
                "kind": msg.kind_str(),
                "token": token,
                "schema_hash": msg._schema_hash() if statement else None,
            }
        except BaseException as e:  # the SDK can raise non-Exception oddities
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            ri_common.note("ri_generate: skipped %s: %s" % (name, ri_common.describe_error(e)))
            self.skipped.append(name)
            return None
        self.entries.append(entry)
        return msg


# ----------------------------------------------------------------------
# Builders over the SDK API

def capability(label=None, when="now ... future", params=(), results=(), metadata=(),
               verb="measure", registry=None, token=None, link=None, export=None):
    """params: (element name, constraint) pairs, constraint a string or an
    SDK constraint object; metadata: (element name, value) pairs."""
    cap = mm.Capability(verb=verb, label=label, when=when, token=token, registry_uri=registry)
    for name, constraint in params:
        cap.add_parameter(name, constraint)
    for name, value in metadata:
        cap.add_metadata(name, value)
    for name in results:
        cap.add_result_column(name)
    if link is not None:
        cap.set_link(link)
    if export is not None:
        cap.set_export(export)
    return cap


def specification(cap, values=(), when=None, token=None, label=None):
    """values: (parameter name, value) pairs; parameters whose capability
    constraint is a single value are filled in by the SDK."""
    if cap is None:
        raise ValueError("capability was not built")
    spec = mm.Specification(capability=cap, when=when, token=token)
    if label is not None:
        spec.set_label(label)
    for name, value in values:
        spec.set_parameter_value(name, value)
    return spec


def result(spec, when, columns, rows):
    """A result for spec with a definite temporal scope; rows are lists of
    values in the order of columns."""
    if spec is None:
        raise ValueError("specification was not built")
    res = mm.Result(specification=spec)
    # Result(specification=..., when=...) keeps the specification's scope
    # whatever `when` says, so the scope is set afterwards.
    res.set_when(when, force=True)
    for row_index, row in enumerate(rows):
        for name, value in zip(columns, row):
            res.set_result_value(name, value, row_index)
    return res


def with_token(msg):
    """Compute (and store) the token so an enclosing envelope shows it."""
    if msg is None:
        raise ValueError("message was not built")
    msg.get_token()
    return msg


def envelope(messages, token=None, label=None, when=None):
    env = mm.Envelope(token=token, label=label,
                      when=mm.When(when) if when is not None else None)
    for msg in messages:
        if msg is None:
            raise ValueError("enclosed message was not built")
        env.append_message(msg)
    return env


def cidr(*networks):
    """A set constraint over networks, which the SDK prints but cannot parse."""
    return mm._SetConstraint(mm.prim_address, vs={ipaddress.ip_network(n) for n in networks})


def need(msg):
    if msg is None:
        raise ValueError("source message was not built")
    return msg


# ----------------------------------------------------------------------
# The catalogue

WHEN_FORMS = [
    ("now-future", "now ... future"),
    ("now-future-period", "now ... future / 1s"),
    ("now-duration-period", "now + 30s / 1s"),
    ("past-now", "past ... now"),
    ("past-future", "past ... future"),
    ("absolute-range", "2017-12-24 22:18:42 ... 2017-12-24 23:18:42"),
    ("absolute-duration-period", "2017-12-24 22:18:42 + 1m / 1s"),
    ("fraction-future-period", "2017-12-24 22:18:42.123456 ... future / 2h"),
    ("now-compound-duration", "now + 1d2h3m4s"),
    ("repeat-now-future", "repeat now ... future / 1h { now + 10s / 1s }"),
    ("repeat-absolute", "repeat 2017-12-24 00:00:00 ... 2017-12-25 00:00:00 / 15m { now + 1m / 5s }"),
    ("repeat-cron-half-hours", "repeat now ... future cron 0 0,30 * * * * { now + 10s / 1s }"),
    ("repeat-cron-list-range", "repeat now ... future cron 0 0 12 1-5 * 1,6 { now + 30s / 1s }"),
    ("now", "now"),
    ("absolute-singleton", "2017-12-24 22:18:42"),
    ("date-only", "2017-12-24"),
    ("short-fraction-range", "2017-12-24 22:18:42.5 ... 2017-12-24 22:18:43.25"),
    ("now-90s-canonical", "now + 90s"),
    ("now-3600s-60s-canonical", "now + 3600s / 60s"),
    ("past-absolute", "past ... 2017-12-24 22:18:42"),
    ("repeat-duration-no-inner-period", "repeat now + 1h / 10m { now + 1m }"),
]


def build_capabilities(c):
    caps = {}
    for slug, when in WHEN_FORMS:
        caps["when-" + slug] = c.add(
            "capability-when-" + slug,
            lambda when=when, slug=slug: capability(
                label="when-" + slug, when=when,
                params=[("destination.ip4", "*")], results=["delay.twoway.icmp.us"]))

    caps["ip6"] = c.add("capability-ip6", lambda: capability(
        label="ping-detail-ip6", when="now ... future / 1s",
        params=[("source.ip6", "2001:db8::1"), ("destination.ip6", "*")],
        results=["time", "delay.twoway.icmp.us"]))
    for slug, addr in [("link-local", "fe80::1:2"),
                       ("uncompressed", "2001:db8:0:0:1:0:0:1"),
                       ("upper-case", "2001:DB8::A"), ("v4-mapped", "::ffff:10.0.0.1")]:
        c.add("capability-ip6-constraint-" + slug, lambda addr=addr: capability(
            label="ip6-" + addr, params=[("source.ip6", addr), ("destination.ip6", "*")],
            results=["delay.twoway.icmp.us"]))
    caps["range-ip4"] = c.add("capability-range-ip4", lambda: capability(
        label="range-ip4", params=[("source.ip4", "10.0.27.2"),
                                   ("destination.ip4", "10.0.0.1 ... 10.0.0.254")],
        results=["delay.twoway.icmp.us"]))
    c.add("capability-range-ip4-reversed", lambda: capability(
        label="range-ip4-reversed", params=[("destination.ip4", "10.0.0.254 ... 10.0.0.1")],
        results=["delay.twoway.icmp.us"]))
    c.add("capability-range-ip6", lambda: capability(
        label="range-ip6", params=[("destination.ip6", "2001:db8::1 ... 2001:db8::ff")],
        results=["delay.twoway.icmp.us"]))
    caps["natural"] = c.add("capability-natural-ranges", lambda: capability(
        label="natural-ranges", params=[("source.port", "0 ... 99"), ("destination.port", "1 ... 1")],
        results=["octets.ip", "packets.ip"]))
    caps["single-sets"] = c.add("capability-single-value-sets", lambda: capability(
        label="single-value-sets",
        params=[("source.ip4", "10.0.27.2"), ("destination.port", "443"),
                ("source.interface", "eth0"), ("destination.ip4", "*")],
        results=["rtt.us"]))
    caps["string-set"] = c.add("capability-string-set-2", lambda: capability(
        label="string-set", params=[("source.interface", "eth0,eth1"), ("destination.ip4", "*")],
        results=["rtt.us"]))
    c.add("capability-natural-set-3", lambda: capability(
        label="natural-set", params=[("destination.port", "80,443,8080"), ("destination.ip4", "*")],
        results=["rtt.us"]))
    c.add("capability-address-set-2", lambda: capability(
        label="address-set", params=[("destination.ip4", "10.0.37.2,10.0.37.3")],
        results=["rtt.us"]))
    c.add("capability-cidr-ip4-emit-only", lambda: capability(
        label="cidr-ip4", params=[("destination.ip4", cidr("10.0.0.0/8"))],
        results=["delay.twoway.icmp.us"]))
    c.add("capability-cidr-ip6-emit-only", lambda: capability(
        label="cidr-ip6", params=[("destination.ip6", cidr("2001:db8::/32"))],
        results=["delay.twoway.icmp.us"]))
    caps["reals"] = c.add("capability-reals", lambda: capability(
        label="reals",
        params=[("cpuload", "*"), ("memload", "*"), ("snr", "*"),
                ("location.latitude", "*"), ("location.longitude", "*")],
        results=["linkload"]))
    c.add("capability-real-range", lambda: capability(
        label="real-range", params=[("cpuload", "0 ... 1"), ("snr", "0.1 ... 3.141592653589793")],
        results=["linkload"]))
    caps["boolean"] = c.add("capability-boolean", lambda: capability(
        label="connectivity", params=[("destination.ip4", "*"), ("connectivity.as", "True"),
                                      ("connectivity.ip", "*")],
        results=["hops.ip"]))
    caps["time"] = c.add("capability-time", lambda: capability(
        label="flow-query", verb="query", when="past ... now",
        params=[("start", "2017-12-24 00:00:00 ... 2017-12-25 00:00:00"), ("end", "*"),
                ("source.ip4", "*")],
        results=["start", "end", "octets.ip", "packets.ip"]))
    caps["url"] = c.add("capability-url", lambda: capability(
        label="http-fetch", params=[("destination.url", "*"),
                                    ("content.url", "http://example.com/video.mp4")],
        results=["delay.firstbyte.ms", "bandwidth.imputed.kbps"]))
    caps["metadata"] = c.add("capability-metadata", lambda: capability(
        label="ping-with-metadata", when="now ... future / 1s",
        params=[("source.ip4", "10.0.27.2"), ("destination.ip4", "*")],
        metadata=[("System_type", "ping"), ("System_ID", "probe-17"),
                  ("System_version", "0.9.0"), ("measurement.revision", 3),
                  ("location.latitude", 46.5189), ("location.longitude", 6.5668),
                  ("observer.ip6", "2001:db8::53"), ("connectivity.ip", True)],
        results=["delay.twoway.icmp.us.min", "delay.twoway.icmp.us.max"]))
    c.add("capability-label-link-export", lambda: capability(
        label="ping-exporting", when="now ... future / 1s",
        params=[("destination.ip4", "*")], results=["time", "delay.twoway.icmp.us"],
        link="http://10.0.27.2:8888/", export="http://collector.example.com:4739/ipfix"))
    c.add("capability-no-label", lambda: capability(
        params=[("destination.ip4", "*")], results=["delay.twoway.icmp.us"]))
    caps["no-params"] = c.add("capability-no-parameters", lambda: capability(
        label="load", when="now ... future / 10s", results=["time", "cpuload", "memload"]))
    c.add("capability-no-results", lambda: capability(
        label="store-flows", verb="store", params=[("source.ip4", "*")]))
    c.add("capability-verb-query", lambda: capability(
        label="verb-query", verb="query", when="past ... future",
        params=[("source.ip4", "*")], results=["octets.ip"]))
    c.add("capability-explicit-token", lambda: capability(
        label="explicit-token", token="0123456789abcdef0123456789abcdef",
        params=[("destination.ip4", "*")], results=["delay.twoway.icmp.us"]))
    caps["loopback"] = c.add("capability-loopback", lambda: capability(
        label="test-loopback", registry=LOOPBACK, link="http://127.0.0.1:18228/",
        params=[("test.input", "*")], results=["test.output"]))
    c.add("capability-loopback-string-set", lambda: capability(
        label="test-loopback-set", registry=LOOPBACK,
        params=[("test.input", "a,b")], results=["test.output"]))
    return caps


def build_specifications(c, caps):
    specs = {}
    specs["ip6"] = c.add("specification-ip6", lambda: specification(
        caps["ip6"], [("destination.ip6", "2001:db8::2")], when="now + 10s / 1s"))
    for slug, addr in [("link-local", "fe80::1:2"), ("uncompressed", "2001:db8:0:0:1:0:0:1")]:
        c.add("specification-ip6-value-" + slug, lambda addr=addr: specification(
            caps["ip6"], [("destination.ip6", addr)], when="now + 10s / 1s"))
    specs["reals"] = c.add("specification-reals", lambda: specification(
        caps["reals"], [("cpuload", 0.1), ("memload", 3.141592653589793), ("snr", 1e-05),
                        ("location.latitude", 1e+16), ("location.longitude", 9500000000000000.0)],
        when="now"))
    c.add("specification-reals-from-strings", lambda: specification(
        caps["reals"], [("cpuload", "1E-5"), ("memload", "0.50"), ("snr", "2"),
                        ("location.latitude", "-0.0"), ("location.longitude", "123456789.123")],
        when="now"))
    specs["boolean"] = c.add("specification-boolean", lambda: specification(
        caps["boolean"], [("destination.ip4", "10.0.37.2"), ("connectivity.ip", False)],
        when="now"))
    specs["time"] = c.add("specification-time", lambda: specification(
        caps["time"], [("start", "2017-12-24 22:18:42.5"), ("end", "2017-12-24 23:18:42"),
                       ("source.ip4", "10.0.27.2")],
        when="2017-12-24 22:18:42 ... 2017-12-24 23:18:42"))
    specs["url"] = c.add("specification-url", lambda: specification(
        caps["url"], [("destination.url", "https://www.example.org/index.html?q=1&r=2")],
        when="now + 5s"))
    specs["natural"] = c.add("specification-natural", lambda: specification(
        caps["natural"], [("source.port", 50)], when="now + 1m"))
    specs["single-sets"] = c.add("specification-single-sets-filled", lambda: specification(
        caps["single-sets"], [("destination.ip4", "10.0.37.2")], when="now"))
    c.add("specification-string-set", lambda: specification(
        caps["string-set"], [("source.interface", "eth1"), ("destination.ip4", "10.0.37.2")],
        when="now"))
    c.add("specification-range-ip4", lambda: specification(
        caps["range-ip4"], [("destination.ip4", "10.0.0.42")], when="now + 30s / 1s"))
    specs["metadata"] = c.add("specification-with-metadata", lambda: specification(
        caps["metadata"], [("destination.ip4", "10.0.37.2")], when="now + 30s / 1s"))
    specs["explicit-token"] = c.add("specification-explicit-token", lambda: specification(
        caps["ip6"], [("destination.ip6", "2001:db8::2")], when="now + 10s / 1s",
        token="fedcba9876543210fedcba9876543210"))
    c.add("specification-relabelled", lambda: specification(
        caps["ip6"], [("destination.ip6", "::1")], when="now + 10s / 1s",
        label="ping-detail-ip6-4242"))
    c.add("specification-repeated", lambda: specification(
        caps["when-repeat-now-future"], [("destination.ip4", "10.0.37.2")],
        when="repeat now ... future / 1h { now + 10s / 1s }"))
    c.add("specification-repeated-cron", lambda: specification(
        caps["when-repeat-cron-half-hours"], [("destination.ip4", "10.0.37.2")],
        when="repeat now ... future cron 0 0,30 * * * * { now + 10s / 1s }"))
    specs["loopback"] = c.add("specification-loopback", lambda: specification(
        caps["loopback"], [("test.input", "gr\u00fcezi mPlane")], when="now"))
    return specs


def build_results(c, caps, specs):
    detail_cap = c.add("capability-ping-detail-ip4", lambda: capability(
        label="ping-detail-ip4", when="now ... future / 1s",
        params=[("source.ip4", "10.0.27.2"), ("destination.ip4", "*")],
        results=["time", "delay.twoway.icmp.us"]))
    detail_spec = c.add("specification-ping-detail-ip4", lambda: specification(
        detail_cap, [("destination.ip4", "10.0.37.2")],
        when="2017-12-24 22:18:42 + 5s / 1s"))
    results = {}
    results["detail"] = c.add("result-ping-detail-5-rows", lambda: result(
        detail_spec, "2017-12-24 22:18:42.001000 ... 2017-12-24 22:18:46.004311",
        ["time", "delay.twoway.icmp.us"],
        [["2017-12-24 22:18:42.001000", 33155], ["2017-12-24 22:18:43.002118", 39271],
         ["2017-12-24 22:18:44.001923", 55166], ["2017-12-24 22:18:45.003007", 192307],
         ["2017-12-24 22:18:46.004311", 38012]]))
    c.add("result-ping-detail-missing-value", lambda: result(
        detail_spec, "2017-12-24 22:18:42 ... 2017-12-24 22:18:45",
        ["time", "delay.twoway.icmp.us"],
        [["2017-12-24 22:18:42", 30112], ["2017-12-24 22:18:43", None],
         ["2017-12-24 22:18:44", 29874]]))
    results["reals"] = c.add("result-reals", lambda: result(
        specs["reals"], "2017-12-24 22:18:42 ... 2017-12-24 22:18:45",
        ["linkload"], [[0.1], [1e-05], [1e+16], [9500000000000000.0], [0.0]]))
    c.add("result-load-real-columns", lambda: result(
        specification(caps["no-params"], when="now + 20s / 10s"),
        "2017-12-24 22:18:40 ... 2017-12-24 22:19:00",
        ["time", "cpuload", "memload"],
        [["2017-12-24 22:18:40", 0.25, 0.5], ["2017-12-24 22:18:50", 3.141592653589793, 1e-05],
         ["2017-12-24 22:19:00", 1.0, 0.999]]))
    trace_cap = c.add("capability-traceroute-ip6", lambda: capability(
        label="traceroute-ip6", when="now ... future",
        params=[("source.ip6", "2001:db8::1"), ("destination.ip6", "*")],
        results=["hops.ip", "intermediate.ip6", "rtt.us"]))
    trace_spec = c.add("specification-traceroute-ip6", lambda: specification(
        trace_cap, [("destination.ip6", "2001:db8:0:0:1:0:0:1")], when="now"))
    c.add("result-traceroute-ip6-addresses", lambda: result(
        trace_spec, "2017-12-24 22:18:42 ... 2017-12-24 22:18:44",
        ["hops.ip", "intermediate.ip6", "rtt.us"],
        [[1, "fe80::1:2", 412], [2, "2001:db8:0:0:0:0:2:1", 1503], [3, None, None],
         [4, "2001:DB8:0:0:1::1", 9921]]))
    c.add("result-address-ip4-columns", lambda: result(
        specification(capability(label="flows", when="past ... now",
                                  params=[("observer.link", "*")],
                                  results=["source.ip4", "destination.ip4", "octets.ip"]),
                      [("observer.link", "uplink-1")],
                      when="2017-12-24 00:00:00 ... 2017-12-25 00:00:00"),
        "2017-12-24 00:00:00 ... 2017-12-25 00:00:00",
        ["source.ip4", "destination.ip4", "octets.ip"],
        [["10.0.27.2", "10.0.37.2", 1500], ["192.168.1.1", "8.8.8.8", 18446744073709551615]]))
    c.add("result-boolean", lambda: result(
        specs["boolean"], "2017-12-24 22:18:42", ["hops.ip"], [[7]]))
    c.add("result-time-parameters", lambda: result(
        specs["time"], "2017-12-24 22:18:42 ... 2017-12-24 23:18:42",
        ["start", "end", "octets.ip", "packets.ip"],
        [["2017-12-24 22:18:42.5", "2017-12-24 22:48:42", 123456, 321],
         ["2017-12-24 22:48:42", "2017-12-24 23:18:42", 0, 0]]))
    c.add("result-url", lambda: result(
        specs["url"], "2017-12-24 22:18:42 + 5s",
        ["delay.firstbyte.ms", "bandwidth.imputed.kbps"], [[87, 12000]]))
    c.add("result-ragged-columns", lambda: _ragged(specs["natural"]))
    c.add("result-no-rows", lambda: result(
        specs["natural"], "2017-12-24 22:18:42 ... 2017-12-24 22:19:42", [], []))
    c.add("result-with-period", lambda: result(
        specs["single-sets"], "2017-12-24 22:18:42 ... 2017-12-24 22:19:42 / 1s",
        ["rtt.us"], [[1200]]))
    c.add("result-with-metadata", lambda: result(
        specs["metadata"], "2017-12-24 22:18:42 ... 2017-12-24 22:19:12",
        ["delay.twoway.icmp.us.min", "delay.twoway.icmp.us.max"], [[28455, 42144]]))
    c.add("result-explicit-token", lambda: result(
        specs["explicit-token"], "2017-12-24 22:18:42 ... 2017-12-24 22:18:52",
        ["time", "delay.twoway.icmp.us"], [["2017-12-24 22:18:42", 512]]))
    c.add("result-loopback", lambda: result(
        specs["loopback"], "2017-12-24 22:18:42.000001",
        ["test.output"], [["gr\u00fcezi mPlane"]]))
    return results


def _ragged(spec):
    """Columns of unequal length: the SDK pads the short ones with "*"."""
    res = result(spec, "2017-12-24 22:18:42 ... 2017-12-24 22:19:42", [], [])
    res.set_result_value("octets.ip", 1500, 0)
    res.set_result_value("octets.ip", 3000, 1)
    res.set_result_value("packets.ip", 3, 2)
    return res


def build_notifications(c, caps, specs):
    c.add("receipt-ip6", lambda: mm.Receipt(specification=need(specs["ip6"])))
    c.add("receipt-ip6-token-only", lambda: mm.Receipt(specification=need(specs["ip6"])),
          token_only=True)
    rcpt = c.add("receipt-with-metadata", lambda: mm.Receipt(specification=need(specs["metadata"])))
    c.add("redemption-with-metadata", lambda: mm.Redemption(receipt=need(rcpt)))
    c.add("redemption-with-metadata-token-only", lambda: mm.Redemption(receipt=need(rcpt)),
          token_only=True)
    c.add("withdrawal-ip6", lambda: mm.Withdrawal(capability=need(caps["ip6"])))
    c.add("withdrawal-ip6-token-only", lambda: mm.Withdrawal(capability=need(caps["ip6"])),
          token_only=True)
    c.add("interrupt-explicit-token-token-only",
          lambda: mm.Interrupt(specification=need(specs["explicit-token"])), token_only=True)

    c.add("exception-with-token", lambda: mm.Exception(
        token="0123456789abcdef0123456789abcdef", errmsg="Unknown job"))
    c.add("exception-without-token", lambda: mm.Exception(errmsg="No service registered for specification"))
    c.add("exception-default-message", lambda: mm.Exception(token="0123456789abcdef0123456789abcdef"))
    c.add("exception-unicode-multiline", lambda: mm.Exception(
        token="fedcba9876543210fedcba9876543210",
        errmsg="Zeit\u00fcberschreitung\nline two \"quoted\" \\ tab\t."))


def build_envelopes(c, caps, specs, results):
    c.add("envelope-two-capabilities", lambda: envelope(
        [with_token(caps["ip6"]), with_token(caps["metadata"])]))
    c.add("envelope-empty", lambda: envelope([]))
    c.add("envelope-results", lambda: envelope([results["detail"], results["reals"]]))
    c.add("envelope-nested", lambda: envelope(
        [envelope([with_token(caps["loopback"])], label="inner"),
         mm.Exception(token="0123456789abcdef0123456789abcdef", errmsg="Unknown job")]))
    c.add("envelope-label-token-when", lambda: envelope(
        [results["detail"]], token="0badc0de0badc0de0badc0de0badc0de", label="multijob",
        when="2017-12-24 22:18:42 ... 2017-12-24 22:19:42"))
    c.add("envelope-mixed-notifications", lambda: envelope(
        [mm.Receipt(specification=need(specs["ip6"])),
         mm.Exception(errmsg="No service registered for specification"),
         mm.Withdrawal(capability=need(caps["ip6"]))]))
    c.add("envelope-notifications-token-only", lambda: envelope(
        [mm.Redemption(receipt=mm.Receipt(specification=need(specs["ip6"]))),
         mm.Interrupt(specification=need(specs["explicit-token"]))]), token_only=True)
    c.add("envelope-tokenless-callback-capability", lambda: envelope(
        [with_token(caps["loopback"]), capability(label="callback", when="now ... future")]))


def build_walkthrough(c):
    """The client-initiated exchange of the protocol description."""
    cap = c.add("walkthrough-01-capability", lambda: capability(
        label="ping-average-ip4", when="now ... future / 1s",
        params=[("source.ip4", "10.0.27.2"), ("destination.ip4", "*")],
        results=PING_AVERAGE_RESULTS))
    spec = c.add("walkthrough-02-specification", lambda: specification(
        cap, [("destination.ip4", "10.0.37.2")], when="2017-12-24 22:18:42 + 1m / 1s"))
    rcpt = c.add("walkthrough-03-receipt", lambda: mm.Receipt(specification=need(spec)))
    c.add("walkthrough-04-redemption", lambda: mm.Redemption(receipt=need(rcpt)))
    c.add("walkthrough-05-redemption-token-only", lambda: mm.Redemption(receipt=need(rcpt)),
          token_only=True)
    c.add("walkthrough-06-result", lambda: result(
        spec, "2017-12-24 22:18:42 ... 2017-12-24 22:19:42", PING_AVERAGE_RESULTS,
        [[33155, 55166, 192307, 58]]))
    c.add("walkthrough-07-interrupt", lambda: mm.Interrupt(specification=need(spec)))
    c.add("walkthrough-08-withdrawal", lambda: mm.Withdrawal(capability=need(cap)))
    c.add("walkthrough-09-exception", lambda: mm.Exception(
        token=need(spec).get_token(), errmsg="Unknown job"))
    stats_cap = c.add("walkthrough-10-capability-5-columns", lambda: capability(
        label="ping-stats-ip4", when="now ... future / 1s",
        params=[("source.ip4", "10.0.27.2"), ("destination.ip4", "*")],
        results=["delay.twoway.icmp.us.min", "delay.twoway.icmp.us.mean",
                 "delay.twoway.icmp.us.50pct", "delay.twoway.icmp.us.max",
                 "delay.twoway.icmp.count"]))
    stats_spec = c.add("walkthrough-11-specification-5-columns", lambda: specification(
        stats_cap, [("destination.ip4", "10.0.37.2")], when="2017-12-24 22:18:42 + 1m / 1s"))
    c.add("walkthrough-12-result-5-columns", lambda: result(
        stats_spec, "2017-12-24 22:18:42 ... 2017-12-24 22:19:42",
        ["delay.twoway.icmp.us.min", "delay.twoway.icmp.us.mean",
         "delay.twoway.icmp.us.50pct", "delay.twoway.icmp.us.max",
         "delay.twoway.icmp.count"],
        [[33155, 55166, 58220, 192307, 58]]))
    c.add("walkthrough-13-envelope-capabilities", lambda: envelope(
        [with_token(cap), with_token(stats_cap)]))


def main(argv):
    if len(argv) != 1:
        print("usage: ri_generate.py", file=sys.stderr)
        return 2
    ri_common.pin_hash_seed()
    ri_common.init()
    c = Collector()
    build_walkthrough(c)
    caps = build_capabilities(c)
    specs = build_specifications(c, caps)
    results = build_results(c, caps, specs)
    build_notifications(c, caps, specs)
    build_envelopes(c, caps, specs, results)
    json.dump(c.entries, sys.stdout, indent=2)
    sys.stdout.write("\n")
    ri_common.note("ri_generate: %d entries, %d skipped" % (len(c.entries), len(c.skipped)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
# Client -> RI supervisor -> our component, with the reference implementation's own
# supervisor program (mpsup, mplane.supervisor.BaseSupervisor) in the middle.
#
# mpsup runs with the settings of the RI's example supervisor configuration (probe side:
# component-initiated listener; client side: client-initiated component) over plain HTTP,
# with only the ports changed (two free ports on 127.0.0.1; note the RI binds them on all
# interfaces, it has no listen address setting). Our component (the binary given) registers
# with mpsup in component-initiated mode. An RI client (mplane.client.HttpInitiatorClient)
# then does what `mpcli` does: retrieves mpsup's capabilities from its base URL, invokes
# test-loopback (mpsup relays it to our component) and redeems the receipt until the result
# comes back, or 30 s pass.
#
# Prints one JSON object: the labels the client saw, the result value (or null), what went
# wrong, and the lines of the two logs that tell where messages went. Every process started
# is stopped at the end; every wait is bounded. Exits 0 unless the script itself broke.
#
# Usage: ri_mpsup_chain.py MPCOM_BINARY
import html.parser
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import mplane.client
import mplane.model
import mplane.tls

import ri_common

VENV_BIN = os.path.dirname(os.path.abspath(sys.executable))
MPSUP = os.path.join(VENV_BIN, "mpsup")
WAIT = 30  # seconds, for registration and for the result

MPSUP_CONF = """\
# The RI's example supervisor configuration, without TLS (so without [Roles] and
# [Authorizations], which only apply with TLS) and with our ports and registry.
[client]
workflow = component-initiated
listen-host = 127.0.0.1
listen-port = {probe_port}
listen-spec-link = http://127.0.0.1:{probe_port}/
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
listen-cap-link = http://127.0.0.1:{client_port}/
"""

MPCOM_CONF = """\
[component]
workflow = component-initiated
client_host = 127.0.0.1
client_port = {probe_port}
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


class LinkCollector(html.parser.HTMLParser):
    """Stands in for the RI's mplane.client.CrawlParser, which passes `strict=False` to
    html.parser.HTMLParser: Python 3.5 removed that argument, so the RI's crawl of an HTML
    capability page (mpcli's getcap) dies with a TypeError. Same interface: feed() the page,
    read the href of every <a> from .urls."""

    def __init__(self, strict=None, **kwargs):
        super().__init__(**kwargs)
        self.urls = []

    def handle_starttag(self, tag, attrs):
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.urls.append(href)


# retrieve_capabilities looks the parser up as a module global.
mplane.client.CrawlParser = LinkCollector


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(predicate, seconds, step=0.2):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def start(argv, log_path, cwd):
    log = open(log_path, "wb")
    try:
        # Own process group: stopping it also stops anything the program started.
        return subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True)
    finally:
        log.close()


def stop(proc):
    """SIGTERM, then SIGKILL after 5 s; both to the process's own group."""
    if proc is None or proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            pass


def read_lines(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n") for line in f]
    except OSError:
        return []


def main(argv):
    if len(argv) != 2:
        print("usage: ri_mpsup_chain.py MPCOM_BINARY", file=sys.stderr)
        return 2
    ri_common.pin_hash_seed()
    ri_common.init()
    # ri_common sets 5 s; mpsup holds a specification POST up to 5 s before it answers.
    socket.setdefaulttimeout(15.0)
    mpcom_binary = os.path.abspath(argv[1])

    out = {"labels": [], "reply_kind": None, "result": None, "errors": []}
    work = tempfile.mkdtemp(prefix="ri-mpsup-")
    sup = com = None
    try:
        probe_port, client_port = free_port(), free_port()
        while client_port == probe_port:
            client_port = free_port()
        out["ports"] = {"probe_side": probe_port, "client_side": client_port}
        with open(os.path.join(work, "mpsup.conf"), "w") as f:
            f.write(MPSUP_CONF.format(probe_port=probe_port, client_port=client_port,
                                      registry=ri_common.LOOPBACK_REGISTRY_FILE))
        with open(os.path.join(work, "mpcom.conf"), "w") as f:
            f.write(MPCOM_CONF.format(probe_port=probe_port))

        sup = start([sys.executable, MPSUP, "--config", "mpsup.conf"], os.path.join(work, "mpsup.log"), work)
        if not wait_until(lambda: sup.poll() is None and listening(probe_port) and listening(client_port), 15):
            out["errors"].append("mpsup did not open its ports within 15 s (exit status %s)" % sup.poll())
            return 0

        com = start([mpcom_binary, "--config", "mpcom.conf", "--log-level", "info"], os.path.join(work, "mpcom.log"), work)

        # As mpcli's getcap: crawl from the base URL (an HTML page linking to /capability),
        # again until our capabilities have been relayed.
        client = mplane.client.HttpInitiatorClient({}, mplane.tls.TlsState({}))
        base = "http://127.0.0.1:%d/" % client_port

        def relayed():
            try:
                client.retrieve_capabilities(base)
            except Exception as e:  # noqa: BLE001 - reported, then retried until the deadline
                out["last_crawl_error"] = ri_common.describe_error(e)
            return "test-loopback" in client.capability_labels()

        registered = bool(wait_until(relayed, WAIT, step=0.5))
        if registered:
            out.pop("last_crawl_error", None)
        out["labels"] = sorted(client.capability_labels())
        if not registered:
            out["errors"].append("test-loopback not offered by mpsup within %d s" % WAIT)
            return 0
        out["capability_link"] = client.capability_for("test-loopback").get_link()

        # As mpcli's runcap without a relabel: the label is "test-loopback-<n>", the form
        # mpsup's relay needs (it strips a "-<digits>" suffix to find the capability).
        invoke_and_redeem(client, "now", "via-mpsup", out, WAIT)
        return 0
    finally:
        stop(com)
        stop(sup)
        # Where things went: mpsup's access warnings (tornado logs non-2xx requests) and its
        # relay messages; our component's refusals.
        sup_lines = read_lines(os.path.join(work, "mpsup.log"))
        com_lines = read_lines(os.path.join(work, "mpcom.log"))
        out["mpsup_log"] = [l for l in sup_lines
                            if l.startswith(("4", "5")) or "Received" in l or "pulled" in l
                            or "Error" in l or "Traceback" in l][:40]
        out["mpcom_log"] = [l for l in com_lines
                            if " error " in l or " warning " in l or "refused" in l or "registered" in l][:40]
        report(out, work)


def report(out, work):
    """Prints the script's JSON object; the work directory stays with RI_MPSUP_KEEP set."""
    if os.environ.get("RI_MPSUP_KEEP"):
        out["work_dir"] = work
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))




PING_WRAPPER = """\
#!/bin/sh
# The RI's ping component passes BSD's -S <source>; iputils takes -I <source>.
for a in "$@"; do shift; if [ "$a" = "-S" ]; then set -- "$@" -I; else set -- "$@" "$a"; fi; done
exec {ping} "$@"
"""


def install_ping_wrapper(work):
    """Writes WORK/bin/ping, the wrapper the RI's ping component needs on Linux, to go first
    on its PATH; returns that directory, or None when there is no ping to wrap."""
    real_ping = shutil.which("ping")
    if not real_ping:
        return None
    bindir = os.path.join(work, "bin")
    os.makedirs(bindir, exist_ok=True)
    wrapper = os.path.join(bindir, "ping")
    with open(wrapper, "w") as f:
        f.write(PING_WRAPPER.format(ping=real_ping))
    os.chmod(wrapper, 0o755)
    return bindir


def invoke_and_redeem(client, when, text, out, seconds):
    """Invokes test-loopback with `text` through the RI's client and redeems (as mpcli's
    showmeas: result_for redeems an outstanding receipt at the client's default URL) until
    the result or an exception comes, within `seconds`. Records in `out`: spec_label,
    reply_kind, result and result_token, or what went wrong in errors. Returns the result."""
    try:
        spec = client.invoke_capability("test-loopback", when, {"test.input": text})
    except Exception as e:  # noqa: BLE001
        out["errors"].append("invoke: " + ri_common.describe_error(e))
        return None
    label = spec.get_label()
    out["spec_label"] = label

    def reply():
        try:
            r = client.result_for(label)
        except Exception as e:  # noqa: BLE001
            out["last_redeem_error"] = ri_common.describe_error(e)
            return None
        out["reply_kind"] = r.kind_str() if ri_common.is_statement(r) else type(r).__name__
        return r if isinstance(r, (mplane.model.Result, mplane.model.Exception)) else None

    res = wait_until(reply, seconds, step=1.0)
    if isinstance(res, mplane.model.Result):
        out.pop("last_redeem_error", None)
        out["result"] = res._resultcolumns["test.output"][0]
        out["result_token"] = res.get_token()
        return res
    if isinstance(res, mplane.model.Exception):
        out["errors"].append("exception: %s" % res._errmsg)
    else:
        out["errors"].append("no result within %d s (last reply: %s)" % (seconds, out.get("reply_kind")))
    return None


if __name__ == "__main__":
    sys.exit(main(sys.argv))

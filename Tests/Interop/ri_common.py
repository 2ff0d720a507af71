# Shared setup for the interop scripts that drive the Python reference
# implementation of mPlane (mplane-sdk 0.9.0).
#
# Not run directly: ri_roundtrip.py and ri_generate.py (same directory) do
# `import ri_common`, call `ri_common.pin_hash_seed()` and then
# `ri_common.init()` before touching mplane.model. Needs only the standard
# library and `mplane.model`.

import os
import socket
import sys

import mplane.model

HERE = os.path.dirname(os.path.abspath(__file__))
LOOPBACK_REGISTRY_FILE = os.path.join(HERE, "loopback-registry.json")
LOOPBACK_REGISTRY_URI = "http://mplane.corvid.ch/registry/loopback"
CORE_REGISTRY_URI = "http://ict-mplane.eu/registry/core"

_initialized = False


def pin_hash_seed():
    """Re-execute the running script with PYTHONHASHSEED=0 unless that is
    already the setting. The SDK prints set constraints in Python set order,
    which depends on the hash seed (strings and addresses alike); pinning
    the seed makes our output the same on every run. Call before doing any
    work: on re-execution the script starts over."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable] + sys.argv,
                  dict(os.environ, PYTHONHASHSEED="0"))


def init():
    """Load the core registry (bundled with the SDK) and our private
    loopback registry. Safe to call more than once."""
    global _initialized
    if _initialized:
        return
    # A message naming an unknown registry URI makes the SDK fetch it with
    # urllib; without a timeout that could stall a whole test run.
    socket.setdefaulttimeout(5.0)
    mplane.model.initialize_registry()
    # The loopback registry includes the core URI; the SDK resolves that
    # include from its bundled copy, so no network access happens here.
    mplane.model.preload_registry(LOOPBACK_REGISTRY_FILE)
    _initialized = True


def is_statement(msg):
    """True for capabilities, specifications, results and the notifications
    built on them (receipt, redemption, withdrawal, interrupt); False for
    exceptions and envelopes."""
    return isinstance(msg, mplane.model.Statement)


def describe_error(exc):
    """One-line "Type: text" rendering of an exception."""
    return "%s: %s" % (type(exc).__name__, exc)


def note(text):
    """Diagnostic line on stderr (stdout carries the JSON output)."""
    print(text, file=sys.stderr)

#!/usr/bin/env python3
# Round-trips mPlane messages through the Python reference implementation.
#
# Usage: ri_roundtrip.py IN.json
#
# IN.json holds a JSON array of mPlane messages (JSON objects). Each one is
# parsed with mplane.model.message_from_dict and emitted again with to_dict().
# stdout receives a JSON array with one entry per input, in input order:
#   {"ok": true, "message": {...}, "kind": "...", "token": "..." | null,
#    "schema_hash": "..." | null}
#   {"ok": false, "error": "Type: text"}
# For statements get_token() is called before to_dict(), so a statement that
# arrived without a token comes back with the SDK's default token. Messages
# nested in an envelope are emitted by the SDK's own recursive to_dict() and
# are left as they are. A bad message yields an error entry, never an abort.
# Exit status: 0 after writing the array, 2 if IN.json is unreadable or is
# not a JSON array. The script re-executes itself with PYTHONHASHSEED=0 so
# that set constraints come out in the same order on every run.

import json
import sys

import mplane.model

import ri_common


def roundtrip(obj):
    if not isinstance(obj, dict):
        raise TypeError("message is a JSON %s, not an object" % type(obj).__name__)
    msg = mplane.model.message_from_dict(obj)
    statement = ri_common.is_statement(msg)
    # get_token() fills in the default token of a tokenless statement; for
    # exceptions and envelopes it only reads what was parsed.
    token = msg.get_token()
    out = msg.to_dict()
    return {
        "ok": True,
        "message": out,
        "kind": msg.kind_str(),
        "token": token,
        "schema_hash": msg._schema_hash() if statement else None,
    }


def main(argv):
    if len(argv) != 2:
        print("usage: ri_roundtrip.py IN.json", file=sys.stderr)
        return 2
    ri_common.pin_hash_seed()
    try:
        with open(argv[1], "r", encoding="utf-8") as f:
            messages = json.load(f)
    except (OSError, ValueError) as e:
        print("ri_roundtrip: cannot read %s: %s" % (argv[1], ri_common.describe_error(e)),
              file=sys.stderr)
        return 2
    if not isinstance(messages, list):
        print("ri_roundtrip: %s does not hold a JSON array" % argv[1], file=sys.stderr)
        return 2

    ri_common.init()
    entries = []
    for obj in messages:
        try:
            entry = roundtrip(obj)
            # Fail here, inside the per-message guard, if the output would
            # not serialise.
            json.dumps(entry)
        except BaseException as e:  # the SDK raises str and other oddities
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            entry = {"ok": False, "error": ri_common.describe_error(e)}
        entries.append(entry)

    json.dump(entries, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

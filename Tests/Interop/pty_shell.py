#!/usr/bin/env python3
# Drives `mpcli` (the shell) through a pseudo-terminal, as a person at a keyboard would, to
# show that the line editor is there: Tab completes a command and a capability label, and
# the up arrow recalls the previous line. Prints one JSON object: what the terminal showed
# and the history file's lines. Every wait is bounded.
#
# Usage: pty_shell.py MPCLI URL HISTORY_FILE
import json
import os
import pty
import select
import sys
import time


def main(argv):
    mpcli, url, history = argv[1:4]
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm"
        os.environ["MPCLI_HISTORY"] = history
        os.environ["COLUMNS"] = "100"
        os.execv(mpcli, [mpcli, "--url", url])
    seen = b""

    def read_until(marker, timeout=15, since=0):
        """Reads until `marker` appears in what came after offset `since`."""
        nonlocal seen
        end = time.time() + timeout
        if marker in seen[since:]:
            return True
        while time.time() < end:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    return False
                if not chunk:
                    return False
                seen += chunk
                if marker in seen[since:]:
                    return True
        return False

    steps = []
    ok = read_until(b"mpcli> ")
    steps.append(("prompt", ok))
    mark = len(seen)
    os.write(fd, b"getc\t\r")           # Tab completes the command
    steps.append(("getcap", read_until(b"capabilities:", since=mark)))
    read_until(b"mpcli> ", since=mark)
    mark = len(seen)
    os.write(fd, b"showcap test-lo\t\r")  # Tab completes a label
    steps.append(("showcap", read_until(b"result test.output", since=mark)))
    read_until(b"mpcli> ", since=mark)
    mark = len(seen)
    os.write(fd, b"\x1b[A\r")            # the up arrow recalls the last line
    steps.append(("recall", read_until(b"result test.output", since=mark)))
    read_until(b"mpcli> ", since=mark)
    os.write(fd, b"quit\r")
    end = time.time() + 10
    status = None
    while time.time() < end:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
            break
        read_until(b"\x00", timeout=0.2)
    if status is None:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    lines = []
    if os.path.exists(history):
        # libedit's format: a header line, spaces written as \040.
        lines = [l.rstrip("\n").replace("\\040", " ") for l in open(history, errors="replace") if not l.startswith("_HiStOrY_")]
    text = seen.decode("utf-8", errors="replace")
    print(json.dumps({"steps": dict(steps), "status": status, "history": lines,
                      "showcap_lines": text.count("token "), "transcript_tail": text[-1500:]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

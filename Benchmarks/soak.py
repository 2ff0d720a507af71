#!/usr/bin/env python3
"""Soak test of a running mpcom under mixed load (Python 3 standard library only).

    soak.py --url http://127.0.0.1:PORT/ --pid PID --minutes 10 [--out FILE] [--rate 200]

For the given duration, concurrently:

* valid work: GET /capability (as an envelope), GET /capability/<token or label>, POST
  specifications of `test-loopback` (`when: now`) and `test-counter` (`now + 2s / 1s`, and a
  few `now + 7s / 1s` that come back as receipts after the reply wait), redemptions (token-only
  and full) of recent results and receipts, and a few interrupts of running counters. Every
  token is new, so every specification is a new job. Every valid request must be answered
  within --valid-timeout (15 s): any status counts as an answer (counted per status and
  per reply kind; a 4xx/5xx should be an mPlane exception, anything else is counted as a
  bad answer); a timeout, a close or a reset before the reply is an unanswered request;
* garbage: random bytes as bodies, invalid and truncated JSON, wrong content types, huge
  Content-Length heads with no body, unknown paths and methods, bytes that are not HTTP;
  answers are counted (a garbage request left without an answer is counted, not a failure);
* slow clients (--slow connections): a head trickled byte by byte that never ends
  (slowloris), a body trickled byte by byte, a head then silence, half a head then silence;
  each is reconnected when the server ends it, and how the server ended it (a status such
  as 408, a close, a reset) and after how long is counted; one still open after
  --slow-max-hold is closed by the client and counted as held.

Load comes from --clients source addresses (127.0.0.2, 127.0.0.3, ...; IPv4 targets only),
each connection from the next, so that the per-client limits of the server see several
clients; with --clients 1 all of it comes from one address, and a server that limits
connections per client answers some requests 503 (counted per status).

Every --sample-every seconds the server's VmRSS, VmHWM, threads and open descriptors are read
from /proc/PID. At the end a JSON summary and a table are printed (the JSON also to --out),
and a verdict line:

    soak: RSS at minute 2 X KiB, at minute N Y KiB, delta Z KiB; valid requests N answered, M unanswered

Exit status: 0 when every valid request was answered and the process is alive, 1 otherwise,
2 for a usage or start-up error. Only 127.0.0.1 and ::1 are accepted as targets. The run stops
by itself: load stops after --minutes, in-flight requests get at most --valid-timeout more,
and a watchdog ends the process if that ever overruns.
"""

import argparse
import asyncio
import collections
import json
import os
import random
import signal
import sys
import time
import urllib.parse

MPLANE = "application/x-mplane+json"
RESERVOIR = 20000


# ---------------------------------------------------------------------------------------------
# Statistics


class KindStats:
    def __init__(self, name, cls):
        self.name = name
        self.cls = cls  # "valid" or "garbage"
        self.sent = 0
        self.answered = 0
        self.unanswered = 0
        self.bad = 0
        self.outcomes = collections.Counter()
        self.lat = []
        self.lat_seen = 0
        self.lat_max = 0.0

    def latency(self, seconds):
        self.lat_seen += 1
        self.lat_max = max(self.lat_max, seconds)
        if len(self.lat) < RESERVOIR:
            self.lat.append(seconds)
        else:
            i = random.randrange(self.lat_seen)
            if i < RESERVOIR:
                self.lat[i] = seconds

    def pct(self, p):
        if not self.lat:
            return None
        s = sorted(self.lat)
        return s[min(len(s) - 1, int(p / 100.0 * len(s)))]

    def as_json(self):
        ms = lambda v: None if v is None else round(v * 1000, 2)
        return {
            "class": self.cls, "sent": self.sent, "answered": self.answered,
            "unanswered": self.unanswered, "bad_answers": self.bad,
            "outcomes": dict(sorted(self.outcomes.items())),
            "latency_ms": {"p50": ms(self.pct(50)), "p99": ms(self.pct(99)),
                           "max": ms(self.lat_max if self.lat_seen else None)},
        }


class SlowStats:
    def __init__(self):
        self.by_variant = collections.defaultdict(collections.Counter)
        self.holds = collections.defaultdict(list)  # variant -> [(outcome, seconds)]

    def record(self, variant, outcome, seconds):
        self.by_variant[variant][outcome] += 1
        self.holds[variant].append((outcome, seconds))

    def as_json(self):
        out = {}
        for v, c in sorted(self.by_variant.items()):
            hs = self.holds[v]
            by_outcome = collections.defaultdict(list)
            for o, s in hs:
                by_outcome[o].append(s)
            out[v] = {
                "connections": len(hs),
                "outcomes": dict(sorted(c.items())),
                "hold_s": {o: {"min": round(min(s), 1), "max": round(max(s), 1),
                               "mean": round(sum(s) / len(s), 1)} for o, s in sorted(by_outcome.items())},
            }
        return out


# ---------------------------------------------------------------------------------------------
# Minimal HTTP/1.1 client on asyncio streams


class Closed(Exception):
    """The server closed the connection before a complete response."""


async def read_response(reader, head=False):
    line = await reader.readline()
    if not line:
        raise Closed("closed before status line")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise Closed("bad status line %r" % line[:60])
    status = int(parts[1])
    headers = {}
    while True:
        h = await reader.readline()
        if not h:
            raise Closed("closed inside headers")
        if h in (b"\r\n", b"\n"):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    if head or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "content-length" in headers:
        try:
            body = await reader.readexactly(int(headers["content-length"]))
        except asyncio.IncompleteReadError:
            raise Closed("closed inside body")
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += await reader.readexactly(size)
            await reader.readline()
    else:
        body = await reader.read()
    return status, headers, body


class Pool:
    """Keep-alive connections for valid requests. A connection idle longer than max_idle is
    not reused (far below the server's idle timeout, so a reused connection closed by the
    server is a finding, not a race)."""

    def __init__(self, host, port, size=32, max_idle=5.0):
        self.host, self.port, self.size, self.max_idle = host, port, size, max_idle
        self.idle = []

    def get(self):
        now = time.monotonic()
        while self.idle:
            r, w, t = self.idle.pop()
            if now - t < self.max_idle and not w.is_closing() and not r.at_eof():
                return r, w
            w.close()
        return None

    def put(self, r, w):
        if len(self.idle) < self.size and not w.is_closing():
            self.idle.append((r, w, time.monotonic()))
        else:
            w.close()

    def close(self):
        for _, w, _ in self.idle:
            w.close()
        self.idle = []


def build_request(method, path, host_header, body=None, ctype=None, extra=(), close=False):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % host_header,
             "Accept: %s" % MPLANE, "User-Agent: mpcom-soak"]
    if ctype is not None:
        lines.append("Content-Type: %s" % ctype)
    if body is not None:
        lines.append("Content-Length: %d" % len(body))
    if close:
        lines.append("Connection: close")
    lines.extend(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


# ---------------------------------------------------------------------------------------------
# The soak


def new_token():
    return os.urandom(16).hex()


def fill_parameters(cap, n):
    params = {}
    for name, constraint in cap.get("parameters", {}).items():
        if name.startswith("test."):
            params[name] = "soak-%d" % n
        elif isinstance(constraint, str) and constraint not in ("*", "") and "..." not in constraint \
                and "," not in constraint:
            params[name] = constraint
        else:
            params[name] = "soak-%d" % n
    return params


def shape_of(body):
    try:
        d = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "non-json", None
    if not isinstance(d, dict):
        return "non-object", None
    for k in ("result", "receipt", "envelope", "exception", "capability",
              "specification", "redemption", "interrupt", "withdrawal"):
        if k in d:
            return k, d
    return "unknown", d


class Soak:
    def __init__(self, args, host, port):
        self.args = args
        self.host, self.port = host, port
        self.clients = args.clients
        self.host_header = ("[%s]:%d" % (host, port)) if ":" in host else ("%s:%d" % (host, port))
        self.pool = Pool(host, port, size=args.pool)
        self.stats = {}
        self.slow = SlowStats()
        self.slow_open = {}
        self.samples = []
        self.died = None
        self.stopping = asyncio.Event()
        self.recent_results = collections.deque(maxlen=300)   # (token, statement)
        self.receipts = collections.deque(maxlen=200)         # (token, statement, posted_at)
        self.unanswered_examples = []
        self.counter = 0
        self.backpressure = 0
        self.launched = 0
        self.caps = {}
        self.cap_refs = []
        self.t0 = None

    def kind(self, name, cls):
        s = self.stats.get(name)
        if s is None:
            s = self.stats[name] = KindStats(name, cls)
        return s

    # -- plumbing ---------------------------------------------------------------------------

    def source(self):
        """The next source address (127.0.0.2 ... for --clients > 1 on IPv4), or None."""
        if self.clients <= 1 or ":" in self.host:
            return None
        self.next_client = (getattr(self, "next_client", 0) + 1) % self.clients
        return ("127.0.0.%d" % (2 + self.next_client), 0)

    async def exchange(self, raw, timeout, pooled=False, stream_body=None):
        """Send raw bytes, read one response. Returns (status, headers, body, seconds).
        Raises asyncio.TimeoutError, Closed or OSError."""
        t = time.monotonic()
        conn = self.pool.get() if pooled else None
        r = w = None

        async def go():
            nonlocal r, w
            if conn is not None:
                r, w = conn
            else:
                r, w = await asyncio.open_connection(self.host, self.port, local_addr=self.source())
            w.write(raw)
            await w.drain()
            return await read_response(r, head=raw.startswith(b"HEAD "))

        try:
            status, headers, body = await asyncio.wait_for(go(), timeout)
        except BaseException:
            if w is not None:
                w.close()
            raise
        keep = pooled and headers.get("connection", "").lower() != "close"
        if keep:
            self.pool.put(r, w)
        else:
            w.close()
        return status, headers, body, time.monotonic() - t

    async def valid(self, kind, method, path, body=None, token=None, expect=None):
        s = self.kind(kind, "valid")
        s.sent += 1
        pooled = random.random() < self.args.keepalive_share
        raw = build_request(method, path, self.host_header, body=body,
                            ctype=MPLANE if body is not None else None, close=not pooled)
        try:
            status, headers, rbody, secs = await self.exchange(raw, self.args.valid_timeout, pooled=pooled)
        except asyncio.TimeoutError:
            return self._unanswered(s, "timeout", token)
        except Closed as e:
            return self._unanswered(s, "closed" + (" (reused)" if pooled else ""), token, str(e))
        except (OSError, asyncio.IncompleteReadError) as e:
            return self._unanswered(s, "error " + type(e).__name__, token, str(e))
        s.answered += 1
        s.latency(secs)
        shape, d = shape_of(rbody)
        outcome = "%d %s" % (status, shape)
        bad = shape in ("non-json", "non-object", "unknown")
        if status >= 400 and shape != "exception":
            bad = True
        if expect and shape not in expect:
            bad = True
        if token and d is not None and shape in ("result", "receipt") and d.get("token") != token:
            outcome += " token-mismatch"
            bad = True
        if bad:
            s.bad += 1
            outcome += " (bad)"
        s.outcomes[outcome] += 1
        return status, shape, d

    def _unanswered(self, s, outcome, token, detail=""):
        if "ConnectionRefused" in outcome and self.died is None and self.read_proc() is None:
            self.sample()  # the process is gone: record it and stop now, not at the next sample
        s.unanswered += 1
        s.outcomes[outcome] += 1
        if len(self.unanswered_examples) < 20:
            self.unanswered_examples.append({"t_s": round(time.monotonic() - self.t0, 1), "kind": s.name,
                                             "outcome": outcome, "token": token, "detail": detail})
        return None

    async def garbage(self, kind, raw, timeout=None):
        s = self.kind(kind, "garbage")
        s.sent += 1
        try:
            status, headers, body, secs = await self.exchange(raw, timeout or self.args.garbage_timeout)
        except asyncio.TimeoutError:
            s.unanswered += 1
            s.outcomes["no answer in %gs" % (timeout or self.args.garbage_timeout)] += 1
            return
        except Closed:
            s.unanswered += 1
            s.outcomes["closed, no answer"] += 1
            return
        except (OSError, asyncio.IncompleteReadError) as e:
            s.unanswered += 1
            s.outcomes["error " + type(e).__name__] += 1
            return
        s.answered += 1
        s.latency(secs)
        shape, _ = shape_of(body) if body else ("empty", None)
        s.outcomes["%d %s" % (status, shape)] += 1

    # -- capabilities -----------------------------------------------------------------------

    async def discover(self):
        raw = build_request("GET", "/capability", self.host_header, close=True)
        status, _, body, _ = await self.exchange(raw, self.args.valid_timeout)
        shape, d = shape_of(body)
        if status != 200 or shape != "envelope":
            raise SystemExit("soak: GET /capability answered %d %s, not an envelope" % (status, shape))
        for c in d.get("contents", []):
            if "capability" in c:
                self.caps[c.get("label")] = c
                self.cap_refs.append(c.get("token"))
                self.cap_refs.append(c.get("label"))
        for need in ("test-loopback", "test-counter"):
            if need not in self.caps:
                raise SystemExit("soak: the component offers no %s capability (has %s)"
                                 % (need, ", ".join(sorted(k for k in self.caps if k))))

    def statement(self, label, verb, when, token=None):
        """A specification from a capability, as the RI sends one (ci-12, ci-21)."""
        cap = self.caps[label]
        self.counter += 1
        return {
            "label": cap["label"], "parameters": fill_parameters(cap, self.counter),
            "registry": cap["registry"], "results": list(cap["results"]), verb: cap["capability"],
            "token": token or new_token(), "version": cap.get("version", 1), "when": when,
        }

    # -- valid work -------------------------------------------------------------------------

    async def v_cap_list(self):
        await self.valid("GET /capability", "GET", "/capability", expect=("envelope",))

    async def v_cap_one(self):
        ref = random.choice(self.cap_refs)
        await self.valid("GET /capability/<ref>", "GET", "/capability/" + urllib.parse.quote(ref),
                         expect=("capability",))

    async def v_spec(self, kind, label, when, long=False):
        spec = self.statement(label, "specification", when)
        r = await self.valid(kind, "POST", "/", json.dumps(spec).encode(), token=spec["token"],
                             expect=("result", "receipt", "envelope", "exception"))
        if r and r[0] == 200:
            if r[1] == "receipt":
                self.receipts.append((spec["token"], spec, time.monotonic()))
            elif r[1] in ("result", "envelope"):
                self.recent_results.append((spec["token"], spec))

    async def v_spec_loopback(self):
        await self.v_spec("spec test-loopback now", "test-loopback", "now")

    async def v_spec_counter(self):
        await self.v_spec("spec test-counter 2s", "test-counter", "now + 2s / 1s")

    async def v_spec_counter_receipt(self):
        await self.v_spec("spec test-counter 7s", "test-counter", "now + 7s / 1s")

    async def v_redeem(self):
        pools = [p for p in (self.receipts, self.recent_results) if p]
        if not pools:
            return await self.v_cap_list()
        entry = random.choice(random.choice(pools))
        token, spec = entry[0], entry[1]
        if random.random() < 0.5:
            msg = {"label": spec["label"], "redemption": "measure", "registry": spec["registry"],
                   "token": token, "version": 1}
            kind = "redeem token-only"
        else:
            msg = dict(spec)
            msg.pop("specification", None)
            msg["redemption"] = "measure"
            kind = "redeem full"
        await self.valid(kind, "POST", "/", json.dumps(msg).encode(), token=token,
                         expect=("result", "receipt", "envelope", "exception"))

    async def v_interrupt(self):
        now = time.monotonic()
        running = [e for e in self.receipts if now - e[2] < 1.5]  # receipt after 5 s of a 7 s job
        if not running:
            return await self.v_redeem()
        token, spec, _ = random.choice(running)
        msg = dict(spec)
        msg.pop("specification", None)
        msg["interrupt"] = "measure"
        await self.valid("interrupt", "POST", "/", json.dumps(msg).encode(), token=token,
                         expect=("result", "receipt", "envelope", "exception"))

    # -- garbage ----------------------------------------------------------------------------

    def post(self, body, ctype=MPLANE, extra=()):
        return build_request("POST", "/", self.host_header, body=body, ctype=ctype, extra=extra)

    async def g_random_body(self):
        await self.garbage("garbage random body", self.post(os.urandom(random.randint(1, 4096))))

    BAD_JSON = [b"{", b"}", b"{\"specification\":}", b"null", b"[]", b"\"measure\"", b"1e999999",
                b"{\"hello\":\"world\"}", b"{\"specification\":\"measure\"}", b"\xff\xfe\xfd",
                b"{\"a\":1,\"a\":2}", b"NaN", b"{\"token\":" + b"9" * 400 + b"}",
                b"{\"a\":" * 40 + b"1" + b"}" * 40, b"[" * 5000, b"{\"a\":\"\\ud800\"}", b"\x00" * 64,
                b"{\"specification\":\"measure\",\"token\":5,\"when\":[],\"parameters\":\"x\"}"]

    async def g_bad_json(self):
        choice = random.randrange(len(self.BAD_JSON) + 2)
        if choice < len(self.BAD_JSON):
            body = self.BAD_JSON[choice]
        else:  # a real specification with a wrong field
            spec = self.statement(random.choice(["test-loopback", "test-counter"]), "specification", "now")
            spec[random.choice(["when", "registry", "results", "version"])] = random.choice(
                ["now + banana", 42, None, [], {"x": 1}, "", "x" * 3000])
            body = json.dumps(spec).encode()
        await self.garbage("garbage invalid json", self.post(body))

    async def g_truncated_json(self):
        spec = json.dumps(self.statement("test-loopback", "specification", "now")).encode()
        await self.garbage("garbage truncated json", self.post(spec[:random.randint(1, len(spec) - 1)]))

    async def g_wrong_ctype(self):
        spec = json.dumps(self.statement("test-loopback", "specification", "now")).encode()
        ctype = random.choice(["application/json", "text/plain", "", "application/x-www-form-urlencoded",
                               "application/x-mplane+jsonx", "multipart/form-data; boundary=x",
                               "text/html; charset=utf-8", None])
        await self.garbage("garbage wrong content type", self.post(spec, ctype=ctype))

    async def g_huge_length(self):
        n = random.choice([10 ** 12, 2 ** 63 - 1, 2 ** 64, 10 ** 30, 1048577, 2000000, 50000000])
        head = ("POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
                % (self.host_header, MPLANE, n)).encode()
        await self.garbage("garbage huge content-length", head)

    async def g_unknown_path(self):
        c = random.randrange(10)
        if c == 0:
            raw = build_request("GET", "/nope-%d" % random.randrange(10 ** 6), self.host_header)
        elif c == 1:
            raw = build_request("GET", "/capability/" + new_token(), self.host_header)
        elif c == 2:
            raw = build_request("GET", "/capability/../../etc/passwd", self.host_header)
        elif c == 3:
            raw = build_request("GET", "/" + "a" * random.choice([300, 4000, 7000]), self.host_header)
        elif c == 4:
            raw = build_request("GET", "/%00%ff%2e%2e/capability?x=%zz", self.host_header)
        elif c == 5:
            raw = build_request("POST", "/nope", self.host_header, body=b"{}", ctype=MPLANE)
        elif c == 6:
            raw = build_request(random.choice(["PUT", "DELETE", "PATCH", "OPTIONS", "BREW"]), "/",
                                self.host_header, body=b"{}", ctype=MPLANE)
        elif c == 7:
            raw = build_request("GET", "http://example.invalid/capability", self.host_header)
        elif c == 8:
            raw = build_request("HEAD", "/capability", self.host_header)
        else:
            raw = build_request("GET", "/capability/", self.host_header)
        await self.garbage("garbage unknown path/method", raw)

    async def g_bad_http(self):
        c = random.randrange(6)
        if c == 0:
            raw = os.urandom(random.randint(1, 2048)) + b"\r\n\r\n"
        elif c == 1:
            raw = b"GET / HTTP/9.9\r\nHost: x\r\n\r\n"
        elif c == 2:
            raw = b"GET / HTTP/1.1\r\nHost x no colon\r\n\r\n"
        elif c == 3:
            raw = b"GET  /  HTTP/1.1  extra\r\n\r\n"
        elif c == 4:
            raw = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello"
        else:
            raw = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: " \
                  + MPLANE.encode() + b"\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
        await self.garbage("garbage not http", raw)

    # -- slow clients -----------------------------------------------------------------------

    SLOW_VARIANTS = ["head trickle (slowloris)", "body trickle", "head then silence", "half head then silence"]

    async def slow_client(self, i):
        n = i
        while not self.stopping.is_set():
            variant = self.SLOW_VARIANTS[n % len(self.SLOW_VARIANTS)]
            n += 1
            await self.slow_connection(i, variant)
            try:
                await asyncio.wait_for(self.stopping.wait(), 0.5)
            except asyncio.TimeoutError:
                pass

    def slow_bytes(self, variant):
        """(sent at once, then trickled one byte at a time: an iterator, or None for silence)."""
        hh = self.host_header
        if variant == "head trickle (slowloris)":
            def gen():
                yield from ("GET /capability HTTP/1.1\r\nHost: %s\r\n" % hh).encode()
                k = 0
                while True:
                    yield from ("X-Soak-%d: %d\r\n" % (k, k)).encode()
                    k += 1
            return b"", gen()
        if variant == "body trickle":
            head = ("POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: 1000000\r\n\r\n"
                    % (hh, MPLANE)).encode()
            def gen():
                while True:
                    yield 0x20
            return head, gen()
        if variant == "head then silence":
            return ("POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: 300\r\n\r\n"
                    % (hh, MPLANE)).encode(), None
        return ("GET /capability HTTP/1.1\r\nHost: %s\r\n" % hh).encode(), None

    async def slow_connection(self, i, variant):
        t = time.monotonic()
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(self.host, self.port, local_addr=self.source()), 5)
        except (OSError, asyncio.TimeoutError) as e:
            self.slow.record(variant, "connect failed " + type(e).__name__, 0.0)
            return
        self.slow_open[i] = (variant, t)
        first, trickle = self.slow_bytes(variant)
        ended = asyncio.ensure_future(read_response(r))
        stop = asyncio.ensure_future(self.stopping.wait())
        outcome = None
        try:
            if first:
                w.write(first)
                await w.drain()
            while outcome is None:
                elapsed = time.monotonic() - t
                if elapsed >= self.args.slow_max_hold:
                    outcome = "held past %gs, client closed" % self.args.slow_max_hold
                    break
                wait = min(self.args.slow_interval, self.args.slow_max_hold - elapsed)
                done, _ = await asyncio.wait({ended, stop}, timeout=wait)
                if ended in done:
                    break
                if stop in done:
                    outcome = "still open at end"
                    break
                if trickle is not None:
                    w.write(bytes([next(trickle)]))
                    await w.drain()
        except (OSError, ConnectionError) as e:
            # the server went away while we wrote: see what it said, if anything
            await asyncio.wait({ended}, timeout=1.0)
            if not ended.done():
                outcome = "server reset while sending (%s)" % type(e).__name__
        if outcome is None:
            if ended.done() and not ended.cancelled():
                exc = ended.exception()
                if exc is None:
                    outcome = "server answered %d" % ended.result()[0]
                elif isinstance(exc, Closed):
                    outcome = "server closed"
                else:
                    outcome = "server reset (%s)" % type(exc).__name__
            else:
                outcome = "unknown"
        for f in (ended, stop):
            if not f.done():
                f.cancel()
        w.close()
        self.slow_open.pop(i, None)
        self.slow.record(variant, outcome, time.monotonic() - t)

    # -- process sampling -------------------------------------------------------------------

    def read_proc(self):
        pid = self.args.pid
        try:
            with open("/proc/%d/status" % pid) as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
        except (FileNotFoundError, ProcessLookupError):
            return None
        if status.get("State", "").strip().startswith(("Z", "X")):
            return None
        kib = lambda k: int(status[k].split()[0]) if k in status else None
        try:
            fds = len(os.listdir("/proc/%d/fd" % pid))
        except OSError:
            fds = None
        cpu = None
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
        return {"rss_kib": kib("VmRSS"), "hwm_kib": kib("VmHWM"), "threads": kib("Threads"),
                "fds": fds, "cpu_s": cpu}

    def sample(self):
        p = self.read_proc()
        now = round(time.monotonic() - self.t0, 1)
        if p is None:
            if self.died is None:
                self.died = now
                print("soak: process %d is gone at t=%gs" % (self.args.pid, now), file=sys.stderr)
            self.stopping.set()
            return None
        p["t_s"] = now
        self.samples.append(p)
        return p

    async def sampler(self):
        k = 0
        while not self.stopping.is_set():
            k += 1
            wait = self.t0 + k * self.args.sample_every - time.monotonic()
            try:
                await asyncio.wait_for(self.stopping.wait(), max(0.0, wait))
                break
            except asyncio.TimeoutError:
                pass
            p = self.sample()
            if p is not None:
                v = [s for s in self.stats.values() if s.cls == "valid"]
                g = [s for s in self.stats.values() if s.cls == "garbage"]
                print("[t=%5.0fs] RSS %d KiB (hwm %d), threads %s, fds %s | valid %d sent, %d unanswered | "
                      "garbage %d sent | slow open %d" % (
                          p["t_s"], p["rss_kib"], p["hwm_kib"], p["threads"], p["fds"],
                          sum(s.sent for s in v), sum(s.unanswered for s in v), sum(s.sent for s in g),
                          len(self.slow_open)), file=sys.stderr, flush=True)

    # -- driver -----------------------------------------------------------------------------

    def mix(self):
        a = self.args
        return [
            (self.v_cap_list, 8), (self.v_cap_one, 12), (self.v_spec_loopback, 30),
            (self.v_spec_counter, 6), (self.v_spec_counter_receipt, 1), (self.v_redeem, 8),
            (self.v_interrupt, 0.5),
            (self.g_random_body, 5 * a.garbage_weight), (self.g_bad_json, 5 * a.garbage_weight),
            (self.g_truncated_json, 4 * a.garbage_weight), (self.g_wrong_ctype, 4 * a.garbage_weight),
            (self.g_huge_length, 1.5 * a.garbage_weight), (self.g_unknown_path, 4 * a.garbage_weight),
            (self.g_bad_http, 2 * a.garbage_weight),
        ]

    async def driver(self, deadline):
        fns, weights = zip(*[(f, w) for f, w in self.mix() if w > 0])
        sem = asyncio.Semaphore(self.args.max_inflight)
        tasks = set()
        loop = asyncio.get_running_loop()
        tick = 0.01
        credit = 0.0
        last = loop.time()
        while not self.stopping.is_set() and loop.time() < deadline:
            now = loop.time()
            credit = min(credit + (now - last) * self.args.rate, self.args.rate)  # at most 1 s of catch-up
            last = now
            while credit >= 1 and not self.stopping.is_set():
                credit -= 1
                if sem.locked():
                    self.backpressure += 1
                await sem.acquire()
                fn = random.choices(fns, weights)[0]
                task = asyncio.ensure_future(fn())
                tasks.add(task)
                self.launched += 1

                def done(t, sem=sem):
                    tasks.discard(t)
                    sem.release()
                    if not t.cancelled() and t.exception() is not None:
                        print("soak: internal error in a request task: %r" % t.exception(), file=sys.stderr)
                task.add_done_callback(done)
            await asyncio.sleep(tick)
        return tasks

    async def run(self):
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.stopping.set)
            except (NotImplementedError, RuntimeError):
                pass
        self.t0 = time.monotonic()
        if self.read_proc() is None:
            raise SystemExit("soak: no live process %d" % self.args.pid)
        await self.discover()
        self.sample()
        cpu0 = os.times()
        sampler = asyncio.ensure_future(self.sampler())
        slow = [asyncio.ensure_future(self.slow_client(i)) for i in range(self.args.slow)]
        deadline = loop.time() + self.args.minutes * 60
        tasks = await self.driver(deadline)
        self.load_seconds = time.monotonic() - self.t0
        early = self.stopping.is_set() and self.died is None and self.load_seconds < self.args.minutes * 60 - 1
        self.stopped_early = early or self.died is not None
        final = self.sample()  # the end-of-load sample
        self.stopping.set()
        if tasks:
            # every request has its own timeout; this bounds the drain regardless
            _, pending = await asyncio.wait(tasks, timeout=max(self.args.valid_timeout, self.args.garbage_timeout) + 5)
            for t in pending:
                t.cancel()
        await asyncio.wait(slow + [sampler], timeout=10)
        for t in slow + [sampler]:
            t.cancel()
        self.pool.close()
        cpu1 = os.times()
        self.gen_cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
        if self.read_proc() is None and self.died is None:
            self.died = round(time.monotonic() - self.t0, 1)
        self.final_sample = final or (self.samples[-1] if self.samples else None)

    # -- report -----------------------------------------------------------------------------

    def summary(self):
        a = self.args
        base_t = a.baseline_minute * 60
        if self.load_seconds < base_t + a.sample_every:
            base_t = self.load_seconds / 2
        base = next((s for s in self.samples if s["t_s"] >= base_t), self.samples[0] if self.samples else None)
        end = self.final_sample
        rss_max = max((s["rss_kib"] for s in self.samples), default=None)
        valid = [s for s in self.stats.values() if s.cls == "valid"]
        garbage = [s for s in self.stats.values() if s.cls == "garbage"]
        va = sum(s.answered for s in valid)
        vu = sum(s.unanswered for s in valid)
        vb = sum(s.bad for s in valid)
        cpu = [s["cpu_s"] for s in self.samples if s.get("cpu_s") is not None]
        out = {
            "target": a.url, "pid": a.pid, "minutes": a.minutes, "rate_per_s": a.rate,
            "load_seconds": round(self.load_seconds, 1), "stopped_early": self.stopped_early,
            "process_died_at_s": self.died,
            "requests_launched": self.launched,
            "achieved_rate_per_s": round(self.launched / self.load_seconds, 1) if self.load_seconds else None,
            "launches_delayed_by_max_inflight": self.backpressure,
            "generator_cpu_s": round(self.gen_cpu, 1),
            "server_cpu_s": round(cpu[-1] - cpu[0], 1) if len(cpu) > 1 else None,
            "rss": {
                "baseline_t_s": base["t_s"] if base else None, "baseline_kib": base["rss_kib"] if base else None,
                "end_t_s": end["t_s"] if end else None, "end_kib": end["rss_kib"] if end else None,
                "max_kib": rss_max,
                "delta_kib": (end["rss_kib"] - base["rss_kib"]) if base and end else None,
                "hwm_end_kib": end["hwm_kib"] if end else None,
                "fds_baseline": base["fds"] if base else None, "fds_end": end["fds"] if end else None,
                "threads_end": end["threads"] if end else None,
            },
            "valid": {"answered": va, "unanswered": vu, "bad_answers": vb},
            "garbage": {"sent": sum(s.sent for s in garbage), "answered": sum(s.answered for s in garbage),
                        "unanswered": sum(s.unanswered for s in garbage)},
            "kinds": {k: s.as_json() for k, s in sorted(self.stats.items(), key=lambda kv: (kv[1].cls != "valid", kv[0]))},
            "slow_clients": self.slow.as_json(),
            "unanswered_examples": self.unanswered_examples,
            "samples": self.samples,
        }
        bm = (base["t_s"] / 60) if base else 0
        em = (end["t_s"] / 60) if end else 0
        fmt = lambda m: ("%d" % round(m)) if abs(m - round(m)) < 0.05 else ("%.1f" % m)
        verdict = ("soak: RSS at minute %s %s KiB, at minute %s %s KiB, delta %s KiB; "
                   "valid requests %d answered, %d unanswered" % (
                       fmt(bm), out["rss"]["baseline_kib"], fmt(em), out["rss"]["end_kib"],
                       ("%+d" % out["rss"]["delta_kib"]) if out["rss"]["delta_kib"] is not None else "?", va, vu))
        if self.died is not None:
            verdict += "; PROCESS DIED at %gs" % self.died
        out["verdict"] = verdict
        out["ok"] = vu == 0 and self.died is None
        return out

    def table(self, out):
        lines = []
        r = out["rss"]
        lines.append("target %s pid %d: %.1f s of load at %g req/s asked, %.1f req/s achieved "
                     "(generator CPU %.1f s, server CPU %s s)" % (
                         out["target"], out["pid"], out["load_seconds"], out["rate_per_s"],
                         out["achieved_rate_per_s"] or 0, out["generator_cpu_s"], out["server_cpu_s"]))
        lines.append("RSS KiB: at %ss %s, at end (%ss) %s, max %s, delta %s; VmHWM %s; fds %s -> %s; threads %s" % (
            r["baseline_t_s"], r["baseline_kib"], r["end_t_s"], r["end_kib"], r["max_kib"], r["delta_kib"],
            r["hwm_end_kib"], r["fds_baseline"], r["fds_end"], r["threads_end"]))
        series = ", ".join("%g:%d" % (s["t_s"], s["rss_kib"]) for s in out["samples"])
        lines.append("RSS samples (s:KiB): " + series)
        lines.append("")
        hdr = "%-30s %-7s %7s %8s %6s %4s %8s %8s %8s  %s" % (
            "kind", "class", "sent", "answered", "unans", "bad", "p50 ms", "p99 ms", "max ms", "outcomes")
        lines.append(hdr)
        lines.append("-" * len(hdr))
        for k, s in out["kinds"].items():
            l = s["latency_ms"]
            f = lambda v: "-" if v is None else "%.1f" % v
            lines.append("%-30s %-7s %7d %8d %6d %4d %8s %8s %8s  %s" % (
                k[:30], s["class"], s["sent"], s["answered"], s["unanswered"], s["bad_answers"],
                f(l["p50"]), f(l["p99"]), f(l["max"]),
                ", ".join("%s: %d" % kv for kv in s["outcomes"].items())))
        lines.append("")
        lines.append("%-26s %5s  %s" % ("slow client", "conns", "how it ended: count (hold min/mean/max s)"))
        for v, s in out["slow_clients"].items():
            parts = ["%s: %d (%s/%s/%s)" % (o, c, s["hold_s"][o]["min"], s["hold_s"][o]["mean"], s["hold_s"][o]["max"])
                     for o, c in s["outcomes"].items()]
            lines.append("%-26s %5d  %s" % (v, s["connections"], "; ".join(parts)))
        if out["unanswered_examples"]:
            lines.append("")
            lines.append("unanswered valid requests (first %d):" % len(out["unanswered_examples"]))
            for e in out["unanswered_examples"]:
                lines.append("  t=%ss %s: %s %s" % (e["t_s"], e["kind"], e["outcome"], e["detail"]))
        return "\n".join(lines)


def parse_target(url):
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http":
        raise SystemExit("soak: only http:// URLs")
    if u.hostname not in ("127.0.0.1", "::1"):
        raise SystemExit("soak: refusing target %r: only 127.0.0.1 and ::1" % u.hostname)
    if u.path not in ("", "/"):
        raise SystemExit("soak: give the component's root URL (path /)")
    return u.hostname, u.port or 80


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="the component's root, http://127.0.0.1:PORT/ or http://[::1]:PORT/")
    p.add_argument("--pid", type=int, required=True, help="the mpcom process to sample")
    p.add_argument("--minutes", type=float, required=True, help="duration of the load (0 < m <= 1440)")
    p.add_argument("--out", help="also write the JSON summary here")
    p.add_argument("--rate", type=float, default=200.0, help="requests started per second, all kinds (default 200, max 2000)")
    p.add_argument("--max-inflight", type=int, default=256, help="requests in flight at most (default 256)")
    p.add_argument("--clients", type=int, default=16,
                   help="source addresses 127.0.0.2 ... the load comes from, in turn (default 16; 1: one address)")
    p.add_argument("--garbage-weight", type=float, default=1.0,
                   help="scale of the garbage share (default 1: about a third of requests; 0: none)")
    p.add_argument("--keepalive-share", type=float, default=0.5,
                   help="share of valid requests sent on kept-alive connections (default 0.5)")
    p.add_argument("--pool", type=int, default=8,
                   help="idle kept-alive connections kept for reuse (default 8; each counts against "
                        "a per-client connection limit of the server)")
    p.add_argument("--valid-timeout", type=float, default=15.0, help="a valid request unanswered after this is a failure (s)")
    p.add_argument("--garbage-timeout", type=float, default=5.0, help="wait for an answer to garbage this long (s)")
    p.add_argument("--slow", type=int, default=4, help="slow client connections (default 4, max 64)")
    p.add_argument("--slow-interval", type=float, default=2.0, help="seconds between trickled bytes (default 2)")
    p.add_argument("--slow-max-hold", type=float, default=150.0,
                   help="a slow connection still open after this is closed by the client and counted as held (s)")
    p.add_argument("--sample-every", type=float, default=10.0, help="RSS sampling period (s)")
    p.add_argument("--baseline-minute", type=float, default=2.0,
                   help="RSS baseline sample (default minute 2; half the run when the run is shorter)")
    p.add_argument("--seed", type=int, help="random seed")
    a = p.parse_args()
    if not (0 < a.minutes <= 1440):
        p.error("--minutes must be in (0, 1440]")
    if not (0 < a.rate <= 2000):
        p.error("--rate must be in (0, 2000]")
    if not (0 <= a.slow <= 64):
        p.error("--slow must be in [0, 64]")
    if not (0 <= a.pool <= 256):
        p.error("--pool must be in [0, 256]")
    if not (1 <= a.max_inflight <= 2000):
        p.error("--max-inflight must be in [1, 2000]")
    if a.slow_interval <= 0 or a.slow_max_hold <= 0 or a.sample_every <= 0 or a.valid_timeout <= 0:
        p.error("intervals must be positive")
    if a.seed is not None:
        random.seed(a.seed)
    host, port = parse_target(a.url)
    soak = Soak(a, host, port)

    # Watchdog: whatever happens, the process ends a bounded time after the planned end.
    budget = a.minutes * 60 + a.valid_timeout + a.garbage_timeout + 60
    try:
        asyncio.run(asyncio.wait_for(soak.run(), budget))
    except asyncio.TimeoutError:
        print("soak: watchdog: overran %gs, stopping" % budget, file=sys.stderr)
        if soak.t0 is None or not soak.samples:
            return 1
        soak.load_seconds = getattr(soak, "load_seconds", time.monotonic() - soak.t0)
        soak.stopped_early = True
        soak.gen_cpu = getattr(soak, "gen_cpu", 0.0)
        soak.final_sample = soak.samples[-1]
    except (OSError, Closed, asyncio.IncompleteReadError) as e:
        print("soak: cannot talk to %s: %s" % (a.url, e), file=sys.stderr)
        return 2
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    out = soak.summary()
    text = json.dumps(out, indent=2)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    print(text)
    print()
    print(soak.table(out))
    print()
    print(out["verdict"])
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

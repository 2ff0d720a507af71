public import MPlane
public import Logging
import CSupport
public import MPlaneProbe
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What to measure: destinations, pacing, and the probes' shape.
public struct PingPlan: Sendable {
    public var family: IPAddress.Family
    /// The address to send from (bound), nil for the kernel's choice.
    public var source: IPAddress?
    public var targets: [IPAddress]
    /// Nanoseconds between two probes to the same destination. Probes to different
    /// destinations are spread evenly over it (round robin).
    public var interval: Int64
    /// Rounds (one probe to every destination each), nil to run until stopped.
    public var rounds: Int?
    /// How long a probe waits for its reply, nanoseconds.
    public var timeout: Int64 = 1_000_000_000
    /// Echo payload bytes (8 or more carry our stamp).
    public var payload: Int = 56
    public var ttl: Int?
    public var tos: Int?
    public var socket: SocketKind = .auto
    /// Ask the kernel for transmit timestamps (else the send time is read in user space
    /// just before the send, as iputils ping does).
    public var transmitTimestamps = true
    /// Keep the send-schedule error of every probe (benchmarks).
    public var recordScheduleErrors = false
    /// A named network namespace (`ip netns`) to measure from: the thread running the
    /// plan moves into it before opening its socket.
    public var networkNamespace: String?
    /// The most datagrams one system call sends or receives (`sendmmsg`, `recvmmsg`), 1 to 64;
    /// 1 makes one call per datagram. Only probes already due are sent together, so batching
    /// never sends early. Each unit costs a 2 KiB receive record and a packet slot.
    public var batch: Int = 32
    /// At most how long before a probe's due time the loop stops sleeping and watches the
    /// clock, nanoseconds (0 to 1 ms). Within it the loop learns the timer's own lateness
    /// and uses that (``SpinLead``). The CPU this costs is at most this much per probe; 0
    /// spends none and sends as late as the timer wakes (BENCHMARKS.md, "Ping").
    public var spinLead: Int64 = PingEngine.defaultSpinLead
    /// The share of the timer's wake-ups the learned lead covers (``SpinLead/quantile``).
    public var spinLeadQuantile = SpinLead.defaultQuantile

    public init(family: IPAddress.Family, source: IPAddress? = nil, targets: [IPAddress], interval: Int64,
                rounds: Int?) {
        self.family = family
        self.source = source
        self.targets = targets
        self.interval = interval
        self.rounds = rounds
    }

    /// The socket receive buffer to ask for, bytes: room for 100 ms of replies at the plan's
    /// rate (about 1 KiB each as the kernel accounts them), at least 256 KiB, at most 4 MiB
    /// (the kernel doubles the figure for its own bookkeeping).
    public var receiveBuffer: Int {
        let perSecond = Int64(targets.count) * 1_000_000_000 / Swift.max(1, interval)
        return Int(Swift.min(Int64(4 << 20), Swift.max(Int64(256 << 10), perSecond / 10 * 1024)))
    }

    /// The most payload bytes an echo request may carry (65535 minus IP and ICMP headers).
    public static let maximumPayload = 65_507
}

/// What a run came to, beyond the rows the sink received.
public struct PingReport: Sendable {
    public var statistics: [TargetStatistics]
    public var socket: SocketKind
    public var identifier: UInt16
    /// Samples timed by each source (indexed by ``TimestampSource/rawValue``).
    public var sourceCounts: [Int]
    public var foreign: Int
    public var stray: Int
    /// Failed sends by errno.
    public var sendErrors: [Int32: Int]
    /// Actual minus scheduled send time of each probe, ns (if recorded).
    public var scheduleErrors: [Int64]
    /// Probes sent in all.
    public var sent: Int
    /// The probe's own error: how late it sent, how long replies waited to be read.
    public var ownError = OwnError()
    /// The wall clock during the run.
    public var clock: ClockWatch? = nil
    /// System calls that sent probes, and the most one of them sent.
    public var sendCalls = 0
    public var largestSend = 0
    /// System calls that returned replies, errors or timestamps, and the most one returned.
    public var receiveCalls = 0
    public var largestReceive = 0
    /// The spin's lead as the run learned it (``SpinLead``).
    public var spinLead = SpinLead(maximum: 0)

    /// The timestamp source most samples used (`user` when there were none).
    public var dominantSource: TimestampSource {
        let best = sourceCounts.indices.max { sourceCounts[$0] < sourceCounts[$1] } ?? 2
        return sourceCounts[best] == 0 ? .user : TimestampSource(rawValue: UInt8(best)) ?? .user
    }
}

/// Runs ICMP echo measurements on the calling thread: one socket, one loop that sends on
/// an absolute schedule and receives with kernel timestamps, all buffers allocated before
/// the first probe.
public enum PingEngine {
    /// Longest the loop sleeps without looking at `shouldStop`.
    static let stopCheck: Int64 = 20_000_000
    /// ``PingPlan/spinLead`` unless set: 40 µs.
    public static let defaultSpinLead: Int64 = 40_000
    /// Below this gap between probes (1 ms: more than 1,000 probes/s) the loop does not
    /// wake for replies; it reads them after its sends. Saves one wake-up per probe.
    static let deferReadsBelow: Int64 = 1_000_000
    /// How long deferred replies may wait to be read: 500 µs (a few dozen replies at
    /// 100,000 probes/s, read in one or two calls).
    static let deferredReadWindow: Int64 = 500_000

    /// Runs `plan` until its rounds are done and answered or timed out, or `shouldStop`
    /// returns true. Blocks: call it from a thread of its own (see ``run(_:sink:logger:shouldStop:)``).
    public static func runBlocking<S: PingSink>(_ plan: PingPlan, sink: inout S, logger: Logger? = nil,
                                                shouldStop: () -> Bool) throws(PingError) -> PingReport {
        guard !plan.targets.isEmpty else { throw PingError(.destination, "no destination to probe") }
        guard plan.interval > 0 else { throw PingError(.plan, "the interval between probes must be positive") }
        guard plan.payload >= 0, plan.payload <= PingPlan.maximumPayload else {
            throw PingError(.plan, "payload of \(plan.payload) bytes is outside 0...\(PingPlan.maximumPayload)")
        }
        for t in plan.targets where t.family != plan.family {
            throw PingError(.destination, "destination \(t) is not an \(plan.family == .v4 ? "IPv4" : "IPv6") address")
        }
        _ = csupport_set_timerslack_ns(1_000)
        if let ns = plan.networkNamespace {
            let r = csupport_enter_netns("/var/run/netns/\(ns)")
            guard r == 0 else { throw PingError(.namespace, "cannot enter network namespace \(ns): \(errorText(-r))", errno: -r) }
        }
        let wanted = UInt16.random(in: 1...UInt16.max)
        let socket = try ICMPSocket(family: plan.family, kind: plan.socket, source: plan.source, ttl: plan.ttl,
                                    tos: plan.tos, identifier: wanted, transmitTimestamps: plan.transmitTimestamps,
                                    receiveBuffer: plan.receiveBuffer)
        logger?.debug("ICMP socket open", metadata: [
            "ping.socket": "\(socket.kind.name)", "ping.identifier": "\(socket.identifier)",
            "ping.rx-timestamps": "\(socket.receiveTimestamps ? "kernel" : "user")",
            "ping.tx-timestamps": "\(socket.transmitTimestamps ? "kernel" : "user")",
        ])
        let n = plan.targets.count
        let gap = Swift.max(1, plan.interval / Int64(n))
        let total = plan.rounds.map { $0 * n }
        let inFlight = Int(Swift.min(65_536, plan.timeout / gap + 2))
        var tracker = PingTracker(targets: plan.targets, identifier: socket.identifier,
                                  cookie: UInt32.random(in: 0...UInt32.max), timeout: plan.timeout, inFlight: inFlight,
                                  expectedPerTarget: Swift.min(plan.rounds ?? 1024, 1 << 16))

        // Everything the loop touches, allocated once.
        let sender = try ProbeSender(fd: socket.fd, family: plan.family, identifier: socket.identifier,
                                     destinations: plan.targets, payload: plan.payload, batch: plan.batch)
        let reader = try ReplyReader(family: plan.family, withIPHeader: plan.family == .v4 && socket.kind == .raw,
                                     batch: plan.batch)
        var scheduleErrors: [Int64] = []
        if plan.recordScheduleErrors { scheduleErrors.reserveCapacity(Swift.min(total ?? 1 << 16, 1 << 24)) }
        var sendErrors: [Int32: Int] = [:]
        let fd = socket.fd
        func drain(errorQueue: Bool) { reader.drain(fd: fd, errorQueue: errorQueue, tracker: &tracker, sink: &sink) }
        /// Reads what waits on both queues, without blocking.
        func readWaiting() throws(PingError) {
            let ready = csupport_poll_in(fd, 0)
            if ready < 0 && -ready != EINTR {
                throw PingError(.socket, "the ICMP socket failed: \(errorText(-ready))", errno: -ready)
            }
            if ready > 0 {
                if ready & Int32(CSUPPORT_POLL_ERR) != 0 { drain(errorQueue: true) }
                drain(errorQueue: false)
            }
        }
        // Probes less than `deferReadsBelow` apart: replies are read just before each send
        // instead of waking for each. Only with kernel receive timestamps, so the round trip
        // does not include the wait (which the result reports as the read delay).
        // They are read every `readEvery` probes: at most `deferredReadWindow` late, in
        // batches, and never more than two receive batches at once (well within the
        // smallest receive buffer, 256 KiB, even at a million probes/s).
        var lead = SpinLead(maximum: Swift.min(1_000_000, Swift.max(0, plan.spinLead)), quantile: plan.spinLeadQuantile)
        let deferReads = socket.receiveTimestamps && gap < Self.deferReadsBelow
        let readEvery = deferReads ? Swift.min(2 * reader.batch, Swift.max(1, Int(Self.deferredReadWindow / gap))) : 1
        var lastRead = 0

        var ownError = OwnError()
        let start = csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC))
        var clock = ClockWatch(state: ClockState.read(), real: csupport_clock_ns(Int32(CSUPPORT_CLOCK_REALTIME)), mono: start)
        var k = 0
        while true {
            if shouldStop() {
                drain(errorQueue: true)
                drain(errorQueue: false)
                tracker.abandon(sink: &sink)
                break
            }
            var now = csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC))
            clock.sample(real: csupport_clock_ns(Int32(CSUPPORT_CLOCK_REALTIME)), mono: now)
            // Send every probe that is due, each at its own absolute time (no drift); several
            // due at once (a late wake-up, or a rate above what one call per probe keeps up
            // with) go in one call.
            // At most a few calls' worth per pass: then the replies are read, probes expire
            // and a stop is seen even when the plan asks for more than the socket takes.
            let passEnd = k + 4 * sender.batch
            while total.map({ k < $0 }) ?? true, k < passEnd, !(deferReads && k &- lastRead >= readEvery) {
                var m = 0
                while m < sender.batch, total.map({ k + m < $0 }) ?? true, start &+ Int64(k + m) &* gap <= now { m += 1 }
                if m == 0 { break }
                let first = k
                sender.send(count: m, target: { (first + $0) % n }, due: { start &+ Int64(first + $0) &* gap },
                            tracker: &tracker, sink: &sink) { j, lateness, e in
                    if e != 0 {
                        if sendErrors[e] == nil {
                            logger?.warning("ping send failed", metadata: [
                                "ping.destination": "\(plan.targets[(first + j) % n])", "error": "\(errorText(e))",
                            ])
                        }
                        sendErrors[e, default: 0] += 1
                    }
                    if plan.recordScheduleErrors { scheduleErrors.append(lateness) }
                    ownError.sent(lateness: lateness)
                }
                k += m
                now = csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC))
            }
            let sendingDone = total.map { k >= $0 } ?? false
            // Deferred replies are read right after the sends, every `readEvery` probes,
            // after the last send, and before anything expires: a reply that came in time is
            // never counted lost for being read late.
            if deferReads, k &- lastRead >= readEvery || (sendingDone && k != lastRead)
                || tracker.nextExpiry.map({ $0 <= now }) == true {
                try readWaiting()
                lastRead = k
                now = csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC))
            }
            tracker.expire(now: now, sink: &sink)
            if sendingDone && !tracker.hasOutstanding { break }
            var wake = now &+ stopCheck
            if !sendingDone {
                let due = start &+ Int64(k) &* gap
                if due &- now <= lead.current {
                    // The next probe is near: read what waits without blocking (unless reads
                    // are deferred), then wait for its time on the clock itself, not on a
                    // timer whose wake-up is late by tens of microseconds.
                    if !deferReads { try readWaiting() }
                    now = csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC))
                    while now < due { now = csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC)) }
                    continue
                }
                // Wake shortly before it, and spin the rest.
                wake = Swift.min(wake, due &- lead.current)
            }
            if let e = tracker.nextExpiry { wake = Swift.min(wake, e) }
            // Deferring, the wait is on the clock alone: the replies are read after the
            // sends, not by a wake-up of their own.
            let ready = csupport_poll_in(deferReads && !sendingDone ? -1 : fd, wake &- now)
            // A timed wait: how late the timer woke us teaches the spin's lead (not a wait a
            // signal cut short: that ends before its time).
            if ready == 0 && wake > now {
                let late = csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC)) &- wake
                if late >= 0 { lead.record(lateness: late) }
            }
            if ready < 0 && -ready != EINTR {
                throw PingError(.socket, "the ICMP socket failed: \(errorText(-ready))", errno: -ready)
            }
            if ready > 0 {
                // A pending socket error also raises POLLERR with an empty error queue: the
                // normal receive clears it, so both queues are read (no busy loop).
                if ready & Int32(CSUPPORT_POLL_ERR) != 0 { drain(errorQueue: true) }
                drain(errorQueue: false)
            }
        }
        clock.finish(state: ClockState.read(), real: csupport_clock_ns(Int32(CSUPPORT_CLOCK_REALTIME)),
                     mono: csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC)))
        ownError.readDelay = reader.readDelays
        return PingReport(statistics: tracker.statistics, socket: socket.kind, identifier: socket.identifier,
                          sourceCounts: tracker.sourceCounts, foreign: tracker.foreign, stray: tracker.stray,
                          sendErrors: sendErrors, scheduleErrors: scheduleErrors, sent: k, ownError: ownError, clock: clock,
                          sendCalls: sender.calls, largestSend: sender.largestCall, receiveCalls: reader.calls,
                          largestReceive: reader.largestRead, spinLead: lead)
    }

    /// Runs `plan` on a thread of its own and returns its report with the sink.
    public static func run<S: PingSink & Sendable>(_ plan: PingPlan, sink: S, logger: Logger? = nil,
                                                   shouldStop: @escaping @Sendable () -> Bool) async throws(PingError)
        -> (PingReport, S)
    {
        let outcome: Swift.Result<(PingReport, S), PingError>? = await ProbeThread.run(name: "mplane-ping") {
            var s = sink
            do throws(PingError) {
                let report = try runBlocking(plan, sink: &s, logger: logger, shouldStop: shouldStop)
                return .success((report, s))
            } catch {
                return .failure(error)
            }
        }
        guard let outcome else { throw PingError(.resources, "cannot start a thread for the measurement") }
        return try outcome.get()
    }
}


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
    /// Errors the kernel reports on a datagram socket for an earlier packet's ICMP error.
    static func mayBeEarlierProbesError(_ e: Int32) -> Bool {
        e == EHOSTUNREACH || e == ENETUNREACH || e == EHOSTDOWN || e == ECONNREFUSED || e == EPROTO || e == EMSGSIZE
    }

    /// Longest the loop sleeps without looking at `shouldStop`.
    static let stopCheck: Int64 = 20_000_000
    /// How long before a probe's due time the loop stops sleeping and watches the clock
    /// (nanoseconds): about the timer wake-up's own lateness on a loaded machine. The CPU
    /// this costs is at most this much per probe (BENCHMARKS.md, "Ping").
    static let spinLead: Int64 = 40_000

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
        var addresses = [sockaddr_storage](repeating: sockaddr_storage(), count: n)
        var lengths = [socklen_t](repeating: 0, count: n)
        for i in 0..<n { lengths[i] = SocketAddress.write(plan.targets[i], into: &addresses[i]) }
        let packetLength = 8 + plan.payload
        let packet = UnsafeMutableRawBufferPointer.allocate(byteCount: packetLength, alignment: 8)
        defer { packet.deallocate() }
        ICMP.fillPattern(packet)
        guard let rx = csupport_icmp_rx_create(2048) else { throw PingError(.resources, "out of memory for the receive buffer") }
        defer { csupport_icmp_rx_destroy(rx) }
        let receiveBuffer = rx.pointee.buf
        var scheduleErrors: [Int64] = []
        if plan.recordScheduleErrors { scheduleErrors.reserveCapacity(Swift.min(total ?? 1 << 16, 1 << 24)) }
        var sendErrors: [Int32: Int] = [:]
        let withIPHeader = plan.family == .v4 && socket.kind == .raw
        let fd = socket.fd

        var readDelays = SelfSample()
        func readDelay(_ ns: Int64) { readDelays.record(ns) }
        func drain(errorQueue: Bool) {
            var failures = 0
            while true {
                let r = csupport_icmp_recv(fd, rx, errorQueue ? 1 : 0)
                if r < 0 {
                    if -r == EAGAIN || -r == EWOULDBLOCK || -r == EINTR { return }
                    // A pending socket error is reported once; anything that persists is
                    // left for the next wake-up rather than spun on.
                    failures += 1
                    if failures > 8 { return }
                    continue
                }
                let nowMono = csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC))
                let nowReal = csupport_clock_ns(Int32(CSUPPORT_CLOCK_REALTIME))
                let bytes = UnsafeRawBufferPointer(start: receiveBuffer, count: Int(r))
                let from = withUnsafeBytes(of: &rx.pointee.from) { SocketAddress.read($0.baseAddress!) }
                if errorQueue {
                    guard rx.pointee.is_error != 0 else { continue }
                    let origin = rx.pointee.ee_origin
                    if origin == 4 /* SO_EE_ORIGIN_TIMESTAMPING */ {
                        if rx.pointee.kernel_ns != 0 {
                            tracker.transmitted(key: rx.pointee.ee_data, kernelReal: rx.pointee.kernel_ns)
                        }
                    } else if origin == 2 || origin == 3 /* SO_EE_ORIGIN_ICMP, _ICMP6 */ {
                        let type = UInt8(truncatingIfNeeded: rx.pointee.ee_type)
                        if ICMP.isError(type: type, family: plan.family),
                           let q = ICMP.parseQuotedRequest(bytes, family: plan.family) {
                            tracker.error(type: UInt8(truncatingIfNeeded: rx.pointee.ee_type),
                                          code: UInt8(truncatingIfNeeded: rx.pointee.ee_code),
                                          identifier: q.identifier, sequence: q.sequence, destination: from,
                                          sink: &sink)
                        }
                    }
                    continue
                }
                guard let from else { continue }
                switch ICMP.parse(bytes, family: plan.family, withIPHeader: withIPHeader) {
                case .echoReply(let id, let seq, let stamp):
                    if rx.pointee.kernel_ns != 0 { readDelay(nowReal &- rx.pointee.kernel_ns) }
                    tracker.reply(identifier: id, sequence: seq, stamp: stamp, from: from,
                                  kernelReal: rx.pointee.kernel_ns, nowMono: nowMono, nowReal: nowReal, sink: &sink)
                case .error(let type, let code, let id, let seq, let dst):
                    tracker.error(type: type, code: code, identifier: id, sequence: seq, destination: dst, sink: &sink)
                case .other:
                    break
                }
            }
        }

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
            // Send every probe that is due, each at its own absolute time (no drift).
            while total.map({ k < $0 }) ?? true {
                let due = start &+ Int64(k) &* gap
                if due > now { break }
                let t = k % n
                ICMP.writeEchoRequest(into: packet, family: plan.family, identifier: socket.identifier,
                                      sequence: tracker.nextSequence, cookie: tracker.cookie, probe: tracker.nextProbe)
                let real = csupport_clock_ns(Int32(CSUPPORT_CLOCK_REALTIME))
                let mono = csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC))
                func send() -> Int {
                    addresses.withUnsafeBufferPointer { a in
                        UnsafeRawPointer(a.baseAddress! + t).withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            Int(csupport_icmp_send(fd, packet.baseAddress!, packetLength, $0, lengths[t]))
                        }
                    }
                }
                var r = send()
                if r < 0, Self.mayBeEarlierProbesError(Int32(-r)) {
                    // An ICMP error for an earlier probe (another destination's unreachable)
                    // is also handed to the next send on the socket, which then fails though
                    // it did nothing wrong; that send consumed it: this one goes out. (The
                    // error reached its own probe through the error queue.) A destination
                    // that is itself unreachable fails again and is counted below.
                    r = send()
                }
                if r >= 0 {
                    tracker.sent(target: t, mono: mono, real: real, late: mono &- due > OwnError.lateBound, sink: &sink)
                } else {
                    let e = Int32(-r)
                    if sendErrors[e] == nil {
                        logger?.warning("ping send failed", metadata: [
                            "ping.destination": "\(plan.targets[t])", "error": "\(errorText(e))",
                        ])
                    }
                    sendErrors[e, default: 0] += 1
                    tracker.sendFailed(target: t, real: real, errno: e, sink: &sink)
                }
                if plan.recordScheduleErrors { scheduleErrors.append(mono &- due) }
                ownError.sent(lateness: mono &- due)
                k += 1
                now = csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC))
            }
            tracker.expire(now: now, sink: &sink)
            let sendingDone = total.map { k >= $0 } ?? false
            if sendingDone && !tracker.hasOutstanding { break }
            var wake = now &+ stopCheck
            if !sendingDone {
                let due = start &+ Int64(k) &* gap
                if due &- now <= spinLead {
                    // The next probe is near: read what waits without blocking, then wait
                    // for its time on the clock itself, not on a timer whose wake-up is late
                    // by tens of microseconds.
                    let ready = csupport_poll_in(fd, 0)
                    if ready < 0 && -ready != EINTR {
                        throw PingError(.socket, "the ICMP socket failed: \(errorText(-ready))", errno: -ready)
                    }
                    if ready > 0 {
                        if ready & Int32(CSUPPORT_POLL_ERR) != 0 { drain(errorQueue: true) }
                        drain(errorQueue: false)
                    }
                    now = csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC))
                    while now < due { now = csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC)) }
                    continue
                }
                // Wake shortly before it, and spin the rest.
                wake = Swift.min(wake, due &- spinLead)
            }
            if let e = tracker.nextExpiry { wake = Swift.min(wake, e) }
            let ready = csupport_poll_in(fd, wake &- now)
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
        ownError.readDelay = readDelays
        return PingReport(statistics: tracker.statistics, socket: socket.kind, identifier: socket.identifier,
                          sourceCounts: tracker.sourceCounts, foreign: tracker.foreign, stray: tracker.stray,
                          sendErrors: sendErrors, scheduleErrors: scheduleErrors, sent: k, ownError: ownError, clock: clock)
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


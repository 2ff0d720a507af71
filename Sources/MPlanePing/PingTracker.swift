public import MPlane

/// How a delay sample was timed.
public enum TimestampSource: UInt8, Sendable, CaseIterable {
    /// Kernel software timestamps on both ends (transmit from the error queue, receive
    /// from the control message).
    case kernel
    /// User-space send time, kernel receive timestamp.
    case kernelRX
    /// User-space monotonic clock on both ends.
    case user

    /// The value of the `icmp.timestamp.source` element.
    public var name: String {
        switch self {
        case .kernel: return "kernel"
        case .kernelRX: return "kernel-rx"
        case .user: return "user"
        }
    }
}

/// Why a probe got no reply.
public enum LossReason: Equatable, Sendable {
    case timeout
    case icmpError(type: UInt8, code: UInt8)
    case sendFailed(errno: Int32)
}

/// A probe whose fate is known, handed to the sink in the order the probes were sent.
public struct RetiredProbe: Equatable, Sendable {
    public var target: Int
    public var probe: UInt32
    /// Send time, CLOCK_REALTIME nanoseconds.
    public var sentReal: Int64
    /// Receive time of the reply, CLOCK_REALTIME nanoseconds (0 if lost).
    public var receivedReal: Int64
    /// Round-trip time in nanoseconds, nil if lost.
    public var roundTrip: Int64?
    public var source: TimestampSource
    public var loss: LossReason?
    /// Sent more than ``OwnError/lateBound`` after its due time: the probe itself moved it.
    public var sentLate = false
}

/// Receives probes as they retire; writes rows or statistics.
public protocol PingSink {
    mutating func retired(_ probe: RetiredProbe)
}

/// What one destination's probes came to.
public struct TargetStatistics: Equatable, Sendable {
    public var sent = 0
    public var received = 0
    public var lost = 0
    public var duplicates = 0
    public var late = 0
    public var errors = 0
    public var minimum: Int64 = .max
    public var maximum: Int64 = 0
    public var total: Int64 = 0
    /// Round-trip times received, nanoseconds: every one up to ``sampleLimit``, in arrival
    /// order; past it, a uniform random sample of them all (reservoir sampling), so that an
    /// open-ended job keeps bounded memory and an unbiased median.
    public var samples: [Int64] {
        get { reservoir.values }
        set { reservoir.values = newValue }
    }
    /// The most samples kept (see ``samples``).
    public var sampleLimit: Int {
        get { reservoir.limit }
        set { reservoir.limit = newValue }
    }
    /// Samples offered to ``record(_:)``, kept or not.
    public var sampled: Int { reservoir.offered }
    private var reservoir = Reservoir(limit: .max)

    public init() {}

    /// Keeps `rtt` among the samples, or in place of a random one once the limit is reached.
    public mutating func record(_ rtt: Int64) { reservoir.offer(rtt) }

    /// True when the median comes from a sample of the round-trip times, not all of them.
    public var medianIsEstimated: Bool { sampled > samples.count }

    /// Mean round-trip time in nanoseconds (nil without replies).
    public var mean: Int64? { received == 0 ? nil : total / Int64(received) }

    /// The median as the reference implementation takes it: the sample at index n/2 of
    /// the sorted samples.
    public var median: Int64? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        return sorted[sorted.count / 2]
    }
}

/// Matching and accounting of echo probes: which reply answers which probe, what is a
/// duplicate, a late reply, a stray packet or somebody else's. Pure state: the receive
/// loop feeds it packets and times; tests feed it recorded packets.
///
/// Probes are numbered from 0 in send order; a probe's sequence number is its number
/// modulo 2^16, and it lives in slot `number & mask` of a preallocated ring that must be
/// larger than the number of probes in flight. Probes retire (to the sink) strictly in send
/// order, once answered, failed or timed out.
public struct PingTracker: Sendable {
    public enum Outcome: Equatable, Sendable {
        case fresh, duplicate, late, foreign, stray, ignored
    }

    /// Round-trip samples one job keeps for its medians, all destinations together (2 MiB);
    /// each destination keeps at least ``minimumSamplesPerTarget``.
    public static let samplesPerJob = 262_144
    public static let minimumSamplesPerTarget = 256

    enum State: UInt8, Sendable { case free, pending, answered, lost, abandoned }

    struct Slot: Sendable {
        var probe: UInt32 = .max
        var target: Int32 = -1
        var state: State = .free
        var lateSeen = false
        var loss: LossReason? = nil
        var sentMono: Int64 = 0
        var sentReal: Int64 = 0
        var txKernel: Int64 = 0
        var receivedReal: Int64 = 0
        var roundTrip: Int64 = 0
        var source: TimestampSource = .user
        var sentLate = false
        /// The next probe went in the same send call (its user-space times are estimates).
        var sharesCall = false
    }

    public let targets: [IPAddress]
    public let identifier: UInt16
    public let cookie: UInt32
    public let timeout: Int64
    private var slots: [Slot]
    private let mask: Int
    private var transmitKeys: [UInt32]
    private var transmitCount: UInt32 = 0
    /// How far the kernel's transmit keys run ahead of our count of sends.
    private var transmitOffset: UInt32 = 0
    /// The next probe number to send.
    public private(set) var nextProbe: UInt32 = 0
    /// The oldest probe not yet retired.
    public private(set) var oldest: UInt32 = 0
    public private(set) var statistics: [TargetStatistics]
    /// Echo replies and errors for other identifiers or cookies (other programs' pings).
    public private(set) var foreign = 0
    /// Replies that match no probe still remembered (older than the ring).
    public private(set) var stray = 0
    /// Samples timed by each ``TimestampSource``.
    public private(set) var sourceCounts: [Int] = Array(repeating: 0, count: TimestampSource.allCases.count)

    /// - Parameters:
    ///   - inFlight: the most probes that can be outstanding at once (sets the ring size).
    ///   - expectedPerTarget: replies to reserve room for, per target.
    public init(targets: [IPAddress], identifier: UInt16, cookie: UInt32, timeout: Int64, inFlight: Int,
                expectedPerTarget: Int = 0) {
        self.targets = targets
        self.identifier = identifier
        self.cookie = cookie
        self.timeout = timeout
        var size = 64
        while size < inFlight * 2 && size < 65536 { size <<= 1 }
        slots = Array(repeating: Slot(), count: size)
        transmitKeys = Array(repeating: 0, count: size)
        mask = size - 1
        var s = TargetStatistics()
        s.sampleLimit = Swift.max(Self.minimumSamplesPerTarget, Self.samplesPerJob / Swift.max(1, targets.count))
        s.samples.reserveCapacity(Swift.min(expectedPerTarget, s.sampleLimit))
        statistics = Array(repeating: s, count: targets.count)
    }

    /// Number of ring slots (a power of two, at most 65536).
    public var capacity: Int { slots.count }

    /// True while some probe has not retired.
    public var hasOutstanding: Bool { oldest != nextProbe }

    /// The monotonic time at which the oldest pending probe times out.
    public var nextExpiry: Int64? {
        guard hasOutstanding else { return nil }
        let s = slots[Int(oldest) & mask]
        return s.state == .pending ? s.sentMono &+ timeout : nil
    }

    /// The sequence number the next probe carries.
    public var nextSequence: UInt16 { UInt16(truncatingIfNeeded: nextProbe) }

    // MARK: Sending

    /// Records probe ``nextProbe`` as sent to `target` at the given times; returns its number.
    @discardableResult
    /// `sharesCall`: the next probe goes in the same system call (a batch).
    public mutating func sent<S: PingSink>(target: Int, mono: Int64, real: Int64, late: Bool = false,
                                           sharesCall: Bool = false, sink: inout S) -> UInt32 {
        let probe = claim(target: target, real: real, sink: &sink)
        slots[Int(probe) & mask].sentMono = mono
        slots[Int(probe) & mask].sentLate = late
        slots[Int(probe) & mask].sharesCall = sharesCall
        slots[Int(probe) & mask].state = .pending
        statistics[target].sent += 1
        transmitKeys[Int(transmitCount) & mask] = probe
        transmitCount &+= 1
        return probe
    }

    /// Records that sending the next probe to `target` failed with `errno`: it is lost.
    public mutating func sendFailed<S: PingSink>(target: Int, real: Int64, errno: Int32, sink: inout S) {
        let probe = claim(target: target, real: real, sink: &sink)
        let i = Int(probe) & mask
        slots[i].state = .lost
        slots[i].loss = .sendFailed(errno: errno)
        statistics[target].sent += 1
        statistics[target].errors += 1
        advance(sink: &sink)
    }

    private mutating func claim<S: PingSink>(target: Int, real: Int64, sink: inout S) -> UInt32 {
        let probe = nextProbe
        let i = Int(probe) & mask
        // More probes in flight than the ring holds: the oldest give way as timed out.
        while nextProbe &- oldest >= UInt32(slots.count) {
            let j = Int(oldest) & mask
            if slots[j].state == .pending {
                slots[j].state = .lost
                slots[j].loss = .timeout
            }
            retire(j, sink: &sink)
        }
        slots[i] = Slot(probe: probe, target: Int32(target), state: .pending, sentReal: real)
        nextProbe &+= 1
        return probe
    }

    /// A kernel transmit timestamp for the `key`-th datagram the kernel sent on this socket
    /// (SOF_TIMESTAMPING_OPT_ID).
    ///
    /// Our count of sends and the kernel's keys drift apart when a send fails after the
    /// kernel has numbered the datagram (a firewall drop, a full queue): the kernel's key is
    /// then ahead by the number of such failures. So the key is tried at the offset last
    /// seen and a few beyond, and a timestamp is taken only where it is plausible: not
    /// before the probe's user-space send time, not after the next probe's, and within the
    /// timeout.
    public mutating func transmitted(key: UInt32, kernelReal: Int64) {
        for step: UInt32 in [0, 1, 2, 3, 4] {
            let offset = transmitOffset &+ step
            let index = key &- offset
            guard index < transmitCount, transmitCount &- index <= UInt32(slots.count) else { continue }
            let probe = transmitKeys[Int(index) & mask]
            let i = Int(probe) & mask
            guard slots[i].probe == probe, slots[i].state == .pending, slots[i].txKernel == 0 else { continue }
            // The clocks are read just before the send: allow a little for reading them.
            let delta = kernelReal &- slots[i].sentReal
            guard delta > -50_000, delta < timeout else { continue }
            // Not after the next probe's send, unless both went in one call (whose times
            // within it are estimates).
            let next = probe &+ 1
            let n = Int(next) & mask
            if next != nextProbe, slots[n].probe == next, !slots[i].sharesCall, kernelReal > slots[n].sentReal {
                continue
            }
            slots[i].txKernel = kernelReal
            transmitOffset = offset
            return
        }
    }

    // MARK: Receiving

    /// An echo reply from `from`, received at kernel time `kernelReal` (0 if none) and
    /// processed at `nowMono` / `nowReal`.
    @discardableResult
    public mutating func reply<S: PingSink>(identifier: UInt16, sequence: UInt16, stamp: ICMP.Stamp?, from: IPAddress,
                                            kernelReal: Int64, nowMono: Int64, nowReal: Int64, sink: inout S) -> Outcome {
        guard identifier == self.identifier, stamp.map({ $0.cookie == cookie }) ?? true else {
            foreign += 1
            return .foreign
        }
        let i = Int(sequence) & mask
        let s = slots[i]
        guard s.state != .free, UInt16(truncatingIfNeeded: s.probe) == sequence,
              stamp.map({ $0.probe == s.probe }) ?? true, s.state != .abandoned
        else {
            stray += 1
            return .stray
        }
        guard targets[Int(s.target)] == from else {
            foreign += 1
            return .foreign
        }
        switch s.state {
        case .pending:
            let (rtt, source) = Self.roundTrip(sentMono: s.sentMono, sentReal: s.sentReal, txKernel: s.txKernel,
                                               rxKernel: kernelReal, nowMono: nowMono, nowReal: nowReal,
                                               timeout: timeout)
            slots[i].state = .answered
            slots[i].roundTrip = rtt
            slots[i].source = source
            slots[i].receivedReal = kernelReal != 0 ? kernelReal : nowReal
            advance(sink: &sink)
            return .fresh
        case .answered:
            statistics[Int(s.target)].duplicates += 1
            return .duplicate
        case .lost:
            if s.lateSeen {
                statistics[Int(s.target)].duplicates += 1
                return .duplicate
            }
            statistics[Int(s.target)].late += 1
            slots[i].lateSeen = true
            return .late
        case .free, .abandoned:
            return .stray
        }
    }

    /// An ICMP error quoting probe `sequence` (sent to `destination`, if the quote says).
    @discardableResult
    public mutating func error<S: PingSink>(type: UInt8, code: UInt8, identifier: UInt16, sequence: UInt16,
                                            destination: IPAddress?, sink: inout S) -> Outcome {
        guard identifier == self.identifier else {
            foreign += 1
            return .foreign
        }
        let i = Int(sequence) & mask
        let s = slots[i]
        guard s.state == .pending, UInt16(truncatingIfNeeded: s.probe) == sequence,
              destination.map({ $0 == targets[Int(s.target)] }) ?? true
        else { return .ignored }
        slots[i].state = .lost
        slots[i].loss = .icmpError(type: type, code: code)
        statistics[Int(s.target)].errors += 1
        advance(sink: &sink)
        return .fresh
    }

    /// Times out the probes pending since `timeout` or longer before `now` (monotonic),
    /// and retires what can be retired.
    public mutating func expire<S: PingSink>(now: Int64, sink: inout S) {
        while oldest != nextProbe {
            let i = Int(oldest) & mask
            if slots[i].state == .pending {
                guard now == .max || slots[i].sentMono &+ timeout <= now else { return }
                slots[i].state = .lost
                slots[i].loss = .timeout
            }
            retire(i, sink: &sink)
        }
    }

    /// Ends the run early: probes still waiting for a reply are forgotten (counted neither
    /// as replies nor as losses); the others retire.
    public mutating func abandon<S: PingSink>(sink: inout S) {
        while oldest != nextProbe {
            let i = Int(oldest) & mask
            if slots[i].state == .pending {
                slots[i].state = .abandoned
                statistics[Int(slots[i].target)].sent -= 1
                oldest &+= 1
            } else {
                retire(i, sink: &sink)
            }
        }
    }

    private mutating func advance<S: PingSink>(sink: inout S) {
        while oldest != nextProbe {
            let i = Int(oldest) & mask
            guard slots[i].state != .pending else { return }
            retire(i, sink: &sink)
        }
    }

    private mutating func retire<S: PingSink>(_ i: Int, sink: inout S) {
        let s = slots[i]
        let t = Int(s.target)
        var out = RetiredProbe(target: t, probe: s.probe, sentReal: s.sentReal, receivedReal: 0, roundTrip: nil,
                               source: s.source, loss: s.loss, sentLate: s.sentLate)
        if s.state == .answered {
            statistics[t].received += 1
            statistics[t].minimum = Swift.min(statistics[t].minimum, s.roundTrip)
            statistics[t].maximum = Swift.max(statistics[t].maximum, s.roundTrip)
            statistics[t].total &+= s.roundTrip
            statistics[t].record(s.roundTrip)
            sourceCounts[Int(s.source.rawValue)] += 1
            out.receivedReal = s.receivedReal
            out.roundTrip = s.roundTrip
        } else {
            statistics[t].lost += 1
        }
        oldest &+= 1
        sink.retired(out)
    }

    /// The round-trip time of a probe and how it was timed.
    ///
    /// With kernel timestamps on both ends the delay is their difference. With a kernel
    /// receive timestamp only, the reply's age (real time now minus kernel time) is taken
    /// off the monotonic time now, so the interval stays on the monotonic clock. Without
    /// kernel timestamps (or when they disagree with the monotonic clock by more than the
    /// timeout, as after a clock step) the monotonic clock alone times the probe.
    public static func roundTrip(sentMono: Int64, sentReal: Int64, txKernel: Int64, rxKernel: Int64,
                                 nowMono: Int64, nowReal: Int64, timeout: Int64) -> (Int64, TimestampSource) {
        let user = nowMono &- sentMono
        if rxKernel != 0 {
            let age = nowReal &- rxKernel
            if age >= 0, age < timeout {
                if txKernel != 0 {
                    let rtt = rxKernel &- txKernel
                    if rtt >= 0, rtt <= user { return (rtt, .kernel) }
                }
                let rtt = user &- age
                if rtt >= 0 { return (rtt, .kernelRX) }
            }
        }
        return (user, .user)
    }
}

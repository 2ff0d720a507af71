public import MPlane

/// A uniform random sample of a stream of values (reservoir sampling): every value up to
/// `limit`, then each new one replaces a random kept one with the right probability, so the
/// sample stays unbiased in bounded memory. xorshift64*: no allocation, no lock, reproducible.
public struct Reservoir: Sendable, Equatable {
    public var values: [Int64] = []
    public var limit: Int
    /// Values offered, kept or not.
    public private(set) var offered = 0
    private var random: UInt64 = 0x9E37_79B9_7F4A_7C15

    public init(limit: Int) { self.limit = limit }

    @inline(__always)
    public mutating func offer(_ v: Int64) {
        offered += 1
        if values.count < limit {
            values.append(v)
            return
        }
        random ^= random >> 12
        random ^= random << 25
        random ^= random >> 27
        let r = Int((random &* 0x2545_F491_4F6C_DD1D) % UInt64(offered))
        if r < limit { values[r] = v }
    }
}

/// A bounded sample of a figure the probe measures about itself (nanoseconds), with the
/// exact count and maximum. Allocated once.
public struct SelfSample: Sendable {
    public static let limit = 4_096
    private var reservoir = Reservoir(limit: SelfSample.limit)
    public private(set) var maximum: Int64 = 0

    public init() { reservoir.values.reserveCapacity(Self.limit) }

    /// The values kept.
    public var values: [Int64] { reservoir.values }
    /// Values recorded, kept or not.
    public var count: Int { reservoir.offered }

    @inline(__always)
    public mutating func record(_ v: Int64) {
        if v > maximum { maximum = v }
        reservoir.offer(v)
    }

    /// The q-quantile (0...1) of the sample: the value at index ⌊q·(n−1)⌋ of the sorted
    /// values; nil without values.
    public func quantile(_ q: Double) -> Int64? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[Int(q * Double(sorted.count - 1))]
    }
}

/// What the probe knows of its own error in one active measurement.
public struct OwnError: Sendable {
    /// Actual minus due send time of each probe.
    public var schedule = SelfSample()
    /// Receive: from the kernel's timestamp of a reply to the moment the probe read it.
    public var readDelay = SelfSample()
    /// Probes sent later than ``lateBound`` after their due time: their samples do not sit
    /// where the schedule put them.
    public var sentLate = 0
    /// 1 ms.
    public static let lateBound: Int64 = 1_000_000

    public init() {}

    @inline(__always)
    public mutating func sent(lateness: Int64) {
        schedule.record(lateness)
        if lateness > Self.lateBound { sentLate += 1 }
    }

    /// The result metadata (microseconds): `probe.schedule.error.us.50pct`, `.99pct`,
    /// `.max`; `probe.read.delay.us.50pct`, `.99pct`, `.max` (left out without kernel receive
    /// timestamps); `probe.sent.late`.
    public var metadata: [(String, Value)] {
        func us(_ ns: Int64?) -> Value? { ns.map { .natural(UInt64(Swift.max(0, $0) + 500) / 1_000) } }
        var out: [(String, Value)] = []
        let figures = [(schedule, ElementName.probeScheduleErrorMedian, ElementName.probeScheduleError99, ElementName.probeScheduleErrorMax),
                       (readDelay, ElementName.probeReadDelayMedian, ElementName.probeReadDelay99, ElementName.probeReadDelayMax)]
        for (sample, median, p99, max) in figures where sample.count > 0 {
            if let v = us(sample.quantile(0.5)) { out.append((median, v)) }
            if let v = us(sample.quantile(0.99)) { out.append((p99, v)) }
            if let v = us(sample.maximum) { out.append((max, v)) }
        }
        out.append((ElementName.probeSentLate, .natural(UInt64(sentLate))))
        return out
    }
}

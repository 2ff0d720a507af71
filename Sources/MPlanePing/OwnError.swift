public import MPlane

/// A bounded sample of a figure the probe measures about itself (nanoseconds): every value
/// up to ``limit``, then a uniform random sample of them all, with the exact count and
/// maximum. Allocated once.
public struct SelfSample: Sendable {
    public static let limit = 4_096
    public private(set) var values: [Int64] = []
    public private(set) var count = 0
    public private(set) var maximum: Int64 = 0
    private var random: UInt64 = 0x2545_F491_4F6C_DD1D

    public init() { values.reserveCapacity(Self.limit) }

    @inline(__always)
    public mutating func record(_ v: Int64) {
        count += 1
        if v > maximum { maximum = v }
        if values.count < Self.limit {
            values.append(v)
            return
        }
        random ^= random >> 12
        random ^= random << 25
        random ^= random >> 27
        let r = Int((random &* 0x2545_F491_4F6C_DD1D) % UInt64(count))
        if r < Self.limit { values[r] = v }
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

public import MPlane
import CSupport

/// The system clock as the kernel reports it (`adjtimex` read without modes).
public struct ClockState: Sendable, Equatable {
    /// Synchronised: the kernel's state is not TIME_ERROR and STA_UNSYNC is clear (what
    /// `timedatectl` calls "System clock synchronized").
    public var synchronised: Bool
    public var estimatedErrorMicroseconds: Int64
    public var maximumErrorMicroseconds: Int64

    public init(synchronised: Bool, estimatedErrorMicroseconds: Int64, maximumErrorMicroseconds: Int64) {
        self.synchronised = synchronised
        self.estimatedErrorMicroseconds = estimatedErrorMicroseconds
        self.maximumErrorMicroseconds = maximumErrorMicroseconds
    }

    /// The state now, or nil where the read is refused (a sandbox: systemd's
    /// `ProtectClock=yes` refuses even a read with EPERM).
    public static func read() -> ClockState? {
        var s = csupport_clock_state()
        guard csupport_clock_state(&s) == 0 else { return nil }
        return ClockState(synchronised: s.state != 5 /* TIME_ERROR */ && s.status & 0x40 /* STA_UNSYNC */ == 0,
                          estimatedErrorMicroseconds: s.esterror_us, maximumErrorMicroseconds: s.maxerror_us)
    }
}

/// Watches the wall clock during a measurement: its state at the start and the end, and how
/// far it moved against the monotonic clock (a step, or a slew). Pure: the caller hands it
/// clock readings, so tests simulate a step without touching the machine's clock.
public struct ClockWatch: Sendable {
    public private(set) var start: ClockState?
    public private(set) var end: ClockState?
    private var startMono: Int64
    private var lastMono: Int64
    private var lowest: Int64
    private var highest: Int64

    /// The kernel may slew the clock by up to 500 ppm: more than that (plus 1 ms of reading
    /// jitter) over the measurement is a step.
    public static let slewPPM: Int64 = 500
    public static let jitter: Int64 = 1_000_000

    public init(state: ClockState?, real: Int64, mono: Int64) {
        start = state
        startMono = mono
        lastMono = mono
        lowest = real &- mono
        highest = lowest
    }

    /// One pair of readings taken together (nanoseconds).
    @inline(__always)
    public mutating func sample(real: Int64, mono: Int64) {
        let offset = real &- mono
        if offset < lowest { lowest = offset }
        if offset > highest { highest = offset }
        lastMono = mono
    }

    public mutating func finish(state: ClockState?, real: Int64, mono: Int64) {
        sample(real: real, mono: mono)
        end = state
    }

    /// How far the wall clock moved against the monotonic clock during the measurement
    /// (the spread of their difference), nanoseconds.
    public var offsetChange: Int64 { highest &- lowest }

    /// True when the wall clock moved more than slewing explains: it was stepped.
    public var stepped: Bool {
        offsetChange > Self.jitter + (lastMono &- startMono) / 1_000_000 * Self.slewPPM
    }

    /// The result metadata: `clock.synchronised.start` and `.end` (`yes`, `no`, or
    /// `unknown` where the state cannot be read), `clock.error.estimated.us` and
    /// `clock.error.maximum.us` at the end (left out when unknown), `clock.step.us` and
    /// `clock.stepped`.
    public var metadata: [(String, Value)] {
        func word(_ s: ClockState?) -> Value { .string(s.map { $0.synchronised ? "yes" : "no" } ?? "unknown") }
        var out: [(String, Value)] = [(ElementName.clockSynchronisedStart, word(start)), (ElementName.clockSynchronisedEnd, word(end))]
        if let end {
            out.append((ElementName.clockErrorEstimated, .natural(UInt64(Swift.max(0, end.estimatedErrorMicroseconds)))))
            out.append((ElementName.clockErrorMaximum, .natural(UInt64(Swift.max(0, end.maximumErrorMicroseconds)))))
        }
        out.append((ElementName.clockStep, .natural(UInt64(Swift.max(0, offsetChange)) / 1_000)))
        out.append((ElementName.clockStepped, .boolean(stepped)))
        return out
    }
}

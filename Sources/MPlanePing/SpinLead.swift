/// How long before a probe's due time the loop stops sleeping and watches the clock: learned
/// from how late the timer actually wakes it, up to the configured `spin-lead-us`.
///
/// The timer wakes late by the machine's own amount: 20–40 µs on the shared VM the benchmarks
/// ran on, a few microseconds on bare hardware (BENCHMARKS.md, "Ping"). A fixed lead tuned to
/// the first spins for most of it on the second, at a probe's cost each time. So the loop
/// records each timed wake-up's lateness, and every ``window`` wake-ups sets the lead to
/// the ``quantile`` of their lateness plus ``margin``, never more than the configured maximum.
///
/// Why a quantile and not the tail: each microsecond of lead costs a microsecond of spin on
/// every wake-up that came earlier than the lead, and takes a microsecond off the schedule
/// error of the ones that came later. At the default, 0.9, a microsecond more costs about
/// nine microseconds of spin for one of error taken off, and only on the latest tenth;
/// beyond it the CPU grows fast and the error barely moves, because the latest wake-ups on a
/// busy machine are later than any lead worth spinning (BENCHMARKS.md, "Ping").
///
/// When about twice as many wake-ups come later than the lead as the quantile allows for a
/// window (twice the allowance, rounded down: two at 0.99, 25 at 0.9; at 0.5 the whole
/// window, so never early), the window ends at once and the lead is re-estimated
/// from the wake-ups so far, never downwards: a timer that got slower costs at most that
/// many late probes, not a window of them. It starts at the maximum. Pure arithmetic on
/// preallocated storage: no I/O, no allocation per sample.
public struct SpinLead: Sendable {
    /// The configured ceiling, nanoseconds (`spin-lead-us`).
    public let maximum: Int64
    /// The share of timed wake-ups the lead is to cover, 0.5 to 0.999.
    public let quantile: Double
    /// The lead in use, nanoseconds.
    public private(set) var current: Int64
    /// The smallest and largest lead used so far (`mplane-bench` reports them).
    public private(set) var smallest: Int64
    public private(set) var largest: Int64
    /// The window's lateness samples, sorted in place at its end.
    private var samples: [Int64]
    private var count = 0
    private var late = 0
    /// How many wake-ups later than the lead end a window early.
    private let lateBudget: Int

    /// Wake-ups per re-estimate.
    public static let window = 128
    /// Added to the quantile: the clock reads around the wait take a little too.
    public static let margin: Int64 = 2_000
    /// The share of wake-ups covered unless told otherwise.
    public static let defaultQuantile = 0.9

    public init(maximum: Int64, quantile: Double = SpinLead.defaultQuantile) {
        self.maximum = Swift.max(0, maximum)
        self.quantile = Swift.min(0.999, Swift.max(0.5, quantile.isNaN ? Self.defaultQuantile : quantile))
        lateBudget = Swift.max(1, Int(2 * (1 - self.quantile) * Double(Self.window)))
        current = self.maximum
        smallest = self.maximum
        largest = self.maximum
        samples = [Int64](repeating: 0, count: Self.window)
    }

    /// A timed wait asked to end at some time and the loop saw the clock `lateness`
    /// nanoseconds after it.
    public mutating func record(lateness: Int64) {
        guard maximum > 0 else { return }
        let value = Swift.max(0, lateness)
        samples[count] = value
        count += 1
        if value > current &- Self.margin { late += 1 }
        if late >= lateBudget {
            // The timer is later than the lead allows: re-estimate now, only upwards.
            estimate(floor: current)
        } else if count == Self.window {
            estimate(floor: 0)
        }
    }

    /// Sets the lead from the window's samples so far and starts a new window.
    private mutating func estimate(floor: Int64) {
        // Insertion sort of at most 128 values in place (the window is over): a few
        // thousand comparisons per window, and no allocation.
        for i in 1..<Swift.max(1, count) {
            let v = samples[i]
            var j = i
            while j > 0 && samples[j - 1] > v {
                samples[j] = samples[j - 1]
                j -= 1
            }
            samples[j] = v
        }
        let q = samples[Swift.min(count - 1, Int(Double(count) * quantile))]
        current = q >= maximum &- Self.margin ? maximum : Swift.max(floor, q + Self.margin)
        smallest = Swift.min(smallest, current)
        largest = Swift.max(largest, current)
        count = 0
        late = 0
    }
}

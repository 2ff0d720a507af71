/// How long before a probe's due time the loop stops sleeping and watches the clock: learned
/// from how late the timer actually wakes it, up to the configured `spin-lead-us`.
///
/// The timer wakes late by the machine's own amount: 20–40 µs on the shared VM the benchmarks
/// ran on, a few microseconds on bare hardware (BENCHMARKS.md, "Ping"). A fixed lead tuned to
/// the first spins for most of it on the second, at a probe's cost each time. So the loop
/// records each timed wake-up's lateness, and every ``window`` wake-ups sets the lead to
/// their 99th percentile (all but the latest one) plus ``margin``, never more than the
/// configured maximum: precision first, the spin only as long as the timer needs. A wake-up
/// later than the lead allows raises it at once (the timer got slower: no window of late
/// probes); it comes down only at a window's end. It starts at the maximum. On the benchmarks' VM the timer's 99th percentile is past 40 µs, so the
/// lead stays there; where the timer is punctual, the spin shrinks to match. Pure arithmetic on preallocated storage: no I/O, no allocation per sample.
public struct SpinLead: Sendable {
    /// The configured ceiling, nanoseconds (`spin-lead-us`).
    public let maximum: Int64
    /// The lead in use, nanoseconds.
    public private(set) var current: Int64
    /// The smallest and largest lead used so far (for the result's own-error record).
    public private(set) var smallest: Int64
    public private(set) var largest: Int64
    private var samples: [Int64]
    private var sorted: [Int64]
    private var count = 0

    /// Wake-ups per re-estimate.
    public static let window = 128
    /// Added to the percentile: the clock reads around the wait take a little too.
    public static let margin: Int64 = 2_000

    public init(maximum: Int64) {
        self.maximum = Swift.max(0, maximum)
        current = self.maximum
        smallest = self.maximum
        largest = self.maximum
        samples = [Int64](repeating: 0, count: Self.window)
        sorted = [Int64](repeating: 0, count: Self.window)
    }

    /// A timed wait asked to end at some time and the loop saw the clock `lateness`
    /// nanoseconds after it.
    public mutating func record(lateness: Int64) {
        guard maximum > 0 else { return }
        let late = Swift.max(0, lateness)
        samples[count] = late
        count += 1
        if late > current &- Self.margin {
            current = Swift.min(maximum, late &+ Self.margin)
            largest = Swift.max(largest, current)
        }
        guard count == Self.window else { return }
        count = 0
        // Insertion sort of 128 values in place: a few thousand comparisons per 128
        // wake-ups, and no scratch allocation.
        for i in 0..<Self.window {
            let v = samples[i]
            var j = i
            while j > 0 && sorted[j - 1] > v {
                sorted[j] = sorted[j - 1]
                j -= 1
            }
            sorted[j] = v
        }
        let p99 = sorted[Self.window * 99 / 100]
        current = Swift.min(maximum, p99 &+ Self.margin)
        smallest = Swift.min(smallest, current)
        largest = Swift.max(largest, current)
    }
}

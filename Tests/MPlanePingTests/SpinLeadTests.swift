import MPlanePing
import Testing

@Suite("The spin's lead, learned from the timer's lateness")
struct SpinLeadTests {
    func fed(_ lead: inout SpinLead, _ values: [Int64]) {
        for v in values { lead.record(lateness: v) }
    }

    @Test("it starts at the configured maximum and moves only once a window of wake-ups is in")
    func startsAtMaximum() {
        var lead = SpinLead(maximum: 40_000)
        #expect(lead.current == 40_000 && lead.quantile == SpinLead.defaultQuantile)
        fed(&lead, Array(repeating: 5_000, count: SpinLead.window - 1))
        #expect(lead.current == 40_000)
        lead.record(lateness: 5_000)
        #expect(lead.current == 5_000 + SpinLead.margin, "a timer 5 µs late: a 7 µs lead")
        #expect(lead.smallest == 7_000 && lead.largest == 40_000)
    }

    @Test("the default quantile, 0.9, sets it: twelve very late wake-ups in a window do not, thirteen do; never past the maximum")
    func quantile() {
        var lead = SpinLead(maximum: 40_000)
        fed(&lead, Array(repeating: 300_000, count: 12) + Array(repeating: 10_000, count: 116))
        #expect(lead.current == 12_000, "the latest tenth of the wake-ups is left to the schedule error")
        fed(&lead, Array(repeating: 10_000, count: 115) + Array(repeating: 300_000, count: 13))
        #expect(lead.current == 40_000, "thirteen of 128: the quantile is theirs, capped at the maximum")
        // Back to a quiet timer, in any order: 0 to 12.7 µs, the 0.9 quantile 11.5 µs.
        fed(&lead, (0..<128).map { Int64(($0 * 37) % 128) * 100 })
        #expect(lead.current == 11_500 + SpinLead.margin)
    }

    @Test("another quantile: 0.99 leaves one very late wake-up of 128 out, 0.5 the later half; out-of-range ones are clamped")
    func otherQuantiles() {
        var tail = SpinLead(maximum: 40_000, quantile: 0.99)
        fed(&tail, Array(repeating: 10_000, count: 127) + [300_000])
        #expect(tail.current == 12_000)
        var half = SpinLead(maximum: 1_000_000, quantile: 0.5)
        fed(&half, (1...128).map { Int64($0) * 1_000 })
        #expect(half.current == 65_000 + SpinLead.margin)
        #expect(SpinLead(maximum: 1, quantile: 2).quantile == 0.999)
        #expect(SpinLead(maximum: 1, quantile: 0.1).quantile == 0.5)
        #expect(SpinLead(maximum: 1, quantile: .nan).quantile == SpinLead.defaultQuantile)
    }

    @Test("twice as many late wake-ups as the quantile allows raise it before the window ends; it comes down only at a window's end")
    func raisedEarly() {
        var lead = SpinLead(maximum: 40_000)
        fed(&lead, Array(repeating: 5_000, count: SpinLead.window))
        #expect(lead.current == 7_000)
        // At 0.9 a window of 128 allows 12.8 late wake-ups; twice that, rounded down, is 25.
        fed(&lead, Array(repeating: 30_000, count: 24))
        #expect(lead.current == 7_000, "24 late: not yet")
        lead.record(lateness: 30_000)
        #expect(lead.current == 32_000, "the 25th: raised to the timer's new lateness at once")
        fed(&lead, Array(repeating: 90_000, count: 25))
        #expect(lead.current == 40_000 && lead.largest == 40_000, "never past the maximum")
        fed(&lead, Array(repeating: 5_000, count: SpinLead.window - 1))
        #expect(lead.current == 40_000, "not lowered within the window (a new one began at the raise)")
        lead.record(lateness: 5_000)
        #expect(lead.current == 7_000, "the window's end: a quiet timer again")
        var tail = SpinLead(maximum: 40_000, quantile: 0.99)
        fed(&tail, Array(repeating: 5_000, count: SpinLead.window))
        fed(&tail, [30_000, 5_000])
        #expect(tail.current == 7_000, "at 0.99 one late wake-up is within what the quantile allows")
        tail.record(lateness: 31_000)
        #expect(tail.current == 33_000, "the second is not: re-estimated from the three wake-ups of the new window")
    }

    @Test("it follows the timer up and down; lateness below zero counts as none; a maximum of 0 stays 0")
    func follows() {
        var lead = SpinLead(maximum: 1_000_000)
        fed(&lead, Array(repeating: 30_000, count: SpinLead.window))
        #expect(lead.current == 32_000)
        fed(&lead, Array(repeating: -5_000, count: SpinLead.window))
        #expect(lead.current == SpinLead.margin)
        fed(&lead, Array(repeating: 80_000, count: SpinLead.window))
        #expect(lead.current == 82_000)
        var none = SpinLead(maximum: 0)
        fed(&none, Array(repeating: 30_000, count: 4 * SpinLead.window))
        #expect(none.current == 0 && none.largest == 0)
    }
}

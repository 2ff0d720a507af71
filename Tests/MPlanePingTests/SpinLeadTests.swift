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
        #expect(lead.current == 40_000)
        fed(&lead, Array(repeating: 5_000, count: SpinLead.window - 1))
        #expect(lead.current == 40_000)
        lead.record(lateness: 5_000)
        #expect(lead.current == 5_000 + SpinLead.margin, "a timer 5 µs late: a 7 µs lead")
        #expect(lead.smallest == 7_000 && lead.largest == 40_000)
    }

    @Test("the 99th percentile sets it: one very late wake-up in a window does not, two do; never past the maximum")
    func percentile() {
        var lead = SpinLead(maximum: 40_000)
        // 1 of 128 very late: the lead follows the rest.
        fed(&lead, Array(repeating: 10_000, count: 127) + [300_000])
        #expect(lead.current == 12_000)
        // 2 of 128: the 99th percentile is theirs, capped at the maximum.
        fed(&lead, [300_000] + Array(repeating: 10_000, count: 126) + [300_000])
        #expect(lead.current == 40_000)
        // Back to a quiet timer, in any order.
        fed(&lead, (0..<128).map { Int64(($0 * 37) % 128) * 100 })
        #expect(lead.current == 12_600 + SpinLead.margin)
    }

    @Test("one wake-up later than the lead allows raises it at once; it comes down only at a window's end")
    func raisedAtOnce() {
        var lead = SpinLead(maximum: 40_000)
        fed(&lead, Array(repeating: 5_000, count: SpinLead.window))
        #expect(lead.current == 7_000)
        lead.record(lateness: 6_000)
        #expect(lead.current == 8_000, "6 µs late with a 7 µs lead: 1 µs to spare is less than the margin")
        lead.record(lateness: 30_000)
        #expect(lead.current == 32_000)
        lead.record(lateness: 90_000)
        #expect(lead.current == 40_000 && lead.largest == 40_000, "never past the maximum")
        fed(&lead, Array(repeating: 5_000, count: SpinLead.window - 4))
        #expect(lead.current == 40_000, "not lowered within the window")
        lead.record(lateness: 5_000)
        #expect(lead.current == 32_000, "the window's 99th percentile: the 30 µs wake-up (the 90 µs one is above it)")
        fed(&lead, Array(repeating: 5_000, count: SpinLead.window))
        #expect(lead.current == 7_000)
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

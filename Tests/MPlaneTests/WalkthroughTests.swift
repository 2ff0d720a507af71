import Testing
@testable import MPlane
import MPlaneTestSupport

/// The protocol walk-through: capability → specification → result → receipt → redemption
/// → interrupt → withdrawal → envelope, with the values of the protocol's example.
@Suite("Protocol walk-through")
struct WalkthroughTests {
    let decoder = MessageDecoder()
    let encoder = MessageEncoder()
    let now = Timestamp(year: 2017, month: 12, day: 24, hour: 22, minute: 0)

    func capability() throws -> Capability {
        var cap = Capability(label: "ping-average-ip4", when: try When(parsing: "now ... future / 1s"))
        try cap.statement.addParameter("source.ip4", constraint: "10.0.27.2")
        try cap.statement.addParameter("destination.ip4", constraint: "*")
        for r in ["delay.twoway.icmp.us.min", "delay.twoway.icmp.us.max", "delay.twoway.icmp.us.mean",
                  "delay.twoway.icmp.us.50pct", "delay.twoway.icmp.count"] {
            try cap.statement.addResultColumn(r)
        }
        return cap
    }

    /// Encodes and decodes a message, checking that nothing changes on the way.
    func wire(_ m: Message) throws -> Message {
        let bytes = encoder.encode(m)
        let back = try decoder.decode(bytes)
        #expect(encoder.encode(back) == bytes)
        return back
    }

    @Test("capability: single-valued source, open destination, token stable across the wire")
    func capabilityStep() throws {
        let cap = try capability()
        #expect(cap.statement.parameter("source.ip4")?.constraint.singleValue == .address(IPAddress("10.0.27.2")!))
        #expect(cap.statement.when.period == 1)
        guard case .capability(let back) = try wire(.capability(cap)) else { Issue.record("kind"); return }
        #expect(back.token == cap.token)
        #expect(back.schemaHash == cap.schemaHash)
        #expect(cap.token.count == 32)
    }

    @Test("specification → result → receipt → redemption → interrupt → withdrawal → envelope")
    func fullWalkthrough() throws {
        let cap = try capability()

        // Specification: source filled in from the single-valued constraint.
        var spec = Specification(capability: cap, when: try When(parsing: "2017-12-24 22:18:42 + 1m / 1s"))
        #expect(spec.statement.parameterValue("source.ip4") == .address(IPAddress("10.0.27.2")!))
        #expect(spec.statement.parameterValue("destination.ip4") == nil)
        #expect(!spec.fulfills(cap, now: now), "a specification without a destination must not fulfil")
        try spec.statement.setParameterValue("destination.ip4", text: "10.0.37.2")
        #expect(spec.mismatch(with: cap, now: now) == nil)
        #expect(spec.statement.when.description == "2017-12-24 22:18:42.000000 + 1m / 1s")
        #expect(throws: MPlaneError.self) { try spec.statement.setParameterValue("source.ip4", text: "10.0.27.3") }
        spec.statement.token = spec.token
        guard case .specification(let specBack) = try wire(.specification(spec)) else { Issue.record("kind"); return }
        #expect(specBack.token == spec.token)
        #expect(specBack.fulfills(cap, now: now))

        // Result with the example's values.
        var result = Result(specification: spec, when: try When(parsing: "2017-12-24 22:18:42 ... 2017-12-24 22:19:42"))
        try result.values.appendRow([.natural(33155), .natural(192307), .natural(55166), .natural(58220), .natural(2)])
        #expect(result.token == spec.token)
        guard case .result(let resBack) = try wire(.result(result)) else { Issue.record("kind"); return }
        #expect(resBack.value("delay.twoway.icmp.us.min") == .natural(33155))
        #expect(resBack.value("delay.twoway.icmp.us.max") == .natural(192307))
        #expect(resBack.value("delay.twoway.icmp.us.mean") == .natural(55166))
        #expect(resBack.value("delay.twoway.icmp.us.50pct") == .natural(58220))
        #expect(resBack.value("delay.twoway.icmp.count") == .natural(2))
        #expect(resBack.schemaRows.first?["destination.ip4"] == .address(IPAddress("10.0.37.2")!))
        #expect(resBack.statement.when.isDefinite)

        // Receipt and redemption carry the specification's token, full and token-only.
        let receipt = Receipt(specification: spec)
        #expect(receipt.token == spec.token)
        guard case .receipt(let rcBack) = try wire(.receipt(receipt)) else { Issue.record("kind"); return }
        #expect(rcBack.statement.when == spec.statement.when)
        let redemption = Redemption(receipt: receipt)
        let short = encoder.encodeString(.redemption(redemption), tokenOnly: true)
        #expect(!short.contains("parameters") && !short.contains("when") && short.contains(spec.token))
        guard case .redemption(let rdBack) = try decoder.decode(short) else { Issue.record("kind"); return }
        #expect(rdBack.isTokenOnly && rdBack.token == spec.token)

        // Interrupt and withdrawal.
        let interrupt = Interrupt(specification: spec)
        guard case .interrupt(let intBack) = try wire(.interrupt(interrupt)) else { Issue.record("kind"); return }
        #expect(intBack.token == spec.token)
        let withdrawal = Withdrawal(capability: cap)
        guard case .withdrawal(let wdBack) = try wire(.withdrawal(withdrawal)) else { Issue.record("kind"); return }
        #expect(wdBack.token == cap.token)
        #expect(wdBack.statement.parameter("source.ip4")?.constraint == cap.statement.parameter("source.ip4")?.constraint)

        // Envelope of two capabilities, order kept.
        var detail = Capability(label: "ping-detail-ip4", when: try When(parsing: "now ... future / 1s"))
        try detail.statement.addParameter("source.ip4", constraint: "10.0.27.2")
        try detail.statement.addParameter("destination.ip4", constraint: "*")
        try detail.statement.addResultColumn("time")
        try detail.statement.addResultColumn("delay.twoway.icmp.us")
        let env = Envelope(contents: [.capability(cap), .capability(detail)])
        guard case .envelope(let envBack) = try wire(.envelope(env)) else { Issue.record("kind"); return }
        #expect(envBack.contents.map { $0.statement?.label } == ["ping-average-ip4", "ping-detail-ip4"])
        #expect(envBack.contents.map(\.token) == [cap.token, detail.token])
    }

    @Test("a specification outside its capability is refused with a reason")
    func refusals() throws {
        let cap = try capability()
        var spec = Specification(capability: cap, when: try When(parsing: "2017-12-24 22:18:42 + 1m / 1s"))
        try spec.statement.setParameterValue("destination.ip4", text: "10.0.37.2")
        var fast = spec
        fast.statement.when = try When(parsing: "2017-12-24 22:18:42 + 1m")
        #expect(fast.mismatch(with: cap, now: now)?.contains("period") == true)
        var past = spec
        past.statement.when = try When(parsing: "2017-12-24 20:00:00 + 1m / 1s")
        #expect(past.mismatch(with: cap, now: now)?.contains("temporal scope") == true)
        var other = spec
        other.statement.verb = .query
        #expect(other.mismatch(with: cap, now: now)?.contains("verb") == true)
        // A value outside the constraint arriving over the wire (the RI would run it).
        var text = encoder.encodeString(.specification(spec))
        text = text.replacingOccurrences("\"10.0.27.2\"", "\"10.0.27.9\"")
        guard case .specification(let bad) = try decoder.decode(text) else { Issue.record("kind"); return }
        #expect(bad.mismatch(with: cap, now: now)?.contains("source.ip4") == true)
    }
}

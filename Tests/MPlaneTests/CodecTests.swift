import Testing
@testable import MPlane
import MPlaneTestSupport

@Suite("JSON codec: errors")
struct CodecErrorTests {
    let decoder = MessageDecoder()

    static let capability = """
    {"capability": "measure", "version": 1, "registry": "http://ict-mplane.eu/registry/core", "when": "now ... future / 1s",
     "parameters": {"source.ip4": "10.0.27.2", "destination.ip4": "*"}, "results": ["time", "delay.twoway.icmp.us"]}
    """

    static let cases: [(String, String, String)] = [
        ("{", "malformed-json", ""),
        ("{\"capability\": \"measure\",}", "malformed-json", ""),
        ("[1, 2]", "unknown-message-kind", ""),
        ("{\"hello\": \"world\"}", "unknown-message-kind", ""),
        ("{\"capability\": \"measure\", \"specification\": \"measure\", \"when\": \"now\"}", "unknown-message-kind", "specification"),
        ("{\"capability\": \"measure\", \"version\": 2, \"when\": \"now\"}", "unsupported-version", "version"),
        ("{\"capability\": \"measure\"}", "missing-section", "when"),
        ("{\"capability\": 3, \"when\": \"now\"}", "invalid-section", "capability"),
        ("{\"capability\": \"measure\", \"when\": \"soon\"}", "invalid-temporal-scope", "when"),
        ("{\"capability\": \"measure\", \"when\": \"now\", \"registry\": \"http://example.org/unknown\"}", "unknown-registry", "registry"),
        ("{\"capability\": \"measure\", \"when\": \"now\", \"parameters\": {\"no.such\": \"*\"}}", "unknown-element", "parameters.no.such"),
        ("{\"capability\": \"measure\", \"when\": \"now\", \"results\": [\"no.such\"]}", "unknown-element", "results"),
        ("{\"capability\": \"measure\", \"when\": \"now\", \"parameters\": {\"source.ip4\": \"1 ... x\"}}", "invalid-constraint", "parameters.source.ip4"),
        ("{\"specification\": \"measure\", \"when\": \"now\", \"parameters\": {\"source.ip4\": \"10.0.0.300\"}}", "invalid-value", "parameters.source.ip4"),
        ("{\"specification\": \"measure\", \"when\": \"now\", \"parameters\": {\"source.ip4\": \"*\"}}", "invalid-message", "parameters.source.ip4"),
        ("{\"result\": \"measure\", \"when\": \"now\", \"results\": [\"time\"]}", "invalid-temporal-scope", "when"),
        ("{\"result\": \"measure\", \"when\": \"2017-01-01\", \"results\": [\"time\", \"delay.twoway.icmp.us\"], \"resultvalues\": [[\"2017-01-01\", \"5\"], [\"2017-01-02\"]]}", "result-row-width", "resultvalues[1]"),
        ("{\"result\": \"measure\", \"when\": \"2017-01-01\", \"results\": [\"delay.twoway.icmp.us\"], \"resultvalues\": [[\"5\", \"6\"]]}", "result-row-width", "resultvalues[0]"),
        ("{\"result\": \"measure\", \"when\": \"2017-01-01\", \"results\": [\"delay.twoway.icmp.us\"], \"resultvalues\": [[\"fast\"]]}", "invalid-value", "resultvalues[0].delay.twoway.icmp.us"),
        ("{\"exception\": \"abc\"}", "missing-section", "message"),
        ("{\"envelope\": \"message\", \"version\": 1}", "missing-section", "contents"),
        ("{\"envelope\": \"message\", \"contents\": [{\"capability\": \"measure\"}]}", "missing-section", "contents[0].when"),
        ("{\"capability\": \"measure\", \"when\": \"now\", \"when\": \"now\"}", "invalid-section", "when"),
        ("{\"capability\": \"measure\", \"when\": \"now\"} x", "malformed-json", ""),
        ("{\"capability\": \"me\\u12\"}", "malformed-json", ""),
        ("{\"capability\": \"\u{01}\"}", "malformed-json", ""),
        ("{\"capability\": \"measure\", \"when\": \"now\", \"results\": [\"time\", \"time\"]}", "invalid-message", "results"),
    ]

    @Test("bad input is a typed error naming the field", arguments: cases)
    func errors(input: String, code: String, field: String) {
        do {
            let m = try decoder.decode(input)
            Issue.record("accepted: \(m)")
        } catch {
            #expect(error.code.description == code, "\(error)")
            #expect(error.field == field, "\(error)")
        }
    }

    @Test("key order does not matter: sections before the registry or the columns are read again")
    func keyOrder() throws {
        let store = RegistryStore()
        let reg = #"{"registry-format": "mplane-0", "registry-revision": 0, "registry-uri": "http://example.org/r", "includes": ["http://ict-mplane.eu/registry/core"], "elements": [{"name": "x.y", "prim": "natural"}, {"name": "time", "prim": "string"}]}"#
        try store.register(json: Array(reg.utf8))
        let decoder = MessageDecoder(store: store)
        // Parameters and results precede the private registry that defines them.
        let cap = #"{"capability": "measure", "parameters": {"x.y": "0 ... 9"}, "results": ["x.y"], "registry": "http://example.org/r", "when": "now ... future"}"#
        guard case .capability(let c) = try decoder.decode(cap) else { Issue.record("kind"); return }
        #expect(c.statement.parameter("x.y")?.constraint == .range(.natural(0), .natural(9)))
        // 'time' is a string in that registry: values read against the core registry first
        // would be times; they must end up strings.
        let res = #"{"result": "measure", "results": ["time"], "resultvalues": [["not a time"]], "registry": "http://example.org/r", "when": "2017-01-01"}"#
        guard case .result(let r) = try decoder.decode(res) else { Issue.record("kind"); return }
        #expect(r.value("time") == .string("not a time"))
        // Values before their columns.
        let res2 = #"{"resultvalues": [["2017-01-01 00:00:01", "4"]], "result": "measure", "results": ["time", "delay.twoway.icmp.us"], "when": "2017-01-01"}"#
        guard case .result(let r2) = try MessageDecoder().decode(res2) else { Issue.record("kind"); return }
        #expect(r2.value("delay.twoway.icmp.us") == .natural(4))
        // A specification's kind key comes after its parameters in sorted order.
        let spec = #"{"parameters": {"source.ip4": "10.0.0.1"}, "registry": "http://ict-mplane.eu/registry/core", "results": ["time"], "specification": "measure", "when": "now + 1s"}"#
        guard case .specification(let sp) = try MessageDecoder().decode(spec) else { Issue.record("kind"); return }
        #expect(sp.statement.parameterValue("source.ip4") == .address(IPAddress("10.0.0.1")!))
    }

    @Test("nesting and size are bounded")
    func bounds() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: MPlaneError(.malformedJSON, field: "", "")) { try decoder.decode("{\"a\": \(deep)}") }
        let small = MessageDecoder(maxBytes: 100)
        #expect(throws: MPlaneError(.malformedJSON, field: "", "")) { try small.decode(Self.capability) }
        #expect(throws: MPlaneError.self) { try decoder.decode([UInt8]([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])) }
    }

    @Test("values may arrive as JSON numbers and booleans")
    func nativeValues() throws {
        let text = """
        {"result": "measure", "when": "2017-01-01 ... 2017-01-02", "parameters": {"destination.ip4": "10.0.0.1"},
         "results": ["delay.twoway.icmp.us", "delay.twoway.icmp.count"], "resultvalues": [[28, 3], ["*", null]]}
        """
        guard case .result(let r) = try decoder.decode(text) else { Issue.record("kind"); return }
        #expect(r.value("delay.twoway.icmp.us", row: 0) == .natural(28))
        #expect(r.value("delay.twoway.icmp.count", row: 1) == nil)
        let out = MessageEncoder().encodeString(.result(r))
        #expect(out.contains("\"28\"") && out.contains("\"*\""))
    }

    @Test("escapes: decoded on input, written as Python's json does")
    func escapes() throws {
        let text = #"{"exception": "t", "message": "caf\u00e9 \"q\" \\ \n \ud83d\ude00 /"}"#
        guard case .exception(let e) = try decoder.decode(text) else { Issue.record("kind"); return }
        #expect(e.message == "café \"q\" \\ \n 😀 /")
        let out = MessageEncoder().encodeString(.exception(e))
        #expect(out.contains(#""caf\u00e9 \"q\" \\ \n \ud83d\ude00 /""#))
    }
}

@Suite("JSON codec: randomized round trip")
struct PropertyTests {
    struct Rng: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func randomValue(_ p: Primitive, _ g: inout Rng) -> Value {
        switch p {
        case .natural: return .natural(UInt64.random(in: 0...UInt64.max, using: &g) >> UInt64.random(in: 0...63, using: &g))
        case .real:
            let d = Double(bitPattern: UInt64.random(in: 0...UInt64.max, using: &g))
            return .real(d.isFinite ? d : 1.5)
        case .boolean: return .boolean(Bool.random(using: &g))
        case .time: return .time(Timestamp(microsecondsSince1970: Int64.random(in: 0...4_000_000_000_000_000, using: &g)))
        case .address:
            if Bool.random(using: &g) { return .address(IPAddress(ipv4: UInt32.random(in: 0...UInt32.max, using: &g))) }
            let h = UInt64.random(in: 0...UInt64.max, using: &g) & (Bool.random(using: &g) ? 0xffff_0000_0000_ffff : .max)
            return .address(IPAddress(ipv6: h, UInt64.random(in: 0...UInt64.max, using: &g) & 0x0000_ffff_0000_ffff))
        case .string, .url:
            let alphabet = Array("abcxyz019 ._-/\"\\é☃😀\n")
            let s = String((0..<Int.random(in: 0...12, using: &g)).map { _ in alphabet.randomElement(using: &g)! })
            return p == .url ? .url(s) : .string(s.isEmpty ? "x" : s)
        }
    }

    static let whens = ["now ... future / 1s", "now + 30s / 1s", "2017-12-24 22:18:42 + 1m / 1s", "past ... now",
                        "repeat now ... future / 1h { now + 10s / 1s }", "repeat now ... future cron 0 0,30 * * 1-5 * { now + 1m }",
                        "2017-12-24 22:18:42.123456 ... 2017-12-25 00:00:00"]

    @Test("random statements survive encode → decode → encode unchanged")
    func roundTrip() throws {
        var g = Rng(state: 20_171_224)
        let core = RegistryStore.shared.core
        let decoder = MessageDecoder()
        let encoder = MessageEncoder()
        for _ in 0..<300 {
            let elements = core.elements.shuffled(using: &g)
            var st = Statement(verb: Bool.random(using: &g) ? .measure : "query",
                               when: try When(parsing: Self.whens.randomElement(using: &g)!))
            st.label = Bool.random(using: &g) ? "label-\(UInt16.random(in: 0...999, using: &g))" : nil
            st.token = Bool.random(using: &g) ? String(UInt64.random(in: 0...UInt64.max, using: &g), radix: 16) : nil
            for e in elements.prefix(Int.random(in: 0...4, using: &g)) where e.primitive != .string || true {
                try st.addParameter(e.name, value: Self.randomValue(e.primitive, &g))
            }
            for e in elements.dropFirst(4).prefix(Int.random(in: 1...4, using: &g)) { try st.addResultColumn(e.name) }
            if Bool.random(using: &g), let e = elements.last { try st.addMetadata(e.name, Self.randomValue(e.primitive, &g)) }

            let message: Message
            switch Int.random(in: 0...4, using: &g) {
            case 0:
                var cap = st
                for p in cap.parameters {
                    let c: Constraint = Bool.random(using: &g) ? .set([p.value!]) : .all
                    try cap.addParameter(p.name, constraint: c)
                }
                message = .capability(Capability(cap))
            case 1: message = .specification(Specification(st))
            case 2: message = .receipt(Receipt(st))
            case 3: message = .interrupt(Interrupt(st))
            default:
                st.when = try When(parsing: "2017-12-24 22:18:42 ... 2017-12-24 22:19:42")
                var table = ResultTable(columns: st.resultColumns)
                for _ in 0..<Int.random(in: 0...20, using: &g) {
                    try table.appendRow(table.columns.map { Int.random(in: 0...9, using: &g) == 0 ? nil : Self.randomValue($0.primitive, &g) })
                }
                message = .result(Result(st, values: table))
            }
            let bytes = encoder.encode(message)
            let back = try decoder.decode(bytes)
            #expect(back == message, "\(String(decoding: bytes, as: UTF8.self))")
            #expect(encoder.encode(back) == bytes)
            #expect(back.token == message.token)
        }
    }
}

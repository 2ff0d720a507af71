import Testing
@testable import MPlane
import MPlaneTestSupport

/// The information model's part of the hardening issue: inputs that crashed or wrapped.
@Suite("Hostile input to the model")
struct HostileModelTests {
    @Test("a prefix length past the family's width is refused, never trapped (row 1)",
          arguments: ["0.0.0.0/999", "10.0.0.0/256", "0.0.0.0/300", "::/129", "::/999", "1.2.3.4/33"])
    func prefixes(text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test("prefixes within the width still parse")
    func goodPrefixes() {
        #expect(IPAddress("10.0.0.0/8")?.prefixLength == 8)
        #expect(IPAddress("::/128")?.prefixLength == 128)
        #expect(IPAddress("0.0.0.0/0")?.addressCount == 1 << 32)
    }

    func pingSpecification(destination: String) -> String {
        """
        {"specification": "measure", "version": 1, "registry": "http://ict-mplane.eu/registry/core", "label": "ping-average-ip4",
         "when": "now + 1s / 1s", "token": "t1", "parameters": {"source.ip4": "127.0.0.1", "destination.ip4": "\(destination)"},
         "results": ["delay.twoway.icmp.us.min"]}
        """
    }

    @Test("a specification with destination.ip4 = 0.0.0.0/999 is an invalid message, not a crash (row 1)")
    func specificationPrefix() throws {
        #expect(throws: MPlaneError.self) { try MessageDecoder().decode(pingSpecification(destination: "0.0.0.0/999")) }
        #expect(throws: Never.self) { try MessageDecoder().decode(pingSpecification(destination: "192.0.2.1")) }
        let capability = """
        {"capability": "measure", "version": 1, "registry": "http://ict-mplane.eu/registry/core", "label": "c",
         "when": "now ... future", "parameters": {"destination.ip4": "10.0.0.0/300"}, "results": ["delay.twoway.icmp.us.min"]}
        """
        #expect(throws: MPlaneError.self) { try MessageDecoder().decode(capability) }
    }

    @Test("durations past inf are refused with the limit; time arithmetic saturates (row 12)")
    func timeArithmetic() throws {
        do {
            _ = try When(parsing: "now + 999999999999d / 1s")
            Issue.record("accepted a duration of a trillion days")
        } catch {
            #expect("\(error)".contains("at most 100000d"), "\(error)")
        }
        #expect(MPlaneDuration.parse("100000d") == MPlaneDuration.infinite)
        #expect(MPlaneDuration.parse("100000d1s") == nil)
        #expect(Timestamp(microsecondsSince1970: .max - 5).adding(seconds: 10).microseconds == .max)
        #expect(Timestamp(microsecondsSince1970: .min + 5).adding(microseconds: -10).microseconds == .min)
        #expect(t(0).adding(seconds: .max).microseconds == .max)
    }

    func t(_ us: Int64) -> Timestamp { Timestamp(microsecondsSince1970: us) }

    @Test("NUL in a string is refused, where it would cut a filter short in C (row 12)")
    func nul() throws {
        let json = #"{"specification": "measure", "version": 1, "registry": "http://ict-mplane.eu/registry/core", "label": "x", "when": "now", "token": "a\u0000b", "parameters": {}, "results": []}"#
        do {
            _ = try MessageDecoder().decode(json)
            Issue.record("accepted NUL")
        } catch {
            #expect("\(error)".contains("NUL"), "\(error)")
        }
        // Other escapes still decode.
        #expect(throws: Never.self) {
            try MessageDecoder().decode(#"{"exception": "t", "message": "a\u0001b\u00e9"}"#)
        }
    }

    @Test("result sizes are estimated from what they hold")
    func storageBytes() throws {
        var s = Specification(capability: Capability(label: "x", when: .nowToFuture), when: When(start: .now))
        s.statement.token = "t"
        let small = Message.receipt(Receipt(specification: s)).storageBytes
        #expect(small > 0 && small < 4096)
        let e = Message.exception(MPlaneException(token: nil, message: String(repeating: "e", count: 100_000)))
        #expect(e.storageBytes >= 100_000)
    }
}

@Suite("Envelopes of many messages")
struct ManyMessagesTests {
    @Test("an envelope of 500 capabilities of a registry other than the core one decodes (the depth bound counted re-read sections: it failed at the 30th)")
    func manyNonCoreCapabilities() throws {
        let registry = try RegistryStore.shared.registry(for: RegistryStore.loopbackURI)
        var cap = Capability(label: "test-loopback", when: .nowToFuture, registry: registry)
        try cap.statement.addParameter("test.input", constraint: .all)
        try cap.statement.addResultColumn("test.output")
        let envelope = Message.envelope(Envelope(contents: Array(repeating: .capability(cap), count: 500)))
        guard case .envelope(let e) = try MessageDecoder().decode(MessageEncoder().encode(envelope)) else {
            Issue.record("not an envelope")
            return
        }
        #expect(e.contents.count == 500)
        // The bound itself still holds for real nesting.
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        #expect(throws: MPlaneError.self) { try MessageDecoder().decode(Array(("{\"envelope\": \"message\", \"contents\": " + deep + "}").utf8)) }
    }
}

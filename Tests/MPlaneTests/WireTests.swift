import Testing
@testable import MPlane
import MPlaneIO
import MPlaneTestSupport

/// The recorded exchanges of the reference implementation in shared/wire.
struct WireExchange {
    let file: String
    let side: String
    let body: String
}

func wireBodies() -> [WireExchange] {
    let dir = wireDirectory
    var out: [WireExchange] = []
    for name in listDirectory(dir) where name.hasSuffix(".json") {
        guard let bytes = readFile("\(dir)/\(name)"), let doc = try? JSON(parsing: bytes) else { continue }
        for side in ["request", "response"] {
            guard let part = doc[side], part["body_json"] != nil, let raw = part["body_raw"]?.stringValue else { continue }
            out.append(WireExchange(file: name, side: side, body: raw))
        }
    }
    return out
}

@Suite("Recorded wire exchanges of the reference implementation")
struct WireTests {
    @Test("the wire recordings are present")
    func recordingsPresent() {
        #expect(wireBodies().count >= 40, "expected the recordings in Tests/Fixtures/wire")
    }

    @Test("every message body parses and re-serialises to an equal JSON value")
    func roundTrip() throws {
        let decoder = MessageDecoder()
        let encoder = MessageEncoder()
        var checked = 0
        for ex in wireBodies() {
            let original = try JSON(parsing: ex.body)
            // Bodies that are not mPlane messages: the RI listener's registration reply and
            // a deliberately wrong request.
            if ex.file.hasPrefix("cmp-01") && ex.side == "response" || ex.file.hasPrefix("ci-31") {
                #expect(throws: MPlaneError.self) { try decoder.decode(ex.body) }
                continue
            }
            let message = try decoder.decode(ex.body)
            let again = try JSON(parsing: encoder.encode(message))
            #expect(again == original, "\(ex.file) \(ex.side): \(again.differences(from: original))")
            checked += 1
        }
        #expect(checked >= 40)
    }

    @Test("pretty-printed bodies are reproduced byte for byte")
    func byteIdentical() throws {
        let decoder = MessageDecoder()
        let encoder = MessageEncoder()
        var identical = 0
        for ex in wireBodies() where ex.body.hasPrefix("{\n  \"") {
            let text = encoder.encodeString(try decoder.decode(ex.body))
            #expect(text == ex.body, "\(ex.file) \(ex.side)")
            identical += 1
        }
        #expect(identical >= 30)
    }

    @Test("every capability token in the recordings is our default token")
    func capabilityTokens() throws {
        let decoder = MessageDecoder()
        var caps: [Capability] = []
        func collect(_ m: Message) {
            switch m {
            case .capability(let c): caps.append(c)
            case .envelope(let e): e.contents.forEach(collect)
            default: break
            }
        }
        for ex in wireBodies() { if let m = try? decoder.decode(ex.body) { collect(m) } }
        let tokened = caps.filter { $0.statement.token != nil }
        #expect(tokened.count >= 6)
        for c in tokened {
            #expect(c.defaultToken == c.statement.token, "\(c.statement.label ?? "?")")
        }
    }
}

import Testing
@testable import MPlane
@testable import mpcli
import MPlaneIO
import MPlaneTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A recorded result of `Tests/Fixtures/results`.
func fixtureResult(_ name: String) throws -> MPlane.Result {
    let bytes = try readAll(repoRoot + "/Tests/Fixtures/results/" + name)
    return try result(of: bytes)
}

struct NotAResult: Error {}

func result(of bytes: [UInt8]) throws -> MPlane.Result {
    guard case .result(let r) = try MessageDecoder().decode(bytes) else { throw NotAResult() }
    return r
}

@Suite("mpcli's display: tables and delay pictures (golden output)")
struct DisplayTests {
    @Test("each result at 80 and 200 columns matches its golden file", arguments: [
        ("ping-detail-ip4-40.json", 80), ("ping-detail-ip4-40.json", 200), ("ping-average-ip4.json", 80), ("ping-average-ip4.json", 200),
    ])
    func golden(name: String, width: Int) throws {
        let shown = Display.show(try fixtureResult(name), width: width) + "\n"
        let path = repoRoot + "/Tests/Fixtures/golden/\(name.replacingOccurrences(".json", ""))-\(width).txt"
        // MPLANE_UPDATE_GOLDEN=1 rewrites the files (then read the diff before committing).
        if getenv("MPLANE_UPDATE_GOLDEN") != nil { try writeAll(path, Array(shown.utf8)) }
        let expected = String(decoding: try readAll(path), as: UTF8.self)
        #expect(shown == expected, "\(path):\n\(shown)")
        for line in shown.split(separator: "\n") {
            #expect(line.count <= width, "a line wider than \(width): \(line)")
            #expect(!line.contains("\u{1B}"), "no escape codes")
        }
    }

    @Test("a gap in the times is a lost probe, marked; no answer at all is said so")
    func losses() throws {
        let r = try fixtureResult("ping-detail-ip4-40.json")
        let picture = try #require(Display.delayPicture(r, width: 80))
        #expect(picture.contains("×") && picture.contains("lost 1 of 40"), "\(picture)")
        #expect(Display.samplePicture(name: "d", samples: [nil, nil], width: 40).contains("no replies: 2 lost"))
    }

    @Test("a wide table is cut to the width, each cut cell marked")
    func fits() throws {
        let long = String(repeating: "x", count: 150)
        let r = try result(of: Array("""
            {"result": "measure", "version": 1, "registry": "http://mplane.corvid.ch/registry/loopback", "label": "test-loopback",
             "when": "2026-12-02 03:00:00.000000", "parameters": {"test.input": "a"}, "results": ["test.output", "test.input"],
             "resultvalues": [["\(long)", "short"]], "token": "t"}
            """.utf8))
        let shown = Display.table(r, width: 60)
        #expect(shown.split(separator: "\n").allSatisfy { $0.count <= 60 } && shown.contains("…"), "\(shown)")
    }
}

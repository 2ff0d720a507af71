import Testing
@testable import MPlane
import MPlaneTestSupport

/// `mpcli check`, as operators use it to validate capability files.
@Suite("mpcli")
struct CLITests {
    /// The debug build of mpcli beside the test bundle.
    var mpcli: String { repoRoot + "/.build/debug/mpcli" }

    @Test("check prints kind, schema hash, token and canonical JSON")
    func checkValid() throws {
        let file = repoRoot + "/deploy/messages/capability-ping-average-ip4.json"
        let (status, out) = run([mpcli, "check", file])
        #expect(status == 0)
        let text = String(decoding: out, as: UTF8.self)
        #expect(text.contains("capability"))
        #expect(text.contains("#   schema: e2ca42e60e5e998c7b7bc1fc439129b4"))
        #expect(text.contains("#   token: 40c5320f8ee7517efcea2a857b0f64f9"))
        let json = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.joined(separator: "\n")
        #expect(json + "\n" == String(decoding: readFile(file) ?? [], as: UTF8.self))
    }

    @Test("check reads standard input and fails with status 1 naming the field")
    func checkInvalid() {
        let bad = #"{"capability": "measure", "when": "now ... future", "parameters": {"source.ip4": "10.0.0.999"}}"#
        let (status, out) = run([mpcli, "check", "-"], stdin: Array(bad.utf8))
        #expect(status == 1)
        #expect(out.isEmpty)
        let (status2, _) = run([mpcli, "check", "/nonexistent/file.json"])
        #expect(status2 == 2)
    }

    @Test("check loads private registries")
    func privateRegistry() {
        let reg = #"{"registry-format": "mplane-0", "registry-revision": 0, "registry-uri": "http://example.org/r", "includes": ["http://ict-mplane.eu/registry/core"], "elements": [{"name": "x.y", "prim": "natural"}]}"#
        let path = "/tmp/mpcli-test-registry-\(UInt32.random(in: 0...UInt32.max)).json"
        #expect(writeFile(path, Array(reg.utf8)))
        let msg = #"{"capability": "measure", "registry": "http://example.org/r", "when": "now ... future", "parameters": {"x.y": "0 ... 9"}, "results": ["time"]}"#
        #expect(run([mpcli, "check", "-"], stdin: Array(msg.utf8)).status == 1)
        #expect(run([mpcli, "check", "--registry", path, "-"], stdin: Array(msg.utf8)).status == 0)
    }

    @Test("parse prints a temporal scope canonically or refuses it")
    func parseWhen() {
        let (status, out) = run([mpcli, "parse", "when", "now + 60s / 60s"])
        #expect(status == 0)
        #expect(String(decoding: out, as: UTF8.self) == "now + 1m / 1m\n")
        #expect(run([mpcli, "parse", "when", "now + soon"]).status == 1)
    }
}

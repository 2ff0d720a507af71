import Testing
import MPlaneTestSupport

/// The module layering stays because a test keeps it (README, "Architecture"): read from
/// `swift package dump-package`, so it checks Package.swift as SwiftPM reads it.
@Suite("Layering")
struct LayeringTests {
    /// Target name → the names of the targets it depends on (products of other packages left out).
    func targets() async throws -> [String: (type: String, deps: [String])] {
        // A scratch path of its own: the package's .build is locked while swift test runs.
        let out = try await runProcess(["/bin/sh", "-c", "cd '\(repoRoot)' && swift package --scratch-path \"${TMPDIR:-/tmp}/mplane-dump-$$\" dump-package; s=$?; rm -rf \"${TMPDIR:-/tmp}/mplane-dump-$$\"; exit $s"])
        try #require(out.status == 0, "swift package dump-package failed: \(out.output)")
        let start = out.output.firstIndex(of: "{") ?? out.output.startIndex
        let doc = try JSON(parsing: String(out.output[start...]))
        var table: [String: (String, [String])] = [:]
        for t in doc["targets"]?.arrayValue ?? [] {
            guard let name = t["name"]?.stringValue, let type = t["type"]?.stringValue else { continue }
            var deps: [String] = []
            for d in t["dependencies"]?.arrayValue ?? [] {
                if let by = d["byName"]?.arrayValue?.first?.stringValue { deps.append(by) }
                if let tg = d["target"]?.arrayValue?.first?.stringValue { deps.append(tg) }
            }
            table[name] = (type, deps)
        }
        try #require(table.count > 10, "no targets read")
        return table
    }

    func closure(of name: String, in table: [String: (type: String, deps: [String])]) -> Set<String> {
        var seen: Set<String> = []
        var stack = [name]
        while let n = stack.popLast() {
            for d in table[n]?.deps ?? [] where seen.insert(d).inserted { stack.append(d) }
        }
        return seen
    }

    static let measurementServices: Set<String> = ["MPlanePing", "MPlaneCapture"]

    @Test("mpcli reaches no component, no measurement service and no C, through any chain")
    func client() async throws {
        let table = try await targets()
        let reached = closure(of: "mpcli", in: table)
        #expect(reached.contains("MPlaneClient") && reached.contains("MPlaneHTTP"), "\(reached.sorted())")
        let forbidden: Set<String> = ["MPlanePing", "MPlaneCapture", "CSupport", "MPlaneRuntime", "MPlaneScheduler", "MPlaneProbe"]
        #expect(reached.isDisjoint(with: forbidden), "mpcli reaches \(reached.intersection(forbidden).sorted())")
    }

    @Test("no library depends on a measurement service; the program assembles them")
    func libraries() async throws {
        let table = try await targets()
        for (name, t) in table where t.type == "regular" && !Self.measurementServices.contains(name) {
            let reached = closure(of: name, in: table)
            #expect(reached.isDisjoint(with: Self.measurementServices), "\(name) reaches \(reached.intersection(Self.measurementServices).sorted())")
        }
        #expect(closure(of: "mpcom", in: table).isSuperset(of: Self.measurementServices))
    }

    @Test("the model and the HTTP layer know nothing of services, the scheduler or C")
    func lowerLayers() async throws {
        let table = try await targets()
        #expect(closure(of: "MPlane", in: table).isEmpty)
        let http = closure(of: "MPlaneHTTP", in: table)
        #expect(http.isDisjoint(with: ["MPlaneScheduler", "MPlaneRuntime", "MPlaneProbe", "CSupport"]), "\(http.sorted())")
    }

    @Test("the supervisor reaches no probe part (no measurement service, no component runtime, no C); the probe never reaches the supervisor or its database")
    func supervisor() async throws {
        let table = try await targets()
        for name in ["MPlaneSupervisor", "mpsup"] {
            let reached = closure(of: name, in: table)
            let forbidden: Set<String> = ["MPlanePing", "MPlaneCapture", "CSupport", "MPlaneRuntime", "MPlaneProbe"]
            #expect(reached.isDisjoint(with: forbidden), "\(name) reaches \(reached.intersection(forbidden).sorted())")
        }
        #expect(!closure(of: "mpcom", in: table).contains("MPlaneSupervisor"), "mpcom would link the supervisor and SQLite")
    }
}

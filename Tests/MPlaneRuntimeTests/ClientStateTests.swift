import Testing
import Synchronization
@testable import MPlane
@testable import MPlaneClient
import MPlaneHTTP
import MPlaneIO
import MPlaneTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A transport that answers from a script, recording what it was sent: no sockets.
final class ScriptedClientTransport: ClientTransport {
    let offered: [Capability]
    let answers: Mutex<[Message]>
    let sent = Mutex<[(Message, String)]>([])
    init(offered: [Capability], answers: [Message]) {
        self.offered = offered
        self.answers = Mutex(answers)
    }
    func capabilities(at url: HTTPURL) async throws -> [Capability] { offered }
    func send(_ message: Message, to url: HTTPURL) async throws -> Message {
        sent.withLock { $0.append((message, url.description)) }
        return try answers.withLock { a in
            guard !a.isEmpty else { throw ClientError("the script has no more answers") }
            return a.removeFirst()
        }
    }
}

/// A message of a recorded exchange (`Tests/Fixtures/wire`): the request's or the response's body.
func recorded(_ name: String, response: Bool = true) throws -> Message {
    let doc = try JSON(parsing: String(decoding: try readAll(repoRoot + "/Tests/Fixtures/wire/\(name).json"), as: UTF8.self))
    guard let raw = doc[response ? "response" : "request"]?["body_raw"]?.stringValue else { throw ClientError("\(name): no body") }
    return try MessageDecoder().decode(Array(raw.utf8))
}

@Suite("Client state and session (the seed's BaseClient), without sockets")
struct ClientStateTests {
    let url = HTTPURL(host: "127.0.0.1", port: 1228, path: "/")

    @Test("capabilities by token and label, with where they came from; withdrawals forget them; schema matching as the seed defines it")
    func capabilities() throws {
        guard case .capability(let loopback) = try recorded("ci-05-get-capability-test-loopback") else { Issue.record("fixture"); return }
        guard case .capability(let average) = try recorded("ci-03-get-capability-ping-average-ip4") else { Issue.record("fixture"); return }
        var state = ClientState()
        state.add(loopback, from: url)
        state.add(average, from: url.with(path: "/capability"))
        #expect(state.capabilityLabels == ["test-loopback", "ping-average-ip4"])
        #expect(state.capability(for: "test-loopback")?.token == loopback.token)
        #expect(state.capability(for: average.token)?.statement.label == "ping-average-ip4")
        #expect(state.known("ping-average-ip4")?.source.path == "/capability")
        // Matching: the same schema, and constraints within the given one's.
        #expect(state.capabilities(matchingSchema: average).map(\.token) == [average.token])
        #expect(state.capabilities(matchingSchema: loopback).map(\.token) == [loopback.token])
        // A schema whose constraint is narrower than a capability's does not take it in.
        try #require(average.statement.parameters.contains { $0.constraint == .all }, "the fixture has an open parameter")
        var narrow = average
        for p in average.statement.parameters where p.constraint == .all {
            narrow.statement.removeParameter(p.name)
            try narrow.statement.addParameter(p.name, constraint: .set([.address(IPAddress("192.0.2.1")!)]))
        }
        #expect(state.capabilities(matchingSchema: narrow).isEmpty)
        state.handle(.withdrawal(Withdrawal(capability: loopback)))
        #expect(state.capabilityLabels == ["ping-average-ip4"])
    }

    @Test("the session invokes, keeps the receipt, redeems it until the result, and forgets")
    func session() async throws {
        guard case .capability(let loopback) = try recorded("ci-05-get-capability-test-loopback") else { Issue.record("fixture"); return }
        let receipt = try recorded("ci-13-post-spec-receipt")
        let result = try recorded("ci-16-post-redemption-result")
        let transport = ScriptedClientTransport(offered: [loopback], answers: [receipt, receipt, result])
        let session = ClientSession(transport: transport, defaultURL: url)
        #expect(try await session.retrieveCapabilities().count == 1)
        let now = Timestamp(year: 2026, month: 12, day: 2, hour: 3)
        let (spec, first) = try await session.invoke("test-loopback", when: try When(parsing: "now"), parameters: ["test.input": "hi"], now: now)
        #expect(first.kind == .receipt && spec.statement.label == "test-loopback-0")
        // A relative scope counts the time: the same invocation a second later is another job.
        let later = try Specification.invoking(loopback, when: try When(parsing: "now"), parameters: ["test.input": "hi"],
                                               label: "x", now: now.adding(seconds: 1))
        #expect(later.token != spec.token)
        let token = try #require(await session.state.measurements.first?.token)
        #expect(try await session.result(for: "test-loopback-0")?.kind == .receipt, "still running: its receipt")
        #expect(try await session.result(for: token)?.kind == .result)
        #expect(await session.state.measurements.first?.done == true)
        let sent = transport.sent.withLock { $0.map { $0.0.kind } }
        #expect(sent == [.specification, .redemption, .redemption])
        // A missing parameter is the client's error, before anything is sent.
        await #expect(throws: ClientError.self) {
            _ = try await session.invoke("test-loopback", when: try When(parsing: "now"), parameters: [:], now: now)
        }
        await session.forget("test-loopback-0")
        #expect(await session.state.measurements.isEmpty)
    }
}

@Suite("The mpcli shell against our component on loopback", .serialized, .timeLimit(.minutes(2)))
struct ShellTests {
    let mpcli = repoRoot + "/.build/debug/mpcli"

    @Test("read as a script from standard input: the seed's commands, the same output without prompts, exit 1 when a command failed")
    func script() async throws {
        try await withComponent(replyWait: .milliseconds(300)) { url, _ in
            try await withTemporaryDirectory { dir in
                mkdir(dir, 0o700)
                let script = """
                    # a measurement, as a person would type it
                    seturl \(url)
                    getcap
                    listcap
                    showcap test-counter
                    when now + 2s / 1s
                    set test.input hello
                    show
                    runcap test-counter
                    listmeas
                    showmeas test-counter-0
                    unset test.input
                    quit
                    """
                #expect(writeFile(dir + "/ok.txt", Array(script.utf8)))
                // Redeemed until the 2 s job ends: showmeas again in a second script would see it; here
                // the receipt or the result, whichever came.
                let ok = try await runProcess(["/bin/sh", "-c", "COLUMNS=100 '\(mpcli)' < '\(dir)/ok.txt'"])
                #expect(ok.status == 0, "\(ok.output)")
                #expect(!ok.output.contains("mpcli>"), "no prompts in a script: \(ok.output)")
                #expect(ok.output.contains("2 capabilities: "), "\(ok.output)")
                #expect(ok.output.contains("test-counter  measure  "), "\(ok.output)")
                #expect(ok.output.contains("  parameter test.input: *") && ok.output.contains("  result test.counter"), "\(ok.output)")
                #expect(ok.output.contains("when now + 2s / 1s\ntest.input = hello"), "\(ok.output)")
                #expect(ok.output.contains("test-counter-0 "), "\(ok.output)")
                #expect(ok.output.contains("test-counter-0  ") && (ok.output.contains("running") || ok.output.contains("done")), "\(ok.output)")
                let bad = "seturl \(url)\ngetcap\nshowcap no-such-thing\nset only-a-name\nlistcap\n"
                #expect(writeFile(dir + "/bad.txt", Array(bad.utf8)))
                let failed = try await runProcess(["/bin/sh", "-c", "'\(mpcli)' < '\(dir)/bad.txt'"])
                #expect(failed.status == 1 && failed.output.contains("error: no capability no-such-thing"), "\(failed.output)")
                #expect(failed.output.contains("error: usage: set NAME VALUE"), "\(failed.output)")
                #expect(failed.output.contains("test-loopback  measure"), "the script went on after the failure: \(failed.output)")
            }
        }
    }

    @Test("through a pseudo-terminal: Tab completes a command and a label, the up arrow recalls a line, history is kept")
    func terminal() async throws {
        try await withComponent { url, _ in
            try await withTemporaryDirectory { dir in
                mkdir(dir, 0o700)
                let out = try await runProcess(["python3", repoRoot + "/Tests/Interop/pty_shell.py", mpcli, url.description, dir + "/history"])
                #expect(out.status == 0, "\(out.output)")
                let doc = try JSON(parsing: out.output.split(separator: "\n").last.map(String.init) ?? "")
                #expect(doc["steps"]?["prompt"] == .bool(true), "\(out.output)")
                #expect(doc["steps"]?["getcap"] == .bool(true), "getc<Tab> completed to getcap: \(out.output)")
                #expect(doc["steps"]?["showcap"] == .bool(true), "showcap test-lo<Tab> completed the label: \(out.output)")
                #expect(doc["steps"]?["recall"] == .bool(true), "the up arrow recalled showcap: \(out.output)")
                #expect(doc["status"] == .number(0), "\(out.output)")
                let history = doc["history"]?.arrayValue?.compactMap(\.stringValue) ?? []
                #expect(history.contains("getcap") && history.contains("showcap test-loopback"), "\(history)")
            }
        }
    }

    @Test("mpcli runcap against the RI's component runs its ping (with the wrapper): a result with delay.twoway.icmp.us.min as JSON, and a detail drawn")
    func referencePing() async throws {
        let py = try #require(riPython, "the reference implementation is not installed: run `make test`")
        let out = try await runProcess([py, repoRoot + "/Tests/Interop/ri_ping_mpcli.py", mpcli])
        #expect(out.status == 0, "\(out.output)")
        let doc = try JSON(parsing: out.output.split(separator: "\n").last.map(String.init) ?? "")
        #expect(doc["errors"] == .array([]), "\(out.output)")
        let average = doc["average"]?["stdout"]?.stringValue ?? ""
        #expect(doc["average"]?["status"] == .number(0) && average.contains("\"delay.twoway.icmp.us.min\""), "\(out.output)")
        let detail = doc["detail"]?["stdout"]?.stringValue ?? ""
        #expect(doc["detail"]?["status"] == .number(0) && detail.contains("delay.twoway.icmp.us ") && detail.contains("histogram ["), "\(out.output)")
    }
}

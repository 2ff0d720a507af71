#if canImport(Glibc)
import Glibc
#endif
@testable import MPlane
import MPlaneScheduler
@testable import MPlaneRuntime
@testable import MPlaneHTTP
@testable import MPlaneClient
import MPlaneTestSupport
import Synchronization
import Testing

@Suite("Client library (ComponentClient)", .timeLimit(.minutes(1)))
struct ClientTests {
    @Test("the links of the reference implementation's capability list, as recorded")
    func recordedLinkList() throws {
        let recording = try JSON(parsing: String(decoding: readFile(repoRoot + "/Tests/Fixtures/wire/ci-01-get-capability-list.json") ?? [],
                                                 as: UTF8.self))
        let html = try #require(recording["response"]?["body_text"]?.stringValue)
        #expect(ComponentClient.capabilityLinks(in: html) == [
            "/capability/40c5320f8ee7517efcea2a857b0f64f9", "/capability/0cb9cff17300728cbd2b925332c9fe79",
            "/capability/1eb3b3c09578b8f741ca644ef30e012c",
        ])
        #expect(ComponentClient.capabilityLinks(in: "<a href=\"/capability/x\">x</a><a href='/elsewhere'>") == ["/capability/x"])
    }

    @Test("our client drives our component: capabilities, a result, an interrupted measurement, an exception")
    func ourComponent() async throws {
        try await withComponent(replyWait: .milliseconds(300)) { url, _ in
            let client = ComponentClient(url: url)
            let capabilities = try await client.capabilities()
            #expect(Set(capabilities.compactMap(\.statement.label)) == ["test-loopback", "test-counter"])

            guard case .result(let echo) = try await client.run(try loopbackSpec("through the client"), deadline: .seconds(5)) else {
                Issue.record("no loopback result")
                return
            }
            #expect(echo.values.columns[0][0] == .string("through the client"))

            // Receipts are redeemed until the deadline, then the measurement is interrupted
            // and its partial result returned.
            let counter = try #require(capabilities.first { $0.statement.label == "test-counter" })
            var long = Specification(capability: counter, when: try When(parsing: "now + 30s / 1s"))
            try long.statement.setParameterValue("test.input", .string("long"))
            let started = ContinuousClock.now
            let answer = try await client.run(long, poll: .milliseconds(200), deadline: .milliseconds(1500))
            guard case .result(let partial) = answer else {
                Issue.record("no partial result: \(answer)")
                return
            }
            #expect(partial.values.rowCount >= 1 && partial.values.rowCount < 30, "\(partial.values.rowCount) rows")
            #expect(ContinuousClock.now - started < .seconds(10))

            var wrong = try loopbackSpec()
            wrong.statement.when = try When(parsing: "2001-01-01 00:00:00 + 1s")
            guard case .exception = try await client.send(.specification(wrong)) else {
                Issue.record("a specification in the past was not refused")
                return
            }
        }
    }

    @Test("mpcli capabilities and mpcli run against our component")
    func commandLine() async throws {
        let mpcli = repoRoot + "/.build/debug/mpcli"
        try await withComponent(replyWait: .milliseconds(300)) { url, _ in
            let base = "http://127.0.0.1:\(url.port)"
            let listed = try await runProcess([mpcli, "capabilities", base])
            #expect(listed.status == 0 && listed.output.contains("test-counter  measure") && listed.output.contains("results: test.output"),
                    "\(listed.output)")
            let echoed = try await runProcess([mpcli, "run", base, "test-loopback", "--param", "test.input=from mpcli"])
            #expect(echoed.status == 0 && echoed.output == "test.output\nfrom mpcli\n", "\(echoed.output)")
            let counted = try await runProcess([mpcli, "run", base, "test-counter", "--when", "now + 2s / 1s",
                                                "--param", "test.input=n", "--poll", "0.2"])
            #expect(counted.status == 0 && header(counted.output) == ["time", "test.output", "test.counter"], "\(counted.output)")
            // The commands named as in the shell, for scripts.
            let listcap = try await runProcess([mpcli, "listcap", "--url", base])
            #expect(listcap.status == 0 && listcap.output.contains("test-loopback  measure  "), "\(listcap.output)")
            let runcap = try await runProcess([mpcli, "runcap", "test-loopback", "--url", base, "--set", "test.input=as json", "--json"])
            #expect(runcap.status == 0 && runcap.output.contains("\"result\": \"measure\"") && runcap.output.contains("as json"), "\(runcap.output)")
            // A repeated specification: one result per repetition, each shown.
            let repeated = try await runProcess([mpcli, "runcap", "test-counter", "--url", base, "--when", "repeat now + 3s / 1s { now + 1s / 1s }",
                                                 "--set", "test.input=r", "--poll", "0.2", "--timeout", "20"])
            #expect(repeated.status == 0 && repeated.output.contains("[1/") && repeated.output.contains("[2/"), "\(repeated.output)")
            let bad = try await runProcess([mpcli, "runcap", "test-loopback", "--url", base, "--set", "nonsense"])
            #expect(bad.status == 64 && bad.output.contains("expected NAME=VALUE"), "\(bad.output)")
            // test.input has no default: the component refuses, and mpcli names what it left out.
            let missing = try await runProcess([mpcli, "run", base, "test-counter", "--when", "now + 2s / 1s"])
            #expect(missing.status == 1 && missing.output.contains("parameters left out: test.input"), "\(missing.output)")
            let refused = try await runProcess([mpcli, "run", base, "test-loopback", "--param", "test.input=x",
                                                "--when", "2001-01-01 00:00:00"])
            #expect(refused.status == 1 && refused.output.contains("the component answered"), "\(refused.output)")
        }
    }

    @Test("a component that is not there is a clear error, not a hang")
    func nobodyThere() async throws {
        let client = ComponentClient(url: HTTPURL(host: "127.0.0.1", port: freePort(), path: "/"), requestTimeout: .seconds(5))
        do {
            _ = try await client.capabilities()
            Issue.record("capabilities from nowhere")
        } catch {
            #expect(error.message.lowercased().contains("refused"), "\(error.message)")
        }
    }

    /// A component that behaves as the reference implementation does around an interrupt:
    /// receipts for the specification and for the interrupt, and the partial result only on
    /// a redemption some time after the interrupt (`resultAfter` nil: never).
    func withRILikeComponent(resultAfter: Duration?, _ body: (HTTPURL, @Sendable () -> [String]) async throws -> Void) async throws {
        let seen = Mutex<[String]>([])
        let interruptedAt = Mutex<ContinuousClock.Instant?>(nil)
        let server = HTTPComponentServer(host: "127.0.0.1", port: 0) { request in
            let mplane = ComponentRouter.mplaneType
            if request.method == "GET" {
                let offer = Envelope(contents: [.capability(LoopbackService().capability)])
                return HTTPReply(status: 200, contentType: mplane, body: MessageEncoder().encode(.envelope(offer)))
            }
            guard request.method == "POST", let message = try? MessageDecoder().decode(request.body),
                  let statement = message.statement else {
                return HTTPReply(status: 400, contentType: "text/plain", body: [])
            }
            seen.withLock { $0.append("\(message.kind.rawValue) \(message.token ?? "")") }
            if case .interrupt = message { interruptedAt.withLock { $0 = $0 ?? .now } }
            var answer = Message.receipt(Receipt(statement))
            if case .redemption = message, let after = resultAfter, let at = interruptedAt.withLock({ $0 }),
               ContinuousClock.now - at >= after {
                var table = ResultTable(columns: statement.resultColumns)
                try? table.columns[0].append(.string("partial"))
                var definite = statement
                definite.when = When(start: .at(SystemClock().now()))
                answer = .result(MPlane.Result(definite, values: table))
            }
            return HTTPReply(status: 200, contentType: mplane, body: MessageEncoder().encode(answer))
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let port = await server.boundPort()
            do { try await body(HTTPURL(host: "127.0.0.1", port: port, path: "/"), { seen.withLock { $0 } }) } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
        }
    }

    @Test("after the deadline: interrupt with the receipt's token, then redeem until the partial result comes")
    func interruptLikeTheReference() async throws {
        try await withRILikeComponent(resultAfter: .milliseconds(800)) { url, seen in
            let client = ComponentClient(url: url)
            let spec = try loopbackSpec("long")
            let answer = try await client.run(spec, poll: .milliseconds(100), deadline: .milliseconds(300))
            guard case .result(let r) = answer else {
                Issue.record("no partial result: \(answer) after \(seen())")
                return
            }
            #expect(r.values.columns[0][0] == .string("partial"))
            let log = seen()
            let token = try #require(log.first?.split(separator: " ").last.map(String.init))
            #expect(token.count == 32 && token != spec.token, "a fresh token, not the parameters' hash: \(token)")
            #expect(log.contains("interrupt \(token)") && log.allSatisfy { $0.hasSuffix(token) }, "\(log)")
            // At least one redemption came 800 ms after the interrupt (the result shows it); how
            // many before it depends on the machine's load, not on the client.
            #expect(log.filter { $0.hasPrefix("redemption") }.count >= 1, "\(log)")
            #expect(log.last?.hasPrefix("redemption") == true, "\(log)")
        }
    }

    @Test("mpcli run exits 3 when no result comes, and 64 without --when for a periodic capability")
    func commandLineWithoutResult() async throws {
        let mpcli = repoRoot + "/.build/debug/mpcli"
        try await withRILikeComponent(resultAfter: nil) { url, seen in
            let started = ContinuousClock.now
            let never = try await runProcess([mpcli, "run", "http://127.0.0.1:\(url.port)", "test-loopback",
                                              "--param", "test.input=x", "--timeout", "0.3", "--poll", "0.1"])
            #expect(never.status == 3 && never.output.contains("no result within 0.3 s"), "\(never.output)")
            #expect(ContinuousClock.now - started < .seconds(10))
            #expect(seen().contains { $0.hasPrefix("interrupt") })
        }
        try await withComponent(replyWait: .milliseconds(200)) { url, _ in
            let base = "http://127.0.0.1:\(url.port)"
            let noWhen = try await runProcess([mpcli, "run", base, "test-counter", "--param", "test.input=x"])
            #expect(noWhen.status == 64 && noWhen.output.contains("give --when, e.g. 'now + 5s / 1s'"), "\(noWhen.output)")
            let late = try await runProcess([mpcli, "run", base, "test-counter", "--when", "now + 30s / 1s", "--param", "test.input=x",
                                             "--timeout", "0", "--poll", "0.1"])
            // Our component answers an interrupt with the partial result: exit 0 with rows.
            #expect(late.status == 0 && header(late.output) == ["time", "test.output", "test.counter"], "\(late.output)")
            let badPoll = try await runProcess([mpcli, "run", base, "test-counter", "--poll", "0"])
            #expect(badPoll.status == 64 && badPoll.output.contains("--poll"), "\(badPoll.output)")
        }
    }

    @Test("our client drives the reference implementation's component: its link list, a receipt, a redemption",
          .enabled(if: riPython != nil, "skipped: needs the reference implementation (make test installs it)"))
    func referenceComponent() async throws {
        let py = try #require(riPython)
        let mpcom = String(py.dropLast("python".count)) + "mpcom"
        let dir = "/tmp/mplane-ri-component-\(getpid())"
        mkdir(dir, 0o700)
        defer { _ = run(["rm", "-rf", dir]) }
        let port = freePort()
        // Loopback only: the RI's ping service runs `ping -S <source>`, BSD's spelling; on
        // Linux iputils reads -S as a buffer size, so every RI ping job fails.
        let conf = """
        [component]
        workflow = client-initiated
        listen-port = \(port)
        registry_preload = \(repoRoot)/Tests/Interop/loopback-registry.json
        [module_loopback]
        module = mplane.components.loopback

        """
        #expect(writeFile(dir + "/ri.conf", Array(conf.utf8)))
        let pid = startInBackground("cd '\(dir)' && '\(py)' '\(mpcom)' --config ri.conf > ri.log 2>&1")
        try #require(pid > 0)
        defer { kill(pid, SIGKILL) }

        let client = ComponentClient(url: HTTPURL(host: "127.0.0.1", port: port, path: "/"))
        var capabilities: [Capability] = []
        for _ in 0..<100 where capabilities.isEmpty {
            capabilities = (try? await client.capabilities()) ?? []
            if capabilities.isEmpty { try await Task.sleep(for: .milliseconds(150)) }
        }
        let log = { String(decoding: readFile(dir + "/ri.log") ?? [], as: UTF8.self) }
        // Read through the RI's HTML link list, one GET per capability, with its own token.
        let loopback = try #require(capabilities.first { $0.statement.label == "test-loopback" }, "\(log())")
        #expect(loopback.token == "1eb3b3c09578b8f741ca644ef30e012c")

        // Depending on timing the RI answers an immediate job with its result or with a
        // receipt to redeem; run() takes both.
        var echo = Specification(capability: loopback, when: try When(parsing: "now"))
        try echo.statement.setParameterValue("test.input", .string("from swift"))
        guard case .result(let result) = try await client.run(echo, poll: .milliseconds(100), deadline: .seconds(10)) else {
            Issue.record("run() gave no result \(log())")
            return
        }
        #expect(result.values.columns[0][0] == .string("from swift"))

        // A redemption it cannot match: the RI's exception, decoded.
        var unknown = Redemption(receipt: Receipt(specification: echo))
        unknown.statement.token = "0123456789abcdef0123456789abcdef"
        guard case .exception(let e) = try await client.send(.redemption(unknown)) else {
            Issue.record("no exception for an unknown redemption \(log())")
            return
        }
        #expect(e.message.contains("Unknown job"), "\(e.message)")
    }
}

/// The words of the first line of mpcli's output (a table's header).
func header(_ output: String) -> [String] {
    output.split(separator: "\n").first.map { $0.split(separator: " ").map(String.init) } ?? []
}

#if canImport(Glibc)
import Glibc
#endif
import MPlane
import MPlaneHTTP
import MPlaneIO
import MPlaneScheduler
import MPlaneSupervisor
import MPlaneTestSupport
import Synchronization
import Testing

let mpsupBinary = repoRoot + "/.build/debug/mpsup"

/// A running `mpsup` on free ports, its log in `dir`.
struct RunningSupervisor {
    let pid: Int32
    let probePort: Int
    let clientPort: Int
    let log: String

    /// Starts mpsup on port 0 and reads the ports it bound from its log (bounded wait).
    static func start(store: String, dir: String, extra: String = "") async throws -> RunningSupervisor {
        let log = dir + "/mpsup-\(UInt32.random(in: 0...UInt32.max)).log"
        let location = store.hasPrefix("postgres://") ? store : "sqlite:" + store
        let pid = startInBackground("exec \(mpsupBinary) --store '\(location)' --probe-port 0 --client-port 0 \(extra) > \(log) 2>&1")
        for _ in 0..<200 {
            let text = String(decoding: readFile(log) ?? [], as: UTF8.self)
            if let line = text.split(separator: "\n").first(where: { $0.contains("listening") && $0.contains("mpsup.probe_port") }) {
                func port(_ key: String) -> Int? {
                    guard let r = line.range(of: key + "=") else { return nil }
                    return Int(line[r.upperBound...].prefix { $0.isNumber })
                }
                if let p = port("mpsup.probe_port"), let c = port("mpsup.client_port") {
                    return RunningSupervisor(pid: pid, probePort: p, clientPort: c, log: log)
                }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(pid, SIGKILL)
        throw HTTPClientError(message: "mpsup did not start within 10 s: \(String(decoding: readFile(log) ?? [], as: UTF8.self))")
    }
}

/// The public token of the first capability mpsup's client side lists.
func firstCapability(clientPort: Int) async throws -> String {
    let list = try await SimpleHTTPClient.request("GET", HTTPURL(host: "127.0.0.1", port: clientPort, path: "/capability"), accept: mplaneContentType)
    guard case .envelope(let e) = try MessageDecoder().decode(list.body), let token = e.contents.first?.token else {
        throw HTTPClientError(message: "no capability listed")
    }
    return token
}

/// A value shared by tasks, behind a lock.
final class Locked<T: Sendable>: Sendable {
    private let m: Mutex<T>
    init(_ v: T) { m = Mutex(v) }
    func withLock<R>(_ body: (inout T) -> R) -> R { m.withLock { body(&$0) } }
}

/// Resident memory of a process, in KiB (VmRSS).
func residentKiB(_ pid: Int32) -> Int? {
    let text = String(decoding: readFile("/proc/\(pid)/status") ?? [], as: UTF8.self)
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
    return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
}

@Suite("mpsup as a process", .serialized, .timeLimit(.minutes(3)))
struct SupervisorProcessTests {
    @Test("the RI's component and our mpcom register with our mpsup (RI-format configuration); the RI's client pings through each, and each specification reaches its component")
    func interoperation() async throws {
        let py = try #require(riPython, "the reference implementation is not installed: run `make test`")
        let out = try await runProcess([py, repoRoot + "/Tests/Interop/ri_our_mpsup.py", mpsupBinary, repoRoot + "/.build/debug/mpcom"])
        #expect(out.status == 0, "\(out.output)")
        let doc = try JSON(parsing: out.output.split(separator: "\n").last.map(String.init) ?? "")
        #expect(doc["errors"] == .array([]), "\(out.output)")
        #expect(doc["components"]?["swift-probe"] == .bool(true) && doc["components"]?["address:127.0.0.1"] == .bool(true), "\(out.output)")
        for who in ["ours", "ri"] {
            let run = doc["runs"]?[who]
            #expect(run?["count"] == .string("2"), "\(who): two echo replies in 2 s, \(out.output)")
            let token = run?["result_token"]?.stringValue
            let component = run?["component"]?.stringValue
            // The store says which component posted the result with that token.
            let stored = doc["stored"]?.arrayValue?.first { $0["token"]?.stringValue == token }
            #expect(token != nil && stored?["component"]?.stringValue == component, "\(who): \(out.output)")
        }
        #expect(doc["runs"]?["ours"]?["component"] == .string("swift-probe"))
        #expect(doc["runs"]?["ri"]?["component"] == .string("address:127.0.0.1"))
    }

    @Test("over TLS: the RI's component registers with our mpsup and is known by its certificate; the RI's client runs a specification through it; a client without a role sees nothing")
    func interoperationOverTLS() async throws {
        let py = try #require(riPython, "the reference implementation is not installed: run `make test`")
        let out = try await runProcess([py, repoRoot + "/Tests/Interop/ri_our_mpsup_tls.py", mpsupBinary])
        #expect(out.status == 0, "\(out.output)")
        let doc = try JSON(parsing: out.output.split(separator: "\n").last.map(String.init) ?? "")
        #expect(doc["errors"] == .array([]), "\(out.output)")
        #expect(doc["components"] == .array([.string("org.example.components.component-1")]), "\(out.output)")
        #expect(doc["result"] == .string("via our mpsup over TLS"), "\(out.output)")
        #expect(doc["capability_link"]?.stringValue?.hasPrefix("https://") == true, "\(out.output)")
        #expect(doc["unauthorised"]?["labels"] == .array([]) && doc["unauthorised"]?["components"] == .array([]), "\(out.output)")
    }

    @Test("an mpsup that cannot listen (its probe port taken) stops at once with the reason, instead of waiting for a port it will never have")
    func cannotListen() async throws {
        // A port held by the test, listening.
        let held = try #require(loopbackSocket(listening: true))
        defer { close(held.fd) }
        let port = held.port
        try await withTemporaryDirectory { dir in
            mkdir(dir, 0o700)
            let log = dir + "/mpsup.log"
            // Its exit status written by the shell that waits for it (mpsup is not our child).
            _ = startInBackground("(\(mpsupBinary) --store 'sqlite:\(dir)/s.sqlite' --probe-port \(port) --client-port 0 > \(log) 2>&1; echo $? > \(dir)/status)")
            var status: Int? = nil
            for _ in 0..<200 where status == nil {
                status = readFile(dir + "/status").flatMap { Int(String(decoding: $0, as: UTF8.self).split(separator: "\n").first ?? "") }
                if status == nil { try await Task.sleep(for: .milliseconds(50)) }
            }
            if status == nil { _ = run(["pkill", "-9", "-f", dir + "/s.sqlite"]) }
            let text = String(decoding: readFile(log) ?? [], as: UTF8.self)
            #expect(status != nil, "still running 10 s later: \(text)")
            #expect(status.map { $0 != 0 } == true, "exit status \(String(describing: status))")
            #expect(text.contains("Address already in use"), "\(text)")
        }
    }

    @Test("kill -9 in the middle of a burst of result POSTs: after a restart every result answered 200 is there, once")
    func killNine() async throws {
        try await withTemporaryDirectory { dir in
            mkdir(dir, 0o700)
            let store = dir + "/s.sqlite"
            // Specifications answered with their receipt at once: their results come from the test.
            #expect(writeFile(dir + "/mpsup.conf", Array("[supervisor]\nreply-wait = 0.001\n".utf8)))
            let sup = try await RunningSupervisor.start(store: store, dir: dir, extra: "--config \(dir)/mpsup.conf")
            let probe = HTTPURL(host: "127.0.0.1", port: sup.probePort, path: "/register/result")
            let registered = try await SimpleHTTPClient.request("POST", probe.with(path: "/register/capability"), contentType: mplaneContentType,
                                                                body: MessageEncoder().encode(registering([loopbackCapability])),
                                                                headers: [(Supervisor.componentHeader, "probe-k")])
            try #require(registered.status == 200)
            let acknowledged = Locked<Set<String>>([])
            let cap = try await firstCapability(clientPort: sup.clientPort)
            let clientSide = HTTPURL(host: "127.0.0.1", port: sup.clientPort, path: "/capability/\(cap)")
            // 16 clients, each queueing specifications with tokens of its own, and the component
            // posting each one's result, until the kill.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for client in 0..<16 {
                    group.addTask {
                        for i in 0..<10_000 {
                            let token = "c\(client)-\(i)"
                            var spec = try loopbackSpecification(token)
                            spec.statement.token = token
                            guard let queued = try? await SimpleHTTPClient.request("POST", clientSide, contentType: mplaneContentType,
                                                                                   body: MessageEncoder().encode(.specification(spec)),
                                                                                   timeout: .seconds(2)),
                                  queued.status == 200 else { return }
                            var r = Result(specification: spec, when: When(start: .at(t0), end: .at(t0)))
                            r.statement.token = token
                            try r.values.appendRow([.string("burst")])
                            guard let reply = try? await SimpleHTTPClient.request("POST", probe, contentType: mplaneContentType,
                                                                                 body: MessageEncoder().encode(.result(r)),
                                                                                 headers: [(Supervisor.componentHeader, "probe-k")],
                                                                                 timeout: .seconds(2)) else { return }
                            if reply.status == 200 { _ = acknowledged.withLock { $0.insert(token) } }
                        }
                    }
                }
                // Kill once a good number are acknowledged.
                for _ in 0..<400 where acknowledged.withLock({ $0.count }) < 300 { try await Task.sleep(for: .milliseconds(25)) }
                kill(sup.pid, SIGKILL)
                try await group.waitForAll()
            }
            let acked = acknowledged.withLock { $0 }
            #expect(acked.count >= 300, "the burst got going before the kill: \(acked.count)")
            // The store as a restarted mpsup sees it.
            let again = try SQLiteStore(path: store, serving: false)
            let kept = try await again.results(component: "probe-k", label: nil, from: nil, to: nil, limit: 1_000_000)
            let tokens = kept.map(\.token)
            #expect(Set(tokens).count == tokens.count, "each result once")
            let lost = acked.subtracting(tokens)
            #expect(lost.isEmpty, "\(lost.count) acknowledged results lost, e.g. \(lost.prefix(5))")
            let restarted = try await RunningSupervisor.start(store: store, dir: dir)
            defer { kill(restarted.pid, SIGTERM) }
            let listing = try await runProcess([mpsupBinary, "results", "--store", "sqlite:" + store, "--component", "probe-k", "--limit", "1000000"])
            #expect(listing.output.split(separator: "\n").count - 1 == tokens.count, "mpsup results lists them all")
        }
    }

    @Test("1,000 components register and poll: resident memory per registered component stays under 16 KiB")
    func manyComponents() async throws {
        try await withTemporaryDirectory { dir in
            mkdir(dir, 0o700)
            // One address registers them all here: allow it.
            #expect(writeFile(dir + "/mpsup.conf", Array("[supervisor]\nmax-components-per-address = 100000\n".utf8)))
            let sup = try await RunningSupervisor.start(store: dir + "/s.sqlite", dir: dir, extra: "--config \(dir)/mpsup.conf")
            defer { kill(sup.pid, SIGTERM) }
            let base = HTTPURL(host: "127.0.0.1", port: sup.probePort, path: "/")
            let body = MessageEncoder().encode(registering([loopbackCapability, CounterService().capability]))
            func wave(_ range: Range<Int>) async throws {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for worker in 0..<8 {
                        group.addTask {
                            for n in range where n % 8 == worker {
                                let name = [(Supervisor.componentHeader, "sim-\(n)")]
                                let r = try await SimpleHTTPClient.request("POST", base.with(path: "/register/capability"),
                                                                           contentType: mplaneContentType, body: body, headers: name)
                                guard r.status == 200 else { throw HTTPClientError(message: "registration \(n): \(r.status)") }
                                let p = try await SimpleHTTPClient.request("GET", base.with(path: "/show/specification"), headers: name)
                                guard p.status == 200 else { throw HTTPClientError(message: "poll \(n): \(p.status)") }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            try await wave(0..<50)  // warm: the pools, the caches
            let before = try #require(residentKiB(sup.pid))
            try await wave(50..<1050)
            let after = try #require(residentKiB(sup.pid))
            let perComponent = Double(after - before) / 1000
            print("mpsup RSS: \(before) KiB after 50 components, \(after) KiB after 1,050: \(perComponent) KiB per component")
            #expect(perComponent < 16, "\(perComponent) KiB per registered component")
            let list = try await SimpleHTTPClient.request("GET", HTTPURL(host: "127.0.0.1", port: sup.clientPort, path: "/capability"),
                                                          accept: mplaneContentType)
            guard case .envelope(let e) = try MessageDecoder().decode(list.body) else { Issue.record("no envelope"); return }
            #expect(e.contents.count == 2 * 1050)
        }
    }

    @Test("two mpsup over one PostgreSQL: a component polling both in turn gets each queued specification once; a result posted to one is redeemable through the other")
    func twoSupervisors() async throws {
        let cluster = try PostgresCluster.shared.get()
        let url = try cluster.database()
        try await withTemporaryDirectory { dir in
            mkdir(dir, 0o700)
            #expect(writeFile(dir + "/mpsup.conf", Array("[supervisor]\nreply-wait = 0.001\n".utf8)))
            let a = try await RunningSupervisor.start(store: url, dir: dir, extra: "--config \(dir)/mpsup.conf")
            defer { kill(a.pid, SIGTERM) }
            let b = try await RunningSupervisor.start(store: url, dir: dir, extra: "--config \(dir)/mpsup.conf")
            defer { kill(b.pid, SIGTERM) }
            let name = [(Supervisor.componentHeader, "shared-probe")]
            func probe(_ s: RunningSupervisor, _ path: String) -> HTTPURL { HTTPURL(host: "127.0.0.1", port: s.probePort, path: path) }
            func client(_ s: RunningSupervisor, _ path: String) -> HTTPURL { HTTPURL(host: "127.0.0.1", port: s.clientPort, path: path) }

            // Registered through A, offered by B.
            let reg = try await SimpleHTTPClient.request("POST", probe(a, "/register/capability"), contentType: mplaneContentType,
                                                         body: MessageEncoder().encode(registering([loopbackCapability])), headers: name)
            try #require(reg.status == 200)
            let token = try await firstCapability(clientPort: b.clientPort)

            // Twenty specifications, queued through A and B in turn.
            var queued: [String] = []
            for i in 0..<20 {
                var spec = try loopbackSpecification("shared \(i)")
                spec.statement.token = "shared-\(i)"
                let r = try await SimpleHTTPClient.request("POST", client(i % 2 == 0 ? a : b, "/capability/\(token)"), contentType: mplaneContentType,
                                                           body: MessageEncoder().encode(.specification(spec)))
                #expect(r.status == 200, "\(String(decoding: r.body, as: UTF8.self))")
                queued.append(spec.token)
            }
            // The component polls A and B in turn until nothing more comes.
            var handed: [String] = []
            for round in 0..<10 {
                let s = round % 2 == 0 ? a : b
                let poll = try await SimpleHTTPClient.request("GET", probe(s, "/show/specification"), headers: name)
                guard case .envelope(let e) = try MessageDecoder().decode(poll.body) else { Issue.record("no envelope"); return }
                for case .specification(let spec) in e.contents where spec.statement.verb != .callback { handed.append(spec.token) }
            }
            #expect(handed.sorted() == queued.sorted(), "each exactly once: \(handed.count) handed out")

            // Its result, posted to A, redeemed through B.
            var spec = try loopbackSpecification("shared 0")
            spec.statement.token = "shared-0"
            var result = Result(specification: spec, when: When(start: .at(t0), end: .at(t0)))
            result.statement.token = "shared-0"
            try result.values.appendRow([.string("via A")])
            let posted = try await SimpleHTTPClient.request("POST", probe(a, "/register/result"), contentType: mplaneContentType,
                                                            body: MessageEncoder().encode(.result(result)), headers: name)
            #expect(posted.status == 200)
            let redeemed = try await SimpleHTTPClient.request("POST", client(b, "/"), contentType: mplaneContentType,
                                                              body: MessageEncoder().encode(.redemption(Redemption(receipt: Receipt(specification: spec)))))
            guard case .result(let r) = try MessageDecoder().decode(redeemed.body) else {
                Issue.record("not a result: \(String(decoding: redeemed.body, as: UTF8.self))"); return
            }
            #expect(r.values.value("test.output", row: 0) == .string("via A"))
        }
    }

    @Test("the RI's client-initiated probe side (component-urls): mpsup reaches our mpcom, lists its capabilities and runs a specification on it")
    func reachingComponents() async throws {
        try await withTemporaryDirectory { dir in
            mkdir(dir, 0o700)
            let comLog = dir + "/mpcom.log"
            let com = startInBackground("exec \(repoRoot)/.build/debug/mpcom --port 0 > \(comLog) 2>&1")
            defer { kill(com, SIGTERM) }
            var comPort: Int?
            for _ in 0..<200 where comPort == nil {
                let text = String(decoding: readFile(comLog) ?? [], as: UTF8.self)
                if let r = text.range(of: "http.port=") { comPort = Int(text[r.upperBound...].prefix { $0.isNumber }) }
                if comPort == nil { try await Task.sleep(for: .milliseconds(50)) }
            }
            let port = try #require(comPort, "mpcom did not start: \(String(decoding: readFile(comLog) ?? [], as: UTF8.self))")
            let conf = "[client]\nworkflow = client-initiated\ncomponent-urls = http://127.0.0.1:\(port)/\ncomponent-poll-interval = 0.3\n"
                + "[supervisor]\nreply-wait = 0.001\n"
            #expect(writeFile(dir + "/mpsup.conf", Array(conf.utf8)))
            let sup = try await RunningSupervisor.start(store: dir + "/s.sqlite", dir: dir, extra: "--config \(dir)/mpsup.conf")
            defer { kill(sup.pid, SIGTERM) }
            #expect(sup.probePort == 0, "nothing listens for components")

            let list = HTTPURL(host: "127.0.0.1", port: sup.clientPort, path: "/capability")
            var loopback: Capability?
            for _ in 0..<100 where loopback == nil {
                if let r = try? await SimpleHTTPClient.request("GET", list, accept: mplaneContentType),
                   case .envelope(let e)? = try? MessageDecoder().decode(r.body) {
                    for case .capability(let c) in e.contents where c.statement.label == "test-loopback" { loopback = c }
                }
                if loopback == nil { try await Task.sleep(for: .milliseconds(100)) }
            }
            let cap = try #require(loopback, "mpsup did not list mpcom's capabilities")
            var spec = Specification(capability: cap, when: try When(parsing: "now"))
            try spec.statement.setParameterValue("test.input", .string("reached"))
            spec.statement.token = "reached-1"
            let link = try #require(cap.statement.link.flatMap(HTTPURL.init))
            let queued = try await SimpleHTTPClient.request("POST", link, contentType: mplaneContentType, body: MessageEncoder().encode(.specification(spec)))
            #expect(queued.status == 200, "\(String(decoding: queued.body, as: UTF8.self))")
            var answer: Message?
            for _ in 0..<100 {
                let r = try await SimpleHTTPClient.request("POST", HTTPURL(host: "127.0.0.1", port: sup.clientPort, path: "/"), contentType: mplaneContentType,
                                                           body: MessageEncoder().encode(.redemption(Redemption(receipt: Receipt(specification: spec)))))
                if case .result? = try? MessageDecoder().decode(r.body) { answer = try MessageDecoder().decode(r.body); break }
                try await Task.sleep(for: .milliseconds(100))
            }
            guard case .result(let result)? = answer else { Issue.record("no result through mpsup"); return }
            #expect(result.values.value("test.output", row: 0) == .string("reached"))
            let listing = try await runProcess([mpsupBinary, "results", "--store", "sqlite:\(dir)/s.sqlite"])
            #expect(listing.output.contains("http://127.0.0.1:\(port)\ttest-loopback"), "\(listing.output)")
            // mpcli through the supervisor's client side, as against a component.
            let supervisorURL = "http://127.0.0.1:\(sup.clientPort)/"
            let listcap = try await runProcess([repoRoot + "/.build/debug/mpcli", "listcap", "--url", supervisorURL])
            #expect(listcap.status == 0 && listcap.output.contains("test-loopback  measure"), "\(listcap.output)")
            let runcap = try await runProcess([repoRoot + "/.build/debug/mpcli", "runcap", "test-loopback", "--url", supervisorURL,
                                               "--set", "test.input=through mpsup", "--poll", "0.2", "--timeout", "20"])
            #expect(runcap.status == 0 && runcap.output.contains("through mpsup"), "\(runcap.output)")
        }
    }
}

import Testing
import Synchronization
@testable import MPlane
@testable import MPlaneScheduler
@testable import MPlaneRuntime
@testable import MPlaneHTTP
@testable import MPlaneClient
import SwiftASN1
import MPlaneIO
import MPlaneTestSupport
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The process's throwaway PKI, or the reason it could not be made (a test failure, not a skip).
func pki() throws -> TestPKI {
    switch TestPKI.shared {
    case .success(let p): return p
    case .failure(let f): throw f
    }
}

/// TLS contexts for certificate `name` of the test PKI.
func contexts(_ name: String, crl: Bool = false) throws -> TLSContexts {
    let p = try pki()
    let base = name.hasPrefix("other/") ? p.dir + "/other" : p.dir
    var s = TLSSettings(certificate: p.certificate(name), key: p.key(name), caChain: base + "/ca.crt")
    if crl { s.crl = p.crl }
    return try TLSContexts(s)
}

/// curl against `url` presenting certificate `name` (nil: none); its exit status and output.
func curl(_ url: HTTPURL, as name: String?, path: String = "/capability") async throws -> (status: Int32, output: String) {
    let p = try pki()
    var argv = ["curl", "-sS", "--max-time", "10", "--cacert", p.ca, "-H", "Accept: application/x-mplane+json"]
    if let name { argv += ["--cert", p.certificate(name), "--key", p.key(name)] }
    return try await runProcess(argv + [url.with(path: path).description])
}

/// A log handler that keeps what is logged, for tests of warnings.
struct KeptLog: LogHandler {
    let box: LogBox
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        let extra = (event.metadata ?? [:]).map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
        box.lines.withLock { $0.append("\(event.level) \(event.message) \(extra)") }
    }
}

final class LogBox: Sendable {
    let lines = Mutex<[String]>([])
    var logger: Logger { Logger(label: "test") { _ in KeptLog(box: self) } }
    var text: String { lines.withLock { $0.joined(separator: "\n") } }
}

@Suite("TLS: mutual authentication, identities, authorisation", .timeLimit(.minutes(2)))
struct TLSTests {
    @Test("warnings: our certificate expiring within expiry-warning-days, a CRL past its next update")
    func warnings() throws {
        let p = try pki()
        var s = TLSSettings(certificate: p.certificate("component-1"), key: p.key("component-1"), caChain: p.ca)
        let notAfter = try TLSContexts(s).notValidAfter
        let log = LogBox()
        _ = try TLSContexts(s, logger: log.logger, now: notAfter - 10 * 86_400)
        #expect(log.text.contains("our certificate expires soon") && log.text.contains("tls.days-left=10"), "\(log.text)")
        let quiet = LogBox()
        _ = try TLSContexts(s, logger: quiet.logger, now: notAfter - 40 * 86_400)
        #expect(!quiet.text.contains("expires soon"), "\(quiet.text)")
        // make-certs.sh issues CRLs for 30 days.
        s.crl = p.crl
        let stale = LogBox()
        _ = try TLSContexts(s, logger: stale.logger, now: Int(time(nil)) + 40 * 86_400)
        #expect(stale.text.contains("the CRL is past its next update"), "\(stale.text)")
        let fresh = LogBox()
        _ = try TLSContexts(s, logger: fresh.logger)
        #expect(!fresh.text.contains("CRL"), "\(fresh.text)")
    }

    @Test("identities as the RI derives them, from the same certificates: DN values joined by dots, a multi-valued RDN's first value in DER order")
    func identities() async throws {
        let p = try pki()
        #expect(try certificateIdentity(pemFile: p.certificate("client-1")) == "org.example.clients.client-1")
        #expect(try certificateIdentity(pemFile: p.certificate("component-1")) == "org.example.components.component-1")
        let py = try #require(riPython, "the reference implementation is not installed: run `make test`")
        for name in ["client-1", "multi", "supervisor-1"] {
            let ri = try await runProcess([py, repoRoot + "/Tests/Interop/ri_identity.py", p.certificate(name)])
            try #require(ri.status == 0, "\(ri.output)")
            let theirs = ri.output.split(separator: "\n").last.map(String.init) ?? ""
            #expect(try certificateIdentity(pemFile: p.certificate(name)) == theirs, "\(name)")
        }
        #expect(try certificateIdentity(pemFile: p.certificate("multi")) == "org.example.multi-1.x")
    }

    @Test("start-up errors name the file and what is wrong: unreadable key, expired certificate, key of another certificate, CA file without certificates, CRL of another CA")
    func startupErrors() throws {
        let p = try pki()
        func error(_ settings: TLSSettings) -> String {
            do { _ = try TLSContexts(settings); return "no error" } catch { return "\(error)" }
        }
        let good = TLSSettings(certificate: p.certificate("component-1"), key: p.key("component-1"), caChain: p.ca)
        #expect(error(good) == "no error")
        var s = good
        s.key = p.dir + "/missing.key"
        #expect(error(s).contains("[TLS] key \(s.key): cannot be read"), "\(error(s))")
        s = good
        s.certificate = p.certificate("old")
        s.key = p.key("old")
        #expect(error(s).contains("expired at 2020-01-02"), "\(error(s))")
        s = good
        s.key = p.key("client-1")
        #expect(error(s).contains("does not match the certificate"), "\(error(s))")
        s = good
        s.caChain = p.key("component-1")  // a PEM file, but no certificate in it
        #expect(error(s).contains("[TLS] ca-chain \(s.caChain)"), "\(error(s))")
        s = good
        s.crl = p.dir + "/other/ca.crt"  // not a CRL
        #expect(error(s).contains("[TLS] crl"), "\(error(s))")
        s = good
        s.crl = p.crl
        #expect(error(s) == "no error")
        s.caChain = p.dir + "/other/ca.crt"
        #expect(error(s).contains("does not verify") || error(s).contains("not in ca-chain"), "\(error(s))")
    }

    @Test("the [TLS] section as the RI writes it, and a clear error when it lacks a key")
    func section() throws {
        let p = try pki()
        let c = try ComponentConfiguration(ini: p.section("component-1", crl: true, extra: "expiry-warning-days = 90\nverify-hostname = no\n")
                                           + "[component]\nworkflow = client-initiated\n")
        #expect(c.tls?.certificate == p.certificate("component-1") && c.tls?.crl == p.crl)
        #expect(c.tls?.expiryWarningDays == 90 && c.tls?.verifyHostname == false)
        #expect(throws: ComponentConfiguration.Error.self) {
            try ComponentConfiguration(ini: "[TLS]\ncert = a.crt\n[component]\n")
        }
    }

    @Test("refused at the handshake: no client certificate, another CA's, an expired one, a revoked one; the server goes on serving")
    func handshakeRefusals() async throws {
        try await withComponent(tls: try contexts("component-1", crl: true)) { url, _ in
            #expect(url.secure)
            let ok = try await curl(url, as: "client-1")
            #expect(ok.status == 0 && ok.output.contains("test-loopback"), "\(ok.output)")
            for name in [nil, "other/client-1", "old", "revoked"] {
                let refused = try await curl(url, as: name)
                #expect(refused.status != 0 && !refused.output.contains("test-loopback"), "\(name ?? "no certificate"): \(refused.output)")
            }
            // Plain HTTP on the TLS port gets nothing either.
            let plain = try await runProcess(["curl", "-sS", "--max-time", "5", HTTPURL(host: url.host, port: url.port, path: "/capability").description])
            #expect(!plain.output.contains("test-loopback"), "\(plain.output)")
            // Our client, with a certificate of our CA: served, and told who the server is.
            let reply = try await SimpleHTTPClient.request("GET", url.with(path: "/capability"), accept: mplaneContentType, tls: try contexts("client-1"))
            #expect(reply.status == 200 && reply.peerIdentity == "org.example.components.component-1")
            // Our client with another CA's certificate: refused at the handshake.
            await #expect(throws: (any Error).self) {
                _ = try await SimpleHTTPClient.request("GET", url.with(path: "/capability"), tls: try contexts("other/client-1"))
            }
            // An https URL without a [TLS] section is an error, not a plain request.
            await #expect(throws: HTTPClientError.self) { _ = try await SimpleHTTPClient.request("GET", url) }
            #expect(try await curl(url, as: "client-2").status == 0)
        }
    }

    @Test("a server whose certificate does not name the host is refused, unless verify-hostname = no")
    func hostnameVerification() async throws {
        let p = try pki()
        // The certificates name 127.0.0.1, ::1 and localhost; a server on 127.0.0.2 is not among them.
        let server = HTTPComponentServer(host: "127.0.0.2", port: 0, tls: try contexts("component-1")) { _ in
            HTTPReply(status: 200, contentType: "text/plain", body: Array("hello".utf8))
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let port = await server.boundPort()
            let elsewhere = HTTPURL(host: "127.0.0.2", port: port, path: "/", secure: true)
            await #expect(throws: (any Error).self) {
                _ = try await SimpleHTTPClient.request("GET", elsewhere, tls: try contexts("client-1"))
            }
            var lax = TLSSettings(certificate: p.certificate("client-1"), key: p.key("client-1"), caChain: p.ca)
            lax.verifyHostname = false
            let reply = try await SimpleHTTPClient.request("GET", elsewhere, tls: try TLSContexts(lax))
            #expect(reply.status == 200 && reply.body == Array("hello".utf8))
            group.cancelAll()
        }
        try await withComponent(tls: try contexts("component-1")) { url, _ in
            let byName = HTTPURL(host: "localhost", port: url.port, path: "/capability", secure: true)
            let reply = try await SimpleHTTPClient.request("GET", byName, tls: try contexts("client-1"))
            #expect(reply.status == 200)
        }
    }

    @Test("authorisation: a client sees and runs only what its roles allow; anything else is a 403 that names nothing; another identity's job is unknown (404)")
    func authorisation() async throws {
        let ini = try IniFile(parsing: """
            [Roles]
            org.example.clients.client-1 = guest
            org.example.multi-1.x = admin, guest

            [Authorizations]
            test-loopback = guest
            test-counter = admin
            """)
        try await withComponent(replyWait: .milliseconds(200), tls: try contexts("component-1"), authorization: ini.authorization) { url, _ in
            let client1 = ComponentClient(url: url, tls: try contexts("client-1"))
            let multi = ComponentClient(url: url, tls: try contexts("multi"))
            let stranger = ComponentClient(url: url, tls: try contexts("client-2"))
            #expect(try await client1.capabilities().compactMap(\.statement.label) == ["test-loopback"])
            #expect(Set(try await multi.capabilities().compactMap(\.statement.label)) == ["test-loopback", "test-counter"])
            #expect(try await stranger.capabilities().isEmpty)
            let html = try await curl(url, as: "client-2")
            #expect(!html.output.contains("test-"), "\(html.output)")

            /// The HTTP status and message of `client`'s (certificate `name`'s) answer to `m`.
            func post(_ m: Message, as name: String) async throws -> (Int, Message) {
                let reply = try await SimpleHTTPClient.request("POST", url, contentType: mplaneContentType, body: MessageEncoder().encode(m),
                                                               tls: try contexts(name))
                return (reply.status, try MessageDecoder().decode(reply.body))
            }
            // The counter, refused to client-1 alike whether or not it exists.
            var counter = Specification(capability: CounterService().capability, when: try When(parsing: "now + 2s / 1s"))
            try counter.statement.setParameterValue("test.input", .string("x"))
            let (status, refusal) = try await post(.specification(counter), as: "client-1")
            guard case .exception(let e) = refusal else { Issue.record("not refused: \(refusal)"); return }
            #expect(status == 403 && e.message == "Specification not authorised")
            var unknown = counter
            unknown.statement.label = "nothing-like-it"
            unknown.statement.verb = "collect"
            let (status2, refusal2) = try await post(.specification(unknown), as: "client-1")
            guard case .exception(let e2) = refusal2 else { Issue.record("not refused: \(refusal2)"); return }
            #expect(status2 == 403 && e2.message == e.message)

            // multi runs the counter; client-1 cannot redeem or interrupt it; multi can.
            guard case .receipt(let receipt) = try await multi.send(.specification(counter)) else { Issue.record("no receipt"); return }
            for m in [Message.redemption(Redemption(receipt: receipt)), .interrupt(Interrupt(receipt.statement))] {
                let (status, answer) = try await post(m, as: "client-1")
                guard case .exception(let e) = answer else { Issue.record("another's job answered: \(answer)"); continue }
                #expect(status == 404 && e.message == "Unknown job")
            }
            let mine = try await multi.send(.interrupt(Interrupt(receipt.statement)))
            #expect(mine.kind == .result || mine.kind == .receipt, "\(mine)")
            // The loopback, allowed to client-1.
            guard case .result(let r) = try await client1.send(.specification(try loopbackSpec("tls"))) else { Issue.record("no result"); return }
            #expect(r.values.columns[0][0] == .string("tls"))
        }
    }

    @Test("the agent over TLS: it registers only what the supervisor's roles allow, and the supervisor knows it by its certificate; a supervisor from another CA is refused and the agent keeps trying")
    func agentOverTLS() async throws {
        let seen = Mutex<[(identity: String?, body: String)]>([])
        let supervisor = HTTPComponentServer(host: "127.0.0.1", port: 0, tls: try contexts("supervisor-1")) { request in
            seen.withLock { $0.append((request.identity, String(decoding: request.body, as: UTF8.self))) }
            if request.path.hasSuffix("register/capability") { return registeredReply }
            return HTTPReply(status: 200, contentType: mplaneContentType, body: Array("{\"envelope\": \"message\", \"version\": 1, \"contents\": []}".utf8))
        }
        let scheduler = Scheduler(services: [LoopbackService(), CounterService()])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await supervisor.run() }
            let port = await supervisor.boundPort()
            var configuration = try agentConfiguration(port: port, pollInterval: .milliseconds(200))
            configuration.authorization = Authorization(roles: ["org.example.supervisors.supervisor-1": ["sup"]],
                                                        allowed: ["test-loopback": ["sup"]])
            let agent = ComponentInitiatedAgent(scheduler: scheduler, configuration: configuration, tls: try contexts("component-1"))
            group.addTask { await scheduler.run() }
            group.addTask { try await agent.run() }
            for _ in 0..<100 where seen.withLock({ $0.count }) < 2 { try await Task.sleep(for: .milliseconds(50)) }
            group.cancelAll()
            scheduler.shutdown()
        }
        let requests = seen.withLock { $0 }
        try #require(requests.count >= 2, "\(requests)")
        #expect(requests.allSatisfy { $0.identity == "org.example.components.component-1" })
        #expect(requests[0].body.contains("test-loopback") && !requests[0].body.contains("test-counter"), "\(requests[0].body)")

        // A supervisor with a certificate of another CA: no request gets through.
        let reached = Atomic<Int>(0)
        let impostor = HTTPComponentServer(host: "127.0.0.1", port: 0, tls: try contexts("other/supervisor-1")) { _ in
            reached.add(1, ordering: .relaxed)
            return registeredReply
        }
        let other = Scheduler(services: [LoopbackService()])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await impostor.run() }
            let port = await impostor.boundPort()
            let agent = ComponentInitiatedAgent(scheduler: other, configuration: try agentConfiguration(port: port, pollInterval: .milliseconds(200)),
                                                tls: try contexts("component-1"))
            group.addTask { await other.run() }
            group.addTask { try await agent.run() }
            try await Task.sleep(for: .seconds(2))
            #expect(agent.counters.registrations == 0)
            // It still measures: a job submitted locally runs.
            #expect(await other.submit(try loopbackSpec("still")).kind == .receipt)
            group.cancelAll()
            other.shutdown()
        }
        #expect(reached.load(ordering: .relaxed) == 0)
    }

    @Test("supervisor-identity: a server certificate of the same CA that is not the supervisor's gets nothing; a client certificate cannot serve at all")
    func supervisorIdentity() async throws {
        let p = try pki()
        let seen = Atomic<Int>(0)
        // Another server of the CA (a component's certificate) where the supervisor should be.
        let impostor = HTTPComponentServer(host: "127.0.0.1", port: 0, tls: try contexts("component-2")) { _ in
            seen.add(1, ordering: .relaxed)
            return registeredReply
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await impostor.run() }
            let port = await impostor.boundPort()
            let text = p.section("component-1") + "[component]\nworkflow = component-initiated\nclient_host = 127.0.0.1\nclient_port = \(port)\n"
                + "supervisor-identity = org.example.supervisors.supervisor-1\n"
            var configuration = try ComponentConfiguration(ini: text)
            #expect(configuration.supervisorIdentity == "org.example.supervisors.supervisor-1")
            configuration.backoffMax = .seconds(1)
            let scheduler = Scheduler(services: [LoopbackService()])
            let agent = ComponentInitiatedAgent(scheduler: scheduler, configuration: configuration, tls: try contexts("component-1"))
            group.addTask { await scheduler.run() }
            group.addTask { try await agent.run() }
            try await Task.sleep(for: .seconds(2))
            #expect(agent.counters.registrations == 0)
            group.cancelAll()
            scheduler.shutdown()
        }
        #expect(seen.load(ordering: .relaxed) == 0, "nothing reached the impostor")
        // Without [TLS] the key makes no sense.
        #expect(throws: ComponentConfiguration.Error.self) {
            try ComponentConfiguration(ini: "[component]\nsupervisor-identity = x\n")
        }
        // A client-only certificate (make-certs.sh gives clients clientAuth only) does not
        // authenticate a server.
        let fake = HTTPComponentServer(host: "127.0.0.1", port: 0, tls: try contexts("client-2")) { _ in registeredReply }
        let client = try contexts("client-1")
        await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await fake.run() }
            let port = await fake.boundPort()
            await #expect(throws: (any Error).self) {
                _ = try await SimpleHTTPClient.request("GET", HTTPURL(host: "127.0.0.1", port: port, path: "/", secure: true), tls: client)
            }
            group.cancelAll()
        }
    }

    @Test("another identity's token neither reveals, nor blocks, nor replaces a job; identities are compared byte for byte")
    func tokensBelongToTheirOwner() async throws {
        // A loopback job answers at once; the wait only covers a loaded machine.
        try await withComponent(replyWait: .seconds(5), tls: try contexts("component-1")) { url, _ in
            func post(_ m: Message, as name: String) async throws -> Message {
                let reply = try await SimpleHTTPClient.request("POST", url, contentType: mplaneContentType, body: MessageEncoder().encode(m),
                                                               tls: try contexts(name))
                return try MessageDecoder().decode(reply.body)
            }
            var mine = try loopbackSpec("client-1's secret")
            mine.statement.token = "11112222333344445555666677778888"
            guard case .result = try await post(.specification(mine), as: "client-1") else { Issue.record("no result"); return }
            // client-2 reuses the token for its own specification: its own job.
            var theirs = try loopbackSpec("client-2's")
            theirs.statement.token = mine.token
            guard case .result(let r2) = try await post(.specification(theirs), as: "client-2") else { Issue.record("no result for client-2"); return }
            #expect(r2.values.columns[0][0] == .string("client-2's"))
            // client-1's result is still there, and still its own.
            guard case .result(let r1) = try await post(.redemption(Redemption(receipt: Receipt(specification: mine))), as: "client-1") else {
                Issue.record("client-1's result is gone")
                return
            }
            #expect(r1.values.columns[0][0] == .string("client-1's secret"))
        }
        // Canonically equivalent spellings are two identities.
        let a = Authorization(roles: ["jos\u{E9}": ["r"], "kate": ["r"]], allowed: ["x": ["r"]])
        #expect(a.allows("jos\u{E9}", label: "x", token: "t") && a.allows("KATE", label: "x", token: "t"))
        #expect(!a.allows("jose\u{301}", label: "x", token: "t"))
        #expect(!a.allows("\u{212A}ate", label: "x", token: "t"), "the Kelvin sign is not a K")
    }

    @Test("SIGHUP applies [Roles] and [Authorizations] at once: a role taken away is gone for the next request")
    func rolesReload() async throws {
        let p = try pki()
        let before = p.section("component-1") + "[Roles]\norg.example.clients.client-1 = ops\n[Authorizations]\ntest-loopback = ops\n"
            + "[component]\nworkflow = client-initiated\n[module_loopback]\nmodule = loopback\n"
        let after = before.replacingOccurrences("org.example.clients.client-1 = ops", "org.example.clients.client-2 = ops")
        let running = try ComponentConfiguration(ini: before)
        let policy = AuthorizationPolicy(running.authorization)
        let scheduler = Scheduler(services: try running.makeServices())
        let reloader = ConfigurationReloader(scheduler: scheduler, running: running, factories: .builtIn, policy: policy) { _ in }
        let router = ComponentRouter(scheduler: scheduler, link: nil, replyWait: .seconds(1), policy: policy)
        func labels(_ who: String) async -> [String] {
            let reply = await router.handle(HTTPRequestData(method: "GET", path: "/capability", headers: [("Accept", mplaneContentType)], identity: who))
            guard case .envelope(let e)? = try? MessageDecoder().decode(reply.body) else { return ["?"] }
            return e.contents.compactMap { if case .capability(let c) = $0 { c.statement.label } else { nil } }
        }
        #expect(await labels("org.example.clients.client-1") == ["test-loopback"])
        let outcome = try reloader.reload(text: after)
        #expect(!outcome.restartNeeded)
        #expect(await labels("org.example.clients.client-1").isEmpty)
        #expect(await labels("org.example.clients.client-2") == ["test-loopback"])
    }

    @Test("interop over TLS: the RI's client, with its [TLS] section, drives our component; the component knows it by its certificate")
    func referenceClientOverTLS() async throws {
        let py = try #require(riPython, "the reference implementation is not installed: run `make test`")
        let p = try pki()
        let ini = try IniFile(parsing: "[Roles]\norg.example.clients.client-1 = tester\n[Authorizations]\ntest-loopback = tester\ntest-counter = tester\n")
        try await withComponent(tls: try contexts("component-1"), authorization: ini.authorization) { url, _ in
            let out = try await runProcess([py, repoRoot + "/Tests/Interop/ri_client_tls.py", url.description, p.ca,
                                            p.certificate("client-1"), p.key("client-1")])
            #expect(out.status == 0, "\(out.output)")
            let doc = try JSON(parsing: out.output.split(separator: "\n").last.map(String.init) ?? "")
            #expect(doc["errors"] == .array([]), "\(out.output)")
            #expect(doc["labels"] == .array([.string("test-counter"), .string("test-loopback")]), "\(out.output)")
            #expect(doc["component_identity"] == .string("org.example.components.component-1"))
            #expect(doc["loopback_kind"] == .string("result") && doc["loopback_output"] == .string("hello over TLS"), "\(out.output)")
            #expect(doc["counter_rows"] == .number(3), "\(out.output)")
            #expect(doc["long_after_interrupt_kind"] == .string("result"), "\(out.output)")
        }
    }

    @Test("interop over TLS: our component registers with the RI's supervisor over TLS and runs what it is sent")
    func referenceSupervisorOverTLS() async throws {
        let py = try #require(riPython, "the reference implementation is not installed: run `make test`")
        let out = try await runProcess([py, repoRoot + "/Tests/Interop/ri_supervisor_tls.py", repoRoot + "/.build/debug/mpcom"])
        #expect(out.status == 0, "\(out.output)")
        let doc = try JSON(parsing: out.output.split(separator: "\n").last.map(String.init) ?? "")
        #expect(doc["errors"] == .array([]), "\(out.output)")
        #expect(doc["registered"] == .bool(true), "\(out.output)")
        #expect(doc["labels"] == .array([.string("test-counter"), .string("test-loopback")]), "\(out.output)")
        #expect(doc["component_identities"] == .array([.string("org.example.components.component-1")]), "\(out.output)")
        #expect(doc["loopback_output"] == .string("pushed over TLS"), "\(out.output)")
    }

    @Test("SIGHUP reloads the certificates: a new handshake presents the new certificate, a running job's result is still there; a broken new key is refused and the old certificate stays")
    func reloadOnSIGHUP() async throws {
        let p = try pki()
        try await withTemporaryDirectory { dir in
            mkdir(dir, 0o700)
            func install(_ name: String) {
                _ = run(["cp", p.certificate(name), dir + "/server.crt"])
                _ = run(["cp", p.key(name), dir + "/server.key"])
            }
            install("component-1")
            let port = freePort()
            let conf = "[TLS]\ncert = \(dir)/server.crt\nkey = \(dir)/server.key\nca-chain = \(p.ca)\n"
                + "[component]\nworkflow = client-initiated\nlisten-port = \(port)\nreply-wait = 0.1\n[module_counter]\nmodule = counter\n"
            #expect(writeFile(dir + "/mpcom.conf", Array(conf.utf8)))
            let pid = startInBackground("exec '\(repoRoot)/.build/debug/mpcom' --config '\(dir)/mpcom.conf' --log-level info > '\(dir)/log' 2>&1")
            try #require(pid > 0)
            defer { kill(pid, SIGKILL) }
            let log = { String(decoding: readFile(dir + "/log") ?? [], as: UTF8.self) }
            let url = HTTPURL(host: "127.0.0.1", port: port, path: "/", secure: true)
            let client = try contexts("client-1")
            var first: HTTPClientReply?
            for _ in 0..<100 where first == nil {
                first = try? await SimpleHTTPClient.request("GET", url.with(path: "/capability"), accept: mplaneContentType, tls: client)
                if first == nil { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(first?.peerIdentity == "org.example.components.component-1", "\(log())")
            // A job of 3 one-second rows, running across the reload.
            var spec = Specification(capability: CounterService().capability, when: try When(parsing: "now + 3s / 1s"))
            try spec.statement.setParameterValue("test.input", .string("across"))
            let submitted = try await SimpleHTTPClient.request("POST", url, contentType: mplaneContentType,
                                                               body: MessageEncoder().encode(.specification(spec)), tls: client)
            guard case .receipt(let receipt) = try MessageDecoder().decode(submitted.body) else {
                Issue.record("no receipt: \(String(decoding: submitted.body, as: UTF8.self))")
                return
            }
            install("component-2")
            kill(pid, SIGHUP)
            for _ in 0..<50 where !log().contains("TLS certificates reloaded") { try await Task.sleep(for: .milliseconds(100)) }
            let after = try await SimpleHTTPClient.request("GET", url.with(path: "/capability"), accept: mplaneContentType, tls: client)
            #expect(after.peerIdentity == "org.example.components.component-2", "\(log())")
            // The job's result, redeemed over a new connection.
            var result: Message?
            for _ in 0..<80 {
                let r = try await SimpleHTTPClient.request("POST", url, contentType: mplaneContentType,
                                                           body: MessageEncoder().encode(.redemption(Redemption(receipt: receipt))), tls: client)
                let m = try MessageDecoder().decode(r.body)
                if case .result = m { result = m; break }
                try await Task.sleep(for: .milliseconds(100))
            }
            guard case .result(let r)? = result else { Issue.record("no result after the reload: \(log())"); return }
            #expect(r.values.rowCount >= 3, "every second of the 3 s scope")
            // A key that does not match: the reload is refused, the certificate in use stays.
            _ = run(["cp", p.key("client-1"), dir + "/server.key"])
            kill(pid, SIGHUP)
            for _ in 0..<50 where !log().contains("TLS reload refused") { try await Task.sleep(for: .milliseconds(100)) }
            #expect(log().contains("does not match the certificate"), "\(log())")
            let still = try await SimpleHTTPClient.request("GET", url.with(path: "/capability"), accept: mplaneContentType, tls: client)
            #expect(still.status == 200 && still.peerIdentity == "org.example.components.component-2")
            #expect(try await stop(pid), "stopped on SIGTERM")
        }
    }

    @Test("mpcli over mutual TLS: runcap with --cert, --key and --ca-chain; an https URL without them is a usage error")
    func mpcliOverTLS() async throws {
        let p = try pki()
        let mpcli = repoRoot + "/.build/debug/mpcli"
        try await withComponent(tls: try contexts("component-1")) { url, _ in
            let ok = try await runProcess([mpcli, "runcap", "test-loopback", "--url", url.description, "--set", "test.input=over tls",
                                           "--cert", p.certificate("client-1"), "--key", p.key("client-1"), "--ca-chain", p.ca])
            #expect(ok.status == 0 && ok.output.contains("over tls"), "\(ok.output)")
            let bare = try await runProcess([mpcli, "runcap", "test-loopback", "--url", url.description, "--set", "test.input=x"])
            #expect(bare.status == 64 && bare.output.contains("is https: give --cert"), "\(bare.output)")
            let otherCA = try await runProcess([mpcli, "listcap", "--url", url.description, "--cert", p.dir + "/other/client-1.crt",
                                                "--key", p.dir + "/other/client-1.key", "--ca-chain", p.dir + "/other/ca.crt"])
            #expect(otherCA.status == 1, "\(otherCA.output)")
        }
    }

    @Test("hostile peers: a connection that never finishes its handshake is closed at the request deadline and counted out; the server serves on")
    func handshakeDeadline() async throws {
        var limits = HTTPServerLimits()
        limits.requestTimeout = .seconds(1)
        limits.maxConnectionsPerPeer = 2
        try await withComponent(limits: limits, tls: try contexts("component-1")) { url, _ in
            let (silent, partial, took) = await blocking { () -> (Bool, Bool, String) in
                // One says nothing; one sends the start of a ClientHello and stops.
                guard let quiet = RawConnection(port: url.port), let half = RawConnection(port: url.port) else { return (false, false, "") }
                _ = half.send("\u{16}\u{03}\u{01}\u{02}\u{00}\u{01}")
                let t0 = ContinuousClock.now
                let q = quiet.readAll(seconds: 30).closed
                let t1 = ContinuousClock.now
                let h = half.readAll(seconds: 30).closed
                return (q, h, "silent closed after \(t1 - t0), half after \(ContinuousClock.now - t0)")
            }
            #expect(silent && partial, "both closed by the server: \(took)")
            // Within 30 s, well before the 60 s idle close: the handshake deadline did it (how
            // soon depends on the machine's load; the deadline is 1 s).
            // Their places are free again: with max-connections-per-client 2, a client is served.
            var status = 0
            for _ in 0..<50 where status != 200 {
                status = (try? await SimpleHTTPClient.request("GET", url.with(path: "/capability"), tls: try contexts("client-1")))?.status ?? 0
                if status != 200 { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(status == 200)
        }
    }

    @Test("hostile DER: truncated or garbage certificates and CRLs are errors, never a crash; odd-length BMP and Universal strings read")
    func hostileDER() throws {
        let p = try pki()
        let derFile = p.dir + "/client-1.der"
        #expect(run(["openssl", "x509", "-in", p.certificate("client-1"), "-outform", "DER", "-out", derFile]).status == 0)
        let good = try readAll(derFile)
        #expect(try certificateIdentity(der: good) == "org.example.clients.client-1")
        // Cut anywhere, or bytes changed: an error each time, never a trap.
        for cut in stride(from: 0, to: good.count - 1, by: 7) {
            #expect(throws: (any Error).self) { try certificateIdentity(der: Array(good.prefix(cut))) }
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var bent = good
            for _ in 0..<4 { bent[Int.random(in: 0..<bent.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator) }
            _ = try? certificateIdentity(der: bent)  // any outcome but a crash
            _ = try? RevocationList(der: bent)
        }
        // A name whose values are an odd-length BMPString and a 5-byte UniversalString.
        let name: [UInt8] = [0x30, 0x1A,
                             0x31, 0x0C, 0x30, 0x0A, 0x06, 0x03, 0x55, 0x04, 0x03, 0x1E, 0x03, 0x00, 0x41, 0x00,
                             0x31, 0x0A, 0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x0B, 0x1C, 0x01, 0x00]
        #expect(try DistinguishedName(derEncoded: DER.parse(name)).identity == "A.")
        // A CRL file whose block is not a CRL: a start-up error naming the file.
        let bogus = p.dir + "/bogus-crl.pem"
        #expect(writeFile(bogus, Array("-----BEGIN X509 CRL-----\nMIIBAAECAwQFBgcICQ==\n-----END X509 CRL-----\n".utf8)))
        #expect(throws: TLSSetupError.self) { try revocationLists(crlFile: bogus, issuers: []) }
    }
}

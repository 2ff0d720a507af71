import Testing
import Synchronization
@testable import MPlane
@testable import MPlaneScheduler
@testable import MPlaneRuntime
@testable import mpcom
@testable import MPlaneHTTP
@testable import MPlaneClient
import MPlaneIO
import MPlanePing
import MPlaneCapture
import MPlaneTestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite("Configuration")
struct ConfigurationTests {
    @Test("the reference implementation's INI file is read, with our additions")
    func riFile() throws {
        let text = """
        # a component as the RI's mpcom configures it
        [TLS]
        cert = PKI/ca/certs/Component-Plaintext.crt
        key = PKI/ca/certs/Component-Plaintext.key
        ca-chain = PKI/ca/root-ca/root-ca.crt

        [Roles]
        org.mplane.SSB.Clients.Client-1 = guest,admin

        [Authorizations]
        ping-average-ip4 = guest

        [component]
        workflow = component-initiated
        registry_uri = http://ict-mplane.eu/registry/core
        client_host: 10.0.0.7
        client_port = 8889
        registration_path = register/capability
        specification_path = show/specification
        result_path = register/result
        listen-port = 18228
        listen-cap-link = http://probe.example:18228/
        reply-wait = 2.5

        [module_loopback]
        module = mplane.components.loopback

        [module_counter]
        module = counter
        minimum-period = 2
        """
        let c = try ComponentConfiguration(ini: text)
        #expect(c.workflow == .componentInitiated)
        #expect(c.clientHost == "10.0.0.7" && c.clientPort == 8889)
        #expect(c.listenPort == 18228 && c.capabilityLink == "http://probe.example:18228/")
        #expect(c.replyWait == .milliseconds(2500))
        #expect(c.tls?.certificate == "PKI/ca/certs/Component-Plaintext.crt" && c.tls?.caChain == "PKI/ca/root-ca/root-ca.crt")
        #expect(c.tls?.verifyHostname == true && c.tls?.expiryWarningDays == 30)
        #expect(c.authorization.roles(of: "org.mplane.SSB.Clients.Client-1") == ["guest", "admin"])
        #expect(c.authorization.roles(of: "org.mplane.ssb.clients.client-1") == ["guest", "admin"])
        #expect(c.authorization.allows("org.mplane.SSB.Clients.Client-1", label: "ping-average-ip4", token: "x"))
        #expect(!c.authorization.allows("org.mplane.SSB.Clients.Client-2", label: "ping-average-ip4", token: "x"))
        #expect(!c.authorization.allows("org.mplane.SSB.Clients.Client-1", label: "ping-detail-ip4", token: "x"))
        let services = try c.makeServices()
        #expect(services.map { $0.capability.statement.label } == ["test-loopback", "test-counter"])
        #expect(services[1].capability.statement.when.period == 2)
    }

    @Test("the example configurations in deploy/ are valid")
    func examples() throws {
        let secured = try ComponentConfiguration(ini: String(decoding: try readAll(repoRoot + "/deploy/mpcom-tls.conf"), as: UTF8.self))
        #expect(secured.tls?.caChain == "/etc/mplane/pki/ca.crt" && secured.workflow == .componentInitiated
                && secured.supervisorIdentity == "org.example.supervisors.supervisor-1")
        #expect(secured.authorization.allows("org.example.supervisors.supervisor-1", label: "ping-detail-ip6", token: "t"))
        for name in ["component-client-initiated.conf", "component-initiated.conf"] {
            let text = String(decoding: try readAll(repoRoot + "/deploy/" + name), as: UTF8.self)
            let c = try ComponentConfiguration(ini: text)
            #expect(c.resultQueueDirectory == (name == "component-initiated.conf" ? "/var/lib/mplane/queue" : nil))
            #expect(c.tls == nil)
            if canPing {
                // The RI's four ping capabilities, loopback and counter.
                #expect(try c.makeServices(.probe).count == 6, "\(name)")
            } else {
                #expect(throws: ComponentConfiguration.Error.self) { try c.makeServices(.probe) }
            }
        }
        let local = try ComponentConfiguration(ini: String(decoding: try readAll(repoRoot + "/deploy/component-to-local-mpsup.conf"), as: UTF8.self))
        #expect(local.workflow == .componentInitiated && local.clientPort == 8888 && local.componentName == "local-probe")
        #expect(try local.makeServices(.probe).contains { $0.capability.statement.label == "test-loopback" })
    }

    @Test("the embedded default runs ping and capture (where permitted) and the test services on loopback")
    func embedded() throws {
        let c = try ComponentConfiguration(ini: ComponentConfiguration.embeddedDefault)
        #expect(c.workflow == .clientInitiated && c.listenAddress == "127.0.0.1" && c.listenPort == 1228)
        let labels = try c.makeServices(.probe).compactMap(\.capability.statement.label)
        #expect(labels.contains("test-loopback") && labels.contains("test-counter"))
        // Five ping forms from each of 127.0.0.1 and ::1 where ICMP sockets may be opened.
        #expect(labels.filter { $0.hasPrefix("ping-") }.count == (canPing ? 10 : 0), "\(labels)")
        #expect(labels.contains("capture-lo") == (CaptureService.availability(interface: "lo") == nil), "\(labels)")
    }

    @Test("ping settings are checked, and a ping that cannot work says what would fix it")
    func pingSettings() throws {
        for (text, words) in [
            ("socket = sideways", "socket = sideways"), ("ip4addr = ::1", "not an IPv4 address"),
            ("max-targets = 0", "max-targets"), ("extended = maybe", "extended = maybe"), ("", "give ip4addr"),
            ("spin-lead-us = 1001", "spin-lead-us"), ("spin-lead-percentile = 100", "spin-lead-percentile = 100: use a number in 50...99"),
            ("spin-lead-percentile = 0.9", "spin-lead-percentile"),
        ] {
            let c = try ComponentConfiguration(ini: "[component]\n[module_ping]\nmodule = mplane.components.ping\n\(text)\n")
            #expect(throws: ComponentConfiguration.Error.self, "\(text)") { try c.makeServices(.probe) }
            do { _ = try c.makeServices(.probe) } catch { #expect("\(error)".contains(words), "\(error)") }
        }
        if canPing {
            let c = try ComponentConfiguration(ini: "[component]\n[module_ping]\nmodule = mplane.components.ping\nip4addr = 127.0.0.1\nspin-lead-us = 0\nspin-lead-percentile = 99\n")
            let services = try c.makeServices(.probe).compactMap { $0 as? PingService }
            #expect(!services.isEmpty && services.allSatisfy { $0.settings.spinLeadMicroseconds == 0 && $0.settings.spinLeadPercentile == 99 })
            let d = try ComponentConfiguration(ini: "[component]\n[module_ping]\nmodule = mplane.components.ping\nip4addr = 127.0.0.1\n")
            let defaults = try d.makeServices(.probe).compactMap { $0 as? PingService }
            #expect(!defaults.isEmpty && defaults.allSatisfy { $0.settings.spinLeadPercentile == 90 })
        }
        // A datagram socket where ping_group_range does not admit us names the sysctl.
        if let problem = PingService.availability(source: IPAddress("127.0.0.1")!, kind: .datagram) {
            let c = try ComponentConfiguration(ini: "[component]\n[module_ping]\nmodule = mplane.components.ping\nip4addr = 127.0.0.1\nsocket = datagram\n")
            do {
                _ = try c.makeServices(.probe)
                Issue.record("started a ping that cannot work")
            } catch {
                #expect("\(error)".contains("ping_group_range"), "\(error) / \(problem)")
            }
            let lenient = try ComponentConfiguration(ini: "[component]\n[module_ping]\nmodule = mplane.components.ping\nip4addr = 127.0.0.1\nsocket = datagram\nif-permitted = yes\n")
            #expect(try lenient.makeServices(.probe).isEmpty)
        }
    }

    @Test("bad configurations are refused with the line or key at fault", arguments: [
        ("[component]\nworkflow = sideways\n", "workflow"),
        ("[component]\nlisten-port = 70000\n", "listen-port"),
        ("listen-port = 1\n", "line 1"),
        ("[component]\n[module_x]\nmodule = nonesuch\n", "unknown service 'nonesuch'"),
        ("[component]\nworkflow = component-initiated\n", "client_host"),
        ("[component]\nthis line has no separator\n", "line 2"),
    ])
    func refused(text: String, mention: String) {
        do {
            let c = try ComponentConfiguration(ini: text)
            _ = try c.makeServices()
            Issue.record("accepted: \(text)")
        } catch {
            #expect("\(error)".contains(mention), "\(error)")
        }
    }
}

func loopbackSpec(_ input: String = "hi") throws -> Specification {
    var s = Specification(capability: LoopbackService().capability, when: try When(parsing: "now"))
    try s.statement.setParameterValue("test.input", .string(input))
    return s
}

/// Runs `body` against a live HTTP component on 127.0.0.1 with an OS-chosen port.
func withComponent(replyWait: Duration = .seconds(5), maxBodyBytes: Int = 1 << 20,
                   services: [any MeasurementService] = [LoopbackService(), CounterService()],
                   limits: HTTPServerLimits? = nil, scheduling: SchedulerConfiguration = SchedulerConfiguration(),
                   tls: TLSContexts? = nil, authorization: Authorization = .open,
                   _ body: (HTTPURL, ComponentRouter) async throws -> Void) async throws {
    let scheduler = Scheduler(services: services, configuration: scheduling)
    let router = ComponentRouter(scheduler: scheduler, link: nil, replyWait: replyWait, policy: AuthorizationPolicy(authorization))
    var l = limits ?? HTTPServerLimits()
    if limits == nil {
        l.maxBodyBytes = maxBodyBytes
        l.idleTimeout = .seconds(5)
    }
    let server = HTTPComponentServer(router: router, host: "127.0.0.1", port: 0, limits: l, tls: tls)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await scheduler.run() }
        group.addTask { try await server.run() }
        let port = await server.boundPort()
        do {
            try await body(HTTPURL(host: "127.0.0.1", port: port, path: "/", secure: tls != nil), router)
        } catch {
            group.cancelAll()
            throw error
        }
        group.cancelAll()
        scheduler.shutdown()
        try? await group.waitForAll()
    }
}

func decode(_ reply: HTTPClientReply) throws -> Message { try MessageDecoder().decode(reply.body) }

@Suite("HTTP component", .timeLimit(.minutes(1)))
struct HTTPComponentTests {
    let mplane = ComponentRouter.mplaneType

    @Test("capabilities: link list, envelope on request, one by token or label, carrying our link")
    func capabilities() async throws {
        try await withComponent { url, router in
            var u = url
            u.path = "/capability"
            // Browsers and curl get the RI's HTML link list.
            let list = await router.handle(HTTPRequestData(method: "GET", path: "/capability", headers: [("Accept", "*/*")]))
            #expect(list.status == 200 && list.contentType == "text/html")
            let html = String(decoding: list.body, as: UTF8.self)
            let loopToken = LoopbackService().capability.token
            // A client sending no Accept (the RI's) gets an envelope of the capabilities.
            let bare = try await SimpleHTTPClient.request("GET", u)
            #expect(bare.contentType == mplane)
            guard case .envelope(let all) = try decode(bare) else { Issue.record("kind"); return }
            #expect(all.contents.count == 2)
            #expect(html.contains("<a href='/capability/\(loopToken)'>"))
            #expect(loopToken == "1eb3b3c09578b8f741ca644ef30e012c", "the RI's token for its loopback capability")
            u.path = "/capability/\(loopToken)"
            let one = try await SimpleHTTPClient.request("GET", u)
            #expect(one.status == 200 && one.contentType == mplane)
            guard case .capability(let cap) = try decode(one) else { Issue.record("kind"); return }
            #expect(cap.statement.link == url.description && cap.token == loopToken)
            u.path = "/capability/test-counter"
            #expect(try await SimpleHTTPClient.request("GET", u).status == 200)
            u.path = "/capability/0123456789abcdef0123456789abcdef"
            let missing = try await SimpleHTTPClient.request("GET", u)
            #expect(missing.status == 404 && missing.contentType == mplane)
            guard case .exception = try decode(missing) else { Issue.record("kind"); return }
            let root = await router.handle(HTTPRequestData(method: "GET", path: "/", headers: [("Accept", "text/html")]))
            #expect(root.contentType == "text/html" && String(decoding: root.body, as: UTF8.self).contains("test-counter"))
            let env = await router.handle(HTTPRequestData(method: "GET", path: "/capability", headers: [("Accept", mplane)]))
            guard case .envelope(let e) = try MessageDecoder().decode(env.body) else { Issue.record("kind"); return }
            #expect(e.contents.count == 2)
        }
    }

    @Test("POST: a specification gets its result in the reply; redemption repeats it")
    func specification() async throws {
        try await withComponent { url, _ in
            let spec = try loopbackSpec("over http")
            let reply = try await SimpleHTTPClient.request("POST", url, contentType: mplane + "; charset=utf-8",
                                                           body: MessageEncoder().encode(.specification(spec)))
            #expect(reply.status == 200 && reply.contentType == mplane)
            guard case .result(let r) = try decode(reply) else { Issue.record("expected a result"); return }
            #expect(r.value("test.output") == .string("over http"))
            let redemption = Redemption(Statement(verb: .measure, token: spec.token), tokenOnly: true)
            let again = try await SimpleHTTPClient.request("POST", url, contentType: mplane,
                                                           body: MessageEncoder().encode(.redemption(redemption)))
            guard case .result(let r2) = try decode(again) else { Issue.record("expected a result"); return }
            #expect(r2 == r)
        }
    }

    @Test("a long specification is answered with a receipt after the reply wait, without blocking others")
    func receipt() async throws {
        try await withComponent(replyWait: .milliseconds(200)) { url, _ in
            var spec = Specification(capability: CounterService().capability, when: try When(parsing: "now + 1m / 1s"))
            try spec.statement.setParameterValue("test.input", .string("slow"))
            let reply = try await SimpleHTTPClient.request("POST", url, contentType: mplane,
                                                           body: MessageEncoder().encode(.specification(spec)))
            guard case .receipt(let rc) = try decode(reply) else { Issue.record("expected a receipt"); return }
            #expect(rc.token == spec.token)
            var u = url
            u.path = "/capability"
            #expect(try await SimpleHTTPClient.request("GET", u).status == 200)
            let interrupt = try await SimpleHTTPClient.request("POST", url, contentType: mplane,
                                                               body: MessageEncoder().encode(.interrupt(Interrupt(specification: spec))))
            guard case .result(let partial) = try decode(interrupt) else { Issue.record("expected the partial result"); return }
            #expect(partial.values.rowCount >= 1)
        }
    }

    @Test("errors are mPlane exceptions with a 4xx status", arguments: [
        ("application/json", "{}", 415),
        ("application/x-mplane+json", "{\"specification\": ", 400),
        ("application/x-mplane+json", "{\"hello\": \"world\"}", 400),
        ("application/x-mplane+json", "{\"redemption\": \"measure\", \"token\": \"feedface\"}", 404),
        ("application/x-mplane+json", "{\"capability\": \"measure\", \"when\": \"now\"}", 400),
    ])
    func errors(contentType: String, body: String, status: Int) async throws {
        try await withComponent { url, _ in
            let reply = try await SimpleHTTPClient.request("POST", url, contentType: contentType, body: Array(body.utf8))
            #expect(reply.status == status)
            #expect(reply.contentType == mplane)
            guard case .exception(let e) = try decode(reply) else { Issue.record("expected an exception"); return }
            #expect(!e.message.isEmpty)
        }
    }

    @Test("a constraint violation is refused with 403 and the reason; oversized bodies get 413")
    func refusals() async throws {
        try await withComponent(maxBodyBytes: 4096) { url, _ in
            var spec = Specification(capability: CounterService().capability, when: try When(parsing: "now + 10s"))
            try spec.statement.setParameterValue("test.input", .string("no period"))
            let reply = try await SimpleHTTPClient.request("POST", url, contentType: mplane,
                                                           body: MessageEncoder().encode(.specification(spec)))
            #expect(reply.status == 403)
            guard case .exception(let e) = try decode(reply) else { Issue.record("expected an exception"); return }
            #expect(e.message.contains("period"))
            let big = [UInt8](repeating: 0x20, count: 10_000)
            let tooLarge = try await SimpleHTTPClient.request("POST", url, contentType: mplane, body: big)
            #expect(tooLarge.status == 413)
            // The component is still there.
            #expect(try await SimpleHTTPClient.request("GET", url).status == 200)
        }
    }

    @Test("the reference implementation's client drives our component")
    func referenceClient() async throws {
        let py = try #require(riPython, "the reference implementation is not installed: run `make test`")
        try await withComponent { url, _ in
            let result = try await runProcess([py, repoRoot + "/Tests/Interop/ri_client.py", url.description])
            #expect(result.status == 0, "\(result.output)")
            let doc = try JSON(parsing: result.output)
            #expect(doc["labels"] == .array([.string("test-counter"), .string("test-loopback")]))
            #expect(doc["loopback_kind"] == .string("result"))
            #expect(doc["loopback_output"] == .string("hello from the RI"))
            #expect(doc["counter_kind"] == .string("result"))
            #expect(doc["counter_rows"] == .number(3))
            #expect(doc["long_first_kind"] == .string("receipt"))
            #expect(doc["long_after_interrupt_kind"] == .string("result"))
            if case .number(let rows)? = doc["long_rows"] { #expect(rows >= 5 && rows <= 12, "5 s reply wait + 2.5 s, at 1 row/s") } else { Issue.record("no rows: \(result.output)") }
        }
    }
}

@Suite("Ping through the HTTP component (needs ICMP sockets)", .timeLimit(.minutes(1)),
       .enabled(if: canPing, "skipped: this process may not open ICMP sockets (needs CAP_NET_RAW or ping_group_range)"))
struct PingComponentTests {
    @Test("the reference implementation's client invokes our ping capabilities")
    func referenceClientPings() async throws {
        let py = try #require(riPython, "the reference implementation is not installed: run `make test`")
        let services = PingService.services(source: IPAddress("127.0.0.1")!, forms: PingService.Form.allCases)
        try await withComponent(services: services) { url, _ in
            let result = try await runProcess([py, repoRoot + "/Tests/Interop/ri_ping.py", url.description,
                                               repoRoot + "/deploy/registry/probe-registry.json"])
            #expect(result.status == 0, "\(result.output)")
            let doc = try JSON(parsing: result.output)
            #expect(doc["labels"]?.arrayValue?.count == 5, "\(result.output)")
            #expect(doc["average_kind"] == .string("result"))
            let avg = try #require(doc["average"]?.arrayValue?.first, "\(result.output)")
            #expect(avg["delay.twoway.icmp.count"] == .string("2"))
            if let min = avg["delay.twoway.icmp.us.min"]?.stringValue, let max = avg["delay.twoway.icmp.us.max"]?.stringValue {
                #expect(Int(min)! <= Int(max)! && Int(max)! < 100_000, "\(avg)")
            } else {
                Issue.record("no delays: \(result.output)")
            }
            #expect(doc["stats_kind"] == .string("result"))
            let stats = try #require(doc["stats"]?.arrayValue?.first, "\(result.output)")
            #expect(stats["packets.lost"] == .string("0") && stats["delay.twoway.icmp.count"] == .string("2"))
        }
    }
}

extension PingComponentTests {
    @Test("mpcli run leaves out the optional ping parameters, and our component fills in its defaults")
    func commandLinePing() async throws {
        let services = PingService.services(source: IPAddress("127.0.0.1")!, forms: PingService.Form.allCases)
        try await withComponent(services: services) { url, _ in
            let out = try await runProcess([repoRoot + "/.build/debug/mpcli", "run", "http://127.0.0.1:\(url.port)", "ping-stats-ip4",
                                            "--when", "now + 2s / 1s", "--param", "destination.ip4=127.0.0.1"])
            let lines = out.output.split(separator: "\n")
            #expect(out.status == 0 && lines.count >= 2 && lines[0].contains("packets.lost"), "\(out.output)")
            // The aggregate's delays in one line.
            #expect(lines.contains { $0.hasPrefix("delay: ") }, "\(out.output)")
        }
    }
}

/// A TCP port that was free a moment ago (for peers that cannot report the port they bound).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Runs `supervisor`, `scheduler` and a component-initiated agent polling the supervisor
/// (with a 60 s default interval: only callback control makes polls come faster) while
/// `body` runs; then stops them all.
func withAgent(_ supervisor: HTTPComponentServer, _ scheduler: Scheduler, _ body: () async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await supervisor.run() }
        let port = await supervisor.boundPort()
        let agent = ComponentInitiatedAgent(scheduler: scheduler, configuration: try agentConfiguration(port: port, pollInterval: .seconds(60)))
        group.addTask { await scheduler.run() }
        group.addTask { try await agent.run() }
        do { try await body() } catch {
            group.cancelAll()
            scheduler.shutdown()
            throw error
        }
        group.cancelAll()
        scheduler.shutdown()
        try? await group.waitForAll()
    }
}

/// What a test supervisor answers a registration: the RI's label map.
let registeredReply = HTTPReply(status: 200, contentType: ComponentRouter.mplaneType,
                                body: Array("{\"ok\":{\"registered\":\"ok\"}}".utf8))

func agentConfiguration(port: Int, pollInterval: Duration) throws -> ComponentConfiguration {
    var c = try ComponentConfiguration(ini: "[component]\nworkflow = component-initiated\nclient_host = 127.0.0.1\nclient_port = \(port)\n")
    c.pollInterval = pollInterval
    c.backoffMax = .seconds(1)
    // The callback tests poll every 200 ms; the floor's own test uses the default.
    c.minPollInterval = .milliseconds(100)
    return c
}

@Suite("Component-initiated mode", .timeLimit(.minutes(2)), .serialized)
struct ComponentInitiatedTests {
    /// Runs one of the RI's supervisor scripts against our agent (loopback and counter
    /// services) on a free port; returns its output and the JSON document it printed last.
    func againstScript(_ script: String) async throws -> (output: String, doc: JSON) {
        let py = try #require(riPython, "the reference implementation is not installed: run `make test`")
        let port = freePort()
        let scheduler = Scheduler(services: [LoopbackService(), CounterService()])
        let agent = ComponentInitiatedAgent(scheduler: scheduler, configuration: try agentConfiguration(port: port, pollInterval: .milliseconds(300)))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await scheduler.run() }
            group.addTask { try await agent.run() }
            let result = try await runProcess([py, repoRoot + "/Tests/Interop/" + script, String(port)])
            group.cancelAll()
            scheduler.shutdown()
            try? await group.waitForAll()
            #expect(result.status == 0, "\(result.output)")
            return (result.output, try JSON(parsing: result.output.split(separator: "\n").last.map(String.init) ?? ""))
        }
    }

    @Test("the reference implementation's supervisor registers us, queues work and gets receipts and results")
    func referenceSupervisor() async throws {
        let (output, doc) = try await againstScript("ri_supervisor.py")
        #expect(doc["registered"] == .bool(true), "\(output)")
        #expect(doc["callback_known"] == .bool(true), "our callback capability has the verb callback")
        #expect(doc["labels"] == .array([.string("test-counter"), .string("test-loopback")]), "the RI keeps the callback capability apart")
        #expect(doc["loopback_output"] == .string("pushed"))
        #expect(doc["counter_rows"] == .number(3))
        #expect(doc["long_receipt"] == .bool(true))
        if case .number(let rows)? = doc["long_rows"] { #expect(rows >= 1 && rows <= 6) } else { Issue.record("no partial result: \(output)") }
    }

    @Test("the RI's listener with its usual link, the base URL: receipts and results reach its result path (hardening row 13)")
    func referenceListenerBaseLink() async throws {
        let (output, doc) = try await againstScript("ri_listener_default_link.py")
        #expect(doc["registered"] == .bool(true), "\(output)")
        #expect(doc["loopback_output"] == .string("default-link"), "\(output)")
        #expect(doc["counter_rows"] == .number(3), "\(output)")
        #expect(doc["stray_requests"] == .array([]), "nothing posted to the link itself: \(output)")
    }

    @Test("the RI's own supervisor program: its client runs test-loopback through mpsup on our mpcom (hardening row 13)")
    func referenceSupervisorProgram() async throws {
        let py = try #require(riPython, "the reference implementation is not installed: run `make test`")
        let result = try await runProcess([py, repoRoot + "/Tests/Interop/ri_mpsup_chain.py", repoRoot + "/.build/debug/mpcom"])
        #expect(result.status == 0, "\(result.output)")
        let doc = try JSON(parsing: result.output.split(separator: "\n").last.map(String.init) ?? "")
        #expect(doc["labels"] == .array([.string("callback"), .string("test-counter"), .string("test-loopback")]), "\(result.output)")
        #expect(doc["reply_kind"] == .string("result"), "\(result.output)")
        #expect(doc["result"] == .string("via-mpsup"), "\(result.output)")
    }

    @Test("polling follows callback specifications; results wait while the supervisor is down")
    func callbackControl() async throws {
        let polls = Mutex<[Timestamp]>([])
        let results = Mutex<[Message]>([])
        let failPosts = Mutex(2)  // the first result posts fail: nothing may be lost
        let clock = SystemClock()
        let supervisor = HTTPComponentServer(host: "127.0.0.1", port: 0) { request in
            let mplane = ComponentRouter.mplaneType
            switch (request.method, request.path) {
            case ("POST", "/register/capability"):
                return registeredReply
            case ("GET", "/show/specification"):
                let n = polls.withLock { $0.append(clock.now()); return $0.count }
                var contents: [Message] = []
                if n <= 4 {
                    // Call back in 200 ms (absolute time, as a supervisor computes it).
                    var cb = Specification(capability: Capability(verb: .callback, label: "callback", when: .nowToFuture),
                                           when: When(start: .at(clock.now().adding(microseconds: 200_000))))
                    cb.statement.token = "cb-\(n)"
                    contents.append(.specification(cb))
                }
                if n == 1 {
                    var s = Specification(capability: LoopbackService().capability, when: When(start: .now))
                    try? s.statement.setParameterValue("test.input", .string("kept"))
                    contents.append(.specification(s))
                }
                return HTTPReply(status: 200, contentType: mplane, body: MessageEncoder().encode(.envelope(Envelope(contents: contents))))
            case ("POST", "/register/result"):
                if failPosts.withLock({ $0 > 0 ? ($0 -= 1, true).1 : false }) {
                    return HTTPReply(status: 503, contentType: "text/plain", body: [])
                }
                if let m = try? MessageDecoder().decode(request.body) { results.withLock { $0.append(m) } }
                return HTTPReply(status: 200, contentType: "text/html", body: [])
            default:
                return HTTPReply(status: 404, contentType: "text/plain", body: [])
            }
        }
        let scheduler = Scheduler(services: [LoopbackService()])
        try await withAgent(supervisor, scheduler) {
            for _ in 0..<100 {
                if polls.withLock({ $0.count }) >= 5 && results.withLock({ $0.count }) >= 2 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let times = polls.withLock { $0 }
        #expect(times.count >= 5, "polls: \(times)")
        if times.count >= 5 {
            let span = times[4].microseconds - times[0].microseconds
            #expect(span < 3_000_000, "five polls within 3 s despite a 60 s interval: \(span) µs")
            for i in 1..<5 { #expect(times[i].microseconds - times[i - 1].microseconds >= 150_000, "each after its callback time") }
        }
        // The receipt and the result both arrived, after the supervisor refused the first posts.
        let kinds = results.withLock { $0.map(\.kind) }
        #expect(kinds == [.receipt, .result], "\(kinds)")
        if case .result(let r)? = results.withLock({ $0.last }) { #expect(r.value("test.output") == .string("kept")) }
    }
}

/// True where this process may open ICMP sockets from loopback (CI runs as root).
let canPing = PingService.availability(source: IPAddress("127.0.0.1")!, kind: .auto) == nil

@Suite("Configuration reload (SIGHUP)", .timeLimit(.minutes(1)))
struct ReloadTests {
    static let loopbackOnly = "[component]\nlisten-port = 1228\n[module_loopback]\nmodule = mplane.components.loopback\n"
    static let withCounter = loopbackOnly + "[module_counter]\nmodule = counter\n"

    func reloader(_ scheduler: Scheduler) throws -> ConfigurationReloader {
        ConfigurationReloader(scheduler: scheduler, running: try ComponentConfiguration(ini: Self.loopbackOnly),
                              factories: .builtIn) { _ in }
    }

    @Test("services are swapped; a bad configuration changes nothing; [component] changes wait for a restart")
    func swap() throws {
        let scheduler = Scheduler(services: [LoopbackService()])
        let r = try reloader(scheduler)
        let outcome = try r.reload(text: Self.withCounter)
        #expect(outcome.labels == ["test-loopback", "test-counter"] && !outcome.restartNeeded)
        #expect(scheduler.capabilities.compactMap(\.statement.label) == ["test-loopback", "test-counter"])
        #expect(throws: ComponentConfiguration.Error.self) { try r.reload(text: "[component]\n[module_x]\nmodule = nonesuch\n") }
        #expect(scheduler.capabilities.count == 2)
        let moved = try r.reload(text: Self.loopbackOnly.replacingOccurrences("1228", "1229"))
        #expect(moved.restartNeeded && moved.labels == ["test-loopback"])
        // The command line's overrides apply to the reloaded file as they did at start.
        let kept = try r.reload(text: Self.loopbackOnly.replacingOccurrences("1228", "1229")) { $0.listenPort = 1228 }
        #expect(!kept.restartNeeded)
    }

    @Test("the component-initiated agent registers the new capabilities")
    func reregisters() async throws {
        let registrations = Mutex<[String]>([])
        let clock = SystemClock()
        let supervisor = HTTPComponentServer(host: "127.0.0.1", port: 0) { request in
            let mplane = ComponentRouter.mplaneType
            switch (request.method, request.path) {
            case ("POST", "/register/capability"):
                registrations.withLock { $0.append(String(decoding: request.body, as: UTF8.self)) }
                return HTTPReply(status: 200, contentType: mplane, body: Array("{}".utf8))
            case ("GET", "/show/specification"):
                let cb = Specification(capability: Capability(verb: .callback, label: "callback", when: .nowToFuture),
                                       when: When(start: .at(clock.now().adding(microseconds: 100_000))))
                return HTTPReply(status: 200, contentType: mplane,
                                 body: MessageEncoder().encode(.envelope(Envelope(contents: [.specification(cb)]))))
            default:
                return HTTPReply(status: 404, contentType: "text/plain", body: [])
            }
        }
        let scheduler = Scheduler(services: [LoopbackService()])
        try await withAgent(supervisor, scheduler) {
            for _ in 0..<50 where registrations.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(50)) }
            try reloader(scheduler).reload(text: Self.withCounter)
            for _ in 0..<50 where registrations.withLock({ $0.count < 2 }) { try await Task.sleep(for: .milliseconds(50)) }
        }
        let bodies = registrations.withLock { $0 }
        #expect(bodies.count == 2, "\(bodies.count) registrations")
        #expect(bodies.first.map { !$0.contains("test-counter") } == true)
        #expect(bodies.last.map { $0.contains("test-counter") && $0.contains("test-loopback") } == true)
    }

    @Test("mpcom reloads its configuration file on SIGHUP and keeps serving")
    func sighup() async throws {
        let dir = "/tmp/mplane-reload-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        mkdir(dir, 0o700)
        defer { _ = run(["rm", "-rf", dir]) }
        let conf = dir + "/mpcom.conf"
        #expect(writeFile(conf, Array(Self.loopbackOnly.utf8)))
        let port = freePort()
        let mpcom = repoRoot + "/.build/debug/mpcom"
        let pid = startInBackground("'\(mpcom)' --config '\(conf)' --port \(port) --log-level error > '\(dir)/log' 2>&1")
        try #require(pid > 0)
        defer { kill(pid, SIGKILL) }
        let url = HTTPURL(host: "127.0.0.1", port: port, path: "/capability")
        func labels() async -> [String] {
            guard let reply = try? await SimpleHTTPClient.request("GET", url),
                  case .envelope(let env)? = try? MessageDecoder().decode(reply.body) else { return [] }
            return env.contents.compactMap { if case .capability(let c) = $0 { return c.statement.label } else { return nil } }
        }
        var seen: [String] = []
        for _ in 0..<100 {
            seen = await labels()
            if !seen.isEmpty { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(seen == ["test-loopback"])
        // A broken file: refused, the component goes on with what it had.
        #expect(writeFile(conf, Array("[component]\nworkflow = sideways\n".utf8)))
        kill(pid, SIGHUP)
        try await Task.sleep(for: .milliseconds(500))
        #expect(await labels() == ["test-loopback"])
        #expect(writeFile(conf, Array(Self.withCounter.utf8)))
        kill(pid, SIGHUP)
        for _ in 0..<50 {
            seen = await labels()
            if seen.count == 2 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(seen == ["test-loopback", "test-counter"])
        #expect(try await stop(pid), "mpcom stopped on SIGTERM")
        let log = String(decoding: readFile(dir + "/log") ?? [], as: UTF8.self)
        #expect(log.contains("reload refused") && log.contains("workflow = sideways"), "\(log)")
    }
}

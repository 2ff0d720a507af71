import MPlane
import MPlanePing
import MPlaneScheduler
import MPlaneTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Why raw ICMP sockets cannot be opened here, or nil when they can (CI runs as root).
let rawSocketProblem: String? = PingService.availability(source: addr("127.0.0.1"), kind: .raw).map {
    "skipped: \($0.message)"
}

let ms: Int64 = 1_000_000

func sh(_ command: String) -> Int32 { run(["/bin/sh", "-c", command + " >/dev/null 2>&1"]).status }

/// Runs `plan` and checks the invariants every run keeps.
func ping(_ plan: PingPlan, stopAfter: Duration? = nil) async throws -> (PingReport, Recorder) {
    let stop = Atomic<Bool>(false)
    let timer = Task {
        if let stopAfter {
            try await Task.sleep(for: stopAfter)
            stop.store(true, ordering: .relaxed)
        }
    }
    defer { timer.cancel() }
    let (report, sink) = try await PingEngine.run(plan, sink: Recorder()) { stop.load(ordering: .relaxed) }
    for s in report.statistics { #expect(s.sent == s.received + s.lost, "\(s)") }
    #expect(sink.probes.map(\.probe) == (0..<UInt32(sink.probes.count)).map { $0 }, "probes retire in send order")
    return (report, sink)
}

@Suite("Ping on loopback (live, needs CAP_NET_RAW)", .serialized, .enabled(if: rawSocketProblem == nil, "\(rawSocketProblem ?? "")"))
struct LoopbackPingTests {
    @Test(arguments: ["127.0.0.1", "::1"])
    func rawLoopback(_ address: String) async throws {
        let a = addr(address)
        var plan = PingPlan(family: a.family, source: a, targets: [a], interval: 5 * ms, rounds: 40)
        plan.socket = .raw
        let (report, sink) = try await ping(plan)
        #expect(report.socket == .raw)
        let s = report.statistics[0]
        #expect(s.sent == 40 && s.received == 40 && s.lost == 0 && s.duplicates == 0)
        #expect(sink.probes.count == 40)
        // Loopback round trips are microseconds; a whole millisecond would be a bug here.
        #expect(s.minimum > 0 && s.maximum < 50 * ms, "\(s.minimum) ... \(s.maximum) ns")
        #expect(report.dominantSource == .kernel, "\(report.sourceCounts)")
    }

    @Test func manyTargetsRoundRobin() async throws {
        let targets = try PingService.parseTargets("127.0.0.0/28", family: .v4, limit: 64).get()
        #expect(targets.count == 14)
        var plan = PingPlan(family: .v4, source: addr("127.0.0.1"), targets: targets, interval: 32 * ms, rounds: 5)
        plan.socket = .raw
        plan.recordScheduleErrors = true
        let (report, sink) = try await ping(plan)
        #expect(report.sent == 70 && sink.probes.count == 70)
        #expect(report.statistics.allSatisfy { $0.received == 5 && $0.lost == 0 })
        // Round robin: probe k goes to target k mod 14.
        #expect(sink.probes.allSatisfy { $0.target == Int($0.probe) % 14 })
        #expect(report.scheduleErrors.count == 70 && report.scheduleErrors.allSatisfy { $0 >= 0 })
    }

    @Test func interruptionEndsAnEndlessRun() async throws {
        var plan = PingPlan(family: .v4, source: addr("127.0.0.1"), targets: [addr("127.0.0.1")], interval: 10 * ms,
                            rounds: nil)
        plan.socket = .raw
        let (report, _) = try await ping(plan, stopAfter: .milliseconds(300))
        #expect(report.statistics[0].received >= 5)
    }

    @Test func payloadTTLAndTOSAreApplied() async throws {
        var plan = PingPlan(family: .v4, source: addr("127.0.0.1"), targets: [addr("127.0.0.2")], interval: 5 * ms, rounds: 5)
        plan.socket = .raw
        plan.payload = 1400
        plan.ttl = 7
        plan.tos = 0x20
        let (report, _) = try await ping(plan)
        #expect(report.statistics[0].received == 5)
        plan.payload = 0
        let (small, _) = try await ping(plan)
        #expect(small.statistics[0].received == 5)
    }

    @Test func sourceAddressMustBeLocal() async throws {
        var plan = PingPlan(family: .v4, source: addr("192.0.2.77"), targets: [addr("127.0.0.1")], interval: 5 * ms, rounds: 1)
        plan.socket = .raw
        do {
            _ = try await PingEngine.run(plan, sink: Recorder()) { false }
            Issue.record("a source address not on this host was accepted")
        } catch {
            #expect(error.code == .source && error.errno != 0, "\(error)")
        }
    }

    @Test func servicesThroughTheScheduler() async throws {
        let services = PingService.services(source: addr("127.0.0.1"), forms: PingService.Form.allCases,
                                            settings: { var s = PingService.Settings(); s.socket = .raw; return s }())
        let scheduler = Scheduler(services: services)
        let runner = Task { await scheduler.run() }
        defer { scheduler.shutdown(); runner.cancel() }
        func measure(_ form: PingService.Form, _ values: [String: String], when: String = "now + 2s / 1s") async throws
            -> Message
        {
            let spec = try PingCapabilityTests().specification(form, values, when: when)
            guard case .receipt(let r) = await scheduler.submit(spec) else {
                Issue.record("refused: \(await scheduler.submit(spec))")
                return await scheduler.submit(spec)
            }
            return await scheduler.waitForResult(token: r.token, timeout: .seconds(20))
        }
        // The RI's average: two probes in "now + 2s / 1s", one row.
        guard case .result(let avg) = try await measure(.average, ["source.ip4": "127.0.0.1", "destination.ip4": "127.0.0.1"])
        else { Issue.record("no result"); return }
        #expect(avg.values.rowCount == 1)
        #expect(avg.values.value("delay.twoway.icmp.count", row: 0) == .natural(2))
        // Ours: one row per probe with its timestamp source, and the socket in the metadata.
        guard case .result(let loss) = try await measure(.loss, ["source.ip4": "127.0.0.1", "destination.ip4": "127.0.0.3"])
        else { Issue.record("no result"); return }
        #expect(loss.values.rowCount == 2)
        #expect(loss.values.value("icmp.timestamp.source", row: 0) == .string("kernel"))
        // Each probe says whether the probe itself sent it late (a boolean on every row).
        #expect((0..<loss.values.rowCount).allSatisfy {
            if case .boolean? = loss.values.value("probe.late", row: $0) { true } else { false }
        })
        #expect(loss.statement.metadataValue("icmp.socket") == .string("raw"))
        // Many destinations, one row each.
        guard case .result(let multi) = try await measure(.multi, ["source.ip4": "127.0.0.1",
                                                                  "destination.ip4.set": "127.0.0.8/29,127.0.1.1"])
        else { Issue.record("no result"); return }
        #expect(multi.values.rowCount == 7)
        #expect(multi.values.value("destination.ip4", row: 6) == .address(addr("127.0.1.1")))
        #expect((0..<7).allSatisfy { multi.values.value("delay.twoway.icmp.count", row: $0) == .natural(2) })
    }

    @Test func aJobThatCannotMeasureSaysWhy() async throws {
        // A service configured with an address this host does not have: the job fails with
        // a 500 exception naming the problem, not an empty result.
        let scheduler = Scheduler(services: [PingService(form: .average, source: addr("192.0.2.77"))])
        let runner = Task { await scheduler.run() }
        defer { scheduler.shutdown(); runner.cancel() }
        let cap = scheduler.capabilities[0]
        var spec = Specification(capability: cap, when: try When(parsing: "now + 1s / 1s"))
        try spec.statement.setParameterValue("destination.ip4", .address(addr("127.0.0.1")))
        guard case .receipt = await scheduler.submit(spec) else { Issue.record("refused"); return }
        let answer = await scheduler.waitForResult(token: spec.token, timeout: .seconds(10))
        guard case .exception(let e) = answer else { Issue.record("not an exception: \(answer)"); return }
        #expect(e.status == 500)
        #expect(e.message.contains("192.0.2.77 is not configured on this host"), "\(e.message)")
    }
}

/// Two network namespaces made by the test: a prober and a router with an unreachable
/// route and an impairable link.
final class TestNetwork {
    let prober: String, router: String
    let ok: Bool

    init() {
        let tag = "\(getpid() % 100_000)\(UInt16.random(in: 0...9999))"
        prober = "mpp\(tag)"
        router = "mpr\(tag)"
        let steps = [
            "ip netns add \(prober)", "ip netns add \(router)",
            "ip link add vp\(tag) address 02:00:00:00:77:02 type veth peer name vr\(tag) address 02:00:00:00:77:01",
            "ip link set vp\(tag) netns \(prober)", "ip link set vr\(tag) netns \(router)",
            "ip -n \(prober) link set lo up", "ip -n \(router) link set lo up",
            "ip -n \(prober) addr add 10.77.0.2/24 dev vp\(tag)", "ip -n \(router) addr add 10.77.0.1/24 dev vr\(tag)",
            "ip -n \(prober) link set vp\(tag) up", "ip -n \(router) link set vr\(tag) up",
            "ip -n \(prober) route add default via 10.77.0.1",
            // Static neighbours: netem must impair the probes, not address resolution.
            "ip -n \(prober) neigh replace 10.77.0.1 lladdr 02:00:00:00:77:01 dev vp\(tag) nud permanent",
            "ip -n \(router) neigh replace 10.77.0.2 lladdr 02:00:00:00:77:02 dev vr\(tag) nud permanent",
            "ip -n \(router) route add unreachable 198.51.100.0/24",
            "ip netns exec \(router) sysctl -qw net.ipv4.ip_forward=1 net.ipv4.icmp_ratelimit=0",
        ]
        var built = steps.allSatisfy { sh($0) == 0 }
        // A veth end just set up drops packets until the kernel's link watch has activated it
        // (its operational state UP), which under load can come after the first probe (seen
        // as one probe lost): wait for both ends, two seconds at most.
        if built {
            var up = false
            for _ in 0..<100 where !up {
                up = [(prober, "vp\(tag)"), (router, "vr\(tag)")].allSatisfy { ns, link in
                    String(decoding: run(["ip", "-n", ns, "-o", "link", "show", link]).stdout, as: UTF8.self).contains("state UP")
                }
                if !up { usleep(20_000) }
            }
            built = up
        }
        ok = built
        self.tag = tag
    }
    let tag: String
    var routerLink: String { "vr\(tag)" }

    deinit {
        _ = sh("ip netns del \(prober)")
        _ = sh("ip netns del \(router)")
    }

    func netem(_ args: String) -> Bool { sh("tc -n \(router) qdisc replace dev \(routerLink) root netem \(args)") == 0 }

    /// Loads nftables rules into the router's output hook (what the router sends back).
    func impair(_ rules: String) -> Bool {
        let text = "table ip impair {\n chain out {\n type filter hook output priority 0;\n \(rules)\n }\n}\n"
        return run(["ip", "netns", "exec", router, "nft", "-f", "-"], stdin: Array(text.utf8)).status == 0
    }

    /// The packet count of the first nftables counter in the router.
    func counted() -> Int? {
        let text = String(decoding: run(["ip", "netns", "exec", router, "nft", "list", "ruleset"]).stdout, as: UTF8.self)
        guard let r = text.split(separator: "counter packets ").dropFirst().first else { return nil }
        return Int(r.prefix { $0.isNumber })
    }
}

let canMakeNamespaces: Bool = rawSocketProblem == nil && sh("command -v ip && command -v nft") == 0

/// Whether the kernel has the netem qdisc (some, like this project's CI kernel, do not).
let hasNetem: Bool = {
    let ns = "mpnetem\(getpid() % 100_000)"
    defer { _ = sh("ip netns del \(ns)") }
    return sh("ip netns add \(ns) && ip -n \(ns) link set lo up && tc -n \(ns) qdisc add dev lo root netem delay 1ms") == 0
}()

@Suite("Ping through network namespaces (live, needs root and iproute2)", .serialized,
       .enabled(if: canMakeNamespaces, "skipped: needs root with CAP_NET_ADMIN, iproute2 and nftables (make deps installs them)"))
struct NamespacePingTests {
    /// A raw-socket plan run from the prober namespace of `net`.
    func plan(_ net: TestNetwork, _ targets: [String], interval: Int64, rounds: Int) -> PingPlan {
        var plan = PingPlan(family: .v4, targets: targets.map(addr), interval: interval, rounds: rounds)
        plan.socket = .raw
        plan.networkNamespace = net.prober
        return plan
    }

    @Test func icmpErrorsCountAsLosses() async throws {
        let net = TestNetwork()
        try #require(net.ok, "could not build the test namespaces")
        var plan = plan(net, ["198.51.100.7"], interval: 20 * ms, rounds: 5)
        plan.timeout = 2_000 * ms
        let (report, sink) = try await ping(plan)
        #expect(report.statistics[0].lost == 5 && report.statistics[0].errors == 5)
        #expect(sink.probes.allSatisfy { $0.loss == .icmpError(type: 3, code: 1) }, "\(sink.probes.map(\.loss))")
    }

    @Test func unprivilegedDatagramSocketInANamespace() async throws {
        let net = TestNetwork()
        try #require(net.ok, "could not build the test namespaces")
        // ping_group_range is per namespace: open it up in ours only.
        #expect(sh("ip netns exec \(net.prober) sysctl -qw net.ipv4.ping_group_range='0 2147483647'") == 0)
        var plan = PingPlan(family: .v4, targets: [addr("10.77.0.1"), addr("198.51.100.9")], interval: 20 * ms, rounds: 4)
        plan.socket = .datagram
        plan.networkNamespace = net.prober
        let (report, sink) = try await ping(plan)
        #expect(report.socket == .datagram)
        #expect(report.statistics[0].received == 4, "target 0: \(sink.probes.filter { $0.target == 0 }.map { String(describing: $0.loss) })")
        // Errors reach a datagram socket through its error queue.
        #expect(report.statistics[1].lost == 4 && report.statistics[1].errors == 4)
        #expect(sink.probes.filter { $0.target == 1 }.allSatisfy { $0.loss == .icmpError(type: 3, code: 1) })
    }

    @Test func everyThirdReplyDroppedIsEveryThirdProbeLost() async throws {
        let net = TestNetwork()
        try #require(net.ok, "could not build the test namespaces")
        try #require(net.impair("icmp type echo-reply numgen inc mod 3 == 0 counter drop"))
        var plan = plan(net, ["10.77.0.1"], interval: 5 * ms, rounds: 200)
        plan.timeout = 500 * ms
        let (report, sink) = try await ping(plan)
        let s = report.statistics[0]
        // Replies 0, 3, 6, ... 198 were dropped by the router: 67 of 200.
        #expect(net.counted() == 67)
        #expect(s.lost == 67 && s.received == 133, "\(s)")
        #expect(sink.probes.filter { $0.loss != nil }.map(\.probe) == Array(stride(from: 0, to: 200, by: 3)))
        #expect(sink.probes.allSatisfy { $0.loss == nil || $0.loss == .timeout })
    }

    @Test func everyReplyTwiceIsOneDuplicateEach() async throws {
        let net = TestNetwork()
        try #require(net.ok, "could not build the test namespaces")
        try #require(net.impair("icmp type echo-reply counter dup to 10.77.0.2"))
        let (report, _) = try await ping(plan(net, ["10.77.0.1"], interval: 10 * ms, rounds: 20))
        let s = report.statistics[0]
        #expect(s.received == 20 && s.lost == 0 && s.duplicates == 20, "\(s)")
    }

    @Test(.enabled(if: hasNetem, "skipped: this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM)"))
    func delayThroughNetem() async throws {
        let net = TestNetwork()
        try #require(net.ok, "could not build the test namespaces")
        try #require(net.netem("delay 20ms"))
        let (report, _) = try await ping(plan(net, ["10.77.0.1"], interval: 10 * ms, rounds: 10))
        let s = report.statistics[0]
        #expect(s.received == 10 && s.lost == 0)
        #expect(s.minimum >= 20 * ms, "\(s.minimum) ns")
    }
}

@Suite("Ping jobs do not read each other's replies (live, hardening row 3)", .serialized,
       .enabled(if: rawSocketProblem == nil, "\(rawSocketProblem ?? "")"))
struct IdentifierFilterTests {
    @Test("two raw-socket runs at once: each sees only its own replies (a kernel filter on the identifier)",
          arguments: ["127.0.0.1", "::1"])
    func concurrentRuns(_ address: String) async throws {
        let a = addr(address)
        var plan = PingPlan(family: a.family, source: a, targets: [a], interval: 2 * ms, rounds: 100)
        plan.socket = .raw
        async let first = ping(plan)
        async let second = ping(plan)
        let (r1, _) = try await first
        let (r2, _) = try await second
        #expect(r1.identifier != r2.identifier)
        for r in [r1, r2] {
            #expect(r.statistics[0].received == 100)
            // Without the filter each run reads the other's 100 replies (and, on loopback, the
            // 200 echo requests too): counted as foreign or stray.
            #expect(r.foreign == 0 && r.stray == 0, "foreign \(r.foreign), stray \(r.stray)")
        }
    }
}

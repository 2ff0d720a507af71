import CSupport
import MPlane
import MPlaneCapture
import MPlaneProbe
import MPlaneScheduler
import MPlaneTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Frames as they appear on the wire (Ethernet unless said otherwise).
enum Frames {
    static let ethernetIPv4 = "000000000000" + "000000000000" + "0800"
    /// IPv4 UDP 127.0.0.1:40000 → 127.0.0.1:9, 4 payload bytes: total length 32.
    static let udp4 = ethernetIPv4 + "45000020abcd4000401100007f0000017f000001" + "9c4000090000c0de" + "74657374"
    /// IPv6 TCP ::1 → ::1, a 20-byte header and no payload: payload length 20.
    static let tcp6 = "000000000000000000000000" + "86dd" + "6000000000140640" + String(repeating: "0", count: 30) + "01"
        + String(repeating: "0", count: 30) + "01" + "a0000050000000010000000050020000c0de0000"
    /// The same UDP packet behind an 802.1Q tag.
    static let vlan = "000000000000000000000000" + "8100" + "0064" + "0800" + "45000020abcd4000401100007f0000017f000001"
        + "9c4000090000c0de" + "74657374"
    /// A second fragment of a UDP datagram: IP, but no UDP header to count.
    static let fragment = ethernetIPv4 + "45000020abcd00b9401100007f0000017f000001" + "000000000000000000000000"
    static let arp = "ffffffffffff000000000001" + "0806" + "0001080006040001" + String(repeating: "0", count: 40)
    /// Linux cooked capture (the `any` device) carrying the UDP packet.
    static let sll = "0000" + "0304" + "0006" + "000000000000" + "0000" + "0800" + "45000020abcd4000401100007f0000017f000001"
        + "9c4000090000c0de" + "74657374"
}

@Suite("Capture counting from frames")
struct CountingTests {
    @Test func ipTcpUdpAndOthers() {
        var c = TrafficCounts()
        c.count(frame: hex(Frames.udp4), linktype: 1)
        #expect((c.ipPackets, c.ipOctets, c.udpPackets, c.udpOctets, c.tcpPackets) == (1, 32, 1, 12, 0))
        c.count(frame: hex(Frames.tcp6), linktype: 1)
        #expect((c.ipPackets, c.ipOctets, c.tcpPackets, c.tcpOctets) == (2, 92, 1, 20))
        c.count(frame: hex(Frames.vlan), linktype: 1)
        #expect((c.ipPackets, c.udpPackets, c.udpOctets) == (3, 2, 24))
        c.count(frame: hex(Frames.fragment), linktype: 1)
        #expect((c.ipPackets, c.ipOctets, c.udpPackets) == (4, 156, 2))
        c.count(frame: hex(Frames.arp), linktype: 1)
        c.count(frame: Array(hex(Frames.udp4).prefix(20)), linktype: 1)  // cut short
        c.count(frame: [], linktype: 1)
        #expect(c.otherPackets == 3 && c.ipPackets == 4 && c.frames == 7)
        c.count(frame: hex(Frames.sll), linktype: 113)
        #expect(c.udpPackets == 3)
        // Raw IP (DLT_RAW): no link header.
        c.count(frame: Array(hex(Frames.udp4).dropFirst(14)), linktype: 12)
        #expect(c.udpPackets == 4 && c.ipOctets == 156 + 64)
    }

    @Test func filtersAreCheckedBeforeAJobStarts() async {
        #expect(CaptureService.checkFilter("udp port 9 or tcp") == nil)
        #expect(CaptureService.checkFilter("udp port banana")?.isEmpty == false)
        let service = CaptureService(interface: "lo")
        var spec = Specification(capability: service.capability, when: try! When(parsing: "now + 1s / 1s"))
        try! spec.statement.setParameterValue("capture.filter", .string("port and and"))
        let scheduler = Scheduler(services: [service])
        guard case .exception(let e) = await scheduler.submit(spec) else {
            Issue.record("accepted a broken filter")
            return
        }
        #expect(e.status == 400 && e.message.contains("capture.filter"), "\(e.message)")
    }

    @Test("the start-up check (a packet socket, no libpcap) agrees with opening a capture")
    func availabilityAgreesWithPcap() {
        for interface in ["lo", "any", "nonesuch0"] {
            let predicted = CaptureService.availability(interface: interface)
            var opened: CaptureError? = nil
            do { _ = try CaptureService.measure(interface: interface, filter: "", seconds: 0) } catch { opened = error }
            #expect((predicted == nil) == (opened == nil),
                    "\(interface): check says \(predicted?.message ?? "ok"), pcap says \(opened?.message ?? "ok")")
        }
    }

    @Test("an interface that is down is found down at start, as pcap would find it",
          .enabled(if: captureProblem == nil && run(["/bin/sh", "-c", "command -v ip"]).status == 0,
                   "skipped: needs CAP_NET_RAW, CAP_NET_ADMIN and iproute2"))
    func downInterface() async throws {
        // A namespace's own lo starts down.
        let ns = "mpcap\(getpid())"
        try #require(run(["ip", "netns", "add", ns]).status == 0)
        defer { _ = run(["ip", "netns", "del", ns]) }
        let outcome = await ProbeThread.run(name: "capture-netns") { () -> (CaptureError?, CaptureError?)? in
            guard csupport_enter_netns("/var/run/netns/\(ns)") == 0 else { return nil }
            let predicted = CaptureService.availability(interface: "lo")
            var opened: CaptureError? = nil
            do throws(CaptureError) {
                _ = try CaptureService.measure(interface: "lo", filter: "", seconds: 0)
            } catch { opened = error }
            return (predicted, opened)
        }
        let (predicted, opened) = try #require(outcome ?? nil, "could not enter the namespace")
        #expect(predicted?.code == .interfaceDown, "\(predicted?.message ?? "ok")")
        #expect(opened != nil, "pcap opened a down interface")
    }

    @Test func missingInterfacesAreNamed() {
        let problem = CaptureService.availability(interface: "nonesuch0")
        #expect(problem != nil)
        if let problem, CaptureService.availability(interface: "lo") == nil {
            #expect(problem.code == .noSuchInterface && problem.message.contains("nonesuch0"), "\(problem)")
        }
    }
}

/// Submits `spec`, again while it is refused only because other tests compile filters at the
/// same moment (the bound on concurrent compiles, FilterLimits.concurrentCompiles), for up to 10 s.
func submitRetrying(_ scheduler: Scheduler, _ spec: Specification) async -> Message {
    var answer = await scheduler.submit(spec)
    for _ in 0..<100 {
        guard case .exception(let e) = answer, e.message.contains("at once") else { break }
        try? await Task.sleep(for: .milliseconds(100))
        answer = await scheduler.submit(spec)
    }
    return answer
}

let captureProblem: String? = CaptureService.availability(interface: "lo").map { "skipped: \($0.message)" }

@Suite("Capture on lo (live, needs CAP_NET_RAW)", .serialized, .enabled(if: captureProblem == nil, "\(captureProblem ?? "")"))
struct LiveCaptureTests {
    func measure(_ when: String, filter: String, interruptAfter: Duration? = nil,
                 during: @escaping @Sendable () async -> Void) async throws -> Result {
        let open = Atomic<Bool>(false)
        var settings = CaptureService.Settings()
        settings.onOpen = { open.store(true, ordering: .releasing) }
        let service = CaptureService(interface: "lo", settings: settings)
        let scheduler = Scheduler(services: [service])
        let runner = Task { await scheduler.run() }
        defer { scheduler.shutdown(); runner.cancel() }
        var spec = Specification(capability: service.capability, when: try When(parsing: when))
        try spec.statement.setParameterValue("capture.filter", .string(filter))
        guard case .receipt = await submitRetrying(scheduler, spec) else { throw CaptureError(.capture, "refused") }
        // Send only once the capture counts (a loaded machine may take a while to open it).
        for _ in 0..<200 where !open.load(ordering: .acquiring) { try await Task.sleep(for: .milliseconds(25)) }
        let isOpen = open.load(ordering: .acquiring)
        try #require(isOpen, "the capture did not open within 5 s")
        await during()
        if let interruptAfter {
            try await Task.sleep(for: interruptAfter)
            _ = await scheduler.interrupt(token: spec.token)
        }
        guard case .result(let r) = await scheduler.waitForResult(token: spec.token, timeout: .seconds(15)) else {
            throw CaptureError(.capture, "no result")
        }
        return r
    }

    func sum(_ r: Result, _ column: String) -> UInt64 {
        (0..<r.values.rowCount).reduce(0) { total, i in
            if case .natural(let v)? = r.values.value(column, row: i) { return total + v }
            return total
        }
    }

    @Test func countsWhatWasSent() async throws {
        let port = UInt16.random(in: 40_000...60_000)
        let r = try await measure("now + 2s / 1s", filter: "udp port \(port)") {
            #expect(sendUDP(port: port, count: 10, size: 100))
        }
        #expect(r.values.rowCount == 2)
        #expect(sum(r, "packets.udp") == 10 && sum(r, "packets.ip") == 10 && sum(r, "packets.tcp") == 0)
        #expect(sum(r, "octets.udp") == 10 * 108 && sum(r, "octets.ip") == 10 * 128)
        #expect(sum(r, "packets.unobserved") == 0)
    }

    @Test func interruptionKeepsThePartialPeriod() async throws {
        let port = UInt16.random(in: 40_000...60_000)
        let r = try await measure("now ... future / 1s", filter: "udp port \(port)", interruptAfter: .milliseconds(1500)) {
            #expect(sendUDP(port: port, count: 3, size: 10))
        }
        #expect(r.values.rowCount >= 1 && r.values.rowCount <= 3)
        #expect(sum(r, "packets.udp") == 3)
    }
}

@Suite("Capture filters are bounded (hardening row 2)", .timeLimit(.minutes(1)))
struct FilterBoundTests {
    func filter(hosts n: Int) -> String {
        (0..<n).map { "host 10.\($0 / 256 % 256).\($0 % 256).1" }.joined(separator: " or ")
    }

    func submit(_ filter: String) async throws -> Message {
        let service = CaptureService(interface: "lo")
        var spec = Specification(capability: service.capability, when: try When(parsing: "now + 1s / 1s"))
        try spec.statement.setParameterValue("capture.filter", .string(filter))
        let scheduler = Scheduler(services: [service])
        let answer = await scheduler.submit(spec)
        scheduler.shutdown()
        return answer
    }

    @Test("the 2,000-term filter that compiled for ten minutes is refused at once, naming the field and the limit")
    func huge() async throws {
        guard case .exception(let e) = try await submit(filter(hosts: 2000)) else {
            Issue.record("accepted a 2,000-term filter")
            return
        }
        #expect(e.status == 400 && e.message.contains("capture.filter") && e.message.contains("max-filter-bytes"), "\(e.message)")
        guard case .exception(let e2) = try await submit(Array(repeating: "port 1", count: 200).joined(separator: " or ")) else {
            Issue.record("accepted 199 operators")
            return
        }
        #expect(e2.status == 400 && e2.message.contains("max-filter-operators"), "\(e2.message)")
    }

    @Test("the longest accepted filter of that pattern compiles and is accepted")
    func longestAccepted() async throws {
        let f = filter(hosts: FilterLimits.defaultOperators + 1)
        #expect(FilterLimits.operatorCount(f) == FilterLimits.defaultOperators)
        #expect(FilterLimits.refusal(f, maxBytes: FilterLimits.defaultBytes, maxOperators: FilterLimits.defaultOperators) == nil)
        #expect(CaptureService.checkFilter(f) == nil)
    }

    @Test("a filter that compiles past the kernel's 4,096 BPF instructions is refused with the count")
    func instructionLimit() {
        // 150 `protochain` terms compile in milliseconds to about 5,000 instructions (the
        // operator limit would refuse them first; checked here on the compiler's own bound).
        let f = (1...150).map { "ip6 protochain \($0)" }.joined(separator: " or ")
        let why = CaptureService.checkFilter(f)
        #expect(why?.contains("BPF instructions") == true, "\(why ?? "accepted")")
    }

    @Test("operators are counted as words and symbols, not inside names")
    func counting() {
        #expect(FilterLimits.operatorCount("tcp") == 0)
        #expect(FilterLimits.operatorCount("host or.example.com and not port 22") == 2)
        #expect(FilterLimits.operatorCount("a||b&&!c") == 3)
        #expect(FilterLimits.operatorCount("len != 10") == 0)
        #expect(FilterLimits.operatorCount("port 1 or 2 or 3") == 2)
    }
}

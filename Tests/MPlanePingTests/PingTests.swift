import MPlane
@testable import MPlanePing
import MPlaneScheduler
import MPlaneTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

// Packets recorded on this machine with Python raw sockets (see PingTests.recorded):
// echo replies on loopback, and the errors a router namespace sent back.
enum Recorded {
    /// 127.0.0.1 → 127.0.0.1 echo reply with its IPv4 header (raw socket): id 0x1234,
    /// seq 7, payload stamp cookie 0xC0FFEE01 probe 7.
    static let v4Reply = "4500002c0156000040017b797f0000017f0000010000f26b12340007c0ffee01000000071011121314151617"
    /// ::1 echo reply (ICMPv6 raw socket, no IPv6 header): id 0x1234, seq 9, probe 9.
    static let v6Reply = "8100711312340009c0ffee01000000091011121314151617"
    /// Host unreachable from router 10.99.0.1 quoting our request to 198.51.100.1, seq 3.
    static let v4Unreachable = "45c00048f74d000040016ddf0a6300010a6300020301fcfe000000004500002c5dd240004001a8650a630002c63364010800ea7312340003c0ffee01000000031011121314151617"
    /// Time exceeded from 10.99.0.1 quoting our TTL 1 request to 203.0.113.9, seq 3.
    static let v4TimeExceeded = "45c00048f74e000040016dde0a6300010a6300020b00f4ff000000004500002c870440000101ac5e0a630002cb0071090800ea7312340003c0ffee01000000031011121314151617"
    /// ICMPv6 no route from fd00:99::1 quoting our request to 2001:db8:1::5, seq 4.
    static let v6Unreachable = "0100222a000000006002471400183a40fd00009900000000000000000000000220010db8000100000000000000000005800046c512340004c0ffee01000000031011121314151617"
}

func parse(_ s: String, _ family: IPAddress.Family, ipHeader: Bool) -> ICMP.Message {
    hex(s).withUnsafeBytes { ICMP.parse($0, family: family, withIPHeader: ipHeader) }
}

func addr(_ s: String) -> IPAddress { IPAddress(s)! }

/// Collects retired probes in order.
struct Recorder: PingSink, Sendable {
    var probes: [RetiredProbe] = []
    mutating func retired(_ probe: RetiredProbe) { probes.append(probe) }
}

@Suite("ICMP packets from recorded bytes")
struct PacketTests {
    @Test func echoReplies() {
        #expect(parse(Recorded.v4Reply, .v4, ipHeader: true)
            == .echoReply(identifier: 0x1234, sequence: 7, stamp: ICMP.Stamp(cookie: 0xC0FF_EE01, probe: 7)))
        #expect(parse(Recorded.v6Reply, .v6, ipHeader: false)
            == .echoReply(identifier: 0x1234, sequence: 9, stamp: ICMP.Stamp(cookie: 0xC0FF_EE01, probe: 9)))
        // A datagram socket hands over the ICMP message without the IP header.
        #expect(parse(String(Recorded.v4Reply.dropFirst(40)), .v4, ipHeader: false)
            == .echoReply(identifier: 0x1234, sequence: 7, stamp: ICMP.Stamp(cookie: 0xC0FF_EE01, probe: 7)))
        // Payload shorter than the stamp: matched by identifier and sequence alone.
        #expect(parse(String(Recorded.v6Reply.prefix(16)), .v6, ipHeader: false)
            == .echoReply(identifier: 0x1234, sequence: 9, stamp: nil))
    }

    @Test func errorsQuoteTheRequest() {
        #expect(parse(Recorded.v4Unreachable, .v4, ipHeader: true)
            == .error(type: 3, code: 1, identifier: 0x1234, sequence: 3, destination: addr("198.51.100.1")))
        #expect(parse(Recorded.v4TimeExceeded, .v4, ipHeader: true)
            == .error(type: 11, code: 0, identifier: 0x1234, sequence: 3, destination: addr("203.0.113.9")))
        #expect(parse(Recorded.v6Unreachable, .v6, ipHeader: false)
            == .error(type: 1, code: 0, identifier: 0x1234, sequence: 4, destination: addr("2001:db8:1::5")))
        #expect(ICMP.describeError(type: 3, code: 1, family: .v4) == "host unreachable")
        #expect(ICMP.describeError(type: 1, code: 0, family: .v6) == "no route to destination")
    }

    @Test func shortAndForeignPacketsAreOther() {
        let reply = hex(Recorded.v4Reply)
        for n in [0, 10, 20, 27] {
            #expect(Array(reply.prefix(n)).withUnsafeBytes { ICMP.parse($0, family: .v4, withIPHeader: true) } == .other)
        }
        // An echo request (our own probe seen by a raw socket) and an error quoting UDP.
        var request = reply
        request[20] = 8
        #expect(request.withUnsafeBytes { ICMP.parse($0, family: .v4, withIPHeader: true) } == .other)
        var udpQuote = hex(Recorded.v4Unreachable)
        udpQuote[28 + 9] = 17
        #expect(udpQuote.withUnsafeBytes { ICMP.parse($0, family: .v4, withIPHeader: true) } == .other)
        // The quote truncated before the identifier.
        let cut = Array(hex(Recorded.v6Unreachable).prefix(50))
        #expect(cut.withUnsafeBytes { ICMP.parse($0, family: .v6, withIPHeader: false) } == .other)
    }

    @Test func requestsMatchWhatTheKernelAnswered() {
        // Our request for probe 7 is the recorded reply's ICMP part with type 8 and a
        // checksum that verifies.
        var packet = [UInt8](repeating: 0, count: 8 + 16)
        packet.withUnsafeMutableBytes { p in
            ICMP.fillPattern(p)
            ICMP.writeEchoRequest(into: p, family: .v4, identifier: 0x1234, sequence: 7, cookie: 0xC0FF_EE01, probe: 7)
        }
        var expected = Array(hex(Recorded.v4Reply).dropFirst(20))
        expected[0] = 8
        #expect(Array(packet[4...]) == Array(expected[4...]))
        #expect(packet.withUnsafeBytes { ICMP.checksum($0) } == 0)
        #expect(hex(Recorded.v4Reply).dropFirst(20).withUnsafeBytes { ICMP.checksum($0) } == 0)
        #expect(packet.withUnsafeBytes { ICMP.parseQuotedRequest($0, family: .v4) }! == (0x1234, 7))
        #expect(expected.withUnsafeBytes { ICMP.parseQuotedRequest($0, family: .v6) } == nil)
    }
}

@Suite("Probe matching and accounting")
struct TrackerTests {
    static let ms: Int64 = 1_000_000
    let a = addr("192.0.2.1"), b = addr("192.0.2.2")

    func tracker(_ targets: [IPAddress], timeout: Int64 = 100 * ms, inFlight: Int = 8) -> PingTracker {
        PingTracker(targets: targets, identifier: 0x1234, cookie: 0xC0FF_EE01, timeout: timeout, inFlight: inFlight)
    }

    func stamp(_ p: UInt32) -> ICMP.Stamp { ICMP.Stamp(cookie: 0xC0FF_EE01, probe: p) }

    @Test func repliesInOrderAndReordered() {
        var t = tracker([a, b])
        var sink = Recorder()
        t.sent(target: 0, mono: 0, real: 1_000 * Self.ms, sink: &sink)
        t.sent(target: 1, mono: 1 * Self.ms, real: 1_001 * Self.ms, sink: &sink)
        t.sent(target: 0, mono: 2 * Self.ms, real: 1_002 * Self.ms, sink: &sink)
        // Probe 1 answers first: nothing retires until probe 0 does.
        #expect(t.reply(identifier: 0x1234, sequence: 1, stamp: stamp(1), from: b, kernelReal: 0,
                        nowMono: 4 * Self.ms, nowReal: 1_004 * Self.ms, sink: &sink) == .fresh)
        #expect(sink.probes.isEmpty)
        #expect(t.reply(identifier: 0x1234, sequence: 0, stamp: stamp(0), from: a, kernelReal: 0,
                        nowMono: 5 * Self.ms, nowReal: 1_005 * Self.ms, sink: &sink) == .fresh)
        #expect(sink.probes.map(\.probe) == [0, 1])
        #expect(sink.probes.map(\.roundTrip) == [5 * Self.ms, 3 * Self.ms])
        #expect(sink.probes.allSatisfy { $0.source == .user && $0.loss == nil })
        #expect(t.statistics[0].received == 1 && t.statistics[1].received == 1)
        #expect(t.hasOutstanding)
        #expect(t.nextExpiry == 102 * Self.ms)
    }

    @Test func duplicatesLateRepliesAndTimeouts() {
        var t = tracker([a])
        var sink = Recorder()
        t.sent(target: 0, mono: 0, real: 0, sink: &sink)
        t.sent(target: 0, mono: 10 * Self.ms, real: 10 * Self.ms, sink: &sink)
        #expect(t.reply(identifier: 0x1234, sequence: 0, stamp: stamp(0), from: a, kernelReal: 0,
                        nowMono: 1 * Self.ms, nowReal: 1 * Self.ms, sink: &sink) == .fresh)
        #expect(t.reply(identifier: 0x1234, sequence: 0, stamp: stamp(0), from: a, kernelReal: 0,
                        nowMono: 2 * Self.ms, nowReal: 2 * Self.ms, sink: &sink) == .duplicate)
        // Probe 1 is not answered in time.
        t.expire(now: 109 * Self.ms, sink: &sink)
        #expect(sink.probes.count == 1)
        t.expire(now: 110 * Self.ms, sink: &sink)
        #expect(sink.probes.count == 2)
        #expect(sink.probes[1].loss == .timeout && sink.probes[1].roundTrip == nil)
        #expect(t.reply(identifier: 0x1234, sequence: 1, stamp: stamp(1), from: a, kernelReal: 0,
                        nowMono: 150 * Self.ms, nowReal: 150 * Self.ms, sink: &sink) == .late)
        #expect(t.reply(identifier: 0x1234, sequence: 1, stamp: stamp(1), from: a, kernelReal: 0,
                        nowMono: 151 * Self.ms, nowReal: 151 * Self.ms, sink: &sink) == .duplicate)
        let s = t.statistics[0]
        #expect((s.sent, s.received, s.lost, s.duplicates, s.late) == (2, 1, 1, 2, 1))
        #expect(!t.hasOutstanding)
    }

    @Test func foreignAndStrayPacketsAreIgnored() {
        var t = tracker([a])
        var sink = Recorder()
        t.sent(target: 0, mono: 0, real: 0, sink: &sink)
        func reply(id: UInt16 = 0x1234, seq: UInt16 = 0, stamp: ICMP.Stamp?, from: IPAddress) -> PingTracker.Outcome {
            t.reply(identifier: id, sequence: seq, stamp: stamp, from: from, kernelReal: 0, nowMono: 1, nowReal: 1,
                    sink: &sink)
        }
        #expect(reply(id: 0x4321, stamp: stamp(0), from: a) == .foreign)  // another program's ping
        #expect(reply(stamp: ICMP.Stamp(cookie: 1, probe: 0), from: a) == .foreign)  // same id, other run
        #expect(reply(stamp: stamp(0), from: b) == .foreign)  // right numbers, wrong host
        #expect(reply(seq: 5, stamp: stamp(5), from: a) == .stray)  // never sent
        #expect(reply(stamp: stamp(65_536), from: a) == .stray)  // same sequence, an older wrap
        #expect(t.foreign == 3 && t.stray == 2)
        #expect(sink.probes.isEmpty && t.statistics[0].received == 0)
        #expect(reply(stamp: nil, from: a) == .fresh)
    }

    @Test func recordedRepliesAndErrorsThroughTheTracker() {
        // The recorded v4 reply answers probe 7 (id 0x1234) sent to 127.0.0.1.
        var t = PingTracker(targets: [addr("127.0.0.1")], identifier: 0x1234, cookie: 0xC0FF_EE01, timeout: 100 * Self.ms,
                            inFlight: 8)
        var sink = Recorder()
        for i in 0..<8 { t.sent(target: 0, mono: Int64(i) * Self.ms, real: Int64(i) * Self.ms, sink: &sink) }
        guard case .echoReply(let id, let seq, let st) = parse(Recorded.v4Reply, .v4, ipHeader: true) else {
            Issue.record("not a reply")
            return
        }
        #expect(t.reply(identifier: id, sequence: seq, stamp: st, from: addr("127.0.0.1"), kernelReal: 0,
                        nowMono: 8 * Self.ms, nowReal: 8 * Self.ms, sink: &sink) == .fresh)
        // The recorded error quotes probe 3 sent to 198.51.100.1: a different destination.
        var u = PingTracker(targets: [addr("198.51.100.1")], identifier: 0x1234, cookie: 0xC0FF_EE01,
                            timeout: 100 * Self.ms, inFlight: 8)
        var sink2 = Recorder()
        for i in 0..<4 { u.sent(target: 0, mono: Int64(i), real: Int64(i), sink: &sink2) }
        guard case .error(let type, let code, let eid, let eseq, let dst) = parse(Recorded.v4Unreachable, .v4, ipHeader: true)
        else {
            Issue.record("not an error")
            return
        }
        #expect(u.error(type: type, code: code, identifier: eid, sequence: eseq, destination: dst, sink: &sink2) == .fresh)
        #expect(u.statistics[0].errors == 1)
        u.expire(now: 200 * Self.ms, sink: &sink2)
        #expect(sink2.probes.map(\.loss) == [.timeout, .timeout, .timeout, .icmpError(type: 3, code: 1)])
        // An error about a probe to somewhere else is not ours.
        var w = PingTracker(targets: [addr("198.51.100.2")], identifier: 0x1234, cookie: 0, timeout: 1, inFlight: 8)
        for i in 0..<4 { w.sent(target: 0, mono: Int64(i), real: Int64(i), sink: &sink2) }
        #expect(w.error(type: type, code: code, identifier: eid, sequence: eseq, destination: dst, sink: &sink2) == .ignored)
    }

    @Test func sendFailuresAbandonAndRingOverflow() {
        var t = tracker([a], inFlight: 1)
        #expect(t.capacity == 64)
        var sink = Recorder()
        t.sendFailed(target: 0, real: 0, errno: ENETUNREACH, sink: &sink)
        #expect(sink.probes.first?.loss == .sendFailed(errno: ENETUNREACH))
        // 70 probes in flight in a ring of 64: the oldest give way as timed out, in order.
        for i in 1...70 { t.sent(target: 0, mono: Int64(i), real: Int64(i), sink: &sink) }
        // Probe 70 needs the slot of probe 6: probes 0...6 retire (6 of them timed out).
        #expect(sink.probes.map(\.probe) == Array(0...6))
        t.abandon(sink: &sink)
        #expect(!t.hasOutstanding)
        let s = t.statistics[0]
        #expect(s.sent == s.received + s.lost && s.lost == 7 && s.errors == 1 && s.sent == 7)
    }

    @Test func kernelTransmitTimestamps() {
        var t = tracker([a])
        var sink = Recorder()
        t.sent(target: 0, mono: 1_000, real: 5_000_000, sink: &sink)
        t.sent(target: 0, mono: 2_000, real: 5_001_000, sink: &sink)
        t.transmitted(key: 0, kernelReal: 5_000_400)
        t.transmitted(key: 1, kernelReal: 9_999_999_999)  // implausible: ignored
        t.transmitted(key: 7, kernelReal: 5_000_500)  // never sent: ignored
        t.reply(identifier: 0x1234, sequence: 0, stamp: stamp(0), from: a, kernelReal: 5_030_400, nowMono: 40_000,
                nowReal: 5_039_000, sink: &sink)
        t.reply(identifier: 0x1234, sequence: 1, stamp: stamp(1), from: a, kernelReal: 5_031_000, nowMono: 41_000,
                nowReal: 5_040_000, sink: &sink)
        #expect(sink.probes.map(\.source) == [.kernel, .kernelRX])
        #expect(sink.probes[0].roundTrip == 30_000)
        // kernel-rx: the reply's age (9 µs) comes off the monotonic interval (39 µs).
        #expect(sink.probes[1].roundTrip == 30_000)
        #expect(t.sourceCounts == [1, 1, 0])
    }

    @Test func transmitKeysFollowTheKernelAfterAFailedSend() {
        // The kernel numbered a datagram whose send then failed (a firewall drop): its keys
        // run one ahead of our count from there on.
        var t = tracker([a])
        var sink = Recorder()
        t.sent(target: 0, mono: 1_000, real: 1_000_000, sink: &sink)                 // key 0
        t.sendFailed(target: 0, real: 2_000_000, errno: EPERM, sink: &sink)          // key 1, consumed
        t.sent(target: 0, mono: 3_000, real: 3_000_000, sink: &sink)                 // key 2
        t.sent(target: 0, mono: 4_000, real: 4_000_000, sink: &sink)                 // key 3
        t.transmitted(key: 0, kernelReal: 1_000_400)
        t.transmitted(key: 2, kernelReal: 3_000_400)
        t.transmitted(key: 3, kernelReal: 4_000_400)
        for (seq, at) in [(UInt16(0), Int64(1_030_400)), (2, 3_030_400), (3, 4_030_400)] {
            t.reply(identifier: 0x1234, sequence: seq, stamp: stamp(UInt32(seq)), from: a, kernelReal: at,
                    nowMono: 100_000, nowReal: at + 1_000, sink: &sink)
        }
        let answered = sink.probes.filter { $0.roundTrip != nil }
        #expect(answered.map(\.source) == [.kernel, .kernel, .kernel])
        #expect(answered.map(\.roundTrip) == [30_000, 30_000, 30_000])
    }

    @Test func aTimestampAfterTheNextSendIsNotTaken() {
        var t = tracker([a])
        var sink = Recorder()
        t.sent(target: 0, mono: 1_000, real: 1_000_000, sink: &sink)
        t.sent(target: 0, mono: 1_100, real: 1_100_000, sink: &sink)
        // Key 0 with a time after probe 1 was sent: not probe 0's.
        t.transmitted(key: 0, kernelReal: 1_100_500)
        t.reply(identifier: 0x1234, sequence: 0, stamp: stamp(0), from: a, kernelReal: 1_130_000, nowMono: 40_000,
                nowReal: 1_131_000, sink: &sink)
        #expect(sink.probes.first?.source == .kernelRX)
    }

    @Test func roundTripFallsBackOnClockSteps() {
        let timeout: Int64 = 1_000_000_000
        // Real time stepped back by an hour between send and receive: the monotonic clock rules.
        let (rtt, source) = PingTracker.roundTrip(sentMono: 0, sentReal: 0, txKernel: 10, rxKernel: 3_600_000_000_000,
                                                  nowMono: 50_000, nowReal: 100, timeout: timeout)
        #expect(rtt == 50_000 && source == .user)
        let (rtt2, source2) = PingTracker.roundTrip(sentMono: 0, sentReal: 0, txKernel: 0, rxKernel: 0,
                                                    nowMono: 7_000, nowReal: 0, timeout: timeout)
        #expect(rtt2 == 7_000 && source2 == .user)
    }

    @Test func statisticsMatchTheReference() {
        var s = TargetStatistics()
        for v: Int64 in [30, 10, 20, 40] {
            s.samples.append(v)
            s.total += v
            s.received += 1
        }
        // The RI takes sorted[n / 2] for the median, and truncates the mean.
        #expect(s.median == 30)
        #expect(s.mean == 25)
    }
}

@Suite("Ping capabilities and specifications")
struct PingCapabilityTests {
    let loop4 = addr("127.0.0.1"), loop6 = addr("::1")

    @Test func referenceCapabilitiesKeepTheirTokens() throws {
        let cap = PingService(form: .average, source: loop4).capability
        // The token of the RI's ping-average-ip4 for 127.0.0.1 in the recorded exchange.
        #expect(cap.token == "40c5320f8ee7517efcea2a857b0f64f9")
        #expect(cap.statement.when.description == "now ... future / 1s")
        let labels = PingService.services(source: loop6, forms: PingService.Form.allCases).map { $0.capability.statement.label! }
        #expect(labels == ["ping-average-ip6", "ping-detail-ip6", "ping-stats-ip6", "ping-loss-ip6", "ping-multi-ip6"])
    }

    @Test func recordedSpecificationIsAccepted() async throws {
        let body = try #require(readFile(repoRoot + "/Tests/Fixtures/wire/ci-10-post-spec-result-direct.json"))
        let json = try JSON(parsing: body)
        let request = try #require(json["request"]?["body_raw"]?.stringValue)
        let message = try MessageDecoder().decode(request)
        guard case .specification(let spec) = message else {
            Issue.record("not a specification")
            return
        }
        let scheduler = Scheduler(services: PingService.services(source: loop4, forms: [.average, .detail]))
        guard case .success(let s) = scheduler.service(for: spec) else {
            Issue.record("refused")
            return
        }
        // The RI's client labels its specification "<capability label>-<number>".
        #expect(spec.statement.label!.hasPrefix(s.capability.statement.label! + "-"))
    }

    func specification(_ form: PingService.Form, _ values: [String: String], when: String = "now + 3s / 1s") throws
        -> Specification
    {
        let cap = PingService(form: form, source: loop4).capability
        // Leave out what `values` does not give: the scheduler fills in defaults.
        var st = Statement(registry: cap.statement.registry, when: try When(parsing: when))
        st.label = cap.statement.label
        for p in cap.statement.parameters {
            guard let v = values[p.name] else { continue }
            try st.addParameter(p.name)
            try st.setParameterValue(p.name, text: v)
        }
        st.resultColumns = cap.statement.resultColumns
        return Specification(st)
    }

    @Test func optionalParametersTakeDefaults() async throws {
        let scheduler = Scheduler(services: PingService.services(source: loop4, forms: PingService.Form.allCases))
        let spec = try specification(.statistics, ["source.ip4": "127.0.0.1", "destination.ip4": "127.0.0.2", "ip.ttl": "3"])
        #expect(spec.statement.parameters.count == 3)
        guard case .receipt(let receipt) = await scheduler.submit(spec) else {
            Issue.record("not a receipt")
            return
        }
        #expect(receipt.token == spec.token)
        #expect(receipt.statement.parameterValue("icmp.payload.octets") == .natural(56))
        #expect(receipt.statement.parameterValue("ip.ttl") == .natural(3))
        // Out-of-range values are still refused with the reason.
        let bad = try specification(.statistics, ["source.ip4": "127.0.0.1", "destination.ip4": "127.0.0.2",
                                                  "icmp.timeout.ms": "0"])
        guard case .exception(let e) = await scheduler.submit(bad) else {
            Issue.record("accepted a zero timeout")
            return
        }
        #expect(e.status == 403 && e.message.contains("icmp.timeout.ms"))
    }

    @Test func invalidDestinationsAreRefused() async throws {
        let scheduler = Scheduler(services: PingService.services(source: loop4, forms: PingService.Form.allCases))
        for (form, key, value, words) in [
            (PingService.Form.average, "destination.ip4", "224.0.0.1", "multicast"),
            (.detail, "destination.ip4", "0.0.0.0", "unspecified"),
            (.multi, "destination.ip4.set", "127.0.0.1,bogus", "'bogus' is not an address"),
            (.multi, "destination.ip4.set", "10.0.0.0/8", "more than 1024 destinations"),
            (.multi, "destination.ip4.set", "::1", "not an IPv4 address"),
        ] {
            let spec = try specification(form, ["source.ip4": "127.0.0.1", key: value])
            guard case .exception(let e) = await scheduler.submit(spec) else {
                Issue.record("accepted \(value)")
                continue
            }
            #expect(e.status == 400, "\(value)")
            #expect(e.message.contains(words), "\(e.message)")
        }
    }

    @Test func zeroRepliesGiveCountZeroAndMissingDelays() throws {
        // The RI crashes here (min() of no samples); we report the count and leave delays out.
        let cap = PingService(form: .statistics, source: loop4).capability
        var table = ResultTable(columns: cap.statement.resultColumns)
        var stats = TargetStatistics()
        stats.sent = 3
        stats.lost = 3
        let report = PingReport(statistics: [stats], socket: .raw, identifier: 1, sourceCounts: [0, 0, 0], foreign: 0,
                                stray: 0, sendErrors: [:], scheduleErrors: [], sent: 3)
        try PingService.writeStatistics(report, targets: [loop4], into: &table)
        #expect(table.rowCount == 1)
        #expect(table.value("delay.twoway.icmp.count", row: 0) == .natural(0))
        #expect(table.value("packets.lost", row: 0) == .natural(3))
        #expect(table.value("delay.twoway.icmp.us.min", row: 0) == nil)
        #expect(table.value("delay.twoway.icmp.us.50pct", row: 0) == nil)
        #expect(report.dominantSource == .user)
    }

    @Test func shippedRegistryFileIsTheEmbeddedOne() throws {
        let bytes = try #require(readFile(repoRoot + "/deploy/registry/probe-registry.json"))
        let store = RegistryStore()
        let shipped = try store.register(json: bytes)
        let embedded = try RegistryStore.shared.registry(for: RegistryStore.probeURI)
        #expect(shipped.uri == embedded.uri)
        #expect(shipped.elements.map { "\($0.name) \($0.primitive) \($0.summary ?? "")" }
            == embedded.elements.map { "\($0.name) \($0.primitive) \($0.summary ?? "")" })
    }

    @Test func targetSetsExpand() throws {
        // As fping: a prefix gives its hosts, without network and broadcast addresses.
        let t = try PingService.parseTargets("127.0.0.0/30, 127.0.0.1,127.0.1.9,10.0.0.0/31", family: .v4, limit: 16).get()
        #expect(t.map(\.description) == ["127.0.0.1", "127.0.0.2", "127.0.1.9", "10.0.0.0", "10.0.0.1"])
        let six = try PingService.parseTargets("::1,fd00::/126", family: .v6, limit: 16).get()
        #expect(six.count == 5)
        guard case .failure(let e) = PingService.parseTargets("127.0.0.0/27", family: .v4, limit: 16) else {
            Issue.record("32 destinations accepted past a limit of 16")
            return
        }
        #expect(e.code == .destination)
    }
}

@Suite("Open-ended ping keeps bounded samples (hardening row 10)")
struct SampleBoundTests {
    @Test("past the sample limit, a uniform sample is kept: bounded memory, a close median")
    func reservoir() {
        var s = TargetStatistics()
        s.sampleLimit = 1000
        // A day of one probe a second, RTTs 1 ... 86,400 µs in a shuffled order.
        var values = (1...86_400).map { Int64($0) * 1000 }
        var g = SystemRandomNumberGenerator()
        values.shuffle(using: &g)
        for v in values { s.record(v) }
        #expect(s.samples.count == 1000)
        #expect(s.sampled == 86_400 && s.medianIsEstimated)
        let median = Double(s.median!) / 1000
        #expect(abs(median - 43_200) < 43_200 * 0.1, "estimated median \(median) µs")
    }

    @Test("a tracker of many targets shares one job's sample budget")
    func budget() {
        let targets = try! PingService.parseTargets("10.0.0.0/22", family: .v4, limit: 1024).get()
        let t = PingTracker(targets: targets, identifier: 1, cookie: 1, timeout: 1_000_000_000, inFlight: 16)
        let limit = t.statistics[0].sampleLimit
        #expect(limit >= PingTracker.minimumSamplesPerTarget)
        #expect(limit * targets.count <= PingTracker.samplesPerJob)
    }
}

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

typealias P = TraceWriter.Packet

let ms: Int64 = 1_000_000
let second: Int64 = 1_000_000_000
/// 2026-01-01 00:00:00 UTC.
let epoch: Int64 = 1_767_225_600 * second

/// TCP flags.
enum F {
    static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04, psh: UInt8 = 0x08, ack: UInt8 = 0x10
}

/// A flow table fed with packets built from their fields; the records it writes, in order.
final class Recorder {
    var records: [(Flow, FlowEndReason)] = []
    var table: FlowTable!
    init(capacity: Int = 1024, idle: Int64 = 300, active: Int64 = 1800) {
        table = FlowTable(capacity: capacity, idleTimeout: idle, activeTimeout: active) { [unowned self] f, r in
            self.records.append((f, r))
        }
    }
    func feed(_ p: P, at time: Int64) {
        var d = DecodedPacket()
        let frame = TraceWriter.frame(p)
        frame.withUnsafeBytes { PacketDecoder.decode($0, linktype: LinkType.ethernet, into: &d) }
        #expect(d.outcome == .ip)
        table.add(d, at: time)
    }
}

/// The TCP conversation of the exact test: handshake (1 ms out, 2 ms back), data with one
/// retransmission and one segment that fills a gap late, data back, FIN, FIN/ACK, ACK.
func tcpConversation(_ a: TraceWriter.IPText, _ b: TraceWriter.IPText, sport: UInt16 = 40_000, dport: UInt16 = 80,
                     start t: Int64) -> [(P, Int64)] {
    func ab(_ flags: UInt8, _ seq: UInt32, _ ack: UInt32, _ payload: Int = 0) -> P {
        P(source: a, destination: b, proto: 6, sourcePort: sport, destinationPort: dport, flags: flags, sequence: seq,
          acknowledgement: ack, payload: payload)
    }
    func ba(_ flags: UInt8, _ seq: UInt32, _ ack: UInt32, _ payload: Int = 0) -> P {
        P(source: b, destination: a, proto: 6, sourcePort: dport, destinationPort: sport, flags: flags, sequence: seq,
          acknowledgement: ack, payload: payload)
    }
    return [
        (ab(F.syn, 100, 0), t),
        (ba(F.syn | F.ack, 500, 101), t + 1 * ms),
        (ab(F.ack, 101, 501), t + 3 * ms),
        (ab(F.ack | F.psh, 101, 501, 1000), t + 4 * ms),
        (ab(F.ack, 1101, 501, 1000), t + 5 * ms),
        (ab(F.ack, 101, 501, 1000), t + 250 * ms),        // retransmission
        (ba(F.ack, 501, 2101, 100), t + 251 * ms),
        (ab(F.ack, 3101, 601, 500), t + 252 * ms),        // leaves a gap 2101..<3101
        (ab(F.ack, 2101, 601, 1000), t + 253 * ms),       // fills it: out of order
        (ab(F.fin | F.ack, 3601, 601), t + 300 * ms),
        (ba(F.fin | F.ack, 601, 3602), t + 301 * ms),
        (ab(F.ack, 3602, 602), t + 302 * ms),
    ]
}

@Suite("Packet decoding on byte fixtures")
struct DecoderTests {
    func decode(_ frame: [UInt8], _ linktype: Int32 = LinkType.ethernet) -> DecodedPacket {
        var d = DecodedPacket()
        frame.withUnsafeBytes { PacketDecoder.decode($0, linktype: linktype, into: &d) }
        return d
    }

    @Test func vlanAndIPv6ExtensionHeaders() {
        var p = P(source: "10.0.0.1", destination: "10.0.0.2", proto: 17, sourcePort: 5000, destinationPort: 53, payload: 12)
        p.vlan = 100
        var d = decode(TraceWriter.frame(p))
        #expect(d.outcome == .ip && d.version == 4 && d.sourcePort == 5000 && d.destinationPort == 53 && d.ipLength == 40)
        var q = P(source: "2001:db8::1", destination: "2001:db8::2", proto: 6, sourcePort: 1234, destinationPort: 443,
                  flags: F.syn, sequence: 77, payload: 10)
        q.hopByHop = true
        d = decode(TraceWriter.frame(q))
        #expect(d.outcome == .ip && d.version == 6 && d.proto == 6 && d.transportOffset == 48)
        #expect(d.sourcePort == 1234 && d.destinationPort == 443 && d.sequence == 77 && d.tcpFlags == F.syn)
        #expect(d.ipLength == 40 + 8 + 20 + 10 && d.tcpPayload == 10)
        #expect(d.sourceHigh == 0x2001_0db8_0000_0000 && d.sourceLow == 1 && d.destinationLow == 2)
    }

    @Test func fragmentsTruncationAndNonsense() {
        // An IPv6 fragment header that is not the first fragment: addresses, no ports.
        var f = TraceWriter.frame(P(source: "::1", destination: "::2", proto: 17, sourcePort: 1, destinationPort: 2, payload: 8))
        f[14 + 6] = 44
        f.insert(contentsOf: [17, 0, 0x05, 0x00, 0, 0, 0, 1], at: 14 + 40)  // offset 160, next UDP
        f[14 + 5] = UInt8(f.count - 14 - 40)
        var d = decode(f)
        #expect(d.outcome == .ip && d.laterFragment && !d.hasPorts && d.proto == 17)
        // A TCP header cut by the snap length: truncated, but still an IP packet by its header.
        let tcp = TraceWriter.frame(P(source: "10.0.0.1", destination: "10.0.0.2", proto: 6, sourcePort: 1, destinationPort: 2))
        d = decode(Array(tcp.prefix(14 + 20 + 10)))
        #expect(d.outcome == .truncated && d.version == 4)
        // An IHL under 5, a version 7, an empty frame, an extension header chain past the end.
        var bad = tcp
        bad[14] = 0x44
        #expect(decode(bad).outcome == .malformed)
        bad[14] = 0x75
        #expect(decode(bad).outcome == .malformed)
        #expect(decode([]).outcome == .truncated)
        var chain = Array(TraceWriter.frame(P(source: "::1", destination: "::2", proto: 59)).prefix(14 + 40))
        chain[14 + 6] = 0  // hop-by-hop, but nothing follows the fixed header
        #expect(decode(chain).outcome == .truncated)
        // An unknown link type and ARP are not IP.
        #expect(decode(tcp, 9999).outcome == .notIP)
        #expect(decode(hex(Frames.arp)).outcome == .notIP)
        // Ethertype 0 is not IP; a cooked capture with a VLAN tag after its protocol field is.
        var zero = tcp
        zero[12] = 0; zero[13] = 0
        #expect(decode(zero).outcome == .notIP)
        var sllVLAN = [UInt8](repeating: 0, count: 14) + [0x81, 0x00, 0x00, 0x64, 0x08, 0x00]
        sllVLAN += tcp.dropFirst(14)
        #expect(decode(sllVLAN, LinkType.linuxSLL).destinationPort == 2)
        // Linux cooked capture v2 and raw IP.
        #expect(decode(Array(tcp.dropFirst(14)), LinkType.raw).sourcePort == 1)
        var sll2 = [UInt8](repeating: 0, count: 20)
        sll2[0] = 0x08
        #expect(decode(sll2 + tcp.dropFirst(14), LinkType.linuxSLL2).destinationPort == 2)
    }
}

@Suite("Flow table: exact flows from known packets")
struct FlowTableTests {
    @Test("a TCP conversation: handshake RTT and its legs, retransmission, reordering, the close")
    func tcpExact() throws {
        let r = Recorder()
        for (p, t) in tcpConversation("192.0.2.1", "198.51.100.7", start: epoch) { r.feed(p, at: t) }
        #expect(r.table.count == 0, "the close ends the flow")
        try #require(r.records.count == 1)
        let (f, reason) = r.records[0]
        #expect(reason == .fin)
        #expect(f.first == epoch && f.last == epoch + 302 * ms)
        #expect(f.aLow == 0xC000_0201 && f.aPort == 40_000 && f.bPort == 80 && f.proto == 6)
        #expect(f.forwardPackets == 9 && f.reversePackets == 3)
        #expect(f.forwardOctets == 9 * 40 + 1000 * 4 + 500 && f.reverseOctets == 3 * 40 + 100)
        #expect(f.handshakeRTT == 3 * ms && f.responderRTT == 1 * ms && f.initiatorRTT == 2 * ms)
        #expect(f.forwardRetransmitted == 1 && f.forwardOutOfOrder == 1)
        #expect(f.reverseRetransmitted == 0 && f.reverseOutOfOrder == 0)
    }

    @Test("a gap filled from its middle is reordering, a fill long after is a retransmission, a keep-alive is neither")
    func reorderingAndRetransmission() throws {
        let r = Recorder()
        let a: TraceWriter.IPText = "10.0.0.1", b: TraceWriter.IPText = "10.0.0.2"
        func seg(_ seq: UInt32, _ payload: Int, _ t: Int64, flags: UInt8 = F.ack) {
            r.feed(P(source: a, destination: b, proto: 6, sourcePort: 5, destinationPort: 6, flags: flags, sequence: seq,
                     acknowledgement: 1, payload: payload), at: t)
        }
        seg(0, 100, epoch)                 // 0..<100
        seg(400, 100, epoch + 1 * ms)      // gap 100..<400
        seg(200, 100, epoch + 2 * ms)      // its middle
        seg(300, 100, epoch + 2 * ms)      // its right edge
        seg(100, 100, epoch + 3 * ms)      // its left edge: filled
        seg(700, 100, epoch + 4 * ms)      // gap 500..<700
        seg(500, 200, epoch + 500 * ms)    // filled half a second later: sent again
        seg(799, 1, epoch + 600 * ms)      // a keep-alive (one old byte)
        seg(100, 100, epoch + 700 * ms)    // old data again
        r.table.flush()
        let f = try #require(r.records.first?.0)
        #expect(f.forwardOutOfOrder == 3 && f.forwardRetransmitted == 2, "ooo \(f.forwardOutOfOrder), retx \(f.forwardRetransmitted)")
    }

    @Test("a repeated SYN restarts the handshake figure; a SYN/ACK seen first makes its receiver the initiator")
    func handshakeEdges() throws {
        let r = Recorder()
        let a: TraceWriter.IPText = "10.0.0.1", b: TraceWriter.IPText = "10.0.0.2"
        r.feed(P(source: a, destination: b, proto: 6, sourcePort: 1, destinationPort: 2, flags: F.syn, sequence: 9), at: epoch)
        r.feed(P(source: a, destination: b, proto: 6, sourcePort: 1, destinationPort: 2, flags: F.syn, sequence: 9), at: epoch + 1000 * ms)
        r.feed(P(source: b, destination: a, proto: 6, sourcePort: 2, destinationPort: 1, flags: F.syn | F.ack, sequence: 50, acknowledgement: 10), at: epoch + 1004 * ms)
        r.feed(P(source: a, destination: b, proto: 6, sourcePort: 1, destinationPort: 2, flags: F.ack, sequence: 10, acknowledgement: 51), at: epoch + 1005 * ms)
        // Mid-stream: the table first sees the SYN/ACK (its SYN was before the capture).
        r.feed(P(source: b, destination: a, proto: 6, sourcePort: 3, destinationPort: 4, flags: F.syn | F.ack, sequence: 1, acknowledgement: 1), at: epoch + 2 * second)
        r.table.flush()
        try #require(r.records.count == 2)
        #expect(r.records[0].0.handshakeRTT == 5 * ms && r.records[0].0.forwardRetransmitted == 1)
        let swapped = r.records[1].0
        #expect(swapped.aLow == 0x0A00_0001 && swapped.aPort == 4 && swapped.reversePackets == 1 && swapped.forwardPackets == 0)
        #expect(r.records.allSatisfy { $0.1 == .end })
    }

    @Test("idle timeout by packet time, to within a second; interim records at each active timeout")
    func timeouts() throws {
        let r = Recorder(idle: 60, active: 30)
        let u = P(source: "10.1.1.1", destination: "10.2.2.2", proto: 17, sourcePort: 9, destinationPort: 9, payload: 10)
        for k in 0...6 { r.feed(u, at: epoch + Int64(k) * 10 * second) }  // 0, 10, ... 60 s
        // Another flow's packet long after: the first is past its idle timeout (last 60 s + 60).
        let other = P(source: "10.9.9.9", destination: "10.2.2.2", proto: 17, sourcePort: 1, destinationPort: 1)
        r.feed(other, at: epoch + 119 * second + 999 * ms)
        #expect(r.records.count == 2, "only the interim records at 30 s and 60 s so far")
        r.feed(other, at: epoch + 120 * second)
        try #require(r.records.count == 3)
        #expect(r.records.map(\.1) == [.active, .active, .idle])
        #expect(r.records.map(\.0.forwardPackets) == [3, 3, 1])
        #expect(r.records[1].0.first == epoch + 30 * second && r.records[1].0.continued)
        #expect(r.records[2].0.last == epoch + 60 * second)
        // Time moves on without packets too (a quiet live link).
        r.table.advance(to: epoch + 180 * second + 1)
        #expect(r.records.last?.1 == .idle && r.records.count == 4 && r.table.count == 0)
    }

    @Test("a reset ends a flow; a full table exports its least recently active flow early, counted")
    func resetAndEviction() throws {
        let r = Recorder(capacity: 16)
        for i in 0..<16 {
            r.feed(P(source: "10.0.0.1", destination: "10.0.0.2", proto: 17, sourcePort: UInt16(1000 + i), destinationPort: 53), at: epoch + Int64(i) * ms)
        }
        // Flow 0 is touched again: flow 1 is now the least recently active.
        r.feed(P(source: "10.0.0.2", destination: "10.0.0.1", proto: 17, sourcePort: 53, destinationPort: 1000), at: epoch + 20 * ms)
        r.feed(P(source: "10.0.0.3", destination: "10.0.0.2", proto: 6, sourcePort: 7, destinationPort: 8, flags: F.syn), at: epoch + 21 * ms)
        #expect(r.table.counters.evicted == 1 && r.records.count == 1 && r.records[0].1 == .evicted)
        #expect(r.records[0].0.aPort == 1001)
        r.feed(P(source: "10.0.0.2", destination: "10.0.0.3", proto: 6, sourcePort: 8, destinationPort: 7, flags: F.rst | F.ack), at: epoch + 22 * ms)
        #expect(r.records.count == 2 && r.records[1].1 == .rst && r.records[1].0.packets == 2)
        // Every flow left is still found (the index survived the removals).
        for i in 0..<16 where i != 1 {
            r.feed(P(source: "10.0.0.1", destination: "10.0.0.2", proto: 17, sourcePort: UInt16(1000 + i), destinationPort: 53), at: epoch + 30 * ms)
        }
        #expect(r.table.counters.created == 17 && r.table.count == 15)
    }

    @Test("many flows in and out: the index finds every flow, both directions, after removals")
    func churn() {
        let r = Recorder(capacity: 4096, idle: 1)
        var g = SystemRandomNumberGenerator()
        var expected: [UInt32: UInt64] = [:]
        for round in 0..<4 {
            let t = epoch + Int64(round) * 10 * second
            for i in 0..<3000 {
                let port = UInt16(truncatingIfNeeded: Int.random(in: 1...60_000, using: &g))
                let key = UInt32(round) << 24 | UInt32(i)
                let a = TraceWriter.IPText(bytes: [10, UInt8(round), UInt8(i >> 8), UInt8(i & 0xFF)])
                let n = Int.random(in: 1...3, using: &g)
                for k in 0..<n {
                    let forward = k % 2 == 0
                    r.feed(P(source: forward ? a : "10.255.0.1", destination: forward ? "10.255.0.1" : a, proto: 17,
                             sourcePort: forward ? port : 53, destinationPort: forward ? 53 : port), at: t + Int64(k) * ms)
                }
                expected[key] = UInt64(n)
            }
        }
        r.table.flush()
        #expect(r.records.count == expected.count)
        #expect(r.records.map(\.0.packets).reduce(0, +) == expected.values.reduce(0, +))
        #expect(r.table.counters.evicted == 0)
    }
}

/// A directory of trace files for the file capabilities, removed at the end.
final class CaptureDirectory {
    let path: String
    init() {
        var template = Array("/tmp/mplane-traces-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }
    func write(_ name: String, _ bytes: [UInt8]) {
        precondition(writeFile(path + "/" + name, bytes))
    }
    deinit { _ = run(["/bin/rm", "-rf", path]) }
}

/// Runs `measure` over the trace `name` in `dir` through a scheduler; the answer to the
/// specification, then the result.
func meterFile(_ measure: CaptureService.Measure, _ dir: CaptureDirectory, _ name: String,
               parameters: [String: Value] = [:], filter: String = "", maxRows: Int? = nil) async throws -> Message {
    var settings = CaptureService.Settings()
    settings.captureDirectory = dir.path
    let service = CaptureService(measure: measure, interface: nil, settings: settings)
    var configuration = SchedulerConfiguration()
    if let maxRows { configuration.maxResultRows = maxRows }
    let scheduler = Scheduler(services: [service], configuration: configuration)
    let runner = Task { await scheduler.run() }
    defer { scheduler.shutdown(); runner.cancel() }
    let when = measure == .counters ? "now + 1s / 1s" : "now + 1s"
    var spec = Specification(capability: service.capability, when: try When(parsing: when))
    try spec.statement.setParameterValue("capture.file", .string(name))
    try spec.statement.setParameterValue("capture.filter", .string(filter))
    for (k, v) in parameters { try spec.statement.setParameterValue(k, v) }
    for (k, v) in service.parameterDefaults where spec.statement.parameterValue(k) == nil {
        try spec.statement.setParameterValue(k, v)
    }
    let answer = await submitRetrying(scheduler, spec)
    guard case .receipt = answer else { return answer }
    return await scheduler.waitForResult(token: spec.token, timeout: .seconds(60))
}

@Suite("Capture files: the same metering over a trace, and nothing outside capture-dir")
struct CaptureFileTests {
    @Test("flows-file gives the exact flows of a written trace, IPv4 and IPv6, with loss figures")
    func flowsOverATrace() async throws {
        let dir = CaptureDirectory()
        var w = TraceWriter()
        for (p, t) in tcpConversation("192.0.2.1", "198.51.100.7", start: epoch) { w.append(frame: TraceWriter.frame(p), at: t) }
        for (p, t) in tcpConversation("2001:db8::1", "2001:db8::2", sport: 50_000, dport: 443, start: epoch + 10 * ms) {
            w.append(frame: TraceWriter.frame(p), at: t)
        }
        let dns = P(source: "10.0.0.1", destination: "10.0.0.53", proto: 17, sourcePort: 3333, destinationPort: 53, payload: 30)
        w.append(frame: TraceWriter.frame(dns), at: epoch + 500 * ms)
        w.append(frame: Array(TraceWriter.frame(dns).prefix(30)), at: epoch + 501 * ms)  // cut short
        dir.write("t.pcap", w.bytes)
        let answer = try await meterFile(.flows, dir, "t.pcap")
        guard case .result(let r) = answer else { Issue.record("no result: \(answer)"); return }
        let t = r.values
        try #require(t.rowCount == 3, "\(t.rowCount) rows")
        #expect(t.value("source.ip4", row: 0) == .address(IPAddress("192.0.2.1")!))
        #expect(t.value("source.ip6", row: 0) == nil)
        #expect(t.value("destination.ip6", row: 1) == .address(IPAddress("2001:db8::2")!))
        #expect(t.value("rtt.us", row: 1) == .natural(3000) && t.value("rtt.responder.us", row: 1) == .natural(1000))
        #expect(t.value("packets.retransmitted.forward", row: 1) == .natural(1))
        #expect(t.value("packets.outoforder.forward", row: 1) == .natural(1))
        #expect(t.value("octets.ip.forward", row: 1) == .natural(9 * 60 + 4500))
        #expect(t.value("flow.end.reason", row: 0) == .string("fin") && t.value("flow.end.reason", row: 2) == .string("end"))
        #expect(t.value("rtt.us", row: 2) == nil && t.value("ip.protocol", row: 2) == .natural(17))
        #expect(t.value("start", row: 2) == .time(Timestamp(microsecondsSince1970: (epoch + 500 * ms) / 1000)))
        #expect(r.statement.metadataValue("packets.truncated") == .natural(1))
        #expect(r.statement.metadataValue("flows.evicted") == .natural(0))
        #expect(r.statement.metadataValue("packets.unobserved") == .natural(0))
    }

    @Test("counters over a trace: periods by packet time, empty ones included; top talkers by octets")
    func countersAndTopTalkers() async throws {
        let dir = CaptureDirectory()
        var w = TraceWriter()
        let u = P(source: "10.0.0.1", destination: "10.0.0.2", proto: 17, sourcePort: 1, destinationPort: 2, payload: 72)
        let v = P(source: "10.0.0.3", destination: "10.0.0.2", proto: 17, sourcePort: 1, destinationPort: 2, payload: 12)
        w.append(frame: TraceWriter.frame(u), at: epoch)
        w.append(frame: TraceWriter.frame(v), at: epoch + 500 * ms)
        w.append(frame: TraceWriter.frame(u), at: epoch + 3200 * ms)
        dir.write("c.pcap", w.bytes)
        guard case .result(let r) = try await meterFile(.counters, dir, "c.pcap") else { Issue.record("no result"); return }
        let t = r.values
        try #require(t.rowCount == 4)
        #expect((0..<4).map { t.value("packets.ip", row: $0) } == [.natural(2), .natural(0), .natural(0), .natural(1)])
        #expect(t.value("flows", row: 0) == .natural(2) && t.value("octets.udp", row: 3) == .natural(80))
        #expect(t.value("time", row: 3) == .time(Timestamp(microsecondsSince1970: (epoch + 3 * second) / 1000)))
        guard case .result(let top) = try await meterFile(.topTalkers, dir, "c.pcap", parameters: ["top.count": .natural(2)])
        else { Issue.record("no result"); return }
        try #require(top.values.rowCount == 2)
        #expect(top.values.value("host.ip4", row: 0) == .address(IPAddress("10.0.0.2")!))
        #expect(top.values.value("octets.ip", row: 0) == .natural(200 + 40))
        #expect(top.values.value("host.ip4", row: 1) == .address(IPAddress("10.0.0.1")!))
        #expect(top.values.value("flows", row: 0) == .natural(2))
    }

    @Test("past max-result-rows the flows that end are counted, not kept; a frame stamped in 2100 does not make billions of rows")
    func boundedResults() async throws {
        let dir = CaptureDirectory()
        var w = TraceWriter()
        for i in 0..<50 {
            let u = P(source: "10.0.0.1", destination: "10.0.0.2", proto: 17, sourcePort: UInt16(1000 + i), destinationPort: 53)
            w.append(frame: TraceWriter.frame(u), at: epoch + Int64(i) * ms)
        }
        // One frame from the far future in the middle of the trace, then the rest.
        w.append(frame: TraceWriter.frame(P(source: "10.9.9.9", destination: "10.0.0.2", proto: 17, sourcePort: 1, destinationPort: 1)),
                 at: 4_102_444_800 * second)
        for i in 50..<60 {
            let u = P(source: "10.0.0.1", destination: "10.0.0.2", proto: 17, sourcePort: UInt16(1000 + i), destinationPort: 53)
            w.append(frame: TraceWriter.frame(u), at: epoch + Int64(i) * ms)
        }
        dir.write("b.pcap", w.bytes)
        guard case .result(let r) = try await meterFile(.flows, dir, "b.pcap", maxRows: 10) else { Issue.record("no result"); return }
        #expect(r.values.rowCount == 10)
        #expect(r.statement.metadataValue("flows.unreported") == .natural(51))
        guard case .result(let all) = try await meterFile(.flows, dir, "b.pcap") else { Issue.record("no result"); return }
        #expect(all.values.rowCount == 61 && all.statement.metadataValue("flows.unreported") == .natural(0))
        // Counters over it: the 74-year gap ends at max-result-rows, not in billions of rows.
        guard case .result(let counted) = try await meterFile(.counters, dir, "b.pcap", maxRows: 1_000) else { Issue.record("no result"); return }
        #expect(counted.values.rowCount <= 1_001)
    }

    @Test("a damaged trace (cut in a record, a record past its snap length) gives what came before it or a failure naming the capture; the probe goes on")
    func damagedTraces() async throws {
        let dir = CaptureDirectory()
        var w = TraceWriter()
        for (p, t) in tcpConversation("192.0.2.1", "198.51.100.7", start: epoch) { w.append(frame: TraceWriter.frame(p), at: t) }
        let u = P(source: "10.0.0.1", destination: "10.0.0.2", proto: 17, sourcePort: 1, destinationPort: 2, payload: 500)
        w.append(frame: TraceWriter.frame(u), at: epoch + second)
        dir.write("cut.pcap", Array(w.bytes.dropLast(200)))
        // A record header claiming 16 MB (past the file's snap length of 65,535).
        var huge = TraceWriter().bytes
        huge += [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1] + [UInt8](repeating: 0, count: 64)
        dir.write("huge.pcap", huge)
        for name in ["cut.pcap", "huge.pcap"] {
            let answer = try await meterFile(.flows, dir, name)
            switch answer {
            case .result(let r):
                // libpcap may take a cut record for the end of the file: then what came before.
                #expect(name == "cut.pcap" && r.values.rowCount >= 1, "\(name): \(r.values.rowCount) rows")
            case .exception(let e):
                #expect(e.message.contains("capture"), "\(name): \(e.message)")
            default:
                Issue.record("\(name): \(answer)")
            }
        }
    }

    @Test("no path outside capture-dir is opened: .., absolute, symbolic links out, FIFOs, non-traces")
    func confinement() async throws {
        let dir = CaptureDirectory()
        dir.write("ok.pcap", TraceWriter().bytes)
        dir.write("text.pcap", Array("this is not a trace\n".utf8))
        _ = run(["/bin/ln", "-s", "/etc/passwd", dir.path + "/out"])
        _ = run(["/bin/ln", "-s", "ok.pcap", dir.path + "/in"])
        _ = run(["/bin/mkdir", dir.path + "/sub"])
        _ = run(["/bin/ln", "-s", "../ok.pcap", dir.path + "/sub/up"])
        #expect(mkfifo(dir.path + "/fifo", 0o600) == 0)
        let refused: [(String, String)] = [
            ("../etc/passwd", "outside capture-dir"), ("/etc/passwd", "absolute"), ("sub/../../x", "outside capture-dir"),
            ("out", "outside capture-dir"), ("missing.pcap", "no such file"), ("fifo", "not a regular file"),
            ("text.pcap", "not a trace"), ("", "a trace file name is needed"), ("a\u{1}b", "control characters"),
            ("../\u{301}x", "outside capture-dir"),
        ]
        for (name, why) in refused {
            let answer = try await meterFile(.flows, dir, name)
            guard case .exception(let e) = answer else { Issue.record("\(name): accepted"); continue }
            #expect(e.status == 400 && e.message.contains(why), "\(name): \(e.message)")
        }
        // Links that stay inside are followed.
        for name in ["in", "sub/up", "ok.pcap"] {
            guard case .result(let r) = try await meterFile(.flows, dir, name) else { Issue.record("\(name): refused"); continue }
            #expect(r.values.rowCount == 0)
        }
    }
}

let tsharkMissing: String? = run(["/bin/sh", "-c", "command -v tshark"]).status == 0 ? nil
    : "skipped: tshark is not installed (make deps installs it)"

@Suite("Flows against an independent meter")
struct IndependentMeterTests {
    /// Packets and octets per conversation, the endpoints in canonical order.
    struct Totals: Equatable { var packets: UInt64 = 0; var octets: UInt64 = 0 }

    @Test("per conversation, packets and octets.ip equal what tshark reads from the same file",
          .enabled(if: tsharkMissing == nil, "\(tsharkMissing ?? "")"))
    func againstTshark() async throws {
        let dir = CaptureDirectory()
        let trace = TraceWriter.synthetic(conversations: 3_000, meanPackets: 8, window: 300, seed: 7)
        dir.write("many.pcap", trace.bytes)
        let answer = try await meterFile(.flows, dir, "many.pcap")
        guard case .result(let r) = answer else { Issue.record("no result: \(answer)"); return }
        var ours: [String: Totals] = [:]
        let t = r.values
        for i in 0..<t.rowCount {
            let a = (t.value("source.ip4", row: i) ?? t.value("source.ip6", row: i))!.description
            let b = (t.value("destination.ip4", row: i) ?? t.value("destination.ip6", row: i))!.description
            let key = conversationKey(a, t.value("source.port", row: i)!.description, b,
                                      t.value("destination.port", row: i)!.description, t.value("ip.protocol", row: i)!.description)
            guard case .natural(let n)? = t.value("packets.ip", row: i), case .natural(let o)? = t.value("octets.ip", row: i) else {
                Issue.record("row \(i) lacks its counts")
                continue
            }
            ours[key, default: Totals()].packets += n
            ours[key, default: Totals()].octets += o
        }
        let out = run(["tshark", "-n", "-r", dir.path + "/many.pcap", "-T", "fields", "-E", "separator=,",
                       "-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst", "-e", "ip.proto", "-e", "ipv6.nxt",
                       "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport",
                       "-e", "ip.len", "-e", "ipv6.plen"])
        try #require(out.status == 0, "tshark failed")
        var theirs: [String: Totals] = [:]
        var lines = 0
        for line in String(decoding: out.stdout, as: UTF8.self).split(separator: "\n") {
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 12 else { continue }
            lines += 1
            let v6 = !f[2].isEmpty
            let a = v6 ? f[2] : f[0], b = v6 ? f[3] : f[1], proto = v6 ? f[5] : f[4]
            let sp = f[6].isEmpty ? f[8] : f[6], dp = f[7].isEmpty ? f[9] : f[7]
            let octets = v6 ? UInt64(f[11])! + 40 : UInt64(f[10])!
            let key = conversationKey(a, sp, b, dp, proto)
            theirs[key, default: Totals()].packets += 1
            theirs[key, default: Totals()].octets += octets
        }
        #expect(lines == trace.packets, "tshark read \(lines) of \(trace.packets) packets")
        #expect(ours.count == 3_000 && theirs.count == 3_000)
        let differing = theirs.filter { ours[$0.key] != $0.value }
        #expect(differing.isEmpty, "\(differing.count) conversations differ, e.g. \(differing.first.map { "\($0.key): tshark \($0.value), ours \(ours[$0.key].map { "\($0)" } ?? "none")" } ?? "")")
        // TCP conversations of six packets or more were closed: each ends with one fin record.
        let fins = (0..<t.rowCount).filter { t.value("flow.end.reason", row: $0) == .string("fin") }.count
        #expect(fins > 1_000)
    }

    @Test("a pcapng file (editcap's conversion of the same trace) gives the same flows",
          .enabled(if: tsharkMissing == nil && run(["/bin/sh", "-c", "command -v editcap"]).status == 0,
                   "skipped: editcap (tshark's package) is not installed"))
    func pcapng() async throws {
        let dir = CaptureDirectory()
        var w = TraceWriter()
        for (p, t) in tcpConversation("192.0.2.1", "198.51.100.7", start: epoch) { w.append(frame: TraceWriter.frame(p), at: t) }
        dir.write("t.pcap", w.bytes)
        try #require(run(["editcap", "-F", "pcapng", dir.path + "/t.pcap", dir.path + "/t.pcapng"]).status == 0)
        let head = try #require(readFile(dir.path + "/t.pcapng"))
        #expect(Array(head.prefix(4)) == [0x0A, 0x0D, 0x0D, 0x0A], "editcap wrote pcapng")
        guard case .result(let a) = try await meterFile(.flows, dir, "t.pcap"),
              case .result(let b) = try await meterFile(.flows, dir, "t.pcapng") else { Issue.record("no result"); return }
        #expect(a.values.rowCount == 1 && a.values == b.values)
    }

    func conversationKey(_ a: String, _ ap: String, _ b: String, _ bp: String, _ proto: String) -> String {
        let x = a + "/" + ap, y = b + "/" + bp
        return (x < y ? x + " " + y : y + " " + x) + " " + proto
    }
}

/// A flows service on lo with its scheduler running, and a TCP socket listening on
/// 127.0.0.1 at a port of its own, which the specifications' filter names.
final class LiveFlowRig: @unchecked Sendable {
    /// Set on the capture thread once the capture counts.
    final class Flag: Sendable { let value = Atomic<Bool>(false) }
    let opened = Flag()
    let service: CaptureService
    let scheduler: Scheduler
    let runner: Task<Void, Never>
    let server: Int32
    let address: sockaddr_in
    let port: UInt16

    init?() {
        let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(server, $0, len) == 0 && listen(server, 1) == 0 && getsockname(server, $0, &len) == 0 } }
        guard server >= 0, bound else {
            close(server)
            return nil
        }
        self.server = server
        address = addr
        port = UInt16(bigEndian: addr.sin_port)
        var settings = CaptureService.Settings()
        let flag = opened
        settings.onOpen = { flag.value.store(true, ordering: .releasing) }
        service = CaptureService(measure: .flows, interface: "lo", settings: settings)
        let s = Scheduler(services: [service])
        scheduler = s
        runner = Task { await s.run() }
    }

    /// True once the capture counts (within 5 s).
    func waitOpen() async -> Bool {
        for _ in 0..<200 where !opened.value.load(ordering: .acquiring) { try? await Task.sleep(for: .milliseconds(25)) }
        return opened.value.load(ordering: .acquiring)
    }

    func specification(_ when: String) throws -> Specification {
        var spec = Specification(capability: service.capability, when: try When(parsing: when))
        try spec.statement.setParameterValue("capture.filter", .string("tcp port \(port)"))
        for (k, v) in service.parameterDefaults where spec.statement.parameterValue(k) == nil {
            try spec.statement.setParameterValue(k, v)
        }
        return spec
    }

    func stop() {
        scheduler.shutdown()
        runner.cancel()
        close(server)
    }
}

@Suite("Flows live on lo (needs CAP_NET_RAW)", .serialized, .enabled(if: captureProblem == nil, "\(captureProblem ?? "")"))
struct LiveFlowTests {
    @Test("a bounded TCP transfer to a local server gives one flow, closed, with its counts and a handshake RTT")
    func tcpTransfer() async throws {
        let rig = try #require(LiveFlowRig(), "no listening socket")
        defer { rig.stop() }
        let (scheduler, server, addr, port) = (rig.scheduler, rig.server, rig.address, rig.port)
        // A window longer than the transfer needs even on a loaded machine; the job is
        // interrupted once the connection has closed, so the test does not wait it out.
        let spec = try rig.specification("now + 30s")
        guard case .receipt = await submitRetrying(scheduler, spec) else { Issue.record("refused"); return }
        let isOpen = await rig.waitOpen()
        try #require(isOpen, "the capture did not open within 5 s")
        let sent = 200_000
        let target = addr
        let transferred = await ProbeThread.run(name: "tcp-transfer") { () -> Int in
            let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var to = target
            guard withUnsafePointer(to: &to, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }) == 0 else { close(client); return -1 }
            let peer = accept(server, nil, nil)
            let chunk = [UInt8](repeating: 0x42, count: 10_000)
            var total = 0, received = 0
            var sink = [UInt8](repeating: 0, count: 65_536)
            while total < sent {
                let n = send(client, chunk, chunk.count, 0)
                if n <= 0 { break }
                total += n
                while received < total {
                    let m = recv(peer, &sink, sink.count, 0)
                    if m <= 0 { break }
                    received += m
                }
            }
            shutdown(client, Int32(SHUT_WR))
            _ = recv(peer, &sink, sink.count, 0)  // the FIN
            close(peer)
            close(client)
            return received
        }
        #expect(transferred == sent)
        // The last ACK follows the peer's FIN at once on lo; the capture gets a moment more.
        try await Task.sleep(for: .milliseconds(500))
        _ = await scheduler.interrupt(token: spec.token)
        guard case .result(let r) = await scheduler.waitForResult(token: spec.token, timeout: .seconds(15)) else {
            Issue.record("no result")
            return
        }
        let t = r.values
        try #require(t.rowCount == 1, "\(t.rowCount) flows")
        #expect(t.value("flow.end.reason", row: 0) == .string("fin"))
        #expect(t.value("destination.port", row: 0) == .natural(UInt64(port)))
        #expect(t.value("source.ip4", row: 0) == .address(IPAddress("127.0.0.1")!))
        guard case .natural(let forward)? = t.value("octets.ip.forward", row: 0),
              case .natural(let packets)? = t.value("packets.ip.forward", row: 0),
              case .natural(let rtt)? = t.value("rtt.us", row: 0) else {
            Issue.record("counts or RTT missing: \(t)")
            return
        }
        // Each segment carries 52 octets of headers on lo (20 IP, 32 TCP with timestamps).
        #expect(forward >= UInt64(sent) + packets * 52 && forward <= UInt64(sent) + packets * 60, "\(forward) octets in \(packets) packets")
        #expect(rtt < 1_000_000, "a loopback handshake of \(rtt) µs")
        #expect(t.value("packets.retransmitted.forward", row: 0) == .natural(0))
    }
}

@Suite("Flows of a repeated specification (live, needs CAP_NET_RAW)", .serialized,
       .enabled(if: captureProblem == nil, "\(captureProblem ?? "")"))
struct RepeatedFlowTests {
    @Test("a connection that spans repetitions is one flow, reported once, in the repetition it ends in (here by a reset)")
    func spansRepetitions() async throws {
        let rig = try #require(LiveFlowRig(), "no listening socket")
        defer { rig.stop() }
        let (scheduler, server, addr) = (rig.scheduler, rig.server, rig.address)
        // Repetitions of 3 s. The connection lasts 3.2 s once the capture is open, so it
        // crosses at least one cut between repetitions; then the series is interrupted.
        let spec = try rig.specification("repeat now + 60s / 3s { now + 3s }")
        // Flow records as the repetitions deliver them.
        let delivered = Mutex<Int>(0)
        scheduler.addObserver { e in
            if case .repetition(_, let r) = e { delivered.withLock { $0 += r.values.rowCount } }
        }
        guard case .receipt = await submitRetrying(scheduler, spec) else { Issue.record("refused"); return }
        let isOpen = await rig.waitOpen()
        try #require(isOpen, "the capture did not open within 5 s")
        let target = addr
        let done = await ProbeThread.run(name: "tcp-span") { () -> Bool in
            let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var to = target
            guard withUnsafePointer(to: &to, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }) == 0 else { close(client); return false }
            let peer = accept(server, nil, nil)
            var byte: UInt8 = 7
            _ = send(client, &byte, 1, 0)
            _ = recv(peer, &byte, 1, 0)
            usleep(3_200_000)
            _ = send(client, &byte, 1, 0)
            _ = recv(peer, &byte, 1, 0)
            // A reset ends it at once (a FIN close waits for the last ACK, which a loaded
            // machine may send after the interrupt below).
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            _ = setsockopt(client, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            close(client)
            close(peer)
            return true
        }
        #expect(done == true)
        // Once a repetition has delivered the flow (within 15 s), the series is interrupted.
        for _ in 0..<150 where delivered.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(100)) }
        _ = await scheduler.interrupt(token: spec.token)
        guard case .envelope(let env) = await scheduler.waitForResult(token: spec.token, timeout: .seconds(20)) else {
            Issue.record("no envelope")
            return
        }
        var rows: [(repetition: Int, reason: Value?, rtt: Value?, packets: Value?)] = []
        for (i, m) in env.contents.enumerated() {
            guard case .result(let r) = m else { continue }
            for row in 0..<r.values.rowCount {
                rows.append((i, r.values.value("flow.end.reason", row: row), r.values.value("rtt.us", row: row),
                             r.values.value("packets.ip", row: row)))
            }
        }
        #expect(env.contents.count >= 2, "\(env.contents.count) repetitions")
        try #require(rows.count == 1, "\(rows.count) records: \(rows)")
        #expect(rows[0].repetition >= 1 && rows[0].reason == .string("rst"), "\(rows)")
        #expect(rows[0].rtt != nil, "the handshake of the first repetition is in the record")
        guard case .natural(let packets)? = rows[0].packets else { Issue.record("no packets"); return }
        #expect(packets >= 8, "handshake, two exchanges and the reset: \(packets) packets")
    }
}

@Suite("Cross-traffic beside an active measurement")
struct CrossTrafficTests {
    @Test("its filter leaves out ICMP and ICMPv6 echo requests and replies (and ICMP fragments), and nothing else")
    func filterLeavesOutTheProbes() async throws {
        let dir = CaptureDirectory()
        var w = TraceWriter()
        func echo(_ s: TraceWriter.IPText, _ d: TraceWriter.IPText, v6: Bool, type: UInt8) -> [UInt8] {
            var f = TraceWriter.frame(P(source: s, destination: d, proto: v6 ? 58 : 1))
            f[v6 ? 54 : 34] = type
            return f
        }
        w.append(frame: echo("10.0.0.1", "10.0.0.2", v6: false, type: 8), at: epoch)
        w.append(frame: echo("10.0.0.2", "10.0.0.1", v6: false, type: 0), at: epoch + ms)
        w.append(frame: echo("2001:db8::1", "2001:db8::2", v6: true, type: 128), at: epoch + 2 * ms)
        w.append(frame: echo("2001:db8::2", "2001:db8::1", v6: true, type: 129), at: epoch + 3 * ms)
        w.append(frame: echo("10.0.0.9", "10.0.0.1", v6: false, type: 3), at: epoch + 4 * ms)  // unreachable: counted
        // A later fragment of a large echo request: no type to read, left out too.
        var fragment = echo("10.0.0.1", "10.0.0.2", v6: false, type: 8)
        fragment[14 + 6] = 0x00; fragment[14 + 7] = 0xB9
        w.append(frame: fragment, at: epoch + 4 * ms + 500_000)
        // An IPv6 fragment of an ICMPv6 message.
        var fragment6 = TraceWriter.frame(P(source: "2001:db8::1", destination: "2001:db8::2", proto: 44))
        fragment6[54] = 58
        w.append(frame: fragment6, at: epoch + 4 * ms + 600_000)
        w.append(frame: TraceWriter.frame(P(source: "10.0.0.1", destination: "10.0.0.3", proto: 17, sourcePort: 1,
                                            destinationPort: 2, payload: 72)), at: epoch + 5 * ms)
        dir.write("x.pcap", w.bytes)
        guard case .result(let r) = try await meterFile(.counters, dir, "x.pcap", filter: CaptureService.crossTrafficFilter)
        else { Issue.record("no result"); return }
        #expect(r.values.value("packets.ip", row: 0) == .natural(2))
        #expect(r.values.value("octets.ip", row: 0) == .natural(28 + 100))
    }

    @Test("the route to 127.0.0.1 leaves by lo")
    func egress() {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        let name = withUnsafeBytes(of: &a) { Route.interface(to: $0.baseAddress!, length: UInt32(MemoryLayout<sockaddr_in>.size)) }
        #expect(name == "lo")
    }
}

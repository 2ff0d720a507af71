import CSupport
import MPlane
@testable import MPlanePing
import MPlaneTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A UDP socket on 127.0.0.1 standing in for an ICMP socket: the same send and receive calls
/// work on it, with kernel timestamps and an error queue, and no privilege.
private final class UDPSocket {
    let fd: Int32
    let port: UInt16
    init(errors: Bool = false, timestamps: Bool = false) throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(fd >= 0)
        var one: Int32 = 1
        if errors { try #require(setsockopt(fd, Int32(IPPROTO_IP), IP_RECVERR, &one, 4) == 0) }
        if timestamps {
            let flags = csupport_icmp_timestamps(fd, 1)
            try #require(flags == Int32(CSUPPORT_TS_RX_KERNEL) | Int32(CSUPPORT_TS_TX_KERNEL))
        }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Bool in
                bind(fd, p, len) == 0 && getsockname(fd, p, &len) == 0
            }
        }
        try #require(bound)
        self.fd = fd
        port = UInt16(bigEndian: a.sin_port)
    }
    deinit { close(fd) }

    func send(_ bytes: [UInt8], to port: UInt16) {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        a.sin_port = port.bigEndian
        let n = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(n == bytes.count)
    }

    /// Every datagram waiting, in order.
    func receiveAll() -> [[UInt8]] {
        var out: [[UInt8]] = []
        var buf = [UInt8](repeating: 0, count: 2048)
        while true {
            let n = recv(fd, &buf, buf.count, Int32(MSG_DONTWAIT))
            if n < 0 { return out }
            out.append(Array(buf[0..<n]))
        }
    }
}

/// An IPv4 packet of ICMP `message` from `source` to 127.0.0.1, as a raw socket reads it.
private func ipv4(_ message: [UInt8], from source: UInt32 = 0x7F00_0001, to destination: UInt32 = 0x7F00_0001) -> [UInt8] {
    let total = 20 + message.count
    var h: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 1, 0, 0, 64, 1, 0, 0]
    for a in [source, destination] { h += [UInt8(a >> 24), UInt8(a >> 16 & 0xFF), UInt8(a >> 8 & 0xFF), UInt8(a & 0xFF)] }
    return h + message
}

/// An echo message (type 8 request, 0 reply) carrying our stamp.
private func echo(type: UInt8, identifier: UInt16, probe: UInt32, cookie: UInt32) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 8 + 16)
    b.withUnsafeMutableBytes {
        ICMP.writeEchoRequest(into: $0, family: .v4, identifier: identifier, sequence: UInt16(truncatingIfNeeded: probe),
                              cookie: cookie, probe: probe)
    }
    b[0] = type
    return b
}

@Suite("Batched and one-by-one system calls match replies alike (recorded traffic over UDP, no privilege)")
struct PingBatchTests {
    static let identifier: UInt16 = 0x1234
    static let cookie: UInt32 = 0xC0FF_EE01
    /// Probe k goes to target k % 6. Target 2 (127.0.0.2) has no listener on the port: its
    /// probes come back as port unreachable through the error queue (4 per run, well within
    /// the kernel's ICMP rate limit). Target 4 is the loopback broadcast, which a socket
    /// without SO_BROADCAST may not send to: a send fails in the middle of a batch.
    static let targets = ["127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.1", "127.255.255.255", "127.0.0.1"]
        .map { IPAddress($0)! }
    static let probes = 24
    static func answered(_ p: Int) -> Bool { [0, 1, 3, 5].contains(p % 6) }

    struct Outcome {
        var rows: [String]
        var statistics: [String]
        var foreign, stray: Int
        var sourceCounts: [Int]
        var datagrams: [[UInt8]]
        /// The most datagrams one send call and one receive call moved.
        var largestSend, largestRead: Int
    }

    /// Sends the probes through `batch`, replays the same recorded replies, reads them
    /// through `batch`, and returns what came out.
    func run(batch: Int) throws -> Outcome {
        let probeSocket = try UDPSocket(errors: true, timestamps: true)
        let network = try UDPSocket()   // 127.0.0.1: where the probes to 127.0.0.1 land
        let replies = try UDPSocket()
        var tracker = PingTracker(targets: Self.targets, identifier: Self.identifier, cookie: Self.cookie,
                                  timeout: 1_000_000_000, inFlight: 64)
        var sink = Recorder()
        let sender = try ProbeSender(fd: probeSocket.fd, family: .v4, identifier: Self.identifier,
                                     destinations: Self.targets, port: network.port, payload: 16, batch: batch)
        #expect(sender.batch == batch)
        var k = 0
        var calls = 0
        while k < Self.probes {
            let m = min(sender.batch, Self.probes - k)
            let first = k
            let due = csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC))
            sender.send(count: m, target: { (first + $0) % Self.targets.count }, due: { _ in due }, tracker: &tracker,
                        sink: &sink) { j, _, e in
                #expect(e == ((first + j) % 6 == 4 ? EACCES : 0), "probe \(first + j): errno \(e)")
            }
            k += m
            calls += 1
        }
        #expect(calls == (Self.probes + batch - 1) / batch)
        let datagrams = network.receiveAll()

        // The recorded traffic: a reply for every probe to 127.0.0.1 but probe 5, probe 0's
        // twice, an unreachable quoting probe 9 from a router, a reply with another program's
        // identifier, one with another run's cookie, one for a probe never sent, and a runt.
        var traffic: [[UInt8]] = []
        for p in 0..<Self.probes where Self.answered(p) && p != 5 && p != 9 {
            traffic.append(ipv4(echo(type: 0, identifier: Self.identifier, probe: UInt32(p), cookie: Self.cookie)))
        }
        traffic.append(ipv4(echo(type: 0, identifier: Self.identifier, probe: 0, cookie: Self.cookie)))
        let quoted = ipv4(echo(type: 8, identifier: Self.identifier, probe: 9, cookie: Self.cookie), from: 0x7F00_0001)
        traffic.append(ipv4([3, 1, 0, 0, 0, 0, 0, 0] + quoted, from: 0x0A63_0001))
        traffic.append(ipv4(echo(type: 0, identifier: 0x4321, probe: 3, cookie: Self.cookie)))
        traffic.append(ipv4(echo(type: 0, identifier: Self.identifier, probe: 3, cookie: 0xDEAD_BEEF)))
        traffic.append(ipv4(echo(type: 0, identifier: Self.identifier, probe: 40, cookie: Self.cookie)))
        traffic.append([0x45, 0, 0, 10])
        for t in traffic { replies.send(t, to: probeSocket.port) }

        // On loopback all of it is queued by the time the sends return; read until 50 ms
        // pass with nothing more (bounded).
        let reader = try ReplyReader(family: .v4, withIPHeader: true, batch: batch)
        for _ in 0..<200 {
            reader.drain(fd: probeSocket.fd, errorQueue: true, tracker: &tracker, sink: &sink)
            reader.drain(fd: probeSocket.fd, errorQueue: false, tracker: &tracker, sink: &sink)
            if csupport_poll_in(probeSocket.fd, 50_000_000) == 0 { break }
        }
        // Probes 0-4 retire; 5 waits for its timeout, and the rest behind it.
        #expect(sink.probes.count == 5)
        tracker.expire(now: csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC)) + 2_000_000_000, sink: &sink)
        #expect(!tracker.hasOutstanding)

        for p in sink.probes where p.loss == nil {
            #expect(p.roundTrip.map { $0 >= 0 && $0 < 1_000_000_000 } == true, "\(p)")
        }
        return Outcome(
            // Not whether a probe went out late: that is this machine's scheduling, not how
            // replies are matched (a loaded run marked a batched probe late once).
            rows: sink.probes.map { "\($0.probe) \($0.target) \($0.loss.map { "\($0)" } ?? "reply") \($0.source.name)" },
            statistics: tracker.statistics.map { "\($0.sent) \($0.received) \($0.lost) \($0.duplicates) \($0.errors)" },
            foreign: tracker.foreign, stray: tracker.stray, sourceCounts: tracker.sourceCounts, datagrams: datagrams,
            largestSend: sender.largestCall, largestRead: reader.largestRead)
    }

    @Test func batchedMatchesOneByOne() throws {
        let single = try run(batch: 1)
        // What the recorded traffic must come to, one call per datagram.
        #expect(single.rows.count == Self.probes)
        let sequences: [Int] = single.datagrams.map { Int($0[6]) << 8 | Int($0[7]) }
        let toLoopback: [Int] = (0..<Self.probes).filter { Self.answered($0) }
        #expect(sequences == toLoopback, "the probes to 127.0.0.1 arrive, in order")
        for (i, row) in single.rows.enumerated() {
            let expected = i % 6 == 2 ? "icmpError(type: 3, code: 3)" : i % 6 == 4 ? "sendFailed(errno: \(EACCES))" :
                i == 5 ? "timeout" : i == 9 ? "icmpError(type: 3, code: 1)" : "reply kernel"
            #expect(row.hasPrefix("\(i) \(i % 6) \(expected)"), "\(row)")
        }
        #expect(single.statistics == ["4 4 0 1 0", "4 4 0 0 0", "4 0 4 0 4", "4 3 1 0 1", "4 0 4 0 4", "4 3 1 0 0"])
        #expect(single.foreign == 2 && single.stray == 1)
        // Every answered probe was timed by the kernel at both ends: the transmit timestamps
        // from the error queue found their probes.
        #expect(single.sourceCounts[Int(TimestampSource.kernel.rawValue)] == 14, "\(single.sourceCounts)")
        #expect(single.largestSend == 1 && single.largestRead == 1)
        for batch in [7, 32] {
            let batched = try run(batch: batch)
            #expect(batched.rows == single.rows, "batch \(batch)")
            #expect(batched.statistics == single.statistics, "batch \(batch)")
            #expect(batched.foreign == single.foreign && batched.stray == single.stray, "batch \(batch)")
            #expect(batched.sourceCounts == single.sourceCounts, "batch \(batch)")
            #expect(batched.datagrams == single.datagrams, "batch \(batch): the same bytes went out")
            // The batched calls did move several datagrams at once: the probes before the
            // broadcast, and the 24 messages (20 transmit timestamps, 4 unreachables) waiting
            // together on the error queue.
            #expect(batched.largestSend >= 3 && batched.largestRead == min(batch, 24),
                    "batch \(batch): \(batched.largestSend) sent, \(batched.largestRead) read in one call")
        }
    }

    @Test func bounds() throws {
        #expect(PingBatch.clamp(0) == 1 && PingBatch.clamp(1_000) == 64)
        let s = try UDPSocket()
        // Large payloads send in smaller batches: at most 256 KiB of packets.
        let big = try ProbeSender(fd: s.fd, family: .v4, identifier: 1, destinations: [IPAddress("127.0.0.1")!],
                                  payload: PingPlan.maximumPayload, batch: 32)
        #expect(big.batch == 4)
        #expect(csupport_icmp_rx_create(0, 2048) == nil && csupport_icmp_rx_create(65, 2048) == nil)
    }
}

@Suite("Batched sends on loopback (live, needs CAP_NET_RAW)", .serialized, .enabled(if: rawSocketProblem == nil, "\(rawSocketProblem ?? "")"))
struct LiveBatchTests {
    /// Every probe of a burst (all due at once, so sent 32 to a call) and one call per
    /// datagram both come back whole: no probe lost, every one timed by the kernel at both
    /// ends, rows in send order.
    @Test(arguments: [1, 32])
    func burst(batch: Int) async throws {
        let targets = try PingService.parseTargets("127.0.0.0/26", family: .v4, limit: 256).get()
        var plan = PingPlan(family: .v4, source: addr("127.0.0.1"), targets: targets, interval: 1, rounds: 4)
        plan.socket = .raw
        plan.batch = batch
        let (report, sink) = try await ping(plan)
        #expect(report.sent == 4 * targets.count && sink.probes.count == report.sent)
        #expect(sink.probes.allSatisfy { $0.loss == nil }, "\(sink.probes.filter { $0.loss != nil }.prefix(5))")
        #expect(sink.probes.enumerated().allSatisfy { $0.element.target == $0.offset % targets.count })
        #expect(report.statistics.allSatisfy { $0.duplicates == 0 } && report.foreign == 0 && report.stray == 0)
        // All but a rare one timed by the kernel at both ends (a transmit timestamp matched to
        // the wrong probe of a call would leave a whole call's worth without).
        #expect(report.sourceCounts[Int(TimestampSource.kernel.rawValue)] >= report.sent - report.sent / 100,
                "\(report.sourceCounts)")
        #expect(batch == 1 ? report.largestSend == 1 : report.largestSend > 1, "\(report.largestSend) in one call")
    }

    /// Below 1 ms between probes the loop does not wake for replies; it reads them after its
    /// sends, every 500 µs of probes. None may be lost or left unread until the end, with
    /// the spin or without it.
    @Test(arguments: [Int64(0), PingEngine.defaultSpinLead])
    func deferredReadsLoseNothing(spinLead: Int64) async throws {
        let targets = try PingService.parseTargets("127.0.0.0/26", family: .v4, limit: 256).get()
        // 62 targets at 50 ms: 806 µs between probes, reads deferred.
        var plan = PingPlan(family: .v4, source: addr("127.0.0.1"), targets: targets, interval: 50 * ms, rounds: 10)
        plan.socket = .raw
        plan.spinLead = spinLead
        let (report, sink) = try await ping(plan)
        #expect(report.sent == 10 * targets.count && sink.probes.allSatisfy { $0.loss == nil })
        #expect(report.sourceCounts[Int(TimestampSource.kernel.rawValue)] == report.sent, "\(report.sourceCounts)")
        // Read as they came, not at the end of the half-second run (the window is 500 µs;
        // the bound leaves room for a descheduled thread on a loaded machine).
        #expect(report.ownError.readDelay.count == report.sent)
        #expect(report.ownError.readDelay.maximum < 100 * ms, "\(report.ownError.readDelay.maximum) ns")
    }
}

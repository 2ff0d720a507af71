// The ping engine's two system-call paths, each one-by-one or batched: sending the probes that
// are due (`sendto`, or `sendmmsg` for several at once) and reading replies, ICMP errors and
// transmit timestamps (`recvmsg`, or `recvmmsg`). Batched and one-by-one hand every datagram to
// the same code, so they match replies identically (tested in PingBatchTests on recorded
// traffic). All buffers are allocated when the measurement starts.
import MPlane
import CSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How many datagrams one call moves, 1...``PingBatch/maximum``.
enum PingBatch {
    static let maximum = Int(CSUPPORT_ICMP_BATCH_MAX)
    static func clamp(_ n: Int) -> Int { Swift.min(maximum, Swift.max(1, n)) }
}

/// Writes and sends echo requests on one socket, recording each in the tracker as sent or
/// failed.
final class ProbeSender {
    let fd: Int32
    let family: IPAddress.Family
    let identifier: UInt16
    let batch: Int
    let length: Int
    private let stride: Int
    private let packets: UnsafeMutableRawBufferPointer
    private var addresses: [sockaddr_storage]
    private var lengths: [socklen_t]
    private var slotTargets: [UInt32]
    /// Send calls that sent something, and the most datagrams one of them sent.
    private(set) var calls = 0
    private(set) var largestCall = 0

    /// - Parameters:
    ///   - destinations: the targets' addresses; `port` is written into each (0 for ICMP;
    ///     tests send the same datagrams over UDP).
    ///   - payload: echo payload bytes.
    ///   - batch: the most datagrams per call (1: one `sendto` each).
    init(fd: Int32, family: IPAddress.Family, identifier: UInt16, destinations: [IPAddress], port: UInt16 = 0,
         payload: Int, batch: Int) throws(PingError) {
        self.fd = fd
        self.family = family
        self.identifier = identifier
        length = 8 + payload
        stride = (length + 7) & ~7
        // Large payloads are sent in smaller batches: at most 256 KiB of packets are kept.
        self.batch = Swift.max(1, Swift.min(PingBatch.clamp(batch), (256 << 10) / stride))
        packets = UnsafeMutableRawBufferPointer.allocate(byteCount: stride * self.batch, alignment: 8)
        addresses = [sockaddr_storage](repeating: sockaddr_storage(), count: destinations.count)
        lengths = [socklen_t](repeating: 0, count: destinations.count)
        slotTargets = [UInt32](repeating: 0, count: self.batch)
        for i in destinations.indices {
            lengths[i] = SocketAddress.write(destinations[i], into: &addresses[i])
            if port != 0 { SocketAddress.setPort(port, in: &addresses[i]) }
        }
        for j in 0..<self.batch { ICMP.fillPattern(slot(j)) }
    }

    deinit { packets.deallocate() }

    private func slot(_ j: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: packets[j * stride ..< j * stride + length])
    }

    /// Errors the kernel reports on a datagram socket for an earlier packet's ICMP error.
    static func mayBeEarlierProbesError(_ e: Int32) -> Bool {
        e == EHOSTUNREACH || e == ENETUNREACH || e == EHOSTDOWN || e == ECONNREFUSED || e == EPROTO || e == EMSGSIZE
    }

    /// Sends the next `count` probes (1...``batch``): probe j goes to target `target(j)` and
    /// was due at `due(j)` (monotonic). Each is recorded in `tracker`, and `report(j,
    /// lateness, errno)` is called for it in order (errno 0 when it went).
    func send<S: PingSink>(count: Int, target: (Int) -> Int, due: (Int) -> Int64, tracker: inout PingTracker,
                           sink: inout S, report: (_ index: Int, _ lateness: Int64, _ errno: Int32) -> Void) {
        precondition(count >= 1 && count <= batch)
        let first = tracker.nextProbe
        for j in 0..<count {
            slotTargets[j] = UInt32(target(j))
            let probe = first &+ UInt32(j)
            ICMP.writeEchoRequest(into: slot(j), family: family, identifier: identifier,
                                  sequence: UInt16(truncatingIfNeeded: probe), cookie: tracker.cookie, probe: probe)
        }
        var j = 0
        var retried = -1
        while j < count {
            let real = csupport_clock_ns(Int32(CSUPPORT_CLOCK_REALTIME))
            let mono = csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC))
            let r: Int
            if count - j == 1 {
                let t = Int(slotTargets[j])
                let n = addresses.withUnsafeBufferPointer { a in
                    UnsafeRawPointer(a.baseAddress! + t).withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        csupport_icmp_send(fd, packets.baseAddress! + j * stride, length, $0, lengths[t])
                    }
                }
                r = n < 0 ? Int(n) : 1
            } else {
                r = Int(addresses.withUnsafeBufferPointer { a in
                    lengths.withUnsafeBufferPointer { l in
                        slotTargets.withUnsafeBufferPointer { s in
                            csupport_icmp_send_batch(fd, packets.baseAddress! + j * stride, stride, length, a.baseAddress!,
                                                     l.baseAddress!, s.baseAddress! + j, UInt32(count - j))
                        }
                    }
                })
            }
            if r <= 0 {
                let e = r < 0 ? Int32(-r) : EAGAIN
                if Self.mayBeEarlierProbesError(e), retried != j {
                    // An ICMP error for an earlier probe (another destination's unreachable)
                    // is also handed to the next send on the socket, which then fails though
                    // it did nothing wrong; that send consumed it, so this one is sent again.
                    // (The error reached its own probe through the error queue.) A
                    // destination that is itself unreachable fails again and is counted.
                    retried = j
                    continue
                }
                tracker.sendFailed(target: Int(slotTargets[j]), real: real, errno: e, sink: &sink)
                report(j, mono &- due(j), e)
                j += 1
            } else {
                // One call sent r datagrams one after another, between the times read before
                // and after it. Each is recorded as sent at the time before (a lower bound:
                // a round trip timed in user space is never too short, and the kernel's
                // transmit timestamp, which is not before it, times it exactly); the send
                // schedule error counts the first to the time before and the others to the
                // time after (an upper bound: lateness is never understated).
                let after = r > 1 ? csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC)) : mono
                for i in j ..< j + r {
                    let lateness = (i == j ? mono : after) &- due(i)
                    tracker.sent(target: Int(slotTargets[i]), mono: mono, real: real, late: lateness > OwnError.lateBound,
                                 sharesCall: i + 1 < j + r, sink: &sink)
                    report(i, lateness, 0)
                }
                calls += 1
                largestCall = Swift.max(largestCall, r)
                j += r
            }
        }
    }
}

/// Reads one socket's replies and ICMP errors, or its error queue (ICMP errors of a datagram
/// socket, transmit timestamps), into a tracker.
final class ReplyReader {
    let family: IPAddress.Family
    /// Raw IPv4 sockets deliver the IP header.
    let withIPHeader: Bool
    let batch: Int
    private let records: UnsafeMutablePointer<csupport_icmp_rx>
    /// How long replies waited between their kernel timestamp and our read.
    var readDelays = SelfSample()
    /// Receive calls that returned something, and the most messages one of them returned.
    private(set) var calls = 0
    private(set) var largestRead = 0
    /// The most messages one drain reads: a flood of replies (anyone who sees a probe can
    /// send them with its identifier) cannot hold the sending loop here; what is left
    /// keeps the socket readable for the next pass.
    var perDrain: Int { Swift.max(64, batch * 8) }

    /// The most bytes kept of each datagram: an echo header, our stamp and any IP and ICMP
    /// error headers before them fit many times over.
    static let recordBytes = 2048

    init(family: IPAddress.Family, withIPHeader: Bool, batch: Int) throws(PingError) {
        self.family = family
        self.withIPHeader = withIPHeader
        self.batch = PingBatch.clamp(batch)
        guard let r = csupport_icmp_rx_create(self.batch, Self.recordBytes) else {
            throw PingError(.resources, "out of memory for the receive buffers")
        }
        records = r
    }

    deinit { csupport_icmp_rx_destroy(records) }

    /// Reads what waits on `fd` (its error queue with `errorQueue`) without blocking, until
    /// the queue is empty or ``perDrain`` messages are read.
    func drain<S: PingSink>(fd: Int32, errorQueue: Bool, tracker: inout PingTracker, sink: inout S) {
        var failures = 0
        var read = 0
        while read < perDrain {
            let got: Int
            if batch == 1 {
                let r = csupport_icmp_recv(fd, records, errorQueue ? 1 : 0)
                got = r < 0 ? Int(r) : 1
            } else {
                got = Int(csupport_icmp_recv_batch(fd, records, UInt32(batch), errorQueue ? 1 : 0))
            }
            if got < 0 {
                if -got == Int(EAGAIN) || -got == Int(EWOULDBLOCK) || -got == Int(EINTR) { return }
                // A pending socket error is reported once; anything that persists is left
                // for the next wake-up rather than spun on.
                failures += 1
                if failures > 8 { return }
                continue
            }
            calls += 1
            largestRead = Swift.max(largestRead, got)
            read += got
            let nowMono = csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC))
            let nowReal = csupport_clock_ns(Int32(CSUPPORT_CLOCK_REALTIME))
            for i in 0..<got {
                handle(records + i, errorQueue: errorQueue, nowMono: nowMono, nowReal: nowReal, tracker: &tracker,
                       sink: &sink)
            }
            // Fewer than asked for: the next receive found the queue empty.
            if batch > 1 && got < batch { return }
        }
    }

    /// One received message, whichever call read it.
    private func handle<S: PingSink>(_ rx: UnsafeMutablePointer<csupport_icmp_rx>, errorQueue: Bool, nowMono: Int64,
                                     nowReal: Int64, tracker: inout PingTracker, sink: inout S) {
        let bytes = UnsafeRawBufferPointer(start: rx.pointee.buf, count: rx.pointee.len)
        let from = withUnsafeBytes(of: &rx.pointee.from) { SocketAddress.read($0.baseAddress!) }
        if errorQueue {
            guard rx.pointee.is_error != 0 else { return }
            let origin = rx.pointee.ee_origin
            if origin == 4 /* SO_EE_ORIGIN_TIMESTAMPING */ {
                if rx.pointee.kernel_ns != 0 {
                    tracker.transmitted(key: rx.pointee.ee_data, kernelReal: rx.pointee.kernel_ns)
                }
            } else if origin == 2 || origin == 3 /* SO_EE_ORIGIN_ICMP, _ICMP6 */ {
                let type = UInt8(truncatingIfNeeded: rx.pointee.ee_type)
                if ICMP.isError(type: type, family: family), let q = ICMP.parseQuotedRequest(bytes, family: family) {
                    tracker.error(type: type, code: UInt8(truncatingIfNeeded: rx.pointee.ee_code),
                                  identifier: q.identifier, sequence: q.sequence, destination: from, sink: &sink)
                }
            }
            return
        }
        guard let from else { return }
        switch ICMP.parse(bytes, family: family, withIPHeader: withIPHeader) {
        case .echoReply(let id, let seq, let stamp):
            if rx.pointee.kernel_ns != 0 { readDelays.record(nowReal &- rx.pointee.kernel_ns) }
            tracker.reply(identifier: id, sequence: seq, stamp: stamp, from: from, kernelReal: rx.pointee.kernel_ns,
                          nowMono: nowMono, nowReal: nowReal, sink: &sink)
        case .error(let type, let code, let id, let seq, let dst):
            tracker.error(type: type, code: code, identifier: id, sequence: seq, destination: dst, sink: &sink)
        case .other:
            break
        }
    }
}

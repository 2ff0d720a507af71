#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why a flow record was written.
public enum FlowEndReason: UInt8, Sendable, CustomStringConvertible {
    /// No packet for the idle timeout.
    case idle
    /// An interim record: the flow lasted the active timeout and goes on (its next record
    /// counts from here).
    case active
    /// Both FINs were sent and acknowledged.
    case fin
    /// A TCP reset.
    case rst
    /// The table was full: the least recently active flow made room, early.
    case evicted
    /// The measurement ended with the flow still open.
    case end

    public var description: String {
        switch self {
        case .idle: "idle"
        case .active: "active"
        case .fin: "fin"
        case .rst: "rst"
        case .evicted: "evicted"
        case .end: "end"
        }
    }
}

/// One bidirectional flow: the initiator (the first packet's source; for TCP, the side that
/// sent the SYN when the table first sees a SYN/ACK) is endpoint A, the responder B.
/// Direction 0 is A → B ("forward"), 1 is B → A ("reverse"). Times are nanoseconds since
/// 1970 on the packets' clock.
public struct Flow: Sendable {
    public var version: UInt8 = 0
    public var proto: UInt8 = 0
    public var aPort: UInt16 = 0, bPort: UInt16 = 0
    public var aHigh: UInt64 = 0, aLow: UInt64 = 0, bHigh: UInt64 = 0, bLow: UInt64 = 0
    /// First and last packet of this record.
    public var first: Int64 = 0, last: Int64 = 0
    public var forwardPackets: UInt64 = 0, reversePackets: UInt64 = 0
    public var forwardOctets: UInt64 = 0, reverseOctets: UInt64 = 0
    /// TCP handshake as seen at the probe: SYN (A), SYN/ACK (B), ACK (A); 0 for unseen.
    public var synTime: Int64 = 0, synAckTime: Int64 = 0, ackTime: Int64 = 0
    public var forwardRetransmitted: UInt64 = 0, reverseRetransmitted: UInt64 = 0
    public var forwardOutOfOrder: UInt64 = 0, reverseOutOfOrder: UInt64 = 0
    /// This record follows an interim record of the same flow.
    public var continued = false

    // TCP sequence state per direction.
    var nextSeq: (UInt32, UInt32) = (0, 0)
    var holeStart: (UInt32, UInt32) = (0, 0)
    var holeEnd: (UInt32, UInt32) = (0, 0)
    /// When the latest gap opened, per direction.
    var holeTime: (Int64, Int64) = (0, 0)
    var finSeq: (UInt32, UInt32) = (0, 0)
    var synAckSeq: UInt32 = 0
    /// Bit 0/1: direction 0/1 has a sequence number; 2/3: a FIN; 4/5: its FIN acknowledged.
    var tcpBits: UInt8 = 0

    // Table bookkeeping.
    var hash: UInt32 = 0
    var seenPeriod: UInt32 = 0
    var activeStart: Int64 = 0
    var idlePrev: Int32 = -1, idleNext: Int32 = -1

    public init() {}

    /// The handshake's round-trip time SYN → ACK (nanoseconds), if the table saw all three.
    public var handshakeRTT: Int64? { ackTime > 0 && synTime > 0 ? ackTime - synTime : nil }
    /// SYN → SYN/ACK: the round trip from the probe to the responder and back.
    public var responderRTT: Int64? { ackTime > 0 && synTime > 0 ? synAckTime - synTime : nil }
    /// SYN/ACK → ACK: the round trip from the probe to the initiator and back.
    public var initiatorRTT: Int64? { ackTime > 0 && synAckTime > 0 ? ackTime - synAckTime : nil }
    public var packets: UInt64 { forwardPackets + reversePackets }
    public var octets: UInt64 { forwardOctets + reverseOctets }
}

/// What the table counts besides flows.
public struct FlowTableCounters: Sendable, Equatable {
    /// Flows exported early because the table was full.
    public var evicted: UInt64 = 0
    /// Flows created.
    public var created: UInt64 = 0
    public init() {}
}

/// A bidirectional flow table allocated once at a fixed capacity: flows live in a slab,
/// found through an open-addressed index (linear probing, backward-shift deletion), and are
/// threaded on a list by last packet so that idle timeouts, and the least recently active
/// flow, are found at its head in O(1). No allocation per packet.
///
/// Timeouts follow the packets' timestamps (`advance(to:)` moves time on without a packet,
/// for a live capture on a quiet link). The idle timeout ends a flow as soon as time passes
/// its last packet + the timeout. The active timeout cuts a flow's record exactly at each
/// multiple of the timeout from its first packet; the interim record is written with the
/// flow's first packet past the cut (a flow that falls silent after it ends with its idle
/// record instead, so no record is marked as continued that is not). Not thread-safe: one
/// capture thread owns it.
public final class FlowTable {
    public typealias Export = (Flow, FlowEndReason) -> Void

    public let capacity: Int
    /// Nanoseconds.
    public let idleTimeout: Int64, activeTimeout: Int64
    public private(set) var counters = FlowTableCounters()
    /// Flows in the table.
    public private(set) var count = 0
    /// Distinct flows that had a packet since the last `nextPeriod()`.
    public private(set) var flowsInPeriod: UInt64 = 0

    private let flows: UnsafeMutablePointer<Flow>
    /// hash << 32 | (flow index + 1); 0 is empty.
    private let index: UnsafeMutablePointer<UInt64>
    private let mask: Int
    private var freeHead: Int32 = -1
    private var used: Int32 = 0
    private var idleHead: Int32 = -1, idleTail: Int32 = -1
    private var period: UInt32 = 1
    private let export: Export
    /// The latest time the table has seen.
    private var now: Int64 = .min
    /// The hash's random key.
    private let key = UInt64.random(in: 0...UInt64.max)

    /// `capacity` flows (at least 16), timeouts in seconds; nil when the memory cannot be had.
    public init?(capacity: Int, idleTimeout: Int64 = 300, activeTimeout: Int64 = 1800, export: @escaping Export) {
        self.capacity = Swift.max(16, capacity)
        self.idleTimeout = idleTimeout * 1_000_000_000
        self.activeTimeout = activeTimeout * 1_000_000_000
        self.export = export
        var slots = 16
        while slots < self.capacity * 2 { slots <<= 1 }
        mask = slots - 1
        // Flow is a plain value type: its slab is written before it is read, and neither
        // array is touched here, so memory becomes resident as flows arrive (calloc's pages
        // come zeroed from the kernel).
        guard let slab = calloc(self.capacity, MemoryLayout<Flow>.stride) else { return nil }
        guard let slots = calloc(slots, 8) else { free(slab); return nil }
        flows = slab.bindMemory(to: Flow.self, capacity: self.capacity)
        index = slots.bindMemory(to: UInt64.self, capacity: mask + 1)
    }

    deinit {
        free(flows)
        free(index)
    }

    /// Bytes the table holds (flows and index).
    public var memoryBytes: Int { capacity * MemoryLayout<Flow>.stride + (mask + 1) * 8 }

    // MARK: Hashing

    @inline(__always) private static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 33)) &* 0xff51afd7ed558ccd
        z = (z ^ (z >> 33)) &* 0xc4ceb9fe1a85ec53
        return z ^ (z >> 33)
    }

    /// One endpoint's hash. The port is mixed on its own before it meets the address: an
    /// address and a port that grow together (a NAT pool, a scan) would cancel out in a
    /// plain XOR, and every such flow would share one hash.
    ///
    /// Each table has a random key in its hash, so that nobody can choose in advance packets
    /// whose flows pile into one run of the index (a hash-flooding attack on the capture).
    @inline(__always) private func endpoint(_ high: UInt64, _ low: UInt64, _ port: UInt16) -> UInt64 {
        Self.mix(low ^ key ^ Self.mix(high ^ (UInt64(port) &+ 1) &* 0x9E37_79B9_7F4A_7C15))
    }

    /// The same for both directions of a flow.
    @inline(__always) private func hash(_ d: DecodedPacket) -> UInt32 {
        let s = endpoint(d.sourceHigh, d.sourceLow, d.sourcePort)
        let t = endpoint(d.destinationHigh, d.destinationLow, d.destinationPort)
        return UInt32(truncatingIfNeeded: Self.mix((s &+ t) ^ UInt64(d.proto) << 8 ^ UInt64(d.version)))
    }

    /// 0 if the packet goes A → B, 1 if B → A, -1 if it is not this flow's.
    @inline(__always) private static func direction(_ f: UnsafeMutablePointer<Flow>, _ d: DecodedPacket) -> Int {
        guard f.pointee.proto == d.proto && f.pointee.version == d.version else { return -1 }
        if f.pointee.aLow == d.sourceLow && f.pointee.bLow == d.destinationLow && f.pointee.aHigh == d.sourceHigh
            && f.pointee.bHigh == d.destinationHigh && f.pointee.aPort == d.sourcePort && f.pointee.bPort == d.destinationPort {
            return 0
        }
        if f.pointee.aLow == d.destinationLow && f.pointee.bLow == d.sourceLow && f.pointee.aHigh == d.destinationHigh
            && f.pointee.bHigh == d.sourceHigh && f.pointee.aPort == d.destinationPort && f.pointee.bPort == d.sourcePort {
            return 1
        }
        return -1
    }

    // MARK: Packets

    /// Accounts one decoded IP packet stamped `stamp` (nanoseconds since 1970). The table's
    /// time never runs backwards: a packet stamped before the latest one counts at the
    /// latest's time for the record and the timeouts (so the recency list stays in order),
    /// while the handshake and reordering are timed on the stamps themselves.
    @inline(__always)
    public func add(_ d: DecodedPacket, at stamp: Int64) {
        let time = stamp < now ? now : stamp
        now = time
        advance(to: time)
        let h = hash(d)
        var slot = Int(h) & mask
        var found: Int32 = -1
        var dir = 0
        while true {
            let v = index[slot]
            if v == 0 { break }
            if UInt32(truncatingIfNeeded: v >> 32) == h {
                let i = Int32(truncatingIfNeeded: v & 0xFFFF_FFFF) - 1
                let r = Self.direction(flows + Int(i), d)
                if r >= 0 { found = i; dir = r; break }
            }
            slot = (slot + 1) & mask
        }
        if found < 0 {
            found = create(d, hash: h, slot: slot, at: time)
            // A first packet that is a SYN/ACK: its destination sent the SYN.
            if d.proto == 6 && d.tcpFlags & 0x12 == 0x12 { swapEnds(flows + Int(found)) ; dir = 1 }
        } else {
            touch(found)
            let f = flows + Int(found)
            if time >= f.pointee.activeStart + activeTimeout {
                interim(found, at: f.pointee.activeStart + (time - f.pointee.activeStart) / activeTimeout * activeTimeout)
            }
        }
        let f = flows + Int(found)
        if f.pointee.first == 0 { f.pointee.first = time }
        f.pointee.last = time
        if f.pointee.seenPeriod != period {
            f.pointee.seenPeriod = period
            flowsInPeriod += 1
        }
        if dir == 0 {
            f.pointee.forwardPackets += 1
            f.pointee.forwardOctets += UInt64(d.ipLength)
        } else {
            f.pointee.reversePackets += 1
            f.pointee.reverseOctets += UInt64(d.ipLength)
        }
        if d.proto == 6 && d.hasPorts {
            if let reason = tcp(f, d, dir: dir, at: stamp) { remove(found, reason: reason) }
        }
    }

    private func swapEnds(_ f: UnsafeMutablePointer<Flow>) {
        let v = f.pointee
        f.pointee.aHigh = v.bHigh; f.pointee.aLow = v.bLow; f.pointee.aPort = v.bPort
        f.pointee.bHigh = v.aHigh; f.pointee.bLow = v.aLow; f.pointee.bPort = v.aPort
    }

    /// Segments that fill a gap within this long after it opened (or within the handshake
    /// RTT, if longer) are out of order; later ones are retransmissions.
    static let reorderWindow: Int64 = 3_000_000

    @inline(__always) private static func after(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) > 0 }

    /// TCP state: handshake times, retransmissions and reordering, the close. The reason the
    /// flow ends with this packet, or nil.
    @inline(__always)
    private func tcp(_ f: UnsafeMutablePointer<Flow>, _ d: DecodedPacket, dir: Int, at time: Int64) -> FlowEndReason? {
        let flags = d.tcpFlags
        if flags & 0x04 != 0 { return .rst }
        let syn = flags & 0x02 != 0, ack = flags & 0x10 != 0, fin = flags & 0x01 != 0
        // Handshake: a repeated SYN (or SYN/ACK) restarts its leg, so a lost one does not
        // add its retransmission timeout to the figure.
        if f.pointee.ackTime == 0 {
            if syn && !ack && dir == 0 {
                f.pointee.synTime = time
                f.pointee.synAckTime = 0
            } else if syn && ack && dir == 1 && f.pointee.synTime > 0 {
                f.pointee.synAckTime = time
                f.pointee.synAckSeq = d.sequence
            } else if !syn && ack && dir == 0 && f.pointee.synAckTime > 0 && d.acknowledgement == f.pointee.synAckSeq &+ 1 {
                f.pointee.ackTime = time
            }
        }
        // Sequence space: what the segment occupies (SYN and FIN count one each).
        let length = d.tcpPayload &+ (syn ? 1 : 0) &+ (fin ? 1 : 0)
        if length > 0 {
            let seqBit: UInt8 = dir == 0 ? 1 : 2
            let end = d.sequence &+ length
            var next = dir == 0 ? f.pointee.nextSeq.0 : f.pointee.nextSeq.1
            var hs = dir == 0 ? f.pointee.holeStart.0 : f.pointee.holeStart.1
            var he = dir == 0 ? f.pointee.holeEnd.0 : f.pointee.holeEnd.1
            var opened = dir == 0 ? f.pointee.holeTime.0 : f.pointee.holeTime.1
            var retransmitted = false, reordered = false
            if f.pointee.tcpBits & seqBit == 0 {
                f.pointee.tcpBits |= seqBit
                next = end
            } else if d.sequence == next {
                next = end
            } else if Self.after(d.sequence, next) {
                // A gap: something before this segment is missing (or comes later).
                hs = next
                he = d.sequence
                opened = time
                next = end
            } else if hs != he && !Self.after(hs, d.sequence) && Self.after(he, d.sequence) {
                // Inside the latest gap. Soon after it opened, it was overtaken on the way
                // (out of order); later, it was sent again (a retransmission), as tshark
                // tells them apart: within max(3 ms, the handshake RTT).
                let rtt = f.pointee.ackTime > 0 ? f.pointee.ackTime - f.pointee.synTime : 0
                if time &- opened <= Swift.max(Self.reorderWindow, rtt) { reordered = true } else { retransmitted = true }
                // The gap shrinks only from its edges: a segment in its middle leaves both
                // sides missing.
                if d.sequence == hs { hs = Self.after(end, he) ? he : end } else if end == he { he = d.sequence }
            } else if d.tcpPayload <= 1 && d.sequence &+ 1 == next && !syn && !fin {
                // A keep-alive or zero-window probe: one old byte, or none, on purpose.
            } else {
                retransmitted = true
                if Self.after(end, next) { next = end }
            }
            if dir == 0 {
                f.pointee.nextSeq.0 = next; f.pointee.holeStart.0 = hs; f.pointee.holeEnd.0 = he; f.pointee.holeTime.0 = opened
                if retransmitted { f.pointee.forwardRetransmitted += 1 }
                if reordered { f.pointee.forwardOutOfOrder += 1 }
            } else {
                f.pointee.nextSeq.1 = next; f.pointee.holeStart.1 = hs; f.pointee.holeEnd.1 = he; f.pointee.holeTime.1 = opened
                if retransmitted { f.pointee.reverseRetransmitted += 1 }
                if reordered { f.pointee.reverseOutOfOrder += 1 }
            }
        }
        if fin {
            let finSeq = d.sequence &+ d.tcpPayload
            if dir == 0 { f.pointee.finSeq.0 = finSeq } else { f.pointee.finSeq.1 = finSeq }
            f.pointee.tcpBits |= dir == 0 ? 4 : 8
        }
        // The other side's FIN acknowledged by this segment.
        if ack {
            let other = 1 - dir
            let otherFin: UInt8 = other == 0 ? 4 : 8
            let otherSeq = other == 0 ? f.pointee.finSeq.0 : f.pointee.finSeq.1
            if f.pointee.tcpBits & otherFin != 0 && d.acknowledgement == otherSeq &+ 1 {
                f.pointee.tcpBits |= other == 0 ? 16 : 32
            }
        }
        return f.pointee.tcpBits & 48 == 48 ? .fin : nil
    }

    // MARK: Time

    /// Exports the flows whose idle timeout has passed at `time`.
    @inline(__always)
    public func advance(to time: Int64) {
        if time > now { now = time }
        while idleHead >= 0 && flows[Int(idleHead)].last + idleTimeout <= time {
            remove(idleHead, reason: .idle)
        }
    }

    /// Starts a new counting period (for `flowsInPeriod`).
    public func nextPeriod() {
        period &+= 1
        if period == 0 { period = 1 }
        flowsInPeriod = 0
    }

    /// Exports every flow still open (the measurement ends).
    public func flush(reason: FlowEndReason = .end) {
        while idleHead >= 0 { remove(idleHead, reason: reason) }
    }

    // MARK: Slab and lists

    private func create(_ d: DecodedPacket, hash: UInt32, slot: Int, at time: Int64) -> Int32 {
        var slot = slot
        if count == capacity {
            // Full: the least recently active flow goes early. Its removal may shift the index,
            // so the free slot for the new flow is searched again.
            counters.evicted += 1
            remove(idleHead, reason: .evicted)
            slot = Int(hash) & Int(mask)
            while index[slot] != 0 { slot = (slot + 1) & mask }
        }
        let i: Int32
        if freeHead >= 0 {
            i = freeHead
            freeHead = flows[Int(i)].idleNext
        } else {
            i = used
            used += 1
        }
        var f = Flow()
        f.version = d.version
        f.proto = d.proto
        f.aHigh = d.sourceHigh; f.aLow = d.sourceLow; f.aPort = d.sourcePort
        f.bHigh = d.destinationHigh; f.bLow = d.destinationLow; f.bPort = d.destinationPort
        f.hash = hash
        f.activeStart = time
        flows[Int(i)] = f
        index[slot] = UInt64(hash) << 32 | UInt64(UInt32(i) + 1)
        count += 1
        counters.created += 1
        linkIdle(i)
        return i
    }

    @inline(__always) private func linkIdle(_ i: Int32) {
        flows[Int(i)].idlePrev = idleTail
        flows[Int(i)].idleNext = -1
        if idleTail >= 0 { flows[Int(idleTail)].idleNext = i } else { idleHead = i }
        idleTail = i
    }

    @inline(__always) private func unlinkIdle(_ i: Int32) {
        let p = flows[Int(i)].idlePrev, n = flows[Int(i)].idleNext
        if p >= 0 { flows[Int(p)].idleNext = n } else { idleHead = n }
        if n >= 0 { flows[Int(n)].idlePrev = p } else { idleTail = p }
    }

    /// Moves a flow to the idle list's tail (most recently active).
    @inline(__always) private func touch(_ i: Int32) {
        if idleTail == i { return }
        unlinkIdle(i)
        linkIdle(i)
    }

    /// Writes an interim record and starts the flow's next record at `time`.
    private func interim(_ i: Int32, at time: Int64) {
        let f = flows + Int(i)
        if f.pointee.packets > 0 { export(f.pointee, .active) }
        f.pointee.continued = true
        f.pointee.first = 0
        f.pointee.forwardPackets = 0; f.pointee.reversePackets = 0
        f.pointee.forwardOctets = 0; f.pointee.reverseOctets = 0
        f.pointee.forwardRetransmitted = 0; f.pointee.reverseRetransmitted = 0
        f.pointee.forwardOutOfOrder = 0; f.pointee.reverseOutOfOrder = 0
        f.pointee.activeStart = time
    }

    /// Exports a flow (unless its record is empty: an interim record just took it all) and
    /// frees its place.
    private func remove(_ i: Int32, reason: FlowEndReason) {
        let f = flows + Int(i)
        if f.pointee.packets > 0 { export(f.pointee, reason) }
        unlinkIdle(i)
        // Find its index slot, then shift the run after it back.
        var s = Int(f.pointee.hash) & mask
        let want = UInt64(UInt32(i) + 1)
        while index[s] & 0xFFFF_FFFF != want { s = (s + 1) & mask }
        var hole = s
        var j = s
        while true {
            j = (j + 1) & mask
            let v = index[j]
            if v == 0 { break }
            let home = Int(UInt32(truncatingIfNeeded: v >> 32)) & mask
            // Stays if its home lies cyclically in (hole, j].
            let stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j)
            if stays { continue }
            index[hole] = v
            hole = j
        }
        index[hole] = 0
        f.pointee.idleNext = freeHead
        freeHead = i
        count -= 1
    }
}

import MPlane

/// Writes pcap trace files (nanosecond timestamps, Ethernet) of packets built from their
/// fields: for the tests' known traffic and the benchmark's large traces.
public struct TraceWriter {
    public private(set) var bytes: [UInt8] = []
    public private(set) var packets = 0

    /// A pcap header (magic 0xa1b23c4d: nanoseconds), link type Ethernet.
    public init(snaplen: UInt32 = 65_535) {
        put32(0xa1b2_3c4d)
        put16(2); put16(4)
        put32(0); put32(0)
        put32(snaplen)
        put32(UInt32(LinkType.ethernet))
    }

    private mutating func put16(_ v: UInt16) { bytes.append(UInt8(v & 0xFF)); bytes.append(UInt8(v >> 8)) }
    private mutating func put32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }

    /// Appends a frame seen at `time` (nanoseconds since 1970); `capture` bytes of it kept
    /// (all by default).
    public mutating func append(frame: [UInt8], at time: Int64, capture: Int? = nil) {
        let kept = Swift.min(frame.count, capture ?? frame.count)
        put32(UInt32(time / 1_000_000_000))
        put32(UInt32(time % 1_000_000_000))
        put32(UInt32(kept))
        put32(UInt32(frame.count))
        bytes.append(contentsOf: frame[0..<kept])
        packets += 1
    }

    /// One packet's fields.
    public struct Packet {
        /// IPv4 addresses as `a.b.c.d` text or IPv6 as text.
        public var source: IPText, destination: IPText
        public var proto: UInt8
        public var sourcePort: UInt16 = 0, destinationPort: UInt16 = 0
        public var flags: UInt8 = 0
        public var sequence: UInt32 = 0, acknowledgement: UInt32 = 0
        public var payload = 0
        /// An IPv6 hop-by-hop options header before the transport header.
        public var hopByHop = false
        /// An 802.1Q tag.
        public var vlan: UInt16? = nil

        public init(source: IPText, destination: IPText, proto: UInt8, sourcePort: UInt16 = 0,
                    destinationPort: UInt16 = 0, flags: UInt8 = 0, sequence: UInt32 = 0, acknowledgement: UInt32 = 0,
                    payload: Int = 0) {
            self.source = source
            self.destination = destination
            self.proto = proto
            self.sourcePort = sourcePort
            self.destinationPort = destinationPort
            self.flags = flags
            self.sequence = sequence
            self.acknowledgement = acknowledgement
            self.payload = payload
        }
    }

    /// An address: 4 or 16 bytes.
    public struct IPText: ExpressibleByStringLiteral {
        public let bytes: [UInt8]
        public init(stringLiteral s: String) { self.init(s)! }
        public init?(_ s: String) {
            guard let a = IPAddress(s) else { return nil }
            bytes = a.bytes
        }
        public init(bytes: [UInt8]) { self.bytes = bytes }
    }

    /// The frame for `p`: Ethernet (and VLAN tag), IP, the transport header, zero payload.
    public static func frame(_ p: Packet) -> [UInt8] {
        var f: [UInt8] = [0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1]
        let v6 = p.source.bytes.count == 16
        if let vlan = p.vlan { f += [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xFF)] }
        f += v6 ? [0x86, 0xDD] : [0x08, 0x00]
        var transport: [UInt8] = []
        func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
        func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
        switch p.proto {
        case 6:
            transport = be16(p.sourcePort) + be16(p.destinationPort) + be32(p.sequence) + be32(p.acknowledgement)
                + [0x50, p.flags] + be16(65_535) + [0, 0, 0, 0]
        case 17:
            transport = be16(p.sourcePort) + be16(p.destinationPort) + be16(UInt16(8 + p.payload)) + [0, 0]
        default:
            transport = [8, 0, 0, 0, 0, 0, 0, 0]  // an ICMP echo header
        }
        transport += [UInt8](repeating: 0x61, count: p.payload)
        if v6 {
            var ext: [UInt8] = []
            var next = p.proto
            if p.hopByHop {
                ext = [p.proto, 0, 1, 4, 0, 0, 0, 0]  // PadN
                next = 0
            }
            f += [0x60, 0, 0, 0] + be16(UInt16(ext.count + transport.count)) + [next, 64]
            f += p.source.bytes + p.destination.bytes + ext
        } else {
            f += [0x45, 0] + be16(UInt16(20 + transport.count)) + [0, 0, 0x40, 0, 64, p.proto, 0, 0]
            f += p.source.bytes + p.destination.bytes
        }
        return f + transport
    }
}

extension TraceWriter {
    /// A synthetic trace of `conversations` TCP and UDP conversations, IPv4 and IPv6 (one in
    /// four), about `meanPackets` packets each, `window` of them interleaved at a time, one
    /// packet per microsecond from `start`, `snaplen` bytes of each kept (all by default); no
    /// 5-tuple is used twice. TCP conversations of six
    /// packets or more open with a handshake and close with FIN, FIN/ACK, ACK. The same
    /// `seed` gives the same trace.
    public static func synthetic(conversations: Int, meanPackets: Int, window: Int = 1_000, seed: UInt64 = 1,
                                 snaplen: Int? = nil,
                                 start: Int64 = 1_767_225_600_000_000_000, emit: (inout TraceWriter) -> Void = { _ in })
        -> TraceWriter
    {
        var state = seed
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        func uniform(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        struct Conversation { var index: Int; var total: Int; var sent: Int; var seqA: UInt32; var seqB: UInt32 }
        var w = TraceWriter()
        var active: [Conversation] = []
        var made = 0
        func open() -> Conversation? {
            guard made < conversations else { return nil }
            made += 1
            return Conversation(index: made - 1, total: 1 + uniform(2 * meanPackets - 1), sent: 0,
                                seqA: UInt32(truncatingIfNeeded: next()), seqB: UInt32(truncatingIfNeeded: next()))
        }
        while active.count < window, let c = open() { active.append(c) }
        var time = start
        while !active.isEmpty {
            let slot = uniform(active.count)
            var c = active[slot]
            let i = c.index
            let v6 = i % 4 == 3
            let tcp = i % 3 != 2
            let a: IPText = v6 ? IPText(bytes: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 8) + [UInt8(i >> 24 & 0xFF), UInt8(i >> 16 & 0xFF), UInt8(i >> 8 & 0xFF), UInt8(i & 0xFF)])
                : IPText(bytes: [10, UInt8(i >> 16 & 0xFF), UInt8(i >> 8 & 0xFF), UInt8(i & 0xFF)])
            let b: IPText = v6 ? IPText(bytes: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]) : IPText(bytes: [192, 0, 2, 1])
            let sport = UInt16(1024 + i % 60_000), dport: UInt16 = tcp ? 443 : 53
            var p = Packet(source: a, destination: b, proto: tcp ? 6 : 17, sourcePort: sport, destinationPort: dport)
            var forward = uniform(4) != 0
            let k = c.sent
            if tcp {
                let closes = c.total >= 6
                var flags: UInt8 = 0x10
                var payload = 0
                if closes && k == 0 { flags = 0x02; forward = true }
                else if closes && k == 1 { flags = 0x12; forward = false }
                else if closes && k == 2 { forward = true }
                else if closes && k == c.total - 3 { flags = 0x11; forward = true }
                else if closes && k == c.total - 2 { flags = 0x11; forward = false }
                else if closes && k == c.total - 1 { forward = true }
                else { payload = uniform(1400) }
                p.flags = flags
                p.payload = payload
                let consumed = UInt32(payload) + (flags & 0x03 != 0 ? 1 : 0)
                if forward {
                    p.sequence = c.seqA; p.acknowledgement = c.seqB
                    c.seqA &+= consumed
                } else {
                    p.sequence = c.seqB; p.acknowledgement = c.seqA
                    c.seqB &+= consumed
                }
            } else {
                p.payload = uniform(1200)
            }
            if !forward {
                swap(&p.source, &p.destination)
                swap(&p.sourcePort, &p.destinationPort)
            }
            w.append(frame: frame(p), at: time, capture: snaplen)
            time += 1_000
            c.sent += 1
            if c.sent == c.total {
                if let n = open() { active[slot] = n } else { active.remove(at: slot) }
            } else {
                active[slot] = c
            }
            if w.bytes.count > 1 << 24 { emit(&w) }
        }
        return w
    }

    /// Drops what was written so far (after it was saved elsewhere): for traces too large to
    /// hold whole.
    public mutating func drain() -> [UInt8] {
        let b = bytes
        bytes.removeAll(keepingCapacity: true)
        return b
    }
}

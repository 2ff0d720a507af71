public import MPlane

/// ICMP and ICMPv6 echo packets: building requests into a caller's buffer and reading
/// what comes back. No I/O: the receive loop hands bytes in, tests hand recorded bytes in.
public enum ICMP {
    /// Bytes of our own at the start of an echo payload (when it is at least this long):
    /// a per-run cookie and the full probe number, so stray and very late replies are told
    /// apart from fresh ones even after the 16-bit sequence number wraps.
    public static let stampLength = 8

    public static func echoRequestType(_ family: IPAddress.Family) -> UInt8 { family == .v4 ? 8 : 128 }
    public static func echoReplyType(_ family: IPAddress.Family) -> UInt8 { family == .v4 ? 0 : 129 }

    /// Writes an echo request into `packet` (whose count is header plus payload), with the
    /// payload's fixed pattern already in place (see ``fillPattern(_:)``).
    public static func writeEchoRequest(into packet: UnsafeMutableRawBufferPointer, family: IPAddress.Family,
                                        identifier: UInt16, sequence: UInt16, cookie: UInt32, probe: UInt32) {
        packet[0] = echoRequestType(family)
        packet[1] = 0
        packet[2] = 0
        packet[3] = 0
        store16(packet, 4, identifier)
        store16(packet, 6, sequence)
        if packet.count >= 8 + stampLength {
            store32(packet, 8, cookie)
            store32(packet, 12, probe)
        }
        // The kernel computes ICMPv6 checksums (and datagram-socket ICMP ones); raw IPv4
        // needs ours.
        if family == .v4 { store16(packet, 2, checksum(UnsafeRawBufferPointer(packet))) }
    }

    /// The payload pattern: bytes 0x10, 0x11, ... after the stamp (the stamp's own bytes
    /// are overwritten by each request that has room for it).
    public static func fillPattern(_ packet: UnsafeMutableRawBufferPointer) {
        guard packet.count > 8 else { return }
        for i in 8..<packet.count { packet[i] = UInt8(truncatingIfNeeded: 0x10 &+ (i - 8 - stampLength)) }
    }

    /// The Internet checksum (RFC 1071) of `b`.
    public static func checksum(_ b: UnsafeRawBufferPointer) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < b.count {
            sum &+= UInt32(b[i]) << 8 | UInt32(b[i + 1])
            i += 2
        }
        if i < b.count { sum &+= UInt32(b[i]) << 8 }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) &+ (sum >> 16) }
        return ~UInt16(truncatingIfNeeded: sum)
    }

    /// What a received ICMP packet is, as far as probes are concerned.
    public enum Message: Equatable, Sendable {
        /// An echo reply; `stamp` is the cookie and probe number if the payload carried them.
        case echoReply(identifier: UInt16, sequence: UInt16, stamp: Stamp?)
        /// An error quoting one of the echo requests (destination unreachable, time
        /// exceeded, ...), with the quoted request's identifier and sequence number and the
        /// destination it was sent to.
        case error(type: UInt8, code: UInt8, identifier: UInt16, sequence: UInt16, destination: IPAddress?)
        /// Anything else (other ICMP types, errors about other protocols, short packets).
        case other
    }

    public struct Stamp: Equatable, Sendable {
        public var cookie: UInt32
        public var probe: UInt32
        public init(cookie: UInt32, probe: UInt32) {
            self.cookie = cookie
            self.probe = probe
        }
    }

    /// Reads a received packet. `withIPHeader` is true for raw IPv4 sockets (the kernel
    /// hands over the IP header); ICMPv6 and datagram sockets deliver the ICMP message only.
    public static func parse(_ b: UnsafeRawBufferPointer, family: IPAddress.Family, withIPHeader: Bool) -> Message {
        var at = 0
        if withIPHeader {
            guard b.count >= 20, b[0] >> 4 == 4 else { return .other }
            at = Int(b[0] & 0x0F) * 4
        }
        guard b.count >= at + 8 else { return .other }
        let type = b[at], code = b[at + 1]
        if type == echoReplyType(family) {
            var stamp: Stamp?
            if b.count >= at + 8 + stampLength { stamp = Stamp(cookie: load32(b, at + 8), probe: load32(b, at + 12)) }
            return .echoReply(identifier: load16(b, at + 4), sequence: load16(b, at + 6), stamp: stamp)
        }
        guard isError(type: type, family: family) else { return .other }
        let quoted = at + 8
        if family == .v4 {
            // Quoted IPv4 header (protocol ICMP) and the first 8 bytes of our request.
            guard b.count >= quoted + 20, b[quoted] >> 4 == 4, b[quoted + 9] == 1 else { return .other }
            let inner = quoted + Int(b[quoted] & 0x0F) * 4
            guard b.count >= inner + 8, b[inner] == echoRequestType(.v4) else { return .other }
            let dst = IPAddress(ipv4: load32(b, quoted + 16))
            return .error(type: type, code: code, identifier: load16(b, inner + 4), sequence: load16(b, inner + 6),
                          destination: dst)
        } else {
            // Quoted IPv6 header (next header ICMPv6, no extension headers on our probes).
            guard b.count >= quoted + 48, b[quoted] >> 4 == 6, b[quoted + 6] == 58 else { return .other }
            let inner = quoted + 40
            guard b[inner] == echoRequestType(.v6) else { return .other }
            let dst = IPAddress(ipv6: load64(b, quoted + 24), load64(b, quoted + 32))
            return .error(type: type, code: code, identifier: load16(b, inner + 4), sequence: load16(b, inner + 6),
                          destination: dst)
        }
    }

    /// Reads the echo request a datagram socket's error queue quotes with an ICMP error
    /// (the kernel hands back our ICMP message, without IP header).
    public static func parseQuotedRequest(_ b: UnsafeRawBufferPointer, family: IPAddress.Family)
        -> (identifier: UInt16, sequence: UInt16)?
    {
        guard b.count >= 8, b[0] == echoRequestType(family) else { return nil }
        return (load16(b, 4), load16(b, 6))
    }

    /// True for the ICMP errors that mean a probe did not arrive. An IPv4 redirect or
    /// source quench says the router forwarded the packet: not an error for a probe.
    public static func isError(type: UInt8, family: IPAddress.Family) -> Bool {
        switch family {
        case .v4: return type == 3 || type == 11 || type == 12
        case .v6: return type >= 1 && type <= 4
        }
    }

    /// Words an operator reads for an ICMP error.
    public static func describeError(type: UInt8, code: UInt8, family: IPAddress.Family) -> String {
        switch (family, type) {
        case (.v4, 3):
            switch code {
            case 0: return "network unreachable"
            case 1: return "host unreachable"
            case 2: return "protocol unreachable"
            case 3: return "port unreachable"
            case 4: return "fragmentation needed"
            case 9, 10, 13: return "administratively prohibited"
            default: return "destination unreachable (code \(code))"
            }
        case (.v4, 4): return "source quench"
        case (.v4, 5): return "redirect"
        case (.v4, 11): return "time to live exceeded"
        case (.v4, 12): return "parameter problem"
        case (.v6, 1):
            switch code {
            case 0: return "no route to destination"
            case 1: return "administratively prohibited"
            case 3: return "address unreachable"
            case 4: return "port unreachable"
            default: return "destination unreachable (code \(code))"
            }
        case (.v6, 2): return "packet too big"
        case (.v6, 3): return "hop limit exceeded"
        case (.v6, 4): return "parameter problem"
        default: return "ICMP type \(type) code \(code)"
        }
    }

    // MARK: Byte order helpers (network order)

    @inline(__always) static func load16(_ b: UnsafeRawBufferPointer, _ i: Int) -> UInt16 {
        UInt16(b[i]) << 8 | UInt16(b[i + 1])
    }
    @inline(__always) static func load32(_ b: UnsafeRawBufferPointer, _ i: Int) -> UInt32 {
        UInt32(load16(b, i)) << 16 | UInt32(load16(b, i + 2))
    }
    @inline(__always) static func load64(_ b: UnsafeRawBufferPointer, _ i: Int) -> UInt64 {
        UInt64(load32(b, i)) << 32 | UInt64(load32(b, i + 4))
    }
    @inline(__always) static func store16(_ b: UnsafeMutableRawBufferPointer, _ i: Int, _ v: UInt16) {
        b[i] = UInt8(v >> 8)
        b[i + 1] = UInt8(truncatingIfNeeded: v)
    }
    @inline(__always) static func store32(_ b: UnsafeMutableRawBufferPointer, _ i: Int, _ v: UInt32) {
        store16(b, i, UInt16(v >> 16))
        store16(b, i + 2, UInt16(truncatingIfNeeded: v))
    }
}

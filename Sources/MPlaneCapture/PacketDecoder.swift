/// What the decoder reads of one captured frame: the IP header's addresses, protocol and
/// length, and the transport header's ports and (TCP) flags and sequence numbers. Read from
/// the frame's bytes in place; nothing is trusted beyond the bytes captured.
public struct DecodedPacket: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        /// An IP packet, decoded.
        case ip
        /// A frame that is not IP (ARP, LLDP, an unknown link or ethertype).
        case notIP
        /// Too short to hold the headers it announces (snap length, or a cut frame).
        case truncated
        /// A header that contradicts itself (an IHL under 5, a version that is not 4 or 6).
        case malformed
    }

    public var outcome: Outcome = .notIP
    /// 4 or 6.
    public var version: UInt8 = 0
    /// Addresses as two 64-bit words (IPv4: in `low`, `high` 0).
    public var sourceHigh: UInt64 = 0, sourceLow: UInt64 = 0
    public var destinationHigh: UInt64 = 0, destinationLow: UInt64 = 0
    /// The transport protocol (IPv6: after the extension headers); 0 for a fragment that is
    /// not the first (no transport header to read).
    public var proto: UInt8 = 0
    /// The IP packet's length as its header says (IPv4 total length; IPv6 payload length + 40).
    public var ipLength: UInt32 = 0
    /// The transport header's start, from the IP header.
    public var transportOffset: UInt32 = 0
    /// A fragment after the first: addresses only.
    public var laterFragment = false
    public var sourcePort: UInt16 = 0, destinationPort: UInt16 = 0
    /// TCP flags (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10), sequence and acknowledgement
    /// numbers, and the segment's payload length (from the IP length, not the capture).
    public var tcpFlags: UInt8 = 0
    public var sequence: UInt32 = 0, acknowledgement: UInt32 = 0
    public var tcpPayload: UInt32 = 0
    /// Whether the transport header was read (ports, flags): false for protocols without
    /// ports and for later fragments.
    public var hasPorts = false

    public init() {}

    /// Octets of the transport layer (the IP length less the IP headers).
    public var transportLength: UInt32 { ipLength > transportOffset ? ipLength - transportOffset : 0 }
}

/// pcap link types the decoder reads.
public enum LinkType {
    public static let null: Int32 = 0
    public static let ethernet: Int32 = 1
    public static let raw: Int32 = 12
    public static let loop: Int32 = 108
    public static let linuxSLL: Int32 = 113
    public static let ipv4: Int32 = 228
    public static let ipv6: Int32 = 229
    public static let linuxSLL2: Int32 = 276
    /// DLT_RAW's other number on some systems.
    public static let rawOpenBSD: Int32 = 14
}

public enum PacketDecoder {
    @inline(__always) static func be16(_ p: UnsafeRawBufferPointer, _ i: Int) -> UInt16 {
        UInt16(p[i]) << 8 | UInt16(p[i + 1])
    }
    @inline(__always) static func be32(_ p: UnsafeRawBufferPointer, _ i: Int) -> UInt32 {
        UInt32(p[i]) << 24 | UInt32(p[i + 1]) << 16 | UInt32(p[i + 2]) << 8 | UInt32(p[i + 3])
    }
    @inline(__always) static func be64(_ p: UnsafeRawBufferPointer, _ i: Int) -> UInt64 {
        UInt64(be32(p, i)) << 32 | UInt64(be32(p, i + 4))
    }

    /// Decodes a frame of pcap link type `linktype` (its captured bytes in `frame`).
    public static func decode(_ frame: UnsafeRawBufferPointer, linktype: Int32, into d: inout DecodedPacket) {
        d = DecodedPacket()
        let n = frame.count
        var at = 0
        var ethertype: UInt16 = 0
        /// The link header names what follows (else the IP version does).
        var typed = true
        switch linktype {
        case LinkType.ethernet:
            guard n >= 14 else { d.outcome = .truncated; return }
            ethertype = be16(frame, 12)
            at = 14
        case LinkType.linuxSLL:
            guard n >= 16 else { d.outcome = .truncated; return }
            ethertype = be16(frame, 14)
            at = 16
        case LinkType.linuxSLL2:
            guard n >= 20 else { d.outcome = .truncated; return }
            ethertype = be16(frame, 0)
            at = 20
        case LinkType.null, LinkType.loop:
            // The family word's byte order varies: the IP version says what follows.
            guard n >= 4 else { d.outcome = .truncated; return }
            at = 4
            typed = false
        case LinkType.raw, LinkType.rawOpenBSD, LinkType.ipv4, LinkType.ipv6:
            typed = false
        default:
            d.outcome = .notIP
            return
        }
        if typed {
            // Up to two VLAN tags (802.1Q, 802.1ad): on Ethernet, and in cooked captures,
            // where libpcap puts the tag back after the protocol field.
            var tags = 0
            while tags < 2 && (ethertype == 0x8100 || ethertype == 0x88A8) {
                guard n >= at + 4 else { d.outcome = .truncated; return }
                ethertype = be16(frame, at + 2)
                at += 4
                tags += 1
            }
            guard ethertype == 0x0800 || ethertype == 0x86DD else { d.outcome = .notIP; return }
        }
        decodeIP(UnsafeRawBufferPointer(rebasing: frame[at...]), into: &d)
    }

    /// Decodes an IP packet (version from its first nibble).
    public static func decodeIP(_ p: UnsafeRawBufferPointer, into d: inout DecodedPacket) {
        let n = p.count
        guard n >= 1 else { d.outcome = .truncated; return }
        let version = p[0] >> 4
        var header: Int
        var proto: UInt8
        if version == 4 {
            guard n >= 20 else { d.outcome = .truncated; return }
            header = Int(p[0] & 0x0F) * 4
            guard header >= 20 else { d.outcome = .malformed; return }
            let total = be16(p, 2)
            guard Int(total) >= header else { d.outcome = .malformed; return }
            d.ipLength = UInt32(total)
            d.sourceLow = UInt64(be32(p, 12))
            d.destinationLow = UInt64(be32(p, 16))
            proto = p[9]
            // Only the first fragment carries the transport header.
            if be16(p, 6) & 0x1FFF != 0 { d.laterFragment = true }
        } else if version == 6 {
            guard n >= 40 else { d.outcome = .truncated; return }
            d.ipLength = 40 + UInt32(be16(p, 4))
            d.sourceHigh = be64(p, 8)
            d.sourceLow = be64(p, 16)
            d.destinationHigh = be64(p, 24)
            d.destinationLow = be64(p, 32)
            header = 40
            proto = p[6]
            // Extension headers: hop-by-hop, routing, destination options, fragment, and
            // authentication (its length in 4-octet units); at most eight of them.
            var hops = 0
            extensions: while hops < 8 {
                hops += 1
                switch proto {
                case 0, 43, 60:
                    guard n >= header + 2 else { d.outcome = .truncated; return }
                    proto = p[header]
                    header += 8 + Int(p[header + 1]) * 8
                case 51:
                    guard n >= header + 2 else { d.outcome = .truncated; return }
                    proto = p[header]
                    header += (Int(p[header + 1]) + 2) * 4
                case 44:
                    guard n >= header + 8 else { d.outcome = .truncated; return }
                    if be16(p, header + 2) & 0xFFF8 != 0 { d.laterFragment = true }
                    proto = p[header]
                    header += 8
                default:
                    break extensions
                }
            }
            guard UInt32(header) <= d.ipLength else { d.outcome = .malformed; return }
        } else {
            d.outcome = .malformed
            return
        }
        d.version = version
        d.transportOffset = UInt32(header)
        d.outcome = .ip
        if d.laterFragment {
            d.proto = proto
            return
        }
        d.proto = proto
        switch proto {
        case 6:
            guard n >= header + 20 else { d.outcome = .truncated; return }
            d.sourcePort = be16(p, header)
            d.destinationPort = be16(p, header + 2)
            d.sequence = be32(p, header + 4)
            d.acknowledgement = be32(p, header + 8)
            let offset = Int(p[header + 12] >> 4) * 4
            guard offset >= 20 else { d.outcome = .malformed; return }
            d.tcpFlags = p[header + 13]
            let l4 = d.transportLength
            d.tcpPayload = l4 > UInt32(offset) ? l4 - UInt32(offset) : 0
            d.hasPorts = true
        case 17, 136 /* UDP-Lite */, 132 /* SCTP */:
            guard n >= header + 4 else { d.outcome = .truncated; return }
            d.sourcePort = be16(p, header)
            d.destinationPort = be16(p, header + 2)
            d.hasPorts = true
        default:
            break
        }
    }
}

extension TrafficCounts {
    /// Adds one decoded frame.
    @inline(__always) mutating func add(_ d: DecodedPacket) {
        frames += 1
        guard d.outcome == .ip || (d.outcome == .truncated && d.version != 0) else {
            otherPackets += 1
            return
        }
        ipPackets += 1
        ipOctets += UInt64(d.ipLength)
        guard !d.laterFragment else { return }
        if d.proto == 6 { tcpPackets += 1; tcpOctets += UInt64(d.transportLength) }
        else if d.proto == 17 { udpPackets += 1; udpOctets += UInt64(d.transportLength) }
    }

    /// Counts one captured frame of pcap link type `linktype` (for tests and tools).
    public mutating func count(frame: [UInt8], linktype: Int32) {
        var d = DecodedPacket()
        frame.withUnsafeBytes { PacketDecoder.decode($0, linktype: linktype, into: &d) }
        add(d)
    }
}

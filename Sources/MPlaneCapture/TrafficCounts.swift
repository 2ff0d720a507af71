import MPlane
import MPlaneScheduler
import Logging
import MPlaneProbe
import CSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A capture failure an operator can act on.
public struct CaptureError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, for code to act on (tests and callers compare codes, not words).
    public enum Code: String, Sendable {
        /// Capture needs CAP_NET_RAW (and CAP_NET_ADMIN) this process lacks.
        case permission
        case noSuchInterface
        case interfaceDown
        /// The capture filter does not compile, or is past a limit.
        case filter
        /// libpcap or the capture descriptor failed while capturing, or could not open.
        case capture
        /// No thread for the capture.
        case resources
    }
    public let code: Code
    public let message: String
    /// The errno behind it, 0 if none.
    public let errno: Int32
    public init(_ code: Code, _ message: String, errno: Int32 = 0) {
        self.code = code
        self.message = message
        self.errno = errno
    }
    public var description: String { message }
}

/// Traffic counters of one period, as the C side counts them.
public struct TrafficCounts: Equatable, Sendable {
    public var frames: UInt64 = 0
    public var ipPackets: UInt64 = 0, ipOctets: UInt64 = 0
    public var tcpPackets: UInt64 = 0, tcpOctets: UInt64 = 0
    public var udpPackets: UInt64 = 0, udpOctets: UInt64 = 0
    public var otherPackets: UInt64 = 0
    /// Frames the kernel dropped in the period (not counted above).
    public var dropped: UInt64 = 0

    public init() {}

    init(_ c: csupport_counts) {
        frames = c.frames
        ipPackets = c.ip_packets
        ipOctets = c.ip_octets
        tcpPackets = c.tcp_packets
        tcpOctets = c.tcp_octets
        udpPackets = c.udp_packets
        udpOctets = c.udp_octets
        otherPackets = c.other_packets
    }

    /// Counts one captured frame of pcap link type `linktype` (for tests and tools).
    public mutating func count(frame: [UInt8], linktype: Int32) {
        var c = csupport_counts()
        frame.withUnsafeBufferPointer { b in
            csupport_count_frame(linktype, b.baseAddress ?? UnsafePointer(bitPattern: 1)!, UInt32(b.count), &c)
        }
        let d = TrafficCounts(c)
        frames += d.frames
        ipPackets += d.ipPackets
        ipOctets += d.ipOctets
        tcpPackets += d.tcpPackets
        tcpOctets += d.tcpOctets
        udpPackets += d.udpPackets
        udpOctets += d.udpOctets
        otherPackets += d.otherPackets
    }
}


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
        /// No thread for the capture, or no memory for its flow table.
        case resources
        /// A trace file (`capture.file`) that cannot be read: outside `capture-dir`, missing,
        /// not a trace.
        case file
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

/// Traffic counters of one period, as the decoder counts them.
public struct TrafficCounts: Equatable, Sendable {
    public var frames: UInt64 = 0
    public var ipPackets: UInt64 = 0, ipOctets: UInt64 = 0
    public var tcpPackets: UInt64 = 0, tcpOctets: UInt64 = 0
    public var udpPackets: UInt64 = 0, udpOctets: UInt64 = 0
    public var otherPackets: UInt64 = 0
    /// Frames the kernel dropped in the period (not counted above).
    public var dropped: UInt64 = 0
    /// Distinct flows (5-tuples, both directions one) that had a packet in the period.
    public var flows: UInt64 = 0

    public init() {}
}


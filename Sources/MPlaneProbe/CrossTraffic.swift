import CSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What an interface carried while an active measurement ran, besides the probes.
public struct CrossTrafficCounts: Sendable, Equatable {
    public var interface: String
    public var packets: UInt64
    public var octets: UInt64
    /// Frames the kernel dropped for the count (it is low by at least this much).
    public var dropped: UInt64
    public init(interface: String, packets: UInt64, octets: UInt64, dropped: UInt64) {
        self.interface = interface
        self.packets = packets
        self.octets = octets
        self.dropped = dropped
    }
}

/// A count of cross-traffic in progress.
public protocol CrossTrafficCounter: Sendable {
    /// Stops counting: what was counted, or nil if the count failed.
    func stop() async -> CrossTrafficCounts?
}

/// Starts counting the traffic on an interface (IP packets and octets, ICMP echo requests and
/// replies left out: the probes), returning once it counts; nil where it cannot (no
/// permission to capture there, no libpcap). Given to the ping service by the program that
/// assembles the probe, so that active measurement does not depend on the capture code.
public typealias CrossTrafficStart = @Sendable (_ interface: String) async -> (any CrossTrafficCounter)?

public enum Route {
    /// The interface packets to `address` (a `sockaddr` of `length` bytes) leave by, or nil.
    public static func interface(to address: UnsafeRawPointer, length: UInt32) -> String? {
        var name = [CChar](repeating: 0, count: 64)
        let r = name.withUnsafeMutableBufferPointer {
            csupport_route_interface(address.assumingMemoryBound(to: sockaddr.self), socklen_t(length), $0.baseAddress!, 64)
        }
        guard r == 0 else { return nil }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

import MPlaneIO
import MPlane
import CSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Which kind of ICMP socket to use.
public enum SocketKind: String, Sendable, CaseIterable {
    /// A datagram ICMP socket when `net.ipv4.ping_group_range` admits our group, else raw.
    case auto
    /// `SOCK_DGRAM` / `IPPROTO_ICMP(V6)`: no privilege, the kernel picks the identifier.
    case datagram
    /// `SOCK_RAW`: needs `CAP_NET_RAW`.
    case raw

    /// The value of the `icmp.socket` element.
    public var name: String { self == .raw ? "raw" : self == .datagram ? "datagram" : "auto" }
}

/// A ping failure an operator can act on: the message says what went wrong and, for
/// permissions, exactly what would fix it.
public struct PingError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, for code to act on (tests and callers compare codes, not words).
    public enum Code: String, Sendable {
        /// The socket needs a privilege or a sysctl this process lacks.
        case permission
        /// The family or the socket kind is not available on this host.
        case unsupported
        /// A socket call failed (open, options, bind, filter, wait).
        case socket
        /// The source address is not configured here.
        case source
        /// A destination is missing, malformed, of the wrong family, or not to be probed.
        case destination
        /// The plan itself is invalid (interval, payload).
        case plan
        /// The network namespace cannot be entered.
        case namespace
        /// No thread or memory for the measurement.
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

/// An open ICMP echo socket: opened, configured and bound; closed on deinit.
final class ICMPSocket {
    let fd: Int32
    let family: IPAddress.Family
    let kind: SocketKind
    /// The echo identifier replies must carry.
    let identifier: UInt16
    let receiveTimestamps: Bool
    let transmitTimestamps: Bool

    init(family: IPAddress.Family, kind: SocketKind, source: IPAddress?, ttl: Int?, tos: Int?,
         identifier wanted: UInt16, transmitTimestamps wantTX: Bool = true,
         receiveBuffer: Int = 256 << 10) throws(PingError) {
        self.family = family
        let af = family == .v4 ? AF_INET : AF_INET6
        let want: Int32 = kind == .raw ? Int32(CSUPPORT_ICMP_RAW) : kind == .datagram ? Int32(CSUPPORT_ICMP_DGRAM) : Int32(CSUPPORT_ICMP_AUTO)
        var used: Int32 = 0
        let fd = csupport_icmp_open(af, want, &used)
        guard fd >= 0 else { throw Self.openError(-fd, family: family, kind: kind) }
        self.fd = fd
        self.kind = used == Int32(CSUPPORT_ICMP_RAW) ? .raw : .datagram
        var ok = false
        defer { if !ok { close(fd) } }
        let r = csupport_icmp_configure(fd, af, used, Int32(ttl ?? -1), Int32(tos ?? -1), Int32(receiveBuffer))
        guard r == 0 else {
            throw PingError(.socket, "cannot set TTL/TOS or error reporting on the ICMP socket: \(errorText(-r))", errno: -r)
        }
        if used == Int32(CSUPPORT_ICMP_RAW) {
            // A raw socket sees every ICMP packet of the host: a kernel filter keeps only the
            // replies and errors that carry this socket's identifier, so no job reads (and
            // wakes for) every other job's replies. Datagram sockets are demultiplexed by the
            // kernel already.
            let f = csupport_icmp_attach_identifier_filter(fd, family == .v4 ? 4 : 6, wanted)
            guard f == 0 else {
                throw PingError(.socket, "cannot attach the identifier filter to the ICMP socket: \(errorText(-f))", errno: -f)
            }
        }
        let ts = csupport_icmp_timestamps(fd, wantTX ? 1 : 0)
        receiveTimestamps = ts & Int32(CSUPPORT_TS_RX_KERNEL) != 0
        transmitTimestamps = ts & Int32(CSUPPORT_TS_TX_KERNEL) != 0
        var ident: UInt16 = 0
        var storage = sockaddr_storage()
        let len = SocketAddress.write(source ?? (family == .v4 ? IPAddress(ipv4: 0) : IPAddress(ipv6: 0, 0)), into: &storage)
        let b = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { csupport_icmp_bind(fd, $0, len, &ident) }
        }
        guard b == 0 else {
            if -b == EADDRNOTAVAIL {
                throw PingError(.source, "source address \(source.map { "\($0)" } ?? "(any)") is not configured on this host", errno: -b)
            }
            throw PingError(.socket, "cannot bind the ICMP socket to \(source.map { "\($0)" } ?? "(any)"): \(errorText(-b))", errno: -b)
        }
        // A raw socket carries the identifier we choose; a datagram socket's is its port.
        identifier = self.kind == .raw ? wanted : ident
        ok = true
    }

    deinit { close(fd) }

    static func openError(_ e: Int32, family: IPAddress.Family, kind: SocketKind) -> PingError {
        let proto = family == .v4 ? "ICMP" : "ICMPv6"
        switch e {
        case EPERM, EACCES:
            let raw = "raw \(proto) sockets need CAP_NET_RAW (run as root, `setcap cap_net_raw+ep mpcom`, or AmbientCapabilities=CAP_NET_RAW in the systemd unit)"
            let dgram = "unprivileged ICMP sockets need the process's group in net.ipv4.ping_group_range (for example `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`)"
            switch kind {
            case .raw: return PingError(.permission, "cannot open a raw \(proto) socket: permission denied; \(raw)", errno: e)
            case .datagram: return PingError(.permission, "cannot open a datagram \(proto) socket: permission denied; \(dgram)", errno: e)
            case .auto: return PingError(.permission, "cannot open an \(proto) socket: permission denied; \(dgram), or \(raw)", errno: e)
            }
        case EAFNOSUPPORT, EPROTONOSUPPORT:
            return PingError(.unsupported, "cannot open an \(proto) socket: \(family == .v6 ? "IPv6 is disabled on this host" : "not supported") (\(errorText(e)))", errno: e)
        default:
            return PingError(.socket, "cannot open an \(proto) socket: \(errorText(e))", errno: e)
        }
    }
}

/// Words for an errno value of a socket call (what it usually means for a ping).
func errorText(_ e: Int32) -> String {
    switch e {
    case ENETUNREACH: return "network unreachable"
    case EHOSTUNREACH: return "no route to host"
    case EPERM, EACCES: return "not permitted (a firewall rule, or a broadcast destination)"
    case EMSGSIZE: return "message too long for the path"
    case ENOBUFS, EAGAIN: return "send buffer full"
    case EINVAL: return "invalid argument"
    default: return errnoText(e)
    }
}

/// Conversions between ``IPAddress`` and `sockaddr_storage`.
enum SocketAddress {
    /// Writes `a` (without prefix) into `storage`; returns the length to pass to the kernel.
    static func write(_ a: IPAddress, into storage: inout sockaddr_storage) -> socklen_t {
        storage = sockaddr_storage()
        return withUnsafeMutableBytes(of: &storage) { raw -> socklen_t in
            if a.family == .v4 {
                var sin = sockaddr_in()
                sin.sin_family = sa_family_t(AF_INET)
                sin.sin_addr.s_addr = UInt32(truncatingIfNeeded: a.low).bigEndian
                withUnsafeBytes(of: &sin) { raw.copyMemory(from: $0) }
                return socklen_t(MemoryLayout<sockaddr_in>.size)
            }
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { b in
                for i in 0..<8 {
                    b[i] = UInt8(truncatingIfNeeded: a.high >> (56 - 8 * i))
                    b[8 + i] = UInt8(truncatingIfNeeded: a.low >> (56 - 8 * i))
                }
            }
            withUnsafeBytes(of: &sin6) { raw.copyMemory(from: $0) }
            return socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
    }

    /// Sets the port of the IPv4 or IPv6 address in `storage` (for UDP: tests replay ICMP
    /// datagrams over it).
    static func setPort(_ port: UInt16, in storage: inout sockaddr_storage) {
        withUnsafeMutableBytes(of: &storage) { raw in
            if raw.load(fromByteOffset: 0, as: sa_family_t.self) == sa_family_t(AF_INET) {
                raw.storeBytes(of: port.bigEndian, toByteOffset: MemoryLayout<sockaddr_in>.offset(of: \.sin_port)!, as: UInt16.self)
            } else {
                raw.storeBytes(of: port.bigEndian, toByteOffset: MemoryLayout<sockaddr_in6>.offset(of: \.sin6_port)!, as: UInt16.self)
            }
        }
    }

    /// The address in `storage`, nil for a family other than IPv4 and IPv6.
    static func read(_ storage: UnsafeRawPointer) -> IPAddress? {
        let family = storage.loadUnaligned(fromByteOffset: 0, as: sa_family_t.self)
        if family == sa_family_t(AF_INET) {
            let sin = storage.loadUnaligned(as: sockaddr_in.self)
            return IPAddress(ipv4: UInt32(bigEndian: sin.sin_addr.s_addr))
        }
        if family == sa_family_t(AF_INET6) {
            let sin6 = storage.loadUnaligned(as: sockaddr_in6.self)
            var high: UInt64 = 0, low: UInt64 = 0
            withUnsafeBytes(of: sin6.sin6_addr) { b in
                for i in 0..<8 {
                    high = high << 8 | UInt64(b[i])
                    low = low << 8 | UInt64(b[8 + i])
                }
            }
            return IPAddress(ipv6: high, low)
        }
        return nil
    }
}

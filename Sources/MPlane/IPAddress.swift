/// An IPv4 or IPv6 address, or a network in CIDR form (`10.0.0.0/8`, `2001:db8::/32`) whose
/// host bits are zero. IPv6 addresses print in RFC 5952 canonical form.
public struct IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public enum Family: UInt8, Sendable { case v4 = 4, v6 = 6 }

    public let family: Family
    /// The address in network order: IPv4 in the low 32 bits of `low`, `high` zero.
    public let high: UInt64
    public let low: UInt64
    /// The CIDR prefix length, or nil for a host address.
    public let prefixLength: UInt8?

    public init(ipv4 value: UInt32, prefixLength: UInt8? = nil) {
        family = .v4; high = 0; low = UInt64(value); self.prefixLength = prefixLength
    }

    public init(ipv6 high: UInt64, _ low: UInt64, prefixLength: UInt8? = nil) {
        family = .v6; self.high = high; self.low = low; self.prefixLength = prefixLength
    }

    /// Maximum prefix length of the family (32 or 128).
    public var bitWidth: Int { family == .v4 ? 32 : 128 }

    /// True for a network written with a prefix shorter than the address width.
    public var isNetwork: Bool { (prefixLength.map { Int($0) } ?? bitWidth) < bitWidth }

    /// The 4 or 16 address bytes in network order.
    public var bytes: [UInt8] {
        if family == .v4 {
            return (0..<4).map { UInt8(truncatingIfNeeded: low >> (24 - 8 * $0)) }
        }
        return (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
            + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
    }

    /// The number of host addresses a network covers (saturating), 1 for a host address.
    public var addressCount: UInt64 {
        let hostBits = bitWidth - Int(prefixLength ?? UInt8(bitWidth))
        return hostBits >= 64 ? .max : (1 << UInt64(hostBits))
    }

    /// True if `other` (a host address or a network) lies within this address or network.
    public func contains(_ other: IPAddress) -> Bool {
        guard family == other.family else { return false }
        let mine = Int(prefixLength ?? UInt8(bitWidth))
        let theirs = Int(other.prefixLength ?? UInt8(other.bitWidth))
        guard theirs >= mine else { return false }
        let (mh, ml) = Self.mask(family: family, prefix: mine)
        return (high & mh) == (other.high & mh) && (low & ml) == (other.low & ml)
    }

    /// The `index`-th address of this network (0-based), nil past its end.
    public func address(at index: UInt64) -> IPAddress? {
        guard index < addressCount else { return nil }
        let (l, carry) = low.addingReportingOverflow(index)
        if family == .v4 { return IPAddress(ipv4: UInt32(truncatingIfNeeded: l)) }
        return IPAddress(ipv6: high &+ (carry ? 1 : 0), l)
    }

    static func mask(family: Family, prefix: Int) -> (UInt64, UInt64) {
        if family == .v4 {
            let m: UInt64 = prefix == 0 ? 0 : (UInt64(UInt32.max) << UInt64(32 - prefix)) & 0xffff_ffff
            return (0, m)
        }
        let hm: UInt64 = prefix >= 64 ? .max : (prefix == 0 ? 0 : UInt64.max << UInt64(64 - prefix))
        let lm: UInt64 = prefix <= 64 ? 0 : (prefix == 128 ? .max : UInt64.max << UInt64(128 - prefix))
        return (hm, lm)
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        if a.family != b.family { return a.family == .v4 }
        if a.high != b.high { return a.high < b.high }
        if a.low != b.low { return a.low < b.low }
        return (a.prefixLength ?? 255) > (b.prefixLength ?? 255)
    }

    // MARK: Printing

    public var description: String {
        var out: [UInt8] = []
        write(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public func write(to out: inout [UInt8]) {
        func dec(_ v: Int) { out.append(contentsOf: String(v).utf8) }
        if family == .v4 {
            for i in 0..<4 {
                if i > 0 { out.append(UInt8(ascii: ".")) }
                dec(Int((low >> UInt64(24 - 8 * i)) & 0xff))
            }
        } else if high == 0 && low >> 32 == 0xffff {
            // IPv4-mapped: RFC 5952 section 5 recommends the mixed notation.
            out.append(contentsOf: "::ffff:".utf8)
            IPAddress(ipv4: UInt32(truncatingIfNeeded: low)).write(to: &out)
        } else {
            var groups = [Int](repeating: 0, count: 8)
            for i in 0..<4 {
                groups[i] = Int((high >> UInt64(48 - 16 * i)) & 0xffff)
                groups[i + 4] = Int((low >> UInt64(48 - 16 * i)) & 0xffff)
            }
            // RFC 5952: compress the longest run of two or more zero groups (the first of
            // equal runs), lower-case hex without leading zeros.
            var bestStart = -1, bestLen = 0, runStart = -1
            for i in 0...8 {
                if i < 8 && groups[i] == 0 {
                    if runStart < 0 { runStart = i }
                } else if runStart >= 0 {
                    let len = i - runStart
                    if len > bestLen && len >= 2 { bestStart = runStart; bestLen = len }
                    runStart = -1
                }
            }
            var i = 0
            while i < 8 {
                if i == bestStart {
                    out.append(contentsOf: "::".utf8)
                    i += bestLen
                    continue
                }
                if i > 0 && i != bestStart + bestLen {
                    out.append(UInt8(ascii: ":"))
                }
                out.append(contentsOf: String(groups[i], radix: 16).utf8)
                i += 1
            }
        }
        if let p = prefixLength {
            out.append(UInt8(ascii: "/"))
            dec(Int(p))
        }
    }

    // MARK: Parsing

    /// Parses an IPv4 or IPv6 address, with an optional `/prefix` whose host bits must be zero.
    public init?(_ text: some StringProtocol) {
        var s = String(text)
        guard let v = s.withUTF8({ IPAddress(utf8: UnsafeRawBufferPointer($0)) }) else { return nil }
        self = v
    }

    public init?(utf8 b: UnsafeRawBufferPointer) {
        var end = b.count
        var prefix: UInt8? = nil
        if let slash = b.firstIndex(of: UInt8(ascii: "/")) {
            let digits = b[(slash + 1)...]
            guard !digits.isEmpty, digits.count <= 3, digits.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                  !(digits.count > 1 && digits.first == 48) else { return nil }
            // At most three digits, so at most 999: checked against the family's width below
            // (a prefix over 255 must not trap the conversion).
            let value = digits.reduce(0) { $0 * 10 + Int($1 - 48) }
            guard value <= 128 else { return nil }
            prefix = UInt8(value)
            end = slash
        }
        let body = UnsafeRawBufferPointer(rebasing: b[0..<end])
        if body.contains(UInt8(ascii: ":")) {
            guard let (h, l) = Self.parse6(body) else { return nil }
            if let p = prefix {
                guard p <= 128 else { return nil }
                let (mh, ml) = Self.mask(family: .v6, prefix: Int(p))
                guard h & ~mh == 0, l & ~ml == 0 else { return nil }
            }
            self.init(ipv6: h, l, prefixLength: prefix)
        } else {
            guard let v = Self.parse4(body) else { return nil }
            if let p = prefix {
                guard p <= 32 else { return nil }
                let (_, ml) = Self.mask(family: .v4, prefix: Int(p))
                guard UInt64(v) & ~ml == 0 else { return nil }
            }
            self.init(ipv4: v, prefixLength: prefix)
        }
    }

    static func parse4(_ b: UnsafeRawBufferPointer) -> UInt32? {
        var value: UInt32 = 0
        var octets = 0
        var i = 0
        let n = b.count
        while true {
            let start = i
            var octet = 0
            while i < n, b[i] >= 48, b[i] <= 57, i - start < 3 {
                octet = octet * 10 + Int(b[i] - 48)
                i += 1
            }
            let len = i - start
            // No empty octets, no leading zeros (as Python's ipaddress), no values over 255.
            guard len > 0, octet <= 255, !(len > 1 && b[start] == 48) else { return nil }
            value = value << 8 | UInt32(octet)
            octets += 1
            if octets == 4 { break }
            guard i < n, b[i] == UInt8(ascii: ".") else { return nil }
            i += 1
        }
        return i == n ? value : nil
    }

    static func parse6(_ b: UnsafeRawBufferPointer) -> (UInt64, UInt64)? {
        let n = b.count
        guard n >= 2 else { return nil }
        var groups: [UInt16] = []
        groups.reserveCapacity(8)
        var gap = -1
        var i = 0
        if b[0] == UInt8(ascii: ":") {
            guard b[1] == UInt8(ascii: ":") else { return nil }
            gap = 0
            i = 2
            if i == n { return (0, 0) }
        }
        while i < n {
            // An embedded IPv4 tail (::ffff:192.0.2.1).
            var j = i
            while j < n, b[j] != UInt8(ascii: ":") { j += 1 }
            if j == n, b[i..<n].contains(UInt8(ascii: ".")) {
                guard groups.count <= 6, let v4 = parse4(UnsafeRawBufferPointer(rebasing: b[i..<n])) else { return nil }
                groups.append(UInt16(v4 >> 16))
                groups.append(UInt16(v4 & 0xffff))
                i = n
                break
            }
            let len = j - i
            guard len >= 1, len <= 4 else { return nil }
            var g: UInt16 = 0
            for k in i..<j {
                let c = b[k]
                let d: UInt8
                switch c {
                case 48...57: d = c - 48
                case 97...102: d = c - 87
                case 65...70: d = c - 55
                default: return nil
                }
                g = g << 4 | UInt16(d)
            }
            groups.append(g)
            guard groups.count <= 8 else { return nil }
            i = j
            if i == n { break }
            // At a ':'.
            i += 1
            if i < n && b[i] == UInt8(ascii: ":") {
                guard gap < 0 else { return nil }
                gap = groups.count
                i += 1
                if i == n { break }
            } else if i == n {
                return nil  // trailing single ':'
            }
        }
        if gap >= 0 {
            guard groups.count < 8 else { return nil }
            groups.insert(contentsOf: [UInt16](repeating: 0, count: 8 - groups.count), at: gap)
        }
        guard groups.count == 8 else { return nil }
        var h: UInt64 = 0, l: UInt64 = 0
        for k in 0..<4 { h = h << 16 | UInt64(groups[k]) }
        for k in 4..<8 { l = l << 16 | UInt64(groups[k]) }
        return (h, l)
    }
}

/// The primitive types of mPlane elements.
public enum Primitive: String, Sendable, CaseIterable {
    case string, natural, real, boolean, time, address, url
}

/// A typed element value.
public enum Value: Hashable, Sendable, CustomStringConvertible {
    case string(String)
    case natural(UInt64)
    case real(Double)
    case boolean(Bool)
    case time(Timestamp)
    case address(IPAddress)
    case url(String)

    public var primitive: Primitive {
        switch self {
        case .string: .string
        case .natural: .natural
        case .real: .real
        case .boolean: .boolean
        case .time: .time
        case .address: .address
        case .url: .url
        }
    }

    /// The wire text of this value, exactly as the reference implementation prints it.
    public var description: String {
        switch self {
        case .string(let s), .url(let s): return s
        case .natural(let n): return String(n)
        case .real(let d): return PythonFloat.repr(d)
        case .boolean(let b): return b ? "True" : "False"
        case .time(let t): return t.description
        case .address(let a): return a.description
        }
    }

    /// Appends the wire text to `out`.
    public func write(to out: inout [UInt8]) {
        switch self {
        case .string(let s), .url(let s): out.append(contentsOf: s.utf8)
        case .natural(let n): PythonFloat.appendDecimal(n, to: &out)
        case .real(let d): out.append(contentsOf: PythonFloat.repr(d).utf8)
        case .boolean(let b): out.append(contentsOf: (b ? "True" : "False").utf8)
        case .time(let t): t.write(to: &out)
        case .address(let a): a.write(to: &out)
        }
    }

    /// Orders two values of the same primitive (ranges need it); nil across primitives.
    public static func compare(_ a: Value, _ b: Value) -> Int? {
        func cmp<T: Comparable>(_ x: T, _ y: T) -> Int { x < y ? -1 : (x == y ? 0 : 1) }
        switch (a, b) {
        case (.string(let x), .string(let y)), (.url(let x), .url(let y)): return cmp(x, y)
        case (.natural(let x), .natural(let y)): return cmp(x, y)
        case (.real(let x), .real(let y)): return cmp(x, y)
        case (.boolean(let x), .boolean(let y)): return cmp(x ? 1 : 0, y ? 1 : 0)
        case (.time(let x), .time(let y)): return cmp(x, y)
        case (.address(let x), .address(let y)):
            guard x.family == y.family else { return x.family == .v4 ? -1 : 1 }
            return cmp(x, y)
        default: return nil
        }
    }
}

extension Primitive {
    /// Parses the wire text of a value of this primitive; nil for `*` (no value).
    ///
    /// - Throws: ``MPlaneError`` with code `invalidValue` when the text is not a value.
    public func parse(_ text: String) throws(MPlaneError) -> Value? {
        try withBytes(Array(text.utf8)) { (b) throws(MPlaneError) in try parse(utf8: b) }
    }

    /// Parses a value from UTF-8 bytes; nil for `*`.
    public func parse(utf8 b: UnsafeRawBufferPointer) throws(MPlaneError) -> Value? {
        if b.count == 1 && b[0] == UInt8(ascii: "*") { return nil }
        if let v = parseValue(utf8: b) { return v }
        let text = String(decoding: b, as: UTF8.self)
        throw MPlaneError(.invalidValue, field: "", "'\(text)' is not a valid \(rawValue)")
    }

    func parseValue(utf8 b: UnsafeRawBufferPointer) -> Value? {
        switch self {
        case .string: return .string(String(decoding: b, as: UTF8.self))
        case .url: return .url(String(decoding: b, as: UTF8.self))
        case .natural: return Self.parseNatural(b).map { .natural($0) }
        case .real:
            guard !b.isEmpty, b.count < 64 else { return nil }
            // Reject what Swift would accept but JSON and Python would not (hex floats).
            if b.contains(where: { $0 == UInt8(ascii: "x") || $0 == UInt8(ascii: "X") || $0 == UInt8(ascii: "p") }) { return nil }
            return Double(String(decoding: b, as: UTF8.self)).map { .real($0) }
        case .boolean:
            switch String(decoding: b, as: UTF8.self) {
            case "True", "true", "1": return .boolean(true)
            case "False", "false", "0": return .boolean(false)
            default: return nil
            }
        case .time: return Timestamp(utf8: b).map { .time($0) }
        case .address: return IPAddress(utf8: b).map { .address($0) }
        }
    }

    /// Decimal digits; also integral decimal or exponent forms (`100.0`, `1e3`) as the
    /// reference implementation accepts them.
    static func parseNatural(_ b: UnsafeRawBufferPointer) -> UInt64? {
        guard !b.isEmpty else { return nil }
        var v: UInt64 = 0
        var allDigits = true
        for c in b {
            guard c >= 48 && c <= 57 else { allDigits = false; break }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(c - 48))
            if o1 || o2 { return nil }
            v = a
        }
        if allDigits { return v }
        guard b.count < 64, b.allSatisfy({ ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 101 || $0 == 69 || $0 == 43 || $0 == 45 }),
              let d = Double(String(decoding: b, as: UTF8.self)),
              d >= 0, d < 18_446_744_073_709_551_616.0, d.rounded(.towardZero) == d else { return nil }
        return UInt64(d)
    }
}

/// Python-compatible printing of numbers, so that reals look on the wire as the reference
/// implementation prints them (`repr(float)`).
enum PythonFloat {
    static func appendDecimal(_ n: UInt64, to out: inout [UInt8]) {
        if n < 10 { out.append(UInt8(truncatingIfNeeded: 48 + n)); return }
        var buf = (UInt64(0), UInt64(0), UInt64(0))  // 24 bytes: enough for 20 digits
        withUnsafeMutableBytes(of: &buf) { p in
            let len = writeDecimal(n, into: p.baseAddress!.assumingMemoryBound(to: UInt8.self))
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: p[0..<len]))
        }
    }

    /// Writes the decimal digits of `n` at `p` (at most 20 bytes); returns their count.
    @inline(__always)
    static func writeDecimal(_ n: UInt64, into p: UnsafeMutablePointer<UInt8>) -> Int {
        var digits = 1
        var t = n
        while t >= 10 { t /= 10; digits += 1 }
        var v = n
        var i = digits
        repeat {
            i -= 1
            p[i] = UInt8(truncatingIfNeeded: 48 + v % 10)
            v /= 10
        } while i > 0
        return digits
    }

    /// `repr(d)` as CPython prints it: the shortest round-tripping digits, in fixed notation
    /// for decimal exponents -4 ... 15 and scientific (`1e+16`, `1e-05`) otherwise.
    static func repr(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description also gives the shortest round-tripping digits; re-layout them.
        let s = Array(d.magnitude.description.utf8)
        var digits: [UInt8] = []
        var exp = 0
        var seenPoint = false
        var i = 0
        var pointPos = 0
        while i < s.count, s[i] != UInt8(ascii: "e") {
            if s[i] == UInt8(ascii: ".") { seenPoint = true } else {
                digits.append(s[i])
                if !seenPoint { pointPos += 1 }
            }
            i += 1
        }
        if i < s.count { exp = Int(String(decoding: s[(i + 1)...], as: UTF8.self)) ?? 0 }
        // Normalise: strip leading zeros, track decimal exponent of the first digit.
        var decExp = pointPos + exp - 1
        while digits.count > 1, digits.first == 48 { digits.removeFirst(); decExp -= 1 }
        while digits.count > 1, digits.last == 48 { digits.removeLast() }
        var out = d.sign == .minus ? "-" : ""
        if decExp >= -4 && decExp < 16 {
            if decExp < 0 {
                out += "0." + String(repeating: "0", count: -decExp - 1) + String(decoding: digits, as: UTF8.self)
            } else {
                let intCount = decExp + 1
                if digits.count <= intCount {
                    out += String(decoding: digits, as: UTF8.self) + String(repeating: "0", count: intCount - digits.count) + ".0"
                } else {
                    out += String(decoding: digits[0..<intCount], as: UTF8.self) + "." + String(decoding: digits[intCount...], as: UTF8.self)
                }
            }
        } else {
            out += String(UnicodeScalar(digits[0]))
            if digits.count > 1 { out += "." + String(decoding: digits[1...], as: UTF8.self) }
            out += decExp < 0 ? "e-" : "e+"
            let e = abs(decExp)
            out += e < 10 ? "0\(e)" : "\(e)"
        }
        return out
    }
}

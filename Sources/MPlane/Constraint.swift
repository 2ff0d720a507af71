/// The values a capability's parameter accepts.
public enum Constraint: Hashable, Sendable, CustomStringConvertible {
    /// Any value (`*`).
    case all
    /// The closed range `a ... b` (kept with `a <= b`).
    case range(Value, Value)
    /// One of the listed values (`a,b,c`); an address member in CIDR form admits every
    /// address of its network.
    case set([Value])

    /// A range, normalised so that its lower bound comes first (as the reference does).
    public static func makeRange(_ a: Value, _ b: Value) -> Constraint {
        if let c = Value.compare(a, b), c > 0 { return .range(b, a) }
        return .range(a, b)
    }

    /// True if `value` satisfies this constraint.
    public func isMet(by value: Value) -> Bool {
        switch self {
        case .all:
            return true
        case .range(let a, let b):
            guard let lo = Value.compare(a, value), let hi = Value.compare(value, b) else { return false }
            if case .address(let x) = a, case .address(let y) = value, x.family != y.family { return false }
            return lo <= 0 && hi <= 0
        case .set(let values):
            for v in values {
                if v == value { return true }
                if case .address(let net) = v, case .address(let addr) = value, net.isNetwork, net.contains(addr) {
                    return true
                }
            }
            return false
        }
    }

    /// The only value this constraint admits, if there is exactly one.
    public var singleValue: Value? {
        switch self {
        case .all: return nil
        case .range(let a, let b): return a == b ? a : nil
        case .set(let values):
            guard values.count == 1 else { return nil }
            if case .address(let a) = values[0], a.isNetwork { return nil }
            return values[0]
        }
    }

    /// Appends the wire text to `out` (unescaped: callers escape string constraints).
    func write(to out: inout [UInt8]) {
        switch self {
        case .all: out.append(UInt8(ascii: "*"))
        case .range(let a, let b):
            a.write(to: &out)
            out.append(contentsOf: " ... ".utf8)
            b.write(to: &out)
        case .set(let values):
            for (i, v) in values.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                v.write(to: &out)
            }
        }
    }

    public var description: String {
        switch self {
        case .all: return "*"
        case .range(let a, let b): return "\(a) ... \(b)"
        case .set(let values): return values.map(\.description).joined(separator: ",")
        }
    }

    /// Parses a constraint for values of `primitive`.
    /// - Throws: ``MPlaneError`` `invalidConstraint`.
    public static func parse(_ text: String, primitive: Primitive) throws(MPlaneError) -> Constraint {
        try withBytes(Array(text.utf8)) { (b) throws(MPlaneError) in try parse(utf8: b, primitive: primitive) }
    }

    /// Parses a constraint from UTF-8 bytes.
    public static func parse(utf8 b: UnsafeRawBufferPointer, primitive: Primitive) throws(MPlaneError) -> Constraint {
        func bad(_ why: String) -> MPlaneError {
            MPlaneError(.invalidConstraint, field: "",
                        "'\(String(decoding: b, as: UTF8.self))' is not a valid \(primitive.rawValue) constraint: \(why)")
        }
        if b.count == 1 && b[0] == UInt8(ascii: "*") { return .all }
        func one(_ s: UnsafeRawBufferPointer) throws(MPlaneError) -> Value {
            let v: Value?
            do throws(MPlaneError) { v = try primitive.parse(utf8: s) } catch { throw bad(error.message) }
            guard let v else { throw bad("'*' cannot be part of a range or set") }
            return v
        }
        if let r = b.find(" ... "), r.lowerBound > 0 {
            return makeRange(try one(b.slice(0, r.lowerBound)), try one(b.dropping(r.upperBound)))
        }
        var values: [Value] = []
        var start = 0
        for i in 0...b.count where i == b.count || b[i] == UInt8(ascii: ",") {
            values.append(try one(b.slice(start, i)))
            start = i + 1
        }
        return .set(values)
    }
}

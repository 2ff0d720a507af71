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
        func bad(_ why: String) -> MPlaneError {
            MPlaneError(.invalidConstraint, field: "", "'\(text)' is not a valid \(primitive.rawValue) constraint: \(why)")
        }
        if text == "*" { return .all }
        func one(_ s: Substring) throws(MPlaneError) -> Value {
            let v: Value?
            do throws(MPlaneError) { v = try primitive.parse(String(s)) } catch { throw bad(error.message) }
            guard let v else { throw bad("'*' cannot be part of a range or set") }
            return v
        }
        if let r = text.firstRange(of: " ... "), r.lowerBound > text.startIndex {
            let a = try one(text[..<r.lowerBound])
            let b = try one(text[r.upperBound...])
            return makeRange(a, b)
        }
        var values: [Value] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            values.append(try one(part))
        }
        return .set(values)
    }
}

import MPlane

/// A JSON value for comparing documents in tests (built on the codec's own reader).
public indirect enum JSON: Hashable, CustomStringConvertible {
    case object([String: JSON])
    case array([JSON])
    case string(String)
    case number(Double)
    case bool(Bool)
    case null

    public init(parsing bytes: [UInt8]) throws {
        self = try withBytes(bytes) { (b) throws(MPlaneError) -> JSON in
            var r = JSONReader(b, maxDepth: 512)
            let v = try JSON.read(&r)
            try r.finish()
            return v
        }
    }

    public init(parsing text: String) throws { try self.init(parsing: Array(text.utf8)) }

    static func read(_ r: inout JSONReader) throws(MPlaneError) -> JSON {
        switch try r.peekKind() {
        case .object:
            var d: [String: JSON] = [:]
            try r.readObject { (r, k) throws(MPlaneError) in
                let key = String(decoding: k, as: UTF8.self)
                d[key] = try JSON.read(&r)
            }
            return .object(d)
        case .array:
            var a: [JSON] = []
            try r.readArray { (r) throws(MPlaneError) in a.append(try JSON.read(&r)) }
            return .array(a)
        case .string: return .string(try r.readString())
        case .number: return .number(Double(String(decoding: try r.readNumberText(), as: UTF8.self)) ?? .nan)
        case .bool: return .bool(try r.readBool())
        case .null: try r.readNull(); return .null
        }
    }

    public subscript(key: String) -> JSON? {
        if case .object(let d) = self { return d[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var arrayValue: [JSON]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var description: String {
        switch self {
        case .object(let d): return "{" + d.keys.sorted().map { "\"\($0)\": \(d[$0]!)" }.joined(separator: ", ") + "}"
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .string(let s): return "\"\(s)\""
        case .number(let n): return "\(n)"
        case .bool(let b): return "\(b)"
        case .null: return "null"
        }
    }

    /// Paths at which two documents differ (for readable failures).
    public func differences(from other: JSON, path: String = "") -> [String] {
        switch (self, other) {
        case (.object(let a), .object(let b)):
            return Set(a.keys).union(b.keys).sorted().flatMap { k -> [String] in
                guard let x = a[k], let y = b[k] else { return ["\(path)/\(k): present on one side only"] }
                return x.differences(from: y, path: "\(path)/\(k)")
            }
        case (.array(let a), .array(let b)) where a.count == b.count:
            return zip(a, b).enumerated().flatMap { $1.0.differences(from: $1.1, path: "\(path)[\($0)]") }
        default:
            return self == other ? [] : ["\(path): \(self) != \(other)"]
        }
    }
}

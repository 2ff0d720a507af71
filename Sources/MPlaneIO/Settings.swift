
/// Reading a service section's settings (the values of a `[module_*]` section).
public struct SectionSettings: Sendable {
    public let values: [String: String]
    public init(_ values: [String: String]) { self.values = values }

    public subscript(key: String) -> String? { values[key] }

    /// A yes/no setting (yes, true, on, 1 / no, false, off, 0), `absent` when missing.
    public func flag(_ key: String, absent: Bool = false) throws(ServiceConfigurationError) -> Bool {
        switch values[key]?.lowercased() {
        case nil: return absent
        case "no", "false", "0", "off": return false
        case "yes", "true", "1", "on": return true
        case let v?: throw ServiceConfigurationError(message: "\(key) = \(v): use yes or no")
        }
    }

    /// A comma-separated list setting, items trimmed, empty ones dropped; `absent` when missing.
    public func list(_ key: String, absent: [String]) -> [String] {
        guard let v = values[key] else { return absent }
        return v.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
    }

    /// A positive number of seconds (fractions allowed, under 10^7), nil when missing.
    public func seconds(_ key: String) throws(ServiceConfigurationError) -> Duration? {
        guard let v = values[key] else { return nil }
        guard let d = Double(v), d > 0, d < 1e7 else {
            throw ServiceConfigurationError(message: "\(key) = \(v): use a positive number of seconds")
        }
        return .milliseconds(Int64(d * 1000))
    }

    /// An integer setting within `range`, `absent` when missing.
    public func integer(_ key: String, in range: ClosedRange<Int>, absent: Int) throws(ServiceConfigurationError) -> Int {
        guard let v = values[key] else { return absent }
        guard let n = Int(v), range.contains(n) else {
            throw ServiceConfigurationError(message: "\(key) = \(v): use a number in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }
}


/// A setting that cannot be used, with the key and the reason.
public struct ServiceConfigurationError: Error, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

import Synchronization
import MPlaneProbe

/// Bounds on capture filters. libpcap's optimiser works in time that grows with about the
/// cube of a filter's operators (2,000 `host` terms ran over ten minutes; 300 took 1.2 s
/// here, 64 `portrange` terms 0.25 s), in the caller's thread, and cannot be cancelled: a
/// filter is refused by size before it is compiled, compiled on a thread of its own, and a
/// program the kernel would refuse (over 4,096 instructions) is refused too.
public enum FilterLimits {
    /// Default `max-filter-bytes`.
    public static let defaultBytes = 4096
    /// Default `max-filter-operators`.
    public static let defaultOperators = 64
    /// Filters compiled at once (each on its own thread).
    public static let concurrentCompiles = 2
    static let compiling = Atomic<Int>(0)
    /// Trace files opened at once to check them (each on its own thread).
    public static let concurrentFileChecks = 4
    static let fileChecking = Atomic<Int>(0)

    /// Runs `check` on a thread of its own while fewer than `limit` others run under
    /// `counter`: its answer, or why it could not run (`busy`, no thread).
    static func onThread(_ counter: borrowing Atomic<Int>, limit: Int, busy: String,
                         _ check: @escaping @Sendable () -> String?) async -> String? {
        guard counter.add(1, ordering: .acquiringAndReleasing).newValue <= limit else {
            counter.subtract(1, ordering: .releasing)
            return "\(busy) (\(limit)); try again"
        }
        defer { counter.subtract(1, ordering: .releasing) }
        guard let why = await ProbeThread.run(name: "mplane-check", check) else {
            return "\(busy.prefix { $0 != ":" }): cannot start a thread to check it"
        }
        return why
    }

    /// Why `filter` is over the limits (naming `capture.filter` and the limit), or nil.
    public static func refusal(_ filter: String, maxBytes: Int, maxOperators: Int) -> String? {
        let bytes = filter.utf8.count
        if bytes > maxBytes {
            return "capture.filter is \(bytes) bytes long, over max-filter-bytes (\(maxBytes))"
        }
        let operators = operatorCount(filter)
        if operators > maxOperators {
            return "capture.filter has \(operators) and/or/not operators, over max-filter-operators (\(maxOperators))"
        }
        return nil
    }

    /// The `and`, `or` and `not` operators of a filter, as words (bounded by anything but
    /// letters, digits, `.`, `:`, `-` and `_`, so `or.example.com` is none) or as `&&`, `||`
    /// and `!` (not `!=`). Counting a few too many is harmless.
    public static func operatorCount(_ filter: String) -> Int {
        let b = Array(filter.utf8)
        var n = 0
        var i = 0
        func isWordByte(_ c: UInt8) -> Bool {
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "-"),
                 UInt8(ascii: "_"):
                return true
            default: return false
            }
        }
        while i < b.count {
            let c = b[i]
            if isWordByte(c) {
                var j = i
                while j < b.count && isWordByte(b[j]) { j += 1 }
                let word = String(decoding: b[i..<j], as: UTF8.self).lowercased()
                if word == "and" || word == "or" || word == "not" { n += 1 }
                i = j
                continue
            }
            if (c == UInt8(ascii: "&") || c == UInt8(ascii: "|")) && i + 1 < b.count && b[i + 1] == c {
                n += 1
                i += 2
                continue
            }
            if c == UInt8(ascii: "!") && !(i + 1 < b.count && b[i + 1] == UInt8(ascii: "=")) { n += 1 }
            i += 1
        }
        return n
    }
}

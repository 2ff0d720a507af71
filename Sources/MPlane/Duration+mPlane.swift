/// mPlane durations: whole seconds written `NdNhNmNs` (`90s` prints as `1m30s`).
public enum MPlaneDuration {
    /// The duration the reference implementation gives `inf`: 100,000 days.
    public static let infinite: Int64 = 100_000 * 86_400

    /// Parses `[Nd][Nh][Nm][Ns]` (at least one part, in all at most ``infinite``) or `inf`;
    /// nil otherwise.
    public static func parse(_ s: Substring) -> Int64? {
        Array(s.utf8).withUnsafeBytes { parse($0) }
    }

    /// Parses a duration from UTF-8 bytes.
    public static func parse(_ s: UnsafeRawBufferPointer) -> Int64? {
        if s.equals("inf") { return infinite }
        var total: Int64 = 0
        var current: Int64 = 0
        var haveDigits = false
        var any = false
        var lastUnit = 5
        for c in s {
            switch c {
            case 48...57:
                let (m, o1) = current.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(Int64(c - 48))
                guard !o1, !o2, a < 1_000_000_000_000 else { return nil }
                current = a
                haveDigits = true
            default:
                let unit: Int
                let scale: Int64
                switch c {
                case UInt8(ascii: "d"): unit = 0; scale = 86_400
                case UInt8(ascii: "h"): unit = 1; scale = 3600
                case UInt8(ascii: "m"): unit = 2; scale = 60
                case UInt8(ascii: "s"): unit = 3; scale = 1
                default: return nil
                }
                // Units in order d, h, m, s, each at most once, each with digits.
                guard haveDigits, lastUnit == 5 || unit > lastUnit else { return nil }
                lastUnit = unit
                total += current * scale
                current = 0
                haveDigits = false
                any = true
            }
        }
        // Nothing longer than `inf`: a longer one is no more useful, and microseconds of it
        // added to a time could overflow.
        guard any, !haveDigits, total <= infinite else { return nil }
        return total
    }

    /// Appends the canonical text of `seconds` to `out`.
    public static func write(_ seconds: Int64, to out: inout [UInt8]) {
        var v = seconds
        if v <= 0 { out.append(contentsOf: "0s".utf8); return }
        for (scale, unit) in [(Int64(86_400), UInt8(ascii: "d")), (3600, UInt8(ascii: "h")), (60, UInt8(ascii: "m")), (1, UInt8(ascii: "s"))] where v >= scale {
            PythonFloat.appendDecimal(UInt64(v / scale), to: &out)
            out.append(unit)
            v %= scale
        }
    }

    /// Prints seconds canonically (`0s` for zero).
    public static func format(_ seconds: Int64) -> String {
        var v = seconds
        var out = ""
        for (scale, unit) in [(Int64(86_400), "d"), (3600, "h"), (60, "m"), (1, "s")] where v >= scale {
            out += "\(v / scale)\(unit)"
            v %= scale
        }
        return out.isEmpty ? "0s" : out
    }
}

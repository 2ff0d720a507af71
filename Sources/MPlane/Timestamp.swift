/// A UTC instant with microsecond resolution, as the mPlane `time` primitive carries it.
///
/// Printed as `YYYY-MM-DD HH:MM:SS.ffffff`; parsed from `YYYY-MM-DD`, `YYYY-MM-DD HH:MM`,
/// `YYYY-MM-DD HH:MM:SS` and any of those with a fraction of any number of digits
/// (digits past the sixth are truncated).
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    public var microseconds: Int64

    public init(microsecondsSince1970 us: Int64) { self.microseconds = us }

    public init(secondsSince1970 s: Int64) { self.microseconds = s * 1_000_000 }

    /// The instant of a civil UTC date and time.
    public init(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0,
                microsecond: Int = 0) {
        let days = Int64(Calendar.daysFromCivil(year: year, month: month, day: day))
        let secs = days * 86_400 + Int64(hour * 3600 + minute * 60 + second)
        self.microseconds = secs * 1_000_000 + Int64(microsecond)
    }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.microseconds < b.microseconds }

    /// This instant moved by `seconds`, saturating at the ends of the representable range
    /// (never wrapping round).
    public func adding(seconds: Int64) -> Timestamp {
        let (us, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000)
        return adding(microseconds: overflow ? (seconds < 0 ? .min : .max) : us)
    }

    /// This instant moved by `us` microseconds, saturating at the ends of the representable
    /// range (never wrapping round).
    public func adding(microseconds us: Int64) -> Timestamp {
        let (sum, overflow) = microseconds.addingReportingOverflow(us)
        return Timestamp(microsecondsSince1970: overflow ? (us < 0 ? .min : .max) : sum)
    }

    /// The civil fields of this instant (UTC).
    public var components: (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int,
                            microsecond: Int, weekday: Int) {
        let (days, usOfDay) = Int64.floorDivMod(microseconds, 86_400_000_000)
        let (y, m, d) = Calendar.civilFromDays(Int(days))
        let secOfDay = Int(usOfDay / 1_000_000)
        // 1970-01-01 was a Thursday; weekday: 0 = Sunday ... 6 = Saturday (cron's numbering).
        let weekday = Int(((days % 7) + 7 + 4) % 7)
        return (y, m, d, secOfDay / 3600, (secOfDay / 60) % 60, secOfDay % 60,
                Int(usOfDay % 1_000_000), weekday)
    }

    public var description: String {
        var out: [UInt8] = []
        out.reserveCapacity(26)
        write(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The civil date of the last day printed, so that a column of times from one day
    /// converts its date once.
    public struct DayCache: Sendable {
        var day: Int64 = .min
        var ymd: (Int, Int, Int) = (0, 0, 0)
        public init() {}
    }

    /// Appends `YYYY-MM-DD HH:MM:SS.ffffff` to `out`.
    public func write(to out: inout [UInt8]) {
        var cache = DayCache()
        write(to: &out, days: &cache)
    }

    /// Appends `YYYY-MM-DD HH:MM:SS.ffffff` to `out`, reusing `cache` for the date.
    public func write(to out: inout [UInt8], days cache: inout DayCache) {
        var buf: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &buf) { p in
            if let n = write(into: p.baseAddress!.assumingMemoryBound(to: UInt8.self), days: &cache) {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: p[0..<n]))
            } else {
                let c = components
                out.append(contentsOf: "\(c.year)-\(c.month)-\(c.day) \(c.hour):\(c.minute):\(c.second).\(c.microsecond)".utf8)
            }
        }
    }

    /// Writes the 26 bytes of `YYYY-MM-DD HH:MM:SS.ffffff` at `p`; nil (nothing written)
    /// for years outside 0...9999.
    @inline(__always)
    func write(into p: UnsafeMutablePointer<UInt8>, days cache: inout DayCache) -> Int? {
        let (days, usOfDay) = Int64.floorDivMod(microseconds, 86_400_000_000)
        if days != cache.day {
            cache.day = days
            cache.ymd = Calendar.civilFromDays(Int(days))
        }
        let (y, m, d) = cache.ymd
        guard y >= 0 && y <= 9999 else { return nil }
        let secOfDay = Int(usOfDay / 1_000_000)
        let us = Int(usOfDay % 1_000_000)
        @inline(__always) func two(_ at: Int, _ v: Int) {
            p[at] = UInt8(truncatingIfNeeded: 48 + v / 10)
            p[at + 1] = UInt8(truncatingIfNeeded: 48 + v % 10)
        }
        two(0, y / 100); two(2, y % 100)
        p[4] = 0x2d; two(5, m)
        p[7] = 0x2d; two(8, d)
        p[10] = 0x20; two(11, secOfDay / 3600)
        p[13] = 0x3a; two(14, (secOfDay / 60) % 60)
        p[16] = 0x3a; two(17, secOfDay % 60)
        p[19] = 0x2e; two(20, us / 10_000); two(22, (us / 100) % 100); two(24, us % 100)
        return 26
    }

    /// Parses an mPlane timestamp.
    public init?(_ text: some StringProtocol) {
        var text = String(text)
        guard let value = text.withUTF8({ Timestamp(utf8: UnsafeRawBufferPointer($0)) }) else { return nil }
        self = value
    }

    /// Parses an mPlane timestamp from UTF-8 bytes; nil if they are not exactly one.
    public init?(utf8 b: UnsafeRawBufferPointer) {
        var i = 0
        let n = b.count
        func digits(_ count: Int) -> Int? {
            guard i + count <= n else { return nil }
            var v = 0
            for k in 0..<count {
                let d = Int(b[i + k]) &- 48
                guard d >= 0 && d <= 9 else { return nil }
                v = v * 10 + d
            }
            i += count
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < n, b[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(UInt8(ascii: "-")),
              let month = digits(2), expect(UInt8(ascii: "-")),
              let day = digits(2) else { return nil }
        guard (1...12).contains(month), day >= 1,
              day <= Calendar.daysInMonth(year: year, month: month) else { return nil }
        var hour = 0, minute = 0, second = 0, micro = 0
        if i < n {
            // One or more spaces (or a single 'T') separate date and time.
            if b[i] == UInt8(ascii: "T") {
                i += 1
            } else {
                guard b[i] == UInt8(ascii: " ") else { return nil }
                while i < n && b[i] == UInt8(ascii: " ") { i += 1 }
            }
            guard let h = digits(2), expect(UInt8(ascii: ":")), let m = digits(2) else { return nil }
            hour = h; minute = m
            if i < n && b[i] == UInt8(ascii: ":") {
                i += 1
                guard let s = digits(2) else { return nil }
                second = s
            }
            if i < n && b[i] == UInt8(ascii: ".") {
                i += 1
                var count = 0
                while i < n, b[i] >= 48, b[i] <= 57 {
                    if count < 6 { micro = micro * 10 + Int(b[i] - 48) }
                    count += 1
                    i += 1
                }
                guard count > 0 else { return nil }
                if count < 6 { for _ in count..<6 { micro *= 10 } }
            }
            guard hour < 24, minute < 60, second < 60 else { return nil }
        }
        guard i == n else { return nil }
        self.init(year: year, month: month, day: day, hour: hour, minute: minute, second: second,
                  microsecond: micro)
    }
}

/// Proleptic Gregorian calendar arithmetic (Howard Hinnant's days-from-civil algorithms).
enum Calendar {
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}

extension Int64 {
    /// Floor division and the matching non-negative remainder.
    static func floorDivMod(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        var q = a / b
        var r = a % b
        if r < 0 { q -= 1; r += b }
        return (q, r)
    }
}

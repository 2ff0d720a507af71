/// The calendar part of a repeated temporal scope:
/// `cron <seconds> <minutes> <hours> <days-of-month> <weekdays> <months>`.
///
/// Each field is `*` or a comma-separated list of numbers and `a-b` ranges. Weekdays count
/// from 0 = Sunday. A time matches when every field matches (days-of-month AND weekdays,
/// as the reference implementation evaluates them).
public struct Crontab: Hashable, Sendable, CustomStringConvertible {
    public var seconds: UInt64
    public var minutes: UInt64
    public var hours: UInt64
    public var days: UInt64
    public var weekdays: UInt64
    public var months: UInt64

    static let fieldRanges: [ClosedRange<Int>] = [0...59, 0...59, 0...23, 1...31, 0...6, 1...12]

    static func full(_ r: ClosedRange<Int>) -> UInt64 {
        r.reduce(UInt64(0)) { $0 | (1 << UInt64($1)) }
    }

    var fields: [UInt64] { [seconds, minutes, hours, days, weekdays, months] }

    /// Parses the six fields.
    /// - Throws: ``MPlaneError`` `invalidTemporalScope`.
    public init(parsing text: Substring) throws(MPlaneError) {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        func bad(_ why: String) -> MPlaneError {
            MPlaneError(.invalidTemporalScope, field: "when", "invalid cron '\(text)': \(why)")
        }
        guard parts.count == 6 else { throw bad("expected 6 fields (s m h dom dow mon), got \(parts.count)") }
        var out: [UInt64] = []
        for (k, part) in parts.enumerated() {
            let range = Self.fieldRanges[k]
            if part == "*" { out.append(Self.full(range)); continue }
            // The reference prints '*' in the hours field as 0-59; accept that spelling.
            let accept = k == 2 ? 0...59 : range
            var set: UInt64 = 0
            for item in part.split(separator: ",", omittingEmptySubsequences: false) {
                let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
                guard bounds.count <= 2, let a = Int(bounds[0]), let b = Int(bounds.last!),
                      accept.contains(a), accept.contains(b), a <= b else {
                    throw bad("'\(item)' is not within \(range.lowerBound)-\(range.upperBound)")
                }
                for v in a...b { set |= 1 << UInt64(v) }
            }
            if k == 2 {
                let valid = Self.full(range)
                if set & ~valid != 0 {
                    // Only the reference's spelled-out '*' may name hours past 23.
                    guard set & valid == valid else { throw bad("hours must be within 0-23") }
                    set = valid
                }
            }
            out.append(set)
        }
        (seconds, minutes, hours, days, weekdays, months) = (out[0], out[1], out[2], out[3], out[4], out[5])
    }

    public var description: String {
        zip(fields, Self.fieldRanges).map { set, range -> String in
            if set == Self.full(range) { return "*" }
            return range.filter { set & (1 << UInt64($0)) != 0 }.map(String.init).joined(separator: ",")
        }.joined(separator: " ")
    }

    /// True if the instant (whole seconds are compared) matches every field.
    public func matches(_ t: Timestamp) -> Bool {
        let c = t.components
        return Self.has(seconds, c.second) && Self.has(minutes, c.minute) && Self.has(hours, c.hour)
            && Self.has(days, c.day) && Self.has(weekdays, c.weekday) && Self.has(months, c.month)
    }

    @inline(__always) static func has(_ set: UInt64, _ v: Int) -> Bool { set & (1 << UInt64(v)) != 0 }

    /// The first whole second at or after `t` that matches, searching at most `limitDays`
    /// days ahead; nil if there is none (for example `31` in February only).
    public func next(atOrAfter t: Timestamp, limitDays: Int = 366 * 8) -> Timestamp? {
        // Round up to a whole second.
        let (s0, rem) = Int64.floorDivMod(t.microseconds, 1_000_000)
        var sec = s0 + (rem > 0 ? 1 : 0)
        let limit = sec + Int64(limitDays) * 86_400
        while sec <= limit {
            let c = Timestamp(secondsSince1970: sec).components
            let dayStart = sec - Int64(c.hour * 3600 + c.minute * 60 + c.second)
            if !Self.has(months, c.month) || !Self.has(days, c.day) || !Self.has(weekdays, c.weekday) {
                sec = dayStart + 86_400
                continue
            }
            if !Self.has(hours, c.hour) {
                sec = dayStart + Int64((c.hour + 1) * 3600)
                continue
            }
            if !Self.has(minutes, c.minute) {
                sec = dayStart + Int64(c.hour * 3600 + (c.minute + 1) * 60)
                continue
            }
            if !Self.has(seconds, c.second) {
                sec += 1
                continue
            }
            return Timestamp(secondsSince1970: sec)
        }
        return nil
    }
}

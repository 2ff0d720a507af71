/// A temporal scope (`when`): when a capability is available, when a specification should
/// run, or when a result was measured.
///
/// Grammar (whole seconds for durations and periods):
/// ```
/// when     = ["repeat "] simple [" cron " s m h dom dow mon] [" { " inner " }"]
/// simple   = point [" ... " point | " + " duration] [" / " period]
/// inner    = "now" [" + " duration] [" / " period]
/// point    = "past" | "now" | "future" | YYYY-MM-DD[ HH:MM[:SS[.ffffff]]]
/// duration = [Nd][Nh][Nm][Ns] | "inf"
/// ```
/// A repeated scope needs a period or a cron, not both; the inner scope is relative to each
/// repetition. Printing is canonical and matches the reference implementation
/// (`60s` prints `1m`; a repeated scope's inner part ends with `" } "`).
public struct When: Hashable, Sendable, CustomStringConvertible {
    public enum Point: Hashable, Sendable, CustomStringConvertible {
        case past, now, future
        case at(Timestamp)

        public var description: String {
            switch self {
            case .past: "past"
            case .now: "now"
            case .future: "future"
            case .at(let t): t.description
            }
        }

        static func parse(_ b: UnsafeRawBufferPointer) -> Point? {
            if b.equals("now") { return .now }
            if b.equals("past") { return .past }
            if b.equals("future") { return .future }
            return Timestamp(utf8: b).map { .at($0) }
        }
    }

    /// The scope of each repetition of a repeated scope, relative to its start.
    public struct Inner: Hashable, Sendable {
        public var duration: Int64?
        public var period: Int64?
        public init(duration: Int64? = nil, period: Int64? = nil) {
            self.duration = duration
            self.period = period
        }
    }

    public var start: Point
    /// The end of a range (`a ... b`); nil for a singleton or a duration.
    public var end: Point?
    /// The duration in seconds (`a + d`).
    public var duration: Int64?
    /// The period in seconds (`/ p`).
    public var period: Int64?
    public var isRepeated: Bool
    public var crontab: Crontab?
    public var inner: Inner?

    public init(start: Point, end: Point? = nil, duration: Int64? = nil, period: Int64? = nil,
                repeated: Bool = false, crontab: Crontab? = nil, inner: Inner? = nil) {
        self.start = start
        self.end = end
        self.duration = end == nil ? duration : nil
        self.period = period
        self.isRepeated = repeated
        self.crontab = crontab
        self.inner = inner
    }

    /// `past ... future`.
    public static let infinite = When(start: .past, end: .future)
    /// `now ... future`.
    public static let nowToFuture = When(start: .now, end: .future)

    // MARK: Parsing

    /// Parses a temporal scope.
    /// - Throws: ``MPlaneError`` `invalidTemporalScope` naming what is wrong.
    public init(parsing text: String) throws(MPlaneError) {
        self = try withBytes(Array(text.utf8)) { (b) throws(MPlaneError) in try When(utf8: b) }
    }

    /// Parses a temporal scope from UTF-8 bytes.
    public init(utf8 whole: UnsafeRawBufferPointer) throws(MPlaneError) {
        func bad(_ why: String) -> MPlaneError {
            MPlaneError(.invalidTemporalScope, field: "when",
                        "'\(String(decoding: whole, as: UTF8.self))' is not a valid temporal scope: \(why)")
        }
        func text(_ b: UnsafeRawBufferPointer) -> String { String(decoding: b, as: UTF8.self) }
        var s = whole.trimmingSpaces()
        var repeated = false
        var crontab: Crontab? = nil
        var inner: Inner? = nil
        if s.hasPrefix("repeat ") {
            repeated = true
            s = s.dropping(7)
            if let open = s.find(" { ") {
                guard s.hasSuffix(" }") else { throw bad("inner scope not closed with ' }'") }
                var body = s.slice(open.upperBound, s.count - 2)
                s = s.slice(0, open.lowerBound)
                guard body.hasPrefix("now") else { throw bad("the inner scope must start with 'now'") }
                body = body.dropping(3)
                var inr = Inner()
                if let p = body.find(" / ") {
                    guard let per = MPlaneDuration.parse(body.dropping(p.upperBound)) else { throw bad("invalid inner period (at most \(MPlaneDuration.infinite / 86_400)d)") }
                    inr.period = per
                    body = body.slice(0, p.lowerBound)
                }
                if body.hasPrefix(" + ") {
                    guard let d = MPlaneDuration.parse(body.dropping(3)) else { throw bad("invalid inner duration (at most \(MPlaneDuration.infinite / 86_400)d)") }
                    inr.duration = d
                } else if !body.isEmpty {
                    throw bad("the inner scope may only be 'now [+ duration] [/ period]'")
                }
                inner = inr
            }
            if let c = s.find(" cron ") {
                crontab = try Crontab(parsing: Substring(text(s.dropping(c.upperBound))))
                s = s.slice(0, c.lowerBound)
            }
        } else if s.contains(UInt8(ascii: "{")) || s.find(" cron ") != nil {
            throw bad("an inner scope or cron needs 'repeat'")
        }
        var period: Int64? = nil
        if let p = s.find(" / ") {
            guard let per = MPlaneDuration.parse(s.dropping(p.upperBound)) else {
                throw bad("invalid period '\(text(s.dropping(p.upperBound)))' (at most \(MPlaneDuration.infinite / 86_400)d)")
            }
            period = per
            s = s.slice(0, p.lowerBound)
        }
        var end: Point? = nil
        var duration: Int64? = nil
        if let d = s.find(" + ") {
            guard let dur = MPlaneDuration.parse(s.dropping(d.upperBound)) else {
                throw bad("invalid duration '\(text(s.dropping(d.upperBound)))' (at most \(MPlaneDuration.infinite / 86_400)d)")
            }
            duration = dur
            s = s.slice(0, d.lowerBound)
        } else if let r = s.find(" ... ") {
            guard let e = Point.parse(s.dropping(r.upperBound)) else { throw bad("invalid end '\(text(s.dropping(r.upperBound)))'") }
            end = e
            s = s.slice(0, r.lowerBound)
        }
        guard let start = Point.parse(s) else { throw bad("invalid start '\(text(s))'") }
        if repeated && crontab == nil && period == nil { throw bad("a repeated scope needs a period or a cron") }
        if repeated && crontab != nil && period != nil { throw bad("a repeated scope takes a period or a cron, not both") }
        if start == .future { throw bad("a scope cannot start in the indefinite future") }
        if end == .past { throw bad("a scope cannot end in the indefinite past") }
        if case .at(let a) = start, case .at(let b) = end, b < a { throw bad("the end is before the start") }
        if let period, period == 0 { throw bad("the period must not be zero") }
        if let p = inner?.period, p == 0 { throw bad("the inner period must not be zero") }
        self.init(start: start, end: end, duration: duration, period: period, repeated: repeated,
                  crontab: crontab, inner: inner)
    }

    // MARK: Printing

    /// Appends the canonical text to `out` (what ``description`` returns).
    public func write(to out: inout [UInt8]) {
        @inline(__always) func point(_ p: Point) {
            switch p {
            case .past: out.append(contentsOf: "past".utf8)
            case .now: out.append(contentsOf: "now".utf8)
            case .future: out.append(contentsOf: "future".utf8)
            case .at(let t): t.write(to: &out)
            }
        }
        @inline(__always) func duration(_ d: Int64) { MPlaneDuration.write(d, to: &out) }
        if isRepeated { out.append(contentsOf: "repeat ".utf8) }
        point(start)
        if let end {
            out.append(contentsOf: " ... ".utf8); point(end)
        } else if let d = self.duration {
            out.append(contentsOf: " + ".utf8); duration(d)
        }
        if let period { out.append(contentsOf: " / ".utf8); duration(period) }
        if let crontab { out.append(contentsOf: " cron \(crontab)".utf8) }
        if let inner {
            out.append(contentsOf: " { now".utf8)
            if let d = inner.duration { out.append(contentsOf: " + ".utf8); duration(d) }
            if let p = inner.period { out.append(contentsOf: " / ".utf8); duration(p) }
            out.append(contentsOf: " } ".utf8)
        }
    }

    public var description: String {
        var out = isRepeated ? "repeat \(start)" : start.description
        if let end { out += " ... \(end)" } else if let duration { out += " + \(MPlaneDuration.format(duration))" }
        if let period { out += " / \(MPlaneDuration.format(period))" }
        if let crontab { out += " cron \(crontab)" }
        if let inner {
            out += " { now"
            if let d = inner.duration { out += " + \(MPlaneDuration.format(d))" }
            if let p = inner.period { out += " / \(MPlaneDuration.format(p))" }
            out += " } "
        }
        return out
    }

    // MARK: Predicates

    /// Starts now.
    public var isImmediate: Bool { start == .now }
    /// Ends in the indefinite future.
    public var isForever: Bool { end == .future }
    /// `past ... now`.
    public var isPast: Bool { start == .past && end == .now }
    /// `now ... future`.
    public var isFuture: Bool { start == .now && end == .future }
    /// `past ... future`.
    public var isInfinite: Bool { start == .past && end == .future }
    /// An absolute time or an absolute range.
    public var isDefinite: Bool {
        guard case .at = start else { return false }
        if let end { if case .at = end { return true } else { return false } }
        return true
    }
    /// A single point in time (no end and no duration).
    public var isSingleton: Bool { end == nil && duration == nil }

    // MARK: Absolute times

    /// The absolute start and end given the time zero `now` (nil for past / future).
    public func datetimes(now tzero: Timestamp) -> (start: Timestamp?, end: Timestamp?) {
        let s: Timestamp?
        switch start {
        case .now: s = tzero
        case .past, .future: s = nil
        case .at(let t): s = t
        }
        let e: Timestamp?
        switch end {
        case .now?: e = tzero
        case .future?, .past?: e = nil
        case .at(let t)?: e = t
        case nil: e = s.map { $0.adding(seconds: duration ?? 0) }
        }
        return (s, e)
    }

    /// The duration in microseconds given `now`; nil when it does not end or has no start.
    public func durationMicroseconds(now tzero: Timestamp) -> Int64? {
        if let duration { return duration * 1_000_000 }
        if end == nil { return 0 }
        let (s, e) = datetimes(now: tzero)
        guard let s, let e else { return nil }
        return e.microseconds - s.microseconds
    }

    /// Delays (microseconds from `now`) to the start and the end of this scope. The start
    /// delay is 0 when the start has passed; both are nil when the scope has expired; the
    /// end delay is nil when the scope has no end.
    public func timerDelays(now tzero: Timestamp) -> (start: Int64?, end: Int64?) {
        let (s, e) = datetimes(now: tzero)
        let rawStart = (s?.microseconds ?? tzero.microseconds) - tzero.microseconds
        let sd = Swift.max(0, rawStart)
        var ed: Int64?
        if let end, end != .future {
            ed = e.map { $0.microseconds - tzero.microseconds }
        } else if let d = durationMicroseconds(now: tzero) {
            // From the scheduled start, so that a duration that has run out counts as
            // expired (the reference adds it to the clamped start and never expires it).
            ed = rawStart + d
        }
        if let x = ed, x < 0 { return (nil, nil) }
        return (sd, ed)
    }

    /// Where `t` falls relative to this scope: negative microseconds before it, 0 within
    /// it, positive after it.
    public func position(of t: Timestamp, now tzero: Timestamp) -> Int64 {
        let (s, e) = datetimes(now: tzero)
        if let s, t < s { return t.microseconds - s.microseconds }
        if let e, t > e { return t.microseconds - e.microseconds }
        return 0
    }

    func position(of p: Point, now tzero: Timestamp) -> Int64 {
        switch p {
        case .now:
            if start == .now || end == .now { return 0 }
            return position(of: tzero, now: tzero)
        case .at(let t): return position(of: t, now: tzero)
        case .past: return start == .past ? 0 : -1
        case .future: return end == .future ? 0 : 1
        }
    }

    /// True if `t` falls within this scope.
    public func contains(_ t: Timestamp, now tzero: Timestamp) -> Bool { position(of: t, now: tzero) == 0 }

    /// True if this scope (a specification's) lies within `outer` (its capability's): its
    /// start and its end are in `outer`, and its period (for a repeated scope, the inner
    /// period) is not below `outer`'s.
    public func follows(_ outer: When, now tzero: Timestamp) -> Bool {
        if let minimum = outer.period {
            let mine = isRepeated ? inner?.period : period
            guard let mine, mine >= minimum else { return false }
        }
        guard outer.position(of: start, now: tzero) == 0 else { return false }
        if let end {
            return outer.position(of: end, now: tzero) == 0
        }
        if let duration, let s = datetimes(now: tzero).start {
            return outer.position(of: s.adding(seconds: duration), now: tzero) == 0
        }
        return true
    }

    // MARK: Repetition

    /// The repetitions of a repeated scope, each an absolute scope (the inner scope placed
    /// at the repetition's start). Empty for a scope that is not repeated.
    ///
    /// One rule, the one single runs follow: a scope with an end holds as many repetitions
    /// as whole periods fit in it (at least one), at `start + i × period`; those that begin
    /// before `now` are skipped. A cron scope repeats at the cron's times from `now` (to the
    /// second) up to, not including, the end. `repeat now + 6s / 2s` has three repetitions,
    /// at 0, 2 and 4 s, on every run.
    public func repetitions(now tzero: Timestamp) -> Repetitions { Repetitions(when: self, now: tzero) }

    public struct Repetitions: Sequence, IteratorProtocol, Sendable {
        let when: When
        /// The next repetition's start.
        var cursor: Timestamp?
        let end: Timestamp?
        let anchor: Timestamp
        let step: Int64
        /// Periodic scopes: the index of the next repetition, and how many there are.
        var index: Int64 = 0
        var count: Int64?

        init(when: When, now tzero: Timestamp) {
            self.when = when
            let (s, e) = when.datetimes(now: tzero)
            anchor = s ?? tzero
            end = e
            step = Swift.max(1, when.period ?? 1)
            guard when.isRepeated else { return }
            if let cron = when.crontab {
                var t = Timestamp(secondsSince1970: Int64.floorDivMod(tzero.microseconds, 1_000_000).0)
                if t < anchor { t = anchor }
                cursor = cron.next(atOrAfter: t)
                return
            }
            let stepUS = step * 1_000_000
            if let e {
                count = Swift.max(1, (e.microseconds - anchor.microseconds) / stepUS)
            }
            if tzero > anchor {
                let behind = tzero.microseconds - anchor.microseconds
                index = (behind + stepUS - 1) / stepUS
            }
            cursor = anchor.adding(microseconds: index * stepUS)
        }

        public mutating func next() -> When? {
            guard let t = cursor else { return nil }
            if let cron = when.crontab {
                if let end, t >= end { cursor = nil; return nil }
                cursor = cron.next(atOrAfter: t.adding(seconds: 1))
            } else {
                if let count, index >= count { cursor = nil; return nil }
                index += 1
                cursor = anchor.adding(microseconds: index * step * 1_000_000)
            }
            return When(start: .at(t), duration: when.inner?.duration, period: when.inner?.period)
        }
    }
}

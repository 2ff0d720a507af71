import Testing
@testable import MPlane

@Suite("Temporal scopes")
struct WhenTests {
    /// Valid scopes and their canonical printing (as the reference prints them).
    static let valid: [(String, String)] = [
        ("now", "now"),
        ("past", "past"),
        ("now ... future", "now ... future"),
        ("past ... now", "past ... now"),
        ("past ... future", "past ... future"),
        ("now ... future / 1s", "now ... future / 1s"),
        ("now + 30s / 1s", "now + 30s / 1s"),
        ("now + 60s / 60s", "now + 1m / 1m"),
        ("now + 90s", "now + 1m30s"),
        ("now + 3600s / 60s", "now + 1h / 1m"),
        ("now + 1d2h3m4s", "now + 1d2h3m4s"),
        ("now + 0s", "now + 0s"),
        ("now + inf", "now + 100000d"),
        ("2017-12-24", "2017-12-24 00:00:00.000000"),
        ("2017-12-24 22:18", "2017-12-24 22:18:00.000000"),
        ("2017-12-24 22:18:42", "2017-12-24 22:18:42.000000"),
        ("2017-12-24 22:18:42.5", "2017-12-24 22:18:42.500000"),
        ("2017-12-24 22:18:42.1234567", "2017-12-24 22:18:42.123456"),
        ("2017-12-24 22:18:42 + 1m / 1s", "2017-12-24 22:18:42.000000 + 1m / 1s"),
        ("2017-12-24 22:18:42 ... 2017-12-24 23:18:42", "2017-12-24 22:18:42.000000 ... 2017-12-24 23:18:42.000000"),
        ("2017-12-24 22:18:42 ... future / 2h", "2017-12-24 22:18:42.000000 ... future / 2h"),
        ("repeat now ... future / 1h { now + 10s / 1s }", "repeat now ... future / 1h { now + 10s / 1s } "),
        ("repeat now ... future / 1h { now + 10s / 1s } ", "repeat now ... future / 1h { now + 10s / 1s } "),
        ("repeat now + 1h / 10m { now + 1m }", "repeat now + 1h / 10m { now + 1m } "),
        ("repeat now ... future / 1h { now / 1s }", "repeat now ... future / 1h { now / 1s } "),
        ("repeat now ... future / 5m", "repeat now ... future / 5m"),
        ("repeat 2017-12-24 00:00:00 ... 2017-12-25 00:00:00 / 15m { now + 1m / 5s }",
         "repeat 2017-12-24 00:00:00.000000 ... 2017-12-25 00:00:00.000000 / 15m { now + 1m / 5s } "),
        ("repeat now ... future cron 0 0,30 * * * * { now + 10s / 1s }", "repeat now ... future cron 0 0,30 * * * * { now + 10s / 1s } "),
        ("repeat now ... future cron 0 0 12 1-5 * 1,6 { now + 30s / 1s }", "repeat now ... future cron 0 0 12 1,2,3,4,5 * 1,6 { now + 30s / 1s } "),
        ("repeat now ... future cron 0 0 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59 * 0-6 * { now + 1s }",
         "repeat now ... future cron 0 0 * * * * { now + 1s } "),
    ]

    static let invalid: [String] = [
        "", "later", "now +", "now + 30", "now + 30x", "now + s", "now + 1s1m", "now ... ", "now / 0s",
        "2017-13-01", "2017-02-30", "2017-12-24 25:00", "2017-12-24 22:61", "2017-12-24 22:18:42.",
        "2017-12-24T", "now + 30s / 1s trailing", "repeat now ... future", "repeat now ... future / 1h cron * * * * * *",
        "repeat now ... future / 1h { past + 1s }", "repeat now ... future / 1h { now + 1s",
        "now ... future { now + 1s }", "repeat now ... future cron 0 0 * * *", "repeat now ... future cron 60 * * * * *",
        "repeat now ... future cron 0 0 24 * * *", "repeat now ... future cron 0 0 * 0 * *", "repeat now ... future cron 0 0 * * 7 *",
        "future ... now", "now ... past", "2017-12-24 ... 2017-12-23",
    ]

    @Test("valid scopes parse and print canonically", arguments: valid)
    func validScopes(input: String, canonical: String) throws {
        let w = try When(parsing: input)
        #expect(w.description == canonical)
        #expect(try When(parsing: w.description) == w)
    }

    @Test("invalid scopes are refused with a typed error", arguments: invalid)
    func invalidScopes(input: String) {
        #expect(throws: MPlaneError(.invalidTemporalScope, field: "", "")) { try When(parsing: input) }
    }

    let t0 = Timestamp(year: 2017, month: 12, day: 24, hour: 22, minute: 18, second: 42)

    @Test("predicates")
    func predicates() throws {
        #expect(try When(parsing: "now + 30s").isImmediate)
        #expect(try When(parsing: "now ... future").isForever)
        #expect(try When(parsing: "now ... future").isFuture)
        #expect(try When(parsing: "past ... now").isPast)
        #expect(try When(parsing: "past ... future").isInfinite)
        #expect(try When(parsing: "2017-12-24 ... 2017-12-25").isDefinite)
        #expect(!(try When(parsing: "now + 1m").isDefinite))
        #expect(try When(parsing: "2017-12-24").isSingleton)
        #expect(!(try When(parsing: "now + 1m").isSingleton))
        #expect(try When(parsing: "repeat now ... future / 1h { now + 1m }").isRepeated)
    }

    @Test("absolute times, durations and timer delays given now")
    func absolute() throws {
        let w = try When(parsing: "now + 30s / 1s")
        let (s, e) = w.datetimes(now: t0)
        #expect(s == t0 && e == t0.adding(seconds: 30))
        #expect(w.durationMicroseconds(now: t0) == 30_000_000)
        #expect(w.timerDelays(now: t0).start == 0 && w.timerDelays(now: t0).end == 30_000_000)
        #expect(w.period == 1)

        let future = try When(parsing: "2017-12-24 22:20:00 ... 2017-12-24 22:21:00")
        #expect(future.timerDelays(now: t0).start == 78_000_000)
        #expect(future.timerDelays(now: t0).end == 138_000_000)
        #expect(future.durationMicroseconds(now: t0) == 60_000_000)
        let expired = try When(parsing: "2017-12-24 20:00:00 + 1m")
        #expect(expired.timerDelays(now: t0).start == nil && expired.timerDelays(now: t0).end == nil)
        let forever = try When(parsing: "now ... future")
        #expect(forever.timerDelays(now: t0).end == nil)
        #expect(forever.durationMicroseconds(now: t0) == nil)
        #expect(future.position(of: t0, now: t0) == -78_000_000)
        #expect(future.contains(t0.adding(seconds: 90), now: t0))
        #expect(future.position(of: t0.adding(seconds: 200), now: t0) == 62_000_000)
    }

    @Test("containment: a specification's scope follows its capability's")
    func follows() throws {
        let cap = try When(parsing: "now ... future / 1s")
        #expect(try When(parsing: "now + 30s / 1s").follows(cap, now: t0))
        #expect(try When(parsing: "now + 30s / 5s").follows(cap, now: t0))
        #expect(!(try When(parsing: "now + 30s").follows(cap, now: t0)), "no period where one is required")
        #expect(!(try When(parsing: "2017-12-24 20:00:00 + 1m / 1s").follows(cap, now: t0)), "in the past")
        #expect(try When(parsing: "2017-12-25 00:00:00 + 1m / 1s").follows(cap, now: t0))
        #expect(try When(parsing: "repeat now ... future / 1h { now + 10s / 1s }").follows(cap, now: t0))
        #expect(!(try When(parsing: "repeat now ... future / 1h { now + 10s }").follows(cap, now: t0)))
        let window = try When(parsing: "2017-12-24 22:00:00 ... 2017-12-24 23:00:00")
        #expect(try When(parsing: "2017-12-24 22:30:00 + 10m").follows(window, now: t0))
        #expect(!(try When(parsing: "2017-12-24 22:55:00 + 10m").follows(window, now: t0)), "ends outside")
        #expect(!(try When(parsing: "now ... future").follows(window, now: t0)), "never ends")
        #expect(try When(parsing: "2017-12-24 22:00:00 ... now").follows(try When(parsing: "past ... now"), now: t0))
    }

    @Test("repetitions of a periodic scope")
    func repetitionsPeriodic() throws {
        let w = try When(parsing: "repeat 2017-12-24 22:00:00 ... 2017-12-24 23:00:00 / 15m { now + 1m / 5s }")
        let reps = Array(w.repetitions(now: Timestamp(year: 2017, month: 12, day: 24, hour: 21)))
        // As many as whole periods fit in the hour: 22:00, 22:15, 22:30, 22:45.
        #expect(reps.count == 4)
        #expect(reps.first?.description == "2017-12-24 22:00:00.000000 + 1m / 5s")
        #expect(reps.last?.description == "2017-12-24 22:45:00.000000 + 1m / 5s")
        // Starting mid-way skips the repetitions already past; the others keep their times.
        let later = Array(w.repetitions(now: Timestamp(year: 2017, month: 12, day: 24, hour: 22, minute: 20)))
        #expect(later.count == 2)
        #expect(later.first?.description == "2017-12-24 22:30:00.000000 + 1m / 5s")
        // Unbounded: lazily infinite, take the first few.
        let open = try When(parsing: "repeat now ... future / 1h { now + 10s / 1s }")
        let first = Array(open.repetitions(now: t0).prefix(3))
        #expect(first.map(\.description) == ["2017-12-24 22:18:42.000000 + 10s / 1s", "2017-12-24 23:18:42.000000 + 10s / 1s",
                                            "2017-12-25 00:18:42.000000 + 10s / 1s"])
        #expect(Array(try When(parsing: "now + 1m").repetitions(now: t0)).isEmpty)
    }

    @Test("repetitions of a cron scope")
    func repetitionsCron() throws {
        let w = try When(parsing: "repeat now ... future cron 0 0,30 * * * * { now + 10s / 1s }")
        let reps = Array(w.repetitions(now: t0).prefix(4)).map(\.description)
        #expect(reps == ["2017-12-24 22:30:00.000000 + 10s / 1s", "2017-12-24 23:00:00.000000 + 10s / 1s",
                         "2017-12-24 23:30:00.000000 + 10s / 1s", "2017-12-25 00:00:00.000000 + 10s / 1s"])
        // Weekdays Monday-Friday (1-5) at noon, in January and June: 2018-01-01 was a Monday.
        let weekdays = try When(parsing: "repeat now ... future cron 0 0 12 * 1-5 1,6 { now + 30s / 1s }")
        let days = Array(weekdays.repetitions(now: t0).prefix(6)).map(\.description)
        #expect(days == ["2018-01-01 12:00:00.000000 + 30s / 1s", "2018-01-02 12:00:00.000000 + 30s / 1s",
                         "2018-01-03 12:00:00.000000 + 30s / 1s", "2018-01-04 12:00:00.000000 + 30s / 1s",
                         "2018-01-05 12:00:00.000000 + 30s / 1s", "2018-01-08 12:00:00.000000 + 30s / 1s"])
        // A bounded cron scope ends.
        let bounded = try When(parsing: "repeat 2017-12-24 22:00:00 ... 2017-12-24 23:59:59 cron 0 0 * * * * { now + 1s }")
        #expect(Array(bounded.repetitions(now: t0)).count == 1)
        // An impossible date yields nothing rather than spinning.
        let never = try When(parsing: "repeat now ... future cron 0 0 0 31 * 2 { now + 1s }")
        #expect(Array(never.repetitions(now: t0)).isEmpty)
    }
}

import Testing
import Synchronization
@testable import MPlane
@testable import MPlaneScheduler

let t0 = Timestamp(year: 2017, month: 12, day: 24, hour: 22, minute: 18, second: 42)

/// Runs `body` with a scheduler whose `run()` is live, then shuts it down and waits for it.
func withScheduler(_ services: [any MeasurementService], clock: any ProbeClock,
                   configuration: SchedulerConfiguration = SchedulerConfiguration(),
                   _ body: (Scheduler) async throws -> Void) async throws {
    let scheduler = Scheduler(services: services, clock: clock, configuration: configuration)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await scheduler.run() }
        do {
            try await body(scheduler)
        } catch {
            scheduler.shutdown()
            throw error
        }
        scheduler.shutdown()
        try await group.waitForAll()
    }
}

func spec(_ service: any MeasurementService, when: String, input: String = "x", verb: Verb? = nil) throws -> Specification {
    var s = Specification(capability: service.capability, when: try When(parsing: when))
    if s.statement.parameter("test.input") != nil { try s.statement.setParameterValue("test.input", .string(input)) }
    if let verb { s.statement.verb = verb }
    return s
}

func receipt(_ m: Message, sourceLocation: SourceLocation = #_sourceLocation) -> Receipt? {
    guard case .receipt(let r) = m else { Issue.record("expected a receipt, got \(m)", sourceLocation: sourceLocation); return nil }
    return r
}

func result(_ m: Message, sourceLocation: SourceLocation = #_sourceLocation) -> Result? {
    guard case .result(let r) = m else { Issue.record("expected a result, got \(m)", sourceLocation: sourceLocation); return nil }
    return r
}

func exception(_ m: Message, sourceLocation: SourceLocation = #_sourceLocation) -> MPlaneException? {
    guard case .exception(let e) = m else { Issue.record("expected an exception, got \(m)", sourceLocation: sourceLocation); return nil }
    return e
}

@Suite("Scheduler: matching")
struct MatchingTests {
    @Test("specifications that do not fulfil a capability are refused with the reason")
    func refusals() async throws {
        let counter = CounterService(minimumPeriod: 5)
        let clock = ManualClock(now: t0)
        try await withScheduler([counter, LoopbackService()], clock: clock) { scheduler in
            // Period below the capability's minimum.
            let fast = exception(await scheduler.process(.specification(try spec(counter, when: "now + 30s / 1s"))))
            #expect(fast?.message.contains("period 1s is below") == true && fast?.status == 403)
            // Scope outside the capability's (already past).
            let past = exception(await scheduler.process(.specification(try spec(counter, when: "2017-12-24 20:00:00 + 1m / 5s"))))
            #expect(past?.message.contains("temporal scope") == true)
            // Unknown verb.
            let verb = exception(await scheduler.process(.specification(try spec(counter, when: "now + 30s / 5s", verb: "frobnicate"))))
            #expect(verb?.message == "No service registered for specification" && verb?.status == 404)
            // Schema mismatch: a result column no capability offers.
            var other = try spec(counter, when: "now + 30s / 5s")
            try other.statement.addResultColumn("packets.ip")
            #expect(exception(await scheduler.process(.specification(other)))?.message == "No service registered for specification")
            // Constraint violation.
            let constrained = FixedService(label: "constrained", constraint: "a,b")
            try await withScheduler([constrained], clock: clock) { s2 in
                var bad = Specification(capability: constrained.capability, when: try When(parsing: "now"))
                try bad.statement.setParameterValue("test.input", text: "a")
                #expect(receipt(await s2.process(.specification(bad))) != nil)
                var wire = MessageEncoder().encodeString(.specification(bad))
                wire = wire.replacingOccurrences(of: "\"a\"", with: "\"c\"")
                guard case .specification(let c) = try MessageDecoder().decode(wire) else { Issue.record("kind"); return }
                let e = exception(await s2.process(.specification(c)))
                #expect(e?.message.contains("does not meet the constraint") == true && e?.status == 403)
            }
            // A good one is accepted with a receipt carrying its token.
            let good = try spec(counter, when: "now + 30s / 5s")
            #expect(receipt(await scheduler.process(.specification(good)))?.token == good.token)
        }
    }
}

/// A service with one constrained string parameter that returns one row.
struct FixedService: MeasurementService {
    let capability: Capability
    init(label: String, constraint: String) {
        let registry = try! RegistryStore.shared.registry(for: RegistryStore.loopbackURI)
        var cap = Capability(label: label, when: .nowToFuture, registry: registry)
        try! cap.statement.addParameter("test.input", constraint: constraint)
        try! cap.statement.addResultColumn("test.output")
        capability = cap
    }
    func run(_ job: JobContext) async throws {
        try job.append { try $0.columns[0].append(job.parameter("test.input")) }
    }
}

extension String {
    func replacingOccurrences(of a: String, with b: String) -> String {
        split(separator: a, omittingEmptySubsequences: false).joined(separator: b)
    }
}

@Suite("Scheduler: job lifecycle on a manual clock", .timeLimit(.minutes(1)))
struct LifecycleTests {
    let counter = CounterService()

    @Test("immediate single-row job: receipt, then the result, redeemable twice")
    func immediate() async throws {
        let loop = LoopbackService()
        try await withScheduler([loop], clock: ManualClock(now: t0)) { scheduler in
            let s = try spec(loop, when: "now", input: "hello")
            #expect(receipt(await scheduler.process(.specification(s))) != nil)
            let r = result(await scheduler.waitForResult(token: s.token, timeout: .seconds(10)))
            #expect(r?.value("test.output") == .string("hello"))
            #expect(r?.token == s.token && r?.statement.when.isDefinite == true)
            let again = result(await scheduler.process(.redemption(Redemption(receipt: Receipt(specification: s)))))
            #expect(again == r)
        }
    }

    @Test("periodic job: one row per period from start to end, on virtual time")
    func periodic() async throws {
        let clock = ManualClock(now: t0)
        try await withScheduler([counter], clock: clock) { scheduler in
            let s = try spec(counter, when: "now + 5s / 1s")
            _ = await scheduler.process(.specification(s))
            await clock.settle()
            #expect(receipt(scheduler.redeem(token: s.token)) != nil, "still running before time moves")
            await clock.advance(by: 6)
            let r = result(await scheduler.waitForResult(token: s.token, timeout: .seconds(10)))
            #expect(r?.values.rowCount == 6)
            #expect(r?.value("test.counter", row: 5) == .natural(5))
            #expect(r?.value("time", row: 0) == .time(t0))
            #expect(r?.value("time", row: 5) == .time(t0.adding(seconds: 5)))
            #expect(r?.value("test.output", row: 3) == .string("x"))
        }
    }

    @Test("delayed start: nothing before the start, the rows of the scope after it")
    func delayed() async throws {
        let clock = ManualClock(now: t0)
        try await withScheduler([counter], clock: clock) { scheduler in
            let s = try spec(counter, when: "2017-12-24 22:20:00 + 2s / 1s")
            _ = await scheduler.process(.specification(s))
            await clock.advance(by: 30)
            #expect(receipt(scheduler.redeem(token: s.token)) != nil)
            await clock.advance(to: Timestamp(year: 2017, month: 12, day: 24, hour: 22, minute: 20, second: 3))
            let r = result(await scheduler.waitForResult(token: s.token, timeout: .seconds(10)))
            #expect(r?.values.rowCount == 3)
            #expect(r?.value("time", row: 0) == .time(Timestamp(year: 2017, month: 12, day: 24, hour: 22, minute: 20)))
        }
    }

    @Test("indefinite job runs until interrupted; the interrupt returns the rows so far")
    func indefinite() async throws {
        let clock = ManualClock(now: t0)
        try await withScheduler([counter], clock: clock) { scheduler in
            let s = try spec(counter, when: "now ... future / 1s")
            _ = await scheduler.process(.specification(s))
            await clock.advance(by: 10)
            #expect(receipt(scheduler.redeem(token: s.token)) != nil)
            let r = result(await scheduler.process(.interrupt(Interrupt(specification: s))))
            #expect(r?.values.rowCount == 11)
            #expect(r?.statement.when.isDefinite == true)
            await clock.advance(by: 10)
            #expect(result(scheduler.redeem(token: s.token))?.values.rowCount == 11, "nothing after the interrupt")
        }
    }

    @Test("interrupt mid-run returns the partial rows; unknown tokens are exceptions")
    func interruptMidRun() async throws {
        let clock = ManualClock(now: t0)
        try await withScheduler([counter], clock: clock) { scheduler in
            let s = try spec(counter, when: "now + 1m / 1s")
            _ = await scheduler.process(.specification(s))
            await clock.advance(by: 4)
            let r = result(await scheduler.interrupt(token: s.token))
            #expect(r?.values.rowCount == 5)
            #expect(exception(scheduler.redeem(token: "0123456789abcdef"))?.status == 404)
            #expect(exception(await scheduler.interrupt(token: "0123456789abcdef"))?.message == "Unknown job")
        }
    }

    @Test("results are kept for the retention time, then forgotten")
    func retention() async throws {
        let clock = ManualClock(now: t0)
        var config = SchedulerConfiguration()
        config.retention = 60
        try await withScheduler([counter], clock: clock, configuration: config) { scheduler in
            let s = try spec(counter, when: "now + 2s / 1s")
            _ = await scheduler.process(.specification(s))
            await clock.advance(by: 3)
            #expect(result(await scheduler.waitForResult(token: s.token, timeout: .seconds(10))) != nil)
            await clock.advance(by: 30)
            #expect(result(await scheduler.process(.redemption(Redemption(receipt: Receipt(specification: s))))) != nil)
            await clock.advance(by: 40)
            let gone = exception(await scheduler.process(.redemption(Redemption(receipt: Receipt(specification: s)))))
            #expect(gone?.message == "Unknown job")
        }
    }
}

@Suite("Scheduler: repeated specifications", .timeLimit(.minutes(1)))
struct RepeatedTests {
    let counter = CounterService()

    func envelope(_ m: Message) -> [Result] {
        guard case .envelope(let e) = m else { Issue.record("expected an envelope, got \(m)"); return [] }
        return e.contents.compactMap { if case .result(let r) = $0 { r } else { nil } }
    }

    @Test("a repeated one-minute specification yields one result per repetition at the right times")
    func periodicRepetitions() async throws {
        let clock = ManualClock(now: t0)
        let events = Mutex<[String]>([])
        try await withScheduler([counter], clock: clock) { scheduler in
            scheduler.addObserver { e in
                switch e {
                case .repetition(_, let r): events.withLock { $0.append("rep \(r.values.rowCount)") }
                case .finished: events.withLock { $0.append("done") }
                case .servicesChanged: break
                }
            }
            let s = try spec(counter, when: "repeat now + 1m / 10s { now + 3s / 1s }")
            _ = await scheduler.process(.specification(s))
            await clock.advance(by: 70)
            let message = await scheduler.waitForResult(token: s.token, timeout: .seconds(10))
            let results = envelope(message)
            // As many repetitions as whole periods fit in the minute: at 0, 10, …, 50 s.
            #expect(results.count == 6)
            #expect(results.allSatisfy { $0.values.rowCount == 4 })
            #expect(results.map { $0.value("time") } == (0..<6).map { .time(t0.adding(seconds: Int64($0) * 10)) })
            if case .envelope(let e) = message { #expect(e.token == s.token) }
            #expect(events.withLock { $0 } == Array(repeating: "rep 4", count: 6) + ["done"])
        }
    }

    /// The counter, noting what each run is told of its series, and the series' end.
    final class SeriesWatcher: MeasurementService {
        let inner = CounterService()
        let seen = Mutex<[String]>([])
        var capability: Capability { inner.capability }
        func run(_ job: JobContext) async throws {
            seen.withLock { $0.append("run \(job.series?.token ?? "none") continues \(job.continues)") }
            try await inner.run(job)
        }
        func seriesEnded(_ series: JobSeries) { seen.withLock { $0.append("ended \(series.token)") } }
    }

    @Test("each repetition knows its series and whether another follows; the service hears when the series ends")
    func seriesAndContinuation() async throws {
        let clock = ManualClock(now: t0)
        let watcher = SeriesWatcher()
        try await withScheduler([watcher], clock: clock) { scheduler in
            let s = try spec(watcher.inner, when: "repeat now + 30s / 10s { now + 2s / 1s }")
            _ = await scheduler.process(.specification(s))
            await clock.advance(by: 40)
            _ = await scheduler.waitForResult(token: s.token, timeout: .seconds(10))
            #expect(watcher.seen.withLock { $0 } == ["run \(s.token) continues true", "run \(s.token) continues true",
                                                     "run \(s.token) continues false", "ended \(s.token)"])
            // A specification that is not repeated has no series.
            let once = try spec(watcher.inner, when: "now + 2s / 1s")
            _ = await scheduler.process(.specification(once))
            await clock.advance(by: 5)
            _ = await scheduler.waitForResult(token: once.token, timeout: .seconds(10))
            #expect(watcher.seen.withLock { $0.last } == "run none continues false")
        }
    }

    @Test("cron repetitions start on the matching seconds")
    func cronRepetitions() async throws {
        let clock = ManualClock(now: t0)
        try await withScheduler([counter], clock: clock) { scheduler in
            let s = try spec(counter, when: "repeat now ... 2017-12-24 22:25:00 cron 0 * * * * * { now + 2s / 1s }")
            _ = await scheduler.process(.specification(s))
            await clock.advance(to: Timestamp(year: 2017, month: 12, day: 24, hour: 22, minute: 25, second: 10))
            let results = envelope(await scheduler.waitForResult(token: s.token, timeout: .seconds(10)))
            // The cron's minutes from now up to, not including, the end.
            #expect(results.count == 6)
            #expect(results.first?.value("time") == .time(Timestamp(year: 2017, month: 12, day: 24, hour: 22, minute: 19)))
            #expect(results.last?.value("time") == .time(Timestamp(year: 2017, month: 12, day: 24, hour: 22, minute: 24)))
            #expect(results.allSatisfy { $0.values.rowCount == 3 })
        }
    }

    @Test("interrupting a repeated job stops future repetitions")
    func interruptRepeated() async throws {
        let clock = ManualClock(now: t0)
        try await withScheduler([counter], clock: clock) { scheduler in
            let s = try spec(counter, when: "repeat now ... future / 10s { now + 2s / 1s }")
            _ = await scheduler.process(.specification(s))
            await clock.advance(by: 25)
            let results = envelope(await scheduler.interrupt(token: s.token))
            #expect(results.count == 3)
            await clock.advance(by: 60)
            #expect(envelope(scheduler.redeem(token: s.token)).count == 3)
        }
    }

    @Test("only the newest results are kept, up to the configured number")
    func bounded() async throws {
        let clock = ManualClock(now: t0)
        var config = SchedulerConfiguration()
        config.maxRepeatedResults = 2
        try await withScheduler([counter], clock: clock, configuration: config) { scheduler in
            let s = try spec(counter, when: "repeat now + 40s / 10s { now + 1s / 1s }")
            _ = await scheduler.process(.specification(s))
            await clock.advance(by: 50)
            let results = envelope(await scheduler.waitForResult(token: s.token, timeout: .seconds(10)))
            // Repetitions at 0, 10, 20 and 30 s; the newest two kept.
            #expect(results.map { $0.value("time") } == [.time(t0.adding(seconds: 20)), .time(t0.adding(seconds: 30))])
        }
    }
}

@Suite("Scheduler: load and responsiveness", .timeLimit(.minutes(1)))
struct LoadTests {
    @Test("1,000 concurrent short jobs all complete, each with its own result")
    func thousandJobs() async throws {
        let loop = LoopbackService()
        var config = SchedulerConfiguration()
        config.maxJobs = 1000
        try await withScheduler([loop], clock: SystemClock(), configuration: config) { scheduler in
            var specs: [Specification] = []
            for i in 0..<1000 {
                let s = try spec(loop, when: "now", input: "job-\(i)")
                specs.append(s)
                #expect(receipt(await scheduler.process(.specification(s))) != nil)
            }
            for (i, s) in specs.enumerated() {
                let r = result(await scheduler.waitForResult(token: s.token, timeout: .seconds(30)))
                #expect(r?.value("test.output") == .string("job-\(i)"))
            }
            #expect(Set(specs.map(\.token)).count == 1000)
        }
    }

    @Test("processing a message never waits for a busy service")
    func nonBlocking() async throws {
        let gate = Gate()
        let busy = BusyService(gate: gate)
        let loop = LoopbackService()
        try await withScheduler([busy, loop], clock: SystemClock()) { scheduler in
            let s1 = Specification(capability: busy.capability, when: try When(parsing: "now"))
            #expect(receipt(await scheduler.process(.specification(s1))) != nil)
            await gate.waitEntered()
            // The busy service holds its job; everything else still answers.
            let s2 = try spec(loop, when: "now", input: "still here")
            #expect(receipt(await scheduler.process(.specification(s2))) != nil)
            #expect(result(await scheduler.waitForResult(token: s2.token, timeout: .seconds(10)))?.value("test.output") == .string("still here"))
            #expect(receipt(scheduler.redeem(token: s1.token)) != nil)
            #expect(receipt(await scheduler.waitForResult(token: s1.token, timeout: .milliseconds(50))) != nil)
            gate.open()
            #expect(result(await scheduler.waitForResult(token: s1.token, timeout: .seconds(10))) != nil)
        }
    }
}

/// A one-shot latch for tests.
final class Gate: Sendable {
    private let state = Mutex<(entered: Bool, open: Bool, waiters: [CheckedContinuation<Void, Never>], enterWaiters: [CheckedContinuation<Void, Never>])>((false, false, [], []))
    func enterAndWait() async {
        let entered = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.entered = true
            let w = s.enterWaiters
            s.enterWaiters = []
            return w
        }
        for w in entered { w.resume() }
        await withCheckedContinuation { c in
            let now = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }
    func waitEntered() async {
        await withCheckedContinuation { c in
            let now = state.withLock { s -> Bool in
                if s.entered { return true }
                s.enterWaiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }
    func open() {
        let w = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            let w = s.waiters
            s.waiters = []
            return w
        }
        for c in w { c.resume() }
    }
}

/// A service that holds its job until a gate opens (ignoring the clock).
struct BusyService: MeasurementService {
    let capability: Capability
    let gate: Gate
    init(gate: Gate) {
        self.gate = gate
        var cap = Capability(label: "busy", when: .nowToFuture)
        try! cap.statement.addResultColumn("packets.ip")
        capability = cap
    }
    func run(_ job: JobContext) async throws {
        await gate.enterAndWait()
        job.append { $0.columns[0].append(natural: 1) }
    }
}

import Testing
import Synchronization
import Logging
@testable import MPlane
@testable import MPlaneScheduler
@testable import MPlaneIO

/// A periodic capability of the loopback registry: `test.input` in, `test.counter` out.
func counterCapability(_ label: String) -> Capability {
    let registry = try! RegistryStore.shared.registry(for: RegistryStore.loopbackURI)
    var cap = Capability(label: label, when: When(start: .now, end: .future, period: 1), registry: registry)
    try! cap.statement.addParameter("test.input", constraint: .all)
    try! cap.statement.addResultColumn("test.counter")
    return cap
}

/// A counter-like service that declares a demand: a thread, and one probe per second to each
/// destination named in `test.input` (comma-separated addresses).
struct DemandingService: MeasurementService {
    let capability = counterCapability("demanding")
    var sendsPackets: Bool { true }
    func demand(for spec: Specification) -> JobDemand {
        guard case .string(let s)? = spec.statement.parameterValue("test.input") else { return .none }
        let targets = s.split(separator: ",").compactMap { IPAddress($0) }
        let period = Swift.max(1, spec.statement.when.period ?? 1)
        return JobDemand(dedicatedThread: true, packetsPerSecond: Double(targets.count) / Double(period), destinations: targets)
    }
    func run(_ job: JobContext) async throws {
        var n: UInt64 = 0
        var t = job.start
        while !job.isInterrupted {
            if let end = job.end, t >= end { break }
            try await job.sleep(until: t)
            job.append { $0.columns[0].append(natural: n) }
            n += 1
            t = t.adding(seconds: 1)
        }
    }
}

/// A service that appends ten rows in one go each second until interrupted.
struct GreedyService: MeasurementService {
    let capability = counterCapability("greedy")
    func run(_ job: JobContext) async throws {
        var t = job.start
        var n: UInt64 = 0
        while !job.isInterrupted {
            try await job.sleep(until: t)
            job.append { table in for _ in 0..<10 { table.columns[0].append(natural: n); n += 1 } }
            t = t.adding(seconds: 1)
        }
    }
}

@Suite("Scheduler: limits (hardening)", .timeLimit(.minutes(1)))
struct LimitsTests {
    let service = DemandingService()

    func demandSpec(_ input: String, when: String = "now + 1h / 1s", token: String) throws -> Specification {
        var s = try spec(service, when: when, input: input)
        s.statement.token = token
        return s
    }

    @Test("jobs in all, per client and on threads of their own are bounded; the refusal names the limit (429)")
    func jobLimits() async throws {
        var c = SchedulerConfiguration()
        c.maxJobs = 5
        c.maxJobsPerPeer = 3
        c.maxThreadJobs = 4
        c.maxPacketsPerSecondPerDestination = 1000
        let clock = ManualClock(now: t0)
        try await withScheduler([service, CounterService()], clock: clock, configuration: c) { scheduler in
            for i in 0..<3 { #expect(receipt(await scheduler.submit(try demandSpec("127.0.0.1", token: "a\(i)"), peer: "A")) != nil) }
            let perPeer = exception(await scheduler.submit(try demandSpec("127.0.0.1", token: "a3"), peer: "A"))
            #expect(perPeer?.status == 429 && perPeer?.message.contains("max-jobs-per-client") == true, "\(String(describing: perPeer))")
            #expect(receipt(await scheduler.submit(try demandSpec("127.0.0.1", token: "b0"), peer: "B")) != nil)
            let threads = exception(await scheduler.submit(try demandSpec("127.0.0.1", token: "b1"), peer: "B"))
            #expect(threads?.status == 429 && threads?.message.contains("max-thread-jobs") == true, "\(String(describing: threads))")
            // A counter job needs no thread: it takes the last slot; then everything is refused.
            var count = try spec(CounterService(), when: "now + 1h / 1s", input: "x")
            count.statement.token = "count"
            #expect(receipt(await scheduler.submit(count, peer: "C")) != nil)
            count.statement.token = "count2"
            let total = exception(await scheduler.submit(count, peer: "C"))
            #expect(total?.status == 429 && total?.message.contains("max-jobs (5") == true, "\(String(describing: total))")
            #expect(scheduler.usage.jobs == 5 && scheduler.usage.threadJobs == 4)
            // Interrupted jobs give their slots back.
            _ = await scheduler.interrupt(token: "a0")
            _ = await scheduler.interrupt(token: "a1")
            #expect(scheduler.usage.jobs == 3)
            #expect(receipt(await scheduler.submit(try demandSpec("127.0.0.1", token: "a4"), peer: "A")) != nil)
        }
    }

    @Test("thread jobs and probe rates are bounded per client too (review finding)")
    func perClient() async throws {
        var c = SchedulerConfiguration()
        c.maxThreadJobsPerPeer = 2
        c.maxPacketsPerSecondPerPeer = 3
        c.maxPacketsPerSecondPerDestination = 100
        try await withScheduler([service], clock: ManualClock(now: t0), configuration: c) { scheduler in
            #expect(receipt(await scheduler.submit(try demandSpec("192.0.2.1", token: "a1"), peer: "A")) != nil)
            #expect(receipt(await scheduler.submit(try demandSpec("192.0.2.2", token: "a2"), peer: "A")) != nil)
            let threads = exception(await scheduler.submit(try demandSpec("192.0.2.3", token: "a3"), peer: "A"))
            #expect(threads?.status == 429 && threads?.message.contains("max-thread-jobs-per-client") == true, "\(String(describing: threads))")
            let rate = exception(await scheduler.submit(try demandSpec("192.0.2.4,192.0.2.5,192.0.2.6,192.0.2.7", token: "b1"), peer: "B"))
            #expect(rate?.status == 429 && rate?.message.contains("max-packet-rate-per-client") == true, "\(String(describing: rate))")
            #expect(receipt(await scheduler.submit(try demandSpec("192.0.2.4", token: "b2"), peer: "B")) != nil)
        }
    }

    @Test("one result is bounded by bytes as well as rows (review finding)")
    func resultBytes() async throws {
        var c = SchedulerConfiguration()
        c.maxResultBytes = 100_000
        let clock = ManualClock(now: t0)
        let counter = CounterService()
        try await withScheduler([counter], clock: clock, configuration: c) { scheduler in
            let s = try spec(counter, when: "now ... future / 1s", input: String(repeating: "y", count: 30_000))
            _ = await scheduler.submit(s)
            await clock.advance(by: 20)
            let r = result(await scheduler.waitForResult(token: s.token, timeout: .seconds(10)))
            // Rows of 30 kB: the fourth passes 100 kB and ends the job.
            #expect(r?.values.rowCount == 4, "\(r?.values.rowCount ?? -1) rows")
        }
    }

    @Test("probes per second are bounded in all and per destination")
    func packetRates() async throws {
        var c = SchedulerConfiguration()
        c.maxPacketsPerSecond = 10
        c.maxPacketsPerSecondPerDestination = 2
        try await withScheduler([service], clock: ManualClock(now: t0), configuration: c) { scheduler in
            #expect(receipt(await scheduler.submit(try demandSpec("192.0.2.1,192.0.2.2", token: "x1"))) != nil)
            #expect(receipt(await scheduler.submit(try demandSpec("192.0.2.1", token: "x2"))) != nil)
            let dest = exception(await scheduler.submit(try demandSpec("192.0.2.1", token: "x3")))
            #expect(dest?.status == 429 && dest?.message.contains("max-packet-rate-per-destination") == true
                    && dest?.message.contains("192.0.2.1") == true, "\(String(describing: dest))")
            // Even a slower job to that destination would pass its rate.
            #expect(exception(await scheduler.submit(try demandSpec("192.0.2.1", when: "now + 1h / 2s", token: "x4")))?.status == 429)
            // Another destination is fine.
            #expect(receipt(await scheduler.submit(try demandSpec("192.0.2.3", when: "now + 1h / 2s", token: "x6"))) != nil)
            let many = (10..<20).map { "192.0.2.\($0)" }.joined(separator: ",")
            let total = exception(await scheduler.submit(try demandSpec(many, token: "x5")))
            #expect(total?.status == 429 && total?.message.contains("max-packet-rate (10") == true, "\(String(describing: total))")
            #expect(scheduler.usage.packetsPerSecond == 3.5)
        }
    }

    @Test("the destination policy refuses with 403 naming the rule; deny wins over allow")
    func destinations() async throws {
        var c = SchedulerConfiguration()
        c.destinations = DestinationPolicy(allow: [IPAddress("192.0.2.0/24")!, IPAddress("2001:db8::/32")!],
                                           deny: [IPAddress("192.0.2.128/25")!])
        try await withScheduler([service], clock: ManualClock(now: t0), configuration: c) { scheduler in
            #expect(receipt(await scheduler.submit(try demandSpec("192.0.2.1", token: "ok"))) != nil)
            let denied = exception(await scheduler.submit(try demandSpec("192.0.2.200", token: "d")))
            #expect(denied?.status == 403 && denied?.message.contains("deny-destinations 192.0.2.128/25") == true,
                    "\(String(describing: denied))")
            let outside = exception(await scheduler.submit(try demandSpec("198.51.100.1", token: "o")))
            #expect(outside?.status == 403 && outside?.message.contains("allow-destinations") == true)
        }
    }

    @Test("retention counts bytes: large results push out the oldest, in both workflows' path (job finish)")
    func retainedBytes() async throws {
        var c = SchedulerConfiguration()
        c.maxRetainedBytes = 1 << 20
        c.maxJobs = 1000
        let loop = LoopbackService()
        let big = String(repeating: "x", count: 200_000)
        try await withScheduler([loop], clock: ManualClock(now: t0), configuration: c) { scheduler in
            var tokens: [String] = []
            for i in 0..<20 {
                var s = try spec(loop, when: "now", input: big)
                s.statement.token = "big-\(i)"
                tokens.append(s.statement.token!)
                _ = await scheduler.submit(s)
                _ = await scheduler.waitForResult(token: "big-\(i)", timeout: .seconds(10))
            }
            // Each result holds the input twice (parameter and column): about 400 kB.
            #expect(scheduler.jobCount <= 3, "jobs kept: \(scheduler.jobCount)")
            #expect(exception(scheduler.redeem(token: tokens[0]))?.status == 404)
            #expect(result(scheduler.redeem(token: tokens[19]))?.value("test.output") == .string(big))
        }
    }

    @Test("an open-ended job ends at max-result-rows, its rows kept")
    func resultRows() async throws {
        var c = SchedulerConfiguration()
        c.maxResultRows = 35
        let clock = ManualClock(now: t0)
        let greedy = GreedyService()
        try await withScheduler([greedy], clock: clock, configuration: c) { scheduler in
            let s = try spec(greedy, when: "now ... future / 1s")
            _ = await scheduler.submit(s)
            await clock.advance(by: 10)
            let r = result(await scheduler.waitForResult(token: s.token, timeout: .seconds(10)))
            // Interrupted at the batch that reached 35: four batches of ten.
            #expect(r?.values.rowCount == 40)
            #expect(scheduler.usage.jobs == 0)
        }
    }

    @Test("the limits a client plans around are capability metadata where the registry has them")
    func metadata() throws {
        var c = SchedulerConfiguration()
        c.maxJobsPerPeer = 7
        c.maxPacketsPerSecond = 123
        let probeRegistry = try RegistryStore.shared.registry(for: RegistryStore.probeURI)
        struct Probe: MeasurementService {
            let capability: Capability
            var sendsPackets: Bool { true }
            func run(_ job: JobContext) async throws {}
        }
        var cap = Capability(label: "p", when: .nowToFuture, registry: probeRegistry)
        try cap.statement.addResultColumn("packets.ip")
        let scheduler = Scheduler(services: [Probe(capability: cap), LoopbackService()], configuration: c)
        let caps = scheduler.capabilities
        #expect(caps[0].statement.metadataValue("probe.jobs.max") == .natural(7))
        #expect(caps[0].statement.metadataValue("icmp.rate.max") == .natural(123))
        #expect(caps[0].statement.metadataValue("result.octets.max") == .natural(UInt64(c.maxRetainedBytes)))
        // The RI's test-loopback is served unchanged (its registry has none of them).
        #expect(caps[1] == LoopbackService().capability)
    }

    @Test("refusals are logged rate-limited: a burst, then one summary per interval")
    func rateLimitedLog() {
        let now = Atomic<UInt64>(0)
        let log = RateLimitedLog(logger: Logger(label: "test"), burst: 3, interval: .seconds(60), now: { now.load(ordering: .relaxed) })
        var logged = 0
        for _ in 0..<1000 { if log.log("refused", kind: "k") { logged += 1 } }
        #expect(logged == 3)
        #expect(log.suppressed("k") == 997)
        now.store(61_000_000_000, ordering: .relaxed)
        #expect(log.log("refused", kind: "k"))
        #expect(log.suppressed("k") == 0)
        #expect(log.log("other", kind: "j"), "kinds are counted apart")
    }
}

@Suite("Repetitions follow one rule (hardening row 14)", .timeLimit(.minutes(1)))
struct RepetitionRuleTests {
    @Test("repeat now + 6s / 2s gives three repetitions, whatever the fraction of the second", arguments: [0, 1, 300_000, 999_999])
    func threeRepetitions(fraction: Int64) async throws {
        let start = t0.adding(microseconds: fraction)
        let counter = CounterService()
        let clock = ManualClock(now: start)
        try await withScheduler([counter], clock: clock) { scheduler in
            let s = try spec(counter, when: "repeat now + 6s / 2s { now + 1s / 1s }")
            _ = await scheduler.process(.specification(s))
            await clock.advance(by: 15)
            guard case .envelope(let e) = await scheduler.waitForResult(token: s.token, timeout: .seconds(10)) else {
                Issue.record("no envelope")
                return
            }
            #expect(e.contents.count == 3)
            // Each repetition's first row is timed at its start.
            let starts = e.contents.compactMap { m -> Value? in
                if case .result(let r) = m { return r.value("time") }
                return nil
            }
            #expect(starts == [0, 2, 4].map { .time(start.adding(seconds: $0)) })
        }
    }
}

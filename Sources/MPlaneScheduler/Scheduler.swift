public import MPlane
public import Logging
import MPlaneIO
import Synchronization

/// Settings of a ``Scheduler``, with the defaults an operator gets.
public struct SchedulerConfiguration: Sendable, Equatable {
    /// How long a finished result is kept for redemption, in seconds (default one hour).
    public var retention: Int64 = 3600
    /// How many finished results are kept at most (the oldest go first).
    public var maxRetainedResults = 1000
    /// How many bytes of finished results are kept at most, all together (the oldest go
    /// first; `retained-result-bytes`, default 16 MiB). A result larger than this on its own
    /// is kept until the next one finishes.
    public var maxRetainedBytes = 16 << 20
    /// The most rows one result (one run, or one repetition) holds; a job that reaches it is
    /// ended there, its rows kept (`max-result-rows`).
    public var maxResultRows = 100_000
    /// The most bytes the rows of one result hold, the same way (`max-result-bytes`).
    public var maxResultBytes = 16 << 20
    /// Jobs scheduled or running at once, in all (`max-jobs`).
    public var maxJobs = 256
    /// Jobs scheduled or running at once for one client (`max-jobs-per-client`): its address
    /// now, its certificate identity once TLS is in.
    public var maxJobsPerPeer = 64
    /// Jobs on threads of their own (ping, capture) at once (`max-thread-jobs`).
    public var maxThreadJobs = 32
    /// The same for one client (`max-thread-jobs-per-client`).
    public var maxThreadJobsPerPeer = 8
    /// Probes per second of all active measurements together (`max-packet-rate`).
    public var maxPacketsPerSecond = 2000
    /// Probes per second of one client's jobs (`max-packet-rate-per-client`).
    public var maxPacketsPerSecondPerPeer = 500
    /// Probes per second to one destination, all jobs together (`max-packet-rate-per-destination`).
    public var maxPacketsPerSecondPerDestination = 10
    /// Where active measurements may send (`allow-destinations`, `deny-destinations`).
    public var destinations = DestinationPolicy()
    /// How many results of a repeated specification are kept at most (the oldest are
    /// dropped, and the drop is logged and counted).
    public var maxRepeatedResults = 100
    /// How long an interrupt waits (real time) for the job to hand over its partial result
    /// before answering with a receipt.
    public var interruptWait: Duration = .seconds(1)
    /// How long past its scope's end a job may run before it is stopped, in seconds.
    public var endGrace: Int64 = 5

    public init() {}
}

/// Something that happened to a job, for callers that push results (component-initiated
/// mode) instead of waiting for redemptions.
public enum JobEvent: Sendable {
    /// The final result (a result, or an envelope of results for a repeated specification).
    case finished(token: String, message: Message)
    /// One repetition of a repeated specification finished.
    case repetition(token: String, result: Result)
    /// The services (and so the capabilities) were replaced (a configuration reload).
    case servicesChanged
}

/// Binds capabilities to services and runs specifications as jobs.
///
/// `process` never waits for a measurement: a specification is answered at once with a
/// receipt (or an exception saying why it is refused), and the job runs in the scheduler's
/// ``run()`` task group. Redemptions answer with the result once there is one, repeatedly,
/// until retention expires.
public final class Scheduler: Sendable {
    private let serviceList: Mutex<[any MeasurementService]>
    private let serviceGeneration = Atomic<Int>(0)
    public let clock: any ProbeClock
    public let configuration: SchedulerConfiguration
    let logger: Logger
    /// Jobs by owner and token: one identity's token never names, reveals or replaces
    /// another's job.
    private let jobs = Mutex<[JobKey: Job]>([:])
    private let queue: AsyncStream<Job>
    private let enqueue: AsyncStream<Job>.Continuation
    private let observers = Mutex<[UInt64: @Sendable (JobEvent) -> Void]>([:])
    private let admission: Admission
    /// Refusals are logged rate-limited: a flood of bad specifications costs a few lines.
    let refusals: RateLimitedLog
    /// Finished jobs in the order they finished, with their sizes: retention forgets from
    /// the front, so a purge costs only what it forgets.
    private let retained = Mutex(RetainedResults())
    private let observerIDs = Atomic<UInt64>(0)

    public init(services: [any MeasurementService], clock: any ProbeClock = SystemClock(),
                configuration: SchedulerConfiguration = SchedulerConfiguration(),
                logger: Logger = Logger(label: "mplane.scheduler")) {
        self.serviceList = Mutex(services)
        self.clock = clock
        self.configuration = configuration
        self.logger = logger
        admission = Admission(configuration: configuration)
        refusals = RateLimitedLog(logger: logger)
        (queue, enqueue) = AsyncStream.makeStream(of: Job.self)
    }

    /// The services specifications are matched against, in order.
    public var services: [any MeasurementService] { serviceList.withLock { $0 } }

    /// Counts service replacements, so callers can cache what they derive from capabilities.
    public var servicesGeneration: Int { serviceGeneration.load(ordering: .acquiring) }

    /// The capabilities of every service, in service order, with the limits a client plans
    /// around as metadata where the capability's registry has the elements.
    public var capabilities: [Capability] {
        let c = configuration
        return services.map { service in
            var cap = service.capability
            var limits: [(String, Int)] = [(ElementName.probeJobsMax, c.maxJobsPerPeer), (ElementName.resultOctetsMax, c.maxRetainedBytes),
                                           (ElementName.resultRowsMax, c.maxResultRows)]
            if service.sendsPackets {
                limits += [(ElementName.icmpRateMax, c.maxPacketsPerSecond),
                           (ElementName.icmpRateDestinationMax, c.maxPacketsPerSecondPerDestination)]
            }
            for (name, value) in limits where cap.statement.registry[name] != nil {
                try? cap.statement.addMetadata(name, .natural(UInt64(Swift.max(0, value))))
            }
            return cap
        }
    }

    /// Jobs scheduled or running, jobs on threads of their own, and probes per second in use.
    public var usage: (jobs: Int, threadJobs: Int, packetsPerSecond: Double) { admission.usage }

    /// Replaces the services (a configuration reload). New specifications are matched
    /// against the new ones; running jobs finish with the service they started with, and
    /// results already made stay redeemable.
    public func replaceServices(_ new: [any MeasurementService]) {
        serviceList.withLock { $0 = new }
        serviceGeneration.add(1, ordering: .releasing)
        logger.info("services replaced", metadata: [
            "mplane.capabilities": "\(new.compactMap(\.capability.statement.label).joined(separator: ","))",
        ])
        notify(.servicesChanged)
    }

    // MARK: Running

    /// Runs jobs until the task is cancelled; then interrupts every job and returns once
    /// each has stored what it measured.
    public func run() async {
        await withDiscardingTaskGroup { group in
            for await job in queue {
                group.addTask { await self.execute(job) }
            }
            for job in jobs.withLock({ Array($0.values) }) where !job.isFinished { job.interrupt() }
        }
    }

    /// Stops accepting jobs: `run()` returns once the running ones are done.
    public func shutdown() {
        for job in jobs.withLock({ Array($0.values) }) where !job.isFinished { job.interrupt() }
        enqueue.finish()
    }

    // MARK: Messages

    /// Answers a message: a specification with a receipt or an exception, a redemption
    /// with the result or a receipt, an interrupt with the partial result or a receipt, an
    /// envelope with an envelope of the answers.
    public func process(_ message: Message, peer: String? = nil, owner: String? = nil, permitted: Permitted? = nil) async -> Message {
        purge()
        switch message {
        case .specification(let spec): return await submit(spec, peer: peer, owner: owner, permitted: permitted)
        case .redemption(let r): return redeem(token: r.token, owner: owner)
        case .interrupt(let i): return await interrupt(token: i.token, owner: owner)
        case .envelope(let env):
            var replies: [Message] = []
            for m in env.contents { replies.append(await process(m, peer: peer, owner: owner, permitted: permitted)) }
            return .envelope(Envelope(contents: replies, token: env.token, label: env.label))
        default:
            return .exception(MPlaneException(.invalidMessage, token: message.token, message: "Cannot process a \(message.kind.rawValue) here"))
        }
    }

    /// The service whose capability `spec` fulfils, or the reason there is none.
    public func service(for spec: Specification) -> Swift.Result<any MeasurementService, MPlaneException> {
        match(spec).map(\.0)
    }

    /// Which capabilities a requester may use (its authorisations); nil: all.
    public typealias Permitted = @Sendable (Capability) -> Bool

    /// The service whose capability `spec` fulfils, with `spec` completed by the service's
    /// parameter defaults; or the reason there is none.
    func match(_ spec: Specification, permitted: Permitted? = nil) -> Swift.Result<(any MeasurementService, Specification), MPlaneException> {
        let now = clock.now()
        var reason: String? = nil
        let usable = permitted.map { p in services.filter { p($0.capability) } } ?? services
        for s in usable {
            let candidate = completed(spec, for: s)
            guard let why = candidate.mismatch(with: s.capability, now: now) else {
                if let refusal = s.refusal(for: candidate) {
                    return .failure(MPlaneException(.invalidValue, token: spec.token, message: "Specification refused: \(refusal)"))
                }
                return .success((s, candidate))
            }
            // Prefer the reason of a capability that has the same schema and verb.
            if candidate.statement.verb == s.capability.statement.verb, candidate.schemaHash == s.capability.schemaHash {
                reason = reason ?? "\(s.capability.statement.label ?? s.capability.token): \(why)"
            }
        }
        if let reason {
            return .failure(MPlaneException(.refused, token: spec.token, message: "Specification refused: \(reason)"))
        }
        if permitted != nil {
            // Authorisations apply: whatever the requester may not use is refused alike, and
            // the answer names nothing it may not see.
            return .failure(MPlaneException(.forbidden, token: spec.token, message: "Specification not authorised"))
        }
        return .failure(MPlaneException(.noService, token: spec.token, message: "No service registered for specification"))
    }

    /// `spec` with the parameters it leaves out that `service` has defaults for.
    private func completed(_ spec: Specification, for service: any MeasurementService) -> Specification {
        let defaults = service.parameterDefaults
        guard !defaults.isEmpty, spec.statement.registry.uri == service.capability.statement.registry.uri,
              spec.statement.parameters.count < service.capability.statement.parameters.count
        else { return spec }
        var out = spec
        for p in service.capability.statement.parameters where spec.statement.parameter(p.name) == nil {
            guard let v = defaults[p.name] else { return spec }
            do { try out.statement.addParameter(p.name, constraint: .all, value: v) } catch { return spec }
        }
        return out
    }

    /// Starts a job for `spec` on behalf of `peer` (who sent it: its address or identity,
    /// for the per-client limit); answers with its receipt, or an exception (403 refused,
    /// 404 no such capability, 429 a limit reached, naming it).
    public func submit(_ spec: Specification, peer: String? = nil, owner: String? = nil, permitted: Permitted? = nil) async -> Message {
        let service: any MeasurementService
        let accepted: Specification
        // A specification completed with defaults keeps the token its sender computed.
        let token = spec.token
        switch self.match(spec, permitted: permitted) {
        case .success(let (s, completed)):
            service = s
            accepted = completed
        case .failure(let e):
            refusals.log("specification refused", kind: "unmatched", level: .info, metadata: ["mplane.token": "\(spec.token)", "mplane.reason": "\(e.message)"])
            return .exception(e)
        }
        var spec = accepted
        spec.statement.token = token
        if let refusal = await service.slowRefusal(for: spec) {
            refusals.log("specification refused", kind: "refused", level: .info, metadata: ["mplane.token": "\(token)", "mplane.reason": "\(refusal)"])
            return .exception(MPlaneException(.invalidValue, token: token, message: "Specification refused: \(refusal)"))
        }
        // The same specification again while it runs: the running job's receipt.
        if let running = jobs.withLock({ $0[JobKey(owner, token)] }), !running.isFinished {
            return .receipt(Receipt(specification: running.specification))
        }
        let demand = service.demand(for: spec)
        if let refusal = admission.admit(demand, peer: peer) {
            refusals.log("specification refused", kind: "limit", level: .info, metadata: ["mplane.token": "\(token)", "mplane.reason": "\(refusal.message)"])
            return .exception(MPlaneException(refusal.kind, token: token, message: "Specification refused: \(refusal.message)"))
        }
        purge()
        let job = Job(token: token, specification: spec, service: service, submitted: clock.now(), demand: demand, peer: peer, owner: owner)
        let existing: Job? = jobs.withLock { table in
            if let j = table[job.key], !j.isFinished { return j }
            table[job.key] = job
            return nil
        }
        if existing != nil { admission.release(demand, peer: peer) }
        if existing == nil {
            logger.debug("job scheduled", metadata: ["mplane.token": "\(token)", "mplane.when": "\(spec.statement.when)"])
            enqueue.yield(job)
        }
        return .receipt(Receipt(specification: spec))
    }

    /// The result of job `token` if it has finished, else its receipt; an exception for an
    /// unknown (or expired) token.
    /// Another owner's job is unknown to `owner` (nil: anyone's).
    public func redeem(token: String, owner: String? = nil) -> Message {
        guard let job = lookup(token, owner: owner) else { return unknown(token) }
        return job.final ?? .receipt(Receipt(specification: job.specification))
    }

    /// Job `token` of `owner`; with no owner (the program's own callers), anyone's.
    func lookup(_ token: String, owner: String?) -> Job? {
        jobs.withLock { table in
            if let job = table[JobKey(owner, token)] { return job }
            guard owner == nil else { return nil }
            let wanted = Array(token.utf8)
            return table.first { $0.key.token == wanted }?.value
        }
    }

    /// Waits up to `timeout` (real time) for job `token` to finish; answers as ``redeem``.
    public func waitForResult(token: String, timeout: Duration, owner: String? = nil) async -> Message {
        guard let job = lookup(token, owner: owner) else { return unknown(token) }
        if job.final == nil {
            await withTaskGroup(of: Void.self) { g in
                g.addTask { await job.waitFinished() }
                g.addTask { try? await Task.sleep(for: timeout) }
                await g.next()
                g.cancelAll()
            }
        }
        return redeem(token: token, owner: owner)
    }

    /// Interrupts job `token`: answers with its (partial) result if it hands it over within
    /// ``SchedulerConfiguration/interruptWait``, else with a receipt.
    public func interrupt(token: String, owner: String? = nil) async -> Message {
        guard let job = lookup(token, owner: owner) else { return unknown(token) }
        if !job.isFinished {
            logger.info("job interrupted", metadata: ["mplane.token": "\(token)"])
            job.interrupt()
        }
        return await waitForResult(token: token, timeout: configuration.interruptWait, owner: owner)
    }

    private func unknown(_ token: String) -> Message {
        .exception(MPlaneException(.unknown, token: token, message: "Unknown job"))
    }

    // MARK: Observers

    /// Calls `callback` for every job event until the returned id is removed.
    @discardableResult
    public func addObserver(_ callback: @escaping @Sendable (JobEvent) -> Void) -> UInt64 {
        let id = observerIDs.add(1, ordering: .relaxed).newValue
        observers.withLock { $0[id] = callback }
        return id
    }

    public func removeObserver(_ id: UInt64) { _ = observers.withLock { $0.removeValue(forKey: id) } }

    private func notify(_ event: JobEvent) {
        for callback in observers.withLock({ Array($0.values) }) { callback(event) }
    }

    // MARK: Retention

    /// Forgets finished jobs past the retention time, and the oldest beyond the count and
    /// byte limits. Costs only what it forgets (finished jobs are kept in finishing order).
    func purge() {
        let horizon = clock.now().adding(seconds: -configuration.retention)
        let c = configuration
        let forget = retained.withLock { r in
            r.popExpired(horizon: horizon, maxCount: c.maxRetainedResults, maxBytes: c.maxRetainedBytes)
        }
        guard !forget.isEmpty else { return }
        jobs.withLock { table in
            // Only the job that finished: a token run again since is a different job.
            for job in forget where table[job.key] === job { table[job.key] = nil }
        }
    }

    /// Records a finished job for retention.
    private func retain(_ job: Job, bytes: Int, at time: Timestamp) {
        retained.withLock { $0.append(job, bytes: bytes, at: time) }
        purge()
    }

    /// Number of jobs known (running and retained).
    public var jobCount: Int { jobs.withLock { $0.count } }

    // MARK: Execution

    func execute(_ job: Job) async {
        job.state.withLock { $0.phase = .running }
        let spec = job.specification
        let final: Message
        if spec.statement.when.isRepeated {
            final = await executeRepeated(job)
        } else {
            let (start, end) = spec.statement.when.datetimes(now: job.submitted)
            let result = await runOnce(job, spec, start: start ?? job.submitted, end: end)
            if let failure = job.state.withLock({ $0.failure }), result.values.rowCount == 0 {
                // Nothing measured: say why rather than hand back an empty result.
                final = .exception(MPlaneException(.measurementFailed, token: job.token, message: "Measurement failed: \(failure)"))
            } else {
                final = .result(result)
            }
        }
        let finishedAt = clock.now()
        job.finish(final, at: finishedAt)
        admission.release(job.demand, peer: job.peer)
        retain(job, bytes: final.storageBytes, at: finishedAt)
        logger.debug("job finished", metadata: ["mplane.token": "\(job.token)"])
        notify(.finished(token: job.token, message: final))
    }

    private func executeRepeated(_ job: Job) async -> Message {
        let spec = job.specification
        var kept: [Result] = []
        var dropped = 0
        var repetitions = spec.statement.when.repetitions(now: job.submitted)
        var upcoming = repetitions.next()
        // One name for the whole series: a service may carry state from one repetition to
        // the next (a flow table across its cuts), and is told when the series ends.
        let series = JobSeries(token: job.token, owner: job.owner)
        defer { job.service.seriesEnded(series) }
        while let repetition = upcoming {
            if job.isInterrupted || Task.isCancelled { break }
            let (start, end) = repetition.datetimes(now: job.submitted)
            guard let start else { break }
            upcoming = repetitions.next()
            var sub = spec
            sub.statement.when = repetition
            let next = upcoming.flatMap { $0.datetimes(now: job.submitted).0 }
            let result = await runOnce(job, sub, start: start, end: end, series: series, nextStart: next)
            // A repetition the interrupt caught before it began measured nothing.
            if job.isInterrupted && result.values.rowCount == 0 && clock.now() < start { break }
            kept.append(result)
            if kept.count > configuration.maxRepeatedResults {
                kept.removeFirst()
                dropped += 1
                logger.notice("repeated job dropped its oldest result", metadata: [
                    "mplane.token": "\(job.token)", "mplane.dropped": "\(dropped)",
                ])
            }
            notify(.repetition(token: job.token, result: result))
        }
        return .envelope(Envelope(contents: kept.map { .result($0) }, token: job.token, label: spec.statement.label))
    }

    /// Runs the service once for `spec` over `start ... end`: waits for the start, runs
    /// until the service returns, the job is interrupted, or the scope's end (plus grace)
    /// has passed; returns the rows measured.
    private func runOnce(_ job: Job, _ spec: Specification, start: Timestamp, end: Timestamp?,
                         series: JobSeries? = nil, nextStart: Timestamp? = nil) async -> Result {
        let period = spec.statement.when.period
        var expected = 1
        if let end, let period, period > 0 {
            expected = Swift.min(1_000_000, Int((end.microseconds - start.microseconds) / (period * 1_000_000)) + 2)
        }
        let context = JobContext(specification: spec, start: start, end: end, period: period, clock: clock,
                                 logger: logger, expectedRows: expected, maxRows: configuration.maxResultRows,
                                 maxBytes: configuration.maxResultBytes, series: series, nextStart: nextStart)
        let alreadyInterrupted = job.state.withLock { s -> Bool in
            s.current = context
            return s.interrupted
        }
        if alreadyInterrupted { context.interrupt() }
        let service = job.service
        let clock = self.clock
        let grace = configuration.endGrace
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await clock.sleep(until: start)
                    guard !context.isInterrupted else { return }
                    context.markStarted(at: clock.now())
                    try await service.run(context)
                } catch is CancellationError {
                } catch {
                    job.state.withLock { $0.failure = "\(error)" }
                    context.logger.warning("service failed", metadata: ["mplane.token": "\(job.token)", "error": "\(error)"])
                }
            }
            group.addTask { await job.waitInterrupted() }
            if let end {
                group.addTask { try? await clock.sleep(until: end.adding(seconds: grace)) }
            }
            await group.next()
            context.interrupt()
            group.cancelAll()
        }
        let finished = clock.now()
        let from = context.startedAt ?? Swift.min(start, finished)
        let when = from == finished ? When(start: .at(from)) : When(start: .at(from), end: .at(finished))
        var result = Result(specification: spec, when: when)
        result.values = context.snapshot
        for (name, value) in context.metadata {
            do { try result.statement.addMetadata(name, value) } catch {
                logger.debug("metadata dropped", metadata: ["mplane.element": "\(name)", "error": "\(error)"])
            }
        }
        return result
    }
}

/// Finished jobs in the order they finished, with their result sizes.
struct RetainedResults {
    private var entries: [(job: Job, bytes: Int, at: Timestamp)] = []
    private var head = 0
    private(set) var bytes = 0

    var count: Int { entries.count - head }

    mutating func append(_ job: Job, bytes: Int, at time: Timestamp) {
        entries.append((job, bytes, time))
        self.bytes += bytes
    }

    /// Removes and returns the jobs finished before `horizon`, then the oldest until at most
    /// `maxCount` and `maxBytes` remain (the newest is always kept).
    mutating func popExpired(horizon: Timestamp, maxCount: Int, maxBytes: Int) -> [Job] {
        var out: [Job] = []
        while head < entries.count {
            let e = entries[head]
            let over = count > maxCount || (bytes > maxBytes && count > 1)
            guard e.at < horizon || over else { break }
            out.append(e.job)
            bytes -= e.bytes
            head += 1
        }
        // Compact now and then: amortised O(1) per entry.
        if head > 1024 && head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
        return out
    }
}

public import Logging
public import MPlaneHTTP
import MPlaneIO
public import MPlane
public import MPlaneScheduler
import Synchronization

/// A message waiting to be posted to the supervisor.
public struct Outgoing: Sendable {
    public var message: Message
    public var url: HTTPURL
    /// Set by the queue: which entry this is, so that removing it after delivery removes
    /// this one even if the queue dropped its oldest entries meanwhile.
    public internal(set) var sequence: UInt64 = 0

    public init(message: Message, url: HTTPURL) {
        self.message = message
        self.url = url
    }
}

/// Where outgoing results wait until the supervisor accepts them. Behind a protocol so a
/// disk-backed queue can replace the in-memory one.
public protocol OutgoingQueue: Sendable {
    func push(_ item: Outgoing)
    /// The oldest item `matching` accepts, waiting until there is one; nil when the waiting
    /// task is cancelled.
    func first(where matching: @escaping @Sendable (Outgoing) -> Bool) async -> Outgoing?
    /// Removes `item`, one `first()` returned, if it is still queued (after it was delivered).
    func remove(_ item: Outgoing)
    var count: Int { get }
}

extension OutgoingQueue {
    /// The oldest item, waiting until there is one; nil when the waiting task is cancelled.
    public func first() async -> Outgoing? { await first(where: { _ in true }) }
}

/// A queue in memory bounded by count and by bytes, optionally journaled
/// (`DirectoryJournal`) so that what waits survives a restart. When full, the oldest item is
/// dropped (logged, rate-limited, and counted).
public final class MemoryOutgoingQueue: OutgoingQueue {
    private struct Entry {
        var item: Outgoing
        var journalID: UInt64?
        var bytes: Int
    }
    private struct Waiter {
        let matching: @Sendable (Outgoing) -> Bool
        let continuation: CheckedContinuation<Outgoing?, Never>
    }
    private struct State {
        var items: [Entry] = []
        var bytes = 0
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiter: UInt64 = 0
        var nextSequence: UInt64 = 1
        var dropped = 0

        mutating func append(_ item: Outgoing, journalID: UInt64?) {
            var item = item
            item.sequence = nextSequence
            nextSequence += 1
            let size = item.message.storageBytes
            items.append(Entry(item: item, journalID: journalID, bytes: size))
            bytes += size
        }

        mutating func dropFirst() -> UInt64? {
            let e = items.removeFirst()
            bytes -= e.bytes
            dropped += 1
            return e.journalID
        }
    }
    private let state = Mutex(State())
    public let limit: Int
    public let byteLimit: Int
    let journal: (any OutgoingJournal)?
    let logger: Logger
    let drops: RateLimitedLog

    /// With a `journal`, starts with what it kept from before.
    public init(limit: Int = 10_000, byteLimit: Int = 64 << 20, journal: (any OutgoingJournal)? = nil,
                logger: Logger = Logger(label: "mplane.queue")) {
        self.limit = limit
        self.byteLimit = byteLimit
        self.journal = journal
        self.logger = logger
        drops = RateLimitedLog(logger: logger)
        if let journal {
            var kept = journal.load()
            if kept.count > limit {
                // Restarted with a lower limit: the oldest go, as they would have.
                for old in kept.prefix(kept.count - limit) { journal.remove(old.id) }
                logger.error("more queued messages kept than result-queue-limit: dropped the oldest",
                             metadata: ["mplane.dropped": "\(kept.count - limit)"])
                kept.removeFirst(kept.count - limit)
            }
            let over = state.withLock { s -> [UInt64] in
                for k in kept { s.append(k.item, journalID: k.id) }
                var over: [UInt64] = []
                while s.bytes > byteLimit && s.items.count > 1 { if let id = s.dropFirst() { over.append(id) } }
                return over
            }
            for id in over { journal.remove(id) }
        }
    }

    public func push(_ item: Outgoing) {
        let id = journal?.append(item)
        let (resumed, droppedIDs, dropped) = state.withLock {
            s -> ([(CheckedContinuation<Outgoing?, Never>, Outgoing)], [UInt64?], Int) in
            s.append(item, journalID: id)
            var droppedIDs: [UInt64?] = []
            while s.items.count > limit || (s.bytes > byteLimit && s.items.count > 1) {
                droppedIDs.append(s.dropFirst())
            }
            // Wake the waiters that now have an item (the oldest each accepts).
            var resumed: [(CheckedContinuation<Outgoing?, Never>, Outgoing)] = []
            for (key, w) in s.waiters {
                if let e = s.items.first(where: { w.matching($0.item) }) {
                    resumed.append((w.continuation, e.item))
                    s.waiters[key] = nil
                }
            }
            return (resumed, droppedIDs, s.dropped)
        }
        if !droppedIDs.isEmpty {
            for id in droppedIDs { if let id { journal?.remove(id) } }
            drops.log("outgoing queue full (result-queue-limit or result-queue-bytes): dropped the oldest message",
                      kind: "queue-full", level: .error, metadata: ["mplane.dropped": "\(dropped)"])
        }
        for (c, item) in resumed { c.resume(returning: item) }
    }

    public func first(where matching: @escaping @Sendable (Outgoing) -> Bool) async -> Outgoing? {
        let id = state.withLock { s -> UInt64 in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Outgoing?, Never>) in
                let item = state.withLock { s -> Outgoing?? in
                    if let f = s.items.first(where: { matching($0.item) }) { return .some(f.item) }
                    if Task.isCancelled { return .some(nil) }
                    s.waiters[id] = Waiter(matching: matching, continuation: c)
                    return nil
                }
                if let item { c.resume(returning: item) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.continuation.resume(returning: nil)
        }
    }

    public func remove(_ item: Outgoing) {
        let removed = state.withLock { s -> Entry? in
            guard let i = s.items.firstIndex(where: { $0.item.sequence == item.sequence }) else { return nil }
            let e = s.items.remove(at: i)
            s.bytes -= e.bytes
            return e
        }
        if let id = removed?.journalID { journal?.remove(id) }
    }
    public var count: Int { state.withLock { $0.items.count } }
    public var bytes: Int { state.withLock { $0.bytes } }
    public var dropped: Int { state.withLock { $0.dropped } }
}

/// The component-initiated workflow, for probes the supervisor cannot reach: registers the
/// capabilities (and a `callback` capability) with the supervisor, polls it for
/// specifications and interrupts, runs them, and posts receipts and results back. Polling
/// follows callback specifications when the supervisor sends them; failures back off
/// exponentially with jitter; results wait in a queue until accepted.
public final class ComponentInitiatedAgent: Sendable {
    let scheduler: Scheduler
    let registrationURL: HTTPURL
    let specificationURL: HTTPURL
    let resultURL: HTTPURL
    let pollInterval: Duration
    /// The shortest time between two polls or registrations, whatever the supervisor asks.
    let minPollInterval: Duration
    /// Origins a specification's `link` may send results to besides the supervisor's.
    let foreignOrigins: Set<String>
    let backoffMax: Duration
    let warnings: RateLimitedLog
    let clock: any ProbeClock
    let logger: Logger
    public let queue: any OutgoingQueue
    /// Where each running job's messages go, and whether its receipt is queued yet: a job
    /// can end before `handle` has queued its receipt, and its result must not overtake it.
    private let deliveries = Mutex<[String: Delivery]>([:])
    private struct Delivery {
        var url: HTTPURL
        var receiptQueued = false
        var heldResult: Message?
    }
    private let nextPoll = Mutex<Timestamp?>(nil)
    private let stats = Mutex<(polls: Int, registrations: Int)>((0, 0))
    /// Set when the capabilities changed: register them again before the next poll.
    private let capabilitiesChanged = Atomic<Bool>(false)

    public init(scheduler: Scheduler, configuration: ComponentConfiguration, clock: any ProbeClock = SystemClock(),
                queue: (any OutgoingQueue)? = nil, logger: Logger = Logger(label: "mplane.agent")) {
        self.scheduler = scheduler
        let host = configuration.clientHost ?? "127.0.0.1"
        let port = configuration.clientPort
        registrationURL = HTTPURL(host: host, port: port, path: configuration.registrationPath)
        specificationURL = HTTPURL(host: host, port: port, path: configuration.specificationPath)
        resultURL = HTTPURL(host: host, port: port, path: configuration.resultPath)
        pollInterval = configuration.pollInterval
        minPollInterval = configuration.minPollInterval
        let supervisor = resultURL.origin
        foreignOrigins = Set(configuration.resultLinkAllow.filter { $0 != supervisor })
        backoffMax = configuration.backoffMax
        self.clock = clock
        self.logger = logger
        warnings = RateLimitedLog(logger: logger)
        self.queue = queue ?? MemoryOutgoingQueue(limit: configuration.resultQueueLimit, byteLimit: configuration.resultQueueBytes,
                                                  logger: logger)
    }

    /// Where the result of a specification with `link` goes. As the RI's component does: to
    /// the supervisor's result path when the link names the supervisor (its scheme, host and
    /// port), whatever the link's path; to the link itself only when its origin is in
    /// `result-link-allow`; to the supervisor's result path otherwise (a supervisor cannot
    /// make the probe post to a third party).
    func resultTarget(link: String?) -> HTTPURL {
        guard let link else { return resultURL }
        guard let url = HTTPURL(link) else {
            warnings.log("a specification's link is not an http:// URL; its result goes to the supervisor",
                         kind: "link", level: .warning, metadata: ["mplane.link": "\(link.prefix(200))"])
            return resultURL
        }
        if url.origin == resultURL.origin { return resultURL }
        if foreignOrigins.contains(url.origin) { return url }
        warnings.log("a specification's link names an origin not in result-link-allow; its result goes to the supervisor",
                     kind: "link", level: .warning, metadata: ["mplane.link": "\(url)"])
        return resultURL
    }

    /// Polls made and registrations accepted so far.
    public var counters: (polls: Int, registrations: Int) { stats.withLock { $0 } }

    /// The capabilities registered: every service's, plus `callback`.
    public var registration: Envelope {
        var caps: [Message] = scheduler.capabilities.map { c in
            var c = c
            c.statement.token = c.token
            return .capability(c)
        }
        caps.append(.capability(Capability(verb: .callback, label: "callback", when: .nowToFuture)))
        return Envelope(contents: caps)
    }

    public func run() async throws {
        let observer = scheduler.addObserver { [self] event in
            switch event {
            case .finished(let token, let message):
                deliveries.withLock { d in
                    guard var entry = d[token] else {
                        queue.push(Outgoing(message: message, url: resultURL))
                        return
                    }
                    if entry.receiptQueued {
                        d[token] = nil
                        queue.push(Outgoing(message: message, url: entry.url))
                    } else {
                        entry.heldResult = message
                        d[token] = entry
                    }
                }
            case .servicesChanged:
                // Registered again before the next poll.
                capabilitiesChanged.store(true, ordering: .releasing)
            case .repetition:
                break
            }
        }
        defer { scheduler.removeObserver(observer) }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await self.sendLoop() }
            try await self.pollLoop()
        }
    }

    // MARK: Polling

    func pollLoop() async throws {
        var registered = false
        var failures = 0
        var pollStart = clock.now()
        while !Task.isCancelled {
            do {
                if capabilitiesChanged.exchange(false, ordering: .acquiringAndReleasing) {
                    logger.info("capabilities changed: registering them again")
                    registered = false
                }
                if !registered {
                    try await register()
                    registered = true
                    failures = 0
                }
                pollStart = clock.now()
                let reply = try await SimpleHTTPClient.request("GET", specificationURL)
                stats.withLock { $0.polls += 1 }
                switch reply.status {
                case 200:
                    failures = 0
                    await handle(reply.body)
                case 404, 204:
                    failures = 0
                case 428:
                    // Registered again, but not faster than min-poll-interval.
                    warnings.log("supervisor asks to register again", kind: "428", metadata: [:])
                    registered = false
                    try await sleep(minPollInterval)
                    continue
                default:
                    throw HTTPClientError(message: "GET \(specificationURL): status \(reply.status)")
                }
            } catch is CancellationError {
                return
            } catch {
                failures += 1
                let delay = backoff(failures)
                warnings.log("supervisor unreachable, backing off", kind: "poll", level: .warning, metadata: [
                    "error": "\(error)", "mplane.backoff_ms": "\(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)",
                ])
                try await sleep(delay)
                continue
            }
            try await waitForNextPoll(after: pollStart)
        }
    }

    func register() async throws {
        let body = MessageEncoder().encode(.envelope(registration))
        let reply = try await SimpleHTTPClient.request("POST", registrationURL, contentType: ComponentRouter.mplaneType, body: body)
        guard reply.status == 200 else {
            throw HTTPClientError(message: "registration at \(registrationURL) refused with status \(reply.status): \(String(decoding: reply.body.prefix(200), as: UTF8.self))")
        }
        stats.withLock { $0.registrations += 1 }
        logger.info("registered with the supervisor", metadata: ["mplane.url": "\(registrationURL)"])
    }

    /// Handles what a poll returned: an envelope (or a single message) of specifications
    /// and interrupts.
    func handle(_ body: [UInt8]) async {
        let message: Message
        do { message = try MessageDecoder().decode(body) } catch {
            logger.warning("supervisor sent an invalid message", metadata: ["error": "\(error)"])
            return
        }
        // The RI's listener nests envelopes (a callback specification and a specification
        // queued together arrive as an envelope inside the poll's envelope).
        var messages: [Message] = []
        func flatten(_ m: Message) {
            if case .envelope(let env) = m { env.contents.forEach(flatten) } else { messages.append(m) }
        }
        flatten(message)
        for m in messages {
            switch m {
            case .specification(let spec) where spec.statement.verb == .callback:
                // Callback control: poll again when the callback's scope starts (never sooner
                // than min-poll-interval after this poll: see waitForNextPoll).
                let at = spec.statement.when.datetimes(now: clock.now()).start ?? clock.now()
                nextPoll.withLock { $0 = at }
                logger.debug("callback control", metadata: ["mplane.next_poll": "\(at)"])
            case .specification(let spec):
                let url = resultTarget(link: spec.statement.link)
                let token = spec.token
                deliveries.withLock { $0[token] = Delivery(url: url) }
                let reply = await scheduler.submit(spec, peer: "supervisor")
                // The receipt (or the refusal) first, to the supervisor's result path as the
                // RI's component sends it; then a result that came before it.
                deliveries.withLock { d in
                    queue.push(Outgoing(message: reply, url: resultURL))
                    guard case .receipt = reply, var entry = d[token] else {
                        d[token] = nil
                        return
                    }
                    if let held = entry.heldResult {
                        d[token] = nil
                        queue.push(Outgoing(message: held, url: url))
                    } else {
                        entry.receiptQueued = true
                        d[token] = entry
                    }
                }
            case .interrupt(let i):
                let reply = await scheduler.interrupt(token: i.token)
                if case .receipt = reply { queue.push(Outgoing(message: reply, url: resultURL)) }
                // A result is pushed by the scheduler's finished event.
            case .redemption(let r):
                queue.push(Outgoing(message: scheduler.redeem(token: r.token), url: resultURL))
            default:
                logger.notice("ignoring a \(m.kind.rawValue) from the supervisor")
            }
        }
    }

    func waitForNextPoll(after pollStart: Timestamp) async throws {
        let scheduled = nextPoll.withLock { p -> Timestamp? in
            defer { p = nil }
            return p
        }
        if let scheduled {
            // A callback never makes the probe poll faster than min-poll-interval.
            let floor = pollStart.adding(microseconds: Self.microseconds(minPollInterval))
            try await clock.sleep(until: Swift.max(scheduled, floor))
        } else {
            // The configured interval with up to 10% jitter.
            let base = pollInterval.components.seconds * 1_000_000 + pollInterval.components.attoseconds / 1_000_000_000_000
            let jitter = Int64.random(in: 0...Swift.max(1, base / 10))
            try await clock.sleep(until: clock.now().adding(microseconds: base + jitter))
        }
    }

    // MARK: Sending

    /// One delivery loop per origin, so that an origin that does not answer holds back only
    /// its own messages: the supervisor's takes every message whose origin is not one of the
    /// allowed foreign ones (an origin a journal kept from an earlier configuration goes to
    /// the supervisor's result path).
    func sendLoop() async throws {
        let foreign = foreignOrigins
        try await withThrowingDiscardingTaskGroup { group in
            for origin in foreign {
                group.addTask { try await self.deliver(matching: { $0.url.origin == origin }, retarget: nil) }
            }
            try await deliver(matching: { !foreign.contains($0.url.origin) }, retarget: resultURL)
        }
    }

    /// Delivers the queued messages `matching` accepts, in order, backing off on failures;
    /// a message for another origin goes to `retarget`.
    func deliver(matching: @escaping @Sendable (Outgoing) -> Bool, retarget: HTTPURL?) async throws {
        var failures = 0
        while !Task.isCancelled {
            guard let item = await queue.first(where: matching) else { return }
            var url = item.url
            if let retarget, url.origin != retarget.origin { url = retarget }
            do {
                let reply = try await SimpleHTTPClient.request("POST", url, contentType: ComponentRouter.mplaneType,
                                                               body: MessageEncoder().encode(item.message))
                if (200..<300).contains(reply.status) {
                    queue.remove(item)
                    failures = 0
                    continue
                }
                if (400..<500).contains(reply.status) && reply.status != 408 && reply.status != 429 {
                    // The supervisor will never take it: keep nothing that blocks the rest.
                    warnings.log("supervisor refused a message", kind: "refused", level: .error,
                                 metadata: ["http.status": "\(reply.status)", "mplane.url": "\(url)"])
                    queue.remove(item)
                    continue
                }
                throw HTTPClientError(message: "POST \(url): status \(reply.status)")
            } catch is CancellationError {
                return
            } catch {
                failures += 1
                warnings.log("could not deliver, will retry", kind: "deliver \(url.origin)", level: .warning,
                             metadata: ["error": "\(error)", "mplane.queued": "\(queue.count)"])
                try await sleep(backoff(failures))
            }
        }
    }

    // MARK: Time

    /// Exponential backoff from 1 s, capped, with up to 25% jitter.
    func backoff(_ failures: Int) -> Duration {
        let capMs = backoffMax.components.seconds * 1000 + backoffMax.components.attoseconds / 1_000_000_000_000_000
        let baseMs = Swift.min(capMs, Int64(1000) << Int64(Swift.min(failures - 1, 20)))
        return .milliseconds(baseMs + Int64.random(in: 0...Swift.max(1, baseMs / 4)))
    }

    func sleep(_ d: Duration) async throws {
        try await clock.sleep(until: clock.now().adding(microseconds: Self.microseconds(d)))
    }

    static func microseconds(_ d: Duration) -> Int64 {
        d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000
    }
}

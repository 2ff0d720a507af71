public import Logging
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
    /// The oldest item, waiting until there is one; nil when the waiting task is cancelled.
    func first() async -> Outgoing?
    /// Removes `item`, one `first()` returned, if it is still queued (after it was delivered).
    func remove(_ item: Outgoing)
    var count: Int { get }
}

/// A bounded queue in memory, optionally journaled (`DirectoryJournal`) so that what waits
/// survives a restart. When full, the oldest item is dropped (logged and counted).
public final class MemoryOutgoingQueue: OutgoingQueue {
    private struct Entry {
        var item: Outgoing
        var journalID: UInt64?
    }
    private struct State {
        var items: [Entry] = []
        var waiters: [UInt64: CheckedContinuation<Outgoing?, Never>] = [:]
        var nextWaiter: UInt64 = 0
        var nextSequence: UInt64 = 1
        var dropped = 0

        mutating func append(_ item: Outgoing, journalID: UInt64?) {
            var item = item
            item.sequence = nextSequence
            nextSequence += 1
            items.append(Entry(item: item, journalID: journalID))
        }
    }
    private let state = Mutex(State())
    public let limit: Int
    let journal: (any OutgoingJournal)?
    let logger: Logger

    /// With a `journal`, starts with what it kept from before.
    public init(limit: Int = 10_000, journal: (any OutgoingJournal)? = nil, logger: Logger = Logger(label: "mplane.queue")) {
        self.limit = limit
        self.journal = journal
        self.logger = logger
        if let journal {
            var kept = journal.load()
            if kept.count > limit {
                // Restarted with a lower limit: the oldest go, as they would have.
                for old in kept.prefix(kept.count - limit) { journal.remove(old.id) }
                logger.error("more queued messages kept than result-queue-limit: dropped the oldest",
                             metadata: ["mplane.dropped": "\(kept.count - limit)"])
                kept.removeFirst(kept.count - limit)
            }
            state.withLock { s in for k in kept { s.append(k.item, journalID: k.id) } }
        }
    }

    public func push(_ item: Outgoing) {
        let id = journal?.append(item)
        let (waiters, first, dropped, droppedID) = state.withLock {
            s -> ([CheckedContinuation<Outgoing?, Never>], Outgoing?, Int, UInt64?) in
            s.append(item, journalID: id)
            var dropped = 0
            var droppedID: UInt64? = nil
            if s.items.count > limit {
                droppedID = s.items.removeFirst().journalID
                s.dropped += 1
                dropped = s.dropped
            }
            let w = Array(s.waiters.values)
            s.waiters = [:]
            return (w, s.items.first?.item, dropped, droppedID)
        }
        if dropped > 0 {
            if let droppedID { journal?.remove(droppedID) }
            logger.error("outgoing queue full: dropped the oldest message", metadata: ["mplane.dropped": "\(dropped)"])
        }
        for w in waiters { w.resume(returning: first) }
    }

    public func first() async -> Outgoing? {
        let id = state.withLock { s -> UInt64 in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Outgoing?, Never>) in
                let item = state.withLock { s -> Outgoing?? in
                    if let f = s.items.first { return .some(f.item) }
                    if Task.isCancelled { return .some(nil) }
                    s.waiters[id] = c
                    return nil
                }
                if let item { c.resume(returning: item) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(returning: nil)
        }
    }

    public func remove(_ item: Outgoing) {
        let removed = state.withLock { s -> Entry? in
            guard let i = s.items.firstIndex(where: { $0.item.sequence == item.sequence }) else { return nil }
            return s.items.remove(at: i)
        }
        if let id = removed?.journalID { journal?.remove(id) }
    }
    public var count: Int { state.withLock { $0.items.count } }
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
    let backoffMax: Duration
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
        backoffMax = configuration.backoffMax
        self.clock = clock
        self.logger = logger
        self.queue = queue ?? MemoryOutgoingQueue(limit: configuration.resultQueueLimit, logger: logger)
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
                let reply = try await SimpleHTTPClient.request("GET", specificationURL)
                stats.withLock { $0.polls += 1 }
                switch reply.status {
                case 200:
                    failures = 0
                    await handle(reply.body)
                case 404, 204:
                    failures = 0
                case 428:
                    logger.notice("supervisor asks to register again")
                    registered = false
                    continue
                default:
                    throw HTTPClientError(message: "GET \(specificationURL): status \(reply.status)")
                }
            } catch is CancellationError {
                return
            } catch {
                failures += 1
                let delay = backoff(failures)
                logger.warning("supervisor unreachable, backing off", metadata: [
                    "error": "\(error)", "mplane.backoff_ms": "\(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)",
                ])
                try await sleep(delay)
                continue
            }
            try await waitForNextPoll()
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
                // Callback control: poll again when the callback's scope starts.
                let at = spec.statement.when.datetimes(now: clock.now()).start ?? clock.now()
                nextPoll.withLock { $0 = at }
                logger.debug("callback control", metadata: ["mplane.next_poll": "\(at)"])
            case .specification(let spec):
                let url = spec.statement.link.flatMap(HTTPURL.init) ?? resultURL
                let token = spec.token
                deliveries.withLock { $0[token] = Delivery(url: url) }
                let reply = scheduler.submit(spec)
                // The receipt (or the refusal) first, then a result that came before it.
                deliveries.withLock { d in
                    queue.push(Outgoing(message: reply, url: url))
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
                let url = deliveries.withLock { $0[i.token]?.url } ?? i.statement.link.flatMap(HTTPURL.init) ?? resultURL
                let reply = await scheduler.interrupt(token: i.token)
                if case .receipt = reply { queue.push(Outgoing(message: reply, url: url)) }
                // A result is pushed by the scheduler's finished event.
            case .redemption(let r):
                queue.push(Outgoing(message: scheduler.redeem(token: r.token), url: resultURL))
            default:
                logger.notice("ignoring a \(m.kind.rawValue) from the supervisor")
            }
        }
    }

    func waitForNextPoll() async throws {
        let scheduled = nextPoll.withLock { p -> Timestamp? in
            defer { p = nil }
            return p
        }
        if let scheduled {
            try await clock.sleep(until: scheduled)
        } else {
            // The configured interval with up to 10% jitter.
            let base = pollInterval.components.seconds * 1_000_000 + pollInterval.components.attoseconds / 1_000_000_000_000
            let jitter = Int64.random(in: 0...Swift.max(1, base / 10))
            try await clock.sleep(until: clock.now().adding(microseconds: base + jitter))
        }
    }

    // MARK: Sending

    func sendLoop() async throws {
        var failures = 0
        while !Task.isCancelled {
            guard let item = await queue.first() else { return }
            do {
                let reply = try await SimpleHTTPClient.request("POST", item.url, contentType: ComponentRouter.mplaneType,
                                                               body: MessageEncoder().encode(item.message))
                if (200..<300).contains(reply.status) {
                    queue.remove(item)
                    failures = 0
                    continue
                }
                if (400..<500).contains(reply.status) && reply.status != 408 && reply.status != 429 {
                    // The supervisor will never take it: keep nothing that blocks the rest.
                    logger.error("supervisor refused a message", metadata: ["http.status": "\(reply.status)", "mplane.url": "\(item.url)"])
                    queue.remove(item)
                    continue
                }
                throw HTTPClientError(message: "POST \(item.url): status \(reply.status)")
            } catch is CancellationError {
                return
            } catch {
                failures += 1
                logger.warning("could not deliver, will retry", metadata: ["error": "\(error)", "mplane.queued": "\(queue.count)"])
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
        let us = d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000
        try await clock.sleep(until: clock.now().adding(microseconds: us))
    }
}

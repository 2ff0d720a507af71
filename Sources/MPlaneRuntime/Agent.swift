public import Logging
public import MPlaneHTTP
import MPlaneIO
public import MPlane
public import MPlaneScheduler
import Synchronization
import Dispatch

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
    /// Queues `item`. Quick: it never waits for a disk.
    func push(_ item: Outgoing)
    /// The oldest item `matching` accepts, waiting until there is one; nil when the waiting
    /// task is cancelled.
    func first(where matching: @escaping @Sendable (Outgoing) -> Bool) async -> Outgoing?
    /// Removes `item`, one `first()` returned, if it is still queued (after it was delivered).
    func remove(_ item: Outgoing)
    var count: Int { get }
    /// Returns once what was pushed and removed so far is on disk (for a queue that keeps it there).
    func flush() async
}

extension OutgoingQueue {
    /// The oldest item, waiting until there is one; nil when the waiting task is cancelled.
    public func first() async -> Outgoing? { await first(where: { _ in true }) }
    public func flush() async {}
}

/// The one writer of a journal: appends and removals run on its own serial queue, in the
/// order they were asked for, off the cooperative pool and outside any lock that a task
/// waits on. A removal asked for before its append was written cancels both.
final class JournalWriter: Sendable {
    let journal: any OutgoingJournal
    private let queue = DispatchQueue(label: "mplane.journal")
    private struct State {
        /// Queue sequence → journal id, for what is on disk.
        var written: [UInt64: UInt64] = [:]
        /// Appends asked for and not yet written.
        var pending: Set<UInt64> = []
    }
    private let state = Mutex(State())

    init(_ journal: any OutgoingJournal) { self.journal = journal }

    /// An item that is on disk already (loaded at start).
    func adopt(sequence: UInt64, id: UInt64) { state.withLock { _ = $0.written.updateValue(id, forKey: sequence) } }

    func append(_ item: Outgoing) {
        state.withLock { _ = $0.pending.insert(item.sequence) }
        queue.async { [self] in
            guard state.withLock({ $0.pending.remove(item.sequence) != nil }) else { return }  // removed meanwhile
            if let id = journal.append(item) { state.withLock { _ = $0.written.updateValue(id, forKey: item.sequence) } }
        }
    }

    func remove(sequence: UInt64) {
        if state.withLock({ $0.pending.remove(sequence) != nil }) { return }  // never written
        queue.async { [self] in
            if let id = state.withLock({ $0.written.removeValue(forKey: sequence) }) { journal.remove(id) }
        }
    }

    func flush() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in queue.async { c.resume() } }
    }
}

/// A queue in memory bounded by count and by bytes, optionally journaled
/// (`DirectoryJournal`, written by a ``JournalWriter``) so that what waits survives a
/// restart. When full, the oldest item is dropped (logged, rate-limited, and counted).
public final class MemoryOutgoingQueue: OutgoingQueue {
    private struct Entry {
        var item: Outgoing
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

        mutating func append(_ item: Outgoing) -> Outgoing {
            var item = item
            item.sequence = nextSequence
            nextSequence += 1
            let size = item.message.storageBytes
            items.append(Entry(item: item, bytes: size))
            bytes += size
            return item
        }

        mutating func dropFirst() -> UInt64 {
            let e = items.removeFirst()
            bytes -= e.bytes
            dropped += 1
            return e.item.sequence
        }
    }
    private let state = Mutex(State())
    public let limit: Int
    public let byteLimit: Int
    let writer: JournalWriter?
    let logger: Logger
    let drops: RateLimitedLog

    /// With a `journal`, starts with what it kept from before.
    public init(limit: Int = 10_000, byteLimit: Int = 64 << 20, journal: (any OutgoingJournal)? = nil,
                logger: Logger = Logger(label: "mplane.queue")) {
        self.limit = limit
        self.byteLimit = byteLimit
        writer = journal.map(JournalWriter.init)
        self.logger = logger
        drops = RateLimitedLog(logger: logger)
        if let journal, let writer {
            var kept = journal.load()
            if kept.count > limit {
                // Restarted with a lower limit: the oldest go, as they would have.
                for old in kept.prefix(kept.count - limit) { journal.remove(old.id) }
                logger.error("more queued messages kept than result-queue-limit: dropped the oldest",
                             metadata: ["mplane.dropped": "\(kept.count - limit)"])
                kept.removeFirst(kept.count - limit)
            }
            let over = state.withLock { s -> [UInt64] in
                for k in kept { writer.adopt(sequence: s.append(k.item).sequence, id: k.id) }
                var over: [UInt64] = []
                while s.bytes > byteLimit && s.items.count > 1 { over.append(s.dropFirst()) }
                return over
            }
            for sequence in over { writer.remove(sequence: sequence) }
        }
    }

    public func push(_ item: Outgoing) {
        let (resumed, droppedSequences, dropped) = state.withLock {
            s -> ([(CheckedContinuation<Outgoing?, Never>, Outgoing)], [UInt64], Int) in
            let item = s.append(item)
            // Asked of the writer under the lock, so that its order is the queue's.
            writer?.append(item)
            var droppedSequences: [UInt64] = []
            while s.items.count > limit || (s.bytes > byteLimit && s.items.count > 1) {
                droppedSequences.append(s.dropFirst())
            }
            // Wake the waiters that now have an item (the oldest each accepts).
            var resumed: [(CheckedContinuation<Outgoing?, Never>, Outgoing)] = []
            for (key, w) in s.waiters {
                if let e = s.items.first(where: { w.matching($0.item) }) {
                    resumed.append((w.continuation, e.item))
                    s.waiters[key] = nil
                }
            }
            return (resumed, droppedSequences, s.dropped)
        }
        if !droppedSequences.isEmpty {
            for sequence in droppedSequences { writer?.remove(sequence: sequence) }
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
        state.withLock { s in
            guard let i = s.items.firstIndex(where: { $0.item.sequence == item.sequence }) else { return }
            s.bytes -= s.items.remove(at: i).bytes
            writer?.remove(sequence: item.sequence)
        }
    }

    public func flush() async { await writer?.flush() }
    public var count: Int { state.withLock { $0.items.count } }
    public var bytes: Int { state.withLock { $0.bytes } }
    public var dropped: Int { state.withLock { $0.dropped } }
}

/// How the agent reaches the supervisor: one HTTP request, one answer. Behind a protocol so
/// tests drive the agent with scripted answers and no sockets.
public protocol AgentTransport: Sendable {
    func send(_ method: String, _ url: HTTPURL, contentType: String?, body: [UInt8]) async throws -> HTTPClientReply
    /// Sends a body made for the server once it is known who it is (its certificate's
    /// identity with TLS; the RI's unauthenticated identity without).
    func send(_ method: String, _ url: HTTPURL, contentType: String?,
              bodyForServer: @escaping @Sendable (String) -> [UInt8]) async throws -> HTTPClientReply
}

extension AgentTransport {
    public func send(_ method: String, _ url: HTTPURL, contentType: String?,
                     bodyForServer: @escaping @Sendable (String) -> [UInt8]) async throws -> HTTPClientReply {
        try await send(method, url, contentType: contentType, body: bodyForServer(unauthenticatedIdentity))
    }
}

/// The transport over HTTP. Every request names the component (`X-MPlane-Component`), so
/// that a supervisor tells components apart without TLS (ours does; the RI's ignores it).
public struct HTTPAgentTransport: AgentTransport {
    public static let componentHeader = "X-MPlane-Component"
    let headers: [(String, String)]
    let tls: TLSContexts?
    /// The supervisor's certificate identity, when configured (`supervisor-identity`).
    let supervisor: String?
    public init(componentName: String? = nil, tls: TLSContexts? = nil, supervisor: String? = nil) {
        headers = componentName.map { [(Self.componentHeader, $0)] } ?? []
        self.tls = tls
        self.supervisor = supervisor
    }
    public func send(_ method: String, _ url: HTTPURL, contentType: String?, body: [UInt8]) async throws -> HTTPClientReply {
        try await SimpleHTTPClient.request(method, url, contentType: contentType, body: body, headers: headers, tls: tls,
                                           expectServer: supervisor)
    }
    public func send(_ method: String, _ url: HTTPURL, contentType: String?,
                     bodyForServer: @escaping @Sendable (String) -> [UInt8]) async throws -> HTTPClientReply {
        try await SimpleHTTPClient.request(method, url, contentType: contentType, headers: headers, tls: tls, bodyForServer: bodyForServer,
                                           expectServer: supervisor)
    }
}

/// The component-initiated workflow, for probes the supervisor cannot reach: registers the
/// capabilities (and a `callback` capability) with the supervisor, polls it for
/// specifications and interrupts, runs them, and posts receipts and results back. What to do
/// and when is decided by an ``AgentMachine``; this type carries it out: it sends through its
/// ``AgentTransport``, sleeps on its clock, submits to the scheduler, and queues messages.
public final class ComponentInitiatedAgent: Sendable {
    let scheduler: Scheduler
    let registrationURL: HTTPURL
    let specificationURL: HTTPURL
    let resultURL: HTTPURL
    let warnings: RateLimitedLog
    let clock: any ProbeClock
    let transport: any AgentTransport
    let logger: Logger
    public let queue: any OutgoingQueue
    private let machine: Mutex<AgentMachine>
    /// Receipts before results. Pushing to the queue is quick (memory only; the journal is
    /// written by its own thread), so it is done under this lock to keep the order.
    private let order: Mutex<DeliveryOrder>
    private let stats = Mutex<(polls: Int, registrations: Int)>((0, 0))
    /// Set when the capabilities changed: register them again before the next poll.
    private let capabilitiesChanged = Atomic<Bool>(false)
    /// What the supervisor may see and use (`[Roles]`, `[Authorizations]`), by its identity;
    /// replaced on reload.
    let policy: AuthorizationPolicy
    var authorization: Authorization { policy.authorization }
    /// The supervisor's identity, from its certificate at the last exchange.
    private let supervisorIdentity = Mutex<String>(unauthenticatedIdentity)

    /// With `tls`, the supervisor is reached over mutual TLS (`https`), as the RI's component
    /// does when it has a `[TLS]` section.
    public init(scheduler: Scheduler, configuration: ComponentConfiguration, clock: any ProbeClock = SystemClock(),
                queue: (any OutgoingQueue)? = nil, transport: (any AgentTransport)? = nil, tls: TLSContexts? = nil,
                policy: AuthorizationPolicy? = nil,
                seed: UInt64 = UInt64.random(in: 0...UInt64.max), logger: Logger = Logger(label: "mplane.agent")) {
        self.scheduler = scheduler
        let host = configuration.clientHost ?? "127.0.0.1"
        let port = configuration.clientPort
        let secure = tls != nil
        registrationURL = HTTPURL(host: host, port: port, path: configuration.registrationPath, secure: secure)
        specificationURL = HTTPURL(host: host, port: port, path: configuration.specificationPath, secure: secure)
        resultURL = HTTPURL(host: host, port: port, path: configuration.resultPath, secure: secure)
        self.policy = policy ?? AuthorizationPolicy(configuration.authorization)
        machine = Mutex(AgentMachine(timing: .init(pollInterval: configuration.pollInterval,
                                                   minPollInterval: configuration.minPollInterval,
                                                   backoffMax: configuration.backoffMax),
                                     resultURL: resultURL, resultLinkAllow: configuration.resultLinkAllow, seed: seed))
        order = Mutex(DeliveryOrder(resultURL: resultURL))
        self.clock = clock
        self.transport = transport ?? HTTPAgentTransport(componentName: configuration.componentName, tls: tls,
                                                         supervisor: configuration.supervisorIdentity)
        self.logger = logger
        warnings = RateLimitedLog(logger: logger)
        self.queue = queue ?? MemoryOutgoingQueue(limit: configuration.resultQueueLimit, byteLimit: configuration.resultQueueBytes,
                                                  logger: logger)
    }

    /// Where the result of a specification with `link` goes (see ``AgentMachine/resultTarget(link:)``).
    func resultTarget(link: String?) -> HTTPURL {
        let (url, notes) = machine.withLock { m in (m.resultTarget(link: link), m.takeNotes()) }
        log(notes)
        return url
    }

    /// Polls made and registrations accepted so far.
    public var counters: (polls: Int, registrations: Int) { stats.withLock { $0 } }

    /// The capabilities registered: every service's, plus `callback`.
    public var registration: Envelope { registration(for: unauthenticatedIdentity) }

    /// The capabilities registered with a supervisor of `identity`: those its roles allow,
    /// plus `callback`.
    public func registration(for identity: String) -> Envelope {
        let authorization = authorization
        var caps: [Message] = scheduler.capabilities.compactMap { c in
            var c = c
            c.statement.token = c.token
            guard authorization.allows(identity, c) else { return nil }
            return .capability(c)
        }
        if caps.isEmpty && authorization.isEnforced {
            warnings.log("no capability is authorised for the supervisor: check [Roles] and [Authorizations]", kind: "azn",
                         level: .error, metadata: ["tls.peer": "\(identity)"])
        }
        caps.append(.capability(Capability(verb: .callback, label: "callback", when: .nowToFuture)))
        return Envelope(contents: caps)
    }

    /// Runs until cancelled; then waits for the queue's journal to have written what it holds.
    public func run() async throws {
        let observer = scheduler.addObserver { [self] event in
            switch event {
            case .finished(let token, let message):
                order.withLock { o in for item in o.finished(token: token, message: message) { queue.push(item) } }
            case .servicesChanged:
                // Registered again before the next poll.
                capabilitiesChanged.store(true, ordering: .releasing)
            case .repetition(let token, let result):
                var r = result
                r.statement.token = token
                order.withLock { o in for item in o.repetition(token: token, result: .result(r)) { queue.push(item) } }
            }
        }
        defer { scheduler.removeObserver(observer) }
        do {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await self.sendLoop() }
                try await self.pollLoop()
            }
        } catch {
            await queue.flush()
            throw error
        }
        await queue.flush()
    }

    // MARK: Polling

    func pollLoop() async throws {
        var action = machine.withLock { $0.start() }
        while !Task.isCancelled {
            if capabilitiesChanged.exchange(false, ordering: .acquiringAndReleasing), action != .register {
                logger.info("capabilities changed: registering them again")
                machine.withLock { $0.capabilitiesChanged() }
                if action == .poll { action = .register }
            }
            switch action {
            case .register:
                let (outcome, reply) = await exchange("POST", registrationURL, contentType: mplaneContentType) { [self] identity in
                    MessageEncoder().encode(.envelope(registration(for: identity)))
                }
                if case .status(200) = outcome {
                    stats.withLock { $0.registrations += 1 }
                    logger.info("registered with the supervisor", metadata: ["mplane.url": "\(registrationURL)"])
                } else if case .status(let s) = outcome {
                    warnings.log("registration refused", kind: "register", level: .warning, metadata: [
                        "http.status": "\(s)", "mplane.reply": "\(String(decoding: (reply?.body ?? []).prefix(200), as: UTF8.self))",
                    ])
                }
                action = step { $0.registration(outcome, now: clock.now()) }
            case .poll:
                let (outcome, reply) = await exchange("GET", specificationURL, contentType: nil, body: [])
                if case .status = outcome { stats.withLock { $0.polls += 1 } }
                let (work, next) = step { $0.polled(outcome, body: reply?.body ?? [], now: clock.now()) }
                for w in work { await perform(w) }
                action = next
            case .sleep(let until):
                do { try await clock.sleep(until: until) } catch { return }
                action = step { $0.woke(now: clock.now()) }
            }
        }
    }

    /// One request, its outcome as the machine reads it.
    func exchange(_ method: String, _ url: HTTPURL, contentType: String?, body: [UInt8]) async -> (AgentMachine.Outcome, HTTPClientReply?) {
        await exchange { try await transport.send(method, url, contentType: contentType, body: body) }
    }

    /// One request whose body is made for the server it reaches.
    func exchange(_ method: String, _ url: HTTPURL, contentType: String?,
                  bodyForServer: @escaping @Sendable (String) -> [UInt8]) async -> (AgentMachine.Outcome, HTTPClientReply?) {
        await exchange { try await transport.send(method, url, contentType: contentType, bodyForServer: bodyForServer) }
    }

    private func exchange(_ send: () async throws -> HTTPClientReply) async -> (AgentMachine.Outcome, HTTPClientReply?) {
        do {
            let reply = try await send()
            if let identity = reply.peerIdentity { supervisorIdentity.withLock { $0 = identity } }
            return (.status(reply.status), reply)
        } catch {
            return (.unreachable("\(error)"), nil)
        }
    }

    /// Runs `body` on the machine and logs its notes.
    func step<T>(_ body: (inout AgentMachine) -> T) -> T {
        let (value, notes) = machine.withLock { m in (body(&m), m.takeNotes()) }
        log(notes)
        return value
    }

    func log(_ notes: [AgentMachine.Note]) {
        for n in notes { warnings.log("\(n.text)", kind: n.kind, level: .warning, metadata: [:]) }
    }

    /// What the supervisor may use; nil when authorisations are not configured.
    func permittedForSupervisor() -> Scheduler.Permitted? {
        let authorization = authorization
        guard authorization.isEnforced else { return nil }
        let who = supervisorIdentity.withLock { $0 }
        return { authorization.allows(who, $0) }
    }

    /// Carries out what a poll asked for.
    func perform(_ work: AgentMachine.Work) async {
        switch work {
        case .submit(let spec, let url):
            let token = spec.token
            order.withLock { $0.expect(token: token, url: url) }
            let reply = await scheduler.submit(spec, peer: "supervisor", permitted: permittedForSupervisor())
            order.withLock { o in for item in o.submitted(token: token, reply: reply) { queue.push(item) } }
        case .interrupt(let token):
            let reply = await scheduler.interrupt(token: token)
            if case .receipt = reply { queue.push(Outgoing(message: reply, url: resultURL)) }
            // A result is pushed by the scheduler's finished event.
        case .redeem(let token):
            queue.push(Outgoing(message: scheduler.redeem(token: token), url: resultURL))
        }
    }

    // MARK: Sending

    /// One delivery loop per origin, so that an origin that does not answer holds back only
    /// its own messages: the supervisor's takes every message whose origin is not one of the
    /// allowed foreign ones (an origin a journal kept from an earlier configuration goes to
    /// the supervisor's result path).
    func sendLoop() async throws {
        let foreign = machine.withLock { $0.foreignOrigins }
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
            let (outcome, _) = await exchange("POST", url, contentType: mplaneContentType, body: MessageEncoder().encode(item.message))
            switch DeliveryVerdict(outcome) {
            case .delivered:
                queue.remove(item)
                failures = 0
            case .refused:
                // The supervisor will never take it: keep nothing that blocks the rest.
                warnings.log("supervisor refused a message", kind: "refused", level: .error,
                             metadata: ["mplane.outcome": "\(outcome)", "mplane.url": "\(url)"])
                queue.remove(item)
            case .retry:
                failures += 1
                warnings.log("could not deliver, will retry", kind: "deliver \(url.origin)", level: .warning,
                             metadata: ["mplane.outcome": "\(outcome)", "mplane.queued": "\(queue.count)"])
                let delay = machine.withLock { $0.backoff(failures) }
                do { try await clock.sleep(until: clock.now().adding(microseconds: delay)) } catch { return }
            }
        }
    }
}

public import MPlane

/// A capability a component registered, as the store keeps it.
public struct OfferedCapability: Sendable, Equatable {
    /// The token clients use for it: unique across components (see ``publicToken(component:token:)``).
    public var publicToken: String
    /// The component that offers it.
    public var component: String
    /// The component's own token for it.
    public var token: String
    public var label: String?
    /// The capability as the component sent it (mPlane JSON).
    public var body: String

    public init(publicToken: String, component: String, token: String, label: String?, body: String) {
        self.publicToken = publicToken
        self.component = component
        self.token = token
        self.label = label
        self.body = body
    }
}

/// One message waiting for a component's poll: a specification or an interrupt.
public struct WorkItem: Sendable, Equatable {
    public enum Kind: String, Sendable { case specification, interrupt }
    public var id: Int64
    public var token: String
    public var kind: Kind
    /// The message (mPlane JSON) to hand out.
    public var body: String
}

/// A job: a specification a client sent through the supervisor to one component.
public struct JobRecord: Sendable, Equatable {
    public enum State: String, Sendable { case queued, claimed, running, done, failed }
    public var token: String
    public var component: String
    public var state: State
    public var specification: String
    public var receipt: String?
    /// The result, or the exception, once it came.
    public var answer: String?
    /// The identity of the client that started it (its certificate's with TLS); nil for jobs
    /// stored before owners were (anyone's).
    public var owner: String? = nil
}

/// A result kept in the store, without its body (for listings).
public struct ResultSummary: Sendable, Equatable {
    public var id: Int64
    public var component: String
    public var token: String
    public var label: String?
    public var start: Timestamp?
    public var end: Timestamp?
    public var rows: Int
    public var bytes: Int
    public var received: Timestamp
}

/// A registered component, for the listing of components.
public struct ComponentSummary: Sendable, Equatable {
    public var name: String
    public var address: String?
    public var registered: Timestamp
    public var seen: Timestamp
    /// The public tokens and labels of its capabilities.
    public var capabilities: [(token: String, label: String?)]

    public static func == (a: Self, b: Self) -> Bool {
        a.name == b.name && a.address == b.address && a.registered == b.registered && a.seen == b.seen
            && a.capabilities.map(\.token) == b.capabilities.map(\.token)
    }
}

/// What a poll needs to know (``SupervisorStore/pollState(component:now:redeliverAfter:)``).
public struct PollState: Sendable, Equatable {
    public var registered: Bool
    public var callback: CallbackStyle?
    public var due: Bool
    public var next: Timestamp?
}

/// What ``SupervisorStore/store(component:messages:now:)`` kept.
public struct StoreOutcome: Sendable, Equatable {
    /// Messages written.
    public var stored: Int
    /// Tokens that are no job of the component (not written).
    public var unknownTokens: [String]
}

/// A specification to queue for one component.
public struct NewJob: Sendable {
    public var token: String
    public var component: String
    public var capability: String?
    public var label: String?
    public var specification: Message
    public var start: Timestamp
    /// Who asked for it (``JobRecord/owner``).
    public var owner: String?
    public init(token: String, component: String, capability: String?, label: String?, specification: Message, start: Timestamp,
                owner: String? = nil) {
        self.owner = owner
        self.token = token
        self.component = component
        self.capability = capability
        self.label = label
        self.specification = specification
        self.start = start
    }
}

public enum EnqueueOutcome: Sendable, Equatable {
    case queued
    /// A job with this token exists already.
    case exists
    /// The component has `max-queued-per-component` items waiting.
    case full
}

/// What the supervisor's registration of a component changed.
public struct RegistrationOutcome: Sendable, Equatable {
    /// The labels (or tokens, for capabilities without a label) registered.
    public var registered: [String]
}

/// How a component asks to be called back (callback control), from its registration.
public enum CallbackStyle: String, Sendable {
    /// Ours: a capability with verb `callback`.
    case verb
    /// The RI's: a `measure` capability labelled `callback`.
    case label
}

/// The supervisor's durable state. Every method that changes something returns once the
/// change is committed (and synced): what a peer was told is stored is stored. One protocol,
/// so that the embedded store (SQLite) and the shared one (PostgreSQL, to come) are driven by
/// one supervisor and one test suite.
public protocol SupervisorStore: Sendable {
    /// Runs what the store needs while it is used (a connection pool), until cancelled.
    func run() async
    /// Makes the store ready once ``run()`` runs (migrations).
    func prepare() async throws

    // MARK: The probe-facing side

    /// Replaces what `component` offers with `capabilities` (its registration), and records
    /// it as seen from `address` now.
    func register(component: String, address: String?, capabilities: [Capability], callback: CallbackStyle?,
                  now: Timestamp) async throws -> RegistrationOutcome
    /// Removes the capabilities `tokens` (component tokens) of `component`.
    func withdraw(component: String, tokens: [String], now: Timestamp) async throws
    /// What a poll needs to know, in one read: whether `component` is registered, how it
    /// takes callbacks, whether anything is due for it at `now` (queued and started, or handed
    /// out more than `redeliverAfter` µs ago without an answer), and when the next queued
    /// item starts. A poll that finds nothing due writes nothing.
    func pollState(component: String, now: Timestamp, redeliverAfter: Int64) async throws -> PollState
    /// Hands out, once, what is due for `component` at `now` (see ``pollState``), at most
    /// `limit` items, claimed in the transaction that reads them. Returns the items and the
    /// start of the next queued one.
    func claim(component: String, now: Timestamp, redeliverAfter: Int64, limit: Int) async throws
        -> (items: [WorkItem], next: Timestamp?)
    /// Records when components were last seen (batched by the supervisor, about once a second).
    func markSeen(_ seen: [String: (address: String?, at: Timestamp)]) async throws
    /// How many components are registered (with `address`: from that address).
    func componentCount(address: String?) async throws -> Int
    /// Keeps what a component sent back for its own jobs (receipts, results, exceptions),
    /// each result once; returns once committed.
    func store(component: String, messages: [Message], now: Timestamp) async throws -> StoreOutcome

    // MARK: The client-facing side

    /// The capabilities of the components seen since `presentSince`.
    func capabilities(presentSince: Timestamp) async throws -> [OfferedCapability]
    func capability(publicToken: String) async throws -> OfferedCapability?
    /// Every registered component, present or not.
    func components() async throws -> [ComponentSummary]
    /// Queues each job's specification for its component, in one transaction; for each,
    /// whether it was queued (false: a job with that token exists, or its component has
    /// `maxQueued` items waiting already, see ``EnqueueOutcome``).
    func enqueue(_ jobs: [NewJob], now: Timestamp, maxQueued: Int) async throws -> [EnqueueOutcome]
    /// Queues an interrupt of job `token` for its component.
    func enqueueInterrupt(token: String, now: Timestamp) async throws -> Bool
    func job(token: String) async throws -> JobRecord?
    /// The receipts of `component`'s jobs that run and have no result yet (for a supervisor
    /// that reaches its components to redeem).
    func openReceipts(component: String, limit: Int) async throws -> [String]

    // MARK: Results for people, and retention

    func results(component: String?, label: String?, from: Timestamp?, to: Timestamp?, limit: Int) async throws -> [ResultSummary]
    func resultBody(id: Int64) async throws -> String?
    /// The bodies of the results of `label` from `component` overlapping [from, to], oldest first.
    func series(component: String, label: String, from: Timestamp, to: Timestamp) async throws -> [String]
    /// Deletes results received before `olderThan`, then the oldest until the results take
    /// at most `maxBytes`; jobs nothing happened to since `olderThan` go too, with their work,
    /// and components not seen since `forgetBefore` that have nothing waiting.
    /// Returns the number of results deleted.
    func prune(olderThan: Timestamp, maxBytes: Int, forgetBefore: Timestamp) async throws -> Int
    /// The bytes the kept results take.
    func resultBytes() async throws -> Int
}

extension SupervisorStore {
    public func run() async {}
    public func prepare() async throws {}
}

/// The token a supervisor shows clients for the capability `token` of `component`: the first
/// 32 hex digits of the MD5 of both, so that components offering the same capability (the
/// same token) are told apart, and the same pair always gives the same token.
public func publicToken(component: String, token: String) -> String {
    md5Hex(component + "\u{0}" + token)
}

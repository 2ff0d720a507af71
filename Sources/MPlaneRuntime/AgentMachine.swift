public import MPlane
public import MPlaneHTTP

/// The component-initiated workflow's decisions, as a value: when to register, when to poll,
/// how long to wait, what a poll's answer asks the probe to do, where each result goes, and
/// in which order messages leave. It does no I/O and reads no clock: the agent
/// (``ComponentInitiatedAgent``) feeds it what happened, with the time, and carries out the
/// action it returns. Tests replay recorded exchanges through it with no sockets and no
/// sleeping.
public struct AgentMachine: Sendable {
    /// What the agent does next.
    public enum Action: Equatable, Sendable {
        /// POST the capabilities to the registration path.
        case register
        /// GET the specification path.
        case poll
        /// Wait until then, and call ``woke(now:)``.
        case sleep(until: Timestamp)
    }

    /// How a request to the supervisor ended: with a status, or with no answer at all.
    public enum Outcome: Sendable, Equatable {
        case status(Int)
        case unreachable(String)
    }

    /// What a poll's answer asks for, in the order the supervisor sent it.
    public enum Work: Sendable, Equatable {
        /// Run the specification; its messages go to `resultURL`.
        case submit(Specification, resultURL: HTTPURL)
        case interrupt(token: String)
        case redeem(token: String)
    }

    /// Something worth a log line, rate-limited by the agent under `kind`.
    public struct Note: Sendable, Equatable {
        public var kind: String
        public var text: String
    }

    public struct Timing: Sendable, Equatable {
        public var pollInterval: Duration
        /// The shortest time between two polls or registrations, whatever the supervisor asks.
        public var minPollInterval: Duration
        public var backoffMax: Duration
        public init(pollInterval: Duration, minPollInterval: Duration, backoffMax: Duration) {
            self.pollInterval = pollInterval
            self.minPollInterval = minPollInterval
            self.backoffMax = backoffMax
        }
    }

    public let timing: Timing
    /// The supervisor's result path, where receipts, refusals and most results go.
    public let resultURL: HTTPURL
    /// Origins a specification's `link` may send results to besides the supervisor's.
    public let foreignOrigins: Set<String>

    public private(set) var registered = false
    /// Failed requests in a row (registration or poll), for the backoff.
    public private(set) var failures = 0
    /// Notes since the agent last took them (``takeNotes()``).
    public private(set) var notes: [Note] = []
    private var pollStart: Timestamp?
    private var random: SplitMix64
    /// The tokens of the specifications taken lately (the last ``rememberedTokens``): a
    /// supervisor that hands one out again (it saw no receipt in time) does not make the
    /// probe measure twice; the receipt and result it missed are in the queue already.
    private var taken: Set<String> = []
    private var takenOrder: [String] = []
    public static let rememberedTokens = 4096
    /// The longest a callback may make the probe wait before its next poll (µs): one hour.
    public static let maxCallbackWait: Int64 = 3_600_000_000

    public init(timing: Timing, resultURL: HTTPURL, resultLinkAllow: [String] = [], seed: UInt64 = UInt64.random(in: 0...UInt64.max)) {
        self.timing = timing
        self.resultURL = resultURL
        foreignOrigins = Set(resultLinkAllow.filter { $0 != resultURL.origin })
        random = SplitMix64(seed: seed)
    }

    // MARK: Events

    /// The first action: register.
    public mutating func start() -> Action { .register }

    /// The capabilities changed: register them again before the next poll.
    public mutating func capabilitiesChanged() { registered = false }

    /// A sleep ended: register if needed, else poll.
    public mutating func woke(now: Timestamp) -> Action {
        if registered {
            pollStart = now
            return .poll
        }
        return .register
    }

    /// The registration was answered (or not).
    public mutating func registration(_ outcome: Outcome, now: Timestamp) -> Action {
        guard case .status(200) = outcome else { return failed(outcome, what: "registration", now: now) }
        registered = true
        failures = 0
        pollStart = now
        return .poll
    }

    /// A poll was answered (or not): the work it brought, and what to do after it.
    public mutating func polled(_ outcome: Outcome, body: [UInt8], now: Timestamp) -> (work: [Work], next: Action) {
        switch outcome {
        case .status(200):
            failures = 0
            let message: Message
            do { message = try MessageDecoder().decode(body) } catch {
                note("invalid", "supervisor sent an invalid message: \(error)")
                return ([], pollAgain(callback: nil, now: now))
            }
            // The RI's listener nests envelopes (a callback specification and a specification
            // queued together arrive as an envelope inside the poll's envelope).
            var messages: [Message] = []
            func flatten(_ m: Message) {
                if case .envelope(let env) = m { env.contents.forEach(flatten) } else { messages.append(m) }
            }
            flatten(message)
            var work: [Work] = []
            var callback: Timestamp?
            for m in messages {
                switch m {
                case .specification(let spec) where spec.statement.verb == .callback:
                    // Callback control: poll again when the callback's scope starts; a scope
                    // that starts now (`now + 5s`) means its end, as the RI's component reads it.
                    let (start, end) = spec.statement.when.datetimes(now: now)
                    if let start, start > now { callback = start } else { callback = end ?? start ?? now }
                    // A supervisor cannot send the probe to sleep for longer than an hour.
                    callback = Swift.min(callback ?? now, now.adding(microseconds: Self.maxCallbackWait))
                case .specification(let spec):
                    guard remember(spec.token) else {
                        note("duplicate", "the supervisor handed out specification \(spec.token) again; it was taken already")
                        continue
                    }
                    work.append(.submit(spec, resultURL: resultTarget(link: spec.statement.link)))
                case .interrupt(let i):
                    work.append(.interrupt(token: i.token))
                case .redemption(let r):
                    work.append(.redeem(token: r.token))
                default:
                    note("ignored", "ignoring a \(m.kind.rawValue) from the supervisor")
                }
            }
            return (work, pollAgain(callback: callback, now: now))
        case .status(404), .status(204):
            failures = 0
            return ([], pollAgain(callback: nil, now: now))
        case .status(428):
            // Registered again, but not faster than min-poll-interval.
            note("428", "supervisor asks to register again")
            registered = false
            return ([], .sleep(until: now.adding(microseconds: Self.microseconds(timing.minPollInterval))))
        default:
            return ([], failed(outcome, what: "poll", now: now))
        }
    }

    /// Takes the notes gathered so far.
    public mutating func takeNotes() -> [Note] {
        defer { notes = [] }
        return notes
    }

    // MARK: Decisions

    /// After a poll: at the callback's time but never sooner than min-poll-interval after the
    /// poll began; without a callback, the configured interval with up to 10 % jitter.
    mutating func pollAgain(callback: Timestamp?, now: Timestamp) -> Action {
        if let callback {
            let floor = (pollStart ?? now).adding(microseconds: Self.microseconds(timing.minPollInterval))
            return .sleep(until: Swift.max(callback, floor))
        }
        let base = Self.microseconds(timing.pollInterval)
        let jitter = Int64(random.next() % UInt64(Swift.max(1, base / 10) + 1))
        return .sleep(until: now.adding(microseconds: base + jitter))
    }

    mutating func failed(_ outcome: Outcome, what: String, now: Timestamp) -> Action {
        failures += 1
        let delay = backoff(failures)
        let why: String
        switch outcome {
        case .status(let s): why = "status \(s)"
        case .unreachable(let e): why = e
        }
        note(what, "supervisor \(what) failed (\(why)): backing off \(delay / 1000) ms")
        return .sleep(until: now.adding(microseconds: delay))
    }

    /// Exponential backoff from 1 s, capped at backoff-max, with up to 25 % jitter; in µs.
    public mutating func backoff(_ failures: Int) -> Int64 {
        let cap = Self.microseconds(timing.backoffMax)
        let base = Swift.min(cap, Int64(1_000_000) << Int64(Swift.min(Swift.max(failures, 1) - 1, 20)))
        return base + Int64(random.next() % UInt64(Swift.max(1, base / 4) + 1))
    }

    /// Where the result of a specification with `link` goes. As the RI's component does: to
    /// the supervisor's result path when the link names the supervisor (its scheme, host and
    /// port), whatever the link's path; to the link itself only when its origin is in
    /// `result-link-allow`; to the supervisor's result path otherwise (a supervisor cannot
    /// make the probe post to a third party).
    public mutating func resultTarget(link: String?) -> HTTPURL {
        guard let link else { return resultURL }
        guard let url = HTTPURL(link) else {
            note("link", "a specification's link is not an http:// URL; its result goes to the supervisor: \(link.prefix(200))")
            return resultURL
        }
        if url.origin == resultURL.origin { return resultURL }
        if foreignOrigins.contains(url.origin) { return url }
        note("link", "a specification's link names an origin not in result-link-allow; its result goes to the supervisor: \(url)")
        return resultURL
    }

    /// Records `token` as taken; false if it was already.
    mutating func remember(_ token: String) -> Bool {
        guard taken.insert(token).inserted else { return false }
        takenOrder.append(token)
        if takenOrder.count > Self.rememberedTokens {
            taken.remove(takenOrder.removeFirst())
        }
        return true
    }

    mutating func note(_ kind: String, _ text: String) {
        if notes.count < 64 { notes.append(Note(kind: kind, text: text)) }
    }

    static func microseconds(_ d: Duration) -> Int64 {
        d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000
    }
}

/// What happens to a message the supervisor (or an allowed link) answered: delivered,
/// refused for good (dropped, so it does not hold back the rest), or to be sent again.
public enum DeliveryVerdict: Sendable, Equatable {
    case delivered, refused, retry

    public init(_ outcome: AgentMachine.Outcome) {
        switch outcome {
        case .status(let s) where (200..<300).contains(s): self = .delivered
        case .status(let s) where (400..<500).contains(s) && s != 408 && s != 429: self = .refused
        default: self = .retry
        }
    }
}

/// The order in which a job's messages leave: its receipt (or refusal) first, to the
/// supervisor's result path as the RI's component sends it; its result after, to the
/// specification's result target. A job can end before its receipt is queued; its result
/// is then held until the receipt is.
public struct DeliveryOrder: Sendable {
    struct Entry {
        var url: HTTPURL
        var receiptQueued = false
        var heldResult: Message?
        var heldRepetitions: [Message] = []
    }
    private var entries: [String: Entry] = [:]
    public let resultURL: HTTPURL

    public init(resultURL: HTTPURL) { self.resultURL = resultURL }

    /// A specification is about to be submitted: its result will go to `url`.
    public mutating func expect(token: String, url: HTTPURL) { entries[token] = Entry(url: url) }

    /// The scheduler answered a submission: what to queue now.
    public mutating func submitted(token: String, reply: Message) -> [Outgoing] {
        var out = [Outgoing(message: reply, url: resultURL)]
        guard case .receipt = reply, var entry = entries[token] else {
            entries[token] = nil
            return out
        }
        out += entry.heldRepetitions.map { Outgoing(message: $0, url: entry.url) }
        entry.heldRepetitions = []
        if let held = entry.heldResult {
            entries[token] = nil
            out.append(Outgoing(message: held, url: entry.url))
        } else {
            entry.receiptQueued = true
            entries[token] = entry
        }
        return out
    }

    /// A job finished with `message`: what to queue now (nothing while its receipt is not).
    public mutating func finished(token: String, message: Message) -> [Outgoing] {
        guard var entry = entries[token] else { return [Outgoing(message: message, url: resultURL)] }
        if entry.receiptQueued {
            entries[token] = nil
            return [Outgoing(message: message, url: entry.url)]
        }
        entry.heldResult = message
        entries[token] = entry
        return []
    }

    /// One repetition of a repeated job finished with `result`: what to queue now. Each
    /// repetition's result leaves as it comes (a job repeated "every 5 minutes, for ever"
    /// would otherwise send nothing until it is interrupted); the supervisor keeps each once.
    public mutating func repetition(token: String, result: Message) -> [Outgoing] {
        guard var entry = entries[token] else { return [Outgoing(message: result, url: resultURL)] }
        if entry.receiptQueued { return [Outgoing(message: result, url: entry.url)] }
        entry.heldRepetitions.append(result)
        entries[token] = entry
        return []
    }

    /// Jobs whose messages are still expected.
    public var pending: Int { entries.count }
}

/// A small, fast, seedable generator for jitter (Steele, Lea and Flood's SplitMix64), so that
/// tests can fix the machine's choices.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

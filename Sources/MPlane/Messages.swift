/// The kind keys of mPlane messages.
public enum MessageKind: String, Sendable, CaseIterable {
    case capability, specification, result, receipt, redemption, withdrawal, interrupt, indirection
    case exception, envelope
}

/// Something a component can do.
public struct Capability: StatementMessage {
    public static var kind: MessageKind { .capability }
    public var statement: Statement
    public init(_ statement: Statement) { self.statement = statement }

    public init(verb: Verb = .measure, label: String? = nil, when: When,
                registry: Registry = RegistryStore.shared.core) {
        statement = Statement(verb: verb, registry: registry, when: when, label: label)
    }

    /// The default token, as the reference implementation computes it.
    public var defaultToken: String { statement.extendedHash }

    public var schemaHash: String { statement.schemaHash }
}

/// A request to run a capability.
public struct Specification: StatementMessage {
    public static var kind: MessageKind { .specification }
    public var statement: Statement
    public init(_ statement: Statement) { self.statement = statement }

    /// A specification for `capability`: same verb, label, registry, schema, metadata and
    /// scope, every single-valued parameter already filled in.
    public init(capability: Capability, when: When? = nil) {
        var s = capability.statement
        s.token = nil
        s.link = nil
        if let when { s.when = when }
        for p in s.parameters where p.value == nil {
            if let v = p.constraint.singleValue { try? s.setParameterValue(p.name, v) }
        }
        statement = s
    }

    /// The explicit token, or the default one (the reference implementation's).
    public var token: String { statement.token ?? statement.parameterValueHash }

    public var schemaHash: String { statement.schemaHash }

    /// Why this specification does not fulfil `capability`, or nil if it does: same verb
    /// and schema, a scope within the capability's (and a period not below its minimum),
    /// every parameter valued and within its constraint.
    public func mismatch(with capability: Capability, now: Timestamp) -> String? {
        if statement.verb != capability.statement.verb {
            return "verb '\(statement.verb)' does not match the capability's '\(capability.statement.verb)'"
        }
        if statement.registry.uri != capability.statement.registry.uri || schemaHash != capability.schemaHash {
            return "schema (registry, parameters, results) does not match"
        }
        let capWhen = capability.statement.when
        if let minimum = capWhen.period {
            let mine = statement.when.isRepeated ? statement.when.inner?.period : statement.when.period
            guard let mine else {
                return "the capability's scope has period \(MPlaneDuration.format(minimum)); the specification gives none"
            }
            if mine < minimum {
                return "period \(MPlaneDuration.format(mine)) is below the capability's minimum \(MPlaneDuration.format(minimum))"
            }
        }
        if !statement.when.follows(capWhen, now: now) {
            return "temporal scope '\(statement.when)' is not within the capability's '\(capWhen)'"
        }
        for cp in capability.statement.parameters {
            guard let v = statement.parameterValue(cp.name) else {
                return "parameter '\(cp.name)' has no value"
            }
            if !cp.constraint.isMet(by: v) {
                return "parameter '\(cp.name)' = '\(v)' does not meet the constraint '\(cp.constraint)'"
            }
        }
        return nil
    }

    /// Why this specification does not fit `capability` when it may leave out parameters
    /// (for the component to fill in with its defaults): the same checks as
    /// ``mismatch(with:now:)`` on the verb, the registry, the result columns, the scope and
    /// the value of every parameter it gives; nil when it fits.
    public func mismatch(allowingLeftOutParametersOf capability: Capability, now: Timestamp) -> String? {
        // The capability as if it had only the parameters given: the schema, the scope and
        // the given values are then checked as for a whole specification.
        var reduced = capability
        for cp in capability.statement.parameters where statement.parameter(cp.name) == nil { reduced.statement.removeParameter(cp.name) }
        return mismatch(with: reduced, now: now)
    }

    /// True if this specification fulfils `capability` (see ``mismatch(with:now:)``).
    public func fulfills(_ capability: Capability, now: Timestamp) -> Bool {
        mismatch(with: capability, now: now) == nil
    }
}

/// Values measured for a specification.
public struct Result: StatementMessage {
    public static var kind: MessageKind { .result }
    public var statement: Statement
    public var values: ResultTable

    public init(_ statement: Statement, values: ResultTable) {
        self.statement = statement
        self.values = values
    }

    /// An empty result for `specification`, carrying its token; `when` is the scope
    /// actually measured.
    public init(specification: Specification, when: When) {
        var s = specification.statement
        s.token = specification.token
        s.when = when
        s.clearConstraints()
        statement = s
        values = ResultTable(columns: s.resultColumns)
    }


    /// The value of column `name` at `row`.
    public func value(_ name: String, row: Int = 0) -> Value? { values.value(name, row: row) }

    /// The rows, each merged with the parameter values, as the reference's
    /// schema-dict iterator yields them.
    public var schemaRows: [[String: Value]] {
        var base: [String: Value] = [:]
        for p in statement.parameters { if let v = p.value { base[p.name] = v } }
        return (0..<values.rowCount).map { base.merging(values.row($0)) { $1 } }
    }
}

/// Copies of a specification or capability that drive the workflow. Each may be sent in a
/// token-only form (kind, registry, label and token; no parameters, results or scope).
public struct Receipt: StatementMessage {
    public static var kind: MessageKind { .receipt }
    public var statement: Statement
    public var isTokenOnly = false
    public init(_ statement: Statement, tokenOnly: Bool = false) { self.statement = statement; isTokenOnly = tokenOnly }
    public init(specification: Specification) {
        statement = specification.statement
        statement.token = specification.token
    }
}

/// A request for the result a receipt stands for.
public struct Redemption: StatementMessage {
    public static var kind: MessageKind { .redemption }
    public var statement: Statement
    public var isTokenOnly = false
    public init(_ statement: Statement, tokenOnly: Bool = false) { self.statement = statement; isTokenOnly = tokenOnly }
    public init(receipt: Receipt) { statement = receipt.statement; statement.token = receipt.token }
}

/// A component's notice that a capability is no longer available.
public struct Withdrawal: StatementMessage {
    public static var kind: MessageKind { .withdrawal }
    public var statement: Statement
    public var isTokenOnly = false
    public init(_ statement: Statement, tokenOnly: Bool = false) { self.statement = statement; isTokenOnly = tokenOnly }
    public init(capability: Capability) { statement = capability.statement; statement.token = capability.token }
}

/// A request to stop a running specification.
public struct Interrupt: StatementMessage {
    public static var kind: MessageKind { .interrupt }
    public var statement: Statement
    public var isTokenOnly = false
    public init(_ statement: Statement, tokenOnly: Bool = false) { self.statement = statement; isTokenOnly = tokenOnly }
    public init(specification: Specification) {
        statement = specification.statement
        statement.token = specification.token
    }
}

/// A redirection: the specification should be sent to the component at ``Statement/link``.
public struct Indirection: StatementMessage {
    public static var kind: MessageKind { .indirection }
    public var statement: Statement
    public var isTokenOnly = false
    public init(_ statement: Statement, tokenOnly: Bool = false) { self.statement = statement; isTokenOnly = tokenOnly }
    public init(specification: Specification, link: String) {
        statement = specification.statement
        statement.token = specification.token
        statement.link = link
    }
}

/// An error report: `{"exception": <token>, "message": <text>}`.
public struct MPlaneException: Hashable, Sendable, Error {
    /// The token of the message that caused it, if known.
    public var token: String?
    public var message: String
    /// An HTTP-like status code. Kept out of the JSON body unless ``includeStatus``.
    public var status: Int?
    /// Write `status` into the JSON body (the reference never does).
    public var includeStatus = false

    public init(token: String?, message: String, status: Int? = nil) {
        self.token = token
        self.message = message
        self.status = status
    }

    /// An exception of a known kind: its status comes from ``Refusal/status``.
    public init(_ kind: Refusal, token: String? = nil, message: String) {
        self.init(token: token, message: message, status: kind.status)
    }
}

/// Why a request is refused or failed, as the components and supervisors of this package
/// say it: the one place that maps a reason to an HTTP status (README, "Statuses").
public enum Refusal: Sendable, CaseIterable {
    /// Not JSON, not a message, or a message not taken here.
    case invalidMessage
    /// A parameter value the service cannot run (a multicast destination, a capture filter
    /// over its limits or that does not compile).
    case invalidValue
    /// The specification does not fulfil the capability with its schema (scope, period,
    /// constraint), or the destination policy refuses it.
    case refused
    /// The peer's identity has no role that the capability's authorisations allow.
    case forbidden
    /// No capability with the specification's schema and verb.
    case noService
    /// No such job (or it has expired), capability or path.
    case unknown
    /// A method the path does not take.
    case methodNotAllowed
    /// The request did not arrive within the request deadline.
    case timeout
    /// A request body over the size limit.
    case tooLarge
    /// Not `application/x-mplane+json`.
    case unsupportedMediaType
    /// A limit of jobs, threads or probe rate reached: try again later.
    case limitReached
    /// The measurement ran and failed before it measured anything.
    case measurementFailed
    /// Connections or buffered bytes over their limits: try again later.
    case busy

    /// The HTTP status of the refusal.
    public var status: Int {
        switch self {
        case .invalidMessage, .invalidValue: 400
        case .refused, .forbidden: 403
        case .noService, .unknown: 404
        case .methodNotAllowed: 405
        case .timeout: 408
        case .tooLarge: 413
        case .unsupportedMediaType: 415
        case .limitReached: 429
        case .measurementFailed: 500
        case .busy: 503
        }
    }
}

/// A container of messages, in order; envelopes may nest.
public struct Envelope: Hashable, Sendable {
    /// `message`, `statement` or `notification`.
    public var contentType: String
    public var contents: [Message]
    public var version: Int = 1
    public var token: String?
    public var label: String?
    public var when: When?

    public init(contentType: String = "message", contents: [Message] = [], token: String? = nil,
                label: String? = nil, when: When? = nil) {
        self.contentType = contentType
        self.contents = contents
        self.token = token
        self.label = label
        self.when = when
    }
}

/// Any mPlane message.
public enum Message: Hashable, Sendable {
    case capability(Capability)
    case specification(Specification)
    case result(Result)
    case receipt(Receipt)
    case redemption(Redemption)
    case withdrawal(Withdrawal)
    case interrupt(Interrupt)
    case indirection(Indirection)
    case exception(MPlaneException)
    indirect case envelope(Envelope)

    public var kind: MessageKind {
        switch self {
        case .capability: .capability
        case .specification: .specification
        case .result: .result
        case .receipt: .receipt
        case .redemption: .redemption
        case .withdrawal: .withdrawal
        case .interrupt: .interrupt
        case .indirection: .indirection
        case .exception: .exception
        case .envelope: .envelope
        }
    }

    /// The statement a statement or notification carries.
    public var statement: Statement? {
        switch self {
        case .capability(let m): m.statement
        case .specification(let m): m.statement
        case .result(let m): m.statement
        case .receipt(let m): m.statement
        case .redemption(let m): m.statement
        case .withdrawal(let m): m.statement
        case .interrupt(let m): m.statement
        case .indirection(let m): m.statement
        case .exception, .envelope: nil
        }
    }

    /// The message's token: explicit, or the default the reference implementation would use.
    public var token: String? {
        switch self {
        case .capability(let m): m.token
        case .specification(let m): m.token
        case .result(let m): m.token
        case .receipt(let m): m.token
        case .redemption(let m): m.token
        case .withdrawal(let m): m.token
        case .interrupt(let m): m.token
        case .indirection(let m): m.token
        case .exception(let e): e.token
        case .envelope(let e): e.token
        }
    }

    /// The schema hash of a statement, nil for exceptions and envelopes.
    public var schemaHash: String? { statement?.schemaHash }
}

public import MPlane
public import MPlaneHTTP

/// What a client remembers (the seed's `BaseClient`): the capabilities it retrieved, by
/// token and label, with where each came from; the receipts and results of what it asked
/// for, by token and label. A value: no I/O, no clock; ``ClientSession`` does the talking.
public struct ClientState: Sendable {
    /// A capability and the URL it was retrieved from (where its specifications go, unless
    /// it names a link of its own).
    public struct Known: Sendable {
        public var capability: Capability
        public var source: HTTPURL
    }

    private var capabilities: [String: Known] = [:]
    private var capabilityOrder: [String] = []
    private var receipts: [String: Receipt] = [:]
    private var results: [String: Message] = [:]
    private var measurementOrder: [String] = []
    /// The label each measurement token was asked for under.
    private var labels: [String: String] = [:]

    public init() {}

    // MARK: Capabilities

    /// Records `capability`, retrieved from `source` (again: replaced).
    public mutating func add(_ capability: Capability, from source: HTTPURL) {
        let token = capability.token
        if capabilities[token] == nil { capabilityOrder.append(token) }
        capabilities[token] = Known(capability: capability, source: source)
    }

    /// Forgets the capability `token` (a withdrawal).
    public mutating func withdraw(token: String) {
        capabilities[token] = nil
        capabilityOrder.removeAll { $0 == token }
    }

    /// The capability with this token, else the first with this label.
    public func capability(for tokenOrLabel: String) -> Capability? { known(tokenOrLabel)?.capability }

    /// The capability with this token or label and where it came from.
    public func known(_ tokenOrLabel: String) -> Known? {
        if let k = capabilities[tokenOrLabel] { return k }
        return capabilityOrder.lazy.compactMap { self.capabilities[$0] }.first { $0.capability.statement.label == tokenOrLabel }
    }

    /// The capabilities, in the order they were first retrieved.
    public var allCapabilities: [Capability] { capabilityOrder.compactMap { capabilities[$0]?.capability } }
    public var capabilityTokens: [String] { capabilityOrder }
    public var capabilityLabels: [String] { allCapabilities.compactMap(\.statement.label) }

    /// The capabilities of `schema`'s schema whose every constraint lies within `schema`'s
    /// (the seed's `capabilities_matching_schema`): the same verb, registry, parameters and
    /// result columns, and for each parameter, every value the capability allows is allowed
    /// by `schema`. A supervisor selects probes with this.
    public func capabilities(matchingSchema schema: Capability) -> [Capability] {
        allCapabilities.filter { c in
            guard c.statement.verb == schema.statement.verb, c.statement.registry.uri == schema.statement.registry.uri,
                  c.schemaHash == schema.schemaHash else { return false }
            return c.statement.parameters.allSatisfy { p in
                guard let outer = schema.statement.parameter(p.name) else { return false }
                return p.constraint.isWithin(outer.constraint)
            }
        }
    }

    // MARK: Measurements

    /// Records what a component answered: receipts and results (or exceptions) by their
    /// token, envelopes by their contents; withdrawals forget capabilities. Returns the tokens
    /// of the measurements it recorded.
    @discardableResult
    public mutating func handle(_ message: Message, label: String? = nil) -> [String] {
        switch message {
        case .receipt(let r):
            remember(r.token, label: label ?? r.statement.label)
            receipts[r.token] = r
            return [r.token]
        case .result(let r):
            let token = r.token
            remember(token, label: label ?? r.statement.label)
            results[token] = message
            receipts[token] = nil
            return [token]
        case .exception(let e):
            guard let token = e.token else { return [] }
            remember(token, label: label)
            results[token] = message
            receipts[token] = nil
            return [token]
        case .envelope(let env):
            // The results of a repeated specification: kept whole under the envelope's token
            // (or each by its own token when the envelope has none).
            if let token = env.token, env.contents.allSatisfy({ if case .result = $0 { true } else { false } }) {
                remember(token, label: label ?? env.label)
                results[token] = message
                receipts[token] = nil
                return [token]
            }
            return env.contents.flatMap { handle($0, label: label) }
        case .withdrawal(let w):
            withdraw(token: w.token)
            return []
        default:
            return []
        }
    }

    private mutating func remember(_ token: String, label: String?) {
        if !measurementOrder.contains(token) { measurementOrder.append(token) }
        if let label { labels[token] = label }
    }

    /// The token of the measurement with this token, else the last one asked under this label.
    public func measurementToken(_ tokenOrLabel: String) -> String? {
        if measurementOrder.contains(tokenOrLabel) { return tokenOrLabel }
        return measurementOrder.last { labels[$0] == tokenOrLabel }
    }

    /// What is known of a measurement: its result (or exception, or envelope of results) if
    /// it came, else its receipt.
    public func measurement(_ tokenOrLabel: String) -> Message? {
        guard let token = measurementToken(tokenOrLabel) else { return nil }
        if let r = results[token] { return r }
        return receipts[token].map { .receipt($0) }
    }

    /// The measurements, oldest first: token, label, and whether the result came.
    public var measurements: [(token: String, label: String?, done: Bool)] {
        measurementOrder.map { ($0, labels[$0], results[$0] != nil) }
    }

    /// The receipt of a measurement still waiting for its result.
    public func receipt(_ tokenOrLabel: String) -> Receipt? {
        measurementToken(tokenOrLabel).flatMap { receipts[$0] }
    }

    /// Forgets a measurement, or a capability, by token or label.
    public mutating func forget(_ tokenOrLabel: String) {
        if let token = measurementToken(tokenOrLabel) {
            receipts[token] = nil
            results[token] = nil
            labels[token] = nil
            measurementOrder.removeAll { $0 == token }
        } else if let k = known(tokenOrLabel) {
            withdraw(token: k.capability.token)
        }
    }
}

extension Constraint {
    /// Whether every value this constraint allows is allowed by `outer`.
    public func isWithin(_ outer: Constraint) -> Bool {
        switch (self, outer) {
        case (_, .all): return true
        case (.all, _): return false
        case (.set(let values), _): return values.allSatisfy { outer.isMet(by: $0) }
        case (.range(let a, let b), .range): return outer.isMet(by: a) && outer.isMet(by: b)
        case (.range(let a, let b), .set): return a == b && outer.isMet(by: a)
        }
    }
}

extension Specification {
    /// A specification of `capability` as a client invokes it (the seed's `_spec_for`): the
    /// temporal scope, the parameters (single allowed values filled in, the rest from
    /// `parameters`; a missing one is an error), the label `relabel` or the capability's
    /// with a serial number, and a token unique to this invocation: for a relative scope
    /// (`now + 1m`) it counts the time it is made at `now`, as the RI does, so that the same
    /// measurement run twice is two jobs.
    public static func invoking(_ capability: Capability, when: When, parameters: [String: String], label: String,
                                now: Timestamp) throws -> Specification {
        var spec = Specification(capability: capability, when: when)
        for p in spec.statement.parameters where p.value == nil {
            guard let text = parameters[p.name] else {
                throw ClientError("missing parameter \(p.name) (allowed: \(p.constraint))")
            }
            do { try spec.statement.setParameterValue(p.name, text: text) } catch {
                throw ClientError("parameter \(p.name) = \(text): \(error)")
            }
        }
        for name in parameters.keys where spec.statement.parameter(name) == nil {
            throw ClientError("\(capability.statement.label ?? capability.token) has no parameter \(name)")
        }
        spec.statement.label = label
        var token = spec.statement.parameterValueHash
        if !when.isDefinite {
            let (start, end) = when.datetimes(now: now)
            token = md5Hex(token + " at " + (start?.description ?? "") + " " + (end?.description ?? ""))
        }
        spec.statement.token = token
        return spec
    }
}

/// A client-side error with its message.
public struct ClientError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// How a client reaches components and supervisors: behind a protocol so that the client's
/// state and session are tested without sockets.
public protocol ClientTransport: Sendable {
    /// The capabilities served at `url`.
    func capabilities(at url: HTTPURL) async throws -> [Capability]
    /// Posts `message` to `url`; the answer.
    func send(_ message: Message, to url: HTTPURL) async throws -> Message
}

/// The transport over HTTP (mutual TLS for `https` URLs with `tls`).
public struct HTTPClientTransport: ClientTransport {
    public var tls: TLSContexts?
    public var requestTimeout: Duration
    public var decoder: MessageDecoder
    public init(tls: TLSContexts? = nil, requestTimeout: Duration = .seconds(15), decoder: MessageDecoder = MessageDecoder()) {
        self.tls = tls
        self.requestTimeout = requestTimeout
        self.decoder = decoder
    }
    func client(_ url: HTTPURL) -> ComponentClient { ComponentClient(url: url, requestTimeout: requestTimeout, decoder: decoder, tls: tls) }
    public func capabilities(at url: HTTPURL) async throws -> [Capability] { try await client(url).capabilities() }
    public func send(_ message: Message, to url: HTTPURL) async throws -> Message { try await client(url).send(message) }
}

/// A client with its memory (the seed's `HttpInitiatorClient`): retrieves capabilities,
/// invokes them, redeems receipts, through a ``ClientTransport``.
public actor ClientSession {
    public private(set) var state = ClientState()
    public let transport: any ClientTransport
    /// Where capabilities are retrieved from, and where specifications go when a capability
    /// names no link (`seturl`).
    public var defaultURL: HTTPURL?
    private var serial = 0

    public init(transport: any ClientTransport, defaultURL: HTTPURL? = nil) {
        self.transport = transport
        self.defaultURL = defaultURL
    }

    public func setDefaultURL(_ url: HTTPURL) { defaultURL = url }

    /// Retrieves the capabilities at `url` (default: the default URL); returns them.
    @discardableResult
    public func retrieveCapabilities(from url: HTTPURL? = nil) async throws -> [Capability] {
        guard let url = url ?? defaultURL else { throw ClientError("no URL: give one, or seturl first") }
        if defaultURL == nil { defaultURL = url }
        let caps = try await transport.capabilities(at: url)
        for c in caps { state.add(c, from: url) }
        return caps
    }

    /// Where a specification of `known` goes: its link, else where it came from.
    func destination(_ known: ClientState.Known) -> HTTPURL {
        if let link = known.capability.statement.link, let url = HTTPURL(link) { return url.with(path: "/") }
        return known.source.with(path: "/")
    }

    /// Invokes the capability `tokenOrLabel`: derives a specification (``Specification/invoking``),
    /// sends it, records the answer; returns the specification and the answer.
    public func invoke(_ tokenOrLabel: String, when: When, parameters: [String: String], relabel: String? = nil,
                       now: Timestamp) async throws -> (Specification, Message) {
        guard let known = state.known(tokenOrLabel) else {
            throw ClientError("no capability \(tokenOrLabel): getcap first (known: \(state.capabilityLabels.joined(separator: ", ")))")
        }
        let label = relabel ?? "\(known.capability.statement.label ?? "measurement")-\(serial)"
        serial += 1
        let spec = try Specification.invoking(known.capability, when: when, parameters: parameters, label: label, now: now)
        let answer = try await transport.send(.specification(spec), to: destination(known))
        state.handle(answer, label: label)
        return (spec, answer)
    }

    /// The result of a measurement if known; otherwise its receipt is redeemed, and the
    /// receipt given back while the result is not there.
    public func result(for tokenOrLabel: String) async throws -> Message? {
        guard let known = state.measurement(tokenOrLabel) else { return nil }
        guard case .receipt(let receipt) = known else { return known }
        guard let url = defaultURL else { return known }
        let answer = try await transport.send(.redemption(Redemption(receipt: receipt)), to: url.with(path: "/"))
        state.handle(answer, label: state.measurements.first { $0.token == receipt.token }?.label)
        return state.measurement(receipt.token)
    }

    /// Interrupts a running measurement; records and returns the answer.
    public func interrupt(_ tokenOrLabel: String) async throws -> Message? {
        guard let receipt = state.receipt(tokenOrLabel), let url = defaultURL else { return nil }
        var interrupt = Interrupt(receipt.statement)
        interrupt.statement.token = receipt.token
        let answer = try await transport.send(.interrupt(interrupt), to: url.with(path: "/"))
        state.handle(answer)
        return state.measurement(receipt.token)
    }

    public func forget(_ tokenOrLabel: String) { state.forget(tokenOrLabel) }
}

public import Logging
import Synchronization
public import MPlane
public import MPlaneHTTP
import MPlaneIO
public import MPlaneScheduler

/// The supervisor: the side probes push to (they register, poll for work, post receipts and
/// results) and the side clients use (capabilities of every present component, specifications
/// queued for the right one, redemptions, interrupts). Both sides are routers without sockets
/// over one ``SupervisorStore``; ``SupervisorService`` puts them on HTTP.
public final class Supervisor: Sendable {
    public let store: any SupervisorStore
    public let configuration: SupervisorConfiguration
    let clock: any ProbeClock
    let logger: Logger
    let refusals: RateLimitedLog
    /// The ports the two sides listen on, once bound (the configured ones until then): the
    /// links are made from them, so that a supervisor on port 0 hands out working links.
    private let boundPorts: Mutex<(probe: Int, client: Int)>
    /// Capabilities decoded, by public token, with the body they were decoded from.
    private let decoded = Mutex<[String: (body: String, capability: Capability)]>([:])

    /// When components were seen: what waits for the next write (about once a second; a poll
    /// that finds nothing due writes nothing else), and what was last written of each.
    /// A component that keeps polling is written again only once its written time is
    /// ``seenRefresh`` old, or when its address changes: with 10,000 components polling,
    /// every second's one write of all of them was PostgreSQL's largest load.
    private struct Seen {
        var pending: [String: (address: String?, at: Timestamp)] = [:]
        var written: [String: (address: String?, at: Int64)] = [:]
        var flushes = 0
    }
    private let seen = Mutex(Seen())

    /// The header our `mpcom` names itself with.
    public static let componentHeader = "X-MPlane-Component"
    /// The prefix of the identity of a component known by its address; no name may start so.
    public static let addressPrefix = "address:"

    /// `[Roles]` and `[Authorizations]` in force (replaced on SIGHUP).
    public let policy: AuthorizationPolicy
    var authorization: Authorization { policy.authorization }

    public init(store: any SupervisorStore, configuration: SupervisorConfiguration, clock: any ProbeClock = SystemClock(),
                logger: Logger = Logger(label: "mplane.supervisor")) {
        self.store = store
        self.configuration = configuration
        policy = AuthorizationPolicy(configuration.authorization)
        self.clock = clock
        self.logger = logger
        refusals = RateLimitedLog(logger: logger)
        boundPorts = Mutex((configuration.probePort, configuration.clientPort))
    }

    /// Records the ports the servers bound.
    public func bound(probePort: Int, clientPort: Int) { boundPorts.withLock { $0 = (probePort, clientPort) } }

    /// The base of the links of the capabilities shown to clients (no trailing slash).
    var capabilityBase: String {
        if let l = configuration.capabilityLink { return l.hasSuffix("/") ? String(l.dropLast()) : l }
        let host = Self.reachable(configuration.clientAddress)
        return "\(scheme)://\(bracketed(host)):\(boundPorts.withLock { $0.client })"
    }

    /// `https` with a `[TLS]` section: both sides serve only that.
    var scheme: String { configuration.tls == nil ? "http" : "https" }

    /// The link specifications carry to components (where results go).
    var specificationLink: String {
        if let l = configuration.specificationLink { return l }
        return "\(scheme)://\(bracketed(Self.reachable(configuration.probeAddress))):\(boundPorts.withLock { $0.probe })/"
    }

    static func reachable(_ address: String) -> String { address == "0.0.0.0" || address == "::" ? "127.0.0.1" : address }

    var now: Timestamp { clock.now() }

    // MARK: The probe-facing side

    /// Who a probe-side request comes from: the name our `mpcom` sends, else the source
    /// address (the RI's component sends no name; components behind one NAT address then
    /// look like one: use TLS). A name that is not 1 to 255 printable ASCII characters, or
    /// that takes the form of an address identity, is refused.
    public static func identity(of request: HTTPRequestData) -> Swift.Result<(name: String, named: Bool), MPlaneException> {
        // With TLS, the certificate says who it is, whatever the header says.
        if let certified = request.identity { return .success((certified, true)) }
        guard let name = request.header(componentHeader) else {
            return .success((addressPrefix + (request.peer ?? "unknown"), false))
        }
        guard !name.isEmpty, name.utf8.count <= 255, name.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }),
              !name.hasPrefix(addressPrefix) else {
            return .failure(MPlaneException(.invalidMessage, message: "\(componentHeader) must be 1 to 255 printable ASCII characters without spaces, not starting with '\(addressPrefix)'"))
        }
        return .success((name, true))
    }

    public func probeSide(_ request: HTTPRequestData) async -> HTTPReply {
        var path = request.route
        if path.hasSuffix("/") && path.count > 1 { path.removeLast() }
        let identity: String, named: Bool
        switch Self.identity(of: request) {
        case .success(let who): (identity, named) = who
        case .failure(let e): return .failure(e)
        }
        // With `component-role`, only certificates whose identity has that role are components.
        if let role = configuration.componentRole, !authorization.has(identity, role: role) {
            refusals.log("probe-side request refused: no component role", kind: "component-role", level: .warning,
                         metadata: ["mplane.component": "\(identity)", "mplane.role": "\(role)"])
            return .failure(MPlaneException(.forbidden, message: "Not a component here"))
        }
        switch (request.method, path) {
        case ("POST", "/" + configuration.registrationPath):
            return await register(request, identity: identity)
        case ("GET", "/" + configuration.specificationPath):
            return await poll(identity: identity, named: named, peer: request.peer)
        case ("POST", "/" + configuration.resultPath):
            return await results(request, identity: identity, named: named)
        case (_, "/" + configuration.registrationPath), (_, "/" + configuration.specificationPath), (_, "/" + configuration.resultPath):
            return .failure(MPlaneException(.methodNotAllowed, message: "Method \(quoting(request.method)) not allowed here"))
        default:
            return .failure(MPlaneException(.unknown, message: "Not found: \(quoting(path))"))
        }
    }

    func register(_ request: HTTPRequestData, identity: String) async -> HTTPReply {
        let message: Message
        switch request.message() {
        case .success(let m): message = m
        case .failure(let e): return .failure(e)
        }
        var capabilities: [Capability] = []
        var withdrawn: [String] = []
        var callback: CallbackStyle? = nil
        var other: [MessageKind] = []
        let contents: [Message]
        if case .envelope(let env) = message { contents = env.contents } else { contents = [message] }
        for m in contents {
            switch m {
            case .capability(let c) where c.statement.verb == .callback: callback = .verb
            case .capability(let c) where c.statement.label == "callback": callback = .label
            case .capability(let c): capabilities.append(c)
            case .withdrawal(let w): withdrawn.append(w.token)
            default: other.append(m.kind)
            }
        }
        if !other.isEmpty {
            return .failure(MPlaneException(.invalidMessage, message: "A registration holds capabilities and withdrawals, not a \(other[0].rawValue)"))
        }
        if capabilities.count > configuration.maxCapabilitiesPerComponent {
            return .failure(MPlaneException(.invalidMessage, message: "\(capabilities.count) capabilities in one registration: max-capabilities-per-component is \(configuration.maxCapabilitiesPerComponent)"))
        }
        do {
            let known = try await store.pollState(component: identity, now: now, redeliverAfter: 0).registered
            if !known {
                if try await store.componentCount(address: nil) >= configuration.maxComponents {
                    refusals.log("registration refused: max-components", kind: "components", level: .warning, metadata: ["mplane.component": "\(identity)"])
                    return .failure(MPlaneException(.busy, message: "The supervisor takes no more components (max-components \(configuration.maxComponents))"))
                }
                if let peer = request.peer, try await store.componentCount(address: peer) >= configuration.maxComponentsPerAddress {
                    refusals.log("registration refused: max-components-per-address", kind: "components-address", level: .warning,
                                 metadata: ["mplane.component": "\(identity)", "http.peer": "\(peer)"])
                    return .failure(MPlaneException(.limitReached, message: "Too many components from one address (max-components-per-address \(configuration.maxComponentsPerAddress))"))
                }
            }
            var registered: [String] = []
            if !capabilities.isEmpty || withdrawn.isEmpty {
                registered = try await store.register(component: identity, address: request.peer, capabilities: capabilities,
                                                      callback: callback, now: now).registered
                logger.info("component registered", metadata: ["mplane.component": "\(identity)", "mplane.capabilities": "\(capabilities.count)"])
            }
            if !withdrawn.isEmpty { try await store.withdraw(component: identity, tokens: withdrawn, now: now) }
            if callback != nil { registered.append("callback") }
            // The RI's answer: {"<label>": {"registered": "ok"}, ...}.
            let body = "{" + registered.map { "\"\(jsonEscaped($0))\": {\"registered\": \"ok\"}" }.joined(separator: ", ") + "}"
            return HTTPReply(status: 200, contentType: "application/json", body: Array(body.utf8))
        } catch {
            return storeFailure(error)
        }
    }

    func poll(identity: String, named: Bool, peer: String?) async -> HTTPReply {
        do {
            let t = now
            let redeliver = Self.microseconds(configuration.redeliverAfter)
            let state = try await store.pollState(component: identity, now: t, redeliverAfter: redeliver)
            guard state.registered else {
                // Ours re-registers on 428; the RI's component would stop polling on it (it calls
                // a method it does not have), so an unnamed component gets an empty envelope.
                if named { return .failure(MPlaneException(token: nil, message: "Register first", status: 428)) }
                return .message(.envelope(Envelope(contents: [])))
            }
            recordSeen(identity, address: peer, at: t)
            var items: [WorkItem] = []
            var next = state.next
            if state.due {
                (items, next) = try await store.claim(component: identity, now: t, redeliverAfter: redeliver, limit: Self.itemsPerPoll)
            }
            var parts = items.map(\.body)
            if let style = state.callback {
                // Back when the next queued item is due, at most callback-interval from now, at
                // least a second. Last: the RI's component reads no further than the callback.
                let cap = Self.microseconds(configuration.callbackInterval)
                var wait = cap
                if let next { wait = Swift.min(cap, Swift.max(1_000_000, next.microseconds - t.microseconds)) }
                if items.count >= Self.itemsPerPoll { wait = 1_000_000 }  // more may wait than one answer takes
                parts.append(callbackSpecification(style: style, seconds: Swift.max(1, (wait + 999_999) / 1_000_000)))
            }
            if !items.isEmpty {
                logger.debug("work handed out", metadata: ["mplane.component": "\(identity)", "mplane.items": "\(items.count)"])
            }
            let body = "{\"contents\": [" + parts.joined(separator: ", ") + "], \"envelope\": \"message\", \"version\": 1}"
            return HTTPReply(status: 200, contentType: mplaneContentType, body: Array(body.utf8))
        } catch {
            return storeFailure(error)
        }
    }

    /// How stale a written seen time may be for a component that keeps polling: a tenth of
    /// `absent-after` (6 s by default), at least 1 s. A component that stops polling is
    /// taken for absent up to this much before `absent-after` has passed since its last poll.
    var seenRefresh: Int64 { Swift.max(1_000_000, Self.microseconds(configuration.absentAfter) / 10) }

    /// Records that `component` was seen (written with the next batch when it is due).
    func recordSeen(_ component: String, address: String?, at t: Timestamp) {
        let refresh = seenRefresh
        seen.withLock { s in
            if let w = s.written[component], t.microseconds - w.at < refresh, address == nil || address == w.address {
                return
            }
            s.pending[component] = (address, t)
        }
    }

    /// The most items one poll's answer carries.
    static let itemsPerPoll = 256

    /// Writes when components were last seen; ``SupervisorService`` calls it every second.
    public func flushSeen() async {
        let batch = seen.withLock { s in
            defer { s.pending = [:] }
            return s.pending
        }
        guard !batch.isEmpty else { return }
        do { try await store.markSeen(batch) } catch {
            // Not lost for long: the next poll of each records it again.
            refusals.log("could not record when components were seen", kind: "seen", level: .error, metadata: ["error": "\(error)"])
            return
        }
        let forget = now.microseconds - 2 * Self.microseconds(configuration.absentAfter)
        seen.withLock { s in
            for (name, v) in batch where (s.written[name]?.at ?? .min) < v.at.microseconds {
                s.written[name] = (v.address ?? s.written[name]?.address, v.at.microseconds)
            }
            // One entry per component polling lately: the rest go about once a minute.
            s.flushes += 1
            if s.flushes % 60 == 0 { s.written = s.written.filter { $0.value.at >= forget } }
        }
    }

    func callbackSpecification(style: CallbackStyle, seconds: Int64) -> String {
        let cap: Capability
        switch style {
        case .verb: cap = Capability(verb: .callback, label: "callback", when: .nowToFuture)
        case .label: cap = Capability(verb: .measure, label: "callback", when: .nowToFuture)
        }
        let when = (try? When(parsing: "now + \(seconds)s")) ?? .nowToFuture
        return MessageEncoder().encodeString(.specification(Specification(capability: cap, when: when)))
    }

    func results(_ request: HTTPRequestData, identity: String, named: Bool) async -> HTTPReply {
        let message: Message
        switch request.message() {
        case .success(let m): message = m
        case .failure(let e): return .failure(e)
        }
        do {
            // Acknowledged once committed. What is kept is what answers a job given to this
            // component. A component that polled here lately is not asked whether it is
            // registered first (a round trip to the store per result), only when nothing was
            // kept, to say why; any other sender is asked first, so that a stranger's post
            // never reaches the write path.
            let t = now
            let polledHere = seen.withLock { $0.written[identity] != nil || $0.pending[identity] != nil }
            func unregistered() -> HTTPReply {
                // Ours registers again and sends the message again; the RI's never polls
                // unregistered, so an unnamed peer here is not a component of ours.
                if named { return .failure(MPlaneException(token: message.token, message: "Register first", status: 428)) }
                return .failure(MPlaneException(.refused, token: message.token, message: "Results are taken from registered components only"))
            }
            func registered() async throws -> Bool { try await store.pollState(component: identity, now: t, redeliverAfter: 0).registered }
            if !polledHere, try await !registered() { return unregistered() }
            let outcome = try await store.store(component: identity, messages: [message], now: t)
            if outcome.stored == 0 {
                if polledHere, try await !registered() { return unregistered() }
                if let token = outcome.unknownTokens.first {
                    return .failure(MPlaneException(.refused, token: token, message: "No job with this token was given to this component"))
                }
                return .failure(MPlaneException(.invalidMessage, token: message.token, message: "Nothing to keep: the result path takes receipts, results and exceptions with a token"))
            }
            return HTTPReply(status: 200, contentType: "text/plain", body: [])
        } catch {
            return storeFailure(error)
        }
    }

    func storeFailure(_ error: any Error) -> HTTPReply {
        refusals.log("the store failed; the request is refused and may be retried", kind: "store", level: .error,
                     metadata: ["error": "\(error)"])
        return .failure(MPlaneException(.busy, message: "The supervisor's store is not available; retry later"))
    }

    // MARK: The client-facing side

    public func clientSide(_ request: HTTPRequestData) async -> HTTPReply {
        let path = request.route
        let who = request.principal
        do {
            switch (request.method, path) {
            case ("GET", "/"), ("GET", "/capability"), ("GET", "/capability/"):
                let caps = try await offered(to: who)
                if request.wantsMessage { return .message(.envelope(Envelope(contents: caps.map { .capability($0) }))) }
                return .html(capabilityList(caps))
            case ("GET", _) where path.hasPrefix("/capability/"):
                let key = String(path.dropFirst("/capability/".count))
                guard let c = try await store.capability(publicToken: key), allows(who, c), let cap = shown(c) else {
                    return .failure(MPlaneException(.unknown, token: quoting(key), message: "Unknown capability"))
                }
                return .message(.capability(cap))
            case ("GET", "/component"):
                return try await componentList(for: who)
            case ("POST", "/"), ("POST", "/capability"), ("POST", "/fanout"):
                return try await post(request, target: nil, fanOut: path == "/fanout", who: who)
            case ("POST", _) where path.hasPrefix("/capability/"):
                return try await post(request, target: String(path.dropFirst("/capability/".count)), fanOut: false, who: who)
            case (_, "/"), (_, "/capability"), (_, "/fanout"):
                return .failure(MPlaneException(.methodNotAllowed, message: "Method \(quoting(request.method)) not allowed here"))
            default:
                return .failure(MPlaneException(.unknown, message: "Not found: \(quoting(path))"))
            }
        } catch {
            return storeFailure(error)
        }
    }

    /// Every registered component (JSON, ours): its name, its address, when it registered and
    /// was last seen, whether it is present, and the tokens of its capabilities as clients see
    /// them, so that an operator or a script knows which capability reaches which probe.
    func componentList(for who: String) async throws -> HTTPReply {
        let since = now.adding(microseconds: -Self.microseconds(configuration.absentAfter))
        let authorization = authorization
        let items = try await store.components().compactMap { c -> String? in
            let visible = c.capabilities.filter { authorization.allows(who, label: $0.label, token: $0.token) }
            // With authorisations, a component none of whose capabilities is allowed is not shown.
            if authorization.isEnforced && visible.isEmpty { return nil }
            let caps = visible.map { "{\"token\": \"\(jsonEscaped($0.token))\", \"label\": \($0.label.map { "\"\(jsonEscaped($0))\"" } ?? "null")}" }
            return "{\"name\": \"\(jsonEscaped(c.name))\", \"address\": \(c.address.map { "\"\(jsonEscaped($0))\"" } ?? "null"), "
                + "\"registered\": \"\(c.registered)\", \"seen\": \"\(c.seen)\", \"present\": \(c.seen >= since), "
                + "\"capabilities\": [\(caps.joined(separator: ", "))]}"
        }
        return HTTPReply(status: 200, contentType: "application/json", body: Array(("{\"components\": [" + items.joined(separator: ", ") + "]}\n").utf8))
    }

    /// The capabilities of the present components, as clients see them: each with its own
    /// token and a link that reaches its component.
    func offered(to who: String) async throws -> [Capability] {
        let since = now.adding(microseconds: -Self.microseconds(configuration.absentAfter))
        return try await store.capabilities(presentSince: since).filter { allows(who, $0) }.compactMap(shown)
    }

    /// Whether `who` may see and use `c` (`[Roles]`, `[Authorizations]`: by label, or by the
    /// token clients see).
    func allows(_ who: String, _ c: OfferedCapability) -> Bool {
        authorization.allows(who, label: c.label, token: c.publicToken)
    }

    /// The refusal of what `who` may not use; it names nothing.
    static func notAuthorised(_ token: String?) -> HTTPReply {
        .failure(MPlaneException(.forbidden, token: token, message: "Specification not authorised"))
    }

    func shown(_ c: OfferedCapability) -> Capability? {
        guard var cap = capability(c) else { return nil }
        cap.statement.token = c.publicToken
        cap.statement.link = capabilityBase + "/capability/" + c.publicToken
        return cap
    }

    /// The capability `c` holds, decoded once and kept (a body compare is much cheaper than
    /// a decode); the cache is bounded, and emptied when full.
    func capability(_ c: OfferedCapability) -> Capability? {
        if let hit = decoded.withLock({ $0[c.publicToken] }), hit.body == c.body { return hit.capability }
        guard case .capability(let cap)? = try? MessageDecoder().decode(Array(c.body.utf8)) else { return nil }
        decoded.withLock { d in
            if d.count >= Self.decodedCapabilities { d.removeAll(keepingCapacity: true) }
            d[c.publicToken] = (c.body, cap)
        }
        return cap
    }

    static let decodedCapabilities = 200_000

    func post(_ request: HTTPRequestData, target: String?, fanOut: Bool, who: String) async throws -> HTTPReply {
        if request.body.count > configuration.maxSpecificationBytes {
            return .failure(MPlaneException(.tooLarge, message: "A client's message is at most max-specification-bytes (\(configuration.maxSpecificationBytes))"))
        }
        let message: Message
        switch request.message() {
        case .success(let m): message = m
        case .failure(let e): return .failure(e)
        }
        switch message {
        case .specification(let spec):
            let enforced = authorization.isEnforced
            if let target {
                let found = try await store.capability(publicToken: target)
                guard let c = found, allows(who, c) else {
                    if enforced { return Self.notAuthorised(spec.token) }
                    return .failure(MPlaneException(.unknown, token: quoting(target), message: "Unknown capability"))
                }
                return try await submit(spec, to: c, owner: who).reply
            }
            let matching = try await matches(spec).filter { allows(who, $0) }
            if matching.isEmpty {
                if enforced { return Self.notAuthorised(spec.token) }
                return .failure(MPlaneException(.noService, token: spec.token, message: "No present component offers a capability this specification fits"))
            }
            if fanOut {
                // One job per component, each with a token of its own, queued in one transaction.
                var jobs: [NewJob] = []
                var receipts: [Message] = []
                let t = now
                for c in matching {
                    var s = spec
                    // Per component and per client: another client's fan-out of the same
                    // token is another set of jobs.
                    s.statement.token = md5Hex(spec.token + "\u{0}" + c.component + "\u{0}" + who)
                    s.statement.link = specificationLink
                    jobs.append(NewJob(token: s.token, component: c.component, capability: c.publicToken, label: spec.statement.label,
                                       specification: .specification(s), start: t, owner: who))
                    receipts.append(.receipt(Receipt(specification: s)))
                }
                let outcomes = try await store.enqueue(jobs, now: t, maxQueued: configuration.maxQueuedPerComponent)
                var contents: [Message] = []
                for (receipt, outcome) in zip(receipts, outcomes) {
                    if outcome == .full {
                        contents.append(.exception(MPlaneException(.limitReached, token: receipt.token, message: "The component has max-queued-per-component specifications waiting")))
                    } else {
                        contents.append(receipt)
                    }
                }
                return .message(.envelope(Envelope(contents: contents)))
            }
            guard matching.count == 1 else {
                return .failure(MPlaneException(.refused, token: spec.token, message: "\(matching.count) components offer a capability this specification fits: post it to one capability's link, or to /fanout for all"))
            }
            return try await submit(spec, to: matching[0], owner: who).reply
        case .redemption(let r):
            return try await answer(token: r.token, waiting: false, owner: who)
        case .interrupt(let i):
            // Another identity's job is unknown to this one.
            guard let job = try await store.job(token: i.token), Self.may(who, job),
                  try await store.enqueueInterrupt(token: i.token, now: now) else {
                return .failure(MPlaneException(.unknown, token: i.token, message: "Unknown job"))
            }
            return try await answer(token: i.token, waiting: false, owner: who)
        default:
            return .failure(MPlaneException(.invalidMessage, token: message.token, message: "The supervisor's client side does not accept a \(message.kind.rawValue)"))
        }
    }

    /// The present components' capabilities `spec` fits: same verb and schema (the seed's
    /// `capabilities_matching_schema`), its parameters within their constraints.
    func matches(_ spec: Specification) async throws -> [OfferedCapability] {
        let since = now.adding(microseconds: -Self.microseconds(configuration.absentAfter))
        let t = now
        var components: Set<String> = []
        return try await store.capabilities(presentSince: since).filter { c in
            // One per component: its first fitting capability.
            guard !components.contains(c.component), let cap = capability(c) else { return false }
            guard spec.statement.verb == cap.statement.verb && spec.mismatch(with: cap, now: t) == nil else { return false }
            components.insert(c.component)
            return true
        }
    }

    /// Queues `spec` for the component offering `c`; answers with the result if it comes
    /// within reply-wait, else a receipt.
    func submit(_ spec: Specification, to c: OfferedCapability, wait: Bool = true, owner: String = unauthenticatedIdentity) async throws -> (message: Message, reply: HTTPReply) {
        guard let cap = capability(c) else {
            let e = MPlaneException(.unknown, token: spec.token, message: "Unknown capability")
            return (.exception(e), .failure(e))
        }
        // It must fit this capability (what it leaves out, the component fills in): a
        // capability's link is not a way to run another one, of another schema or beyond
        // this one's constraints, on the same component.
        if let why = spec.mismatch(allowingLeftOutParametersOf: cap, now: now) {
            let e = MPlaneException(.refused, token: spec.token, message: "Specification refused: \(why)")
            return (.exception(e), .failure(e))
        }
        var forwarded = spec
        var token = spec.token
        if let existing = try await store.job(token: token), !Self.may(owner, existing) {
            // Another identity's token: a token of this client's own, so that a token says
            // nothing of another's jobs and cannot be taken from them.
            token = md5Hex(token + "\u{0}owner\u{0}" + owner)
        }
        if let existing = try await store.job(token: token), existing.component != c.component {
            // The same specification for another component: a token of its own.
            token = md5Hex(token + "\u{0}" + c.component)
        }
        forwarded.statement.token = token
        forwarded.statement.link = specificationLink
        if let existing = try await store.job(token: token),
           existing.specification != MessageEncoder().encodeString(.specification(forwarded)) || !Self.may(owner, existing) {
            // A token names one specification: another one under it is refused, not merged.
            let e = MPlaneException(.refused, token: token, message: "This token names another specification already")
            return (.exception(e), .failure(e))
        }
        let t = now
        let outcome = try await store.enqueue([NewJob(token: token, component: c.component, capability: c.publicToken,
                                                      label: spec.statement.label, specification: .specification(forwarded), start: t,
                                                      owner: owner)],
                                              now: t, maxQueued: configuration.maxQueuedPerComponent).first
        switch outcome {
        case .queued?:
            logger.info("specification queued", metadata: ["mplane.component": "\(c.component)", "mplane.token": "\(token)"])
        case .full?:
            let e = MPlaneException(.limitReached, token: token, message: "The component has max-queued-per-component (\(configuration.maxQueuedPerComponent)) specifications waiting; retry later")
            return (.exception(e), .failure(e))
        default:
            break  // the same specification again: its job as it stands
        }
        let receipt = Message.receipt(Receipt(specification: forwarded))
        guard wait else { return (receipt, .message(receipt)) }
        let reply = try await answer(token: token, waiting: true, owner: owner)
        return (receipt, reply)
    }

    /// Whether `who` may see `job`: the one who started it (jobs of before owners were
    /// recorded: anyone).
    static func may(_ who: String, _ job: JobRecord) -> Bool {
        // Byte for byte: two Unicode spellings of one name are two certificates.
        guard let owner = job.owner else { return true }
        return owner.utf8.elementsEqual(who.utf8)
    }

    /// What a client gets for job `token`: its result or exception once it came; else (after
    /// waiting up to reply-wait when `waiting`) its receipt.
    func answer(token: String, waiting: Bool, owner: String) async throws -> HTTPReply {
        let deadline = now.adding(microseconds: waiting ? Self.microseconds(configuration.replyWait) : 0)
        while true {
            guard let job = try await store.job(token: token), Self.may(owner, job) else {
                return .failure(MPlaneException(.unknown, token: token, message: "Unknown job"))
            }
            if let answer = job.answer {
                return HTTPReply(status: job.state == .failed ? exceptionStatus(answer) : 200, contentType: mplaneContentType,
                                 body: Array(answer.utf8))
            }
            if !waiting || now >= deadline {
                if let receipt = job.receipt { return HTTPReply(status: 200, contentType: mplaneContentType, body: Array(receipt.utf8)) }
                guard case .specification(let s) = try MessageDecoder().decode(Array(job.specification.utf8)) else {
                    return .failure(MPlaneException(.unknown, token: token, message: "Unknown job"))
                }
                return .message(.receipt(Receipt(specification: s)))
            }
            try await clock.sleep(until: Swift.min(deadline, now.adding(microseconds: 100_000)))
        }
    }

    /// The status of a stored exception: the component's, when it is a client or server
    /// error status (a component's message decides nothing else about our reply), else 400.
    func exceptionStatus(_ body: String) -> Int {
        if case .exception(let e)? = try? MessageDecoder().decode(Array(body.utf8)) {
            if let s = e.status, (400...599).contains(s) { return s }
            return 400
        }
        return 200
    }

    // MARK: Retention

    /// Deletes what is past the retention bounds; runs every minute from ``SupervisorService``.
    public func prune() async throws -> Int {
        try await store.prune(olderThan: now.adding(microseconds: -Self.microseconds(configuration.retentionAge)),
                              maxBytes: configuration.retentionBytes,
                              forgetBefore: now.adding(microseconds: -Self.microseconds(configuration.forgetAfter)))
    }

    static func microseconds(_ d: Duration) -> Int64 {
        d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000
    }
}

/// A host as a URL names it: an IPv6 address in brackets.
func bracketed(_ host: String) -> String { host.contains(":") ? "[\(host)]" : host }

/// `s` as the inside of a JSON string.
func jsonEscaped(_ s: String) -> String {
    var out = ""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case _ where u.value < 0x20:
            let hex = String(u.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(u)
        }
    }
    return out
}

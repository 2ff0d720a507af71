import MPlaneIO
public import MPlaneHTTP
public import MPlane
public import MPlaneScheduler
import Synchronization

/// The client-initiated HTTP surface of a component, without sockets: what the reference
/// implementation serves, with its defects fixed (errors are mPlane exceptions with a 4xx/5xx
/// status, content types may carry parameters, a specification never holds up other requests).
public struct ComponentRouter: Sendable {
    public static let mplaneType = mplaneContentType

    public let scheduler: Scheduler
    private let cache: CapabilityCache
    private let link: LinkBox

    /// The capabilities as served: with their `link` and an explicit token.
    public var capabilities: [Capability] {
        let served = cache.capabilities(of: scheduler)
        guard let l = link.value else { return served }
        return served.map { c in
            var c = c
            c.statement.link = l
            return c
        }
    }

    /// Sets the link capabilities carry, unless one was configured.
    public func setDefaultLink(_ l: String) { link.setIfUnset(l) }
    /// How long a specification's reply waits for its result before answering with a receipt.
    public let replyWait: Duration
    let decoder: MessageDecoder
    let encoder = MessageEncoder()

    /// Who may see and use which capability (`[Roles]`, `[Authorizations]`; replaced on reload).
    public let policy: AuthorizationPolicy
    var authorization: Authorization { policy.authorization }

    public init(scheduler: Scheduler, link: String?, replyWait: Duration, decoder: MessageDecoder = MessageDecoder(),
                policy: AuthorizationPolicy = AuthorizationPolicy()) {
        self.scheduler = scheduler
        self.policy = policy
        self.replyWait = replyWait
        self.decoder = decoder
        self.link = LinkBox(link)
        cache = CapabilityCache()
    }

    /// The capabilities `request`'s sender may see.
    func capabilities(for request: HTTPRequestData) -> [Capability] {
        let all = capabilities
        let authorization = authorization
        guard authorization.isEnforced else { return all }
        let who = request.principal
        return all.filter { authorization.allows(who, $0) }
    }

    /// What the sender of `request` may use; nil when authorisations are not configured.
    func permitted(for request: HTTPRequestData) -> Scheduler.Permitted? {
        let authorization = authorization
        guard authorization.isEnforced else { return nil }
        let who = request.principal
        return { authorization.allows(who, $0) }
    }

    public func handle(_ request: HTTPRequestData) async -> HTTPReply {
        let path = request.route
        let capabilities = capabilities(for: request)
        // Content negotiation for the capability listings: an envelope for clients that ask
        // for mPlane JSON or send no Accept at all (the RI's client sends none, and its HTML
        // crawler no longer works on Python 3); the RI's HTML pages for browsers and curl.
        let wantsMessage = request.wantsMessage
        switch (request.method, path) {
        case ("GET", "/"), ("HEAD", "/"):
            if wantsMessage { return .message(.envelope(Envelope(contents: capabilities.map { .capability($0) }))) }
            return .html(indexPage(capabilities))
        case ("GET", "/capability"), ("GET", "/capability/"):
            if wantsMessage { return .message(.envelope(Envelope(contents: capabilities.map { .capability($0) }))) }
            return .html(capabilityList(capabilities))
        case ("GET", _) where path.hasPrefix("/capability/"):
            let key = String(path.dropFirst("/capability/".count))
            guard let cap = capabilities.first(where: { $0.token == key || $0.statement.label == key }) else {
                return .failure(MPlaneException(.unknown, token: quoting(key), message: "Unknown capability"))
            }
            return .message(.capability(cap))
        case ("POST", "/"), ("POST", "/capability"):
            // The RI's client posts to the URL it retrieved capabilities from.
            return await post(request)
        case (_, "/"), (_, "/capability"):
            return .failure(MPlaneException(.methodNotAllowed, message: "Method \(quoting(request.method)) not allowed here"))
        default:
            return .failure(MPlaneException(.unknown, message: "Not found: \(quoting(path))"))
        }
    }

    func post(_ request: HTTPRequestData) async -> HTTPReply {
        let message: Message
        switch request.message(decoder: decoder) {
        case .success(let m): message = m
        case .failure(let e): return .failure(e)
        }
        // Limits count per certificate identity with TLS, per address without; jobs belong to
        // the identity that started them.
        let peer = request.identity ?? request.peer
        switch message {
        case .specification(let spec):
            let answer = await scheduler.submit(spec, peer: peer, owner: request.principal, permitted: permitted(for: request))
            guard case .receipt = answer else { return .message(answer) }
            return .message(await scheduler.waitForResult(token: spec.token, timeout: replyWait, owner: request.principal))
        case .redemption, .interrupt, .envelope:
            return .message(await scheduler.process(message, peer: peer, owner: request.principal, permitted: permitted(for: request)))
        default:
            return .failure(MPlaneException(.invalidMessage, token: message.token, message: "A component does not accept a \(message.kind.rawValue)"))
        }
    }

    func indexPage(_ capabilities: [Capability]) -> String {
        var s = "<html><head><title>mpcom</title></head><body>This is an mPlane component (mpcom). "
        s += "POST mPlane messages to this URL to use.<br/><a href='/capability'>Capabilities</a> provided by this server:<br/><br/>"
        s += capabilities.map { "<pre>" + escapingHTML(encoder.encodeString(.capability($0))) + "</pre>" }.joined(separator: "<br/>")
        return s + "</body></html>"
    }
}


final class LinkBox: Sendable {
    private let state: Mutex<String?>
    init(_ v: String?) { state = Mutex(v) }
    var value: String? { state.withLock { $0 } }
    func setIfUnset(_ v: String) { state.withLock { if $0 == nil { $0 = v } } }
}

/// The scheduler's capabilities with their tokens computed, recomputed only when the
/// services change (a reload): tokens are md5 sums, too dear for every request.
final class CapabilityCache: Sendable {
    private let state = Mutex<(generation: Int, capabilities: [Capability])?>(nil)

    func capabilities(of scheduler: Scheduler) -> [Capability] {
        let generation = scheduler.servicesGeneration
        if let s = state.withLock({ $0 }), s.generation == generation { return s.capabilities }
        let fresh = scheduler.capabilities.map { c in
            var c = c
            c.statement.token = c.token
            return c
        }
        state.withLock { $0 = (generation, fresh) }
        return fresh
    }
}

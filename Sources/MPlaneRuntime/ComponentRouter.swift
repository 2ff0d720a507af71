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

    public init(scheduler: Scheduler, link: String?, replyWait: Duration, decoder: MessageDecoder = MessageDecoder()) {
        self.scheduler = scheduler
        self.replyWait = replyWait
        self.decoder = decoder
        self.link = LinkBox(link)
        cache = CapabilityCache()
    }

    public func handle(_ request: HTTPRequestData) async -> HTTPReply {
        let path = request.path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "/"
        // Content negotiation for the capability listings: an envelope for clients that ask
        // for mPlane JSON or send no Accept at all (the RI's client sends none, and its HTML
        // crawler no longer works on Python 3); the RI's HTML pages for browsers and curl.
        let accept = request.header("accept")
        let wantsMessage = accept == nil || accept?.contains(Self.mplaneType) == true
        switch (request.method, path) {
        case ("GET", "/"), ("HEAD", "/"):
            if wantsMessage { return mplane(.envelope(Envelope(contents: capabilities.map { .capability($0) }))) }
            return html(indexPage())
        case ("GET", "/capability"), ("GET", "/capability/"):
            if wantsMessage { return mplane(.envelope(Envelope(contents: capabilities.map { .capability($0) }))) }
            return html(capabilityList())
        case ("GET", _) where path.hasPrefix("/capability/"):
            let key = String(path.dropFirst("/capability/".count))
            guard let cap = capabilities.first(where: { $0.token == key || $0.statement.label == key }) else {
                return failure(MPlaneException(.unknown, token: Self.echo(key), message: "Unknown capability"))
            }
            return mplane(.capability(cap))
        case ("POST", "/"), ("POST", "/capability"):
            // The RI's client posts to the URL it retrieved capabilities from.
            return await post(request)
        case (_, "/"), (_, "/capability"):
            return failure(MPlaneException(.methodNotAllowed, message: "Method \(Self.echo(request.method)) not allowed here"))
        default:
            return failure(MPlaneException(.unknown, message: "Not found: \(Self.echo(path))"))
        }
    }

    func post(_ request: HTTPRequestData) async -> HTTPReply {
        let type = request.header("content-type")?.split(separator: ";").first.map { $0.trimmingSpaces().lowercased() }
        guard type == Self.mplaneType else {
            return failure(MPlaneException(.unsupportedMediaType, message: "Content-Type must be \(Self.mplaneType), not \(type.map { Self.echo($0) } ?? "none")"))
        }
        let message: Message
        do {
            message = try decoder.decode(request.body)
        } catch {
            return failure(MPlaneException(.invalidMessage, message: "Invalid message: \(Self.echo("\(error)", limit: 1000))"))
        }
        switch message {
        case .specification(let spec):
            let answer = await scheduler.submit(spec, peer: request.peer)
            guard case .receipt = answer else { return reply(answer) }
            return reply(await scheduler.waitForResult(token: spec.token, timeout: replyWait))
        case .redemption, .interrupt, .envelope:
            return reply(await scheduler.process(message, peer: request.peer))
        default:
            return failure(MPlaneException(.invalidMessage, token: message.token, message: "A component does not accept a \(message.kind.rawValue)"))
        }
    }

    /// A peer's text as an error message may quote it: at most `limit` characters, control
    /// characters (NUL among them, which no mPlane string may hold) as `?`.
    static func echo(_ text: String, limit: Int = 200) -> String {
        var out = ""
        for (i, u) in text.unicodeScalars.enumerated() {
            if i == limit { out += "…"; break }
            out.unicodeScalars.append(u.value < 0x20 || u.value == 0x7f ? "?" : u)
        }
        return out
    }

    func reply(_ m: Message) -> HTTPReply {
        if case .exception(let e) = m { return failure(e) }
        return mplane(m)
    }

    func mplane(_ m: Message, status: Int = 200) -> HTTPReply {
        HTTPReply(status: status, contentType: Self.mplaneType, body: encoder.encode(m))
    }

    func failure(_ e: MPlaneException) -> HTTPReply {
        mplane(.exception(e), status: e.status ?? Refusal.invalidMessage.status)
    }

    func html(_ text: String) -> HTTPReply {
        // Exactly `text/html`: the reference client compares the header byte for byte.
        HTTPReply(status: 200, contentType: "text/html", body: Array(text.utf8))
    }

    func capabilityList() -> String {
        var s = "<html><head><title>Capabilities</title></head><body>"
        for c in capabilities { s += "<a href='/capability/\(c.token)'>\(c.token)</a><br/>" }
        return s + "</body></html>"
    }

    func indexPage() -> String {
        var s = "<html><head><title>mpcom</title></head><body>This is an mPlane component (mpcom). "
        s += "POST mPlane messages to this URL to use.<br/><a href='/capability'>Capabilities</a> provided by this server:<br/><br/>"
        s += capabilities.map { "<pre>" + escapeHTML(encoder.encodeString(.capability($0))) + "</pre>" }.joined(separator: "<br/>")
        return s + "</body></html>"
    }

    func escapeHTML(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            default: out.append(c)
            }
        }
        return out
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

public import MPlane
public import MPlaneHTTP

/// A client for a component in the client-initiated workflow: ours, or the reference
/// implementation's `mpcom`. It reads the capabilities, sends specifications, redemptions
/// and interrupts, and runs a specification to its result, redeeming receipts meanwhile.
public struct ComponentClient: Sendable {
    /// The component's address; requests go to its root (`POST /`) and `/capability`.
    public let url: HTTPURL
    /// How long one HTTP exchange may take. A component may hold a specification's POST
    /// for its reply wait (5 s on both implementations) before answering with a receipt.
    public var requestTimeout: Duration
    public var decoder: MessageDecoder
    /// Our certificate and the CA for `https` components (mutual TLS).
    public var tls: TLSContexts?

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    public init(url: HTTPURL, requestTimeout: Duration = .seconds(15), decoder: MessageDecoder = MessageDecoder(),
                tls: TLSContexts? = nil) {
        self.url = url
        self.tls = tls
        self.requestTimeout = requestTimeout
        self.decoder = decoder
    }

    /// The component's capabilities. Ours answers `GET /capability` with an envelope when
    /// asked for mPlane JSON; the reference implementation always answers with an HTML list
    /// of links, which are then read one by one.
    public func capabilities() async throws(Failure) -> [Capability] {
        let reply = try await exchange("GET", path: "/capability", accept: mplaneContentType)
        if isMPlane(reply) {
            switch try decode(reply, what: "GET /capability") {
            case .envelope(let envelope):
                return envelope.contents.compactMap { if case .capability(let c) = $0 { c } else { nil } }
            case .capability(let c):
                return [c]
            case .exception(let e):
                throw Failure("GET /capability: the component answered: \(e.message)")
            case let other:
                throw Failure("GET /capability: answered with a message of kind \(other.kind.rawValue), not capabilities")
            }
        }
        guard reply.status == 200, reply.contentType?.lowercased().hasPrefix("text/html") == true else {
            throw Failure("GET /capability on \(url): HTTP \(reply.status) \(reply.contentType ?? "without a content type"), "
                          + "neither capabilities nor a list of them: is this an mPlane component?")
        }
        var capabilities: [Capability] = []
        for link in Self.capabilityLinks(in: String(decoding: reply.body, as: UTF8.self)) {
            let one = try await exchange("GET", path: link, accept: mplaneContentType)
            guard case .capability(let c) = try decode(one, what: "GET \(link)") else {
                throw Failure("GET \(link): not a capability")
            }
            capabilities.append(c)
        }
        return capabilities
    }

    /// Posts `message` (a specification, redemption or interrupt) and returns the answer:
    /// a result, a receipt or an exception.
    public func send(_ message: Message) async throws(Failure) -> Message {
        let body = MessageEncoder().encode(message)
        let reply = try await exchange("POST", path: "/", contentType: mplaneContentType, body: body)
        return try decode(reply, what: "POST \(message.kind.rawValue)")
    }

    /// Sends `specification` and, while the answer is a receipt, redeems it every `poll`.
    /// After `deadline` without a result it interrupts the measurement and redeems for a
    /// grace period (two seconds, or a period and a second) until the partial result comes;
    /// it returns the last answer: a result, an exception, or the receipt if nothing more
    /// came. A specification without a token gets a fresh one, so that two runs of the same
    /// measurement are two jobs (the default token is a hash of the parameters).
    public func run(_ specification: Specification, poll: Duration = .seconds(1),
                    deadline: Duration) async throws(Failure) -> Message {
        var specification = specification
        if specification.statement.token == nil { specification.statement.token = Self.freshToken() }
        let clock = ContinuousClock()
        let poll = max(poll, .milliseconds(10))
        var end = clock.now + deadline
        var answer = try await send(.specification(specification))
        var interrupted = false
        while case .receipt(let receipt) = answer {
            if clock.now >= end {
                if interrupted { return answer }
                interrupted = true
                var interrupt = Interrupt(specification: specification)
                interrupt.statement.token = receipt.token
                answer = try await send(.interrupt(interrupt))
                // The reference implementation answers an interrupt with a receipt and has the
                // partial result once the measurement notices, which may take a period.
                let period = Duration.seconds(specification.statement.when.period ?? 0)
                end = clock.now + max(.seconds(2), period + .seconds(1))
                continue
            }
            try? await Task.sleep(for: min(poll, end - clock.now))
            answer = try await send(.redemption(Redemption(receipt: receipt)))
        }
        return answer
    }

    /// 32 hexadecimal digits, random.
    static func freshToken() -> String {
        let digits = Array("0123456789abcdef")
        var generator = SystemRandomNumberGenerator()
        return String((0..<32).map { _ in digits[Int(generator.next() % 16)] })
    }

    /// The `/capability/<token>` links of the reference implementation's HTML list.
    static func capabilityLinks(in html: String) -> [String] {
        var links: [String] = []
        var rest = Substring(html)
        while let start = rest.firstRange(of: "href=") {
            rest = rest[start.upperBound...]
            guard let quote = rest.first, quote == "'" || quote == "\"" else { continue }
            rest = rest.dropFirst()
            guard let close = rest.firstIndex(of: quote) else { break }
            let link = String(rest[..<close])
            if link.hasPrefix("/capability/") { links.append(link) }
            rest = rest[close...].dropFirst()
        }
        return links
    }

    private func isMPlane(_ reply: HTTPClientReply) -> Bool {
        reply.contentType.map { $0.lowercased().hasPrefix(mplaneContentType) } ?? false
    }

    private func decode(_ reply: HTTPClientReply, what: String) throws(Failure) -> Message {
        guard isMPlane(reply) else {
            let text = String(decoding: reply.body.prefix(200), as: UTF8.self)
            throw Failure("\(what): HTTP \(reply.status) \(reply.contentType ?? "without a content type"): \(text)")
        }
        do { return try decoder.decode(reply.body) } catch {
            throw Failure("\(what): HTTP \(reply.status), not a valid mPlane message: \(error)")
        }
    }

    private func exchange(_ method: String, path: String, contentType: String? = nil, body: [UInt8] = [],
                          accept: String? = nil) async throws(Failure) -> HTTPClientReply {
        let target = url.with(path: path)
        do {
            return try await SimpleHTTPClient.request(method, target, contentType: contentType, body: body,
                                                      accept: accept, timeout: requestTimeout, tls: tls)
        } catch let error as HTTPClientError {
            throw Failure(error.message)  // names the request already
        } catch {
            throw Failure("\(method) \(target): \(error)")
        }
    }
}

import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS

/// An `http://` or `https://host:port/path` URL.
public struct HTTPURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var path: String
    /// TLS (`https`) or not.
    public var secure: Bool

    public init(host: String, port: Int, path: String, secure: Bool = false) {
        self.host = host
        self.port = port
        self.path = path.hasPrefix("/") ? path : "/" + path
        self.secure = secure
    }

    /// Parses `http[s]://host[:port][/path]` (IPv6 hosts in brackets); nil otherwise.
    public init?(_ text: String) {
        let secure = text.hasPrefix("https://")
        guard secure || text.hasPrefix("http://") else { return nil }
        let rest = text.dropFirst(secure ? 8 : 7)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        var authority = rest[..<slash]
        let path = rest[slash...]
        var port = secure ? 443 : 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { guard let p = Int(after.dropFirst()) else { return nil }; port = p }
            authority = authority[authority.index(after: authority.startIndex)..<close]
        } else if let colon = authority.lastIndex(of: ":") {
            guard let p = Int(authority[authority.index(after: colon)...]) else { return nil }
            port = p
            authority = authority[..<colon]
        }
        guard !authority.isEmpty, (1...65535).contains(port) else { return nil }
        self.init(host: String(authority), port: port, path: path.isEmpty ? "/" : String(path), secure: secure)
    }

    public var description: String { origin + path }

    /// `http[s]://host:port`, what tells servers apart (hosts compared as written, lower-cased).
    public var origin: String {
        let h = host.contains(":") ? "[\(host.lowercased())]" : host.lowercased()
        return "\(secure ? "https" : "http")://\(h):\(port)"
    }

    /// This URL with another path.
    public func with(path: String) -> HTTPURL { HTTPURL(host: host, port: port, path: path, secure: secure) }
}

/// A response as the agent needs it.
public struct HTTPClientReply: Sendable {
    public var status: Int
    public var contentType: String?
    public var body: [UInt8]
    /// The identity of the server's certificate (https); nil in plain HTTP.
    public var peerIdentity: String?
    public init(status: Int, contentType: String?, body: [UInt8], peerIdentity: String? = nil) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.peerIdentity = peerIdentity
    }
}

public struct HTTPClientError: Error, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// One request per connection (`Connection: close`), with an overall timeout. An `https`
/// URL is reached with mutual TLS (`tls`: our certificate, the CA the server's must chain
/// to); without `tls` it is an error, as it is for the RI. With `expectServer`, a server
/// whose certificate identity is another is refused before anything is sent.
public enum SimpleHTTPClient {
    public static func request(_ method: String, _ url: HTTPURL, contentType: String? = nil, body: [UInt8] = [],
                               accept: String? = nil, headers extra: [(String, String)] = [], timeout: Duration = .seconds(10),
                               maxResponseBytes: Int = 64 << 20, tls: TLSContexts? = nil,
                               bodyForServer: (@Sendable (String) -> [UInt8])? = nil,
                               expectServer: String? = nil) async throws -> HTTPClientReply {
        if url.secure && tls == nil {
            throw HTTPClientError(message: "\(url): an https URL needs a [TLS] section (cert, key, ca-chain)")
        }
        return try await withThrowingTaskGroup(of: HTTPClientReply?.self) { group in
            group.addTask {
                try await perform(method, url, contentType: contentType, body: body, accept: accept, headers: extra,
                                  maxResponseBytes: maxResponseBytes, tls: url.secure ? tls : nil, bodyForServer: bodyForServer,
                                  expectServer: expectServer)
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let reply = first else {
                throw HTTPClientError(message: "\(method) \(url): no answer within \(timeout)")
            }
            return reply
        }
    }

    static func perform(_ method: String, _ url: HTTPURL, contentType: String?, body: [UInt8], accept: String?, headers extra: [(String, String)],
                        maxResponseBytes: Int, tls: TLSContexts?, bodyForServer: (@Sendable (String) -> [UInt8])?,
                        expectServer: String?) async throws -> HTTPClientReply {
        let handshake = HandshakeCompletion()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .connect(host: url.host, port: url.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(try tls.clientHandler(host: url.host))
                        try channel.pipeline.syncOperations.addHandler(handshake)
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            // With TLS, the server's identity is known before anything is sent: the body may
            // depend on it (a registration shows a supervisor what its roles allow).
            var serverIdentity: String?
            var body = body
            if tls != nil {
                try await handshake.completed(on: channel.channel)
                serverIdentity = await peerIdentity(of: channel.channel)
                if let expectServer, !(serverIdentity ?? "").utf8.elementsEqual(expectServer.utf8) {
                    // Any certificate of the CA would pass the handshake: nothing goes to
                    // a server that is not the one expected.
                    throw HTTPClientError(message: "\(url): the server is \(serverIdentity ?? "unknown"), not \(expectServer)")
                }
                if let bodyForServer { body = bodyForServer(serverIdentity ?? "") }
            } else if let bodyForServer {
                body = bodyForServer(unauthenticatedIdentity)
            }
            var headers = HTTPHeaders()
            headers.add(name: "Host", value: url.host.contains(":") ? "[\(url.host)]:\(url.port)" : "\(url.host):\(url.port)")
            headers.add(name: "User-Agent", value: "mplane-swift")
            headers.add(name: "Connection", value: "close")
            if let contentType { headers.add(name: "Content-Type", value: contentType) }
            if let accept { headers.add(name: "Accept", value: accept) }
            for (name, value) in extra { headers.add(name: name, value: value) }
            if method != "GET" || !body.isEmpty { headers.add(name: "Content-Length", value: String(body.count)) }
            let head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: url.path, headers: headers)
            // One write for the whole request: a server may answer (and close) as soon as it
            // has the head of a request without a body, before a separate `.end` was written.
            var parts: [HTTPClientRequestPart] = [.head(head)]
            if !body.isEmpty { parts.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
            parts.append(.end(nil))
            try await outbound.write(contentsOf: parts)
            var reply = HTTPClientReply(status: 0, contentType: nil, body: [])
            for try await part in inbound {
                switch part {
                case .head(let h):
                    reply.status = Int(h.status.code)
                    reply.contentType = h.headers.first(name: "content-type")
                case .body(var b):
                    guard reply.body.count + b.readableBytes <= maxResponseBytes else {
                        throw HTTPClientError(message: "\(url): response larger than \(maxResponseBytes) bytes")
                    }
                    reply.body += b.readBytes(length: b.readableBytes) ?? []
                case .end:
                    reply.peerIdentity = serverIdentity
                    return reply
                }
            }
            throw HTTPClientError(message: "\(url): connection closed before the response ended")
        }
    }
}

/// Completes when the TLS handshake of its channel does (fails when the channel closes or
/// the handler goes first). Its state is touched on the channel's event loop only.
final class HandshakeCompletion: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private var promise: EventLoopPromise<Void>?
    private var outcome: Result<Void, any Error>?

    func handlerAdded(context: ChannelHandlerContext) {
        promise = context.eventLoop.makePromise()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish(.failure(HTTPClientError(message: "connection closed during the TLS handshake")))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? TLSUserEvent, case .handshakeCompleted = e { finish(.success(())) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(.failure(error))
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.failure(HTTPClientError(message: "connection closed during the TLS handshake")))
        context.fireChannelInactive()
    }

    /// The first outcome completes the promise; later ones are ignored.
    private func finish(_ result: Result<Void, any Error>) {
        guard outcome == nil else { return }
        outcome = result
        promise?.completeWith(result)
        promise = nil
    }

    func completed(on channel: any Channel) async throws {
        let future = try await channel.eventLoop.submit { () -> EventLoopFuture<Void> in
            if let outcome = self.outcome { return channel.eventLoop.makeCompletedFuture(outcome) }
            return self.promise?.futureResult ?? channel.eventLoop.makeFailedFuture(HTTPClientError(message: "connection closed during the TLS handshake"))
        }.get()
        try await future.get()
    }
}

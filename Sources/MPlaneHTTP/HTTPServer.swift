public import Logging
import MPlane
import MPlaneIO
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// What a peer can make the HTTP server hold: every one a bound (README, "Limits").
public struct HTTPServerLimits: Sendable, Equatable {
    /// The largest request body, bytes (`max-body-bytes`): a longer announced length is
    /// answered 413 before any of the body is read.
    public var maxBodyBytes = 1 << 20
    /// How long a connection may sit idle between requests (`idle-timeout`).
    public var idleTimeout: Duration = .seconds(60)
    /// How long a request may take to arrive, from its first byte to the end of its body
    /// (`request-timeout`): 408 and the connection closed when it is missed.
    public var requestTimeout: Duration = .seconds(10)
    /// Open connections in all (`max-connections`): one more is answered 503 and closed.
    public var maxConnections = 256
    /// Open connections from one address (`max-connections-per-client`).
    public var maxConnectionsPerPeer = 32
    /// Request bodies being read, all connections together, bytes (`max-buffered-bytes`):
    /// a body that would pass it is answered 503.
    public var maxBufferedBytes = 16 << 20
    /// The same for one client (`max-buffered-bytes-per-client`), so that one cannot take it all.
    public var maxBufferedBytesPerPeer = 4 << 20

    public init() {}
}

/// The HTTP/1.1 server (SwiftNIO): keep-alive, bounded requests (size, time, connections per
/// peer and in all, buffered bytes), one task per connection; every request goes to a
/// handler (a ``ComponentRouter`` for a component).
public final class HTTPComponentServer: Sendable {
    public typealias Handler = @Sendable (HTTPRequestData) async -> HTTPReply
    let handler: Handler
    let onBound: @Sendable (String) -> Void
    public let host: String
    public let port: Int
    public let limits: HTTPServerLimits
    public var maxBodyBytes: Int { limits.maxBodyBytes }
    let logger: Logger
    let refusals: RateLimitedLog
    private let bound = Mutex<(port: Int?, waiters: [(id: UInt64, continuation: CheckedContinuation<Int, Never>)], next: UInt64)>((nil, [], 0))
    private let connections = Mutex<(total: Int, perPeer: [String: Int])>((0, [:]))
    private let buffered = Atomic<Int>(0)
    /// What the initializer decided for each accepted connection, until the accept loop takes
    /// it: the peer it was counted for (released under exactly that key: a closed channel no
    /// longer knows its remote address), or nil for a connection refused.
    /// The connection is kept here too: one the accept loop never takes (the server stopping
    /// while it was being accepted) is finished at the end, not dropped (NIO's writer traps on
    /// a drop).
    private let accepted = Mutex<[ObjectIdentifier: (peer: String?, connection: Connection)]>([:])
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
    /// The `Server` header of every response.
    let serverName: String
    /// Request bodies being read, per client.
    private let bufferedPerPeer = Mutex<[String: Int]>([:])
    /// Mutual TLS (nil: plain HTTP): every connection starts with a handshake that requires a
    /// client certificate from the configured CA; requests carry the peer's identity.
    public let tls: TLSContexts?

    /// A server answering every request with `handler` (test supervisors use this too).
    public init(host: String, port: Int, limits: HTTPServerLimits = HTTPServerLimits(),
                logger: Logger = Logger(label: "mplane.http"), serverName: String = "mpcom", tls: TLSContexts? = nil,
                onBound: @escaping @Sendable (String) -> Void = { _ in },
                handler: @escaping Handler) {
        self.handler = handler
        self.tls = tls
        self.serverName = serverName
        self.onBound = onBound
        self.host = host
        self.port = port
        self.limits = limits
        self.logger = logger
        refusals = RateLimitedLog(logger: logger)
    }

    /// The port the server listens on, once it does (the real one when configured with 0);
    /// 0 if the waiting task is cancelled first (a server that never started: its program
    /// is stopping).
    public func boundPort() async -> Int {
        let id = bound.withLock { s in
            s.next &+= 1
            return s.next
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { c in
                let p = bound.withLock { s -> Int? in
                    if let p = s.port { return p }
                    // Cancelled before waiting: the handler below found nothing to resume.
                    if Task.isCancelled { return 0 }
                    s.waiters.append((id, c))
                    return nil
                }
                if let p { c.resume(returning: p) }
            }
        } onCancel: {
            let waiter = bound.withLock { s -> CheckedContinuation<Int, Never>? in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i).continuation
            }
            waiter?.resume(returning: 0)
        }
    }

    /// Connections open now.
    public var openConnections: Int { connections.withLock { $0.total } }

    /// Serves until the task is cancelled.
    public func run() async throws {
        let idle = TimeAmount(limits.idleTimeout)
        let deadline = TimeAmount(limits.requestTimeout)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Over the connection limits: no HTTP pipeline, a 503 written as raw bytes,
                    // closed; the accept loop skips it.
                    let peer = channel.remoteAddress?.ipAddress ?? "unknown"
                    if let refusal = self.admit(peer) {
                        self.refusals.log("connection refused", kind: "connections", metadata: ["http.peer": "\(peer)", "reason": "\(refusal)"])
                        try channel.pipeline.syncOperations.addHandler(RefuseConnection(message: refusal))
                        let connection = try Connection(wrappingChannelSynchronously: channel)
                        self.accepted.withLock { $0[ObjectIdentifier(channel)] = (nil, connection) }
                        return connection
                    }
                    if let tls = self.tls {
                        // The handshake is bounded by the request deadline too; missed, the
                        // socket is closed under the TLS handler (no close_notify exchange
                        // for a peer that never finished its handshake).
                        let socket = SocketCloser()
                        try channel.pipeline.syncOperations.addHandler(socket)
                        try channel.pipeline.syncOperations.addHandler(tls.serverHandler())
                        try channel.pipeline.syncOperations.addHandler(HandshakeDeadline(timeout: deadline, closer: socket))
                    }
                    let timer = RequestDeadline(timeout: deadline)
                    try channel.pipeline.syncOperations.addHandler(timer)
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: idle))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(CloseWhenIdle(deadline: timer))
                    let connection = try Connection(wrappingChannelSynchronously: channel)
                    self.accepted.withLock { $0[ObjectIdentifier(channel)] = (peer, connection) }
                    return connection
                }
            }
        let actual = server.channel.localAddress?.port ?? port
        let waiters = bound.withLock { s in
            s.port = actual
            let w = s.waiters
            s.waiters = []
            return w
        }
        for w in waiters { w.continuation.resume(returning: actual) }
        let advertised = host == "0.0.0.0" ? "127.0.0.1" : (host == "::" ? "[::1]" : (host.contains(":") ? "[\(host)]" : host))
        onBound("\(tls == nil ? "http" : "https")://\(advertised):\(actual)/")
        logger.info("listening", metadata: ["http.address": "\(host)", "http.port": "\(actual)", "http.tls": "\(tls == nil ? "off" : "mutual")"])
        if tls == nil && !isLoopback(host) {
            logger.warning("listening in plain HTTP beyond loopback: anyone who reaches this port is served; configure [TLS]",
                           metadata: ["http.address": "\(host)"])
        }
        try await withTaskCancellationHandler {
            try await withThrowingDiscardingTaskGroup { group in
                var stopped: (any Error)? = nil
                do {
                    try await server.executeThenClose { connections in
                        for try await connection in connections {
                            let decided = accepted.withLock { $0.removeValue(forKey: ObjectIdentifier(connection.channel)) }
                            guard let peer = decided?.peer else {
                                // Refused: its handler writes the 503 and closes; wait for that, then
                                // let the async channel go (it must be finished, not dropped).
                                group.addTask { try? await connection.executeThenClose { inbound, _ in for try await _ in inbound {} } }
                                continue
                            }
                            group.addTask {
                                await self.serve(connection, peer: peer)
                                self.release(peer)
                            }
                        }
                    }
                } catch { stopped = error }
                // Accepted while the server stopped, never taken by the loop: closed properly.
                let left = accepted.withLock { a -> [(peer: String?, connection: Connection)] in
                    defer { a = [:] }
                    return Array(a.values)
                }
                for (peer, connection) in left {
                    try? await connection.executeThenClose { _, _ in }
                    if let peer { release(peer) }
                }
                if let stopped { throw stopped }
            }
        } onCancel: {
            server.channel.close(promise: nil)
        }
    }

    /// Counts a new connection from `peer`, or says which limit it would pass.
    func admit(_ peer: String) -> String? {
        connections.withLock { c -> String? in
            if c.total >= limits.maxConnections { return "limit reached: max-connections (\(limits.maxConnections))" }
            if c.perPeer[peer, default: 0] >= limits.maxConnectionsPerPeer {
                return "limit reached: max-connections-per-client (\(limits.maxConnectionsPerPeer))"
            }
            c.total += 1
            c.perPeer[peer, default: 0] += 1
            return nil
        }
    }

    private func release(_ peer: String) {
        connections.withLock { c in
            c.total -= 1
            let n = c.perPeer[peer, default: 1] - 1
            c.perPeer[peer] = n > 0 ? n : nil
        }
    }


    static func exceptionResponse(_ kind: Refusal, message: String, version: HTTPVersion) -> [HTTPServerResponsePart] {
        let status = kind.status
        let body = MessageEncoder().encode(.exception(MPlaneException(kind, message: message)))
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: mplaneContentType)
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Connection", value: "close")
        return [.head(HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: status), headers: headers)),
                .body(.byteBuffer(ByteBuffer(bytes: body))), .end(nil)]
    }

    /// Counts `n` more body bytes being read for `peer`, or says which limit they would pass.
    private func reserve(_ n: Int, for peer: String) -> String? {
        if buffered.add(n, ordering: .relaxed).newValue > limits.maxBufferedBytes {
            buffered.subtract(n, ordering: .relaxed)
            return "max-buffered-bytes"
        }
        let ok = bufferedPerPeer.withLock { t -> Bool in
            let now = t[peer, default: 0] + n
            guard now <= limits.maxBufferedBytesPerPeer else { return false }
            t[peer] = now
            return true
        }
        if !ok {
            buffered.subtract(n, ordering: .relaxed)
            return "max-buffered-bytes-per-client"
        }
        return nil
    }

    private func unreserve(_ n: Int, for peer: String) {
        guard n > 0 else { return }
        buffered.subtract(n, ordering: .relaxed)
        bufferedPerPeer.withLock { t in
            let left = t[peer, default: n] - n
            t[peer] = left > 0 ? left : nil
        }
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, peer: String) async {
        var held = 0  // body bytes this connection counts as being read
        defer { unreserve(held, for: peer) }
        let channel = connection.channel
        var identity: String?  // the peer certificate's, read once the handshake is over
        /// The last response on a connection: written straight to the channel and flushed
        /// before the close (the async writer's pending writes are dropped at close, which cut
        /// long responses short).
        @Sendable func writeThenClose(_ parts: [HTTPServerResponsePart]) async throws {
            for p in parts.dropLast() { channel.write(p, promise: nil) }
            if let last = parts.last { try await channel.writeAndFlush(last).get() }
        }
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body: [UInt8] = []
                func refuse(_ kind: Refusal, _ message: String, version: HTTPVersion) async throws {
                    refusals.log("request refused", kind: "status-\(kind.status)", metadata: ["http.peer": "\(peer)", "reason": "\(message)"])
                    try await writeThenClose(Self.exceptionResponse(kind, message: message, version: version))
                }
                for try await part in inbound {
                    switch part {
                    case .head(let h):
                        head = h
                        body = []
                        // Refused by its announced length, before a byte of the body is read.
                        if let length = h.headers.first(name: "content-length").flatMap(Int.init), length > limits.maxBodyBytes {
                            try await refuse(.tooLarge, "Request body of \(length) bytes exceeds max-body-bytes (\(limits.maxBodyBytes))", version: h.version)
                            return
                        }
                    case .body(var buffer):
                        let n = buffer.readableBytes
                        if body.count + n > limits.maxBodyBytes {
                            try await refuse(.tooLarge, "Request body exceeds max-body-bytes (\(limits.maxBodyBytes))", version: head?.version ?? .http1_1)
                            return
                        }
                        if held + n > limits.maxBufferedBytesPerPeer {
                            // It could never fit, however long the client waits.
                            try await refuse(.tooLarge, "Request body exceeds max-buffered-bytes-per-client (\(limits.maxBufferedBytesPerPeer))",
                                             version: head?.version ?? .http1_1)
                            return
                        }
                        if let limit = reserve(n, for: peer) {
                            try await refuse(.busy, "Server busy: request bodies being read exceed \(limit); try again", version: head?.version ?? .http1_1)
                            return
                        }
                        held += n
                        body += buffer.readBytes(length: n) ?? []
                    case .end:
                        guard let h = head else { continue }
                        if tls != nil && identity == nil {
                            identity = await peerIdentity(of: channel)
                            guard identity != nil else {
                                try await refuse(.forbidden, "No verified client certificate", version: h.version)
                                return
                            }
                        }
                        let request = HTTPRequestData(method: h.method.rawValue, path: h.uri,
                                                      headers: h.headers.map { ($0.name, $0.value) }, body: body, peer: peer,
                                                      identity: identity)
                        body = []
                        // The body stays counted while the handler holds it.
                        let reply = await handler(request)
                        unreserve(held, for: peer)
                        held = 0
                        let keepAlive = h.isKeepAlive
                        var headers = HTTPHeaders()
                        headers.add(name: "Content-Type", value: reply.contentType)
                        headers.add(name: "Content-Length", value: String(reply.body.count))
                        headers.add(name: "Server", value: serverName)
                        if !keepAlive { headers.add(name: "Connection", value: "close") }
                        // A status a handler took from a peer's message could be anything: only
                        // a final status with a body goes out.
                        let status = HTTPResponseStatus(statusCode: (200...599).contains(reply.status) && reply.status != 204 && reply.status != 304 ? reply.status : 500)
                        if reply.status >= 400 {
                            refusals.log("request answered with an error", kind: "status-\(reply.status)",
                                         metadata: ["http.peer": "\(peer)", "http.path": "\(h.uri.prefix(100))"])
                        }
                        // One write (one hop to the event loop) for the whole response.
                        let responseHead = HTTPServerResponsePart.head(HTTPResponseHead(version: h.version, status: status, headers: headers))
                        let parts: [HTTPServerResponsePart] = h.method == .HEAD
                            ? [responseHead, .end(nil)]
                            : [responseHead, .body(.byteBuffer(ByteBuffer(bytes: reply.body))), .end(nil)]
                        if !keepAlive {
                            try await writeThenClose(parts)
                            return
                        }
                        try await outbound.write(contentsOf: parts)
                        head = nil
                    }
                }
            }
        } catch NIOSSLError.uncleanShutdown {
            // A peer that closed without close_notify (the RI does for every certificate check).
            logger.debug("TLS connection closed without close_notify", metadata: ["http.peer": "\(peer)"])
        } catch let error as NIOSSLError {
            refusals.log("TLS handshake or connection failed", kind: "tls", metadata: ["http.peer": "\(peer)", "error": "\(error)"])
        } catch {
            logger.debug("connection ended", metadata: ["error": "\(error)"])
        }
    }
}

/// Whether a listening address is loopback only.
func isLoopback(_ host: String) -> Bool {
    host == "localhost" || host == "::1" || host.hasPrefix("127.")
}

/// The first handler of a connection: closes the socket itself, past the handlers after it.
final class SocketCloser: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private var context: ChannelHandlerContext?
    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }
    func closeNow() { context?.close(promise: nil) }
}

/// Closes a connection whose TLS handshake has not completed within `timeout`.
final class HandshakeDeadline: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let timeout: TimeAmount
    let closer: SocketCloser
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount, closer: SocketCloser) {
        self.timeout = timeout
        self.closer = closer
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let closer = NIOLoopBound(closer, eventLoop: context.eventLoop)
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { closer.value.closeNow() }
    }

    func handlerRemoved(context: ChannelHandlerContext) { timer?.cancel() }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? TLSUserEvent, case .handshakeCompleted = e {
            timer?.cancel()
            timer = nil
        }
        context.fireUserInboundEventTriggered(event)
    }
}

extension TimeAmount {
    init(_ d: Duration) {
        self = .nanoseconds(d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000)
    }
}

/// The deadline of a request: from its first byte to the end of its body, at most `timeout`;
/// missed, the peer gets a 408 exception and the connection is closed. Sits in front of the
/// HTTP decoder (it sees raw bytes); ``CloseWhenIdle`` tells it when a request has arrived
/// and when its response is out.
final class RequestDeadline: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Phase { case idle, receiving, answering }
    private var phase = Phase.idle
    /// Bytes of a next (pipelined) request came while the last was being answered.
    private var pending = false
    private var timer: Scheduled<Void>?
    private var context: ChannelHandlerContext?
    let timeout: TimeAmount

    init(timeout: TimeAmount) { self.timeout = timeout }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch phase {
        case .idle: start()
        case .answering: pending = true
        case .receiving: break
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        context.fireChannelInactive()
    }

    private func start() {
        guard let context else { return }
        phase = .receiving
        timer?.cancel()
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in self?.expired() }
    }

    /// A request's head was decoded: if its clock is not running yet (its bytes came with the
    /// previous request's, a pipelined request), it starts now.
    func requestStarted() {
        if phase == .idle { start() }
    }

    /// A whole request has arrived.
    func requestArrived() {
        phase = .answering
        pending = false
        timer?.cancel()
        timer = nil
    }

    /// The response to the last request is out: the next request's clock starts with its
    /// first byte (already here if it was pipelined).
    func responseSent() {
        phase = .idle
        if pending {
            pending = false
            start()
        }
    }

    private func expired() {
        guard phase == .receiving, let context else { return }
        let seconds = timeout.nanoseconds / 1_000_000_000
        phase = .answering
        writeRawExceptionAndClose(context: context, .timeout, reason: "Request Timeout",
                                  message: "Request not received within request-timeout (\(seconds) s)")
    }
}

/// Writes an mPlane exception as a whole HTTP/1.1 response in raw bytes (under the HTTP
/// codec, or without one), then closes the connection.
func writeRawExceptionAndClose(context: ChannelHandlerContext, _ kind: Refusal, reason: String, message: String) {
    let status = kind.status
    let body = MessageEncoder().encode(.exception(MPlaneException(kind, message: message)))
    var out = context.channel.allocator.buffer(capacity: 160 + body.count)
    out.writeString("HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(mplaneContentType)\r\n"
                    + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n")
    out.writeBytes(body)
    context.writeAndFlush(NIOAny(out)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
}

/// The whole pipeline of a connection over the limits: a 503 exception, then close.
final class RefuseConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let message: String
    private var written = false
    init(message: String) { self.message = message }

    func channelActive(context: ChannelHandlerContext) {
        if !written {
            written = true
            writeRawExceptionAndClose(context: context, .busy, reason: "Service Unavailable", message: message)
        }
        context.fireChannelActive()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { channelActive(context: context) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}  // nothing read is used
}

/// Closes a connection that has been idle past the read timeout, but never one whose
/// request is still being answered (a specification may wait for its result).
final class CloseWhenIdle: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var inFlight = 0
    private let deadline: RequestDeadline

    init(deadline: RequestDeadline) { self.deadline = deadline }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: deadline.requestStarted()  // a pipelined request's clock starts here at the latest
        case .end:
            // In flight from its end to its response's end: a request still arriving does not
            // keep the connection from its idle close.
            inFlight += 1
            deadline.requestArrived()
        case .body: break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            inFlight = Swift.max(0, inFlight - 1)
            deadline.responseSent()
        }
        context.write(data, promise: promise)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            if inFlight == 0 { context.close(promise: nil) }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

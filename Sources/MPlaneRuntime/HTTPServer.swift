public import Logging
import MPlane
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The component's HTTP/1.1 server (SwiftNIO): keep-alive, a body limit, an idle timeout,
/// one task per connection; every request goes to a ``ComponentRouter``.
public final class HTTPComponentServer: Sendable {
    public typealias Handler = @Sendable (HTTPRequestData) async -> HTTPReply
    let handler: Handler
    let onBound: @Sendable (String) -> Void
    public let host: String
    public let port: Int
    public let maxBodyBytes: Int
    public let idleTimeout: Duration
    let logger: Logger
    private let bound = Mutex<(port: Int?, waiters: [CheckedContinuation<Int, Never>])>((nil, []))

    /// A server for a component: capabilities carry the bound address unless a link was configured.
    public convenience init(router: ComponentRouter, host: String, port: Int, maxBodyBytes: Int = 1 << 20,
                            idleTimeout: Duration = .seconds(60), logger: Logger = Logger(label: "mplane.http")) {
        self.init(host: host, port: port, maxBodyBytes: maxBodyBytes, idleTimeout: idleTimeout, logger: logger,
                  onBound: { router.setDefaultLink($0) }, handler: { await router.handle($0) })
    }

    /// A server answering every request with `handler` (test supervisors use this too).
    public init(host: String, port: Int, maxBodyBytes: Int = 1 << 20, idleTimeout: Duration = .seconds(60),
                logger: Logger = Logger(label: "mplane.http"), onBound: @escaping @Sendable (String) -> Void = { _ in },
                handler: @escaping Handler) {
        self.handler = handler
        self.onBound = onBound
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.idleTimeout = idleTimeout
        self.logger = logger
    }

    /// The port the server listens on, once it does (the real one when configured with 0).
    public func boundPort() async -> Int {
        await withCheckedContinuation { c in
            let p = bound.withLock { s -> Int? in
                if let p = s.port { return p }
                s.waiters.append(c)
                return nil
            }
            if let p { c.resume(returning: p) }
        }
    }

    /// Serves until the task is cancelled.
    public func run() async throws {
        let idle = TimeAmount.nanoseconds(Int64(idleTimeout.components.seconds) * 1_000_000_000
                                          + idleTimeout.components.attoseconds / 1_000_000_000)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: idle))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(CloseWhenIdle())
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                }
            }
        let actual = server.channel.localAddress?.port ?? port
        let waiters = bound.withLock { s -> [CheckedContinuation<Int, Never>] in
            s.port = actual
            let w = s.waiters
            s.waiters = []
            return w
        }
        for w in waiters { w.resume(returning: actual) }
        let advertised = host == "0.0.0.0" ? "127.0.0.1" : (host == "::" ? "[::1]" : (host.contains(":") ? "[\(host)]" : host))
        onBound("http://\(advertised):\(actual)/")
        logger.info("listening", metadata: ["http.address": "\(host)", "http.port": "\(actual)"])
        try await withTaskCancellationHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { connections in
                    for try await connection in connections {
                        group.addTask { await self.serve(connection) }
                    }
                }
            }
        } onCancel: {
            server.channel.close(promise: nil)
        }
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body: [UInt8] = []
                var tooLarge = false
                for try await part in inbound {
                    switch part {
                    case .head(let h):
                        head = h
                        body = []
                        tooLarge = false
                        if let length = h.headers.first(name: "content-length").flatMap(Int.init), length > maxBodyBytes {
                            tooLarge = true
                        }
                    case .body(var buffer):
                        if !tooLarge {
                            if body.count + buffer.readableBytes > maxBodyBytes {
                                tooLarge = true
                                body = []
                            } else {
                                body += buffer.readBytes(length: buffer.readableBytes) ?? []
                            }
                        }
                    case .end:
                        guard let h = head else { continue }
                        let reply: HTTPReply
                        if tooLarge {
                            let e = MPlaneException(token: nil, message: "Request body exceeds \(maxBodyBytes) bytes", status: 413)
                            reply = HTTPReply(status: 413, contentType: ComponentRouter.mplaneType, body: MessageEncoder().encode(.exception(e)))
                        } else {
                            let request = HTTPRequestData(method: h.method.rawValue, path: h.uri,
                                                          headers: h.headers.map { ($0.name, $0.value) }, body: body)
                            reply = await handler(request)
                        }
                        let keepAlive = h.isKeepAlive && !tooLarge
                        var headers = HTTPHeaders()
                        headers.add(name: "Content-Type", value: reply.contentType)
                        headers.add(name: "Content-Length", value: String(reply.body.count))
                        headers.add(name: "Server", value: "mpcom")
                        if !keepAlive { headers.add(name: "Connection", value: "close") }
                        let status = HTTPResponseStatus(statusCode: reply.status)
                        // One write (one hop to the event loop) for the whole response.
                        let responseHead = HTTPServerResponsePart.head(HTTPResponseHead(version: h.version, status: status, headers: headers))
                        if h.method == .HEAD {
                            try await outbound.write(contentsOf: [responseHead, .end(nil)])
                        } else {
                            try await outbound.write(contentsOf: [responseHead, .body(.byteBuffer(ByteBuffer(bytes: reply.body))), .end(nil)])
                        }
                        if !keepAlive { return }
                        head = nil
                        body = []
                    }
                }
            }
        } catch {
            logger.debug("connection ended", metadata: ["error": "\(error)"])
        }
    }
}

/// Closes a connection that has been idle past the read timeout, but never one whose
/// request is still being answered (a specification may wait for its result).
final class CloseWhenIdle: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var inFlight = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) { inFlight += 1 }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { inFlight = Swift.max(0, inFlight - 1) }
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

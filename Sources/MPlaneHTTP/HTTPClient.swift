import NIOCore
import NIOHTTP1
import NIOPosix

/// An `http://host:port/path` URL.
public struct HTTPURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var path: String

    public init(host: String, port: Int, path: String) {
        self.host = host
        self.port = port
        self.path = path.hasPrefix("/") ? path : "/" + path
    }

    /// Parses `http://host[:port][/path]` (IPv6 hosts in brackets); nil otherwise.
    public init?(_ text: String) {
        guard text.hasPrefix("http://") else { return nil }
        let rest = text.dropFirst(7)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        var authority = rest[..<slash]
        let path = rest[slash...]
        var port = 80
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
        self.init(host: String(authority), port: port, path: path.isEmpty ? "/" : String(path))
    }

    public var description: String { origin + path }

    /// `http://host:port`, what tells servers apart (hosts compared as written, lower-cased).
    public var origin: String {
        let h = host.contains(":") ? "[\(host.lowercased())]" : host.lowercased()
        return "http://\(h):\(port)"
    }

    /// This URL with another path.
    public func with(path: String) -> HTTPURL { HTTPURL(host: host, port: port, path: path) }
}

/// A response as the agent needs it.
public struct HTTPClientReply: Sendable {
    public var status: Int
    public var contentType: String?
    public var body: [UInt8]
    public init(status: Int, contentType: String?, body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }
}

public struct HTTPClientError: Error, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// One request per connection (`Connection: close`), with an overall timeout.
public enum SimpleHTTPClient {
    public static func request(_ method: String, _ url: HTTPURL, contentType: String? = nil, body: [UInt8] = [],
                               accept: String? = nil, headers extra: [(String, String)] = [], timeout: Duration = .seconds(10),
                               maxResponseBytes: Int = 64 << 20) async throws -> HTTPClientReply {
        try await withThrowingTaskGroup(of: HTTPClientReply?.self) { group in
            group.addTask {
                try await perform(method, url, contentType: contentType, body: body, accept: accept, headers: extra,
                                  maxResponseBytes: maxResponseBytes)
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
                        maxResponseBytes: Int) async throws -> HTTPClientReply {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .connect(host: url.host, port: url.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
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
                    return reply
                }
            }
            throw HTTPClientError(message: "\(url): connection closed before the response ended")
        }
    }
}

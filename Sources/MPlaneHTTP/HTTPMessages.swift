/// The media type of mPlane messages over HTTP.
public let mplaneContentType = "application/x-mplane+json"

/// An HTTP request as the router sees it (the server has read the whole body).
public struct HTTPRequestData: Sendable {
    public var method: String
    public var path: String
    public var headers: [(String, String)]
    public var body: [UInt8]
    /// Who sent it: the peer's address (its certificate identity once TLS is in); nil when
    /// unknown. Limits per client count by it.
    public var peer: String?

    public init(method: String, path: String, headers: [(String, String)] = [], body: [UInt8] = [], peer: String? = nil) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.peer = peer
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// An HTTP reply.
public struct HTTPReply: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]

    public init(status: Int, contentType: String, body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }
}


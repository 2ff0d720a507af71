/// The media type of mPlane messages over HTTP.
public let mplaneContentType = "application/x-mplane+json"

/// An HTTP request as the router sees it (the server has read the whole body).
public struct HTTPRequestData: Sendable {
    public var method: String
    public var path: String
    public var headers: [(String, String)]
    public var body: [UInt8]
    /// Who sent it: the peer's address; nil when unknown. Connection limits count by it.
    public var peer: String?
    /// The identity of the peer's verified certificate (``certificateIdentity(der:)``); nil
    /// in plain HTTP.
    public var identity: String?

    public init(method: String, path: String, headers: [(String, String)] = [], body: [UInt8] = [], peer: String? = nil,
                identity: String? = nil) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.peer = peer
        self.identity = identity
    }

    /// Who is asking, for authorisation and for owning jobs: the certificate's identity with
    /// TLS, the RI's unauthenticated identity without.
    public var principal: String { identity ?? unauthenticatedIdentity }

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


public import MPlane
import MPlaneIO

/// mPlane over HTTP, for every router of ours (the component's, the supervisor's two sides):
/// replies that carry a message, exceptions with the status the model's `Refusal` gives,
/// the check of a request's content type and the decoding of its body.
extension HTTPReply {
    /// A message, as `application/x-mplane+json`; an exception with its status.
    public static func message(_ m: Message, status: Int = 200, encoder: MessageEncoder = MessageEncoder()) -> HTTPReply {
        if case .exception(let e) = m, status == 200 { return failure(e) }
        return HTTPReply(status: status, contentType: mplaneContentType, body: encoder.encode(m))
    }

    /// An exception, with the status its refusal maps to.
    public static func failure(_ e: MPlaneException) -> HTTPReply {
        HTTPReply(status: e.status ?? Refusal.invalidMessage.status, contentType: mplaneContentType,
                  body: MessageEncoder().encode(.exception(e)))
    }

    /// An HTML page: exactly `text/html`, as the reference client compares the header byte for byte.
    public static func html(_ text: String) -> HTTPReply {
        HTTPReply(status: 200, contentType: "text/html", body: Array(text.utf8))
    }
}

extension HTTPRequestData {
    /// The path without its query.
    public var route: String { path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "/" }

    /// Whether the client takes an mPlane message rather than an HTML page: it asks for
    /// mPlane JSON, or sends no Accept at all (the RI's client sends none).
    public var wantsMessage: Bool {
        let accept = header("accept")
        return accept == nil || accept?.contains(mplaneContentType) == true
    }

    /// The body as an mPlane message, or the exception that says why it is not one (415 for
    /// another content type, 400 for what does not decode).
    public func message(decoder: MessageDecoder = MessageDecoder()) -> Swift.Result<Message, MPlaneException> {
        let type = header("content-type")?.split(separator: ";").first.map { $0.trimmingSpaces().lowercased() }
        guard type == mplaneContentType else {
            return .failure(MPlaneException(.unsupportedMediaType,
                                            message: "Content-Type must be \(mplaneContentType), not \(type.map { quoting($0) } ?? "none")"))
        }
        do { return .success(try decoder.decode(body)) } catch {
            return .failure(MPlaneException(.invalidMessage, message: "Invalid message: \(quoting("\(error)", limit: 1000))"))
        }
    }
}

/// A peer's text as an error message may quote it: at most `limit` characters, control
/// characters (NUL among them, which no mPlane string may hold) as `?`.
public func quoting(_ text: String, limit: Int = 200) -> String {
    var out = ""
    for (i, u) in text.unicodeScalars.enumerated() {
        if i == limit { out += "…"; break }
        out.unicodeScalars.append(u.value < 0x20 || u.value == 0x7f ? "?" : u)
    }
    return out
}

/// Text for an HTML page, escaped.
public func escapingHTML(_ s: String) -> String {
    var out = ""
    for c in s {
        switch c {
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "&": out += "&amp;"
        case "'": out += "&#39;"
        default: out.append(c)
        }
    }
    return out
}

/// The RI's HTML list of capability links.
public func capabilityList(_ capabilities: [Capability]) -> String {
    var s = "<html><head><title>Capabilities</title></head><body>"
    for c in capabilities { s += "<a href='/capability/\(escapingHTML(c.token))'>\(escapingHTML(c.token))</a><br/>" }
    return s + "</body></html>"
}

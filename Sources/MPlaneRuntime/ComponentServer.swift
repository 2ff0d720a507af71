public import Logging
public import MPlaneHTTP

extension HTTPComponentServer {
    /// A server for a component: capabilities carry the bound address unless a link was configured.
    /// `onBound` runs once the server listens, before it serves a request.
    public convenience init(router: ComponentRouter, host: String, port: Int, limits: HTTPServerLimits = HTTPServerLimits(),
                            logger: Logger = Logger(label: "mplane.http"), tls: TLSContexts? = nil,
                            onBound: @escaping @Sendable () -> Void = {}) {
        self.init(host: host, port: port, limits: limits, logger: logger, tls: tls,
                  onBound: { router.setDefaultLink($0); onBound() }, handler: { await router.handle($0) })
    }
}

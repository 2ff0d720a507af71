public import Logging
public import MPlaneHTTP

extension HTTPComponentServer {
    /// A server for a component: capabilities carry the bound address unless a link was configured.
    public convenience init(router: ComponentRouter, host: String, port: Int, limits: HTTPServerLimits = HTTPServerLimits(),
                            logger: Logger = Logger(label: "mplane.http"), tls: TLSContexts? = nil) {
        self.init(host: host, port: port, limits: limits, logger: logger, tls: tls,
                  onBound: { router.setDefaultLink($0) }, handler: { await router.handle($0) })
    }
}

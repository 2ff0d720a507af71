#if canImport(Glibc)
import Glibc
#endif
public import MPlaneHTTP
import MPlaneIO
public import MPlane

/// `mpsup`'s configuration: the RI's supervisor file as it is (`[client]` for the side probes
/// push to, `[component]` for the side clients use), with our keys in `[supervisor]`.
public struct SupervisorConfiguration: Sendable, Equatable {
    /// How the probe side works: components push to us (`component-initiated`, the default),
    /// or we reach them at `component-urls` (`client-initiated`, the RI's keys).
    public enum ProbeWorkflow: String, Sendable, Equatable { case componentInitiated = "component-initiated", clientInitiated = "client-initiated" }
    public var probeWorkflow = ProbeWorkflow.componentInitiated
    /// The components a client-initiated probe side reaches (`component-urls`).
    public var componentURLs: [HTTPURL] = []
    /// How often a client-initiated probe side visits each component (`component-poll-interval`).
    public var componentPollInterval: Duration = .seconds(5)

    // [client]: the probe-facing side.
    public var probeAddress = "127.0.0.1"
    public var probePort = 8888
    /// The link given to components for their results (`listen-spec-link`); informative.
    public var specificationLink: String?
    public var registrationPath = "register/capability"
    public var specificationPath = "show/specification"
    public var resultPath = "register/result"

    // [component]: the client-facing side (client-initiated workflow).
    public var clientAddress = "127.0.0.1"
    public var clientPort = 8889
    /// The base of the links capabilities carry (`listen-cap-link`); by default this side's
    /// own address.
    public var capabilityLink: String?
    public var registryPreload: [String] = []

    // [supervisor]: ours.
    /// Where the state lives: `sqlite:PATH` (default: `mpsup.sqlite` in `state-dir`).
    public var store: String?
    public var stateDirectory: String?
    /// Connections a PostgreSQL store keeps open (`store-connections`, default 8), all of them
    /// for as long as mpsup runs: count them against PostgreSQL's `max_connections` (100 by
    /// default) for every mpsup on the database.
    public var storeConnections = PostgresStore.defaultConnections
    /// The longest a component with callback control is told to stay away (`callback-interval`).
    public var callbackInterval: Duration = .seconds(5)
    /// A specification handed out that got no receipt or result within this is handed out again.
    public var redeliverAfter: Duration = .seconds(60)
    /// A component not seen for this long is absent: its capabilities leave the list.
    public var absentAfter: Duration = .seconds(60)
    /// How long a specification's reply waits for its result before answering with a receipt
    /// (`reply-wait`, default 2 s: well within the 5 s a client such as the RI's waits).
    public var replyWait: Duration = .seconds(2)
    /// Results older than this are deleted (`retention-age`, default 30 days).
    public var retentionAge: Duration = .seconds(30 * 86_400)
    /// The results kept take at most this many bytes (`retention-bytes`, default 1 GiB).
    public var retentionBytes = 1 << 30
    /// Components registered at most (`max-components`): a new one past it is refused (503).
    public var maxComponents = 100_000
    /// Capabilities one registration may hold (`max-capabilities-per-component`).
    public var maxCapabilitiesPerComponent = 1024
    /// Specifications and interrupts waiting for one component (`max-queued-per-component`):
    /// past it a client's specification is refused (429).
    public var maxQueuedPerComponent = 1000
    /// New components registered from one address at most (`max-components-per-address`).
    public var maxComponentsPerAddress = 1000
    /// A component not seen for this long, with nothing waiting for it, is forgotten
    /// (`forget-after`, default 30 days); it registers again when it comes back.
    public var forgetAfter: Duration = .seconds(30 * 86_400)
    /// The largest message a client may send (`max-specification-bytes`): what is queued
    /// for a component is kept in the store until it answers.
    public var maxSpecificationBytes = 256 << 10
    /// `[TLS]`: mutual TLS on both sides and towards components; nil: plain HTTP.
    public var tls: TLSSettings?
    /// `[Roles]` and `[Authorizations]`: which client sees and uses which capability.
    public var authorization = Authorization.open
    /// The role a certificate's identity needs to act as a component on the probe side
    /// (`component-role`, needs `[TLS]`); nil: any certificate of the CA.
    public var componentRole: String?
    /// What the HTTP servers let a peer hold (the `mpcom` keys of the same names).
    public var http: HTTPServerLimits = {
        var l = HTTPServerLimits()
        l.maxBodyBytes = 16 << 20
        l.maxConnections = 4096
        l.maxBufferedBytes = 256 << 20
        l.maxBufferedBytesPerPeer = 32 << 20
        return l
    }()

    public init() {}

    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public let message: String
        public var description: String { message }
    }

    /// Reads an RI-format supervisor configuration.
    public init(ini text: String) throws(Error) {
        let ini: IniFile
        do { ini = try IniFile(parsing: text) } catch { throw Error(message: "configuration: \(error)") }
        func section(_ name: String) -> SectionSettings {
            var values: [String: String] = [:]
            for e in ini[name]?.entries ?? [] { values[e.key] = e.value }
            return SectionSettings(values)
        }
        do {
            let client = section("client")
            if let w = client["workflow"] {
                guard let wf = ProbeWorkflow(rawValue: w) else {
                    throw ServiceConfigurationError(message: "[client] workflow = \(w): use component-initiated or client-initiated")
                }
                probeWorkflow = wf
            }
            for item in client.list("component-urls", absent: []) {
                guard let u = HTTPURL(item) else { throw ServiceConfigurationError(message: "[client] component-urls: \(item) is not an http:// or https:// URL") }
                componentURLs.append(u)
            }
            if probeWorkflow == .clientInitiated && componentURLs.isEmpty {
                throw ServiceConfigurationError(message: "[client] workflow = client-initiated needs component-urls (the components to reach)")
            }
            if let d = try client.seconds("component-poll-interval") { componentPollInterval = d }
            probeAddress = client["listen-address"] ?? client["listen-host"] ?? probeAddress
            probePort = try client.integer("listen-port", in: 0...65535, absent: probePort)
            specificationLink = client["listen-spec-link"]
            registrationPath = client["registration-path"] ?? registrationPath
            specificationPath = client["specification-path"] ?? specificationPath
            resultPath = client["result-path"] ?? resultPath

            let component = section("component")
            if let w = component["workflow"], w != "client-initiated" {
                throw ServiceConfigurationError(message: "[component] workflow = \(w): mpsup's client side takes client-initiated")
            }
            clientAddress = component["listen-address"] ?? component["listen-host"] ?? clientAddress
            clientPort = try component.integer("listen-port", in: 0...65535, absent: clientPort)
            capabilityLink = component["listen-cap-link"]
            registryPreload = component.list("registry_preload", absent: [])

            let s = section("supervisor")
            store = s["store"]
            stateDirectory = s["state-dir"]
            storeConnections = try s.integer("store-connections", in: 2...1_000, absent: storeConnections)
            if let d = try s.seconds("callback-interval") { callbackInterval = d }
            if let d = try s.seconds("redeliver-after") { redeliverAfter = d }
            if let d = try s.seconds("absent-after") { absentAfter = d }
            if let d = try s.seconds("reply-wait") { replyWait = d }
            if let d = try s.seconds("retention-age") { retentionAge = d }
            retentionBytes = try s.integer("retention-bytes", in: 1 << 20...(1 << 50), absent: retentionBytes)
            maxComponents = try s.integer("max-components", in: 1...10_000_000, absent: maxComponents)
            maxCapabilitiesPerComponent = try s.integer("max-capabilities-per-component", in: 1...100_000, absent: maxCapabilitiesPerComponent)
            maxQueuedPerComponent = try s.integer("max-queued-per-component", in: 1...1_000_000, absent: maxQueuedPerComponent)
            http.maxBodyBytes = try s.integer("max-body-bytes", in: 1024...(1 << 30), absent: http.maxBodyBytes)
            http.maxConnections = try s.integer("max-connections", in: 1...1_000_000, absent: http.maxConnections)
            http.maxBufferedBytes = try s.integer("max-buffered-bytes", in: 1024...(1 << 34), absent: http.maxBufferedBytes)
            http.maxBufferedBytesPerPeer = try s.integer("max-buffered-bytes-per-client", in: 1024...(1 << 34), absent: http.maxBufferedBytesPerPeer)
            if http.maxBufferedBytesPerPeer < http.maxBodyBytes {
                throw ServiceConfigurationError(message: "max-buffered-bytes-per-client (\(http.maxBufferedBytesPerPeer)) is below max-body-bytes (\(http.maxBodyBytes)): a body that fits could never be read")
            }
            maxComponentsPerAddress = try s.integer("max-components-per-address", in: 1...10_000_000, absent: maxComponentsPerAddress)
            if let d = try s.seconds("forget-after") { forgetAfter = d }
            maxSpecificationBytes = try s.integer("max-specification-bytes", in: 1024...(1 << 30), absent: maxSpecificationBytes)
            http.maxConnectionsPerPeer = try s.integer("max-connections-per-client", in: 1...1_000_000, absent: http.maxConnectionsPerPeer)
            if let d = try s.seconds("request-timeout") { http.requestTimeout = d }
            if let d = try s.seconds("idle-timeout") { http.idleTimeout = d }
            tls = try ini.tlsSettings()
            if tls == nil, let u = componentURLs.first(where: \.secure) {
                throw ServiceConfigurationError(message: "[client] component-urls: \(u) is https: it needs a [TLS] section")
            }
            authorization = ini.authorization
            if let role = s["component-role"], !role.isEmpty {
                guard tls != nil else {
                    throw ServiceConfigurationError(message: "[supervisor] component-role needs [TLS]: without it a component's identity is not authenticated")
                }
                componentRole = role
            }
        } catch let e as ServiceConfigurationError {
            throw Error(message: "configuration: \(e.message)")
        } catch {
            throw Error(message: "configuration: \(error)")
        }
    }

    /// The configuration `mpsup` runs without a file: both sides on loopback, the store in
    /// the state directory.
    public static let embeddedDefault = """
        # mpsup's embedded default (mpsup --print-config). The RI's supervisor format.
        [client]
        # The side probes push to (component-initiated workflow).
        workflow = component-initiated
        listen-address = 127.0.0.1
        listen-port = 8888
        registration-path = register/capability
        specification-path = show/specification
        result-path = register/result

        [component]
        # The side clients use (client-initiated workflow).
        workflow = client-initiated
        listen-address = 127.0.0.1
        listen-port = 8889

        [supervisor]
        # store = sqlite:/var/lib/mplane/mpsup.sqlite   (default: mpsup.sqlite in state-dir)
        store-connections = 8
        callback-interval = 5
        redeliver-after = 60
        absent-after = 60
        reply-wait = 2
        retention-age = 2592000
        retention-bytes = 1073741824
        max-components = 100000
        max-capabilities-per-component = 1024
        max-queued-per-component = 1000
        max-components-per-address = 1000
        forget-after = 2592000
        max-specification-bytes = 262144

        """

    /// The store's location: `--store`, else `store`, else `sqlite:` in the state directory
    /// (`state-dir`, else systemd's `$STATE_DIRECTORY`, else `/var/lib/mplane` if this
    /// process may write there, else the current directory).
    public func storeLocation(override: String?) -> String {
        if let s = override ?? store { return s }
        return "sqlite:" + resolvedStateDirectory() + "/mpsup.sqlite"
    }

    func resolvedStateDirectory() -> String {
        if let d = stateDirectory { return d }
        if let p = getenv("STATE_DIRECTORY") {
            let d = String(cString: p)
            if !d.isEmpty { return String(d.split(separator: ":").first ?? Substring(d)) }
        }
        if access("/var/lib/mplane", W_OK) == 0 { return "/var/lib/mplane" }
        return "."
    }
}

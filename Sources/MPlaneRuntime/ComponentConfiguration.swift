#if canImport(Glibc)
import Glibc
#endif
public import MPlaneProbe
public import MPlane
public import MPlaneScheduler
public import Logging
public import MPlaneHTTP
import MPlaneIO

/// How `mpcom` runs: the reference implementation's `[component]` keys, our additions, and
/// the services to load from `[module_*]` sections.
public struct ComponentConfiguration: Sendable {
    public enum Workflow: String, Sendable {
        case clientInitiated = "client-initiated"
        case componentInitiated = "component-initiated"
    }

    /// A `[module_*]` section: which service to build and its settings.
    public struct Module: Sendable {
        public var section: String
        public var service: String
        public var settings: [String: String]
    }

    // The reference implementation's keys.
    public var workflow: Workflow = .clientInitiated
    public var listenPort: Int = 1228
    public var capabilityLink: String?
    public var clientHost: String?
    public var clientPort: Int = 8888
    public var registrationPath = "register/capability"
    public var specificationPath = "show/specification"
    public var resultPath = "register/result"
    public var registryURI: String?
    public var registryPreload: [String] = []
    public var modules: [Module] = []

    // Our additions.
    public var listenAddress = "127.0.0.1"
    /// What the HTTP server lets a peer hold (sizes, times, connections).
    public var http = HTTPServerLimits()
    public var maxBodyBytes: Int {
        get { http.maxBodyBytes }
        set { http.maxBodyBytes = newValue }
    }
    public var idleTimeout: Duration {
        get { http.idleTimeout }
        set { http.idleTimeout = newValue }
    }
    public var replyWait: Duration = .seconds(5)
    public var pollInterval: Duration = .seconds(5)
    /// The shortest time between two polls or registrations, whatever a callback or a 428
    /// asks (`min-poll-interval`).
    public var minPollInterval: Duration = .seconds(1)
    /// Origins (`http://host:port`) besides the supervisor's that a specification's `link`
    /// may send results to (`result-link-allow`); by default none: results go to the
    /// supervisor's result path.
    public var resultLinkAllow: [String] = []
    /// Bytes the queue of messages waiting for the supervisor holds at most
    /// (`result-queue-bytes`); past it the oldest are dropped, as past `result-queue-limit`.
    public var resultQueueBytes = 64 << 20
    public var backoffMax: Duration = .seconds(60)
    public var resultQueueLimit = 10_000
    /// Where queued receipts and results are kept across restarts (`result-queue-dir`; ours).
    /// Unset: in memory only.
    public var resultQueueDirectory: String?
    /// The name this component gives a supervisor in each request (`component-name`; the
    /// `X-MPlane-Component` header), by default the host's name. Our supervisor tells plain
    /// HTTP components apart by it.
    public var componentName: String = hostName()
    /// `[TLS]`: mutual TLS for the server and the agent; nil: plain HTTP.
    public var tls: TLSSettings?
    /// `[Roles]` and `[Authorizations]`.
    public var authorization = Authorization.open
    /// The supervisor's certificate identity (`supervisor-identity`): with TLS, any other
    /// server is refused before the agent sends it anything.
    public var supervisorIdentity: String?
    public var scheduler = SchedulerConfiguration()

    public init() {}

    /// The configuration `mpcom` runs with when given no file: a client-initiated component
    /// on 127.0.0.1:1228 with ping from the loopback addresses and capture on `lo` (where
    /// this process may open ICMP sockets and capture), and the test services.
    public static let embeddedDefault = """
    [component]
    workflow = client-initiated
    listen-address = 127.0.0.1
    listen-port = 1228

    [module_ping]
    module = mplane.components.ping
    ip4addr = 127.0.0.1
    ip6addr = ::1
    extended = yes
    if-permitted = yes

    [module_capture]
    module = capture
    interface = lo
    if-permitted = yes

    [module_loopback]
    module = mplane.components.loopback

    [module_counter]
    module = counter
    """

    /// Maps a `module` value to one of our service kinds: the reference implementation's
    /// Python module names and our own short names are both accepted.
    static func serviceName(forModule module: String) -> String {
        let known = ["mplane.components.loopback": "loopback", "mplane.components.ping": "ping",
                     "mplane.components.tstat": "capture"]
        return known[module] ?? module
    }

    public struct Error: Swift.Error, CustomStringConvertible {
        public let message: String
        public init(message: String) { self.message = message }
        public var description: String { message }
    }

    /// Reads a configuration file's text.
    public init(ini text: String) throws(Error) {
        let ini: IniFile
        do { ini = try IniFile(parsing: text) } catch { throw Error(message: "configuration: \(error)") }
        guard let c = ini["component"] else { throw Error(message: "configuration: no [component] section") }
        // The same reader as the modules' sections, its errors placed in [component].
        var values: [String: String] = [:]
        for (k, v) in c.entries { values[k] = v }
        let settings = SectionSettings(values)
        func int(_ key: String, _ range: ClosedRange<Int>) throws(Error) -> Int? {
            guard c[key] != nil else { return nil }
            do { return try settings.integer(key, in: range, absent: 0) } catch {
                throw Error(message: "configuration: [component] \(error)")
            }
        }
        func seconds(_ key: String) throws(Error) -> Duration? {
            do { return try settings.seconds(key) } catch { throw Error(message: "configuration: [component] \(error)") }
        }
        if let w = c["workflow"] {
            guard let wf = Workflow(rawValue: w) else {
                throw Error(message: "configuration: [component] workflow = \(w): use client-initiated or component-initiated")
            }
            workflow = wf
        }
        if let p = try int("listen-port", 0...65535) { listenPort = p }
        capabilityLink = c["listen-cap-link"]
        if let a = c["listen-address"] { listenAddress = a }
        clientHost = c["client_host"]
        if let p = try int("client_port", 1...65535) { clientPort = p }
        if let p = c["registration_path"] { registrationPath = p }
        if let p = c["specification_path"] { specificationPath = p }
        if let p = c["result_path"] { resultPath = p }
        registryURI = c["registry_uri"]
        if let p = c["registry_preload"] {
            registryPreload = p.split(whereSeparator: { $0 == "," || $0 == "\n" }).map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
        }
        if let n = try int("max-body-bytes", 1024...(1 << 30)) { maxBodyBytes = n }
        if let d = try seconds("reply-wait") { replyWait = d }
        if let d = try seconds("idle-timeout") { idleTimeout = d }
        if let d = try seconds("request-timeout") { http.requestTimeout = d }
        if let n = try int("max-connections", 1...1_000_000) { http.maxConnections = n }
        if let n = try int("max-connections-per-client", 1...1_000_000) { http.maxConnectionsPerPeer = n }
        if let n = try int("max-buffered-bytes", 1024...(1 << 34)) { http.maxBufferedBytes = n }
        if let n = try int("max-buffered-bytes-per-client", 1024...(1 << 34)) { http.maxBufferedBytesPerPeer = n }
        if let n = try int("max-thread-jobs-per-client", 1...10_000) { scheduler.maxThreadJobsPerPeer = n }
        if let n = try int("max-packet-rate-per-client", 1...10_000_000) { scheduler.maxPacketsPerSecondPerPeer = n }
        if let n = try int("max-result-bytes", 4096...(1 << 40)) { scheduler.maxResultBytes = n }
        if let d = try seconds("poll-interval") { pollInterval = d }
        if let d = try seconds("min-poll-interval") { minPollInterval = d }
        if let n = c["component-name"] {
            guard !n.isEmpty, n.utf8.count <= 255, n.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else {
                throw Error(message: "configuration: [component] component-name = \(n): use 1 to 255 printable ASCII characters without spaces")
            }
            componentName = n
        }
        if let v = c["result-link-allow"] {
            resultLinkAllow = []
            for item in v.split(whereSeparator: { $0 == "," || $0 == " " }) where !item.isEmpty {
                guard let u = HTTPURL(String(item)) else {
                    throw Error(message: "configuration: [component] result-link-allow: \(item) is not an http://host:port origin")
                }
                resultLinkAllow.append(u.origin)
            }
        }
        if let n = try int("result-queue-bytes", 4096...(1 << 40)) { resultQueueBytes = n }
        if let n = try int("max-jobs", 1...1_000_000) { scheduler.maxJobs = n }
        if let n = try int("max-jobs-per-client", 1...1_000_000) { scheduler.maxJobsPerPeer = n }
        if let n = try int("max-thread-jobs", 1...10_000) { scheduler.maxThreadJobs = n }
        if let n = try int("max-packet-rate", 1...10_000_000) { scheduler.maxPacketsPerSecond = n }
        if let n = try int("max-packet-rate-per-destination", 1...10_000_000) { scheduler.maxPacketsPerSecondPerDestination = n }
        if let n = try int("max-retained-results", 1...10_000_000) { scheduler.maxRetainedResults = n }
        if let n = try int("retained-result-bytes", 4096...(1 << 40)) { scheduler.maxRetainedBytes = n }
        if let n = try int("max-result-rows", 1...100_000_000) { scheduler.maxResultRows = n }
        for (key, keyPath) in [("allow-destinations", \DestinationPolicy.allow), ("deny-destinations", \DestinationPolicy.deny)] {
            guard let v = c[key] else { continue }
            guard let list = DestinationPolicy.parsePrefixes(v) else {
                throw Error(message: "configuration: [component] \(key) = \(v): give addresses or prefixes (192.0.2.0/24, 2001:db8::/32)")
            }
            scheduler.destinations[keyPath: keyPath] = list
        }
        if let d = try seconds("backoff-max") { backoffMax = d }
        if let n = try int("result-queue-limit", 1...10_000_000) { resultQueueLimit = n }
        if let d = c["result-queue-dir"], !d.isEmpty { resultQueueDirectory = d }
        if let n = try int("retention", 1...(365 * 86_400)) { scheduler.retention = Int64(n) }
        if let n = try int("max-repeated-results", 1...1_000_000) { scheduler.maxRepeatedResults = n }
        do { tls = try ini.tlsSettings() } catch {
            throw Error(message: "configuration: \(error)")
        }
        authorization = ini.authorization
        if let v = c["supervisor-identity"], !v.isEmpty {
            guard tls != nil else {
                throw Error(message: "configuration: [component] supervisor-identity needs [TLS]: without it the supervisor is not authenticated")
            }
            supervisorIdentity = v
        }
        if workflow == .componentInitiated && clientHost == nil {
            throw Error(message: "configuration: component-initiated workflow needs [component] client_host")
        }
        for section in ini.sections where section.name.hasPrefix("module_") {
            guard let module = section["module"] else {
                throw Error(message: "configuration: [\(section.name)] has no 'module' key")
            }
            var settings: [String: String] = [:]
            for (k, v) in section.entries where k != "module" { settings[k] = v }
            modules.append(Module(section: section.name, service: Self.serviceName(forModule: module), settings: settings))
        }
    }

    /// Builds the services of every `[module_*]` section.
    public func makeServices(_ factories: ServiceFactoryRegistry = .builtIn,
                             logger: Logger = Logger(label: "mplane.services")) throws(Error) -> [any MeasurementService] {
        var out: [any MeasurementService] = []
        for m in modules {
            do { out += try factories.make(m.service, settings: m.settings, logger: logger) } catch {
                throw Error(message: "configuration: [\(m.section)]: \(error)")
            }
        }
        return out
    }
}

extension ComponentConfiguration {
    /// What in `[component]` only a restart can change: every key but the registries (the
    /// modules are reloaded). One value, compared whole, so a new key cannot be forgotten here.
    struct RestartSettings: Equatable {
        var workflow: Workflow
        var listen: String, listenPort: Int, capabilityLink: String?
        var client: String?, clientPort: Int, paths: [String]
        var http: HTTPServerLimits, scheduler: SchedulerConfiguration
        var replyWait: Duration, pollInterval: Duration, minPollInterval: Duration, backoffMax: Duration
        var resultLinkAllow: [String], resultQueueLimit: Int, resultQueueBytes: Int, resultQueueDirectory: String?
        var componentName: String
        var tls: TLSSettings?, supervisorIdentity: String?
    }

    var restartSettings: RestartSettings {
        RestartSettings(workflow: workflow, listen: listenAddress, listenPort: listenPort, capabilityLink: capabilityLink,
                        client: clientHost, clientPort: clientPort, paths: [registrationPath, specificationPath, resultPath],
                        http: http, scheduler: scheduler, replyWait: replyWait, pollInterval: pollInterval,
                        minPollInterval: minPollInterval, backoffMax: backoffMax, resultLinkAllow: resultLinkAllow,
                        resultQueueLimit: resultQueueLimit, resultQueueBytes: resultQueueBytes,
                        resultQueueDirectory: resultQueueDirectory, componentName: componentName,
                        tls: tls, supervisorIdentity: supervisorIdentity)
    }
}

/// Applies a changed configuration to a running component (SIGHUP): the services of the
/// `[module_*]` sections are rebuilt and swapped in, `[Roles]` and `[Authorizations]` apply
/// at once; changes to `[component]` and `[TLS]` settings are reported and wait for a restart. An invalid configuration changes nothing.
public struct ConfigurationReloader: Sendable {
    public let scheduler: Scheduler
    public let running: ComponentConfiguration
    public let factories: ServiceFactoryRegistry
    let logger: Logger
    /// Loads a registry file (`registry_preload`); the tools pass their file reader.
    let loadRegistry: @Sendable (String) throws -> Void
    /// The authorisations in force: `[Roles]` and `[Authorizations]` apply at once.
    let policy: AuthorizationPolicy?

    public init(scheduler: Scheduler, running: ComponentConfiguration, factories: ServiceFactoryRegistry,
                policy: AuthorizationPolicy? = nil,
                logger: Logger = Logger(label: "mplane.reload"), loadRegistry: @escaping @Sendable (String) throws -> Void) {
        self.policy = policy
        self.scheduler = scheduler
        self.running = running
        self.factories = factories
        self.logger = logger
        self.loadRegistry = loadRegistry
    }

    /// What a reload did.
    public struct Outcome: Sendable {
        /// The capability labels now served.
        public var labels: [String]
        /// True if `[component]` settings differ from the running ones (they need a restart).
        public var restartNeeded: Bool
    }

    /// Reloads from configuration text (with `adjust` applied, as the command line's
    /// overrides were at start).
    @discardableResult
    public func reload(text: String, adjust: (inout ComponentConfiguration) -> Void = { _ in }) throws(ComponentConfiguration.Error)
        -> Outcome
    {
        var next = try ComponentConfiguration(ini: text)
        adjust(&next)
        let services = try next.makeServices(factories, logger: logger)
        // Registries last: a configuration whose services do not build loads none.
        for path in next.registryPreload where !running.registryPreload.contains(path) {
            do { try loadRegistry(path) } catch {
                throw ComponentConfiguration.Error(message: "configuration: registry_preload \(path): \(error)")
            }
        }
        let restart = next.restartSettings != running.restartSettings
        if restart {
            // [TLS] paths among them: the files named at start are what SIGHUP reads again.
            logger.warning("[component] or [TLS] settings changed: they take effect at the next restart")
        }
        scheduler.replaceServices(services)
        if let policy, policy.replace(with: next.authorization) {
            logger.notice("[Roles] and [Authorizations] reloaded: they apply from now on")
        }
        return Outcome(labels: services.compactMap(\.capability.statement.label), restartNeeded: restart)
    }
}

/// The host's name (`gethostname`), "localhost" if it has none.
func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
    let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return name.isEmpty ? "localhost" : name
}

public import Logging
import MPlane
public import MPlaneHTTP
import MPlaneScheduler

/// The supervisor on HTTP: its probe side and its client side, each a server of its own, and
/// the retention pass every minute. Runs until cancelled.
public final class SupervisorService: Sendable {
    public let supervisor: Supervisor
    public let probeServer: HTTPComponentServer
    public let clientServer: HTTPComponentServer
    let logger: Logger

    /// Mutual TLS on both sides and towards components (from `[TLS]`, loaded by the program).
    public let tls: TLSContexts?

    public init(store: any SupervisorStore, configuration: SupervisorConfiguration, tls: TLSContexts? = nil,
                logger: Logger = Logger(label: "mplane.supervisor")) {
        let supervisor = Supervisor(store: store, configuration: configuration, logger: logger)
        self.tls = tls
        self.supervisor = supervisor
        self.logger = logger
        probeServer = HTTPComponentServer(host: configuration.probeAddress, port: configuration.probePort, limits: configuration.http,
                                          logger: Logger(label: "mplane.http.probes"), serverName: "mpsup", tls: tls) { await supervisor.probeSide($0) }
        clientServer = HTTPComponentServer(host: configuration.clientAddress, port: configuration.clientPort, limits: configuration.http,
                                           logger: Logger(label: "mplane.http.clients"), serverName: "mpsup", tls: tls) { await supervisor.clientSide($0) }
    }

    /// Runs until cancelled. The store (a PostgreSQL pool) runs in a task of its own that
    /// outlives the servers: on shutdown the servers stop, when components were seen is
    /// written a last time, and only then does the store stop, so that no query waits on a
    /// pool that is gone.
    public func run() async throws {
        let store = supervisor.store
        let storeTask = Task { await store.run() }
        defer { storeTask.cancel() }
        try await Self.within(.seconds(30), "the store could not be reached and made ready within 30 s") { try await store.prepare() }
        do {
            try await withThrowingDiscardingTaskGroup { group in
                let reaching = self.supervisor.configuration.probeWorkflow == .clientInitiated
                if reaching {
                    // The probe side reaches the components: nothing listens for them.
                    let poller = ComponentPoller(supervisor: self.supervisor, urls: self.supervisor.configuration.componentURLs,
                                                 interval: self.supervisor.configuration.componentPollInterval, tls: self.tls)
                    group.addTask { try await poller.run() }
                } else {
                    group.addTask { try await self.probeServer.run() }
                }
                group.addTask { try await self.clientServer.run() }
                group.addTask {
                    let probe = reaching ? 0 : await self.probeServer.boundPort(), client = await self.clientServer.boundPort()
                    guard !Task.isCancelled else { return }
                    self.supervisor.bound(probePort: probe, clientPort: client)
                }
                group.addTask {
                    // When components were seen, about once a second.
                    while !Task.isCancelled {
                        try await Task.sleep(for: .seconds(1))
                        await self.supervisor.flushSeen()
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        do {
                            let n = try await self.supervisor.prune()
                            if n > 0 { self.logger.info("retention: results deleted", metadata: ["mplane.deleted": "\(n)"]) }
                        } catch {
                            self.logger.error("retention pass failed", metadata: ["error": "\(error)"])
                        }
                        try await Task.sleep(for: .seconds(60))
                    }
                }
            }
        } catch is CancellationError {}
        // Outside the cancelled task: the last record of when components were seen.
        await Task { await self.supervisor.flushSeen() }.value
        storeTask.cancel()
        await storeTask.value
    }

    struct Timeout: Error, CustomStringConvertible {
        let description: String
    }

    /// `body`, or `Timeout` with `message` after `limit`.
    static func within(_ limit: Duration, _ message: String, _ body: @escaping @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask { try await body(); return true }
            group.addTask { try await Task.sleep(for: limit); return false }
            defer { group.cancelAll() }
            guard try await group.next() == true else { throw Timeout(description: message) }
        }
    }
}

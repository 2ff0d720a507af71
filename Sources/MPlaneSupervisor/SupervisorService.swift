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

    public init(store: any SupervisorStore, configuration: SupervisorConfiguration, logger: Logger = Logger(label: "mplane.supervisor")) {
        let supervisor = Supervisor(store: store, configuration: configuration, logger: logger)
        self.supervisor = supervisor
        self.logger = logger
        probeServer = HTTPComponentServer(host: configuration.probeAddress, port: configuration.probePort, limits: configuration.http,
                                          logger: Logger(label: "mplane.http.probes"), serverName: "mpsup") { await supervisor.probeSide($0) }
        clientServer = HTTPComponentServer(host: configuration.clientAddress, port: configuration.clientPort, limits: configuration.http,
                                           logger: Logger(label: "mplane.http.clients"), serverName: "mpsup") { await supervisor.clientSide($0) }
    }

    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await self.supervisor.store.run() }
            // The store first (a shared one applies its migrations), then the servers.
            try await self.supervisor.store.prepare()
            group.addTask { try await self.probeServer.run() }
            group.addTask { try await self.clientServer.run() }
            group.addTask {
                let probe = await self.probeServer.boundPort(), client = await self.clientServer.boundPort()
                self.supervisor.bound(probePort: probe, clientPort: client)
            }
            group.addTask {
                // When components were seen, about once a second; once more at the end.
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
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
    }
}

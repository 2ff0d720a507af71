import ArgumentParser
import Logging
import MPlane
import MPlaneHTTP
import MPlaneIO
import MPlaneSupervisor
import ServiceLifecycle
import UnixSignals

@main
struct MPSup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpsup",
        abstract: "The mPlane supervisor: probes push to it, clients use it, its state is durable.",
        subcommands: [Serve.self, Results.self, Backup.self],
        defaultSubcommand: Serve.self
    )
}

/// Opens the store a location names: `sqlite:PATH`, or `postgres://USER@HOST:PORT/DB`
/// (`?host=/socket/dir` for a Unix socket).
/// `serving`: the supervisor itself (an SQLite file is then its alone); false for the tools
/// that read a store beside it (and need 2 connections to PostgreSQL, not `connections`).
func openStore(_ location: String, serving: Bool = false, connections: Int = 2) throws -> any SupervisorStore {
    if location.hasPrefix("sqlite:") {
        let path = String(location.dropFirst("sqlite:".count))
        guard !path.isEmpty else { throw ValidationError("--store sqlite:PATH: give a path") }
        do { return try SQLiteStore(path: path, serving: serving) } catch { throw ValidationError("store \(location): \(error)") }
    }
    if location.hasPrefix("postgres://") || location.hasPrefix("postgresql://") {
        do { return try PostgresStore(url: location, connections: connections, serving: serving) } catch { throw ValidationError("store: \(error)") }
    }
    // Not echoed: a misspelt scheme may still carry a password.
    throw ValidationError("store: use sqlite:PATH or postgres://USER@HOST:PORT/DATABASE")
}

/// Runs `body` with the store ready (a PostgreSQL store's pool running, its migrations applied).
func withReadyStore<T: Sendable>(_ store: any SupervisorStore, _ body: @escaping @Sendable (any SupervisorStore) async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { await store.run(); return nil }
        defer { group.cancelAll() }
        try await store.prepare()
        return try await body(store)
    }
}

struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "Configuration file (the reference implementation's supervisor format).")
    var config: String?

    @Option(name: .long, help: "Where the state lives: sqlite:PATH.")
    var store: String?

    func load() throws -> SupervisorConfiguration {
        guard let config else { return try SupervisorConfiguration(ini: SupervisorConfiguration.embeddedDefault) }
        let text: String
        do { text = String(decoding: try readAll(config), as: UTF8.self) } catch {
            throw ValidationError("cannot read configuration \(config): \(error)")
        }
        do { return try SupervisorConfiguration(ini: text) } catch { throw ValidationError("\(config): \(error)") }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the supervisor (the default).",
        discussion: """
        Without --config, runs the embedded default (print it with --print-config): the probe side on \
        127.0.0.1:8888, the client side on 127.0.0.1:8889, the store in the state directory. \
        SIGTERM or SIGINT stop it gracefully. SIGHUP reloads the TLS certificates and the \
        [Roles] and [Authorizations] sections.
        """
    )

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "Override [client] listen-port, the probe side (0 picks a free port).")
    var probePort: Int?

    @Option(name: .long, help: "Override [component] listen-port, the client side (0 picks a free port).")
    var clientPort: Int?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Flag(name: .long, help: "Print the embedded default configuration and exit.")
    var printConfig = false

    func run() async throws {
        if printConfig {
            print(SupervisorConfiguration.embeddedDefault)
            return
        }
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "mpsup")
        var configuration = try options.load()
        if let probePort { configuration.probePort = probePort }
        if let clientPort { configuration.clientPort = clientPort }
        for path in configuration.registryPreload {
            do { try RegistryStore.shared.register(json: try readAll(path)) } catch {
                throw ValidationError("registry_preload \(path): \(error)")
            }
        }
        let location = configuration.storeLocation(override: options.store)
        let store = try openStore(location, serving: true, connections: configuration.storeConnections)
        let tls: TLSContexts?
        do { tls = try configuration.tls.map { try TLSContexts($0, logger: Logger(label: "mplane.tls")) } } catch {
            throw ValidationError("\(error)")
        }
        let service = SupervisorService(store: store, configuration: configuration, tls: tls)
        logger.info("starting", metadata: [
            "mpsup.store": "\((store as? PostgresStore)?.location ?? location)",
            "mpsup.probes": "\(configuration.probeAddress):\(configuration.probePort)",
            "mpsup.clients": "\(configuration.clientAddress):\(configuration.clientPort)",
        ])
        var services: [any Service] = [SupervisorLifecycle(service: service, logger: logger)]
        services.append(ReloadService(tls: tls, supervisor: service.supervisor, options: options, logger: logger))
        let group = ServiceGroup(services: services,
                                 gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        logger.info("stopped")
    }
}

/// SIGHUP: the certificates are read again (new handshakes use them; open connections and
/// queued work go on), and so are `[Roles]` and `[Authorizations]` from the configuration
/// file, which apply at once; other changes are reported and wait for a restart.
struct ReloadService: Service {
    let tls: TLSContexts?
    let supervisor: Supervisor
    let options: ConfigOptions
    let logger: Logger
    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                if let tls {
                    do { try tls.reload() } catch {
                        logger.error("TLS reload refused, keeping the certificates in use", metadata: ["error": "\(error)"])
                    }
                }
                guard options.config != nil else { continue }
                do {
                    var next = try options.load()
                    if supervisor.policy.replace(with: next.authorization) {
                        logger.notice("[Roles] and [Authorizations] reloaded: they apply from now on")
                    }
                    next.authorization = supervisor.configuration.authorization
                    next.probePort = supervisor.configuration.probePort
                    next.clientPort = supervisor.configuration.clientPort
                    if next != supervisor.configuration {
                        logger.warning("other settings changed (including [TLS] paths): they take effect at the next restart")
                    }
                } catch {
                    logger.error("configuration reload refused, keeping the one in use", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

/// The supervisor as a lifecycle service; it prints the bound ports once listening, for
/// scripts and tests that start it on port 0.
struct SupervisorLifecycle: Service {
    let service: SupervisorService
    let logger: Logger
    func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await service.run() }
                // In a task of its own: when the service fails before its servers listen (a
                // store that cannot be reached), the group cancels this wait and ends.
                group.addTask {
                    let reaching = service.supervisor.configuration.probeWorkflow == .clientInitiated
                    let probe = reaching ? 0 : await service.probeServer.boundPort(), client = await service.clientServer.boundPort()
                    guard !Task.isCancelled else { return }
                    logger.notice("listening", metadata: ["mpsup.probe_port": "\(probe)", "mpsup.client_port": "\(client)"])
                }
            }
        }
    }
}

struct Results: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List and export the results in the store.",
        discussion: """
        mpsup results                         list results (newest 100 by default), by component, label and time
        mpsup results --id N                  one result as its mPlane JSON
        mpsup results --id N --csv            one result as CSV
        mpsup results --component C --label L --from T --to T --csv
                                              the rows of one label from one component over a time range, as one CSV
        Times as mPlane writes them: 2026-12-01 10:00:00.
        """
    )

    @OptionGroup var options: ConfigOptions
    @Option(help: "Only this component.") var component: String?
    @Option(help: "Only this label.") var label: String?
    @Option(help: "From this time.") var from: String?
    @Option(help: "Until this time.") var to: String?
    @Option(help: "One result, by its id in the list.") var id: Int64?
    @Option(help: "At most this many in a list.") var limit: Int = 100
    @Flag(help: "CSV instead of mPlane JSON.") var csv = false

    func time(_ text: String?, _ name: String) throws -> Timestamp? {
        guard let text else { return nil }
        guard let t = Timestamp(text) else { throw ValidationError("--\(name) \(text): not a time (2026-12-01 10:00:00)") }
        return t
    }

    func run() async throws {
        let configuration = try options.load()
        let store = try openStore(configuration.storeLocation(override: options.store))
        let from = try time(from, "from"), to = try time(to, "to")
        let (id, csv, component, label, limit) = (id, csv, component, label, limit)
        let text: String = try await withReadyStore(store) { store in
            if let id {
                guard let body = try await store.resultBody(id: id) else { throw ValidationError("no result \(id)") }
                return csv ? try ResultCSV.rows(of: [body], header: true) : body + "\n"
            }
            if csv {
                guard let component, let label, let from, let to else {
                    throw ValidationError("--csv without --id needs --component, --label, --from and --to")
                }
                let bodies = try await store.series(component: component, label: label, from: from, to: to)
                return try ResultCSV.rows(of: bodies, header: true, from: from, to: to)
            }
            var out = "id\tcomponent\tlabel\tstart\tend\trows\tbytes\ttoken\n"
            for r in try await store.results(component: component, label: label, from: from, to: to, limit: limit) {
                out += "\(r.id)\t\(r.component)\t\(r.label ?? "-")\t\(r.start.map { "\($0)" } ?? "-")\t\(r.end.map { "\($0)" } ?? "-")\t\(r.rows)\t\(r.bytes)\t\(r.token)\n"
            }
            return out
        }
        print(text, terminator: "")
    }
}

struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy the store, consistent while mpsup runs (SQLite's online backup).")

    @OptionGroup var options: ConfigOptions
    @Argument(help: "The file to write.") var path: String

    func run() async throws {
        let configuration = try options.load()
        let store = try openStore(configuration.storeLocation(override: options.store))
        guard let sqlite = store as? SQLiteStore else {
            throw ValidationError("a PostgreSQL store is backed up with PostgreSQL's tools: pg_dump -Fc -d DATABASE -f FILE")
        }
        try sqlite.backup(to: path)
        print("backed up \(sqlite.path) to \(path)")
    }
}

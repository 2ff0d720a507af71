import ArgumentParser
import CSupport
import Dispatch
import Glibc
import Logging
import MPlane
import MPlaneIO
import MPlaneHTTP
import MPlaneProbe
import MPlaneRuntime
import MPlaneScheduler
import ServiceLifecycle
import Synchronization
import UnixSignals

@main
struct MPCom: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpcom",
        abstract: "The mPlane component: serves capabilities and runs measurements.",
        discussion: """
        Without --config, runs the embedded default configuration (print it with --print-config): \
        a client-initiated component on 127.0.0.1:1228 with ping from 127.0.0.1 and ::1 and capture on lo (where permitted) and the built-in test services. \
        SIGTERM or SIGINT stop it gracefully: no new requests, running jobs interrupted, results kept. \
        SIGHUP re-reads the configuration and replaces the services (changes to [component] need a restart).
        """
    )

    @Option(name: .long, help: "Configuration file (the reference implementation's INI format).")
    var config: String?

    @Option(name: .long, help: "Override [component] listen-port (0 picks a free port).")
    var port: Int?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Flag(name: .long, help: "Print the embedded default configuration and exit.")
    var printConfig = false

    func run() throws {
        blockAsynchronousSignals()
        if printConfig {
            print(ComponentConfiguration.embeddedDefault)
            return
        }
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "mpcom")
        let text: String
        do { text = try configurationText() } catch { throw ValidationError("\(error)") }
        var configuration: ComponentConfiguration
        do { configuration = try ComponentConfiguration(ini: text) } catch { throw ValidationError("\(error)") }
        if let port { configuration.listenPort = port }
        for path in configuration.registryPreload {
            do { try RegistryStore.shared.register(json: try readAll(path)) } catch {
                throw ValidationError("registry_preload \(path): \(error)")
            }
        }
        let services: [any MeasurementService]
        do { services = try configuration.makeServices(.probe, logger: Logger(label: "mplane.services")) } catch {
            throw ValidationError("\(error)")
        }
        let scheduler = Scheduler(services: services, configuration: configuration.scheduler,
                                  logger: Logger(label: "mplane.scheduler"))
        let tls: TLSContexts?
        do { tls = try configuration.tls.map { try TLSContexts($0, logger: Logger(label: "mplane.tls")) } } catch {
            throw ValidationError("\(error)")
        }
        let policy = AuthorizationPolicy(configuration.authorization)
        let router = ComponentRouter(scheduler: scheduler, link: configuration.capabilityLink,
                                     replyWait: configuration.replyWait, policy: policy)
        let reloader = ConfigurationReloader(scheduler: scheduler, running: configuration, factories: .probe, policy: policy) { path in
            try RegistryStore.shared.register(json: try readAll(path))
        }
        let override = port
        let reload = ReloadService(logger: logger) { [self] in
            // New certificates take effect for new handshakes; open connections and jobs go on.
            if let tls {
                do { try tls.reload() } catch { logger.error("TLS reload refused, keeping the certificates in use", metadata: ["error": "\(error)"]) }
            }
            return try reloader.reload(text: try configurationText()) { c in if let override { c.listenPort = override } }
        }
        // ServiceGroup stops services last to first, each before the next. Client-initiated:
        // the server stops accepting, then the jobs are interrupted. Component-initiated: the
        // jobs are interrupted first, so that their results reach the agent's queue (and its
        // directory) before the agent stops.
        var group: [any Service] = [SchedulerService(scheduler: scheduler), reload]
        switch configuration.workflow {
        case .clientInitiated:
            if configuration.resultQueueDirectory != nil {
                logger.warning("result-queue-dir is for the component-initiated workflow; ignored")
            }
            let server = HTTPComponentServer(router: router, host: configuration.listenAddress, port: configuration.listenPort,
                                             limits: configuration.http, logger: Logger(label: "mplane.http"), tls: tls,
                                             onBound: { releaseStartupPages(logger) })
            group.append(HTTPService(server: server))
        case .componentInitiated:
            var queue: (any OutgoingQueue)? = nil
            if let directory = configuration.resultQueueDirectory {
                guard directory.hasPrefix("/") else { throw ValidationError("result-queue-dir \(directory): give an absolute path") }
                let queueLogger = Logger(label: "mplane.queue")
                do {
                    let journal = try DirectoryJournal(directory: directory, logger: queueLogger)
                    queue = MemoryOutgoingQueue(limit: configuration.resultQueueLimit, byteLimit: configuration.resultQueueBytes,
                                                journal: journal, logger: queueLogger)
                } catch { throw ValidationError("\(error)") }
            }
            let agent = ComponentInitiatedAgent(scheduler: scheduler, configuration: configuration, queue: queue, tls: tls, policy: policy,
                                                logger: Logger(label: "mplane.agent"))
            group.insert(AgentService(agent: agent, logger: logger), at: 0)
        }
        logger.info("starting", metadata: [
            "mpcom.workflow": "\(configuration.workflow.rawValue)",
            "mpcom.capabilities": "\(scheduler.capabilities.compactMap(\.statement.label).joined(separator: ","))",
        ])
        let serviceGroup = ServiceGroup(services: group, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try waitOnMainThread { try await serviceGroup.run() }
        logger.info("stopped")
    }
}

extension MPCom {
    /// The configuration file's text (read again on each SIGHUP), or the embedded default.
    func configurationText() throws(ComponentConfiguration.Error) -> String {
        guard let config else { return ComponentConfiguration.embeddedDefault }
        do { return String(decoding: try readAll(config), as: UTF8.self) } catch {
            throw ComponentConfiguration.Error(message: "cannot read configuration: \(error)")
        }
    }
}

/// Start-up is over (configuration read, services made, certificates loaded, the server
/// listening): the code and constants only start-up used need not stay resident. Drops the
/// mapping of the executable's read-only segments; what runs from now on faults back in from
/// the page cache. About 4 MiB of idle RSS (README, "Memory"; BENCHMARKS.md, "Idle memory").
/// `MPCOM_KEEP_STARTUP_PAGES` set (to anything) keeps them, for tools that patch the code.
func releaseStartupPages(_ logger: Logger) {
    guard getenv("MPCOM_KEEP_STARTUP_PAGES") == nil else { return }
    let released = csupport_release_startup_pages()
    if released < 0 {
        logger.debug("start-up pages kept", metadata: ["error": "\(errnoText(Int32(-released)))"])
    }
}

/// Blocks the asynchronous signals on the calling (main) thread and the threads it creates,
/// as Dispatch does for its own threads: Dispatch receives SIGTERM, SIGINT and SIGHUP through
/// a signalfd, which only sees signals that no thread takes. Left open on the main thread, a
/// SIGHUP during start-up or while waiting would take its default action and end mpcom.
/// The signals a fault raises stay open, and SIGPIPE and SIGPROF as in Dispatch.
func blockAsynchronousSignals() {
    var signals = sigset_t()
    sigfillset(&signals)
    for kept in [SIGILL, SIGTRAP, SIGFPE, SIGBUS, SIGSEGV, SIGSYS, SIGPIPE, SIGPROF] { sigdelset(&signals, kept) }
    pthread_sigmask(SIG_BLOCK, &signals, nil)
}

/// Runs `body` on the concurrency pool while the main thread waits for it.
///
/// An `async` main would hand the main thread to Dispatch, which ends it with `pthread_exit`;
/// that forced unwind reads the binary's unwind tables, 0.6 MiB of idle RSS for nothing.
/// Nothing in mpcom runs on the main actor.
func waitOnMainThread(_ body: @escaping @Sendable () async throws -> Void) throws {
    let finished = DispatchSemaphore(value: 0)
    let outcome = Mutex<Swift.Result<Void, any Error>>(.success(()))
    Task {
        do { try await body() } catch { outcome.withLock { $0 = .failure(error) } }
        finished.signal()
    }
    finished.wait()
    try outcome.withLock { $0 }.get()
}

/// The scheduler as a lifecycle service: on graceful shutdown it interrupts the jobs and
/// returns once each has stored its rows.
struct SchedulerService: Service {
    let scheduler: Scheduler
    func run() async throws {
        await withGracefulShutdownHandler {
            await scheduler.run()
        } onGracefulShutdown: {
            scheduler.shutdown()
        }
    }
}

/// Reloads the services on SIGHUP; a configuration that does not load changes nothing.
struct ReloadService: Service {
    let logger: Logger
    let reload: @Sendable () throws -> ConfigurationReloader.Outcome
    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                do {
                    let outcome = try reload()
                    logger.info("reloaded", metadata: ["mpcom.capabilities": "\(outcome.labels.joined(separator: ","))"])
                } catch {
                    logger.error("reload refused, still running the previous services", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

/// The HTTP server as a lifecycle service: stops accepting on graceful shutdown.
struct HTTPService: Service {
    let server: HTTPComponentServer
    func run() async throws {
        do { try await cancelWhenGracefulShutdown { try await server.run() } } catch is CancellationError {}
    }
}

/// The component-initiated agent as a lifecycle service.
struct AgentService: Service {
    let agent: ComponentInitiatedAgent
    let logger: Logger
    func run() async throws {
        releaseStartupPages(logger)
        do { try await cancelWhenGracefulShutdown { try await agent.run() } } catch is CancellationError {}
    }
}

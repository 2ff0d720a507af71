public import Logging
import MPlane
import MPlaneClient
public import MPlaneHTTP
import MPlaneIO

/// The probe side in the client-initiated workflow (`[client] workflow = client-initiated`,
/// `component-urls`, the RI's keys): the supervisor reaches the components itself. Every
/// `component-poll-interval` it reads each component's capabilities (registering them, as a
/// component-initiated one would register itself; again every minute), hands it what is
/// queued for it (POSTing each specification and interrupt to it), keeps the answers, and
/// redeems the receipts of its running jobs until their results come. A component is known by
/// its URL's origin (`http://host:port`).
public final class ComponentPoller: Sendable {
    let supervisor: Supervisor
    let urls: [HTTPURL]
    let interval: Duration
    let logger: Logger
    let failures: RateLimitedLog
    /// For `https` components: mutual TLS.
    let tls: TLSContexts?

    public init(supervisor: Supervisor, urls: [HTTPURL], interval: Duration, tls: TLSContexts? = nil,
                logger: Logger = Logger(label: "mplane.poller")) {
        self.supervisor = supervisor
        self.tls = tls
        self.urls = urls
        self.interval = interval
        self.logger = logger
        failures = RateLimitedLog(logger: logger)
    }

    /// The identity of the component at `url`.
    public static func identity(_ url: HTTPURL) -> String { url.origin }

    public func run() async throws {
        var rounds = 0
        while !Task.isCancelled {
            let registerNow = rounds % Swift.max(1, Int(60 / Swift.max(1, interval.components.seconds))) == 0
            // Sixteen components at a time.
            for chunk in stride(from: 0, to: urls.count, by: 16) {
                await withDiscardingTaskGroup { group in
                    for url in urls[chunk..<Swift.min(chunk + 16, urls.count)] {
                        group.addTask {
                            // A component that answers slowly holds up its round for a minute at most.
                            do { try await SupervisorService.within(.seconds(60), "visit") { await self.visit(url, register: registerNow) } } catch {
                                self.failures.log("a component's visit took over a minute; cut short", kind: "slow \(url.origin)", level: .warning,
                                                  metadata: ["mplane.component": "\(url.origin)"])
                            }
                        }
                    }
                }
            }
            rounds += 1
            try await Task.sleep(for: interval)
        }
    }

    /// One visit to one component.
    func visit(_ url: HTTPURL, register: Bool) async {
        let name = Self.identity(url)
        let client = ComponentClient(url: url, tls: tls)
        let store = supervisor.store
        do {
            let now = supervisor.now
            let state = try await store.pollState(component: name, now: now, redeliverAfter: Supervisor.microseconds(supervisor.configuration.redeliverAfter))
            if register || !state.registered {
                let caps = try await client.capabilities()
                guard caps.count <= supervisor.configuration.maxCapabilitiesPerComponent else {
                    throw ComponentClient.Failure("\(caps.count) capabilities: max-capabilities-per-component is \(supervisor.configuration.maxCapabilitiesPerComponent)")
                }
                _ = try await store.register(component: name, address: url.host, capabilities: caps, callback: nil, now: now)
            }
            supervisor.recordSeen(name, address: url.host, at: now)
            // What is queued for it.
            if state.due || !state.registered {
                let (items, _) = try await store.claim(component: name, now: now, redeliverAfter: Supervisor.microseconds(supervisor.configuration.redeliverAfter),
                                                       limit: Supervisor.itemsPerPoll)
                for item in items {
                    let message = try MessageDecoder().decode(Array(item.body.utf8))
                    let answer = try await client.send(message)
                    _ = try await store.store(component: name, messages: [answer], now: supervisor.now)
                }
            }
            // The results of its running jobs.
            for receipt in try await store.openReceipts(component: name, limit: 256) {
                guard case .receipt(let r) = try MessageDecoder().decode(Array(receipt.utf8)) else { continue }
                let answer = try await client.send(.redemption(Redemption(receipt: r)))
                if case .receipt = answer { continue }
                _ = try await store.store(component: name, messages: [answer], now: supervisor.now)
            }
        } catch {
            failures.log("a component could not be reached or answered badly; trying again next round", kind: name, level: .warning,
                         metadata: ["mplane.component": "\(name)", "error": "\(error)"])
        }
    }
}

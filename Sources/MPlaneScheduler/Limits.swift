public import MPlane
import Synchronization

/// What one job will use while it is scheduled or running, as its service declares it
/// (``MeasurementService/demand(for:)``): the scheduler admits a job only if its demand fits
/// in what the configured limits leave.
public struct JobDemand: Sendable, Equatable {
    /// The job runs on an OS thread of its own (ping, capture): counted against
    /// ``SchedulerConfiguration/maxThreadJobs``.
    public var dedicatedThread: Bool
    /// Packets per second the job sends, all destinations together.
    public var packetsPerSecond: Double
    /// Where the job sends packets: checked against the destination policy, and each counted
    /// at `packetsPerSecond / destinations.count` against the per-destination rate.
    public var destinations: [IPAddress]

    public init(dedicatedThread: Bool = false, packetsPerSecond: Double = 0, destinations: [IPAddress] = []) {
        self.dedicatedThread = dedicatedThread
        self.packetsPerSecond = packetsPerSecond
        self.destinations = destinations
    }

    /// A job that uses nothing beyond a task and its result.
    public static let none = JobDemand()
}

/// Where active measurements may send: a destination is allowed when it lies in a prefix of
/// `allow` and in none of `deny` (deny wins). The default allows every destination.
public struct DestinationPolicy: Sendable, Equatable {
    public var allow: [IPAddress]
    public var deny: [IPAddress]

    public init(allow: [IPAddress] = DestinationPolicy.everywhere, deny: [IPAddress] = []) {
        self.allow = allow
        self.deny = deny
    }

    /// `0.0.0.0/0` and `::/0`.
    public static let everywhere: [IPAddress] = [IPAddress("0.0.0.0/0")!, IPAddress("::/0")!]

    /// Why `destination` may not be measured (naming the rule), or nil.
    public func refusal(for destination: IPAddress) -> String? {
        if let rule = deny.first(where: { $0.contains(destination) }) {
            return "destination \(destination) is refused by deny-destinations \(rule)"
        }
        guard allow.contains(where: { $0.contains(destination) }) else {
            return "destination \(destination) is not in allow-destinations"
        }
        return nil
    }

    /// Parses a comma- or space-separated list of addresses and prefixes.
    public static func parsePrefixes(_ text: String) -> [IPAddress]? {
        var out: [IPAddress] = []
        for part in text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\n" || $0 == "\t" }) {
            guard let a = IPAddress(part) else { return nil }
            out.append(a)
        }
        return out
    }
}

/// Why the scheduler refused to admit a job: which limit, and the HTTP status it maps to.
public struct AdmissionRefusal: Error, Sendable, Equatable {
    /// The configuration key of the limit reached (or of the rule that refused).
    public let limit: String
    public let message: String
    /// ``Refusal/limitReached`` (try again later), or ``Refusal/refused`` by the destination policy.
    public let kind: Refusal
}

/// The resources admitted jobs hold, against the limits: jobs in all and per peer, jobs on
/// threads of their own, packets per second in all and per destination. One lock; every
/// operation is short and calls nothing out.
final class Admission: Sendable {
    private struct Peer {
        var jobs = 0
        var threadJobs = 0
        var packetsPerSecond = 0.0
    }
    private struct State {
        var jobs = 0
        var perPeer: [String: Peer] = [:]
        var threadJobs = 0
        var packetsPerSecond = 0.0
        var perDestination: [IPAddress: Double] = [:]
    }
    private let state = Mutex(State())
    let configuration: SchedulerConfiguration

    init(configuration: SchedulerConfiguration) { self.configuration = configuration }

    /// Reserves `demand` for a job of `peer`, or says which limit it would pass.
    func admit(_ demand: JobDemand, peer: String?) -> AdmissionRefusal? {
        let c = configuration
        for d in demand.destinations {
            if let why = c.destinations.refusal(for: d) {
                return AdmissionRefusal(limit: "destinations", message: why, kind: .refused)
            }
        }
        let perDestination = demand.destinations.isEmpty ? 0 : demand.packetsPerSecond / Double(demand.destinations.count)
        return state.withLock { s -> AdmissionRefusal? in
            func over(_ key: String, _ what: String) -> AdmissionRefusal {
                AdmissionRefusal(limit: key, message: "limit reached: \(key) (\(what))", kind: .limitReached)
            }
            let mine = peer.map { s.perPeer[$0] ?? Peer() }
            if s.jobs >= c.maxJobs { return over("max-jobs", "\(c.maxJobs) jobs scheduled or running") }
            if let peer, let mine, mine.jobs >= c.maxJobsPerPeer {
                return over("max-jobs-per-client", "\(c.maxJobsPerPeer) jobs scheduled or running for \(peer)")
            }
            if demand.dedicatedThread {
                if s.threadJobs >= c.maxThreadJobs {
                    return over("max-thread-jobs", "\(c.maxThreadJobs) ping and capture jobs at once")
                }
                if let peer, let mine, mine.threadJobs >= c.maxThreadJobsPerPeer {
                    return over("max-thread-jobs-per-client", "\(c.maxThreadJobsPerPeer) ping and capture jobs at once for \(peer)")
                }
            }
            if demand.packetsPerSecond > 0 && s.packetsPerSecond + demand.packetsPerSecond > Double(c.maxPacketsPerSecond) + 1e-9 {
                return over("max-packet-rate", "\(c.maxPacketsPerSecond) probes per second in all, "
                            + "\(Int(s.packetsPerSecond.rounded())) in use, this one needs \(Int(demand.packetsPerSecond.rounded(.up)))")
            }
            if demand.packetsPerSecond > 0, let peer, let mine,
               mine.packetsPerSecond + demand.packetsPerSecond > Double(c.maxPacketsPerSecondPerPeer) + 1e-9 {
                return over("max-packet-rate-per-client", "\(c.maxPacketsPerSecondPerPeer) probes per second for \(peer), "
                            + "\(Int(mine.packetsPerSecond.rounded())) in use")
            }
            if perDestination > 0 {
                for d in demand.destinations
                where s.perDestination[d, default: 0] + perDestination > Double(c.maxPacketsPerSecondPerDestination) + 1e-9 {
                    return over("max-packet-rate-per-destination",
                                "\(c.maxPacketsPerSecondPerDestination) probes per second to \(d)")
                }
            }
            s.jobs += 1
            if let peer {
                var p = mine ?? Peer()
                p.jobs += 1
                if demand.dedicatedThread { p.threadJobs += 1 }
                p.packetsPerSecond += demand.packetsPerSecond
                s.perPeer[peer] = p
            }
            if demand.dedicatedThread { s.threadJobs += 1 }
            s.packetsPerSecond += demand.packetsPerSecond
            if perDestination > 0 { for d in demand.destinations { s.perDestination[d, default: 0] += perDestination } }
            return nil
        }
    }

    /// Gives back what `admit` reserved for a job that has finished.
    func release(_ demand: JobDemand, peer: String?) {
        let perDestination = demand.destinations.isEmpty ? 0 : demand.packetsPerSecond / Double(demand.destinations.count)
        state.withLock { s in
            s.jobs -= 1
            if let peer, var p = s.perPeer[peer] {
                p.jobs -= 1
                if demand.dedicatedThread { p.threadJobs -= 1 }
                p.packetsPerSecond = p.jobs == 0 ? 0 : Swift.max(0, p.packetsPerSecond - demand.packetsPerSecond)
                s.perPeer[peer] = p.jobs > 0 ? p : nil
            }
            if demand.dedicatedThread { s.threadJobs -= 1 }
            s.packetsPerSecond = Swift.max(0, s.packetsPerSecond - demand.packetsPerSecond)
            if s.jobs == 0 { s.packetsPerSecond = 0 }  // no rounding drift left behind
            if perDestination > 0 {
                for d in demand.destinations {
                    let r = s.perDestination[d, default: 0] - perDestination
                    s.perDestination[d] = r > 1e-9 ? r : nil
                }
            }
        }
    }

    /// What is in use now: jobs, thread jobs, packets per second.
    var usage: (jobs: Int, threadJobs: Int, packetsPerSecond: Double) {
        state.withLock { ($0.jobs, $0.threadJobs, $0.packetsPerSecond) }
    }
}

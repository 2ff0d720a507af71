import MPlaneIO
public import MPlane
public import MPlaneScheduler
public import MPlaneProbe
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The ping measurement: one service per capability. The RI's four capabilities
/// (`ping-average-ip4/6`, `ping-detail-ip4/6`) come unchanged; the extended ones
/// (`ping-stats-*`, `ping-loss-*`, `ping-multi-*`) use the probe registry.
public struct PingService: MeasurementService {
    public enum Form: String, Sendable, CaseIterable {
        /// RI `ping-average`: one row, min/mean/max/count of the replies.
        case average
        /// RI `ping-detail`: one row per reply, its time and delay.
        case detail
        /// Ours: one row of statistics including the median, losses, duplicates, late replies.
        case statistics
        /// Ours: one row per probe sent; a lost probe's delay is missing.
        case loss
        /// Ours: statistics per destination for a set or CIDR range of destinations.
        case multi

        var label: String {
            switch self {
            case .average: return "ping-average"
            case .detail: return "ping-detail"
            case .statistics: return "ping-stats"
            case .loss: return "ping-loss"
            case .multi: return "ping-multi"
            }
        }
        var isReference: Bool { self == .average || self == .detail }
    }

    /// Settings shared by the ping services of a configuration section.
    public struct Settings: Sendable {
        public var socket: SocketKind = .auto
        /// Most destinations one `ping-multi` specification may name.
        public var maximumTargets = 1024
        /// Smallest period a specification may ask for, seconds.
        public var minimumPeriod: Int64 = 1
        /// Counts the other traffic on the probes' interface while a job runs
        /// (`cross-traffic = yes`); nil: not counted.
        public var crossTraffic: CrossTrafficStart? = nil
        /// How long before each probe's due time the loop spins on the clock, microseconds
        /// (`spin-lead-us`, 0-1000): precision for CPU.
        public var spinLeadMicroseconds = Int(PingEngine.defaultSpinLead / 1_000)
        /// Which percentile of the timer's lateness the learned lead covers
        /// (`spin-lead-percentile`, 50-99; ``SpinLead/quantile``): more is precision for CPU.
        public var spinLeadPercentile = Int((SpinLead.defaultQuantile * 100).rounded())
        public init() {}
    }

    /// Defaults of the optional parameters of the extended capabilities.
    public static let defaultPayload: UInt64 = 56
    public static let defaultTimeoutMS: UInt64 = 1000
    public static let defaultTTL: UInt64 = 64
    public static let defaultTOS: UInt64 = 0

    public let capability: Capability
    public let form: Form
    public let family: IPAddress.Family
    public let settings: Settings

    /// The services of `form`s for one source address.
    public static func services(source: IPAddress, forms: [Form], settings: Settings = Settings()) -> [PingService] {
        forms.map { PingService(form: $0, source: source, settings: settings) }
    }

    public init(form: Form, source: IPAddress, settings: Settings = Settings()) {
        self.form = form
        self.family = source.family
        self.settings = settings
        let f = source.family == .v4 ? "ip4" : "ip6"
        let store = RegistryStore.shared
        let registry = form.isReference ? store.core : (try! store.registry(for: RegistryStore.probeURI))
        var cap = Capability(label: "\(form.label)-\(f)",
                             when: When(start: .now, end: .future, period: Swift.max(1, settings.minimumPeriod)),
                             registry: registry)
        try! cap.statement.addParameter("source.\(f)", constraint: .set([.address(source)]))
        if form == .multi {
            try! cap.statement.addParameter("destination.\(f).set", constraint: .all)
        } else {
            try! cap.statement.addParameter("destination.\(f)", constraint: .all)
        }
        if !form.isReference {
            let maxPayload = UInt64(source.family == .v4 ? 65_507 : 65_487)
            try! cap.statement.addParameter(ElementName.icmpPayloadOctets, constraint: .makeRange(.natural(0), .natural(maxPayload)))
            // At most the scheduler's end grace (5 s), so the last probes are waited for.
            try! cap.statement.addParameter(ElementName.icmpTimeoutMS, constraint: .makeRange(.natural(1), .natural(5_000)))
            try! cap.statement.addParameter(ElementName.ipTTL, constraint: .makeRange(.natural(1), .natural(255)))
            try! cap.statement.addParameter(ElementName.ipTOS, constraint: .makeRange(.natural(0), .natural(255)))
        }
        let columns: [String]
        switch form {
        case .average:
            columns = [ElementName.delayTwowayICMPMin, ElementName.delayTwowayICMPMean, ElementName.delayTwowayICMPMax,
                       ElementName.delayTwowayICMPCount]
        case .detail:
            columns = [ElementName.time, ElementName.delayTwowayICMP]
        case .statistics:
            columns = [ElementName.delayTwowayICMPMin, ElementName.delayTwowayICMPMean, ElementName.delayTwowayICMPMedian,
                       ElementName.delayTwowayICMPMax, ElementName.delayTwowayICMPCount, ElementName.packetsLost, ElementName.packetsDuplicate,
                       ElementName.icmpPacketsLate]
        case .loss:
            columns = [ElementName.time, ElementName.delayTwowayICMP, ElementName.icmpTimestampSource, ElementName.probeLate]
        case .multi:
            columns = ["destination.\(f)", ElementName.delayTwowayICMPMin, ElementName.delayTwowayICMPMean,
                       ElementName.delayTwowayICMPMedian, ElementName.delayTwowayICMPMax, ElementName.delayTwowayICMPCount,
                       ElementName.packetsLost, ElementName.packetsDuplicate, ElementName.icmpPacketsLate]
        }
        for c in columns { try! cap.statement.addResultColumn(c) }
        if form == .multi {
            try! cap.statement.addMetadata(ElementName.icmpTargetsMax, .natural(UInt64(settings.maximumTargets)))
        }
        capability = cap
    }

    public var parameterDefaults: [String: Value] {
        guard !form.isReference else { return [:] }
        return [ElementName.icmpPayloadOctets: .natural(Self.defaultPayload), ElementName.icmpTimeoutMS: .natural(Self.defaultTimeoutMS),
                ElementName.ipTTL: .natural(Self.defaultTTL), ElementName.ipTOS: .natural(Self.defaultTOS)]
    }

    private var familyTag: String { family == .v4 ? "ip4" : "ip6" }

    public func refusal(for spec: Specification) -> String? {
        switch destinations(of: spec) {
        case .failure(let e): return e.message
        case .success: return nil
        }
    }

    public var sendsPackets: Bool { true }

    /// A thread of its own, and one probe per destination per period: the scheduler checks
    /// the destinations against its policy and the rate against its limits.
    public func demand(for spec: Specification) -> JobDemand {
        let targets = (try? destinations(of: spec).get()) ?? []
        let when = spec.statement.when
        let period = Swift.max(1, (when.isRepeated ? when.inner?.period : when.period) ?? 1)
        return JobDemand(dedicatedThread: true, packetsPerSecond: Double(targets.count) / Double(period),
                         destinations: targets)
    }

    /// The destinations a specification names, checked: unicast, of our family, at most
    /// ``Settings/maximumTargets``.
    func destinations(of spec: Specification) -> Swift.Result<[IPAddress], PingError> {
        if form == .multi {
            guard case .string(let text)? = spec.statement.parameterValue("destination.\(familyTag).set") else {
                return .failure(PingError(.destination, "destination.\(familyTag).set has no value"))
            }
            return Self.parseTargets(text, family: family, limit: settings.maximumTargets)
        }
        guard case .address(let a)? = spec.statement.parameterValue("destination.\(familyTag)") else {
            return .failure(PingError(.destination, "destination.\(familyTag) has no value"))
        }
        if let why = Self.unusable(a) { return .failure(PingError(.destination, "destination \(a): \(why)")) }
        return .success([a])
    }

    /// Parses a comma-separated list of addresses and CIDR prefixes (host bits must be
    /// zero), expanding prefixes; duplicates are dropped.
    public static func parseTargets(_ text: String, family: IPAddress.Family, limit: Int)
        -> Swift.Result<[IPAddress], PingError>
    {
        var out: [IPAddress] = []
        var seen = Set<IPAddress>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let item = part.trimmingSpaces()
            guard let a = IPAddress(item) else {
                return .failure(PingError(.destination, "'\(item)' is not an address or CIDR prefix"))
            }
            guard a.family == family else {
                return .failure(PingError(.destination, "'\(item)' is not an \(family == .v4 ? "IPv4" : "IPv6") address"))
            }
            let count = a.addressCount
            guard count <= UInt64(limit), out.count + Int(count) <= limit else {
                return .failure(PingError(.destination, "more than \(limit) destinations (the most this probe takes per specification)"))
            }
            // As fping: an IPv4 prefix up to /30 gives its hosts, without the network and
            // broadcast addresses.
            let hostsOnly = a.family == .v4 && (a.prefixLength ?? 32) <= 30
            for i in 0..<count {
                if hostsOnly && (i == 0 || i == count - 1) { continue }
                let host = a.address(at: i)!
                if let why = unusable(host) {
                    if a.isNetwork { continue }  // unusable addresses inside a prefix are skipped
                    return .failure(PingError(.destination, "destination \(host): \(why)"))
                }
                if seen.insert(host).inserted { out.append(host) }
            }
        }
        guard !out.isEmpty else { return .failure(PingError(.destination, "no destination in '\(text)'")) }
        return .success(out)
    }

    /// Why `a` cannot be pinged (unspecified, multicast, broadcast), or nil.
    static func unusable(_ a: IPAddress) -> String? {
        if a.family == .v4 {
            let v = UInt32(truncatingIfNeeded: a.low)
            if v == 0 { return "the unspecified address" }
            if v >> 28 == 0xE { return "a multicast address" }
            if v == 0xFFFF_FFFF { return "the broadcast address" }
        } else {
            if a.high == 0 && a.low == 0 { return "the unspecified address" }
            if a.high >> 56 == 0xFF { return "a multicast address" }
        }
        return nil
    }

    // MARK: Running

    public func run(_ job: JobContext) async throws {
        let spec = job.specification
        let targets = try destinations(of: spec).get()
        let period = Swift.max(1, job.period ?? 1)
        var rounds: Int? = nil
        if let end = job.end {
            // As the RI: as many probes as whole periods fit in the scope (at least one).
            rounds = Swift.max(1, Int((end.microseconds - job.start.microseconds) / (period * 1_000_000)))
        }
        var plan = PingPlan(family: family, source: spec.statement.parameterValue("source.\(familyTag)")?.address,
                            targets: targets, interval: period * 1_000_000_000, rounds: rounds)
        plan.socket = settings.socket
        plan.spinLead = Int64(settings.spinLeadMicroseconds) * 1_000
        plan.spinLeadQuantile = Double(settings.spinLeadPercentile) / 100
        if case .natural(let v)? = spec.statement.parameterValue(ElementName.icmpPayloadOctets) { plan.payload = Int(v) }
        if case .natural(let v)? = spec.statement.parameterValue(ElementName.icmpTimeoutMS) { plan.timeout = Int64(v) * 1_000_000 }
        if case .natural(let v)? = spec.statement.parameterValue(ElementName.ipTTL) { plan.ttl = Int(v) }
        if case .natural(let v)? = spec.statement.parameterValue(ElementName.ipTOS) { plan.tos = Int(v) }

        let sink = RowSink(job: job, form: form)
        // The traffic the probes' interface carries meanwhile (our capabilities only).
        var cross: (any CrossTrafficCounter)? = nil
        if !form.isReference, let start = settings.crossTraffic {
            if let interface = Self.egressInterface(targets[0]) {
                cross = await start(interface)
                if cross == nil {
                    job.logger.notice("cross-traffic not counted: cannot capture there", metadata: ["capture.interface": "\(interface)"])
                }
            } else {
                job.logger.notice("cross-traffic not counted: no interface found for the route", metadata: ["ping.destination": "\(targets[0])"])
            }
        }
        let report: PingReport
        do {
            (report, _) = try await PingEngine.run(plan, sink: sink, logger: job.logger) { job.isInterrupted }
        } catch {
            _ = await cross?.stop()
            throw error
        }
        if let counts = await cross?.stop() {
            job.setMetadata(ElementName.crossInterface, .string(counts.interface))
            job.setMetadata(ElementName.crossPacketsIP, .natural(counts.packets))
            job.setMetadata(ElementName.crossOctetsIP, .natural(counts.octets))
            job.setMetadata(ElementName.crossPacketsUnobserved, .natural(counts.dropped))
        }
        if form == .average || form == .statistics || form == .multi {
            try job.append { table in try Self.writeStatistics(report, targets: targets, into: &table) }
        }
        if !form.isReference {
            job.setMetadata(ElementName.icmpSocket, .string(report.socket.name))
            job.setMetadata(ElementName.icmpTimestampSource, .string(report.dominantSource.name))
            // How far the probe's own timing and clock can be trusted (README, "Ping").
            for (name, value) in Self.trustMetadata(report) { job.setMetadata(name, value) }
        }
        job.logger.info("ping finished", metadata: [
            "mplane.token": "\(spec.token)", "ping.sent": "\(report.sent)",
            "ping.received": "\(report.statistics.reduce(0) { $0 + $1.received })",
            "ping.socket": "\(report.socket.name)", "ping.timestamps": "\(report.dominantSource.name)",
        ])
    }

    /// The interface packets to `target` leave by.
    static func egressInterface(_ target: IPAddress) -> String? {
        var storage = sockaddr_storage()
        let length = SocketAddress.write(target, into: &storage)
        return withUnsafeBytes(of: &storage) { Route.interface(to: $0.baseAddress!, length: UInt32(length)) }
    }

    /// The probe's own error, its timestamp sources and the clock's state, as metadata.
    static func trustMetadata(_ report: PingReport) -> [(String, Value)] {
        var out = report.ownError.metadata
        let counts = report.sourceCounts
        out.append((ElementName.icmpSamplesKernel, .natural(UInt64(counts[Int(TimestampSource.kernel.rawValue)]))))
        out.append((ElementName.icmpSamplesKernelRX, .natural(UInt64(counts[Int(TimestampSource.kernelRX.rawValue)]))))
        out.append((ElementName.icmpSamplesUser, .natural(UInt64(counts[Int(TimestampSource.user.rawValue)]))))
        if let clock = report.clock { out += clock.metadata }
        return out
    }

    /// One row per destination: the statistics columns the table has.
    static func writeStatistics(_ report: PingReport, targets: [IPAddress], into table: inout ResultTable) throws {
        let columns = table.columns.map(\.element.name)
        for (i, s) in report.statistics.enumerated() {
            var row: [Value?] = []
            for name in columns {
                switch name {
                case ElementName.destinationIP4, ElementName.destinationIP6: row.append(.address(targets[i]))
                case ElementName.delayTwowayICMPMin: row.append(s.received == 0 ? nil : .natural(microseconds(s.minimum)))
                case ElementName.delayTwowayICMPMean: row.append(s.mean.map { .natural(microseconds($0)) })
                case ElementName.delayTwowayICMPMedian: row.append(s.median.map { .natural(microseconds($0)) })
                case ElementName.delayTwowayICMPMax: row.append(s.received == 0 ? nil : .natural(microseconds(s.maximum)))
                case ElementName.delayTwowayICMPCount: row.append(.natural(UInt64(s.received)))
                case ElementName.packetsLost: row.append(.natural(UInt64(s.lost)))
                case ElementName.packetsDuplicate: row.append(.natural(UInt64(s.duplicates)))
                case ElementName.icmpPacketsLate: row.append(.natural(UInt64(s.late)))
                default: row.append(nil)
                }
            }
            try table.appendRow(row)
        }
    }

    /// Nanoseconds to whole microseconds, rounded to nearest.
    static func microseconds(_ ns: Int64) -> UInt64 { UInt64(Swift.max(0, (ns + 500) / 1000)) }
}

/// Writes per-probe rows (`ping-detail`: replies only; `ping-loss`: every probe) straight
/// into the job's result as probes retire.
struct RowSink: PingSink, Sendable {
    let job: JobContext
    let form: PingService.Form
    let time: Int?, delay: Int?, source: Int?, late: Int?

    init(job: JobContext, form: PingService.Form) {
        self.job = job
        self.form = form
        let names = job.specification.statement.resultColumns.map(\.name)
        time = names.firstIndex(of: ElementName.time)
        delay = names.firstIndex(of: ElementName.delayTwowayICMP)
        source = names.firstIndex(of: ElementName.icmpTimestampSource)
        late = names.firstIndex(of: ElementName.probeLate)
    }

    mutating func retired(_ p: RetiredProbe) {
        guard form == .detail || form == .loss else { return }
        guard p.roundTrip != nil || form == .loss else { return }
        let (time, delay, source, late) = (self.time, self.delay, self.source, self.late)
        job.append { table in
            if let time {
                // The RI reports a reply's arrival time; a lost probe has its send time.
                let ns = p.roundTrip != nil ? p.receivedReal : p.sentReal
                table.columns[time].append(time: Timestamp(microsecondsSince1970: ns / 1000))
            }
            if let delay {
                if let rtt = p.roundTrip { table.columns[delay].append(natural: PingService.microseconds(rtt)) }
                else { table.columns[delay].appendMissing() }
            }
            if let source {
                if p.roundTrip != nil { table.columns[source].append(string: p.source.name) }
                else { table.columns[source].appendMissing() }
            }
            if let late { table.columns[late].append(boolean: p.sentLate) }
        }
    }
}

extension Value {
    var address: IPAddress? {
        if case .address(let a) = self { return a }
        return nil
    }
}

// MARK: Configuration

extension PingService {
    /// Opens (and closes) an ICMP socket as a job would: nil if ping works for `source`
    /// with `kind`, else what stands in the way.
    public static func availability(source: IPAddress, kind: SocketKind) -> PingError? {
        do {
            _ = try ICMPSocket(family: source.family, kind: kind, source: source, ttl: nil, tos: nil, identifier: 1)
            return nil
        } catch {
            return error
        }
    }

    /// Registers the `ping` service kind: the settings of a `[module_ping]` section are the
    /// RI's `ip4addr` and `ip6addr`, and ours: `extended` (yes: add the extended
    /// capabilities), `socket` (auto, datagram, raw), `max-targets`, `minimum-period`,
    /// `spin-lead-us`, `spin-lead-percentile`, `cross-traffic` (yes: count the other traffic on the probes' interface meanwhile,
    /// with `crossTraffic`), and `if-permitted` (yes: leave ping out with a warning when no
    /// ICMP socket can be opened, instead of refusing to start).
    public static func register(in registry: inout ServiceFactoryRegistry, crossTraffic: CrossTrafficStart? = nil) {
        registry.register("ping") { values, logger in
            let settings = SectionSettings(values)
            var s = Settings()
            if try settings.flag("cross-traffic") {
                guard let crossTraffic else {
                    throw ServiceConfigurationError(message: "cross-traffic = yes: this program has no capture to count it with")
                }
                s.crossTraffic = crossTraffic
            }
            if let v = settings["socket"] {
                guard let k = SocketKind(rawValue: v) else {
                    throw ServiceConfigurationError(message: "socket = \(v): use auto, datagram or raw")
                }
                s.socket = k
            }
            s.maximumTargets = try settings.integer("max-targets", in: 1...65_536, absent: s.maximumTargets)
            s.minimumPeriod = Int64(try settings.integer("minimum-period", in: 1...86_400, absent: Int(s.minimumPeriod)))
            s.spinLeadMicroseconds = try settings.integer("spin-lead-us", in: 0...1_000, absent: s.spinLeadMicroseconds)
            s.spinLeadPercentile = try settings.integer("spin-lead-percentile", in: 50...99, absent: s.spinLeadPercentile)
            let forms: [Form] = try settings.flag("extended") ? Form.allCases : [.average, .detail]
            let optional = try settings.flag("if-permitted")
            var sources: [IPAddress] = []
            for key in ["ip4addr", "ip6addr"] {
                guard let v = settings[key] else { continue }
                guard let a = IPAddress(v), !a.isNetwork, a.family == (key == "ip4addr" ? .v4 : .v6) else {
                    throw ServiceConfigurationError(message: "\(key) = \(v) is not an \(key == "ip4addr" ? "IPv4" : "IPv6") address")
                }
                sources.append(a)
            }
            guard !sources.isEmpty else {
                throw ServiceConfigurationError(message: "give ip4addr and/or ip6addr, the addresses to ping from")
            }
            var out: [any MeasurementService] = []
            for source in sources {
                if let problem = availability(source: source, kind: s.socket) {
                    guard optional else { throw ServiceConfigurationError(message: "ping from \(source): \(problem)") }
                    logger.warning("ping left out", metadata: ["ping.source": "\(source)", "reason": "\(problem)"])
                    continue
                }
                out += services(source: source, forms: forms, settings: s) as [any MeasurementService]
            }
            return out
        }
    }
}

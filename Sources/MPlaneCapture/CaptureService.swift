import MPlaneIO
public import MPlane
public import MPlaneScheduler
import Logging
public import MPlaneProbe
import CSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Passive traffic measurement with libpcap, on an interface or over a trace file, with the
/// same code: the capture thread hands frames to the decoder and meter in place.
///
/// Three measurements, each live on an interface (`<kind>-<interface>`, parameter
/// `source.interface`) and, where `capture-dir` is configured, over a trace file in it
/// (`<kind>-file`, parameter `capture.file`); all take `capture.filter` (a BPF expression,
/// empty for everything):
/// - **counters** (`capture-…`): one row per period: `time` (its start), `packets.ip`,
///   `octets.ip`, `packets.tcp`, `octets.tcp`, `packets.udp`, `octets.udp`,
///   `packets.unobserved` (frames the kernel dropped), `flows` (distinct flows with a packet).
/// - **flows** (`flows-…`): one row per bidirectional flow that ended (see ``FlowTable``),
///   parameters `flow.timeout.idle.s` and `flow.timeout.active.s`.
/// - **top talkers** (`top-talkers-…`): the `top.count` hosts with the most octets sent and
///   received over the scope.
public struct CaptureService: MeasurementService {
    public enum Measure: Sendable { case counters, flows, topTalkers }

    public let capability: Capability
    /// The interface (nil: a trace file).
    public let interface: String?
    public let measure: Measure
    public let settings: Settings
    /// Live flow captures between the repetitions of repeated specifications.
    let sessions = CaptureSessions()
    /// The longest gap between two repetitions across which a live flows capture stays open,
    /// microseconds.
    static let longestParking: Int64 = 1_000_000

    public struct Settings: Sendable {
        /// Bytes kept of each frame: enough for the headers that are read (Ethernet, two VLAN
        /// tags, IPv6 with extension headers, TCP).
        public var snaplen: Int32 = 160
        /// The kernel's capture buffer, bytes.
        public var bufferBytes: Int32 = 4 << 20
        public var minimumPeriod: Int64 = 1
        /// The longest `capture.filter` accepted, bytes (`max-filter-bytes`). libpcap's
        /// optimiser takes time that grows steeply with a filter's size, and cannot be
        /// interrupted: see ``FilterLimits``.
        public var maxFilterBytes = FilterLimits.defaultBytes
        /// The most `and`/`or`/`not` operators a filter may have (`max-filter-operators`).
        public var maxFilterOperators = FilterLimits.defaultOperators
        /// Flows one job's table holds (`flow-table-size`): about 250 bytes each (with the index), resident as
        /// flows arrive. Past it the least recently active flow is exported early.
        public var flowTableSize = 65_536
        /// The directory trace files are read from (`capture-dir`); nil: no file capabilities.
        public var captureDirectory: String? = nil
        /// The largest `top.count`.
        public var maxTopCount = 1_000
        /// Called on the capture thread once the capture is open and counting (tests and
        /// tools that must not send before it is).
        public var onOpen: (@Sendable () -> Void)? = nil
        public init() {}
    }

    public static let columns = [ElementName.time, ElementName.packetsIP, ElementName.octetsIP, ElementName.packetsTCP, ElementName.octetsTCP, ElementName.packetsUDP,
                                 ElementName.octetsUDP, ElementName.packetsUnobserved, ElementName.flows]
    public static let flowColumns = [ElementName.start, ElementName.end, ElementName.sourceIP4, ElementName.sourceIP6,
                                     ElementName.destinationIP4, ElementName.destinationIP6, ElementName.sourcePort,
                                     ElementName.destinationPort, ElementName.ipProtocol, ElementName.packetsIP,
                                     ElementName.octetsIP, ElementName.packetsIPForward, ElementName.octetsIPForward,
                                     ElementName.packetsIPReverse, ElementName.octetsIPReverse, ElementName.rttUS,
                                     ElementName.rttResponderUS, ElementName.rttInitiatorUS,
                                     ElementName.packetsRetransmittedForward, ElementName.packetsRetransmittedReverse,
                                     ElementName.packetsOutOfOrderForward, ElementName.packetsOutOfOrderReverse,
                                     ElementName.flowEndReason]
    public static let topColumns = [ElementName.hostIP4, ElementName.hostIP6, ElementName.packetsIP, ElementName.octetsIP,
                                    ElementName.flows]

    /// Counters on `interface` (the capability that has always been).
    public init(interface: String, settings: Settings = Settings()) {
        self.init(measure: .counters, interface: interface, settings: settings)
    }

    /// `measure` on `interface`, or over trace files in `settings.captureDirectory` when
    /// `interface` is nil.
    public init(measure: Measure, interface: String?, settings: Settings = Settings()) {
        self.interface = interface
        self.measure = measure
        self.settings = settings
        let registry = try! RegistryStore.shared.registry(for: RegistryStore.probeURI)
        let kind = switch measure {
        case .counters: "capture"
        case .flows: "flows"
        case .topTalkers: "top-talkers"
        }
        let when: When = measure == .counters
            ? When(start: .now, end: .future, period: Swift.max(1, settings.minimumPeriod))
            : When(start: .now, end: .future)
        var cap = Capability(label: "\(kind)-\(interface ?? "file")", when: when, registry: registry)
        if let interface {
            try! cap.statement.addParameter(ElementName.sourceInterface, constraint: .set([.string(interface)]))
        } else {
            try! cap.statement.addParameter(ElementName.captureFile, constraint: .all)
        }
        try! cap.statement.addParameter(ElementName.captureFilter, constraint: .all)
        switch measure {
        case .counters:
            for c in Self.columns { try! cap.statement.addResultColumn(c) }
        case .flows:
            try! cap.statement.addParameter(ElementName.flowTimeoutIdle, constraint: .makeRange(.natural(1), .natural(86_400)))
            try! cap.statement.addParameter(ElementName.flowTimeoutActive, constraint: .makeRange(.natural(1), .natural(604_800)))
            for c in Self.flowColumns { try! cap.statement.addResultColumn(c) }
            try! cap.statement.addMetadata(ElementName.flowTableSize, .natural(UInt64(settings.flowTableSize)))
        case .topTalkers:
            try! cap.statement.addParameter(ElementName.topCount, constraint: .makeRange(.natural(1), .natural(UInt64(settings.maxTopCount))))
            for c in Self.topColumns { try! cap.statement.addResultColumn(c) }
            try! cap.statement.addMetadata(ElementName.flowTableSize, .natural(UInt64(settings.flowTableSize)))
        }
        try! cap.statement.addMetadata(ElementName.captureFilterOctetsMax, .natural(UInt64(settings.maxFilterBytes)))
        capability = cap
    }

    public var parameterDefaults: [String: Value] {
        [ElementName.captureFilter: .string(""), ElementName.flowTimeoutIdle: .natural(300),
         ElementName.flowTimeoutActive: .natural(1_800), ElementName.topCount: .natural(10)]
            .filter { capability.statement.parameter($0.key) != nil }
    }

    /// A thread of its own.
    public func demand(for spec: Specification) -> JobDemand { JobDemand(dedicatedThread: true) }

    /// A repeated flows specification ended: its parked capture (if its last repetition did
    /// not close it: an interrupt between repetitions) is closed; the flows still open in it
    /// had no repetition left to be reported in.
    public func seriesEnded(_ series: JobSeries) { sessions.take(series)?.close() }

    /// Refuses a filter over the size limits and a file name that tries to leave
    /// `capture-dir`, at once, on the request path (cheap).
    public func refusal(for spec: Specification) -> String? {
        if interface == nil {
            guard case .string(let name)? = spec.statement.parameterValue(ElementName.captureFile) else {
                return "capture.file: a trace file name is needed"
            }
            if let why = Self.fileNameRefusal(name) { return why }
        }
        guard case .string(let filter)? = spec.statement.parameterValue(ElementName.captureFilter), !filter.isEmpty else { return nil }
        return FilterLimits.refusal(filter, maxBytes: settings.maxFilterBytes, maxOperators: settings.maxFilterOperators)
    }

    /// Why `name` cannot name a trace file in `capture-dir`, or nil. (The open checks again,
    /// beneath the directory, symbolic links included.)
    public static func fileNameRefusal(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        if bytes.isEmpty { return "capture.file: a trace file name is needed" }
        if bytes.count > 1024 { return "capture.file is \(bytes.count) bytes long, over 1024" }
        if bytes.contains(0) || bytes.contains(where: { $0 < 0x20 }) { return "capture.file holds control characters" }
        if bytes.first == UInt8(ascii: "/") { return "capture.file '\(name)' is absolute: name a file in capture-dir" }
        if bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).contains(where: { $0.elementsEqual("..".utf8) }) {
            return "capture.file '\(name)' leads outside capture-dir"
        }
        return nil
    }

    /// Opens the trace file, then compiles the filter, each on a thread of its own (libpcap's
    /// compiler cannot be cancelled and must not hold a pool thread; a file may be slow to
    /// open), at most ``FilterLimits/concurrentCompiles`` compiles and
    /// ``FilterLimits/concurrentFileChecks`` opens at once.
    public func slowRefusal(for spec: Specification) async -> String? {
        if interface == nil, let dir = settings.captureDirectory,
           case .string(let name)? = spec.statement.parameterValue(ElementName.captureFile) {
            let why = await FilterLimits.onThread(FilterLimits.fileChecking, limit: FilterLimits.concurrentFileChecks,
                                                  busy: "capture.file: too many trace files being opened at once") { () -> String? in
                do throws(CaptureError) { _ = try Capture(directory: dir, file: name, filter: "") } catch { return error.message }
                return nil
            }
            if let why { return why }
        }
        guard case .string(let filter)? = spec.statement.parameterValue(ElementName.captureFilter), !filter.isEmpty else { return nil }
        return await FilterLimits.onThread(FilterLimits.compiling, limit: FilterLimits.concurrentCompiles,
                                           busy: "capture.filter: too many filters being compiled at once") {
            Self.checkFilter(filter).map { "capture.filter '\(filter)': \($0)" }
        }
    }

    /// Why `filter` does not compile, or nil. Also nil when libpcap cannot be loaded: that is
    /// no fault of the filter, and the job then fails (500) with the reason.
    public static func checkFilter(_ filter: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        let r = buffer.withUnsafeMutableBufferPointer { csupport_capture_check_filter(filter, $0.baseAddress!) }
        return r == -1 ? text(buffer) : nil
    }

    /// Whether `interface` exists, is up, and this process may capture on it: nil, else why
    /// not. Checked with a packet socket, so a probe that never captures never loads libpcap
    /// (whether libpcap itself is installed shows on the first capture).
    public static func availability(interface: String) -> CaptureError? {
        var buffer = [CChar](repeating: 0, count: 256)
        let status = buffer.withUnsafeMutableBufferPointer { csupport_capture_probe(interface, $0.baseAddress!) }
        return status == 0 ? nil : Capture.openError(interface: interface, status: status, detail: text(buffer))
    }

    public func run(_ job: JobContext) async throws {
        var filter = ""
        if case .string(let f)? = job.parameter(ElementName.captureFilter) { filter = f }
        let source: CaptureSource
        if let interface {
            source = .interface(interface)
        } else {
            guard let dir = settings.captureDirectory, case .string(let name)? = job.parameter(ElementName.captureFile) else {
                throw CaptureError(.file, "capture.file: no capture-dir is configured")
            }
            source = .file(directory: dir, name: name)
        }
        var period = Swift.max(1, job.period ?? 1)
        var periods: Int? = nil
        if let end = job.end {
            let span = Swift.max(1, (end.microseconds - job.start.microseconds) / 1_000_000)
            if measure != .counters { period = span }
            periods = Swift.max(1, Int(span / period))
        }
        if measure != .counters && periods == nil { period = CaptureLoop.longestPeriod }
        var planned = CapturePlan(source: source, filter: filter, period: period, periods: periods,
                                  start: job.start, settings: settings)
        planned.periodRows = measure == .counters
        let plan = planned
        let measure = self.measure
        let capacity = settings.flowTableSize
        let natural = { (name: String, absent: Int64) -> Int64 in
            if case .natural(let v)? = job.parameter(name) { return Int64(clamping: v) }
            return absent
        }
        let idle = natural(ElementName.flowTimeoutIdle, 300), active = natural(ElementName.flowTimeoutActive, 1_800)
        let top = Int(natural(ElementName.topCount, 10))
        // Live flows of a repeated specification carry their capture and flow table from one
        // repetition to the next: a flow is reported once, in the repetition it ends in.
        let series = measure == .flows && interface != nil ? job.series : nil
        let sessions = self.sessions
        let parked = series.flatMap { sessions.take($0) }
        let outcome: Swift.Result<(CaptureSummary, FlowTableCounters), CaptureError>? = await ProbeThread.run(name: "mplane-capture") {
            var hosts = measure == .topTalkers ? HostTotals(capacity: capacity) : nil
            let sink = parked?.sink ?? FlowSink()
            sink.job = job
            sink.unreported = 0
            var table: FlowTable? = parked?.meter.flows
            let evictedBefore = table?.counters.evicted ?? 0
            let makeMeter = { (linktype: Int32) throws(CaptureError) -> Meter in
                switch measure {
                case .counters:
                    table = FlowTable(capacity: capacity, idleTimeout: 300, activeTimeout: 1_800) { _, _ in }
                case .flows:
                    table = FlowTable(capacity: capacity, idleTimeout: idle, activeTimeout: active) { sink.export($0, $1) }
                case .topTalkers:
                    table = FlowTable(capacity: capacity, idleTimeout: 300, activeTimeout: 1_800) { flow, _ in
                        hosts?.add(flow)
                    }
                }
                guard let table else {
                    throw CaptureError(.resources, "no memory for a flow table of \(capacity) flows")
                }
                return Meter(linktype: linktype, flows: table)
            }
            let row = { (time: Timestamp, counts: TrafficCounts) in
                guard measure == .counters else { return }
                job.append { table in
                    table.columns[0].append(time: time)
                    table.columns[1].append(natural: counts.ipPackets)
                    table.columns[2].append(natural: counts.ipOctets)
                    table.columns[3].append(natural: counts.tcpPackets)
                    table.columns[4].append(natural: counts.tcpOctets)
                    table.columns[5].append(natural: counts.udpPackets)
                    table.columns[6].append(natural: counts.udpOctets)
                    table.columns[7].append(natural: counts.dropped)
                    table.columns[8].append(natural: counts.flows)
                }
            }
            do throws(CaptureError) {
                let summary: CaptureSummary
                if let series {
                    let session: CaptureSession
                    if let parked { session = parked } else { session = try CaptureLoop.openLive(plan, meter: makeMeter, sink: sink) }
                    do throws(CaptureError) {
                        summary = try CaptureLoop.live(plan, capture: session.capture, meter: session.meter,
                                                       shouldStop: { job.isInterrupted }, row: row)
                    } catch {
                        // What ended so far is kept in this window's partial result.
                        session.meter.flows?.flush()
                        session.close()
                        throw error
                    }
                    // Parked only when the next repetition follows at once: over a gap the
                    // capture would gather stale frames (and hold its ring and table).
                    let end = job.end ?? job.start
                    if let next = job.nextStart, next.microseconds - end.microseconds <= Self.longestParking,
                       !job.isInterrupted && !job.reachedRowLimit {
                        sink.job = nil
                        sessions.park(series, session)
                    } else {
                        session.meter.flows?.flush()
                        session.close()
                    }
                } else {
                    summary = try CaptureLoop.run(plan, meter: makeMeter, shouldStop: { job.isInterrupted }, row: row)
                    // The flows still open end with the measurement.
                    if measure != .counters { table?.flush() }
                }
                if let hosts { job.append { hosts.appendTop(top, to: &$0) } }
                if let hosts, hosts.untracked > 0 { job.setMetadata(ElementName.hostsUntracked, .natural(hosts.untracked)) }
                if measure == .flows { job.setMetadata(ElementName.flowsUnreported, .natural(sink.unreported)) }
                var counters = table?.counters ?? FlowTableCounters()
                counters.evicted -= evictedBefore
                return .success((summary, counters))
            } catch {
                return .failure(error)
            }
        }
        guard let outcome else { throw CaptureError(.resources, "cannot start a thread for the capture") }
        let (summary, counters) = try outcome.get()
        if measure != .counters {
            // What the result may lack: frames the kernel dropped, flows the full table
            // exported early, frames too short or malformed to decode.
            job.setMetadata(ElementName.packetsUnobserved, .natural(summary.dropped))
            job.setMetadata(ElementName.flowsEvicted, .natural(counters.evicted))
            job.setMetadata(ElementName.packetsTruncated, .natural(summary.truncated))
        }
        job.logger.info("capture finished", metadata: [
            "mplane.token": "\(job.specification.token)", "capture.source": "\(interface ?? "file")",
            "capture.frames": "\(summary.frames)", "capture.dropped": "\(summary.dropped)",
            "capture.truncated": "\(summary.truncated)", "flows.evicted": "\(counters.evicted)",
        ])
        if summary.dropped > 0 {
            job.logger.warning("the kernel dropped captured frames", metadata: [
                "capture.source": "\(interface ?? "file")", "capture.dropped": "\(summary.dropped)",
            ])
        }
    }

    /// An address into the pair of columns of its family (IPv4 or IPv6); the other gets a
    /// missing value.
    static func appendAddress(version: UInt8, high: UInt64, low: UInt64, v4: Int, v6: Int, to table: inout ResultTable) {
        if version == 4 {
            table.columns[v4].append(address: IPAddress(ipv4: UInt32(truncatingIfNeeded: low)))
            table.columns[v6].appendMissing()
        } else {
            table.columns[v4].appendMissing()
            table.columns[v6].append(address: IPAddress(ipv6: high, low))
        }
    }

    /// One flow record as a row of ``flowColumns``.
    static func appendFlow(_ f: Flow, _ reason: FlowEndReason, to table: inout ResultTable) {
        table.columns[0].append(time: Timestamp(microsecondsSince1970: f.first / 1000))
        table.columns[1].append(time: Timestamp(microsecondsSince1970: f.last / 1000))
        appendAddress(version: f.version, high: f.aHigh, low: f.aLow, v4: 2, v6: 3, to: &table)
        appendAddress(version: f.version, high: f.bHigh, low: f.bLow, v4: 4, v6: 5, to: &table)
        table.columns[6].append(natural: UInt64(f.aPort))
        table.columns[7].append(natural: UInt64(f.bPort))
        table.columns[8].append(natural: UInt64(f.proto))
        table.columns[9].append(natural: f.packets)
        table.columns[10].append(natural: f.octets)
        table.columns[11].append(natural: f.forwardPackets)
        table.columns[12].append(natural: f.forwardOctets)
        table.columns[13].append(natural: f.reversePackets)
        table.columns[14].append(natural: f.reverseOctets)
        for (i, v) in [(15, f.handshakeRTT), (16, f.responderRTT), (17, f.initiatorRTT)] {
            if let v { table.columns[i].append(natural: UInt64(Swift.max(0, v) / 1000)) } else { table.columns[i].appendMissing() }
        }
        table.columns[18].append(natural: f.forwardRetransmitted)
        table.columns[19].append(natural: f.reverseRetransmitted)
        table.columns[20].append(natural: f.forwardOutOfOrder)
        table.columns[21].append(natural: f.reverseOutOfOrder)
        table.columns[22].append(string: reason.description)
    }
}

/// Where a flow table's records go: the rows of the current job (for a repeated
/// specification, the repetition the flow ends in). Used on the capture thread only, handed
/// from one repetition's thread to the next through ``CaptureSessions``.
final class FlowSink: @unchecked Sendable {
    var job: JobContext?
    /// Flows that ended once the result was full.
    var unreported: UInt64 = 0

    func export(_ flow: Flow, _ reason: FlowEndReason) {
        guard let job else { return }
        // Past max-result-rows (or -bytes) the job is ending: what ends after is counted,
        // not kept.
        if job.reachedRowLimit {
            unreported += 1
            return
        }
        job.append { CaptureService.appendFlow(flow, reason, to: &$0) }
    }
}

/// Live flow captures parked between two repetitions of a repeated specification.
final class CaptureSessions: Sendable {
    private let parked = Mutex<[JobSeries: CaptureSession]>([:])

    func park(_ series: JobSeries, _ session: CaptureSession) {
        let old = parked.withLock { $0.updateValue(session, forKey: series) }
        old?.close()
    }

    func take(_ series: JobSeries) -> CaptureSession? { parked.withLock { $0.removeValue(forKey: series) } }
}

/// Octets, packets and flows per host, from the flows as they end; at most `capacity`
/// hosts (past it, a new host's figures are counted in `untracked` only).
struct HostTotals {
    struct Key: Hashable { var high: UInt64, low: UInt64, version: UInt8 }
    struct Totals { var packets: UInt64 = 0, octets: UInt64 = 0, flows: UInt64 = 0 }
    let capacity: Int
    var hosts: [Key: Totals] = [:]
    /// Hosts left out because the table was full.
    var untracked: UInt64 = 0

    init(capacity: Int) { self.capacity = capacity }

    mutating func add(_ f: Flow) {
        let a = Key(high: f.aHigh, low: f.aLow, version: f.version), b = Key(high: f.bHigh, low: f.bLow, version: f.version)
        for k in a == b ? [a] : [a, b] {
            if hosts[k] == nil && hosts.count >= capacity {
                untracked += 1
                continue
            }
            hosts[k, default: Totals()].packets += f.packets
            hosts[k, default: Totals()].octets += f.octets
            // A flow's later records (after an interim one) are the same flow.
            if !f.continued { hosts[k, default: Totals()].flows += 1 }
        }
    }

    /// The `n` hosts with the most octets (ties: more packets, then the lower address) as
    /// rows of ``CaptureService/topColumns``.
    func appendTop(_ n: Int, to table: inout ResultTable) {
        let top = hosts.sorted {
            ($0.value.octets, $0.value.packets, $1.key.version, $1.key.high, $1.key.low)
                > ($1.value.octets, $1.value.packets, $0.key.version, $0.key.high, $0.key.low)
        }.prefix(n)
        for (k, t) in top {
            CaptureService.appendAddress(version: k.version, high: k.high, low: k.low, v4: 0, v6: 1, to: &table)
            table.columns[2].append(natural: t.packets)
            table.columns[3].append(natural: t.octets)
            table.columns[4].append(natural: t.flows)
        }
    }
}


// MARK: Configuration

extension CaptureService {
    /// Registers the `capture` service kind (`module = mplane.components.tstat` maps here
    /// too): `interface` (comma-separated, default `lo`), `snaplen`, `buffer-kib`,
    /// `minimum-period`, `max-filter-bytes`, `max-filter-operators`, `flow-table-size`,
    /// `capture-dir` (trace files: adds the `…-file` capabilities), `max-top-count`, and
    /// `if-permitted` (yes: leave capture out with a warning when the interface cannot be
    /// opened, instead of refusing to start). Each interface gets counters, flows and top
    /// talkers.
    public static func register(in registry: inout ServiceFactoryRegistry) {
        registry.register("capture") { values, logger in
            let settings = SectionSettings(values)
            var s = Settings()
            s.snaplen = Int32(try settings.integer("snaplen", in: 64...65_535, absent: Int(s.snaplen)))
            s.bufferBytes = Int32(try settings.integer("buffer-kib", in: 64...1_048_576, absent: Int(s.bufferBytes) / 1024) * 1024)
            s.minimumPeriod = Int64(try settings.integer("minimum-period", in: 1...86_400, absent: 1))
            s.maxFilterBytes = try settings.integer("max-filter-bytes", in: 1...65_536, absent: s.maxFilterBytes)
            s.maxFilterOperators = try settings.integer("max-filter-operators", in: 0...10_000, absent: s.maxFilterOperators)
            s.flowTableSize = try settings.integer("flow-table-size", in: 1_024...16_777_216, absent: s.flowTableSize)
            s.maxTopCount = try settings.integer("max-top-count", in: 1...100_000, absent: s.maxTopCount)
            if let dir = settings["capture-dir"] {
                guard dir.hasPrefix("/") else { throw ServiceConfigurationError(message: "capture-dir = \(dir): use an absolute path") }
                var st = stat()
                guard stat(dir, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
                    throw ServiceConfigurationError(message: "capture-dir = \(dir): not a directory")
                }
                s.captureDirectory = dir
            }
            let optional = try settings.flag("if-permitted")
            let names = settings.list("interface", absent: ["lo"])
            var out: [any MeasurementService] = []
            for name in names {
                if let problem = availability(interface: name) {
                    guard optional else { throw ServiceConfigurationError(message: "\(problem)") }
                    logger.warning("capture left out", metadata: ["capture.interface": "\(name)", "reason": "\(problem)"])
                    continue
                }
                for m in [Measure.counters, .flows, .topTalkers] { out.append(CaptureService(measure: m, interface: name, settings: s)) }
            }
            if s.captureDirectory != nil {
                for m in [Measure.counters, .flows, .topTalkers] { out.append(CaptureService(measure: m, interface: nil, settings: s)) }
            }
            return out
        }
    }
}


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

/// Passive traffic measurement on one interface with libpcap: packets and octets at the
/// IP layer and for TCP and UDP, one row per period, from the capture thread straight into
/// the job's result.
///
/// Capability `capture-<interface>`: parameters `source.interface` (the interface) and
/// `capture.filter` (a BPF expression, optional, default empty: everything); results
/// `time` (start of the period), `packets.ip`, `octets.ip`, `packets.tcp`, `octets.tcp`,
/// `packets.udp`, `octets.udp`, `packets.unobserved` (frames the kernel dropped).
public struct CaptureService: MeasurementService {
    public let capability: Capability
    public let interface: String
    public let settings: Settings

    public struct Settings: Sendable {
        /// Bytes kept of each frame: enough for the headers that are counted.
        public var snaplen: Int32 = 128
        /// The kernel's capture buffer, bytes.
        public var bufferBytes: Int32 = 4 << 20
        public var minimumPeriod: Int64 = 1
        /// The longest `capture.filter` accepted, bytes (`max-filter-bytes`). libpcap's
        /// optimiser takes time that grows steeply with a filter's size, and cannot be
        /// interrupted: see ``FilterLimits``.
        public var maxFilterBytes = FilterLimits.defaultBytes
        /// The most `and`/`or`/`not` operators a filter may have (`max-filter-operators`).
        public var maxFilterOperators = FilterLimits.defaultOperators
        /// Called on the capture thread once the capture is open and counting (tests and
        /// tools that must not send before it is).
        public var onOpen: (@Sendable () -> Void)? = nil
        public init() {}
    }

    public static let columns = [ElementName.time, ElementName.packetsIP, ElementName.octetsIP, ElementName.packetsTCP, ElementName.octetsTCP, ElementName.packetsUDP,
                                 ElementName.octetsUDP, ElementName.packetsUnobserved]

    public init(interface: String, settings: Settings = Settings()) {
        self.interface = interface
        self.settings = settings
        let registry = try! RegistryStore.shared.registry(for: RegistryStore.probeURI)
        var cap = Capability(label: "capture-\(interface)",
                             when: When(start: .now, end: .future, period: Swift.max(1, settings.minimumPeriod)),
                             registry: registry)
        try! cap.statement.addParameter(ElementName.sourceInterface, constraint: .set([.string(interface)]))
        try! cap.statement.addParameter(ElementName.captureFilter, constraint: .all)
        for c in Self.columns { try! cap.statement.addResultColumn(c) }
        try! cap.statement.addMetadata(ElementName.captureFilterOctetsMax, .natural(UInt64(settings.maxFilterBytes)))
        capability = cap
    }

    public var parameterDefaults: [String: Value] { [ElementName.captureFilter: .string("")] }

    /// A thread of its own.
    public func demand(for spec: Specification) -> JobDemand { JobDemand(dedicatedThread: true) }

    /// Refuses a filter over the size limits at once, on the request path (cheap).
    public func refusal(for spec: Specification) -> String? {
        guard case .string(let filter)? = spec.statement.parameterValue(ElementName.captureFilter), !filter.isEmpty else { return nil }
        return FilterLimits.refusal(filter, maxBytes: settings.maxFilterBytes, maxOperators: settings.maxFilterOperators)
    }

    /// Compiles the filter on a thread of its own (libpcap's compiler cannot be cancelled and
    /// must not hold a pool thread), at most ``FilterLimits/concurrentCompiles`` at once.
    public func slowRefusal(for spec: Specification) async -> String? {
        guard case .string(let filter)? = spec.statement.parameterValue(ElementName.captureFilter), !filter.isEmpty else { return nil }
        guard FilterLimits.compiling.add(1, ordering: .acquiringAndReleasing).newValue <= FilterLimits.concurrentCompiles else {
            FilterLimits.compiling.subtract(1, ordering: .releasing)
            return "capture.filter: too many filters being compiled at once (\(FilterLimits.concurrentCompiles)); try again"
        }
        defer { FilterLimits.compiling.subtract(1, ordering: .releasing) }
        let why = await ProbeThread.run(name: "mplane-filter") { Self.checkFilter(filter) }
        guard let why else { return "capture.filter: cannot start a thread to compile it" }
        return why.map { "capture.filter '\(filter)': \($0)" }
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
        let period = Swift.max(1, job.period ?? 1)
        var periods: Int? = nil
        if let end = job.end {
            periods = Swift.max(1, Int((end.microseconds - job.start.microseconds) / (period * 1_000_000)))
        }
        let plan = CapturePlan(interface: interface, filter: filter, period: period, periods: periods,
                               start: job.start, settings: settings)
        let outcome: Swift.Result<CaptureSummary, CaptureError>? = await ProbeThread.run(name: "mplane-capture") {
            do throws(CaptureError) {
                return .success(try CaptureLoop.run(plan, shouldStop: { job.isInterrupted }) { time, counts in
                    job.append { table in
                        table.columns[0].append(time: time)
                        table.columns[1].append(natural: counts.ipPackets)
                        table.columns[2].append(natural: counts.ipOctets)
                        table.columns[3].append(natural: counts.tcpPackets)
                        table.columns[4].append(natural: counts.tcpOctets)
                        table.columns[5].append(natural: counts.udpPackets)
                        table.columns[6].append(natural: counts.udpOctets)
                        table.columns[7].append(natural: counts.dropped)
                    }
                })
            } catch {
                return .failure(error)
            }
        }
        guard let outcome else { throw CaptureError(.resources, "cannot start a thread for the capture") }
        let summary = try outcome.get()
        job.logger.info("capture finished", metadata: [
            "mplane.token": "\(job.specification.token)", "capture.interface": "\(interface)",
            "capture.frames": "\(summary.frames)", "capture.dropped": "\(summary.dropped)",
        ])
        if summary.dropped > 0 {
            job.logger.warning("the kernel dropped captured frames", metadata: [
                "capture.interface": "\(interface)", "capture.dropped": "\(summary.dropped)",
            ])
        }
    }
}


// MARK: Configuration

extension CaptureService {
    /// Registers the `capture` service kind (`module = mplane.components.tstat` maps here
    /// too): `interface` (comma-separated, default `lo`), `snaplen`, `buffer-kib`,
    /// `minimum-period`, `max-filter-bytes`, `max-filter-operators`, and `if-permitted` (yes: leave capture out with a warning when the
    /// interface cannot be opened, instead of refusing to start).
    public static func register(in registry: inout ServiceFactoryRegistry) {
        registry.register("capture") { values, logger in
            let settings = SectionSettings(values)
            var s = Settings()
            s.snaplen = Int32(try settings.integer("snaplen", in: 64...65_535, absent: Int(s.snaplen)))
            s.bufferBytes = Int32(try settings.integer("buffer-kib", in: 64...1_048_576, absent: Int(s.bufferBytes) / 1024) * 1024)
            s.minimumPeriod = Int64(try settings.integer("minimum-period", in: 1...86_400, absent: 1))
            s.maxFilterBytes = try settings.integer("max-filter-bytes", in: 1...65_536, absent: s.maxFilterBytes)
            s.maxFilterOperators = try settings.integer("max-filter-operators", in: 0...10_000, absent: s.maxFilterOperators)
            let optional = try settings.flag("if-permitted")
            let names = settings.list("interface", absent: ["lo"])
            var out: [any MeasurementService] = []
            for name in names {
                if let problem = availability(interface: name) {
                    guard optional else { throw ServiceConfigurationError(message: "\(problem)") }
                    logger.warning("capture left out", metadata: ["capture.interface": "\(name)", "reason": "\(problem)"])
                    continue
                }
                out.append(CaptureService(interface: name, settings: s))
            }
            return out
        }
    }
}


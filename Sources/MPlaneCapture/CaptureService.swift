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

/// A capture failure an operator can act on.
public struct CaptureError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Traffic counters of one period, as the C side counts them.
public struct TrafficCounts: Equatable, Sendable {
    public var frames: UInt64 = 0
    public var ipPackets: UInt64 = 0, ipOctets: UInt64 = 0
    public var tcpPackets: UInt64 = 0, tcpOctets: UInt64 = 0
    public var udpPackets: UInt64 = 0, udpOctets: UInt64 = 0
    public var otherPackets: UInt64 = 0
    /// Frames the kernel dropped in the period (not counted above).
    public var dropped: UInt64 = 0

    public init() {}

    init(_ c: csupport_counts) {
        frames = c.frames
        ipPackets = c.ip_packets
        ipOctets = c.ip_octets
        tcpPackets = c.tcp_packets
        tcpOctets = c.tcp_octets
        udpPackets = c.udp_packets
        udpOctets = c.udp_octets
        otherPackets = c.other_packets
    }

    /// Counts one captured frame of pcap link type `linktype` (for tests and tools).
    public mutating func count(frame: [UInt8], linktype: Int32) {
        var c = csupport_counts()
        frame.withUnsafeBufferPointer { b in
            csupport_count_frame(linktype, b.baseAddress ?? UnsafePointer(bitPattern: 1)!, UInt32(b.count), &c)
        }
        let d = TrafficCounts(c)
        frames += d.frames
        ipPackets += d.ipPackets
        ipOctets += d.ipOctets
        tcpPackets += d.tcpPackets
        tcpOctets += d.tcpOctets
        udpPackets += d.udpPackets
        udpOctets += d.udpOctets
        otherPackets += d.otherPackets
    }
}

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

    public static let columns = ["time", "packets.ip", "octets.ip", "packets.tcp", "octets.tcp", "packets.udp",
                                 "octets.udp", "packets.unobserved"]

    public init(interface: String, settings: Settings = Settings()) {
        self.interface = interface
        self.settings = settings
        let registry = try! RegistryStore.shared.registry(for: RegistryStore.probeURI)
        var cap = Capability(label: "capture-\(interface)",
                             when: When(start: .now, end: .future, period: Swift.max(1, settings.minimumPeriod)),
                             registry: registry)
        try! cap.statement.addParameter("source.interface", constraint: .set([.string(interface)]))
        try! cap.statement.addParameter("capture.filter", constraint: .all)
        for c in Self.columns { try! cap.statement.addResultColumn(c) }
        try! cap.statement.addMetadata("capture.filter.octets.max", .natural(UInt64(settings.maxFilterBytes)))
        capability = cap
    }

    public var parameterDefaults: [String: Value] { ["capture.filter": .string("")] }

    /// A thread of its own.
    public func demand(for spec: Specification) -> JobDemand { JobDemand(dedicatedThread: true) }

    /// Refuses a filter over the size limits at once, on the request path (cheap).
    public func refusal(for spec: Specification) -> String? {
        guard case .string(let filter)? = spec.statement.parameterValue("capture.filter"), !filter.isEmpty else { return nil }
        return FilterLimits.refusal(filter, maxBytes: settings.maxFilterBytes, maxOperators: settings.maxFilterOperators)
    }

    /// Compiles the filter on a thread of its own (libpcap's compiler cannot be cancelled and
    /// must not hold a pool thread), at most ``FilterLimits/concurrentCompiles`` at once.
    public func slowRefusal(for spec: Specification) async -> String? {
        guard case .string(let filter)? = spec.statement.parameterValue("capture.filter"), !filter.isEmpty else { return nil }
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
        if case .string(let f)? = job.parameter("capture.filter") { filter = f }
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
        guard let outcome else { throw CaptureError("cannot start a thread for the capture") }
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

/// The NUL-terminated text in a C error buffer.
func text(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// What one capture job does.
struct CapturePlan: Sendable {
    var interface: String
    var filter: String
    var period: Int64
    var periods: Int?
    var start: Timestamp
    var settings: CaptureService.Settings
}

/// What a capture came to.
public struct CaptureSummary: Sendable {
    public var frames: UInt64 = 0
    public var dropped: UInt64 = 0
    /// CPU time the capture thread used, nanoseconds.
    public var cpuNanoseconds: Int64 = 0
}

/// An open pcap handle.
final class Capture {
    private(set) var handle: OpaquePointer?
    let fd: Int32
    private var errors = [CChar](repeating: 0, count: 256)

    init(interface: String, settings: CaptureService.Settings, filter: String) throws(CaptureError) {
        var status: Int32 = 0
        var buffer = [CChar](repeating: 0, count: 256)
        let h = buffer.withUnsafeMutableBufferPointer {
            csupport_capture_open(interface, settings.snaplen, settings.bufferBytes, $0.baseAddress!, &status)
        }
        guard let h else {
            let why = text(buffer)
            throw Self.openError(interface: interface, status: status, detail: why)
        }
        handle = h
        fd = csupport_capture_fd(h)
        if !filter.isEmpty {
            let r = buffer.withUnsafeMutableBufferPointer { csupport_capture_filter(h, filter, $0.baseAddress!) }
            if r != 0 {
                csupport_capture_close(h)
                handle = nil
                let why = text(buffer)
                throw CaptureError("capture.filter '\(filter)': \(why)")
            }
        }
    }

    static func openError(interface: String, status: Int32, detail: String) -> CaptureError {
        switch status {
        case -8 /* PCAP_ERROR_PERM_DENIED */:
            return CaptureError("cannot capture on \(interface): permission denied; capture needs CAP_NET_RAW (run as root, `setcap cap_net_raw,cap_net_admin+ep mpcom`, or AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN in the systemd unit)")
        case -5 /* PCAP_ERROR_NO_SUCH_DEVICE */:
            return CaptureError("cannot capture on \(interface): no such interface")
        case -9 /* PCAP_ERROR_IFACE_NOT_UP */:
            return CaptureError("cannot capture on \(interface): the interface is down")
        default:
            return CaptureError("cannot capture on \(interface): \(detail)")
        }
    }

    /// Counts the frames waiting into `counts`.
    func dispatch(into counts: inout csupport_counts) throws(CaptureError) {
        guard let handle else { return }
        let n = errors.withUnsafeMutableBufferPointer { csupport_capture_dispatch(handle, &counts, $0.baseAddress!) }
        if n < 0 {
            let why = text(errors)
            throw CaptureError("capture failed: \(why)")
        }
    }

    /// Frames dropped so far.
    var dropped: UInt64 {
        guard let handle else { return 0 }
        var received: UInt64 = 0, dropped: UInt64 = 0
        return csupport_capture_stats(handle, &received, &dropped) == 0 ? dropped : 0
    }

    func close() {
        csupport_capture_close(handle)
        handle = nil
    }

    deinit { close() }
}

enum CaptureLoop {
    /// Longest the loop waits without looking at `shouldStop`.
    static let stopCheck: Int64 = 20_000_000

    /// Captures period by period until the periods are done or `shouldStop`; calls `row`
    /// with each period's start time and counts (a partial last period on interruption).
    static func run(_ plan: CapturePlan, shouldStop: () -> Bool, row: (Timestamp, TrafficCounts) -> Void)
        throws(CaptureError) -> CaptureSummary
    {
        let capture = try Capture(interface: plan.interface, settings: plan.settings, filter: plan.filter)
        defer { capture.close() }
        plan.settings.onOpen?()
        var summary = CaptureSummary()
        var counts = csupport_counts()
        let periodNs = plan.period * 1_000_000_000
        // Periods run on the monotonic clock from when counting began: from the job's
        // start, or from now if opening the capture took us past it (rows then carry the
        // time counting really began).
        let nowReal = csupport_clock_ns(Int32(CSUPPORT_CLOCK_REALTIME))
        let nowMono = csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC))
        let late = Swift.max(0, nowReal - plan.start.microseconds * 1000)
        let startMono = late > 100_000_000 ? nowMono : nowMono - late
        let startTime = late > 100_000_000 ? Timestamp(microsecondsSince1970: nowReal / 1000) : plan.start
        var index = 0
        var droppedBefore = capture.dropped
        func emit() {
            var c = TrafficCounts(counts)
            let dropped = capture.dropped
            c.dropped = UInt64(UInt32(truncatingIfNeeded: dropped &- droppedBefore))  // pcap's counter is 32 bits
            droppedBefore = dropped
            summary.frames += c.frames
            summary.dropped += c.dropped
            row(startTime.adding(seconds: Int64(index) * plan.period), c)
            counts = csupport_counts()
            index += 1
        }
        do throws(CaptureError) {
            while true {
                let now = csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC))
                let periodEnd = startMono + Int64(index + 1) * periodNs
                if now >= periodEnd {
                    try capture.dispatch(into: &counts)
                    emit()
                    if let periods = plan.periods, index >= periods { break }
                    continue
                }
                if shouldStop() {
                    try capture.dispatch(into: &counts)
                    emit()
                    break
                }
                let r = csupport_poll_in(capture.fd, Swift.min(periodEnd, now + stopCheck) - now)
                if r < 0 && -r != EINTR { throw CaptureError("the capture descriptor failed (errno \(-r))") }
                if r > 0 { try capture.dispatch(into: &counts) }
            }
        } catch {
            // What was counted of the current period is kept.
            emit()
            throw error
        }
        var cpu = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu)
        summary.cpuNanoseconds = Int64(cpu.tv_sec) * 1_000_000_000 + Int64(cpu.tv_nsec)
        return summary
    }
}

extension CaptureService {
    /// Captures on `interface` for `seconds` one-second periods on the calling thread
    /// (tools and benchmarks); returns each period's counts and the summary.
    public static func measure(interface: String, filter: String, seconds: Int, settings: Settings = Settings())
        throws(CaptureError) -> ([TrafficCounts], CaptureSummary)
    {
        var rows: [TrafficCounts] = []
        let now = Timestamp(microsecondsSince1970: csupport_clock_ns(Int32(CSUPPORT_CLOCK_REALTIME)) / 1000)
        let plan = CapturePlan(interface: interface, filter: filter, period: 1, periods: seconds, start: now,
                               settings: settings)
        let summary = try CaptureLoop.run(plan, shouldStop: { false }) { _, c in rows.append(c) }
        return (rows, summary)
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

/// Bounds on capture filters. libpcap's optimiser works in time that grows with about the
/// cube of a filter's operators (2,000 `host` terms ran over ten minutes; 300 took 1.2 s
/// here, 64 `portrange` terms 0.25 s), in the caller's thread, and cannot be cancelled: a
/// filter is refused by size before it is compiled, compiled on a thread of its own, and a
/// program the kernel would refuse (over 4,096 instructions) is refused too.
public enum FilterLimits {
    /// Default `max-filter-bytes`.
    public static let defaultBytes = 4096
    /// Default `max-filter-operators`.
    public static let defaultOperators = 64
    /// Filters compiled at once (each on its own thread).
    public static let concurrentCompiles = 2
    static let compiling = Atomic<Int>(0)

    /// Why `filter` is over the limits (naming `capture.filter` and the limit), or nil.
    public static func refusal(_ filter: String, maxBytes: Int, maxOperators: Int) -> String? {
        let bytes = filter.utf8.count
        if bytes > maxBytes {
            return "capture.filter is \(bytes) bytes long, over max-filter-bytes (\(maxBytes))"
        }
        let operators = operatorCount(filter)
        if operators > maxOperators {
            return "capture.filter has \(operators) and/or/not operators, over max-filter-operators (\(maxOperators))"
        }
        return nil
    }

    /// The `and`, `or` and `not` operators of a filter, as words (bounded by anything but
    /// letters, digits, `.`, `:`, `-` and `_`, so `or.example.com` is none) or as `&&`, `||`
    /// and `!` (not `!=`). Counting a few too many is harmless.
    public static func operatorCount(_ filter: String) -> Int {
        let b = Array(filter.utf8)
        var n = 0
        var i = 0
        func isWordByte(_ c: UInt8) -> Bool {
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "-"),
                 UInt8(ascii: "_"):
                return true
            default: return false
            }
        }
        while i < b.count {
            let c = b[i]
            if isWordByte(c) {
                var j = i
                while j < b.count && isWordByte(b[j]) { j += 1 }
                let word = String(decoding: b[i..<j], as: UTF8.self).lowercased()
                if word == "and" || word == "or" || word == "not" { n += 1 }
                i = j
                continue
            }
            if (c == UInt8(ascii: "&") || c == UInt8(ascii: "|")) && i + 1 < b.count && b[i + 1] == c {
                n += 1
                i += 2
                continue
            }
            if c == UInt8(ascii: "!") && !(i + 1 < b.count && b[i + 1] == UInt8(ascii: "=")) { n += 1 }
            i += 1
        }
        return n
    }
}

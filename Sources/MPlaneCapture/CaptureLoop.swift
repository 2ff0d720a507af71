import MPlane
import MPlaneScheduler
import Logging
import MPlaneProbe
import MPlaneIO
import CSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The NUL-terminated text in a C error buffer.
func text(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Where a capture's frames come from.
enum CaptureSource: Sendable {
    case interface(String)
    /// A trace file `name` inside the directory `directory` (`capture-dir`).
    case file(directory: String, name: String)
}

/// What one capture job does.
struct CapturePlan: Sendable {
    var source: CaptureSource
    var filter: String
    /// Seconds.
    var period: Int64
    /// Whether rows are made per period (counters); otherwise a trace is read without
    /// periods, and a live capture looks at its periods only to end.
    var periodRows = true
    var periods: Int?
    var start: Timestamp
    var settings: CaptureService.Settings
}

/// What a capture came to.
public struct CaptureSummary: Sendable {
    public var frames: UInt64 = 0
    public var dropped: UInt64 = 0
    /// Frames too short for the headers they announce, or with headers that contradict
    /// themselves: counted, never trusted.
    public var truncated: UInt64 = 0
    /// CPU time the capture thread used, nanoseconds.
    public var cpuNanoseconds: Int64 = 0
}

/// An open pcap handle: a live interface or a trace file.
final class Capture {
    private(set) var handle: OpaquePointer?
    /// The descriptor to poll (live captures only).
    let fd: Int32
    let linktype: Int32
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
        linktype = csupport_capture_linktype(h)
        try install(filter)
    }

    init(directory: String, file name: String, filter: String) throws(CaptureError) {
        var status: Int32 = 0
        var buffer = [CChar](repeating: 0, count: 256)
        let h = buffer.withUnsafeMutableBufferPointer {
            csupport_capture_open_file(directory, name, $0.baseAddress!, &status)
        }
        guard let h else {
            let why = text(buffer)
            switch status {
            case -2: throw CaptureError(.file, "capture.file '\(name)': no such file in capture-dir")
            case -3: throw CaptureError(.file, "capture.file '\(name)' leads outside capture-dir")
            case -4: throw CaptureError(.file, "capture.file '\(name)' is not a regular file")
            case -1: throw CaptureError(.file, "capture.file '\(name)' is not a trace libpcap reads: \(why)")
            default: throw CaptureError(.file, "capture.file '\(name)': \(why)")
            }
        }
        handle = h
        fd = -1
        linktype = csupport_capture_linktype(h)
        try install(filter)
    }

    private func install(_ filter: String) throws(CaptureError) {
        guard let h = handle, !filter.isEmpty else { return }
        var buffer = [CChar](repeating: 0, count: 256)
        let r = buffer.withUnsafeMutableBufferPointer { csupport_capture_filter(h, filter, $0.baseAddress!) }
        if r != 0 {
            close()
            throw CaptureError(.filter, "capture.filter '\(filter)': \(text(buffer))")
        }
    }

    static func openError(interface: String, status: Int32, detail: String) -> CaptureError {
        switch status {
        case -8 /* PCAP_ERROR_PERM_DENIED */:
            return CaptureError(.permission, "cannot capture on \(interface): permission denied; capture needs CAP_NET_RAW (run as root, `setcap cap_net_raw,cap_net_admin+ep mpcom`, or AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN in the systemd unit)")
        case -5 /* PCAP_ERROR_NO_SUCH_DEVICE */:
            return CaptureError(.noSuchInterface, "cannot capture on \(interface): no such interface")
        case -9 /* PCAP_ERROR_IFACE_NOT_UP */:
            return CaptureError(.interfaceDown, "cannot capture on \(interface): the interface is down")
        default:
            return CaptureError(.capture, "cannot capture on \(interface): \(detail)")
        }
    }

    /// Hands up to `max` frames to `meter` (-1: what one read returns); how many.
    func dispatch(into meter: Meter, max: Int32 = -1) throws(CaptureError) -> Int32 {
        guard let handle else { return 0 }
        let context = Unmanaged.passUnretained(meter).toOpaque()
        let n = errors.withUnsafeMutableBufferPointer {
            csupport_capture_dispatch(handle, max, meterFrame, context, $0.baseAddress!)
        }
        if n < 0 { throw CaptureError(.capture, "capture failed: \(text(errors))") }
        return n
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

/// The C callback: one frame to its meter.
private let meterFrame: csupport_frame_handler = { context, time, data, caplen, _ in
    let meter = Unmanaged<Meter>.fromOpaque(context!).takeUnretainedValue()
    meter.frame(UnsafeRawBufferPointer(start: data, count: Int(caplen)), at: time)
}

/// An open live capture with its meter (and flow table) and where its flows go, carried from
/// one repetition of a repeated specification to the next. Used by one capture thread at a
/// time, handed between them through ``CaptureSessions``'s lock.
final class CaptureSession: @unchecked Sendable {
    let capture: Capture
    let meter: Meter
    let sink: FlowSink
    init(capture: Capture, meter: Meter, sink: FlowSink) {
        self.capture = capture
        self.meter = meter
        self.sink = sink
    }
    func close() { capture.close() }
}

/// Decodes and meters frames on the capture thread: the period's counters, and the flow
/// table when the measurement has one. On a trace, periods end by the packets' time: the
/// periods a frame closes wait in `pending` for the loop to hand on between reads.
final class Meter {
    let linktype: Int32
    var decoded = DecodedPacket()
    var counts = TrafficCounts()
    var truncated: UInt64 = 0
    let flows: FlowTable?
    /// Trace mode: the period (ns), the current period's start (-1 before the first frame),
    /// and the packet time at which it ends.
    var tracePeriod: Int64 = 0
    var periodStart: Int64 = -1
    var traceBoundary: Int64 = .max
    /// Periods closed on a trace: start, counts, and how many empty periods follow it.
    var pending: [(start: Int64, counts: TrafficCounts, emptyAfter: Int64)] = []
    /// The latest frame's time.
    var latest: Int64 = .min

    init(linktype: Int32, flows: FlowTable?) {
        self.linktype = linktype
        self.flows = flows
    }

    /// A trace's time never runs backwards: a frame stamped before the one read before it
    /// counts at that one's time (so the flow table's recency list stays in time order).
    @inline(__always)
    func frame(_ bytes: UnsafeRawBufferPointer, at stamp: Int64) {
        let time = stamp < latest ? latest : stamp
        latest = time
        if time >= traceBoundary { closeTracePeriods(at: time) }
        PacketDecoder.decode(bytes, linktype: linktype, into: &decoded)
        counts.add(decoded)
        switch decoded.outcome {
        case .ip:
            flows?.add(decoded, at: stamp)
        case .truncated, .malformed:
            truncated += 1
        case .notIP:
            break
        }
    }

    /// Trace mode from the next frame on, in periods of `period` nanoseconds.
    func startTrace(period: Int64, batch: Int) {
        tracePeriod = period
        traceBoundary = .min
        pending.reserveCapacity(batch + 1)
    }

    private func closeTracePeriods(at time: Int64) {
        if periodStart < 0 {
            periodStart = time
        } else {
            let elapsed = (time - periodStart) / tracePeriod
            pending.append((periodStart, takeCounts(), elapsed - 1))
            periodStart += elapsed * tracePeriod
        }
        traceBoundary = periodStart + tracePeriod
    }

    /// Takes the period's counters (and starts the table's next period).
    func takeCounts() -> TrafficCounts {
        var c = counts
        c.flows = flows?.flowsInPeriod ?? 0
        counts = TrafficCounts()
        flows?.nextPeriod()
        return c
    }
}

enum CaptureLoop {
    /// Longest the loop waits without looking at `shouldStop`.
    static let stopCheck: Int64 = 20_000_000
    /// The longest period, seconds (68 years): longer ones are cut to it, so that period
    /// arithmetic in nanoseconds cannot overflow whatever scope a specification names.
    static let longestPeriod: Int64 = 1 << 31
    /// Frames read from a trace between looks at `shouldStop`.
    static let traceBatch: Int32 = 65_536

    /// Captures period by period until the periods are done or `shouldStop`; calls `row`
    /// with each period's start time and counts (a partial last period on interruption).
    /// `meter` makes the meter for the capture's link type (and flow table). A trace file is
    /// read to its end (or until `shouldStop`) at full speed, its periods by packet time.
    static func run(_ plan: CapturePlan, meter makeMeter: (Int32) throws(CaptureError) -> Meter,
                    shouldStop: () -> Bool, row: (Timestamp, TrafficCounts) -> Void)
        throws(CaptureError) -> CaptureSummary
    {
        switch plan.source {
        case .interface(let name):
            let capture = try Capture(interface: name, settings: plan.settings, filter: plan.filter)
            defer { capture.close() }
            let meter = try makeMeter(capture.linktype)
            plan.settings.onOpen?()
            return try live(plan, capture: capture, meter: meter, shouldStop: shouldStop, row: row)
        case .file(let directory, let name):
            let capture = try Capture(directory: directory, file: name, filter: plan.filter)
            defer { capture.close() }
            let meter = try makeMeter(capture.linktype)
            plan.settings.onOpen?()
            return try trace(plan, capture: capture, meter: meter, shouldStop: shouldStop, row: row)
        }
    }

    /// Opens a live capture for a series of repetitions (see ``CaptureSession``).
    static func openLive(_ plan: CapturePlan, meter makeMeter: (Int32) throws(CaptureError) -> Meter, sink: FlowSink)
        throws(CaptureError) -> CaptureSession
    {
        guard case .interface(let name) = plan.source else { throw CaptureError(.capture, "not a live capture") }
        let capture = try Capture(interface: name, settings: plan.settings, filter: plan.filter)
        do throws(CaptureError) {
            let meter = try makeMeter(capture.linktype)
            plan.settings.onOpen?()
            return CaptureSession(capture: capture, meter: meter, sink: sink)
        } catch {
            capture.close()
            throw error
        }
    }

    private static func cpuTime() -> Int64 {
        var cpu = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu)
        return Int64(cpu.tv_sec) * 1_000_000_000 + Int64(cpu.tv_nsec)
    }

    static func live(_ plan: CapturePlan, capture: Capture, meter: Meter, shouldStop: () -> Bool,
                             row: (Timestamp, TrafficCounts) -> Void) throws(CaptureError) -> CaptureSummary {
        var summary = CaptureSummary()
        let periodNs = Swift.min(Swift.max(1, plan.period), Self.longestPeriod) * 1_000_000_000
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
        let truncatedBefore = meter.truncated
        func emit() {
            var c = meter.takeCounts()
            let dropped = capture.dropped
            c.dropped = UInt64(UInt32(truncatingIfNeeded: dropped &- droppedBefore))  // pcap's counter is 32 bits
            droppedBefore = dropped
            summary.frames += c.frames
            summary.dropped += c.dropped
            row(startTime.adding(seconds: Int64(index) * plan.period), c)
            index += 1
        }
        do throws(CaptureError) {
            while true {
                let now = csupport_clock_ns(Int32(CSUPPORT_CLOCK_MONOTONIC))
                let periodEnd = startMono + Int64(index + 1) * periodNs
                if now >= periodEnd {
                    _ = try capture.dispatch(into: meter)
                    emit()
                    if let periods = plan.periods, index >= periods { break }
                    continue
                }
                if shouldStop() {
                    _ = try capture.dispatch(into: meter)
                    emit()
                    break
                }
                let r = csupport_poll_in(capture.fd, Swift.min(periodEnd, now + stopCheck) - now)
                if r < 0 && -r != EINTR { throw CaptureError(.capture, "the capture descriptor failed: \(errnoText(-r))", errno: -r) }
                if r > 0 { _ = try capture.dispatch(into: meter) }
                // A quiet link still ends flows at their timeouts.
                meter.flows?.advance(to: csupport_clock_ns(Int32(CSUPPORT_CLOCK_REALTIME)))
            }
        } catch {
            // What was counted of the current period is kept.
            emit()
            summary.truncated = meter.truncated - truncatedBefore
            throw error
        }
        summary.truncated = meter.truncated - truncatedBefore
        summary.cpuNanoseconds = cpuTime()
        return summary
    }

    private static func trace(_ plan: CapturePlan, capture: Capture, meter: Meter, shouldStop: () -> Bool,
                              row: (Timestamp, TrafficCounts) -> Void) throws(CaptureError) -> CaptureSummary {
        var summary = CaptureSummary()
        let periodNs = Swift.min(Swift.max(1, plan.period), Self.longestPeriod) * 1_000_000_000
        var stopped = false
        func emit(_ start: Int64, _ c: TrafficCounts) {
            summary.frames += c.frames
            row(Timestamp(microsecondsSince1970: start / 1000), c)
        }
        // The periods the frames closed, and the empty ones between them, are handed on
        // between reads (a stop ends the empty ones early).
        func drain() {
            for p in meter.pending {
                emit(p.start, p.counts)
                var k: Int64 = 1
                while k <= p.emptyAfter && !stopped {
                    if shouldStop() { stopped = true; break }
                    emit(p.start + k * periodNs, TrafficCounts())
                    k += 1
                }
            }
            meter.pending.removeAll(keepingCapacity: true)
        }
        if plan.periodRows { meter.startTrace(period: periodNs, batch: Int(traceBatch)) }
        while !stopped && !shouldStop() {
            let n = try capture.dispatch(into: meter, max: traceBatch)
            drain()
            if n == 0 { break }
        }
        if plan.periodRows && meter.periodStart >= 0 { emit(meter.periodStart, meter.takeCounts()) }
        if !plan.periodRows { summary.frames = meter.counts.frames }
        summary.truncated = meter.truncated
        summary.cpuNanoseconds = cpuTime()
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
        let plan = CapturePlan(source: .interface(interface), filter: filter, period: 1, periods: seconds, start: now,
                               settings: settings)
        let summary = try CaptureLoop.run(plan, meter: { Meter(linktype: $0, flows: nil) }, shouldStop: { false }) { _, c in
            rows.append(c)
        }
        return (rows, summary)
    }
}

extension CaptureService {
    /// Meters flows over the trace `name` in `directory` on the calling thread, exactly as
    /// `flows-file` does, rows included (tools and benchmarks): the summary, the table's
    /// counters, the rows written, and the table's size in bytes.
    public static func meterFlows(directory: String, name: String, settings: Settings = Settings(),
                                  idleTimeout: Int64 = 300, activeTimeout: Int64 = 1_800)
        throws(CaptureError) -> (summary: CaptureSummary, counters: FlowTableCounters, rows: Int, tableBytes: Int)
    {
        let service = CaptureService(measure: .flows, interface: nil, settings: settings)
        var rows = ResultTable(columns: service.capability.statement.resultColumns)
        var table: FlowTable? = nil
        let plan = CapturePlan(source: .file(directory: directory, name: name), filter: "", period: CaptureLoop.longestPeriod, periods: nil,
                               start: Timestamp(microsecondsSince1970: 0), settings: settings)
        let summary = try CaptureLoop.run(plan, meter: { (linktype: Int32) throws(CaptureError) -> Meter in
            table = FlowTable(capacity: settings.flowTableSize, idleTimeout: idleTimeout, activeTimeout: activeTimeout) {
                appendFlow($0, $1, to: &rows)
            }
            guard let table else { throw CaptureError(.resources, "no memory for the flow table") }
            return Meter(linktype: linktype, flows: table)
        }, shouldStop: { false }) { _, _ in }
        table?.flush()
        return (summary, table?.counters ?? FlowTableCounters(), rows.rowCount, table?.memoryBytes ?? 0)
    }
}

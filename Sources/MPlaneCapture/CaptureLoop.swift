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
                throw CaptureError(.filter, "capture.filter '\(filter)': \(why)")
            }
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

    /// Counts the frames waiting into `counts`.
    func dispatch(into counts: inout csupport_counts) throws(CaptureError) {
        guard let handle else { return }
        let n = errors.withUnsafeMutableBufferPointer { csupport_capture_dispatch(handle, &counts, $0.baseAddress!) }
        if n < 0 {
            let why = text(errors)
            throw CaptureError(.capture, "capture failed: \(why)")
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
                if r < 0 && -r != EINTR { throw CaptureError(.capture, "the capture descriptor failed: \(errnoText(-r))", errno: -r) }
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


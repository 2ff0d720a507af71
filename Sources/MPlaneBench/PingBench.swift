// Ping benchmarks: `mplane-bench ping rtt|rtt-user-tx COUNT INTERVAL_MS` and
// `mplane-bench ping scale TARGETS INTERVAL_MS SECONDS`. Each prints one JSON object.
// Run through `make bench-ping`, which measures iputils ping and fping in the same run.
import MPlane
import MPlanePing
import MPlaneIO
#if canImport(Glibc)
import Glibc
#endif

/// Keeps every round-trip time (preallocated) and counts losses.
struct SampleSink: PingSink, Sendable {
    var rtts: [Int64] = []
    var lost = 0
    init(capacity: Int) { rtts.reserveCapacity(capacity) }
    mutating func retired(_ p: RetiredProbe) {
        if let r = p.roundTrip { rtts.append(r) } else { lost += 1 }
    }
}

func percentile(_ sorted: [Int64], _ p: Double) -> Int64 {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p + 0.5))]
}

func us(_ ns: Int64) -> String {
    let v = Double(ns) / 1000
    return String(Int(v * 1000 + 0.5) / 1000) + "." + String(1000 + (Int(v * 1000 + 0.5) % 1000)).dropFirst()
}

func cpuSeconds() -> Double {
    var u = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
    return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec)
        + Double(u.ru_stime.tv_usec) / 1e6
}

func pingBenchmark(_ args: [String]) -> Never {
    let mode = args.first ?? "rtt"
    var numbers: [Int] = []
    for a in args.dropFirst() { numbers.append(Int(a) ?? 0) }
    func number(_ i: Int, _ d: Int) -> Int { numbers.count >= i && numbers[i - 1] > 0 ? numbers[i - 1] : d }
    let plan: PingPlan
    var seconds = 0
    if mode == "rtt" || mode == "rtt-user-tx" {
        var p = PingPlan(family: .v4, source: IPAddress("127.0.0.1"), targets: [IPAddress("127.0.0.1")!],
                         interval: Int64(number(2, 1)) * 1_000_000, rounds: number(1, 1000))
        p.socket = .raw
        // rtt-user-tx times as iputils ping does: user-space send time, kernel receive time.
        p.transmitTimestamps = mode == "rtt"
        plan = p
    } else {
        let n = number(1, 1000)
        seconds = number(3, 5)
        let interval = Int64(number(2, 1000)) * 1_000_000
        var targets: [IPAddress] = []
        let net = IPAddress("127.0.0.0/16")!
        for i in 0..<UInt64(n) { targets.append(net.address(at: i)!) }
        var p = PingPlan(family: .v4, source: IPAddress("127.0.0.1"), targets: targets, interval: interval,
                         rounds: Int(Int64(seconds) * 1_000_000_000 / interval))
        p.socket = .raw
        p.recordScheduleErrors = true
        plan = p
    }
    let probes = (plan.rounds ?? 0) * plan.targets.count
    var sink = SampleSink(capacity: probes)
    let cpu0 = cpuSeconds()
    let clock = ContinuousClock()
    let t0 = clock.now
    let report: PingReport
    do { report = try PingEngine.runBlocking(plan, sink: &sink) { false } } catch {
        writeStandardErrorLine("ping benchmark: \(error)")
        exit(1)
    }
    let wall = clock.now - t0
    let cpu = cpuSeconds() - cpu0
    let wallSeconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) * 1e-18
    let rtts = sink.rtts.sorted()
    let sched = report.scheduleErrors.sorted()
    var fields = [
        "\"mode\": \"\(mode)\"", "\"targets\": \(plan.targets.count)", "\"sent\": \(report.sent)",
        "\"received\": \(rtts.count)", "\"lost\": \(sink.lost)",
        "\"duplicates\": \(report.statistics.reduce(0) { $0 + $1.duplicates })",
        "\"rtt_us\": {\"min\": \(us(rtts.first ?? 0)), \"p50\": \(us(percentile(rtts, 0.5))), \"p99\": \(us(percentile(rtts, 0.99))), \"max\": \(us(rtts.last ?? 0))}",
        "\"timestamps\": {\"kernel\": \(report.sourceCounts[0]), \"kernel_rx\": \(report.sourceCounts[1]), \"user\": \(report.sourceCounts[2])}",
        "\"wall_ms\": \(Int(wallSeconds * 1000))", "\"cpu_ms\": \(Int(cpu * 1000))",
    ]
    if !sched.isEmpty {
        fields.append("\"schedule_error_us\": {\"p50\": \(us(percentile(sched, 0.5))), \"p99\": \(us(percentile(sched, 0.99))), \"max\": \(us(sched.last!))}")
        fields.append("\"packets_per_s\": \(Int(Double(report.sent) / wallSeconds))")
    }
    print("{" + fields.joined(separator: ", ") + "}")
    exit(0)
}

func writeStandardErrorLine(_ s: String) { writeStandardError(s + "\n") }

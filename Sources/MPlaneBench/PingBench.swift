// Ping benchmarks: `mplane-bench ping rtt|rtt-user-tx COUNT INTERVAL_MS` and
// `mplane-bench ping scale TARGETS INTERVAL_MS SECONDS [BATCH]` (BATCH 1: one system call per
// datagram; default the engine's). MPLANE_SPIN_LEAD_US sets the spin lead (default 40).
// `mplane-bench ping jobs JOBS TARGETS INTERVAL_MS SECONDS`: the socket design under many
// jobs: JOBS measurements at once, each on its own thread and raw socket (with its kernel
// identifier filter), sharing TARGETS destinations and so the rate of one job over them all. Each prints one JSON object.
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
        if numbers.count >= 4 && numbers[3] > 0 { p.batch = numbers[3] }
        if let lead = getenv("MPLANE_SPIN_LEAD_US"), let us = Int64(String(cString: lead)) { p.spinLead = us * 1_000 }
        if let q = getenv("MPLANE_SPIN_LEAD_QUANTILE"), let v = Double(String(cString: q)) { p.spinLeadQuantile = v }
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
    // Every probe's schedule error, nanoseconds in send order as native 64-bit integers, for
    // Benchmarks/ping_cpu_pairs.py to pool over rounds.
    if let path = getenv("MPLANE_SCHEDULE_ERRORS_FILE") {
        let f = fopen(path, "w")
        let written = f.map { f in report.scheduleErrors.withUnsafeBufferPointer { fwrite($0.baseAddress, 8, $0.count, f) } }
        if f.map({ fclose($0) }) != 0 || written != report.scheduleErrors.count {
            writeStandardErrorLine("ping benchmark: cannot write \(String(cString: path))")
            exit(1)
        }
    }
    var fields = [
        "\"mode\": \"\(mode)\"", "\"targets\": \(plan.targets.count)", "\"batch\": \(plan.batch)", "\"spin_lead_us\": \(plan.spinLead / 1_000)", "\"spin_lead_quantile\": \(report.spinLead.quantile)", "\"sent\": \(report.sent)",
        "\"received\": \(rtts.count)", "\"lost\": \(sink.lost)",
        "\"duplicates\": \(report.statistics.reduce(0) { $0 + $1.duplicates })",
        "\"rtt_us\": {\"min\": \(us(rtts.first ?? 0)), \"p50\": \(us(percentile(rtts, 0.5))), \"p99\": \(us(percentile(rtts, 0.99))), \"max\": \(us(rtts.last ?? 0))}",
        "\"timestamps\": {\"kernel\": \(report.sourceCounts[0]), \"kernel_rx\": \(report.sourceCounts[1]), \"user\": \(report.sourceCounts[2])}",
        "\"wall_ms\": \(Int(wallSeconds * 1000))", "\"cpu_ms\": \(Int(cpu * 1000))",
        "\"spin_lead_learned_us\": {\"last\": \(us(report.spinLead.current)), \"min\": \(us(report.spinLead.smallest)), \"max\": \(us(report.spinLead.largest))}",
    ]
    if !sched.isEmpty {
        fields.append("\"schedule_error_us\": {\"p50\": \(us(percentile(sched, 0.5))), \"p99\": \(us(percentile(sched, 0.99))), \"max\": \(us(sched.last!))}")
        fields.append("\"packets_per_s\": \(Int(Double(report.sent) / wallSeconds))")
    }
    print("{" + fields.joined(separator: ", ") + "}")
    exit(0)
}

func pingJobsBenchmark(_ args: [String]) async -> Never {
    let numbers = args.map { Int($0) ?? 0 }
    guard numbers.count == 4, numbers.allSatisfy({ $0 > 0 }), numbers[0] <= numbers[1] else {
        writeStandardErrorLine("usage: mplane-bench ping jobs JOBS TARGETS INTERVAL_MS SECONDS (JOBS <= TARGETS)")
        exit(2)
    }
    let (jobs, n, intervalMS, seconds) = (numbers[0], numbers[1], numbers[2], numbers[3])
    let net = IPAddress("127.0.0.0/16")!
    let all = (0..<UInt64(n)).map { net.address(at: $0)! }
    let interval = Int64(intervalMS) * 1_000_000
    let cpu0 = cpuSeconds()
    let outcomes = await withTaskGroup(of: (PingReport, SampleSink)?.self) { group in
        for j in 0..<jobs {
            let targets = stride(from: j, to: n, by: jobs).map { all[$0] }
            var plan = PingPlan(family: .v4, source: IPAddress("127.0.0.1"), targets: targets, interval: interval,
                                rounds: Int(Int64(seconds) * 1_000_000_000 / interval))
            plan.socket = .raw
            plan.recordScheduleErrors = true
            group.addTask { try? await PingEngine.run(plan, sink: SampleSink(capacity: targets.count * plan.rounds!)) { false } }
        }
        var out: [(PingReport, SampleSink)] = []
        for await o in group { if let o { out.append(o) } }
        return out
    }
    let cpu = cpuSeconds() - cpu0
    guard outcomes.count == jobs else {
        writeStandardErrorLine("ping jobs: \(jobs - outcomes.count) of \(jobs) jobs failed")
        exit(1)
    }
    let sched = outcomes.flatMap { $0.0.scheduleErrors }.sorted()
    let sent = outcomes.reduce(0) { $0 + $1.0.sent }
    let lost = outcomes.reduce(0) { $0 + $1.1.lost }
    let foreign = outcomes.reduce(0) { $0 + $1.0.foreign + $1.0.stray }
    print("{\"mode\": \"jobs\", \"jobs\": \(jobs), \"targets\": \(n), \"sent\": \(sent), \"lost\": \(lost), \"foreign_or_stray\": \(foreign), "
        + "\"cpu_ms\": \(Int(cpu * 1000)), \"schedule_error_us\": {\"p50\": \(us(percentile(sched, 0.5))), \"p99\": \(us(percentile(sched, 0.99)))}}")
    exit(0)
}

func writeStandardErrorLine(_ s: String) { writeStandardError(s + "\n") }

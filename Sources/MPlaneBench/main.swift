// Benchmarks of the mPlane codec (not timed tests). Run through `make bench`, which also
// measures the Python reference implementation in the same run and writes the ratios.
//
// Usage: mplane-bench FIXTURE_DIR [SECONDS]
import MPlane
import MPlaneIO
import MPlaneScheduler
#if canImport(Glibc)
import Glibc
#endif

func load(_ path: String) -> [UInt8] {
    do { return try readAll(path) } catch { fatalError("\(error)") }
}

/// Operations per second: best of three runs of at least `seconds` each.
func rate(seconds: Double, _ body: () -> Void) -> Double {
    let clock = ContinuousClock()
    var best = 0.0
    for _ in 0..<3 {
        var n = 0
        let start = clock.now
        var elapsed = 0.0
        repeat {
            for _ in 0..<16 { body() }
            n += 16
            let d = clock.now - start
            elapsed = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        } while elapsed < seconds
        best = max(best, Double(n) / elapsed)
    }
    return best
}

let args = CommandLine.arguments
if args.count > 2 && args[1] == "ping" && args[2] == "jobs" { await pingJobsBenchmark(Array(args.dropFirst(3))) }
if args.count > 1 && args[1] == "ping" { pingBenchmark(Array(args.dropFirst(2))) }
if args.count > 1 && args[1] == "capture" { captureBenchmark(Array(args.dropFirst(2))) }
if args.count > 1 && args[1] == "trace" { traceCommand(Array(args.dropFirst(2))) }
if args.count > 1 && args[1] == "flows" { flowsCommand(Array(args.dropFirst(2))) }
let dir = args.count > 1 ? args[1] : "Benchmarks/fixtures"
let seconds = args.count > 2 ? Double(args[2]) ?? 1.0 : 1.0
let decoder = MessageDecoder()
let encoder = MessageEncoder()
// `MPLANE_BENCH_ONLY=capability.parse` (for profiling) runs just that measurement.
let only = getenv("MPLANE_BENCH_ONLY").map { String(cString: $0) }
func wanted(_ what: String) -> Bool { only == nil || only == what }
var results: [String] = []
for (name, file) in [("capability", "capability.json"), ("specification", "specification.json"),
                     ("result", "result-1000.json")] {
    let bytes = load("\(dir)/\(file)")
    let message = try decoder.decode(bytes)
    var sink = 0
    let parse = !wanted("\(name).parse") ? 0 : rate(seconds: seconds) {
        if let m = try? decoder.decode(bytes) { sink &+= m.kind.rawValue.count }
    }
    let unparse = !wanted("\(name).serialise") ? 0 : rate(seconds: seconds) { sink &+= encoder.encode(message).count }
    precondition(sink != 0 || only != nil)
    results.append("\"\(name)\": {\"parse_per_s\": \(Int(parse)), \"unparse_per_s\": \(Int(unparse)), \"bytes\": \(bytes.count)}")
}
// Scheduler: jobs started and completed per second with the loopback service, and rows
// appended per second into a preallocated natural column.
if wanted("scheduler.jobs") {
    let loop = LoopbackService()
    let batch = 2000
    var specs: [Specification] = []
    for i in 0..<batch {
        var s = Specification(capability: loop.capability, when: When(start: .now))
        try s.statement.setParameterValue("test.input", .string("job-\(i)"))
        s.statement.token = "bench-\(i)"
        specs.append(s)
    }
    let clock = ContinuousClock()
    var best = 0.0
    for _ in 0..<3 {
        var limits = SchedulerConfiguration()
        limits.maxJobs = batch
        limits.maxRetainedResults = batch
        let s = Scheduler(services: [loop], clock: SystemClock(), configuration: limits)
        let elapsed = await withTaskGroup(of: Void.self) { group -> Duration in
            group.addTask { await s.run() }
            let start = clock.now
            for spec in specs { _ = await s.submit(spec) }
            for spec in specs { _ = await s.waitForResult(token: spec.token, timeout: .seconds(60)) }
            let d = clock.now - start
            s.shutdown()
            return d
        }
        let secs = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        best = max(best, Double(batch) / secs)
    }
    results.append("\"scheduler\": {\"jobs_per_s\": \(Int(best))}")
}
if wanted("column.append") {
    let element = RegistryStore.shared.core["delay.twoway.icmp.us"]!
    let rows = 1_000_000
    var sink: UInt64 = 0
    let perSecond = rate(seconds: seconds) {
        var column = ResultColumn(element)
        column.reserveCapacity(rows)
        for i in 0..<rows { column.append(natural: UInt64(truncatingIfNeeded: i)) }
        sink &+= UInt64(column.count)
    } * Double(rows)
    precondition(sink > 0)
    results.append("\"column\": {\"natural_rows_per_s\": \(Int(perSecond))}")
}
print("{" + results.joined(separator: ", ") + "}")

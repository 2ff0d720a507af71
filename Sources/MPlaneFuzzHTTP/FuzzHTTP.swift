// libFuzzer entry point for the HTTP request path: each input is read as an HTTP/1.1 request
// (request line, headers, body) and handed, in process, to the component's router over a
// scheduler with the test services, as the server would hand it. `make fuzz-http` builds it
// with -sanitize=fuzzer -DFUZZING; a normal build replays the files named on the command line.
//
// What must hold for every input: the router answers (no crash, no hang), with a status in
// 200...599; an mPlane reply decodes; an error status carries an mPlane exception; the
// scheduler's jobs stay within its limits.
import Dispatch
import MPlane
import MPlaneIO
import MPlaneHTTP
import MPlaneRuntime
import MPlaneScheduler
import Synchronization

let scheduler: Scheduler = {
    var c = SchedulerConfiguration()
    c.maxJobs = 64
    c.maxJobsPerPeer = 16
    c.interruptWait = .zero  // no input waits for a job
    return Scheduler(services: [LoopbackService(), CounterService()], configuration: c)
}()
let router = ComponentRouter(scheduler: scheduler, link: "http://127.0.0.1:1228/", replyWait: .zero)

/// Splits raw bytes into a request as the HTTP codec would hand it over (leniently: the codec's
/// own parsing is NIO's, fuzzed upstream; this exercises what comes after it).
func request(_ b: UnsafeRawBufferPointer) -> HTTPRequestData {
    let bytes = Array(b)
    var lines: [[UInt8]] = []
    var i = 0, start = 0
    var bodyStart = bytes.count
    while i < bytes.count {
        if bytes[i] == 10 {
            var line = Array(bytes[start..<i])
            if line.last == 13 { line.removeLast() }
            if line.isEmpty && !lines.isEmpty { bodyStart = i + 1; break }
            lines.append(line)
            start = i + 1
        }
        i += 1
    }
    if bodyStart == bytes.count && start < bytes.count && lines.isEmpty { lines.append(Array(bytes[start...])) }
    let first = lines.first.map { String(decoding: $0, as: UTF8.self) } ?? ""
    let parts = first.split(separator: " ", maxSplits: 2)
    let method = parts.count > 0 ? String(parts[0]) : "GET"
    let path = parts.count > 1 ? String(parts[1]) : "/"
    var headers: [(String, String)] = []
    for line in lines.dropFirst() {
        let text = String(decoding: line, as: UTF8.self)
        guard let colon = text.firstIndex(of: ":") else { continue }
        headers.append((String(text[..<colon]), String(text[text.index(after: colon)...]).trimmingPrefix(" ").description))
    }
    let body = bodyStart < bytes.count ? Array(bytes[bodyStart...]) : []
    return HTTPRequestData(method: method, path: path, headers: headers, body: body, peer: "fuzz")
}

/// Routes `bytes` and checks the reply.
func exercise(_ bytes: UnsafeRawBufferPointer) {
    let req = request(bytes)
    let done = DispatchSemaphore(value: 0)
    let reply = Mutex<HTTPReply?>(nil)
    Task {
        let r = await router.handle(req)
        reply.withLock { $0 = r }
        done.signal()
    }
    done.wait()
    guard let r = reply.withLock({ $0 }) else { fatalError("no reply") }
    precondition((200...599).contains(r.status), "status \(r.status)")
    if r.contentType == ComponentRouter.mplaneType {
        guard let m = try? MessageDecoder().decode(r.body) else {
            fatalError("reply does not decode: \(String(decoding: r.body.prefix(300), as: UTF8.self))")
        }
        if r.status >= 400 {
            guard case .exception = m else { fatalError("status \(r.status) without an exception") }
        }
    } else {
        precondition(r.status == 200 && r.contentType == "text/html", "a non-mPlane reply: \(r.status) \(r.contentType)")
    }
    precondition(scheduler.usage.jobs <= 64, "jobs past the limit: \(scheduler.usage.jobs)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    exercise(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if canImport(Glibc)
import Glibc
#endif

/// The scheduler runs its jobs in the background, as in mpcom.
let runner: Void = { Task.detached { await scheduler.run() }; return () }()

#if !FUZZING
@main
struct Replay {
    static func main() {
        _ = runner
        for path in CommandLine.arguments.dropFirst() {
            let bytes: [UInt8]
            do { bytes = try readAll(path) } catch { print("\(error)"); exit(2) }
            bytes.withUnsafeBytes { exercise($0) }
            print("\(path): ok")
        }
    }
}
#endif

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

@_cdecl("mplane_fuzz_http_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    _ = runner
    var count = argc
    var vector = argv
    return LLVMFuzzerRunDriver(&count, &vector) { data, size in
        guard let data else { return 0 }
        return fuzzOne(data, size)
    }
}
#endif

#if canImport(Glibc)
import Glibc
#endif
@testable import MPlane
import MPlaneIO
import MPlaneScheduler
@testable import MPlaneRuntime
@testable import MPlaneHTTP
@testable import MPlaneClient
import MPlaneTestSupport
import Synchronization
import Testing

/// A plain blocking TCP connection to 127.0.0.1, for requests no HTTP client would send.
final class RawConnection {
    let fd: Int32

    init?(port: Int) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(port).bigEndian)
        a.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard r == 0 else { close(fd); return nil }
    }

    deinit { close(fd) }

    @discardableResult
    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// Everything the server sends until it closes, or `seconds` pass (bounded).
    func readAll(seconds: Int) -> (text: String, closed: Bool) {
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = time(nil) + seconds
        while time(nil) <= deadline {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return (String(decoding: out, as: UTF8.self), true) }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
                return (String(decoding: out, as: UTF8.self), true)  // reset
            }
            out += buffer[0..<n]
        }
        return (String(decoding: out, as: UTF8.self), false)
    }
}

/// Runs a blocking body on a thread of its own (raw sockets block).
func blocking<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { c in
        let t = Thread { c.resume(returning: body()) }
        t.start()
    }
}

// The deadlines are seconds, and the suite runs beside others that may keep the cooperative
// pool busy: the waits for the server's answers are generous (bounded at 20 s).
@Suite("HTTP server limits (hardening row 5)", .timeLimit(.minutes(1)))
struct HTTPLimitTests {
    var limits: HTTPServerLimits {
        var l = HTTPServerLimits()
        l.requestTimeout = .seconds(2)
        l.idleTimeout = .seconds(30)
        l.maxBodyBytes = 4096
        l.maxConnectionsPerPeer = 4
        return l
    }

    @Test("a head announcing a body that never comes gets 408 and is closed")
    func missingBody() async throws {
        try await withComponent(limits: limits) { url, _ in
            let (text, closed) = await blocking {
                guard let c = RawConnection(port: url.port) else { return ("no connection", false) }
                c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-mplane+json\r\nContent-Length: 100\r\n\r\n")
                return c.readAll(seconds: 20)
            }
            #expect(text.hasPrefix("HTTP/1.1 408"), "\(text)")
            #expect(text.contains("request-timeout"))
            #expect(closed)
        }
    }

    @Test("headers sent a byte at a time get 408 at the deadline, however steady the drip")
    func slowHeaders() async throws {
        try await withComponent(limits: limits) { url, _ in
            let (text, closed) = await blocking {
                guard let c = RawConnection(port: url.port) else { return ("no connection", false) }
                for ch in "GET /capability HTTP/1.1\r\nHost: slow\r\nX-Slow: " {
                    guard c.send(String(ch)) else { break }
                    usleep(100_000)
                }
                return c.readAll(seconds: 20)
            }
            #expect(text.hasPrefix("HTTP/1.1 408"), "\(text)")
            #expect(closed)
        }
    }

    @Test("a body announced too large is refused with 413 before any of it is read")
    func announcedTooLarge() async throws {
        try await withComponent(limits: limits) { url, _ in
            let (text, closed) = await blocking {
                guard let c = RawConnection(port: url.port) else { return ("no connection", false) }
                c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-mplane+json\r\nContent-Length: 2000000000\r\n\r\n")
                return c.readAll(seconds: 20)
            }
            #expect(text.hasPrefix("HTTP/1.1 413"), "\(text)")
            #expect(text.contains("max-body-bytes"))
            #expect(closed)
        }
    }

    @Test("a chunked body that grows past the limit is refused with 413")
    func chunkedTooLarge() async throws {
        try await withComponent(limits: limits) { url, _ in
            let (text, _) = await blocking {
                guard let c = RawConnection(port: url.port) else { return ("no connection", false) }
                c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-mplane+json\r\nTransfer-Encoding: chunked\r\n\r\n")
                let chunk = String(repeating: "a", count: 1000)
                for _ in 0..<6 { c.send("3e8\r\n\(chunk)\r\n") }
                return c.readAll(seconds: 20)
            }
            #expect(text.hasPrefix("HTTP/1.1 413"), "\(text)")
        }
    }

    @Test("connections from one address past the limit get 503; the others are still served")
    func connectionsPerPeer() async throws {
        try await withComponent(limits: limits) { url, _ in
            let held = (0..<4).compactMap { _ in RawConnection(port: url.port) }
            #expect(held.count == 4)
            try await Task.sleep(for: .milliseconds(200))
            let (text, closed) = await blocking {
                guard let c = RawConnection(port: url.port) else { return ("no connection", false) }
                return c.readAll(seconds: 20)
            }
            #expect(text.hasPrefix("HTTP/1.1 503"), "\(text)")
            #expect(text.contains("max-connections-per-client"))
            #expect(closed)
            // Once one of them goes, a request gets through.
            _ = held.first.map { shutdown($0.fd, Int32(SHUT_RDWR)) }
            // The server counts it gone once it has seen the close: within 5 s even under load.
            var status = 0
            for _ in 0..<50 where status != 200 {
                try await Task.sleep(for: .milliseconds(100))
                status = (try? await SimpleHTTPClient.request("GET", url.with(path: "/capability"), accept: ComponentRouter.mplaneType))?.status ?? 0
            }
            #expect(status == 200)
        }
    }

    @Test("request bodies being read are bounded across connections: past max-buffered-bytes, 503")
    func bufferedBytes() async throws {
        var l = limits
        l.maxBufferedBytes = 5000
        try await withComponent(limits: l) { url, _ in
            let first = RawConnection(port: url.port)
            let head = "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-mplane+json\r\nContent-Length: 4000\r\n\r\n"
            first?.send(head + String(repeating: "a", count: 3000))
            try await Task.sleep(for: .milliseconds(300))
            let (text, _) = await blocking {
                guard let c = RawConnection(port: url.port) else { return ("no connection", false) }
                c.send(head + String(repeating: "b", count: 3000))
                return c.readAll(seconds: 20)
            }
            #expect(text.hasPrefix("HTTP/1.1 503"), "\(text)")
            #expect(text.contains("max-buffered-bytes"))
            _ = first
        }
    }

    @Test("a handler's status that is no final status goes out as 500; a body past the per-client buffer gets 413, not a 503 to retry")
    func statusesAndPerClientBodies() async throws {
        var limits = HTTPServerLimits()
        limits.maxBodyBytes = 1 << 20
        limits.maxBufferedBytesPerPeer = 64 << 10
        let server = HTTPComponentServer(host: "127.0.0.1", port: 0, limits: limits) { request in
            HTTPReply(status: request.path == "/negative" ? -1 : 204, contentType: "text/plain", body: [])
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let port = await server.boundPort()
            for path in ["/negative", "/nocontent"] {
                let r = try await SimpleHTTPClient.request("GET", HTTPURL(host: "127.0.0.1", port: port, path: path))
                #expect(r.status == 500, "\(path): \(r.status)")
            }
            let big = try await SimpleHTTPClient.request("POST", HTTPURL(host: "127.0.0.1", port: port, path: "/"), contentType: "text/plain",
                                                         body: [UInt8](repeating: 65, count: 200 << 10))
            #expect(big.status == 413)
            #expect(try await SimpleHTTPClient.request("GET", HTTPURL(host: "127.0.0.1", port: port, path: "/negative")).status == 500, "still serving")
            group.cancelAll()
        }
    }

    @Test("a partial request pipelined behind a whole one still gets 408 (review finding)")
    func pipelinedPartial() async throws {
        try await withComponent(limits: limits) { url, _ in
            let (text, closed) = await blocking {
                guard let c = RawConnection(port: url.port) else { return ("no connection", false) }
                c.send("GET /capability HTTP/1.1\r\nHost: x\r\nAccept: application/x-mplane+json\r\n\r\n"
                       + "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-mplane+json\r\nContent-Length: 100\r\n\r\n")
                return c.readAll(seconds: 20)
            }
            #expect(text.hasPrefix("HTTP/1.1 200"), "\(text.prefix(200))")
            #expect(text.contains("HTTP/1.1 408"), "\(text.suffix(300))")
            #expect(closed)
        }
    }

    @Test("connections that come and go give their per-client slot back (review finding: a leak locked the address out)")
    func connectionChurn() async throws {
        try await withComponent(limits: limits) { url, _ in
            await blocking {
                for _ in 0..<200 {
                    guard let c = RawConnection(port: url.port) else { continue }
                    shutdown(c.fd, Int32(SHUT_WR))
                    _ = c.readAll(seconds: 1)
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            let reply = try await SimpleHTTPClient.request("GET", url.with(path: "/capability"), accept: ComponentRouter.mplaneType)
            #expect(reply.status == 200, "\(String(decoding: reply.body.prefix(200), as: UTF8.self))")
        }
    }

    @Test("a long response with Connection: close arrives whole (review finding: it was cut at the close)")
    func closeAfterLongResponse() async throws {
        let big = String(repeating: "x", count: 3_000_000)
        var l = limits
        l.maxBodyBytes = 4 << 20
        l.maxBufferedBytes = 8 << 20
        l.maxBufferedBytesPerPeer = 8 << 20
        try await withComponent(limits: l) { url, _ in
            var s = try loopbackSpec(big)
            s.statement.token = "long-close"
            let body = MessageEncoder().encodeString(.specification(s))
            let (text, closed) = await blocking {
                guard let c = RawConnection(port: url.port) else { return ("no connection", false) }
                c.send("POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-mplane+json\r\n"
                       + "Content-Length: \(body.utf8.count)\r\n\r\n" + body)
                return c.readAll(seconds: 20)
            }
            #expect(closed)
            let bytes = Array(text.utf8)
            let separator = Array("\r\n\r\n".utf8)
            var end = -1
            for i in 0..<(bytes.count - 3) where Array(bytes[i..<(i + 4)]) == separator { end = i; break }
            guard end >= 0 else { Issue.record("no head: \(text.prefix(100))"); return }
            var length = -1
            for line in String(decoding: bytes[..<end], as: UTF8.self).split(separator: "\r\n") {
                let parts = line.split(separator: ":", maxSplits: 1)
                if parts.count == 2 && parts[0].lowercased() == "content-length" { length = Int(parts[1].trimmingSpaces()) ?? -1 }
            }
            let received = bytes.count - end - 4
            #expect(length > 3_000_000 && received == length, "body \(received) of \(length)")
        }
    }

    @Test("a request that arrives in time is unaffected by the deadline; keep-alive still works")
    func normalRequests() async throws {
        try await withComponent(limits: limits) { url, _ in
            let text = await blocking { () -> String in
                guard let c = RawConnection(port: url.port) else { return "no connection" }
                let get = "GET /capability HTTP/1.1\r\nHost: x\r\nAccept: application/x-mplane+json\r\n\r\n"
                c.send(get)
                usleep(2_500_000)  // idle between requests: past request-timeout, within idle-timeout
                c.send(get)
                return c.readAll(seconds: 2).text
            }
            #expect(text.components(separatedBy: "HTTP/1.1 200").count == 3, "\(text.prefix(300))")
        }
    }
}

extension String {
    func components(separatedBy separator: String) -> [Substring] {
        split(separator: separator, omittingEmptySubsequences: false)
    }
}

/// Shared counters and records of the test supervisors (classes: closures capture them).
final class Count: Sendable {
    private let v = Atomic<Int>(0)
    @discardableResult func add(_ n: Int, ordering: AtomicUpdateOrdering = .relaxed) -> (oldValue: Int, newValue: Int) { v.add(n, ordering: .relaxed) }
    func load(ordering: AtomicLoadOrdering = .relaxed) -> Int { v.load(ordering: .relaxed) }
    func store(_ n: Int, ordering: AtomicStoreOrdering = .relaxed) { v.store(n, ordering: .relaxed) }
}

final class Posted: Sendable {
    private let v = Mutex<[(String, Message)]>([])
    func withLock<R>(_ body: (inout [(String, Message)]) -> R) -> R { v.withLock { body(&$0) } }
}

@Suite("Component-initiated hardening (rows 6, 7, 8)", .timeLimit(.minutes(1)), .serialized)
struct AgentHardeningTests {
    /// A supervisor that hands out `specifications` on the first poll and records what is posted where.
    func supervisor(specifications: [Message], callbackNow: Bool = false, polls: Count, registrations: Count,
                    answer428: Bool = false, posted: Posted) -> HTTPComponentServer {
        HTTPComponentServer(host: "127.0.0.1", port: 0) { request in
            switch (request.method, request.path) {
            case ("POST", "/register/capability"):
                registrations.add(1, ordering: .relaxed)
                return registeredReply
            case ("GET", "/show/specification"):
                let n = polls.add(1, ordering: .relaxed).newValue
                if answer428 { return HTTPReply(status: 428, contentType: "text/plain", body: []) }
                var contents: [Message] = n == 1 ? specifications : []
                if callbackNow {
                    let cb = Specification(capability: Capability(verb: .callback, label: "callback", when: .nowToFuture),
                                           when: When(start: .now, end: .future))
                    contents.append(.specification(cb))
                }
                return HTTPReply(status: 200, contentType: ComponentRouter.mplaneType,
                                 body: MessageEncoder().encode(.envelope(Envelope(contents: contents))))
            default:
                if request.method == "POST", let m = try? MessageDecoder().decode(request.body) {
                    posted.withLock { $0.append((request.path, m)) }
                    return HTTPReply(status: 200, contentType: "text/plain", body: [])
                }
                return HTTPReply(status: 404, contentType: "text/plain", body: [])
            }
        }
    }

    func spec(_ input: String, link: String?) throws -> Message {
        var s = try loopbackSpec(input)
        s.statement.link = link
        s.statement.token = "tok-\(input)"
        return .specification(s)
    }

    func runAgent(_ sup: HTTPComponentServer, configure: (inout ComponentConfiguration) -> Void = { _ in },
                  until done: @escaping @Sendable () -> Bool, seconds: Int = 15) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await sup.run() }
            let port = await sup.boundPort()
            var config = try agentConfiguration(port: port, pollInterval: .milliseconds(200))
            configure(&config)
            let scheduler = Scheduler(services: [LoopbackService()])
            let agent = ComponentInitiatedAgent(scheduler: scheduler, configuration: config)
            group.addTask { await scheduler.run() }
            group.addTask { try await agent.run() }
            for _ in 0..<(seconds * 10) {
                if done() { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            group.cancelAll()
            scheduler.shutdown()
        }
    }

    @Test("results go to the supervisor's result path: for its own base-URL link, and for a foreign link not allowed (rows 6, 13)")
    func links() async throws {
        let posted = Posted()
        let polls = Count(), registrations = Count()
        // The supervisor's port is known once it is bound: its specifications are made then.
        let portBox = Count()
        let real = supervisorWithLinks(portBox: portBox, polls: polls, registrations: registrations, posted: posted)
        try await runAgent(real, until: { posted.withLock { $0.count } >= 4 })
        let got = posted.withLock { $0 }
        #expect(got.count == 4, "\(got.map(\.0))")
        #expect(got.allSatisfy { $0.0 == "/register/result" }, "\(got.map(\.0))")
        let kinds = got.map(\.1.kind)
        #expect(kinds.filter { $0 == .result }.count == 2 && kinds.filter { $0 == .receipt }.count == 2)
    }

    /// As `supervisor`, but its specifications carry links that name its own base URL and a
    /// foreign origin (port 9 on 127.0.0.2, where nothing must ever be sent).
    func supervisorWithLinks(portBox: Count, polls: Count, registrations: Count,
                             posted: Posted) -> HTTPComponentServer {
        HTTPComponentServer(host: "127.0.0.1", port: 0, onBound: { link in
            portBox.store(HTTPURL(link)?.port ?? 0, ordering: .relaxed)
        }) { request in
            switch (request.method, request.path) {
            case ("POST", "/register/capability"):
                return registeredReply
            case ("GET", "/show/specification"):
                let n = polls.add(1, ordering: .relaxed).newValue
                guard n == 1 else { return HTTPReply(status: 200, contentType: ComponentRouter.mplaneType, body: MessageEncoder().encode(.envelope(Envelope(contents: [])))) }
                let port = portBox.load(ordering: .relaxed)
                let own = try? self.spec("own", link: "http://127.0.0.1:\(port)/")
                let foreign = try? self.spec("foreign", link: "http://127.0.0.2:9/steal")
                return HTTPReply(status: 200, contentType: ComponentRouter.mplaneType,
                                 body: MessageEncoder().encode(.envelope(Envelope(contents: [own!, foreign!]))))
            default:
                if request.method == "POST", let m = try? MessageDecoder().decode(request.body) {
                    posted.withLock { $0.append((request.path, m)) }
                    return HTTPReply(status: 200, contentType: "text/plain", body: [])
                }
                return HTTPReply(status: 404, contentType: "text/plain", body: [])
            }
        }
    }

    @Test("an allowed link that never answers holds back only its own results (row 7)")
    func stuckLink() async throws {
        // Accepts connections and never answers.
        let stuck = HTTPComponentServer(host: "127.0.0.1", port: 0) { _ in
            try? await Task.sleep(for: .seconds(60))
            return HTTPReply(status: 200, contentType: "text/plain", body: [])
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await stuck.run() }
            let stuckPort = await stuck.boundPort()
            let posted = Posted()
            let polls = Count(), registrations = Count()
            let sup = supervisor(specifications: [try spec("stuck", link: "http://127.0.0.1:\(stuckPort)/r"),
                                                  try spec("one", link: nil), try spec("two", link: nil)],
                                 polls: polls, registrations: registrations, posted: posted)
            let clock = ContinuousClock()
            let start = clock.now
            try await runAgent(sup, configure: { $0.resultLinkAllow = ["http://127.0.0.1:\(stuckPort)"] },
                               until: { posted.withLock { $0.filter { $0.1.kind == .result }.count } >= 2 })
            let elapsed = clock.now - start
            let results = posted.withLock { $0.filter { $0.1.kind == .result }.map(\.1.token) }
            #expect(Set(results) == ["tok-one", "tok-two"], "\(results)")
            #expect(elapsed < .seconds(8), "the others were not held behind the stuck link's 10 s timeout: \(elapsed)")
            group.cancelAll()
        }
    }
    // Row 8 (min-poll-interval under callbacks of 'now' and under 428) is checked exactly, on
    // the state machine: AgentMachineTests.callbackControl and .reregister.
}

@Suite("Queue hardening (row 9, result bytes)", .timeLimit(.minutes(1)))
struct QueueHardeningTests {
    @Test("a file named past the id range in the queue directory is ignored, not a crash at start")
    func hugeFileName() async throws {
        try await withTemporaryDirectory { dir in
            _ = try DirectoryJournal(directory: dir)
            #expect(writeFile(dir + "/18446744073709551615.mplane", Array("http://127.0.0.1:1/r\n{}".utf8)))
            #expect(writeFile(dir + "/99999999999999999999999.mplane", Array("x".utf8)))
            let journal = try DirectoryJournal(directory: dir)
            #expect(journal.load().isEmpty)
            let id = journal.append(Outgoing(message: try receiptMessage("a"), url: HTTPURL("http://127.0.0.1:1/r")!))
            #expect(id == 1)
        }
    }

    @Test("the outgoing queue is bounded by bytes as well as by count")
    func queueBytes() async throws {
        let queue = MemoryOutgoingQueue(limit: 1000, byteLimit: 1 << 20)
        let big = String(repeating: "x", count: 300_000)
        for i in 0..<10 { queue.push(Outgoing(message: try receiptMessage(big + "\(i)"), url: HTTPURL("http://127.0.0.1:1/r")!)) }
        #expect(queue.bytes <= 1 << 20)
        #expect(queue.count == 3)
        #expect(queue.dropped == 7)
    }
}

@Suite("Router echoes of hostile text (found by the HTTP fuzzer)")
struct RouterEchoTests {
    @Test("a path, method or content type with NUL is quoted safely: the exception still decodes")
    func nulInPath() async throws {
        let router = ComponentRouter(scheduler: Scheduler(services: [LoopbackService()]), link: nil, replyWait: .zero)
        for request in [HTTPRequestData(method: "GET", path: "/capabilit\u{0}\u{0}y"),
                        HTTPRequestData(method: "PU\u{0}T", path: "/"),
                        HTTPRequestData(method: "POST", path: "/", headers: [("Content-Type", "text/\u{0}plain")]),
                        HTTPRequestData(method: "GET", path: "/capability/" + String(repeating: "\u{1}", count: 5000))] {
            let reply = await router.handle(request)
            #expect(reply.status >= 400)
            guard case .exception(let e) = try MessageDecoder().decode(reply.body) else {
                Issue.record("not an exception")
                continue
            }
            #expect(!e.message.unicodeScalars.contains { $0.value < 0x20 })
            #expect(e.message.count < 400 && (e.token?.count ?? 0) < 400)
        }
    }
}

@Suite("Limit settings")
struct LimitSettingsTests {
    @Test("every limit is a [component] key, read into the running configuration")
    func keys() throws {
        let c = try ComponentConfiguration(ini: """
        [component]
        request-timeout = 3
        max-connections = 10
        max-connections-per-client = 2
        max-buffered-bytes = 65536
        max-jobs = 9
        max-jobs-per-client = 4
        max-thread-jobs = 3
        max-packet-rate = 100
        max-packet-rate-per-destination = 5
        allow-destinations = 192.0.2.0/24, 2001:db8::/32
        deny-destinations = 192.0.2.128/25
        max-retained-results = 50
        retained-result-bytes = 1048576
        max-result-rows = 1000
        min-poll-interval = 2
        result-link-allow = http://collector.example.net:8080
        result-queue-bytes = 1048576
        """)
        #expect(c.http.requestTimeout == .seconds(3) && c.http.maxConnections == 10 && c.http.maxConnectionsPerPeer == 2)
        #expect(c.http.maxBufferedBytes == 65536)
        let s = c.scheduler
        #expect(s.maxJobs == 9 && s.maxJobsPerPeer == 4 && s.maxThreadJobs == 3)
        #expect(s.maxPacketsPerSecond == 100 && s.maxPacketsPerSecondPerDestination == 5)
        #expect(s.destinations.allow == [IPAddress("192.0.2.0/24")!, IPAddress("2001:db8::/32")!])
        #expect(s.destinations.deny == [IPAddress("192.0.2.128/25")!])
        #expect(s.maxRetainedResults == 50 && s.maxRetainedBytes == 1 << 20 && s.maxResultRows == 1000)
        #expect(c.minPollInterval == .seconds(2) && c.resultLinkAllow == ["http://collector.example.net:8080"])
        #expect(c.resultQueueBytes == 1 << 20)
    }

    @Test("a bad limit stops the start with the key named", arguments: [
        ("allow-destinations = 10.0.0.0/33", "allow-destinations"),
        ("deny-destinations = example.net", "deny-destinations"),
        ("max-jobs = 0", "max-jobs"),
        ("result-link-allow = ftp://x", "result-link-allow"),
    ])
    func bad(line: String, key: String) {
        do {
            _ = try ComponentConfiguration(ini: "[component]\n\(line)\n")
            Issue.record("accepted \(line)")
        } catch {
            #expect("\(error)".contains(key), "\(error)")
        }
    }
}

import MPlane
import MPlaneHTTP
import MPlaneIO
import MPlaneRuntime
import MPlaneScheduler
import MPlaneTestSupport
import Synchronization
import Testing

/// One recorded exchange of `Tests/Fixtures/wire`.
struct Recording {
    let method: String
    let path: String
    let requestBody: [UInt8]
    let status: Int
    let responseBody: [UInt8]

    init(_ name: String) throws {
        let json = try JSON(parsing: try #require(readFile(repoRoot + "/Tests/Fixtures/wire/\(name).json"), "fixture \(name)"))
        let request = try #require(json["request"]), response = try #require(json["response"])
        method = try #require(request["method"]?.stringValue)
        path = try #require(request["path"]?.stringValue)
        requestBody = Array((request["body_raw"]?.stringValue ?? "").utf8)
        guard case .number(let s)? = response["status"] else { throw HTTPClientError(message: "\(name): no status") }
        status = Int(s)
        responseBody = Array((response["body_raw"]?.stringValue ?? "").utf8)
    }

    var requestMessage: Message { get throws { try MessageDecoder().decode(requestBody) } }
}

let t0 = Timestamp(year: 2026, month: 12, day: 1)
let supervisorResults = HTTPURL(host: "127.0.0.1", port: 18389, path: "/register/result")
let timing = AgentMachine.Timing(pollInterval: .seconds(5), minPollInterval: .seconds(1), backoffMax: .seconds(30))

func envelopeBody(_ messages: [Message]) -> [UInt8] { MessageEncoder().encode(.envelope(Envelope(contents: messages))) }

func callback(_ when: String) throws -> Message {
    .specification(Specification(capability: Capability(verb: .callback, label: "callback", when: .nowToFuture),
                                 when: try When(parsing: when)))
}

/// The microseconds from `t` to the time a `.sleep` action waits until.
func wait(_ action: AgentMachine.Action, from t: Timestamp) -> Int64? {
    if case .sleep(let until) = action { return until.microseconds - t.microseconds }
    return nil
}

@Suite("The agent's state machine: recorded and scripted exchanges, no sockets, no sleeping")
struct AgentMachineTests {
    @Test("the recorded component-initiated exchange (cmp-01 to cmp-08) replays through the machine")
    func replay() throws {
        var m = AgentMachine(timing: timing, resultURL: supervisorResults, seed: 1)
        var order = DeliveryOrder(resultURL: supervisorResults)
        var now = t0

        let register = try Recording("cmp-01-post-register-capability")
        #expect(m.start() == .register)
        #expect(register.method == "POST" && register.path == "/" + ComponentConfiguration().registrationPath)
        #expect(m.registration(.status(register.status), now: now) == .poll)

        let empty = try Recording("cmp-02-get-specification-empty")
        #expect(empty.method == "GET" && empty.path == "/" + ComponentConfiguration().specificationPath)
        var (work, next) = m.polled(.status(empty.status), body: empty.responseBody, now: now)
        #expect(work.isEmpty)
        let interval = try #require(wait(next, from: now))
        #expect(interval >= 5_000_000 && interval <= 5_500_000, "poll interval with ≤ 10 % jitter: \(interval) µs")

        now = now.adding(microseconds: interval)
        #expect(m.woke(now: now) == .poll)
        let spec = try Recording("cmp-03-get-specification-spec")
        (work, next) = m.polled(.status(spec.status), body: spec.responseBody, now: now)
        // Its link is the supervisor's base URL: the result goes to the result path.
        guard case .submit(let s, let url)? = work.first, work.count == 1 else {
            Issue.record("one specification expected: \(work)")
            return
        }
        #expect(s.token == "b9da0b888d8d2b86f0a19cdf680c9bd6" && url == supervisorResults)

        // The receipt (cmp-04) leaves before the result (cmp-05), even when the job ends first.
        let receipt = try Recording("cmp-04-post-result-receipt"), result = try Recording("cmp-05-post-result-result")
        order.expect(token: s.token, url: url)
        #expect(order.finished(token: s.token, message: try result.requestMessage).isEmpty, "held until the receipt is queued")
        let out = order.submitted(token: s.token, reply: try receipt.requestMessage)
        #expect(out.map(\.message.kind) == [.receipt, .result])
        #expect(out.map(\.url.path) == [receipt.path, result.path])
        #expect(order.pending == 0)
        for r in [receipt, result] { #expect(DeliveryVerdict(.status(r.status)) == .delivered) }

        now = now.adding(microseconds: try #require(wait(next, from: now)))
        #expect(m.woke(now: now) == .poll)
        let interrupt = try Recording("cmp-06-get-specification-interrupt")
        (work, _) = m.polled(.status(interrupt.status), body: interrupt.responseBody, now: now)
        #expect(work == [.interrupt(token: "2f8024d4f8fa71853161d05362245fe7")])
        for name in ["cmp-07-post-result-receipt-after-interrupt", "cmp-08-post-result-interrupted-result"] {
            let r = try Recording(name)
            #expect(r.path == supervisorResults.path && DeliveryVerdict(.status(r.status)) == .delivered, "\(name)")
        }
        #expect(m.failures == 0 && m.takeNotes().isEmpty)
    }

    @Test("callback control: the next poll at the callback's start, never sooner than min-poll-interval after the last")
    func callbackControl() throws {
        var m = AgentMachine(timing: timing, resultURL: supervisorResults, seed: 2)
        _ = m.registration(.status(200), now: t0)
        // The RI's listener nests the callback with the work in an envelope; the callback goes last.
        let later = "2026-12-01 00:00:03 ... 2026-12-01 00:00:04"
        let nested = envelopeBody([.envelope(Envelope(contents: [.specification(try loopbackSpec("x")), try callback(later)]))])
        var (work, next) = m.polled(.status(200), body: nested, now: t0)
        #expect(work.count == 1)
        #expect(next == .sleep(until: t0.adding(microseconds: 3_000_000)))

        // A callback of "now + 2s" (the form the RI's component reads, by its end) comes back then.
        #expect(m.woke(now: t0.adding(microseconds: 3_000_000)) == .poll)
        (work, next) = m.polled(.status(200), body: envelopeBody([try callback("now + 2s")]), now: t0.adding(microseconds: 3_000_000))
        #expect(next == .sleep(until: t0.adding(microseconds: 5_000_000)))

        // A callback of "now" on every poll: ten polls take at least ten min-poll-intervals.
        var now = t0.adding(microseconds: 5_000_000)
        let start = now
        for _ in 0..<10 {
            #expect(m.woke(now: now) == .poll)
            (work, next) = m.polled(.status(200), body: envelopeBody([try callback("now")]), now: now.adding(microseconds: 2_000))
            let until = try #require(wait(next, from: now))
            #expect(until == 1_000_000, "the floor counts from the poll's start")
            now = now.adding(microseconds: until)
        }
        #expect(now.microseconds - start.microseconds == 10_000_000)
    }

    @Test("a 428 re-registers after min-poll-interval, never faster")
    func reregister() throws {
        var m = AgentMachine(timing: timing, resultURL: supervisorResults, seed: 3)
        var now = t0
        var action = m.registration(.status(200), now: now)
        var registrations = 1
        for _ in 0..<20 {
            switch action {
            case .register:
                registrations += 1
                action = m.registration(.status(200), now: now)
            case .poll:
                action = m.polled(.status(428), body: [], now: now).next
            case .sleep(let until):
                #expect(until.microseconds - now.microseconds >= 1_000_000)
                now = until
                action = m.woke(now: now)
            }
        }
        let seconds = Double(now.microseconds - t0.microseconds) / 1e6
        #expect(registrations >= 5 && Double(registrations - 1) <= seconds, "\(registrations) registrations in \(seconds) s")
        #expect(m.takeNotes().contains { $0.kind == "428" })
    }

    @Test("failures back off exponentially from 1 s with ≤ 25 % jitter, capped at backoff-max; an answer resets it")
    func backoff() throws {
        var m = AgentMachine(timing: timing, resultURL: supervisorResults, seed: 4)
        var now = t0
        // An unreachable supervisor at registration, then 5xx on polls.
        var waits: [Int64] = []
        var action = m.start()
        for step in 0..<8 {
            if case .register = action {
                action = step < 3 ? m.registration(.unreachable("connection refused"), now: now) : m.registration(.status(200), now: now)
            }
            if case .poll = action { action = m.polled(.status(503), body: [], now: now).next }
            let w = try #require(wait(action, from: now))
            waits.append(w)
            now = now.adding(microseconds: w)
            action = m.woke(now: now)
        }
        let bases: [Int64] = [1, 2, 4, 1, 2, 4, 8, 16].map { $0 * 1_000_000 }
        for (w, base) in zip(waits, bases) { #expect(w >= base && w <= base + base / 4, "\(waits)") }
        #expect(m.failures == 5)
        for _ in 0..<10 { _ = m.polled(.status(500), body: [], now: now) }
        let capped = m.backoff(m.failures)
        #expect(capped >= 30_000_000 && capped <= 37_500_000, "capped at backoff-max: \(capped)")
        #expect(m.woke(now: now) == .poll)
        _ = m.polled(.status(200), body: envelopeBody([]), now: now)
        #expect(m.failures == 0)
    }

    @Test("a link to another origin gets the result only when result-link-allow names it")
    func links() throws {
        var m = AgentMachine(timing: timing, resultURL: supervisorResults, resultLinkAllow: ["http://127.0.0.1:7000"], seed: 5)
        #expect(m.resultTarget(link: nil) == supervisorResults)
        #expect(m.resultTarget(link: "http://127.0.0.1:18389/") == supervisorResults)
        #expect(m.resultTarget(link: "http://127.0.0.1:18389/elsewhere") == supervisorResults)
        #expect(m.resultTarget(link: "http://127.0.0.1:7000/collect") == HTTPURL(host: "127.0.0.1", port: 7000, path: "/collect"))
        #expect(m.resultTarget(link: "http://127.0.0.2:9/steal") == supervisorResults)
        #expect(m.resultTarget(link: "gopher://x") == supervisorResults)
        #expect(m.takeNotes().map(\.kind) == ["link", "link"])
    }

    @Test("changed capabilities are registered again before the next poll; an invalid poll answer is logged, not fatal")
    func changesAndNonsense() throws {
        var m = AgentMachine(timing: timing, resultURL: supervisorResults, seed: 6)
        _ = m.registration(.status(200), now: t0)
        let (work, next) = m.polled(.status(200), body: Array("{\"nonsense\": 1}".utf8), now: t0)
        #expect(work.isEmpty && wait(next, from: t0) != nil && m.failures == 0)
        #expect(m.takeNotes().map(\.kind) == ["invalid"])
        m.capabilitiesChanged()
        #expect(m.woke(now: t0) == .register)
    }

    @Test("a callback years ahead (a hostile or broken supervisor) makes the probe wait an hour at most")
    func farCallback() throws {
        var m = AgentMachine(timing: timing, resultURL: supervisorResults, seed: 9)
        _ = m.registration(.status(200), now: t0)
        let (_, next) = m.polled(.status(200), body: envelopeBody([try callback("2099-01-01 00:00:00 ... 2099-01-01 00:00:01")]), now: t0)
        #expect(next == .sleep(until: t0.adding(microseconds: AgentMachine.maxCallbackWait)))
    }

    @Test("a specification handed out again (the supervisor saw no receipt in time) is not run twice")
    func duplicates() throws {
        var m = AgentMachine(timing: timing, resultURL: supervisorResults, seed: 8)
        _ = m.registration(.status(200), now: t0)
        let spec = try loopbackSpec("once")
        let body = envelopeBody([.specification(spec)])
        #expect(m.polled(.status(200), body: body, now: t0).work.count == 1)
        #expect(m.polled(.status(200), body: body, now: t0).work.isEmpty)
        #expect(m.takeNotes().map(\.kind) == ["duplicate"])
    }

    @Test("each repetition's result of a repeated job leaves as it comes, after the receipt")
    func repetitions() throws {
        var order = DeliveryOrder(resultURL: supervisorResults)
        let spec = try loopbackSpec("again")
        let first = Message.result(Result(specification: spec, when: try When(parsing: "2026-12-01 00:00:00 ... 2026-12-01 00:00:01")))
        let second = Message.result(Result(specification: spec, when: try When(parsing: "2026-12-01 00:01:00 ... 2026-12-01 00:01:01")))
        order.expect(token: spec.token, url: supervisorResults)
        #expect(order.repetition(token: spec.token, result: first).isEmpty, "held until the receipt")
        let out = order.submitted(token: spec.token, reply: .receipt(Receipt(specification: spec)))
        #expect(out.map(\.message) == [.receipt(Receipt(specification: spec)), first])
        #expect(order.repetition(token: spec.token, result: second).map(\.message) == [second])
        #expect(order.pending == 1, "the job goes on")
    }

    @Test("deliveries: 2xx delivered; 4xx refused for good except 408 and 429; 5xx and no answer retried")
    func verdicts() {
        #expect(DeliveryVerdict(.status(200)) == .delivered)
        #expect(DeliveryVerdict(.status(204)) == .delivered)
        for s in [400, 403, 404, 413] { #expect(DeliveryVerdict(.status(s)) == .refused) }
        for s in [408, 429, 500, 503] { #expect(DeliveryVerdict(.status(s)) == .retry) }
        #expect(DeliveryVerdict(.unreachable("timeout")) == .retry)
    }
}

/// A supervisor in a script: each request is answered by the first rule that matches, and
/// recorded with the manual clock's time.
final class ScriptedTransport: AgentTransport {
    struct Request: Sendable {
        let at: Timestamp
        let method: String
        let path: String
        let body: [UInt8]
    }
    let clock: ManualClock
    let answer: @Sendable (Int, String, String) -> (Int, [UInt8])?
    private let log = Mutex<[Request]>([])
    init(clock: ManualClock, answer: @escaping @Sendable (_ n: Int, _ method: String, _ path: String) -> (Int, [UInt8])?) {
        self.clock = clock
        self.answer = answer
    }
    var requests: [Request] { log.withLock { $0 } }

    func send(_ method: String, _ url: HTTPURL, contentType: String?, body: [UInt8]) async throws -> HTTPClientReply {
        let n = log.withLock { l in
            l.append(Request(at: clock.now(), method: method, path: url.path, body: body))
            return l.filter { $0.method == method && $0.path == url.path }.count
        }
        guard let (status, reply) = answer(n, method, url.path) else { throw HTTPClientError(message: "connection refused") }
        return HTTPClientReply(status: status, contentType: mplaneContentType, body: reply)
    }
}

@Suite("The agent driven through a scripted transport on a manual clock", .timeLimit(.minutes(1)))
struct ScriptedAgentTests {
    @Test("register, poll, run, post receipt then result; a 503 backs off; all on the manual clock")
    func scripted() async throws {
        let clock = ManualClock(now: t0)
        let spec = try loopbackSpec("scripted")
        let transport = ScriptedTransport(clock: clock) { n, method, path in
            switch (method, path) {
            case ("POST", "/register/capability"): return (200, Array("{\"test-loopback\": {\"registered\": \"ok\"}}".utf8))
            case ("GET", "/show/specification"):
                if n == 1 { return (200, envelopeBody([.specification(spec)])) }
                if n == 2 { return (503, []) }
                return (200, envelopeBody([]))
            case ("POST", "/register/result"): return n == 1 ? nil : (200, [])  // the first delivery fails
            default: return (404, [])
            }
        }
        var config = try agentConfiguration(port: 18389, pollInterval: .seconds(5))
        config.backoffMax = .seconds(30)
        let scheduler = Scheduler(services: [LoopbackService()], clock: clock)
        let agent = ComponentInitiatedAgent(scheduler: scheduler, configuration: config, clock: clock, transport: transport, seed: 7)
        await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await scheduler.run() }
            group.addTask { try await agent.run() }
            await clock.settle()
            for _ in 0..<30 { await clock.advance(by: 1) }
            group.cancelAll()
            scheduler.shutdown()
        }
        let requests = transport.requests
        let summary = requests.map { "\($0.method) \($0.path) +\(($0.at.microseconds - t0.microseconds) / 1000)ms" }
        #expect(requests.first?.method == "POST" && requests.first?.path == "/register/capability", "\(summary)")
        let polls = requests.filter { $0.method == "GET" }
        #expect(polls.count >= 4, "\(summary)")
        // After the first poll: the interval (5 s + ≤ 10 %); after the 503: the backoff (1 s + ≤ 25 %).
        if polls.count >= 4 {
            let gap1 = polls[1].at.microseconds - polls[0].at.microseconds
            let gap2 = polls[2].at.microseconds - polls[1].at.microseconds
            #expect(gap1 >= 5_000_000 && gap1 <= 5_500_000, "\(summary)")
            #expect(gap2 >= 1_000_000 && gap2 <= 1_250_000, "\(summary)")
        }
        // The first delivery had no answer: the same message went again after a backoff of
        // 1 s (+ ≤ 25 %), and the job's result reached the supervisor.
        let posts = requests.filter { $0.path == "/register/result" }
        #expect(posts.count >= 2, "\(summary)")
        if posts.count >= 2 {
            #expect(posts[0].body == posts[1].body, "the same message again")
            let gap = posts[1].at.microseconds - posts[0].at.microseconds
            #expect(gap >= 1_000_000 && gap <= 1_250_000, "\(summary)")
        }
        let posted = try posts.map { try MessageDecoder().decode($0.body) }
        #expect(posted.contains { if case .result(let r) = $0 { r.token == spec.token } else { false } }, "\(posted.map(\.kind))")
    }
}

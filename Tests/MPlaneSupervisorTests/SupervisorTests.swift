#if canImport(Glibc)
import Glibc
#endif
import MPlane
import MPlaneHTTP
import MPlaneIO
import MPlaneScheduler
@testable import MPlaneSupervisor
import MPlaneTestSupport
import Testing

let t0 = Timestamp(year: 2026, month: 12, day: 1, hour: 10)
let loopbackCapability = LoopbackService().capability

func loopbackSpecification(_ input: String, when: String = "now") throws -> Specification {
    var s = Specification(capability: loopbackCapability, when: try When(parsing: when))
    try s.statement.setParameterValue("test.input", .string(input))
    return s
}

func post(_ path: String, _ m: Message, component: String? = nil, peer: String = "127.0.0.1") -> HTTPRequestData {
    var headers = [("Content-Type", mplaneContentType)]
    if let component { headers.append((Supervisor.componentHeader, component)) }
    return HTTPRequestData(method: "POST", path: path, headers: headers, body: MessageEncoder().encode(m), peer: peer)
}

func get(_ path: String, component: String? = nil, peer: String = "127.0.0.1") -> HTTPRequestData {
    HTTPRequestData(method: "GET", path: path, headers: component.map { [(Supervisor.componentHeader, $0)] } ?? [], peer: peer)
}

func decode(_ reply: HTTPReply) throws -> Message { try MessageDecoder().decode(reply.body) }

func registering(_ caps: [Capability], callback: Capability? = Capability(verb: .callback, label: "callback", when: .nowToFuture)) -> Message {
    .envelope(Envelope(contents: caps.map { .capability($0) } + (callback.map { [.capability($0)] } ?? [])))
}

/// A supervisor over a fresh store of `kind` (a real SQLite file, or a database of the test
/// run's PostgreSQL cluster), on a manual clock.
func withSupervisor(_ kind: StoreKind = .sqlite, _ configure: (inout SupervisorConfiguration) -> Void = { _ in },
                    _ body: (Supervisor, any SupervisorStore, ManualClock) async throws -> Void) async throws {
    var c = try SupervisorConfiguration(ini: SupervisorConfiguration.embeddedDefault)
    c.replyWait = .zero  // the manual clock does not move by itself: answer with receipts at once
    configure(&c)
    let configuration = c
    try await withStore(kind) { store in
        let clock = ManualClock(now: t0)
        try await body(Supervisor(store: store, configuration: configuration, clock: clock), store, clock)
    }
}

@Suite("Supervisor: the probe side, without sockets, over a real SQLite file", .timeLimit(.minutes(1)))
struct ProbeSideTests {
    @Test("registration is answered with the RI's label map; a named component that is not registered gets 428, an unnamed one an empty envelope")
    func registration() async throws {
        try await withSupervisor { sup, _, _ in
            let reply = await sup.probeSide(post("/register/capability", registering([loopbackCapability]), component: "probe-a"))
            #expect(reply.status == 200)
            let text = String(decoding: reply.body, as: UTF8.self)
            #expect(text.contains("\"test-loopback\": {\"registered\": \"ok\"}") && text.contains("\"callback\""), "\(text)")

            #expect(await sup.probeSide(get("/show/specification", component: "stranger")).status == 428)
            let unnamed = await sup.probeSide(get("/show/specification", peer: "10.9.9.9"))
            #expect(unnamed.status == 200)
            guard case .envelope(let e) = try decode(unnamed) else { Issue.record("not an envelope"); return }
            #expect(e.contents.isEmpty)
        }
    }

    @Test("a component that keeps polling has its seen time written again only when a tenth of absent-after has passed, or its address changed", arguments: StoreKind.allCases)
    func seenTimesCoalesce(kind: StoreKind) async throws {
        try await withSupervisor(kind) { sup, store, clock in
            _ = await sup.probeSide(post("/register/capability", registering([loopbackCapability]), component: "probe-a"))
            func seen() async throws -> Timestamp? { try await store.components().first { $0.name == "probe-a" }?.seen }
            func poll(from peer: String = "10.0.0.1") async { _ = await sup.probeSide(get("/show/specification", component: "probe-a", peer: peer)) }
            await clock.advance(by: 1)
            await poll()
            await sup.flushSeen()
            let first = try #require(try await seen())
            #expect(first == t0.adding(microseconds: 1_000_000))
            // Polls within 6 s (absent-after 60 s by default) write nothing.
            for _ in 0..<5 {
                await clock.advance(by: 1)
                await poll()
                await sup.flushSeen()
            }
            #expect(try await seen() == first)
            // A new address is written at once.
            await clock.advance(by: 0.5)
            await poll(from: "10.0.0.2")
            await sup.flushSeen()
            #expect(try await seen() == t0.adding(microseconds: 6_500_000))
            #expect(try await store.components().first { $0.name == "probe-a" }?.address == "10.0.0.2")
            // And 6 s after the last write, the time again.
            await clock.advance(by: 6)
            await poll(from: "10.0.0.2")
            await sup.flushSeen()
            #expect(try await seen() == t0.adding(microseconds: 12_500_000))
        }
    }

    @Test("a queued specification is handed out once, with the callback last; handed out again only after redeliver-after without an answer", arguments: StoreKind.allCases)
    func handedOutOnce(kind: StoreKind) async throws {
        try await withSupervisor(kind, { $0.redeliverAfter = .seconds(30) }) { sup, store, clock in
            _ = await sup.probeSide(post("/register/capability", registering([loopbackCapability]), component: "probe-a"))
            let caps = try await store.capabilities(presentSince: t0)
            let spec = try loopbackSpecification("once")
            let queued = await sup.clientSide(post("/capability/\(caps[0].publicToken)", .specification(spec)))
            #expect(queued.status == 200)
            guard case .receipt(let receipt) = try decode(queued) else { Issue.record("no receipt: \(String(decoding: queued.body, as: UTF8.self))"); return }

            guard case .envelope(let first) = try decode(await sup.probeSide(get("/show/specification", component: "probe-a"))) else {
                Issue.record("not an envelope"); return
            }
            #expect(first.contents.count == 2)
            #expect(first.contents.first?.token == receipt.token)
            guard case .specification(let cb)? = first.contents.last else { Issue.record("callback not last"); return }
            #expect(cb.statement.verb == .callback && "\(cb.statement.when)" == "now + 5s", "nothing left queued: callback-interval, \(cb.statement.when)")

            guard case .envelope(let second) = try decode(await sup.probeSide(get("/show/specification", component: "probe-a"))) else { return }
            #expect(second.contents.count == 1, "only the callback: the specification went once")
            guard case .specification(let idle)? = second.contents.last else { return }
            #expect("\(idle.statement.when)" == "now + 5s", "nothing queued: callback-interval")

            await clock.advance(by: 31)
            guard case .envelope(let third) = try decode(await sup.probeSide(get("/show/specification", component: "probe-a"))) else { return }
            #expect(third.contents.first?.token == receipt.token, "no receipt within redeliver-after: handed out again")

            // The receipt arrives: never again.
            #expect(await sup.probeSide(post("/register/result", .receipt(receipt), component: "probe-a")).status == 200)
            await clock.advance(by: 31)
            guard case .envelope(let fourth) = try decode(await sup.probeSide(get("/show/specification", component: "probe-a"))) else { return }
            #expect(fourth.contents.count == 1)
        }
    }

    @Test("registering again replaces what a component offered; a withdrawal removes one capability", arguments: StoreKind.allCases)
    func replaceAndWithdraw(kind: StoreKind) async throws {
        try await withSupervisor(kind) { sup, store, _ in
            _ = await sup.probeSide(post("/register/capability", registering([loopbackCapability]), component: "a"))
            let counter = CounterService().capability
            _ = await sup.probeSide(post("/register/capability", registering([counter, loopbackCapability]), component: "a"))
            let both = try await store.capabilities(presentSince: t0).compactMap(\.label)
            #expect(both == ["test-counter", "test-loopback"])
            _ = await sup.probeSide(post("/register/capability", registering([counter]), component: "a"))
            let one = try await store.capabilities(presentSince: t0).compactMap(\.label)
            #expect(one == ["test-counter"], "replaced, not added")
            let withdrawal = Message.withdrawal(Withdrawal(capability: counter))
            #expect(await sup.probeSide(post("/register/capability", withdrawal, component: "a")).status == 200)
            let none = try await store.capabilities(presentSince: t0)
            #expect(none.isEmpty)
        }
    }

    @Test("the RI's callback capability (verb measure, label callback) gets its callback in its own form")
    func riCallback() async throws {
        try await withSupervisor { sup, _, _ in
            let riCallback = Capability(verb: .measure, label: "callback", when: .nowToFuture)
            _ = await sup.probeSide(post("/register/capability", registering([loopbackCapability], callback: riCallback)))
            guard case .envelope(let e) = try decode(await sup.probeSide(get("/show/specification"))),
                  case .specification(let cb)? = e.contents.last else { Issue.record("no callback"); return }
            #expect(cb.statement.verb == .measure && cb.statement.label == "callback")
        }
    }

    @Test("a result is acknowledged once stored, kept once however often it is posted, and redeemable by the client", arguments: StoreKind.allCases)
    func resultsOnce(kind: StoreKind) async throws {
        try await withSupervisor(kind) { sup, store, _ in
            _ = await sup.probeSide(post("/register/capability", registering([loopbackCapability]), component: "probe-a"))
            let cap = try #require(try await store.capabilities(presentSince: t0).first)
            let spec = try loopbackSpecification("twice")
            guard case .receipt(let receipt) = try decode(await sup.clientSide(post("/capability/\(cap.publicToken)", .specification(spec)))) else {
                Issue.record("no receipt"); return
            }
            var result = Result(specification: spec, when: try When(parsing: "2026-12-01 10:00:00 ... 2026-12-01 10:00:01"))
            result.statement.token = receipt.token
            try result.values.appendRow([.string("twice")])
            for _ in 0..<3 { #expect(await sup.probeSide(post("/register/result", .result(result), component: "probe-a")).status == 200) }
            #expect(try await store.results(component: "probe-a", label: nil, from: nil, to: nil, limit: 10).count == 1)

            let redeemed = await sup.clientSide(post("/", .redemption(Redemption(receipt: receipt))))
            guard case .result(let r) = try decode(redeemed) else { Issue.record("not a result"); return }
            #expect(r.values.value("test.output", row: 0) == .string("twice"))
        }
    }

    @Test("bad input gets a 4xx mPlane exception and changes nothing", arguments: [
        ("POST", "/register/capability", "text/plain", "{}", 415),
        ("POST", "/register/capability", mplaneContentType, "{not json", 400),
        ("POST", "/register/capability", mplaneContentType, "{\"receipt\": \"measure\", \"token\": \"x\", \"version\": 1}", 400),
        ("POST", "/register/result", mplaneContentType, "[1, 2]", 400),
        ("PUT", "/show/specification", mplaneContentType, "", 405),
        ("GET", "/elsewhere", mplaneContentType, "", 404),
    ])
    func badInput(method: String, path: String, type: String, body: String, status: Int) async throws {
        try await withSupervisor { sup, store, _ in
            let reply = await sup.probeSide(HTTPRequestData(method: method, path: path, headers: [("Content-Type", type)],
                                                            body: Array(body.utf8), peer: "127.0.0.1"))
            #expect(reply.status == status)
            guard case .exception = try decode(reply) else { Issue.record("not an exception"); return }
            #expect(try await store.components().isEmpty)
        }
    }
}

@Suite("Supervisor: limits", .timeLimit(.minutes(1)))
struct SupervisorLimitTests {
    @Test("past max-components a new component is refused with 503; a registered one may register again")
    func components() async throws {
        try await withSupervisor(.sqlite, { $0.maxComponents = 2 }) { sup, store, _ in
            for name in ["a", "b"] {
                #expect(await sup.probeSide(post("/register/capability", registering([loopbackCapability]), component: name)).status == 200)
            }
            #expect(await sup.probeSide(post("/register/capability", registering([loopbackCapability]), component: "c")).status == 503)
            #expect(await sup.probeSide(post("/register/capability", registering([loopbackCapability]), component: "a")).status == 200)
            let count = try await store.componentCount(address: nil)
            #expect(count == 2)
        }
    }

    @Test("a registration past max-capabilities-per-component is refused whole")
    func capabilities() async throws {
        try await withSupervisor(.sqlite, { $0.maxCapabilitiesPerComponent = 3 }) { sup, store, _ in
            var many: [Capability] = []
            for i in 0..<4 {
                var c = loopbackCapability
                c.statement.label = "loop-\(i)"
                many.append(c)
            }
            let reply = await sup.probeSide(post("/register/capability", registering(many), component: "a"))
            #expect(reply.status == 400 && String(decoding: reply.body, as: UTF8.self).contains("max-capabilities-per-component"))
            let count = try await store.componentCount(address: nil)
            #expect(count == 0)
        }
    }

    @Test("past max-queued-per-component a client's specification gets 429; results only from registered components", arguments: StoreKind.allCases)
    func queued(kind: StoreKind) async throws {
        try await withSupervisor(kind, { $0.maxQueuedPerComponent = 2 }) { sup, store, _ in
            _ = await sup.probeSide(post("/register/capability", registering([loopbackCapability]), component: "a"))
            let cap = try #require(try await store.capabilities(presentSince: t0).first)
            for i in 0..<2 {
                #expect(await sup.clientSide(post("/capability/\(cap.publicToken)", .specification(try loopbackSpecification("q\(i)")))).status == 200)
            }
            let third = await sup.clientSide(post("/capability/\(cap.publicToken)", .specification(try loopbackSpecification("q2"))))
            #expect(third.status == 429 && String(decoding: third.body, as: UTF8.self).contains("max-queued-per-component"))

            var r = Result(specification: try loopbackSpecification("stray"), when: When(start: .at(t0), end: .at(t0)))
            try r.values.appendRow([.string("stray")])
            #expect(await sup.probeSide(post("/register/result", .result(r), component: "stranger")).status == 428)
            #expect(await sup.probeSide(post("/register/result", .result(r), peer: "10.1.1.1")).status == 403)
            #expect(try await store.results(component: nil, label: nil, from: nil, to: nil, limit: 10).isEmpty)
        }
    }
}

@Suite("Supervisor: hostile input from components and clients (review findings)", .timeLimit(.minutes(1)))
struct SupervisorHostileTests {
    /// A component "a" registered with a job `spec` handed out to it; the job's receipt.
    func handedOut(_ sup: Supervisor, _ store: any SupervisorStore, _ spec: Specification) async throws -> Receipt {
        _ = await sup.probeSide(post("/register/capability", registering([loopbackCapability]), component: "a"))
        let cap = try #require(try await store.capabilities(presentSince: t0).first)
        guard case .receipt(let r) = try decode(await sup.clientSide(post("/capability/\(cap.publicToken)", .specification(spec)))) else {
            throw HTTPClientError(message: "no receipt")
        }
        _ = await sup.probeSide(get("/show/specification", component: "a"))
        return r
    }

    @Test("a component's exception with status -1 is stored, and redeeming it answers 400, not a crash")
    func exceptionStatus() async throws {
        try await withSupervisor { sup, store, _ in
            let receipt = try await handedOut(sup, store, try loopbackSpecification("bad status"))
            let body = "{\"exception\": \"\(receipt.token)\", \"message\": \"x\", \"status\": -1}"
            let posted = await sup.probeSide(HTTPRequestData(method: "POST", path: "/register/result",
                                                             headers: [("Content-Type", mplaneContentType), (Supervisor.componentHeader, "a")],
                                                             body: Array(body.utf8), peer: "127.0.0.1"))
            #expect(posted.status == 200)
            #expect(await sup.clientSide(post("/", .redemption(Redemption(receipt: receipt)))).status == 400)
        }
    }

    @Test("a result for its job from a component that polled here is kept though its registration lapsed; a stranger's post is refused and nothing is written", arguments: StoreKind.allCases)
    func lapsedRegistration(kind: StoreKind) async throws {
        try await withSupervisor(kind) { sup, store, _ in
            let spec = try loopbackSpecification("lapsed")
            let receipt = try await handedOut(sup, store, spec)
            // The registration goes (as retention forgets a component); the job stays.
            switch store {
            case let s as SQLiteStore: try await s.pool.write { try $0.execute(sql: "DELETE FROM component WHERE name = 'a'") }
            case let s as PostgresStore: try await s.client.query("DELETE FROM component WHERE name = 'a'")
            default: Issue.record("a store of another kind")
            }
            #expect(try await store.pollState(component: "a", now: t0, redeliverAfter: 0).registered == false)
            var r = Result(specification: spec, when: When(start: .at(t0), end: .at(t0)))
            r.statement.token = receipt.token
            try r.values.appendRow([.string("kept")])
            #expect(await sup.probeSide(post("/register/result", .result(r), component: "a")).status == 200)
            #expect(try await store.results(component: "a", label: nil, from: nil, to: nil, limit: 10).map(\.token) == [receipt.token])
            // Nothing else of a's to keep: now it is told to register.
            var stray = r
            stray.statement.token = "no-such-job"
            #expect(await sup.probeSide(post("/register/result", .result(stray), component: "a")).status == 428)
            // A name never seen polling here, not registered: refused, nothing written.
            #expect(await sup.probeSide(post("/register/result", .result(r), component: "b")).status == 428)
            #expect(try await store.results(component: "b", label: nil, from: nil, to: nil, limit: 10).isEmpty)
        }
    }

    @Test("a client asking to interrupt a job again and again queues one interrupt")
    func oneInterrupt() async throws {
        try await withSupervisor { sup, store, _ in
            let spec = try loopbackSpecification("interrupt me")
            _ = try await handedOut(sup, store, spec)
            for _ in 0..<20 { _ = await sup.clientSide(post("/", .interrupt(Interrupt(specification: spec)))) }
            guard case .envelope(let e) = try decode(await sup.probeSide(get("/show/specification", component: "a"))) else { return }
            #expect(e.contents.filter { $0.kind == .interrupt }.count == 1)
        }
    }

    @Test("another specification under a token in use is refused; the result path refuses what it cannot keep")
    func tokensAndNothing() async throws {
        try await withSupervisor { sup, store, _ in
            var spec = try loopbackSpecification("first")
            spec.statement.token = "shared-token"
            _ = try await handedOut(sup, store, spec)
            var other = try loopbackSpecification("second")
            other.statement.token = "shared-token"
            let cap = try #require(try await store.capabilities(presentSince: t0).first)
            #expect(await sup.clientSide(post("/capability/\(cap.publicToken)", .specification(other))).status == 403)
            #expect(await sup.probeSide(post("/register/result", .capability(loopbackCapability), component: "a")).status == 400)
        }
    }

    @Test("a component name that is not printable, or takes the form of an address identity, is refused with 400", arguments: [
        "has space", "address:10.0.0.1", String(repeating: "x", count: 256),
    ])
    func badNames(name: String) async throws {
        try await withSupervisor { sup, store, _ in
            #expect(await sup.probeSide(post("/register/capability", registering([loopbackCapability]), component: name)).status == 400)
            let count = try await store.componentCount(address: nil)
            #expect(count == 0)
        }
    }
}

@Suite("Supervisor: the client side, without sockets", .timeLimit(.minutes(1)))
struct ClientSideTests {
    @Test("two components offering the same capability: both listed, each with its own token and link; absent ones leave the list", arguments: StoreKind.allCases)
    func sameCapabilityTwice(kind: StoreKind) async throws {
        try await withSupervisor(kind) { sup, store, clock in
            for name in ["probe-a", "probe-b"] {
                _ = await sup.probeSide(post("/register/capability", registering([loopbackCapability]), component: name))
            }
            guard case .envelope(let list) = try decode(await sup.clientSide(get("/capability"))) else { return }
            let tokens = list.contents.compactMap(\.token)
            #expect(tokens.count == 2 && Set(tokens).count == 2)
            for case .capability(let c) in list.contents {
                #expect(c.statement.label == "test-loopback")
                #expect(c.statement.link?.hasSuffix("/capability/\(c.token)") == true)
            }
            // A plain POST that fits both is refused with a way out; /fanout reaches both.
            let spec = try loopbackSpecification("both")
            #expect(await sup.clientSide(post("/capability", .specification(spec))).status == 403)
            guard case .envelope(let receipts) = try decode(await sup.clientSide(post("/fanout", .specification(spec)))) else {
                Issue.record("fan-out: no envelope"); return
            }
            #expect(Set(receipts.contents.compactMap(\.token)).count == 2)
            for name in ["probe-a", "probe-b"] {
                guard case .envelope(let e) = try decode(await sup.probeSide(get("/show/specification", component: name))) else { return }
                #expect(e.contents.count == 2, "\(name): its own specification and the callback")
            }
            // probe-b stops polling: after absent-after only probe-a is offered.
            await clock.advance(by: 45)
            _ = await sup.probeSide(get("/show/specification", component: "probe-a"))
            await sup.flushSeen()
            await clock.advance(by: 30)
            guard case .envelope(let later) = try decode(await sup.clientSide(get("/capability"))) else { return }
            let seen = try await store.components().map { "\($0.name) \($0.seen)" }
            #expect(later.contents.count == 1, "\(seen)")
        }
    }

    @Test("an interrupt of a job not handed out yet ends it at once; of one handed out, it is queued for the component", arguments: StoreKind.allCases)
    func interrupts(kind: StoreKind) async throws {
        try await withSupervisor(kind) { sup, store, _ in
            _ = await sup.probeSide(post("/register/capability", registering([loopbackCapability]), component: "probe-a"))
            let cap = try #require(try await store.capabilities(presentSince: t0).first)
            let early = try loopbackSpecification("early"), late = try loopbackSpecification("late")
            for s in [early] { _ = await sup.clientSide(post("/capability/\(cap.publicToken)", .specification(s))) }
            let first = await sup.clientSide(post("/", .interrupt(Interrupt(specification: early))))
            guard case .result(let empty) = try decode(first) else { Issue.record("no result: \(first.status)"); return }
            #expect(empty.values.rowCount == 0 && empty.token == early.token, "ended before it reached the component: nothing measured")
            _ = await sup.clientSide(post("/capability/\(cap.publicToken)", .specification(late)))
            _ = await sup.probeSide(get("/show/specification", component: "probe-a"))  // handed out
            #expect(await sup.clientSide(post("/", .interrupt(Interrupt(specification: late)))).status == 200)
            guard case .envelope(let e) = try decode(await sup.probeSide(get("/show/specification", component: "probe-a"))) else { return }
            guard case .interrupt(let i)? = e.contents.first else { Issue.record("no interrupt: \(e.contents.map(\.kind))"); return }
            #expect(i.token == late.token && i.statement.label == "test-loopback", "the whole interrupt, as the RI needs")
            var unknown = Receipt(specification: try loopbackSpecification("never sent"))
            unknown.statement.token = "nonesuch"
            #expect(await sup.clientSide(post("/", .redemption(Redemption(receipt: unknown)))).status == 404)
        }
    }
}

@Suite("Supervisor store: retention and results for people", .timeLimit(.minutes(1)))
struct StoreTests {
    func result(_ token: String, rows: Int, start: Int) throws -> Message {
        var spec = Specification(capability: CounterService().capability, when: try When(parsing: "now ... future / 1s"))
        try spec.statement.setParameterValue("test.input", .string("x"))
        let s = t0.adding(microseconds: Int64(start) * 1_000_000)
        var r = Result(specification: spec, when: When(start: .at(s), end: .at(s.adding(microseconds: Int64(rows) * 1_000_000))))
        r.statement.token = token
        for i in 0..<rows {
            try r.values.appendRow([.time(s.adding(microseconds: Int64(i) * 1_000_000)), .string("x"), .natural(UInt64(i))])
        }
        return .result(r)
    }

    /// Stores `result` from `component` as the answer to a job created for it first (a store
    /// keeps results for its jobs only).
    func keep(_ store: any SupervisorStore, _ component: String, _ result: Message) async throws {
        guard case .result(let r) = result else { return }
        let spec = Message.specification(Specification(capability: CounterService().capability, when: try When(parsing: "now")))
        _ = try await store.enqueue([NewJob(token: r.token, component: component, capability: nil, label: nil, specification: spec, start: t0)],
                                    now: t0, maxQueued: 1_000_000)
        let outcome = try await store.store(component: component, messages: [result], now: t0)
        #expect(outcome.stored == 1)
    }

    @Test("a store keeps results for its components' jobs only", arguments: StoreKind.allCases)
    func ownJobsOnly(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await keep(store, "p", try result("mine", rows: 1, start: 0))
            let stray = try await store.store(component: "q", messages: [try result("mine", rows: 1, start: 5)], now: t0)
            #expect(stray.stored == 0 && stray.unknownTokens == ["mine"], "another component's job")
            let unsolicited = try await store.store(component: "p", messages: [try result("nobody-asked", rows: 1, start: 0)], now: t0)
            #expect(unsolicited.stored == 0)
            #expect(try await store.results(component: nil, label: nil, from: nil, to: nil, limit: 10).map(\.token) == ["mine"])
        }
    }

    @Test("with a size cap, the store shrinks back under it while results keep arriving, oldest first", arguments: StoreKind.allCases)
    func retentionBySize(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let cap = 64 << 10
            var high = 0
            for batch in 0..<10 {
                for i in 0..<20 {
                    try await keep(store, "p", try result("t\(batch)-\(i)", rows: 20, start: batch * 100 + i))
                }
                high = Swift.max(high, try await store.resultBytes())
                _ = try await store.prune(olderThan: Timestamp(microsecondsSince1970: 0), maxBytes: cap, forgetBefore: Timestamp(microsecondsSince1970: 0))
                #expect(try await store.resultBytes() <= cap)
            }
            #expect(high > cap, "the test wrote past the cap")
            let kept = try await store.results(component: "p", label: nil, from: nil, to: nil, limit: 1000)
            #expect(kept.allSatisfy { $0.token.hasPrefix("t9-") || $0.token.hasPrefix("t8-") || $0.token.hasPrefix("t7-") }, "the newest are kept")
        }
    }

    @Test("the rows of one label from one component over a time range come out as one CSV, in time order", arguments: StoreKind.allCases)
    func series(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            // Three results of 10 rows each, at 0-10 s, 10-20 s, 20-30 s; one from another component.
            for (i, start) in [20, 0, 10].enumerated() {
                try await keep(store, "p", try result("s\(i)", rows: 10, start: start))
            }
            try await keep(store, "q", try result("other", rows: 10, start: 5))
            let bodies = try await store.series(component: "p", label: "test-counter", from: t0.adding(microseconds: 5_000_000),
                                                to: t0.adding(microseconds: 14_000_000))
            #expect(bodies.count == 2, "only the results overlapping 5-14 s")
            let csv = try ResultCSV.rows(of: bodies, header: true, from: t0.adding(microseconds: 5_000_000), to: t0.adding(microseconds: 14_000_000))
            let lines = csv.split(separator: "\r\n")
            #expect(lines.first == "time,test.output,test.counter")
            #expect(lines.count == 11, "rows at 5...14 s: \(lines)")
            #expect(lines[1].hasPrefix("2026-12-01 10:00:05") && lines[10].hasPrefix("2026-12-01 10:00:14"), "\(lines)")
        }
    }

    @Test("a store opened again keeps what it had (its migrations are not applied twice)")
    func reopen() async throws {
        try await withTemporaryDirectory { dir in
            mkdir(dir, 0o700)
            do {
                let store = try SQLiteStore(path: dir + "/s.sqlite")
                try await keep(store, "p", try result("kept", rows: 1, start: 0))
            }
            let again = try SQLiteStore(path: dir + "/s.sqlite")
            #expect(try await again.results(component: nil, label: nil, from: nil, to: nil, limit: 10).map(\.token) == ["kept"])
        }
    }
}

@Suite("Supervisor configuration")
struct SupervisorConfigurationTests {
    @Test("the RI's supervisor file is read as it is; the example in deploy/ and the embedded default are valid")
    func riFormat() throws {
        let ri = try SupervisorConfiguration(ini: """
            [client]
            workflow = component-initiated
            listen-host = 127.0.0.1
            listen-port = 18888
            listen-spec-link = http://127.0.0.1:18888/
            registration-path = register/capability
            specification-path = show/specification
            result-path = register/result

            [component]
            scheduler_max_results = 20
            workflow = client-initiated
            listen-port = 18889
            listen-cap-link = http://127.0.0.1:18889/
            """)
        #expect(ri.probePort == 18888 && ri.clientPort == 18889 && ri.capabilityLink == "http://127.0.0.1:18889/")
        #expect(ri.specificationLink == "http://127.0.0.1:18888/")
        let example = try SupervisorConfiguration(ini: String(decoding: try readAll(repoRoot + "/deploy/mpsup-sqlite.conf"), as: UTF8.self))
        #expect(example.storeLocation(override: nil) == "sqlite:/var/lib/mplane/mpsup.sqlite" && example.probeAddress == "0.0.0.0")
        let shared = try SupervisorConfiguration(ini: String(decoding: try readAll(repoRoot + "/deploy/mpsup-postgres.conf"), as: UTF8.self))
        #expect(shared.storeLocation(override: nil).hasPrefix("postgres://") && shared.capabilityLink == "http://supervisor.example.net:8889/")
        #expect(shared.storeConnections == 8)
        let secured = try SupervisorConfiguration(ini: String(decoding: try readAll(repoRoot + "/deploy/mpsup-tls.conf"), as: UTF8.self))
        #expect(secured.tls?.certificate == "/etc/mplane/pki/supervisor-1.crt" && secured.authorization.isEnforced && secured.componentRole == "components")
        #expect(secured.authorization.allows("org.example.clients.client-1", label: "ping-average-ip4", token: "t"))
        let embedded = try SupervisorConfiguration(ini: SupervisorConfiguration.embeddedDefault)
        #expect(embedded.probeAddress == "127.0.0.1" && embedded.clientAddress == "127.0.0.1" && embedded.tls == nil)
        #expect(embedded.storeConnections == 8)
        #expect(embedded.storeLocation(override: "sqlite:/x.sqlite") == "sqlite:/x.sqlite")
    }

    @Test("a bad value stops the start with the key named", arguments: [
        ("[client]\nworkflow = client-initiated\n", "[client] workflow"),
        ("[client]\nlisten-port = 70000\n", "listen-port"),
        ("[supervisor]\ncallback-interval = soon\n", "callback-interval"),
        ("[supervisor]\nretention-bytes = 12\n", "retention-bytes"),
        ("[supervisor]\nstore-connections = 1\n", "store-connections"),
        ("[client\n", "line 1"),
    ])
    func badValues(text: String, named: String) {
        do {
            _ = try SupervisorConfiguration(ini: text)
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.message.contains(named), "\(error.message)")
        }
    }
}

@Suite("Supervisor store: handed out once", .timeLimit(.minutes(1)))
struct ClaimTests {
    @Test("eight pollers claiming at once for one component get each of 300 queued items exactly once", arguments: StoreKind.allCases)
    func concurrentClaims(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            _ = try await store.register(component: "p", address: nil, capabilities: [loopbackCapability], callback: nil, now: t0)
            let jobs = try (0..<300).map { i -> NewJob in
                var s = try loopbackSpecification("item \(i)")
                s.statement.token = "item-\(i)"
                return NewJob(token: s.token, component: "p", capability: nil, label: nil, specification: .specification(s), start: t0)
            }
            let outcomes = try await store.enqueue(jobs, now: t0, maxQueued: 1000)
            #expect(outcomes.allSatisfy { $0 == .queued })
            let handed = try await withThrowingTaskGroup(of: [String].self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        var mine: [String] = []
                        for _ in 0..<20 {
                            let (items, _) = try await store.claim(component: "p", now: t0, redeliverAfter: 60_000_000, limit: 7)
                            mine += items.map(\.token)
                        }
                        return mine
                    }
                }
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            #expect(handed.count == 300, "every item once: \(handed.count)")
            #expect(Set(handed).count == handed.count, "none twice")
            let state = try await store.pollState(component: "p", now: t0, redeliverAfter: 60_000_000)
            #expect(state.registered && !state.due)
        }
    }
}

@Suite("PostgreSQL store locations")
struct PostgresLocationTests {
    @Test("a location that cannot be used is refused with the reason", arguments: [
        ("mysql://u@h/db", "not a postgres:// URL"),
        ("postgres://u@h:99999/db", "port"),
        ("postgres://u@h:5432/", "name the database"),
        ("postgres://u@h:5432", "name the database"),
        ("postgres://u@/db", "name the host"),
        ("postgres://u@h/db?sslmod=verify-full", "unknown parameter sslmod"),
        ("postgres://u@h/db?sslmode=verify", "sslmode = verify: use disable, prefer, require, verify-ca, verify-full"),
        ("postgres://u@h/db?sslmode", "sslmode has no value"),
        ("postgres://u@h/db?sslmode=verify-full&sslmode=prefer", "sslmode given twice"),
        ("postgres://u@h/db?sslmode=require&sslcert=/proc/version", "name both sslcert and sslkey"),
        ("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt", "sslrootcert = /nonexistent/ca.crt: cannot be read"),
        ("postgres://u@h/db?sslmode=verify-full&sslrootcert=/proc/version", "sslrootcert = /proc/version: not PEM certificates"),
        ("postgres://u@h/db?sslmode=verify-ca", "verify-ca needs sslrootcert"),
        ("postgres://u@h/db?sslmode=disable&sslrootcert=/proc/version", "sslmode = disable, but ssl files are named"),
        ("postgres://u%4@h/db", "a malformed %-escape in the user or password"),
        ("postgres://u@/db?host=/run/postgresql&sslmode=require", "TLS does not apply to a Unix socket"),
        ("postgres://u@/db?host=run&port=5432", "a socket directory starts with /"),
        ("postgres://u:hunter2@h/db?port=0", "postgres://u:***@h/db?port=0: port = 0"),
    ])
    func refused(url: String, why: String) {
        do {
            _ = try PostgresStore(url: url)
            Issue.record("accepted: \(url)")
        } catch {
            #expect(error.message.contains(why), "\(error.message)")
        }
    }

    @Test("a password is never shown, even with reserved characters left unencoded", arguments: [
        "postgres://u:S3cret?sslmode=x@h/db", "postgres://u:S3cr/et@h/db?sslmode=bogus", "postgres://u:S3cret&p=1@h/db?x=1",
        "postgress://u:S3cret@h/db", "postgres://u:S3cret@h:99999/db", "postgres://u:S3cret@h/db?sslmode=verify-ca",
    ])
    func passwordHidden(url: String) {
        do {
            _ = try PostgresStore(url: url)
            Issue.record("accepted: \(url)")
        } catch {
            #expect(!error.message.contains("S3c") && !error.message.contains("ret"), "\(error.message)")
        }
    }

    @Test("TCP and Unix-socket locations, the password never shown, %-escapes decoded")
    func accepted() throws {
        #expect(try PostgresStore(url: "postgres://%6Dplane:p%40ss@db.example.net/mp%6Cane").location == "postgres://mplane@db.example.net:5432/mplane?sslmode=prefer")
        #expect(try PostgresStore(url: "postgres://mplane:secret@db.example.net:6543/mplane").location == "postgres://mplane@db.example.net:6543/mplane?sslmode=prefer")
        #expect(try PostgresStore(url: "postgres://mplane@[::1]/mplane?sslmode=disable").location == "postgres://mplane@[::1]:5432/mplane?sslmode=disable")
        #expect(try PostgresStore(url: "postgres://mplane@db.example.net/mplane?sslmode=verify-full").location
                == "postgres://mplane@db.example.net:5432/mplane?sslmode=verify-full", "the system's roots when no sslrootcert")
        #expect(try PostgresStore(url: "postgresql://mplane@/mplane?host=/run/postgresql&port=5433").location
                == "postgres://mplane@/mplane?host=/run/postgresql&port=5433")
    }
}

/// `request` as if it came over mutual TLS from the certificate of `identity`.
func certified(_ request: HTTPRequestData, _ identity: String) -> HTTPRequestData {
    var r = request
    r.identity = identity
    return r
}

@Suite("Supervisor: certificate identities and authorisation, without sockets", .timeLimit(.minutes(1)))
struct SupervisorAuthorisationTests {
    @Test("with TLS a component is its certificate's identity, whatever name it sends", arguments: [StoreKind.sqlite, .postgres])
    func certificateIdentity(kind: StoreKind) async throws {
        try await withSupervisor(kind) { sup, store, _ in
            let reply = await sup.probeSide(certified(post("/register/capability", registering([loopbackCapability]), component: "claims-to-be-b"),
                                                      "org.example.components.a"))
            #expect(reply.status == 200)
            let names = try await store.components().map(\.name)
            #expect(names == ["org.example.components.a"])
        }
    }

    @Test("a client sees and uses only what its roles allow; anything else is one 403; another identity's job is unknown (404)", arguments: [StoreKind.sqlite, .postgres])
    func authorisation(kind: StoreKind) async throws {
        let roles = try IniFile(parsing: "[Roles]\norg.example.clients.a = ops\norg.example.clients.b = ops\n[Authorizations]\ntest-loopback = ops\n")
        try await withSupervisor(kind, { $0.authorization = roles.authorization }) { sup, store, _ in
            var counter = CounterService().capability
            counter.statement.label = "test-counter"
            #expect(await sup.probeSide(certified(post("/register/capability", registering([loopbackCapability, counter])), "probe")).status == 200)
            func labels(_ who: String) async throws -> [String] {
                guard case .envelope(let e) = try decode(await sup.clientSide(certified(get("/capability"), who))) else { return ["not an envelope"] }
                return e.contents.compactMap { if case .capability(let c) = $0 { c.statement.label } else { nil } }
            }
            #expect(try await labels("org.example.clients.a") == ["test-loopback"])
            #expect(try await labels("org.example.clients.nobody").isEmpty)
            #expect(try await labels(unauthenticatedIdentity).isEmpty)
            let components = await sup.clientSide(certified(get("/component"), "org.example.clients.nobody"))
            #expect(!String(decoding: components.body, as: UTF8.self).contains("probe"))

            // The counter: refused alike by its token and by schema, naming nothing.
            let caps = try await store.capabilities(presentSince: t0)
            let counterToken = try #require(caps.first { $0.label == "test-counter" }?.publicToken)
            var spec = Specification(capability: counter, when: try When(parsing: "now + 1s / 1s"))
            try spec.statement.setParameterValue("test.input", .string("x"))
            for path in ["/capability/\(counterToken)", "/capability", "/fanout"] {
                let refused = await sup.clientSide(certified(post(path, .specification(spec)), "org.example.clients.a"))
                #expect(refused.status == 403 && String(decoding: refused.body, as: UTF8.self).contains("Specification not authorised"), "\(path)")
            }
            let hidden = await sup.clientSide(certified(get("/capability/\(counterToken)"), "org.example.clients.a"))
            #expect(hidden.status == 404)
            // The counter through the loopback's own link: it does not fit that capability.
            let loopbackToken = try #require(caps.first { $0.label == "test-loopback" }?.publicToken)
            let smuggled = await sup.clientSide(certified(post("/capability/\(loopbackToken)", .specification(spec)), "org.example.clients.a"))
            #expect(smuggled.status == 403 && String(decoding: smuggled.body, as: UTF8.self).contains("Specification refused"),
                    "\(String(decoding: smuggled.body, as: UTF8.self))")

            // a's job: b (same role) cannot redeem or interrupt it; a can.
            let queued = await sup.clientSide(certified(post("/capability", .specification(try loopbackSpecification("mine"))), "org.example.clients.a"))
            guard case .receipt(let receipt) = try decode(queued) else { Issue.record("no receipt: \(String(decoding: queued.body, as: UTF8.self))"); return }
            for m in [Message.redemption(Redemption(receipt: receipt)), .interrupt(Interrupt(receipt.statement))] {
                let other = await sup.clientSide(certified(post("/", m), "org.example.clients.b"))
                #expect(other.status == 404 && String(decoding: other.body, as: UTF8.self).contains("Unknown job"))
            }
            let job = try await store.job(token: receipt.token)
            #expect(job?.owner == "org.example.clients.a")
            let mine = await sup.clientSide(certified(post("/", .redemption(Redemption(receipt: receipt))), "org.example.clients.a"))
            #expect(mine.status == 200)
            // The same specification from b: a job of b's own, under a token of its own; a's
            // job is neither revealed nor touched.
            let again = await sup.clientSide(certified(post("/capability", .specification(try loopbackSpecification("mine"))), "org.example.clients.b"))
            guard case .receipt(let other) = try decode(again) else { Issue.record("no receipt for b: \(String(decoding: again.body, as: UTF8.self))"); return }
            #expect(other.token != receipt.token)
            let bJob = try await store.job(token: other.token)
            let aJob = try await store.job(token: receipt.token)
            #expect(bJob?.owner == "org.example.clients.b" && aJob?.owner == "org.example.clients.a")
        }
    }

    @Test("component-role: only certificates with that role act as components; it needs [TLS]")
    func componentRole() async throws {
        let roles = try IniFile(parsing: "[Roles]\norg.example.components.probe = components\n")
        try await withSupervisor(.sqlite, { c in
            c.authorization = roles.authorization
            c.componentRole = "components"
        }) { sup, store, _ in
            let refused = await sup.probeSide(certified(post("/register/capability", registering([loopbackCapability])), "org.example.clients.a"))
            #expect(refused.status == 403)
            let accepted = await sup.probeSide(certified(post("/register/capability", registering([loopbackCapability])), "org.example.components.probe"))
            #expect(accepted.status == 200)
            let names = try await store.components().map(\.name)
            #expect(names == ["org.example.components.probe"])
        }
        #expect(throws: SupervisorConfiguration.Error.self) {
            try SupervisorConfiguration(ini: "[supervisor]\ncomponent-role = components\n")
        }
    }
}

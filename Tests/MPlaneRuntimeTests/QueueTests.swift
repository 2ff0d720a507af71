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


func receiptMessage(_ input: String) throws -> Message { .receipt(Receipt(specification: try loopbackSpec(input))) }

/// What the agent does with the oldest message once the supervisor took it.
@discardableResult
func deliverFirst(_ queue: MemoryOutgoingQueue) async -> Outgoing? {
    let head = await queue.first()
    if let head { queue.remove(head) }
    await queue.flush()
    return head
}

/// A supervisor for the agent tests: takes any registration, hands out `specifications(n)`
/// on the n-th poll, and takes results while `accepting()`, passing their bodies on.
func testSupervisor(specifications: @escaping @Sendable (Int) -> [Message] = { _ in [] },
                    accepting: @escaping @Sendable () -> Bool = { true },
                    delivered: @escaping @Sendable (String) -> Void) -> HTTPComponentServer {
    let polls = Atomic<Int>(0)
    return HTTPComponentServer(host: "127.0.0.1", port: 0) { request in
        let mplane = ComponentRouter.mplaneType
        switch (request.method, request.path) {
        case ("POST", "/register/capability"):
            return registeredReply
        case ("GET", "/show/specification"):
            let contents = specifications(polls.add(1, ordering: .relaxed).newValue)
            return HTTPReply(status: 200, contentType: mplane, body: MessageEncoder().encode(.envelope(Envelope(contents: contents))))
        case ("POST", "/register/result"):
            guard accepting() else { return HTTPReply(status: 503, contentType: "text/plain", body: []) }
            delivered(String(decoding: request.body, as: UTF8.self))
            return HTTPReply(status: 200, contentType: "text/html", body: [])
        default:
            return HTTPReply(status: 404, contentType: "text/plain", body: [])
        }
    }
}

@Suite("Result queue on disk (result-queue-dir)", .timeLimit(.minutes(1)), .serialized)
struct QueueTests {
    let target = HTTPURL(host: "127.0.0.1", port: 9, path: "/register/result")

    @Test("what waits survives a restart, in order, and delivered messages leave the disk")
    func survivesRestart() async throws {
        try await withTemporaryDirectory { dir in
            let queue = MemoryOutgoingQueue(limit: 10, journal: try DirectoryJournal(directory: dir))
            for input in ["one", "two", "three"] { queue.push(Outgoing(message: try receiptMessage(input), url: target)) }
            await deliverFirst(queue)  // "one" was delivered
            #expect(files(in: dir, ending: ".mplane").count == 2)

            let again = MemoryOutgoingQueue(limit: 10, journal: try DirectoryJournal(directory: dir))
            #expect(again.count == 2)
            let first = await again.first()
            #expect(first?.url == target)
            #expect(first.map { $0.message } == (try receiptMessage("two")))
            await deliverFirst(again)
            again.push(Outgoing(message: try receiptMessage("four"), url: target))
            await again.flush()
            #expect(files(in: dir, ending: ".mplane").count == 2)
            let third = MemoryOutgoingQueue(limit: 10, journal: try DirectoryJournal(directory: dir))
            #expect(await third.first().map { $0.message } == (try receiptMessage("three")), "ids keep growing after a restart")
        }
    }

    @Test("a full queue drops the oldest message and its file")
    func dropsOldest() async throws {
        try await withTemporaryDirectory { dir in
            let queue = MemoryOutgoingQueue(limit: 2, journal: try DirectoryJournal(directory: dir))
            for input in ["a", "b", "c"] { queue.push(Outgoing(message: try receiptMessage(input), url: target)) }
            #expect(queue.count == 2 && queue.dropped == 1)
            await queue.flush()
            let again = MemoryOutgoingQueue(limit: 2, journal: try DirectoryJournal(directory: dir))
            #expect(await deliverFirst(again).map { $0.message } == (try receiptMessage("b")))
            #expect(await deliverFirst(again).map { $0.message } == (try receiptMessage("c")))
            #expect(files(in: dir, ending: ".mplane").isEmpty)
        }
    }

    @Test("a file that does not parse is set aside as .bad, not lost, and the rest loads")
    func setsAsideBadFiles() async throws {
        try await withTemporaryDirectory { dir in
            let queue = MemoryOutgoingQueue(limit: 10, journal: try DirectoryJournal(directory: dir))
            queue.push(Outgoing(message: try receiptMessage("good"), url: target))
            await queue.flush()
            #expect(writeFile(dir + "/00000000000000000099.mplane", Array("http://127.0.0.1:9/x\n{\"receipt\": ".utf8)))
            let again = MemoryOutgoingQueue(limit: 10, journal: try DirectoryJournal(directory: dir))
            #expect(again.count == 1)
            #expect(await again.first().map { $0.message } == (try receiptMessage("good")))
            #expect(files(in: dir, ending: ".bad") == ["00000000000000000099.mplane.bad"])
            #expect(!files(in: dir, ending: ".mplane").contains("00000000000000000099.mplane"))
            // New ids go past the one set aside, so no later file can replace it.
            again.push(Outgoing(message: try receiptMessage("later"), url: target))
            await again.flush()
            #expect(files(in: dir, ending: ".mplane").last == "00000000000000000100.mplane")
        }
    }

    @Test("queue files carry their format's version: files without one (the first release) load, a later version is left in place")
    func versions() async throws {
        try await withTemporaryDirectory { dir in
            let queue = MemoryOutgoingQueue(limit: 10, journal: try DirectoryJournal(directory: dir))
            queue.push(Outgoing(message: try receiptMessage("current"), url: target))
            await queue.flush()
            let written = try #require(files(in: dir, ending: ".mplane").first)
            #expect(String(decoding: readFile(dir + "/" + written) ?? [], as: UTF8.self).hasPrefix("mplane-queue 1\n"))
            let old = Array("\(target)\n".utf8) + MessageEncoder().encode(try receiptMessage("first release"))
            #expect(writeFile(dir + "/00000000000000000050.mplane", old))
            #expect(writeFile(dir + "/00000000000000000051.mplane", Array("mplane-queue 2\nsomething new\n".utf8)))
            let again = MemoryOutgoingQueue(limit: 10, journal: try DirectoryJournal(directory: dir))
            #expect(again.count == 2, "the current file and the first release's")
            #expect(files(in: dir, ending: ".mplane").contains("00000000000000000051.mplane"), "left in place")
            #expect(files(in: dir, ending: ".bad").isEmpty)
        }
    }

    @Test("a directory that cannot be made, or a file in its place, is a clear error at start")
    func unusableDirectory() async throws {
        do {
            _ = try DirectoryJournal(directory: "/proc/mplane-cannot-be-here")
            Issue.record("a journal in /proc")
        } catch {
            #expect(error.message.contains("result-queue-dir /proc/mplane-cannot-be-here: cannot create it"), "\(error.message)")
        }
        try await withTemporaryDirectory { path in
            #expect(writeFile(path, Array("not a directory".utf8)))
            defer { unlink(path) }
            do throws(DirectoryJournal.Failure) {
                _ = try DirectoryJournal(directory: path)
                Issue.record("a journal in a regular file")
            } catch {
                #expect(error.message.contains("cannot open it as a directory"), "\(error.message)")
            }
        }
    }

    @Test("a delivery removes what was delivered, even when the full queue dropped it meanwhile")
    func deliveryRemovesWhatWasSent() async throws {
        try await withTemporaryDirectory { dir in
            let queue = MemoryOutgoingQueue(limit: 1, journal: try DirectoryJournal(directory: dir))
            queue.push(Outgoing(message: try receiptMessage("a"), url: target))
            let sending = try #require(await queue.first())
            queue.push(Outgoing(message: try receiptMessage("b"), url: target))  // drops "a" while it is being sent
            queue.remove(sending)
            #expect(queue.count == 1)
            #expect(await queue.first().map { $0.message } == (try receiptMessage("b")))
            await queue.flush()
            #expect(files(in: dir, ending: ".mplane").count == 1)
        }
    }

    @Test("a restart cleans what a crash left half-written, and keeps no more than the limit")
    func restartCleansUp() async throws {
        try await withTemporaryDirectory { dir in
            let queue = MemoryOutgoingQueue(limit: 10, journal: try DirectoryJournal(directory: dir))
            for input in ["1", "2", "3", "4"] { queue.push(Outgoing(message: try receiptMessage(input), url: target)) }
            await queue.flush()
            #expect(writeFile(dir + "/.tmp-77", Array("http://127.0.0.1:9/x\n{\"rec".utf8)))
            let smaller = MemoryOutgoingQueue(limit: 2, journal: try DirectoryJournal(directory: dir))
            #expect(smaller.count == 2)
            #expect(await smaller.first().map { $0.message } == (try receiptMessage("3")))
            #expect(files(in: dir, ending: "").count == 2, "\(files(in: dir, ending: ""))")
        }
    }

    @Test("mpcom refuses to start with a result-queue-dir it cannot use, and says why")
    func mpcomRefusesUnusableDirectory() async throws {
        try await withTemporaryDirectory { dir in
            mkdir(dir, 0o700)
            let conf = "[component]\nworkflow = component-initiated\nclient_host = 127.0.0.1\nclient_port = \(freePort())\n"
                + "result-queue-dir = /proc/mplane-cannot-be-here\n[module_loopback]\nmodule = loopback\n"
            #expect(writeFile(dir + "/mpcom.conf", Array(conf.utf8)))
            let out = try await runProcess([repoRoot + "/.build/debug/mpcom", "--config", dir + "/mpcom.conf"])
            #expect(out.status == 64 && out.output.contains("result-queue-dir /proc/mplane-cannot-be-here: cannot create it"),
                    "\(out.status) \(out.output)")
        }
    }

    @Test("on a full disk the messages stay queued in memory, and nothing is half-written",
          .enabled(if: getuid() == 0, "skipped: mounting a small tmpfs needs root"))
    func fullDisk() async throws {
        try await withTemporaryDirectory { dir in
            mkdir(dir, 0o700)
            guard run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", dir]).status == 0 else {
                print("skipped: root here may not mount a tmpfs (no CAP_SYS_ADMIN)")
                return
            }
            defer { _ = run(["umount", dir]) }
            let queue = MemoryOutgoingQueue(limit: 100, journal: try DirectoryJournal(directory: dir + "/q"))
            let big = String(repeating: "x", count: 6000)
            for i in 0..<6 { queue.push(Outgoing(message: try receiptMessage("\(i)\(big)"), url: target)) }
            #expect(queue.count == 6, "every message is queued")
            await queue.flush()
            let onDisk = files(in: dir + "/q", ending: ".mplane").count
            #expect(onDisk >= 1 && onDisk < 6, "\(onDisk) of 6 fit on 16 KiB")
            #expect(files(in: dir + "/q", ending: "").allSatisfy { !$0.hasPrefix(".tmp") }, "no partial files left")
            for i in 0..<6 {
                #expect(await deliverFirst(queue).map { $0.message } == (try receiptMessage("\(i)\(big)")))
            }
            #expect(files(in: dir + "/q", ending: ".mplane").isEmpty)
        }
    }

    @Test("an agent delivers what an earlier run left queued on disk")
    func agentDeliversAfterRestart() async throws {
        try await withTemporaryDirectory { dir in
            let delivered = Mutex<[String]>([])
            let supervisor = testSupervisor { body in delivered.withLock { $0.append(body) } }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await supervisor.run() }
                let port = await supervisor.boundPort()
                // What a run that could not reach its supervisor left behind.
                let earlier = MemoryOutgoingQueue(limit: 10, journal: try DirectoryJournal(directory: dir))
                earlier.push(Outgoing(message: try receiptMessage("left behind"), url: HTTPURL(host: "127.0.0.1", port: port, path: "/register/result")))
                await earlier.flush()

                let scheduler = Scheduler(services: [LoopbackService()])
                let queue = MemoryOutgoingQueue(limit: 10, journal: try DirectoryJournal(directory: dir))
                let agent = ComponentInitiatedAgent(scheduler: scheduler, configuration: try agentConfiguration(port: port, pollInterval: .seconds(60)),
                                                    queue: queue)
                group.addTask { await scheduler.run() }
                group.addTask { try await agent.run() }
                for _ in 0..<100 where delivered.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(50)) }
                let bodies = delivered.withLock { $0 }
                #expect(bodies.count == 1 && bodies.first?.contains("left behind") == true, "\(bodies)")
                for _ in 0..<40 where !files(in: dir, ending: ".mplane").isEmpty { try await Task.sleep(for: .milliseconds(50)) }
                #expect(files(in: dir, ending: ".mplane").isEmpty, "delivered, so removed from the disk")
                group.cancelAll()
                scheduler.shutdown()
            }
        }
    }

    @Test("mpcom stopped by SIGTERM keeps the interrupted job's result on disk, and delivers it after a restart")
    func sigtermKeepsResults() async throws {
        try await withTemporaryDirectory { dir in
            mkdir(dir, 0o700)
            let accept = Atomic<Bool>(false)
            let delivered = Mutex<[String]>([])
            let supervisor = testSupervisor(specifications: { poll in
                guard poll == 1, var spec = try? Specification(capability: CounterService().capability,
                                                               when: When(parsing: "now + 60s / 1s")) else { return [] }
                try? spec.statement.setParameterValue("test.input", .string("kept"))
                return [.specification(spec)]
            }, accepting: { accept.load(ordering: .relaxed) }, delivered: { body in delivered.withLock { $0.append(body) } })
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await supervisor.run() }
                let port = await supervisor.boundPort()
                let conf = "[component]\nworkflow = component-initiated\nclient_host = 127.0.0.1\nclient_port = \(port)\n"
                    + "poll-interval = 1\nbackoff-max = 1\nresult-queue-dir = \(dir)/queue\n[module_counter]\nmodule = counter\n"
                #expect(writeFile(dir + "/mpcom.conf", Array(conf.utf8)))
                func start() -> pid_t {
                    startInBackground("'\(repoRoot)/.build/debug/mpcom' --config '\(dir)/mpcom.conf' --log-level info >> '\(dir)/log' 2>&1")
                }
                let log = { String(decoding: readFile(dir + "/log") ?? [], as: UTF8.self) }
                let first = start()
                try #require(first > 0)
                // The job runs and its receipt waits on disk (the supervisor answers 503).
                for _ in 0..<100 where files(in: dir + "/queue", ending: ".mplane").isEmpty { try await Task.sleep(for: .milliseconds(50)) }
                try await Task.sleep(for: .milliseconds(1500))
                #expect(try await stop(first), "stopped on SIGTERM")
                let kept = files(in: dir + "/queue", ending: ".mplane").map { String(decoding: readFile(dir + "/queue/" + $0) ?? [], as: UTF8.self) }
                #expect(kept.count == 2 && kept.first?.contains("\"receipt\"") == true && kept.last?.contains("\"result\"") == true,
                        "receipt and interrupted result on disk: \(kept) \(log())")

                // Restarted, with the supervisor taking results again: both are delivered, in order.
                accept.store(true, ordering: .relaxed)
                let second = start()
                try #require(second > 0)
                defer { kill(second, SIGKILL) }
                for _ in 0..<100 where delivered.withLock({ $0.count < 2 }) { try await Task.sleep(for: .milliseconds(50)) }
                let bodies = delivered.withLock { $0 }
                #expect(bodies.count >= 2 && bodies[0].contains("\"receipt\"") && bodies[1].contains("\"result\"") && bodies[1].contains("kept"),
                        "\(bodies) \(log())")
                for _ in 0..<40 where !files(in: dir + "/queue", ending: ".mplane").isEmpty { try await Task.sleep(for: .milliseconds(50)) }
                #expect(files(in: dir + "/queue", ending: ".mplane").isEmpty)
                group.cancelAll()
            }
        }
    }
}

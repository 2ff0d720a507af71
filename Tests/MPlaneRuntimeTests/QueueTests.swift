#if canImport(Glibc)
import Glibc
#endif
@testable import MPlane
import MPlaneIO
import MPlaneScheduler
@testable import MPlaneRuntime
import MPlaneTestSupport
import Synchronization
import Testing

/// A fresh directory under /tmp for one test, removed afterwards.
func withTemporaryDirectory(_ body: (String) async throws -> Void) async throws {
    let dir = "/tmp/mplane-queue-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    defer { _ = run(["rm", "-rf", dir]) }
    try await body(dir)
}

func files(in dir: String, ending suffix: String) -> [String] { listDirectory(dir).filter { $0.hasSuffix(suffix) } }

func receiptMessage(_ input: String) throws -> Message { .receipt(Receipt(specification: try loopbackSpec(input))) }

@Suite("Result queue on disk (result-queue-dir)", .timeLimit(.minutes(1)), .serialized)
struct QueueTests {
    let target = HTTPURL(host: "127.0.0.1", port: 9, path: "/register/result")

    @Test("what waits survives a restart, in order, and delivered messages leave the disk")
    func survivesRestart() async throws {
        try await withTemporaryDirectory { dir in
            let queue = MemoryOutgoingQueue(limit: 10, journal: try DirectoryJournal(directory: dir))
            for input in ["one", "two", "three"] { queue.push(Outgoing(message: try receiptMessage(input), url: target)) }
            queue.removeFirst()  // "one" was delivered
            #expect(files(in: dir, ending: ".mplane").count == 2)

            let again = MemoryOutgoingQueue(limit: 10, journal: try DirectoryJournal(directory: dir))
            #expect(again.count == 2)
            let first = await again.first()
            #expect(first?.url == target)
            #expect(first.map { $0.message } == (try receiptMessage("two")))
            again.removeFirst()
            again.push(Outgoing(message: try receiptMessage("four"), url: target))
            let names = files(in: dir, ending: ".mplane")
            #expect(names.count == 2 && names == names.sorted(), "\(names)")
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
            #expect(files(in: dir, ending: ".mplane").count == 2)
            #expect(await queue.first().map { $0.message } == (try receiptMessage("b")))
        }
    }

    @Test("a file that does not parse is set aside as .bad, not lost, and the rest loads")
    func setsAsideBadFiles() async throws {
        try await withTemporaryDirectory { dir in
            let queue = MemoryOutgoingQueue(limit: 10, journal: try DirectoryJournal(directory: dir))
            queue.push(Outgoing(message: try receiptMessage("good"), url: target))
            #expect(writeFile(dir + "/00000000000000000099.mplane", Array("http://127.0.0.1:9/x\n{\"receipt\": ".utf8)))
            let again = MemoryOutgoingQueue(limit: 10, journal: try DirectoryJournal(directory: dir))
            #expect(again.count == 1)
            #expect(files(in: dir, ending: ".bad") == ["00000000000000000099.mplane.bad"])
        }
    }

    @Test("a directory that cannot be made is a clear error at start")
    func unusableDirectory() {
        do {
            _ = try DirectoryJournal(directory: "/proc/mplane-cannot-be-here")
            Issue.record("a journal in /proc")
        } catch {
            #expect(error.message.contains("result-queue-dir /proc/mplane-cannot-be-here"), "\(error.message)")
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
            try #require(run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", dir]).status == 0)
            defer { _ = run(["umount", dir]) }
            let queue = MemoryOutgoingQueue(limit: 100, journal: try DirectoryJournal(directory: dir + "/q"))
            let big = String(repeating: "x", count: 6000)
            for i in 0..<6 { queue.push(Outgoing(message: try receiptMessage("\(i)\(big)"), url: target)) }
            #expect(queue.count == 6, "every message is queued")
            let onDisk = files(in: dir + "/q", ending: ".mplane").count
            #expect(onDisk >= 1 && onDisk < 6, "\(onDisk) of 6 fit on 16 KiB")
            #expect(files(in: dir + "/q", ending: "").allSatisfy { !$0.hasPrefix(".tmp") }, "no partial files left")
            for i in 0..<6 {
                #expect(await queue.first().map { $0.message } == (try receiptMessage("\(i)\(big)")))
                queue.removeFirst()
            }
            #expect(files(in: dir + "/q", ending: ".mplane").isEmpty)
        }
    }

    @Test("an agent delivers what an earlier run left queued on disk")
    func agentDeliversAfterRestart() async throws {
        try await withTemporaryDirectory { dir in
            let delivered = Mutex<[String]>([])
            let supervisor = HTTPComponentServer(host: "127.0.0.1", port: 0) { request in
                let mplane = ComponentRouter.mplaneType
                switch (request.method, request.path) {
                case ("POST", "/register/capability"):
                    return registeredReply
                case ("GET", "/show/specification"):
                    return HTTPReply(status: 200, contentType: mplane, body: MessageEncoder().encode(.envelope(Envelope())))
                case ("POST", "/register/result"):
                    delivered.withLock { $0.append(String(decoding: request.body, as: UTF8.self)) }
                    return HTTPReply(status: 200, contentType: "text/html", body: [])
                default:
                    return HTTPReply(status: 404, contentType: "text/plain", body: [])
                }
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await supervisor.run() }
                let port = await supervisor.boundPort()
                // What a run that could not reach its supervisor left behind.
                let earlier = MemoryOutgoingQueue(limit: 10, journal: try DirectoryJournal(directory: dir))
                earlier.push(Outgoing(message: try receiptMessage("left behind"), url: HTTPURL(host: "127.0.0.1", port: port, path: "/register/result")))

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
}

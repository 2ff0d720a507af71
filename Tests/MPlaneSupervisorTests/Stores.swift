#if canImport(Glibc)
import Glibc
#endif
import MPlane
import MPlaneIO
@testable import MPlaneSupervisor
import MPlaneTestSupport
import Synchronization
import Testing

/// A throwaway PostgreSQL cluster for the tests: Debian's `initdb` into a temporary
/// directory, the server on a Unix socket in that directory (no TCP port), started once per
/// test run and stopped (and removed) when the run ends. Each test gets a database of its own.
final class PostgresCluster: Sendable {
    let directory: String
    let port: Int
    let bin: String

    /// The cluster of this test run, started on first use; nil with the reason when it cannot be.
    static let shared: Swift.Result<PostgresCluster, PostgresClusterError> = {
        do throws(PostgresClusterError) { return .success(try PostgresCluster(tls: nil)) } catch { return .failure(error) }
    }()

    /// A second cluster that also listens on 127.0.0.1 and 127.0.0.2, with TLS only: its
    /// certificate is the test PKI's `supervisor-1` (naming 127.0.0.1, not .2), a client must
    /// show a certificate of that CA (`hostssl … clientcert=verify-ca`), and plain TCP is
    /// refused (`hostnossl … reject`).
    static let sharedTLS: Swift.Result<PostgresCluster, PostgresClusterError> = {
        switch TestPKI.shared {
        case .failure(let e): return .failure(PostgresClusterError(message: "no test PKI: \(e)"))
        case .success(let pki):
            do throws(PostgresClusterError) { return .success(try PostgresCluster(tls: pki)) } catch { return .failure(error) }
        }
    }()

    /// Where Debian puts the server's programs (the newest major version installed).
    static func binDirectory() -> String? {
        let versions = listDirectory("/usr/lib/postgresql").compactMap(Int.init).sorted()
        guard let v = versions.last else { return nil }
        let dir = "/usr/lib/postgresql/\(v)/bin"
        return access(dir + "/initdb", X_OK) == 0 ? dir : nil
    }

    /// A command as the cluster's owner: `postgres` when we are root (initdb refuses root).
    func asOwner(_ argv: [String]) -> (status: Int32, stdout: [UInt8]) {
        getuid() == 0 ? run(["runuser", "-u", "postgres", "--"] + argv) : run(argv)
    }

    private init(tls pki: TestPKI?) throws(PostgresClusterError) {
        guard let bin = Self.binDirectory() else {
            throw PostgresClusterError(message: "no PostgreSQL server installed (/usr/lib/postgresql/*/bin/initdb): `make test` installs Debian's postgresql")
        }
        self.bin = bin
        directory = "/tmp/mplane-pg-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        if pki != nil {
            guard let free = freeLoopbackPort() else { throw PostgresClusterError(message: "no free TCP port on 127.0.0.1") }
            port = free
        } else {
            port = 20_000 + Int(getpid() % 20_000)
        }
        mkdir(directory, 0o700)
        if getuid() == 0 { _ = run(["chown", "postgres:postgres", directory]) }
        let initdb = asOwner([bin + "/initdb", "-D", directory + "/data", "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
        guard initdb.status == 0 else {
            throw PostgresClusterError(message: "initdb failed: \(String(decoding: initdb.stdout, as: UTF8.self))")
        }
        var options = "-k \(directory) -p \(port) -c max_connections=200"
        if let pki {
            // The server's files, the cluster owner's alone (the server refuses a key others can read).
            for (from, to) in [(pki.certificate("supervisor-1"), "server.crt"), (pki.key("supervisor-1"), "server.key"), (pki.ca, "ca.crt")] {
                guard let bytes = readFile(from), writeFile(directory + "/" + to, bytes) else {
                    throw PostgresClusterError(message: "cannot copy \(from) into the cluster's directory")
                }
                chmod(directory + "/" + to, 0o600)
            }
            let hba = "local all all trust\nhostssl all all 127.0.0.0/8 trust clientcert=verify-ca\nhostnossl all all 127.0.0.0/8 reject\n"
            guard writeFile(directory + "/data/pg_hba.conf", Array(hba.utf8)) else {
                throw PostgresClusterError(message: "cannot write pg_hba.conf")
            }
            if getuid() == 0 { _ = run(["chown", "-R", "postgres:postgres", directory]) }
            // Also on 127.0.0.2, an address its certificate does not name.
            options += " -c listen_addresses=127.0.0.1,127.0.0.2 -c ssl=on -c ssl_cert_file=\(directory)/server.crt"
                + " -c ssl_key_file=\(directory)/server.key -c ssl_ca_file=\(directory)/ca.crt"
        } else {
            options += " -c listen_addresses="
        }
        let start = asOwner([bin + "/pg_ctl", "-D", directory + "/data", "-w", "-l", directory + "/server.log", "-o", options, "start"])
        guard start.status == 0 else {
            let log = String(decoding: readFile(directory + "/server.log") ?? [], as: UTF8.self)
            throw PostgresClusterError(message: "the server did not start: \(log.suffix(2000))")
        }
        let first = clusterToStop.withLock { list in
            list.append((bin + "/pg_ctl", directory, getuid() == 0))
            return list.count == 1
        }
        if first {
            atexit {
                for (pgctl, dir, root) in clusterToStop.withLock({ $0 }) {
                    let argv = [pgctl, "-D", dir + "/data", "-m", "immediate", "stop"]
                    _ = run(root ? ["runuser", "-u", "postgres", "--"] + argv : argv)
                    _ = run(["rm", "-rf", dir])
                }
            }
        }
    }

    /// A new, empty database; its URL for `--store`.
    func database() throws -> String {
        "postgres://postgres@/\(try newDatabase())?host=\(directory)&port=\(port)"
    }

    /// A new, empty database's URL over TCP to `host` (127.0.0.1 or .2), with `parameters`
    /// (the TLS cluster).
    func tcpDatabase(_ parameters: String, host: String = "127.0.0.1") throws -> String {
        "postgres://postgres@\(host):\(port)/\(try newDatabase())?\(parameters)"
    }

    func newDatabase() throws -> String {
        let name = "t\(UInt32.random(in: 0...UInt32.max))"
        let r = asOwner(["psql", "-h", directory, "-p", "\(port)", "-U", "postgres", "-q", "-c", "CREATE DATABASE \(name)"])
        guard r.status == 0 else { throw PostgresClusterError(message: "CREATE DATABASE failed: \(String(decoding: r.stdout, as: UTF8.self))") }
        return name
    }
}

struct PostgresClusterError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

let clusterToStop = Mutex<[(String, String, Bool)]>([])

/// A TCP port on 127.0.0.1 nothing listens on now (bound to port 0 and released): for the
/// one server that cannot be given port 0 itself, PostgreSQL, whose socket file is named by it.
func freeLoopbackPort() -> Int? {
    guard let s = loopbackSocket(listening: false) else { return nil }
    close(s.fd)
    return s.port
}

/// A TCP socket bound to a port of 127.0.0.1 the kernel chose, listening if asked: its
/// descriptor and port, nil if that failed.
func loopbackSocket(listening: Bool) -> (fd: Int32, port: Int)? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &a) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && (!listening || listen(fd, 1) == 0) && getsockname(fd, $0, &length) == 0
        }
    }
    guard bound else {
        close(fd)
        return nil
    }
    return (fd, Int(UInt16(bigEndian: a.sin_port)))
}

/// The two stores the supervisor runs on; every store test runs against both.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres
    var testDescription: String { rawValue }
}

/// A fresh store of `kind`, ready (migrated, its pool running) for `body`.
func withStore(_ kind: StoreKind, _ body: (any SupervisorStore) async throws -> Void) async throws {
    switch kind {
    case .sqlite:
        try await withTemporaryDirectory { dir in
            mkdir(dir, 0o700)
            try await body(try SQLiteStore(path: dir + "/s.sqlite"))
        }
    case .postgres:
        let cluster = try PostgresCluster.shared.get()
        let store = try PostgresStore(url: try cluster.database())
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await store.run() }
            defer { group.cancelAll() }
            try await store.prepare()
            try await body(store)
        }
    }
}

@Suite("Polls answered from memory: PostgreSQL (kept true by NOTIFY) and SQLite (its one supervisor)", .timeLimit(.minutes(1)))
struct PollCacheTests {
    @Test("a poll that found nothing is answered from memory until work is queued, here or through another supervisor; redelivery time is kept")
    func pollCache() async throws {
        let cluster = try PostgresCluster.shared.get()
        let url = try cluster.database()
        let a = try PostgresStore(url: url), b = try PostgresStore(url: url)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await a.run() }
            group.addTask { await b.run() }
            defer { group.cancelAll() }
            try await a.prepare()
            try await b.prepare()
            _ = try await a.register(component: "p", address: nil, capabilities: [loopbackCapability], callback: .verb, now: t0)
            // Both listening before anything is cached.
            for _ in 0..<100 where !(a.pollCache.isEnabled && b.pollCache.isEnabled) { try await Task.sleep(for: .milliseconds(20)) }
            try #require(a.pollCache.isEnabled && b.pollCache.isEnabled, "both stores listen")
            let empty = try await a.pollState(component: "p", now: t0, redeliverAfter: 60_000_000)
            #expect(empty.registered && !empty.due)
            // Kept in memory: at once, or at the next poll if the registration's own
            // notification arrived while the first was being read (an answer read before a
            // change is not kept).
            for _ in 0..<100 where a.pollCache.lookup("p", now: t0.microseconds, redeliverAfter: 60_000_000) == nil {
                _ = try await a.pollState(component: "p", now: t0, redeliverAfter: 60_000_000)
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(a.pollCache.lookup("p", now: t0.microseconds, redeliverAfter: 60_000_000) != nil, "kept in memory")
            // Queued through b: a learns of it by NOTIFY.
            let job = NewJob(token: "nt-1", component: "p", capability: nil, label: "l",
                             specification: .specification(try loopbackSpecification("x")), start: t0)
            #expect(try await b.enqueue([job], now: t0, maxQueued: 10) == [.queued])
            var due = false
            for _ in 0..<100 where !due {
                due = try await a.pollState(component: "p", now: t0, redeliverAfter: 60_000_000).due
                if !due { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(due, "the other supervisor's queued item is seen within 2 s")
            // Claimed through a: nothing due, until the redelivery time.
            let (items, _) = try await a.claim(component: "p", now: t0, redeliverAfter: 60_000_000, limit: 10)
            #expect(items.count == 1)
            #expect(try await b.pollState(component: "p", now: t0, redeliverAfter: 60_000_000).due == false)
            let later = t0.adding(seconds: 61)
            #expect(try await b.pollState(component: "p", now: later, redeliverAfter: 60_000_000).due, "handed out again after redeliver-after")
        }
    }

    @Test("PostgreSQL: the pool holds exactly store-connections, opened at start, however many queries wait")
    func fixedPool() async throws {
        let cluster = try PostgresCluster.shared.get()
        let store = try PostgresStore(url: try cluster.database(), connections: 3)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await store.run() }
            defer { group.cancelAll() }
            try await store.prepare()
            func open() async throws -> Int { try await listening(store, all: true) }
            var seen = 0
            for _ in 0..<100 where seen < 3 {
                seen = try await open()
                if seen < 3 { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(seen == 3, "all three opened without demand")
            // Forty queries at once: they wait for the three.
            let most = try await withThrowingTaskGroup(of: Int.self) { g in
                for _ in 0..<40 { g.addTask { try await open() } }
                return try await g.reduce(0) { Swift.max($0, $1) }
            }
            #expect(most == 3, "never more than store-connections: \(most)")
            for _ in 0..<100 where try await listening(store) < 1 { try await Task.sleep(for: .milliseconds(50)) }
            #expect(try await listening(store) == 1, "one of them listens")
        }
        // A reader (mpsup results): its 2 connections, none listening.
        let reader = try PostgresStore(url: try cluster.database(), connections: 2, serving: false)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await reader.run() }
            defer { group.cancelAll() }
            try await reader.prepare()
            for _ in 0..<100 where try await listening(reader, all: true) < 2 { try await Task.sleep(for: .milliseconds(50)) }
            #expect(try await listening(reader, all: true) == 2)
            #expect(try await listening(reader) == 0 && !reader.pollCache.isEnabled)
        }
    }

    /// The store's database's client sessions: those whose last statement was a LISTEN, or all.
    func listening(_ store: PostgresStore, all: Bool = false) async throws -> Int {
        var n = 0
        for try await c in try await store.client.query("""
            SELECT count(*)::int FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'
                AND (\(all) OR query ILIKE 'LISTEN%')
            """).decode(Int.self) { n = c }
        return n
    }

    @Test("SQLite: a poll that found nothing is answered from memory until this supervisor queues, claims, interrupts, registers or forgets; a second supervisor on the file is refused, readers are not")
    func sqlitePollCache() async throws {
        try await withTemporaryDirectory { dir in
            mkdir(dir, 0o700)
            let path = dir + "/s.sqlite"
            let store = try SQLiteStore(path: path)
            #expect(throws: SQLiteStore.Busy.self) { try SQLiteStore(path: path) }
            #expect(access(path + "-lock", F_OK) == 0, "the lock is a file of its own, not the database's")
            let reader = try SQLiteStore(path: path, serving: false)
            #expect(reader.pollCache.isEnabled == false)
            let redeliver: Int64 = 60_000_000
            func cached() -> Bool { store.pollCache.lookup("p", now: t0.microseconds, redeliverAfter: redeliver) != nil }
            func poll(_ at: Timestamp = t0) async throws -> PollState { try await store.pollState(component: "p", now: at, redeliverAfter: redeliver) }

            #expect(try await poll().registered == false)
            #expect(!cached(), "an unregistered component is not kept")
            _ = try await store.register(component: "p", address: nil, capabilities: [loopbackCapability], callback: .verb, now: t0)
            #expect(try await poll().due == false)
            #expect(cached(), "kept in memory")
            // Queued: due at once, read from the file.
            let spec = Message.specification(try loopbackSpecification("x"))
            let jobs = [NewJob(token: "sc-1", component: "p", capability: nil, label: "l", specification: spec, start: t0),
                        NewJob(token: "sc-2", component: "p", capability: nil, label: "l", specification: spec, start: t0.adding(seconds: 30))]
            #expect(try await store.enqueue(jobs, now: t0, maxQueued: 10) == [.queued, .queued])
            #expect(!cached())
            #expect(try await poll().due)
            // Claimed: nothing due until the next item's start, kept with that start.
            #expect(try await store.claim(component: "p", now: t0, redeliverAfter: redeliver, limit: 10).items.map(\.token) == ["sc-1"])
            #expect(try await poll().due == false)
            #expect(cached())
            #expect(try await poll(t0.adding(seconds: 30)).due, "the second item's start, from what was kept")
            // An interrupt for the claimed job is work for the component.
            #expect(try await store.enqueueInterrupt(token: "sc-1", now: t0))
            #expect(!cached())
            #expect(try await poll().due)
            _ = try await store.claim(component: "p", now: t0, redeliverAfter: redeliver, limit: 10)
            #expect(try await poll().due == false)
            // Forgotten (absent, nothing waiting): registered no longer.
            _ = try await store.claim(component: "p", now: t0.adding(seconds: 30), redeliverAfter: redeliver, limit: 10)
            let results = StoreTests()
            _ = try await store.store(component: "p", messages: [try results.result("sc-1", rows: 1, start: 0),
                                                               try results.result("sc-2", rows: 1, start: 0)], now: t0)
            _ = try await poll()
            #expect(cached())
            _ = try await store.prune(olderThan: Timestamp(microsecondsSince1970: 0), maxBytes: .max, forgetBefore: t0.adding(seconds: 3600))
            #expect(!cached())
            #expect(try await poll().registered == false, "forgotten")
            _ = reader
        }
        // The lock goes with the store.
        try await withTemporaryDirectory { dir in
            mkdir(dir, 0o700)
            do { _ = try SQLiteStore(path: dir + "/t.sqlite") }
            #expect(throws: Never.self) { _ = try SQLiteStore(path: dir + "/t.sqlite") }
        }
    }
}

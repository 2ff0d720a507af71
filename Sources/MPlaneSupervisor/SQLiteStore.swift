import GRDB
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
public import MPlane
import MPlaneIO
import Synchronization

/// The embedded store: one SQLite file in WAL mode (GRDB's `DatabasePool`: one writer,
/// readers in parallel, all on GRDB's own threads, never the cooperative pool), synced on
/// every commit (`synchronous = FULL`), so a result acknowledged is on disk. Writes that
/// arrive together are committed together (one transaction, one sync), so many posting
/// components share the cost of a sync.
///
/// Layout. `component` and `capability` hold the registrations; `job` each specification a
/// client sent, `work` what waits for a component's poll (claimed in the same transaction that
/// hands it out); `result` one row per result message, its whole JSON in `body`, indexed by
/// component, label and start time, so that the rows of one label from one component over a
/// time range are the bodies of the few results overlapping it, read in order.
///
/// Serving, the store is this process's alone: it holds an exclusive `flock` on `PATH-lock` (a
/// file of its own: a descriptor of the database file itself closed by us would drop SQLite's
/// POSIX locks on it), and a second supervisor on the same file is refused. That is what
/// lets it answer a poll that found nothing from memory (``PollCache``) until this process
/// itself changes that component's registration or queue. `mpsup results` and `mpsup backup`
/// only read, and open the file without the lock, beside a running supervisor.
public final class SQLiteStore: SupervisorStore {
    let pool: DatabasePool
    public let path: String
    private let batcher: WriteBatcher
    /// Components whose last poll found nothing due; on only while serving.
    let pollCache = PollCache()
    /// The serving lock, held as long as the store (nil: not serving).
    private let servingLock: ServingLock?

    public struct Busy: Error, CustomStringConvertible {
        public let path: String
        public var description: String {
            "\(path) is in use by another mpsup (one supervisor per SQLite file; several supervisors share a PostgreSQL store)"
        }
    }

    public struct LockFailure: Error, CustomStringConvertible {
        public let path: String
        public let errno: Int32
        public var description: String { "cannot lock \(path): \(errnoText(errno))" }
    }

    /// An exclusive `flock` on a file of its own, released when this goes.
    final class ServingLock: Sendable {
        let fd: Int32
        init(path: String, database: String) throws {
            fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw LockFailure(path: path, errno: errno) }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                let e = errno
                close(fd)
                if e == EWOULDBLOCK { throw Busy(path: database) }
                throw LockFailure(path: path, errno: e)
            }
        }
        deinit { close(fd) }
    }

    /// Opens (creating if needed) the store at `path` and applies the migrations it lacks.
    /// `serving`: this process will answer probes from it (the lock, and polls from memory);
    /// false for tools that only read it beside a running supervisor.
    public init(path: String, serving: Bool = true) throws {
        self.path = path
        // First the lock, then the file: a second supervisor touches nothing.
        servingLock = serving ? try ServingLock(path: path + "-lock", database: path) : nil
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        configuration.busyMode = .timeout(10)
        pool = try DatabasePool(path: path, configuration: configuration)
        pollCache.setEnabled(serving)
        try Self.migrator.migrate(pool)
        let pool = self.pool
        batcher = WriteBatcher { batch in
            try await pool.write { db in
                try batch.map { try Self.apply(db, component: $0.component, $0.writes, now: $0.now) }
            }
        }
    }

    /// The schema, as numbered migrations applied in order at start, each in a transaction and
    /// recorded (GRDB's `grdb_migrations` table).
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("1-initial") { db in
            try db.execute(sql: """
                CREATE TABLE component (
                    name TEXT PRIMARY KEY, address TEXT, callback TEXT,
                    registered_us INTEGER NOT NULL, seen_us INTEGER NOT NULL);
                CREATE TABLE capability (
                    public_token TEXT PRIMARY KEY,
                    component TEXT NOT NULL REFERENCES component(name) ON DELETE CASCADE,
                    token TEXT NOT NULL, label TEXT, position INTEGER NOT NULL, body TEXT NOT NULL);
                CREATE INDEX capability_component ON capability(component);
                CREATE TABLE job (
                    token TEXT PRIMARY KEY, component TEXT NOT NULL, capability TEXT, label TEXT,
                    state TEXT NOT NULL, specification TEXT NOT NULL, receipt TEXT, answer TEXT,
                    created_us INTEGER NOT NULL, updated_us INTEGER NOT NULL);
                CREATE INDEX job_age ON job(updated_us);
                CREATE TABLE work (
                    id INTEGER PRIMARY KEY, component TEXT NOT NULL, token TEXT NOT NULL, kind TEXT NOT NULL,
                    body TEXT NOT NULL, start_us INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'queued',
                    claimed_us INTEGER, created_us INTEGER NOT NULL);
                CREATE INDEX work_due ON work(component, state, start_us);
                CREATE INDEX work_token ON work(token);
                CREATE TABLE result (
                    id INTEGER PRIMARY KEY, component TEXT NOT NULL, token TEXT NOT NULL, label TEXT,
                    start_us INTEGER, end_us INTEGER, rows INTEGER NOT NULL, bytes INTEGER NOT NULL,
                    received_us INTEGER NOT NULL, body TEXT NOT NULL);
                CREATE UNIQUE INDEX result_once ON result(component, token, coalesce(start_us, -1));
                CREATE INDEX result_series ON result(component, label, start_us);
                CREATE INDEX result_age ON result(received_us);
                """)
        }
        m.registerMigration("2-job-owner") { db in
            try db.execute(sql: "ALTER TABLE job ADD COLUMN owner TEXT")
        }
        return m
    }

    /// An online copy of the store to `path` (SQLite's backup API), consistent while the
    /// supervisor runs.
    public func backup(to path: String) throws {
        let target = try DatabaseQueue(path: path)
        try pool.backup(to: target)
    }

    // MARK: Probe-facing

    public func register(component: String, address: String?, capabilities: [Capability], callback: CallbackStyle?,
                         now: Timestamp) async throws -> RegistrationOutcome {
        let encoder = MessageEncoder()
        let rows = capabilities.enumerated().map { (i, c) -> [any DatabaseValueConvertible & Sendable] in
            var c = c
            c.statement.token = c.token
            return [publicToken(component: component, token: c.token), component, c.token, c.statement.label, i,
                    encoder.encodeString(.capability(c))]
        }
        let labels = capabilities.map { $0.statement.label ?? $0.token }
        try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO component(name, address, callback, registered_us, seen_us) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET address = excluded.address, callback = excluded.callback,
                    registered_us = excluded.registered_us, seen_us = excluded.seen_us
                """, arguments: [component, address, callback?.rawValue, now.microseconds, now.microseconds])
            try db.execute(sql: "DELETE FROM capability WHERE component = ?", arguments: [component])
            for row in rows {
                // Two capabilities with one token in one registration: the last one counts.
                try db.execute(sql: """
                    INSERT INTO capability(public_token, component, token, label, position, body) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT(public_token) DO UPDATE SET label = excluded.label, position = excluded.position, body = excluded.body
                    """, arguments: StatementArguments(row.map { $0 as (any DatabaseValueConvertible)? }))
            }
        }
        pollCache.invalidate(component)
        return RegistrationOutcome(registered: labels)
    }

    public func withdraw(component: String, tokens: [String], now: Timestamp) async throws {
        try await pool.write { db in
            for t in tokens {
                try db.execute(sql: "DELETE FROM capability WHERE component = ? AND token = ?", arguments: [component, t])
            }
        }
    }

    public func pollState(component: String, now: Timestamp, redeliverAfter: Int64) async throws -> PollState {
        let t = now.microseconds
        if let known = pollCache.lookup(component, now: t, redeliverAfter: redeliverAfter) { return known }
        let epoch = pollCache.epoch
        return try await pool.read { [pollCache] db in
            guard let row = try Row.fetchOne(db.cachedStatement(sql: """
                SELECT callback,
                    EXISTS(SELECT 1 FROM work WHERE component = ?1 AND state = 'queued' AND start_us <= ?2) OR
                    EXISTS(SELECT 1 FROM work WHERE component = ?1 AND state = 'claimed' AND claimed_us < ?2 - ?3) AS due,
                    (SELECT min(start_us) FROM work WHERE component = ?1 AND state = 'queued') AS next,
                    (SELECT min(claimed_us) FROM work WHERE component = ?1 AND state = 'claimed') AS oldest
                FROM component WHERE name = ?1
                """), arguments: [component, t, redeliverAfter]) else {
                return PollState(registered: false, callback: nil, due: false, next: nil)
            }
            let style: String? = row["callback"]
            let next: Int64? = row["next"], oldest: Int64? = row["oldest"]
            let callback = style.flatMap(CallbackStyle.init(rawValue:))
            let due: Bool = row["due"]
            if !due { pollCache.keep(component, .init(callback: callback, nextStart: next, oldestClaim: oldest), readAt: epoch) }
            return PollState(registered: true, callback: callback, due: due, next: next.map(Timestamp.init(microsecondsSince1970:)))
        }
    }

    public func claim(component: String, now: Timestamp, redeliverAfter: Int64, limit: Int) async throws
        -> (items: [WorkItem], next: Timestamp?) {
        let t = now.microseconds
        let claimed: (items: [WorkItem], next: Timestamp?) = try await pool.write { db in
            // Claimed in the transaction that reads them: handed out once, whoever polls.
            let rows = try Row.fetchAll(db, sql: """
                UPDATE work SET state = 'claimed', claimed_us = ?1
                WHERE id IN (SELECT id FROM work WHERE component = ?2 AND
                    ((state = 'queued' AND start_us <= ?1) OR (state = 'claimed' AND claimed_us < ?1 - ?3))
                    ORDER BY id LIMIT ?4)
                RETURNING id, token, kind, body
                """, arguments: [t, component, redeliverAfter, limit])
            var items = rows.map { r in
                WorkItem(id: r["id"], token: r["token"], kind: WorkItem.Kind(rawValue: r["kind"]) ?? .specification, body: r["body"])
            }
            items.sort { $0.id < $1.id }
            for item in items where item.kind == .specification {
                try db.execute(sql: "UPDATE job SET state = 'claimed', updated_us = ? WHERE token = ? AND state = 'queued'",
                               arguments: [t, item.token])
            }
            let next: Int64? = try Int64.fetchOne(db, sql: "SELECT min(start_us) FROM work WHERE component = ? AND state = 'queued'",
                                                  arguments: [component])
            return (items, next.map(Timestamp.init(microsecondsSince1970:)))
        }
        if !claimed.items.isEmpty { pollCache.invalidate(component) }
        return claimed
    }

    public func markSeen(_ seen: [String: (address: String?, at: Timestamp)]) async throws {
        guard !seen.isEmpty else { return }
        let rows = seen.map { ($0.key, $0.value.address, $0.value.at.microseconds) }
        try await pool.write { db in
            let update = try db.cachedStatement(sql: """
                UPDATE component SET seen_us = max(seen_us, ?), address = coalesce(?, address) WHERE name = ?
                """)
            for (name, address, t) in rows { try update.execute(arguments: [t, address, name]) }
        }
    }

    public func componentCount(address: String?) async throws -> Int {
        try await pool.read { db in
            if let address {
                return try Int.fetchOne(db, sql: "SELECT count(*) FROM component WHERE address = ?", arguments: [address]) ?? 0
            }
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM component") ?? 0
        }
    }

    public func store(component: String, messages: [Message], now: Timestamp) async throws -> StoreOutcome {
        try await batcher.store(component: component, messages: messages, now: now)
    }

    // MARK: Client-facing

    public func capabilities(presentSince: Timestamp) async throws -> [OfferedCapability] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT c.public_token, c.component, c.token, c.label, c.body FROM capability c
                JOIN component k ON k.name = c.component WHERE k.seen_us >= ?
                ORDER BY c.component, c.position
                """, arguments: [presentSince.microseconds]).map(Self.offered)
        }
    }

    public func capability(publicToken: String) async throws -> OfferedCapability? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT public_token, component, token, label, body FROM capability WHERE public_token = ?",
                             arguments: [publicToken]).map(Self.offered)
        }
    }

    public func components() async throws -> [ComponentSummary] {
        try await pool.read { db in
            let caps = try Row.fetchAll(db, sql: "SELECT component, public_token, label FROM capability ORDER BY component, position")
            var byComponent: [String: [(token: String, label: String?)]] = [:]
            for r in caps { byComponent[r["component"], default: []].append((r["public_token"], r["label"])) }
            return try Row.fetchAll(db, sql: "SELECT name, address, registered_us, seen_us FROM component ORDER BY name").map { r in
                ComponentSummary(name: r["name"], address: r["address"],
                                 registered: Timestamp(microsecondsSince1970: r["registered_us"]),
                                 seen: Timestamp(microsecondsSince1970: r["seen_us"]),
                                 capabilities: byComponent[r["name"]] ?? [])
            }
        }
    }

    static func offered(_ r: Row) -> OfferedCapability {
        OfferedCapability(publicToken: r["public_token"], component: r["component"], token: r["token"], label: r["label"], body: r["body"])
    }

    public func enqueue(_ jobs: [NewJob], now: Timestamp, maxQueued: Int) async throws -> [EnqueueOutcome] {
        let encoder = MessageEncoder()
        let bodies = jobs.map { encoder.encodeString($0.specification) }
        let t = now.microseconds
        let outcomes = try await pool.write { db in
            var outcomes: [EnqueueOutcome] = []
            var waiting: [String: Int] = [:]
            for (job, body) in zip(jobs, bodies) {
                if waiting[job.component] == nil {
                    waiting[job.component] = try Int.fetchOne(db, sql: """
                        SELECT count(*) FROM work WHERE component = ? AND state IN ('queued', 'claimed')
                        """, arguments: [job.component]) ?? 0
                }
                if waiting[job.component, default: 0] >= maxQueued {
                    outcomes.append(.full)
                    continue
                }
                try db.execute(sql: """
                    INSERT INTO job(token, component, capability, label, state, specification, created_us, updated_us, owner)
                    VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?) ON CONFLICT(token) DO NOTHING
                    """, arguments: [job.token, job.component, job.capability, job.label, body, t, t, job.owner])
                guard db.changesCount == 1 else {
                    outcomes.append(.exists)
                    continue
                }
                try db.execute(sql: """
                    INSERT INTO work(component, token, kind, body, start_us, created_us) VALUES (?, ?, 'specification', ?, ?, ?)
                    """, arguments: [job.component, job.token, body, job.start.microseconds, t])
                waiting[job.component, default: 0] += 1
                outcomes.append(.queued)
            }
            return outcomes
        }
        for (job, outcome) in zip(jobs, outcomes) where outcome == .queued { pollCache.invalidate(job.component) }
        return outcomes
    }

    public func enqueueInterrupt(token: String, now: Timestamp) async throws -> Bool {
        let (known, queuedFor) = try await pool.write { db -> (Bool, String?) in
            guard let row = try Row.fetchOne(db, sql: "SELECT component, specification, state FROM job WHERE token = ?",
                                             arguments: [token]) else { return (false, nil) }
            let state: String = row["state"]
            if state == JobRecord.State.done.rawValue || state == JobRecord.State.failed.rawValue { return (true, nil) }
            if state == JobRecord.State.queued.rawValue {
                // Never handed out: it need not reach the component at all. Its result is
                // empty (what an interrupt returns: what was measured, here nothing).
                try db.execute(sql: "UPDATE work SET state = 'done' WHERE token = ? AND state = 'queued'", arguments: [token])
                guard case .specification(let spec) = try MessageDecoder().decode(Array((row["specification"] as String).utf8)) else {
                    return (false, nil)
                }
                var empty = Result(specification: spec, when: When(start: .at(now), end: .at(now)))
                empty.statement.token = token
                try db.execute(sql: "UPDATE job SET state = 'done', answer = ?, updated_us = ? WHERE token = ?",
                               arguments: [MessageEncoder().encodeString(.result(empty)), now.microseconds, token])
                return (true, nil)
            }
            // The whole interrupt, as the RI's component needs it (cmp-06).
            guard case .specification(let spec) = try MessageDecoder().decode(Array((row["specification"] as String).utf8)) else {
                return (false, nil)
            }
            // One interrupt waiting per job is enough, however often a client asks.
            if try Bool.fetchOne(db, sql: """
                SELECT EXISTS(SELECT 1 FROM work WHERE token = ? AND kind = 'interrupt' AND state IN ('queued', 'claimed'))
                """, arguments: [token]) == true { return (true, nil) }
            var i = Interrupt(specification: spec)
            i.statement.token = token
            let interrupt = MessageEncoder().encodeString(.interrupt(i))
            try db.execute(sql: """
                INSERT INTO work(component, token, kind, body, start_us, created_us) VALUES (?, ?, 'interrupt', ?, ?, ?)
                """, arguments: [row["component"] as String, token, interrupt, now.microseconds, now.microseconds])
            return (true, row["component"] as String)
        }
        if let queuedFor { pollCache.invalidate(queuedFor) }
        return known
    }

    public func job(token: String) async throws -> JobRecord? {
        try await pool.read { db in
            guard let r = try Row.fetchOne(db, sql: """
                SELECT token, component, state, specification, receipt, answer, owner FROM job WHERE token = ?
                """, arguments: [token]) else { return nil }
            var answer: String? = r["answer"]
            if answer == nil {
                // Its results, in the order they were measured: one, or an envelope of the
                // repetitions of a repeated specification.
                let bodies = try String.fetchAll(db, sql: """
                    SELECT body FROM result WHERE component = ? AND token = ? ORDER BY coalesce(start_us, received_us), id LIMIT 1000
                    """, arguments: [r["component"] as String, token])
                answer = combinedAnswer(token: token, bodies: bodies)
            }
            return JobRecord(token: r["token"], component: r["component"], state: JobRecord.State(rawValue: r["state"]) ?? .queued,
                             specification: r["specification"], receipt: r["receipt"], answer: answer, owner: r["owner"])
        }
    }

    public func openReceipts(component: String, limit: Int) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(db, sql: """
                SELECT receipt FROM job WHERE component = ? AND state = 'running' AND receipt IS NOT NULL ORDER BY updated_us LIMIT ?
                """, arguments: [component, limit])
        }
    }

    // MARK: Results and retention

    public func results(component: String?, label: String?, from: Timestamp?, to: Timestamp?, limit: Int) async throws -> [ResultSummary] {
        try await pool.read { db in
            var sql = "SELECT id, component, token, label, start_us, end_us, rows, bytes, received_us FROM result WHERE 1 = 1"
            var args: [(any DatabaseValueConvertible)?] = []
            if let component { sql += " AND component = ?"; args.append(component) }
            if let label { sql += " AND label = ?"; args.append(label) }
            if let to { sql += " AND coalesce(start_us, received_us) <= ?"; args.append(to.microseconds) }
            if let from { sql += " AND coalesce(end_us, start_us, received_us) >= ?"; args.append(from.microseconds) }
            sql += " ORDER BY coalesce(start_us, received_us), id LIMIT ?"
            args.append(limit)
            return try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).map { r in
                ResultSummary(id: r["id"], component: r["component"], token: r["token"], label: r["label"],
                              start: (r["start_us"] as Int64?).map(Timestamp.init(microsecondsSince1970:)),
                              end: (r["end_us"] as Int64?).map(Timestamp.init(microsecondsSince1970:)),
                              rows: r["rows"], bytes: r["bytes"], received: Timestamp(microsecondsSince1970: r["received_us"]))
            }
        }
    }

    public func resultBody(id: Int64) async throws -> String? {
        try await pool.read { db in try String.fetchOne(db, sql: "SELECT body FROM result WHERE id = ?", arguments: [id]) }
    }

    public func series(component: String, label: String, from: Timestamp, to: Timestamp) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(db, sql: """
                SELECT body FROM result WHERE component = ? AND label = ? AND start_us <= ? AND coalesce(end_us, start_us) >= ?
                ORDER BY start_us, id
                """, arguments: [component, label, to.microseconds, from.microseconds])
        }
    }

    public func prune(olderThan: Timestamp, maxBytes: Int, forgetBefore: Timestamp) async throws -> Int {
        let deleted = try await pool.write { db in
            let t = olderThan.microseconds
            try db.execute(sql: "DELETE FROM result WHERE received_us < ?", arguments: [t])
            var deleted = db.changesCount
            var total = try Int.fetchOne(db, sql: "SELECT coalesce(sum(bytes), 0) FROM result") ?? 0
            while total > maxBytes {
                // The oldest first, a batch at a time.
                let rows = try Row.fetchAll(db, sql: "SELECT id, bytes FROM result ORDER BY received_us, id LIMIT 256")
                if rows.isEmpty { break }
                var ids: [Int64] = []
                for r in rows where total > maxBytes {
                    ids.append(r["id"])
                    total -= r["bytes"] as Int
                }
                try db.execute(sql: "DELETE FROM result WHERE id IN (\(ids.map { _ in "?" }.joined(separator: ",")))",
                               arguments: StatementArguments(ids))
                deleted += ids.count
            }
            // Jobs in any state once nothing happened to them for the retention age, with
            // their work; then the components absent since `forgetBefore` with nothing waiting.
            try db.execute(sql: "DELETE FROM work WHERE token IN (SELECT token FROM job WHERE updated_us < ?)", arguments: [t])
            try db.execute(sql: "DELETE FROM job WHERE updated_us < ?", arguments: [t])
            try db.execute(sql: "DELETE FROM work WHERE state = 'done' AND created_us < ?", arguments: [t])
            try db.execute(sql: """
                DELETE FROM component WHERE seen_us < ? AND NOT EXISTS (
                    SELECT 1 FROM work WHERE work.component = component.name AND work.state IN ('queued', 'claimed'))
                """, arguments: [forgetBefore.microseconds])
            return deleted
        }
        // Forgotten components are registered no longer.
        pollCache.invalidate(nil)
        return deleted
    }

    public func resultBytes() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT coalesce(sum(bytes), 0) FROM result") ?? 0 }
    }
}

extension SQLiteStore {
    /// Writes what one component sent for its own jobs; a token that is no job of that
    /// component is not written (a component cannot fill the store, or anyone's results,
    /// with results nobody asked for).
    static func apply(_ db: Database, component: String, _ writes: [StoredMessage], now: Int64) throws -> StoreOutcome {
        var outcome = StoreOutcome(stored: 0, unknownTokens: [])
        for w in writes {
            guard try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS(SELECT 1 FROM job WHERE token = ? AND component = ?)"),
                                    arguments: [w.token, component]) == true else {
                outcome.unknownTokens.append(w.token)
                continue
            }
            outcome.stored += 1
            switch w.kind {
            case .receipt:
                try db.cachedStatement(sql: """
                    UPDATE job SET receipt = ?, state = CASE WHEN state IN ('queued', 'claimed') THEN 'running' ELSE state END,
                        updated_us = ? WHERE token = ? AND component = ?
                    """).execute(arguments: [w.body, now, w.token, component])
                try db.cachedStatement(sql: "UPDATE work SET state = 'done' WHERE token = ? AND component = ? AND kind = 'specification'").execute(arguments: [w.token, component])
            case .result:
                // A component's retry of a result it sent is kept once (one per start: each
                // repetition of a repeated specification is a result of its own).
                try db.cachedStatement(sql: """
                    INSERT INTO result(component, token, label, start_us, end_us, rows, bytes, received_us, body)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
                    """).execute(arguments: [component, w.token, w.label, w.start, w.end, w.rows, w.body.utf8.count, now, w.body])
                try db.cachedStatement(sql: "UPDATE job SET state = 'done', updated_us = ? WHERE token = ? AND component = ?").execute(arguments: [now, w.token, component])
                try db.cachedStatement(sql: "UPDATE work SET state = 'done' WHERE token = ? AND component = ?").execute(arguments: [w.token, component])
            case .exception:
                try db.cachedStatement(sql: "UPDATE job SET answer = ?, state = 'failed', updated_us = ? WHERE token = ? AND component = ?").execute(arguments: [w.body, now, w.token, component])
                try db.cachedStatement(sql: "UPDATE work SET state = 'done' WHERE token = ? AND component = ?").execute(arguments: [w.token, component])
            }
        }
        return outcome
    }
}

public import Logging
public import MPlane
import MPlaneIO
import PostgresNIO
import Synchronization

/// The shared store: PostgreSQL through postgres-nio, for several `mpsup` behind one address.
/// Everything that must happen once happens in the database: a queued item is claimed with
/// `FOR UPDATE SKIP LOCKED` in the transaction that hands it out, so whichever supervisor a
/// component polls gets it, once; a result posted to one is read by all. The client's
/// connection pool is a service: ``run()`` owns it, and the supervisor runs it beside its
/// servers. Migrations are applied at start in one transaction under an advisory lock, so
/// two supervisors starting together do not both apply them.
///
/// Layout as in ``SQLiteStore`` (the same tables and indexes; `row_count` for `rows`).
public final class PostgresStore: SupervisorStore {
    let client: PostgresClient
    let logger: Logger
    let batcher: WriteBatcher
    /// Components whose last poll found nothing due (see ``PollCache``).
    let pollCache = PollCache()
    /// The channel every change to a component's registration or queue is announced on.
    static let channel = "mpsup_work"
    /// Where it connects, without the password (for logs).
    public let location: String
    /// Whether it listens for changes (and so answers polls from memory).
    let serving: Bool
    /// The pool's size unless told otherwise (`store-connections`).
    public static let defaultConnections = 8
    /// Where and how it connects (``Endpoint``).
    let endpoint: Endpoint
    /// How long ``prepare()`` tries to connect before it gives up with the last reason.
    let connectPatience: Duration

    public struct Failure: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, or with `?host=/socket/directory`
    /// (libpq's form) for a Unix socket in that directory; over TCP, libpq's `sslmode`,
    /// `sslrootcert`, `sslcert` and `sslkey` (``Endpoint``).
    /// `connections`: the pool's size, every connection open while the store runs (at least 2:
    /// one listens for notifications).
    /// `serving`: this process answers probes from it, and listens for other supervisors'
    /// changes to answer polls from memory; false for tools that only read.
    /// `connectPatience`: how long ``prepare()`` keeps trying to connect (the database may
    /// be starting too) before it fails with the reason of the last attempt.
    public init(url: String, connections: Int = PostgresStore.defaultConnections, serving: Bool = true, connectPatience: Duration = .seconds(25),
                logger: Logger = Logger(label: "mplane.store.postgres")) throws(Failure) {
        self.logger = logger
        self.serving = serving
        let endpoint = try Endpoint(url)
        location = endpoint.display
        self.endpoint = endpoint
        self.connectPatience = connectPatience
        var c = endpoint.client
        // A fixed pool: postgres-nio schedules an idle-timeout timer each time a connection
        // beyond the minimum is put back, and a keep-alive timer each time any is, and a
        // cancelled timer's sleep holds its memory until its deadline (60 s, 30 s). At
        // thousands of queries a second that was 60 MiB with 10,000 components registering
        // (BENCHMARKS.md, "Supervisor"). Connections that stay open need neither. The server
        // probes each TCP connection instead (after 60 s idle, every 10 s, 6 times), which keeps
        // a firewall's state alive and finds a silently dead connection within two minutes (not
        // TCP's quarter of an hour): it closes, fails what it held (503, retried) and is
        // replaced, the pool never going below its size. Over a Unix socket these do nothing.
        c.options.minimumConnections = Swift.max(2, connections)
        c.options.maximumConnections = Swift.max(2, connections)
        c.options.keepAliveBehavior = nil
        c.options.additionalStartupParameters += [
            ("tcp_keepalives_idle", "60"), ("tcp_keepalives_interval", "10"), ("tcp_keepalives_count", "6"),
        ]
        client = PostgresClient(configuration: c, backgroundLogger: logger)
        let client = self.client, log = logger
        batcher = WriteBatcher(writers: 4) { batch in
            try await client.withTransaction(logger: log) { connection in try await Self.apply(connection, logger: log, batch) }
        }
    }

    /// Runs the pool, and (serving) the listener that keeps ``pollCache`` true to the database:
    /// one connection of the pool stays on `LISTEN mpsup_work`; while it is down the cache is off.
    public func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.client.run() }
            if serving { group.addTask { await self.listen() } }
        }
    }

    func listen() async {
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: Self.channel) { notifications in
                        self.pollCache.setEnabled(true)
                        for try await n in notifications { self.pollCache.invalidate(n.payload == "*" ? nil : n.payload) }
                    }
                }
            } catch {
                if Task.isCancelled { break }
                logger.notice("listening for other supervisors' changes failed; polls read the database until it is back",
                              metadata: ["error": "\(error)"])
            }
            pollCache.setEnabled(false)
            try? await Task.sleep(for: .seconds(1))
        }
        pollCache.setEnabled(false)
    }

    /// Announces, inside the transaction of `connection`, that `components` changed (on
    /// commit); and forgets them here at once.
    func announce(_ components: [String], on connection: PostgresConnection) async throws {
        guard !components.isEmpty else { return }
        for c in components { pollCache.invalidate(c) }
        try await connection.query("SELECT pg_notify(\(Self.channel), c) FROM unnest(\(components)::text[]) AS c", logger: logger)
    }

    /// Applies the migrations the database lacks, in one transaction under an advisory lock
    /// (``run()`` must be running). Should the pool not have done so within a second, a
    /// connection of its own is tried beside it, once a second for ``connectPatience`` at
    /// most: a database that cannot be reached, or a TLS or authentication failure, then
    /// stops the start with its reason, which the pool would only retry in silence.
    public func prepare() async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask { try await self.migrate(); return true }
            group.addTask {
                try await Task.sleep(for: .seconds(1))
                try await self.reachable()
                return false
            }
            defer { group.cancelAll() }
            // Done when the migrations are; a reachable database leaves them to the pool.
            while let migrated = try await group.next() {
                if migrated { return }
            }
        }
    }

    func migrate() async throws {
        try await client.withTransaction(logger: logger) { c in
            try await c.query("SELECT pg_advisory_xact_lock(730501)", logger: logger)
            try await c.query("CREATE TABLE IF NOT EXISTS mpsup_migrations (id TEXT PRIMARY KEY, applied_us BIGINT NOT NULL)", logger: logger)
            var applied: Set<String> = []
            for try await id in try await c.query("SELECT id FROM mpsup_migrations", logger: logger).decode(String.self) { applied.insert(id) }
            for (id, statements) in Self.migrations where !applied.contains(id) {
                for sql in statements { try await c.query(PostgresQuery(unsafeSQL: sql), logger: logger) }
                let now = Int64(0)
                try await c.query("INSERT INTO mpsup_migrations(id, applied_us) VALUES (\(id), \(now))", logger: logger)
                logger.info("migration applied", metadata: ["mplane.migration": "\(id)"])
            }
        }
    }

    static let migrations: [(String, [String])] = [
        ("1-initial", [
            """
            CREATE TABLE component (name TEXT PRIMARY KEY, address TEXT, callback TEXT,
                registered_us BIGINT NOT NULL, seen_us BIGINT NOT NULL)
            """,
            """
            CREATE TABLE capability (public_token TEXT PRIMARY KEY,
                component TEXT NOT NULL REFERENCES component(name) ON DELETE CASCADE,
                token TEXT NOT NULL, label TEXT, position INTEGER NOT NULL, body TEXT NOT NULL)
            """,
            "CREATE INDEX capability_component ON capability(component)",
            """
            CREATE TABLE job (token TEXT PRIMARY KEY, component TEXT NOT NULL, capability TEXT, label TEXT,
                state TEXT NOT NULL, specification TEXT NOT NULL, receipt TEXT, answer TEXT,
                created_us BIGINT NOT NULL, updated_us BIGINT NOT NULL)
            """,
            "CREATE INDEX job_age ON job(updated_us)",
            """
            CREATE TABLE work (id BIGSERIAL PRIMARY KEY, component TEXT NOT NULL, token TEXT NOT NULL, kind TEXT NOT NULL,
                body TEXT NOT NULL, start_us BIGINT NOT NULL, state TEXT NOT NULL DEFAULT 'queued',
                claimed_us BIGINT, created_us BIGINT NOT NULL)
            """,
            "CREATE INDEX work_due ON work(component, state, start_us)",
            "CREATE INDEX work_token ON work(token)",
            """
            CREATE TABLE result (id BIGSERIAL PRIMARY KEY, component TEXT NOT NULL, token TEXT NOT NULL, label TEXT,
                start_us BIGINT, end_us BIGINT, row_count INTEGER NOT NULL, bytes INTEGER NOT NULL,
                received_us BIGINT NOT NULL, body TEXT NOT NULL)
            """,
            "CREATE UNIQUE INDEX result_once ON result(component, token, coalesce(start_us, -1))",
            "CREATE INDEX result_series ON result(component, label, start_us)",
            "CREATE INDEX result_age ON result(received_us)",
        ]),
        ("2-job-owner", ["ALTER TABLE job ADD COLUMN owner TEXT"]),
    ]

    // MARK: Probe-facing

    public func register(component: String, address: String?, capabilities: [Capability], callback: CallbackStyle?,
                         now: Timestamp) async throws -> RegistrationOutcome {
        let encoder = MessageEncoder()
        let rows = capabilities.enumerated().map { (i, c) -> (String, String, String?, Int, String) in
            var c = c
            c.statement.token = c.token
            return (publicToken(component: component, token: c.token), c.token, c.statement.label, i, encoder.encodeString(.capability(c)))
        }
        let t = now.microseconds, style = callback?.rawValue
        try await client.withTransaction(logger: logger) { c in
            try await c.query("""
                INSERT INTO component(name, address, callback, registered_us, seen_us) VALUES (\(component), \(address), \(style), \(t), \(t))
                ON CONFLICT (name) DO UPDATE SET address = EXCLUDED.address, callback = EXCLUDED.callback,
                    registered_us = EXCLUDED.registered_us, seen_us = EXCLUDED.seen_us
                """, logger: logger)
            try await c.query("DELETE FROM capability WHERE component = \(component)", logger: logger)
            try await announce([component], on: c)
            for (pt, token, label, position, body) in rows {
                try await c.query("""
                    INSERT INTO capability(public_token, component, token, label, position, body)
                    VALUES (\(pt), \(component), \(token), \(label), \(position), \(body))
                    ON CONFLICT (public_token) DO UPDATE SET label = EXCLUDED.label, position = EXCLUDED.position, body = EXCLUDED.body
                    """, logger: logger)
            }
        }
        return RegistrationOutcome(registered: capabilities.map { $0.statement.label ?? $0.token })
    }

    public func withdraw(component: String, tokens: [String], now: Timestamp) async throws {
        try await client.query("DELETE FROM capability WHERE component = \(component) AND token = ANY(\(tokens))", logger: logger)
    }

    /// What every poll asks, prepared once per connection (parsed and planned once).
    struct PollStateQuery: PostgresPreparedStatement {
        static let sql = """
            SELECT callback,
                EXISTS(SELECT 1 FROM work WHERE component = $1 AND state = 'queued' AND start_us <= $2) OR
                EXISTS(SELECT 1 FROM work WHERE component = $1 AND state = 'claimed' AND claimed_us < $3),
                (SELECT min(start_us) FROM work WHERE component = $1 AND state = 'queued'),
                (SELECT min(claimed_us) FROM work WHERE component = $1 AND state = 'claimed')
            FROM component WHERE name = $1
            """
        typealias Row = (String?, Bool, Int64?, Int64?)
        var component: String
        var now: Int64
        var before: Int64
        func makeBindings() throws -> PostgresBindings {
            var b = PostgresBindings()
            b.append(component)
            b.append(now)
            b.append(before)
            return b
        }
        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    public func pollState(component: String, now: Timestamp, redeliverAfter: Int64) async throws -> PollState {
        let t = now.microseconds
        if let known = pollCache.lookup(component, now: t, redeliverAfter: redeliverAfter) { return known }
        let epoch = pollCache.epoch
        let rows = try await client.execute(PollStateQuery(component: component, now: t, before: t - redeliverAfter), logger: logger)
        for try await (style, due, next, oldestClaim) in rows {
            let callback = style.flatMap(CallbackStyle.init(rawValue:))
            if !due { pollCache.keep(component, .init(callback: callback, nextStart: next, oldestClaim: oldestClaim), readAt: epoch) }
            return PollState(registered: true, callback: callback, due: due, next: next.map(Timestamp.init(microsecondsSince1970:)))
        }
        return PollState(registered: false, callback: nil, due: false, next: nil)
    }

    public func claim(component: String, now: Timestamp, redeliverAfter: Int64, limit: Int) async throws
        -> (items: [WorkItem], next: Timestamp?) {
        let t = now.microseconds, before = t - redeliverAfter
        return try await client.withTransaction(logger: logger) { c in
            // Claimed in the transaction that reads them; rows another supervisor is claiming
            // right now are skipped, not waited for: each item is handed out once.
            var items: [WorkItem] = []
            let rows = try await c.query("""
                UPDATE work SET state = 'claimed', claimed_us = \(t)
                WHERE id IN (SELECT id FROM work WHERE component = \(component) AND
                    ((state = 'queued' AND start_us <= \(t)) OR (state = 'claimed' AND claimed_us < \(before)))
                    ORDER BY id LIMIT \(limit) FOR UPDATE SKIP LOCKED)
                RETURNING id, token, kind, body
                """, logger: logger)
            for try await (id, token, kind, body) in rows.decode((Int64, String, String, String).self) {
                items.append(WorkItem(id: id, token: token, kind: WorkItem.Kind(rawValue: kind) ?? .specification, body: body))
            }
            items.sort { $0.id < $1.id }
            if !items.isEmpty { try await announce([component], on: c) }
            let tokens = items.filter { $0.kind == .specification }.map(\.token)
            if !tokens.isEmpty {
                try await c.query("UPDATE job SET state = 'claimed', updated_us = \(t) WHERE token = ANY(\(tokens)) AND state = 'queued'",
                                  logger: logger)
            }
            var next: Int64? = nil
            for try await n in try await c.query("SELECT min(start_us) FROM work WHERE component = \(component) AND state = 'queued'",
                                                  logger: logger).decode(Int64?.self) { next = n }
            return (items, next.map(Timestamp.init(microsecondsSince1970:)))
        }
    }

    public func markSeen(_ seen: [String: (address: String?, at: Timestamp)]) async throws {
        guard !seen.isEmpty else { return }
        // One statement for the whole batch.
        let names = Array(seen.keys)
        let addresses = names.map { seen[$0]?.address ?? "" }
        let times = names.map { seen[$0]?.at.microseconds ?? 0 }
        try await client.query("""
            UPDATE component c SET seen_us = GREATEST(c.seen_us, v.t), address = COALESCE(NULLIF(v.a, ''), c.address)
            FROM unnest(\(names)::text[], \(addresses)::text[], \(times)::bigint[]) AS v(n, a, t) WHERE c.name = v.n
            """, logger: logger)
    }

    public func componentCount(address: String?) async throws -> Int {
        let query: PostgresQuery = address.map { "SELECT count(*) FROM component WHERE address = \($0)" } ?? "SELECT count(*) FROM component"
        for try await n in try await client.query(query, logger: logger).decode(Int64.self) { return Int(n) }
        return 0
    }

    // MARK: Client-facing

    public func capabilities(presentSince: Timestamp) async throws -> [OfferedCapability] {
        let rows = try await client.query("""
            SELECT c.public_token, c.component, c.token, c.label, c.body FROM capability c
            JOIN component k ON k.name = c.component WHERE k.seen_us >= \(presentSince.microseconds)
            ORDER BY c.component, c.position
            """, logger: logger)
        var out: [OfferedCapability] = []
        for try await (pt, component, token, label, body) in rows.decode((String, String, String, String?, String).self) {
            out.append(OfferedCapability(publicToken: pt, component: component, token: token, label: label, body: body))
        }
        return out
    }

    public func capability(publicToken: String) async throws -> OfferedCapability? {
        let rows = try await client.query("SELECT public_token, component, token, label, body FROM capability WHERE public_token = \(publicToken)",
                                          logger: logger)
        for try await (pt, component, token, label, body) in rows.decode((String, String, String, String?, String).self) {
            return OfferedCapability(publicToken: pt, component: component, token: token, label: label, body: body)
        }
        return nil
    }

    public func components() async throws -> [ComponentSummary] {
        var byComponent: [String: [(token: String, label: String?)]] = [:]
        for try await (component, pt, label) in try await client.query(
            "SELECT component, public_token, label FROM capability ORDER BY component, position", logger: logger
        ).decode((String, String, String?).self) {
            byComponent[component, default: []].append((pt, label))
        }
        var out: [ComponentSummary] = []
        for try await (name, address, registered, seen) in try await client.query(
            "SELECT name, address, registered_us, seen_us FROM component ORDER BY name", logger: logger
        ).decode((String, String?, Int64, Int64).self) {
            out.append(ComponentSummary(name: name, address: address, registered: Timestamp(microsecondsSince1970: registered),
                                        seen: Timestamp(microsecondsSince1970: seen), capabilities: byComponent[name] ?? []))
        }
        return out
    }

    public func enqueue(_ jobs: [NewJob], now: Timestamp, maxQueued: Int) async throws -> [EnqueueOutcome] {
        let encoder = MessageEncoder()
        let bodies = jobs.map { encoder.encodeString($0.specification) }
        let t = now.microseconds
        // Three statements whatever the number of jobs (a fan-out to 10,000 components is one
        // request): the queue lengths, the jobs, their work.
        return try await client.withTransaction(logger: logger) { c in
            var waiting: [String: Int] = [:]
            let components = Array(Set(jobs.map(\.component)))
            for try await (component, n) in try await c.query("""
                SELECT component, count(*) FROM work WHERE component = ANY(\(components)) AND state IN ('queued', 'claimed') GROUP BY component
                """, logger: logger).decode((String, Int64).self) { waiting[component] = Int(n) }
            var outcomes = [EnqueueOutcome](repeating: .full, count: jobs.count)
            var candidates: [Int] = []
            for (i, job) in jobs.enumerated() where waiting[job.component, default: 0] < maxQueued {
                waiting[job.component, default: 0] += 1
                candidates.append(i)
            }
            guard !candidates.isEmpty else { return outcomes }
            let tokens = candidates.map { jobs[$0].token }, owners = candidates.map { jobs[$0].component }
            let capabilities = candidates.map { jobs[$0].capability ?? "" }, labels = candidates.map { jobs[$0].label ?? "" }
            let specs = candidates.map { bodies[$0] }, starts = candidates.map { jobs[$0].start.microseconds }
            let clients = candidates.map { jobs[$0].owner ?? "" }
            var inserted: Set<String> = []
            for try await token in try await c.query("""
                INSERT INTO job(token, component, capability, label, state, specification, created_us, updated_us, owner)
                SELECT v.token, v.component, NULLIF(v.capability, ''), NULLIF(v.label, ''), 'queued', v.body, \(t), \(t), NULLIF(v.owner, '')
                FROM unnest(\(tokens)::text[], \(owners)::text[], \(capabilities)::text[], \(labels)::text[], \(specs)::text[], \(clients)::text[])
                    AS v(token, component, capability, label, body, owner)
                ON CONFLICT (token) DO NOTHING RETURNING token
                """, logger: logger).decode(String.self) { inserted.insert(token) }
            let kept = candidates.indices.filter { inserted.contains(tokens[$0]) }
            if !kept.isEmpty {
                let kt = kept.map { tokens[$0] }, kc = kept.map { owners[$0] }, kb = kept.map { specs[$0] }, ks = kept.map { starts[$0] }
                try await c.query("""
                    INSERT INTO work(component, token, kind, body, start_us, created_us)
                    SELECT v.component, v.token, 'specification', v.body, v.start, \(t)
                    FROM unnest(\(kc)::text[], \(kt)::text[], \(kb)::text[], \(ks)::bigint[]) AS v(component, token, body, start)
                    """, logger: logger)
                try await announce(Array(Set(kc)), on: c)
            }
            for (k, i) in candidates.enumerated() { outcomes[i] = inserted.contains(tokens[k]) ? .queued : .exists }
            return outcomes
        }
    }

    public func enqueueInterrupt(token: String, now: Timestamp) async throws -> Bool {
        let t = now.microseconds
        return try await client.withTransaction(logger: logger) { c in
            var found: (String, String, String)? = nil
            for try await row in try await c.query("SELECT component, specification, state FROM job WHERE token = \(token) FOR UPDATE",
                                                   logger: logger).decode((String, String, String).self) { found = row }
            guard let (component, specification, state) = found else { return false }
            if state == JobRecord.State.done.rawValue || state == JobRecord.State.failed.rawValue { return true }
            guard case .specification(let spec) = try MessageDecoder().decode(Array(specification.utf8)) else { return false }
            if state == JobRecord.State.queued.rawValue {
                // Never handed out: it need not reach the component. Its result is empty.
                try await c.query("UPDATE work SET state = 'done' WHERE token = \(token) AND state = 'queued'", logger: logger)
                try await announce([component], on: c)
                var empty = Result(specification: spec, when: When(start: .at(now), end: .at(now)))
                empty.statement.token = token
                let body = MessageEncoder().encodeString(.result(empty))
                try await c.query("UPDATE job SET state = 'done', answer = \(body), updated_us = \(t) WHERE token = \(token)", logger: logger)
                return true
            }
            var open = false
            for try await e in try await c.query("""
                SELECT EXISTS(SELECT 1 FROM work WHERE token = \(token) AND kind = 'interrupt' AND state IN ('queued', 'claimed'))
                """, logger: logger).decode(Bool.self) { open = e }
            if open { return true }
            var i = Interrupt(specification: spec)
            i.statement.token = token
            let body = MessageEncoder().encodeString(.interrupt(i))
            try await c.query("""
                INSERT INTO work(component, token, kind, body, start_us, created_us) VALUES (\(component), \(token), 'interrupt', \(body), \(t), \(t))
                """, logger: logger)
            try await announce([component], on: c)
            return true
        }
    }

    public func job(token: String) async throws -> JobRecord? {
        var found: (String, String, String, String, String?, String?, String?)? = nil
        for try await row in try await client.query(
            "SELECT token, component, state, specification, receipt, answer, owner FROM job WHERE token = \(token)", logger: logger
        ).decode((String, String, String, String, String?, String?, String?).self) { found = row }
        guard let (t, component, state, specification, receipt, stored, owner) = found else { return nil }
        var answer = stored
        if answer == nil {
            var bodies: [String] = []
            for try await b in try await client.query("""
                SELECT body FROM result WHERE component = \(component) AND token = \(token)
                ORDER BY coalesce(start_us, received_us), id LIMIT 1000
                """, logger: logger).decode(String.self) { bodies.append(b) }
            answer = combinedAnswer(token: token, bodies: bodies)
        }
        return JobRecord(token: t, component: component, state: JobRecord.State(rawValue: state) ?? .queued,
                         specification: specification, receipt: receipt, answer: answer, owner: owner)
    }

    public func openReceipts(component: String, limit: Int) async throws -> [String] {
        var out: [String] = []
        for try await r in try await client.query("""
            SELECT receipt FROM job WHERE component = \(component) AND state = 'running' AND receipt IS NOT NULL
            ORDER BY updated_us LIMIT \(limit)
            """, logger: logger).decode(String.self) { out.append(r) }
        return out
    }
}

/// A job's answer from its results: the one result, or an envelope of the repetitions of a
/// repeated specification, in order; nil when none came yet.
func combinedAnswer(token: String, bodies: [String]) -> String? {
    if bodies.count == 1 { return bodies[0] }
    if bodies.isEmpty { return nil }
    return "{\"contents\": [" + bodies.joined(separator: ", ") + "], \"envelope\": \"message\", \"token\": \"" + token + "\", \"version\": 1}"
}

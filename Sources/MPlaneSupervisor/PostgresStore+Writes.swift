import Logging
public import MPlane
import PostgresNIO

/// What components send (receipts, results, exceptions), written set-wise in one transaction
/// per batch (``WriteBatcher``).
extension PostgresStore {
    public func store(component: String, messages: [Message], now: Timestamp) async throws -> StoreOutcome {
        try await batcher.store(component: component, messages: messages, now: now)
    }

    /// Writes a batch of what components sent, set-wise: a handful of statements for the
    /// whole batch (receipts, then results, then exceptions), whatever its size. A token that
    /// is no job of the component that sent it is not written.
    static func apply(_ c: PostgresConnection, logger: Logger, _ batch: WriteBatcher.Batch) async throws -> [StoreOutcome] {
        var items: [(index: Int, component: String, write: StoredMessage, now: Int64)] = []
        for (i, entry) in batch.enumerated() {
            for w in entry.writes { items.append((i, entry.component, w, entry.now)) }
        }
        if items.allSatisfy({ $0.write.kind == .result }) { return try await applyResults(c, logger: logger, items, count: batch.count) }
        var known: Set<String> = []
        let tokens = items.map(\.write.token), owners = items.map(\.component)
        for try await (token, component) in try await c.query("""
            SELECT j.token, j.component FROM job j JOIN unnest(\(tokens)::text[], \(owners)::text[]) AS v(token, component)
                ON j.token = v.token AND j.component = v.component
            """, logger: logger).decode((String, String).self) { known.insert(token + "\u{0}" + component) }
        var outcomes = [StoreOutcome](repeating: StoreOutcome(stored: 0, unknownTokens: []), count: batch.count)
        var receipts: [(String, String, String, Int64)] = [], results: [(String, StoredMessage, Int64)] = []
        var exceptions: [(String, String, String, Int64)] = []
        for item in items {
            guard known.contains(item.write.token + "\u{0}" + item.component) else {
                outcomes[item.index].unknownTokens.append(item.write.token)
                continue
            }
            outcomes[item.index].stored += 1
            switch item.write.kind {
            case .receipt: receipts.append((item.component, item.write.token, item.write.body, item.now))
            case .result: results.append((item.component, item.write, item.now))
            case .exception: exceptions.append((item.component, item.write.token, item.write.body, item.now))
            }
        }
        if !receipts.isEmpty {
            let (cs, ts, bs, ns) = (receipts.map(\.0), receipts.map(\.1), receipts.map(\.2), receipts.map(\.3))
            try await c.query("""
                UPDATE job j SET receipt = v.body, state = CASE WHEN j.state IN ('queued', 'claimed') THEN 'running' ELSE j.state END,
                    updated_us = v.now
                FROM unnest(\(cs)::text[], \(ts)::text[], \(bs)::text[], \(ns)::bigint[]) AS v(component, token, body, now)
                WHERE j.token = v.token AND j.component = v.component
                """, logger: logger)
            try await c.query("""
                UPDATE work w SET state = 'done' FROM unnest(\(cs)::text[], \(ts)::text[]) AS v(component, token)
                WHERE w.token = v.token AND w.component = v.component AND w.kind = 'specification'
                """, logger: logger)
        }
        if !results.isEmpty {
            // A component's retry of a result it sent is kept once (one per start).
            let cs = results.map(\.0), ts = results.map(\.1.token), ls = results.map { $0.1.label ?? "" }
            let ss = results.map { $0.1.start ?? Int64.min }, es = results.map { $0.1.end ?? Int64.min }
            let rs = results.map { Int64($0.1.rows) }, bs = results.map { Int64($0.1.body.utf8.count) }
            let ns = results.map(\.2), bodies = results.map(\.1.body)
            try await c.query("""
                INSERT INTO result(component, token, label, start_us, end_us, row_count, bytes, received_us, body)
                SELECT v.component, v.token, NULLIF(v.label, ''), NULLIF(v.s, \(Int64.min)), NULLIF(v.e, \(Int64.min)), v.r, v.b, v.now, v.body
                FROM unnest(\(cs)::text[], \(ts)::text[], \(ls)::text[], \(ss)::bigint[], \(es)::bigint[], \(rs)::bigint[],
                            \(bs)::bigint[], \(ns)::bigint[], \(bodies)::text[]) AS v(component, token, label, s, e, r, b, now, body)
                ON CONFLICT DO NOTHING
                """, logger: logger)
            try await c.query("""
                UPDATE job j SET state = 'done', updated_us = v.now FROM unnest(\(cs)::text[], \(ts)::text[], \(ns)::bigint[]) AS v(component, token, now)
                WHERE j.token = v.token AND j.component = v.component
                """, logger: logger)
            try await c.query("""
                UPDATE work w SET state = 'done' FROM unnest(\(cs)::text[], \(ts)::text[]) AS v(component, token)
                WHERE w.token = v.token AND w.component = v.component
                """, logger: logger)
        }
        if !exceptions.isEmpty {
            let (cs, ts, bs, ns) = (exceptions.map(\.0), exceptions.map(\.1), exceptions.map(\.2), exceptions.map(\.3))
            try await c.query("""
                UPDATE job j SET answer = v.body, state = 'failed', updated_us = v.now
                FROM unnest(\(cs)::text[], \(ts)::text[], \(bs)::text[], \(ns)::bigint[]) AS v(component, token, body, now)
                WHERE j.token = v.token AND j.component = v.component
                """, logger: logger)
            try await c.query("""
                UPDATE work w SET state = 'done' FROM unnest(\(cs)::text[], \(ts)::text[]) AS v(component, token)
                WHERE w.token = v.token AND w.component = v.component
                """, logger: logger)
        }
        return outcomes
    }

    /// A batch of results only (the common case): one statement, prepared once per
    /// connection (parsed and planned once), which finds the jobs, keeps the results, marks
    /// jobs and work done, and returns what it kept. It runs in the batch's transaction: a
    /// statement on its own would be committed only at the protocol's `Sync`, after its rows
    /// and its completion reached us, so its end would not mean it was durable.
    struct KeepResults: PostgresPreparedStatement {
        static let sql = """
            WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
                                            $6::bigint[], $7::bigint[], $8::bigint[], $9::text[])
                       AS v(component, token, label, s, e, r, b, now, body)),
            k AS (SELECT v.* FROM v JOIN job j ON j.token = v.token AND j.component = v.component),
            kept AS (INSERT INTO result(component, token, label, start_us, end_us, row_count, bytes, received_us, body)
                     SELECT component, token, NULLIF(label, ''), NULLIF(s, $10), NULLIF(e, $10), r, b, now, body FROM k
                     ON CONFLICT DO NOTHING RETURNING 1),
            jobs AS (UPDATE job j SET state = 'done', updated_us = k.now FROM k
                     WHERE j.token = k.token AND j.component = k.component RETURNING 1),
            spent AS (UPDATE work w SET state = 'done' FROM k WHERE w.token = k.token AND w.component = k.component RETURNING 1)
            SELECT DISTINCT token, component FROM k
            """
        typealias Row = (String, String)
        var items: [(index: Int, component: String, write: StoredMessage, now: Int64)]
        func makeBindings() throws -> PostgresBindings {
            var b = PostgresBindings()
            b.append(items.map(\.component))
            b.append(items.map(\.write.token))
            b.append(items.map { $0.write.label ?? "" })
            b.append(items.map { $0.write.start ?? Self.none })
            b.append(items.map { $0.write.end ?? Self.none })
            b.append(items.map { Int64($0.write.rows) })
            b.append(items.map { Int64($0.write.body.utf8.count) })
            b.append(items.map(\.now))
            b.append(items.map(\.write.body))
            b.append(Self.none)
            return b
        }
        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
        /// Stands for "no start" or "no end" in the arrays (stored as NULL).
        static let none = Int64.min
    }

    static func applyResults(_ c: PostgresConnection, logger: Logger,
                             _ items: [(index: Int, component: String, write: StoredMessage, now: Int64)],
                             count: Int) async throws -> [StoreOutcome] {
        var known: Set<String> = []
        for try await (token, component) in try await c.execute(KeepResults(items: items), logger: logger) {
            known.insert(token + "\u{0}" + component)
        }
        var outcomes = [StoreOutcome](repeating: StoreOutcome(stored: 0, unknownTokens: []), count: count)
        for item in items {
            if known.contains(item.write.token + "\u{0}" + item.component) {
                outcomes[item.index].stored += 1
            } else {
                outcomes[item.index].unknownTokens.append(item.write.token)
            }
        }
        return outcomes
    }
}

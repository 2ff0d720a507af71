import Logging
public import MPlane
import PostgresNIO

extension PostgresStore {
    // MARK: Results and retention

    public func results(component: String?, label: String?, from: Timestamp?, to: Timestamp?, limit: Int) async throws -> [ResultSummary] {
        let f = from?.microseconds, u = to?.microseconds
        let rows = try await client.query("""
            SELECT id, component, token, label, start_us, end_us, row_count, bytes, received_us FROM result
            WHERE (\(component)::text IS NULL OR component = \(component)) AND (\(label)::text IS NULL OR label = \(label))
              AND (\(u)::bigint IS NULL OR coalesce(start_us, received_us) <= \(u))
              AND (\(f)::bigint IS NULL OR coalesce(end_us, start_us, received_us) >= \(f))
            ORDER BY coalesce(start_us, received_us), id LIMIT \(limit)
            """, logger: logger)
        var out: [ResultSummary] = []
        for try await (id, c, token, l, start, end, rowCount, bytes, received) in rows.decode((Int64, String, String, String?, Int64?, Int64?, Int32, Int32, Int64).self) {
            out.append(ResultSummary(id: id, component: c, token: token, label: l, start: start.map(Timestamp.init(microsecondsSince1970:)),
                                     end: end.map(Timestamp.init(microsecondsSince1970:)), rows: Int(rowCount), bytes: Int(bytes),
                                     received: Timestamp(microsecondsSince1970: received)))
        }
        return out
    }

    public func resultBody(id: Int64) async throws -> String? {
        for try await b in try await client.query("SELECT body FROM result WHERE id = \(id)", logger: logger).decode(String.self) { return b }
        return nil
    }

    public func series(component: String, label: String, from: Timestamp, to: Timestamp) async throws -> [String] {
        var out: [String] = []
        for try await b in try await client.query("""
            SELECT body FROM result WHERE component = \(component) AND label = \(label) AND start_us <= \(to.microseconds)
              AND coalesce(end_us, start_us) >= \(from.microseconds) ORDER BY start_us, id
            """, logger: logger).decode(String.self) { out.append(b) }
        return out
    }

    public func prune(olderThan: Timestamp, maxBytes: Int, forgetBefore: Timestamp) async throws -> Int {
        let t = olderThan.microseconds, forget = forgetBefore.microseconds, cap = Int64(maxBytes)
        return try await client.withTransaction(logger: logger) { c in
            var deleted = 0
            for try await _ in try await c.query("DELETE FROM result WHERE received_us < \(t) RETURNING id", logger: logger).decode(Int64.self) {
                deleted += 1
            }
            // The newest first, keeping results while their running total stays within the cap.
            for try await _ in try await c.query("""
                DELETE FROM result WHERE id IN (
                    SELECT id FROM (SELECT id, sum(bytes) OVER (ORDER BY received_us DESC, id DESC) AS total FROM result) r
                    WHERE r.total > \(cap)) RETURNING id
                """, logger: logger).decode(Int64.self) { deleted += 1 }
            try await c.query("DELETE FROM work WHERE token IN (SELECT token FROM job WHERE updated_us < \(t))", logger: logger)
            try await c.query("DELETE FROM job WHERE updated_us < \(t)", logger: logger)
            try await c.query("DELETE FROM work WHERE state = 'done' AND created_us < \(t)", logger: logger)
            try await c.query("""
                DELETE FROM component k WHERE k.seen_us < \(forget) AND NOT EXISTS (
                    SELECT 1 FROM work w WHERE w.component = k.name AND w.state IN ('queued', 'claimed'))
                """, logger: logger)
            // Forgotten components: every supervisor drops what it knew.
            pollCache.invalidate(nil)
            try await c.query("SELECT pg_notify(\(Self.channel), '*')", logger: logger)
            return deleted
        }
    }

    public func resultBytes() async throws -> Int {
        for try await n in try await client.query("SELECT coalesce(sum(bytes), 0)::bigint FROM result", logger: logger).decode(Int64.self) {
            return Int(n)
        }
        return 0
    }
}

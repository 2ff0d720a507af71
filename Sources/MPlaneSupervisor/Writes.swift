import MPlane
import Synchronization

/// A message from a component as the store writes it.
struct StoredMessage: Sendable {
    enum Kind { case receipt, result, exception }
    var kind: Kind
    var token: String
    var label: String?
    var start: Int64?
    var end: Int64?
    var rows: Int
    var body: String

    static func collect(_ m: Message, encoder: MessageEncoder, into out: inout [StoredMessage]) {
        switch m {
        case .receipt(let r):
            out.append(StoredMessage(kind: .receipt, token: r.token, label: r.statement.label, rows: 0, body: encoder.encodeString(m)))
        case .result(let r):
            let (start, end) = r.statement.when.datetimes(now: Timestamp(microsecondsSince1970: 0))
            out.append(StoredMessage(kind: .result, token: r.token, label: r.statement.label, start: start?.microseconds,
                                     end: end?.microseconds, rows: r.values.rowCount, body: encoder.encodeString(m)))
        case .exception(var e):
            if let token = e.token {
                // What a component says went wrong, within reason.
                if e.message.utf8.count > 4096 { e.message = String(e.message.prefix(4096)) + "…" }
                out.append(StoredMessage(kind: .exception, token: token, rows: 0, body: encoder.encodeString(.exception(e))))
            }
        case .envelope(let env):
            // An envelope of results (a repeated specification's): each result a row of its
            // own, under the envelope's token when it has one.
            for inner in env.contents {
                if case .result(var r) = inner, let token = env.token {
                    r.statement.token = token
                    collect(.result(r), encoder: encoder, into: &out)
                } else {
                    collect(inner, encoder: encoder, into: &out)
                }
            }
        default:
            break
        }
    }
}

/// Commits what several tasks want written in one transaction (one sync): a task's write
/// waits for the transaction in progress, then goes with everything that queued meanwhile.
/// The store gives the function that writes a batch in one transaction.
final class WriteBatcher: Sendable {
    typealias Batch = [(component: String, writes: [StoredMessage], now: Int64)]
    struct Pending {
        var component: String
        var writes: [StoredMessage]
        var now: Int64
        var continuation: CheckedContinuation<StoreOutcome, any Error>
    }
    private struct State {
        var pending: [Pending] = []
        var writers = 0
    }
    private let state = Mutex(State())
    let write: @Sendable (Batch) async throws -> [StoreOutcome]
    /// Transactions in flight at once: 1 for SQLite (one writer anyway); more for a server
    /// database, whose round trips would otherwise leave it idle between batches.
    let maxWriters: Int

    init(writers: Int = 1, write: @escaping @Sendable (Batch) async throws -> [StoreOutcome]) {
        self.write = write
        maxWriters = writers
    }

    /// What `component` sent, as the store writes it, committed with what else is pending.
    func store(component: String, messages: [Message], now: Timestamp) async throws -> StoreOutcome {
        let encoder = MessageEncoder()
        var writes: [StoredMessage] = []
        for m in messages { StoredMessage.collect(m, encoder: encoder, into: &writes) }
        guard !writes.isEmpty else { return StoreOutcome(stored: 0, unknownTokens: []) }
        return try await commit(component: component, writes, now: now.microseconds)
    }

    func commit(component: String, _ writes: [StoredMessage], now: Int64) async throws -> StoreOutcome {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<StoreOutcome, any Error>) in
            let start = state.withLock { s -> Bool in
                s.pending.append(Pending(component: component, writes: writes, now: now, continuation: c))
                if s.writers >= maxWriters { return false }
                s.writers += 1
                return true
            }
            if start { Task { await self.drain() } }
        }
    }

    private func drain() async {
        while true {
            let batch = state.withLock { s -> [Pending] in
                let b = s.pending
                s.pending = []
                if b.isEmpty { s.writers -= 1 }
                return b
            }
            if batch.isEmpty { return }
            do {
                let outcomes = try await write(batch.map { ($0.component, $0.writes, $0.now) })
                for (p, o) in zip(batch, outcomes) { p.continuation.resume(returning: o) }
            } catch {
                for p in batch { p.continuation.resume(throwing: error) }
            }
        }
    }
}


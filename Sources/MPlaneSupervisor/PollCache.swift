import MPlane
import Synchronization

/// What a store knows of components whose last poll found nothing due, so that the next
/// polls are answered without a round trip to the database: at 99 % of polls finding nothing,
/// the round trip was most of a poll's cost (BENCHMARKS.md, "Supervisor").
///
/// An entry says when something may next become due: the start of the next queued item, or
/// the oldest claim's redelivery time. It is dropped by any change to that component's
/// registration or queue once committed: with SQLite, by the one supervisor that serves the
/// file, which made the change; with PostgreSQL, also by another supervisor on the database
/// (`NOTIFY mpsup_work`, which every such transaction sends and ``PostgresStore`` listens to).
/// While the listening connection is down the PostgreSQL cache is off, so a supervisor never
/// answers from what it may have missed. Between another supervisor's commit and its
/// notification arriving (milliseconds), a poll here may still find nothing: the item is
/// handed out at the next poll, once, as always.
final class PollCache: Sendable {
    struct Entry: Sendable {
        var callback: CallbackStyle?
        /// The earliest queued item's start (µs), if any is queued.
        var nextStart: Int64?
        /// The oldest claim not answered yet (µs), if any.
        var oldestClaim: Int64?
    }

    private struct State {
        var enabled = false
        /// Moves on every invalidation: an answer read from the database before it is not
        /// kept (it may predate the change).
        var epoch: UInt64 = 0
        var entries: [String: Entry] = [:]
    }

    private let state = Mutex(State())
    /// At most this many components are kept (the table is emptied when full).
    static let capacity = 200_000

    /// The poll state of `component` at `now`, if it is known and nothing can be due yet.
    func lookup(_ component: String, now: Int64, redeliverAfter: Int64) -> PollState? {
        state.withLock { s -> PollState? in
            guard s.enabled, let e = s.entries[component] else { return nil }
            let due = min(e.nextStart ?? .max, e.oldestClaim.map { $0 &+ redeliverAfter } ?? .max)
            guard now < due else { return nil }
            return PollState(registered: true, callback: e.callback, due: false, next: e.nextStart.map(Timestamp.init(microsecondsSince1970:)))
        }
    }

    /// Whether the cache is on (its listener connected).
    var isEnabled: Bool { state.withLock { $0.enabled } }

    /// The epoch to pass to ``keep(_:_:readAt:)`` for an answer about to be read.
    var epoch: UInt64 { state.withLock { $0.epoch } }

    /// Keeps what a poll read from the database, unless something changed since `readAt`.
    func keep(_ component: String, _ entry: Entry, readAt epoch: UInt64) {
        state.withLock { s in
            guard s.enabled, s.epoch == epoch else { return }
            if s.entries.count >= Self.capacity { s.entries.removeAll(keepingCapacity: true) }
            s.entries[component] = entry
        }
    }

    /// `component` changed (`nil`: any might have).
    func invalidate(_ component: String?) {
        state.withLock { s in
            s.epoch &+= 1
            if let component { s.entries[component] = nil } else { s.entries.removeAll(keepingCapacity: true) }
        }
    }

    /// On while notifications arrive, off (and empty) while they cannot.
    func setEnabled(_ on: Bool) {
        state.withLock { s in
            s.enabled = on
            s.epoch &+= 1
            s.entries.removeAll(keepingCapacity: true)
        }
    }
}

public import MPlane
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The time source of the scheduler and the services: every time decision goes through it,
/// so tests drive temporal logic with a ``ManualClock`` instead of sleeping.
public protocol ProbeClock: Sendable {
    /// The current UTC time.
    func now() -> Timestamp
    /// Suspends until `deadline`; throws `CancellationError` when the task is cancelled.
    func sleep(until deadline: Timestamp) async throws
}

/// The system's wall clock (`CLOCK_REALTIME`), sleeping on the monotonic clock.
public struct SystemClock: ProbeClock {
    public init() {}

    public func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(microsecondsSince1970: Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000)
    }

    public func sleep(until deadline: Timestamp) async throws {
        let delta = deadline.microseconds - now().microseconds
        if delta > 0 { try await Task.sleep(for: .microseconds(delta)) } else { try Task.checkCancellation() }
    }
}

/// A clock that moves only when told to. Sleepers wake in deadline order as it advances.
public final class ManualClock: ProbeClock {
    private struct Sleeper {
        let id: UInt64
        let deadline: Timestamp
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Timestamp
        var nextID: UInt64 = 0
        var sleepers: [Sleeper] = []
    }

    private let state: Mutex<State>

    public init(now: Timestamp) { state = Mutex(State(now: now)) }

    public func now() -> Timestamp { state.withLock { $0.now } }

    /// How many tasks are asleep on this clock.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// The earliest deadline anyone sleeps until.
    public var nextDeadline: Timestamp? { state.withLock { $0.sleepers.map(\.deadline).min() } }

    public func sleep(until deadline: Timestamp) async throws {
        let id: UInt64 = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let resumeNow: Bool = state.withLock { s in
                    if Task.isCancelled { return true }
                    if deadline <= s.now { return true }
                    s.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: c))
                    return false
                }
                if resumeNow {
                    if Task.isCancelled { c.resume(throwing: CancellationError()) } else { c.resume() }
                }
            }
        } onCancel: {
            let sleeper: Sleeper? = state.withLock { s in
                guard let i = s.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return s.sleepers.remove(at: i)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock to `target`, waking each sleeper at its deadline in order and
    /// letting the woken tasks run (and go back to sleep) before moving on.
    public func advance(to target: Timestamp) async {
        while true {
            let woken: Sleeper? = state.withLock { s in
                guard let i = s.sleepers.indices.min(by: { s.sleepers[$0].deadline < s.sleepers[$1].deadline }),
                      s.sleepers[i].deadline <= target else { return nil }
                let sleeper = s.sleepers.remove(at: i)
                if sleeper.deadline > s.now { s.now = sleeper.deadline }
                return sleeper
            }
            guard let woken else { break }
            woken.continuation.resume()
            await settle()
        }
        state.withLock { if target > $0.now { $0.now = target } }
        await settle()
    }

    /// Moves the clock forward by `seconds`.
    public func advance(by seconds: Double) async {
        await advance(to: now().adding(microseconds: Int64(seconds * 1_000_000)))
    }

    /// Lets other tasks run until the set of sleepers stops changing (bounded: about
    /// 200 ms of real time at most).
    public func settle() async {
        var stable = 0
        var last = -1
        for _ in 0..<400 {
            await Task.yield()
            let count = sleeperCount
            if count == last { stable += 1 } else { stable = 0; last = count }
            if stable >= 20 { return }
            if stable >= 5 { try? await Task.sleep(for: .microseconds(200)) }
        }
    }
}

import MPlane
import Synchronization

/// One specification being run: its state, its result so far and who waits for it.
final class Job: Sendable {
    enum Phase: Sendable, Equatable { case scheduled, running, finished }

    struct State: Sendable {
        var phase: Phase = .scheduled
        var interrupted = false
        var current: JobContext?
        var final: Message?
        var finishedAt: Timestamp?
        var failure: String?
        var interruptWaiters: [CheckedContinuation<Void, Never>] = []
        var finishWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    let token: String
    let specification: Specification
    let service: any MeasurementService
    /// The time the specification arrived: relative scopes count from here.
    let submitted: Timestamp
    /// What the job holds of the scheduler's limits, and for whom: given back when it ends.
    let demand: JobDemand
    let peer: String?
    /// Who started it (a certificate identity): only they may redeem or interrupt it; nil
    /// for anyone.
    let owner: String?
    let state = Mutex(State())

    init(token: String, specification: Specification, service: any MeasurementService, submitted: Timestamp,
         demand: JobDemand = .none, peer: String? = nil, owner: String? = nil) {
        self.owner = owner
        self.token = token
        self.specification = specification
        self.service = service
        self.submitted = submitted
        self.demand = demand
        self.peer = peer
    }

    var key: JobKey { JobKey(owner, token) }
    var isInterrupted: Bool { state.withLock { $0.interrupted } }
    var isFinished: Bool { state.withLock { $0.phase == .finished } }
    var finishedAt: Timestamp? { state.withLock { $0.finishedAt } }
    var final: Message? { state.withLock { $0.final } }

    /// Marks the job interrupted and wakes what waits for that.
    func interrupt() {
        let (context, waiters) = state.withLock { s -> (JobContext?, [CheckedContinuation<Void, Never>]) in
            s.interrupted = true
            let w = s.interruptWaiters
            s.interruptWaiters = []
            return (s.current, w)
        }
        context?.interrupt()
        for w in waiters { w.resume() }
    }

    /// Returns when the job is interrupted, or when the calling task is cancelled.
    func waitInterrupted() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.interrupted || Task.isCancelled { return true }
                    s.interruptWaiters.append(c)
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                let w = s.interruptWaiters
                s.interruptWaiters = []
                return w
            }
            for w in waiters { w.resume() }
        }
    }

    /// Returns when the job has finished, or when the calling task is cancelled.
    func waitFinished() async {
        let id = state.withLock { s -> UInt64 in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.phase == .finished || Task.isCancelled { return true }
                    s.finishWaiters[id] = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            let w = state.withLock { $0.finishWaiters.removeValue(forKey: id) }
            w?.resume()
        }
    }

    func finish(_ message: Message, at time: Timestamp) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.phase = .finished
            s.final = message
            s.finishedAt = time
            s.current = nil
            let w = Array(s.finishWaiters.values)
            s.finishWaiters = [:]
            return w
        }
        for w in waiters { w.resume() }
    }
}

/// What names a job: its owner's identity and its token, compared byte for byte (two
/// spellings of one name in Unicode are two identities, as they are two certificates).
struct JobKey: Hashable {
    var owner: [UInt8]?
    var token: [UInt8]
    init(_ owner: String?, _ token: String) {
        self.owner = owner.map { Array($0.utf8) }
        self.token = Array(token.utf8)
    }
}

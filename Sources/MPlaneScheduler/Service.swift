public import MPlane
public import Logging
import Synchronization

/// Runnable code bound to exactly one capability.
///
/// `run` receives a job whose specification fulfils the capability; it appends rows to the
/// job's result as it measures, checks ``JobContext/isInterrupted`` after each row or group
/// of rows (or sleeps through ``JobContext/sleep(until:)``, which ends on interruption), and
/// returns when the job's scope ends or it is interrupted. Throwing fails the job; the rows
/// already appended are kept.
public protocol MeasurementService: Sendable {
    var capability: Capability { get }
    func run(_ job: JobContext) async throws

    /// Values for parameters a specification may leave out. This is our extension: the
    /// protocol makes every parameter mandatory (the RI's clients always send them all),
    /// and a specification that omits one of these is completed before it is matched.
    var parameterDefaults: [String: Value] { get }

    /// Why a specification that fulfils the capability still cannot be run as given (an
    /// invalid destination, more targets than the service takes), or nil.
    func refusal(for spec: Specification) -> String?

    /// The part of the refusal that takes time (compiling a capture filter): awaited before
    /// the job is admitted, and run by the service off the cooperative pool. Nil to accept.
    func slowRefusal(for spec: Specification) async -> String?

    /// What a job for `spec` (one that fulfils the capability and has no refusal) will use:
    /// the scheduler admits it only within its limits.
    func demand(for spec: Specification) -> JobDemand

    /// True for a service that sends packets (active measurement): its capability shows the
    /// probe-rate limits.
    var sendsPackets: Bool { get }

    /// A repeated specification's repetitions are over (run, interrupted or cancelled): what
    /// the service kept for `series` between them can go.
    func seriesEnded(_ series: JobSeries)
}

/// The repetitions of one repeated specification, for a service that carries state from
/// one to the next (see ``JobContext/series``).
public struct JobSeries: Hashable, Sendable {
    public let token: String
    public let owner: String?
    public init(token: String, owner: String?) {
        self.token = token
        self.owner = owner
    }
}

extension MeasurementService {
    public var parameterDefaults: [String: Value] { [:] }
    public func refusal(for spec: Specification) -> String? { nil }
    public func slowRefusal(for spec: Specification) async -> String? { nil }
    public func demand(for spec: Specification) -> JobDemand { .none }
    public var sendsPackets: Bool { false }
    public func seriesEnded(_ series: JobSeries) {}
}

/// What a service sees of a job: its specification, its absolute time window, the clock,
/// and the result it writes into.
public final class JobContext: Sendable {
    public let specification: Specification
    /// Absolute start of this run (for a repetition: the repetition's start).
    public let start: Timestamp
    /// Absolute end, nil for a run that lasts until it is interrupted.
    public let end: Timestamp?
    /// The period in seconds, if the scope has one.
    public let period: Int64?
    public let clock: any ProbeClock
    public let logger: Logger
    private let table: Mutex<ResultTable>
    private let interrupted: Atomic<Bool>
    private let began = Mutex<Timestamp?>(nil)
    private let notes = Mutex<[(String, Value)]>([])
    /// The most rows the result may hold: the job is interrupted once it has them.
    public let maxRows: Int
    /// The most bytes the rows may hold: the job is interrupted once they do.
    public let maxBytes: Int
    private let truncated = Atomic<Bool>(false)
    /// Bytes of the rows so far (counted as rows are appended).
    private let bytes = Atomic<Int>(0)
    /// The repeated specification this run is a repetition of (nil: not repeated).
    public let series: JobSeries?
    /// When the next repetition of the series starts (nil: this is the last).
    public let nextStart: Timestamp?
    /// True when another repetition of the series follows this one.
    public var continues: Bool { nextStart != nil }

    init(specification: Specification, start: Timestamp, end: Timestamp?, period: Int64?, clock: any ProbeClock,
         logger: Logger, expectedRows: Int, maxRows: Int = .max, maxBytes: Int = .max,
         series: JobSeries? = nil, nextStart: Timestamp? = nil) {
        self.series = series
        self.nextStart = nextStart
        self.specification = specification
        self.start = start
        self.end = end
        self.period = period
        self.clock = clock
        self.logger = logger
        self.maxRows = maxRows
        self.maxBytes = maxBytes
        var t = ResultTable(columns: specification.statement.resultColumns)
        t.reserveCapacity(Swift.min(expectedRows, maxRows))
        table = Mutex(t)
        interrupted = Atomic(false)
    }

    /// A parameter value of the specification.
    public func parameter(_ name: String) -> Value? { specification.statement.parameterValue(name) }

    /// True once the job has been interrupted: stop measuring and return.
    public var isInterrupted: Bool { interrupted.load(ordering: .acquiring) }

    func interrupt() { interrupted.store(true, ordering: .releasing) }

    func markStarted(at t: Timestamp) { began.withLock { $0 = t } }

    /// When the service started measuring (nil before it did).
    public var startedAt: Timestamp? { began.withLock { $0 } }

    /// Appends rows: `body` gets the result table (typed columns, capacity reserved). Once
    /// the table holds ``maxRows`` rows the job is interrupted (the rows are kept), so an
    /// open-ended job cannot grow its result without bound.
    public func append<R>(_ body: (inout ResultTable) throws -> R) rethrows -> R {
        let (r, rows, size) = try table.withLock { t -> (R, Int, Int) in
            let before = t.rowCount
            let r = try body(&t)
            // Only the new rows are measured: appending stays O(rows appended).
            let added = t.storageBytes(rows: before..<t.rowCount)
            return (r, t.rowCount, bytes.add(added, ordering: .relaxed).newValue)
        }
        if (rows >= maxRows || size >= maxBytes) && !truncated.exchange(true, ordering: .acquiringAndReleasing) {
            logger.notice("result reached max-result-rows or max-result-bytes: the job ends here",
                          metadata: ["mplane.token": "\(specification.token)", "mplane.rows": "\(rows)", "mplane.bytes": "\(size)"])
            interrupt()
        }
        return r
    }

    /// True if the job was ended because its result reached ``maxRows``.
    public var reachedRowLimit: Bool { truncated.load(ordering: .acquiring) }

    /// Sets a metadata entry of the result (an element of the specification's registry;
    /// others are dropped when the result is made).
    public func setMetadata(_ name: String, _ value: Value) {
        notes.withLock { list in
            list.removeAll { $0.0 == name }
            list.append((name, value))
        }
    }

    /// The metadata set so far.
    public var metadata: [(String, Value)] { notes.withLock { $0 } }

    /// Rows appended so far.
    public var rowCount: Int { table.withLock { $0.rowCount } }

    /// A copy of the rows so far.
    public var snapshot: ResultTable { table.withLock { $0 } }

    /// Sleeps until `deadline` on the job's clock; throws `CancellationError` when the job
    /// is interrupted or the scheduler shuts down.
    public func sleep(until deadline: Timestamp) async throws {
        try await clock.sleep(until: deadline)
    }
}

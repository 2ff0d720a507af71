public import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A log for what peers can cause at any rate (refusals, errors): per kind, the first
/// `burst` messages of each interval are logged; the rest are counted, and the count is
/// logged as one summary line when the kind next occurs after the interval (so a flood of
/// garbage costs a few lines a minute, not one line a request).
public final class RateLimitedLog: Sendable {
    private struct Kind {
        var intervalStart: UInt64
        var logged = 0
        var suppressed = 0
    }
    private let kinds = Mutex<[String: Kind]>([:])
    public let logger: Logger
    public let burst: Int
    public let interval: Duration
    /// Monotonic nanoseconds (injectable for tests).
    let now: @Sendable () -> UInt64

    public init(logger: Logger, burst: Int = 5, interval: Duration = .seconds(60),
                now: @escaping @Sendable () -> UInt64 = RateLimitedLog.monotonicNanoseconds) {
        self.logger = logger
        self.burst = burst
        self.interval = interval
        self.now = now
    }

    /// Logs `message` at `level` unless `kind` has used its burst in this interval.
    /// - Returns: true if it was logged.
    @discardableResult
    public func log(_ message: @autoclosure () -> Logger.Message, kind: String, level: Logger.Level = .notice,
                    metadata: Logger.Metadata = [:]) -> Bool {
        let t = now()
        let span = UInt64(interval.components.seconds) * 1_000_000_000
            + UInt64(interval.components.attoseconds / 1_000_000_000)
        let (emit, summary) = kinds.withLock { table -> (Bool, Int) in
            var k = table[kind] ?? Kind(intervalStart: t)
            var summary = 0
            if t &- k.intervalStart >= span {
                summary = k.suppressed
                k = Kind(intervalStart: t)
            }
            let emit = k.logged < burst
            if emit { k.logged += 1 } else { k.suppressed += 1 }
            table[kind] = k
            return (emit, summary)
        }
        if summary > 0 {
            logger.log(level: level, "suppressed repeated messages", metadata: [
                "log.kind": "\(kind)", "log.suppressed": "\(summary)", "log.interval_s": "\(interval.components.seconds)",
            ])
        }
        if emit { logger.log(level: level, message(), metadata: metadata) }
        return emit
    }

    /// Nanoseconds on the monotonic clock, from an arbitrary start.
    @Sendable public static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Messages of `kind` counted but not logged in the current interval.
    public func suppressed(_ kind: String) -> Int { kinds.withLock { $0[kind]?.suppressed ?? 0 } }
}


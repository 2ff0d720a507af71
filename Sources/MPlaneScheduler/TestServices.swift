public import MPlane
public import Logging

/// The reference implementation's loopback test service: copies `test.input` to
/// `test.output` in a single row. Its capability is the RI's `test-loopback` unchanged
/// (same label, registry, schema, scope and so the same token).
public struct LoopbackService: MeasurementService {
    public let capability: Capability

    public init() {
        let registry = try! RegistryStore.shared.registry(for: RegistryStore.loopbackURI)
        var cap = Capability(label: "test-loopback", when: .nowToFuture, registry: registry)
        try! cap.statement.addParameter("test.input", constraint: .all)
        try! cap.statement.addResultColumn("test.output")
        self.capability = cap
    }

    public func run(_ job: JobContext) async throws {
        let input = job.parameter("test.input")
        try job.append { table in try table.columns[0].append(input) }
    }
}

/// A periodic test service needing no privilege: one row per period from the start to the
/// end of the scope (or until interrupted), each with the time, the input string and a
/// counter from 0.
public struct CounterService: MeasurementService {
    public let capability: Capability

    /// - Parameter minimumPeriod: the smallest period a specification may ask for, seconds.
    public init(minimumPeriod: Int64 = 1) {
        let registry = try! RegistryStore.shared.registry(for: RegistryStore.loopbackURI)
        var cap = Capability(label: "test-counter", when: When(start: .now, end: .future, period: minimumPeriod),
                             registry: registry)
        try! cap.statement.addParameter("test.input", constraint: .all)
        for column in ["time", "test.output", "test.counter"] { try! cap.statement.addResultColumn(column) }
        self.capability = cap
    }

    public func run(_ job: JobContext) async throws {
        let input: String
        if case .string(let s)? = job.parameter("test.input") { input = s } else { input = "" }
        let period = Swift.max(1, job.period ?? 1)
        var n: UInt64 = 0
        var t = job.start
        while !job.isInterrupted {
            if let end = job.end, t > end { break }
            try await job.sleep(until: t)
            if job.isInterrupted { break }
            job.append { table in
                table.columns[0].append(time: t)
                table.columns[1].append(string: input)
                table.columns[2].append(natural: n)
            }
            n += 1
            t = t.adding(seconds: period)
        }
    }
}

/// Builds services from configuration: a factory per service kind name, taking the
/// settings of one configuration section.
public struct ServiceFactoryRegistry: Sendable {
    /// Builds services from a section's settings; may log what it leaves out.
    public typealias Factory = @Sendable ([String: String], Logger) throws -> [any MeasurementService]
    private var factories: [String: Factory] = [:]

    public init() {}

    /// The factories of the services every build has (`loopback`, `counter`).
    public static var builtIn: ServiceFactoryRegistry {
        var r = ServiceFactoryRegistry()
        r.register("loopback") { _, _ in [LoopbackService()] }
        r.register("counter") { settings, _ in
            let period = settings["minimum-period"].flatMap { Int64($0) } ?? 1
            return [CounterService(minimumPeriod: Swift.max(1, period))]
        }
        return r
    }

    public mutating func register(_ name: String, _ factory: @escaping Factory) { factories[name] = factory }

    /// The names that can be built.
    public var names: [String] { factories.keys.sorted() }

    /// Builds the services of kind `name`.
    /// - Throws: ``ServiceConfigurationError`` for an unknown kind, or what the factory throws.
    public func make(_ name: String, settings: [String: String] = [:],
                     logger: Logger = Logger(label: "mplane.services")) throws -> [any MeasurementService] {
        guard let f = factories[name] else {
            throw ServiceConfigurationError(message: "unknown service '\(name)' (known: \(names.joined(separator: ", ")))")
        }
        return try f(settings, logger)
    }
}

public struct ServiceConfigurationError: Error, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

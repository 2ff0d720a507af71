public import Logging
public import MPlaneScheduler
import MPlaneIO

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


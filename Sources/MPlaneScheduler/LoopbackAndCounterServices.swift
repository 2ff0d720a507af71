public import MPlane

/// The reference implementation's loopback test service: copies `test.input` to
/// `test.output` in a single row. Its capability is the RI's `test-loopback` unchanged
/// (same label, registry, schema, scope and so the same token).
public struct LoopbackService: MeasurementService {
    public let capability: Capability

    public init() {
        let registry = try! RegistryStore.shared.registry(for: RegistryStore.loopbackURI)
        var cap = Capability(label: "test-loopback", when: .nowToFuture, registry: registry)
        try! cap.statement.addParameter(ElementName.testInput, constraint: .all)
        try! cap.statement.addResultColumn(ElementName.testOutput)
        self.capability = cap
    }

    public func run(_ job: JobContext) async throws {
        let input = job.parameter(ElementName.testInput)
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
        try! cap.statement.addParameter(ElementName.testInput, constraint: .all)
        for column in [ElementName.time, ElementName.testOutput, ElementName.testCounter] { try! cap.statement.addResultColumn(column) }
        self.capability = cap
    }

    public func run(_ job: JobContext) async throws {
        let input: String
        if case .string(let s)? = job.parameter(ElementName.testInput) { input = s } else { input = "" }
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


/// A statement's verb: what the component does (`measure`, `query`, `collect`, `callback`,
/// or any other word the protocol leaves open).
public struct Verb: RawRepresentable, Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { rawValue = value }
    public var description: String { rawValue }

    public static let measure: Verb = "measure"
    public static let query: Verb = "query"
    public static let collect: Verb = "collect"
    public static let store: Verb = "store"
    public static let callback: Verb = "callback"
}

/// A parameter of a statement: its element, the constraint a capability puts on it, and
/// the value a specification gives it.
public struct Parameter: Hashable, Sendable {
    public let element: Element
    public var constraint: Constraint
    public var value: Value?

    public init(_ element: Element, constraint: Constraint = .all, value: Value? = nil) {
        self.element = element
        self.constraint = constraint
        self.value = value
    }

    public var name: String { element.name }

    /// What goes on the wire: the value if there is one, else the constraint.
    public var wireText: String { value?.description ?? constraint.description }
}

/// A metadata entry: an element with an unconstrained value.
public struct Metavalue: Hashable, Sendable {
    public let element: Element
    public var value: Value?
    public init(_ element: Element, value: Value?) {
        self.element = element
        self.value = value
    }
    public var name: String { element.name }
}

/// What every statement (and every notification that copies one) carries.
public struct Statement: Hashable, Sendable {
    public var verb: Verb
    public var version: Int = 1
    public var registry: Registry
    public var label: String?
    public var link: String?
    public var export: String?
    /// The explicit token; ``Capability/token`` etc. fall back to the default token.
    public var token: String?
    public var when: When
    /// Parameters, kept sorted by name.
    public private(set) var parameters: [Parameter] = []
    /// Metadata, kept sorted by name.
    public private(set) var metadata: [Metavalue] = []
    /// Result columns, in order.
    public var resultColumns: [Element] = []

    public init(verb: Verb = .measure, registry: Registry = RegistryStore.shared.core, when: When = .infinite,
                label: String? = nil, token: String? = nil) {
        self.verb = verb
        self.registry = registry
        self.when = when
        self.label = label
        self.token = token
    }

    // MARK: Schema

    /// Adds (or replaces) a parameter for the element `name` of this statement's registry.
    public mutating func addParameter(_ name: String, constraint: Constraint = .all, value: Value? = nil) throws(MPlaneError) {
        let e = try registry.element(name)
        try checkPrimitive(e, constraint: constraint, value: value)
        insertParameter(Parameter(e, constraint: constraint, value: value))
    }

    /// Adds a parameter, parsing its constraint from text (as in a capability).
    public mutating func addParameter(_ name: String, constraint text: String) throws(MPlaneError) {
        let e = try registry.element(name)
        do throws(MPlaneError) {
            insertParameter(Parameter(e, constraint: try Constraint.parse(text, primitive: e.primitive)))
        } catch {
            throw error.within("parameters.\(name)")
        }
    }

    /// Replaces all parameters (sorted here if they are not already; later duplicates win).
    mutating func setParameters(_ ps: [Parameter]) {
        var sorted = true
        for i in ps.indices.dropFirst() where ps[i - 1].name >= ps[i].name { sorted = false; break }
        if sorted {
            parameters = ps
        } else {
            parameters = []
            for p in ps { insertParameter(p) }
        }
    }

    mutating func insertParameter(_ p: Parameter) {
        // Inputs usually arrive sorted: appending is the common case.
        if let last = parameters.last, last.name >= p.name {
            if let i = parameters.firstIndex(where: { $0.name >= p.name }) {
                if parameters[i].name == p.name { parameters[i] = p } else { parameters.insert(p, at: i) }
                return
            }
        }
        parameters.append(p)
    }

    private func checkPrimitive(_ e: Element, constraint: Constraint, value: Value?) throws(MPlaneError) {
        var values: [Value] = value.map { [$0] } ?? []
        switch constraint {
        case .all: break
        case .range(let a, let b): values += [a, b]
        case .set(let vs): values += vs
        }
        for v in values where v.primitive != e.primitive {
            throw MPlaneError(.invalidValue, field: "parameters.\(e.name)",
                              "\(v.primitive.rawValue) value '\(v)' given for a \(e.primitive.rawValue) element")
        }
    }

    /// The parameter called `name`, if any.
    public func parameter(_ name: String) -> Parameter? { parameters.first { $0.name == name } }

    /// The value of the parameter `name`, if it has one.
    public func parameterValue(_ name: String) -> Value? { parameter(name)?.value }

    /// Sets the value of the parameter `name`, which must exist and whose constraint the
    /// value must meet.
    public mutating func setParameterValue(_ name: String, _ value: Value) throws(MPlaneError) {
        guard let i = parameters.firstIndex(where: { $0.name == name }) else {
            throw MPlaneError(.unknownElement, field: "parameters.\(name)", "the statement has no parameter '\(name)'")
        }
        guard value.primitive == parameters[i].element.primitive else {
            throw MPlaneError(.invalidValue, field: "parameters.\(name)",
                              "'\(value)' is not a \(parameters[i].element.primitive.rawValue)")
        }
        guard parameters[i].constraint.isMet(by: value) else {
            throw MPlaneError(.invalidValue, field: "parameters.\(name)",
                              "'\(value)' does not meet the constraint '\(parameters[i].constraint)'")
        }
        parameters[i].value = value
    }

    /// Removes the parameter `name`, if there is one. A specification may leave out the
    /// parameters its component has defaults for (ours do; the reference implementation's
    /// do not).
    public mutating func removeParameter(_ name: String) { parameters.removeAll { $0.name == name } }

    /// Parses `text` with the parameter's primitive and sets it.
    public mutating func setParameterValue(_ name: String, text: String) throws(MPlaneError) {
        guard let p = parameter(name) else {
            throw MPlaneError(.unknownElement, field: "parameters.\(name)", "the statement has no parameter '\(name)'")
        }
        let v: Value?
        do throws(MPlaneError) { v = try p.element.primitive.parse(text) } catch { throw error.within("parameters.\(name)") }
        guard let v else { throw MPlaneError(.invalidValue, field: "parameters.\(name)", "'*' is not a value") }
        try setParameterValue(name, v)
    }

    mutating func clearConstraints() {
        for i in parameters.indices { parameters[i].constraint = .all }
    }

    /// Adds (or replaces) a metadata entry.
    public mutating func addMetadata(_ name: String, _ value: Value?) throws(MPlaneError) {
        let e = try registry.element(name)
        if let value, value.primitive != e.primitive {
            throw MPlaneError(.invalidValue, field: "metadata.\(name)", "'\(value)' is not a \(e.primitive.rawValue)")
        }
        insertMetadata(Metavalue(e, value: value))
    }

    mutating func insertMetadata(_ m: Metavalue) {
        if let i = metadata.firstIndex(where: { $0.name >= m.name }) {
            if metadata[i].name == m.name { metadata[i] = m } else { metadata.insert(m, at: i) }
        } else {
            metadata.append(m)
        }
    }

    /// The metadata value `name`, if any.
    public func metadataValue(_ name: String) -> Value? { metadata.first { $0.name == name }?.value }

    /// Appends a result column for the element `name`.
    public mutating func addResultColumn(_ name: String) throws(MPlaneError) {
        let e = try registry.element(name)
        guard !resultColumns.contains(e) else {
            throw MPlaneError(.invalidMessage, field: "results", "result column '\(name)' appears twice")
        }
        resultColumns.append(e)
    }

    // MARK: Identity

    /// md5 over `registry p <sorted parameter names> r <sorted result names>`.
    public var schemaHash: String {
        Identity.md5Hex(registry.uri + " p " + parameterNames.joined(separator: " ")
                        + " r " + sortedResultNames.joined(separator: " "))
    }

    var parameterNames: [String] { parameters.map(\.name) }
    var sortedResultNames: [String] { resultColumns.map(\.name).sorted() }

    /// The reference implementation's full token: parameters, constraints, values,
    /// metadata, results and export (used for capabilities and notifications).
    public var extendedHash: String {
        var s = registry.uri + verb.rawValue + " w " + when.description
        s += " pk " + parameterNames.joined(separator: " ")
        s += " pc " + parameters.map(\.constraint.description).joined(separator: " ")
        s += " pv " + parameters.map { $0.value?.description ?? "*" }.joined(separator: " ")
        s += " mk " + metadata.map(\.name).joined(separator: " ")
        s += " mv " + metadata.map { $0.value?.description ?? "*" }.joined(separator: " ")
        s += " r " + sortedResultNames.joined(separator: " ")
        s += " ex " + (export ?? "None")
        return Identity.md5Hex(s)
    }

    /// The reference implementation's specification token: parameters and their values.
    public var parameterValueHash: String {
        var s = registry.uri + verb.rawValue + " w " + when.description
        s += " pk " + parameterNames.joined(separator: " ")
        s += " pv " + parameters.map { $0.value?.description ?? "*" }.joined(separator: " ")
        s += " r " + sortedResultNames.joined(separator: " ")
        return Identity.md5Hex(s)
    }
}

/// Gives message types that wrap a ``Statement`` direct access to its fields.
@dynamicMemberLookup
public protocol StatementMessage: Hashable, Sendable {
    var statement: Statement { get set }
    /// The message's kind key on the wire (`capability`, `receipt`, ...).
    static var kind: MessageKind { get }
}

extension StatementMessage {
    /// The explicit token, or the default one the reference implementation computes
    /// (specifications use their own, ``Specification/token``).
    public var token: String { statement.token ?? statement.extendedHash }

    public subscript<T>(dynamicMember path: WritableKeyPath<Statement, T>) -> T {
        get { statement[keyPath: path] }
        set { statement[keyPath: path] = newValue }
    }
}

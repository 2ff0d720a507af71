/// Parses mPlane messages from JSON bytes.
///
/// Strict where it matters: an unknown kind, a version above 1, a missing section, an
/// unknown element or registry, a value its primitive rejects, or a result row of the wrong
/// width is a typed ``MPlaneError`` naming the field. Unknown top-level keys are ignored, as
/// the protocol allows extensions. Input size and nesting depth are bounded.
public struct MessageDecoder: Sendable {
    public let store: RegistryStore
    /// Largest accepted input, in bytes.
    public var maxBytes: Int
    /// Deepest accepted JSON nesting.
    public var maxDepth: Int

    public init(store: RegistryStore = .shared, maxBytes: Int = 64 << 20, maxDepth: Int = 32) {
        self.store = store
        self.maxBytes = maxBytes
        self.maxDepth = maxDepth
    }

    /// Parses one message.
    public func decode(_ bytes: [UInt8]) throws(MPlaneError) -> Message {
        try withBytes(bytes) { (b) throws(MPlaneError) in try decode(utf8: b) }
    }

    /// Parses one message from a string.
    public func decode(_ text: String) throws(MPlaneError) -> Message {
        try withBytes(Array(text.utf8)) { (b) throws(MPlaneError) in try decode(utf8: b) }
    }

    public func decode(utf8 bytes: UnsafeRawBufferPointer) throws(MPlaneError) -> Message {
        guard bytes.count <= maxBytes else {
            throw MPlaneError(.malformedJSON, field: "", "message of \(bytes.count) bytes exceeds the limit of \(maxBytes)")
        }
        var r = JSONReader(bytes, maxDepth: maxDepth)
        guard try r.peekKind() == .object else {
            throw MPlaneError(.unknownMessageKind, field: "", "an mPlane message is a JSON object")
        }
        // Reading the object's members validates the whole document (every value is
        // skipped through the validating reader before a field is interpreted).
        let message = try decodeMessage(&r)
        try r.finish()
        return message
    }

    // MARK: Fields

    enum Key: Int, CaseIterable {
        case capability, specification, result, receipt, redemption, withdrawal, interrupt, indirection
        case exception, envelope
        case version, registry, label, link, export, token, when, parameters, metadata, results, resultvalues
        case message, status, contents

        init?(_ k: UnsafeRawBufferPointer) {
            guard let first = k.first else { return nil }
            let key: Key
            switch first {
            case UInt8(ascii: "c"):
                if k.equals("capability") { key = .capability } else if k.equals("contents") { key = .contents } else { return nil }
            case UInt8(ascii: "e"):
                if k.equals("export") { key = .export } else if k.equals("exception") { key = .exception }
                else if k.equals("envelope") { key = .envelope } else { return nil }
            case UInt8(ascii: "i"):
                if k.equals("interrupt") { key = .interrupt } else if k.equals("indirection") { key = .indirection } else { return nil }
            case UInt8(ascii: "l"):
                if k.equals("label") { key = .label } else if k.equals("link") { key = .link } else { return nil }
            case UInt8(ascii: "m"):
                if k.equals("metadata") { key = .metadata } else if k.equals("message") { key = .message } else { return nil }
            case UInt8(ascii: "p"):
                if k.equals("parameters") { key = .parameters } else { return nil }
            case UInt8(ascii: "r"):
                if k.equals("registry") { key = .registry } else if k.equals("results") { key = .results }
                else if k.equals("resultvalues") { key = .resultvalues } else if k.equals("result") { key = .result }
                else if k.equals("receipt") { key = .receipt } else if k.equals("redemption") { key = .redemption } else { return nil }
            case UInt8(ascii: "s"):
                if k.equals("specification") { key = .specification } else if k.equals("status") { key = .status } else { return nil }
            case UInt8(ascii: "t"):
                if k.equals("token") { key = .token } else { return nil }
            case UInt8(ascii: "v"):
                if k.equals("version") { key = .version } else { return nil }
            case UInt8(ascii: "w"):
                if k.equals("when") { key = .when } else if k.equals("withdrawal") { key = .withdrawal } else { return nil }
            default: return nil
            }
            self = key
        }

        var name: String { "\(self)" }

        static let statementKinds: [Key] = [.capability, .specification, .result, .receipt, .redemption, .withdrawal,
                                            .interrupt, .indirection]
        static let messageKinds: [Key] = statementKinds + [.exception, .envelope]
    }

    /// Offsets of the known keys' values within the current object, and for string values
    /// without escapes the end of their contents (so they are not scanned twice).
    struct Fields {
        var offsets = SIMD32<Int32>(repeating: -1)
        var stringEnds = SIMD32<Int32>(repeating: -1)
        subscript(_ k: Key) -> Int? {
            let o = offsets[k.rawValue]
            return o >= 0 ? Int(o) : nil
        }
        /// The contents of a plain string value, if the key's value is one.
        func plainString(_ k: Key, in b: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
            let e = stringEnds[k.rawValue]
            return e >= 0 ? b.slice(Int(offsets[k.rawValue]) + 1, Int(e)) : nil
        }
    }

    func decodeMessage(_ r: inout JSONReader) throws(MPlaneError) -> Message {
        guard try r.peekKind() == .object else {
            throw MPlaneError(.unknownMessageKind, field: "", "an mPlane message is a JSON object")
        }
        var f = Fields()
        var early = EarlySections()
        try r.readObject { (r, key) throws(MPlaneError) in
            if let k = Key(key) {
                guard f.offsets[k.rawValue] < 0 else {
                    throw MPlaneError(.invalidSection, field: k.name, "key '\(k.name)' appears twice")
                }
                // Read the bulky sections in this pass when what they depend on is known
                // already (sorted keys put the kind, the registry and the results first).
                if k == .parameters || k == .results || k == .resultvalues {
                    r.skipWhitespace()
                    let start = r.pos, startDepth = r.depth
                    let provisional = f[.registry] == nil
                    if let registry = try provisionalRegistry(f, r.bytes) {
                        do throws(MPlaneError) {
                            switch k {
                            case .parameters:
                                if let kind = Self.seenKind(f) {
                                    early.parameters = Early(registry: registry, items: try readParameters(&r, registry: registry, kind: kind))
                                    f.offsets[k.rawValue] = Int32(truncatingIfNeeded: start)
                                    return
                                }
                            case .results:
                                early.results = Early(registry: registry, items: try readResultColumns(&r, registry: registry))
                                f.offsets[k.rawValue] = Int32(truncatingIfNeeded: start)
                                return
                            default:
                                if f[.result] != nil, let columns = early.results, columns.registry === registry {
                                    early.values = Early(registry: registry, items: try readResultValues(&r, columns: columns.items))
                                    f.offsets[k.rawValue] = Int32(truncatingIfNeeded: start)
                                    return
                                }
                            }
                        } catch {
                            // Against a provisional registry an error may not be real: read
                            // the section again once the registry is known.
                            guard provisional else { throw error }
                            // Back to where the section began, at its depth (the error may have
                            // left nested objects open).
                            r.pos = start
                            r.depth = startDepth
                        }
                    }
                }
                r.skipWhitespace()
                f.offsets[k.rawValue] = Int32(truncatingIfNeeded: r.pos)
                if r.pos < r.bytes.count && r.bytes[r.pos] == UInt8(ascii: "\"") {
                    if try r.readStringRaw() != nil { f.stringEnds[k.rawValue] = Int32(truncatingIfNeeded: r.pos - 1) }
                    return
                }
            }
            try r.skipValue()
        }
        let end = r.pos
        defer { r.pos = end }
        var kind: Key? = nil
        for k in Key.messageKinds where f.offsets[k.rawValue] >= 0 {
            if let kind {
                throw MPlaneError(.unknownMessageKind, field: k.name,
                                  "ambiguous message: both '\(kind.name)' and '\(k.name)' keys")
            }
            kind = k
        }
        guard let kind else {
            throw MPlaneError(.unknownMessageKind, field: "",
                              "not an mPlane message: no capability, specification, result, receipt, redemption, withdrawal, interrupt, indirection, exception or envelope key")
        }
        switch kind {
        case .exception: return .exception(try decodeException(&r, f))
        case .envelope: return .envelope(try decodeEnvelope(&r, f))
        default: break
        }
        let version = try readVersion(&r, f)
        let (statement, tokenOnly, values) = try decodeStatement(&r, f, kind: kind, early: early)
        var s = statement
        s.version = version
        switch kind {
        case .capability: return .capability(Capability(s))
        case .specification: return .specification(Specification(s))
        case .result: return .result(Result(s, values: values ?? ResultTable(columns: s.resultColumns)))
        case .receipt: return .receipt(Receipt(s, tokenOnly: tokenOnly))
        case .redemption: return .redemption(Redemption(s, tokenOnly: tokenOnly))
        case .withdrawal: return .withdrawal(Withdrawal(s, tokenOnly: tokenOnly))
        case .interrupt: return .interrupt(Interrupt(s, tokenOnly: tokenOnly))
        default: return .indirection(Indirection(s, tokenOnly: tokenOnly))
        }
    }

    /// The registry sections read in the first pass are read against: the one named so
    /// far, else the core registry (checked against the message's registry afterwards).
    private func provisionalRegistry(_ f: Fields, _ bytes: UnsafeRawBufferPointer) throws(MPlaneError) -> Registry? {
        if let plain = f.plainString(.registry, in: bytes) { return try store.registry(utf8: plain) }
        return f[.registry] == nil ? store.core : nil
    }

    private static func seenKind(_ f: Fields) -> Key? {
        for k in Key.statementKinds where f.offsets[k.rawValue] >= 0 { return k }
        return nil
    }

    private func at(_ r: inout JSONReader, _ offset: Int) { r.pos = offset }

    private func readVersion(_ r: inout JSONReader, _ f: Fields) throws(MPlaneError) -> Int {
        guard let o = f[.version] else { return 1 }
        at(&r, o)
        let v: Int?
        switch try r.peekKind() {
        case .number: v = Int(String(decoding: try r.readNumberText(), as: UTF8.self))
        case .string: v = Int(try r.readString())
        default: v = nil
        }
        guard let v, v >= 0 else { throw MPlaneError(.invalidSection, field: "version", "version must be an integer") }
        guard v <= 1 else { throw MPlaneError(.unsupportedVersion, field: "version", "version \(v) is above the supported version 1") }
        return v
    }

    private func optionalString(_ r: inout JSONReader, _ f: Fields, _ k: Key) throws(MPlaneError) -> String? {
        if let plain = f.plainString(k, in: r.bytes) {
            // Interned protocol words avoid an allocation each.
            if plain.equals("measure") { return "measure" }
            return String(decoding: plain, as: UTF8.self)
        }
        guard let o = f[k] else { return nil }
        at(&r, o)
        switch try r.peekKind() {
        case .string: return try r.readString()
        case .null: return nil
        default: throw MPlaneError(.invalidSection, field: k.name, "'\(k.name)' must be a string")
        }
    }

    private func decodeException(_ r: inout JSONReader, _ f: Fields) throws(MPlaneError) -> MPlaneException {
        let token = try optionalString(&r, f, .exception)
        guard let message = try optionalString(&r, f, .message) else {
            throw MPlaneError(.missingSection, field: "message", "an exception needs a 'message'")
        }
        var e = MPlaneException(token: token, message: message)
        if let o = f[.status] {
            at(&r, o)
            guard try r.peekKind() == .number else { throw MPlaneError(.invalidSection, field: "status", "status must be an integer") }
            e.status = try r.readInt()
            e.includeStatus = true
        }
        return e
    }

    private func decodeEnvelope(_ r: inout JSONReader, _ f: Fields) throws(MPlaneError) -> Envelope {
        guard let contentType = try optionalString(&r, f, .envelope) else {
            throw MPlaneError(.invalidSection, field: "envelope", "'envelope' must name a content type")
        }
        var env = Envelope(contentType: contentType)
        env.version = try readVersion(&r, f)
        env.token = try optionalString(&r, f, .token)
        env.label = try optionalString(&r, f, .label)
        if let w = try optionalString(&r, f, .when) { env.when = try When(parsing: w) }
        guard let o = f[.contents] else {
            throw MPlaneError(.missingSection, field: "contents", "an envelope needs 'contents'")
        }
        at(&r, o)
        guard try r.peekKind() == .array else { throw MPlaneError(.invalidSection, field: "contents", "'contents' must be an array") }
        var i = 0
        try r.readArray { (r) throws(MPlaneError) in
            do throws(MPlaneError) { env.contents.append(try decodeMessage(&r)) } catch { throw error.within("contents[\(i)]") }
            i += 1
        }
        return env
    }

    /// Sections read during the first pass, each with the registry it was read against
    /// (used only if that turns out to be the message's registry).
    struct Early<T> {
        let registry: Registry
        let items: T
    }

    struct EarlySections {
        var parameters: Early<[Parameter]>?
        var results: Early<[Element]>?
        var values: Early<ResultTable>?
    }

    private func decodeStatement(_ r: inout JSONReader, _ f: Fields, kind: Key, early: EarlySections?) throws(MPlaneError)
        -> (Statement, Bool, ResultTable?) {
        guard let verb = try optionalString(&r, f, kind) else {
            throw MPlaneError(.invalidSection, field: kind.name, "'\(kind.name)' must be a verb string")
        }
        let registry: Registry
        if let plain = f.plainString(.registry, in: r.bytes) {
            registry = try store.registry(utf8: plain)
        } else if let o = f[.registry] {
            at(&r, o)
            guard try r.peekKind() == .string else { throw MPlaneError(.invalidSection, field: "registry", "'registry' must be a string") }
            registry = try r.withString { (b) throws(MPlaneError) in try store.registry(utf8: b) }
        } else {
            registry = store.core
        }
        var s = Statement(verb: Verb(rawValue: verb), registry: registry)
        s.label = try optionalString(&r, f, .label)
        s.link = try optionalString(&r, f, .link)
        s.export = try optionalString(&r, f, .export)
        s.token = try optionalString(&r, f, .token)

        let isNotification = Self.isNotification(kind) || kind == .redemption || kind == .withdrawal
        let tokenOnly = isNotification && s.token != nil && f[.when] == nil && f[.parameters] == nil && f[.results] == nil
        if tokenOnly { return (s, true, nil) }

        guard let wo = f[.when] else {
            throw MPlaneError(.missingSection, field: "when", "a \(kind.name) needs a temporal scope ('when')")
        }
        if let plain = f.plainString(.when, in: r.bytes) {
            s.when = try When(utf8: plain)
        } else {
            at(&r, wo)
            guard try r.peekKind() == .string else { throw MPlaneError(.invalidSection, field: "when", "'when' must be a string") }
            s.when = try r.withString { (b) throws(MPlaneError) in try When(utf8: b) }
        }
        if kind == .result && !s.when.isDefinite {
            throw MPlaneError(.invalidTemporalScope, field: "when", "a result's temporal scope must be definite, not '\(s.when)'")
        }

        if let early = early?.parameters, early.registry === registry {
            s.setParameters(early.items)
        } else if let o = f[.parameters] {
            at(&r, o)
            s.setParameters(try readParameters(&r, registry: registry, kind: kind))
        }
        if let o = f[.metadata] {
            at(&r, o)
            guard try r.peekKind() == .object else { throw MPlaneError(.invalidSection, field: "metadata", "'metadata' must be an object") }
            try r.readObject { (r, key) throws(MPlaneError) in
                guard let e = registry.element(utf8: key) else {
                    let name = String(decoding: key, as: UTF8.self)
                    throw MPlaneError(.unknownElement, field: "metadata.\(name)", "element '\(name)' is not in registry \(registry.uri)")
                }
                do throws(MPlaneError) {
                    let v = try r.withScalarText { (b) throws(MPlaneError) in try e.primitive.parse(utf8: b) }
                    s.insertMetadata(Metavalue(e, value: v))
                } catch {
                    throw error.within("metadata.\(e.name)")
                }
            }
        }
        if let early = early?.results, early.registry === registry {
            s.resultColumns = early.items
        } else if let o = f[.results] {
            at(&r, o)
            s.resultColumns = try readResultColumns(&r, registry: registry)
        }
        var table: ResultTable? = nil
        if kind == .result {
            if let early = early?.values, early.registry === registry, early.items.columns.map(\.element) == s.resultColumns {
                table = early.items
            } else if let o = f[.resultvalues] {
                at(&r, o)
                table = try readResultValues(&r, columns: s.resultColumns)
            } else {
                table = ResultTable(columns: s.resultColumns)
            }
        }
        return (s, false, table)
    }

    static func isNotification(_ kind: Key) -> Bool {
        kind == .receipt || kind == .redemption || kind == .withdrawal || kind == .interrupt || kind == .indirection
    }

    /// Parameters: capabilities and withdrawals carry constraints, the others values
    /// (specifications and results a value for every parameter).
    func readParameters(_ r: inout JSONReader, registry: Registry, kind: Key) throws(MPlaneError) -> [Parameter] {
        let constraints = kind == .capability || kind == .withdrawal
        let needsValues = kind == .specification || kind == .result
        guard try r.peekKind() == .object else { throw MPlaneError(.invalidSection, field: "parameters", "'parameters' must be an object") }
        var out: [Parameter] = []
        try r.readObject { (r, key) throws(MPlaneError) in
            guard let e = registry.element(utf8: key) else {
                let name = String(decoding: key, as: UTF8.self)
                throw MPlaneError(.unknownElement, field: "parameters.\(name)", "element '\(name)' is not in registry \(registry.uri)")
            }
            do throws(MPlaneError) {
                if constraints {
                    let c = try r.withScalarText { (b) throws(MPlaneError) in try Constraint.parse(utf8: b, primitive: e.primitive) }
                    out.append(Parameter(e, constraint: c))
                } else {
                    let v = try r.withScalarText { (b) throws(MPlaneError) in try e.primitive.parse(utf8: b) }
                    if v == nil && needsValues {
                        throw MPlaneError(.invalidMessage, field: "", "a \(kind.name) needs a value for every parameter, not '*'")
                    }
                    out.append(Parameter(e, value: v))
                }
            } catch {
                throw error.within("parameters.\(e.name)")
            }
        }
        return out
    }

    func readResultColumns(_ r: inout JSONReader, registry: Registry) throws(MPlaneError) -> [Element] {
        guard try r.peekKind() == .array else { throw MPlaneError(.invalidSection, field: "results", "'results' must be an array") }
        var columns: [Element] = []
        try r.readArray { (r) throws(MPlaneError) in
            guard try r.peekKind() == .string else { throw MPlaneError(.invalidSection, field: "results", "result names must be strings") }
            let e: Element? = try r.withString { registry.element(utf8: $0) }
            guard let e else {
                throw MPlaneError(.unknownElement, field: "results", "a result column is not in registry \(registry.uri)")
            }
            guard !columns.contains(where: { $0 === e }) else {
                throw MPlaneError(.invalidMessage, field: "results", "result column '\(e.name)' appears twice")
            }
            columns.append(e)
        }
        return columns
    }

    func readResultValues(_ r: inout JSONReader, columns: [Element]) throws(MPlaneError) -> ResultTable {
        var t = ResultTable(columns: columns)
        guard try r.peekKind() == .array else { throw MPlaneError(.invalidSection, field: "resultvalues", "'resultvalues' must be an array") }
        let width = t.columns.count
        var row = 0
        try t.columns.withUnsafeMutableBufferPointer { (cols) throws(MPlaneError) in
            try r.readArray { (r) throws(MPlaneError) in
                guard try r.peekKind() == .array else {
                    throw MPlaneError(.invalidSection, field: "resultvalues[\(row)]", "a result row must be an array")
                }
                var j = 0
                try r.readArray { (r) throws(MPlaneError) in
                    guard j < width else {
                        throw MPlaneError(.resultRowWidth, field: "resultvalues[\(row)]", "row has more than \(width) values")
                    }
                    try r.withScalarText { (b) throws(MPlaneError) in try cols[j].append(text: b) }
                    j += 1
                }
                guard j == width else {
                    throw MPlaneError(.resultRowWidth, field: "resultvalues[\(row)]", "row has \(j) values for \(width) columns")
                }
                row += 1
            }
        }
        return t
    }
}

import Synchronization

/// A named type of data with a fixed meaning: the columns and parameters of statements.
public final class Element: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    public let primitive: Primitive
    public let summary: String?
    /// The URI of the registry that defined it.
    public let registryURI: String
    let nameBytes: [UInt8]

    public init(name: String, primitive: Primitive, summary: String? = nil, registryURI: String) {
        self.name = name
        self.primitive = primitive
        self.summary = summary
        self.registryURI = registryURI
        self.nameBytes = Array(name.utf8)
    }

    public var description: String { name }

    public static func == (a: Element, b: Element) -> Bool {
        a === b || (a.name == b.name && a.primitive == b.primitive)
    }
    public func hash(into h: inout Hasher) { h.combine(name) }
}

/// An element registry: the elements a statement's `registry` URI makes available,
/// includes resolved depth-first with later definitions winning.
public final class Registry: Hashable, Sendable, CustomStringConvertible {
    public let uri: String
    public let revision: Int
    /// Every element, includes first, in definition order (a redefined name keeps its place).
    public let elements: [Element]
    private let byName: [String: Int]
    /// Open-addressing index over the element names' bytes, for lookups without a String.
    private let slots: [Int32]
    /// Every element name's bytes, end to end, and where each starts (one more at the end).
    private let nameBlob: [UInt8]
    private let nameStarts: [Int32]

    init(uri: String, revision: Int, elements defined: [Element]) {
        self.uri = uri
        self.revision = revision
        var order: [Element] = []
        var index: [String: Int] = [:]
        for e in defined {
            if let i = index[e.name] { order[i] = e } else { index[e.name] = order.count; order.append(e) }
        }
        elements = order
        byName = index
        var size = 16
        while size < order.count * 2 { size <<= 1 }
        var table = [Int32](repeating: -1, count: size)
        for (i, e) in order.enumerated() {
            var slot = Int(Self.hash(e.nameBytes.withUnsafeBytes { $0 })) & (size - 1)
            while table[slot] >= 0 { slot = (slot + 1) & (size - 1) }
            table[slot] = Int32(i)
        }
        slots = table
        var blob: [UInt8] = []
        var starts: [Int32] = []
        for e in order {
            starts.append(Int32(blob.count))
            blob += e.nameBytes
        }
        starts.append(Int32(blob.count))
        nameBlob = blob
        nameStarts = starts
    }

    public var description: String { uri }

    public static func == (a: Registry, b: Registry) -> Bool { a === b || a.uri == b.uri }
    public func hash(into h: inout Hasher) { h.combine(uri) }

    /// The element called `name`, or nil.
    public subscript(name: String) -> Element? { byName[name].map { elements[$0] } }

    /// The element whose name is the UTF-8 `name`, or nil.
    func element(utf8 name: UnsafeRawBufferPointer) -> Element? {
        let mask = slots.count - 1
        var slot = Int(Self.hash(name)) & mask
        let n = name.count
        while true {
            let i = Int(slots[slot])
            if i < 0 { return nil }
            let lo = Int(nameStarts[i])
            if Int(nameStarts[i + 1]) - lo == n {
                var k = 0
                while k < n && nameBlob[lo + k] == name[k] { k += 1 }
                if k == n { return elements[i] }
            }
            slot = (slot + 1) & mask
        }
    }

    /// The element called `name`.
    /// - Throws: ``MPlaneError`` `unknownElement`.
    public func element(_ name: String) throws(MPlaneError) -> Element {
        guard let e = self[name] else {
            throw MPlaneError(.unknownElement, field: name, "element '\(name)' is not in registry \(uri)")
        }
        return e
    }

    /// A cheap hash of a name: its length, its first four and its last twelve bytes
    /// (element names share long prefixes such as `delay.twoway.icmp.us.`).
    @inline(__always)
    static func hash(_ b: UnsafeRawBufferPointer) -> UInt32 {
        var h: UInt32 = 2_166_136_261 ^ UInt32(truncatingIfNeeded: b.count)
        let n = b.count
        for i in 0..<Swift.min(4, n) { h = (h ^ UInt32(b[i])) &* 16_777_619 }
        for i in Swift.max(Swift.min(4, n), n - 12)..<n { h = (h ^ UInt32(b[i])) &* 16_777_619 }
        return h
    }
}

/// The registries a process knows, by URI. Nothing is ever fetched from the network:
/// a URI that was not registered is an error.
public final class RegistryStore: Sendable {
    private let table: Mutex<[String: Registry]>

    /// The URI of the core registry.
    public static let coreURI = "http://ict-mplane.eu/registry/core"
    /// The URI of the loopback test registry.
    public static let loopbackURI = "http://mplane.corvid.ch/registry/loopback"
    /// The URI of this probe's own registry (extended ping capabilities). The `.invalid`
    /// name never resolves: clients preload `deploy/registry/probe-registry.json`.
    public static let probeURI = "http://mplane-swift.invalid/registry/probe"

    /// The process-wide store, holding the embedded core, loopback and probe registries.
    public static let shared = RegistryStore()

    /// A store holding the embedded registries.
    public init() {
        table = Mutex([:])
        coreURIBytes = Array(Self.coreURI.utf8)
        // The embedded registries are part of the build: failing to parse them is a bug.
        do {
            core = try Self.parse(utf8: UnsafeRawBufferPointer(start: EmbeddedRegistries.core.utf8Start,
                                                               count: EmbeddedRegistries.core.utf8CodeUnitCount),
                                  resolve: { uri throws(MPlaneError) in
                                      throw MPlaneError(.unknownRegistry, field: "includes", "core includes \(uri)")
                                  })
            table.withLock { $0[Self.coreURI] = core }
            try register(json: EmbeddedRegistries.loopback)
            try register(json: EmbeddedRegistries.probe)
        } catch {
            preconditionFailure("embedded registry does not parse: \(error)")
        }
    }

    /// The core registry.
    public let core: Registry
    private let coreURIBytes: [UInt8]

    /// The registry whose URI is the UTF-8 `uri` (the core registry without a lookup).
    func registry(utf8 uri: UnsafeRawBufferPointer) throws(MPlaneError) -> Registry {
        if uri.count == coreURIBytes.count, coreURIBytes.withUnsafeBytes({ $0.elementsEqual(uri) }) { return core }
        return try registry(for: String(decoding: uri, as: UTF8.self))
    }

    /// The registry for `uri`.
    /// - Throws: ``MPlaneError`` `unknownRegistry` if it was never registered.
    public func registry(for uri: String) throws(MPlaneError) -> Registry {
        guard let r = table.withLock({ $0[uri] }) else {
            throw MPlaneError(.unknownRegistry, field: "registry",
                              "registry \(uri) is not loaded (load it with a registry file; registries are never fetched)")
        }
        return r
    }

    /// Parses a registry document and makes it available under its `registry-uri`.
    /// Its includes must already be in this store.
    ///
    /// - Returns: the registry.
    /// - Throws: ``MPlaneError`` `invalidRegistry`, `unknownRegistry`, `malformedJSON`.
    @discardableResult
    public func register(json bytes: [UInt8]) throws(MPlaneError) -> Registry {
        try withBytes(bytes) { (b) throws(MPlaneError) in try register(utf8: b) }
    }

    @discardableResult
    func register(json s: StaticString) throws(MPlaneError) -> Registry {
        try register(utf8: UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    func register(utf8 b: UnsafeRawBufferPointer) throws(MPlaneError) -> Registry {
        let registry = try Self.parse(utf8: b) { (uri) throws(MPlaneError) in try self.registry(for: uri) }
        table.withLock { $0[registry.uri] = registry }
        return registry
    }

    static func parse(utf8 b: UnsafeRawBufferPointer,
                      resolve: (String) throws(MPlaneError) -> Registry) throws(MPlaneError) -> Registry {
        var r = JSONReader(b)
        var format: String?, uri: String?, revision = 0
        var includes: [String] = []
        var raw: [(String, String, String?)] = []
        func invalid(_ f: String, _ m: String) -> MPlaneError { MPlaneError(.invalidRegistry, field: f, m) }
        try r.readObject { (r, key) throws(MPlaneError) in
            if key.equals("registry-format") { format = try r.readString() }
            else if key.equals("registry-uri") { uri = try r.readString() }
            else if key.equals("registry-revision") {
                if try r.peekKind() == .string { revision = Int(try r.readString()) ?? -1 } else { revision = try r.readInt() }
            } else if key.equals("includes") {
                try r.readArray { (r) throws(MPlaneError) in includes.append(try r.readString()) }
            } else if key.equals("elements") {
                try r.readArray { (r) throws(MPlaneError) in
                    var name: String?, prim: String?, desc: String?
                    try r.readObject { (r, k) throws(MPlaneError) in
                        if k.equals("name") { name = try r.readString() }
                        else if k.equals("prim") { prim = try r.readString() }
                        else if k.equals("desc") { desc = try r.readString() }
                        else { try r.skipValue() }
                    }
                    guard let name, !name.isEmpty else { throw invalid("elements", "element without a name") }
                    guard let prim else { throw invalid("elements.\(name)", "element without a prim") }
                    raw.append((name, prim, desc))
                }
            } else {
                try r.skipValue()
            }
        }
        try r.finish()
        guard format == "mplane-0" else {
            throw invalid("registry-format", "unsupported registry format \(format ?? "(none)"); expected mplane-0")
        }
        guard let uri, !uri.isEmpty else { throw invalid("registry-uri", "registry without a registry-uri") }
        guard revision >= 0 else { throw invalid("registry-revision", "registry-revision is not a natural number") }
        var elements: [Element] = []
        for inc in includes {
            guard inc != uri else { throw invalid("includes", "registry \(uri) includes itself") }
            elements += try resolve(inc).elements
        }
        for (name, prim, desc) in raw {
            guard let p = Primitive(rawValue: prim) else {
                throw invalid("elements.\(name)", "unknown primitive '\(prim)'")
            }
            elements.append(Element(name: name, primitive: p, summary: desc, registryURI: uri))
        }
        return Registry(uri: uri, revision: revision, elements: elements)
    }
}

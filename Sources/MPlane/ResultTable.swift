/// One typed column of result values.
///
/// Values live in typed storage (naturals, reals, booleans and times as 64-bit words,
/// addresses and strings in their own arrays), so appending a row costs no allocation once
/// capacity is reserved, and the codec writes values straight from this storage.
public struct ResultColumn: Hashable, Sendable {
    public let element: Element
    var words: [UInt64] = []
    var addresses: [IPAddress] = []
    var strings: [String] = []
    /// Bit i set: row i has no value (`*`). Empty while every row has a value.
    var missing: [UInt64] = []
    public private(set) var count: Int = 0

    public init(_ element: Element) { self.element = element }

    public var primitive: Primitive { element.primitive }

    /// Reserves room for `rows` values.
    public mutating func reserveCapacity(_ rows: Int) {
        switch element.primitive {
        case .natural, .real, .boolean, .time: words.reserveCapacity(rows)
        case .address: addresses.reserveCapacity(rows)
        case .string, .url: strings.reserveCapacity(rows)
        }
    }

    @inline(__always) public mutating func append(natural v: UInt64) { words.append(v); count += 1 }
    @inline(__always) public mutating func append(real v: Double) { words.append(v.bitPattern); count += 1 }
    @inline(__always) public mutating func append(boolean v: Bool) { words.append(v ? 1 : 0); count += 1 }
    @inline(__always) public mutating func append(time v: Timestamp) { words.append(UInt64(bitPattern: v.microseconds)); count += 1 }
    @inline(__always) public mutating func append(address v: IPAddress) { addresses.append(v); count += 1 }
    @inline(__always) public mutating func append(string v: String) { strings.append(v); count += 1 }

    /// Appends "no value" (`*`).
    public mutating func appendMissing() {
        let row = count
        switch element.primitive {
        case .natural, .real, .boolean, .time: words.append(0)
        case .address: addresses.append(IPAddress(ipv4: 0))
        case .string, .url: strings.append("")
        }
        count += 1
        while missing.count <= row >> 6 { missing.append(0) }
        missing[row >> 6] |= 1 << UInt64(row & 63)
    }

    /// Appends a value, which must be of this column's primitive (nil appends `*`).
    public mutating func append(_ value: Value?) throws(MPlaneError) {
        guard let value else { appendMissing(); return }
        switch (element.primitive, value) {
        case (.natural, .natural(let v)): append(natural: v)
        case (.real, .real(let v)): append(real: v)
        case (.boolean, .boolean(let v)): append(boolean: v)
        case (.time, .time(let v)): append(time: v)
        case (.address, .address(let v)): append(address: v)
        case (.string, .string(let v)), (.url, .url(let v)): append(string: v)
        default:
            throw MPlaneError(.invalidValue, field: "resultvalues.\(element.name)",
                              "\(value.primitive.rawValue) value '\(value)' in a \(element.primitive.rawValue) column")
        }
    }

    /// True if row `i` has no value.
    @inline(__always) public func isMissing(_ i: Int) -> Bool {
        let w = i >> 6
        return w < missing.count && missing[w] & (1 << UInt64(i & 63)) != 0
    }

    /// The value at row `i` (nil for `*`).
    public subscript(i: Int) -> Value? {
        if isMissing(i) { return nil }
        switch element.primitive {
        case .natural: return .natural(words[i])
        case .real: return .real(Double(bitPattern: words[i]))
        case .boolean: return .boolean(words[i] != 0)
        case .time: return .time(Timestamp(microsecondsSince1970: Int64(bitPattern: words[i])))
        case .address: return .address(addresses[i])
        case .string: return .string(strings[i])
        case .url: return .url(strings[i])
        }
    }

    /// Appends the wire text of row `i` to `out` (`*` for no value).
    @inline(__always) func write(row i: Int, to out: inout [UInt8], days: inout Timestamp.DayCache) {
        if isMissing(i) { out.append(UInt8(ascii: "*")); return }
        switch element.primitive {
        case .natural: PythonFloat.appendDecimal(words[i], to: &out)
        case .real: out.append(contentsOf: PythonFloat.repr(Double(bitPattern: words[i])).utf8)
        case .boolean: out.append(contentsOf: (words[i] != 0 ? "True" : "False").utf8)
        case .time: Timestamp(microsecondsSince1970: Int64(bitPattern: words[i])).write(to: &out, days: &days)
        case .address: addresses[i].write(to: &out)
        case .string, .url: out.append(contentsOf: strings[i].utf8)
        }
    }

    /// Appends a value parsed from its wire text.
    mutating func append(text b: UnsafeRawBufferPointer) throws(MPlaneError) {
        if b.count == 1 && b[0] == UInt8(ascii: "*") { appendMissing(); return }
        switch element.primitive {
        case .natural:
            if let v = Primitive.parseNatural(b) { append(natural: v); return }
        case .time:
            if let t = Timestamp(utf8: b) { append(time: t); return }
        default:
            if let v = element.primitive.parseValue(utf8: b) { try append(v); return }
        }
        throw MPlaneError(.invalidValue, field: "resultvalues[\(count)].\(element.name)",
                          "'\(String(decoding: b, as: UTF8.self))' is not a valid \(element.primitive.rawValue)")
    }
}

/// The values of a result: one typed column per result element, all of equal length.
public struct ResultTable: Hashable, Sendable {
    public var columns: [ResultColumn]

    public init(columns elements: [Element]) {
        columns = elements.map(ResultColumn.init)
    }

    /// Number of rows.
    public var rowCount: Int { columns.first?.count ?? 0 }

    /// Reserves room for `rows` rows in every column.
    public mutating func reserveCapacity(_ rows: Int) {
        for i in columns.indices { columns[i].reserveCapacity(rows) }
    }

    /// The index of the column `name`.
    public func columnIndex(_ name: String) -> Int? { columns.firstIndex { $0.element.name == name } }

    /// Appends a row of values, one per column in column order.
    public mutating func appendRow(_ values: [Value?]) throws(MPlaneError) {
        guard values.count == columns.count else {
            throw MPlaneError(.resultRowWidth, field: "resultvalues[\(rowCount)]",
                              "row has \(values.count) values for \(columns.count) columns")
        }
        for (i, v) in values.enumerated() { try columns[i].append(v) }
    }

    /// The value of column `name` at `row`.
    public func value(_ name: String, row: Int) -> Value? {
        guard let c = columnIndex(name), row < rowCount else { return nil }
        return columns[c][row]
    }

    /// Row `i` as a map from column name to value (rows with `*` omit that column).
    public func row(_ i: Int) -> [String: Value] {
        var d: [String: Value] = [:]
        for c in columns { if let v = c[i] { d[c.element.name] = v } }
        return d
    }

    /// Every row as a name → value map.
    public var rows: [[String: Value]] { (0..<rowCount).map(row) }
}

// MARK: - Size

extension ResultColumn {
    /// About how many bytes the column's values take in memory (for retention limits).
    public var storageBytes: Int {
        words.count * 8 + addresses.count * MemoryLayout<IPAddress>.stride + missing.count * 8
            + strings.reduce(0) { $0 + 16 + $1.utf8.count }
    }
}

extension ResultTable {
    /// About how many bytes the rows take in memory (for retention limits).
    public var storageBytes: Int { columns.reduce(0) { $0 + 64 + $1.storageBytes } }

    /// About how many bytes the rows `rows` take in memory (the new rows of an append).
    public func storageBytes(rows: Range<Int>) -> Int {
        guard !rows.isEmpty else { return 0 }
        var n = 0
        for c in columns {
            switch c.primitive {
            case .string, .url:
                let r = rows.clamped(to: 0..<c.strings.count)
                for i in r { n += 16 + c.strings[i].utf8.count }
            case .address: n += rows.count * MemoryLayout<IPAddress>.stride
            default: n += rows.count * 8
            }
        }
        return n
    }
}

extension Value {
    /// About how many bytes the value takes in memory.
    var storageBytes: Int {
        switch self {
        case .string(let s), .url(let s): 16 + s.utf8.count
        default: 24
        }
    }
}

extension Statement {
    /// About how many bytes the statement takes in memory beyond its result rows: its
    /// parameters (a parameter value can be large) and metadata, with a fixed part for the rest.
    public var storageBytes: Int {
        var n = 512 + (label?.utf8.count ?? 0) + (link?.utf8.count ?? 0) + (token?.utf8.count ?? 0)
        for p in parameters { n += 48 + (p.value?.storageBytes ?? 0) + p.constraint.description.utf8.count }
        for m in metadata { n += 48 + (m.value?.storageBytes ?? 0) }
        return n + resultColumns.count * 16
    }
}

extension Message {
    /// About how many bytes the message takes in memory: what retention limits count.
    public var storageBytes: Int {
        switch self {
        case .result(let r): r.statement.storageBytes + r.values.storageBytes
        case .envelope(let e): e.contents.reduce(256) { $0 + $1.storageBytes }
        case .exception(let e): 256 + e.message.utf8.count
        case .receipt(let r): r.statement.storageBytes
        case .specification(let s): s.statement.storageBytes
        case .capability(let c): c.statement.storageBytes
        default: 512
        }
    }
}

/// Writes mPlane messages as JSON exactly as the reference implementation lays them out:
/// keys sorted, two-space indent, `", "`-free separators, non-ASCII escaped as `\uXXXX`,
/// every element value a string. Result values go straight from the typed columns into the
/// output buffer.
public struct MessageEncoder: Sendable {
    public init() {}

    /// The JSON bytes of `message`. With `tokenOnly`, receipts, redemptions, withdrawals,
    /// interrupts and indirections that have a token are written in their short form.
    public func encode(_ message: Message, tokenOnly: Bool = false) -> [UInt8] {
        var w = JSONWriter()
        w.out.reserveCapacity(1024)
        write(message, tokenOnly: tokenOnly, to: &w)
        return w.out
    }

    /// The JSON text of `message`.
    public func encodeString(_ message: Message, tokenOnly: Bool = false) -> String {
        String(decoding: encode(message, tokenOnly: tokenOnly), as: UTF8.self)
    }

    func write(_ message: Message, tokenOnly: Bool, to w: inout JSONWriter) {
        switch message {
        case .capability(let m): writeStatement(m.statement, kind: .capability, values: nil, tokenOnly: false, to: &w)
        case .specification(let m): writeStatement(m.statement, kind: .specification, values: nil, tokenOnly: false, to: &w)
        case .result(let m):
            w.out.reserveCapacity(w.out.count + 512 + m.values.rowCount * m.values.columns.count * 40)
            writeStatement(m.statement, kind: .result, values: m.values, tokenOnly: false, to: &w)
        case .receipt(let m): writeStatement(m.statement, kind: .receipt, values: nil, tokenOnly: tokenOnly || m.isTokenOnly, to: &w)
        case .redemption(let m): writeStatement(m.statement, kind: .redemption, values: nil, tokenOnly: tokenOnly || m.isTokenOnly, to: &w)
        case .withdrawal(let m): writeStatement(m.statement, kind: .withdrawal, values: nil, tokenOnly: tokenOnly || m.isTokenOnly, to: &w)
        case .interrupt(let m): writeStatement(m.statement, kind: .interrupt, values: nil, tokenOnly: tokenOnly || m.isTokenOnly, to: &w)
        case .indirection(let m): writeStatement(m.statement, kind: .indirection, values: nil, tokenOnly: tokenOnly || m.isTokenOnly, to: &w)
        case .exception(let e):
            w.beginObject()
            w.key("exception")
            if let t = e.token { w.string(t) } else { w.raw("null") }
            w.key("message"); w.string(e.message)
            if e.includeStatus, let s = e.status { w.key("status"); w.raw(String(s)) }
            w.endObject()
        case .envelope(let env):
            w.beginObject()
            w.key("contents")
            w.beginArray()
            for m in env.contents {
                w.element()
                write(m, tokenOnly: tokenOnly, to: &w)
            }
            w.endArray()
            w.key("envelope"); w.string(env.contentType)
            if let l = env.label { w.key("label"); w.string(l) }
            if let t = env.token { w.key("token"); w.string(t) }
            w.key("version"); w.raw(String(env.version))
            if let when = env.when { w.key("when"); w.string(when.description) }
            w.endObject()
        }
    }

    enum Field { case kind, export, label, link, metadata, parameters, registry, results, resultvalues, token, version, when }

    /// Statement keys in sorted order, with the kind key at its place.
    static let layouts: [MessageKind: [Field]] = {
        let fixed: [(String, Field)] = [("export", .export), ("label", .label), ("link", .link), ("metadata", .metadata),
                                        ("parameters", .parameters), ("registry", .registry), ("results", .results),
                                        ("resultvalues", .resultvalues), ("token", .token), ("version", .version),
                                        ("when", .when)]
        var out: [MessageKind: [Field]] = [:]
        for kind in MessageKind.allCases {
            out[kind] = (fixed + [(kind.rawValue, Field.kind)]).sorted { $0.0 < $1.0 }.map(\.1)
        }
        return out
    }()

    func writeStatement(_ s: Statement, kind: MessageKind, values: ResultTable?, tokenOnly requested: Bool,
                        to w: inout JSONWriter) {
        let short = requested && s.token != nil
        w.beginObject()
        for field in Self.layouts[kind]! {
            switch field {
            case .kind: w.key(kind.rawValue); w.string(s.verb.rawValue)
            case .export: if let e = s.export { w.key("export"); w.string(e) }
            case .label: if let l = s.label { w.key("label"); w.string(l) }
            case .link: if !short, let l = s.link { w.key("link"); w.string(l) }
            case .metadata:
                if !short && !s.metadata.isEmpty {
                    w.key("metadata")
                    w.beginObject()
                    for m in s.metadata {
                        w.key(m.name)
                        w.valueString(m.value)
                    }
                    w.endObject()
                }
            case .parameters:
                if !short && !s.parameters.isEmpty {
                    w.key("parameters")
                    w.beginObject()
                    for p in s.parameters {
                        w.key(p.name)
                        if let v = p.value {
                            w.valueString(v)
                        } else if p.element.primitive == .string || p.element.primitive == .url {
                            w.string(p.constraint.description)
                        } else {
                            w.out.append(UInt8(ascii: "\""))
                            p.constraint.write(to: &w.out)
                            w.out.append(UInt8(ascii: "\""))
                        }
                    }
                    w.endObject()
                }
            case .registry: w.key("registry"); w.string(s.registry.uri)
            case .results:
                if !short && !s.resultColumns.isEmpty {
                    w.key("results")
                    w.beginArray()
                    for c in s.resultColumns { w.element(); w.string(c.name) }
                    w.endArray()
                }
            case .resultvalues:
                if let values, values.rowCount > 0 {
                    w.key("resultvalues")
                    w.beginArray()
                    values.columns.withUnsafeBufferPointer { cols in
                        if cols.allSatisfy({ $0.primitive == .natural || $0.primitive == .time || $0.primitive == .boolean }) {
                            w.writeFixedWidthRows(cols, rows: values.rowCount)
                            return
                        }
                        for row in 0..<values.rowCount {
                            w.element()
                            w.beginArray()
                            for j in 0..<cols.count {
                                w.element()
                                w.out.append(UInt8(ascii: "\""))
                                if cols[j].primitive == .string || cols[j].primitive == .url, !cols[j].isMissing(row) {
                                    w.escaped(cols[j].strings[row])
                                } else {
                                    cols[j].write(row: row, to: &w.out, days: &w.dayCache)
                                }
                                w.out.append(UInt8(ascii: "\""))
                            }
                            w.endArray()
                        }
                    }
                    w.endArray()
                }
            case .token: if let t = s.token { w.key("token"); w.string(t) }
            case .version: w.key("version"); w.raw(String(s.version))
            case .when:
                if !short {
                    w.key("when")
                    w.out.append(UInt8(ascii: "\""))
                    s.when.write(to: &w.out)
                    w.out.append(UInt8(ascii: "\""))
                }
            }
        }
        w.endObject()
    }
}

/// Python `json.dumps(sort_keys=True, indent=2, separators=(',', ': '))` layout, ASCII only.
struct JSONWriter {
    var out: [UInt8] = []
    private var level = 0
    /// Bit i: the container open at depth i has had a member (containers nest at most 64 deep).
    private var started: UInt64 = 0
    /// The civil date of the last time value written, reused for the next one.
    var dayCache = Timestamp.DayCache()

    /// Writes the rows of columns whose values have a bounded width (naturals, times,
    /// booleans) straight from their storage, one append per row.
    mutating func writeFixedWidthRows(_ cols: UnsafeBufferPointer<ResultColumn>, rows: Int) {
        let rowIndent = 2 * level
        let valueIndent = rowIndent + 2
        let capacity = 8 + rowIndent * 2 + cols.count * (valueIndent + 32)
        var cache = dayCache
        // Column storage hoisted out of the row loop (no per-value retain of the columns).
        let words = cols.map(\.words)
        let missing = cols.map(\.missing)
        let primitives = cols.map(\.primitive)
        let width = cols.count
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: capacity) { buf in
            let p = buf.baseAddress!
            for row in 0..<rows {
                var n = 0
                @inline(__always) func put(_ c: UInt8) { p[n] = c; n += 1 }
                @inline(__always) func line(_ indent: Int) {
                    put(0x0a)
                    for _ in 0..<indent { put(0x20) }
                }
                if row > 0 { put(UInt8(ascii: ",")) }
                line(rowIndent)
                put(UInt8(ascii: "["))
                for j in 0..<width {
                    if j > 0 { put(UInt8(ascii: ",")) }
                    line(valueIndent)
                    put(UInt8(ascii: "\""))
                    let w = row >> 6
                    if w < missing[j].count && missing[j][w] & (1 << UInt64(row & 63)) != 0 {
                        put(UInt8(ascii: "*"))
                    } else {
                        let word = words[j][row]
                        switch primitives[j] {
                        case .natural: n += PythonFloat.writeDecimal(word, into: p + n)
                        case .time:
                            let t = Timestamp(microsecondsSince1970: Int64(bitPattern: word))
                            if let k = t.write(into: p + n, days: &cache) {
                                n += k
                            } else {
                                for b in t.description.utf8.prefix(32) { put(b) }
                            }
                        default:
                            for b in (word != 0 ? "True" : "False").utf8 { put(b) }
                        }
                    }
                    put(UInt8(ascii: "\""))
                }
                line(rowIndent)
                put(UInt8(ascii: "]"))
                out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[0..<n]))
            }
        }
        dayCache = cache
        if rows > 0 { started |= 1 << UInt64(level) }
    }

    static let indentation: [UInt8] = [0x0a] + [UInt8](repeating: 0x20, count: 128)

    mutating func newline() {
        let n = Swift.min(1 + 2 * level, Self.indentation.count)
        Self.indentation.withUnsafeBytes { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }

    mutating func beginObject() { open(UInt8(ascii: "{")) }
    mutating func beginArray() { open(UInt8(ascii: "[")) }

    mutating func endObject() { close(UInt8(ascii: "}")) }
    mutating func endArray() { close(UInt8(ascii: "]")) }

    private mutating func open(_ c: UInt8) {
        out.append(c)
        level += 1
        precondition(level < 64, "JSON nesting too deep to write")
        started &= ~(1 << UInt64(level))
    }

    private mutating func close(_ c: UInt8) {
        let had = started & (1 << UInt64(level)) != 0
        level -= 1
        if had { newline() }
        out.append(c)
    }

    /// Starts a member or element: separator, newline and indent.
    @inline(__always)
    mutating func element() {
        let bit: UInt64 = 1 << UInt64(level)
        if started & bit != 0 { out.append(UInt8(ascii: ",")) } else { started |= bit }
        newline()
    }

    mutating func key(_ k: String) {
        element()
        string(k)
        out.append(UInt8(ascii: ":"))
        out.append(UInt8(ascii: " "))
    }

    mutating func raw(_ s: String) { out.append(contentsOf: s.utf8) }

    mutating func string(_ s: String) {
        out.append(UInt8(ascii: "\""))
        escaped(s)
        out.append(UInt8(ascii: "\""))
    }

    /// A value as a JSON string (`*` for none).
    mutating func valueString(_ v: Value?) {
        guard let v else { out.append(contentsOf: "\"*\"".utf8); return }
        switch v {
        case .string(let s), .url(let s): string(s)
        default:
            out.append(UInt8(ascii: "\""))
            v.write(to: &out)
            out.append(UInt8(ascii: "\""))
        }
    }

    static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends `s` escaped as Python's json module does with ensure_ascii.
    mutating func escaped(_ s: String) {
        var plain = true
        for c in s.utf8 where c < 0x20 || c > 0x7e || c == 0x22 || c == 0x5c { plain = false; break }
        if plain { out.append(contentsOf: s.utf8); return }
        func u(_ v: UInt32) {
            out.append(contentsOf: "\\u".utf8)
            for shift in stride(from: 12, through: 0, by: -4) { out.append(Self.hex[Int((v >> UInt32(shift)) & 0xf)]) }
        }
        for scalar in s.unicodeScalars {
            let v = scalar.value
            switch v {
            case 0x22: out.append(contentsOf: "\\\"".utf8)
            case 0x5c: out.append(contentsOf: "\\\\".utf8)
            case 0x0a: out.append(contentsOf: "\\n".utf8)
            case 0x0d: out.append(contentsOf: "\\r".utf8)
            case 0x09: out.append(contentsOf: "\\t".utf8)
            case 0x08: out.append(contentsOf: "\\b".utf8)
            case 0x0c: out.append(contentsOf: "\\f".utf8)
            case 0x20...0x7e: out.append(UInt8(v))
            case 0x10000...:
                let x = v - 0x10000
                u(0xD800 + (x >> 10))
                u(0xDC00 + (x & 0x3ff))
            default: u(v)
            }
        }
    }
}

/// A small, strict, allocation-light JSON pull reader over UTF-8 bytes.
///
/// It validates as it goes (RFC 8259 grammar, UTF-8 in strings, no control characters),
/// bounds nesting depth, and never reads past the buffer. String contents without escapes
/// are handed out as slices of the input; escaped ones are decoded into a scratch buffer.
package struct JSONReader {
    let bytes: UnsafeRawBufferPointer
    var pos: Int = 0
    var depth: Int = 0
    let maxDepth: Int
    var scratch: [UInt8] = []

    package init(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    package enum Kind { case object, array, string, number, bool, null }

    func error(_ what: String) -> MPlaneError {
        MPlaneError(.malformedJSON, field: "", "\(what) at byte \(pos)")
    }

    @inline(__always)
    mutating func skipWhitespace() {
        while pos < bytes.count {
            switch bytes[pos] {
            case 0x20, 0x0a, 0x0d, 0x09: pos += 1
            default: return
            }
        }
    }

    /// The kind of the next value (after whitespace).
    @inline(__always)
    package mutating func peekKind() throws(MPlaneError) -> Kind {
        skipWhitespace()
        guard pos < bytes.count else { throw error("unexpected end of input") }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool
        case UInt8(ascii: "n"): return .null
        case UInt8(ascii: "-"), 48...57: return .number
        default: throw error("unexpected character '\(Character(UnicodeScalar(bytes[pos])))'")
        }
    }

    /// Requires that only whitespace remains.
    package mutating func finish() throws(MPlaneError) {
        skipWhitespace()
        guard pos == bytes.count else { throw error("trailing data after the JSON value") }
    }

    @inline(__always)
    mutating func consume(_ c: UInt8) throws(MPlaneError) {
        skipWhitespace()
        guard pos < bytes.count, bytes[pos] == c else {
            throw error(pos < bytes.count ? "expected '\(Character(UnicodeScalar(c)))'" : "unexpected end of input")
        }
        pos += 1
    }

    mutating func consumeLiteral(_ lit: StaticString) throws(MPlaneError) {
        let n = lit.utf8CodeUnitCount
        guard pos + n <= bytes.count else { throw error("unexpected end of input") }
        let p = lit.utf8Start
        for k in 0..<n where bytes[pos + k] != p[k] { throw error("invalid literal") }
        pos += n
    }

    /// Iterates the members of an object; `body` receives the key bytes and must consume
    /// the member's value.
    package mutating func readObject(_ body: (inout JSONReader, UnsafeRawBufferPointer) throws(MPlaneError) -> Void) throws(MPlaneError) {
        try consume(UInt8(ascii: "{"))
        depth += 1
        guard depth <= maxDepth else { throw error("nesting deeper than \(maxDepth)") }
        skipWhitespace()
        if pos < bytes.count && bytes[pos] == UInt8(ascii: "}") {
            pos += 1; depth -= 1; return
        }
        while true {
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let key = try readStringRaw()
            try consume(UInt8(ascii: ":"))
            if let key {
                try body(&self, key)
            } else {
                // Escaped key: decode it into its own buffer (the body may reuse scratch).
                let decoded = scratch
                try withBytes(decoded) { (k) throws(MPlaneError) in try body(&self, k) }
            }
            skipWhitespace()
            guard pos < bytes.count else { throw error("unexpected end of input") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "}") { pos += 1; break }
            throw error("expected ',' or '}'")
        }
        depth -= 1
    }

    /// Iterates the elements of an array; `body` must consume each element.
    package mutating func readArray(_ body: (inout JSONReader) throws(MPlaneError) -> Void) throws(MPlaneError) {
        try consume(UInt8(ascii: "["))
        depth += 1
        guard depth <= maxDepth else { throw error("nesting deeper than \(maxDepth)") }
        skipWhitespace()
        if pos < bytes.count && bytes[pos] == UInt8(ascii: "]") {
            pos += 1; depth -= 1; return
        }
        while true {
            try body(&self)
            skipWhitespace()
            guard pos < bytes.count else { throw error("unexpected end of input") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "]") { pos += 1; break }
            throw error("expected ',' or ']'")
        }
        depth -= 1
    }

    /// Reads a string. Returns its raw bytes (a slice of the input) when it has no escapes,
    /// or nil after decoding it into `scratch`.
    mutating func readStringRaw() throws(MPlaneError) -> UnsafeRawBufferPointer? {
        try consume(UInt8(ascii: "\""))
        let start = pos
        var ascii = true
        // Fast path over plain bytes, with the position in a local.
        if let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) {
            var i = pos
            let n = bytes.count
            var flags: UInt8 = 0
            while i < n {
                let c = base[i]
                if c == 0x22 || c == 0x5c || c < 0x20 { break }
                flags |= c
                i += 1
            }
            pos = i
            if flags >= 0x80 { ascii = false }
            if i < n && base[i] == 0x22 {
                let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<i])
                pos = i + 1
                if !ascii { try validateUTF8(slice) }
                return slice
            }
        }
        while pos < bytes.count {
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") {
                let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<pos])
                pos += 1
                if !ascii { try validateUTF8(slice) }
                return slice
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw error("control character in string") }
            if c >= 0x80 { ascii = false }
            pos += 1
        }
        guard pos < bytes.count else { throw error("unterminated string") }
        // Slow path: escapes.
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<pos]))
        while pos < bytes.count {
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") {
                pos += 1
                if !ascii { try withBytes(scratch) { (s) throws(MPlaneError) in try validateUTF8(s) } }
                return nil
            }
            if c < 0x20 { throw error("control character in string") }
            if c >= 0x80 { ascii = false }
            if c != UInt8(ascii: "\\") { scratch.append(c); pos += 1; continue }
            pos += 1
            guard pos < bytes.count else { break }
            let e = bytes[pos]
            pos += 1
            switch e {
            case UInt8(ascii: "\""): scratch.append(0x22)
            case UInt8(ascii: "\\"): scratch.append(0x5c)
            case UInt8(ascii: "/"): scratch.append(0x2f)
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0c)
            case UInt8(ascii: "n"): scratch.append(0x0a)
            case UInt8(ascii: "r"): scratch.append(0x0d)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try readHex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                        throw error("unpaired surrogate escape")
                    }
                    pos += 2
                    let low = try readHex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired surrogate escape") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw error("unpaired surrogate escape")
                }
                // No mPlane string needs NUL, and one would cut a string short where it reaches
                // C (a capture filter, an interface name): refused everywhere.
                guard scalar != 0 else { throw error("NUL (\\u0000) in a string") }
                guard let u = UnicodeScalar(scalar) else { throw error("invalid escape") }
                scratch.append(contentsOf: String(Character(u)).utf8)
            default:
                throw error("invalid escape")
            }
        }
        throw error("unterminated string")
    }

    private mutating func readHex4() throws(MPlaneError) -> UInt32 {
        guard pos + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[pos]
            let d: UInt32
            switch c {
            case 48...57: d = UInt32(c - 48)
            case 97...102: d = UInt32(c - 87)
            case 65...70: d = UInt32(c - 55)
            default: throw error("invalid \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    private func validateUTF8(_ s: UnsafeRawBufferPointer) throws(MPlaneError) {
        var it = s.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&it) {
            case .scalarValue: continue
            case .emptyInput: return
            case .error: throw error("invalid UTF-8 in string")
            }
        }
    }

    /// Reads a string value and hands its decoded bytes to `body`.
    mutating func withString<R>(_ body: (UnsafeRawBufferPointer) throws(MPlaneError) -> R) throws(MPlaneError) -> R {
        if let raw = try readStringRaw() { return try body(raw) }
        let copy = scratch
        return try withBytes(copy, body)
    }

    package mutating func readString() throws(MPlaneError) -> String {
        try withString { String(decoding: $0, as: UTF8.self) }
    }

    /// Reads a number and returns its literal text.
    package mutating func readNumberText() throws(MPlaneError) -> UnsafeRawBufferPointer {
        skipWhitespace()
        let start = pos
        func digits() -> Int {
            let s = pos
            while pos < bytes.count, bytes[pos] >= 48, bytes[pos] <= 57 { pos += 1 }
            return pos - s
        }
        if pos < bytes.count && bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        guard pos < bytes.count else { throw error("truncated number") }
        if bytes[pos] == 48 { pos += 1 } else if digits() == 0 { throw error("invalid number") }
        if pos < bytes.count && bytes[pos] == UInt8(ascii: ".") {
            pos += 1
            guard digits() > 0 else { throw error("invalid number") }
        }
        if pos < bytes.count && (bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E")) {
            pos += 1
            if pos < bytes.count && (bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-")) { pos += 1 }
            guard digits() > 0 else { throw error("invalid number") }
        }
        guard pos - start <= 64 else { throw error("number literal too long") }
        return UnsafeRawBufferPointer(rebasing: bytes[start..<pos])
    }

    package mutating func readBool() throws(MPlaneError) -> Bool {
        skipWhitespace()
        guard pos < bytes.count else { throw error("unexpected end of input") }
        if bytes[pos] == UInt8(ascii: "t") { try consumeLiteral("true"); return true }
        try consumeLiteral("false")
        return false
    }

    package mutating func readNull() throws(MPlaneError) {
        skipWhitespace()
        try consumeLiteral("null")
    }

    /// Reads an integer number (for `version`, `status`, `registry-revision`).
    mutating func readInt() throws(MPlaneError) -> Int {
        let text = try readNumberText()
        guard let v = Int(String(decoding: text, as: UTF8.self)) else { throw error("expected an integer") }
        return v
    }

    /// Skips one value of any kind, validating it.
    mutating func skipValue() throws(MPlaneError) {
        switch try peekKind() {
        case .object: try readObject { (r, _) throws(MPlaneError) in try r.skipValue() }
        case .array: try readArray { (r) throws(MPlaneError) in try r.skipValue() }
        case .string: _ = try readStringRaw()
        case .number: _ = try readNumberText()
        case .bool: _ = try readBool()
        case .null: try readNull()
        }
    }

    /// Reads a scalar (string, number or boolean) and hands its text to `body`:
    /// the string's contents, the number's literal, or `True`/`False`. Null gives `*`.
    mutating func withScalarText<R>(_ body: (UnsafeRawBufferPointer) throws(MPlaneError) -> R) throws(MPlaneError) -> R {
        switch try peekKind() {
        case .string: return try withString(body)
        case .number: return try body(try readNumberText())
        case .bool:
            let b = try readBool()
            let s: StaticString = b ? "True" : "False"
            return try body(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
        case .null:
            try readNull()
            let s: StaticString = "*"
            return try body(UnsafeRawBufferPointer(start: s.utf8Start, count: 1))
        case .object, .array:
            throw MPlaneError(.invalidSection, field: "", "expected a string, number or boolean")
        }
    }
}

extension UnsafeRawBufferPointer {
    /// Byte-wise equality with a static ASCII string.
    @inline(__always)
    func equals(_ s: StaticString) -> Bool {
        let n = s.utf8CodeUnitCount
        guard count == n else { return false }
        let p = s.utf8Start
        for i in 0..<n where self[i] != p[i] { return false }
        return true
    }
}

/// `Array.withUnsafeBytes` for a closure with typed throws.
@inline(__always)
package func withBytes<R>(_ a: [UInt8], _ body: (UnsafeRawBufferPointer) throws(MPlaneError) -> R) throws(MPlaneError) -> R {
    let r: Swift.Result<R, MPlaneError> = a.withUnsafeBytes { b in
        Swift.Result { () throws(MPlaneError) -> R in try body(b) }
    }
    return try r.get()
}

extension UnsafeRawBufferPointer {
    /// The bytes from `lo` to `hi`.
    @inline(__always)
    func slice(_ lo: Int, _ hi: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: self[lo..<hi]) }

    /// The bytes after the first `n`.
    @inline(__always)
    func dropping(_ n: Int) -> UnsafeRawBufferPointer { slice(n, count) }

    func hasPrefix(_ s: StaticString) -> Bool {
        let n = s.utf8CodeUnitCount
        return count >= n && slice(0, n).equals(s)
    }

    func hasSuffix(_ s: StaticString) -> Bool {
        let n = s.utf8CodeUnitCount
        return count >= n && slice(count - n, count).equals(s)
    }

    /// Without leading and trailing spaces.
    func trimmingSpaces() -> UnsafeRawBufferPointer {
        var lo = 0, hi = count
        while lo < hi && self[lo] == 0x20 { lo += 1 }
        while hi > lo && self[hi - 1] == 0x20 { hi -= 1 }
        return slice(lo, hi)
    }

    /// The first occurrence of the ASCII `pattern`.
    func find(_ pattern: StaticString) -> Range<Int>? {
        let n = pattern.utf8CodeUnitCount
        guard n > 0, count >= n else { return nil }
        let p = pattern.utf8Start
        let first = p[0]
        var i = 0
        while i <= count - n {
            if self[i] == first {
                var k = 1
                while k < n && self[i + k] == p[k] { k += 1 }
                if k == n { return i..<(i + n) }
            }
            i += 1
        }
        return nil
    }
}

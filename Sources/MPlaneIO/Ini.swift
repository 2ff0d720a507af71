/// A configuration file in the INI format Python's configparser reads (the reference
/// implementation's format): `[section]` headers, `key = value` or `key: value` lines,
/// `#` and `;` comment lines, keys case-insensitive, values trimmed, indented lines
/// continuing the previous value.
public struct IniFile: Sendable {
    public struct Section: Sendable {
        public let name: String
        public var entries: [(key: String, value: String)]
        public subscript(key: String) -> String? { entries.last { $0.key == key.lowercased() }?.value }
    }

    public private(set) var sections: [Section] = []

    public subscript(section: String) -> Section? { sections.first { $0.name == section } }

    public struct ParseError: Error, CustomStringConvertible {
        public let line: Int
        public let message: String
        public var description: String { "line \(line): \(message)" }
    }

    public init(parsing text: String) throws(ParseError) {
        var current: Int? = nil
        var lastKey: String? = nil
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            let trimmed = line.trimmingSpaces()
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix(";") { lastKey = nil; continue }
            if line.first == " " || line.first == "\t", let s = current, let key = lastKey {
                // Continuation of the previous value.
                let i = sections[s].entries.lastIndex { $0.key == key }!
                sections[s].entries[i].value += "\n" + trimmed
                continue
            }
            if trimmed.hasPrefix("[") {
                guard trimmed.hasSuffix("]"), trimmed.count > 2 else { throw ParseError(line: n + 1, message: "malformed section header '\(trimmed)'") }
                let name = String(trimmed.dropFirst().dropLast()).trimmingSpaces()
                guard self[name] == nil else { throw ParseError(line: n + 1, message: "section [\(name)] appears twice") }
                sections.append(Section(name: name, entries: []))
                current = sections.count - 1
                lastKey = nil
                continue
            }
            guard let s = current else { throw ParseError(line: n + 1, message: "'\(trimmed)' is outside any [section]") }
            guard let sep = trimmed.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
                throw ParseError(line: n + 1, message: "expected 'key = value', got '\(trimmed)'")
            }
            let key = String(trimmed[..<sep]).trimmingSpaces().lowercased()
            let value = String(trimmed[trimmed.index(after: sep)...]).trimmingSpaces()
            guard !key.isEmpty else { throw ParseError(line: n + 1, message: "empty key") }
            sections[s].entries.append((key, value))
            lastKey = key
        }
    }
}


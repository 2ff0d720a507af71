public import MPlane

/// Results as CSV, for people and spreadsheets: one header line of result column names, one
/// line per row, values in their mPlane text form, quoted where CSV needs it (RFC 4180).
public enum ResultCSV {
    public struct Failure: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// The rows of `bodies` (results as mPlane JSON, of one schema), in order; with a time
    /// range, rows with a `time` column outside it are left out.
    public static func rows(of bodies: [String], header: Bool, from: Timestamp? = nil, to: Timestamp? = nil) throws -> String {
        var out = ""
        var columns: [String]? = nil
        for body in bodies {
            let message: Message
            do { message = try MessageDecoder().decode(Array(body.utf8)) } catch {
                throw Failure(message: "a stored result does not decode: \(error)")
            }
            var results: [MPlane.Result] = []
            switch message {
            case .result(let r): results = [r]
            case .envelope(let e): results = e.contents.compactMap { if case .result(let r) = $0 { r } else { nil } }
            default: continue
            }
            for r in results {
                let names = r.values.columns.map(\.element.name)
                if columns == nil {
                    columns = names
                    if header { out += names.map(field).joined(separator: ",") + "\r\n" }
                } else if columns != names {
                    throw Failure(message: "results of different schemas cannot share one CSV")
                }
                let time = r.values.columnIndex(ElementName.time)
                for i in 0..<r.values.rowCount {
                    if let time, case .time(let t)? = r.values.columns[time][i] {
                        if let from, t < from { continue }
                        if let to, t > to { continue }
                    }
                    out += r.values.columns.map { c in c[i].map { field("\($0)") } ?? "" }.joined(separator: ",") + "\r\n"
                }
            }
        }
        return out
    }

    static func field(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingAll("\"", with: "\"\"") + "\""
    }
}

extension String {
    func replacingAll(_ a: Character, with b: String) -> String {
        var out = ""
        for c in self { if c == a { out += b } else { out.append(c) } }
        return out
    }
}

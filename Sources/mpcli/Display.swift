import MPlane
#if canImport(Glibc)
import Glibc
#endif

/// How results are shown to people: an aligned table that fits the terminal, and for delays
/// a picture (a sparkline of the samples over time, a histogram with its figures, losses
/// marked). Plain text, no escape codes, so the same output goes to a pipe or a file.
enum Display {
    /// The result as an aligned table, the element names as the header, fitted to `width`
    /// columns (the widest cells are cut, marked with `…`); then, for delays, the picture.
    static func show(_ result: MPlane.Result, width: Int) -> String {
        var out = table(result, width: width)
        if let picture = delayPicture(result, width: width) { out += "\n" + picture }
        return out
    }

    static func cell(_ v: Value?) -> String { v?.description ?? "*" }

    static func table(_ result: MPlane.Result, width: Int) -> String {
        let columns = result.values.columns
        guard !columns.isEmpty else { return "(no columns)" }
        var rows: [[String]] = [columns.map(\.element.name)]
        for r in 0..<result.values.rowCount { rows.append(columns.map { cell($0[r]) }) }
        var widths = columns.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        let gap = 2
        // Narrow the widest column, a character at a time, until the table fits (4 at least).
        while widths.reduce(0, +) + gap * (widths.count - 1) > width, let widest = widths.indices.max(by: { widths[$0] < widths[$1] }),
              widths[widest] > 4 {
            widths[widest] -= 1
        }
        return rows.enumerated().map { r, row in
            row.indices.map { c -> String in
                // Names differ at their end (`….min`, `….max`): a header keeps its end.
                let text = row[c].count <= widths[c] ? row[c]
                    : r == 0 ? "…" + String(row[c].suffix(widths[c] - 1)) : String(row[c].prefix(widths[c] - 1)) + "…"
                return c == row.count - 1 ? text : text + String(repeating: " ", count: widths[c] - text.count + gap)
            }.joined()
        }.joined(separator: "\n")
    }

    static let bars: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
    static let lost: Character = "×"

    /// For one row per sample with a delay column (`delay.twoway.icmp.us` and the like): a
    /// sparkline of the samples in time order (each mark one sample, or the mean of a few
    /// when there are more samples than columns; `×` where a probe got no answer) and a
    /// histogram line with min, median, p99 and max. For aggregates (`….min`, `….mean`,
    /// `….max`), the figures in one line. Nil for results without delays.
    static func delayPicture(_ result: MPlane.Result, width: Int) -> String? {
        let columns = result.values.columns
        if let c = columns.firstIndex(where: { $0.element.name.hasPrefix("delay.") && $0.element.name.hasSuffix(".us") }),
           result.values.rowCount > 1 {
            let name = columns[c].element.name
            var samples: [Double?] = (0..<result.values.rowCount).map { number(columns[c][$0]) }
            if let t = columns.firstIndex(where: { $0.element.name == "time" }) {
                samples = withGaps(samples, times: (0..<result.values.rowCount).map { columns[t][$0] })
            }
            return samplePicture(name: name, samples: samples, width: width)
        }
        let aggregates = columns.filter { $0.element.name.hasPrefix("delay.") && !$0.element.name.hasSuffix(".count") }
        guard !aggregates.isEmpty, result.values.rowCount >= 1 else { return nil }
        let figures = aggregates.compactMap { column -> String? in
            guard let v = number(column[0]) else { return nil }
            var kind = column.element.name.split(separator: ".").last.map(String.init) ?? column.element.name
            if kind == "50pct" { kind = "median" }
            return "\(kind) \(milliseconds(v))"
        }
        guard !figures.isEmpty else { return nil }
        let count = columns.first { $0.element.name.hasPrefix("delay.") && $0.element.name.hasSuffix(".count") }
        let tail = count.flatMap { number($0[0]) }.map { ", \(Int($0)) replies" } ?? ""
        return "delay: " + figures.joined(separator: "  ") + tail
    }

    /// The samples with a lost one (nil) wherever the times skip a beat: a gap of k typical
    /// intervals between two rows holds k - 1 probes that got no answer (a ping reports
    /// answered probes only).
    static func withGaps(_ samples: [Double?], times: [Value?]) -> [Double?] {
        let stamps = times.map { v -> Int64? in if case .time(let t)? = v { t.microseconds } else { nil } }
        guard stamps.count == samples.count, stamps.allSatisfy({ $0 != nil }), samples.count > 2 else { return samples }
        let intervals = zip(stamps.dropFirst(), stamps).map { $0! - $1! }
        let typical = intervals.sorted()[intervals.count / 2]
        guard typical > 0 else { return samples }
        var out: [Double?] = [samples[0]]
        for (i, gap) in intervals.enumerated() {
            let beats = Int((Double(gap) / Double(typical)).rounded())
            if beats > 1 { out += [Double?](repeating: nil, count: min(beats - 1, 10_000)) }
            out.append(samples[i + 1])
        }
        return out
    }

    static func number(_ v: Value?) -> Double? {
        switch v {
        case .natural(let n)?: return Double(n)
        case .real(let x)?: return x
        default: return nil
        }
    }

    static func milliseconds(_ us: Double) -> String {
        let ms = us / 1000
        if ms >= 100 { return "\(Int(ms.rounded())) ms" }
        let tenths = (ms * 100).rounded() / 100
        return "\(tenths) ms"
    }

    static func samplePicture(name: String, samples: [Double?], width: Int) -> String {
        let answered = samples.compactMap { $0 }.sorted()
        let prefix = "\(name) "
        let room = max(8, width - prefix.count)
        guard let lo = answered.first, let hi = answered.last else {
            return prefix + String(repeating: lost, count: min(samples.count, room)) + "\nno replies: \(samples.count) lost"
        }
        // One mark per sample, or per group of samples when there are more than columns.
        let groups = max(1, (samples.count + room - 1) / room)
        var line = ""
        var i = 0
        while i < samples.count {
            let group = samples[i..<min(i + groups, samples.count)]
            let values = group.compactMap { $0 }
            if values.count < group.count && values.isEmpty {
                line.append(lost)
            } else {
                line.append(bar(values.reduce(0, +) / Double(values.count), lo: lo, hi: hi))
            }
            i += groups
        }
        // The histogram: as many buckets as fit, min to max on a log scale (delays have long
        // tails), each bar its share of samples.
        let buckets = max(1, min(40, width - 14))
        var counts = [Int](repeating: 0, count: buckets)
        for v in answered {
            counts[min(buckets - 1, Int(scaled(v, lo: lo, hi: hi) * Double(buckets)))] += 1
        }
        let most = counts.max() ?? 1
        let histogram = String(counts.map { $0 == 0 ? " " : bars[min(bars.count - 1, ($0 * bars.count - 1) / most)] })
        func percentile(_ p: Double) -> Double { answered[min(answered.count - 1, Int((Double(answered.count - 1) * p).rounded()))] }
        let loss = samples.count - answered.count
        let lossText = loss == 0 ? "no loss" : "lost \(loss) of \(samples.count) (\(loss * 100 / samples.count) %)"
        return prefix + line + "\n"
            + "histogram [" + histogram + "] log\n"
            + "min \(milliseconds(lo))  median \(milliseconds(percentile(0.5)))  "
            + "p99 \(milliseconds(percentile(0.99)))  max \(milliseconds(hi))  \(lossText)"
    }

    /// `v` between `lo` and `hi` as 0 to 1, on a log scale (a queueing spike does not flatten
    /// the rest).
    static func scaled(_ v: Double, lo: Double, hi: Double) -> Double {
        guard hi > lo, lo > 0 else { return hi > lo ? (v - lo) / (hi - lo) : 0 }
        return log(v / lo) / log(hi / lo)
    }

    static func bar(_ v: Double, lo: Double, hi: Double) -> Character {
        bars[max(0, min(bars.count - 1, Int(scaled(v, lo: lo, hi: hi) * Double(bars.count))))]
    }
}

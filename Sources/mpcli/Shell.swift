import CEditLine
import Dispatch
import Glibc
import MPlane
import MPlaneClient
import MPlaneHTTP
import MPlaneIO

/// The seed's interactive client, one command a line: the commands work on a
/// ``ClientSession`` (its memory of capabilities and measurements), a default temporal scope
/// and default parameter values. ``Shell/execute(_:)`` runs one line and gives back its output
/// and whether it succeeded; the terminal (line editing, history, completion) and script
/// modes are around it.
actor Shell {
    let session: ClientSession
    var when: When? = nil
    var parameters: [String: String] = [:]
    var verbose = false
    let width: Int

    init(session: ClientSession, width: Int) {
        self.session = session
        self.width = width
    }

    struct Outcome: Sendable {
        var output: String
        var ok: Bool
        var quit = false
    }

    static let commands: [(name: String, usage: String, help: String)] = [
        ("seturl", "seturl URL", "where capabilities come from and specifications go"),
        ("getcap", "getcap [URL]", "retrieve the capabilities (from the URL set, or URL)"),
        ("listcap", "listcap", "list the capabilities retrieved: label, verb, token"),
        ("showcap", "showcap LABEL", "a capability in full: scope, parameters and their constraints, results"),
        ("when", "when [SCOPE]", "show or set the temporal scope of the next runcap ('now + 10s / 1s')"),
        ("set", "set NAME VALUE", "a parameter value for the next runcap"),
        ("unset", "unset NAME", "forget a parameter value"),
        ("show", "show", "the temporal scope and parameter values set"),
        ("runcap", "runcap LABEL [NEWLABEL]", "run a capability with the scope and values set; shows its result or receipt"),
        ("listmeas", "listmeas", "the measurements asked for: token, label, done or waiting"),
        ("showmeas", "showmeas TOKEN|LABEL", "a measurement's result (redeeming its receipt while it runs)"),
        ("forget", "forget TOKEN|LABEL", "forget a measurement or capability"),
        ("tbenable", "tbenable", "verbose errors on or off"),
        ("help", "help", "this list"),
        ("quit", "quit", "leave (also: exit, end of input)"),
    ]

    /// The words a line starting with `prefix` may complete to: commands first, then labels.
    func completions(line: String, word: String) async -> [String] {
        let before = line.split(separator: " ", omittingEmptySubsequences: true)
        let typingCommand = before.isEmpty || (before.count == 1 && !line.hasSuffix(" "))
        if typingCommand { return Self.commands.map(\.name).filter { $0.hasPrefix(word) } }
        let state = await session.state
        var candidates: [String] = []
        switch String(before[0]) {
        case "showcap", "runcap": candidates = state.capabilityLabels
        case "showmeas", "forget": candidates = state.measurements.compactMap(\.label) + state.measurements.map(\.token)
        case "set", "unset":
            candidates = Array(Set(state.allCapabilities.flatMap { $0.statement.parameters.map(\.name) })).sorted()
        default: break
        }
        return candidates.filter { $0.hasPrefix(word) }
    }

    func execute(_ line: String) async -> Outcome {
        let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard let command = words.first, !command.hasPrefix("#") else { return Outcome(output: "", ok: true) }
        let args = Array(words.dropFirst())
        do {
            return try await run(command, args, rest: String(line.drop { $0 == " " }.dropFirst(command.count)).trimmingSpaces())
        } catch let e as ClientError {
            return Outcome(output: "error: \(e.description)", ok: false)
        } catch let e as ComponentClient.Failure {
            return Outcome(output: "error: \(e.message)", ok: false)
        } catch {
            return Outcome(output: "error: \(verbose ? String(reflecting: error) : "\(error)")", ok: false)
        }
    }

    private func run(_ command: String, _ args: [String], rest: String) async throws -> Outcome {
        func need(_ n: Int) throws {
            guard args.count >= n else {
                throw ClientError("usage: \(Self.commands.first { $0.name == command }?.usage ?? command)")
            }
        }
        switch command {
        case "help":
            let w = Self.commands.map(\.usage.count).max() ?? 0
            return Outcome(output: Self.commands.map { $0.usage.padding(w) + "  " + $0.help }.joined(separator: "\n"), ok: true)
        case "quit", "exit":
            return Outcome(output: "", ok: true, quit: true)
        case "tbenable":
            verbose.toggle()
            return Outcome(output: "verbose errors \(verbose ? "on" : "off")", ok: true)
        case "seturl":
            try need(1)
            guard let url = HTTPURL(args[0]) else { throw ClientError("not an http:// or https:// URL: \(args[0])") }
            await session.setDefaultURL(url)
            return Outcome(output: "", ok: true)
        case "getcap":
            var url: HTTPURL? = nil
            if let a = args.first {
                guard let u = HTTPURL(a) else { throw ClientError("not an http:// or https:// URL: \(a)") }
                url = u
            }
            let caps = try await session.retrieveCapabilities(from: url)
            return Outcome(output: "\(caps.count) capabilities: " + caps.map { $0.statement.label ?? $0.token }.joined(separator: ", "), ok: true)
        case "listcap":
            let state = await session.state
            let lines = state.allCapabilities.map { c in "\(c.statement.label ?? "(no label)")  \(c.statement.verb)  \(c.token)" }
            return Outcome(output: lines.isEmpty ? "no capabilities: getcap first" : lines.joined(separator: "\n"), ok: true)
        case "showcap":
            try need(1)
            guard let c = await session.state.capability(for: args[0]) else { throw ClientError("no capability \(args[0])") }
            return Outcome(output: describe(c), ok: true)
        case "when":
            if rest.isEmpty { return Outcome(output: when.map { "when \($0)" } ?? "when not set (runcap uses 'now', or asks for one)", ok: true) }
            do { when = try When(parsing: rest) } catch { throw ClientError("when \(rest): \(error)") }
            return Outcome(output: "", ok: true)
        case "set":
            try need(2)
            parameters[args[0]] = args.dropFirst().joined(separator: " ")
            return Outcome(output: "", ok: true)
        case "unset":
            try need(1)
            guard parameters.removeValue(forKey: args[0]) != nil else { throw ClientError("\(args[0]) is not set") }
            return Outcome(output: "", ok: true)
        case "show":
            var lines = [when.map { "when \($0)" } ?? "when (not set)"]
            lines += parameters.keys.sorted().map { "\($0) = \(parameters[$0]!)" }
            return Outcome(output: lines.joined(separator: "\n"), ok: true)
        case "runcap":
            try need(1)
            guard let cap = await session.state.capability(for: args[0]) else { throw ClientError("no capability \(args[0]): getcap first") }
            let scope: When
            if let when { scope = when } else if let period = cap.statement.when.period {
                throw ClientError("\(args[0]) runs in '\(cap.statement.when)': set one, e.g. when now + \(5 * period)s / \(period)s")
            } else {
                scope = try When(parsing: "now")
            }
            let (spec, answer) = try await session.invoke(args[0], when: scope, parameters: parameters,
                                                         relabel: args.count > 1 ? args[1] : nil, now: wallClock())
            return Outcome(output: "\(spec.statement.label ?? spec.token) \(spec.token)\n" + show(answer), ok: answer.kind != .exception)
        case "listmeas":
            let m = await session.state.measurements
            let lines = m.map { "\($0.label ?? "(no label)")  \($0.token)  \($0.done ? "done" : "running")" }
            return Outcome(output: lines.isEmpty ? "no measurements" : lines.joined(separator: "\n"), ok: true)
        case "showmeas":
            try need(1)
            guard let answer = try await session.result(for: args[0]) else { throw ClientError("no measurement \(args[0])") }
            return Outcome(output: show(answer), ok: answer.kind != .exception)
        case "forget":
            try need(1)
            await session.forget(args[0])
            return Outcome(output: "", ok: true)
        default:
            throw ClientError("unknown command \(command): help lists them")
        }
    }

    func describe(_ c: Capability) -> String {
        let s = c.statement
        var lines = ["\(s.label ?? "(no label)")  \(s.verb)  token \(c.token)", "  when \(s.when)"]
        if let link = s.link { lines.append("  link \(link)") }
        lines += s.parameters.map { "  parameter \($0.name): \($0.value?.description ?? $0.constraint.description)" }
        lines += s.resultColumns.map { "  result \($0.name)" }
        return lines.joined(separator: "\n")
    }

    func show(_ m: Message) -> String { Shell.show(m, width: width) }

    /// A message as people read it: results as tables (each of an envelope's), receipts and
    /// exceptions in a line.
    static func show(_ m: Message, width: Int) -> String {
        switch m {
        case .result(let r): return Display.show(r, width: width)
        case .receipt(let r): return "receipt \(r.token): running, showmeas \(r.statement.label ?? r.token) for its result"
        case .exception(let e): return "exception: \(e.message)"
        case .envelope(let env):
            return env.contents.enumerated().map { i, m in "[\(i + 1)/\(env.contents.count)]\n" + show(m, width: width) }.joined(separator: "\n")
        default: return "a \(m.kind.rawValue)"
        }
    }
}

/// The time now (UTC), for the tokens of relative scopes.
func wallClock() -> Timestamp {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Timestamp(microsecondsSince1970: Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000)
}

extension String {
    func padding(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
}

/// The width tables are fitted to: `COLUMNS` if set, else the terminal's; output that goes
/// to a pipe or a file (a script's) is not cut.
func terminalWidth() -> Int {
    if let c = getenv("COLUMNS").flatMap({ Int(String(cString: $0)) }), c > 10 { return c }
    guard isatty(STDOUT_FILENO) != 0 else { return Int.max / 2 }
    var size = winsize()
    if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 10 { return Int(size.ws_col) }
    return 80
}

// MARK: Line editing (libedit)

/// What the completion callback offers; set before each readline call. The C callbacks take
/// no context, so the candidates live here, used by the main thread only.
nonisolated(unsafe) private var completionCandidates: [String] = []
nonisolated(unsafe) private var completionShell: Shell?
nonisolated(unsafe) private var completionNext = 0

private func completionGenerator(_ text: UnsafePointer<CChar>?, _ state: Int32) -> UnsafeMutablePointer<CChar>? {
    if state == 0 { completionNext = 0 }
    let word = text.map { String(cString: $0) } ?? ""
    while completionNext < completionCandidates.count {
        let c = completionCandidates[completionNext]
        completionNext += 1
        if c.hasPrefix(word) { return strdup(c) }
    }
    return nil
}

private func completer(_ text: UnsafePointer<CChar>?, _ start: Int32, _ end: Int32) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? {
    let word = text.map { String(cString: $0) } ?? ""
    let line = mpcli_edit_line().map { String(cString: $0) } ?? ""
    let before = String(decoding: line.utf8.prefix(Int(start)), as: UTF8.self)
    if let shell = completionShell {
        // This runs on the thread blocked in readline, never on the concurrency pool.
        let box = Box<[String]>([])
        let done = DispatchSemaphore(value: 0)
        Task.detached { box.value = await shell.completions(line: before, word: word); done.signal() }
        done.wait()
        completionCandidates = box.value
    }
    return rl_completion_matches(text, completionGenerator)
}

final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ v: T) { value = v }
}

/// Runs the shell: with a terminal on standard input, with line editing, history kept across
/// runs (`$MPCLI_HISTORY`, else `~/.mpcli_history`, 1,000 lines) and completion of commands,
/// labels and parameter names; otherwise reading commands as a script, one a line, without
/// prompts. Returns whether every command succeeded.
func runShell(_ shell: Shell) async -> Bool {
    var allOK = true
    if isatty(STDIN_FILENO) != 0 {
        let history = getenv("MPCLI_HISTORY").map { String(cString: $0) }
            ?? (getenv("HOME").map { String(cString: $0) + "/.mpcli_history" } ?? ".mpcli_history")
        stifle_history(1000)
        _ = read_history(history)
        completionShell = shell
        mpcli_edit_setup(UnsafePointer(strdup("mpcli")), completer)
        print("mpcli: an mPlane client; help lists the commands")
        while let raw = await readLine(prompt: "mpcli> ") {
            let line = raw.trimmingSpaces()
            if !line.isEmpty { add_history(line) }
            let outcome = await shell.execute(line)
            if !outcome.output.isEmpty { print(outcome.output) }
            allOK = allOK && outcome.ok
            if outcome.quit { break }
        }
        _ = write_history(history)
        return allOK
    }
    while let raw = Swift.readLine(strippingNewline: true) {
        let outcome = await shell.execute(raw)
        if !outcome.output.isEmpty { print(outcome.output) }
        if !outcome.ok { allOK = false }
        if outcome.quit { break }
    }
    return allOK
}

/// libedit's readline, on a thread of its own (it blocks, and completion waits on the shell).
func readLine(prompt: String) async -> String? {
    await withCheckedContinuation { (c: CheckedContinuation<String?, Never>) in
        let thread = ReadThread { c.resume(returning: $0) }
        thread.start(prompt: prompt)
    }
}

final class ReadThread: @unchecked Sendable {
    let done: (String?) -> Void
    var prompt = ""
    init(_ done: @escaping (String?) -> Void) { self.done = done }
    func start(prompt: String) {
        self.prompt = prompt
        let box = Unmanaged.passRetained(self)
        var tid = pthread_t()
        pthread_create(&tid, nil, { arg in
            let me = Unmanaged<ReadThread>.fromOpaque(arg!).takeRetainedValue()
            let p = readline(me.prompt)
            let line = p.map { String(cString: $0) }
            free(p)
            me.done(line)
            return nil
        }, box.toOpaque())
        pthread_detach(tid)
    }
}

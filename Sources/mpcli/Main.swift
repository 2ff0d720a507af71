import ArgumentParser
import MPlane
import MPlaneIO

@main
struct MPCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpcli",
        abstract: "The mPlane command-line client: without a subcommand, the interactive shell.",
        subcommands: [ShellCommand.self, Capabilities.self, ListCap.self, RunCap.self, ShowMeas.self, Run.self, Check.self, Parse.self, Identity.self],
        defaultSubcommand: ShellCommand.self
    )
}

/// Options shared by every subcommand that reads messages.
struct RegistryOptions: ParsableArguments {
    @Option(name: .customLong("registry"), help: "A private registry file to load (repeatable; includes must come first).")
    var registries: [String] = []

    /// A decoder whose store knows the embedded registries and the ones named here.
    func decoder() throws -> MessageDecoder {
        let store = RegistryStore()
        for path in registries {
            do {
                try store.register(json: try readAll(path))
            } catch let e as MPlaneError {
                throw ValidationError("\(path): \(e)")
            }
        }
        return MessageDecoder(store: store)
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate mPlane messages against the registry and print them canonically.",
        discussion: """
        For each FILE (or standard input for '-'), prints the message's kind, schema hash and token, \
        then its canonical JSON. On the first invalid message prints one line naming the field \
        and exits with status 1.
        """
    )

    @OptionGroup var registry: RegistryOptions

    @Flag(name: .long, help: "Print only the summary lines, not the JSON.")
    var quiet = false

    @Argument(help: "Message files ('-' for standard input).")
    var files: [String] = ["-"]

    func run() throws {
        let decoder = try registry.decoder()
        let encoder = MessageEncoder()
        for path in files {
            let bytes: [UInt8]
            do { bytes = try readAll(path) } catch {
                printError("mpcli: \(error)")
                throw ExitCode(2)
            }
            let message: Message
            do { message = try decoder.decode(bytes) } catch {
                printError("mpcli: \(path): invalid: \(error)")
                throw ExitCode(1)
            }
            print(Summary.lines(for: message, source: path).joined(separator: "\n"))
            if !quiet { print(encoder.encodeString(message)) }
        }
    }
}

struct Parse: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Parse a temporal scope or constraint and print it canonically.",
        discussion: "Examples: mpcli parse when 'now + 60s / 1s'; mpcli parse constraint address '10.0.0.0/8,::1'."
    )

    @Argument(help: "'when' or 'constraint'.") var what: String
    @Argument(parsing: .remaining, help: "The text (for constraint: the primitive first).") var text: [String]

    func run() throws {
        do {
            switch what {
            case "when":
                let w = try When(parsing: text.joined(separator: " "))
                print(w)
            case "constraint":
                guard text.count >= 2, let p = Primitive(rawValue: text[0]) else {
                    throw ValidationError("usage: mpcli parse constraint PRIMITIVE TEXT")
                }
                print(try Constraint.parse(text.dropFirst().joined(separator: " "), primitive: p))
            default:
                throw ValidationError("unknown kind '\(what)': use 'when' or 'constraint'")
            }
        } catch let e as MPlaneError {
            printError("mpcli: invalid: \(e)")
            throw ExitCode(1)
        }
    }
}

/// The summary lines `mpcli check` prints before a message.
enum Summary {
    static func lines(for message: Message, source: String, indent: String = "") -> [String] {
        var out = ["\(indent)# \(source): \(message.kind.rawValue)"]
        if let s = message.statement {
            out.append("\(indent)#   verb: \(s.verb)" + (s.label.map { "  label: \($0)" } ?? ""))
            out.append("\(indent)#   schema: \(s.schemaHash)")
        }
        if let t = message.token { out.append("\(indent)#   token: \(t)") }
        if case .envelope(let env) = message {
            for (i, m) in env.contents.enumerated() {
                out += lines(for: m, source: "contents[\(i)]", indent: indent + "  ")
            }
        }
        return out
    }
}

func printError(_ s: String) {
    var stderr = StandardError()
    print(s, to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) { writeStandardError(string) }
}

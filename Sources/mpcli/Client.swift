import ArgumentParser
import MPlane
import MPlaneClient
import MPlaneHTTP
import MPlaneIO

/// How mpcli reaches `https` components: mutual TLS with these files.
struct TLSOptions: ParsableArguments {
    @Option(name: .long, help: "For https: our certificate (PEM), presented to the component (mutual TLS).")
    var cert: String?

    @Option(name: .long, help: "For https: the private key of --cert (PEM).")
    var key: String?

    @Option(name: .long, help: "For https: the CA certificates the component's certificate must chain to (PEM).")
    var caChain: String?

    @Option(name: .long, help: "For https: a configuration file whose [TLS] section (cert, key, ca-chain) to use, e.g. the RI client's.")
    var tlsConfig: String?

    func validate() throws {
        let given = [cert, key, caChain].compactMap { $0 }.count
        if given != 0 && given != 3 { throw ValidationError("--cert, --key and --ca-chain go together") }
        if given == 3 && tlsConfig != nil { throw ValidationError("give --cert/--key/--ca-chain or --tls-config, not both") }
    }

    /// The TLS contexts the options give; nil for plain HTTP.
    func contexts() throws -> TLSContexts? {
        var settings: TLSSettings? = nil
        if let cert, let key, let caChain { settings = TLSSettings(certificate: cert, key: key, caChain: caChain) }
        if let tlsConfig {
            let text: String
            do { text = String(decoding: try readAll(tlsConfig), as: UTF8.self) } catch { throw ValidationError("--tls-config \(tlsConfig): \(error)") }
            do {
                guard let s = try IniFile(parsing: text).tlsSettings() else { throw ValidationError("--tls-config \(tlsConfig): no [TLS] section") }
                settings = s
            } catch let e as ValidationError { throw e } catch { throw ValidationError("--tls-config \(tlsConfig): \(error)") }
        }
        guard let settings else { return nil }
        do { return try TLSContexts(settings) } catch { throw ValidationError("\(error)") }
    }
}

/// A URL as mpcli takes it, with the TLS it needs.
func parseURL(_ text: String, tls: TLSContexts?) throws -> HTTPURL {
    guard let address = HTTPURL(text) else { throw ValidationError("not an http:// or https:// URL: \(text)") }
    if address.secure && tls == nil { throw ValidationError("\(text) is https: give --cert, --key and --ca-chain (or --tls-config)") }
    return address
}

/// What `getcap` and `run` share: the component's address (an argument), TLS and the registries.
struct ComponentOptions: ParsableArguments {
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var tls: TLSOptions

    @Argument(help: "The component, e.g. http://127.0.0.1:1228 (ours or the reference implementation's), or a supervisor's client side.")
    var url: String

    @Option(name: .long, help: "Seconds one HTTP exchange may take (more than the 5 s a component may hold a POST).")
    var requestTimeout: Double = 15

    func validate() throws {
        guard requestTimeout.isFinite, requestTimeout >= 1 else { throw ValidationError("--request-timeout must be at least 1 second") }
    }

    /// A client for the component at `url` (only its host and port: requests go to `/` and `/capability`).
    func client() throws -> ComponentClient {
        let contexts = try tls.contexts()
        return ComponentClient(url: try parseURL(url, tls: contexts), requestTimeout: .seconds(requestTimeout),
                               decoder: try registry.decoder(), tls: contexts)
    }
}

/// The same with the address as `--url`, for the commands named as in the shell.
struct URLOptions: ParsableArguments {
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var tls: TLSOptions

    @Option(name: .long, help: "The component or supervisor, e.g. http://127.0.0.1:1228.")
    var url: String

    @Option(name: .long, help: "Seconds one HTTP exchange may take.")
    var requestTimeout: Double = 15

    func client() throws -> ComponentClient {
        let contexts = try tls.contexts()
        return ComponentClient(url: try parseURL(url, tls: contexts), requestTimeout: .seconds(requestTimeout),
                               decoder: try registry.decoder(), tls: contexts)
    }
}

struct Capabilities: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "getcap",
        abstract: "Retrieve and list a component's capabilities (also: capabilities).",
        discussion: "One block per capability: label, verb, scope, token, parameters with their constraints, result columns. --json prints each capability's canonical JSON.",
        aliases: ["capabilities"]
    )

    @OptionGroup var component: ComponentOptions

    @Flag(name: .long, help: "Print each capability's JSON instead.")
    var json = false

    func run() async throws {
        let capabilities = try await fetchCapabilities(component.client())
        let encoder = MessageEncoder()
        for c in capabilities {
            if json {
                print(encoder.encodeString(.capability(c)))
                continue
            }
            let s = c.statement
            print("\(s.label ?? "(no label)")  \(s.verb)  when \(s.when)  token \(c.token)")
            print("  parameters: " + s.parameters.map { "\($0.name) (\($0.value?.description ?? $0.constraint.description))" }
                .joined(separator: ", "))
            print("  results: " + s.resultColumns.map(\.name).joined(separator: ", "))
        }
    }
}

/// How `run` and `runcap` build and run a specification.
struct MeasureOptions: ParsableArguments {
    @Option(name: .long, help: "The temporal scope, e.g. 'now + 5s / 1s' (default: 'now', for capabilities without a period).")
    var when: String?

    @Option(name: [.customLong("set"), .customLong("param")], help: "A parameter value, NAME=VALUE (repeatable).")
    var parameters: [String] = []

    @Option(name: .long, help: "Seconds between redemptions while the measurement runs.")
    var poll: Double = 1

    @Option(name: .long, help: "Seconds to wait for the result before interrupting the measurement.")
    var timeout: Double = 60

    @Flag(name: .long, help: "Print the answer's canonical mPlane JSON instead of a table.")
    var json = false

    func validate() throws {
        guard poll.isFinite, poll >= 0.05, poll <= 3600 else { throw ValidationError("--poll must be 0.05 to 3600 seconds") }
        guard timeout.isFinite, timeout >= 0, timeout <= 31_536_000 else { throw ValidationError("--timeout must be 0 to 31536000 seconds") }
    }
}

let runDiscussion = """
    Builds the specification from the capability named LABEL: parameters with a single \
    allowed value are filled in, the others come from --set NAME=VALUE or are left out \
    for the component's defaults (ours have defaults for optional ones). Sends it, redeems \
    the receipt every --poll seconds until the result comes, and after --timeout seconds \
    interrupts the measurement and prints the partial result. A repeated specification \
    ('repeat ... { ... }', cron) answers with one result per repetition: each is printed. \
    Exit status: 0 result, 1 the component refused or failed (its exception is printed) or is \
    unreachable, 3 no result in time, 64 bad arguments.
    """

struct RunCap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runcap",
        abstract: "Run a capability and print the result (as the shell's runcap).",
        discussion: runDiscussion + "\nExample: mpcli runcap ping-average-ip4 --url http://127.0.0.1:1228 --when 'now + 5s / 1s' --set destination.ip4=127.0.0.1"
    )

    @Argument(help: "The capability's label (or token).")
    var label: String

    @OptionGroup var target: URLOptions
    @OptionGroup var measure: MeasureOptions

    func run() async throws { try await runCapability(try target.client(), label: label, measure) }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a capability on a component and print the result (runcap with the URL first).",
        discussion: runDiscussion + "\nExample: mpcli run http://127.0.0.1:1228 ping-average-ip4 --when 'now + 5s / 1s' --param destination.ip4=127.0.0.1"
    )

    @OptionGroup var component: ComponentOptions

    @Argument(help: "The capability's label (or token).")
    var label: String

    @OptionGroup var measure: MeasureOptions

    func run() async throws { try await runCapability(try component.client(), label: label, measure) }
}

/// runcap and run: the capability, a specification, its answer.
func runCapability(_ client: ComponentClient, label: String, _ measure: MeasureOptions) async throws {
    let capabilities = try await fetchCapabilities(client)
    let named = capabilities.filter { $0.statement.label == label || $0.token == label }
    guard !named.isEmpty else {
        usageError("no capability '\(label)'; the component offers: "
                   + capabilities.compactMap(\.statement.label).joined(separator: ", "))
    }
    // Several capabilities may share a label (one per source address): the first whose
    // constraints take every --set.
    var made: (specification: Specification, leftOut: [String])? = nil
    var firstProblem = ""
    for capability in named {
        do { made = try makeSpecification(for: capability, label: label, measure); break } catch let e as ValidationError {
            if firstProblem.isEmpty { firstProblem = e.message }
        }
    }
    guard let (specification, leftOut) = made else { usageError(firstProblem) }
    let answer: Message
    do {
        answer = try await client.run(specification, poll: .seconds(measure.poll), deadline: .seconds(measure.timeout))
    } catch {
        printError("mpcli: \(error)")
        throw ExitCode(1)
    }
    switch answer {
    case .result, .envelope:
        if measure.json { print(MessageEncoder().encodeString(answer)) } else { print(Shell.show(answer, width: terminalWidth())) }
    case .exception(let e):
        let hint = leftOut.isEmpty ? "" : " (parameters left out: \(leftOut.joined(separator: ", ")); give them with --set)"
        printError("mpcli: \(label): the component answered: \(e.message)\(hint)")
        throw ExitCode(1)
    case .receipt(let r):
        printError("mpcli: \(label): no result within \(measure.timeout) s (receipt \(r.token))")
        throw ExitCode(3)
    default:
        printError("mpcli: \(label): unexpected answer, a message of kind \(answer.kind.rawValue)")
        throw ExitCode(1)
    }
}

/// The specification, and the parameters left out: those without a single allowed value
/// and no --set, for the component to fill in with its defaults (ours do).
func makeSpecification(for capability: Capability, label: String, _ measure: MeasureOptions) throws -> (Specification, [String]) {
    let scope: When
    do {
        if let when = measure.when { scope = try When(parsing: when) } else if let period = capability.statement.when.period {
            throw ValidationError("\(label) runs in '\(capability.statement.when)': give --when, e.g. 'now + \(5 * period)s / \(period)s'")
        } else {
            scope = try When(parsing: "now")
        }
    } catch let e as MPlaneError {
        throw ValidationError("--when: \(e)")
    }
    var specification = Specification(capability: capability, when: scope)
    for assignment in measure.parameters {
        guard let equals = assignment.firstIndex(of: "=") else {
            throw ValidationError("--set \(assignment): expected NAME=VALUE")
        }
        let name = String(assignment[..<equals]), value = String(assignment[assignment.index(after: equals)...])
        do { try specification.statement.setParameterValue(name, text: value) } catch {
            throw ValidationError("--set \(assignment): \(error)")
        }
    }
    let leftOut = specification.statement.parameters.filter { $0.value == nil }.map(\.name)
    for name in leftOut { specification.statement.removeParameter(name) }
    return (specification, leftOut)
}

struct ListCap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "listcap",
        abstract: "List a component's capabilities, one a line: label, verb, token (as the shell's listcap)."
    )

    @OptionGroup var target: URLOptions

    func run() async throws {
        for c in try await fetchCapabilities(try target.client()) {
            print("\(c.statement.label ?? "(no label)")  \(c.statement.verb)  \(c.token)")
        }
    }
}

struct ShowMeas: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "showmeas",
        abstract: "Redeem a measurement by its receipt's token and show it (as the shell's showmeas).",
        discussion: "Exit status: 0 result, 1 exception or unreachable, 3 still running (its receipt)."
    )

    @Argument(help: "The token of the receipt.")
    var token: String

    @OptionGroup var target: URLOptions

    @Flag(name: .long, help: "Print the answer's canonical mPlane JSON.")
    var json = false

    func run() async throws {
        let client = try target.client()
        var statement = Statement(verb: .measure)
        statement.token = token
        let answer: Message
        do { answer = try await client.send(.redemption(Redemption(statement, tokenOnly: true))) } catch {
            printError("mpcli: \(error)")
            throw ExitCode(1)
        }
        if json { print(MessageEncoder().encodeString(answer)) } else { print(Shell.show(answer, width: terminalWidth())) }
        switch answer {
        case .result, .envelope: return
        case .receipt: throw ExitCode(3)
        default: throw ExitCode(1)
        }
    }
}

struct ShellCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shell",
        abstract: "The interactive client (the default): seturl, getcap, listcap, showcap, when, set, unset, show, runcap, listmeas, showmeas, tbenable, help, quit.",
        discussion: """
        With a terminal: line editing, history kept across runs (MPCLI_HISTORY, else ~/.mpcli_history), \
        completion of commands, capability labels and parameter names. Otherwise the commands \
        are read from standard input, one a line, and the output is the same without prompts; \
        the exit status is 1 if a command failed.
        """
    )

    @OptionGroup var registry: RegistryOptions
    @OptionGroup var tls: TLSOptions

    @Option(name: .long, help: "The URL to start with (as seturl).")
    var url: String?

    func run() async throws {
        let contexts = try tls.contexts()
        let start = try url.map { try parseURL($0, tls: contexts) }
        let session = ClientSession(transport: HTTPClientTransport(tls: contexts, decoder: try registry.decoder()), defaultURL: start)
        let ok = await runShell(Shell(session: session, width: terminalWidth()))
        if !ok { throw ExitCode(1) }
    }
}

/// Prints `message` as mpcli's other argument errors and exits with status 64 (the
/// subcommand's problem, so without the root command's usage that ArgumentParser would add).
func usageError(_ message: String) -> Never {
    printError("mpcli: \(message)")
    MPCLI.exit(withError: ExitCode.validationFailure)
}

func fetchCapabilities(_ client: ComponentClient) async throws -> [Capability] {
    do { return try await client.capabilities() } catch {
        printError("mpcli: \(error)")
        throw ExitCode(1)
    }
}

struct Identity: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the mPlane identity of a certificate, as [Roles] names it.",
        discussion: "The values of the certificate's subject, in order, joined by dots (the RI's rule): DC=org, DC=example, OU=clients, CN=client-1 is org.example.clients.client-1."
    )

    @Argument(help: "A PEM certificate file.")
    var certificate: String

    func run() throws {
        do { print(try certificateIdentity(pemFile: certificate)) } catch {
            printError("mpcli: \(error)")
            throw ExitCode(1)
        }
    }
}

import ArgumentParser
import MPlane
import MPlaneClient
import MPlaneHTTP
import MPlaneIO

/// What `capabilities` and `run` share: the component's address and the registries.
struct ComponentOptions: ParsableArguments {
    @OptionGroup var registry: RegistryOptions

    @Argument(help: "The component, e.g. http://127.0.0.1:1228 (ours or the reference implementation's).")
    var url: String

    @Option(name: .long, help: "Seconds one HTTP exchange may take (more than the 5 s a component may hold a POST).")
    var requestTimeout: Double = 15

    @Option(name: .long, help: "For https: our certificate (PEM), presented to the component (mutual TLS).")
    var cert: String?

    @Option(name: .long, help: "For https: the private key of --cert (PEM).")
    var key: String?

    @Option(name: .long, help: "For https: the CA certificates the component's certificate must chain to (PEM).")
    var caChain: String?

    @Option(name: .long, help: "For https: a configuration file whose [TLS] section (cert, key, ca-chain) to use, e.g. the RI client's.")
    var tlsConfig: String?

    func validate() throws {
        guard requestTimeout.isFinite, requestTimeout >= 1 else { throw ValidationError("--request-timeout must be at least 1 second") }
        let given = [cert, key, caChain].compactMap { $0 }.count
        if given != 0 && given != 3 { throw ValidationError("--cert, --key and --ca-chain go together") }
        if given == 3 && tlsConfig != nil { throw ValidationError("give --cert/--key/--ca-chain or --tls-config, not both") }
    }

    /// The TLS settings the options give; nil for plain HTTP.
    func tlsSettings() throws -> TLSSettings? {
        if let cert, let key, let caChain { return TLSSettings(certificate: cert, key: key, caChain: caChain) }
        guard let tlsConfig else { return nil }
        let text: String
        do { text = String(decoding: try readAll(tlsConfig), as: UTF8.self) } catch { throw ValidationError("--tls-config \(tlsConfig): \(error)") }
        do {
            guard let s = try IniFile(parsing: text).tlsSettings() else { throw ValidationError("--tls-config \(tlsConfig): no [TLS] section") }
            return s
        } catch let e as ValidationError { throw e } catch { throw ValidationError("--tls-config \(tlsConfig): \(error)") }
    }

    /// A client for the component at `url` (only its host and port: requests go to `/` and `/capability`).
    func client() throws -> ComponentClient {
        guard let address = HTTPURL(url) else { throw ValidationError("not an http:// or https:// URL: \(url)") }
        var tls: TLSContexts? = nil
        if let settings = try tlsSettings() {
            do { tls = try TLSContexts(settings) } catch { throw ValidationError("\(error)") }
        }
        if address.secure && tls == nil { throw ValidationError("\(url) is https: give --cert, --key and --ca-chain (or --tls-config)") }
        return ComponentClient(url: address, requestTimeout: .seconds(requestTimeout), decoder: try registry.decoder(), tls: tls)
    }
}

struct Capabilities: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a component's capabilities.",
        discussion: "One block per capability: label, verb, scope, token, parameters with their constraints, result columns. --json prints each capability's canonical JSON."
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

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a capability on a component and print the result.",
        discussion: """
        Builds the specification from the capability named LABEL: parameters with a single \
        allowed value are filled in, the others come from --param NAME=VALUE or are left out \
        for the component's defaults (ours have defaults for optional ones). Sends it, redeems \
        the receipt every --poll seconds until the result comes, and after --timeout seconds \
        interrupts the measurement and prints the partial result. Exit status: 0 result, \
        1 the component refused or failed (its exception is printed) or is unreachable, \
        3 no result in time, 64 bad arguments.
        Example: mpcli run http://127.0.0.1:1228 ping-average-ip4 --when 'now + 5s / 1s' --param destination.ip4=127.0.0.1
        """
    )

    @OptionGroup var component: ComponentOptions

    @Argument(help: "The capability's label (or token).")
    var label: String

    @Option(name: .long, help: "The temporal scope, e.g. 'now + 5s / 1s' (default: 'now', for capabilities without a period).")
    var when: String?

    @Option(name: .customLong("param"), help: "A parameter value, NAME=VALUE (repeatable).")
    var parameters: [String] = []

    @Option(name: .long, help: "Seconds between redemptions while the measurement runs.")
    var poll: Double = 1

    @Option(name: .long, help: "Seconds to wait for the result before interrupting the measurement.")
    var timeout: Double = 60

    @Flag(name: .long, help: "Print the result's JSON instead of a table.")
    var json = false

    func validate() throws {
        guard poll.isFinite, poll >= 0.05, poll <= 3600 else { throw ValidationError("--poll must be 0.05 to 3600 seconds") }
        guard timeout.isFinite, timeout >= 0, timeout <= 31_536_000 else { throw ValidationError("--timeout must be 0 to 31536000 seconds") }
    }

    func run() async throws {
        let client = try component.client()
        let capabilities = try await fetchCapabilities(client)
        let named = capabilities.filter { $0.statement.label == label || $0.token == label }
        guard !named.isEmpty else {
            usageError("no capability '\(label)'; the component offers: "
                       + capabilities.compactMap(\.statement.label).joined(separator: ", "))
        }
        // Several capabilities may share a label (one per source address): the first whose
        // constraints take every --param.
        var made: (specification: Specification, leftOut: [String])? = nil
        var firstProblem = ""
        for capability in named {
            do { made = try makeSpecification(for: capability); break } catch let e as ValidationError {
                if firstProblem.isEmpty { firstProblem = e.message }
            }
        }
        guard let (specification, leftOut) = made else { usageError(firstProblem) }
        let answer: Message
        do {
            answer = try await client.run(specification, poll: .seconds(poll), deadline: .seconds(timeout))
        } catch {
            printError("mpcli: \(error)")
            throw ExitCode(1)
        }
        switch answer {
        case .result(let result):
            if json { print(MessageEncoder().encodeString(answer)) } else { print(table(result)) }
        case .exception(let e):
            let hint = leftOut.isEmpty ? "" : " (parameters left out: \(leftOut.joined(separator: ", ")); give them with --param)"
            printError("mpcli: \(label): the component answered: \(e.message)\(hint)")
            throw ExitCode(1)
        case .receipt(let r):
            printError("mpcli: \(label): no result within \(timeout) s (receipt \(r.token))")
            throw ExitCode(3)
        default:
            printError("mpcli: \(label): unexpected answer, a message of kind \(answer.kind.rawValue)")
            throw ExitCode(1)
        }
    }

    /// The specification, and the parameters left out: those without a single allowed value
    /// and no --param, for the component to fill in with its defaults (ours do).
    func makeSpecification(for capability: Capability) throws -> (Specification, [String]) {
        let scope: When
        do {
            if let when { scope = try When(parsing: when) } else if let period = capability.statement.when.period {
                throw ValidationError("\(label) runs in '\(capability.statement.when)': give --when, e.g. 'now + \(5 * period)s / \(period)s'")
            } else {
                scope = try When(parsing: "now")
            }
        } catch let e as MPlaneError {
            throw ValidationError("--when: \(e)")
        }
        var specification = Specification(capability: capability, when: scope)
        for assignment in parameters {
            guard let equals = assignment.firstIndex(of: "=") else {
                throw ValidationError("--param \(assignment): expected NAME=VALUE")
            }
            let name = String(assignment[..<equals]), value = String(assignment[assignment.index(after: equals)...])
            do { try specification.statement.setParameterValue(name, text: value) } catch {
                throw ValidationError("--param \(assignment): \(error)")
            }
        }
        let leftOut = specification.statement.parameters.filter { $0.value == nil }.map(\.name)
        for name in leftOut { specification.statement.removeParameter(name) }
        return (specification, leftOut)
    }

    /// Tab-separated, a header line with the column names; `*` for a missing value.
    func table(_ result: MPlane.Result) -> String {
        let columns = result.values.columns
        var lines = [columns.map(\.element.name).joined(separator: "\t")]
        for row in 0..<result.values.rowCount {
            lines.append(columns.map { $0[row]?.description ?? "*" }.joined(separator: "\t"))
        }
        return lines.joined(separator: "\n")
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

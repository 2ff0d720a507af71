import ArgumentParser
import MPlane
import MPlaneRuntime

/// What `capabilities` and `run` share: the component's address and the registries.
struct ComponentOptions: ParsableArguments {
    @OptionGroup var registry: RegistryOptions

    @Argument(help: "The component, e.g. http://127.0.0.1:1228 (ours or the reference implementation's).")
    var url: String

    @Option(name: .long, help: "Seconds one HTTP exchange may take.")
    var requestTimeout: Int = 15

    func client() throws -> ComponentClient {
        guard let address = HTTPURL(url) else { throw ValidationError("not an http:// URL: \(url)") }
        return ComponentClient(url: address, requestTimeout: .seconds(requestTimeout), decoder: try registry.decoder())
    }
}

struct Capabilities: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a component's capabilities.",
        discussion: "One block per capability: label, verb, scope, token, parameters with their constraints, result columns. --json prints the capabilities as the component sent them."
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
        allowed value are filled in, the others come from --param NAME=VALUE. Sends it, redeems \
        the receipt every --poll seconds until the result comes, and after --timeout seconds \
        interrupts the measurement and prints the partial result. Exit status: 0 result, \
        1 the component refused or failed (its exception is printed), 3 no result in time.
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

    func run() async throws {
        let client = try component.client()
        let capabilities = try await fetchCapabilities(client)
        guard let capability = capabilities.first(where: { $0.statement.label == label || $0.token == label }) else {
            throw ValidationError("no capability '\(label)'; the component offers: "
                                  + capabilities.compactMap(\.statement.label).joined(separator: ", "))
        }
        let specification = try makeSpecification(for: capability)
        let answer: Message
        do {
            answer = try await client.run(specification, poll: .milliseconds(Int(poll * 1000)),
                                          deadline: .milliseconds(Int(timeout * 1000)))
        } catch {
            printError("mpcli: \(error)")
            throw ExitCode(1)
        }
        switch answer {
        case .result(let result):
            if json { print(MessageEncoder().encodeString(answer)) } else { print(table(result)) }
        case .exception(let e):
            printError("mpcli: \(label): the component answered: \(e.message)")
            throw ExitCode(1)
        case .receipt(let r):
            printError("mpcli: \(label): no result within \(timeout) s (receipt \(r.token))")
            throw ExitCode(3)
        default:
            printError("mpcli: \(label): unexpected answer: a \(answer.kind.rawValue)")
            throw ExitCode(1)
        }
    }

    func makeSpecification(for capability: Capability) throws -> Specification {
        let scope: When
        do {
            if let when { scope = try When(parsing: when) } else if capability.statement.when.period == nil {
                scope = try When(parsing: "now")
            } else {
                throw ValidationError("\(label) runs in '\(capability.statement.when)': give --when, e.g. 'now + 5s / 1s'")
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
        let missing = specification.statement.parameters.filter { $0.value == nil }
        if !missing.isEmpty {
            throw ValidationError("give --param for: " + missing.map { "\($0.name) (\($0.constraint))" }.joined(separator: ", "))
        }
        return specification
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

func fetchCapabilities(_ client: ComponentClient) async throws -> [Capability] {
    do { return try await client.capabilities() } catch {
        printError("mpcli: \(error)")
        throw ExitCode(1)
    }
}

// A throwaway PKI for the TLS tests, made with deploy/make-certs.sh (openssl): never a
// committed key.
import MPlaneIO
#if canImport(Glibc)
import Glibc
#endif

/// Certificates made once per test process under /tmp (removed at exit): a CA with
/// component-1, supervisor-1, client-1 and client-2; `multi` (a multi-valued RDN), `old`
/// (expired), `revoked` (listed in crl.pem); and a second CA (`other/`) with its own client.
public final class TestPKI: Sendable {
    public let dir: String

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The process's PKI; an error names what failed (openssl missing, the script failing).
    public static let shared: Result<TestPKI, Failure> = {
        let dir = "/tmp/mplane-pki-\(getpid())"
        _ = run(["rm", "-rf", dir])
        atexit { _ = system("rm -rf /tmp/mplane-pki-\(getpid())") }
        let script = repoRoot + "/deploy/make-certs.sh"
        let steps: [[String]] = [
            [script, dir],
            [script, dir, "issue", "client-2", "clients"],
            [script, dir, "issue", "component-2", "components"],
            [script, dir, "issue", "multi", "clients", "--subject", "/DC=org/DC=example/OU=clients+CN=multi-1/CN=x"],
            [script, dir, "issue", "old", "clients", "--expired"],
            [script, dir, "issue", "revoked", "clients"],
            [script, dir, "revoke", "revoked"],
            [script, dir + "/other"],
        ]
        for step in steps {
            let (status, output) = run(step)
            if status != 0 {
                return .failure(Failure(description: "\(step.joined(separator: " ")) failed (\(status)): \(String(decoding: output, as: UTF8.self))"))
            }
        }
        return .success(TestPKI(dir: dir))
    }()

    init(dir: String) { self.dir = dir }

    public var ca: String { dir + "/ca.crt" }
    public var crl: String { dir + "/crl.pem" }
    public func certificate(_ name: String) -> String { dir + "/" + name + ".crt" }
    public func key(_ name: String) -> String { dir + "/" + name + ".key" }

    /// A `[TLS]` section for `name` (a name under `other/` belongs to the second CA).
    public func section(_ name: String, crl: Bool = false, extra: String = "") -> String {
        let base = name.hasPrefix("other/") ? dir + "/other" : dir
        return "[TLS]\ncert = \(certificate(name))\nkey = \(key(name))\nca-chain = \(base)/ca.crt\n"
            + (crl ? "crl = \(self.crl)\n" : "") + extra
    }
}

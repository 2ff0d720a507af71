import MPlane
@testable import MPlaneSupervisor
import MPlaneTestSupport
import PostgresNIO
import Testing

/// The PostgreSQL store over TLS, against a throwaway cluster on 127.0.0.1 that takes TLS
/// only and asks for a client certificate of the test CA (``PostgresCluster/sharedTLS``).
@Suite("PostgreSQL over TLS: verified both ways, and refused with its reason", .timeLimit(.minutes(1)))
struct PostgresTLSTests {
    func cluster() throws -> (PostgresCluster, TestPKI) {
        (try PostgresCluster.sharedTLS.get(), try TestPKI.shared.get())
    }

    @Test("verify-full with the supervisor's certificate: the store is made ready and used, every connection TLS and showing that certificate")
    func verified() async throws {
        let (cluster, pki) = try cluster()
        let url = try cluster.tcpDatabase("sslmode=verify-full&sslrootcert=\(pki.ca)&sslcert=\(pki.certificate("client-1"))&sslkey=\(pki.key("client-1"))")
        let store = try PostgresStore(url: url, connections: 2, connectPatience: .zero)
        #expect(store.location.hasSuffix("?sslmode=verify-full") && store.location.hasPrefix("postgres://postgres@127.0.0.1:"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await store.run() }
            defer { group.cancelAll() }
            try await store.prepare()
            _ = try await store.register(component: "p", address: nil, capabilities: [loopbackCapability], callback: .verb, now: t0)
            #expect(try await store.pollState(component: "p", now: t0, redeliverAfter: 60_000_000).registered)
            var sessions: [(Bool, String)] = []
            for try await (ssl, dn) in try await store.client.query("""
                SELECT s.ssl, coalesce(s.client_dn, '') FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                WHERE a.datname = current_database() AND a.backend_type = 'client backend'
                """).decode((Bool, String).self) { sessions.append((ssl, dn)) }
            #expect(!sessions.isEmpty)
            #expect(sessions.allSatisfy { $0.0 && $0.1.contains("CN=client-1") }, "\(sessions)")
        }
    }

    @Test("verify-ca checks the chain and not the name: accepted at an address the certificate does not name")
    func chainOnly() async throws {
        let (cluster, pki) = try cluster()
        let url = try cluster.tcpDatabase("sslmode=verify-ca&sslrootcert=\(pki.ca)&sslcert=\(pki.certificate("client-1"))&sslkey=\(pki.key("client-1"))",
                                          host: "127.0.0.2")
        let store = try PostgresStore(url: url, connections: 2, connectPatience: .zero)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await store.run() }
            defer { group.cancelAll() }
            try await store.prepare()
            var ssl = false
            for try await s in try await store.client.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").decode(Bool.self) { ssl = s }
            #expect(ssl)
        }
    }

    enum Refusal: String, CaseIterable, Sendable {
        case plain, otherCA, noClientCertificate, otherName
    }

    @Test("refused at once, the reason in the message: plain TCP, a server certificate of another CA, no client certificate, verify-full to an address the certificate does not name",
          arguments: Refusal.allCases)
    func refused(_ refusal: Refusal) async throws {
        let (cluster, pki) = try cluster()
        let client = "sslcert=\(pki.certificate("client-1"))&sslkey=\(pki.key("client-1"))"
        let (parameters, reason): (String, String) = switch refusal {
        case .plain: ("sslmode=disable", "pg_hba.conf rejects connection for host \"127.0.0.1\"")
        case .otherCA: ("sslmode=verify-full&sslrootcert=\(pki.dir)/other/ca.crt&\(client)", "CERTIFICATE_VERIFY_FAILED")
        case .noClientCertificate: ("sslmode=require", "connection requires a valid client certificate")
        case .otherName: ("sslmode=verify-full&sslrootcert=\(pki.ca)&\(client)", "failedToValidateHostname")
        }
        let host = refusal == .otherName ? "127.0.0.2" : "127.0.0.1"
        let store = try PostgresStore(url: try cluster.tcpDatabase(parameters, host: host), connections: 2, connectPatience: .zero)
        // The pool runs too: a connection that wrongly succeeds is then seen at once.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await store.run() }
            defer { group.cancelAll() }
            do {
                try await store.prepare()
                Issue.record("connected with \(parameters)")
            } catch let e as PostgresStore.Failure {
                #expect(e.message.contains("cannot connect: ") && e.message.contains(reason), "\(e.message)")
            }
        }
    }
}

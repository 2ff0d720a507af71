import Logging
import NIOSSL
import PostgresNIO

#if canImport(Glibc)
import Glibc
#endif

extension PostgresStore {
    /// Where a PostgreSQL store connects, and how, from its URL:
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?PARAMETERS]`, or `postgres://USER@/DATABASE?host=/directory[&port=N]`
    /// for a Unix socket. The parameters are libpq's, and only these (a misspelt one is
    /// refused, not ignored):
    ///
    /// - `sslmode`: `disable`; `prefer` (the default over TCP, as libpq's: TLS when the server
    ///   offers it); `require` (TLS or no connection); `verify-ca` (and the server's
    ///   certificate chains to `sslrootcert`, or to the system's roots); `verify-full` (and it
    ///   names the host). `prefer` and `require` check the chain too when `sslrootcert` is
    ///   given, as libpq does. Over a Unix socket only `disable` and `prefer` (no TLS).
    /// - `sslrootcert`: PEM certificates the server's must chain to.
    /// - `sslcert`, `sslkey`: this supervisor's certificate and key (PEM), for a server
    ///   that asks for one (`hostssl … clientcert=verify-ca` or `cert` in `pg_hba.conf`).
    /// - `host` (a socket directory), `port`.
    struct Endpoint: Sendable {
        /// What the pool connects with.
        let client: PostgresClient.Configuration
        /// The same for one connection of its own, to learn why the pool cannot connect
        /// (``PostgresStore/reachable()``).
        let connection: PostgresConnection.Configuration
        /// The URL without the password, for logs.
        let display: String

        enum Mode: String, CaseIterable {
            case disable, prefer, require
            case verifyCA = "verify-ca"
            case verifyFull = "verify-full"
        }

        static let parameters: Set<String> = ["host", "port", "sslmode", "sslrootcert", "sslcert", "sslkey"]

        init(_ url: String) throws(Failure) {
            var rest: Substring
            if url.hasPrefix("postgres://") { rest = url.dropFirst("postgres://".count) } else if url.hasPrefix("postgresql://") {
                rest = url.dropFirst("postgresql://".count)
            } else { throw Failure(message: "\(url): not a postgres:// URL") }
            var query: [String: String] = [:]
            if let q = rest.firstIndex(of: "?") {
                for pair in rest[rest.index(after: q)...].split(separator: "&") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    let key = String(kv[0])
                    guard Self.parameters.contains(key) else {
                        throw Failure(message: "\(Self.hidingPassword(url)): unknown parameter \(key) (use \(Self.parameters.sorted().joined(separator: ", ")))")
                    }
                    guard kv.count == 2, !kv[1].isEmpty else { throw Failure(message: "\(Self.hidingPassword(url)): \(key) has no value") }
                    query[key] = String(kv[1])
                }
                rest = rest[..<q]
            }
            var user = "postgres", password: String? = nil
            if let at = rest.lastIndex(of: "@") {
                let credentials = rest[..<at]
                rest = rest[rest.index(after: at)...]
                if let colon = credentials.firstIndex(of: ":") {
                    user = String(credentials[..<colon])
                    password = String(credentials[credentials.index(after: colon)...])
                } else {
                    user = String(credentials)
                }
            }
            let shown = Self.hidingPassword(url)
            guard let slash = rest.firstIndex(of: "/") else { throw Failure(message: "\(shown): name the database (postgres://user@host:port/database)") }
            let database = String(rest[rest.index(after: slash)...])
            let hostPort = rest[..<slash]
            guard !database.isEmpty else { throw Failure(message: "\(shown): name the database") }
            var host = String(hostPort), port = 5432
            if let colon = hostPort.lastIndex(of: ":"), !hostPort.hasSuffix("]") {
                guard let p = Int(hostPort[hostPort.index(after: colon)...]), (1...65535).contains(p) else {
                    throw Failure(message: "\(shown): the port is not a number in 1...65535")
                }
                port = p
                host = String(hostPort[..<colon])
            }
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            if let p = query["port"] {
                guard let n = Int(p), (1...65535).contains(n) else { throw Failure(message: "\(shown): port = \(p) is not a number in 1...65535") }
                port = n
            }
            guard let mode = Mode(rawValue: query["sslmode"] ?? "prefer") else {
                throw Failure(message: "\(shown): sslmode = \(query["sslmode"] ?? ""): use \(Mode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if let directory = query["host"] {
                guard directory.hasPrefix("/") else { throw Failure(message: "\(shown): host = \(directory): a socket directory starts with /") }
                guard mode == .disable || mode == .prefer, query["sslrootcert"] == nil, query["sslcert"] == nil, query["sslkey"] == nil else {
                    throw Failure(message: "\(shown): TLS does not apply to a Unix socket (sslmode = disable or prefer, no ssl files)")
                }
                let socket = directory + "/.s.PGSQL.\(port)"
                client = PostgresClient.Configuration(unixSocketPath: socket, username: user, password: password, database: database)
                connection = PostgresConnection.Configuration(unixSocketPath: socket, username: user, password: password, database: database)
                display = "postgres://\(user)@/\(database)?host=\(directory)&port=\(port)"
                return
            }
            guard !host.isEmpty else { throw Failure(message: "\(shown): name the host, or a socket directory with ?host=/path") }
            var poolTLS = PostgresClient.Configuration.TLS.disable
            var connectionTLS = PostgresConnection.Configuration.TLS.disable
            if let tls = try Self.tls(mode, query, shown) {
                poolTLS = mode == .prefer ? .prefer(tls.configuration) : .require(tls.configuration)
                connectionTLS = mode == .prefer ? .prefer(tls.context) : .require(tls.context)
            }
            client = PostgresClient.Configuration(host: host, port: port, username: user, password: password, database: database, tls: poolTLS)
            connection = PostgresConnection.Configuration(host: host, port: port, username: user, password: password, database: database,
                                                          tls: connectionTLS)
            display = "postgres://\(user)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)?sslmode=\(mode.rawValue)"
        }

        /// The TLS the mode asks for (nil: none), every file read and checked now.
        static func tls(_ mode: Mode, _ query: [String: String], _ shown: String) throws(Failure)
            -> (configuration: TLSConfiguration, context: NIOSSLContext)?
        {
            guard mode != .disable else {
                if query["sslrootcert"] != nil || query["sslcert"] != nil || query["sslkey"] != nil {
                    throw Failure(message: "\(shown): sslmode = disable, but ssl files are named")
                }
                return nil
            }
            var c = TLSConfiguration.makeClientConfiguration()
            c.minimumTLSVersion = .tlsv12
            func pem(_ key: String, _ path: String) throws(Failure) -> [NIOSSLCertificate] {
                guard access(path, R_OK) == 0 else {
                    throw Failure(message: "\(shown): \(key) = \(path): cannot be read (\(String(cString: strerror(errno))))")
                }
                let certificates: [NIOSSLCertificate]
                do { certificates = try NIOSSLCertificate.fromPEMFile(path) } catch {
                    throw Failure(message: "\(shown): \(key) = \(path): not PEM certificates (\(error))")
                }
                guard !certificates.isEmpty else { throw Failure(message: "\(shown): \(key) = \(path): holds no certificate") }
                return certificates
            }
            if let roots = query["sslrootcert"] { c.trustRoots = .certificates(try pem("sslrootcert", roots)) }
            switch mode {
            case .verifyFull: c.certificateVerification = .fullVerification
            case .verifyCA: c.certificateVerification = .noHostnameVerification
            default: c.certificateVerification = query["sslrootcert"] == nil ? .none : .noHostnameVerification
            }
            switch (query["sslcert"], query["sslkey"]) {
            case (nil, nil): break
            case let (cert?, key?):
                c.certificateChain = try pem("sslcert", cert).map(NIOSSLCertificateSource.certificate)
                guard access(key, R_OK) == 0 else {
                    throw Failure(message: "\(shown): sslkey = \(key): cannot be read (\(String(cString: strerror(errno))))")
                }
                do { c.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)) } catch {
                    throw Failure(message: "\(shown): sslkey = \(key): not a PEM private key, or encrypted (\(error))")
                }
            default:
                throw Failure(message: "\(shown): name both sslcert and sslkey, or neither")
            }
            do { return (c, try NIOSSLContext(configuration: c)) } catch {
                throw Failure(message: "\(shown): the TLS files cannot be used together (\(error))")
            }
        }

        /// `url` with its password replaced, for messages.
        static func hidingPassword(_ url: String) -> String {
            guard let scheme = url.range(of: "://") else { return url }
            let afterScheme = url[scheme.upperBound...]
            let authorityEnd = afterScheme.firstIndex(of: "/") ?? afterScheme.endIndex
            guard let at = afterScheme[..<authorityEnd].lastIndex(of: "@"),
                  let colon = afterScheme[..<at].firstIndex(of: ":") else { return url }
            return String(url[..<afterScheme.index(after: colon)]) + "***" + String(url[at...])
        }
    }

    /// Opens one connection of its own and closes it, once a second until it works or
    /// ``connectPatience`` has passed; then throws the last attempt's reason.
    func reachable() async throws(Failure) {
        let clock = ContinuousClock()
        let deadline = clock.now + connectPatience
        var attempt = 0
        while true {
            attempt += 1
            do {
                let c = try await PostgresConnection.connect(configuration: endpoint.connection, id: attempt, logger: logger)
                try? await c.close()
                return
            } catch {
                if Task.isCancelled || clock.now + .seconds(1) > deadline {
                    throw Failure(message: "\(location): cannot connect: \(Self.reason(error))")
                }
                logger.notice("the store cannot be reached yet; trying again", metadata: ["error": "\(Self.reason(error))"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// What went wrong, readable: PSQLError hides its details from `description`.
    static func reason(_ error: any Error) -> String {
        if let e = error as? PSQLError {
            if let message = e.serverInfo?[.message] { return message }
            if let underlying = e.underlying { return "\(e.code): \(underlying)" }
            return "\(e.code)"
        }
        return "\(error)"
    }
}

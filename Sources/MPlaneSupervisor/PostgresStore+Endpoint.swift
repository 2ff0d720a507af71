import Logging
import MPlaneHTTP
import NIOSSL
import PostgresNIO


extension PostgresStore {
    /// Where a PostgreSQL store connects, and how, from its URL:
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?PARAMETERS]`, or `postgres://USER@/DATABASE?host=/directory[&port=N]`
    /// for a Unix socket. The parameters are libpq's, and only these (a misspelt one is
    /// refused, not ignored):
    ///
    /// - `sslmode`: `disable`; `prefer` (the default over TCP, as libpq's: TLS when the server
    ///   offers it); `require` (TLS or no connection); `verify-ca` (and the server's
    ///   certificate chains to `sslrootcert`, which it needs); `verify-full` (and it names the
    ///   host; the chain to `sslrootcert`, or else to the system's roots). `prefer` and
    ///   `require` check the chain too when `sslrootcert` is given, as libpq does. Over a Unix
    ///   socket only `disable` and `prefer` (no TLS).
    /// - User, password and database percent-decoded; a parameter given twice is refused.
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
            } else { throw Failure(message: "not a postgres:// URL") }
            let shown = Self.hidingPassword(url)
            // Reserved characters in the user, password or database are percent-encoded, as
            // libpq wants them (`p%40ss` for `p@ss`); a value is decoded after the split.
            var query: [String: String] = [:]
            if let q = rest.firstIndex(of: "?") {
                for pair in rest[rest.index(after: q)...].split(separator: "&") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    let key = String(kv[0])
                    guard Self.parameters.contains(key) else {
                        // Named only if it looks like a parameter: an unencoded `?` in a
                        // password would otherwise put the password's tail here.
                        let named = key.allSatisfy { $0.isASCII && ($0.isLetter || $0 == "_") } ? " \(key)" : ""
                        throw Failure(message: "\(shown): unknown parameter\(named) (use \(Self.parameters.sorted().joined(separator: ", ")); percent-encode a password's reserved characters)")
                    }
                    guard query[key] == nil else { throw Failure(message: "\(shown): \(key) given twice") }
                    guard kv.count == 2, !kv[1].isEmpty, let value = Self.percentDecoded(kv[1]) else {
                        throw Failure(message: "\(shown): \(key) has no value, or a malformed %-escape")
                    }
                    query[key] = value
                }
                rest = rest[..<q]
            }
            var user = "postgres", password: String? = nil
            if let at = rest.lastIndex(of: "@") {
                let credentials = rest[..<at]
                rest = rest[rest.index(after: at)...]
                let colon = credentials.firstIndex(of: ":")
                guard let u = Self.percentDecoded(credentials[..<(colon ?? credentials.endIndex)]),
                      let p = colon.map({ Self.percentDecoded(credentials[credentials.index(after: $0)...]) }) ?? .some(nil)
                else { throw Failure(message: "\(shown): a malformed %-escape in the user or password") }
                user = u
                password = p
            }
            guard let slash = rest.firstIndex(of: "/") else { throw Failure(message: "\(shown): name the database (postgres://user@host:port/database)") }
            guard let database = Self.percentDecoded(rest[rest.index(after: slash)...]) else {
                throw Failure(message: "\(shown): a malformed %-escape in the database")
            }
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
                let given = query["sslmode"].map { v in v.allSatisfy { $0.isASCII && ($0.isLetter || $0 == "-") } ? " = \(v)" : "" } ?? ""
                throw Failure(message: "\(shown): sslmode\(given): use \(Mode.allCases.map(\.rawValue).joined(separator: ", "))")
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
            /// `body` on the file of `key`; its failure named with the URL and the parameter.
            func file<T>(_ key: String, _ path: String, _ body: (String) throws(PEMFile.Failure) -> T) throws(Failure) -> T {
                do { return try body(path) } catch { throw Failure(message: "\(shown): \(key) = \(path): \(error.reason)") }
            }
            if let roots = query["sslrootcert"] {
                c.trustRoots = .certificates(try file("sslrootcert", roots, PEMFile.certificates))
            } else if mode == .verifyCA {
                // The system's roots vouch for any name they ever certified: without the name
                // checked (verify-full) that proves nothing. libpq refuses it too.
                throw Failure(message: "\(shown): sslmode = verify-ca needs sslrootcert (the CA of the database's certificate); or use verify-full")
            }
            switch mode {
            case .verifyFull: c.certificateVerification = .fullVerification
            case .verifyCA: c.certificateVerification = .noHostnameVerification
            default: c.certificateVerification = query["sslrootcert"] == nil ? .none : .noHostnameVerification
            }
            switch (query["sslcert"], query["sslkey"]) {
            case (nil, nil): break
            case let (cert?, key?):
                c.certificateChain = try file("sslcert", cert, PEMFile.certificates).map(NIOSSLCertificateSource.certificate)
                c.privateKey = .privateKey(try file("sslkey", key, PEMFile.privateKey))
            default:
                throw Failure(message: "\(shown): name both sslcert and sslkey, or neither")
            }
            do { return (c, try NIOSSLContext(configuration: c)) } catch {
                throw Failure(message: "\(shown): the TLS files cannot be used together (\(error))")
            }
        }

        /// `url` with its password replaced, for messages: everything from the first `:`
        /// after the scheme to the last `@` (more than the password when a parameter holds an
        /// `@`; never less, even with a `/` or `?` left unencoded in it).
        static func hidingPassword(_ url: String) -> String {
            guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].lastIndex(of: "@"),
                  let colon = url[scheme.upperBound..<at].firstIndex(of: ":") else { return url }
            return String(url[...colon]) + "***" + String(url[at...])
        }

        /// `%XX` escapes decoded (UTF-8); nil for a malformed escape or invalid UTF-8.
        static func percentDecoded(_ text: Substring) -> String? {
            guard text.contains("%") else { return String(text) }
            var bytes: [UInt8] = []
            var i = text.utf8.startIndex
            let utf8 = text.utf8
            while i != utf8.endIndex {
                let b = utf8[i]
                if b == UInt8(ascii: "%") {
                    let h = utf8.index(after: i)
                    guard h != utf8.endIndex, utf8.index(after: h) != utf8.endIndex,
                          let hi = hex(utf8[h]), let lo = hex(utf8[utf8.index(after: h)]) else { return nil }
                    bytes.append(hi << 4 | lo)
                    i = utf8.index(h, offsetBy: 2)
                } else {
                    bytes.append(b)
                    i = utf8.index(after: i)
                }
            }
            return String(validating: bytes, as: UTF8.self)
        }

        static func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
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
            // Each attempt within what is left of the patience (a host that drops packets
            // would otherwise take the connect timeout, 10 s, past it).
            var configuration = endpoint.connection
            let left = clock.now.duration(to: deadline)
            configuration.options.connectTimeout = .milliseconds(Swift.max(500, Swift.min(10_000, left.components.seconds * 1_000)))
            do {
                let c = try await PostgresConnection.connect(configuration: configuration, id: attempt, logger: logger)
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

public import Logging
public import MPlaneIO
import NIOCore
import NIOSSL
import SwiftASN1
import Synchronization
import Crypto
import _CryptoExtras
public import MPlane

#if canImport(Glibc)
import Glibc
#endif

/// The RI's identity of a peer without TLS.
public let unauthenticatedIdentity = "Identity.Unauthenticated.Default"

/// The `[TLS]` section, as the RI reads it (`cert`, `key`, `ca-chain`), with our additions.
public struct TLSSettings: Sendable, Equatable {
    /// PEM files: our certificate (and its chain), our private key, the CA certificates a
    /// peer's certificate must chain to. Relative paths are taken from the working directory,
    /// as the RI takes them.
    public var certificate: String
    public var key: String
    public var caChain: String
    /// Check that a server's certificate names the host we connect to (`verify-hostname`,
    /// yes): turn off only for a private PKI whose certificates name no hosts.
    public var verifyHostname = true
    /// Warn in the log when our certificate expires within this many days (`expiry-warning-days`, 30).
    public var expiryWarningDays = 30
    /// A PEM file of certificate revocation lists from the CA (`crl`): a peer whose
    /// certificate is listed is refused at the handshake.
    public var crl: String?

    public init(certificate: String, key: String, caChain: String) {
        self.certificate = certificate
        self.key = key
        self.caChain = caChain
    }

    /// Reads the `[TLS]` section's values; nil when the section is absent (plain HTTP).
    public init?(section values: [String: String]?) throws(ServiceConfigurationError) {
        guard let values else { return nil }
        let s = SectionSettings(values)
        func required(_ key: String) throws(ServiceConfigurationError) -> String {
            guard let v = s[key], !v.isEmpty else {
                throw ServiceConfigurationError(message: "[TLS] needs \(key) (a PEM file): cert, key and ca-chain together")
            }
            return v
        }
        self.init(certificate: try required("cert"), key: try required("key"), caChain: try required("ca-chain"))
        verifyHostname = try s.flag("verify-hostname", absent: true)
        expiryWarningDays = try s.integer("expiry-warning-days", in: 0...3650, absent: 30)
        crl = s["crl"].flatMap { $0.isEmpty ? nil : $0 }
    }
}

/// Why TLS could not be set up, naming the file and what is wrong with it.
public struct TLSSetupError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The identity of a certificate as the RI derives it: the values of the subject's
/// relative distinguished names in the certificate's order, joined by dots (of a
/// multi-valued one, its first value as encoded, as the RI takes `rdn[0]`).
public func certificateIdentity(der: [UInt8]) throws -> String {
    try CertificateFields(der: der).subject.identity
}

/// The identity of the first certificate in a PEM file (`mpcli identity`, tests).
public func certificateIdentity(pemFile path: String) throws -> String {
    let text = String(decoding: try readAll(path, limit: 1 << 20), as: UTF8.self)
    guard let document = try PEMDocument.parseMultiple(pemString: text).first(where: { $0.discriminator == "CERTIFICATE" }) else {
        throw TLSSetupError("\(path): holds no certificate")
    }
    return try certificateIdentity(der: document.derBytes)
}

/// An X.509 Name (RFC 5280, 4.1.2.4): its relative distinguished names in order, each its
/// attribute values as encoded, and its DER (names are compared by it).
struct DistinguishedName: Equatable, CustomStringConvertible {
    var relativeNames: [[String]]
    var der: [UInt8]

    init(derEncoded node: ASN1Node) throws {
        der = Array(node.encodedBytes)
        relativeNames = try DER.sequence(node, identifier: .sequence) { rdns in
            var out: [[String]] = []
            while let rdn = rdns.next() {
                out.append(try DER.set(rdn, identifier: .set) { attributes in
                    var values: [String] = []
                    while let attribute = attributes.next() {
                        values.append(try DER.sequence(attribute, identifier: .sequence) { parts in
                            guard parts.next() != nil, let value = parts.next() else {
                                throw ASN1Error.invalidASN1Object(reason: "an attribute needs a type and a value")
                            }
                            return Self.text(value)
                        })
                    }
                    return values
                })
            }
            return out
        }
    }

    /// A directory string as text (UTF-8 as OpenSSL gives it to Python).
    static func text(_ node: ASN1Node) -> String {
        guard case .primitive(let bytes) = node.content else { return "" }
        switch node.identifier.tagNumber {
        case 30:  // BMPString: UTF-16BE
            let units = stride(from: bytes.startIndex, to: bytes.endIndex - 1, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
            return String(decoding: units, as: UTF16.self)
        case 28:  // UniversalString: UTF-32BE
            var scalars = String.UnicodeScalarView()
            var i = bytes.startIndex
            while i + 3 < bytes.endIndex {
                var v: UInt32 = 0
                for b in bytes[i..<i + 4] { v = v << 8 | UInt32(b) }
                if let u = Unicode.Scalar(v) { scalars.append(u) }
                i += 4
            }
            return String(scalars)
        case 20:  // TeletexString, read as Latin-1 as OpenSSL does
            return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
        default:  // UTF8String, PrintableString, IA5String, VisibleString, NumericString
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    var identity: String { relativeNames.compactMap(\.first).joined(separator: ".") }
    var description: String { relativeNames.map { $0.joined(separator: "+") }.joined(separator: ",") }
}

/// What revocation and identities need of a certificate: its issuer and subject.
struct CertificateFields {
    var issuer: DistinguishedName
    var subject: DistinguishedName

    init(der: [UInt8]) throws {
        let root = try DER.parse(der)
        (issuer, subject) = try DER.sequence(root, identifier: .sequence) { parts in
            guard let tbs = parts.next() else { throw ASN1Error.invalidASN1Object(reason: "no TBSCertificate") }
            while parts.next() != nil {}
            return try DER.sequence(tbs, identifier: .sequence) { fields in
                var next = fields.next()
                if let n = next, n.identifier.tagClass == .contextSpecific { next = fields.next() }  // [0] version
                _ = fields.next()  // the signature algorithm (next is the serial number)
                guard let issuerNode = fields.next() else { throw ASN1Error.invalidASN1Object(reason: "no issuer") }
                _ = fields.next()  // validity
                guard let subjectNode = fields.next() else { throw ASN1Error.invalidASN1Object(reason: "no subject") }
                while fields.next() != nil {}
                return (try DistinguishedName(derEncoded: issuerNode), try DistinguishedName(derEncoded: subjectNode))
            }
        }
    }
}

/// TLS contexts for one program, from its `[TLS]` settings: a server context that requires
/// and verifies a client certificate against the CA chain (mutual TLS), and a client context
/// that presents our certificate and verifies the server's. ``reload()`` (on SIGHUP) swaps
/// them for new handshakes; connections already open keep theirs.
public final class TLSContexts: Sendable {
    public let settings: TLSSettings
    struct Loaded: Sendable {
        var server: NIOSSLContext
        /// Made on first use: a component serving clients never connects out (its memory).
        var client: NIOSSLContext?
        var clientConfiguration: TLSConfiguration
        var identity: String
        var notValidAfter: Int
        /// Revoked certificates by issuer (the issuer name's DER) and serial number.
        var revoked: Set<[UInt8]>
        /// When the first CRL needs its next issue (seconds since 1970), if one says.
        var crlNextUpdate: Int?
    }
    private let loaded: Mutex<Loaded>
    private let logger: Logger

    /// Loads and checks the files; throws a ``TLSSetupError`` that says which file is wrong.
    public init(_ settings: TLSSettings, logger: Logger = Logger(label: "mplane.tls"), now: Int? = nil) throws {
        self.settings = settings
        self.logger = logger
        loaded = Mutex(try Self.load(settings, now: now ?? Int(time(nil))))
        warnOfExpiry(now: now ?? Int(time(nil)))
    }

    /// Our identity, from our certificate.
    public var identity: String { loaded.withLock { $0.identity } }
    /// When our certificate expires (seconds since 1970).
    public var notValidAfter: Int { loaded.withLock { $0.notValidAfter } }
    var serverContext: NIOSSLContext { loaded.withLock { $0.server } }
    func clientContext() throws -> NIOSSLContext {
        let (existing, configuration) = loaded.withLock { ($0.client, $0.clientConfiguration) }
        if let existing { return existing }
        // Made outside the lock (it reads the key and the roots into BoringSSL); a context
        // made at the same time elsewhere is as good, and the first one stored is kept.
        let made = try NIOSSLContext(configuration: configuration)
        return loaded.withLock { l in
            if let c = l.client { return c }
            l.client = made
            return made
        }
    }

    /// Reads the files again; on an error the contexts in use stay and the error is thrown.
    public func reload(now: Int? = nil) throws {
        let fresh = try Self.load(settings, now: now ?? Int(time(nil)))
        loaded.withLock { $0 = fresh }
        warnOfExpiry(now: now ?? Int(time(nil)))
        logger.info("TLS certificates reloaded", metadata: ["tls.identity": "\(fresh.identity)"])
    }

    private func warnOfExpiry(now: Int) {
        if let next = loaded.withLock({ $0.crlNextUpdate }), next < now, let crl = settings.crl {
            // Still used (a stale list revokes what it revoked), but the CA has a newer one.
            logger.warning("the CRL is past its next update: fetch the CA's current one and reload (SIGHUP)", metadata: [
                "tls.crl": "\(crl)", "tls.next-update": "\(Timestamp(secondsSince1970: Int64(next)))"])
        }
        let left = notValidAfter - now
        if left < settings.expiryWarningDays * 86_400 {
            logger.warning("our certificate expires soon", metadata: [
                "tls.certificate": "\(settings.certificate)", "tls.days-left": "\(left / 86_400)",
                "tls.expiry-warning-days": "\(settings.expiryWarningDays)"])
        }
    }

    /// Whether the CRL of `issuer` (a Name's DER) lists `serial`.
    func isRevoked(issuer: [UInt8], serial: [UInt8]) -> Bool {
        loaded.withLock { $0.revoked.contains(revocationKey(issuer: issuer, serial: serial)) }
    }

    /// Whether a CRL is configured.
    var checksRevocation: Bool { settings.crl != nil }

    static func load(_ s: TLSSettings, now: Int) throws -> Loaded {
        /// `body` on the file of `key`; its failure as "[TLS] KEY PATH: reason".
        func file<T>(_ key: String, _ path: String, _ body: (String) throws(PEMFile.Failure) -> T) throws -> T {
            do { return try body(path) } catch { throw TLSSetupError("[TLS] \(key) \(path): \(error.reason)") }
        }
        // All three readable before any is parsed: the first problem named is the plainest.
        try file("cert", s.certificate, PEMFile.readable)
        try file("key", s.key, PEMFile.readable)
        try file("ca-chain", s.caChain, PEMFile.readable)
        let chain = try file("cert", s.certificate, PEMFile.certificates)
        let leaf = chain[0]
        if Int(leaf.notValidAfter) < now {
            throw TLSSetupError("[TLS] cert \(s.certificate): expired at \(Timestamp(secondsSince1970: Int64(leaf.notValidAfter)))")
        }
        if Int(leaf.notValidBefore) > now {
            throw TLSSetupError("[TLS] cert \(s.certificate): not valid before \(Timestamp(secondsSince1970: Int64(leaf.notValidBefore)))")
        }
        let key = try file("key", s.key, PEMFile.privateKey)
        let roots = try file("ca-chain", s.caChain, PEMFile.certificates)
        let identity: String
        do { identity = try certificateIdentity(der: leaf.toDERBytes()) } catch {
            throw TLSSetupError("[TLS] cert \(s.certificate): its subject cannot be read (\(error))")
        }
        let lists = try s.crl.map { try revocationLists(crlFile: $0, issuers: roots) }

        let certificates = chain.map(NIOSSLCertificateSource.certificate)
        var server = TLSConfiguration.makeServerConfigurationWithMTLS(
            certificateChain: certificates, privateKey: .privateKey(key), trustRoots: .certificates(roots))
        server.minimumTLSVersion = .tlsv12
        server.sendCANameList = true
        var client = TLSConfiguration.makeClientConfiguration()
        client.minimumTLSVersion = .tlsv12
        client.certificateChain = certificates
        client.privateKey = .privateKey(key)
        client.trustRoots = .certificates(roots)
        client.certificateVerification = s.verifyHostname ? .fullVerification : .noHostnameVerification
        do {
            return Loaded(server: try NIOSSLContext(configuration: server), client: nil, clientConfiguration: client,
                          identity: identity, notValidAfter: Int(leaf.notValidAfter), revoked: lists?.revoked ?? [],
                          crlNextUpdate: lists?.nextUpdate)
        } catch NIOSSLError.failedToLoadPrivateKey {
            throw TLSSetupError("[TLS] key \(s.key) does not match the certificate \(s.certificate)")
        } catch {
            throw TLSSetupError("[TLS] cert \(s.certificate) and key \(s.key): cannot be used together (\(error))")
        }
    }
}

// MARK: Handshakes

extension TLSContexts {
    /// The handler that starts a server connection: mutual TLS with the current server
    /// context; a peer whose certificate the CRL lists fails the handshake.
    func serverHandler() -> NIOSSLServerHandler {
        NIOSSLServerHandler._makeSSLServerHandler(context: serverContext) { certificate, channel in
            self.checkRevocation(certificate, channel)
        }
    }

    /// The handler that starts a client connection to `host` (its name checked against the
    /// server's certificate unless `verify-hostname = no`; an address is checked against the
    /// certificate's IP addresses).
    func clientHandler(host: String) throws -> NIOSSLClientHandler {
        let isAddress = IPAddress(host) != nil
        return try NIOSSLClientHandler._makeSSLClientHandler(
            context: try clientContext(), serverHostname: isAddress ? nil : host) { certificate, channel in
            self.checkRevocation(certificate, channel)
        }
    }

    private func checkRevocation(_ certificate: NIOSSLCertificate, _ channel: any Channel) -> EventLoopFuture<Void> {
        guard checksRevocation else { return channel.eventLoop.makeSucceededVoidFuture() }
        // The leaf only: intermediates are not looked up (README, "Security").
        guard let der = try? certificate.toDERBytes(), let fields = try? CertificateFields(der: der) else {
            return channel.eventLoop.makeFailedFuture(TLSSetupError("peer certificate unreadable"))
        }
        if isRevoked(issuer: fields.issuer.der, serial: normalizedSerial(certificate.serialNumber[...])) {
            logger.notice("peer certificate revoked by the CRL", metadata: ["tls.peer": "\(channel.remoteAddress?.description ?? "?")"])
            return channel.eventLoop.makeFailedFuture(TLSSetupError("certificate revoked"))
        }
        return channel.eventLoop.makeSucceededVoidFuture()
    }
}

/// The identity of the peer of a TLS connection once its handshake is over; nil without TLS.
func peerIdentity(of channel: any Channel) async -> String? {
    guard let certificate = try? await channel.nioSSL_peerCertificate().get(), let der = try? certificate.toDERBytes() else {
        return nil
    }
    return try? certificateIdentity(der: der)
}

// MARK: Revocation lists

func normalizedSerial(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
    Array(bytes.drop { $0 == 0 })
}

/// What names a revoked certificate: its issuer's name (DER) and its serial number.
func revocationKey(issuer: [UInt8], serial: [UInt8]) -> [UInt8] {
    var key = [UInt8(truncatingIfNeeded: issuer.count >> 8), UInt8(truncatingIfNeeded: issuer.count)] + issuer
    key += serial
    return key
}

/// The certificates a PEM file of CRLs revokes (``revocationKey(issuer:serial:)``), and the
/// earliest next update they announce. Each CRL must be signed by one of the CA certificates
/// (`issuers`) and name it as its issuer: anything else is a start-up error, not a list
/// silently ignored.
func revocationLists(crlFile path: String, issuers: [NIOSSLCertificate]) throws -> (revoked: Set<[UInt8]>, nextUpdate: Int?) {
    let text: String
    do { text = String(decoding: try readAll(path, limit: 64 << 20), as: UTF8.self) } catch {
        throw TLSSetupError("[TLS] crl \(path): cannot be read (\(error))")
    }
    let documents: [PEMDocument]
    do { documents = try PEMDocument.parseMultiple(pemString: text).filter { $0.discriminator == "X509 CRL" } } catch {
        throw TLSSetupError("[TLS] crl \(path): not PEM (\(error))")
    }
    guard !documents.isEmpty else { throw TLSSetupError("[TLS] crl \(path): holds no X509 CRL") }
    let cas = try issuers.map { ca in (fields: try CertificateFields(der: ca.toDERBytes()), key: try ca.extractPublicKey().toSPKIBytes()) }
    var revoked = Set<[UInt8]>()
    var nextUpdate: Int?
    for document in documents {
        do {
            let crl = try RevocationList(der: document.derBytes)
            guard let issuer = cas.first(where: { $0.fields.subject == crl.issuer }) else {
                throw TLSSetupError("[TLS] crl \(path): issued by \(crl.issuer), which is not in ca-chain")
            }
            guard crl.isSigned(by: issuer.key) else {
                throw TLSSetupError("[TLS] crl \(path): its signature does not verify with \(issuer.fields.subject)'s key")
            }
            revoked.formUnion(crl.serials.map { revocationKey(issuer: crl.issuer.der, serial: $0) })
            if let n = crl.nextUpdate { nextUpdate = min(nextUpdate ?? n, n) }
        } catch let error as TLSSetupError {
            throw error
        } catch {
            throw TLSSetupError("[TLS] crl \(path): not a CRL (\(error))")
        }
    }
    return (revoked, nextUpdate)
}

/// A UTCTime or GeneralizedTime node as seconds since 1970; nil for anything else.
func secondsSince1970(_ node: ASN1Node) -> Int? {
    let t: Timestamp
    if let u = try? UTCTime(derEncoded: node) {
        t = Timestamp(year: u.year, month: u.month, day: u.day, hour: u.hours, minute: u.minutes, second: u.seconds)
    } else if let g = try? GeneralizedTime(derEncoded: node) {
        t = Timestamp(year: g.year, month: g.month, day: g.day, hour: g.hours, minute: g.minutes, second: g.seconds)
    } else {
        return nil
    }
    return Int(t.microseconds / 1_000_000)
}

/// The parts of an X.509 CRL (RFC 5280, 5.1) that revocation needs.
struct RevocationList {
    var signedBytes: ArraySlice<UInt8>
    var issuer: DistinguishedName
    var serials: [[UInt8]] = []
    var signatureAlgorithm: String
    var signature: ArraySlice<UInt8>
    /// nextUpdate, seconds since 1970, if given.
    var nextUpdate: Int?

    init(der: [UInt8]) throws {
        let root = try DER.parse(der)
        (signedBytes, issuer, serials, signatureAlgorithm, signature, nextUpdate) = try DER.sequence(root, identifier: .sequence) { nodes in
            guard let tbs = nodes.next(), let algorithm = nodes.next(), let value = nodes.next() else {
                throw ASN1Error.invalidASN1Object(reason: "CertificateList needs three parts")
            }
            let (issuer, serials, nextUpdate) = try DER.sequence(tbs, identifier: .sequence) { fields -> (DistinguishedName, [[UInt8]], Int?) in
                var next = fields.next()
                if let n = next, n.identifier == .integer { next = fields.next() }  // version
                next = fields.next()  // past the signature algorithm: issuer
                guard let issuerNode = next else { throw ASN1Error.invalidASN1Object(reason: "no issuer") }
                let issuer = try DistinguishedName(derEncoded: issuerNode)
                _ = fields.next()  // thisUpdate
                var serials: [[UInt8]] = []
                var nextUpdate: Int?
                while let field = fields.next() {
                    // nextUpdate is a time; revokedCertificates a SEQUENCE; extensions [0].
                    if let t = secondsSince1970(field) { nextUpdate = t; continue }
                    guard field.identifier == .sequence else { continue }
                    try DER.sequence(field, identifier: .sequence) { entries in
                        while let entry = entries.next() {
                            try DER.sequence(entry, identifier: .sequence) { parts in
                                guard let serial = parts.next() else { throw ASN1Error.invalidASN1Object(reason: "no serial") }
                                serials.append(normalizedSerial(try ArraySlice<UInt8>(derEncoded: serial)))
                                while parts.next() != nil {}
                            }
                        }
                    }
                }
                return (issuer, serials, nextUpdate)
            }
            let oid = try DER.sequence(algorithm, identifier: .sequence) { parts -> ASN1ObjectIdentifier in
                guard let o = parts.next() else { throw ASN1Error.invalidASN1Object(reason: "no algorithm") }
                while parts.next() != nil {}
                return try ASN1ObjectIdentifier(derEncoded: o)
            }
            return (tbs.encodedBytes, issuer, serials, oid.description, try ASN1BitString(derEncoded: value).bytes, nextUpdate)
        }
    }

    /// Whether the CRL is signed by the key `spki` (a SubjectPublicKeyInfo): ECDSA on P-256,
    /// P-384 or P-521, RSA PKCS#1 v1.5, or Ed25519, as CAs sign.
    func isSigned(by spki: [UInt8]) -> Bool {
        let signed = Array(signedBytes)
        /// ECDSA with hash `H`, on the curve of the key.
        func ecdsa<H: HashFunction>(_: H.Type, _ spki: [UInt8]) -> Bool {
            let d = H.hash(data: signed)
            if let key = try? P256.Signing.PublicKey(derRepresentation: spki) {
                return (try? P256.Signing.ECDSASignature(derRepresentation: signature)).map { key.isValidSignature($0, for: d) } ?? false
            }
            if let key = try? P384.Signing.PublicKey(derRepresentation: spki) {
                return (try? P384.Signing.ECDSASignature(derRepresentation: signature)).map { key.isValidSignature($0, for: d) } ?? false
            }
            if let key = try? P521.Signing.PublicKey(derRepresentation: spki) {
                return (try? P521.Signing.ECDSASignature(derRepresentation: signature)).map { key.isValidSignature($0, for: d) } ?? false
            }
            return false
        }
        func digest<H: HashFunction>(_: H.Type) -> H.Digest { H.hash(data: signed) }
        switch signatureAlgorithm {
        case "1.2.840.10045.4.3.2": return ecdsa(SHA256.self, spki)
        case "1.2.840.10045.4.3.3": return ecdsa(SHA384.self, spki)
        case "1.2.840.10045.4.3.4": return ecdsa(SHA512.self, spki)
        case "1.2.840.113549.1.1.11", "1.2.840.113549.1.1.12", "1.2.840.113549.1.1.13":
            guard let key = try? _RSA.Signing.PublicKey(unsafeDERRepresentation: spki) else { return false }
            let s = _RSA.Signing.RSASignature(rawRepresentation: signature)
            switch signatureAlgorithm {
            case "1.2.840.113549.1.1.11": return key.isValidSignature(s, for: digest(SHA256.self), padding: .insecurePKCS1v1_5)
            case "1.2.840.113549.1.1.12": return key.isValidSignature(s, for: digest(SHA384.self), padding: .insecurePKCS1v1_5)
            default: return key.isValidSignature(s, for: digest(SHA512.self), padding: .insecurePKCS1v1_5)
            }
        case "1.3.101.112":
            // An Ed25519 SubjectPublicKeyInfo ends with the 32-byte key.
            guard spki.count == 44, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: spki.suffix(32)) else { return false }
            return key.isValidSignature(signature, for: signed)
        default:
            return false
        }
    }
}

// MARK: The RI's sections

extension IniFile {
    /// The `[TLS]` section (nil: plain HTTP).
    public func tlsSettings() throws(ServiceConfigurationError) -> TLSSettings? {
        try TLSSettings(section: self["TLS"].map { Dictionary($0.entries.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 }) })
    }

    /// The `[Roles]` and `[Authorizations]` sections.
    public var authorization: Authorization {
        Authorization(rolesSection: self["Roles"]?.entries.map { ($0.key, $0.value) },
                      authorizationsSection: self["Authorizations"]?.entries.map { ($0.key, $0.value) })
    }
}

/// The authorisations in force, shared by the parts that enforce them and replaced whole on
/// a reload (SIGHUP), so that taking a role away takes effect without a restart.
public final class AuthorizationPolicy: Sendable {
    private let current: Mutex<Authorization>
    public init(_ authorization: Authorization = .open) { current = Mutex(authorization) }
    public var authorization: Authorization { current.withLock { $0 } }
    /// Puts `new` in force; whether it differs from what was.
    @discardableResult
    public func replace(with new: Authorization) -> Bool {
        current.withLock { a in
            defer { a = new }
            return a != new
        }
    }
}

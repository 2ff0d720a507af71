import MPlaneIO
package import NIOSSL

#if canImport(Glibc)
import Glibc
#endif

/// PEM files read for TLS (the programs' own `[TLS]` files, and the supervisor's files for
/// its database): each failure is a reason that follows "NAME PATH: " in the caller's message.
package enum PEMFile {
    package struct Failure: Error {
        package let reason: String
    }

    /// Fails unless `path` can be opened for reading, with the system's reason.
    package static func readable(_ path: String) throws(Failure) {
        guard access(path, R_OK) == 0 else { throw Failure(reason: "cannot be read (\(errnoText(errno)))") }
    }

    /// The certificates in `path`, at least one.
    package static func certificates(_ path: String) throws(Failure) -> [NIOSSLCertificate] {
        try readable(path)
        let certificates: [NIOSSLCertificate]
        do { certificates = try NIOSSLCertificate.fromPEMFile(path) } catch {
            throw Failure(reason: "not PEM certificates (\(error))")
        }
        guard !certificates.isEmpty else { throw Failure(reason: "holds no certificate") }
        return certificates
    }

    /// The (unencrypted) private key in `path`.
    package static func privateKey(_ path: String) throws(Failure) -> NIOSSLPrivateKey {
        try readable(path)
        do { return try NIOSSLPrivateKey(file: path, format: .pem) } catch {
            throw Failure(reason: "not a PEM private key, or encrypted (\(error))")
        }
    }
}

internal import Crypto

/// The hashes the reference implementation uses for schema hashes and default tokens.
enum Identity {
    static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Lower-case hex md5 of the UTF-8 text.
    static func md5Hex(_ text: String) -> String {
        let digest = Insecure.MD5.hash(data: Array(text.utf8))
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for b in digest {
            out.append(hex[Int(b >> 4)])
            out.append(hex[Int(b & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Lower-case hex MD5 of the UTF-8 text: how mPlane derives tokens and schema hashes, for
/// code that derives tokens of its own the same way.
public func md5Hex(_ text: String) -> String { Identity.md5Hex(text) }

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Small blocking file helpers for the command-line tools (the information model does no I/O).

/// Reads a whole file (or standard input for `-`).
///
/// - Throws: ``FileError`` naming the path and the `errno` text.
public func readAll(_ path: String, limit: Int = 256 << 20) throws(FileError) -> [UInt8] {
    let fd: Int32 = path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw FileError(path: path, errno: errno) }
    defer { if fd != 0 { close(fd) } }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw FileError(path: path, errno: errno)
        }
        if n == 0 { break }
        out.append(contentsOf: chunk[0..<n])
        guard out.count <= limit else { throw FileError(path: path, errno: EFBIG) }
    }
    return out
}

public struct FileError: Error, CustomStringConvertible {
    public let path: String
    public let errno: Int32
    public var description: String { "\(path): \(errnoText(errno))" }
}

/// Writes text to file descriptor 2.
public func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue }; return }
        bytes = bytes.dropFirst(n)
    }
}

/// Writes `bytes` to a new file at `path` (replacing it); with `sync`, also to the disk
/// (`fsync`) before returning.
public func writeAll(_ path: String, _ bytes: [UInt8], mode: UInt32 = 0o644, sync: Bool = false) throws(FileError) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode_t(mode))
    guard fd >= 0 else { throw FileError(path: path, errno: errno) }
    defer { close(fd) }
    var rest = bytes[...]
    while !rest.isEmpty {
        let n = rest.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw FileError(path: path, errno: errno)
        }
        rest = rest.dropFirst(n)
    }
    if sync && fsync(fd) != 0 { throw FileError(path: path, errno: errno) }
}

/// The names in a directory (without `.` and `..`), sorted; empty if it cannot be read.
public func listDirectory(_ path: String) -> [String] {
    guard let d = opendir(path) else { return [] }
    defer { closedir(d) }
    var out: [String] = []
    while let e = readdir(d) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { out.append(name) }
    }
    return out.sorted()
}

/// The system's words for an errno value (`strerror`): the one place errno becomes text.
public func errnoText(_ e: Int32) -> String { String(cString: strerror(e)) }

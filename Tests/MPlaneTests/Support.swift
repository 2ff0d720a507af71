import MPlane
import MPlaneIO
#if canImport(Glibc)
import Glibc
#endif

/// The repository root (this file is Tests/MPlaneTests/Support.swift).
let repoRoot: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}()

/// Recorded exchanges of the reference implementation (a copy of shared/wire, so the tests
/// need nothing outside the repository).
let wireDirectory = repoRoot + "/Tests/Fixtures/wire"

func readFile(_ path: String) -> [UInt8]? { try? readAll(path) }

func writeFile(_ path: String, _ bytes: [UInt8]) -> Bool { (try? writeAll(path, bytes)) != nil }

func listDirectory(_ path: String) -> [String] {
    guard let d = opendir(path) else { return [] }
    defer { closedir(d) }
    var out: [String] = []
    while let e = readdir(d) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { out.append(name) }
    }
    return out.sorted()
}

/// Runs a program and returns its exit status and standard output.
func run(_ argv: [String], stdin: [UInt8]? = nil) -> (status: Int32, stdout: [UInt8]) {
    let outPath = "/tmp/mplane-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
    let inPath = outPath + ".in"
    defer { unlink(outPath); unlink(inPath) }
    var command = argv.map { "'" + $0.replacingOccurrences("'", "'\\''") + "'" }.joined(separator: " ")
    if let stdin {
        _ = writeFile(inPath, stdin)
        command += " < '\(inPath)'"
    } else {
        command += " < /dev/null"
    }
    command += " > '\(outPath)'"
    let status = system(command)
    let exit = (status >> 8) & 0xff
    return (exit, readFile(outPath) ?? [])
}

extension String {
    func replacingOccurrences(_ a: String, _ b: String) -> String {
        split(separator: a, omittingEmptySubsequences: false).joined(separator: b)
    }
}

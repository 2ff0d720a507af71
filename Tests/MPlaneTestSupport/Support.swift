// Helpers shared by the test targets: where the repository and the reference
// implementation are, JSON values, running programs.
import MPlaneIO
#if canImport(Glibc)
import Glibc
#endif

/// The repository root (this file is Tests/MPlaneTestSupport/Support.swift).
public let repoRoot: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}()

/// The Python interpreter of the virtualenv holding the reference implementation
/// (`make test` creates it; `MPLANE_RI_PYTHON` overrides).
public let riPython: String? = {
    if let p = getenv("MPLANE_RI_PYTHON").map({ String(cString: $0) }), access(p, X_OK) == 0 { return p }
    let p = repoRoot + "/.venv-ri/bin/python"
    return access(p, X_OK) == 0 ? p : nil
}()

public func readFile(_ path: String) -> [UInt8]? { try? readAll(path) }

public func writeFile(_ path: String, _ bytes: [UInt8]) -> Bool { (try? writeAll(path, bytes)) != nil }


/// Runs a program and returns its exit status and standard output.
public func run(_ argv: [String], stdin: [UInt8]? = nil) -> (status: Int32, stdout: [UInt8]) {
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
    public func replacingOccurrences(_ a: String, _ b: String) -> String {
        split(separator: a, omittingEmptySubsequences: false).joined(separator: b)
    }
}

/// Runs a program without blocking the cooperative pool; returns its status and stdout.
public func runProcess(_ argv: [String]) async throws -> (status: Int32, output: String) {
    let out = "/tmp/mplane-runtime-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    defer { unlink(out) }
    let command = argv.map { "'\($0)'" }.joined(separator: " ") + " > '\(out)' 2>&1 < /dev/null; echo $? > '\(out).rc'"
    // system() blocks: run it on a detached thread and poll for its exit code file.
    let thread = Thread { _ = system(command) }
    thread.start()
    for _ in 0..<1200 {
        if let rc = try? readAll(out + ".rc"), !rc.isEmpty {
            unlink(out + ".rc")
            let status = Int32(String(decoding: rc, as: UTF8.self).split(separator: "\n").first ?? "") ?? -1
            return (status, String(decoding: (try? readAll(out)) ?? [], as: UTF8.self))
        }
        try await Task.sleep(for: .milliseconds(100))
    }
    return (-1, "timed out")
}

/// A plain thread running a closure once.
public final class Thread: Sendable {
    let body: @Sendable () -> Void
    public init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    public func start() {
        let box = Unmanaged.passRetained(self)
        var tid = pthread_t()
        pthread_create(&tid, nil, { arg in
            let me = Unmanaged<Thread>.fromOpaque(arg!).takeRetainedValue()
            me.body()
            return nil
        }, box.toOpaque())
        pthread_detach(tid)
    }
}


/// The bytes a hex string spells (two digits a byte, no separators).
public func hex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var i = s.startIndex
    while i < s.endIndex {
        let j = s.index(i, offsetBy: 2)
        out.append(UInt8(s[i..<j], radix: 16)!)
        i = j
    }
    return out
}

/// Starts `command` (a shell command line) in the background; its process id, or 0.
public func startInBackground(_ command: String) -> Int32 {
    let started = run(["/bin/sh", "-c", command + " & echo $!"])
    return Int32(String(decoding: started.stdout, as: UTF8.self).split(separator: "\n").first ?? "") ?? 0
}

/// Sends `signal` to `pid` and waits up to `seconds` for it to end; whether it did.
public func stop(_ pid: Int32, signal: Int32 = 15, within seconds: Int = 5) async throws -> Bool {
    kill(pid, signal)
    var status: Int32 = 0
    for _ in 0..<(seconds * 10) where kill(pid, 0) == 0 {
        _ = waitpid(pid, &status, WNOHANG)
        try await Task.sleep(for: .milliseconds(100))
    }
    return kill(pid, 0) != 0
}

/// A fresh path under /tmp for one test (not created), removed with what is in it afterwards.
public func withTemporaryDirectory(_ body: (String) async throws -> Void) async throws {
    let dir = "/tmp/mplane-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    defer { _ = run(["rm", "-rf", dir]) }
    try await body(dir)
}

/// The names in `dir` that end with `suffix`.
public func files(in dir: String, ending suffix: String) -> [String] { listDirectory(dir).filter { $0.hasSuffix(suffix) } }

/// Sends `count` UDP datagrams of `size` payload bytes to 127.0.0.1:`port` (0: a port the
/// kernel picks), where a socket of ours receives them (so no ICMP error follows).
public func sendUDP(port: UInt16, count: Int, size: Int) -> Bool {
    let rx = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0), tx = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(rx); close(tx) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    guard withUnsafeMutablePointer(to: &addr, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(rx, $0, len) == 0 && getsockname(rx, $0, &len) == 0 } })
    else { return false }
    let payload = [UInt8](repeating: 0x61, count: size)
    for _ in 0..<count {
        let n = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(tx, payload, size, 0, $0, len) }
        }
        if n != size { return false }
    }
    return true
}

import CSupport
import MPlane
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Resident kilobytes of this process's executable's code (its `r-xp` mappings).
private func residentCodeKiB() throws -> Int {
    let exe = try #require(realpath("/proc/self/exe", nil))
    let me = String(decoding: UnsafeRawBufferPointer(start: exe, count: strlen(exe)), as: UTF8.self)
    free(exe)
    let f = try #require(fopen("/proc/self/smaps", "r"))
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = fread(&chunk, 1, chunk.count, f)
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    var total = 0, inCode = false
    for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
        let fields = line.split(separator: " ")
        if let first = fields.first, !first.hasSuffix(":"), first.contains("-"), fields.count >= 2 {
            inCode = fields[1] == "r-xp" && line.hasSuffix(me)
        } else if inCode, fields.first == "Rss:", fields.count >= 2 {
            total += Int(fields[1]) ?? 0
        }
    }
    return total
}

@Suite("Start-up pages (what mpcom releases once it listens)", .serialized)
struct StartupPagesTests {
    /// A page of the executable's code the process wrote to, as a debugger writes a
    /// breakpoint (or the kernel a uprobe), is a private copy: the release keeps it, and the
    /// patch stays.
    @Test func privateCopiesKept() throws {
        let code = UnsafeMutablePointer<UInt8>(mutating: csupport_release_probe_address().assumingMemoryBound(to: UInt8.self))
        let size = Int(sysconf(Int32(_SC_PAGESIZE)))
        let page = UnsafeMutableRawPointer(bitPattern: Int(bitPattern: code) & ~(size - 1))!
        let original = code[0]
        let patch: UInt8 = original == 0xCC ? 0x90 : 0xCC
        // Executable throughout: other functions on the page may run meanwhile.
        try #require(mprotect(page, size, PROT_READ | PROT_WRITE | PROT_EXEC) == 0, "errno \(errno)")
        code[0] = patch
        try #require(mprotect(page, size, PROT_READ | PROT_EXEC) == 0)
        defer {
            _ = mprotect(page, size, PROT_READ | PROT_WRITE | PROT_EXEC)
            code[0] = original
            _ = mprotect(page, size, PROT_READ | PROT_EXEC)
        }
        #expect(csupport_release_startup_pages() > 0)
        #expect(code[0] == patch, "the patched page was dropped")
    }

    /// Releasing the executable's read-only mappings drops their resident pages, and the code
    /// that runs next faults back in and works: this test process goes on after it.
    @Test func releasedAndStillRunning() throws {
        let before = try residentCodeKiB()
        let released = csupport_release_startup_pages()
        let after = try residentCodeKiB()
        #expect(released > 0, "errno \(-released)")
        #expect(before > 0 && after < before, "\(before) KiB before, \(after) KiB after")
        // Code and constants come back from the file: decode and encode a statement.
        let text = #"{"capability": "measure", "version": 1, "registry": "http://mplane.corvid.ch/registry/loopback", "label": "x", "when": "now ... future", "parameters": {"test.input": "*"}, "results": ["test.output"]}"#
        let message = try MessageDecoder().decode(text)
        let again = try MessageDecoder().decode(MessageEncoder().encode(message))
        #expect(MessageEncoder().encode(again) == MessageEncoder().encode(message))
    }
}
